/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * classify_structs.h: constants, map keys and values of the packet classifier (ACLs, FlowSpec).
 * Mirrored in fib-ebpf/src/acl/abi.rs; the layout test compares them (layout.c.in).
 *
 * How a rule set is laid out (all per slot; two slots, the active one named by cls_ctl.active):
 *
 *   destination ──trie──► leaf = record offset | first word | MORE
 *        record (in cls_chunk's words): the one non-empty word, or (MORE) the summary
 *        (CLS_SUM_WORDS words, bit w = word w non-empty) followed by the non-empty words in order
 *   other field ──lookup──► bitmap id ──► dense bitmap: word w at id * n_chunks * 8 + w (64 rules a word)
 *   for each candidate word w of the destination: its record word AND the other used fields' word w
 *   = matching rules; lowest set bit = highest-priority match (rule index = priority position).
 *
 * A destination's rules are few (its prefixes' and the wildcards), so its record is a line or two;
 * the other fields have few distinct bitmaps, so their dense words stay in the cache.
 *
 * Lookups per field: prefixes walk a multibit trie (cls_node: a root of 256 nodes picked by the first
 * address byte and indexed by the second, then one node per further byte); 8- and 16-bit fields index
 * cls_tab directly; the ingress interface is a hash (cls_iif). A packet without the header a field
 * needs (no ports, not ICMP, not TCP) uses the slot's none_bm for it: the rules that ignore the field.
 *
 * The trie nodes and the words of a slot are each one map value (cls_nodes, cls_words): the program
 * looks each up once per packet and then indexes it with a masked index, a plain load per trie level
 * and per word. ABI 6: destination records (ABI 5: dense destination bitmaps and a cls_sum map).
 * ABI 7: the IPv4 destination /16 bitmap (CLS_DST4_MAP_NODE).
 */
#ifndef FIB_CLASSIFY_STRUCTS_H
#define FIB_CLASSIFY_STRUCTS_H

#include <linux/types.h>
#include <linux/bpf.h>

/* Bump when a classifier map's key, value or meaning changes (checked on re-use of pinned maps). */
#define CLS_ABI_VERSION 7

#define CLS_SLOTS 2
#define CLS_MAX_RULES 16384
#define CLS_CHUNK_WORDS 8                       /* u64 words per chunk: one 64-byte line */
#define CLS_CHUNK_RULES (CLS_CHUNK_WORDS * 64)  /* 512 rules per chunk */
#define CLS_MAX_CHUNKS (CLS_MAX_RULES / CLS_CHUNK_RULES) /* 32 */
#define CLS_MAX_WORDS (CLS_MAX_RULES / 64)      /* 256 */
#define CLS_SUM_WORDS (CLS_MAX_WORDS / 64)      /* 4: one summary bit per bitmap word */
#define CLS_MAX_BITMAPS 65536                   /* distinct bitmaps per slot */
#define CLS_CHUNKS_PER_SLOT (1u << 18)          /* bitmap storage per slot (16 MiB) */
#define CLS_NODES_PER_SLOT 16384                /* trie nodes per slot (1 KiB each) */
#define CLS_WORDS_PER_SLOT (CLS_CHUNKS_PER_SLOT * CLS_CHUNK_WORDS) /* 2^21: one cls_words value */
#define CLS_NODE_ENTRIES_PER_SLOT (CLS_NODES_PER_SLOT * 256)        /* 2^22: one cls_nodes value */
#define CLS_NODE_CHILD 0x80000000u              /* trie entry: child node index, else a leaf (0: no rule) */
#define CLS_LEAF_ID 0xffffu                     /*   source leaves: bitmap id */
#define CLS_LEAF_REC 0x1fffffu                  /*   destination leaves: record offset in the words, */
#define CLS_LEAF_W_SHIFT 21                     /*   bits 21-28: the first non-empty word, */
#define CLS_LEAF_MORE 0x20000000u               /*   the record is a summary + several words */
#define CLS_MAX_APPLY 16                        /* matching rules applied per packet (non-terminal chain) */
#define CLS_IIF_MAX 4096

/* cls_tab layout inside a slot, in u32 entries. A slot is one map value: the program looks it up once
 * per packet and indexes it directly (masked with CLS_TAB_ENTRIES - 1). */
#define CLS_TAB_PROTO 0
#define CLS_TAB_ICMP_TYPE 256
#define CLS_TAB_ICMP_CODE 512
#define CLS_TAB_TCP_FLAGS 768
#define CLS_TAB_DSCP 1024
#define CLS_TAB_FRAG 1088
#define CLS_TAB_SPORT 4096
#define CLS_TAB_DPORT (CLS_TAB_SPORT + 65536)
#define CLS_TAB_PKTLEN (CLS_TAB_DPORT + 65536)
#define CLS_TAB_ENTRIES (1u << 18) /* a power of two >= CLS_TAB_PKTLEN + 65536 */
#define CLS_TAB_ROW 16
#define CLS_TAB_ROWS_PER_SLOT (CLS_TAB_ENTRIES / CLS_TAB_ROW)

/* Trie roots inside a slot: 256 consecutive nodes each, starting at node root * 256. */
#define CLS_ROOT_SRC4 0
#define CLS_ROOT_DST4 1
#define CLS_ROOT_SRC6 2
#define CLS_ROOT_DST6 3
#define CLS_ROOTS 4
/* After the roots: 8 nodes (65,536 bits) of IPv4 destination /16s whose root entry differs from the
 * IPv4 default leaf (cls_slot.none_bm[CLS_F_DST]): a clear bit answers the default without reading the
 * 256 KiB root (an 8 KiB bitmap stays in the cache; most traffic is under no rule's prefix). */
