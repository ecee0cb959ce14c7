/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * classify.h: the classifier stage (static ACLs and BGP FlowSpec), run before the route lookup.
 *
 *   cls_ctl.active == 0 ──► nothing to do (one load)
 *   destination trie ──► leaf (0: no rule covers it, done) ──► its record: the one candidate word,
 *                        or a summary (= candidate words) and the non-empty words in order
 *   other used fields: one lookup each ──► bitmap id (0: done) ──► first word of their bitmap
 *   next match: for each candidate word, the destination's word AND the fields' words, lowest set
 *   bit first
 *   apply in priority order: count; drop / rate-limit (GCRA, shared, spin-locked) / mark DSCP;
 *   stop at the first terminal rule or drop, or after CLS_MAX_APPLY rules.
 *
 * Per-packet cost is bounded: at most CLS_NFIELDS lookups (tries: 3 levels IPv4, 15 IPv6), then only
 * the 64-rule words where the destination has a rule (at most CLS_MAX_WORDS). Only the destination
 * has a summary: the other fields' bitmaps are mostly dense (wildcards), so their summaries would
 * cost a load each and rarely remove a word. The first CLS_INLINE_WORDS candidate words are ANDed in
 * line; a packet that matches nothing there and has no other candidate is done without bpf_loop.
 * The rest of the walk (and applying matches) runs in bpf_loop, and the stage is a global function,
 * so the verifier checks each once. A packet reads the slot named by cls_ctl.active once and only
 * that slot after, so a rule-set swap (userspace fills the other slot, then one u32 store) is never
 * seen half-built.
 * Bitmap id 0 is the empty bitmap and leaf 0 the empty record: every failed lookup means "no rule".
 */
#ifndef FIB_CLASSIFY_H
#define FIB_CLASSIFY_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "classify_maps.h"

/* Load-time: 0 removes the stage from the program (the verifier drops it). */
volatile const __u32 cfg_classifier = 1;
/* Load-time, tests only: rate limiters read their clock from cls_clock instead of the kernel. */
volatile const __u32 cfg_cls_test_clock = 0;

/* Candidate words ANDed before (and without) bpf_loop. */
#define CLS_INLINE_WORDS 2

#define CLS_PASS 0
#define CLS_DROP 1

/* What the classifier needs from a packet (addresses in network order, numbers in host order). */
struct cls_pkt {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u16 pktlen; /* IP packet length: IPv4 total length, IPv6 payload + 40 */
	__u16 frag_off; /* IPv4 flags and fragment offset (host order); 0 for IPv6 */
	__u8 proto;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 tcp_flags;
	__u8 dscp;
	__u8 has_ports;
	__u8 has_icmp;
	__u8 has_tcp;
};

struct cls_scan {
	__u32 off[CLS_NFIELDS]; /* slot-relative first word of each used field's bitmap */
	__u32 used;
	__u32 rule_base; /* first rule of the slot */
	__u32 slot;
	__u32 cur;       /* word index of `bits`; the candidates after it are still to read */
	__u32 rec;       /* the destination's record (a summary and its words when `more`) */
	__u32 dnext;     /* the record's word of the next candidate */
	__u32 applied;   /* rules applied so far */
	__u32 done;
	__s32 verdict;   /* -2 drop, -1 go on */
	__s32 dscp;      /* DSCP to set, or -1 */
	__u16 pktlen;
	__u16 more;      /* the record has a summary: further candidate words */
	__u32 _pad;
	__u64 framelen;
	__u64 bits;      /* matching rules of word `cur` not yet applied */
};

/* Trailing zeros of a non-zero word without branches (BPF has no ctz; a branchy binary search
 * mispredicts on every packet): popcount of the bits below the lowest set one. */
static __always_inline __u32 cls_ctz64(__u64 x)
{
	__u64 v = (x & (~x + 1)) - 1;
	v = v - ((v >> 1) & 0x5555555555555555ULL);
	v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (__u32)((v * 0x0101010101010101ULL) >> 56);
}

static __always_inline struct cls_stats *cls_stats_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&cls_stats, &zero);
}

static __always_inline void cls_stat(__u32 idx)
{
	struct cls_stats *st = cls_stats_get();
	if (st)
		st->v[idx] += 1;
}

/* FlowSpec fragment bits (RFC 8955 4.2.2.12) of an IPv4 flags + fragment offset field; computed
 * only for rule sets that match on them. */
