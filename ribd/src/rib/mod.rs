//! The routing information base: candidate paths per prefix, best path and multipath selection, and
//! the FIB deltas that follow from them.
//!
//! ```text
//!   import (after policy) ──announce/withdraw──► Table<Ipv4Net> / Table<Ipv6Net>
//!        peer up/down, End-of-RIB, GR stale ──►      │  per prefix: paths best-first, multipath count
//!   next-hop tracking (fib-sync) ──set_nexthop──►    │  (re-runs selection only where the next-hop is used)
//!                                                    ▼
//!                                     FibDelta { prefix, Option<FibEntry> }  (only when forwarding changes)
//! ```
//!
//! Protocol-independent: attributes are the RIB's own [`attrs::Attrs`], interned once per distinct set;
//! peers are described by [`decision::PeerInfo`]. Nothing here touches sockets, BGP messages or eBPF.

pub mod attrs;
pub mod decision;
pub mod table;

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use attrs::{AttrRef, AttrStore, Attrs, SelectionAttrs};
use decision::{Candidate, DecisionConfig, Joins, Key, PeerInfo, PeerKind, Selection, Step};
use table::{Path, PathRef, PathSlice, Paths, PeerId, PrefixKey, Table, flags};

/// Reachability of a BGP next-hop, as next-hop tracking reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NhState {
    pub reachable: bool,
    pub igp_cost: u32,
}

/// One next-hop of a forwarding entry with its relative weight (UCMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FibNextHop {
    pub addr: IpAddr,
    pub weight: u32,
}

/// An interned, sorted set of next-hops; every prefix forwarding over the same set shares one.
pub type NhSet = Arc<[FibNextHop]>;

/// Where a prefix forwards: the primary next-hops (best path and multipath set) and, when the RIB
/// has an alternative, the backup next-hops (PIC edge: the next-hops of the best path not through a
/// primary next-hop, with its multipath set), which the dataplane uses only while every primary is
/// dead. Dereferences to the primary set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwdSet {
    pub primary: NhSet,
    pub backup: Option<NhSet>,
}

impl FwdSet {
    /// A primary set without backup.
    pub fn new(primary: NhSet) -> FwdSet {
        FwdSet {
            primary,
            backup: None,
        }
    }

    /// The backup next-hops (empty without backup).
    pub fn backup(&self) -> &[FibNextHop] {
        self.backup.as_deref().unwrap_or(&[])
    }
}

impl std::ops::Deref for FwdSet {
    type Target = [FibNextHop];
    fn deref(&self) -> &[FibNextHop] {
        &self.primary
    }
}

/// What the dataplane should do with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FibEntry {
    Forward(FwdSet),
    Blackhole,
}

/// A change of the forwarding result for one prefix; `None` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibDelta {
    pub prefix: IpNet,
    pub entry: Option<FibEntry>,
}

/// How many peers (local origins included) the RIB holds at once: paths name theirs with a 16-bit
/// [`PeerId`].
pub const MAX_PEERS: usize = PeerId::MAX as usize + 1;

/// [`Rib::add_peer`] found every peer slot taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyPeers {
    /// The peer that did not fit.
    pub name: String,
}

impl std::fmt::Display for TooManyPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peer {}: the RIB holds at most {MAX_PEERS} peers and local origins at once",
            self.name
        )
    }
}

impl std::error::Error for TooManyPeers {}

/// RIB configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RibConfig {
    pub ipv4: DecisionConfig,
    pub ipv6: DecisionConfig,
    /// Treat next-hops that next-hop tracking has not reported yet as reachable (cost 0).
    pub nexthop_default_reachable: bool,
    /// Export a backup next-hop set with each forwarding entry that has an alternative path (PIC
    /// edge): the dataplane switches to it in one store per path-list when every primary dies.
    pub backup_paths: bool,
}

impl Default for RibConfig {
    fn default() -> Self {
        RibConfig {
            ipv4: DecisionConfig::default(),
            ipv6: DecisionConfig::default(),
            nexthop_default_reachable: true,
            backup_paths: true,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibStats {
    pub selections: u64,
    pub fib_deltas: u64,
}

/// Where the RIB's bytes go (see [`Rib::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RibMemory {
    pub ipv4: table::TableMemory,
    pub ipv6: table::TableMemory,
    /// Distinct interned attribute sets.
    pub attr_sets: usize,
    /// The sets themselves with their `Arc` counters.
    pub attr_set_bytes: usize,
    /// Their lists (AS path segments and numbers, communities, ...).
    pub attr_list_bytes: usize,
    /// The interning table's slots.
    pub attr_index_bytes: usize,
    /// Interned next-hop sets of forwarding entries.
    pub nhset_bytes: usize,
}

/// A candidate with its explanation, for `show route PREFIX`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainedPath {
    pub peer: String,
    pub path_id: u32,
    pub attrs: Attrs,
    pub best: bool,
    pub multipath: bool,
    pub reachable: bool,
    pub igp_cost: u32,
    pub stale: bool,
    /// Why the best path won over this one (`None` for the best itself).
    pub lost_at: Option<Step>,
    pub reason: Option<String>,
}

/// The routing information base.
#[derive(Debug)]
pub struct Rib {
    cfg: RibConfig,
    peers: Vec<Option<PeerInfo>>,
    attrs: AttrStore,
    nhsets: HashSet<NhSet, FxBuildHasher>,
    /// The two sets [`Sink::intern`] gave last, the latest first (see there).
    nhset_last: [Option<NhSet>; 2],
    /// The set [`emit_joined`] gave last for paths that forward to their peers.
    peer_set: PeerSetMemo,
    nhsets_gc_at: usize,
    v4: Table<Ipv4Net>,
    v6: Table<Ipv6Net>,
    nht: HashMap<IpAddr, NhState, FxBuildHasher>,
    deltas: Vec<FibDelta>,
    stats: RibStats,
    fib_len: [usize; 2],
    /// Prefix-paths held: `[ipv4, ipv6]` (kept as paths come and go, so counting is O(1)).
    paths: [usize; 2],
    /// Prefix-paths held per peer (indexed like `peers`): `[ipv4, ipv6]`, kept the same way.
    peer_paths: Vec<[usize; 2]>,
    track_best: bool,
    /// Report every change of a prefix's candidates, not only of its best path (ADD-PATH export).
    track_all: bool,
    best_changed: Vec<IpNet>,
    /// Changes of what a [`PathReading`] reads besides the set (peers, next-hop states): one
    /// taken before the last change is read again.
    readings: u64,
}

/// Everything selection needs besides the table, borrowed disjointly from the RIB.
struct Ctx<'a> {
    peers: &'a [Option<PeerInfo>],
    nht: &'a HashMap<IpAddr, NhState, FxBuildHasher>,
    default_reachable: bool,
    /// Compute backup next-hop sets ([`RibConfig::backup_paths`]).
    backups: bool,
    cfg: &'a DecisionConfig,
    /// A next-hop's state to use instead of the tracked one: its state before a change, to compute
    /// the forwarding results as they were (a backup's members are chosen with IGP costs).
    prev: Option<(IpAddr, NhState)>,
}

type FwdKey = SmallVec<[FibNextHop; 4]>;

/// What selection reads of an announced path's set and peer, the same for every prefix an UPDATE
/// announces with that set ([`Ctx::new_path`]).
#[derive(Debug, Clone, Copy)]
struct NewPath {
    /// The set's next-hop.
    next_hop: Option<IpAddr>,
    /// Its neighbouring AS (see [`Key::neighbor_as`]).
    neighbor_as: Option<u32>,
    /// The path's internal flags ([`Ctx::stored_flags`]).
    flags: u8,
    /// Its key as the newest path of its prefix, with path id 0 (`None`: an unknown peer).
    key: Option<Key>,
}

impl NewPath {
    /// The path's key as the newest path of its prefix.
    #[inline]
    fn key(&self, path_id: u32) -> Option<Key> {
        self.key.map(|k| Key { path_id, ..k })
    }
}

/// What the RIB reads of a peer's set before placing a path with it ([`Rib::read_path`]), the same
/// for every prefix an UPDATE announces with that set: read once for the UPDATE, it spares
/// [`Rib::announce_read`] reading the set and building the path's key again for each prefix
/// (about a tenth of the instructions of a prefix-path from a further peer: an import is applied
/// in prefix order, so an UPDATE's prefixes are apart). It holds no reference to the
/// set: it is for an announcement of the set it was read from while that set lives, and is
/// ignored (the set read again) when it was read for another address, family or peer, or before
/// the peers or next-hop states changed.
#[derive(Debug, Clone, Copy)]
pub struct PathReading {
    set: usize,
    peer: PeerId,
    v6: bool,
    /// [`Rib::readings`] when it was read.
    generation: u64,
    new: NewPath,
}

impl PathReading {
    /// Whether this was read from `attrs` (by address: meaningful while the set it was read from
    /// lives) for a prefix of the family `v6`.
    #[inline]
    pub fn is_of(&self, attrs: &AttrRef, v6: bool) -> bool {
        self.set == attrs.addr() && self.v6 == v6
    }
}

/// Where [`Ctx::joins_last`] puts an added path, nothing else in its entry moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    /// Last, outside the multipath set; whether its next-hop is reachable.
    Behind(bool),
    /// Last, as the newest member of the multipath set, which held every path before (reachable).
    Multipath,
}

/// What adding a path may have done to its entry's forwarding result ([`Ctx::added_change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddedChange {
    /// Nothing: the new path is outside the multipath set and the backup.
    None,
    /// The entry had no backup, and the new path, the last one, is all of it now: the primary set
    /// is as before, the backup is the new path's next-hop.
    NewBackup,
    /// Anything: compare the results before and after.
    Maybe,
}

/// The forwarding result of an entry as a comparable key (no heap for ≤ 4 next-hops each).
#[derive(Debug, Default, PartialEq, Eq)]
struct Fwd {
    blackhole: bool,
    primary: FwdKey,
    backup: FwdKey,
}

impl Fwd {
    fn present(&self) -> bool {
        self.blackhole || !self.primary.is_empty()
    }
}

