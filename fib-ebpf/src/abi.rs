//! Rust mirrors of the dataplane ABI in `bpf/consts.h` and `bpf/structs.h`.
//!
//! Every struct is `#[repr(C)]` with explicit padding. Sizes and offsets are asserted at compile time
//! here, and a unit test compares them (and the constants) with what the C compiler printed for the
//! header itself during the build (`layout.c.in`), so the two sides cannot drift apart unnoticed.

use std::mem::{offset_of, size_of};

pub const FIB_ABI_VERSION: u32 = 2;

/// tbl24 entries are u16 in the map, 32 per 64-byte row (32 MiB in all).
pub const DIR24_ENTRIES_PER_ROW: usize = 32;
pub const DIR24_ROWS: u32 = (1 << 24) / DIR24_ENTRIES_PER_ROW as u32;
/// The tbl8 flag of a 16-bit tbl24 map entry.
pub const DIR24_TBL8: u16 = 0x8000;
pub const DIR8_ENTRIES: usize = 256;
pub const DIR8_MAX_GROUPS: u32 = 32768;
/// The tbl8 flag of a tbl24 entry as the Rust API speaks it (32-bit form, converted by `FibMaps`).
pub const DIR_ENTRY_TBL8: u32 = 0x8000_0000;

pub const PL_NO_ROUTE: u32 = 0;
pub const PL_BLACKHOLE: u32 = 1;
pub const PL_PASS: u32 = 2;
pub const PL_LOCAL: u32 = 3;
pub const PL_FIRST_DYNAMIC: u32 = 16;
/// Path-list ids must fit a 16-bit tbl24 entry (below `DIR24_TBL8`).
pub const PATHLIST_MAX: u32 = 1 << 15;

pub const NHG_PASS: u32 = 0;
pub const NHG_MAX_BUCKETS: usize = 256;
pub const NHG_MAX: u32 = 65536;
pub const NH_MAX: u32 = 65536;
pub const NH_F_VLAN: u16 = 0x1;

pub const FIB4_MAX: u32 = 1 << 22;
pub const FIB6_MAX: u32 = 1 << 20;
/// Slots of the per-CPU direct-mapped route cache.
pub const ROUTE_CACHE_SLOTS: u32 = 65536;
pub const ENGINE4_DIR24: u32 = 0;
pub const ENGINE4_LPM: u32 = 1;
pub const BENCH_BATCH: usize = 64;
pub const BENCH_ROWS: u32 = 16384;
/// 64-byte lines of the benchmark's memory-floor table (128 MiB) in benchmark mode.
pub const BENCH_MEM_LINES: u32 = 1 << 21;

/// Per-CPU statistics reasons (`enum fib_stat_reason`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatReason {
    Forwarded = 0,
    PassLocal,
    PassTtl,
    PassIpOptions,
    PassNoRoute,
    PassKernel,
    PassUnresolved,
    PassNonIp,
    PassNd,
    PassMcast,
    PassFragmentOrExt,
    DropBlackhole,
    DropMalformed,
    RedirectFailed,
}

pub const STAT_MAX: u32 = 14;

impl StatReason {
    pub const ALL: [StatReason; STAT_MAX as usize] = [
        StatReason::Forwarded,
        StatReason::PassLocal,
        StatReason::PassTtl,
        StatReason::PassIpOptions,
        StatReason::PassNoRoute,
        StatReason::PassKernel,
        StatReason::PassUnresolved,
        StatReason::PassNonIp,
        StatReason::PassNd,
        StatReason::PassMcast,
        StatReason::PassFragmentOrExt,
        StatReason::DropBlackhole,
        StatReason::DropMalformed,
        StatReason::RedirectFailed,
    ];