static __always_inline __u32 cls_frag_bits(__u32 fo)
{
	__u32 off = fo & 0x1fff;
	__u32 mf = fo & 0x2000;
	return ((fo & 0x4000) ? CLS_FRAG_DF : 0) | ((mf || off) ? CLS_FRAG_ISF : 0) |
	       ((!off && mf) ? CLS_FRAG_FF : 0) | ((off && !mf) ? CLS_FRAG_LF : 0);
}

/* Direct-table entry of the slot's tables (looked up once per packet). */
static __always_inline __u32 cls_tab_get(const struct cls_tab_slot *tab, __u32 entry)
{
	return tab->e[entry & (CLS_TAB_ENTRIES - 1)];
}

#define CLS_NODE_MASK (CLS_NODE_ENTRIES_PER_SLOT - 1)
#define CLS_WORD_MASK (CLS_WORDS_PER_SLOT - 1)

/* Entry `i` of the slot's trie nodes (node n's entries at n * 256; the mask keeps it inside). */
static __always_inline __u32 cls_node_e(const struct cls_nodes *nodes, __u32 i)
{
	return nodes->e[i & CLS_NODE_MASK];
}

/* Multibit trie walk: the root node is chosen by a[0] and indexed by a[1]; each further level by the
 * next byte. Entries are leaf-pushed (every entry holds the answer of the longest prefix covering it). */
static __always_inline __u32 cls_trie(const struct cls_nodes *nodes, __u32 root, const __u8 *a, int nbytes)
{
	__u32 e = cls_node_e(nodes, ((root * 256 + a[0]) << 8) + a[1]);
	for (int i = 2; i < nbytes; i++) {
		if (!(e & CLS_NODE_CHILD))
			break;
		e = cls_node_e(nodes, ((e & ~CLS_NODE_CHILD) << 8) + a[i]);
	}
	return (e & CLS_NODE_CHILD) ? 0 : e;
}

/* IPv4 walk: a leaf at the root returns at once; below it, no data-dependent branches (the depth
 * differs from packet to packet, and a mispredicted exit costs more than a load from a line already
 * in the cache): always the two further levels; past a leaf, the walk reads entry a[i] of node 0
 * and keeps the leaf. */
static __always_inline __u32 cls_trie4(const struct cls_nodes *nodes, __u32 root, const __u8 *a)
{
	__u32 e = cls_node_e(nodes, ((root * 256 + a[0]) << 8) + a[1]);
	/* Most traffic's destination is covered by no rule's /17 or longer prefix: a leaf at the root
	 * (this branch is as predictable as the traffic mix). */
	if (!(e & CLS_NODE_CHILD))
		return e;
#pragma unroll
	for (int i = 2; i < 4; i++) {
		__u32 child = -(e >> 31); /* all ones when e names a child node */
		__u32 n = cls_node_e(nodes, ((e & ~CLS_NODE_CHILD & child) << 8) + a[i]);
		e = (n & child) | (e & ~child);
	}
	return e & ~(__u32)-(e >> 31);
}

static __always_inline __u64 cls_now(void)
{
	if (cfg_cls_test_clock) {
		__u32 zero = 0;
		__u64 *t = bpf_map_lookup_elem(&cls_clock, &zero);
		return t ? *(volatile __u64 *)t : 0;
	}
	return bpf_ktime_get_ns();
}

/* GCRA token bucket: true when `cost` units conform to the rule's rate. */
static __always_inline int cls_conform(__u32 counter, __u64 inv_rate, __u64 tau, __u64 cost)
{
	struct cls_rl *rl = bpf_map_lookup_elem(&cls_rl, &counter);
	if (!rl)
		return 1;
	__u64 now = cls_now();
	__u64 inc = cost * inv_rate;
	int ok = 0;
	bpf_spin_lock(&rl->lock);
	__u64 tat = rl->tat;
	if (tat < now)
		tat = now;
	if (tat - now <= tau) {
		__u64 f = rl->frac + inc;
		rl->tat = tat + (f >> 16);
		rl->frac = f & 0xffff;
		ok = 1;
	}
	bpf_spin_unlock(&rl->lock);
	return ok;
}

