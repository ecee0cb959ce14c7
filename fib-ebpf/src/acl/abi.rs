//! Rust mirrors of `bpf/classify_structs.h` (the classifier's part of the dataplane ABI). Checked
//! against the C compiler's view by the layout test in [`crate::abi`], which includes [`layout`].

use std::mem::{offset_of, size_of};

pub const CLS_ABI_VERSION: u32 = 7;
pub const CLS_SLOTS: u32 = 2;
pub const CLS_MAX_RULES: u32 = 16384;
pub const CLS_CHUNK_WORDS: usize = 8;
pub const CLS_CHUNK_RULES: u32 = CLS_CHUNK_WORDS as u32 * 64;
pub const CLS_MAX_CHUNKS: u32 = CLS_MAX_RULES / CLS_CHUNK_RULES;
pub const CLS_MAX_WORDS: u32 = CLS_MAX_RULES / 64;
pub const CLS_SUM_WORDS: usize = CLS_MAX_WORDS as usize / 64;
pub const CLS_MAX_BITMAPS: u32 = 65536;
pub const CLS_CHUNKS_PER_SLOT: u32 = 1 << 18;
pub const CLS_NODES_PER_SLOT: u32 = 16384;
/// Bitmap words of a slot: one `cls_chunk` map value (the program masks word indexes with it - 1).
pub const CLS_WORDS_PER_SLOT: u32 = CLS_CHUNKS_PER_SLOT * CLS_CHUNK_WORDS as u32;
/// Trie entries of a slot: one `cls_node` map value (node n at entries n * 256).
pub const CLS_NODE_ENTRIES_PER_SLOT: u32 = CLS_NODES_PER_SLOT * 256;
/// Trie entry: a child node index with this bit, else a leaf. Source leaves: the bitmap id
/// (`CLS_LEAF_ID`). Destination leaves: the word offset of the destination's record
/// (`CLS_LEAF_REC`) | its first non-empty word << `CLS_LEAF_W_SHIFT` | `CLS_LEAF_MORE` when the
/// record is a summary followed by several words (else it is the one non-empty word).
pub const CLS_NODE_CHILD: u32 = 0x8000_0000;
pub const CLS_LEAF_ID: u32 = 0xffff;
pub const CLS_LEAF_REC: u32 = 0x1f_ffff;
pub const CLS_LEAF_W_SHIFT: u32 = 21;
pub const CLS_LEAF_MORE: u32 = 0x2000_0000;
pub const CLS_MAX_APPLY: u32 = 16;
pub const CLS_IIF_MAX: u32 = 4096;

pub const CLS_TAB_PROTO: u32 = 0;
pub const CLS_TAB_ICMP_TYPE: u32 = 256;
pub const CLS_TAB_ICMP_CODE: u32 = 512;
pub const CLS_TAB_TCP_FLAGS: u32 = 768;
pub const CLS_TAB_DSCP: u32 = 1024;
pub const CLS_TAB_FRAG: u32 = 1088;
pub const CLS_TAB_SPORT: u32 = 4096;
pub const CLS_TAB_DPORT: u32 = CLS_TAB_SPORT + 65536;
pub const CLS_TAB_PKTLEN: u32 = CLS_TAB_DPORT + 65536;
/// A power of two (the program masks indexes with it) >= `CLS_TAB_PKTLEN + 65536`; one map value.
pub const CLS_TAB_ENTRIES: u32 = 1 << 18;
pub const CLS_TAB_ROW: u32 = 16;
pub const CLS_TAB_ROWS_PER_SLOT: u32 = CLS_TAB_ENTRIES / CLS_TAB_ROW;

pub const CLS_ROOT_SRC4: u32 = 0;
pub const CLS_ROOT_DST4: u32 = 1;
pub const CLS_ROOT_SRC6: u32 = 2;
pub const CLS_ROOT_DST6: u32 = 3;
pub const CLS_ROOTS: u32 = 4;
/// After the roots: 8 nodes (65,536 bits) marking the IPv4 destination /16s whose root entry is not
/// the IPv4 default leaf (`ClsSlot::none_bm[CLS_F_DST]`).
pub const CLS_DST4_MAP_NODE: u32 = CLS_ROOTS * 256;
pub const CLS_DST4_MAP_NODES: u32 = 8;

