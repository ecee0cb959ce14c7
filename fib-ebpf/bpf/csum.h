/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* csum.h: incremental Internet checksum updates (RFC 1624). */
#ifndef FIB_CSUM_H
#define FIB_CSUM_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>

/* Decrements the IPv4 TTL and patches the header checksum for it: the TTL is the high byte of a
 * 16-bit word, so the word drops by 0x0100 and the one's-complement sum, stored inverted, rises by
 * 0x0100 with the end-around carry folded back in. */
static __always_inline void ipv4_decrement_ttl(struct iphdr *ip)
{
	__u32 check = (__u32)ip->check;
	check += (__u32)bpf_htons(0x0100);
	ip->check = (__sum16)(check + (check >= 0xffff));
	ip->ttl -= 1;
}

#endif