/* Applies rule `idx` (a match) to the packet; sets s->done when evaluation ends there. */
static __always_inline void cls_apply(struct cls_scan *s, __u32 idx)
{
	__u32 ri = s->rule_base + idx;
	struct cls_rule *r = bpf_map_lookup_elem(&cls_rules, &ri);
	if (!r) {
		s->done = 1;
		return;
	}
	s->applied += 1;
	__u32 ctr = r->counter;
	struct cls_counter *cnt = bpf_map_lookup_elem(&cls_counters, &ctr);
	if (cnt) {
		cnt->packets += 1;
		cnt->bytes += s->framelen;
	}
	int drop = 0;
	__u8 act = r->action;
	if (act == CLS_ACT_DROP) {
		drop = 1;
		cls_stat(CLS_STAT_DROPPED);
	} else if (act == CLS_ACT_RATE_PPS || act == CLS_ACT_RATE_BPS) {
		__u64 cost = act == CLS_ACT_RATE_PPS ? 1 : s->pktlen;
		if (!cls_conform(ctr, r->inv_rate, r->tau, cost)) {
			drop = 1;
			cls_stat(CLS_STAT_RATE_DROPPED);
		}
	}
	if (drop) {
		if (cnt) {
			cnt->drop_packets += 1;
			cnt->drop_bytes += s->framelen;
		}
		s->verdict = -2;
		s->done = 1;
		return;
	}
	if ((r->flags & CLS_RF_SET_DSCP) && s->dscp < 0)
		s->dscp = r->dscp & 63;
	if ((r->flags & CLS_RF_TERMINAL) || s->applied >= CLS_MAX_APPLY)
		s->done = 1;
}

/* Word w of the AND of the used fields' bitmaps (the destination's aside): one load per field off
 * the slot's words. The loads
 * are independent of each other (the offsets are known), so they overlap; no early exit, whose branch
 * would mispredict. */
static __always_inline __u64 cls_word(const struct cls_words *words, const struct cls_scan *s, __u32 w)
{
	__u64 acc = ~0ULL;
#pragma unroll
	for (int f = 0; f < CLS_NFIELDS; f++) {
		if (s->used & (1u << f))
			acc &= words->w[(s->off[f] + w) & CLS_WORD_MASK];
	}
	return acc;
}

/* bpf_loop body, one step: apply the lowest pending match of the current word, or read the next
 * candidate word (AND of the used fields' words, stopping at zero). Stops when done or out of
 * candidates: at most CLS_MAX_WORDS reads + CLS_MAX_APPLY applications. */
static long cls_step(__u64 i, void *ctx)
{
	struct cls_scan *s = ctx;
	__u64 b = s->bits;
	if (b) {
		__u64 low = b & (~b + 1);
		s->bits = b ^ low;
		cls_apply(s, s->cur * 64 + cls_ctz64(low));
		return s->done ? 1 : 0;
	}
	if (!s->more)
		return 1;
	__u32 slot = s->slot;
	const struct cls_words *words = bpf_map_lookup_elem(&cls_chunk, &slot);
	if (!words)
		return 1;
	/* the lowest candidate after `cur`, from the record's summary */
	__u32 cur = s->cur & (CLS_MAX_WORDS - 1);
	__u32 w = 0;
	int found = 0;
#pragma unroll
	for (int k = 0; k < CLS_SUM_WORDS; k++) {
		__u64 c = words->w[(s->rec + k) & CLS_WORD_MASK];
		if (cur >= k * 64 + 63)
			c = 0;
		else if (cur >= k * 64)
			c &= ~((2ULL << (cur - k * 64)) - 1);
		if (!found && c) {
			w = k * 64 + cls_ctz64(c);
			found = 1;
		}
	}
	if (!found)
		return 1;
	s->bits = words->w[s->dnext & CLS_WORD_MASK] & cls_word(words, s, w);
	/* masked: the verifier checks bpf_loop callbacks until their state repeats, and a counter that
	 * only grows never does */
	s->dnext = (s->dnext + 1) & CLS_WORD_MASK;
	s->cur = w;
	return 0;
}

/* Runs the rule set of `active` (cls_ctl.active, non-zero) on `p`. Returns -2 to drop, -1 to go
 * on unchanged, or the DSCP to set. A global (not inlined) function: the verifier checks it once, on
 * its own, instead of once per forwarder path that reaches the call. */