#define CLS_DST4_MAP_NODE (CLS_ROOTS * 256)
#define CLS_DST4_MAP_NODES 8

/* Fields, in the order the program reads them (bit i of cls_slot.fields = field i is used). */
#define CLS_F_DST 0
#define CLS_F_SRC 1
#define CLS_F_PROTO 2
#define CLS_F_DPORT 3
#define CLS_F_SPORT 4
#define CLS_F_ICMP_TYPE 5
#define CLS_F_ICMP_CODE 6
#define CLS_F_TCP_FLAGS 7
#define CLS_F_PKTLEN 8
#define CLS_F_DSCP 9
#define CLS_F_FRAG 10
#define CLS_F_IIF 11
#define CLS_NFIELDS 12
/* cls_slot.fields: no rule has a destination prefix, so every destination of a family has the same
 * leaf (the family's rules): none_bm[CLS_F_DST] for IPv4, dst6_leaf for IPv6; no trie walk. */
#define CLS_FIELDS_DST_FLAT 0x80000000u

/* Fragment bits as FlowSpec defines them (RFC 8955 4.2.2.12). */
#define CLS_FRAG_DF 0x01
#define CLS_FRAG_ISF 0x02
#define CLS_FRAG_FF 0x04
#define CLS_FRAG_LF 0x08

/* Rule actions and flags. */
#define CLS_ACT_ACCEPT 0
#define CLS_ACT_DROP 1
#define CLS_ACT_RATE_PPS 2
#define CLS_ACT_RATE_BPS 3
#define CLS_RF_TERMINAL 0x01
#define CLS_RF_SET_DSCP 0x02

/* Classifier-wide per-CPU counters (cls_stats index). */
#define CLS_STAT_CLASSIFIED 0 /* packets that went through a non-empty rule set */
#define CLS_STAT_MATCHED 1    /* ... and matched at least one rule */
#define CLS_STAT_DROPPED 2    /* dropped by a drop rule */
#define CLS_STAT_RATE_DROPPED 3 /* dropped by a rate limiter */
#define CLS_STAT_REMARKED 4   /* DSCP rewritten */
#define CLS_STAT_MAX 5

/* cls_stats value (per CPU). */
struct cls_stats {
	__u64 v[CLS_STAT_MAX];
};

/* cls_ctl: which slot packets use. active = 0: no rules (the stage costs one load); 1 + slot
 * otherwise. Userspace fills the inactive slot, then flips `active` with one aligned u32 store. */
struct cls_ctl {
	__u32 active;
	__u32 abi_version;
	__u64 installs; /* rule sets installed so far (informational) */
};

/* cls_slot: per slot header. */
struct cls_slot {
	__u32 n_rules;
	__u32 n_chunks;  /* chunks per bitmap: ceil(n_rules / 512) */
	__u32 fields;    /* bit CLS_F_x: field x is looked up; CLS_FIELDS_DST_FLAT */
	__u32 dst6_leaf; /* the IPv6 default leaf (of every IPv6 destination with CLS_FIELDS_DST_FLAT) */
	__u32 none_bm[CLS_NFIELDS]; /* bitmap for packets that lack the field; [CLS_F_DST]: the IPv4
				     * default leaf (no rule's prefix covers the destination) */
};

/* cls_rules: per slot, index = priority position. */
struct cls_rule {
	__u64 id;        /* the rule's stable id (userspace's, to find counters again after a restart) */
	__u32 counter;   /* index into cls_counters and cls_rl (stable while the id is installed) */
	__u8 action;     /* CLS_ACT_x */
	__u8 flags;      /* CLS_RF_x */
	__u8 dscp;       /* new DSCP with CLS_RF_SET_DSCP */
	__u8 _pad;
	__u64 inv_rate;  /* rate limiters: ns per unit (packet or byte) << 16 */
	__u64 tau;       /* rate limiters: burst tolerance in ns */
};

struct cls_node {
	__u32 e[256];
};

struct cls_tab_row {
	__u32 e[CLS_TAB_ROW];
};

/* cls_tab value: one slot's direct tables. */
struct cls_tab_slot {
	__u32 e[CLS_TAB_ENTRIES];
};

struct cls_chunk {
	__u64 w[CLS_CHUNK_WORDS];
};

/* Per-slot map values (powers of two, so a masked index always stays inside). */
struct cls_nodes {
	__u32 e[CLS_NODE_ENTRIES_PER_SLOT];
};

struct cls_words {
	__u64 w[CLS_WORDS_PER_SLOT];
};

struct cls_iif_key {
	__u32 slot;
	__u32 ifindex;
};

/* Per-rule counters, per CPU, indexed by cls_rule.counter. */
struct cls_counter {
	__u64 packets;       /* matched */
	__u64 bytes;
	__u64 drop_packets;  /* dropped by this rule (drop action or over its rate) */
	__u64 drop_bytes;
};

/* Per-rule token bucket as GCRA: `tat` is the theoretical arrival time (ns) of the next conforming
 * unit; a packet conforms when tat - now <= tau, and then pushes tat by its cost. Shared by all CPUs
 * (under the lock), so the limit is the rule's whatever the spread of flows over CPUs. */
struct cls_rl {
	struct bpf_spin_lock lock;
	__u32 _pad;
	__u64 tat;
	__u64 frac; /* sub-nanosecond remainder (1/65536 ns) carried between packets */
};

#endif
