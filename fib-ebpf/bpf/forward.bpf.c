/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * forward.bpf.c: the XDP forwarder.
 *
 *   parse Ethernet (+ one 802.1Q/802.1ad tag) -> IPv4 (no options) / IPv6 (no extension headers)
 *     -> lookup (IPv4: DIR-24-8 or LPM trie, IPv6: LPM trie; optional per-CPU route cache)
 *     -> path-list -> nexthop group -> bucket by seeded flow hash -> next-hop
 *     -> TTL / hop limit - 1 (incremental IPv4 checksum), MAC rewrite, VLAN per next-hop
 *     -> bpf_redirect_map(tx_port)
 *
 * Whatever the forwarder does not handle is XDP_PASS, so the kernel does what a router must (ICMP
 * errors, ARP/ND, local delivery); frames it can prove broken are XDP_DROP. Every verdict is counted
 * per reason (per CPU, packets and bytes), and every forwarded frame per next-hop.
 *
 * Invariants the userspace writer keeps (see fib-sync): nh and nhg values are immutable once a
 * path-list points at them; dir24/dir8/pathlist entries change by single aligned u32 stores; a dir8
 * group is complete before a dir24 entry points at it. So each read below sees an old or a new
 * answer, never a torn one.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "hash.h"
#include "classify.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Load-time constants, set by the loader before verification; the verifier prunes the branches of
 * the settings not chosen. */
volatile const __u32 cfg_engine4 = ENGINE4_DIR24;
volatile const __u32 cfg_hash_seed = 0x5eed5eed;
volatile const __u32 cfg_route_cache = 0;

/* barrier_var(v) (bpf_helpers.h) stops the compiler from reasoning about `v` across that point, so
 * an explicit bounds check the verifier needs is not optimised away. */

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

static __always_inline int account(__u32 reason, __u64 bytes, int action)
{
	struct stat_counter *s = bpf_map_lookup_elem(&stats, &reason);
	if (s) {
		s->packets += 1;
		s->bytes += bytes;
	}
	return action;
}

/* Reads a u32 that userspace may be storing concurrently (aligned, so never torn). clang-19 cannot
 * select an acquire atomic load for BPF; a volatile load is a single ldxw. */
static __always_inline __u32 load_u32(const __u32 *p)
{
	return *(const volatile __u32 *)p;
}

static __always_inline __u32 load_u16(const __u16 *p)
{
	return *(const volatile __u16 *)p;
}

static __always_inline __u64 fib_generation(void)
{
	__u32 zero = 0;
	struct fib_meta *m = bpf_map_lookup_elem(&meta, &zero);
	if (!m)
		return 0;
	return *(const volatile __u64 *)&m->generation;
}

/* ---- IPv4 lookup engines, behind one function ---- */

static __always_inline __u32 lookup4_dir24(__u32 daddr_host)
{
	__u32 idx = daddr_host >> 8;
	__u32 row = idx / DIR24_ENTRIES_PER_ROW;
	struct dir24_row *r = bpf_map_lookup_elem(&dir24, &row);
	if (!r)
		return PL_NO_ROUTE;
	__u32 e = load_u16(&r->e[idx & (DIR24_ENTRIES_PER_ROW - 1)]);
	if (!(e & DIR24_TBL8))
		return e;
	__u32 group = e & ~DIR24_TBL8;
	struct dir8_group *g = bpf_map_lookup_elem(&dir8, &group);
	if (!g)
		return PL_NO_ROUTE;
	return load_u32(&g->e[daddr_host & (DIR8_ENTRIES - 1)]);
}

static __always_inline __u32 lookup4_lpm(__be32 daddr)
{
	struct fib4_key key = { .prefixlen = 32 };
	__builtin_memcpy(key.addr, &daddr, 4);
	struct fib_val *v = bpf_map_lookup_elem(&fib4, &key);
	return v ? v->pl_id : PL_NO_ROUTE;
}

static __always_inline __u32 lookup4_engine(__be32 daddr)
{
	if (cfg_engine4 == ENGINE4_LPM)
		return lookup4_lpm(daddr);
	return lookup4_dir24(bpf_ntohl(daddr));
}

static __always_inline __u32 lookup6_engine(const struct in6_addr *daddr)
{
	struct fib6_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, daddr, 16);
	struct fib_val *v = bpf_map_lookup_elem(&fib6, &key);
	return v ? v->pl_id : PL_NO_ROUTE;
}

