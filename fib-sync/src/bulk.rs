//! The initial load into empty maps: a flat DIR-24-8 image built in plain arrays from the IPv4
//! routes sorted by (address, length) — so every prefix is painted before the prefixes it covers and
//! the long prefixes of one /24 are contiguous — written groups first and tbl24 after; the
//! incremental shadow (`Dir24`) for later batches is built from the same routes on another thread,
//! inserting the long prefixes first, in address order, so it numbers the groups identically.
//!
//! ```text
//!   routes (sorted) ─► val24[16M] painted ─► tbl8 groups in /24 order ─► dir8 stores ─► dir24 stores
//!                   └─► thread: Dir24 inserts (long prefixes in group order, then short), table of
//!                       prefixes ─► joined before the next batch (lookups binary-search the routes until then)
//! ```

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fib_ebpf::abi::{DIR_ENTRY_TBL8, DIR8_ENTRIES, PL_NO_ROUTE};
use fib_ebpf::dir24::{Dir24, Dir24Sink, NullSink};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::SyncError;
use crate::types::PrefixMap;

/// One IPv4 route of a bulk load: (network address, prefix length, path-list id).
pub(crate) type Route4 = (u32, u8, u32);
/// One IPv6 route of a bulk load.
pub(crate) type Route6 = (u128, u8, u32);

/// The routes of a bulk load, each family sorted by (address, length), without duplicates.
pub(crate) struct Loaded {
    pub v4: Vec<Route4>,
    pub v6: Vec<Route6>,
}

impl Loaded {
    /// The path-list id of `p` (binary search).
    pub fn get(&self, p: &IpNet) -> Option<u32> {
        match p {
            IpNet::V4(n) => {
                let k = (u32::from(n.network()), n.prefix_len());
                let i = self.v4.binary_search_by_key(&k, |r| (r.0, r.1)).ok()?;
                Some(self.v4[i].2)
            }
            IpNet::V6(n) => {
                let k = (u128::from(n.network()), n.prefix_len());
                let i = self.v6.binary_search_by_key(&k, |r| (r.0, r.1)).ok()?;
                Some(self.v6[i].2)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|&(a, l, v)| (IpNet::V4(Ipv4Net::new_assert(a.into(), l)), v));
        let v6 = self
            .v6
            .iter()
            .map(|&(a, l, v)| (IpNet::V6(Ipv6Net::new_assert(a.into(), l)), v));
        v4.chain(v6)
    }
}

/// What the background builder hands back: the incremental shadow and the table of prefixes.
type Built = (Dir24, PrefixMap<IpNet, u32>);

/// A shadow being built in the background, and what it must agree with.
pub(crate) struct PendingShadow {
    pub job: JoinHandle<Result<Built, SyncError>>,
    /// The /24 index of each tbl8 group the maps hold, by group number.
    pub groups: Vec<u32>,
    /// The routes loaded, for lookups until the job is joined.
    pub routes: Arc<Loaded>,
}

impl PendingShadow {
    pub fn join(self) -> Result<Built, SyncError> {
        let (d, table) = self
            .job
            .join()
            .map_err(|_| SyncError::Map("the DIR-24-8 shadow builder panicked".into()))??;
        for (g, &idx) in self.groups.iter().enumerate() {
            if d.entry24(idx) != DIR_ENTRY_TBL8 | g as u32 {
                return Err(SyncError::Map(format!(
                    "the DIR-24-8 shadow numbered the group of /24 {idx:#x} differently from the maps"
                )));
            }
        }
        Ok((d, table))
    }
}

/// Writes `routes` (sorted by address, then length; no duplicates) into empty maps through `sink`:
/// every tbl8 group, then the whole tbl24. Returns the /24 index of each group.
pub(crate) fn load(
    routes: &[Route4],
    sink: &mut impl Dir24Sink,
    max_groups: u32,
) -> Result<Vec<u32>, SyncError> {
    debug_assert!(routes.is_sorted_by_key(|r| (r.0, r.1)));
    if routes.is_empty() {
        return Ok(Vec::new()); // the maps are empty already
    }
    let mut val24 = vec![PL_NO_ROUTE; 1 << 24];
    let mut groups: Vec<u32> = Vec::new();
    let mut table = [PL_NO_ROUTE; DIR8_ENTRIES];
    // The group being painted: (its /24, its number).
    let mut open: Option<(u32, u32)> = None;
    let mut flush = |open: Option<(u32, u32)>, table: &[u32; DIR8_ENTRIES], val24: &mut [u32]| {
        if let Some((idx, g)) = open {
            for (j, &v) in table.iter().enumerate() {
                sink.store8(g, j as u8, v);
            }
            val24[idx as usize] = DIR_ENTRY_TBL8 | g;
        }
    };
    for &(addr, len, v) in routes {
        if len <= 24 {
            // A prefix covering a /24 sorts before every longer prefix inside it, so no group of
            // the range is open or will be painted from a stale value.
            let start = (addr >> 8) as usize;
            val24[start..start + (1usize << (24 - len))].fill(v);
            continue;
        }
        let idx = addr >> 8;
        if open.map(|(i, _)| i) != Some(idx) {
            flush(open, &table, &mut val24);
            let g = groups.len() as u32;
            if g >= max_groups {
                return Err(SyncError::Map(format!(
                    "all {max_groups} tbl8 groups are in use"
                )));
            }
            table = [val24[idx as usize]; DIR8_ENTRIES];
            groups.push(idx);
            open = Some((idx, g));
        }
        let start = (addr & 0xff) as usize;
        table[start..start + (1usize << (32 - len))].fill(v);
    }
    flush(open, &table, &mut val24);
    // Groups are complete before any tbl24 entry links them.
    for (idx, &e) in val24.iter().enumerate() {
        sink.store24(idx as u32, e);
    }
    Ok(groups)
}

/// Builds the incremental shadow of the IPv4 routes and the table of all prefixes on another
/// thread; `groups` is what [`load`] returned.
pub(crate) fn spawn_shadow(
    routes: Arc<Loaded>,
    groups: Vec<u32>,
    max_groups: u32,
    quarantine: Duration,
) -> Result<PendingShadow, SyncError> {
    let r = routes.clone();
    let job = std::thread::Builder::new()
        .name("dir24-shadow".into())
        .spawn(move || {
            let mut d = Dir24::new(max_groups);
            d.set_quarantine_time(quarantine);
            let long = r.v4.iter().filter(|r| r.1 > 24);
            let short = r.v4.iter().filter(|r| r.1 <= 24);
            for &(a, l, v) in long.chain(short) {
                d.insert(&mut NullSink, a.into(), l, v)
                    .map_err(|e| SyncError::Map(e.to_string()))?;
            }
            let mut table = PrefixMap::default();
            table.reserve(r.len());
            table.extend(r.iter());
            Ok((d, table))
        })
        .map_err(|e| SyncError::Map(format!("spawning the shadow builder: {e}")))?;
    Ok(PendingShadow {
        job,
        groups,
        routes,
    })
}
