//! The daemon's dataplane: the XDP forwarder attached to the forwarding interfaces, and fib-sync
//! writing the RIB's forwarding table into its pinned maps.
//!
//! ```text
//!   Rib FIB deltas ──to_routes()──► Syncer::apply ──► pinned maps ──► XDP on every configured interface
//!   kernel (netlink) ──event fd (tokio AsyncFd)──► Syncer::poll ──NhtUpdate──► Rib::set_nexthop
//!   Syncer ──(optional, [dataplane.kernel-mirror])──► KernelMirror thread ──► kernel routing table
//! ```
//! When the dataplane cannot be set up (no bpffs, an interface missing, ...) ribd keeps running as a
//! BGP speaker and reports the error in `show summary`; nothing already learned is lost.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use fib_sync::fib_ebpf::abi::StatReason;
use fib_sync::fib_ebpf::loader::{AttachMode, AttachedMode, Engine4, LoadOptions};
use fib_sync::fib_ebpf::{self, Forwarder};
use fib_sync::{
    BulkLoad, FibSync, KernelMirror, MirrorConfig, NhtUpdate, PinnedMaps, Resolver, ResolverConfig,
    Route, RouteAction, SyncConfig, Syncer,
};
use ipnet::IpNet;

use crate::api;
use crate::config::{DataplaneConfig, Ipv4Engine, KernelMirrorConfig, XdpMode};
use crate::rib::{FibDelta, FibEntry, FwdSet};

pub struct Dataplane {
    fwd: Forwarder,
    /// The sync engine; `None` while a restart waits for the RIB's first full FIB (`pending`).
    syncer: Option<Syncer>,
    /// Pinned maps of a previous ribd, adopted at [`Dataplane::reconcile`].
    pending: Option<(PinnedMaps, SyncConfig, Resolver)>,
    pin_dir: PathBuf,
    pub interfaces: Vec<(String, u32, AttachedMode)>,
    flush_on_exit: bool,
    /// Host routes for this box's addresses.
    local: Vec<IpAddr>,
    /// Nothing has been written to fresh maps yet: the first batch carries the local host routes too,
    /// so a first full table finds the maps empty and takes fib-sync's bulk path.
    first_sync_due: bool,
    /// The forwarder's flow-hash seed (for flow lookups).
    hash_seed: u32,
    /// The XDP classifier's maps (FlowSpec / ACL rules), opened on first use.
    classifier: Option<fib_ebpf::acl::Classifier>,
    /// BGP next-hops the RIB uses, tracked for it even when no forwarding entry uses them (a next-hop
    /// that went unreachable must be watched so its recovery is noticed).
    tracked: std::collections::BTreeSet<IpAddr>,
    /// `[dataplane.kernel-mirror]`, applied when the sync engine starts (or after the reconcile).
    mirror_cfg: KernelMirrorConfig,
    /// [`Dataplane::settle_load`] has reported the first sync's transient tables gone.
    load_settled: bool,
    /// Whether the pinned maps held routes at start, [IPv4, IPv6]: forwarding state a previous ribd
    /// left (RFC 4724 Forwarding State bits).
    preserved: [bool; 2],
}

/// Whether `maps` hold any route (anything but "no route" and this box's own host routes), per
/// family [IPv4, IPv6]. IPv4 is read from the DIR-24-8 arrays (mmapped: one pass over 2^24 entries
/// and the groups they point at, tens of ms) or the trie, as `engine4` writes it.
fn preserved_families(maps: &PinnedMaps, engine4: Engine4) -> Result<[bool; 2]> {
    use fib_sync::fib_ebpf::abi::{DIR_ENTRY_TBL8, PL_LOCAL, PL_NO_ROUTE};
    let route = |pl: u32| pl != PL_NO_ROUTE && pl != PL_LOCAL;
    let v4 = match engine4 {
        Engine4::Dir24 => (0..1u32 << 24).any(|i| {
            let e = maps.fib.dir24_load(i);
            if e & DIR_ENTRY_TBL8 != 0 {
                (0..=255u8).any(|j| route(maps.fib.dir8_load(e & !DIR_ENTRY_TBL8, j)))
            } else {
                route(e)
            }
        }),
        Engine4::Lpm => maps.fib4_entries()?.iter().any(|(_, pl)| route(*pl)),
    };
    let v6 = maps.fib6_entries()?.iter().any(|(_, pl)| route(*pl));
    Ok([v4, v6])
}