/* The route cache holds path-list ids (not next-hops), so a path-list flip still takes effect at
 * once; only prefix changes need the generation bump that invalidates it. The generation is read
 * before the lookup: an entry stored with generation G was looked up no earlier than G's FIB.
 * Direct-mapped: the slot is a seeded multiplicative hash of the destination (seeded per box, so
 * nobody can aim destinations at one slot from outside); a miss overwrites the slot. Empty slots
 * (family 0, generation 0) never match, and the loader starts the generation at 1. Only this CPU's
 * program reads and writes its slots (XDP runs with bottom halves off), so no entry is seen torn. */
static __always_inline __u32 cache_slot(__u32 x)
{
	return ((x ^ cfg_hash_seed) * 0x9e3779b1u) >> (32 - __builtin_ctz(ROUTE_CACHE_SLOTS));
}

static __always_inline __u32 lookup4(__be32 daddr)
{
	if (!cfg_route_cache)
		return lookup4_engine(daddr);
	__u64 gen = fib_generation();
	__u32 slot = cache_slot(daddr);
	struct route_cache_entry *c = bpf_map_lookup_elem(&route_cache, &slot);
	if (!c)
		return lookup4_engine(daddr);
	if (c->generation == gen && c->addr[0] == daddr && c->family == 4)
		return c->pl_id;
	__u32 pl_id = lookup4_engine(daddr);
	c->addr[0] = daddr;
	c->addr[1] = 0;
	c->addr[2] = 0;
	c->addr[3] = 0;
	c->pl_id = pl_id;
	c->family = 4;
	c->generation = gen;
	return pl_id;
}

static __always_inline __u32 lookup6(const struct in6_addr *daddr)
{
	if (!cfg_route_cache)
		return lookup6_engine(daddr);
	__u32 a[4];
	__builtin_memcpy(a, daddr, 16);
	__u64 gen = fib_generation();
	__u32 slot = cache_slot(a[0] ^ a[1] ^ a[2] ^ a[3]);
	struct route_cache_entry *c = bpf_map_lookup_elem(&route_cache, &slot);
	if (!c)
		return lookup6_engine(daddr);
	if (c->generation == gen && c->addr[0] == a[0] && c->addr[1] == a[1] && c->addr[2] == a[2] &&
	    c->addr[3] == a[3] && c->family == 6)
		return c->pl_id;
	__u32 pl_id = lookup6_engine(daddr);
	c->addr[0] = a[0];
	c->addr[1] = a[1];
	c->addr[2] = a[2];
	c->addr[3] = a[3];
	c->pl_id = pl_id;
	c->family = 6;
	c->generation = gen;
	return pl_id;
}

/* ---- flow hash ---- */

/* Source/destination ports of TCP, UDP and SCTP (the first 4 bytes of each header), or 0 when the
 * protocol has none or the frame is a non-first fragment. */
static __always_inline __u32 l4_ports(void *l4, void *end, __u8 proto)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return 0;
	if (l4 + 4 > end)
		return 0;
	return *(__u32 *)l4;
}

/* ---- path-list -> group -> next-hop ---- */

/* Returns the next-hop for a forwardable path-list, or NULL with *reason set to why not. */
static __always_inline struct nh *select_nh(__u32 pl_id, __u32 hash, __u32 *nh_id_out, __u32 *reason)
{
	__u32 *nhg_id = bpf_map_lookup_elem(&pathlist, &pl_id);
	if (!nhg_id) {
		*reason = STAT_PASS_NO_ROUTE;
		return NULL;
	}
	__u32 gid = load_u32(nhg_id);
	if (gid == NHG_PASS) {
		*reason = STAT_PASS_UNRESOLVED;
		return NULL;
	}
	struct nhg *g = bpf_map_lookup_elem(&nhg, &gid);
	if (!g) {
		*reason = STAT_PASS_UNRESOLVED;
		return NULL;
	}
	__u32 n = g->n_buckets;
	if (n == 0 || n > NHG_MAX_BUCKETS) {
		*reason = STAT_PASS_UNRESOLVED;
		return NULL;
	}
	/* Multiply-shift maps the hash onto [0, n) without a division. The compiler knows b < n, the
	 * verifier does not: keep an explicit mask it can see. */
	__u32 b = (__u32)(((__u64)hash * n) >> 32);
	barrier_var(b);
	b &= NHG_MAX_BUCKETS - 1;
	__u32 nh_id = g->bucket[b];
	struct nh *h = bpf_map_lookup_elem(&nh, &nh_id);
	if (!h || h->ifindex == 0) {
		*reason = STAT_PASS_UNRESOLVED;
		return NULL;
	}
	*nh_id_out = nh_id;
	return h;
}

