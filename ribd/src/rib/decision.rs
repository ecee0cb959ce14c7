//! The decision process: which candidate path is best, which form the multipath set, and why.
//!
//! RFC 4271 §9.1.2 with the deterministic tie-breaks operators expect. [`compare`] is a pure function
//! over two candidates returning the order and the step that decided it; [`select`] orders all
//! candidates of one prefix. MEDs are only comparable between paths from the same neighbouring AS
//! (unless `always_compare_med`), which makes pairwise comparison non-transitive; with
//! `deterministic_med` (the default) paths are grouped per neighbouring AS, each group is ordered with
//! MED, and the group winners are ordered without it, so the result never depends on arrival order.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::attrs::{Attrs, Origin, SelectionAttrs};

/// How a route was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// External BGP (includes confederation-external for the eBGP/iBGP step: see `confed`).
    Ebgp,
    Ibgp,
    /// Originated by this router (static routes from the config).
    Local,
}

/// What the decision process needs to know about the peer a path came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub name: String,
    pub addr: IpAddr,
    pub router_id: Ipv4Addr,
    pub remote_as: u32,
    pub local_as: u32,
    pub kind: PeerKind,
    /// Peer is a member of our confederation in another member AS: eBGP on the wire, treated as iBGP for
    /// the eBGP-over-iBGP step and multipath class (RFC 5065 §5.3).
    #[serde(default)]
    pub confed: bool,
}

impl PeerInfo {
    fn is_external(&self) -> bool {
        self.kind == PeerKind::Ebgp && !self.confed
    }
}

/// Knobs of the decision process (per AFI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DecisionConfig {
    /// Skip the AS_PATH length step.
    pub ignore_as_path_len: bool,
    /// Compare MED between paths from different neighbouring ASes.
    pub always_compare_med: bool,
    /// A missing MED is the worst (u32::MAX) instead of the best (0, RFC 4271).
    pub med_missing_as_worst: bool,
    /// Group by neighbouring AS before comparing MEDs (order-independent result).
    pub deterministic_med: bool,
    /// Among eBGP paths, prefer the oldest (fewer flaps) instead of going on to router-id (RFC 5004).
    pub prefer_oldest_ebgp: bool,
    /// LOCAL_PREF assumed when the attribute is absent.
    pub default_local_pref: u32,
    /// Maximum eBGP paths in the multipath set.
    pub max_paths_ebgp: usize,
    /// Maximum iBGP paths in the multipath set.
    pub max_paths_ibgp: usize,
    /// Multipath members need equal AS_PATH length only, not identical AS_PATHs.
    pub as_path_relax: bool,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            ignore_as_path_len: false,
            always_compare_med: false,
            med_missing_as_worst: false,
            deterministic_med: true,
            prefer_oldest_ebgp: false,
            default_local_pref: 100,
            max_paths_ebgp: 8,
            max_paths_ibgp: 1,
            as_path_relax: false,
        }
    }
}

/// One candidate path as the decision process sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub peer: &'a PeerInfo,
    pub attrs: &'a Attrs,
    /// Next-hop resolvable (from next-hop tracking).
    pub reachable: bool,
    /// IGP cost to the next-hop (from next-hop tracking).
    pub igp_cost: u32,
    /// Long-lived-GR stale (RFC 9494 §4.3: least preferred).
    pub llgr_stale: bool,
    /// Arrival sequence number; lower is older.
    pub seq: u32,
    /// ADD-PATH path identifier.
    pub path_id: u32,
}

/// The step of the decision process that separated two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    NextHopReachability,
    LlgrStale,
    Weight,
    LocalPref,
    LocallyOriginated,
    AsPathLength,
    Origin,
    Med,
    EbgpOverIbgp,
    IgpCost,
    Oldest,
    RouterId,
    ClusterListLength,
    PeerAddress,
    PathId,
    /// Identical in every step (the same path).
    Equal,
}

impl Step {
    /// Steps up to and including this one must be equal for paths to share the multipath set.
    pub const MULTIPATH_LAST: Step = Step::IgpCost;

