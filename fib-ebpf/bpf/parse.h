/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* parse.h: bounds-checked header cursor over an XDP frame. */
#ifndef FIB_PARSE_H
#define FIB_PARSE_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_vlan.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct cursor {
	void *pos;
	void *end;
};

/* Returns a pointer to `len` bytes at the cursor and advances it, or NULL when the frame is shorter. */
static __always_inline void *cursor_take(struct cursor *c, __u32 len)
{
	void *p = c->pos;
	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

struct vlan_hdr_s {
	__be16 tci;
	__be16 proto;
};

/* Parses Ethernet and at most one 802.1Q/802.1ad tag. Returns the inner ethertype (network order)
 * or 0 when truncated. */
static __always_inline __be16 parse_eth(struct cursor *c, struct ethhdr **eth, struct vlan_hdr_s **vlan)
{
	*eth = cursor_take(c, sizeof(struct ethhdr));
	*vlan = NULL;
	if (!*eth)
		return 0;
	__be16 proto = (*eth)->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		*vlan = cursor_take(c, sizeof(struct vlan_hdr_s));
		if (!*vlan)
			return 0;
		proto = (*vlan)->proto;
	}
	return proto;
}

#endif