/* Rewrites L2 for the chosen next-hop: MACs, and the 802.1Q tag set, replaced or removed as the
 * next-hop asks. Returns 0, or -1 when the frame could not be resized. The L3 header must already be
 * final: after bpf_xdp_adjust_head every packet pointer is invalid. */
static __always_inline int rewrite_l2(struct xdp_md *ctx, const struct nh *h, int tagged)
{
	int want_tag = h->flags & NH_F_VLAN;
	if (want_tag && !tagged) {
		/* Grow by 4 at the front: the old ethertype lands at offset 16, right after the new tag. */
		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct vlan_hdr_s)))
			return -1;
	} else if (!want_tag && tagged) {
		/* Shrink by 4: the inner ethertype (old offset 16) lands at offset 12. */
		if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct vlan_hdr_s)))
			return -1;
	}
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	/* Three 16-bit moves per MAC instead of the six byte moves clang emits for the packed ethhdr
	 * (nh.smac/dmac are 2-byte aligned; the frame start is at least 2-byte aligned). */
	__u16 *dst = (__u16 *)eth;
	const __u16 *dm = (const __u16 *)h->dmac;
	const __u16 *sm = (const __u16 *)h->smac;
	dst[0] = dm[0];
	dst[1] = dm[1];
	dst[2] = dm[2];
	dst[3] = sm[0];
	dst[4] = sm[1];
	dst[5] = sm[2];
	if (want_tag) {
		struct vlan_hdr_s *v = (void *)(eth + 1);
		if ((void *)(v + 1) > data_end)
			return -1;
		__u16 pcp = tagged ? (bpf_ntohs(v->tci) & 0xf000) : 0;
		eth->h_proto = bpf_htons(ETH_P_8021Q);
		v->tci = bpf_htons(pcp | (h->vlan & 0x0fff));
	}
	return 0;
}

static __always_inline int verdict_pl(__u32 pl_id, __u64 len)
{
	switch (pl_id) {
	case PL_NO_ROUTE:
		return account(STAT_PASS_NO_ROUTE, len, XDP_PASS);
	case PL_BLACKHOLE:
		return account(STAT_DROP_BLACKHOLE, len, XDP_DROP);
	case PL_LOCAL:
		return account(STAT_PASS_LOCAL, len, XDP_PASS);
	default:
		/* PL_PASS and the other reserved ids below PL_FIRST_DYNAMIC */
		return account(STAT_PASS_KERNEL, len, XDP_PASS);
	}
}

/* Common tail: next-hop choice, redirect, L2 rewrite. `ttl_dec` lowers the TTL / hop limit. */
static __always_inline int finish(struct xdp_md *ctx, __u32 pl_id, __u32 hash, __u64 len, int tagged,
				  struct iphdr *ip4, struct ipv6hdr *ip6)
{
	__u32 reason = STAT_PASS_NO_ROUTE;
	__u32 nh_id = 0;
	struct nh *h = select_nh(pl_id, hash, &nh_id, &reason);
	if (!h)
		return account(reason, len, XDP_PASS);
	/* Check the egress port before touching the frame, so a failure hands the kernel the frame as
	 * it arrived. */
	long act = bpf_redirect_map(&tx_port, h->ifindex, 0);
	if (act != XDP_REDIRECT)
		return account(STAT_REDIRECT_FAILED, len, XDP_PASS);
	if (ip4)
		ipv4_decrement_ttl(ip4);
	else if (ip6)
		ip6->hop_limit -= 1;
	if (rewrite_l2(ctx, h, tagged))
		return account(STAT_DROP_MALFORMED, len, XDP_DROP);
	struct stat_counter *s = bpf_map_lookup_elem(&nh_stats, &nh_id);
	if (s) {
		s->packets += 1;
		s->bytes += len;
	}
	return account(STAT_FORWARDED, len, XDP_REDIRECT);
}