__noinline int cls_match(struct xdp_md *ctx, struct cls_pkt *p, __u32 v6, __u64 framelen, __u32 active)
{
	if (!ctx || !p || !active)
		return -1;
	__u32 slot = (active - 1) & 1;
	struct cls_slot *sl = bpf_map_lookup_elem(&cls_slot, &slot);
	if (!sl || !sl->n_rules)
		return -1;
	struct cls_stats *st = cls_stats_get();
	if (!st)
		return -1;
	st->v[CLS_STAT_CLASSIFIED] += 1;

	/* The destination first (always used): most traffic is covered by no rule's prefix, and its
	 * record says which words can hold a match at all. */
	const struct cls_nodes *nodes = bpf_map_lookup_elem(&cls_node, &slot);
	if (!nodes)
		return -1;
	__u32 u = sl->fields;
	__u32 leaf;
	if (u & CLS_FIELDS_DST_FLAT) {
		leaf = v6 ? sl->dst6_leaf : sl->none_bm[CLS_F_DST];
	} else if (v6) {
		leaf = cls_trie(nodes, CLS_ROOT_DST6, p->dst, 16);
	} else {
		/* the /16 bitmap first: a clear bit is the default leaf, without the root's line */
		__u32 hi = ((__u32)p->dst[0] << 8) | p->dst[1];
		__u32 m = cls_node_e(nodes, (CLS_DST4_MAP_NODE << 8) + (hi >> 5));
		if ((m >> (hi & 31)) & 1)
			leaf = cls_trie4(nodes, CLS_ROOT_DST4, p->dst);
		else
			leaf = sl->none_bm[CLS_F_DST];
	}
	if (!leaf)
		return -1;
	const struct cls_tab_slot *tab = bpf_map_lookup_elem(&cls_tab, &slot);
	const struct cls_words *words = bpf_map_lookup_elem(&cls_chunk, &slot);
	if (!tab || !words)
		return -1;

	struct cls_scan s;
	__u32 nw = sl->n_chunks * CLS_CHUNK_WORDS; /* words of a bitmap */
#pragma unroll
	for (int f = 0; f < CLS_NFIELDS; f++)
		s.off[f] = 0;
	/* the destination's words come from its record, not a dense bitmap */
	s.used = u & ((1u << CLS_NFIELDS) - 1) & ~(1u << CLS_F_DST);
	/* the rest of `s` is filled only for the bpf_loop walk, below: most packets end before it */

	/* Bitmap 0 is empty: a field no rule accepts the packet's value of ends the stage. */
#define CLS_FIELD(f, expr)                                   \
	if (u & (1u << (f))) {                               \
		__u32 b = (expr);                            \
		if (!b)                                      \
			return -1;                           \
		s.off[f] = b * nw;                    \
	}

	CLS_FIELD(CLS_F_SRC, (v6 ? cls_trie(nodes, CLS_ROOT_SRC6, p->src, 16) : cls_trie4(nodes, CLS_ROOT_SRC4, p->src)) &
				     CLS_LEAF_ID);
	CLS_FIELD(CLS_F_PROTO, cls_tab_get(tab, CLS_TAB_PROTO + p->proto));
	CLS_FIELD(CLS_F_DPORT,
		  p->has_ports ? cls_tab_get(tab, CLS_TAB_DPORT + p->dport) : sl->none_bm[CLS_F_DPORT]);
	CLS_FIELD(CLS_F_SPORT,
		  p->has_ports ? cls_tab_get(tab, CLS_TAB_SPORT + p->sport) : sl->none_bm[CLS_F_SPORT]);
	CLS_FIELD(CLS_F_ICMP_TYPE, p->has_icmp ? cls_tab_get(tab, CLS_TAB_ICMP_TYPE + p->icmp_type)
					       : sl->none_bm[CLS_F_ICMP_TYPE]);
	CLS_FIELD(CLS_F_ICMP_CODE, p->has_icmp ? cls_tab_get(tab, CLS_TAB_ICMP_CODE + p->icmp_code)
					       : sl->none_bm[CLS_F_ICMP_CODE]);
	CLS_FIELD(CLS_F_TCP_FLAGS, p->has_tcp ? cls_tab_get(tab, CLS_TAB_TCP_FLAGS + p->tcp_flags)
					      : sl->none_bm[CLS_F_TCP_FLAGS]);
	CLS_FIELD(CLS_F_PKTLEN, cls_tab_get(tab, CLS_TAB_PKTLEN + p->pktlen));
	CLS_FIELD(CLS_F_DSCP, cls_tab_get(tab, CLS_TAB_DSCP + (p->dscp & 63)));
	CLS_FIELD(CLS_F_FRAG, cls_tab_get(tab, CLS_TAB_FRAG + cls_frag_bits(p->frag_off)));
	if (u & (1u << CLS_F_IIF)) {
		/* read only here: three dependent loads (rxq, dev, ifindex) */
		struct cls_iif_key k = { .slot = slot, .ifindex = ctx->ingress_ifindex };
		__u32 *ib = bpf_map_lookup_elem(&cls_iif, &k);
		__u32 bm = ib ? *ib : sl->none_bm[CLS_F_IIF];
		if (!bm)
			return -1;
		s.off[CLS_F_IIF] = bm * nw;
	}
#undef CLS_FIELD

	/* The record's first word: the only candidate's word, or the summary's first word. */
	__u32 rec = leaf & CLS_LEAF_REC;
	__u64 rec0 = words->w[rec & CLS_WORD_MASK];
	__u64 c = 0;
	__u64 acc = 0;
	__u32 w = 0;
	__u32 dnext = rec + CLS_SUM_WORDS;
	__u16 more = 0;
	if (!(leaf & CLS_LEAF_MORE)) {
		/* The destination's rules are all in one word, named by the leaf, and the record is
		 * that word: no summary (most destinations with rules have few of them). */
		w = (leaf >> CLS_LEAF_W_SHIFT) & 0xff;
		acc = rec0 & cls_word(words, &s, w);
		if (!acc)
			return -1;
	} else {
		/* The first candidate words in line: most packets that get this far match nothing in
		 * one or two words, and then need no bpf_loop. The loop goes on from the first
		 * matching word. */
		c = rec0;
#pragma unroll
		for (int i = 0; i < CLS_INLINE_WORDS; i++) {
			if (!c)
				break;
			__u64 low = c & (~c + 1);
			c ^= low;
			w = cls_ctz64(low);
			acc = words->w[dnext & CLS_WORD_MASK] & cls_word(words, &s, w);
			dnext += 1;
			if (acc)
				break;
		}
		if (!acc && !(c | words->w[(rec + 1) & CLS_WORD_MASK] | words->w[(rec + 2) & CLS_WORD_MASK] |
			      words->w[(rec + 3) & CLS_WORD_MASK]))
			return -1;
		more = 1;
	}
	/* The first match in line when it ends evaluation by itself, without a rate limiter: a drop,
	 * or a terminal accept (with or without a DSCP). That is what a flood matching a mitigation
	 * rule does on every packet. Same effects as cls_apply on the first match. */
	if (acc) {
		__u32 ri = slot * CLS_MAX_RULES + w * 64 + cls_ctz64(acc);
		struct cls_rule *r = bpf_map_lookup_elem(&cls_rules, &ri);
		if (!r)
			return -1;
		__u8 act = r->action;
		__u8 fl = r->flags;
		if (act == CLS_ACT_DROP || (act == CLS_ACT_ACCEPT && (fl & CLS_RF_TERMINAL))) {
			__u32 ctr = r->counter;
			struct cls_counter *cnt = bpf_map_lookup_elem(&cls_counters, &ctr);
			int drop = act == CLS_ACT_DROP;
			if (cnt) {
				cnt->packets += 1;
				cnt->bytes += framelen;
				if (drop) {
					cnt->drop_packets += 1;
					cnt->drop_bytes += framelen;
				}
			}
			st->v[CLS_STAT_MATCHED] += 1;
			if (drop) {
				st->v[CLS_STAT_DROPPED] += 1;
				return -2;
			}
			return (fl & CLS_RF_SET_DSCP) ? (r->dscp & 63) : -1;
		}
	}
	s.rule_base = slot * CLS_MAX_RULES;
	s.slot = slot;
	s.applied = 0;
	s.done = 0;
	s.verdict = -1;
	s.dscp = -1;
	s.pktlen = p->pktlen;
	s.more = more;
	s._pad = 0;
	s.framelen = framelen;
	s.bits = acc;
	s.cur = w;
	s.rec = rec;
	s.dnext = dnext & CLS_WORD_MASK;
	bpf_loop(CLS_MAX_WORDS + CLS_MAX_APPLY + 1, cls_step, &s, 0);
	if (s.applied)
		st->v[CLS_STAT_MATCHED] += 1;
	return s.verdict == -2 ? -2 : s.dscp;
}

