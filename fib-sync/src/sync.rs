//! The sync engine: path-lists, nexthop groups and next-hops with reference counts and quarantined
//! ids, and the ordered batches that write them into the live maps.
//!
//! ```text
//!   routes ─┐                          ┌─► nh (new ids)        1
//!           ├─► plan (ids, refcounts) ─┼─► nhg (new ids)       2
//!   nexthop │                          ├─► pathlist flips      3   one u32 each
//!   changes ┘                          ├─► fib inserts/updates 4   dir24/dir8 (+fib4), fib6
//!                                      ├─► fib deletes         5
//!                                      └─► retire ids          6   quarantine, generation bump
//! ```
//!
//! Objects:
//! - a path-list per distinct [`NhSet`] (primary BGP next-hops with weights, and an optional backup
//!   set), id stable while any prefix uses the set; it points at a group of its live primaries, or
//!   when every primary is dead at a group of its live backups (PIC edge), or at the pass-to-kernel
//!   group when nothing is live. A next-hop is live while it resolves and BGP has not withdrawn it
//!   ([`FibSync::withdraw_nexthops`]: the session that was its only source went down);
//! - a group per distinct bucket table (immutable; a change of members builds a new table
//!   resiliently from the path-list's old one, so only the buckets of a removed member move);
//! - a next-hop per distinct [`NhL2`] (egress port, MACs, VLAN).
//!
//! Every object is reference-counted (prefixes → path-list, path-lists → group, groups →
//! next-hop, next-hops → tx port) and its id is quarantined when the count drops to zero.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fib_ebpf::abi::*;
use fib_ebpf::{Engine4, nhg as buckets};
use ipnet::{IpNet, Ipv4Net};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::SyncError;
use crate::bulk::BulkLoad;
use crate::dir4::{Dir4, Tables};
use crate::ids::IdPool;
use crate::maps::PinnedMaps;
use crate::table6::Table6;
use crate::types::{NhL2, NhSet, PrefixMap, Route, RouteAction};

/// Settings of the sync engine.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The IPv4 engine the forwarder was loaded with: with [`Engine4::Lpm`] IPv4 prefixes also go
    /// into the `fib4` trie (DIR-24-8 is always kept, it is the shadow the check compares with).
    pub engine4: Engine4,
    /// Minimum time a freed id waits before reuse (besides two batches).
    pub quarantine: Duration,
    /// Buckets per nexthop group (fixed for the group's life).
    pub buckets: usize,
    /// An initial batch of at least this many routes into empty maps is built in memory and
    /// copied into the maps in one pass (the tries in batches, on another thread).
    pub bulk_threshold: usize,
    /// A later batch with at least this many IPv4 and this many IPv6 changes writes the IPv6 trie
    /// on a second thread while this one updates DIR-24-8 (a spawn costs tens of microseconds).
    pub parallel_min: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            engine4: Engine4::Dir24,
            quarantine: Duration::from_secs(1),
            buckets: NHG_MAX_BUCKETS,
            bulk_threshold: 4096,
            parallel_min: 256,
        }
    }
}

/// Map writes of one batch, by map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub nh: u64,
    pub nhg: u64,
    pub pathlist: u64,
    pub dir24: u64,
    pub dir8: u64,
    pub fib4: u64,
    pub fib6: u64,
    pub tx_port: u64,
}

impl WriteCounts {
    pub fn total(&self) -> u64 {
        self.nh
            + self.nhg
            + self.pathlist
            + self.dir24
            + self.dir8
            + self.fib4
            + self.fib6
            + self.tx_port
    }

    pub fn add(&mut self, o: &WriteCounts) {
        self.nh += o.nh;
        self.nhg += o.nhg;
        self.pathlist += o.pathlist;
        self.dir24 += o.dir24;
        self.dir8 += o.dir8;
        self.fib4 += o.fib4;
        self.fib6 += o.fib6;
        self.tx_port += o.tx_port;
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub writes: WriteCounts,
    /// Prefixes inserted, changed or deleted.
    pub prefixes: u64,
    /// Path-lists pointed at another group.
    pub pathlist_flips: u64,
    /// The batch's number (committed).
    pub batch: u64,
}

/// A withdrawal in a bulk load's keys.
const WITHDRAWN: u32 = u32::MAX;

/// The live DIR-24-8 arrays: reads, and stores counted.
pub(crate) struct CountingSink<'a> {
    pub maps: &'a fib_ebpf::FibMaps,
    pub c: &'a mut WriteCounts,
}