static __always_inline int forward_ipv4(struct xdp_md *ctx, struct cursor *c, __u64 len, int tagged,
					int l2_mcast)
{
	struct iphdr *ip = cursor_take(c, sizeof(*ip));
	if (!ip || ip->version != 4 || ip->ihl < 5)
		return account(STAT_DROP_MALFORMED, len, XDP_DROP);
	__u16 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < ip->ihl * 4 || (void *)ip + tot_len > c->end)
		return account(STAT_DROP_MALFORMED, len, XDP_DROP);
	if (ip->ihl != 5)
		return account(STAT_PASS_IP_OPTIONS, len, XDP_PASS);
	__u32 daddr = bpf_ntohl(ip->daddr);
	if (l2_mcast || (daddr & 0xf0000000) == 0xe0000000 || daddr == 0xffffffff)
		return account(STAT_PASS_MCAST, len, XDP_PASS);
	if (classify_ipv4(ctx, ip, c->end, len) == CLS_DROP)
		return XDP_DROP;

	__u32 pl_id = lookup4(ip->daddr);
	if (pl_id < PL_FIRST_DYNAMIC)
		return verdict_pl(pl_id, len);
	if (ip->ttl <= 1)
		return account(STAT_PASS_TTL, len, XDP_PASS);

	__u32 h = hash_word(cfg_hash_seed, ip->saddr);
	h = hash_word(h, ip->daddr);
	__u32 ports = 0;
	if (!(ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		ports = l4_ports((void *)(ip + 1), c->end, ip->protocol);
	h = hash_word(h, ports);
	h = hash_final(h, ip->protocol);
	return finish(ctx, pl_id, h, len, tagged, ip, NULL);
}

static __always_inline int is_ext_header(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return 1;
	default:
		return 0;
	}
}

static __always_inline int forward_ipv6(struct xdp_md *ctx, struct cursor *c, __u64 len, int tagged,
					int l2_mcast)
{
	struct ipv6hdr *ip6 = cursor_take(c, sizeof(*ip6));
	if (!ip6 || ip6->version != 6)
		return account(STAT_DROP_MALFORMED, len, XDP_DROP);
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > c->end)
		return account(STAT_DROP_MALFORMED, len, XDP_DROP);
	__u8 nexthdr = ip6->nexthdr;
	void *l4 = (void *)(ip6 + 1);
	if (nexthdr == IPPROTO_ICMPV6) {
		__u8 *type = l4;
		if ((void *)(type + 1) > c->end)
			return account(STAT_DROP_MALFORMED, len, XDP_DROP);
		if (*type >= 133 && *type <= 137)
			return account(STAT_PASS_ND, len, XDP_PASS);
	}
	if (l2_mcast || ip6->daddr.s6_addr[0] == 0xff)
		return account(STAT_PASS_MCAST, len, XDP_PASS);
	/* link-local destinations (fe80::/10) are never routed */
	if (ip6->daddr.s6_addr[0] == 0xfe && (ip6->daddr.s6_addr[1] & 0xc0) == 0x80)
		return account(STAT_PASS_LOCAL, len, XDP_PASS);
	if (is_ext_header(nexthdr))
		return account(STAT_PASS_FRAGMENT_OR_EXT, len, XDP_PASS);
	if (classify_ipv6(ctx, ip6, c->end, len) == CLS_DROP)
		return XDP_DROP;

	__u32 pl_id = lookup6(&ip6->daddr);
	if (pl_id < PL_FIRST_DYNAMIC)
		return verdict_pl(pl_id, len);
	if (ip6->hop_limit <= 1)
		return account(STAT_PASS_TTL, len, XDP_PASS);

	__u32 h = cfg_hash_seed;
	__u32 *s = (__u32 *)&ip6->saddr;
	__u32 *d = (__u32 *)&ip6->daddr;
#pragma unroll
	for (int i = 0; i < 4; i++)
		h = hash_word(h, s[i]);
#pragma unroll
	for (int i = 0; i < 4; i++)
		h = hash_word(h, d[i]);
	h = hash_word(h, l4_ports(l4, c->end, nexthdr));
	h = hash_final(h, nexthdr);
	return finish(ctx, pl_id, h, len, tagged, NULL, ip6);
}

static __always_inline int forward(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct cursor c = { .pos = data, .end = data_end };
	struct ethhdr *eth;
	struct vlan_hdr_s *vlan;

	__be16 proto = parse_eth(&c, &eth, &vlan);
	if (!proto)
		return account(STAT_DROP_MALFORMED, len, XDP_DROP);
	int l2_mcast = eth->h_dest[0] & 1;
	if (proto == bpf_htons(ETH_P_IP))
		return forward_ipv4(ctx, &c, len, vlan != NULL, l2_mcast);
	if (proto == bpf_htons(ETH_P_IPV6))
		return forward_ipv6(ctx, &c, len, vlan != NULL, l2_mcast);
	return account(STAT_PASS_NON_IP, len, XDP_PASS);
}

