//! Typed access to the forwarder's maps, for fib-sync and the tests.
//!
//! ```text
//!   FibMaps ──mmap, atomic store (Release)──► dir24 (u16) / dir8 / pathlist (u32)   (single aligned entries)
//!           ──mmap, AtomicU64──────────────────► meta.generation          (bumped per committed batch)
//!           ──bpf(MAP_UPDATE/DELETE)───────────► fib4 / fib6 / nhg / nh / tx_port
//!           ◄─bpf(MAP_LOOKUP), summed over CPUs─ stats / nh_stats
//! ```
//!
//! The handle is opened either from a loaded [`crate::Forwarder`] (fds duplicated) or from the maps
//! pinned under `/sys/fs/bpf/<instance>/` by another process. It does not enforce the order of a
//! batch (nh, then nhg, then pathlist, then fib entries, then deletes): that is fib-sync's job; it
//! only guarantees that each single write is one the forwarder can observe safely.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::Ordering;

use aya::maps::MapData;
use thiserror::Error;

use crate::abi::*;
use crate::dir24::{Dir24Sink, Load8};
use crate::sys::{self, Mmap, bytes_of};

/// Maps the loader pins under `/sys/fs/bpf/<instance>/`.
pub const PINNED_MAPS: [&str; 12] = [
    "stats",
    "nh_stats",
    "meta",
    "dir24",
    "dir8",
    "fib4",
    "fib6",
    "pathlist",
    "nhg",
    "nh",
    "tx_port",
    "route_cache",
];