    pub fn describe(self) -> &'static str {
        match self {
            Step::NextHopReachability => "next-hop reachable",
            Step::LlgrStale => "not LLGR-stale",
            Step::Weight => "higher weight",
            Step::LocalPref => "higher local-pref",
            Step::LocallyOriginated => "locally originated",
            Step::AsPathLength => "shorter AS path",
            Step::Origin => "lower origin",
            Step::Med => "lower MED",
            Step::EbgpOverIbgp => "eBGP over iBGP",
            Step::IgpCost => "lower IGP cost to next-hop",
            Step::Oldest => "older eBGP path",
            Step::RouterId => "lower router-id",
            Step::ClusterListLength => "shorter cluster list",
            Step::PeerAddress => "lower peer address",
            Step::PathId => "lower path id",
            Step::Equal => "equal",
        }
    }
}

/// What the decision process compares of one candidate, read once: building it dereferences the
/// attribute set and its AS path (one pass over the segments for both the selection length and the
/// neighbouring AS), so sorting a prefix's candidates compares flat values instead of chasing
/// pointers at every comparison. [`compare_with`] is [`compare_keys`] over two fresh keys, so the
/// two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub reachable: bool,
    pub llgr_stale: bool,
    pub local: bool,
    pub external: bool,
    pub origin: Origin,
    pub weight: u32,
    /// LOCAL_PREF, the configured default when absent.
    pub local_pref: u32,
    /// AS_PATH length for selection (AS_SET 1, confederation segments 0).
    pub as_path_len: u32,
    /// MED, with a missing one as best or worst per the configuration.
    pub med: u32,
    /// The neighbouring AS of the path (`None` for an empty path or one starting with an AS_SET).
    pub neighbor_as: Option<u32>,
    /// The AS whose MEDs are comparable with each other: the neighbouring AS, or our own for local
    /// and empty-path routes.
    pub group: u32,
    pub igp_cost: u32,
    pub seq: u32,
    /// ORIGINATOR_ID when present (RFC 4456 §9), else the peer's router id.
    pub router_id: u32,
    pub cluster_len: u32,
    pub peer_addr: IpAddr,
    pub path_id: u32,
}

impl Key {
    pub fn new(c: &Candidate<'_>, cfg: &DecisionConfig) -> Key {
        Key::with_attrs(c, &c.attrs.for_selection(), cfg)
    }

    /// [`Key::new`] with what selection reads of the candidate's set read already (`s`, of
    /// `c.attrs`: a caller that needed its next-hop first reads the set once).
    #[inline]
    pub fn with_attrs(c: &Candidate<'_>, s: &SelectionAttrs, cfg: &DecisionConfig) -> Key {
        Key {
            reachable: c.reachable,
            llgr_stale: c.llgr_stale,
            local: c.peer.kind == PeerKind::Local,
            external: c.peer.is_external(),
            origin: s.origin,
            weight: s.weight,
            local_pref: s.local_pref.unwrap_or(cfg.default_local_pref),
            as_path_len: s.as_path_len,
            med: s.med.unwrap_or(if cfg.med_missing_as_worst {
                u32::MAX
            } else {
                0
            }),
            neighbor_as: s.neighbor_as,
            group: s.neighbor_as.unwrap_or(c.peer.local_as),
            igp_cost: c.igp_cost,
            seq: c.seq,
            router_id: u32::from(s.originator_id.unwrap_or(c.peer.router_id)),
            cluster_len: s.cluster_len,
            peer_addr: c.peer.addr,
            path_id: c.path_id,
        }
    }

    /// Whether the MED step applies between the two.
    fn med_comparable(&self, other: &Key, cfg: &DecisionConfig) -> bool {
        cfg.always_compare_med || self.group == other.group
    }
}