/// Starts the kernel mirror on `sy` when configured; a failure leaves the XDP dataplane running.
fn start_mirror(sy: &mut Syncer, cfg: &KernelMirrorConfig) {
    if !cfg.enabled {
        return;
    }
    match KernelMirror::start(MirrorConfig {
        table: cfg.table,
        nh_id_base: cfg.nexthop_id_base,
    }) {
        Ok(m) => {
            tracing::info!(
                table = cfg.table,
                "mirroring the FIB into a kernel routing table"
            );
            sy.set_mirror(Some(m));
        }
        Err(e) => {
            tracing::error!(error = %e, "kernel mirror not started (XDP forwarding is unaffected)")
        }
    }
}

/// The RIB's deltas as fib-sync routes. The RIB interns its next-hop sets, so each distinct set is
/// converted once per call and shared by every route that uses it (a full table has a handful of
/// sets; converting per route cost an allocation and a sort each).
pub fn to_routes(deltas: &[FibDelta]) -> Vec<Route> {
    let mut conv = SetCache::default();
    deltas
        .iter()
        .map(|d| conv.route(d.prefix, d.entry.as_ref()))
        .collect()
}

/// The initial load, gathered from the RIB's deltas as they come and written in one bulk load at
/// the end of the start-up phase (`Core`'s first sync). Compact: 16 bytes per IPv4 delta and 32
/// per IPv6 delta ([`BulkLoad`]), where a list of the deltas themselves cost 56 bytes each and
/// their conversion to fib-sync routes another 48 at the end, both alive at once.
#[derive(Default)]
pub struct HeldLoad {
    load: BulkLoad,
    /// The RIB next-hop sets seen, kept alive for the whole load (see [`SetCache`]).
    sets: SetCache,
}

impl HeldLoad {
    /// Deltas held so far.
    pub fn len(&self) -> usize {
        self.load.len()
    }

    pub fn is_empty(&self) -> bool {
        self.load.is_empty()
    }

    /// Adds the deltas while the load stays within `cap` deltas (past it by at most one call's
    /// deltas); false when it does not (the caller gives the held load up). Several peers change
    /// each prefix's forwarding once each (ECMP sets growing path by path: 4 deltas per prefix
    /// from 4 peers), so past the cap only the last delta of each prefix is kept
    /// ([`BulkLoad::compact`]) before giving up, which would cost a walk of the whole RIB at the
    /// end. Given up all the same when that leaves over 3/4 of the cap (compacting would come
    /// round again too soon).
    pub fn hold(&mut self, deltas: &[FibDelta], cap: usize) -> bool {
        if !self.push(deltas) {
            return false;
        }
        if self.len() <= cap {
            return true;
        }
        let (t, n) = (std::time::Instant::now(), self.len());
        self.load.compact();
        tracing::debug!(
            before = n,
            after = self.len(),
            cap,
            ms = t.elapsed().as_millis() as u64,
            "initial load: held deltas compacted"
        );
        self.len() <= cap / 4 * 3
    }

