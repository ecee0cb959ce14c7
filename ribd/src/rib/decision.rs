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

use super::attrs::Attrs;

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

fn med(c: &Candidate<'_>, cfg: &DecisionConfig) -> u32 {
    c.attrs.med().unwrap_or(if cfg.med_missing_as_worst {
        u32::MAX
    } else {
        0
    })
}

fn local_pref(c: &Candidate<'_>, cfg: &DecisionConfig) -> u32 {
    c.attrs.local_pref().unwrap_or(cfg.default_local_pref)
}

/// The AS whose MEDs are comparable with each other: the neighbouring AS, or our own for local and
/// empty-path routes.
fn med_group(c: &Candidate<'_>) -> u32 {
    c.attrs.as_path().neighbor_as().unwrap_or(c.peer.local_as)
}

fn router_id(c: &Candidate<'_>) -> u32 {
    // RFC 4456 §9: ORIGINATOR_ID stands in for the router id when present.
    u32::from(c.attrs.originator_id().unwrap_or(c.peer.router_id))
}

/// Compares two candidates. `Ordering::Less` means `a` is preferred. `with_med` says whether the MED
/// step applies (same neighbouring AS, or `always_compare_med`).
pub fn compare_with(
    a: &Candidate<'_>,
    b: &Candidate<'_>,
    cfg: &DecisionConfig,
    with_med: bool,
) -> (Ordering, Step) {
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
    step!(Step::Weight, b.attrs.weight().cmp(&a.attrs.weight()));
    step!(Step::LocalPref, local_pref(b, cfg).cmp(&local_pref(a, cfg)));
    step!(
        Step::LocallyOriginated,
        (b.peer.kind == PeerKind::Local).cmp(&(a.peer.kind == PeerKind::Local))
    );
    if !cfg.ignore_as_path_len {
        step!(
            Step::AsPathLength,
            a.attrs
                .as_path()
                .selection_len()
                .cmp(&b.attrs.as_path().selection_len())
        );
    }
    step!(Step::Origin, a.attrs.origin().cmp(&b.attrs.origin()));
    if with_med {
        step!(Step::Med, med(a, cfg).cmp(&med(b, cfg)));
    }
    step!(
        Step::EbgpOverIbgp,
        b.peer.is_external().cmp(&a.peer.is_external())
    );
    step!(Step::IgpCost, a.igp_cost.cmp(&b.igp_cost));
    if cfg.prefer_oldest_ebgp && a.peer.is_external() && b.peer.is_external() {
        step!(Step::Oldest, a.seq.cmp(&b.seq));
    }
    step!(Step::RouterId, router_id(a).cmp(&router_id(b)));
    step!(
        Step::ClusterListLength,
        a.attrs
            .cluster_list()
            .len()
            .cmp(&b.attrs.cluster_list().len())
    );
    step!(Step::PeerAddress, a.peer.addr.cmp(&b.peer.addr));
    step!(Step::PathId, a.path_id.cmp(&b.path_id));
    (Ordering::Equal, Step::Equal)
}

/// Compares two candidates, applying the MED step when the configuration says they are comparable.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>, cfg: &DecisionConfig) -> (Ordering, Step) {
    let with_med = cfg.always_compare_med || med_group(a) == med_group(b);
    compare_with(a, b, cfg, with_med)
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
    let mut order: Order = (0..cands.len()).collect();
    if cands.is_empty() {
        return Selection {
            order,
            multipath: 0,
        };
    }
    if cfg.always_compare_med {
        order.sort_by(|&a, &b| compare_with(&cands[a], &cands[b], cfg, true).0);
    } else if cfg.deterministic_med {
        // Order within each neighbouring-AS group with MED, then order the groups by their winners
        // without MED; every step is a total order, so arrival order cannot matter.
        // Each candidate's group once (it walks the AS path), not per comparison.
        let group: SmallVec<[u32; 8]> = cands.iter().map(med_group).collect();
        order.sort_by(|&a, &b| {
            group[a]
                .cmp(&group[b])
                .then_with(|| compare_with(&cands[a], &cands[b], cfg, true).0)
        });
        let mut groups: SmallVec<[&[usize]; 8]> =
            order.chunk_by(|&a, &b| group[a] == group[b]).collect();
        groups.sort_by(|ga, gb| compare_with(&cands[ga[0]], &cands[gb[0]], cfg, false).0);
        let regrouped: Order = groups.iter().flat_map(|g| g.iter().copied()).collect();
        drop(groups);
        order = regrouped;
    } else {
        // RFC 4271 as written: compare in arrival order, MED only within the same neighbouring AS.
        let mut by_arrival = order.clone();
        by_arrival.sort_by_key(|&i| cands[i].seq);
        let best = by_arrival
            .iter()
            .copied()
            .reduce(|best, c| {
                if compare(&cands[c], &cands[best], cfg).0 == Ordering::Less {
                    c
                } else {
                    best
                }
            })
            .unwrap_or(0);
        order.retain(|i| *i != best);
        order.sort_by(|&a, &b| compare_with(&cands[a], &cands[b], cfg, false).0);
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
    // Paths that tie with the best through the IGP-cost step move directly behind it, in order. With
    // deterministic MED they need not be adjacent yet: another neighbouring AS's group may sit between.
    let mut members: Order = SmallVec::new();
    members.push(order[0]);
    let mut rest: Order = SmallVec::new();
    for &i in &order[1..] {
        if members.len() < max && multipath_eligible(best, &cands[i], cfg) {
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
    if !c.reachable || c.peer.kind == PeerKind::Local || best.peer.kind == PeerKind::Local {
        return false;
    }
    if best.peer.is_external() != c.peer.is_external() {
        return false;
    }
    let (_, step) = compare(best, c, cfg);
    if step <= Step::MULTIPATH_LAST {
        return false;
    }
    cfg.as_path_relax || best.attrs.as_path() == c.attrs.as_path()
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