/// (next-hop, weight) of forwarding paths, merged per next-hop and sorted: UCMP weights from the
/// link-bandwidth community when every path has one, else equal.
fn weighted(paths: &[PathRef<'_>]) -> FwdKey {
    if let [p] = paths {
        // The usual case: one path, weight 1 (a lone path's bandwidth sets no ratio).
        let mut out = FwdKey::new();
        if let Some(addr) = p.attrs.next_hop() {
            out.push(FibNextHop { addr, weight: 1 });
        }
        return out;
    }
    let hops: SmallVec<[Hop; 4]> = paths.iter().map(|p| hop(p.attrs)).collect();
    weighted_hops(&hops)
}

/// What forwarding reads of a path's set: its next-hop and link bandwidth.
type Hop = (Option<IpAddr>, Option<f32>);

fn hop(a: &Attrs) -> Hop {
    (a.next_hop(), a.link_bandwidth())
}

/// [`weighted`] of the paths' [`Hop`]s.
fn weighted_hops(hops: &[Hop]) -> FwdKey {
    let mut out = FwdKey::new();
    let ucmp = hops.len() > 1 && hops.iter().all(|h| h.1.is_some());
    let min_bw = hops
        .iter()
        .filter_map(|h| h.1)
        .fold(f32::INFINITY, f32::min);
    for &(nh, bw) in hops {
        let Some(addr) = nh else {
            continue;
        };
        let weight = match (ucmp, bw) {
            (true, Some(bw)) => ((bw / min_bw).round() as u32).clamp(1, 1 << 16),
            _ => 1,
        };
        match out.iter_mut().find(|n| n.addr == addr) {
            Some(n) => n.weight += weight,
            None => out.push(FibNextHop { addr, weight }),
        }
    }
    // Addresses are distinct after merging: their order alone is `FibNextHop`'s (IPv4 first, then
    // by address), compared as integers rather than byte by byte.
    out.sort_unstable_by_key(|n| match n.addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    });
    if ucmp {
        let g = out.iter().fold(0, |g, n| gcd(g, n.weight));
        if g > 1 {
            out.iter_mut().for_each(|n| n.weight /= g);
        }
    }
    out
}