/// Compares two candidates' keys. `Ordering::Less` means `a` is preferred. `with_med` says whether
/// the MED step applies (same neighbouring AS, or `always_compare_med`).
pub fn compare_keys(a: &Key, b: &Key, cfg: &DecisionConfig, with_med: bool) -> (Ordering, Step) {
    macro_rules! step {
        ($step:expr, $ord:expr) => {
            let o = $ord;
            if o != Ordering::Equal {
                return (o, $step);
            }
        };
    }
    // true sorts first: compare b to a for "higher/true is better".
    step!(Step::NextHopReachability, b.reachable.cmp(&a.reachable));
    step!(Step::LlgrStale, a.llgr_stale.cmp(&b.llgr_stale));
    step!(Step::Weight, b.weight.cmp(&a.weight));
    step!(Step::LocalPref, b.local_pref.cmp(&a.local_pref));
    step!(Step::LocallyOriginated, b.local.cmp(&a.local));
    if !cfg.ignore_as_path_len {
        step!(Step::AsPathLength, a.as_path_len.cmp(&b.as_path_len));
    }
    step!(Step::Origin, a.origin.cmp(&b.origin));
    if with_med {
        step!(Step::Med, a.med.cmp(&b.med));
    }
    step!(Step::EbgpOverIbgp, b.external.cmp(&a.external));
    step!(Step::IgpCost, a.igp_cost.cmp(&b.igp_cost));
    if cfg.prefer_oldest_ebgp && a.external && b.external {
        step!(Step::Oldest, a.seq.cmp(&b.seq));
    }
    step!(Step::RouterId, a.router_id.cmp(&b.router_id));
    step!(Step::ClusterListLength, a.cluster_len.cmp(&b.cluster_len));
    step!(Step::PeerAddress, a.peer_addr.cmp(&b.peer_addr));
    step!(Step::PathId, a.path_id.cmp(&b.path_id));
    (Ordering::Equal, Step::Equal)
}

/// Compares two candidates. `Ordering::Less` means `a` is preferred. `with_med` says whether the MED
/// step applies (same neighbouring AS, or `always_compare_med`).
pub fn compare_with(
    a: &Candidate<'_>,
    b: &Candidate<'_>,
    cfg: &DecisionConfig,
    with_med: bool,
) -> (Ordering, Step) {
    compare_keys(&Key::new(a, cfg), &Key::new(b, cfg), cfg, with_med)
}

/// Compares two candidates, applying the MED step when the configuration says they are comparable.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>, cfg: &DecisionConfig) -> (Ordering, Step) {
    let (ka, kb) = (Key::new(a, cfg), Key::new(b, cfg));
    compare_keys(&ka, &kb, cfg, ka.med_comparable(&kb, cfg))
}

/// Candidate indices (no heap for up to 8 candidates).
pub type Order = SmallVec<[usize; 8]>;

/// Result of selecting over the candidates of one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Candidate indices, most preferred first.
    pub order: Order,
    /// How many of the first entries of `order` form the multipath set (0 when nothing is usable).
    pub multipath: usize,
}