pub const CLS_F_DST: u32 = 0;
pub const CLS_F_SRC: u32 = 1;
pub const CLS_F_PROTO: u32 = 2;
pub const CLS_F_DPORT: u32 = 3;
pub const CLS_F_SPORT: u32 = 4;
pub const CLS_F_ICMP_TYPE: u32 = 5;
pub const CLS_F_ICMP_CODE: u32 = 6;
pub const CLS_F_TCP_FLAGS: u32 = 7;
pub const CLS_F_PKTLEN: u32 = 8;
pub const CLS_F_DSCP: u32 = 9;
pub const CLS_F_FRAG: u32 = 10;
pub const CLS_F_IIF: u32 = 11;
pub const CLS_NFIELDS: usize = 12;
/// `ClsSlot::fields`: no rule has a destination prefix; the destination's leaf is
/// `none_bm[CLS_F_DST]` (IPv4) or `dst6_leaf` (IPv6) without a trie walk.
pub const CLS_FIELDS_DST_FLAT: u32 = 0x8000_0000;

pub const CLS_FRAG_DF: u8 = 0x01;
pub const CLS_FRAG_ISF: u8 = 0x02;
pub const CLS_FRAG_FF: u8 = 0x04;
pub const CLS_FRAG_LF: u8 = 0x08;

pub const CLS_ACT_ACCEPT: u8 = 0;
pub const CLS_ACT_DROP: u8 = 1;
pub const CLS_ACT_RATE_PPS: u8 = 2;
pub const CLS_ACT_RATE_BPS: u8 = 3;
pub const CLS_RF_TERMINAL: u8 = 0x01;
pub const CLS_RF_SET_DSCP: u8 = 0x02;

pub const CLS_STAT_CLASSIFIED: u32 = 0;
pub const CLS_STAT_MATCHED: u32 = 1;
pub const CLS_STAT_DROPPED: u32 = 2;
pub const CLS_STAT_RATE_DROPPED: u32 = 3;
pub const CLS_STAT_REMARKED: u32 = 4;
pub const CLS_STAT_MAX: u32 = 5;