#[derive(Debug, Error)]
pub enum MapsError {
    #[error("map {map}: {source}")]
    Open {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map {map}: {op}: {source}")]
    Io {
        map: &'static str,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{what} {id} is out of range (max {max})")]
    OutOfRange {
        what: &'static str,
        id: u64,
        max: u64,
    },
    #[error("nexthop group with {0} buckets (must be 1..={NHG_MAX_BUCKETS})")]
    Buckets(usize),
    #[error("prefix length {len} is longer than {max}")]
    PrefixLen { len: u8, max: u8 },
}

fn io_err(map: &'static str, op: &'static str) -> impl FnOnce(io::Error) -> MapsError {
    move |source| MapsError::Io { map, op, source }
}

/// Open handles on every forwarder map, with the mmapable arrays mapped.
pub struct FibMaps {
    stats: MapData,
    nh_stats: MapData,
    fib4: MapData,
    fib6: MapData,
    nhg: MapData,
    nh: MapData,
    tx_port: MapData,
    route_cache: MapData,
    meta_mm: Mmap,
    dir24_mm: Mmap,
    dir8_mm: Mmap,
    pathlist_mm: Mmap,
    ncpus: usize,
    dir8_groups: u32,
}

impl FibMaps {
    /// Opens the maps through `open(name)`; used by the loader (duplicated fds) and `open_pinned`.
    pub(crate) fn open_with(
        mut open: impl FnMut(&'static str) -> Result<MapData, aya::maps::MapError>,
    ) -> Result<FibMaps, MapsError> {
        let mut get =
            |map: &'static str| open(map).map_err(|source| MapsError::Open { map, source });
        let meta = get("meta")?;
        let dir24 = get("dir24")?;
        let dir8 = get("dir8")?;
        let pathlist = get("pathlist")?;
        let dir8_groups = dir8
            .info()
            .map_err(|source| MapsError::Open {
                map: "dir8",
                source,
            })?
            .max_entries();
        let mm = |md: &MapData, map: &'static str, len: usize| {
            Mmap::new(md.fd().as_fd(), len).map_err(io_err(map, "mmap"))
        };
        let meta_mm = mm(&meta, "meta", 4096)?;
        let dir24_mm = mm(&dir24, "dir24", DIR24_ROWS as usize * size_of::<Dir24Row>())?;
        let dir8_mm = mm(&dir8, "dir8", dir8_groups as usize * size_of::<Dir8Group>())?;
        let pathlist_mm = mm(&pathlist, "pathlist", PATHLIST_MAX as usize * 8)?;
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| MapsError::Io {
            map: "stats",
            op: "possible cpus",
            source: e,
        })?;
        Ok(FibMaps {
            stats: get("stats")?,
            nh_stats: get("nh_stats")?,
            fib4: get("fib4")?,
            fib6: get("fib6")?,
            nhg: get("nhg")?,
            nh: get("nh")?,
            tx_port: get("tx_port")?,
            route_cache: get("route_cache")?,
            meta_mm,
            dir24_mm,
            dir8_mm,
            pathlist_mm,
            ncpus,
            dir8_groups,
        })
    }

    /// Opens the maps another process pinned under `dir` (e.g. `/sys/fs/bpf/<instance>`). Does not
    /// check the ABI version: [`crate::loader::check_pinned_abi`] does.
    pub fn open_pinned(dir: &Path) -> Result<FibMaps, MapsError> {
        Self::open_with(|name| MapData::from_pin(dir.join(name)))
    }

    /// Number of tbl8 groups the `dir8` map holds.
    pub fn dir8_groups(&self) -> u32 {
        self.dir8_groups
    }

    // ---- meta ----

    pub fn abi_version(&self) -> u32 {
        self.meta_mm.u32_at(0).load(Ordering::Acquire)
    }

    pub(crate) fn set_abi_version(&self, v: u32) {
        self.meta_mm.u32_at(0).store(v, Ordering::Release)
    }

    /// The FIB generation route-cache entries are validated against. Fresh maps start at 1: 0 is
    /// never valid (a zeroed per-CPU cache value must read as a miss).
    pub fn generation(&self) -> u64 {
        self.meta_mm.u64_at(8).load(Ordering::Acquire)
    }

    /// Bumps the generation after a batch of prefix changes is committed: every route-cache entry
    /// filled before is then ignored. Returns the new generation.
    pub fn bump_generation(&self) -> u64 {
        self.meta_mm.u64_at(8).fetch_add(1, Ordering::AcqRel) + 1
    }

    // ---- DIR-24-8 ----

    /// Stores tbl24 entry `idx` (the /24 number, `addr >> 8`). `value` is a path-list id or
    /// `DIR_ENTRY_TBL8 | group`; the map holds it as one aligned u16 (see [`dir24_entry`]).
    pub fn dir24_store(&self, idx: u32, value: u32) {
        self.dir24_mm
            .u16_at(idx as usize * 2)
            .store(dir24_entry(value), Ordering::Release)
    }

    /// Stores `value` (as [`FibMaps::dir24_store`] takes it) into the tbl24 entries `from..to`
    /// that hold something else, one atomic store each; returns how many it stored. A fresh map
    /// is all zeros (`PL_NO_ROUTE`), so filling a range without routes there stores nothing.
    pub fn dir24_fill(&self, from: u32, to: u32, value: u32) -> u64 {
        if from >= to {
            return 0;
        }
        let v = dir24_entry(value);
        let mut n = 0;
        for e in self
            .dir24_mm
            .u16_slice(from as usize * 2, (to - from) as usize)
        {
            if e.load(Ordering::Relaxed) != v {
                e.store(v, Ordering::Release);
                n += 1;
            }
        }
        n
    }

    /// tbl24 entry `idx` in the 32-bit form [`FibMaps::dir24_store`] takes.
    pub fn dir24_load(&self, idx: u32) -> u32 {
        let e = self
            .dir24_mm
            .u16_at(idx as usize * 2)
            .load(Ordering::Acquire);
        if e & DIR24_TBL8 != 0 {
            DIR_ENTRY_TBL8 | u32::from(e & !DIR24_TBL8)
        } else {
            u32::from(e)
        }
    }

    /// Stores entry `j` of tbl8 group `group`.
    pub fn dir8_store(&self, group: u32, j: u8, value: u32) {
        self.dir8_mm
            .u32_at(group as usize * size_of::<Dir8Group>() + j as usize * 4)
            .store(value, Ordering::Release)
    }

    pub fn dir8_load(&self, group: u32, j: u8) -> u32 {
        self.dir8_mm
            .u32_at(group as usize * size_of::<Dir8Group>() + j as usize * 4)
            .load(Ordering::Acquire)
    }

    // ---- path-lists, groups, next-hops ----

    /// Points path-list `pl_id` at group `nhg_id` (one atomic store: every prefix of the path-list
    /// moves at once).
    pub fn pathlist_set(&self, pl_id: u32, nhg_id: u32) -> Result<(), MapsError> {
        if pl_id >= PATHLIST_MAX {
            return Err(MapsError::OutOfRange {
                what: "path-list",
                id: pl_id.into(),
                max: PATHLIST_MAX.into(),
            });
        }
        self.pathlist_mm
            .u32_at(pl_id as usize * 8)
            .store(nhg_id, Ordering::Release);
        Ok(())
    }

    pub fn pathlist_get(&self, pl_id: u32) -> Result<u32, MapsError> {
        if pl_id >= PATHLIST_MAX {
            return Err(MapsError::OutOfRange {
                what: "path-list",
                id: pl_id.into(),
                max: PATHLIST_MAX.into(),
            });
        }
        Ok(self
            .pathlist_mm
            .u32_at(pl_id as usize * 8)
            .load(Ordering::Acquire))
    }

    /// Writes group `id` with the given bucket table (nh ids). Write only to an id no path-list
    /// points at (groups are immutable once published).
    pub fn nhg_write(&self, id: u32, buckets: &[u32]) -> Result<(), MapsError> {
        if id >= NHG_MAX {
            return Err(MapsError::OutOfRange {
                what: "nexthop group",
                id: id.into(),
                max: NHG_MAX.into(),
            });
        }
        if buckets.is_empty() || buckets.len() > NHG_MAX_BUCKETS {
            return Err(MapsError::Buckets(buckets.len()));
        }
        let mut g = Nhg {
            n_buckets: buckets.len() as u32,
            _pad: 0,
            bucket: [0; NHG_MAX_BUCKETS],
        };
        g.bucket[..buckets.len()].copy_from_slice(buckets);
        sys::update(
            self.nhg.fd().as_fd(),
            bytes_of(&id),
            bytes_of(&g),
            sys::BPF_ANY,
        )
        .map_err(io_err("nhg", "update"))
    }

    /// Reads group `id` back (bucket table).
    pub fn nhg_read(&self, id: u32) -> Result<Vec<u32>, MapsError> {
        let mut g = Nhg {
            n_buckets: 0,
            _pad: 0,
            bucket: [0; NHG_MAX_BUCKETS],
        };
        // SAFETY: Nhg is plain-old-data; the kernel fills exactly size_of::<Nhg>() bytes.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(&mut g as *mut Nhg as *mut u8, size_of::<Nhg>())
        };
        sys::lookup(self.nhg.fd().as_fd(), bytes_of(&id), buf).map_err(io_err("nhg", "lookup"))?;
        let n = (g.n_buckets as usize).min(NHG_MAX_BUCKETS);
        Ok(g.bucket[..n].to_vec())
    }

