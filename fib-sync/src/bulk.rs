//! The initial load into empty maps: a flat DIR-24-8 image built in a plain array from the IPv4
//! routes sorted by (address, length) — so every prefix is painted before the prefixes it covers and
//! the long prefixes of one /24 are contiguous — written groups first and tbl24 after (the array is
//! freed then: later batches read tbl24 back from the maps). The IPv4 table for later batches is
//! built from the same sorted run (while the IPv6 trie writer still runs), the IPv6 table on another
//! thread.
//!
//! ```text
//!   routes (sorted) ─► val24[16M] painted ─► tbl8 groups in /24 order ─► dir8 stores ─► dir24 stores
//!                   └─► Rules4 (IPv4, from the sorted run)
//!   IPv6 (sorted)   ─► thread: IPv6 table ─► joined before the next batch or when idle
//!                      (lookups binary-search the sorted routes until then)
//! ```

use std::sync::Arc;
use std::thread::JoinHandle;

use fib_ebpf::abi::DIR_ENTRY_TBL8;

use ipnet::{IpNet, Ipv6Net};

use crate::SyncError;
use crate::dir4::{Tables, image};
use crate::types::PrefixMap;

/// One IPv4 route of a bulk load: (network address, prefix length, path-list id).
pub(crate) type Route4 = (u32, u8, u32);
/// One IPv6 route of a bulk load.
pub(crate) type Route6 = (u128, u8, u32);

/// The IPv6 table being built in the background, and the sorted routes it is built from
/// (for lookups until it is joined).
pub(crate) struct PendingTables {
    pub job: JoinHandle<PrefixMap<Ipv6Net, u32>>,
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

    pub fn join(self) -> Result<PrefixMap<Ipv6Net, u32>, SyncError> {
        self.job
            .join()
            .map_err(|_| SyncError::Map("the table builder panicked".into()))
    }
}

/// Writes `routes` (sorted by address, then length; no duplicates) into empty maps through `sink`:
/// every tbl8 group, then the whole tbl24. Returns each group's /24 and covering value, by group
/// number.
pub(crate) fn load(
    routes: &[Route4],
    sink: &mut impl Tables,
    max_groups: u32,
) -> Result<Vec<(u32, u32)>, SyncError> {
    if routes.is_empty() {
        return Ok(Vec::new()); // the maps are empty already
    }
    let mut groups: Vec<(u32, u32)> = Vec::new();
    let mut val24 = image(routes, |idx, cover, table| {
        let g = groups.len() as u32;
        if g >= max_groups {
            return Err(SyncError::Map(format!(
                "all {max_groups} tbl8 groups are in use"
            )));
        }
        for (j, &v) in table.iter().enumerate() {
            sink.store8(g, j as u8, v);
        }
        groups.push((idx, cover));
        Ok(())
    })?;
    for (g, &(idx, _)) in groups.iter().enumerate() {
        val24[idx as usize] = DIR_ENTRY_TBL8 | g as u32;
    }
    // Groups are complete before any tbl24 entry links them.
    for (idx, &e) in val24.iter().enumerate() {
        sink.store24(idx as u32, e);
    }
    Ok(groups)
}

/// Builds the IPv6 table of a bulk load (sorted routes) on another thread.
pub(crate) fn spawn_table6(v6: Arc<Vec<Route6>>) -> Result<PendingTables, SyncError> {
    let r = v6.clone();
    let job = std::thread::Builder::new()
        .name("fib-table6".into())
        .spawn(move || {
            let mut t = PrefixMap::default();
            t.reserve(r.len());
            t.extend(
                r.iter()
                    .map(|&(a, l, v)| (Ipv6Net::new_assert(a.into(), l), v)),
            );
            t
        })
        .map_err(|e| SyncError::Map(format!("spawning the table builder: {e}")))?;
    Ok(PendingTables { job, v6 })
}