    /// Stable snake_case name used in the API, the CLI and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            StatReason::Forwarded => "forwarded",
            StatReason::PassLocal => "pass_local",
            StatReason::PassTtl => "pass_ttl",
            StatReason::PassIpOptions => "pass_ip_options",
            StatReason::PassNoRoute => "pass_no_route",
            StatReason::PassKernel => "pass_kernel",
            StatReason::PassUnresolved => "pass_unresolved",
            StatReason::PassNonIp => "pass_non_ip",
            StatReason::PassNd => "pass_nd",
            StatReason::PassMcast => "pass_mcast",
            StatReason::PassFragmentOrExt => "pass_fragment_or_ext",
            StatReason::DropBlackhole => "drop_blackhole",
            StatReason::DropMalformed => "drop_malformed",
            StatReason::RedirectFailed => "redirect_failed",
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatCounter {
    pub packets: u64,
    pub bytes: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dir24Row {
    pub e: [u16; DIR24_ENTRIES_PER_ROW],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dir8Group {
    pub e: [u32; DIR8_ENTRIES],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fib4Key {
    pub prefixlen: u32,
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fib6Key {
    pub prefixlen: u32,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FibVal {
    pub pl_id: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nhg {
    pub n_buckets: u32,
    pub _pad: u32,
    pub bucket: [u32; NHG_MAX_BUCKETS],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nh {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub vlan: u16,
    pub flags: u16,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCacheEntry {
    /// Destination in network order (IPv4 in `addr[0]`).
    pub addr: [u32; 4],
    pub pl_id: u32,
    /// 4 or 6; 0 = empty.
    pub family: u8,
    pub _pad: [u8; 3],
    pub generation: u64,
}

/// `tx_port` DEVMAP_HASH value (`struct bpf_devmap_val` layout; `prog_fd` 0 = no egress program).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxPortVal {
    pub ifindex: u32,
    pub prog_fd: u32,
}

/// Benchmark destination row (IPv4, network order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchRow4 {
    pub addr: [u32; BENCH_BATCH],
}

/// Benchmark destination row (IPv6).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchRow6 {
    pub addr: [[u8; 16]; BENCH_BATCH],
}

/// Benchmark per-CPU cursor and result sink.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BenchState {
    pub cursor: u64,
    pub sink: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FibMeta {
    pub abi_version: u32,
    pub _pad: u32,
    pub generation: u64,
}

// SAFETY (for all impls below): plain-old-data, repr(C), every bit pattern valid, padding explicit.
unsafe impl aya::Pod for StatCounter {}
unsafe impl aya::Pod for Dir24Row {}
unsafe impl aya::Pod for Dir8Group {}
unsafe impl aya::Pod for Fib4Key {}
unsafe impl aya::Pod for Fib6Key {}
unsafe impl aya::Pod for FibVal {}
unsafe impl aya::Pod for Nhg {}
unsafe impl aya::Pod for Nh {}
unsafe impl aya::Pod for RouteCacheEntry {}
unsafe impl aya::Pod for FibMeta {}
unsafe impl aya::Pod for TxPortVal {}
unsafe impl aya::Pod for BenchRow4 {}
unsafe impl aya::Pod for BenchRow6 {}
unsafe impl aya::Pod for BenchState {}

const _: () = {
    assert!(size_of::<StatCounter>() == 16);
    assert!(size_of::<Dir24Row>() == 64);
    assert!(size_of::<Dir8Group>() == 1024);
    assert!(size_of::<Fib4Key>() == 8);
    assert!(size_of::<Fib6Key>() == 20);
    assert!(size_of::<FibVal>() == 8);
    assert!(size_of::<Nhg>() == 8 + 4 * NHG_MAX_BUCKETS);
    assert!(offset_of!(Nhg, bucket) == 8);
    assert!(size_of::<Nh>() == 24);
    assert!(offset_of!(Nh, smac) == 4);
    assert!(offset_of!(Nh, dmac) == 10);
    assert!(offset_of!(Nh, vlan) == 16);
    assert!(offset_of!(Nh, flags) == 18);
    assert!(size_of::<RouteCacheEntry>() == 32);
    assert!(offset_of!(RouteCacheEntry, generation) == 24);
    assert!(size_of::<FibMeta>() == 16);
    assert!(size_of::<TxPortVal>() == 8);
    assert!(size_of::<BenchRow4>() == 4 * BENCH_BATCH);
    assert!(size_of::<BenchRow6>() == 16 * BENCH_BATCH);
    assert!(size_of::<BenchState>() == 16);
};

/// `(kind, name, value)` lines the layout test compares against the C side.
pub fn rust_layout() -> Vec<(String, u64)> {
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
        ($v:ident, $n:ident) => {
            $v.push((format!("const {}", stringify!($n)), $n as u64));
        };
    }
    let mut v = Vec::new();
    s!(v, "stat_counter", StatCounter);
    o!(v, "stat_counter", StatCounter, packets);
    o!(v, "stat_counter", StatCounter, bytes);
    s!(v, "dir24_row", Dir24Row);
    s!(v, "dir8_group", Dir8Group);
    s!(v, "fib4_key", Fib4Key);
    o!(v, "fib4_key", Fib4Key, prefixlen);
    o!(v, "fib4_key", Fib4Key, addr);
    s!(v, "fib6_key", Fib6Key);
    o!(v, "fib6_key", Fib6Key, prefixlen);
    o!(v, "fib6_key", Fib6Key, addr);
    s!(v, "fib_val", FibVal);
    o!(v, "fib_val", FibVal, pl_id);
    o!(v, "fib_val", FibVal, flags);
    s!(v, "nhg", Nhg);
    o!(v, "nhg", Nhg, n_buckets);
    o!(v, "nhg", Nhg, bucket);
    s!(v, "nh", Nh);
    o!(v, "nh", Nh, ifindex);
    o!(v, "nh", Nh, smac);
    o!(v, "nh", Nh, dmac);
    o!(v, "nh", Nh, vlan);
    o!(v, "nh", Nh, flags);
    s!(v, "route_cache_entry", RouteCacheEntry);
    o!(v, "route_cache_entry", RouteCacheEntry, addr);
    o!(v, "route_cache_entry", RouteCacheEntry, pl_id);
    o!(v, "route_cache_entry", RouteCacheEntry, family);
    o!(v, "route_cache_entry", RouteCacheEntry, generation);
    s!(v, "fib_meta", FibMeta);
    o!(v, "fib_meta", FibMeta, abi_version);
    o!(v, "fib_meta", FibMeta, generation);
    s!(v, "tx_port_val", TxPortVal);
    o!(v, "tx_port_val", TxPortVal, ifindex);
    o!(v, "tx_port_val", TxPortVal, prog_fd);
    s!(v, "bench_row4", BenchRow4);
    s!(v, "bench_row6", BenchRow6);
    s!(v, "bench_state", BenchState);
    o!(v, "bench_state", BenchState, cursor);
    o!(v, "bench_state", BenchState, sink);
    c!(v, FIB_ABI_VERSION);
    c!(v, DIR24_ENTRIES_PER_ROW);
    c!(v, DIR24_ROWS);
    c!(v, DIR8_ENTRIES);
    c!(v, DIR8_MAX_GROUPS);
    c!(v, DIR_ENTRY_TBL8);
    c!(v, DIR24_TBL8);
    c!(v, PL_NO_ROUTE);
    c!(v, PL_BLACKHOLE);
    c!(v, PL_PASS);
    c!(v, PL_LOCAL);
    c!(v, PL_FIRST_DYNAMIC);
    c!(v, PATHLIST_MAX);
    c!(v, NHG_PASS);
    c!(v, NHG_MAX_BUCKETS);
    c!(v, NHG_MAX);
    c!(v, NH_MAX);
    c!(v, NH_F_VLAN);
    c!(v, STAT_MAX);
    c!(v, FIB4_MAX);
    c!(v, FIB6_MAX);
    c!(v, ROUTE_CACHE_SLOTS);
    c!(v, ENGINE4_DIR24);
    c!(v, ENGINE4_LPM);
    c!(v, BENCH_BATCH);
    c!(v, BENCH_ROWS);
    c!(v, BENCH_MEM_LINES);
    v.extend(crate::acl::abi::layout());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const C_LAYOUT: &str = include_str!(concat!(env!("OUT_DIR"), "/abi-layout.txt"));

    #[test]
    fn rust_mirrors_match_the_c_header() {
        let c: BTreeMap<String, u64> = C_LAYOUT
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        let rust = rust_layout();
        assert!(!c.is_empty(), "the C layout program printed nothing");
        for (k, v) in &rust {
            assert_eq!(
                c.get(k),
                Some(v),
                "{k}: C says {:?}, Rust says {v}",
                c.get(k)
            );
        }
        assert_eq!(
            c.len(),
            rust.len(),
            "the C side lists entries the Rust side does not check"
        );
    }

    #[test]
    fn stat_reasons_are_dense_and_named_uniquely() {
        for (i, r) in StatReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let names: std::collections::HashSet<_> =
            StatReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), StatReason::ALL.len());
    }
}