SEC("xdp")
int xdp_forward(struct xdp_md *ctx)
{
	return forward(ctx);
}

/* ---- benchmark programs (loaded only by the benchmark) ----
 * Each run looks up the BENCH_BATCH destinations of the next row of bench_dst4/6 (rows advance per
 * run, so repeated runs walk the whole table instead of re-reading one hot row). */

static __always_inline struct bench_state *bench_state_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&bench_state, &zero);
}

SEC("xdp")
int xdp_bench_lookup4(struct xdp_md *ctx)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return XDP_ABORTED;
	__u32 row = st->cursor % BENCH_ROWS;
	st->cursor += 1;
	struct bench_row4 *r = bpf_map_lookup_elem(&bench_dst4, &row);
	if (!r)
		return XDP_ABORTED;
	__u64 sum = 0;
	for (int i = 0; i < BENCH_BATCH; i++)
		sum += lookup4(r->addr[i]);
	st->sink += sum;
	return XDP_PASS;
}

SEC("xdp")
int xdp_bench_lookup6(struct xdp_md *ctx)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return XDP_ABORTED;
	__u32 row = st->cursor % BENCH_ROWS;
	st->cursor += 1;
	struct bench_row6 *r = bpf_map_lookup_elem(&bench_dst6, &row);
	if (!r)
		return XDP_ABORTED;
	__u64 sum = 0;
	for (int i = 0; i < BENCH_BATCH; i++)
		sum += lookup6((struct in6_addr *)r->addr[i]);
	st->sink += sum;
	return XDP_PASS;
}

/* The kernel FIB through bpf_fib_lookup, on the same destinations (in the caller's namespace). */
SEC("xdp")
int xdp_bench_fib_lookup4(struct xdp_md *ctx)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return XDP_ABORTED;
	__u32 row = st->cursor % BENCH_ROWS;
	st->cursor += 1;
	struct bench_row4 *r = bpf_map_lookup_elem(&bench_dst4, &row);
	if (!r)
		return XDP_ABORTED;
	__u64 sum = 0;
	for (int i = 0; i < BENCH_BATCH; i++) {
		struct bpf_fib_lookup p = {};
		p.family = 2; /* AF_INET */
		p.tot_len = 64;
		p.ifindex = ctx->ingress_ifindex;
		p.ipv4_src = bpf_htonl(0x0a000001);
		p.ipv4_dst = r->addr[i];
		sum += bpf_fib_lookup(ctx, &p, sizeof(p), 0) + p.ifindex;
	}
	st->sink += sum;
	return XDP_PASS;
}

/* Baseline for whole-packet cost: the same entry overhead, no work. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Whole-packet benchmark: before each run, write the next destination of bench_dst4 into the frame
 * (TTL back to 64, checksum recomputed), so repeated runs forward to ever-changing destinations the
 * way a NAPI loop would. xdp_bench_pass4 does the same rewrite and passes: the difference between
 * the two is the forwarder's own cost. The frame must be untagged IPv4 without options. */
static __always_inline int bench_set_dst(struct xdp_md *ctx)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return -1;
	__u64 n = st->cursor;
	st->cursor = n + 1;
	__u32 row = (n / BENCH_BATCH) % BENCH_ROWS;
	struct bench_row4 *r = bpf_map_lookup_elem(&bench_dst4, &row);
	if (!r)
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > data_end)
		return -1;
	/* The checksum is summed from the words the forwarder never writes (version .. fragment,
	 * protocol, source) and the new TTL and destination held in registers, never by re-reading
	 * the TTL/checksum bytes stored just before: a 16-bit load over a fresh 8-bit store cannot be
	 * store-forwarded, waits for the store to commit, and so for every older store, including
	 * the previous run's frame writes: the harness would then serialise consecutive runs, which
	 * a NIC writing frames by DMA does not. */
	__u32 daddr = r->addr[n & (BENCH_BATCH - 1)];
	__u16 *w = (__u16 *)ip;
	__u32 sum = (__u32)w[0] + w[1] + w[2] + w[3] + w[6] + w[7];
	sum += bpf_htons((64 << 8) | ip->protocol);
	sum += (daddr & 0xffff) + (daddr >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->daddr = daddr;
	ip->ttl = 64;
	ip->check = (__u16)~sum;
	return 0;
}

SEC("xdp")
int xdp_bench_forward4(struct xdp_md *ctx)
{
	if (bench_set_dst(ctx))
		return XDP_ABORTED;
	return forward(ctx);
}