/* cls_ctl.active (0 = no rules), read once per packet; 0 when the stage is compiled out. */
static __always_inline __u32 cls_active(void)
{
	if (!cfg_classifier)
		return 0;
	__u32 zero = 0;
	struct cls_ctl *ctl = bpf_map_lookup_elem(&cls_ctl, &zero);
	return ctl ? *(volatile __u32 *)&ctl->active : 0;
}

/* Transport fields of a first fragment / unfragmented packet. */
static __always_inline void cls_l4(struct cls_pkt *p, void *l4, void *end, __u8 icmp_proto)
{
	__u8 proto = p->proto;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		__u8 *h = l4;
		if ((void *)(h + 4) <= end) {
			p->sport = ((__u16)h[0] << 8) | h[1];
			p->dport = ((__u16)h[2] << 8) | h[3];
			p->has_ports = 1;
		}
		if (proto == IPPROTO_TCP && (void *)(h + 14) <= end) {
			p->tcp_flags = h[13];
			p->has_tcp = 1;
		}
	} else if (proto == icmp_proto) {
		__u8 *h = l4;
		if ((void *)(h + 2) <= end) {
			p->icmp_type = h[0];
			p->icmp_code = h[1];
			p->has_icmp = 1;
		}
	}
}

/* IPv4 (header checked by the caller, no options). Returns CLS_DROP or CLS_PASS; may rewrite the
 * DSCP (header checksum patched, RFC 1624). */
