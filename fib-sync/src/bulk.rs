//! The initial load into empty maps. DIR-24-8 is written straight into the mmapped maps in one
//! sweep over the IPv4 routes sorted by (address, length) — every prefix comes before the
//! prefixes it covers and the long prefixes of one /24 are contiguous — so each tbl24 entry is
//! written once, with its final value, and only where the map holds something else: a fresh map
//! is all zeros (`PL_NO_ROUTE`), so the unrouted third of the space costs a read, not a store.
//! Each tbl8 group is filled before its /24 links it. The IPv6 trie (one kernel insert per
//! prefix, the longest job) goes in sorted batches that the trie writer thread starts on at once
//! and the DIR-24-8 thread joins when it is done. The IPv4 table for later batches is built from
//! the same sorted run, the IPv6 table on another thread.
//!
//! ```text
//!   IPv4 (sorted) ─► sweep: open-prefix stack ─► dir24 fills (compare, store) ─┐
//!                        └─ /24 with long prefixes ─► dir8 group ─► dir24 link │
//!                 └─► Rules4 (IPv4, from the sorted run) ──► trie batches ◄────┘
//!   IPv6 (sorted) ─► Trie6Chunks: batches of 4096 ◄─ thread: trie writer
//!                 └─► thread: IPv6 table ─► joined before the next batch or when idle
//!                      (lookups binary-search the sorted routes until then)
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use fib_ebpf::abi::{DIR_ENTRY_TBL8, DIR8_ENTRIES, FibVal, PL_NO_ROUTE};

use ipnet::{IpNet, Ipv6Net};

use crate::SyncError;
use crate::dir4::Tables;
use crate::maps::Trie6Writer;
use crate::table6::Table6;

/// One IPv4 route of a bulk load: (network address, prefix length, path-list id).
pub(crate) type Route4 = (u32, u8, u32);
/// One IPv6 route of a bulk load.
pub(crate) type Route6 = (u128, u8, u32);

/// The IPv6 table being built in the background, and the sorted routes it is built from
/// (for lookups until it is joined).
pub(crate) struct PendingTables {
    pub job: JoinHandle<Table6>,
    pub v6: Arc<Vec<Route6>>,
}

impl PendingTables {
    /// The path-list id of `n` (binary search).
    pub fn get(&self, n: &Ipv6Net) -> Option<u32> {
        let k = (u128::from(n.network()), n.prefix_len());
        let i = self.v6.binary_search_by_key(&k, |r| (r.0, r.1)).ok()?;
        Some(self.v6[i].2)
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        self.v6
            .iter()
            .map(|&(a, l, v)| (IpNet::V6(Ipv6Net::new_assert(a.into(), l)), v))
    }

    pub fn join(self) -> Result<Table6, SyncError> {
        self.job
            .join()
            .map_err(|_| SyncError::Map("the table builder panicked".into()))
    }
}

/// Writes `routes` (sorted by address, then length; no duplicates) into maps that hold no
/// routes, through `sink`, in one sweep in address order: each tbl24 entry is written once with
/// its final value, and only where the map holds something else (a fresh map is all
/// `PL_NO_ROUTE`, so unrouted space costs a read); a /24 with longer prefixes gets the next
/// group number, filled completely before tbl24 links it. Returns each group's /24 and covering
/// value, by group number.
///
/// A covering prefix sorts before what it covers, so a stack of the open /24-or-shorter
/// prefixes (innermost on top) gives the value of the entries between two routes; the long
/// prefixes of a /24 are contiguous and come after every shorter prefix covering it.
pub(crate) fn load(
    routes: &[Route4],
    sink: &mut impl Tables,
    max_groups: u32,
) -> Result<Vec<(u32, u32)>, SyncError> {
    let mut groups: Vec<(u32, u32)> = Vec::new();
    // Open prefixes: (first tbl24 entry past them, value).
    let mut open: Vec<(u32, u32)> = Vec::with_capacity(33);
    // tbl24 entries below this are written.
    let mut cursor = 0u32;
    let mut i = 0;
    while i < routes.len() {
        let (addr, len, v) = routes[i];
        let idx = addr >> 8;
        advance(&mut open, &mut cursor, idx, sink);
        if len <= 24 {
            open.push((idx + (1 << (24 - len)), v));
            i += 1;
            continue;
        }
        // The long prefixes of /24 `idx`, over its covering value.
        let cover = open.last().map_or(PL_NO_ROUTE, |o| o.1);
        let mut table = [cover; DIR8_ENTRIES];
        while let Some(&(a, l, v)) = routes.get(i).filter(|r| r.0 >> 8 == idx) {
            let start = (a & 0xff) as usize;
            table[start..start + (1usize << (32 - l))].fill(v);
            i += 1;
        }
        let g = groups.len() as u32;
        if g >= max_groups {
            return Err(SyncError::Map(format!(
                "all {max_groups} tbl8 groups are in use"
            )));
        }
        for (j, &v) in table.iter().enumerate() {
            sink.store8(g, j as u8, v);
        }
        // The group is complete before its /24 links it.
        sink.store24(idx, DIR_ENTRY_TBL8 | g);
        groups.push((idx, cover));
        cursor = idx + 1;
    }
    advance(&mut open, &mut cursor, 1 << 24, sink);
    Ok(groups)
}

