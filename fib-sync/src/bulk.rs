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

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use crate::SyncError;
use crate::maps::Trie6Writer;
use crate::table6::Table6;
use crate::types::{Route, RouteAction};

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

/// An IPv4 route of a [`BulkLoad`]: address << 32 | length << 24 | position, action index.
pub(crate) type Key4 = (u64, u32);
/// An IPv6 route of a [`BulkLoad`]: address, length, position, action index.
pub(crate) type Key6 = (u128, u8, u32, u32);

/// The prefix part of a [`Key4`]'s first field (the position goes in the low 24 bits).
fn key4(n: Ipv4Net) -> u64 {
    u64::from(u32::from(n.network())) << 32 | u64::from(n.prefix_len()) << 24
}

/// The routes of an initial load, gathered while the RIB fills and written in one bulk load at
/// its end ([`crate::FibSync::apply_load`]). Compact: 16 bytes per IPv4 route and 32 per IPv6
/// route in arrival order, each naming one of the distinct actions (next-hop sets are told apart
/// by allocation: the RIB interns them), against ~50 bytes for a [`Route`] and as much again for
/// the caller's own change record. The entries are the bulk load's sort keys, so the load sorts
/// them in place instead of building keys from a list of routes.
///
/// The last route for a prefix wins; a withdrawal as the last removes the prefix.
#[derive(Debug)]
pub struct BulkLoad {
    /// Distinct actions by index; index 0 is `None` (a withdrawal).
    actions: Vec<Option<RouteAction>>,
    /// Indexes of forwarding sets by allocation, and the last one looked up (runs of routes share
    /// one).
    by_set: FxHashMap<usize, u32>,
    last_set: Option<(usize, u32)>,
    /// Indexes of `Blackhole`, `PassToKernel` and `Local` (0 until first seen).
    kinds: [u32; 3],
    pub(crate) v4: Vec<Key4>,
    pub(crate) v6: Vec<Key6>,
}

