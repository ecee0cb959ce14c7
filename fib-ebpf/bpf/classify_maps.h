/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* classify_maps.h: maps of the classifier stage (see classify_structs.h for the layout). All pinned
 * by the loader except cls_clock. Per-slot maps hold CLS_SLOTS regions, slot s at s * per-slot size. */
#ifndef FIB_CLASSIFY_MAPS_H
#define FIB_CLASSIFY_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "classify_structs.h"

/* Active slot (one aligned u32 flipped by userspace) and ABI version. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cls_ctl);
} cls_ctl SEC(".maps");

/* Slot headers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cls_slot);
} cls_slot SEC(".maps");

/* Rules by priority position. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_SLOTS * CLS_MAX_RULES);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cls_rule);
} cls_rules SEC(".maps");

/* Prefix tries (src/dst, IPv4/IPv6): one value per slot, node n at entries n * 256. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cls_nodes);
} cls_node SEC(".maps");

/* Direct tables of the 8- and 16-bit fields (value -> bitmap id), one element per slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cls_tab_slot);
} cls_tab SEC(".maps");

/* Bitmap words: one value per slot. Dense bitmaps first (word w of bitmap b at b * n_chunks * 8 + w,
 * whole 512-rule chunks), then the destination records. The program indexes it with a masked
 * index: one load per word. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cls_words);
} cls_chunk SEC(".maps");

/* Ingress interface -> bitmap id, per slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CLS_IIF_MAX);
	__type(key, struct cls_iif_key);
	__type(value, __u32);
} cls_iif SEC(".maps");

/* Per-rule counters (per CPU), by counter index. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLS_MAX_RULES);
	__type(key, __u32);
	__type(value, struct cls_counter);
} cls_counters SEC(".maps");

/* Per-rule rate limiter state (shared, spin-locked), by counter index. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_MAX_RULES);
	__type(key, __u32);
	__type(value, struct cls_rl);
} cls_rl SEC(".maps");

/* Classifier-wide per-CPU packet counters: one element, all CLS_STAT_x counters in it (one lookup
 * serves every count a packet makes). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cls_stats);
} cls_stats SEC(".maps");

/* Tests only (cfg_cls_test_clock): the rate limiters' clock in ns, written by the test. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cls_clock SEC(".maps");

#endif