/// Writes the tbl24 entries from `cursor` up to `to` with the value of the innermost open prefix
/// covering each (none: `PL_NO_ROUTE`), and closes the prefixes that end by `to`.
fn advance(open: &mut Vec<(u32, u32)>, cursor: &mut u32, to: u32, sink: &mut impl Tables) {
    while *cursor < to {
        while open.last().is_some_and(|o| o.0 <= *cursor) {
            open.pop();
        }
        let (end, v) = match open.last() {
            Some(&(end, v)) => (end.min(to), v),
            None => (to, PL_NO_ROUTE),
        };
        sink.fill24(*cursor, end, v);
        *cursor = end;
    }
    while open.last().is_some_and(|o| o.0 <= to) {
        open.pop();
    }
}

/// The IPv6 trie inserts of a bulk load (sorted by address, then length), shared out in chunks:
/// the trie writer thread starts on them as soon as the IPv6 objects are written, and the thread
/// writing DIR-24-8 takes chunks as well once it is done, so both CPUs insert until the end. The
/// kernel walks the trie under its lock, but a prefix's node allocation, copy-in and the batch
/// syscall run outside it; chunks are claimed in order, so each thread's inserts still follow
/// its previous walk and a covering prefix mostly goes in before what it covers.
pub(crate) struct Trie6Chunks {
    items: Vec<(u128, u8, FibVal)>,
    next: AtomicUsize,
    err: Mutex<Option<SyncError>>,
}

impl Trie6Chunks {
    /// Prefixes per batch syscall.
    const CHUNK: usize = 4096;

    pub fn new(items: Vec<(u128, u8, FibVal)>) -> Trie6Chunks {
        Trie6Chunks {
            items,
            next: AtomicUsize::new(0),
            err: Mutex::new(None),
        }
    }