impl Tables for CountingSink<'_> {
    fn load24(&self, idx: u32) -> u32 {
        self.maps.dir24_load(idx)
    }
    fn store24(&mut self, idx: u32, value: u32) {
        self.c.dir24 += 1;
        self.maps.dir24_store(idx, value)
    }
    fn store8(&mut self, group: u32, j: u8, value: u32) {
        self.c.dir8 += 1;
        self.maps.dir8_store(group, j, value)
    }
    fn fill24(&mut self, from: u32, to: u32, value: u32) {
        self.c.dir24 += self.maps.dir24_fill(from, to, value);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PathList {
    pub set: NhSet,
    pub refs: u64,
    pub nhg: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub refs: u32,
    pub table: Arc<[u32]>,
}

#[derive(Debug, Clone)]
pub(crate) struct NextHop {
    pub refs: u32,
    pub l2: NhL2,
}

/// Objects that may have lost their last reference.
#[derive(Default)]
pub(crate) struct Dead {
    pub pls: Vec<u32>,
    pub groups: Vec<u32>,
    pub nhs: Vec<u32>,
}

/// A prefix a batch changes.
pub(crate) struct Touch {
    pub prefix: IpNet,
    pub before: Option<u32>,
    pub after: Option<u32>,
}

/// Writes planned for one batch, applied in the order DESIGN.md requires.
#[derive(Default)]
pub(crate) struct Plan {
    pub tx_ports: Vec<u32>,
    pub nh: Vec<(u32, NhL2)>,
    pub nhg: Vec<(u32, Arc<[u32]>)>,
    pub pathlist: Vec<(u32, u32)>,
    /// Prefix → its place in `order`.
    pub touched: PrefixMap<IpNet, usize>,
    /// Prefixes in the order first touched, with their values before and after the batch.
    pub order: Vec<Touch>,
    pub dead_pls: Vec<u32>,
    pub dead_groups: Vec<u32>,
    pub dead_nhs: Vec<u32>,
}

/// The sync engine over one pinned forwarder instance.
pub struct FibSync {
    pub(crate) maps: PinnedMaps,
    pub(crate) cfg: SyncConfig,
    /// The IPv4 prefixes and the tbl8 groups they use (tbl24 is read back from the maps).
    pub(crate) dir4: Dir4,
    /// The table of prefixes of an initial bulk load, still being built (joined before the next
    /// batch).
    pub(crate) pending: Option<crate::bulk::PendingTables>,
    /// The IPv6 prefixes (packed, `table6.rs`; the LPM trie itself is the kernel's map).
    pub(crate) routes6: Table6,
    pub(crate) pls: FxHashMap<u32, PathList>,
    pub(crate) pl_of_set: FxHashMap<NhSet, u32>,
    pub(crate) pls_of_addr: FxHashMap<IpAddr, FxHashSet<u32>>,
    pub(crate) groups: FxHashMap<u32, Group>,
    pub(crate) group_of_table: FxHashMap<Arc<[u32]>, u32>,
    pub(crate) nhs: FxHashMap<u32, NextHop>,
    pub(crate) nh_of_l2: FxHashMap<NhL2, u32>,
    pub(crate) resolution: FxHashMap<IpAddr, NhL2>,
    /// BGP next-hops whose every path is gone (session down), until the RIB's own deltas have
    /// moved the prefixes off them: dead even when they resolve.
    pub(crate) withdrawn: FxHashSet<IpAddr>,
    pub(crate) ports: FxHashMap<u32, u32>,
    pub(crate) pl_ids: IdPool,
    pub(crate) nhg_ids: IdPool,
    pub(crate) nh_ids: IdPool,
    pub(crate) batch: u64,
    pub(crate) total: WriteCounts,
}

impl FibSync {
    /// A sync engine over maps that hold no routes yet (a fresh instance). Use
    /// [`FibSync::restart`](crate::reconcile) when the pinned maps may hold a previous process's state.
    pub fn new(maps: PinnedMaps, cfg: SyncConfig) -> FibSync {
        let dir4 = Dir4::new(maps.fib.dir8_groups(), cfg.quarantine);
        let q = cfg.quarantine;
        FibSync {
            maps,
            dir4,
            pending: None,
            routes6: Table6::default(),
            pls: FxHashMap::default(),
            pl_of_set: FxHashMap::default(),
            pls_of_addr: FxHashMap::default(),
            groups: FxHashMap::default(),
            group_of_table: FxHashMap::default(),
            nhs: FxHashMap::default(),
            nh_of_l2: FxHashMap::default(),
            resolution: FxHashMap::default(),
            withdrawn: FxHashSet::default(),
            ports: FxHashMap::default(),
            pl_ids: IdPool::new("path-list", PL_FIRST_DYNAMIC, PATHLIST_MAX, q),
            nhg_ids: IdPool::new("nexthop group", NHG_PASS + 1, NHG_MAX, q),
            nh_ids: IdPool::new("next-hop", 1, NH_MAX, q),
            batch: 0,
            total: WriteCounts::default(),
            cfg,
        }
    }

    pub fn maps(&self) -> &PinnedMaps {
        &self.maps
    }

    pub fn config(&self) -> &SyncConfig {
        &self.cfg
    }

    /// Prefixes held.
    pub fn len(&self) -> usize {
        self.dir4.rules.len()
            + match &self.pending {
                Some(p) => p.v6.len(),
                None => self.routes6.len(),
            }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every prefix held with its path-list id (reserved ids included).
    pub fn routes(&self) -> Box<dyn Iterator<Item = (IpNet, u32)> + '_> {
        let v4 = self
            .dir4
            .rules
            .iter()
            .map(|(a, l, v)| (IpNet::V4(Ipv4Net::new_assert(a.into(), l)), v));
        match &self.pending {
            Some(p) => Box::new(v4.chain(p.iter())),
            None => Box::new(v4.chain(self.routes6.iter().map(|(p, v)| (IpNet::V6(p), v)))),
        }
    }

    /// Heap bytes of the per-prefix state: the IPv4 table with its tbl8 group records and the
    /// IPv6 table (from capacities; the DIR-24-8 arrays themselves are the mmapped maps).
    pub fn prefix_state_bytes(&self) -> usize {
        self.dir4.heap_bytes() + self.routes6.heap_bytes()
    }

    /// Map writes since start.
    pub fn total_writes(&self) -> WriteCounts {
        self.total
    }

    /// Committed batches.
    pub fn batches(&self) -> u64 {
        self.batch
    }

    /// (path-lists, groups, next-hops) in use.
    pub fn ids_in_use(&self) -> (usize, usize, usize) {
        (
            self.pl_ids.in_use(),
            self.nhg_ids.in_use(),
            self.nh_ids.in_use(),
        )
    }

    /// (path-lists, groups, next-hops, tbl8 groups) waiting in quarantine.
    pub fn ids_quarantined(&self) -> (usize, usize, usize, usize) {
        (
            self.pl_ids.quarantined(),
            self.nhg_ids.quarantined(),
            self.nh_ids.quarantined(),
            self.dir4.groups_quarantined(),
        )
    }

    /// tbl8 groups linked.
    pub fn tbl8_in_use(&self) -> usize {
        self.dir4.groups_in_use()
    }

    /// Waits for the IPv6 table of an initial bulk load (the maps are complete before; the table
    /// is needed for the next batch, which waits for it itself).
    pub fn settle(&mut self) -> Result<(), SyncError> {
        if let Some(p) = self.pending.take() {
            self.routes6 = p.join()?;
        }
        Ok(())
    }

    /// Joins the tables of an initial bulk load if they are built (without waiting), so the
    /// sorted routes they were built from are freed while idle, not at the next batch.
    pub fn settle_if_ready(&mut self) -> Result<(), SyncError> {
        if self.pending.as_ref().is_some_and(|p| p.job.is_finished()) {
            self.settle()?;
        }
        Ok(())
    }

    /// Whether the IPv6 table of an initial bulk load is still being built or waits to be joined
    /// (the load's sorted IPv6 routes are held until then).
    pub fn load_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The path-list id a prefix has (reserved ids included).
    pub fn route(&self, prefix: &IpNet) -> Option<u32> {
        let p = prefix.trunc();
        match (&self.pending, p) {
            (Some(b), IpNet::V6(n)) => b.get(&n),
            _ => self.route_now(&p),
        }
    }

    /// The path-list id of a truncated prefix in the joined table.
    pub(crate) fn route_now(&self, p: &IpNet) -> Option<u32> {
        match p {
            IpNet::V4(n) => self.dir4.rules.get(u32::from(n.network()), n.prefix_len()),
            IpNet::V6(n) => self.routes6.get(n),
        }
    }

    /// The whole table as routes (what a batch building it from nothing would contain).
    pub fn table(&self) -> Vec<Route> {
        self.routes()
            .map(|(prefix, id)| Route {
                prefix,
                action: Some(match id {
                    PL_BLACKHOLE => RouteAction::Blackhole,
                    PL_LOCAL => RouteAction::Local,
                    _ => match self.pls.get(&id) {
                        Some(p) => RouteAction::Forward(p.set.clone()),
                        None => RouteAction::PassToKernel,
                    },
                }),
            })
            .collect()
    }

    /// The path-list id of a next-hop set, while some prefix uses it.
    pub fn pathlist_of(&self, set: &NhSet) -> Option<u32> {
        self.pl_of_set.get(set).copied()
    }

    /// The group a path-list points at.
    pub fn group_of(&self, pl: u32) -> Option<u32> {
        self.pls.get(&pl).map(|p| p.nhg)
    }

    /// The next-hop id of an L2 next-hop, while some group uses it.
    pub fn nh_id(&self, l2: &NhL2) -> Option<u32> {
        self.nh_of_l2.get(l2).copied()
    }

    /// Whether some path-list contains `addr`.
    pub fn uses_nexthop(&self, addr: &IpAddr) -> bool {
        self.pls_of_addr.contains_key(addr)
    }

    /// The current resolution of a BGP next-hop.
    pub fn resolution(&self, addr: &IpAddr) -> Option<NhL2> {
        self.resolution.get(addr).copied()
    }

    /// Whether `id` is a path-list id in quarantine (tests).
    pub fn pl_id_quarantined(&self, id: u32) -> bool {
        self.pl_ids.is_quarantined(id)
    }

    /// Whether `id` is a group id in quarantine (tests).
    pub fn nhg_id_quarantined(&self, id: u32) -> bool {
        self.nhg_ids.is_quarantined(id)
    }

    /// One batch of route changes (the RIB's FIB deltas). A prefix named twice takes its last value.
    pub fn apply(&mut self, routes: &[Route]) -> Result<BatchReport, SyncError> {
        self.settle()?;
        if self.bulk_ready(routes.len()) {
            let mut load = BulkLoad::new();
            for r in routes {
                load.push(r.prefix, r.action.as_ref());
            }
            return self.apply_bulk(load);
        }
        let mut plan = Plan::default();
        let mut err = None;
        plan.order.reserve(routes.len());
        plan.touched.reserve(routes.len());
        for r in routes {
            if let Err(e) = self.plan_route(r, &mut plan) {
                err = Some(e);
                break;
            }
        }
        let report = self.execute(plan);
        match err {
            Some(e) => Err(e),
            None => report,
        }
    }

    /// A batch gathered as a [`BulkLoad`] (the initial load): one bulk load into empty maps, or
    /// the same as [`FibSync::apply`] on its routes when the maps hold routes already.
    pub fn apply_load(&mut self, load: BulkLoad) -> Result<BatchReport, SyncError> {
        self.settle()?;
        if self.bulk_ready(load.len()) {
            return self.apply_bulk(load);
        }
        self.apply(&load.routes())
    }

    /// Whether a batch of `n` routes goes in as a bulk load: the maps hold no route yet.
    fn bulk_ready(&self, n: usize) -> bool {
        self.dir4.rules.is_empty()
            && self.routes6.is_empty()
            && self.dir4.group_slots() == 0
            && n >= self.cfg.bulk_threshold
            && n < BulkLoad::MAX_ROUTES
    }

    /// The first batch into empty maps: the objects first, then the IPv6 trie (sorted, batched) on
    /// another thread while this one writes DIR-24-8 in one sweep (see [`crate::bulk`]) and the
    /// IPv4 reference trie if configured, then takes the trie batches left. Each family is sorted by prefix (the last of several
    /// routes for one prefix wins). The table of prefixes and the DIR-24-8 shadow are built in the
    /// background and joined before the next batch.
    fn apply_bulk(&mut self, load: BulkLoad) -> Result<BatchReport, SyncError> {
        let t0 = Instant::now();
        let mut plan = Plan::default();
        let mut err = None;
        let mut c = WriteCounts::default();
        let mut first_err: Option<SyncError> = None;
        let (actions, mut k4, mut k6) = load.into_parts();
        // Path-list ids of the distinct actions (a few thousand sets for a million routes); the
        // routes of an action that failed are left out and the batch reports the error.
        let mut ids = Vec::with_capacity(actions.len());
        for a in &actions {
            let id = match err {
                Some(_) => WITHDRAWN,
                None => self.bulk_id(a, &mut plan).unwrap_or_else(|e| {
                    err = Some(e);
                    WITHDRAWN
                }),
            };
            ids.push(id);
        }
        drop(actions);
        // 1-3: the objects, before any prefix points at them.
        self.write_objects(&plan, &mut c, &mut first_err);
        let trie6 = self.maps.fib6_writer()?;
        let planned6 = t0.elapsed();
        let lpm4 = self.cfg.engine4 == Engine4::Lpm;
        let ids = &ids;
        let (v4, v6, rules4, groups, trie_c, trie_err) = std::thread::scope(|s| {
            // 4: the IPv6 trie (the longest job: a kernel insert per prefix), sorted so
            // consecutive inserts walk the same trie nodes, in batches shared with this thread
            // once its IPv4 work is done. Keys: (address, length, position), so the sort keeps
            // the input order of repeated prefixes.
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let trie6 = &trie6;
            let six = s.spawn(move || {
                k6.sort_unstable_by_key(|x| (x.0, x.1, x.2));
                let mut v6: Vec<crate::bulk::Route6> = Vec::with_capacity(k6.len());
                for (i, &(a, l, _, idx)) in k6.iter().enumerate() {
                    let last_of_prefix = k6.get(i + 1).is_none_or(|n| (n.0, n.1) != (a, l));
                    let id = ids[idx as usize];
                    if last_of_prefix && id != WITHDRAWN {
                        v6.push((a, l, id));
                    }
                }
                drop(k6);
                let chunks = Arc::new(crate::bulk::Trie6Chunks::new(
                    v6.iter()
                        .map(|&(a, l, pl_id)| (a, l, FibVal { pl_id, flags: 0 }))
                        .collect(),
                ));
                let _ = tx.send(chunks.clone());
                let n = chunks.work(trie6);
                (v6, chunks, n, t0.elapsed())
            });
            // IPv4 keys: address << 32 | length << 24 | position.
            let m = &self.maps.fib;
            k4.sort_unstable_by_key(|x| x.0);
            let mut v4: Vec<crate::bulk::Route4> = Vec::with_capacity(k4.len());
            for (i, &(k, idx)) in k4.iter().enumerate() {
                let last_of_prefix = k4.get(i + 1).is_none_or(|n| n.0 >> 24 != k >> 24);
                let id = ids[idx as usize];
                if last_of_prefix && id != WITHDRAWN {
                    v4.push(((k >> 32) as u32, (k >> 24) as u8, id));
                }
            }
            drop(k4);
            // 4: DIR-24-8 from a flat image (groups before tbl24), the IPv4 reference trie if used.
            let groups = crate::dir4::load_sorted(
                &v4,
                &mut CountingSink { maps: m, c: &mut c },
                m.dir8_groups(),
            );
            let mut tc = WriteCounts::default();
            let mut te = None;
            if lpm4 {
                let t4: Vec<_> = v4
                    .iter()
                    .map(|&(a, l, pl_id)| (a.into(), l, FibVal { pl_id, flags: 0 }))
                    .collect();
                tc.fib4 = t4.len() as u64;
                note_err(&mut te, m.fib4_insert_batch(&t4));
            }
            // The IPv4 table for later batches, while the trie writer (the longer job) runs.
            let rules4 = crate::dir4::Rules4::from_sorted(&v4);
            let t4 = t0.elapsed();
            // Then the trie chunks the writer has not taken yet.
            let helped = rx.recv().map_or(0, |chunks| chunks.work(trie6));
            let v6 = match six.join() {
                Ok((v6, chunks, n, t6)) => {
                    tc.fib6 = v6.len() as u64;
                    if let Err(e) = chunks.result() {
                        te.get_or_insert(e);
                    }
                    tracing::debug!(
                        planned6 = ?planned6,
                        trie6_done = ?t6,
                        dir24_done = ?t4,
                        trie6_by_writer = n,
                        trie6_by_dir24_thread = helped,
                        "bulk load phases"
                    );
                    v6
                }
                Err(_) => {
                    te.get_or_insert(SyncError::Map("the trie writer panicked".into()));
                    Vec::new()
                }
            };
            (v4, v6, rules4, groups, tc, te)
        });
        c.add(&trie_c);
        if let Some(e) = trie_err {
            first_err.get_or_insert(e);
        }
        // Prefix counts per path-list (ids are small and dense).
        let mut refs: Vec<u64> = Vec::new();
        for &id in v4.iter().map(|r| &r.2).chain(v6.iter().map(|r| &r.2)) {
            if id >= PL_FIRST_DYNAMIC {
                let i = id as usize;
                if i >= refs.len() {
                    refs.resize(i + 1, 0);
                }
                refs[i] += 1;
            }
        }
        for (id, n) in refs.into_iter().enumerate() {
            if n > 0
                && let Some(p) = self.pls.get_mut(&(id as u32))
            {
                p.refs += n;
            }
        }
        let prefixes = (v4.len() + v6.len()) as u64;
        drop(v4);
        self.dir4.rules = rules4;
        if !v6.is_empty() {
            self.pending = Some(crate::bulk::spawn_table6(Arc::new(v6))?);
        }
        match groups {
            Ok(groups) => self.dir4.loaded(&groups),
            Err(e) => {
                first_err.get_or_insert(e.into());
            }
        }
        let pathlist_flips = plan.pathlist.len() as u64;
        let dead = Dead {
            pls: std::mem::take(&mut plan.dead_pls),
            groups: std::mem::take(&mut plan.dead_groups),
            nhs: std::mem::take(&mut plan.dead_nhs),
        };
        let now = Instant::now();
        self.retire(dead, now, &mut c, &mut first_err);
        self.maps.fib.bump_generation();
        self.commit(now);
        self.total.add(&c);
        let report = BatchReport {
            writes: c,
            prefixes,
            pathlist_flips,
            batch: self.batch,
        };
        match err.or(first_err) {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The path-list id of an action of a bulk load (`WITHDRAWN` for a withdrawal), creating the
    /// path-list when new.
    fn bulk_id(&mut self, action: &Option<RouteAction>, plan: &mut Plan) -> Result<u32, SyncError> {
        Ok(match action {
            None => WITHDRAWN,
            Some(RouteAction::Forward(set)) if set.is_empty() => PL_PASS,
            Some(RouteAction::Forward(set)) => self.pl_for(set, None, plan)?,
            Some(RouteAction::Blackhole) => PL_BLACKHOLE,
            Some(RouteAction::PassToKernel) => PL_PASS,
            Some(RouteAction::Local) => PL_LOCAL,
        })
    }

    /// One batch of next-hop changes: `Some(l2)` resolved (or moved to another port or MAC), `None`
    /// unresolved or gone. Only the path-lists containing a changed next-hop are rewritten, one
    /// u32 store each (prefix-independent convergence); no prefix entry is touched.
    pub fn set_nexthops(
        &mut self,
        changes: &[(IpAddr, Option<NhL2>)],
    ) -> Result<BatchReport, SyncError> {
        let plan = Plan::default();
        let mut affected: Vec<u32> = Vec::new();
        for &(addr, l2) in changes {
            let old = match l2 {
                Some(l2) => self.resolution.insert(addr, l2),
                None => self.resolution.remove(&addr),
            };
            if old != l2
                && let Some(pls) = self.pls_of_addr.get(&addr)
            {
                affected.extend(pls.iter().copied());
            }
        }
        self.regroup_all(affected, plan)
    }

    /// Regroups the given path-lists (sorted, deduplicated first) in one batch.
    fn regroup_all(
        &mut self,
        mut affected: Vec<u32>,
        mut plan: Plan,
    ) -> Result<BatchReport, SyncError> {
        affected.sort_unstable();
        affected.dedup();
        let mut err = None;
        for pl in affected {
            if let Err(e) = self.regroup(pl, &mut plan) {
                err = Some(e);
                break;
            }
        }
        let report = self.execute(plan);
        match err {
            Some(e) => Err(e),
            None => report,
        }
    }

    /// BGP lost every path through these next-hops (the session that was their only source went
    /// down): they count as dead from now on, whatever their resolution, and only the path-lists
    /// containing them are rewritten, in one batch (prefix-independent convergence; a path-list
    /// whose primaries are all dead moves to its live backups). The RIB's per-prefix deltas that
    /// follow move the prefixes away; [`FibSync::restore_nexthops`] then lifts the mark.
    pub fn withdraw_nexthops(&mut self, addrs: &[IpAddr]) -> Result<BatchReport, SyncError> {
        let mut affected: Vec<u32> = Vec::new();
        for &a in addrs {
            if self.withdrawn.insert(a)
                && self.resolution.contains_key(&a)
                && let Some(pls) = self.pls_of_addr.get(&a)
            {
                affected.extend(pls.iter().copied());
            }
        }
        self.regroup_all(affected, Plan::default())
    }

    /// Lifts the withdrawn mark of `addrs` (all marks with `None`): path-lists still containing
    /// them (a path through them came back before the marks were lifted) get them back.
    pub fn restore_nexthops(
        &mut self,
        addrs: Option<&[IpAddr]>,
    ) -> Result<Option<BatchReport>, SyncError> {
        let lifted: Vec<IpAddr> = match addrs {
            Some(a) => a
                .iter()
                .copied()
                .filter(|a| self.withdrawn.remove(a))
                .collect(),
            None => self.withdrawn.drain().collect(),
        };
        let mut affected: Vec<u32> = Vec::new();
        for a in lifted {
            if self.resolution.contains_key(&a)
                && let Some(pls) = self.pls_of_addr.get(&a)
            {
                affected.extend(pls.iter().copied());
            }
        }
        if affected.is_empty() {
            return Ok(None);
        }
        self.regroup_all(affected, Plan::default()).map(Some)
    }

    /// Next-hops currently marked withdrawn.
    pub fn withdrawn_nexthops(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.withdrawn.iter().copied()
    }

    /// Whether a BGP next-hop is usable: it resolves and BGP has not withdrawn it.
    pub fn is_live(&self, addr: &IpAddr) -> bool {
        self.resolution.contains_key(addr) && !self.withdrawn.contains(addr)
    }

    /// Recomputes a path-list's group from the current resolutions and plans the flip.
    fn regroup(&mut self, pl: u32, plan: &mut Plan) -> Result<(), SyncError> {
        let Some(p) = self.pls.get(&pl) else {
            return Ok(());
        };
        let (set, old) = (p.set.clone(), p.nhg);
        let old_table = self.groups.get(&old).map(|g| g.table.clone());
        let new = self.group_for(&set, old_table.as_deref(), plan)?;
        if new == old {
            return Ok(());
        }
        if let Some(g) = self.groups.get_mut(&new) {
            g.refs += 1;
        }
        self.unref_group(old, plan);
        if let Some(p) = self.pls.get_mut(&pl) {
            p.nhg = new;
        }
        plan.pathlist.push((pl, new));
        Ok(())
    }

    pub(crate) fn plan_route(&mut self, r: &Route, plan: &mut Plan) -> Result<(), SyncError> {
        let prefix = r.prefix.trunc();
        let new = match &r.action {
            None => None,
            Some(RouteAction::Forward(set)) if set.is_empty() => Some(PL_PASS),
            Some(RouteAction::Forward(set)) => match self.pl_of_set.get(set) {
                Some(&id) => Some(id),
                None => {
                    // A new path-list derives its group from the one the prefix leaves.
                    let hint = self.route_now(&prefix);
                    Some(self.pl_for(set, hint, plan)?)
                }
            },
            Some(RouteAction::Blackhole) => Some(PL_BLACKHOLE),
            Some(RouteAction::PassToKernel) => Some(PL_PASS),
            Some(RouteAction::Local) => Some(PL_LOCAL),
        };
        // One probe of the table: the old value comes out of the same entry the new one goes in.
        let old = match (prefix, new) {
            (IpNet::V4(n), Some(id)) => {
                let old = self
                    .dir4
                    .rules
                    .insert(u32::from(n.network()), n.prefix_len(), id);
                if old == Some(id) {
                    return Ok(());
                }
                old
            }
            (IpNet::V4(n), None) => {
                match self
                    .dir4
                    .rules
                    .remove(u32::from(n.network()), n.prefix_len())
                {
                    Some(o) => Some(o),
                    None => return Ok(()),
                }
            }
            (IpNet::V6(n), Some(id)) => {
                let old = self.routes6.insert(&n, id);
                if old == Some(id) {
                    return Ok(());
                }
                old
            }
            (IpNet::V6(n), None) => match self.routes6.remove(&n) {
                Some(o) => Some(o),
                None => return Ok(()),
            },
        };
        match plan.touched.entry(prefix) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(plan.order.len());
                plan.order.push(Touch {
                    prefix,
                    before: old,
                    after: new,
                });
            }
            std::collections::hash_map::Entry::Occupied(e) => plan.order[*e.get()].after = new,
        }
        if let Some(id) = new
            && let Some(p) = self.pls.get_mut(&id)
        {
            p.refs += 1;
        }
        if let Some(old) = old
            && let Some(p) = self.pls.get_mut(&old)
        {
            p.refs -= 1;
            if p.refs == 0 {
                plan.dead_pls.push(old);
            }
        }
        Ok(())
    }

    /// The path-list of `set`, created (with its group) when new. `from` is the path-list the
    /// prefix leaves: a new path-list's group is derived resiliently from that one's table, so when
    /// the live members are the same (a backup-only change; the RIB catching up with a failover
    /// fib-sync already made) it is the same group and no flow moves.
    fn pl_for(
        &mut self,
        set: &NhSet,
        from: Option<u32>,
        plan: &mut Plan,
    ) -> Result<u32, SyncError> {
        if let Some(&id) = self.pl_of_set.get(set) {
            return Ok(id);
        }
        let old_table = from
            .and_then(|pl| self.pls.get(&pl))
            .and_then(|p| self.groups.get(&p.nhg))
            .map(|g| g.table.clone());
        let nhg = self.group_for(set, old_table.as_deref(), plan)?;
        let id = self
            .pl_ids
            .alloc()
            .ok_or(SyncError::IdsExhausted("path-list"))?;
        if let Some(g) = self.groups.get_mut(&nhg) {
            g.refs += 1;
        }
        self.pls.insert(
            id,
            PathList {
                set: set.clone(),
                refs: 0,
                nhg,
            },
        );
        self.pl_of_set.insert(set.clone(), id);
        for a in set.all_addrs() {
            self.pls_of_addr.entry(a).or_default().insert(id);
        }
        plan.pathlist.push((id, nhg));
        plan.dead_pls.push(id);
        Ok(id)
    }

    /// The BGP next-hops a path-list of `set` forwards over now: its live primaries, or when none
    /// is live its live backups (PIC edge), with their L2 next-hops and weights.
    pub(crate) fn active(&self, set: &NhSet) -> Vec<(NhL2, u32)> {
        let live = |&(a, w): &(IpAddr, u32)| {
            if self.withdrawn.contains(&a) {
                return None;
            }
            self.resolution.get(&a).map(|l2| (*l2, w))
        };
        let m: Vec<(NhL2, u32)> = set.members().iter().filter_map(live).collect();
        if !m.is_empty() {
            return m;
        }
        set.backup().iter().filter_map(live).collect()
    }

    /// Members of a group for `set` under the current liveness ([`FibSync::active`]): (nh id,
    /// weight), merged per next-hop, sorted.
    pub(crate) fn members(
        &mut self,
        set: &NhSet,
        plan: &mut Plan,
    ) -> Result<Vec<(u32, u32)>, SyncError> {
        let active = self.active(set);
        let mut m: Vec<(u32, u32)> = Vec::with_capacity(active.len());
        for (l2, w) in active {
            m.push((self.nh_for(l2, plan)?, w));
        }
        m.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(m.len());
        for (id, w) in m {
            match out.last_mut() {
                Some((l, lw)) if *l == id => *lw = lw.saturating_add(w),
                _ => out.push((id, w)),
            }
        }
        Ok(out)
    }

    /// The group for `set`: [`NHG_PASS`] when no member is live, else the interned bucket table
    /// (derived resiliently from `old` when given).
    fn group_for(
        &mut self,
        set: &NhSet,
        old: Option<&[u32]>,
        plan: &mut Plan,
    ) -> Result<u32, SyncError> {
        let members = self.members(set, plan)?;
        if members.is_empty() {
            return Ok(NHG_PASS);
        }
        let table: Arc<[u32]> = match old {
            Some(t) if !t.is_empty() => buckets::resilient(t, &members).into(),
            _ => buckets::buckets(&members, self.cfg.buckets).into(),
        };
        if let Some(&id) = self.group_of_table.get(&table) {
            return Ok(id);
        }
        let id = self
            .nhg_ids
            .alloc()
            .ok_or(SyncError::IdsExhausted("nexthop group"))?;
        for nh in crate::sync::distinct_nhs(&table) {
            if let Some(n) = self.nhs.get_mut(&nh) {
                n.refs += 1;
            }
        }
        self.groups.insert(
            id,
            Group {
                refs: 0,
                table: table.clone(),
            },
        );
        self.group_of_table.insert(table.clone(), id);
        plan.nhg.push((id, table));
        plan.dead_groups.push(id);
        Ok(id)
    }

    fn nh_for(&mut self, l2: NhL2, plan: &mut Plan) -> Result<u32, SyncError> {
        if let Some(&id) = self.nh_of_l2.get(&l2) {
            return Ok(id);
        }
        let id = self
            .nh_ids
            .alloc()
            .ok_or(SyncError::IdsExhausted("next-hop"))?;
        self.nhs.insert(id, NextHop { refs: 0, l2 });
        self.nh_of_l2.insert(l2, id);
        let port = self.ports.entry(l2.ifindex).or_insert(0);
        if *port == 0 {
            plan.tx_ports.push(l2.ifindex);
        }
        *port += 1;
        plan.nh.push((id, l2));
        plan.dead_nhs.push(id);
        Ok(id)
    }

    fn unref_group(&mut self, id: u32, plan: &mut Plan) {
        if let Some(g) = self.groups.get_mut(&id) {
            g.refs -= 1;
            if g.refs == 0 {
                plan.dead_groups.push(id);
            }
        }
    }

    /// Applies a plan in order, then retires what lost its last reference and commits.
    /// Writes the plan's new tx ports, next-hops, groups and path-list flips, in that order.
    pub(crate) fn write_objects(
        &self,
        plan: &Plan,
        c: &mut WriteCounts,
        first_err: &mut Option<SyncError>,
    ) {
        let m = &self.maps.fib;
        for &ifindex in &plan.tx_ports {
            c.tx_port += 1;
            note_err(first_err, m.tx_port_add(ifindex));
        }
        // 1. next-hops, 2. groups: fresh ids nothing points at yet.
        for (id, l2) in &plan.nh {
            c.nh += 1;
            note_err(first_err, m.nh_write(*id, &nh_value(l2)));
        }
        c.nhg += plan.nhg.len() as u64;
        if plan.nhg.len() > 1 {
            let items: Vec<(u32, &[u32])> = plan.nhg.iter().map(|(id, t)| (*id, &t[..])).collect();
            if let Err(e) = self.maps.nhg_write_batch(&items) {
                first_err.get_or_insert(e);
            }
        } else {
            for (id, table) in &plan.nhg {
                note_err(first_err, m.nhg_write(*id, table));
            }
        }
        // 3. path-list flips: one aligned u32 each.
        for &(pl, nhg) in &plan.pathlist {
            c.pathlist += 1;
            note_err(first_err, m.pathlist_set(pl, nhg));
        }
    }

    fn execute(&mut self, mut plan: Plan) -> Result<BatchReport, SyncError> {
        let mut c = WriteCounts::default();
        let mut first_err: Option<SyncError> = None;
        self.write_objects(&plan, &mut c, &mut first_err);
        // 4. inserts/updates, 5. deletes, in that order within each family. The families touch
        // disjoint maps, so the IPv6 trie (kernel work) runs on another thread while this one
        // updates DIR-24-8 when both have enough to do.
        let lpm4 = self.cfg.engine4 == Engine4::Lpm;
        let mut prefixes = 0u64;
        let (mut ops4, mut dels4) = (Vec::new(), Vec::new());
        let (mut ins6, mut del6) = (Vec::new(), Vec::new());
        for t in &plan.order {
            if t.before == t.after {
                continue;
            }
            prefixes += 1;
            match (t.prefix, t.after) {
                (IpNet::V4(n), Some(v)) => ops4.push((u32::from(n.network()), n.prefix_len(), v)),
                (IpNet::V4(n), None) => dels4.push((u32::from(n.network()), n.prefix_len())),
                (IpNet::V6(n), Some(v)) => ins6.push((u128::from(n.network()), n.prefix_len(), v)),
                (IpNet::V6(n), None) => del6.push((u128::from(n.network()), n.prefix_len())),
            }
        }
        c.fib6 += (ins6.len() + del6.len()) as u64;
        let min = self.cfg.parallel_min.max(1);
        let parallel = ins6.len() + del6.len() >= min && ops4.len() + dels4.len() >= min;
        let fib = &self.maps.fib;
        let dir4 = &mut self.dir4;
        let mut job6 = Some((ins6, del6));
        let six = std::thread::scope(|s| {
            let six = if parallel {
                let (i, d) = job6.take().expect("once");
                Some(s.spawn(move || write_trie6(fib, i, d)))
            } else {
                None
            };
            let mut sink = CountingSink {
                maps: fib,
                c: &mut c,
            };
            let mut ins4 = Vec::new();
            // The table holds the batch's final state already: each write stores final values,
            // in address order (neighbouring buckets and tbl24 lines).
            ops4.sort_unstable();
            dels4.sort_unstable();
            for &(a, l, v) in &ops4 {
                if let Err(e) = dir4.write(&mut sink, a, l, v)
                    && first_err.is_none()
                {
                    first_err = Some(e.into());
                }
                if lpm4 {
                    ins4.push((a.into(), l, FibVal { pl_id: v, flags: 0 }));
                }
            }
            ins4.sort_unstable_by_key(|x: &(std::net::Ipv4Addr, u8, FibVal)| (x.0, x.1));
            sink.c.fib4 += ins4.len() as u64;
            note_err(&mut first_err, fib.fib4_insert_batch(&ins4));
            let mut del4 = Vec::new();
            for &(a, l) in &dels4 {
                dir4.erase(&mut sink, a, l);
                if lpm4 {
                    del4.push((a.into(), l));
                }
            }
            sink.c.fib4 += del4.len() as u64;
            note_err(&mut first_err, fib.fib4_remove_batch(&del4));
            match six {
                Some(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(SyncError::Map("the trie writer panicked".into()))),
                None => {
                    let (i, d) = job6.take().expect("once");
                    write_trie6(fib, i, d)
                }
            }
        });
        if let Err(e) = six {
            first_err.get_or_insert(e);
        }
        // 6. retire what lost its last reference.
        let dead = Dead {
            pls: std::mem::take(&mut plan.dead_pls),
            groups: std::mem::take(&mut plan.dead_groups),
            nhs: std::mem::take(&mut plan.dead_nhs),
        };
        let now = Instant::now();
        self.retire(dead, now, &mut c, &mut first_err);
        let m = &self.maps.fib;
        // Commit: route-cache entries of older generations stop being trusted.
        if prefixes > 0 || !plan.pathlist.is_empty() {
            m.bump_generation();
        }
        self.commit(now);
        self.total.add(&c);
        let report = BatchReport {
            writes: c,
            prefixes,
            pathlist_flips: plan.pathlist.len() as u64,
            batch: self.batch,
        };
        match first_err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Retires the objects among `dead` whose reference count is zero (cascading from path-lists
    /// to groups to next-hops to tx ports): their ids go to quarantine.
    pub(crate) fn retire(
        &mut self,
        dead: Dead,
        now: Instant,
        c: &mut WriteCounts,
        first_err: &mut Option<SyncError>,
    ) {
        let m = &self.maps.fib;
        let mut dead_groups = dead.groups;
        for pl in dead.pls {
            let Some(p) = self.pls.get(&pl) else { continue };
            if p.refs > 0 {
                continue;
            }
            let p = self.pls.remove(&pl).expect("present");
            self.pl_of_set.remove(&p.set);
            for a in p.set.all_addrs() {
                if let Some(s) = self.pls_of_addr.get_mut(&a) {
                    s.remove(&pl);
                    if s.is_empty() {
                        self.pls_of_addr.remove(&a);
                    }
                }
            }
            if let Some(g) = self.groups.get_mut(&p.nhg) {
                g.refs -= 1;
                if g.refs == 0 {
                    dead_groups.push(p.nhg);
                }
            }
            self.pl_ids.retire(pl, self.batch, now);
        }
        let mut dead_nhs = dead.nhs;
        for id in dead_groups {
            let Some(g) = self.groups.get(&id) else {
                continue;
            };
            if g.refs > 0 {
                continue;
            }
            let g = self.groups.remove(&id).expect("present");
            if self.group_of_table.get(&g.table) == Some(&id) {
                self.group_of_table.remove(&g.table);
            }
            for nh in crate::sync::distinct_nhs(&g.table) {
                if let Some(n) = self.nhs.get_mut(&nh) {
                    n.refs -= 1;
                    if n.refs == 0 {
                        dead_nhs.push(nh);
                    }
                }
            }
            self.nhg_ids.retire(id, self.batch, now);
        }
        for id in dead_nhs {
            let Some(n) = self.nhs.get(&id) else { continue };
            if n.refs > 0 {
                continue;
            }
            let n = self.nhs.remove(&id).expect("present");
            if self.nh_of_l2.get(&n.l2) == Some(&id) {
                self.nh_of_l2.remove(&n.l2);
            }
            if let Some(port) = self.ports.get_mut(&n.l2.ifindex) {
                *port -= 1;
                if *port == 0 {
                    self.ports.remove(&n.l2.ifindex);
                    c.tx_port += 1;
                    note_err(first_err, m.tx_port_remove(n.l2.ifindex));
                }
            }
            self.nh_ids.retire(id, self.batch, now);
        }
    }

    pub(crate) fn commit(&mut self, now: Instant) {
        self.batch += 1;
        self.dir4.commit();
        self.pl_ids.release(self.batch, now);
        self.nhg_ids.release(self.batch, now);
        self.nh_ids.release(self.batch, now);
    }

    /// Commits an empty batch (lets quarantined ids age; ribd calls it on a timer when idle).
    pub fn tick(&mut self) {
        if let Err(e) = self.settle_if_ready() {
            tracing::error!(error = %e, "joining the tables of the initial load");
        }
        self.commit(Instant::now());
    }
}

/// The IPv6 part of a batch: inserts/updates, then deletes, each sorted (consecutive kernel
/// operations walk the same trie nodes) and in one batch syscall.
fn write_trie6(
    fib: &fib_ebpf::FibMaps,
    mut ins6: Vec<(u128, u8, u32)>,
    mut del6: Vec<(u128, u8)>,
) -> Result<(), SyncError> {
    ins6.sort_unstable();
    del6.sort_unstable();
    let ins: Vec<_> = ins6
        .iter()
        .map(|&(a, l, pl_id)| (a.into(), l, FibVal { pl_id, flags: 0 }))
        .collect();
    let del: Vec<_> = del6.iter().map(|&(a, l)| (a.into(), l)).collect();
    fib.fib6_insert_batch(&ins)
        .and_then(|()| fib.fib6_remove_batch(&del))
        .map_err(|e| SyncError::Map(e.to_string()))
}

fn note_err(first: &mut Option<SyncError>, r: Result<(), fib_ebpf::MapsError>) {
    if let Err(e) = r
        && first.is_none()
    {
        *first = Some(SyncError::Map(e.to_string()));
    }
}

/// The distinct next-hop ids of a bucket table, in order of first appearance (a linear scan: groups
/// have few members; sorting 256 buckets twice per path-list was a visible part of a failover).
pub(crate) fn distinct_nhs(table: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(8);
    for &nh in table {
        if !out.contains(&nh) {
            out.push(nh);
        }
    }
    out
}

/// The `nh` map value of an L2 next-hop.
pub(crate) fn nh_value(l2: &NhL2) -> Nh {
    Nh {
        ifindex: l2.ifindex,
        smac: l2.smac,
        dmac: l2.dmac,
        vlan: l2.vlan.unwrap_or(0),
        flags: if l2.vlan.is_some() { NH_F_VLAN } else { 0 },
        _pad: 0,
    }
}

/// The L2 next-hop an `nh` map value describes.
pub(crate) fn nh_l2(nh: &Nh) -> NhL2 {
    NhL2 {
        ifindex: nh.ifindex,
        smac: nh.smac,
        dmac: nh.dmac,
        vlan: (nh.flags & NH_F_VLAN != 0).then_some(nh.vlan),
    }
}
