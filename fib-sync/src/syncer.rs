//! [`Syncer`]: the engine and the resolver together, as ribd drives them.
//!
//! ```text
//!   RIB ──apply(routes)──► track new next-hops (resolve now) ─► FibSync::set_nexthops ─► FibSync::apply
//!   RIB ◄──NhtUpdate────── poll(): kernel events ─► re-resolve ─► FibSync::set_nexthops (PIC)
//!   session down ──withdraw_nexthops──► FibSync::withdraw_nexthops (PIC, before the RIB's walk)
//!   (both, optionally) ─► KernelMirror (queued, written by its own thread into a kernel table)
//! ```

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::mirror::KernelMirror;
use crate::resolve::{Resolution, Resolver};
use crate::sync::{BatchReport, FibSync};
use crate::types::{NhL2, NhtUpdate, Route, RouteAction};
use crate::{BulkLoad, SyncError};

pub struct Syncer {
    pub sync: FibSync,
    pub resolver: Resolver,
    /// Next-hops the RIB asked to track whether or not a route uses them.
    rib_tracked: FxHashSet<IpAddr>,
    /// Last (reachable, cost) reported per next-hop.
    reported: FxHashMap<IpAddr, (bool, Option<u32>)>,
    /// Optional copy of the FIB in a kernel routing table.
    mirror: Option<KernelMirror>,
}

impl Syncer {
    pub fn new(sync: FibSync, resolver: Resolver) -> Syncer {
        Syncer {
            sync,
            resolver,
            rib_tracked: FxHashSet::default(),
            reported: FxHashMap::default(),
            mirror: None,
        }
    }

    /// Starts (or, with `None`, stops) mirroring the FIB into a kernel routing table; a new mirror
    /// gets the current next-hops and the whole table first.
    pub fn set_mirror(&mut self, mirror: Option<KernelMirror>) {
        if let Some(m) = &mirror {
            m.nexthops(
                self.resolver
                    .tracked()
                    .map(|(a, r)| (a, r.kernel_nh()))
                    .collect(),
            );
            m.routes(self.sync.table());
        }
        self.mirror = mirror;
    }

    pub fn mirror(&self) -> Option<&KernelMirror> {
        self.mirror.as_ref()
    }

    fn mirror_nexthops(&self, changes: &[(IpAddr, Resolution)]) {
        if let Some(m) = &self.mirror {
            m.nexthops(changes.iter().map(|(a, r)| (*a, r.kernel_nh())).collect());
        }
    }

    fn note(&mut self, addr: IpAddr, r: &Resolution, out: &mut Vec<NhtUpdate>) {
        let v = (r.reachable, r.igp_cost);
        if self.reported.insert(addr, v) != Some(v) {
            out.push(r.nht(addr));
        }
    }

    /// Tracks `addr` for the RIB (next-hop tracking) and returns its state now.
    pub fn track(&mut self, addr: IpAddr) -> Result<NhtUpdate, SyncError> {
        self.rib_tracked.insert(addr);
        let r = self.resolver.track(addr)?;
        self.mirror_nexthops(&[(addr, r)]);
        self.sync.set_nexthops(&[(addr, r.l2)])?;
        self.reported.insert(addr, (r.reachable, r.igp_cost));
        Ok(r.nht(addr))
    }

    pub fn untrack(&mut self, addr: IpAddr) -> Result<(), SyncError> {
        self.rib_tracked.remove(&addr);
        if !self.sync.uses_nexthop(&addr) {
            self.reported.remove(&addr);
            self.resolver.untrack(addr)?;
            if let Some(m) = &self.mirror {
                m.nexthops(vec![(addr, None)]);
            }
        }
        Ok(())
    }

    /// One batch of routes. New next-hops are resolved first, so a route over a next-hop whose
    /// neighbour is known forwards from its first packet. Returns the batch report and the
    /// reachability of next-hops seen for the first time.
    pub fn apply(&mut self, routes: &[Route]) -> Result<(BatchReport, Vec<NhtUpdate>), SyncError> {
        let nht = self.track_new(routes.iter().map(|r| &r.action))?;
        let report = self.sync.apply(routes)?;
        if let Some(m) = &self.mirror {
            m.routes(routes.to_vec());
        }
        self.untrack_unused()?;
        Ok((report, nht))
    }

    /// [`Syncer::apply`] for a batch gathered as a [`BulkLoad`] (the initial load, written in one
    /// bulk load when the maps are empty).
    pub fn apply_load(
        &mut self,
        load: BulkLoad,
    ) -> Result<(BatchReport, Vec<NhtUpdate>), SyncError> {
        let nht = self.track_new(load.actions().iter())?;
        if let Some(m) = &self.mirror {
            m.routes(load.routes());
        }
        let report = self.sync.apply_load(load)?;
        self.untrack_unused()?;
        Ok((report, nht))
    }