impl Default for BulkLoad {
    fn default() -> Self {
        BulkLoad {
            actions: vec![None],
            by_set: FxHashMap::default(),
            last_set: None,
            kinds: [0; 3],
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

impl BulkLoad {
    /// Routes a load can hold (positions are 24-bit in the IPv4 keys).
    pub const MAX_ROUTES: usize = 1 << 24;

    pub fn new() -> BulkLoad {
        BulkLoad::default()
    }

    /// Adds a route (`None`: withdraw the prefix); false when the load is full
    /// ([`BulkLoad::MAX_ROUTES`]).
    pub fn push(&mut self, prefix: IpNet, action: Option<&RouteAction>) -> bool {
        let pos = self.len();
        if pos >= Self::MAX_ROUTES {
            return false;
        }
        let idx = self.index(action);
        match prefix.trunc() {
            IpNet::V4(n) => self.v4.push((key4(n) | pos as u64, idx)),
            IpNet::V6(n) => {
                self.v6
                    .push((u128::from(n.network()), n.prefix_len(), pos as u32, idx))
            }
        }
        true
    }

    fn index(&mut self, action: Option<&RouteAction>) -> u32 {
        let kind = match action {
            None => return 0,
            Some(RouteAction::Forward(set)) => {
                let key = set.ptr_key();
                if let Some((k, i)) = self.last_set
                    && k == key
                {
                    return i;
                }
                let i = match self.by_set.get(&key) {
                    Some(&i) => i,
                    None => {
                        let i = self.actions.len() as u32;
                        // The clone keeps the allocation, and so its key, alive.
                        self.actions.push(Some(RouteAction::Forward(set.clone())));
                        self.by_set.insert(key, i);
                        i
                    }
                };
                self.last_set = Some((key, i));
                return i;
            }
            Some(RouteAction::Blackhole) => 0,
            Some(RouteAction::PassToKernel) => 1,
            Some(RouteAction::Local) => 2,
        };
        if self.kinds[kind] == 0 {
            self.kinds[kind] = self.actions.len() as u32;
            self.actions.push(action.cloned());
        }
        self.kinds[kind]
    }

    /// Keeps only the last route added for each prefix (a withdrawal too), so a load that a
    /// prefix reaches several times over (a table from several peers changes each prefix's
    /// next-hop set once per peer) stays within the caller's bound instead of being given up.
    /// What the load writes is unchanged; the order across prefixes is not kept (it never
    /// mattered: only a prefix's own routes are ordered). In place, no allocation.
    pub fn compact(&mut self) {
        self.v4.sort_unstable_by_key(|e| e.0);
        let mut n = 0;
        for i in 0..self.v4.len() {
            let e = self.v4[i];
            if self.v4.get(i + 1).is_none_or(|x| x.0 >> 24 != e.0 >> 24) {
                self.v4[n] = (e.0 >> 24 << 24 | n as u64, e.1);
                n += 1;
            }
        }
        self.v4.truncate(n);
        self.v6.sort_unstable_by_key(|e| (e.0, e.1, e.2));
        let mut m = 0;
        for i in 0..self.v6.len() {
            let e = self.v6[i];
            if self.v6.get(i + 1).is_none_or(|x| (x.0, x.1) != (e.0, e.1)) {
                self.v6[m] = (e.0, e.1, (n + m) as u32, e.3);
                m += 1;
            }
        }
        self.v6.truncate(m);
    }

    /// Routes added so far.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the route entries (capacity).
    pub fn entry_bytes(&self) -> usize {
        self.v4.capacity() * std::mem::size_of::<Key4>()
            + self.v6.capacity() * std::mem::size_of::<Key6>()
    }

    /// Whether the last route added for `prefix` forwards somewhere (`Some(false)`: it was
    /// withdrawn; `None`: no route for it). A scan of the load, for a few prefixes.
    pub fn last_is_route(&self, prefix: IpNet) -> Option<bool> {
        let idx = match prefix.trunc() {
            IpNet::V4(n) => {
                let k = key4(n);
                self.v4.iter().rev().find(|e| e.0 >> 24 == k >> 24)?.1
            }
            IpNet::V6(n) => {
                let (a, l) = (u128::from(n.network()), n.prefix_len());
                self.v6.iter().rev().find(|e| (e.0, e.1) == (a, l))?.3
            }
        };
        Some(idx != 0)
    }

    /// The distinct actions (index 0 is `None`).
    pub(crate) fn actions(&self) -> &[Option<RouteAction>] {
        &self.actions
    }

    /// The load as routes, in the order they were added.
    pub fn routes(&self) -> Vec<Route> {
        let mut out: Vec<(u32, Route)> = Vec::with_capacity(self.len());
        for &(k, i) in &self.v4 {
            let n = Ipv4Net::new_assert(((k >> 32) as u32).into(), (k >> 24) as u8);
            out.push((k as u32 & 0xff_ffff, self.route(IpNet::V4(n), i)));
        }
        for &(a, l, pos, i) in &self.v6 {
            let n = Ipv6Net::new_assert(a.into(), l);
            out.push((pos, self.route(IpNet::V6(n), i)));
        }
        out.sort_unstable_by_key(|(pos, _)| *pos);
        out.into_iter().map(|(_, r)| r).collect()
    }

    fn route(&self, prefix: IpNet, idx: u32) -> Route {
        Route {
            prefix,
            action: self.actions[idx as usize].clone(),
        }
    }

    /// Takes the entries and the actions apart (for the bulk load).
    pub(crate) fn into_parts(self) -> (Vec<Option<RouteAction>>, Vec<Key4>, Vec<Key6>) {
        (self.actions, self.v4, self.v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NhSet;
    use std::net::IpAddr;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn fwd(set: &NhSet) -> RouteAction {
        RouteAction::Forward(set.clone())
    }

    #[test]
    fn a_load_keeps_one_action_per_set_allocation_and_the_routes_in_order() {
        let a = NhSet::new([("192.0.2.1".parse::<IpAddr>().unwrap(), 1)]);
        // Equal to `a` but another allocation (a caller that does not intern): its own action.
        let a2 = NhSet::new([("192.0.2.1".parse::<IpAddr>().unwrap(), 1)]);
        let mut l = BulkLoad::new();
        assert!(l.is_empty());
        assert!(l.push(net("10.0.0.0/8"), Some(&fwd(&a))));
        assert!(l.push(net("2001:db8::/32"), Some(&fwd(&a))));
        assert!(l.push(net("10.1.0.0/16"), Some(&fwd(&a2))));
        assert!(l.push(net("10.2.0.0/16"), Some(&RouteAction::Blackhole)));
        assert!(l.push(net("10.3.0.0/16"), Some(&RouteAction::Blackhole)));
        assert!(l.push(net("10.0.0.0/8"), None));
        assert_eq!(l.len(), 6);
        // None, a, a2, Blackhole.
        assert_eq!(l.actions().len(), 4);
        // The compactness the daemon counts on while it holds a full table.
        assert_eq!(std::mem::size_of::<Key4>(), 16);
        assert_eq!(std::mem::size_of::<Key6>(), 32);
        let r = l.routes();
        let got: Vec<(IpNet, Option<RouteAction>)> =
            r.into_iter().map(|r| (r.prefix, r.action)).collect();
        assert_eq!(
            got,
            vec![
                (net("10.0.0.0/8"), Some(fwd(&a))),
                (net("2001:db8::/32"), Some(fwd(&a))),
                (net("10.1.0.0/16"), Some(fwd(&a2))),
                (net("10.2.0.0/16"), Some(RouteAction::Blackhole)),
                (net("10.3.0.0/16"), Some(RouteAction::Blackhole)),
                (net("10.0.0.0/8"), None),
            ]
        );
    }

    /// The last action per prefix, withdrawals included: what a load writes.
    fn last_per_prefix(l: &BulkLoad) -> std::collections::BTreeMap<IpNet, Option<RouteAction>> {
        l.routes()
            .into_iter()
            .map(|r| (r.prefix, r.action))
            .collect()
    }

    #[test]
    fn compacting_keeps_the_last_route_of_each_prefix_and_later_routes_still_win() {
        let a = NhSet::new([("192.0.2.1".parse::<IpAddr>().unwrap(), 1)]);
        let b = NhSet::new([("192.0.2.2".parse::<IpAddr>().unwrap(), 1)]);
        let mut l = BulkLoad::new();
        l.push(net("10.0.0.0/8"), Some(&fwd(&a)));
        l.push(net("10.0.0.0/16"), Some(&fwd(&a)));
        l.push(net("2001:db8::/32"), Some(&fwd(&a)));
        l.push(net("10.0.0.0/8"), Some(&fwd(&b)));
        l.push(net("10.0.0.0/16"), None);
        l.push(net("2001:db8::/32"), Some(&fwd(&b)));
        l.push(net("2001:db8::/48"), Some(&RouteAction::Blackhole));
        let before = last_per_prefix(&l);
        l.compact();
        assert_eq!(l.len(), 4, "one route per prefix");
        assert_eq!(last_per_prefix(&l), before);
        assert_eq!(l.last_is_route(net("10.0.0.0/16")), Some(false));
        // Routes added after a compaction still come after those before it.
        l.push(net("10.0.0.0/8"), Some(&fwd(&a)));
        l.push(net("2001:db8::/32"), None);
        l.compact();
        let got = last_per_prefix(&l);
        assert_eq!(got[&net("10.0.0.0/8")], Some(fwd(&a)));
        assert_eq!(got[&net("2001:db8::/32")], None);
        assert_eq!(got[&net("2001:db8::/48")], Some(RouteAction::Blackhole));
        assert_eq!(l.len(), 4);
    }

    proptest::proptest! {
        /// Compacting at any points of a stream of routes leaves what the stream would write.
        #[test]
        fn compacting_anywhere_writes_what_the_whole_stream_writes(
            ops in proptest::collection::vec((0u8..24, 0u8..3, proptest::bool::ANY), 1..200),
        ) {
            let sets = [
                NhSet::new([("192.0.2.1".parse::<IpAddr>().unwrap(), 1)]),
                NhSet::new([("192.0.2.2".parse::<IpAddr>().unwrap(), 1)]),
            ];
            let mut whole = BulkLoad::new();
            let mut compacted = BulkLoad::new();
            for (p, act, compact_now) in ops {
                // 12 IPv4 and 12 IPv6 prefixes, some sharing an address with another length.
                let prefix = match p {
                    0..12 => net(&format!("10.{}.0.0/{}", p / 2, 16 + p % 2)),
                    _ => net(&format!("2001:db8:{:x}::/{}", p / 2, 48 + p % 2)),
                };
                let action = match act {
                    0 => None,
                    k => Some(fwd(&sets[k as usize - 1])),
                };
                whole.push(prefix, action.as_ref());
                compacted.push(prefix, action.as_ref());
                if compact_now {
                    compacted.compact();
                }
            }
            let want = last_per_prefix(&whole);
            proptest::prop_assert_eq!(compacted.len() <= whole.len(), true);
            compacted.compact();
            proptest::prop_assert_eq!(compacted.len(), want.len());
            proptest::prop_assert_eq!(last_per_prefix(&compacted), want);
        }
    }

    #[test]
    fn last_is_route_answers_for_the_last_route_of_a_prefix() {
        let a = NhSet::new([("192.0.2.1".parse::<IpAddr>().unwrap(), 1)]);
        let mut l = BulkLoad::new();
        l.push(net("192.0.2.7/32"), Some(&fwd(&a)));
        l.push(net("192.0.2.7/32"), None);
        l.push(net("192.0.2.8/32"), None);
        l.push(net("192.0.2.8/32"), Some(&RouteAction::Local));
        l.push(net("2001:db8::7/128"), Some(&fwd(&a)));
        assert_eq!(l.last_is_route(net("192.0.2.7/32")), Some(false));
        assert_eq!(l.last_is_route(net("192.0.2.8/32")), Some(true));
        assert_eq!(l.last_is_route(net("192.0.2.8/31")), None, "another length");
        assert_eq!(l.last_is_route(net("2001:db8::7/128")), Some(true));
        assert_eq!(l.last_is_route(net("2001:db8::8/128")), None);
    }
}