    /// Writes next-hop `id`. Write only to an id no group points at.
    pub fn nh_write(&self, id: u32, nh: &Nh) -> Result<(), MapsError> {
        if id >= NH_MAX {
            return Err(MapsError::OutOfRange {
                what: "next-hop",
                id: id.into(),
                max: NH_MAX.into(),
            });
        }
        sys::update(
            self.nh.fd().as_fd(),
            bytes_of(&id),
            bytes_of(nh),
            sys::BPF_ANY,
        )
        .map_err(io_err("nh", "update"))
    }

    /// Makes `ifindex` a redirect target (the device must exist in the caller's namespace).
    pub fn tx_port_add(&self, ifindex: u32) -> Result<(), MapsError> {
        let v = TxPortVal {
            ifindex,
            prog_fd: 0,
        };
        sys::update(
            self.tx_port.fd().as_fd(),
            bytes_of(&ifindex),
            bytes_of(&v),
            sys::BPF_ANY,
        )
        .map_err(io_err("tx_port", "update"))
    }

    pub fn tx_port_remove(&self, ifindex: u32) -> Result<(), MapsError> {
        sys::delete(self.tx_port.fd().as_fd(), bytes_of(&ifindex))
            .map_err(io_err("tx_port", "delete"))
    }

    // ---- LPM tries ----

    pub fn fib4_insert(&self, addr: Ipv4Addr, len: u8, val: FibVal) -> Result<(), MapsError> {
        let key = fib4_key(addr, len)?;
        sys::update(
            self.fib4.fd().as_fd(),
            bytes_of(&key),
            bytes_of(&val),
            sys::BPF_ANY,
        )
        .map_err(io_err("fib4", "update"))
    }

    pub fn fib4_remove(&self, addr: Ipv4Addr, len: u8) -> Result<(), MapsError> {
        let key = fib4_key(addr, len)?;
        sys::delete(self.fib4.fd().as_fd(), bytes_of(&key)).map_err(io_err("fib4", "delete"))
    }