    /// Resolves the next-hops of `actions` seen for the first time; returns their reachability.
    fn track_new<'a>(
        &mut self,
        actions: impl Iterator<Item = &'a Option<RouteAction>>,
    ) -> Result<Vec<NhtUpdate>, SyncError> {
        let mut new: Vec<IpAddr> = Vec::new();
        for a in actions {
            if let Some(RouteAction::Forward(set)) = a {
                for a in set.all_addrs() {
                    if self.resolver.get(&a).is_none() {
                        new.push(a);
                    }
                }
            }
        }
        new.sort_unstable();
        new.dedup();
        let mut nht = Vec::new();
        let mut res: Vec<(IpAddr, Option<NhL2>)> = Vec::new();
        let mut full: Vec<(IpAddr, Resolution)> = Vec::new();
        for a in new {
            let r = self.resolver.track(a)?;
            res.push((a, r.l2));
            full.push((a, r));
            self.note(a, &r, &mut nht);
        }
        if !res.is_empty() {
            self.mirror_nexthops(&full);
            self.sync.set_nexthops(&res)?;
        }
        Ok(nht)
    }

    /// Next-hops no route uses any more and the RIB does not track: stop resolving them.
    fn untrack_unused(&mut self) -> Result<(), SyncError> {
        let unused: Vec<IpAddr> = self
            .resolver
            .tracked()
            .map(|(a, _)| a)
            .filter(|a| !self.rib_tracked.contains(a) && !self.sync.uses_nexthop(a))
            .collect();
        for a in unused {
            self.reported.remove(&a);
            self.resolver.untrack(a)?;
            self.sync.set_nexthops(&[(a, None)])?;
            if let Some(m) = &self.mirror {
                m.nexthops(vec![(a, None)]);
            }
        }
        Ok(())
    }

    /// BGP lost every path through `addrs` (their only session went down): the path-lists
    /// containing them move to their other live members, or to their backups, in one batch before
    /// the RIB walks its prefixes (BGP PIC). The kernel mirror drops them too.
    pub fn withdraw_nexthops(&mut self, addrs: &[IpAddr]) -> Result<BatchReport, SyncError> {
        let report = self.sync.withdraw_nexthops(addrs)?;
        if let Some(m) = &self.mirror {
            m.nexthops(addrs.iter().map(|a| (*a, None)).collect());
        }
        Ok(report)
    }

    /// Lifts every withdrawn mark (after the RIB's deltas that follow a withdrawal were applied:
    /// no prefix uses those next-hops any more unless a path through them came back).
    pub fn restore_nexthops(&mut self) -> Result<Option<BatchReport>, SyncError> {
        let lifted: Vec<IpAddr> = self.sync.withdrawn_nexthops().collect();
        if lifted.is_empty() {
            return Ok(None);
        }
        let report = self.sync.restore_nexthops(None)?;
        if let Some(m) = &self.mirror {
            let back: Vec<_> = lifted
                .iter()
                .filter_map(|a| self.resolver.get(a).map(|r| (*a, r.kernel_nh())))
                .collect();
            if !back.is_empty() {
                m.nexthops(back);
            }
        }
        Ok(report)
    }

    /// Waits up to `timeout` for kernel changes; applies changed resolutions (only the path-lists
    /// containing a changed next-hop are rewritten) and returns the batch (if any) and the
    /// reachability changes for the RIB.
    pub fn poll(
        &mut self,
        timeout: Duration,
    ) -> Result<(Option<BatchReport>, Vec<NhtUpdate>), SyncError> {
        // The daemon polls when idle: the right moment to drop what the initial load left.
        self.sync.settle_if_ready()?;
        let changes = self.resolver.poll(timeout)?;
        self.absorb(changes)
    }

    /// Re-resolves every tracked next-hop now (after a restart, or periodically as a safety net).
    pub fn refresh(&mut self) -> Result<(Option<BatchReport>, Vec<NhtUpdate>), SyncError> {
        let changes = self.resolver.refresh()?;
        self.absorb(changes)
    }

    fn absorb(
        &mut self,
        changes: Vec<(IpAddr, Resolution)>,
    ) -> Result<(Option<BatchReport>, Vec<NhtUpdate>), SyncError> {
        if changes.is_empty() {
            return Ok((None, Vec::new()));
        }
        let mut nht = Vec::new();
        let l2: Vec<(IpAddr, Option<NhL2>)> = changes.iter().map(|(a, r)| (*a, r.l2)).collect();
        for (a, r) in &changes {
            self.note(*a, r, &mut nht);
        }
        let report = self.sync.set_nexthops(&l2)?;
        self.mirror_nexthops(&changes);
        Ok((Some(report), nht))
    }
}

impl Syncer {
    /// Starts over the pinned maps of a previous process: tracks every next-hop of `expected` (the
    /// RIB's first full FIB, after End-of-RIB or a timeout), waits up to `wait` for their
    /// neighbours, then adopts the pinned state and writes only the difference.
    pub fn restart(
        maps: crate::PinnedMaps,
        cfg: crate::SyncConfig,
        mut resolver: Resolver,
        expected: &[Route],
        wait: Duration,
    ) -> Result<(Syncer, crate::reconcile::ReconcileReport), SyncError> {
        let mut addrs: Vec<IpAddr> = expected
            .iter()
            .filter_map(|r| match &r.action {
                Some(RouteAction::Forward(set)) => Some(set.all_addrs().collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        for &a in &addrs {
            resolver.track(a)?;
        }
        let deadline = std::time::Instant::now() + wait;
        while resolver
            .tracked()
            .any(|(_, r)| r.reachable && r.l2.is_none())
            && std::time::Instant::now() < deadline
        {
            resolver.poll(Duration::from_millis(50))?;
        }
        let res: Vec<(IpAddr, Option<NhL2>)> = resolver.tracked().map(|(a, r)| (a, r.l2)).collect();
        let (sync, report) = FibSync::restart(maps, cfg, &res, expected)?;
        let mut sy = Syncer::new(sync, resolver);
        let tracked: Vec<(IpAddr, Resolution)> = sy.resolver.tracked().collect();
        for (a, r) in tracked {
            sy.reported.insert(a, (r.reachable, r.igp_cost));
        }
        Ok((sy, report))
    }
}
