/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * structs.h: map keys and values shared with userspace (fib-ebpf/src/abi.rs mirrors them).
 * Fixed-width types and explicit padding only; the layout test checks sizes and offsets.
 */
#ifndef FIB_STRUCTS_H
#define FIB_STRUCTS_H

#include <linux/types.h>
#include "consts.h"

/* stats: per reason and per next-hop tx */
struct stat_counter {
	__u64 packets;
	__u64 bytes;
};

/* dir24: one row = 32 consecutive /24 entries */
struct dir24_row {
	__u16 e[DIR24_ENTRIES_PER_ROW];
};

/* dir8: one group = the 256 host entries under one /24 */
struct dir8_group {
	__u32 e[DIR8_ENTRIES];
};

/* fib4/fib6: LPM trie keys (prefixlen first, as the kernel requires) */
struct fib4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct fib6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct fib_val {
	__u32 pl_id;
	__u32 flags;
};

/* nhg: immutable once published; n_buckets <= NHG_MAX_BUCKETS */
struct nhg {
	__u32 n_buckets;
	__u32 _pad;
	__u32 bucket[NHG_MAX_BUCKETS]; /* nh ids */
};

/* nh: immutable once published */
struct nh {
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
	__u16 vlan;
	__u16 flags;
	__u32 _pad;
};

/* route_cache: one slot of the per-CPU direct-mapped cache (slot = hash of the destination). It
 * answers only for the address it holds, and only while its generation is the FIB's. */
struct route_cache_entry {
	__u32 addr[4];  /* destination, network order; IPv4 in addr[0], the rest zero */
	__u32 pl_id;
	__u8 family;    /* 4 or 6; 0 = empty */
	__u8 _pad[3];
	__u64 generation;
};

/* tx_port: DEVMAP_HASH value (struct bpf_devmap_val's layout; prog_fd 0 = no program on the
 * egress device). aya creates DEVMAP maps with an 8-byte value whatever the definition says. */
struct tx_port_val {
	__u32 ifindex;
	__u32 prog_fd;
};

/* Benchmark programs only: destination tables read BENCH_BATCH per run, and a per-CPU cursor. */
struct bench_row4 {
	__u32 addr[BENCH_BATCH]; /* network order */
};

struct bench_row6 {
	__u8 addr[BENCH_BATCH][16];
};

struct bench_state {
	__u64 cursor; /* next row */
	__u64 sink;   /* sum of results, so the compiler keeps every lookup */
};

/* meta: single-element mmapable ARRAY with the ABI version and the FIB generation. Userspace bumps
 * the generation with one aligned 64-bit store (release) after each committed batch; the forwarder
 * reads it with a volatile load before its lookup, so a route-cache entry filled from a FIB state
 * older than the current generation is never trusted. */
struct fib_meta {
	__u32 abi_version;
	__u32 _pad;
	__u64 generation;
};

#endif