    /// Inserts chunks until none is left (or one failed); returns how many prefixes this caller
    /// inserted.
    pub fn work(&self, w: &Trie6Writer) -> usize {
        let mut n = 0;
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(from) = i.checked_mul(Self::CHUNK).filter(|&f| f < self.items.len()) else {
                return n;
            };
            let c = &self.items[from..(from + Self::CHUNK).min(self.items.len())];
            if let Err(e) = w.insert(c) {
                // No more chunks for anyone: the batch reports the error.
                self.next.store(usize::MAX / 2, Ordering::Relaxed);
                let mut err = self.err.lock().unwrap_or_else(|p| p.into_inner());
                err.get_or_insert(e);
                return n;
            }
            n += c.len();
        }
    }

    /// The first error of any chunk.
    pub fn result(&self) -> Result<(), SyncError> {
        match self.err.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Builds the IPv6 table of a bulk load (sorted routes) on another thread.
pub(crate) fn spawn_table6(v6: Arc<Vec<Route6>>) -> Result<PendingTables, SyncError> {
    let r = v6.clone();
    let job = std::thread::Builder::new()
        .name("fib-table6".into())
        .spawn(move || Table6::from_routes(&r))
        .map_err(|e| SyncError::Map(format!("spawning the table builder: {e}")))?;
    Ok(PendingTables { job, v6 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir4::image;
    use std::collections::HashMap;

    /// tbl24 and the groups in memory, as the maps hold them, with the stores counted.
    struct Mem {
        t24: Vec<u32>,
        t8: HashMap<u32, [u32; DIR8_ENTRIES]>,
        stores24: u64,
        stores8: u64,
    }

    impl Tables for Mem {
        fn load24(&self, idx: u32) -> u32 {
            self.t24[idx as usize]
        }
        fn store24(&mut self, idx: u32, value: u32) {
            self.stores24 += 1;
            self.t24[idx as usize] = value;
        }
        fn store8(&mut self, group: u32, j: u8, value: u32) {
            self.stores8 += 1;
            self.t8.entry(group).or_insert([0; DIR8_ENTRIES])[j as usize] = value;
        }
    }

    impl Mem {
        fn new() -> Mem {
            Mem {
                t24: vec![PL_NO_ROUTE; 1 << 24],
                t8: HashMap::new(),
                stores24: 0,
                stores8: 0,
            }
        }
        fn lookup(&self, a: u32) -> u32 {
            let e = self.t24[(a >> 8) as usize];
            if e & DIR_ENTRY_TBL8 != 0 {
                self.t8[&(e & !DIR_ENTRY_TBL8)][(a & 0xff) as usize]
            } else {
                e
            }
        }
    }

    fn mask(a: u32, l: u8) -> u32 {
        a & u32::MAX.checked_shl(32 - u32::from(l)).unwrap_or(0)
    }

    /// Nested random prefixes over a few /8s (lengths 0..=32, a default route), sorted and
    /// deduplicated as the bulk path hands them over.
    fn routes(seed: u64, n: usize) -> Vec<Route4> {
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let lens = [0u8, 8, 12, 16, 19, 22, 23, 24, 24, 24, 25, 26, 28, 30, 32];
        let mut v: Vec<Route4> = (0..n)
            .map(|_| {
                let r = next();
                let l = lens[(r % lens.len() as u64) as usize];
                // Three /8s, dense inside two /16s of the first so prefixes nest.
                let a = [0x0a14_0000u32, 0x2d00_0000, 0xc000_0000][(r >> 8) as usize % 3]
                    | (r >> 16) as u32 & 0x0001_ffff;
                (mask(a, l), l, 16 + (r >> 40) as u32 % 1000)
            })
            .collect();
        v.sort_by_key(|r| (r.0, r.1));
        v.dedup_by_key(|r| (r.0, r.1));
        v
    }

    fn lpm(routes: &[Route4], a: u32) -> u32 {
        routes
            .iter()
            .filter(|r| mask(a, r.1) == r.0)
            .max_by_key(|r| r.1)
            .map_or(PL_NO_ROUTE, |r| r.2)
    }

    /// Into a fresh (zeroed) tbl24 the sweep writes each routed entry once and no unrouted one
    /// (the old image copy wrote all 2^24), every group is complete before its link, and the
    /// answers equal a longest-prefix match and the reference image.
    #[test]
    fn a_fresh_load_writes_only_routed_entries_and_answers_longest_match() {
        for (seed, n, default) in [(1u64, 400, false), (7, 2000, false), (11, 300, true)] {
            let mut rs = routes(0x9E37_79B9_7F4A_7C15 ^ seed, n);
            rs.retain(|r| default || r.1 > 0);
            let mut m = Mem::new();
            let groups = load(&rs, &mut m, 4096).unwrap();
            let mut want = Vec::new();
            let v24 = image(&rs, |i, c, t| {
                want.push((i, c, *t));
                Ok(())
            })
            .unwrap();
            assert_eq!(groups.len(), want.len());
            for (g, (i, c, t)) in want.iter().enumerate() {
                assert_eq!(groups[g], (*i, *c), "group {g}: /24 and cover");
                assert_eq!(m.t24[*i as usize], DIR_ENTRY_TBL8 | g as u32);
                assert_eq!(&m.t8[&(g as u32)], t);
            }
            let routed = (0..1usize << 24)
                .filter(|&i| m.t24[i] & DIR_ENTRY_TBL8 == 0)
                .inspect(|&i| assert_eq!(m.t24[i], v24[i], "tbl24 {i:#x}"))
                .filter(|&i| m.t24[i] != PL_NO_ROUTE)
                .count() as u64;
            assert_eq!(m.stores24, routed + groups.len() as u64, "seed {seed}");
            assert_eq!(m.stores8, groups.len() as u64 * DIR8_ENTRIES as u64);
            if !default {
                assert!(m.stores24 < 1 << 23, "unrouted space is not written");
            }
            let mut x = seed;
            for k in 0..20_000u32 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let a = if k % 2 == 0 {
                    let r = rs[(x >> 33) as usize % rs.len()];
                    r.0 | (x as u32 & u32::MAX.checked_shr(u32::from(r.1)).unwrap_or(0))
                } else {
                    (x >> 32) as u32
                };
                assert_eq!(m.lookup(a), lpm(&rs, a), "{}", std::net::Ipv4Addr::from(a));
            }
        }
    }

    /// tbl24 entries that hold something else (not links) are overwritten: the sweep compares
    /// with what the map holds, it does not assume zeros.
    #[test]
    fn a_load_over_stale_tbl24_values_still_answers_longest_match() {
        let rs = routes(0x5151, 1500);
        let mut fresh = Mem::new();
        load(&rs, &mut fresh, 4096).unwrap();
        let mut m = Mem::new();
        for (i, e) in m.t24.iter_mut().enumerate() {
            *e = if i % 3 == 0 { 0 } else { 1 + (i as u32 % 7) };
        }
        load(&rs, &mut m, 4096).unwrap();
        assert!(m.t24 == fresh.t24);
        assert_eq!(m.t8, fresh.t8);
    }

    #[test]
    fn running_out_of_groups_is_an_error() {
        let rs: Vec<Route4> = (0..3u32)
            .map(|i| (0x0a00_0001 + (i << 8), 32, 20))
            .collect();
        assert!(load(&rs, &mut Mem::new(), 2).is_err());
        assert_eq!(load(&rs, &mut Mem::new(), 3).unwrap().len(), 3);
    }
}
