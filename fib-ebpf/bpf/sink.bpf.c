/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sink.bpf.c: a traffic sink for benchmarks. Attached to the receiving end of a veth, it counts every
 * IP frame (per CPU, packets and bytes) and drops it, so what a device under test sends is measured at
 * the egress without the receiver's network stack in the cost. Its presence also lets native
 * XDP_REDIRECT into the veth deliver frames (a veth needs an XDP program on the peer end for that).
 * ARP and ICMPv6 go to the stack, so the sink's address still resolves.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct sink_counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_counter);
} sink_count SEC(".maps");

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr == IPPROTO_ICMPV6)
			return XDP_PASS; /* neighbour discovery */
	} else if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		return XDP_PASS;
	}
	__u32 zero = 0;
	struct sink_counter *c = bpf_map_lookup_elem(&sink_count, &zero);
	if (c) {
		c->packets += 1;
		c->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