/// `struct cls_stats`: the classifier-wide counters (one per-CPU element).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsStats {
    pub v: [u64; CLS_STAT_MAX as usize],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsCtl {
    pub active: u32,
    pub abi_version: u32,
    pub installs: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsSlot {
    pub n_rules: u32,
    pub n_chunks: u32,
    pub fields: u32,
    /// The IPv6 default leaf (with [`CLS_FIELDS_DST_FLAT`]: of every IPv6 destination).
    pub dst6_leaf: u32,
    pub none_bm: [u32; CLS_NFIELDS],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsRule {
    pub id: u64,
    pub counter: u32,
    pub action: u8,
    pub flags: u8,
    pub dscp: u8,
    pub _pad: u8,
    pub inv_rate: u64,
    pub tau: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClsNode {
    pub e: [u32; 256],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClsTabRow {
    pub e: [u32; CLS_TAB_ROW as usize],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsChunk {
    pub w: [u64; CLS_CHUNK_WORDS],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsIifKey {
    pub slot: u32,
    pub ifindex: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsCounter {
    pub packets: u64,
    pub bytes: u64,
    pub drop_packets: u64,
    pub drop_bytes: u64,
}

/// `struct cls_rl`: the first 4 bytes are the kernel's `struct bpf_spin_lock` (never written by
/// userspace: map updates skip it).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClsRl {
    pub lock: u32,
    pub _pad: u32,
    pub tat: u64,
    pub frac: u64,
}

// SAFETY: plain-old-data, repr(C), every bit pattern valid, padding explicit.
unsafe impl aya::Pod for ClsCtl {}
unsafe impl aya::Pod for ClsSlot {}
unsafe impl aya::Pod for ClsRule {}
unsafe impl aya::Pod for ClsNode {}
unsafe impl aya::Pod for ClsTabRow {}
unsafe impl aya::Pod for ClsChunk {}
unsafe impl aya::Pod for ClsIifKey {}
unsafe impl aya::Pod for ClsCounter {}
unsafe impl aya::Pod for ClsRl {}
unsafe impl aya::Pod for ClsStats {}

const _: () = {
    assert!(size_of::<ClsCtl>() == 16);
    assert!(size_of::<ClsSlot>() == 16 + 4 * CLS_NFIELDS);
    assert!(size_of::<ClsRule>() == 32);
    assert!(size_of::<ClsNode>() == 1024);
    assert!(size_of::<ClsTabRow>() == 64);
    assert!(size_of::<ClsChunk>() == 64);
    assert!(size_of::<ClsIifKey>() == 8);
    assert!(size_of::<ClsCounter>() == 32);
    assert!(size_of::<ClsRl>() == 24);
    assert!(size_of::<ClsStats>() == 8 * CLS_STAT_MAX as usize);
    assert!(CLS_SUM_WORDS * 64 * 64 == CLS_MAX_RULES as usize);
    assert!(CLS_MAX_BITMAPS - 1 <= CLS_LEAF_ID && CLS_MAX_WORDS <= 256);
    assert!(CLS_TAB_ENTRIES.is_power_of_two() && CLS_TAB_ENTRIES >= CLS_TAB_PKTLEN + 65536);
    assert!(CLS_WORDS_PER_SLOT.is_power_of_two() && CLS_NODE_ENTRIES_PER_SLOT.is_power_of_two());
    assert!(CLS_LEAF_REC + 1 == CLS_WORDS_PER_SLOT && CLS_MAX_WORDS <= 256);
    assert!((0xff << CLS_LEAF_W_SHIFT) & (CLS_LEAF_REC | CLS_LEAF_MORE | CLS_NODE_CHILD) == 0);
};

/// `(kind name, value)` lines of the classifier's ABI, compared with `classify_layout.inc`'s output.
pub fn layout() -> Vec<(String, u64)> {
    macro_rules! s {
        ($v:ident, $c:literal, $t:ty) => {
            $v.push((format!("size {}", $c), size_of::<$t>() as u64));
        };
    }
    macro_rules! o {
        ($v:ident, $c:literal, $t:ty, $f:ident) => {
            $v.push((
                format!("offset {}.{}", $c, stringify!($f)),
                offset_of!($t, $f) as u64,
            ));
        };
    }
    macro_rules! c {
        ($v:ident, $($n:ident),*) => {
            $($v.push((format!("const {}", stringify!($n)), $n as u64));)*
        };
    }
    let mut v = Vec::new();
    s!(v, "cls_ctl", ClsCtl);
    o!(v, "cls_ctl", ClsCtl, active);
    o!(v, "cls_ctl", ClsCtl, abi_version);
    o!(v, "cls_ctl", ClsCtl, installs);
    s!(v, "cls_slot", ClsSlot);
    o!(v, "cls_slot", ClsSlot, n_rules);
    o!(v, "cls_slot", ClsSlot, n_chunks);
    o!(v, "cls_slot", ClsSlot, fields);
    o!(v, "cls_slot", ClsSlot, dst6_leaf);
    o!(v, "cls_slot", ClsSlot, none_bm);
    s!(v, "cls_rule", ClsRule);
    o!(v, "cls_rule", ClsRule, id);
    o!(v, "cls_rule", ClsRule, counter);
    o!(v, "cls_rule", ClsRule, action);
    o!(v, "cls_rule", ClsRule, flags);
    o!(v, "cls_rule", ClsRule, dscp);
    o!(v, "cls_rule", ClsRule, inv_rate);
    o!(v, "cls_rule", ClsRule, tau);
    s!(v, "cls_node", ClsNode);
    s!(v, "cls_tab_row", ClsTabRow);
    s!(v, "cls_chunk", ClsChunk);
    c!(v, CLS_MAX_WORDS, CLS_SUM_WORDS);
    s!(v, "cls_iif_key", ClsIifKey);
    o!(v, "cls_iif_key", ClsIifKey, slot);
    o!(v, "cls_iif_key", ClsIifKey, ifindex);
    s!(v, "cls_counter", ClsCounter);
    o!(v, "cls_counter", ClsCounter, packets);
    o!(v, "cls_counter", ClsCounter, bytes);
    o!(v, "cls_counter", ClsCounter, drop_packets);
    o!(v, "cls_counter", ClsCounter, drop_bytes);
    s!(v, "cls_stats", ClsStats);
    s!(v, "cls_rl", ClsRl);
    o!(v, "cls_rl", ClsRl, tat);
    o!(v, "cls_rl", ClsRl, frac);
    c!(
        v,
        CLS_ABI_VERSION,
        CLS_SLOTS,
        CLS_MAX_RULES,
        CLS_CHUNK_WORDS,
        CLS_CHUNK_RULES
    );
    c!(
        v,
        CLS_MAX_CHUNKS,
        CLS_MAX_BITMAPS,
        CLS_CHUNKS_PER_SLOT,
        CLS_NODES_PER_SLOT
    );
    c!(v, CLS_NODE_CHILD, CLS_MAX_APPLY, CLS_IIF_MAX);
    c!(v, CLS_WORDS_PER_SLOT, CLS_NODE_ENTRIES_PER_SLOT);
    c!(
        v,
        CLS_LEAF_ID,
        CLS_LEAF_REC,
        CLS_LEAF_W_SHIFT,
        CLS_LEAF_MORE
    );
    c!(
        v,
        CLS_TAB_PROTO,
        CLS_TAB_ICMP_TYPE,
        CLS_TAB_ICMP_CODE,
        CLS_TAB_TCP_FLAGS
    );
    c!(
        v,
        CLS_TAB_DSCP,
        CLS_TAB_FRAG,
        CLS_TAB_SPORT,
        CLS_TAB_DPORT,
        CLS_TAB_PKTLEN
    );
    c!(v, CLS_TAB_ENTRIES, CLS_TAB_ROW, CLS_TAB_ROWS_PER_SLOT);
    c!(
        v,
        CLS_ROOT_SRC4,
        CLS_ROOT_DST4,
        CLS_ROOT_SRC6,
        CLS_ROOT_DST6,
        CLS_ROOTS
    );
    c!(v, CLS_DST4_MAP_NODE, CLS_DST4_MAP_NODES);
    c!(
        v,
        CLS_F_DST,
        CLS_F_SRC,
        CLS_F_PROTO,
        CLS_F_DPORT,
        CLS_F_SPORT,
        CLS_F_ICMP_TYPE
    );
    c!(
        v,
        CLS_F_ICMP_CODE,
        CLS_F_TCP_FLAGS,
        CLS_F_PKTLEN,
        CLS_F_DSCP,
        CLS_F_FRAG
    );
    c!(v, CLS_F_IIF, CLS_NFIELDS, CLS_FIELDS_DST_FLAT);
    c!(v, CLS_FRAG_DF, CLS_FRAG_ISF, CLS_FRAG_FF, CLS_FRAG_LF);
    c!(
        v,
        CLS_ACT_ACCEPT,
        CLS_ACT_DROP,
        CLS_ACT_RATE_PPS,
        CLS_ACT_RATE_BPS
    );
    c!(v, CLS_RF_TERMINAL, CLS_RF_SET_DSCP);
    c!(
        v,
        CLS_STAT_CLASSIFIED,
        CLS_STAT_MATCHED,
        CLS_STAT_DROPPED,
        CLS_STAT_RATE_DROPPED
    );
    c!(v, CLS_STAT_REMARKED, CLS_STAT_MAX);
    v
}