SEC("xdp")
int xdp_bench_pass4(struct xdp_md *ctx)
{
	if (bench_set_dst(ctx))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* The same rewrite, then XDP_DROP: what the packet source and the rewrite cost alone (the ceiling
 * of any drop rate measured with xdp_bench_forward4). */
SEC("xdp")
int xdp_bench_drop4(struct xdp_md *ctx)
{
	if (bench_set_dst(ctx))
		return XDP_ABORTED;
	return XDP_DROP;
}

/* Nothing but XDP_DROP: the cost of the live-frame harness itself (page-pool frame, program call,
 * recycling), the floor under every drop-benchmark figure. */
SEC("xdp")
int xdp_bench_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* The same for IPv6: the next destination of bench_dst6 into an untagged IPv6 frame, hop limit back
 * to 64 (no header checksum in IPv6). */
static __always_inline int bench_set_dst6(struct xdp_md *ctx)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return -1;
	__u64 n = st->cursor;
	st->cursor = n + 1;
	__u32 row = (n / BENCH_BATCH) % BENCH_ROWS;
	struct bench_row6 *r = bpf_map_lookup_elem(&bench_dst6, &row);
	if (!r)
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	__builtin_memcpy(&ip6->daddr, r->addr[n & (BENCH_BATCH - 1)], 16);
	ip6->hop_limit = 64;
	return 0;
}

SEC("xdp")
int xdp_bench_forward6(struct xdp_md *ctx)
{
	if (bench_set_dst6(ctx))
		return XDP_ABORTED;
	return forward(ctx);
}

SEC("xdp")
int xdp_bench_pass6(struct xdp_md *ctx)
{
	if (bench_set_dst6(ctx))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* Memory floor: one read of a 64-byte line of bench_mem per run, at the index the benchmark stored
 * in bench_dst4 (host order). With every index inside the first N lines this is the cost of a
 * random access into an N-line area, the way tbl24 is read per packet. In xdp_bench_mem the runs are
 * independent, so the CPU overlaps the misses of consecutive runs (as it may across packets); in
 * xdp_bench_mem_chain each index also adds the value the previous run read (always 0: the area is
 * zeroed), so every access waits for the one before it: the full latency. */
static __always_inline int bench_mem_read(int chain)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return XDP_ABORTED;
	__u64 n = st->cursor;
	st->cursor = n + 1;
	__u32 row = (n / BENCH_BATCH) % BENCH_ROWS;
	struct bench_row4 *r = bpf_map_lookup_elem(&bench_dst4, &row);
	if (!r)
		return XDP_ABORTED;
	__u32 idx = r->addr[n & (BENCH_BATCH - 1)];
	if (chain)
		idx += (__u32)st->sink;
	struct dir24_row *m = bpf_map_lookup_elem(&bench_mem, &idx);
	if (!m)
		return XDP_ABORTED;
	__u32 v = load_u16(&m->e[idx & (DIR24_ENTRIES_PER_ROW - 1)]);
	if (chain)
		st->sink = v;
	else
		st->sink += v;
	return XDP_PASS;
}

SEC("xdp")
int xdp_bench_mem(struct xdp_md *ctx)
{
	return bench_mem_read(0);
}

SEC("xdp")
int xdp_bench_mem_chain(struct xdp_md *ctx)
{
	return bench_mem_read(1);
}

/* One DIR-24-8 lookup per run, chained like xdp_bench_mem_chain: the destination of each run
 * depends on the answer of the run before (the answer ANDed with 0 by an asm the compiler cannot
 * see through), so this is the full latency of the lookup on the live dir24/dir8 maps. */
SEC("xdp")
int xdp_bench_dir24_chain(struct xdp_md *ctx)
{
	struct bench_state *st = bench_state_get();
	if (!st)
		return XDP_ABORTED;
	__u64 n = st->cursor;
	st->cursor = n + 1;
	__u32 row = (n / BENCH_BATCH) % BENCH_ROWS;
	struct bench_row4 *r = bpf_map_lookup_elem(&bench_dst4, &row);
	if (!r)
		return XDP_ABORTED;
	__u32 d = bpf_ntohl(r->addr[n & (BENCH_BATCH - 1)]) + (__u32)st->sink;
	__u32 pl = lookup4_dir24(d);
	asm volatile("%[v] &= 0" : [v] "+r"(pl));
	st->sink = pl;
	return XDP_PASS;
}
