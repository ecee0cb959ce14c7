/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps.h: BTF-style map definitions of the forwarder, one comment each. Pinned by the loader under
 * /sys/fs/bpf/<instance>/ (except the bench_* maps, which only the benchmark programs use). */
#ifndef FIB_MAPS_H
#define FIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "structs.h"

/* Per-CPU packet/byte counters, indexed by enum fib_stat_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, struct stat_counter);
} stats SEC(".maps");

/* Per-CPU tx counters per next-hop id (frames redirected through that next-hop). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NH_MAX);
	__type(key, __u32);
	__type(value, struct stat_counter);
} nh_stats SEC(".maps");

/* ABI version and FIB generation; written by userspace (mmapped), read by the forwarder. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct fib_meta);
} meta SEC(".maps");

/* DIR-24-8 first level: row = (addr >> 8) / 32, 32 u16 entries per row. Entry = path-list id, or
 * DIR24_TBL8 | group. Userspace writes single aligned u16 entries through the mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DIR24_ROWS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct dir24_row);
} dir24 SEC(".maps");

/* DIR-24-8 second level: one group of 256 entries per /24 that holds prefixes longer than /24. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DIR8_MAX_GROUPS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct dir8_group);
} dir8 SEC(".maps");

/* IPv4 LPM trie: the reference engine (cfg_engine4 = ENGINE4_LPM). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FIB4_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fib4_key);
	__type(value, struct fib_val);
} fib4 SEC(".maps");

/* IPv6 LPM trie. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FIB6_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fib6_key);
	__type(value, struct fib_val);
} fib6 SEC(".maps");

/* path-list id -> nexthop group id. One aligned u32 store (mmap, 8-byte stride: ARRAY values are
 * rounded up to 8 bytes) moves every prefix of the path-list at once. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PATHLIST_MAX);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} pathlist SEC(".maps");

/* nexthop groups: bucket tables, immutable once published (new content goes to a fresh id). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NHG_MAX);
	__type(key, __u32);
	__type(value, struct nhg);
} nhg SEC(".maps");

/* next-hops: egress ifindex, MACs, VLAN; immutable once published. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NH_MAX);
	__type(key, __u32);
	__type(value, struct nh);
} nh SEC(".maps");

/* Redirect targets: ifindex -> ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct tx_port_val);
} tx_port SEC(".maps");

/* Optional per-CPU route cache (cfg_route_cache): direct-mapped, slot = hash(destination), each slot
 * {destination, path-list id, generation}. A per-CPU ARRAY rather than an LRU hash: the lookup is
 * inlined by the verifier and a miss is a plain store, where the LRU hash cost a helper call per
 * lookup and an LRU insert (locks, list moves) per miss. Only the program of this CPU writes it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ROUTE_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct route_cache_entry);
} route_cache SEC(".maps");

/* Benchmark programs only (never pinned): destination tables and a per-CPU cursor. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_ROWS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bench_row4);
} bench_dst4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_ROWS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct bench_row6);
} bench_dst6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_state);
} bench_state SEC(".maps");

/* Memory floor (xdp_bench_mem): 64-byte lines read at random indexes, to time one dependent random
 * access into an area of a given size (the benchmark uses the first N lines). Sized to
 * BENCH_MEM_LINES by the loader in benchmark mode, 1 otherwise. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct dir24_row);
} bench_mem SEC(".maps");

#endif