    /// Adds the deltas; false (and some may be left out) once the load is full.
    pub fn push(&mut self, deltas: &[FibDelta]) -> bool {
        let blackhole = RouteAction::Blackhole;
        for d in deltas {
            let ok = match &d.entry {
                None => self.load.push(d.prefix, None),
                Some(FibEntry::Blackhole) => self.load.push(d.prefix, Some(&blackhole)),
                Some(FibEntry::Forward(set)) => {
                    let a = self.sets.action(set);
                    self.load.push(d.prefix, Some(&a))
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

/// RIB next-hop set (by identity) → fib-sync next-hop set. The sets seen are kept alive while the
/// cache lives: the RIB frees a set once no prefix uses it, and the next set may be allocated at the
/// same address, which must not be taken for the freed one.
#[derive(Default)]
struct SetCache {
    last: Option<((usize, usize), RouteAction)>,
    seen: rustc_hash::FxHashMap<(usize, usize), (FwdSet, RouteAction)>,
}

impl SetCache {
    /// The fib-sync action of a RIB next-hop set.
    fn convert(set: &FwdSet) -> RouteAction {
        Route::forward_with_backup(
            IpNet::V4(Default::default()),
            set.iter().map(|n| (n.addr, n.weight)),
            set.backup().iter().map(|n| (n.addr, n.weight)),
        )
        .action
        .unwrap_or(RouteAction::PassToKernel)
    }

    /// The fib-sync action of `set`, converted once per distinct set.
    fn action(&mut self, set: &FwdSet) -> RouteAction {
        let key = (
            set.primary.as_ptr() as usize,
            set.backup.as_ref().map_or(0, |b| b.as_ptr() as usize),
        );
        if let Some((k, a)) = &self.last
            && *k == key
        {
            return a.clone();
        }
        let a = self
            .seen
            .entry(key)
            .or_insert_with(|| (set.clone(), Self::convert(set)))
            .1
            .clone();
        self.last = Some((key, a.clone()));
        a
    }

    fn route(&mut self, prefix: IpNet, entry: Option<&FibEntry>) -> Route {
        let action = match entry {
            None => return Route::withdraw(prefix),
            Some(FibEntry::Blackhole) => RouteAction::Blackhole,
            Some(FibEntry::Forward(set)) => self.action(set),
        };
        Route {
            prefix: prefix.trunc(),
            action: Some(action),
        }
    }
}

/// The RIB's whole forwarding table as fib-sync routes (a first full load whose deltas were not held, a reconcile).
pub fn fib_routes(rib: &crate::rib::Rib) -> Vec<Route> {
    let mut conv = SetCache::default();
    rib.fib()
        .iter()
        .map(|(prefix, e)| conv.route(*prefix, Some(e)))
        .collect()
}

/// Host routes for `local` addresses that `routes` does not leave with a route of their own (a RIB
/// route for the exact host prefix wins; `routes` may name a prefix several times, the last counts).
fn local_routes(local: &[IpAddr], routes: &[Route]) -> Vec<Route> {
    let mut mine: std::collections::HashMap<IpNet, bool> =
        local.iter().map(|a| (IpNet::from(*a), false)).collect();
    if mine.is_empty() {
        return Vec::new();
    }
    for r in routes {
        if let Some(named) = mine.get_mut(&r.prefix) {
            *named = r.action.is_some();
        }
    }
    mine.into_iter()
        .filter(|(_, named)| !named)
        .map(|(prefix, _)| Route {
            prefix,
            action: Some(RouteAction::Local),
        })
        .collect()
}

fn ifindex(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

impl Dataplane {
    /// Loads (or re-uses) the pinned forwarder, attaches it to the configured interfaces (taking over
    /// pinned links of a previous ribd without a gap) and opens the sync engine.
    pub fn start(cfg: &DataplaneConfig, flush_on_exit: bool) -> Result<Dataplane> {
        fib_ebpf::bpffs::ensure_bpffs().context("bpffs")?;
        let opts = LoadOptions {
            instance: Some(cfg.instance.clone()),
            engine4: match cfg.ipv4_engine {
                Ipv4Engine::Dir24 => Engine4::Dir24,
                Ipv4Engine::Trie => Engine4::Lpm,
            },
            route_cache: cfg.route_cache,
            ..LoadOptions::default()
        };
        let pin_dir = opts.pin_dir().context("pin directory")?;
        let mut fwd = Forwarder::load_with(&opts).context("loading the XDP forwarder")?;
        let mut interfaces = Vec::new();
        for name in &cfg.interfaces {
            let idx = ifindex(name);
            anyhow::ensure!(idx != 0, "forwarding interface {name:?} does not exist");
            let mode = match cfg.xdp_mode {
                XdpMode::Auto => AttachMode::Auto,
                XdpMode::Native => AttachMode::Native,
                XdpMode::Generic => AttachMode::Generic,
            };
            let got = fwd
                .attach(name, mode)
                .with_context(|| format!("attaching XDP to {name}"))?;
            tracing::info!(interface = %name, mode = ?got, "XDP forwarder attached");
            interfaces.push((name.clone(), idx, got));
        }
        let maps = PinnedMaps::open(&pin_dir).context("opening the pinned maps")?;
        let sync_cfg = SyncConfig {
            engine4: opts.engine4,
            ..SyncConfig::default()
        };
        let resolver = Resolver::new(ResolverConfig::default()).context("netlink resolver")?;
        let mut preserved = [false, false];
        let (syncer, pending) = if fwd.reused_pinned_maps() {
            preserved = preserved_families(&maps, opts.engine4).unwrap_or_else(|e| {
                tracing::warn!(
                    "reading the pinned routes back failed, none taken as preserved: {e:#}"
                );
                [false, false]
            });
            // A previous ribd left the dataplane forwarding: keep it untouched until the RIB has the
            // whole table again, then write only the difference.
            tracing::info!(dir = %pin_dir.display(), "re-using the pinned dataplane; it keeps forwarding until the first full FIB");
            (None, Some((maps, sync_cfg, resolver)))
        } else {
            let mut sy = Syncer::new(FibSync::new(maps, sync_cfg), resolver);
            start_mirror(&mut sy, &cfg.kernel_mirror);
            (Some(sy), None)
        };
        let first_sync_due = syncer.is_some();
        Ok(Dataplane {
            classifier: None,
            first_sync_due,
            fwd,
            syncer,
            pending,
            pin_dir,
            interfaces,
            flush_on_exit,
            local: Vec::new(),
            hash_seed: opts.hash_seed,
            tracked: std::collections::BTreeSet::new(),
            mirror_cfg: cfg.kernel_mirror.clone(),
            load_settled: false,
            preserved,
        })
    }

    /// Whether the pinned maps held routes at start, [IPv4, IPv6] (all false on fresh maps).
    pub fn preserved(&self) -> [bool; 2] {
        self.preserved
    }

    /// True while a restart waits for the first full FIB.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Adopts the pinned state of the previous process and reconciles it to `fib` (the RIB's whole
    /// forwarding table), writing only what differs. Returns the next-hop reachability for the RIB.
    pub fn reconcile(&mut self, fib: &[FibDelta]) -> Result<Vec<NhtUpdate>> {
        let Some((maps, cfg, resolver)) = self.pending.take() else {
            return Ok(Vec::new());
        };
        let mut expected = to_routes(fib);
        expected.extend(local_routes(&self.local, &expected));
        let (mut sy, rep) = Syncer::restart(maps, cfg, resolver, &expected, Duration::from_secs(3))
            .context("reconciling the pinned dataplane")?;
        start_mirror(&mut sy, &self.mirror_cfg);
        tracing::info!(
            prefixes = expected.len(),
            writes = rep.batch.writes.total(),
            pathlists_kept = rep.pathlists_kept,
            tbl8_kept = rep.tbl8_kept,
            "dataplane reconciled with the RIB (restart without loss)"
        );
        let nht: Vec<NhtUpdate> = sy.resolver.tracked().map(|(a, r)| r.nht(a)).collect();
        self.syncer = Some(sy);
        Ok(nht)
    }

    /// A duplicate of the resolver's event descriptor, to wait on with tokio.
    pub fn event_fd(&self) -> Result<OwnedFd> {
        let fd = match (&self.syncer, &self.pending) {
            (Some(sy), _) => sy.resolver.event_fd().try_clone_to_owned()?,
            (None, Some((_, _, r))) => r.event_fd().try_clone_to_owned()?,
            (None, None) => anyhow::bail!("no resolver"),
        };
        Ok(fd)
    }

    /// Applies one batch of RIB deltas; returns reachability of next-hops seen for the first time.
    pub fn apply(&mut self, deltas: &[FibDelta]) -> Result<Vec<NhtUpdate>> {
        self.apply_routes(to_routes(deltas))
    }

    /// True while nothing has been written to fresh maps: the daemon holds the RIB's deltas during
    /// the initial load and writes the whole table at once ([`Dataplane::apply_held`]).
    pub fn first_sync_due(&self) -> bool {
        self.first_sync_due
    }

    /// Writes the initial load gathered in `held` (one bulk load into empty maps), with the host
    /// routes of the local addresses it does not route itself.
    pub fn apply_held(&mut self, held: HeldLoad) -> Result<Vec<NhtUpdate>> {
        let Some(syncer) = self.syncer.as_mut() else {
            return Ok(Vec::new());
        };
        let mut load = held.load;
        drop(held.sets);
        if self.first_sync_due {
            self.first_sync_due = false;
            for a in &self.local {
                let p = IpNet::from(*a);
                if load.last_is_route(p) != Some(true) {
                    load.push(p, Some(&RouteAction::Local));
                }
            }
        }
        let t = std::time::Instant::now();
        let n = load.len();
        let held_mib = load.entry_bytes() as f64 / f64::from(1 << 20);
        let (report, nht) = syncer.apply_load(load)?;
        tracing::debug!(
            routes = n,
            held_mib,
            prefixes = report.prefixes,
            writes = report.writes.total(),
            secs = t.elapsed().as_secs_f64(),
            "initial load applied"
        );
        Ok(nht)
    }

    /// Applies fib-sync routes (a batch of deltas, or the RIB's whole table for the first sync).
    pub fn apply_routes(&mut self, mut routes: Vec<Route>) -> Result<Vec<NhtUpdate>> {
        let Some(syncer) = self.syncer.as_mut() else {
            // Restarting: the RIB's whole table is written at reconcile time.
            return Ok(Vec::new());
        };
        if self.first_sync_due {
            self.first_sync_due = false;
            routes.extend(local_routes(&self.local, &routes));
        }
        let t = std::time::Instant::now();
        let (report, nht) = syncer.apply(&routes)?;
        tracing::debug!(
            prefixes = report.prefixes,
            writes = report.writes.total(),
            secs = t.elapsed().as_secs_f64(),
            "FIB batch applied"
        );
        Ok(nht)
    }

    /// Makes next-hop tracking follow the RIB's set of BGP next-hops; returns the state of newly
    /// tracked ones.
    pub fn track_nexthops(&mut self, wanted: &[IpAddr]) -> Result<Vec<NhtUpdate>> {
        let Some(sy) = self.syncer.as_mut() else {
            return Ok(Vec::new());
        };
        let wanted: std::collections::BTreeSet<IpAddr> = wanted.iter().copied().collect();
        let mut out = Vec::new();
        for a in wanted.difference(&self.tracked) {
            out.push(sy.track(*a)?);
        }
        for a in self.tracked.difference(&wanted) {
            sy.untrack(*a)?;
        }
        self.tracked = wanted;
        Ok(out)
    }

    /// Starts resolving the next-hops of `wanted` not tracked yet (none is untracked: that waits
    /// for [`Dataplane::track_nexthops`] after the batch's deltas are applied); returns their state.
    pub fn track_added(&mut self, wanted: &[IpAddr]) -> Result<Vec<NhtUpdate>> {
        let Some(sy) = self.syncer.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for a in wanted {
            if !self.tracked.contains(a) {
                out.push(sy.track(*a)?);
                self.tracked.insert(*a);
            }
        }
        Ok(out)
    }

    /// BGP lost every path through `addrs` (a session went down and was their only source): the
    /// path-lists containing them move to their other live next-hops or their backups now, one
    /// store each, before the RIB walks the prefixes; [`Dataplane::restore_nexthops`] lifts the
    /// mark once the RIB's deltas are applied.
    pub fn withdraw_nexthops(&mut self, addrs: &[IpAddr]) -> Result<()> {
        let Some(sy) = self.syncer.as_mut() else {
            return Ok(());
        };
        let r = sy.withdraw_nexthops(addrs)?;
        tracing::info!(
            nexthops = ?addrs,
            pathlist_flips = r.pathlist_flips,
            "session down: path-lists moved off its next-hops (PIC)"
        );
        Ok(())
    }

    /// Lifts the marks [`Dataplane::withdraw_nexthops`] set (the RIB's deltas are applied).
    pub fn restore_nexthops(&mut self) -> Result<()> {
        let Some(sy) = self.syncer.as_mut() else {
            return Ok(());
        };
        if let Some(r) = sy.restore_nexthops()?
            && r.pathlist_flips > 0
        {
            tracing::info!(
                pathlist_flips = r.pathlist_flips,
                "withdrawn next-hops used again"
            );
        }
        Ok(())
    }

    /// Joins the IPv6 table of the first sync's bulk load once it is built (never waits). True the
    /// one time this finds that load's transient tables gone (the sorted IPv6 routes: 7.7 MB on the
    /// 240k-prefix table, freed after the End-of-RIB heap trim ran, so they stayed resident): the
    /// caller returns the freed heap then.
    pub fn settle_load(&mut self) -> bool {
        let Some(sy) = self.syncer.as_mut() else {
            return false;
        };
        if self.load_settled || sy.sync.batches() == 0 {
            return false;
        }
        if let Err(e) = sy.sync.settle_if_ready() {
            tracing::error!("joining the initial load's IPv6 table: {e}");
        }
        self.load_settled = !sy.sync.load_pending();
        self.load_settled
    }

    /// Kernel changes (links, neighbours, routes): prefix-independent rewrites, then NHT for the RIB.
    pub fn poll(&mut self) -> Result<Vec<NhtUpdate>> {
        let Some(syncer) = self.syncer.as_mut() else {
            if let Some((_, _, r)) = self.pending.as_mut() {
                r.poll(Duration::ZERO)?;
            }
            return Ok(Vec::new());
        };
        let (report, nht) = syncer.poll(Duration::ZERO)?;
        if let Some(r) = report {
            tracing::info!(
                pathlist_flips = r.pathlist_flips,
                "next-hop change applied to the dataplane"
            );
        }
        Ok(nht)
    }

    fn classifier(&mut self) -> Result<&mut fib_ebpf::acl::Classifier> {
        if self.classifier.is_none() {
            self.classifier = Some(
                self.fwd
                    .classifier()
                    .context("opening the classifier maps")?,
            );
        }
        self.classifier.as_mut().context("classifier")
    }

    /// Makes `rules` (in priority order) the classifier's active rule set, atomically; rules keep
    /// their counters and rate-limiter state by id.
    pub fn install_rules(&mut self, rules: &[fib_ebpf::acl::Rule]) -> Result<()> {
        let set = fib_ebpf::acl::RuleSet::new(rules.to_vec());
        self.classifier()?
            .install(&set)
            .context("installing the rule set")?;
        Ok(())
    }

    /// Per-rule counters of the installed rules (summed over CPUs); none before the first install.
    pub fn rule_counters(&self) -> Result<Vec<fib_ebpf::acl::RuleCounters>> {
        match &self.classifier {
            Some(c) => Ok(c.counters()?),
            None => Ok(Vec::new()),
        }
    }

    pub fn stats(&self) -> api::DataplaneStats {
        let reasons = self
            .fwd
            .stats()
            .map(|v| {
                v.into_iter()
                    .map(|(r, c)| api::ReasonCounter {
                        reason: r.name().into(),
                        packets: c.packets,
                        bytes: c.bytes,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut nexthops = Vec::new();
        for (addr, l2) in self.resolved() {
            let Some(sy) = &self.syncer else { break };
            if let Some(id) = sy.sync.nh_id(&l2) {
                let c = sy.sync.maps().fib.nh_stats(id).unwrap_or_default();
                nexthops.push(api::NextHopCounter {
                    id,
                    interface: format!("{} ({addr})", ifname(l2.ifindex)),
                    mac: mac(&l2.dmac),
                    packets: c.packets,
                    bytes: c.bytes,
                });
            }
        }
        nexthops.sort_by_key(|n| n.id);
        nexthops.dedup_by_key(|n| n.id);
        api::DataplaneStats { reasons, nexthops }
    }

    fn resolved(&self) -> Vec<(IpAddr, fib_sync::NhL2)> {
        let Some(sy) = &self.syncer else {
            return Vec::new();
        };
        sy.resolver
            .tracked()
            .filter_map(|(a, _)| sy.sync.resolution(&a).map(|l| (a, l)))
            .collect()
    }

    pub fn forwarded_packets(&self) -> u64 {
        self.fwd
            .stats()
            .ok()
            .and_then(|v| v.into_iter().find(|(r, _)| *r == StatReason::Forwarded))
            .map(|(_, c)| c.packets)
            .unwrap_or(0)
    }

    /// Fills in what the dataplane holds for a route (ids, resolution of each next-hop).
    pub fn describe(&self, r: &mut api::FibRoute) {
        let Ok(prefix) = r.prefix.parse::<IpNet>() else {
            return;
        };
        let Some(sy) = &self.syncer else { return };
        r.pathlist = sy.sync.route(&prefix);
        r.group = r.pathlist.and_then(|pl| sy.sync.group_of(pl));
        let buckets = r.group.and_then(|g| sy.sync.maps().fib.nhg_read(g).ok());
        for nh in r.nexthops.iter_mut().chain(r.backup.iter_mut()) {
            if let Some(l2) = sy.sync.resolution(&nh.address) {
                nh.resolved = true;
                nh.interface = Some(ifname(l2.ifindex));
                nh.mac = Some(mac(&l2.dmac));
                // A next-hop without a dataplane id is in no group: none of this group's buckets.
                if let Some(b) = &buckets {
                    let id = sy.sync.nh_id(&l2);
                    nh.buckets = Some(b.iter().filter(|x| Some(**x) == id).count() as u32);
                }
            }
        }
    }

    /// The next-hop one flow to `dst` takes under the route `r`: the forwarder's hash over the flow, the
    /// bucket it selects in the group the maps hold, and that bucket's next-hop.
    pub fn flow(
        &self,
        r: &api::FibRoute,
        src: IpAddr,
        dst: IpAddr,
        q: &api::FlowQuery,
    ) -> Option<api::FlowChoice> {
        let sy = self.syncer.as_ref()?;
        let group = r.group?;
        let table = sy.sync.maps().fib.nhg_read(group).ok()?;
        if table.is_empty() {
            return None;
        }
        let ports = q
            .sport
            .zip(q.dport)
            .or(q.sport.map(|s| (s, 0)))
            .or(q.dport.map(|d| (0, d)));
        let proto = q.proto.unwrap_or(match (ports, dst) {
            (Some(_), _) => 6,
            (None, IpAddr::V4(_)) => 1,
            (None, IpAddr::V6(_)) => 58,
        });
        let hash = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                fib_ebpf::flow::flow_hash_v4(self.hash_seed, s, d, proto, ports)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                fib_ebpf::flow::flow_hash_v6(self.hash_seed, s, d, proto, ports)
            }
            _ => return None,
        };
        let bucket = fib_ebpf::flow::bucket_of(hash, table.len());
        let nh_id = table[bucket];
        let chosen = self
            .resolved()
            .into_iter()
            .find(|(_, l2)| sy.sync.nh_id(l2) == Some(nh_id));
        Some(api::FlowChoice {
            source: src,
            protocol: proto,
            source_port: ports.map(|p| p.0),
            destination_port: ports.map(|p| p.1),
            hash,
            group,
            bucket: bucket as u32,
            buckets: table.len() as u32,
            nexthop: chosen.map(|(a, _)| a),
            interface: chosen.map(|(_, l2)| ifname(l2.ifindex)),
            mac: chosen.map(|(_, l2)| mac(&l2.dmac)),
        })
    }

    /// RIB vs engine vs maps.
    pub fn check(&self, expected: &[FibDelta]) -> api::CheckReport {
        let mut routes = to_routes(expected);
        routes.extend(local_routes(&self.local, &routes));
        let Some(sy) = &self.syncer else {
            return api::CheckReport { ok: false, checked: 0, differences: vec!["restarting: the dataplane is reconciled after End-of-RIB from every peer (or the initial-sync timeout)".into()] };
        };
        match sy.sync.check(&routes) {
            Ok(m) => api::CheckReport {
                ok: m.is_empty(),
                checked: routes.len() as u64,
                differences: m.iter().map(|x| format!("{x:?}")).collect(),
            },
            Err(e) => api::CheckReport {
                ok: false,
                checked: 0,
                differences: vec![format!("check failed: {e}")],
            },
        }
    }

    pub fn summary(&self, cfg: &DataplaneConfig) -> api::DataplaneSummary {
        api::DataplaneSummary {
            enabled: true,
            instance: cfg.instance.clone(),
            interfaces: self
                .interfaces
                .iter()
                .map(|(n, i, m)| api::Interface {
                    name: n.clone(),
                    ifindex: *i,
                    mode: format!("{m:?}").to_lowercase(),
                })
                .collect(),
            error: None,
        }
    }

    /// Installs host routes for this box's own addresses so XDP hands their traffic to the kernel even
    /// when a BGP route covers them.
    pub fn install_local(&mut self, addrs: &[IpAddr]) -> Result<()> {
        self.local = addrs.to_vec();
        if self.first_sync_due {
            // They go with the first batch (fresh maps stay empty until then).
            return Ok(());
        }
        let Some(sy) = self.syncer.as_mut() else {
            return Ok(());
        };
        let routes: Vec<Route> = addrs
            .iter()
            .map(|a| Route {
                prefix: IpNet::from(*a),
                action: Some(RouteAction::Local),
            })
            .collect();
        sy.apply(&routes)?;
        Ok(())
    }

    /// Stop: by default the pinned maps and links stay and the forwarder keeps forwarding.
    pub fn shutdown(mut self) {
        if !self.flush_on_exit {
            tracing::info!(dir = %self.pin_dir.display(), "dataplane left forwarding (pinned); restart ribd to take over");
            return;
        }
        for (name, _, _) in self.interfaces.clone() {
            if let Err(e) = self.fwd.detach(&name) {
                tracing::warn!(interface = %name, error = %e, "detach failed");
            }
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        tracing::info!(dir = %self.pin_dir.display(), "--flush-on-exit: XDP detached and pinned maps removed");
    }
}

fn ifname(idx: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(idx, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("if{idx}");
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rib::FibNextHop;

    fn delta(i: u8, set: Option<FibEntry>) -> FibDelta {
        FibDelta {
            prefix: IpNet::V4(ipnet::Ipv4Net::new([10, 0, i, 0].into(), 24).unwrap()),
            entry: set,
        }
    }

    fn via(i: u8) -> FibEntry {
        FibEntry::Forward(FwdSet::new(Arc::from([FibNextHop {
            addr: IpAddr::V4([192, 0, 2, i].into()),
            weight: 1,
        }])))
    }

    /// Four peers add to each prefix's ECMP set in turn: four deltas per prefix, twice the cap of
    /// two per prefix. The load keeps the last of each and stays held; a load of distinct
    /// prefixes past the cap is given up.
    #[test]
    fn a_held_load_keeps_the_last_delta_of_each_prefix_at_its_cap() {
        let (n, cap) = (50u8, 100);
        let mut h = HeldLoad::default();
        for peer in 1..=4u8 {
            for i in 0..n {
                let set: Vec<FibNextHop> = (1..=peer)
                    .map(|k| FibNextHop {
                        addr: IpAddr::V4([192, 0, 2, k].into()),
                        weight: 1,
                    })
                    .collect();
                let d = delta(i, Some(FibEntry::Forward(FwdSet::new(Arc::from(set)))));
                assert!(h.hold(&[d], cap), "peer {peer}, prefix {i}");
            }
        }
        assert!(h.len() <= cap + 1);
        let mut last: std::collections::BTreeMap<IpNet, Option<RouteAction>> = Default::default();
        for r in h.load.routes() {
            last.insert(r.prefix, r.action);
        }
        assert_eq!(last.len(), n as usize);
        let four = RouteAction::Forward(fib_sync::NhSet::new(
            (1..=4u8).map(|k| (IpAddr::V4([192, 0, 2, k].into()), 1)),
        ));
        assert!(last.values().all(|a| a.as_ref() == Some(&four)));

        let mut h = HeldLoad::default();
        let fits: Vec<bool> = (0..=cap as u8)
            .map(|i| h.hold(&[delta(i, None)], cap))
            .collect();
        assert!(fits[..cap].iter().all(|f| *f));
        assert!(!fits[cap], "distinct prefixes past the cap: given up");
    }

    /// The RIB frees a next-hop set once no prefix uses it, and the next set may be allocated at
    /// the same address: the held load must not take it for the freed one.
    #[test]
    fn a_held_load_tells_apart_sets_allocated_where_a_freed_one_was() {
        let mut h = HeldLoad::default();
        for i in 0..64u8 {
            // Each delta (and with it the only other reference to its set) is dropped at once.
            assert!(h.push(&[delta(i, Some(via(i)))]));
        }
        assert!(h.push(&[delta(3, None), delta(4, Some(FibEntry::Blackhole))]));
        assert_eq!(h.len(), 66);
        let mut last: std::collections::BTreeMap<IpNet, Option<RouteAction>> = Default::default();
        for r in h.load.routes() {
            last.insert(r.prefix, r.action);
        }
        for i in 0..64u8 {
            let want = match i {
                3 => None,
                4 => Some(RouteAction::Blackhole),
                _ => Some(RouteAction::Forward(fib_sync::NhSet::new([(
                    IpAddr::V4([192, 0, 2, i].into()),
                    1,
                )]))),
            };
            assert_eq!(last[&delta(i, None).prefix], want, "10.0.{i}.0/24");
        }
    }
}