/// Orders the candidates and computes the multipath set.
pub fn select(cands: &[Candidate<'_>], cfg: &DecisionConfig) -> Selection {
    let keys: Keys = cands.iter().map(|c| Key::new(c, cfg)).collect();
    select_keys(cands, &keys, cfg)
}

/// Candidate keys (no heap for up to 4 candidates).
pub type Keys = SmallVec<[Key; 4]>;

/// [`select`] with each candidate's key built already (`keys[i]` of `cands[i]`).
pub fn select_keys(cands: &[Candidate<'_>], keys: &[Key], cfg: &DecisionConfig) -> Selection {
    let mut order: Order = (0..keys.len()).collect();
    if keys.is_empty() {
        return Selection {
            order,
            multipath: 0,
        };
    }
    let k = keys;
    if k.len() == 1 {
        // Nothing to order.
    } else if cfg.always_compare_med {
        order.sort_by(|&a, &b| compare_keys(&k[a], &k[b], cfg, true).0);
    } else if cfg.deterministic_med {
        order = deterministic_order(order, k, cfg);
    } else {
        // RFC 4271 as written: compare in arrival order, MED only within the same neighbouring AS.
        let mut by_arrival = order.clone();
        by_arrival.sort_by_key(|&i| k[i].seq);
        let best = by_arrival
            .iter()
            .copied()
            .reduce(|best, c| {
                let with_med = k[c].med_comparable(&k[best], cfg);
                if compare_keys(&k[c], &k[best], cfg, with_med).0 == Ordering::Less {
                    c
                } else {
                    best
                }
            })
            .unwrap_or(0);
        order.retain(|i| *i != best);
        order.sort_by(|&a, &b| compare_keys(&k[a], &k[b], cfg, false).0);
        order.insert(0, best);
    }

    let b = order[0];
    if !k[b].reachable {
        return Selection {
            order,
            multipath: 0,
        };
    }
    let max = max_paths(cands[b].peer, cfg);
    multipath_first(&order, max, |i| {
        eligible_keys(cands[b].attrs, &k[b], cands[i].attrs, &k[i], cfg)
    })
}

/// `order` (indices into `k`) in the order of deterministic MED: within each neighbouring-AS group
/// with MED, then the groups by their winners without MED ([`grouped_order`]). When every path is
/// alone in its group (the usual entry of several upstreams) each is its group's winner, and one
/// sort without MED, ties kept in group order, gives the same order.
fn deterministic_order(mut order: Order, k: &[Key], cfg: &DecisionConfig) -> Order {
    let distinct = k
        .iter()
        .enumerate()
        .all(|(i, a)| k[i + 1..].iter().all(|b| b.group != a.group));
    if !distinct {
        return grouped_order(order, k, cfg);
    }
    order.sort_by(|&a, &b| {
        compare_keys(&k[a], &k[b], cfg, false)
            .0
            .then_with(|| k[a].group.cmp(&k[b].group))
    });
    order
}

/// [`deterministic_order`] group by group: `order` sorted by group and with MED within each, then
/// the groups by their first (winning) paths without MED; every step is a total order, so arrival
/// order cannot matter.
fn grouped_order(mut order: Order, k: &[Key], cfg: &DecisionConfig) -> Order {
    order.sort_by(|&a, &b| {
        k[a].group
            .cmp(&k[b].group)
            .then_with(|| compare_keys(&k[a], &k[b], cfg, true).0)
    });
    if order.iter().any(|&i| k[i].group != k[order[0]].group) {
        let mut groups: SmallVec<[&[usize]; 8]> =
            order.chunk_by(|&a, &b| k[a].group == k[b].group).collect();
        groups.sort_by(|ga, gb| compare_keys(&k[ga[0]], &k[gb[0]], cfg, false).0);
        let regrouped: Order = groups.iter().flat_map(|g| g.iter().copied()).collect();
        drop(groups);
        order = regrouped;
    }
    order
}

/// Where [`joins_last`] puts a new path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joins {
    /// Last, outside the multipath set.
    Behind,
    /// Last, as the newest member of the multipath set (every other path was a member already,
    /// and the set had room).
    Multipath,
}

/// Whether a path with key `new` joins the end of an ordered entry without changing anything
/// else: `keys` are the entry's paths in their selected order (as [`select_keys`] left them, each
/// path's key with its reachability then), `multipath` its multipath count; `new` is the newest
/// path (its arrival rank above every other). Some only when [`select_keys`] over the entry's
/// paths followed by the new one provably orders the new one last: the new path loses to every
/// path it is compared with (with deterministic MED: to its neighbouring AS's paths with MED,
/// and its group to every other group). Then [`Joins::Behind`] when the best path does not admit
/// it (`admits`, asked only when the multipath set has room), [`Joins::Multipath`] when it does
/// and every path is in the set already (members stay in their order at the front, so the new
/// one, eligible and with room, is the last member); a member joining a set with paths behind
/// it would move ahead of them (None). The others keep their order: the full sort is stable and
/// they come first in it. RFC 4271's arrival-order MED comparison (neither option) always
/// answers None.
pub fn joins_last(
    keys: &[Key],
    multipath: usize,
    max: usize,
    new: &Key,
    cfg: &DecisionConfig,
    admits: impl FnOnce() -> bool,
) -> Option<Joins> {
    let worse = |a: &Key, with_med: bool| compare_keys(a, new, cfg, with_med).0 == Ordering::Less;
    let last = if cfg.always_compare_med {
        keys.iter().all(|k| worse(k, true))
    } else if cfg.deterministic_med {
        // The leaders: each group's most preferred path (with MED). Paths that tie at every step
        // are the same to every comparison below, so both may count as leaders.
        let leaders: SmallVec<[&Key; 8]> = keys
            .iter()
            .filter(|k| {
                !keys.iter().any(|o| {
                    o.group == k.group && compare_keys(o, k, cfg, true).0 == Ordering::Less
                })
            })
            .collect();
        match leaders.iter().find(|l| l.group == new.group) {
            // A group of its own: after every other group.
            None => leaders.iter().all(|l| worse(l, false)),
            // Last in its group (so the group keeps its leader), and that group is the last.
            Some(own) => {
                keys.iter()
                    .filter(|k| k.group == new.group)
                    .all(|k| worse(k, true))
                    && leaders.iter().all(|l| {
                        l.group == own.group || compare_keys(l, own, cfg, false).0 == Ordering::Less
                    })
            }
        }
    } else {
        false
    };
    if !last {
        None
    } else if multipath == 0 || multipath >= max || !admits() {
        Some(Joins::Behind)
    } else {
        (multipath == keys.len()).then_some(Joins::Multipath)
    }
}

/// The selection from a most-preferred-first `order` (its best reachable): the paths after the best
/// that `eligible` admits, up to `max` members in all, move directly behind it in their order. With
/// deterministic MED they need not be adjacent yet: another neighbouring AS's group may sit between.
fn multipath_first(
    order: &[usize],
    max: usize,
    mut eligible: impl FnMut(usize) -> bool,
) -> Selection {
    let mut members: Order = SmallVec::new();
    members.push(order[0]);
    let mut rest: Order = SmallVec::new();
    for &i in &order[1..] {
        if members.len() < max && eligible(i) {
            members.push(i);
        } else {
            rest.push(i);
        }
    }
    let multipath = members.len();
    members.extend(rest);
    Selection {
        order: members,
        multipath,
    }
}

/// The largest multipath set a best path from `peer` may lead.
pub fn max_paths(peer: &PeerInfo, cfg: &DecisionConfig) -> usize {
    match peer.kind {
        PeerKind::Ebgp if !peer.confed => cfg.max_paths_ebgp,
        PeerKind::Local => 1,
        _ => cfg.max_paths_ibgp,
    }
    .max(1)
}

/// A candidate joins the best in the multipath set when it ties through the IGP-cost step, comes from the
/// same class of peer, and has the same AS_PATH (or only the same length with `as_path_relax`).
pub fn multipath_eligible(best: &Candidate<'_>, c: &Candidate<'_>, cfg: &DecisionConfig) -> bool {
    eligible_keys(
        best.attrs,
        &Key::new(best, cfg),
        c.attrs,
        &Key::new(c, cfg),
        cfg,
    )
}

/// [`multipath_eligible`] with both keys built already (`kb` of the best path's attributes `best`,
/// `kc` of the candidate's `c`).
pub fn eligible_keys(best: &Attrs, kb: &Key, c: &Attrs, kc: &Key, cfg: &DecisionConfig) -> bool {
    let (_, step) = compare_keys(kb, kc, cfg, kb.med_comparable(kc, cfg));
    eligible_after(best, kb, c, kc, cfg, step)
}

/// [`eligible_keys`] with the keys compared already: `step` is where `compare_keys(kb, kc, cfg,
/// with_med)` told them apart, `with_med` as [`Key::med_comparable`] says for them.
pub fn eligible_after(
    best: &Attrs,
    kb: &Key,
    c: &Attrs,
    kc: &Key,
    cfg: &DecisionConfig,
    step: Step,
) -> bool {
    debug_assert_eq!(
        compare_keys(kb, kc, cfg, kb.med_comparable(kc, cfg)).1,
        step
    );
    if !kc.reachable || kc.local || kb.local {
        return false;
    }
    if kb.external != kc.external {
        return false;
    }
    if step <= Step::MULTIPATH_LAST {
        return false;
    }
    // Equal AS paths have the same neighbouring AS and length: compare the paths only when those
    // agree (usually they differ, and the AS paths stay unread).
    cfg.as_path_relax
        || (kb.neighbor_as == kc.neighbor_as
            && kb.as_path_len == kc.as_path_len
            && best.as_path() == c.as_path())
}

/// For each candidate after the best: the step at which the best beat it.
pub fn explain(
    cands: &[Candidate<'_>],
    sel: &Selection,
    cfg: &DecisionConfig,
) -> Vec<(usize, Step)> {
    let Some(&best) = sel.order.first() else {
        return Vec::new();
    };
    sel.order[1..]
        .iter()
        .map(|&i| (i, compare(&cands[best], &cands[i], cfg).1))
        .collect()
}

#[cfg(test)]
mod tests {
    //! The keys against the decision process written out over the attributes, as it was before
    //! keys: every step, option and the multipath rules must agree on random candidates.

    use proptest::prelude::*;

    use super::*;
    use crate::rib::attrs::{AsPath, SegmentKind};

    /// The comparison read straight from the candidates (each step dereferencing the attributes).
    fn reference_compare(
        a: &Candidate<'_>,
        b: &Candidate<'_>,
        cfg: &DecisionConfig,
        with_med: bool,
    ) -> (Ordering, Step) {
        let lp = |c: &Candidate<'_>| c.attrs.local_pref().unwrap_or(cfg.default_local_pref);
        let med = |c: &Candidate<'_>| {
            c.attrs.med().unwrap_or(if cfg.med_missing_as_worst {
                u32::MAX
            } else {
                0
            })
        };
        let rid =
            |c: &Candidate<'_>| u32::from(c.attrs.originator_id().unwrap_or(c.peer.router_id));
        let local = |c: &Candidate<'_>| c.peer.kind == PeerKind::Local;
        let steps: [(Step, Option<Ordering>); 15] = [
            (
                Step::NextHopReachability,
                Some(b.reachable.cmp(&a.reachable)),
            ),
            (Step::LlgrStale, Some(a.llgr_stale.cmp(&b.llgr_stale))),
            (Step::Weight, Some(b.attrs.weight().cmp(&a.attrs.weight()))),
            (Step::LocalPref, Some(lp(b).cmp(&lp(a)))),
            (Step::LocallyOriginated, Some(local(b).cmp(&local(a)))),
            (
                Step::AsPathLength,
                (!cfg.ignore_as_path_len).then(|| {
                    a.attrs
                        .as_path()
                        .selection_len()
                        .cmp(&b.attrs.as_path().selection_len())
                }),
            ),
            (Step::Origin, Some(a.attrs.origin().cmp(&b.attrs.origin()))),
            (Step::Med, with_med.then(|| med(a).cmp(&med(b)))),
            (
                Step::EbgpOverIbgp,
                Some(b.peer.is_external().cmp(&a.peer.is_external())),
            ),
            (Step::IgpCost, Some(a.igp_cost.cmp(&b.igp_cost))),
            (
                Step::Oldest,
                (cfg.prefer_oldest_ebgp && a.peer.is_external() && b.peer.is_external())
                    .then(|| a.seq.cmp(&b.seq)),
            ),
            (Step::RouterId, Some(rid(a).cmp(&rid(b)))),
            (
                Step::ClusterListLength,
                Some(
                    a.attrs
                        .cluster_list()
                        .len()
                        .cmp(&b.attrs.cluster_list().len()),
                ),
            ),
            (Step::PeerAddress, Some(a.peer.addr.cmp(&b.peer.addr))),
            (Step::PathId, Some(a.path_id.cmp(&b.path_id))),
        ];
        for (step, o) in steps {
            if let Some(o) = o
                && o != Ordering::Equal
            {
                return (o, step);
            }
        }
        (Ordering::Equal, Step::Equal)
    }

    fn reference_group(c: &Candidate<'_>) -> u32 {
        c.attrs.as_path().neighbor_as().unwrap_or(c.peer.local_as)
    }

    fn reference_pair(
        a: &Candidate<'_>,
        b: &Candidate<'_>,
        cfg: &DecisionConfig,
    ) -> (Ordering, Step) {
        let with_med = cfg.always_compare_med || reference_group(a) == reference_group(b);
        reference_compare(a, b, cfg, with_med)
    }

    fn reference_eligible(best: &Candidate<'_>, c: &Candidate<'_>, cfg: &DecisionConfig) -> bool {
        if !c.reachable || c.peer.kind == PeerKind::Local || best.peer.kind == PeerKind::Local {
            return false;
        }
        if best.peer.is_external() != c.peer.is_external() {
            return false;
        }
        if reference_pair(best, c, cfg).1 <= Step::MULTIPATH_LAST {
            return false;
        }
        cfg.as_path_relax || best.attrs.as_path() == c.attrs.as_path()
    }

    /// Selection as written before keys: the order, then the multipath set pulled forward.
    fn reference_select(cands: &[Candidate<'_>], cfg: &DecisionConfig) -> Selection {
        let mut order: Order = (0..cands.len()).collect();
        if cfg.always_compare_med {
            order.sort_by(|&a, &b| reference_compare(&cands[a], &cands[b], cfg, true).0);
        } else if cfg.deterministic_med {
            order.sort_by(|&a, &b| {
                reference_group(&cands[a])
                    .cmp(&reference_group(&cands[b]))
                    .then_with(|| reference_compare(&cands[a], &cands[b], cfg, true).0)
            });
            let mut groups: Vec<&[usize]> = order
                .chunk_by(|&a, &b| reference_group(&cands[a]) == reference_group(&cands[b]))
                .collect();
            groups.sort_by(|ga, gb| reference_compare(&cands[ga[0]], &cands[gb[0]], cfg, false).0);
            order = groups.iter().flat_map(|g| g.iter().copied()).collect();
        } else {
            let mut by_arrival = order.clone();
            by_arrival.sort_by_key(|&i| cands[i].seq);
            let best = by_arrival
                .iter()
                .copied()
                .reduce(|best, c| {
                    if reference_pair(&cands[c], &cands[best], cfg).0 == Ordering::Less {
                        c
                    } else {
                        best
                    }
                })
                .unwrap_or(0);
            order.retain(|i| *i != best);
            order.sort_by(|&a, &b| reference_compare(&cands[a], &cands[b], cfg, false).0);
            order.insert(0, best);
        }
        let best = &cands[order[0]];
        if !best.reachable {
            return Selection {
                order,
                multipath: 0,
            };
        }
        let max = max_paths(best.peer, cfg);
        multipath_first(&order, max, |i| reference_eligible(best, &cands[i], cfg))
    }

    fn peer_strategy() -> impl Strategy<Value = PeerInfo> {
        (0..3u8, 0..3u8, 0..3u8, 0..2u32, any::<bool>()).prop_map(
            |(kind, addr, rid, asn, confed)| PeerInfo {
                name: format!("p{addr}"),
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, addr)),
                router_id: Ipv4Addr::new(10, 0, 0, rid),
                remote_as: 64500 + asn,
                local_as: 65000 + asn,
                kind: [PeerKind::Ebgp, PeerKind::Ibgp, PeerKind::Local][kind as usize],
                confed: confed && kind == 0,
            },
        )
    }

    fn attrs_strategy() -> impl Strategy<Value = Attrs> {
        let segment = (0..4u8, prop::collection::vec(1..4u32, 1..3));
        (
            prop::collection::vec(segment, 0..3),
            prop::option::of(prop_oneof![Just(0u32), Just(10), Just(20)]),
            prop::option::of(prop_oneof![Just(100u32), Just(200)]),
            0..3u8,
            0..2u32,
            prop::option::of(0..3u8),
            0..3usize,
        )
            .prop_map(
                |(segs, med, local_pref, origin, weight, originator, clusters)| {
                    let kinds = [
                        SegmentKind::Sequence,
                        SegmentKind::Set,
                        SegmentKind::ConfedSequence,
                        SegmentKind::ConfedSet,
                    ];
                    let as_path = AsPath::from_segments(
                        segs.iter().map(|(k, v)| (kinds[*k as usize], &v[..])),
                    );
                    Attrs::default()
                        .with_as_path(as_path)
                        .with_med(med)
                        .with_local_pref(local_pref)
                        .with_origin(
                            [Origin::Igp, Origin::Egp, Origin::Incomplete][origin as usize],
                        )
                        .with_weight(weight)
                        .with_originator_id(originator.map(|o| Ipv4Addr::new(10, 0, 0, o)))
                        .with_cluster_list(vec![Ipv4Addr::new(10, 9, 9, 9); clusters])
                },
            )
    }

    /// (reachable, IGP cost, LLGR-stale, arrival, path id) of a candidate.
    type Extra = (bool, u32, bool, u32, u32);

    fn extra_strategy() -> impl Strategy<Value = Extra> {
        (
            prop::bool::weighted(0.85),
            0..2u32,
            prop::bool::weighted(0.1),
            0..6u32,
            0..2u32,
        )
    }

    fn config_strategy() -> impl Strategy<Value = DecisionConfig> {
        (
            prop::collection::vec(any::<bool>(), 6),
            1..4usize,
            1..4usize,
        )
            .prop_map(|(b, ebgp, ibgp)| DecisionConfig {
                ignore_as_path_len: b[0],
                always_compare_med: b[1],
                med_missing_as_worst: b[2],
                deterministic_med: b[3],
                prefer_oldest_ebgp: b[4],
                as_path_relax: b[5],
                max_paths_ebgp: ebgp,
                max_paths_ibgp: ibgp,
                ..DecisionConfig::default()
            })
    }

    fn candidates<'a>(
        peers: &'a [PeerInfo],
        attrs: &'a [Attrs],
        extra: &[Extra],
    ) -> Vec<Candidate<'a>> {
        extra
            .iter()
            .enumerate()
            .map(
                |(i, &(reachable, igp_cost, llgr_stale, seq, path_id))| Candidate {
                    peer: &peers[i % peers.len()],
                    attrs: &attrs[i % attrs.len()],
                    reachable,
                    igp_cost,
                    llgr_stale,
                    seq,
                    path_id,
                },
            )
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// With deterministic MED and every path in a group of its own, the one sort without MED
        /// orders as the group-by-group computation, ties between groups' winners (down to equal
        /// peer addresses and path ids) included.
        #[test]
        fn paths_in_groups_of_their_own_order_as_group_by_group(
            fields in prop::collection::vec(
                (
                    (any::<bool>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1), any::<bool>()),
                    (0..3u8, 0..2u32, prop_oneof![Just(100u32), Just(200)], 1..3u32, 0..3u32),
                    (0..2u32, 0..2u32, 0..2u32, 0..2u8, 0..2u32),
                ),
                1..8,
            ),
            groups in Just((64500..64510u32).collect::<Vec<_>>()).prop_shuffle(),
            ignore_len in any::<bool>(),
            missing_worst in any::<bool>(),
        ) {
            let cfg = DecisionConfig {
                deterministic_med: true,
                ignore_as_path_len: ignore_len,
                med_missing_as_worst: missing_worst,
                ..DecisionConfig::default()
            };
            let keys: Vec<Key> = fields
                .iter()
                .zip(&groups)
                .enumerate()
                .map(|(i, (&((reachable, llgr_stale, local, external), (origin, weight, local_pref, as_path_len, med), (igp_cost, router_id, cluster_len, addr, path_id)), &group))| Key {
                    reachable,
                    llgr_stale,
                    local,
                    external,
                    origin: [Origin::Igp, Origin::Egp, Origin::Incomplete][origin as usize],
                    weight,
                    local_pref,
                    as_path_len,
                    med,
                    neighbor_as: Some(group),
                    group,
                    igp_cost,
                    seq: i as u32,
                    router_id,
                    cluster_len,
                    peer_addr: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, addr)),
                    path_id,
                })
                .collect();
            let general = grouped_order((0..keys.len()).collect(), &keys, &cfg);
            prop_assert_eq!(deterministic_order((0..keys.len()).collect(), &keys, &cfg), general);
        }

        #[test]
        fn keys_compare_as_the_attributes_do(
            peers in prop::collection::vec(peer_strategy(), 1..4),
            attrs in prop::collection::vec(attrs_strategy(), 1..5),
            extra in prop::collection::vec(extra_strategy(), 2..7),
            cfg in config_strategy(),
        ) {
            let cands = candidates(&peers, &attrs, &extra);
            for a in &cands {
                for b in &cands {
                    prop_assert_eq!(compare(a, b, &cfg), reference_pair(a, b, &cfg));
                    for with_med in [false, true] {
                        prop_assert_eq!(
                            compare_with(a, b, &cfg, with_med),
                            reference_compare(a, b, &cfg, with_med)
                        );
                    }
                    prop_assert_eq!(multipath_eligible(a, b, &cfg), reference_eligible(a, b, &cfg));
                }
            }
            prop_assert_eq!(select(&cands, &cfg), reference_select(&cands, &cfg));
        }
    }
}