static __always_inline int classify_ipv4(struct xdp_md *ctx, struct iphdr *ip, void *end, __u64 framelen)
{
	__u32 active = cls_active();
	if (!active)
		return CLS_PASS;
	struct cls_pkt p = {};
	__builtin_memcpy(p.src, &ip->saddr, 4);
	__builtin_memcpy(p.dst, &ip->daddr, 4);
	p.proto = ip->protocol;
	p.dscp = ip->tos >> 2;
	p.pktlen = bpf_ntohs(ip->tot_len);
	p.frag_off = bpf_ntohs(ip->frag_off);
	if (!(p.frag_off & 0x1fff))
		cls_l4(&p, (void *)(ip + 1), end, IPPROTO_ICMP);
	int r = cls_match(ctx, &p, 0, framelen, active);
	if (r == -2)
		return CLS_DROP;
	if (r >= 0 && r != p.dscp) {
		__u16 *w = (__u16 *)ip;
		__u16 old = w[0];
		ip->tos = (__u8)((r << 2) | (ip->tos & 3));
		__u32 sum = (__u16)~ip->check;
		sum += (__u16)~old;
		sum += w[0];
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		ip->check = (__u16)~sum;
		cls_stat(CLS_STAT_REMARKED);
	}
	return CLS_PASS;
}

/* IPv6 without extension headers (the caller passes those to the kernel first). */
static __always_inline int classify_ipv6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *end, __u64 framelen)
{
	__u32 active = cls_active();
	if (!active)
		return CLS_PASS;
	struct cls_pkt p = {};
	__builtin_memcpy(p.src, &ip6->saddr, 16);
	__builtin_memcpy(p.dst, &ip6->daddr, 16);
	p.proto = ip6->nexthdr;
	__u8 *b = (__u8 *)ip6;
	__u8 tc = (__u8)((b[0] << 4) | (b[1] >> 4));
	p.dscp = tc >> 2;
	p.pktlen = bpf_ntohs(ip6->payload_len) + 40;
	cls_l4(&p, (void *)(ip6 + 1), end, IPPROTO_ICMPV6);
	int r = cls_match(ctx, &p, 1, framelen, active);
	if (r == -2)
		return CLS_DROP;
	if (r >= 0 && r != p.dscp) {
		__u8 ntc = (__u8)((r << 2) | (tc & 3));
		b[0] = (b[0] & 0xf0) | (ntc >> 4);
		b[1] = (__u8)((ntc << 4) | (b[1] & 0x0f));
		cls_stat(CLS_STAT_REMARKED);
	}
	return CLS_PASS;
}

#endif
