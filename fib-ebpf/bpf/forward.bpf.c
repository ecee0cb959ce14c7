/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * forward.bpf.c: the XDP forwarder.
 *
 * First stage: parse the frame and account it per reason. Route lookup, next-hop selection and
 * redirect come with the FIB maps; until then every frame is handed to the kernel (XDP_PASS), which is
 * always a correct answer for a router.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int account(__u32 reason, __u64 bytes, int action)
{
	struct stat_counter *s = bpf_map_lookup_elem(&stats, &reason);
	if (s) {
		s->packets += 1;
		s->bytes += bytes;
	}
	return action;
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
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor_take(&c, sizeof(*ip));
		if (!ip || ip->ihl < 5)
			return account(STAT_DROP_MALFORMED, len, XDP_DROP);
		return account(STAT_PASS_NO_ROUTE, len, XDP_PASS);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor_take(&c, sizeof(*ip6));
		if (!ip6)
			return account(STAT_DROP_MALFORMED, len, XDP_DROP);
		return account(STAT_PASS_NO_ROUTE, len, XDP_PASS);
	}
	return account(STAT_PASS_NON_IP, len, XDP_PASS);
}

SEC("xdp")
int xdp_forward(struct xdp_md *ctx)
{
	return forward(ctx);
}
