/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps.h: BTF-style map definitions of the forwarder, one comment each. Pinned by the loader. */
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

/* ABI version and FIB generation; written by userspace, read by the forwarder. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fib_meta);
} meta SEC(".maps");

#endif
