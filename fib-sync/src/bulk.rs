//! The initial load into empty maps. DIR-24-8 is written straight into the mmapped maps in one
//! sweep ([`fib_ebpf::dir24::load_sorted`]) over the IPv4 routes sorted by (address, length) — every prefix comes before the
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

use fib_ebpf::abi::FibVal;

use ipnet::{IpNet, Ipv6Net};

use crate::SyncError;
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