    pub fn fib6_insert(&self, addr: Ipv6Addr, len: u8, val: FibVal) -> Result<(), MapsError> {
        let key = fib6_key(addr, len)?;
        sys::update(
            self.fib6.fd().as_fd(),
            bytes_of(&key),
            bytes_of(&val),
            sys::BPF_ANY,
        )
        .map_err(io_err("fib6", "update"))
    }

    pub fn fib6_remove(&self, addr: Ipv6Addr, len: u8) -> Result<(), MapsError> {
        let key = fib6_key(addr, len)?;
        sys::delete(self.fib6.fd().as_fd(), bytes_of(&key)).map_err(io_err("fib6", "delete"))
    }

    /// Inserts or replaces many IPv4 trie entries with `BPF_MAP_UPDATE_BATCH` (one syscall per
    /// batch instead of one per prefix; one call per prefix on kernels without trie batches). Sorted
    /// input (by address, shorter first) keeps the kernel's trie walk in cache.
    pub fn fib4_insert_batch(&self, items: &[(Ipv4Addr, u8, FibVal)]) -> Result<(), MapsError> {
        let keys = items
            .iter()
            .map(|&(a, l, _)| fib4_key(a, l))
            .collect::<Result<Vec<_>, _>>()?;
        let vals: Vec<FibVal> = items.iter().map(|x| x.2).collect();
        trie_update_batch(self.fib4.fd().as_fd(), "fib4", &keys, &vals)
    }

    /// Removes many IPv4 trie entries (every one must be present) with `BPF_MAP_DELETE_BATCH`.
    pub fn fib4_remove_batch(&self, items: &[(Ipv4Addr, u8)]) -> Result<(), MapsError> {
        let keys = items
            .iter()
            .map(|&(a, l)| fib4_key(a, l))
            .collect::<Result<Vec<_>, _>>()?;
        trie_delete_batch(self.fib4.fd().as_fd(), "fib4", &keys)
    }

    /// IPv6 counterpart of [`FibMaps::fib4_insert_batch`].
    pub fn fib6_insert_batch(&self, items: &[(Ipv6Addr, u8, FibVal)]) -> Result<(), MapsError> {
        let keys = items
            .iter()
            .map(|&(a, l, _)| fib6_key(a, l))
            .collect::<Result<Vec<_>, _>>()?;
        let vals: Vec<FibVal> = items.iter().map(|x| x.2).collect();
        trie_update_batch(self.fib6.fd().as_fd(), "fib6", &keys, &vals)
    }

    /// IPv6 counterpart of [`FibMaps::fib4_remove_batch`].
    pub fn fib6_remove_batch(&self, items: &[(Ipv6Addr, u8)]) -> Result<(), MapsError> {
        let keys = items
            .iter()
            .map(|&(a, l)| fib6_key(a, l))
            .collect::<Result<Vec<_>, _>>()?;
        trie_delete_batch(self.fib6.fd().as_fd(), "fib6", &keys)
    }

    // ---- stats ----

    fn percpu_sum(
        &self,
        md: &MapData,
        map: &'static str,
        key: u32,
    ) -> Result<StatCounter, MapsError> {
        let mut buf = vec![0u8; 16 * self.ncpus];
        sys::lookup(md.fd().as_fd(), bytes_of(&key), &mut buf).map_err(io_err(map, "lookup"))?;
        let mut sum = StatCounter::default();
        for c in buf.chunks_exact(16) {
            sum.packets += u64::from_ne_bytes(c[0..8].try_into().expect("8 bytes"));
            sum.bytes += u64::from_ne_bytes(c[8..16].try_into().expect("8 bytes"));
        }
        Ok(sum)
    }

    /// Per-reason counters summed over CPUs.
    pub fn stats(&self) -> Result<Vec<(StatReason, StatCounter)>, MapsError> {
        StatReason::ALL
            .iter()
            .map(|&r| Ok((r, self.percpu_sum(&self.stats, "stats", r as u32)?)))
            .collect()
    }

    /// One reason's counters summed over CPUs.
    pub fn stat(&self, reason: StatReason) -> Result<StatCounter, MapsError> {
        self.percpu_sum(&self.stats, "stats", reason as u32)
    }

    /// Frames forwarded through next-hop `id`, summed over CPUs.
    pub fn nh_stats(&self, id: u32) -> Result<StatCounter, MapsError> {
        self.percpu_sum(&self.nh_stats, "nh_stats", id)
    }

    /// The route cache map (for inspection in tests).
    pub fn route_cache_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.route_cache.fd().as_fd()
    }
}