impl Ctx<'_> {
    fn nh_state(&self, nh: Option<IpAddr>) -> NhState {
        if let (Some((a, st)), Some(n)) = (self.prev, nh)
            && a == n
        {
            return st;
        }
        match nh {
            None => NhState {
                reachable: true,
                igp_cost: 0,
            },
            Some(a) => self.nht.get(&a).copied().unwrap_or(NhState {
                reachable: self.default_reachable,
                igp_cost: 0,
            }),
        }
    }

    fn candidate<'p>(&'p self, p: PathRef<'p>) -> Option<Candidate<'p>> {
        self.candidate_with(p, p.attrs.next_hop())
    }

    /// [`Ctx::candidate`] of `p` whose set's next-hop is `nh`.
    #[inline]
    fn candidate_with<'p>(&'p self, p: PathRef<'p>, nh: Option<IpAddr>) -> Option<Candidate<'p>> {
        let peer = self.peers.get(p.peer as usize)?.as_ref()?;
        let nh = self.nh_state(nh);
        Some(Candidate {
            peer,
            attrs: p.attrs,
            reachable: nh.reachable,
            igp_cost: nh.igp_cost,
            llgr_stale: p.flags & flags::LLGR_STALE != 0,
            seq: u32::from(p.rank),
            path_id: p.path_id,
        })
    }

    /// The candidate of `p` and its key, its set read once ([`Attrs::for_selection`]).
    #[inline]
    fn candidate_key<'p>(&'p self, p: PathRef<'p>) -> Option<(Candidate<'p>, Key)> {
        self.candidate_key_with(p, &p.attrs.for_selection())
    }

    /// [`Ctx::candidate_key`] with its set read already (`s`).
    #[inline]
    fn candidate_key_with<'p>(
        &'p self,
        p: PathRef<'p>,
        s: &SelectionAttrs,
    ) -> Option<(Candidate<'p>, Key)> {
        let c = self.candidate_with(p, s.next_hop)?;
        Some((c, Key::with_attrs(&c, s, self.cfg)))
    }

    /// The key of `p` with the arrival rank `seq`.
    #[inline]
    fn key(&self, p: PathRef<'_>, seq: u32) -> Option<Key> {
        self.key_with(p, &p.attrs.for_selection(), seq)
    }

    /// [`Ctx::key`] with `p`'s set read already (`s`).
    #[inline]
    fn key_with(&self, p: PathRef<'_>, s: &SelectionAttrs, seq: u32) -> Option<Key> {
        self.candidate_key_with(p, s).map(|(_, k)| Key { seq, ..k })
    }

    /// Whether replacing the path `old` by `new` (same peer and path id) leaves the entry's order,
    /// multipath set and forwarding as they are: the same interned set, neither stale (a
    /// replacement clears graceful-restart staleness), and a configuration whose order does not
    /// depend on arrival (the replacement becomes the newest path: RFC 4271's arrival-order MED
    /// comparison and the oldest-eBGP step read that).
    fn same_set_keeps_order(&self, old: PathRef<'_>, new: PathRef<'_>) -> bool {
        AttrRef::ptr_eq(old.attrs, new.attrs)
            && old.flags & flags::ANY_STALE == 0
            && new.flags & flags::ANY_STALE == 0
            && !self.cfg.prefer_oldest_ebgp
            && (self.cfg.deterministic_med || self.cfg.always_compare_med)
    }

    /// A candidate whose next-hop the last selection saw reachable, taken as reachable.
    fn usable_candidate<'p>(&'p self, p: PathRef<'p>) -> Option<Candidate<'p>> {
        self.candidate(p).map(|mut c| {
            c.reachable = true;
            c
        })
    }

    /// Orders the paths best first and sets the multipath count.
    fn reselect(&self, e: &mut Paths) {
        if e.len() == 1 {
            let reachable = self
                .candidate(e.as_slice().at(0))
                .is_some_and(|c| c.reachable);
            select_lone(e, reachable);
            return;
        }
        // Built in place (pushed, not collected and moved: these are a few hundred bytes).
        let mut cands: SmallVec<[Candidate<'_>; 8]> = SmallVec::new();
        let mut keys: SmallVec<[Key; 8]> = SmallVec::new();
        for p in e.iter() {
            let Some((c, k)) = self.candidate_key(p) else {
                // A path of an unknown peer cannot happen (peers are removed with their paths);
                // stay safe.
                drop(cands);
                e.set_multipath(0);
                return;
            };
            keys.push(k);
            cands.push(c);
        }
        let sel = decision::select_keys(&cands, &keys, self.cfg);
        drop(cands);
        e.permute(&sel.order);
        e.set_multipath(sel.multipath);
        for (p, &i) in e.iter_mut().zip(sel.order.iter()) {
            set_nh_down(p.flags, !keys.get(i).is_some_and(|k| k.reachable));
        }
    }

    /// What selection reads of a path of `peer` with the set `attrs` (see [`NewPath`]).
    fn new_path(&self, peer: PeerId, attrs: &AttrRef) -> NewPath {
        let sel = attrs.for_selection();
        let flags = self.stored_flags_of(peer, attrs, sel.next_hop, sel.neighbor_as);
        let probe = PathRef {
            attrs,
            path_id: 0,
            peer,
            flags: 0,
            rank: 0,
            internal: 0,
        };
        let key = self.key_with(probe, &sel, u32::MAX);
        NewPath {
            next_hop: sel.next_hop,
            neighbor_as: sel.neighbor_as,
            flags,
            key,
        }
    }

    /// [`Ctx::joins_last_with`], reading the new path's set.
    #[cfg(test)]
    fn joins_last(&self, e: &Paths, new: &Path) -> Option<Added> {
        let np = self.new_path(new.peer, &new.attrs);
        self.joins_last_with(e, new, &np)
    }

    /// Whether the path `new`, added to the selected entry `e` (no path of the same peer and
    /// path id in it), goes last with nothing else changing: the same order and flags for the
    /// paths there, as reselecting would give ([`decision::joins_last`]), and the same multipath
    /// count or, when every path was in the set, one more. Reads the attribute sets of the
    /// entry's paths (their neighbouring ASes say which MEDs compare), but does not sort or
    /// reorder. `np` is what selection reads of the new path's set and peer (the caller read it
    /// for the path's flags).
    fn joins_last_with(&self, e: &Paths, new: &Path, np: &NewPath) -> Option<Added> {
        let s = e.as_slice();
        if s.len() > 8 || !(self.cfg.deterministic_med || self.cfg.always_compare_med) {
            return None;
        }
        if let Some(last) = self.joins_last_by_groups_with(e, new, np) {
            return last;
        }
        let mut keys: SmallVec<[Key; 8]> = SmallVec::new();
        for p in s.iter() {
            let k = self.key(p, u32::from(p.rank))?;
            if k.reachable == (p.flags & flags::NH_DOWN != 0) {
                // The entry was selected with other reachability: not an ordered entry to extend.
                return None;
            }
            keys.push(k);
        }
        // It will be the newest path: after every rank there.
        let kn = np.key(new.path_id)?;
        let best = s.at(0);
        let max = decision::max_paths(self.peers.get(best.peer as usize)?.as_ref()?, self.cfg);
        let admits = || decision::eligible_keys(best.attrs, &keys[0], &new.attrs, &kn, self.cfg);
        Some(
            match decision::joins_last(&keys, e.multipath(), max, &kn, self.cfg, admits)? {
                Joins::Behind => Added::Behind(kn.reachable),
                Joins::Multipath => Added::Multipath,
            },
        )
    }

    /// The internal flags ([`flags::INTERNAL`]) of a path of `peer` with the set `a`, whose
    /// next-hop is `nh` (reads the set's AS path, and its rare attributes when it has some).
    fn stored_flags(&self, peer: PeerId, a: &Attrs, nh: Option<IpAddr>) -> u8 {
        self.stored_flags_of(peer, a, nh, a.as_path().neighbor_as())
    }

    /// [`Ctx::stored_flags`] with the set's neighbouring AS read already (`neighbor_as`).
    #[inline]
    fn stored_flags_of(
        &self,
        peer: PeerId,
        a: &Attrs,
        nh: Option<IpAddr>,
        neighbor_as: Option<u32>,
    ) -> u8 {
        let Some(info) = self.peers.get(peer as usize).and_then(|p| p.as_ref()) else {
            return 0;
        };
        let mut f = 0;
        if neighbor_as.unwrap_or(info.local_as) == info.remote_as {
            f |= flags::PEER_AS;
        }
        if nh == Some(info.addr) && a.link_bandwidth().is_none() {
            f |= flags::NH_PEER;
        }
        f
    }

    /// The MED group of path `i` of `s` when its [`flags::PEER_AS`] says it is its peer's remote
    /// AS (no attribute set read); `None` otherwise.
    fn known_group(&self, s: PathSlice<'_>, i: usize) -> Option<u32> {
        if !s.peer_as(i) {
            return None;
        }
        let p = s.get(i)?;
        Some(self.peers.get(p.peer as usize)?.as_ref()?.remote_as)
    }

    /// [`Ctx::joins_last_by_groups_with`], reading the new path's set.
    #[cfg(test)]
    fn joins_last_by_groups(&self, e: &Paths, new: &Path) -> Option<Option<Added>> {
        let np = self.new_path(new.peer, &new.attrs);
        self.joins_last_by_groups_with(e, new, &np)
    }

    /// [`Ctx::joins_last_with`] reading only the attribute sets the answer needs, when every path's
    /// MED group is known from its peer ([`flags::PEER_AS`]), with deterministic MED (not
    /// always-compare) and without `as-path-relax` (so the multipath members, which share the
    /// best's AS path, are all in the best's group and lead it). Then the entry is the best's
    /// group (members first, the rest in order), then the other groups in the order of their
    /// leaders without MED, each in order with MED; so:
    /// - a new path in a group of its own goes last iff it loses without MED to the last group's
    ///   leader (the first path of the last path's group: every other leader is not worse);
    /// - a new path in the last group goes last iff it loses with MED to that group's last path
    ///   (and to its last multipath member when it is the best's group): its group keeps its
    ///   leader, so the groups keep their order;
    /// - in another group it would not go last.
    ///
    /// and whether the best admits it (a different neighbouring AS is a different AS path; else
    /// the best's set is read): when every path is in the multipath set, an admitted path is its
    /// last member. `None`: not known cheaply (the caller reads every path); `Some(None)`: it
    /// does not go last (or not provably); `Some(Some(added))`: it does, as `added` says. `np`
    /// is what selection reads of the new path's set and peer.
    fn joins_last_by_groups_with(
        &self,
        e: &Paths,
        new: &Path,
        np: &NewPath,
    ) -> Option<Option<Added>> {
        let cfg = self.cfg;
        if !cfg.deterministic_med || cfg.always_compare_med || cfg.as_path_relax {
            return None;
        }
        let s = e.as_slice();
        let (n, mp) = (s.len(), e.multipath());
        let mut groups: SmallVec<[u32; 8]> = SmallVec::new();
        for i in 0..n {
            groups.push(self.known_group(s, i)?);
        }
        let best_group = *groups.first()?;
        if groups[..mp.min(n)].iter().any(|&g| g != best_group) {
            return None;
        }
        let kn = np.key(new.path_id)?;
        // A path's key, when the entry was selected with the reachability it has now (else the
        // entry is not an ordered one to extend).
        let read_key = |i: usize| -> Option<Key> {
            let p = s.at(i);
            let k = self.key(p, u32::from(p.rank))?;
            (k.reachable != (p.flags & flags::NH_DOWN != 0)).then_some(k)
        };
        // The last path's key is read again for admission when every path is a member, and it
        // is the best's for a second path.
        let mut last_key = None;
        let mut key = |i: usize| -> Option<Key> {
            if i + 1 == n {
                *last_key.get_or_insert_with(|| read_key(i))
            } else {
                read_key(i)
            }
        };
        // The step at which the path `k` beats the new one, if it does.
        let beats = |k: Option<Key>, with_med: bool| {
            let (o, step) = decision::compare_keys(&k?, &kn, cfg, with_med);
            (o == Ordering::Less).then_some(step)
        };
        let last_group = groups[n - 1];
        // How the last path beat the new one with MED, when that was compared.
        let mut last_step = None;
        let last = if !groups.contains(&kn.group) {
            let leader = groups.iter().position(|&g| g == last_group)?;
            beats(key(leader), false).is_some()
        } else if kn.group == last_group {
            last_step = beats(key(n - 1), true);
            last_step.is_some()
                && (last_group != best_group
                    || mp == 0
                    || mp == n
                    || beats(key(mp - 1), true).is_some())
        } else {
            false
        };
        if !last {
            return Some(None);
        }
        let best = s.at(0);
        let max = decision::max_paths(self.peers.get(best.peer as usize)?.as_ref()?, cfg);
        // When every path is a member, the last one stands for the best: members tie with the best
        // through the IGP cost by equal values (in one MED group here), are as external as it and
        // have its AS path (no `as-path-relax` here), so a path is eligible with the one iff with
        // the other; and the last path's key was read already. When the last path beat the new
        // one with MED above (one group: eligibility compares the two with MED too), that
        // comparison's step is reused.
        let anchor = if mp == n { n - 1 } else { 0 };
        let admitted = mp > 0
            && mp < max
            && (kn.neighbor_as.is_none() || kn.group == best_group)
            && match (key(anchor), last_step.filter(|_| anchor + 1 == n)) {
                (Some(ka), Some(step)) => {
                    decision::eligible_after(s.at(anchor).attrs, &ka, &new.attrs, &kn, cfg, step)
                }
                (Some(ka), None) => {
                    decision::eligible_keys(s.at(anchor).attrs, &ka, &new.attrs, &kn, cfg)
                }
                (None, _) => return Some(None),
            };
        Some(if !admitted {
            Some(Added::Behind(kn.reachable))
        } else {
            // Every path a member (so the order is the sorted one) and room: it joins the set.
            (mp == n).then_some(Added::Multipath)
        })
    }

    /// Whether the paths `a` and `b` have different neighbouring ASes, told from their peers
    /// without reading their sets; then, without `as-path-relax`, their AS paths differ and
    /// neither is multipath-eligible with the other ([`decision::eligible_after`]). A path with
    /// [`flags::PEER_AS`] starts with its peer's remote AS, or has none (an empty path, or one
    /// starting with an AS_SET) when that is also its local AS; so two such paths of different
    /// peer ASes differ unless both could have none, which needs both peers' remote AS to be
    /// their local one.
    fn neighbors_differ(&self, a: PathRef<'_>, b: PathRef<'_>) -> bool {
        let known = |p: PathRef<'_>| {
            if p.internal & flags::PEER_AS == 0 {
                return None;
            }
            let info = self.peers.get(p.peer as usize)?.as_ref()?;
            Some((info.remote_as, info.remote_as != info.local_as))
        };
        match (known(a), known(b)) {
            (Some((ga, sure_a)), Some((gb, sure_b))) => ga != gb && (sure_a || sure_b),
            _ => false,
        }
    }

    /// Whether appending `new` (last, outside the multipath set) leaves the forwarding result as
    /// it is, known from the entry's backup hint without reading attribute sets: the backup has a
    /// lead before it, and `new` cannot share the lead's multipath set (without `as-path-relax`,
    /// a different neighbouring AS, told by the MED groups, is a different AS path). The backup
    /// hint must be from before `new` was added. `new_neighbor_as` is the neighbouring AS of
    /// `new`'s AS path.
    fn appended_keeps_backup(&self, e: &Paths, lead: usize, new_neighbor_as: Option<u32>) -> bool {
        if self.cfg.as_path_relax || lead < e.multipath() || lead >= e.len() {
            return false;
        }
        // The lead's neighbouring AS is its group or none (an empty path, or one starting with an
        // AS_SET), either way not `asn`.
        match (self.known_group(e.as_slice(), lead), new_neighbor_as) {
            (Some(lead_group), Some(asn)) => asn != lead_group,
            _ => false,
        }
    }

    /// The index of the backup's lead of `e` as [`Ctx::backup`] finds it (the first path after
    /// the multipath set, reachable at the last selection, whose next-hop is not a primary one),
    /// when the entry forwards over next-hops and backups are on.
    fn backup_lead(&self, e: &Paths) -> Option<usize> {
        let s = e.as_slice();
        let mp = e.multipath();
        let primary = self.backup_primary(s, mp)?;
        (mp..s.len()).find(|&i| backup_usable(s.at(i), primary))
    }

    /// The primary paths (the first `mp` of `s`) when a backup is computed against them: backups
    /// are on and the entry forwards over next-hops (not a blackhole, some primary next-hop).
    fn backup_primary<'p>(&self, s: PathSlice<'p>, mp: usize) -> Option<PathSlice<'p>> {
        let best_local = s.first().is_some_and(|b| {
            self.peers
                .get(b.peer as usize)
                .and_then(|p| p.as_ref())
                .is_some_and(|p| p.kind == PeerKind::Local)
                && b.attrs.next_hop().is_none()
        });
        let primary = s.slice(..mp.min(s.len()));
        (self.backups && !best_local && primary.iter().any(|p| p.attrs.next_hop().is_some()))
            .then_some(primary)
    }

    /// The forwarding result of an entry, as a comparable key.
    fn forwarding(&self, e: &Paths) -> Fwd {
        let s = e.as_slice();
        if s.len() == 1 {
            // The usual entry (one peer's table): no copy of the path list.
            let p = s.at(0);
            return self.forwarding_of(&[p], &[p.flags & flags::NH_DOWN != 0], e.multipath());
        }
        let paths: SmallVec<[PathRef<'_>; 8]> = s.iter().collect();
        let down: SmallVec<[bool; 8]> = s.iter().map(|p| p.flags & flags::NH_DOWN != 0).collect();
        self.forwarding_of(&paths, &down, e.multipath())
    }

    /// The forwarding result of the paths `paths` (best first) with `mp` of them in the multipath
    /// set and `down[i]` saying whether the last selection saw the next-hop of `paths[i]`
    /// unreachable: [`Ctx::forwarding`] of an entry, or of the state an entry had before a change.
    fn forwarding_of(&self, paths: &[PathRef<'_>], down: &[bool], mp: usize) -> Fwd {
        let mut out = Fwd::default();
        let fwd = &paths[..mp.min(paths.len())];
        let Some(best) = fwd.first() else {
            return out;
        };
        let local = self
            .peers
            .get(best.peer as usize)
            .and_then(|p| p.as_ref())
            .is_some_and(|p| p.kind == PeerKind::Local);
        if local && best.attrs.next_hop().is_none() {
            out.blackhole = true;
            return out;
        }
        out.primary = weighted(fwd);
        if self.backups && paths.len() > fwd.len() && !out.primary.is_empty() {
            out.backup = self.backup(&paths[fwd.len()..], &down[fwd.len()..], &out.primary);
        }
        out
    }

    /// The backup of an entry (PIC edge): what selection would pick if every primary next-hop died.
    /// The first reachable path after the multipath set (`rest`) whose next-hop is not a primary
    /// one, and the later such paths that would share the multipath set with it.
    fn backup(&self, rest: &[PathRef<'_>], down: &[bool], primary: &FwdKey) -> FwdKey {
        // Reachability as the last selection saw it (not the tracking state now: a change of it
        // is compared before and after the entry's reselection).
        let usable = |i: usize| {
            !down[i]
                && rest[i]
                    .attrs
                    .next_hop()
                    .is_some_and(|a| !primary.iter().any(|n| n.addr == a))
        };
        let Some(i) = (0..rest.len()).find(|&i| usable(i)) else {
            return FwdKey::new();
        };
        let lead = rest[i];
        let mut set: SmallVec<[PathRef<'_>; 4]> = SmallVec::new();
        set.push(lead);
        // Both are usable: reachable as the last selection saw them (the IGP cost is the current one,
        // which a cost change re-selects anyway).
        let seen = |p| self.usable_candidate(p);
        if let Some(lc) = seen(lead) {
            let max = decision::max_paths(lc.peer, self.cfg);
            // The lead's key, built once for all the paths after it; none for a path of another
            // neighbouring AS (the usual backup of several upstreams: no set is read).
            let mut kl = None;
            let relax = self.cfg.as_path_relax;
            for (k, p) in rest.iter().enumerate().skip(i + 1) {
                if set.len() >= max {
                    break;
                }
                if usable(k)
                    && (relax || !self.neighbors_differ(lead, *p))
                    && let Some(c) = seen(*p)
                    && decision::eligible_keys(
                        lc.attrs,
                        kl.get_or_insert_with(|| Key::new(&lc, self.cfg)),
                        c.attrs,
                        &Key::new(&c, self.cfg),
                        self.cfg,
                    )
                {
                    set.push(*p);
                }
            }
        }
        weighted(&set)
    }

    /// After the path at `j` was added to `e` (no path replaced) and the entry re-selected, with
    /// the other paths in their old relative order, their reachability flags as before and the
    /// multipath count `mp0` as before: whether the forwarding result may differ from before.
    /// [`AddedChange::None`] only when it provably cannot: the new path is outside the multipath
    /// set and outside the backup (so both are made of the same paths as before).
    fn added_change(&self, e: &Paths, j: usize, mp0: usize) -> AddedChange {
        let mp = e.multipath();
        if mp != mp0 || j < mp {
            return AddedChange::Maybe;
        }
        let s = e.as_slice();
        // No primary next-hop (nothing usable, or a blackhole): no backup is computed at all.
        let Some(primary) = self.backup_primary(s, mp) else {
            return AddedChange::None;
        };
        let usable = |p: PathRef<'_>| backup_usable(p, primary);
        let new = s.at(j);
        if !usable(new) {
            // Neither the backup's lead nor one of its members.
            return AddedChange::None;
        }
        match s.slice(mp..j).iter().find(|p| usable(*p)) {
            // The new path leads the backup, which had no path before; last, it is all of it.
            None if j + 1 == s.len() => AddedChange::NewBackup,
            None => AddedChange::Maybe,
            // Of another neighbouring AS it cannot join the lead's set.
            Some(lead) if !self.cfg.as_path_relax && self.neighbors_differ(lead, new) => {
                AddedChange::None
            }
            // It could join the lead's set; otherwise the backup is the same paths as before.
            Some(lead) => match (self.usable_candidate(lead), self.usable_candidate(new)) {
                (Some(lc), Some(c)) if !decision::multipath_eligible(&lc, &c, self.cfg) => {
                    AddedChange::None
                }
                _ => AddedChange::Maybe,
            },
        }
    }
}

/// Whether `p` may be in the backup of an entry with the primary paths `primary`: reachable at the
/// last selection, through a next-hop that is not a primary one.
fn backup_usable(p: PathRef<'_>, primary: PathSlice<'_>) -> bool {
    p.flags & flags::NH_DOWN == 0
        && p.attrs
            .next_hop()
            .is_some_and(|a| !primary.iter().any(|q| q.attrs.next_hop() == Some(a)))
}

/// Emits the forwarding change of the entry `e` for `prefix` whose multipath set was its first
/// `mp0` paths, all of them, before its last path joined the set (a best path that admits another
/// is not a local one, so neither result is a blackhole, and no path is outside the set, so
/// neither has a backup): [`Ctx::forwarding`] before and after, reading each set once. Without
/// link bandwidths the weights count the paths through each next-hop, so a joining path with a
/// next-hop changes the result whenever there was one: only the result after is made, from the
/// next-hops ([`Sink::intern_counted`]). When every path forwards to its peer
/// ([`flags::NH_PEER`], the eBGP rule) the next-hops are the peers' addresses, and no set is
/// read: the members other than the newest were read before this entry's last change, and with
/// many prefixes their sets are out of the cache by now.
fn emit_joined(sink: &mut Sink<'_>, ctx: &Ctx<'_>, prefix: IpNet, e: &Paths, mp0: usize) {
    let s = e.as_slice();
    let attrs = s.attrs();
    let by_peers = s.all_nh_peer();
    if by_peers
        && let Some(set) = &sink.peer_set.set
        && s.peers().eq(sink.peer_set.peers.iter().copied())
    {
        debug_assert!(**set == *weighted(&s.iter().collect::<SmallVec<[_; 8]>>()));
        let set = set.clone();
        sink.push(prefix, Some(FibEntry::Forward(FwdSet::new(set))));
        return;
    }
    let nhs: Option<SmallVec<[Option<IpAddr>; 8]>> = if by_peers {
        s.iter()
            .map(|p| {
                let addr = ctx.peers.get(p.peer as usize)?.as_ref()?.addr;
                debug_assert_eq!(p.attrs.next_hop(), Some(addr), "NH_PEER of {p:?}");
                debug_assert!(p.attrs.link_bandwidth().is_none(), "NH_PEER of {p:?}");
                Some(Some(addr))
            })
            .collect()
    } else if attrs.iter().all(|a| a.link_bandwidth().is_none()) {
        Some(attrs.iter().map(|a| a.next_hop()).collect())
    } else {
        None
    };
    if let Some(nhs) = nhs
        && nhs.last().is_some_and(Option::is_some)
        && nhs[..mp0.min(nhs.len())].iter().any(Option::is_some)
    {
        let set = sink.intern_counted(&nhs);
        if by_peers {
            *sink.peer_set = PeerSetMemo {
                peers: s.peers().collect(),
                set: Some(set.clone()),
            };
        }
        sink.push(prefix, Some(FibEntry::Forward(FwdSet::new(set))));
        return;
    }
    let hops: SmallVec<[Hop; 8]> = attrs.iter().map(|a| hop(a)).collect();
    let before = Fwd {
        primary: weighted_hops(&hops[..mp0.min(hops.len())]),
        ..Fwd::default()
    };
    let after = Fwd {
        primary: weighted_hops(&hops),
        ..Fwd::default()
    };
    sink.emit(prefix, &before, after);
}

/// Most entries [`take_sized`] starts the next vector with.
const TAKE_RESERVE: usize = 4096;

/// Takes the vector `v` and leaves an empty one with room for as many entries (up to
/// [`TAKE_RESERVE`]): the core takes deltas and best changes per batch of UPDATEs, and a batch's
/// few thousand entries grew the vector by doubling from nothing each time (a dozen reallocations
/// copying ~2x its bytes, `Vec::push` ≈ 3% of the import path).
fn take_sized<T>(v: &mut Vec<T>) -> Vec<T> {
    let n = v.len().min(TAKE_RESERVE);
    std::mem::replace(v, Vec::with_capacity(n))
}

/// The selection of an entry holding one path: in the multipath set when its next-hop is
/// `reachable`.
fn select_lone(e: &mut Paths, reachable: bool) {
    e.set_multipath(usize::from(reachable));
    if let Some(p) = e.get_mut(0) {
        set_nh_down(p.flags, !reachable);
    }
}

fn set_nh_down(flags: &mut u8, down: bool) {
    if down {
        *flags |= flags::NH_DOWN;
    } else {
        *flags &= !flags::NH_DOWN;
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Where the forwarding results of a batch go: the delta list plus the next-hop set interner.
struct Sink<'a> {
    /// Prefixes whose best path changed (for export), when tracked.
    best_changed: Option<&'a mut Vec<IpNet>>,
    /// Report every change, not only best-path changes.
    track_all: bool,
    deltas: &'a mut Vec<FibDelta>,
    fib_len: &'a mut [usize; 2],
    nhsets: &'a mut HashSet<NhSet, FxBuildHasher>,
    nhset_last: &'a mut [Option<NhSet>; 2],
    peer_set: &'a mut PeerSetMemo,
    stats: &'a mut RibStats,
}

/// The forwarding set of the last multipath set [`emit_joined`] made from paths that forward to
/// their peers ([`flags::NH_PEER`]), by the peers of its paths in order: the prefixes of a table
/// that peers of one AS send (ECMP over upstreams) have their paths from the same peers, so the
/// next prefix forwards over the same set, told without looking up a peer or counting
/// next-hops. Valid while the peers keep their addresses: forgotten when a peer is added,
/// removed or changed (and before the sets no prefix uses are dropped).
#[derive(Debug, Default)]
struct PeerSetMemo {
    peers: SmallVec<[PeerId; 8]>,
    set: Option<NhSet>,
}

/// Identity of the best path of an entry: (peer, path id, attribute set).
type BestId = Option<(PeerId, u32, usize)>;

fn best_id(e: Option<&Paths>) -> BestId {
    let b = e?.best()?;
    Some((b.peer, b.path_id, b.attrs.addr()))
}

impl Sink<'_> {
    fn best(&mut self, prefix: IpNet, old: BestId, new: BestId) {
        if (old != new || self.track_all)
            && let Some(v) = self.best_changed.as_deref_mut()
        {
            v.push(prefix);
        }
    }

    fn emit(&mut self, prefix: IpNet, old: &Fwd, new: Fwd) {
        if *old == new {
            return;
        }
        let afi = usize::from(!prefix.addr().is_ipv4());
        match (old.present(), new.present()) {
            (false, true) => self.fib_len[afi] += 1,
            (true, false) => self.fib_len[afi] -= 1,
            _ => {}
        }
        if new.blackhole {
            self.push(prefix, Some(FibEntry::Blackhole));
        } else if new.primary.is_empty() {
            self.push(prefix, None);
        } else {
            self.forward(prefix, &new.primary, &new.backup);
        }
    }

    /// A delta for an entry forwarding over `primary`, with `backup` (empty: none).
    fn forward(&mut self, prefix: IpNet, primary: &[FibNextHop], backup: &[FibNextHop]) {
        let entry = FibEntry::Forward(FwdSet {
            primary: self.intern(primary),
            backup: (!backup.is_empty()).then(|| self.intern(backup)),
        });
        self.push(prefix, Some(entry));
    }

    /// The delta of a prefix that did not forward and now forwards over `nh` alone.
    fn forward_new(&mut self, prefix: IpNet, nh: IpAddr) {
        self.fib_len[afi_index(prefix)] += 1;
        let entry = FibEntry::Forward(FwdSet::new(self.intern_one(nh)));
        self.push(prefix, Some(entry));
    }

    /// [`Sink::forward`] of one primary next-hop and one backup, each of weight 1.
    fn forward_one(&mut self, prefix: IpNet, primary: IpAddr, backup: IpAddr) {
        let entry = FibEntry::Forward(FwdSet {
            primary: self.intern_one(primary),
            backup: Some(self.intern_one(backup)),
        });
        self.push(prefix, Some(entry));
    }

    fn push(&mut self, prefix: IpNet, entry: Option<FibEntry>) {
        self.stats.fib_deltas += 1;
        self.deltas.push(FibDelta { prefix, entry });
    }

    /// The shared copy of the next-hop set `k`. The last two sets given are checked first: a
    /// table arrives in runs of prefixes forwarding the same way (one peer: every prefix; with
    /// backups, a primary and a backup set by turns), and comparing with them is cheaper than
    /// hashing `k` (3-4% of the import path).
    fn intern(&mut self, k: &[FibNextHop]) -> NhSet {
        if let Some(s) = self.last_interned(|s| s == k) {
            return s;
        }
        let s = match self.nhsets.get(k) {
            Some(s) => s.clone(),
            None => {
                let s: NhSet = Arc::from(k);
                self.nhsets.insert(s.clone());
                s
            }
        };
        let last = &mut *self.nhset_last;
        last[1] = last[0].replace(s.clone());
        s
    }

    /// [`Sink::intern`] of the set of `addr` alone (weight 1), compared with the last two sets
    /// without building it first: a next-hop just built and read back at once made the CPU wait for
    /// its bytes to reach the cache (about 5% of a second peer's import).
    fn intern_one(&mut self, addr: IpAddr) -> NhSet {
        let one = |s: &[FibNextHop]| matches!(s, [n] if n.weight == 1 && n.addr == addr);
        match self.last_interned(one) {
            Some(s) => s,
            None => self.intern(&[FibNextHop { addr, weight: 1 }]),
        }
    }

    /// [`Sink::intern`] of the set forwarding over paths with the next-hops `nhs` and no link
    /// bandwidth ([`weighted_hops`]: each next-hop weighted by its paths), compared with the last
    /// two sets given before it is built: an ECMP table's prefixes forward over one set.
    fn intern_counted(&mut self, nhs: &[Option<IpAddr>]) -> NhSet {
        let counts = |s: &[FibNextHop]| {
            let mut total = 0;
            for n in s {
                let c = nhs.iter().filter(|h| **h == Some(n.addr)).count();
                if c as u32 != n.weight {
                    return false;
                }
                total += c;
            }
            // Every next-hop is one of the set's (weights are distinct next-hops' counts).
            total == nhs.iter().filter(|h| h.is_some()).count()
        };
        if let Some(s) = self.last_interned(counts) {
            return s;
        }
        let hops: SmallVec<[Hop; 8]> = nhs.iter().map(|&nh| (nh, None)).collect();
        self.intern(&weighted_hops(&hops))
    }

    /// The one of the last two sets given that `is` accepts (the latest first after this).
    fn last_interned(&mut self, is: impl Fn(&[FibNextHop]) -> bool) -> Option<NhSet> {
        let last = &mut *self.nhset_last;
        if let Some(s) = &last[0]
            && is(s)
        {
            return Some(s.clone());
        }
        if let Some(s) = &last[1]
            && is(s)
        {
            let s = s.clone();
            last.swap(0, 1);
            return Some(s);
        }
        None
    }
}

impl Default for Rib {
    fn default() -> Self {
        Rib::new(RibConfig::default())
    }
}

fn afi_index(p: IpNet) -> usize {
    match p {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1,
    }
}

/// The decision context of the table configured by `cfg` (a macro, not a method: callers hold
/// other fields of the RIB mutably at the same time, e.g. through `sink!`).
macro_rules! ctx {
    ($self:ident, $cfg:expr) => {
        Ctx {
            peers: &$self.peers,
            nht: &$self.nht,
            default_reachable: $self.cfg.nexthop_default_reachable,
            backups: $self.cfg.backup_paths,
            cfg: $cfg,
            prev: None,
        }
    };
}

/// Where a change's FIB deltas, best-path changes and counters go (a macro for the same reason as
/// `ctx!`).
macro_rules! sink {
    ($self:ident) => {
        Sink {
            best_changed: $self.track_best.then_some(&mut $self.best_changed),
            track_all: $self.track_all,
            deltas: &mut $self.deltas,
            fib_len: &mut $self.fib_len,
            nhsets: &mut $self.nhsets,
            nhset_last: &mut $self.nhset_last,
            peer_set: &mut $self.peer_set,
            stats: &mut $self.stats,
        }
    };
}

macro_rules! with_table {
    ($self:ident, $prefix:expr, |$t:ident, $k:ident, $cfg:ident| $body:expr) => {
        match $prefix {
            IpNet::V4(n) => {
                let $k = n.trunc();
                let $t = &mut $self.v4;
                let $cfg = &$self.cfg.ipv4;
                $body
            }
            IpNet::V6(n) => {
                let $k = n.trunc();
                let $t = &mut $self.v6;
                let $cfg = &$self.cfg.ipv6;
                $body
            }
        }
    };
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Self {
        Rib {
            cfg,
            peers: Vec::new(),
            attrs: AttrStore::new(),
            nhsets: HashSet::default(),
            nhset_last: [None, None],
            peer_set: PeerSetMemo::default(),
            nhsets_gc_at: 1024,
            v4: Table::default(),
            v6: Table::default(),
            nht: HashMap::default(),
            deltas: Vec::new(),
            stats: RibStats::default(),
            fib_len: [0, 0],
            paths: [0, 0],
            peer_paths: Vec::new(),
            track_best: false,
            track_all: false,
            best_changed: Vec::new(),
            readings: 0,
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// Registers a peer (or a local origin such as static routes). Fails when [`MAX_PEERS`] are
    /// registered already (paths store a 16-bit peer index); a removed peer's slot is reused.
    pub fn add_peer(&mut self, info: PeerInfo) -> Result<PeerId, TooManyPeers> {
        self.peer_set = PeerSetMemo::default();
        self.readings += 1;
        if let Some(i) = self.peers.iter().position(Option::is_none) {
            self.peers[i] = Some(info);
            // A removed peer's paths were all removed with it.
            debug_assert_eq!(self.peer_paths[i], [0, 0]);
            return Ok(i as PeerId);
        }
        if self.peers.len() >= MAX_PEERS {
            return Err(TooManyPeers { name: info.name });
        }
        self.peers.push(Some(info));
        self.peer_paths.push([0, 0]);
        Ok((self.peers.len() - 1) as PeerId)
    }

    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(id as usize).and_then(|p| p.as_ref())
    }

    /// Withdraws every path of the peer and forgets it.
    pub fn remove_peer(&mut self, id: PeerId) {
        self.flush_peer(id, |_| true, [true, true]);
        if let Some(p) = self.peers.get_mut(id as usize) {
            *p = None;
        }
        self.peer_set = PeerSetMemo::default();
        self.readings += 1;
    }

    /// Shares one copy of `attrs` between all paths that carry it.
    pub fn intern(&mut self, attrs: Attrs) -> AttrRef {
        self.attrs.intern(attrs)
    }

    /// Asks for the cache line where interning `attrs` will look first (a set converted ahead, see
    /// [`crate::import::prepare`]).
    #[inline]
    pub fn prefetch_attrs(&self, attrs: &attrs::ToIntern) {
        self.attrs.prefetch(attrs);
    }

    /// [`Rib::intern`] with `n` more references counted ahead (see [`AttrStore::intern_counted`]).
    pub fn intern_counted(&mut self, attrs: attrs::ToIntern, n: u32) -> (AttrRef, attrs::Clones) {
        self.attrs.intern_counted(attrs, n)
    }

    /// Drops a reference taken with [`Rib::intern`] that no path holds; the set is freed when nothing
    /// else uses it.
    pub fn release(&mut self, attrs: AttrRef) {
        self.attrs.release(attrs);
    }

    /// Adds or replaces the path `(peer, path_id)` for `prefix`. Returns true when the path is new.
    pub fn announce(&mut self, peer: PeerId, prefix: IpNet, path_id: u32, attrs: AttrRef) -> bool {
        let new = self.new_path(peer, &attrs, prefix.addr().is_ipv6());
        self.place(peer, prefix, path_id, attrs, &new)
    }

    /// What placing a path of `peer` with the set `attrs` for a prefix of the family `v6` reads of
    /// the set and the peer, for [`Rib::announce_read`] of each prefix announced with it.
    pub fn read_path(&self, peer: PeerId, attrs: &AttrRef, v6: bool) -> PathReading {
        PathReading {
            set: attrs.addr(),
            peer,
            v6,
            generation: self.readings,
            new: self.new_path(peer, attrs, v6),
        }
    }

    /// [`Rib::announce`] with what `reading` read of the set and peer, when it was read from
    /// `attrs` for this peer and family since the last change of the peers and next-hop states
    /// (else the set is read again).
    pub fn announce_read(
        &mut self,
        peer: PeerId,
        prefix: IpNet,
        path_id: u32,
        attrs: AttrRef,
        reading: &PathReading,
    ) -> bool {
        let v6 = prefix.addr().is_ipv6();
        let read;
        let new = if reading.is_of(&attrs, v6)
            && reading.peer == peer
            && reading.generation == self.readings
        {
            &reading.new
        } else {
            read = self.new_path(peer, &attrs, v6);
            &read
        };
        self.place(peer, prefix, path_id, attrs, new)
    }

    fn new_path(&self, peer: PeerId, attrs: &AttrRef, v6: bool) -> NewPath {
        let cfg = if v6 { &self.cfg.ipv6 } else { &self.cfg.ipv4 };
        ctx!(self, cfg).new_path(peer, attrs)
    }

    /// Adds or replaces a path whose set and peer read as `new`.
    fn place(
        &mut self,
        peer: PeerId,
        prefix: IpNet,
        path_id: u32,
        attrs: AttrRef,
        new: &NewPath,
    ) -> bool {
        let path = Path::new(peer, path_id, attrs);
        let released = with_table!(self, prefix, |t, k, cfg| {
            let ctx = ctx!(self, cfg);
            let mut sink = sink!(self);
            upsert(t, k, path, new, &ctx, &mut sink)
        });
        match released {
            Some(a) => {
                self.attrs.release(a);
                false
            }
            None => {
                self.paths[afi_index(prefix)] += 1;
                if let Some(n) = self.peer_paths.get_mut(peer as usize) {
                    n[afi_index(prefix)] += 1;
                }
                true
            }
        }
    }

    /// Starts loading what an operation on `prefix` will read (see [`Table::prefetch`]): `entries`
    /// false for the bucket header, true for its entries a few operations later.
    #[inline]
    pub fn prefetch(&self, prefix: IpNet, entries: bool) {
        match prefix {
            IpNet::V4(n) => self.v4.prefetch(&n.trunc(), entries),
            IpNet::V6(n) => self.v6.prefetch(&n.trunc(), entries),
        }
    }

    /// Removes the path `(peer, path_id)` for `prefix`. Returns whether it existed.
    pub fn withdraw(&mut self, peer: PeerId, prefix: IpNet, path_id: u32) -> bool {
        let released = with_table!(self, prefix, |t, k, cfg| {
            let ctx = ctx!(self, cfg);
            let mut sink = sink!(self);
            remove(
                t,
                k,
                |p| p.peer == peer && p.path_id == path_id,
                &ctx,
                &mut sink,
            )
        });
        let found = !released.is_empty();
        self.paths[afi_index(prefix)] -= released.len();
        if let Some(n) = self.peer_paths.get_mut(peer as usize) {
            n[afi_index(prefix)] -= released.len();
        }
        for a in released {
            self.attrs.release(a);
        }
        found
    }

    /// Session down. With graceful restart (RFC 4724 §4.2) the peer's paths stay, marked stale, until
    /// End-of-RIB or [`Rib::flush_stale`]; otherwise they are withdrawn now.
    pub fn peer_down(&mut self, peer: PeerId, graceful: bool) {
        if !graceful {
            self.flush_peer(peer, |_| true, [true, true]);
            return;
        }
        mark_stale(&mut self.v4, peer, flags::STALE);
        mark_stale(&mut self.v6, peer, flags::STALE);
    }

    /// Long-lived graceful restart (RFC 9494 §4.3): the peer's stale paths carrying NO_LLGR are removed;
    /// the others get the LLGR_STALE community and become least preferred.
    pub fn peer_llgr_stale(&mut self, peer: PeerId) {
        self.flush_peer(
            peer,
            |p| p.flags & flags::STALE != 0 && p.attrs.has_community(attrs::community::NO_LLGR),
            [true, true],
        );
        let mut cache: HashMap<usize, AttrRef, FxBuildHasher> = HashMap::default();
        let mut old = Vec::new();
        let ctx4 = ctx!(self, &self.cfg.ipv4);
        let ctx6 = Ctx {
            cfg: &self.cfg.ipv6,
            ..ctx4
        };
        let mut sink = sink!(self);
        let mut mark = LlgrMark {
            peer,
            store: &mut self.attrs,
            cache: &mut cache,
            old: &mut old,
        };
        mark.table(&mut self.v4, &ctx4, &mut sink);
        mark.table(&mut self.v6, &ctx6, &mut sink);
        drop(cache);
        for a in old {
            self.attrs.release(a);
        }
    }

    /// Prefix-paths of `peer` in the RIB: [IPv4, IPv6], without walking the tables.
    pub fn peer_paths(&self, peer: PeerId) -> [u64; 2] {
        self.peer_paths
            .get(peer as usize)
            .map_or([0, 0], |n| n.map(|n| n as u64))
    }

    /// Stale paths of `peer` (kept through its graceful restart, [`flags::ANY_STALE`]): [IPv4,
    /// IPv6]. Walks the tables unless the peer has no paths (asked for a peer that is restarting).
    pub fn stale_paths(&self, peer: PeerId) -> [u64; 2] {
        if self.peer_paths(peer) == [0, 0] {
            return [0, 0];
        }
        let stale = |e: &Paths| {
            e.iter()
                .filter(|p| p.peer == peer && p.flags & flags::ANY_STALE != 0)
                .count() as u64
        };
        [
            self.v4.iter().map(|(_, e)| stale(e)).sum(),
            self.v6.iter().map(|(_, e)| stale(e)).sum(),
        ]
    }

    /// [`Rib::peer_paths`] counted over the tables (for checking the kept counts).
    #[cfg(test)]
    pub(crate) fn peer_paths_walked(&self, peer: PeerId) -> [u64; 2] {
        let n4 = self
            .v4
            .iter()
            .map(|(_, e)| e.iter().filter(|p| p.peer == peer).count() as u64)
            .sum();
        let n6 = self
            .v6
            .iter()
            .map(|(_, e)| e.iter().filter(|p| p.peer == peer).count() as u64)
            .sum();
        [n4, n6]
    }

    /// The restart/stale timer expired: drop every stale path of the peer.
    pub fn flush_stale(&mut self, peer: PeerId) {
        self.flush_peer(
            peer,
            |p| p.flags & (flags::STALE | flags::LLGR_STALE) != 0,
            [true, true],
        );
    }

    /// End-of-RIB for one address family from a restarting peer: drop that family's stale paths (the
    /// other family's End-of-RIB may still be coming).
    pub fn flush_stale_family(&mut self, peer: PeerId, ipv4: bool) {
        self.flush_peer(
            peer,
            |p| p.flags & (flags::STALE | flags::LLGR_STALE) != 0,
            [ipv4, !ipv4],
        );
    }

    /// Removes the paths of `peer` matching `pred` from the tables selected by `afis` ([IPv4, IPv6]).
    fn flush_peer(
        &mut self,
        peer: PeerId,
        pred: impl Fn(PathRef<'_>) -> bool + Copy,
        afis: [bool; 2],
    ) {
        let ctx4 = ctx!(self, &self.cfg.ipv4);
        let ctx6 = Ctx {
            cfg: &self.cfg.ipv6,
            ..ctx4
        };
        let mut sink = sink!(self);
        let mut released = Vec::new();
        let mut gone = [0, 0];
        if afis[0] {
            released.extend(flush_in(&mut self.v4, peer, pred, &ctx4, &mut sink));
            gone[0] = released.len();
        }
        if afis[1] {
            let n4 = released.len();
            released.extend(flush_in(&mut self.v6, peer, pred, &ctx6, &mut sink));
            gone[1] = released.len() - n4;
        }
        for afi in 0..2 {
            self.paths[afi] -= gone[afi];
            if let Some(n) = self.peer_paths.get_mut(peer as usize) {
                n[afi] -= gone[afi];
            }
        }
        for a in released {
            self.attrs.release(a);
        }
    }

    fn reselect_peer(&mut self, peer: PeerId) {
        let keys4: Vec<Ipv4Net> = self
            .v4
            .iter()
            .filter(|(_, e)| e.iter().any(|p| p.peer == peer))
            .map(|(k, _)| *k)
            .collect();
        let keys6: Vec<Ipv6Net> = self
            .v6
            .iter()
            .filter(|(_, e)| e.iter().any(|p| p.peer == peer))
            .map(|(k, _)| *k)
            .collect();
        self.reselect_keys_after(&keys4, &keys6, None);
    }

    /// Re-runs selection for the given prefixes; `prev` is a next-hop's state before the change
    /// that calls for it, so each prefix's forwarding result before is computed as it was.
    fn reselect_keys_after(
        &mut self,
        keys4: &[Ipv4Net],
        keys6: &[Ipv6Net],
        prev: Option<(IpAddr, NhState)>,
    ) {
        let ctx = ctx!(self, &self.cfg.ipv4);
        let mut sink = sink!(self);
        for k in keys4 {
            reselect_one(&mut self.v4, *k, &ctx, &Ctx { prev, ..ctx }, &mut sink);
        }
        let ctx = Ctx {
            cfg: &self.cfg.ipv6,
            ..ctx
        };
        for k in keys6 {
            reselect_one(&mut self.v6, *k, &ctx, &Ctx { prev, ..ctx }, &mut sink);
        }
    }

    /// Next-hop tracking: a BGP next-hop's reachability or IGP cost changed. Selection re-runs only for
    /// the prefixes that have a path through it.
    pub fn set_nexthop(&mut self, nh: IpAddr, state: NhState) {
        let default = NhState {
            reachable: self.cfg.nexthop_default_reachable,
            igp_cost: 0,
        };
        self.readings += 1;
        let old = self.nht.insert(nh, state).unwrap_or(default);
        if old == state {
            return;
        }
        let keys4 = self.v4.nh_prefixes(nh);
        let keys6 = self.v6.nh_prefixes(nh);
        self.reselect_keys_after(&keys4, &keys6, Some((nh, old)));
    }

    /// The BGP next-hops every path through which comes from `peer` (counted per next-hop and
    /// peer, no prefix walk): when the peer's paths go, these are dead for forwarding, and the
    /// dataplane can move away from them before the RIB walks the prefixes (BGP PIC).
    pub fn nexthops_only_from(&self, peer: PeerId) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        let only = |peers: &[(PeerId, u32)]| peers.iter().all(|(p, _)| *p == peer);
        for (nh, peers) in self.v4.nh_uses() {
            if peers.iter().any(|(p, _)| *p == peer) && only(peers) && only(self.v6.nh_peers(&nh)) {
                out.push(nh);
            }
        }
        for (nh, peers) in self.v6.nh_uses() {
            if !self.v4.uses_nh(&nh) && peers.iter().any(|(p, _)| *p == peer) && only(peers) {
                out.push(nh);
            }
        }
        out.sort_unstable();
        out
    }

    /// Next-hops in use, for next-hop tracking to resolve.
    pub fn nexthops(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .v4
            .nh_uses()
            .chain(self.v6.nh_uses())
            .map(|(nh, _)| nh)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Takes the FIB deltas accumulated since the last call, in order.
    pub fn take_fib_deltas(&mut self) -> Vec<FibDelta> {
        if self.nhsets.len() > self.nhsets_gc_at {
            self.nhset_last = [None, None];
            self.peer_set = PeerSetMemo::default();
            self.nhsets.retain(|s| Arc::strong_count(s) > 1);
            self.nhsets_gc_at = (self.nhsets.len() * 2).max(1024);
        }
        take_sized(&mut self.deltas)
    }

    /// The full forwarding table as the RIB sees it (for reconcile and consistency checks).
    pub fn fib(&self) -> Vec<(IpNet, FibEntry)> {
        let mut out = Vec::with_capacity(self.v4.len() + self.v6.len());
        let ctx4 = ctx!(self, &self.cfg.ipv4);
        let mut nhsets: HashSet<NhSet, FxBuildHasher> = HashSet::default();
        let mut intern = |k: &[FibNextHop]| -> NhSet {
            match nhsets.get(k) {
                Some(s) => s.clone(),
                None => {
                    let s: NhSet = Arc::from(k);
                    nhsets.insert(s.clone());
                    s
                }
            }
        };
        let mut push = |prefix: IpNet, fwd: Fwd| {
            let entry = if fwd.blackhole {
                FibEntry::Blackhole
            } else if fwd.primary.is_empty() {
                return;
            } else {
                FibEntry::Forward(FwdSet {
                    primary: intern(&fwd.primary),
                    backup: (!fwd.backup.is_empty()).then(|| intern(&fwd.backup)),
                })
            };
            out.push((prefix, entry));
        };
        for (k, e) in self.v4.iter() {
            push((*k).into(), ctx4.forwarding(e));
        }
        let ctx6 = Ctx {
            cfg: &self.cfg.ipv6,
            ..ctx4
        };
        for (k, e) in self.v6.iter() {
            push((*k).into(), ctx6.forwarding(e));
        }
        out
    }

    pub fn ipv4(&self) -> &Table<Ipv4Net> {
        &self.v4
    }

    pub fn ipv6(&self) -> &Table<Ipv6Net> {
        &self.v6
    }

    /// Returns spare capacity to the allocator (the daemon calls it when it trims the heap after a
    /// load, see `daemon::memory`): the tables' bucket vectors and path blocks, and the delta and
    /// best-change vectors; returns the bytes released.
    pub fn shrink(&mut self) -> usize {
        let (deltas, best) = (self.deltas.capacity(), self.best_changed.capacity());
        self.deltas.shrink_to_fit();
        self.best_changed.shrink_to_fit();
        self.v4.shrink()
            + self.v6.shrink()
            + (deltas - self.deltas.capacity()) * std::mem::size_of::<FibDelta>()
            + (best - self.best_changed.capacity()) * std::mem::size_of::<IpNet>()
    }

    /// Record prefixes whose best path changes (for export to peers); off by default.
    pub fn set_track_best(&mut self, on: bool) {
        self.track_best = on;
        if !on {
            self.best_changed = Vec::new();
        }
    }

    /// With `on`, every change of a prefix's candidate paths is reported by
    /// [`Rib::take_best_changes`], not only best-path changes (needed when several paths per prefix
    /// are advertised with ADD-PATH).
    pub fn set_track_all_changes(&mut self, on: bool) {
        self.track_all = on;
    }

    /// The candidates of `prefix`, best first, and how many leading ones have a reachable next-hop
    /// (unreachable paths sort last: reachability is the first step of the decision).
    pub fn usable_paths(&self, prefix: IpNet) -> Option<(PathSlice<'_>, usize)> {
        let (e, cfg) = match prefix {
            IpNet::V4(n) => (self.v4.get(&n.trunc())?, &self.cfg.ipv4),
            IpNet::V6(n) => (self.v6.get(&n.trunc())?, &self.cfg.ipv6),
        };
        if e.multipath() == 0 {
            return Some((e.as_slice(), 0));
        }
        let ctx = self.ctx(cfg);
        let n = e
            .iter()
            .take_while(|p| ctx.nh_state(p.attrs.next_hop()).reachable)
            .count();
        Some((e.as_slice(), n.max(1)))
    }

    /// Prefixes whose best path changed since the last call (may repeat a prefix).
    pub fn take_best_changes(&mut self) -> Vec<IpNet> {
        take_sized(&mut self.best_changed)
    }

    /// True when the RIB holds the path `(peer, path_id)` for `prefix`.
    pub fn has_path(&self, peer: PeerId, prefix: IpNet, path_id: u32) -> bool {
        let e = match prefix {
            IpNet::V4(n) => self.v4.get(&n.trunc()),
            IpNet::V6(n) => self.v6.get(&n.trunc()),
        };
        e.is_some_and(|e| e.iter().any(|p| p.peer == peer && p.path_id == path_id))
    }

    /// Prefix-paths held: `[ipv4, ipv6]`, without walking the tables.
    pub fn path_count(&self) -> [usize; 2] {
        self.paths
    }

    /// Prefixes with a forwarding entry: `[ipv4, ipv6]`.
    pub fn fib_len(&self) -> [usize; 2] {
        self.fib_len
    }

    /// Updates what the RIB knows of a peer (e.g. its router id once the session is up), keeping its paths.
    ///
    /// Called on every session establishment (the peer's router id is learned then), so the
    /// tables are walked only when something selection reads changed (not the name) and the peer
    /// has paths: a peer's first session, or a graceful restart with the same router id, costs
    /// nothing however many prefixes other peers sent.
    pub fn set_peer_info(&mut self, id: PeerId, info: PeerInfo) {
        let Some(slot) = self.peers.get_mut(id as usize) else {
            return;
        };
        let old = slot.replace(info);
        let (new, old) = (slot.as_ref().expect("set above"), old.as_ref());
        // What the internal flags read (`Ctx::stored_flags_of`).
        let flags_same = old.is_some_and(|o| {
            o.addr == new.addr && o.remote_as == new.remote_as && o.local_as == new.local_as
        });
        // Everything but the name (a field added later counts as read).
        let same = old.is_some_and(|o| {
            *new == PeerInfo {
                name: new.name.clone(),
                ..o.clone()
            }
        });
        if same {
            return;
        }
        self.peer_set = PeerSetMemo::default();
        self.readings += 1;
        if self.peer_paths(id) == [0, 0] {
            return;
        }
        // The peer's AS or address may have changed: its paths' MED groups, and whether they
        // forward to it, are told again.
        if !flags_same {
            let ctx = ctx!(self, &self.cfg.ipv4);
            for e in self.v4.values_mut().chain(self.v6.values_mut()) {
                if !e.iter().any(|p| p.peer == id) {
                    continue;
                }
                for p in e.iter_mut().filter(|p| p.peer == id) {
                    *p.flags = (*p.flags & !flags::INTERNAL)
                        | ctx.stored_flags(id, p.attrs, p.attrs.next_hop());
                }
            }
        }
        self.reselect_peer(id);
    }

    /// The forwarding entry of one prefix, as [`Rib::fib`] would list it.
    pub fn fib_entry_of(&self, prefix: IpNet) -> Option<FibEntry> {
        let (fwd, _) = match prefix {
            IpNet::V4(n) => {
                let e = self.v4.get(&n.trunc())?;
                let ctx = self.ctx(&self.cfg.ipv4);
                (ctx.forwarding(e), ())
            }
            IpNet::V6(n) => {
                let e = self.v6.get(&n.trunc())?;
                let ctx = self.ctx(&self.cfg.ipv6);
                (ctx.forwarding(e), ())
            }
        };
        if fwd.blackhole {
            Some(FibEntry::Blackhole)
        } else if fwd.primary.is_empty() {
            None
        } else {
            Some(FibEntry::Forward(FwdSet {
                primary: Arc::from(&fwd.primary[..]),
                backup: (!fwd.backup.is_empty()).then(|| Arc::from(&fwd.backup[..])),
            }))
        }
    }

    fn ctx<'a>(&'a self, cfg: &'a DecisionConfig) -> Ctx<'a> {
        ctx!(self, cfg)
    }

    /// Where the RIB's bytes go, by part (requested sizes, allocator overhead not included): for
    /// benchmarks and `/metrics`-style accounting.
    pub fn memory(&self) -> RibMemory {
        let (sets, lists, index) = self.attrs.memory();
        RibMemory {
            ipv4: self.v4.memory(),
            ipv6: self.v6.memory(),
            attr_sets: self.attrs.len(),
            attr_set_bytes: sets,
            attr_list_bytes: lists,
            attr_index_bytes: index,
            nhset_bytes: self.nhsets.capacity() * 17
                + self
                    .nhsets
                    .iter()
                    .map(|s| 16 + std::mem::size_of_val(&**s))
                    .sum::<usize>(),
        }
    }

    /// Number of distinct interned attribute sets.
    pub fn attr_sets(&self) -> usize {
        self.attrs.len()
    }

    pub fn stats(&self) -> RibStats {
        self.stats
    }

    /// All candidates of `prefix`, best first, each with the step at which the best beat it.
    pub fn explain(&self, prefix: IpNet) -> Vec<ExplainedPath> {
        match prefix {
            IpNet::V4(n) => self.explain_in(&self.v4, n.trunc(), &self.cfg.ipv4),
            IpNet::V6(n) => self.explain_in(&self.v6, n.trunc(), &self.cfg.ipv6),
        }
    }

    fn explain_in<K: PrefixKey>(
        &self,
        t: &Table<K>,
        k: K,
        cfg: &DecisionConfig,
    ) -> Vec<ExplainedPath> {
        let Some(e) = t.get(&k) else {
            return Vec::new();
        };
        let ctx = ctx!(self, cfg);
        let cands: Vec<Candidate<'_>> = e.iter().filter_map(|p| ctx.candidate(p)).collect();
        if cands.len() != e.len() {
            return Vec::new();
        }
        let sel = Selection {
            order: (0..cands.len()).collect::<decision::Order>(),
            multipath: e.multipath(),
        };
        let lost: HashMap<usize, Step> = decision::explain(&cands, &sel, cfg).into_iter().collect();
        e.iter()
            .zip(&cands)
            .enumerate()
            .map(|(i, (p, c))| {
                let lost_at = lost.get(&i).copied();
                ExplainedPath {
                    peer: c.peer.name.clone(),
                    path_id: p.path_id,
                    attrs: (**p.attrs).clone(),
                    best: i == 0 && e.multipath() > 0,
                    multipath: i < e.multipath(),
                    reachable: c.reachable,
                    igp_cost: c.igp_cost,
                    stale: p.flags & flags::ANY_STALE != 0,
                    lost_at,
                    reason: lost_at.map(|s| format!("best won: {}", s.describe())),
                }
            })
            .collect()
    }
}

/// Long-lived staleness of one peer's paths (see [`Rib::peer_llgr_stale`]): each distinct old set
/// becomes one new interned set with the LLGR_STALE community (via `cache`); the replaced sets go
/// to `old` for release, and stay alive until then (`cache` is keyed by their addresses).
struct LlgrMark<'a> {
    peer: PeerId,
    store: &'a mut AttrStore,
    cache: &'a mut HashMap<usize, AttrRef, FxBuildHasher>,
    old: &'a mut Vec<AttrRef>,
}

impl LlgrMark<'_> {
    /// Marks the peer's stale paths in `t` (flag and community) and re-runs selection for every
    /// prefix with a path of the peer, comparing its forwarding result before the marking with the
    /// one after (marking first and computing "before" after it hid a change: a marked path that
    /// leaves a backup's multipath set).
    fn table<K: PrefixKey>(&mut self, t: &mut Table<K>, ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
        let peer = self.peer;
        let keys: Vec<K> = t
            .iter()
            .filter(|(_, e)| e.iter().any(|p| p.peer == peer))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            let Some(e) = t.get_mut(&k) else { continue };
            let before = ctx.forwarding(e);
            let old_best = best_id(Some(e));
            for p in e.iter_mut() {
                if p.peer != peer
                    || *p.flags & flags::STALE == 0
                    || *p.flags & flags::LLGR_STALE != 0
                {
                    continue;
                }
                let new = self
                    .cache
                    .entry(p.attrs.addr())
                    .or_insert_with(|| {
                        let mut a = (**p.attrs).clone();
                        if !a.has_community(attrs::community::LLGR_STALE) {
                            let mut c = a.communities().to_vec();
                            c.push(attrs::community::LLGR_STALE);
                            a.set_communities(c);
                        }
                        self.store.intern(a)
                    })
                    .clone();
                self.old.push(std::mem::replace(p.attrs, new));
                *p.flags |= flags::LLGR_STALE;
            }
            ctx.reselect(e);
            sink.stats.selections += 1;
            let after = ctx.forwarding(e);
            sink.emit(k.into(), &before, after);
            sink.best(k.into(), old_best, best_id(Some(e)));
        }
    }
}

fn mark_stale<K: PrefixKey>(t: &mut Table<K>, peer: PeerId, flag: u8) {
    for e in t.values_mut() {
        for p in e.iter_mut().filter(|p| p.peer == peer) {
            *p.flags |= flag;
        }
    }
}

/// Inserts or replaces a path; returns the attribute set it replaced, for release.
fn upsert<K: PrefixKey>(
    t: &mut Table<K>,
    k: K,
    path: Path,
    new: &NewPath,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Option<AttrRef> {
    let peer = path.peer;
    let mut path = path;
    let mut replaced = None;
    let new_nh = new.next_hop;
    path.flags |= new.flags;
    match t.slot(k) {
        (e, true) => {
            *e = Paths::one(path);
            select_lone(e, new.key.is_some_and(|k| k.reachable));
            match new_nh {
                // The usual new prefix: a usable path with a next-hop forwards over it alone.
                Some(nh) if e.multipath() == 1 => sink.forward_new(k.into(), nh),
                _ => sink.emit(k.into(), &Fwd::default(), ctx.forwarding(e)),
            }
            sink.best(k.into(), None, best_id(Some(e)));
        }
        (e, false) => {
            let old_best = best_id(Some(e));
            let at = e
                .iter()
                .position(|p| p.peer == path.peer && p.path_id == path.path_id);
            // Where an added path goes when nothing else moves.
            let added = if at.is_none() {
                ctx.joins_last_with(e, &path, new)
            } else {
                None
            };
            if let Some(i) = at
                && ctx.same_set_keeps_order(e.as_slice().at(i), path.view())
            {
                // The same set again from the same peer (a refresh, a re-sent table): the order
                // does not read arrival ranks, so only the path's rank moves (it is the newest
                // now); selection, forwarding and the best path stay as they are.
                path.flags =
                    (e.as_slice().at(i).flags & flags::NH_DOWN) | (path.flags & flags::INTERNAL);
                replaced = e.push_newest(path, at).map(|old| old.attrs);
            } else if at.is_some() {
                let before = ctx.forwarding(e);
                replaced = e.push_newest(path, at).map(|old| old.attrs);
                ctx.reselect(e);
                let after = ctx.forwarding(e);
                sink.emit(k.into(), &before, after);
            } else if let Some(Added::Multipath) = added {
                // Every path was in the multipath set and the new one joins it last (the ECMP of
                // peers sending the same paths): no reselection, and the forwarding result is the
                // members' next-hops before and with the new one after, without backup either
                // time (no path is outside the set), each attribute set read once.
                set_nh_down(&mut path.flags, false);
                let mp0 = e.multipath();
                e.push_newest(path, None);
                e.set_multipath(mp0 + 1);
                emit_joined(sink, ctx, k.into(), e, mp0);
            } else if let Some(Added::Behind(reachable)) = added {
                // A path added that goes last, leaving the others as they are: no reselection,
                // and the forwarding result before is the entry's without its last path. When
                // the backup's lead is known and the new path cannot join its multipath set, the
                // forwarding result is the same without reading any other path's set.
                set_nh_down(&mut path.flags, !reachable);
                let mp0 = e.multipath();
                let kept = e
                    .backup_hint()
                    .filter(|&lead| ctx.appended_keeps_backup(e, lead, new.neighbor_as));
                e.push_newest(path, None);
                let j = e.len() - 1;
                let change = match kept {
                    Some(_) => AddedChange::None,
                    None => ctx.added_change(e, j, mp0),
                };
                match change {
                    AddedChange::None => {}
                    AddedChange::NewBackup => {
                        // The usual second path (a second peer's table): the primary set as it was,
                        // and the new path's next-hop as the backup, without comparing results.
                        let s = e.as_slice();
                        let (best_nh, new_nh) =
                            (s.at(0).attrs.next_hop(), s.at(j).attrs.next_hop());
                        match (mp0, best_nh, new_nh) {
                            (1, Some(p), Some(b)) => sink.forward_one(k.into(), p, b),
                            _ => {
                                let primary =
                                    weighted(&s.slice(..mp0).iter().collect::<SmallVec<[_; 8]>>());
                                sink.forward(k.into(), &primary, &weighted(&[s.at(j)]));
                            }
                        }
                    }
                    AddedChange::Maybe => {
                        let was: SmallVec<[PathRef<'_>; 8]> =
                            e.as_slice().slice(..j).iter().collect();
                        let down: SmallVec<[bool; 8]> =
                            was.iter().map(|p| p.flags & flags::NH_DOWN != 0).collect();
                        let before = ctx.forwarding_of(&was, &down, mp0);
                        let after = ctx.forwarding(e);
                        sink.emit(k.into(), &before, after);
                    }
                }
                let lead = match change {
                    AddedChange::NewBackup => Some(j),
                    _ => kept.or_else(|| ctx.backup_lead(e)),
                };
                if let Some(lead) = lead {
                    e.set_backup_hint(lead);
                }
            } else {
                // A path added: the entry before is the same paths without it, so its forwarding
                // result is only computed (from the paths now, in their old order and with their
                // old flags) when the new path may have changed it.
                let (id, path_id) = (path.peer, path.path_id);
                let mp0 = e.multipath();
                let old: SmallVec<[(PeerId, u32, bool); 8]> = e
                    .iter()
                    .map(|p| (p.peer, p.path_id, p.flags & flags::NH_DOWN != 0))
                    .collect();
                e.push_newest(path, None);
                ctx.reselect(e);
                let s = e.as_slice();
                let j = s
                    .iter()
                    .position(|p| p.peer == id && p.path_id == path_id)
                    .unwrap_or(0);
                let same = s
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != j)
                    .map(|(_, p)| (p.peer, p.path_id, p.flags & flags::NH_DOWN != 0))
                    .eq(old.iter().copied());
                if !same || ctx.added_change(e, j, mp0) != AddedChange::None {
                    let was: SmallVec<[PathRef<'_>; 8]> = old
                        .iter()
                        .filter_map(|(peer, pid, _)| {
                            s.iter().find(|p| p.peer == *peer && p.path_id == *pid)
                        })
                        .collect();
                    let down: SmallVec<[bool; 8]> = old.iter().map(|o| o.2).collect();
                    let before = ctx.forwarding_of(&was, &down, mp0);
                    let after = ctx.forwarding(e);
                    sink.emit(k.into(), &before, after);
                }
            }
            sink.best(k.into(), old_best, best_id(Some(e)));
        }
    }
    sink.stats.selections += 1;
    let old_nh = replaced.as_ref().map(|a| a.next_hop());
    if old_nh != Some(new_nh) {
        if let Some(nh) = new_nh {
            t.note_nh_use(nh, k, peer);
        }
        if let Some(Some(nh)) = old_nh {
            t.note_nh_unuse(nh, peer);
        }
    }
    replaced
}

/// Removes the paths matching `pred`; returns their attribute sets, for release.
fn remove<K: PrefixKey>(
    t: &mut Table<K>,
    k: K,
    pred: impl Fn(PathRef<'_>) -> bool,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Vec<AttrRef> {
    match t.get(&k) {
        Some(e) if e.iter().any(&pred) => {}
        _ => return Vec::new(),
    }
    let Some(e) = t.take(&k) else {
        return Vec::new();
    };
    let before = ctx.forwarding(&e);
    let old_best = best_id(Some(&e));
    let (removed, kept) = e.extract(&pred);
    let kept = kept.map(|mut e| {
        ctx.reselect(&mut e);
        sink.stats.selections += 1;
        e
    });
    let after = kept.as_ref().map(|e| ctx.forwarding(e)).unwrap_or_default();
    sink.emit(k.into(), &before, after);
    sink.best(k.into(), old_best, best_id(kept.as_ref()));
    t.put(k, kept);
    let mut attrs = Vec::with_capacity(removed.len());
    for p in removed {
        if let Some(nh) = p.attrs.next_hop() {
            t.note_nh_unuse(nh, p.peer);
        }
        attrs.push(p.attrs);
    }
    attrs
}

/// Removes the paths of `peer` matching `pred` from one table; returns their attribute sets.
fn flush_in<K: PrefixKey>(
    t: &mut Table<K>,
    peer: PeerId,
    pred: impl Fn(PathRef<'_>) -> bool + Copy,
    ctx: &Ctx<'_>,
    sink: &mut Sink<'_>,
) -> Vec<AttrRef> {
    let keys: Vec<K> = t
        .iter()
        .filter(|(_, e)| e.iter().any(|p| p.peer == peer && pred(p)))
        .map(|(k, _)| *k)
        .collect();
    let mut released = Vec::new();
    for k in keys {
        released.extend(remove(t, k, |p| p.peer == peer && pred(p), ctx, sink));
    }
    released
}

/// Re-runs selection for one prefix; `was` computes its forwarding result before (see
/// [`Ctx::prev`]), `ctx` everything after.
fn reselect_one<K: PrefixKey>(
    t: &mut Table<K>,
    k: K,
    ctx: &Ctx<'_>,
    was: &Ctx<'_>,
    sink: &mut Sink<'_>,
) {
    let Some(e) = t.get_mut(&k) else { return };
    let before = was.forwarding(e);
    let old_best = best_id(Some(e));
    ctx.reselect(e);
    sink.stats.selections += 1;
    let after = ctx.forwarding(e);
    sink.emit(k.into(), &before, after);
    sink.best(k.into(), old_best, best_id(Some(e)));
}
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upsert_tests;
