//! The initial load into empty maps: a flat DIR-24-8 image built in a plain array from the IPv4
//! routes sorted by (address, length) — so every prefix is painted before the prefixes it covers and
//! the long prefixes of one /24 are contiguous — written groups first and tbl24 after (the array is
//! freed then: later batches read tbl24 back from the maps). The tables of prefixes for later
//! batches are built from the same sorted routes on another thread.
//!
//! ```text
//!   routes (sorted) ─► val24[16M] painted ─► tbl8 groups in /24 order ─► dir8 stores ─► dir24 stores
//!                   └─► thread: Rules4 (IPv4, from the sorted run) and the IPv6 table
//!                       ─► joined before the next batch (lookups binary-search the routes until then)
//! ```

use std::sync::Arc;
use std::thread::JoinHandle;

use fib_ebpf::abi::DIR_ENTRY_TBL8;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::SyncError;
use crate::dir4::{Rules4, Tables, image};
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

/// What the background builder hands back: the tables of prefixes.
type Built = (Rules4, PrefixMap<Ipv6Net, u32>);

/// Tables of prefixes being built in the background.
pub(crate) struct PendingTables {
    pub job: JoinHandle<Built>,
    /// The routes loaded, for lookups until the job is joined.
    pub routes: Arc<Loaded>,
}

impl PendingTables {
    pub fn join(self) -> Result<Built, SyncError> {
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

/// Builds the tables of prefixes of a bulk load on another thread.
pub(crate) fn spawn_tables(routes: Arc<Loaded>) -> Result<PendingTables, SyncError> {
    let r = routes.clone();
    let job = std::thread::Builder::new()
        .name("fib-tables".into())
        .spawn(move || {
            let v4 = Rules4::from_sorted(&r.v4);
            let mut v6 = PrefixMap::default();
            v6.reserve(r.v6.len());
            v6.extend(
                r.v6.iter()
                    .map(|&(a, l, v)| (Ipv6Net::new_assert(a.into(), l), v)),
            );
            (v4, v6)
        })
        .map_err(|e| SyncError::Map(format!("spawning the table builder: {e}")))?;
    Ok(PendingTables { job, routes })
}