/// Batched trie update, falling back to one call per element where the kernel has no batch op.
fn trie_update_batch<K: aya::Pod, V: aya::Pod>(
    fd: std::os::fd::BorrowedFd<'_>,
    map: &'static str,
    keys: &[K],
    vals: &[V],
) -> Result<(), MapsError> {
    if keys.is_empty() {
        return Ok(());
    }
    match sys::update_batch(
        fd,
        sys::slice_bytes(keys),
        sys::slice_bytes(vals),
        keys.len(),
    ) {
        Err(e) if sys::batch_unsupported(&e) => {
            for (k, v) in keys.iter().zip(vals) {
                sys::update(fd, bytes_of(k), bytes_of(v), sys::BPF_ANY)
                    .map_err(io_err(map, "update"))?;
            }
            Ok(())
        }
        r => r.map_err(io_err(map, "update batch")),
    }
}

/// Batched trie delete, with the same fallback.
fn trie_delete_batch<K: aya::Pod>(
    fd: std::os::fd::BorrowedFd<'_>,
    map: &'static str,
    keys: &[K],
) -> Result<(), MapsError> {
    if keys.is_empty() {
        return Ok(());
    }
    match sys::delete_batch(fd, sys::slice_bytes(keys), keys.len()) {
        Err(e) if sys::batch_unsupported(&e) => {
            for k in keys {
                sys::delete(fd, bytes_of(k)).map_err(io_err(map, "delete"))?;
            }
            Ok(())
        }
        r => r.map_err(io_err(map, "delete batch")),
    }
}

/// The 16-bit map form of a tbl24 entry. Path-list ids are below `PATHLIST_MAX` (= `DIR24_TBL8`,
/// enforced by `pathlist_set`) and groups below `DIR8_MAX_GROUPS` (enforced by the `Dir24` owner),
/// so every value fits; one that does not is a caller bug, stored as "pass to kernel" (the kernel
/// then routes those packets) and logged rather than aliased to another path-list.
pub fn dir24_entry(value: u32) -> u16 {
    let (payload, flag) = if value & DIR_ENTRY_TBL8 != 0 {
        (value & !DIR_ENTRY_TBL8, DIR24_TBL8)
    } else {
        (value, 0)
    };
    if payload >= u32::from(DIR24_TBL8) {
        debug_assert!(false, "tbl24 value {value:#x} does not fit 15 bits");
        tracing::error!(
            value,
            "tbl24 value does not fit 15 bits; storing pass-to-kernel"
        );
        return PL_PASS as u16;
    }
    payload as u16 | flag
}

fn fib4_key(addr: Ipv4Addr, len: u8) -> Result<Fib4Key, MapsError> {
    if len > 32 {
        return Err(MapsError::PrefixLen { len, max: 32 });
    }
    Ok(Fib4Key {
        prefixlen: len.into(),
        addr: addr.octets(),
    })
}

fn fib6_key(addr: Ipv6Addr, len: u8) -> Result<Fib6Key, MapsError> {
    if len > 128 {
        return Err(MapsError::PrefixLen { len, max: 128 });
    }
    Ok(Fib6Key {
        prefixlen: len.into(),
        addr: addr.octets(),
    })
}

impl Dir24Sink for FibMaps {
    fn load24(&self, idx: u32) -> u32 {
        self.dir24_load(idx)
    }
    fn store24(&mut self, idx: u32, value: u32) {
        self.dir24_store(idx, value)
    }
    fn store8(&mut self, group: u32, j: u8, value: u32) {
        self.dir8_store(group, j, value)
    }
    fn fill24(&mut self, from: u32, to: u32, value: u32) {
        self.dir24_fill(from, to, value);
    }
}

impl Dir24Sink for &FibMaps {
    fn load24(&self, idx: u32) -> u32 {
        self.dir24_load(idx)
    }
    fn store24(&mut self, idx: u32, value: u32) {
        self.dir24_store(idx, value)
    }
    fn store8(&mut self, group: u32, j: u8, value: u32) {
        self.dir8_store(group, j, value)
    }
    fn fill24(&mut self, from: u32, to: u32, value: u32) {
        self.dir24_fill(from, to, value);
    }
}

impl Load8 for FibMaps {
    fn load8(&self, group: u32, j: u8) -> u32 {
        self.dir8_load(group, j)
    }
}

impl Load8 for &FibMaps {
    fn load8(&self, group: u32, j: u8) -> u32 {
        self.dir8_load(group, j)
    }
}
