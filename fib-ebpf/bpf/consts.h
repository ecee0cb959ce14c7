/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * consts.h: numbers both sides of the dataplane ABI agree on.
 *
 * Everything here is mirrored in fib-ebpf/src/abi.rs; the layout test compares them.
 * Bump FIB_ABI_VERSION whenever a map key, value or meaning changes: a loader that finds
 * pinned maps with another version refuses to reuse them instead of misreading them.
 */
#ifndef FIB_CONSTS_H
#define FIB_CONSTS_H

#define FIB_ABI_VERSION 2

/* DIR-24-8: tbl24 has 2^24 u16 entries packed 32 per array element (one 64-byte line; ARRAY
 * values are rounded up to 8 bytes, so one entry per element would break a dense mmap): 32 MiB
 * instead of the 64 MiB of u32 entries, so the part of it that real traffic touches is half as
 * many cache lines and pages (measured in docs/ARCHITECTURE.md). A tbl24 entry is a path-list id
 * (< DIR24_TBL8), or DIR24_TBL8 | tbl8 group. tbl8 groups hold 256 u32 entries (path-list ids), one
 * group per array element. */
#define DIR24_ENTRIES_PER_ROW 32
#define DIR24_ROWS ((1u << 24) / DIR24_ENTRIES_PER_ROW)
#define DIR24_TBL8 0x8000u
#define DIR8_ENTRIES 256
#define DIR8_MAX_GROUPS 32768
/* Userspace's (the Rust API's) 32-bit form of a tbl24 entry: a tbl8 group index with this bit
 * set, otherwise a path-list id. FibMaps converts it to and from the 16-bit map entry. */
#define DIR_ENTRY_TBL8 0x80000000u

/* Reserved path-list ids: route kinds without next-hops, so one u32 says everything. */
#define PL_NO_ROUTE 0   /* no entry: XDP_PASS, the kernel answers (ICMP unreachable) */
#define PL_BLACKHOLE 1  /* XDP_DROP */
#define PL_PASS 2       /* pass to kernel (local delivery, routes the kernel must handle) */
#define PL_LOCAL 3      /* destination is an address of this box: XDP_PASS */
#define PL_FIRST_DYNAMIC 16
#define PATHLIST_MAX (1u << 15) /* path-list ids must fit a tbl24 entry (< DIR24_TBL8) */

/* Nexthop groups: immutable bucket tables; a flow hash picks one bucket. */
#define NHG_PASS 0      /* the "pass to kernel" group: next-hop unresolved */
#define NHG_MAX_BUCKETS 256
#define NHG_MAX 65536
#define NH_MAX 65536

/* fib4/fib6: LPM tries (BPF_F_NO_PREALLOC, so max_entries is only a ceiling) */
#define FIB4_MAX (1u << 22)
#define FIB6_MAX (1u << 20)

/* fib4/fib6 value flags */
#define FIB_F_NONE 0

/* route_cache: slots of the per-CPU direct-mapped cache (a power of two; 2 MiB per CPU) */
#define ROUTE_CACHE_SLOTS 65536

/* Load-time engine choice for IPv4 (volatile const cfg_engine4). */
#define ENGINE4_DIR24 0
#define ENGINE4_LPM 1

/* Benchmark programs: destinations per run, rows of the destination tables. */
#define BENCH_BATCH 64
#define BENCH_ROWS 16384
/* Lines of 64 bytes in the memory-floor table (128 MiB) in benchmark mode. */
#define BENCH_MEM_LINES (1u << 21)

/* nh flags */
#define NH_F_VLAN 0x1   /* push/set an 802.1Q tag with nh.vlan on egress */

/* Per-CPU statistics: one counter pair per reason. */
enum fib_stat_reason {
	STAT_FORWARDED = 0,   /* redirected to a next-hop */
	STAT_PASS_LOCAL,      /* destination local to this box */
	STAT_PASS_TTL,        /* TTL / hop limit <= 1: the kernel sends ICMP time exceeded */
	STAT_PASS_IP_OPTIONS, /* IPv4 header with options */
	STAT_PASS_NO_ROUTE,   /* no matching route */
	STAT_PASS_KERNEL,     /* route flagged pass-to-kernel */
	STAT_PASS_UNRESOLVED, /* next-hop not resolved yet */
	STAT_PASS_NON_IP,     /* ARP, LLDP, anything not IPv4/IPv6 */
	STAT_PASS_ND,         /* IPv6 neighbour discovery */
	STAT_PASS_MCAST,      /* multicast / broadcast destination */
	STAT_PASS_FRAGMENT_OR_EXT, /* IPv6 extension headers */
	STAT_DROP_BLACKHOLE,  /* blackhole route */
	STAT_DROP_MALFORMED,  /* truncated or inconsistent headers */
	STAT_REDIRECT_FAILED, /* bpf_redirect_map found no tx port */
	STAT_MAX,
};

#endif
