//! Per-peer inbound state between a session and the RIB: Adj-RIB-In bookkeeping (accepted / refused),
//! max-prefix (warning, discard over the limit, teardown with Cease / Maximum Number of Prefixes Reached
//! and a restart timer), graceful restart helper (RFC 4724) and long-lived graceful restart (RFC 9494).
//!
//! ```text
//!   session events (Established, UPDATEs, Down) ──► Inbound ──announce/withdraw/stale/flush──► Rib
//!   time (an argument: `now`) ──tick──►    │
//!                                          └──► Action::Cease(NOTIFICATION) | Action::Start ──► session
//! ```
//!
//! Sans-IO: nothing here knows sockets or clocks, so the daemon (`daemon::core`) and the tests drive it
//! the same way (the tests on virtual time, with UPDATEs encoded and decoded by the real codec).
//!
//! Stale phases after a session loss that the peer negotiated graceful restart for (and that was not a
//! NOTIFICATION): the peer's paths are kept, marked stale, for the restart time it advertised; End-of-RIB
//! for a family in the new session flushes that family's paths that were not sent again. If the
//! restart time runs out first, and both sides negotiated LLGR, the remaining paths become LLGR-stale:
//! the LLGR_STALE community is attached, they are least preferred (RFC 9494 §4.3), paths carrying NO_LLGR
//! are removed, and they stay for min(the peer's long-lived stale time, ours) unless End-of-RIB ends the
//! restart first; without LLGR they are removed. With LLGR but no (or a zero) GR restart time the
//! long-lived phase starts at once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bgp::fsm::{Family as BgpFamily, Negotiated};
use bgp::wire::{AfiSafi, Notification, Update};
use ipnet::IpNet;

use crate::config::{Family, MaxPrefixAction, Neighbor};
use crate::import::{self, ImportCtx, ImportSink};
use crate::policy::RpkiState;
use crate::rib::attrs::{AttrRef, Attrs, Clones, ToIntern};
use crate::rib::table::PeerId;
use crate::rib::{PathReading, Rib};

/// Per-family counts of a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FamilyCounts {
    /// Prefix-paths of this peer currently in the RIB.
    pub accepted: u64,
    pub advertised: u64,
}

/// Where a lost session's routes are in their graceful-restart life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// RFC 4724: kept stale until `until`; then LLGR for `llgr` when negotiated, else removed.
    Gr {
        until: Instant,
        llgr: Option<Duration>,
    },
    /// RFC 9494: LLGR-stale until `until`.
    Llgr { until: Instant },
}

/// What the session should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tear the session down with this NOTIFICATION (max-prefix teardown).
    Cease(Notification),
    /// Start the session again (the max-prefix restart timer ran out).
    Start,
}

/// Counters of one batch of UPDATEs, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub updates: u64,
    pub announced: u64,
    pub withdrawn: u64,
}

/// The inbound state of one peer.
#[derive(Debug)]
pub struct Inbound {
    pub rib_id: PeerId,
    pub import: ImportCtx,
    pub v4: FamilyCounts,
    pub v6: FamilyCounts,
    pub stale: Option<Stale>,
    /// Torn down by max-prefix; restart at this time.
    pub restart_at: Option<Instant>,
    pub max_prefix_warned: bool,
    /// Families whose End-of-RIB arrived in the current session.
    pub eor: Vec<BgpFamily>,
    /// Prefixes received and refused (policy, loops, max-prefix discard), so "received" counts what the
    /// peer currently announces, not a running total.
    pub rejected: HashSet<(IpNet, u32)>,
    /// A run's operations waiting to be applied in prefix order (kept for its capacity).
    pending: Vec<Pending>,
    /// Their order: (prefix sort key, index in `pending`) (kept for its capacity).
    order: Vec<(u128, u32)>,
    /// Their order when they are all IPv4: [`v4_keys`] (kept for its capacity).
    order4: Vec<u64>,
    /// Room for sorting `order4` (see [`sort_v4_keys`]).
    radix: Vec<u64>,
    /// What the RIB read of each set a run announces, once per UPDATE (see [`Collect`]; kept for
    /// its capacity).
    readings: Vec<PathReading>,
    /// For each operation of `pending`, its announcement's reading in `readings` (`NO_READING`
    /// for a withdrawal; kept for its capacity).
    reading_of: Vec<u32>,
}

/// [`Inbound::reading_of`] of an operation that announces nothing.
const NO_READING: u32 = u32::MAX;

fn family_of(f: Family) -> BgpFamily {
    f.afi_safi()
}

impl Inbound {
    pub fn new(rib_id: PeerId, import: ImportCtx) -> Inbound {
        Inbound {
            rib_id,
            import,
            v4: FamilyCounts::default(),
            v6: FamilyCounts::default(),
            stale: None,
            restart_at: None,
            max_prefix_warned: false,
            eor: Vec::new(),
            rejected: HashSet::new(),
            pending: Vec::new(),
            order: Vec::new(),
            order4: Vec::new(),
            radix: Vec::new(),
            readings: Vec::new(),
            reading_of: Vec::new(),
        }
    }

    /// A new session is up. A restart's stale paths stay until End-of-RIB (or the timer) removes those
    /// the peer did not send again (RFC 4724 §4.2).
    pub fn established(&mut self) {
        self.eor.clear();
    }

    /// Accepted prefix-paths in both families.
    pub fn accepted(&self) -> u64 {
        self.v4.accepted + self.v6.accepted
    }

    /// A batch of UPDATEs from the session of `nb`.
    ///
    /// Each run of UPDATEs between End-of-RIB markers is imported in wire order (policy, loop checks,
    /// attribute interning once per UPDATE) and then applied to the RIB in prefix order: a feed
    /// grouped by attribute set lands each prefix in an unrelated table bucket, and the sorted run
    /// walks the buckets in order (cache-warm). Operations on one prefix keep their wire order (the
    /// sort is stable), so the RIB ends in the same state; an End-of-RIB applies after everything
    /// before it and before everything after it. With max-prefix `discard` a run that could reach the
    /// limit is applied in wire order, so the first prefixes on the wire are the ones accepted.
    pub fn updates(
        &mut self,
        now: Instant,
        rib: &mut Rib,
        nb: &Neighbor,
        updates: &[Update],
    ) -> (Vec<Action>, Counted) {
        let mut c = Counted::default();
        let mut run_start = 0;
        for (i, u) in updates.iter().enumerate() {
            let Some(fam) = u.end_of_rib_family() else {
                continue;
            };
            self.apply_run(rib, nb, &updates[run_start..i], &mut c);
            run_start = i + 1;
            c.updates += 1;
            tracing::info!(peer = %nb.name, family = %fam, "End-of-RIB");
            if !self.eor.contains(&fam) {
                self.eor.push(fam);
            }
            // FlowSpec's End-of-RIB concerns the FlowSpec table, not the unicast stale paths.
            let unicast = fam == AfiSafi::IPV4_UNICAST || fam == AfiSafi::IPV6_UNICAST;
            if self.stale.is_some() && unicast {
                rib.flush_stale_family(self.rib_id, fam == AfiSafi::IPV4_UNICAST);
                // The restart is over when every family of the session has sent End-of-RIB.
                if nb
                    .families
                    .iter()
                    .all(|f| self.eor.contains(&family_of(*f)))
                {
                    self.stale = None;
                }
                self.recount(rib);
            }
        }
        self.apply_run(rib, nb, &updates[run_start..], &mut c);
        (self.check_max_prefix(now, rib, nb), c)
    }

    /// Imports a run of UPDATEs (no End-of-RIB among them) and applies it to the RIB, in prefix
    /// order when the result cannot depend on the order (see [`Inbound::updates`]).
    fn apply_run(&mut self, rib: &mut Rib, nb: &Neighbor, run: &[Update], c: &mut Counted) {
        if run.is_empty() {
            return;
        }
        c.updates += run.len() as u64;
        if !self.may_sort(nb, run) {
            for u in run {
                let mut sink = ToRib {
                    rib: &mut *rib,
                    peer: self.rib_id,
                    nb,
                    v4: &mut self.v4,
                    v6: &mut self.v6,
                    rejected: &mut self.rejected,
                    c: &mut *c,
                };
                let n = import::import_into(&self.import, u, RpkiState::NotFound, &mut sink);
                if n.treat_as_withdraw > 0 {
                    tracing::warn!(peer = %nb.name, error = ?u.treat_as_withdraw, "malformed UPDATE treated as withdraw (RFC 7606)");
                }
            }
            return;
        }
        let mut ops = std::mem::take(&mut self.pending);
        let mut readings = std::mem::take(&mut self.readings);
        let mut reading_of = std::mem::take(&mut self.reading_of);
        // Each UPDATE's set is converted one UPDATE ahead of its import, and the line its interning
        // probes is prefetched then: the store of a full table from four peers holds 635k sets,
        // and its look-up missed the cache once per UPDATE. The UPDATEs' own data is prefetched
        // ahead of that conversion.
        let ctx = &self.import;
        let convert = |u: &Update, rib: &Rib| {
            let a = import::prepare(ctx, u);
            if let Some(a) = &a {
                rib.prefetch_attrs(a);
            }
            a
        };
        let mut prepared = run.first().and_then(|u| convert(u, rib));
        for (i, u) in run.iter().enumerate() {
            if let Some(ahead) = run.get(i + 1 + PREFETCH_UPDATES) {
                prefetch_update(ahead, Ahead::Lines);
            }
            if let Some(near) = run.get(i + 1 + PREFETCH_UPDATES / 2) {
                prefetch_update(near, Ahead::Lists);
            }
            if let Some(next) = run.get(i + 2) {
                prefetch_update(next, Ahead::Asns);
            }
            let this = std::mem::replace(
                &mut prepared,
                run.get(i + 1).and_then(|next| convert(next, rib)),
            );
            let mut sink = Collect {
                rib: &mut *rib,
                peer: self.rib_id,
                ops: &mut ops,
                readings: &mut readings,
                reading_of: &mut reading_of,
                last: None,
            };
            let n = import::import_prepared(ctx, u, RpkiState::NotFound, &mut sink, this);
            if n.treat_as_withdraw > 0 {
                tracing::warn!(peer = %nb.name, error = ?u.treat_as_withdraw, "malformed UPDATE treated as withdraw (RFC 7606)");
            }
        }
        let mut sink = ToRib {
            rib: &mut *rib,
            peer: self.rib_id,
            nb,
            v4: &mut self.v4,
            v6: &mut self.v6,
            rejected: &mut self.rejected,
            c: &mut *c,
        };
        // Sorted by prefix key, ties by wire position: the operations on one prefix stay in wire
        // order. The small keys are sorted, not the operations (moving those cost more than
        // comparing). A run of IPv4 prefixes (most) sorts one u64 per operation.
        let mut order = std::mem::take(&mut self.order);
        let mut order4 = std::mem::take(&mut self.order4);
        if v4_keys(&ops, &mut order4) {
            sort_v4_keys(&mut order4, &mut self.radix);
            apply_sorted(
                &mut sink,
                &mut ops,
                &readings,
                &reading_of,
                order4.len(),
                |k| (order4[k] & V4_POSITION) as usize,
            );
        } else {
            order.extend(
                ops.iter()
                    .enumerate()
                    .map(|(i, o)| (sort_key(o.prefix), i as u32)),
            );
            order.sort_unstable();
            apply_sorted(
                &mut sink,
                &mut ops,
                &readings,
                &reading_of,
                order.len(),
                |k| order[k].1 as usize,
            );
        }
        order4.clear();
        self.order4 = order4;
        order.clear();
        self.order = order;
        ops.clear();
        self.pending = ops;
        readings.clear();
        self.readings = readings;
        reading_of.clear();
        self.reading_of = reading_of;
    }

    /// Whether a run may be applied out of wire order: always, except under max-prefix `discard`
    /// when the run's announcements could reach the limit (which of them are over it depends on
    /// wire order).
    fn may_sort(&self, nb: &Neighbor, run: &[Update]) -> bool {
        match nb.max_prefix.as_ref() {
            Some(m) if m.action == MaxPrefixAction::Discard => {
                let announced: u64 = run
                    .iter()
                    .map(|u| {
                        (u.nlri.len() + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())) as u64
                    })
                    .sum();
                self.accepted() + announced <= m.limit as u64
            }
            _ => true,
        }
    }

    /// Re-counts the peer's paths in the RIB (after stale paths were flushed).
    fn recount(&mut self, rib: &Rib) {
        let [a4, a6] = rib.peer_paths(self.rib_id);
        self.v4.accepted = a4;
        self.v6.accepted = a6;
    }

    fn check_max_prefix(&mut self, now: Instant, rib: &mut Rib, nb: &Neighbor) -> Vec<Action> {
        let Some(mp) = nb.max_prefix.as_ref() else {
            return Vec::new();
        };
        let total = self.accepted();
        let warn_at = mp.limit as u64 * mp.warning_percent as u64 / 100;
        if total >= warn_at && !self.max_prefix_warned {
            self.max_prefix_warned = true;
            tracing::warn!(peer = %nb.name, prefixes = total, limit = mp.limit, "max-prefix warning threshold reached");
        }
        if total <= mp.limit as u64 {
            return Vec::new();
        }
        match mp.action {
            MaxPrefixAction::Warn => Vec::new(),
            MaxPrefixAction::Discard => {
                tracing::warn!(peer = %nb.name, "over max-prefix: discarding prefixes beyond the limit");
                Vec::new()
            }
            MaxPrefixAction::Teardown => {
                tracing::error!(peer = %nb.name, prefixes = total, limit = mp.limit, "max-prefix exceeded: tearing the session down");
                // RFC 4486 §4: the data is the AFI/SAFI and the limit; name the family over its share.
                let fam = if self.v6.accepted > self.v4.accepted {
                    AfiSafi::IPV6_UNICAST
                } else {
                    AfiSafi::IPV4_UNICAST
                };
                if mp.restart_after > 0 {
                    self.restart_at = Some(now + Duration::from_secs(mp.restart_after));
                }
                rib.peer_down(self.rib_id, false);
                self.v4.accepted = 0;
                self.v6.accepted = 0;
                self.stale = None;
                vec![Action::Cease(Notification::max_prefixes(fam, mp.limit))]
            }
        }
    }

    /// The session went down. `negotiated` is what the lost session had agreed (None if it never came
    /// up); `notification` says whether a NOTIFICATION ended it (then there is no graceful restart,
    /// RFC 4724 §4: only a TCP failure or hold-timer expiry keeps routes).
    pub fn down(
        &mut self,
        now: Instant,
        rib: &mut Rib,
        nb: &Neighbor,
        negotiated: Option<&Negotiated>,
        notification: bool,
    ) {
        let (gr, llgr) = stale_times(nb, negotiated);
        if notification || (gr.is_none() && llgr.is_none()) {
            rib.peer_down(self.rib_id, false);
            self.v4.accepted = 0;
            self.v6.accepted = 0;
            self.stale = None;
            return;
        }
        rib.peer_down(self.rib_id, true);
        self.eor.clear();
        match gr.filter(|d| !d.is_zero()) {
            Some(restart) => {
                // A second loss during a restart keeps the earlier deadline (RFC 4724 §4.2).
                if !matches!(self.stale, Some(Stale::Gr { .. })) {
                    self.stale = Some(Stale::Gr {
                        until: now + restart,
                        llgr,
                    });
                }
            }
            None => self.enter_llgr(now, rib, llgr.unwrap_or_default()),
        }
    }

    /// Whether [`Inbound::down`] with these arguments removes the peer's paths at once (no
    /// graceful restart or LLGR keeps them).
    pub fn down_removes_paths(
        nb: &Neighbor,
        negotiated: Option<&Negotiated>,
        notification: bool,
    ) -> bool {
        let (gr, llgr) = stale_times(nb, negotiated);
        notification || (gr.is_none() && llgr.is_none())
    }

    fn enter_llgr(&mut self, now: Instant, rib: &mut Rib, stale_time: Duration) {
        rib.peer_llgr_stale(self.rib_id);
        self.recount(rib);
        self.stale = Some(Stale::Llgr {
            until: now + stale_time,
        });
    }

    /// Timers: the end of a stale phase, the max-prefix restart.
    pub fn tick(&mut self, now: Instant, rib: &mut Rib, nb: &Neighbor) -> Vec<Action> {
        match self.stale {
            Some(Stale::Gr { until, llgr }) if until <= now => match llgr {
                Some(d) => {
                    tracing::info!(peer = %nb.name, stale_time = d.as_secs(), "graceful restart timer expired: routes kept as LLGR-stale (RFC 9494)");
                    self.enter_llgr(now, rib, d);
                }
                None => {
                    tracing::info!(peer = %nb.name, "graceful restart timer expired: removing stale routes");
                    self.stale = None;
                    rib.flush_stale(self.rib_id);
                    self.recount(rib);
                }
            },
            Some(Stale::Llgr { until }) if until <= now => {
                tracing::info!(peer = %nb.name, "long-lived stale time expired: removing stale routes");
                self.stale = None;
                rib.flush_stale(self.rib_id);
                self.recount(rib);
            }
            _ => {}
        }
        if self.restart_at.is_some_and(|d| d <= now) {
            self.restart_at = None;
            self.max_prefix_warned = false;
            tracing::info!(peer = %nb.name, "restarting after max-prefix teardown");
            return vec![Action::Start];
        }
        Vec::new()
    }
}

/// The graceful-restart time and the LLGR stale time a session loss would keep the peer's paths
/// for (RFC 4724, RFC 9494), each when negotiated and configured.
fn stale_times(
    nb: &Neighbor,
    negotiated: Option<&Negotiated>,
) -> (Option<Duration>, Option<Duration>) {
    let gr = negotiated
        .and_then(|n| n.graceful_restart.as_ref())
        .filter(|_| nb.graceful_restart)
        .map(|g| Duration::from_secs(g.restart_time as u64));
    let llgr = negotiated
        .and_then(|n| n.long_lived_gr.as_ref())
        .filter(|_| nb.long_lived_stale_time > 0)
        .and_then(|l| {
            // The shortest stale time of the session's families, capped by ours.
            l.families
                .iter()
                .filter(|(f, _, _)| nb.families.iter().any(|x| family_of(*x) == *f))
                .map(|(_, _, t)| *t)
                .min()
        })
        .map(|t| Duration::from_secs(t.min(nb.long_lived_stale_time) as u64))
        .filter(|d| !d.is_zero());
    (gr, llgr)
}

/// Where an operation on `prefix` goes when a run is applied in prefix order: IPv4 before IPv6,
/// then by the network address (host bits cleared, as the tables key it) and length. IPv6 keys drop
/// the address's last bit to make room for the family: two prefixes that then share a key only
/// interleave their operations in wire order, which is still each prefix's own order.
fn sort_key(prefix: IpNet) -> u128 {
    match prefix.trunc() {
        IpNet::V4(n) => (u128::from(u32::from(n.addr())) << 8) | u128::from(n.prefix_len()),
        IpNet::V6(n) => (1 << 127) | (u128::from(n.addr()) >> 1),
    }
}

/// An imported operation waiting for its run to be sorted by prefix: an announcement (`attrs`), a
/// withdrawal or a refusal (`reject`). (32 bytes: a run of a thousand UPDATEs holds a few thousand.)
#[derive(Debug)]
struct Pending {
    attrs: Option<AttrRef>,
    path_id: u32,
    reject: bool,
    prefix: IpNet,
}
const _: () = assert!(std::mem::size_of::<Pending>() <= 32);

/// The low bits of a [`v4_keys`] key: the operation's position in the run.
const V4_POSITION: u64 = (1 << 26) - 1;

/// How many UPDATEs ahead of the one imported [`prefetch_update`] starts loading the next ones.
const PREFETCH_UPDATES: usize = 4;

/// Starts loading what importing `u` reads, one level of pointers per call as the UPDATE comes
/// nearer (decoded on a session thread, none of it is in this core's cache): `Lines`, the UPDATE
/// itself, whose fields span several cache lines; `Lists` (its own lines loaded a few UPDATEs
/// earlier), its NLRI list, AS path segments and communities; `Asns` (the segments loaded), the
/// first segment's AS numbers. Importing read them one miss after the other (7% of the four-peer
/// import path, in `import_into`), and reading the segments to find the AS numbers in the same
/// call as their prefetch waited for them.
fn prefetch_update(u: &Update, level: Ahead) {
    use crate::rib::table::prefetch;
    match level {
        Ahead::Lines => {
            let p = (u as *const Update).cast::<u8>();
            let mut line = 0;
            while line < std::mem::size_of::<Update>() {
                prefetch(p.wrapping_add(line));
                line += 64;
            }
        }
        Ahead::Lists => {
            prefetch(u.nlri.as_ptr().cast());
            prefetch(u.attrs.communities.as_ptr().cast());
            if let Some(path) = &u.attrs.as_path {
                prefetch(path.segments.as_ptr().cast());
            }
        }
        Ahead::Asns => {
            if let Some(s) = u.attrs.as_path.as_ref().and_then(|p| p.segments.first()) {
                prefetch(s.asns.as_ptr().cast());
            }
        }
    }
}

/// How far [`prefetch_update`] goes into an UPDATE.
#[derive(Clone, Copy)]
enum Ahead {
    Lines,
    Lists,
    Asns,
}

/// One sort key per operation of a run of IPv4 operations (false, and `keys` left in any state,
/// when one is IPv6 or the run is too long for the position bits): the network address (host bits
/// cleared, as the tables key it) in the top 32 bits, then the length in 6, then the position in
/// the run in 26, so sorting the keys orders the run as [`sort_key`] and the position does.
fn v4_keys(ops: &[Pending], keys: &mut Vec<u64>) -> bool {
    if ops.len() as u64 > V4_POSITION {
        return false;
    }
    keys.clear();
    keys.reserve(ops.len());
    for (i, o) in ops.iter().enumerate() {
        let IpNet::V4(n) = o.prefix else {
            return false;
        };
        let len = n.prefix_len();
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let addr = u32::from(n.addr()) & mask;
        keys.push(u64::from(addr) << 32 | u64::from(len) << 26 | i as u64);
    }
    true
}

/// Sorts [`v4_keys`] keys as `sort_unstable` would, with `scratch` as room: by least significant
/// digit (10 bits) over the prefix bits, stably, so keys of one prefix keep their positions' order
/// (the keys arrive in position order). A run's few thousand keys took pdqsort ~110 instructions
/// each (callgrind); four counting passes take ~30.
fn sort_v4_keys(keys: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    const DIGIT: u32 = 10;
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    debug_assert!(
        keys.windows(2)
            .all(|w| w[0] & V4_POSITION < w[1] & V4_POSITION)
    );
    scratch.clear();
    scratch.resize(keys.len(), 0);
    let mut shift = V4_POSITION.count_ones();
    while shift < 64 {
        let digit = |k: u64| ((k >> shift) & ((1 << DIGIT) - 1)) as usize;
        let mut count = [0u32; 1 << DIGIT];
        for &k in keys.iter() {
            count[digit(k)] += 1;
        }
        // Every key with the same digit: this pass would not move any.
        if count.contains(&(keys.len() as u32)) {
            shift += DIGIT;
            continue;
        }
        let mut at = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &k in keys.iter() {
            let d = digit(k);
            scratch[count[d] as usize] = k;
            count[d] += 1;
        }
        std::mem::swap(keys, scratch);
        shift += DIGIT;
    }
}

/// Applies `ops` in the order `at(0)`, `at(1)`, ... `at(n - 1)` (indices into `ops`), fetching the
/// table buckets a few operations ahead while these are applied: the header 8 ahead, its entries 4
/// ahead (by then the header is in cache). (Going one level further, the entry's paths and their
/// attribute sets 4 and 2 ahead, cost the extra searches more than the misses it hid: 1 peer 10%
/// slower, 4 peers unchanged.)
fn apply_sorted(
    sink: &mut ToRib<'_>,
    ops: &mut [Pending],
    readings: &[PathReading],
    reading_of: &[u32],
    n: usize,
    at: impl Fn(usize) -> usize,
) {
    for k in 0..n.min(8) {
        sink.rib.prefetch(ops[at(k)].prefix, false);
    }
    for k in 0..n {
        if k + 8 < n {
            sink.rib.prefetch(ops[at(k + 8)].prefix, false);
        }
        if k + 4 < n {
            sink.rib.prefetch(ops[at(k + 4)].prefix, true);
        }
        let i = at(k);
        let op = &mut ops[i];
        let (prefix, path_id) = (op.prefix, op.path_id);
        match op.attrs.take() {
            Some(a) => {
                let reading = reading_of.get(i).and_then(|&r| readings.get(r as usize));
                sink.place(prefix, path_id, a, reading)
            }
            None if op.reject => sink.reject(prefix, path_id),
            None => sink.withdraw(prefix, path_id),
        }
    }
}

/// Collects a run's operations for [`Inbound::apply_run`]; attribute sets are interned in the RIB
/// at once (the pending announcements hold references, so a set released at the end of its UPDATE
/// stays interned until they are applied). Each announced set is read for the RIB
/// ([`Rib::read_path`]) once for the prefixes announced with it in a row (an UPDATE's): they are
/// applied in prefix order, so apart.
struct Collect<'a> {
    rib: &'a mut Rib,
    peer: PeerId,
    ops: &'a mut Vec<Pending>,
    readings: &'a mut Vec<PathReading>,
    /// Parallel to `ops`.
    reading_of: &'a mut Vec<u32>,
    /// The last announcement's reading. The pending announcement it was read for holds its set
    /// until the run is applied, so no other set takes that address meanwhile; it is forgotten
    /// all the same whenever a set is interned or released (an UPDATE's next set, or a policy's).
    last: Option<u32>,
}

impl Collect<'_> {
    fn push(&mut self, prefix: IpNet, path_id: u32, attrs: Option<AttrRef>, reject: bool) {
        let reading = match &attrs {
            Some(a) => self.reading(a, prefix.addr().is_ipv6()),
            None => NO_READING,
        };
        self.ops.push(Pending {
            attrs,
            path_id,
            reject,
            prefix,
        });
        self.reading_of.push(reading);
    }

    /// The index of the reading of `attrs` for the family `v6`: the last one's again when it
    /// was read from the same set for the same family.
    fn reading(&mut self, attrs: &AttrRef, v6: bool) -> u32 {
        if let Some(i) = self.last
            && self
                .readings
                .get(i as usize)
                .is_some_and(|r| r.is_of(attrs, v6))
        {
            return i;
        }
        let Ok(i) = u32::try_from(self.readings.len()) else {
            return NO_READING;
        };
        self.readings.push(self.rib.read_path(self.peer, attrs, v6));
        self.last = Some(i);
        i
    }
}

impl ImportSink for Collect<'_> {
    fn intern(&mut self, attrs: Attrs) -> AttrRef {
        self.last = None;
        self.rib.intern(attrs)
    }

    fn intern_counted(&mut self, attrs: ToIntern, n: u32) -> (AttrRef, Clones) {
        self.last = None;
        self.rib.intern_counted(attrs, n)
    }

    fn release(&mut self, attrs: AttrRef) {
        self.last = None;
        self.rib.release(attrs);
    }

    fn announce(&mut self, prefix: IpNet, path_id: u32, attrs: AttrRef) {
        self.push(prefix, path_id, Some(attrs), false);
    }

    fn withdraw(&mut self, prefix: IpNet, path_id: u32) {
        self.push(prefix, path_id, None, false);
    }

    fn reject(&mut self, prefix: IpNet, path_id: u32) {
        self.push(prefix, path_id, None, true);
    }
}

/// Applies one UPDATE's import straight to the RIB (attribute sets are interned once per UPDATE by
/// [`import::import_into`], then every prefix takes a reference).
struct ToRib<'a> {
    rib: &'a mut Rib,
    peer: PeerId,
    nb: &'a Neighbor,
    v4: &'a mut FamilyCounts,
    v6: &'a mut FamilyCounts,
    rejected: &'a mut HashSet<(IpNet, u32)>,
    c: &'a mut Counted,
}

impl ToRib<'_> {
    fn counts(&mut self, prefix: IpNet) -> &mut FamilyCounts {
        if prefix.addr().is_ipv4() {
            self.v4
        } else {
            self.v6
        }
    }

    /// An accepted path, with what the RIB read of its set for its UPDATE when it was (see
    /// [`Collect`]).
    fn place(
        &mut self,
        prefix: IpNet,
        path_id: u32,
        attrs: AttrRef,
        reading: Option<&PathReading>,
    ) {
        // max-prefix "discard": a new prefix beyond the limit is ignored (replacements of accepted
        // ones still apply).
        let full = self.nb.max_prefix.as_ref().is_some_and(|m| {
            m.action == MaxPrefixAction::Discard
                && self.v4.accepted + self.v6.accepted >= m.limit as u64
        });
        if full && !self.rib.has_path(self.peer, prefix, path_id) {
            self.rejected.insert((prefix, path_id));
            self.rib.release(attrs);
            return;
        }
        if !self.rejected.is_empty() {
            self.rejected.remove(&(prefix, path_id));
        }
        let added = match reading {
            Some(r) => self.rib.announce_read(self.peer, prefix, path_id, attrs, r),
            None => self.rib.announce(self.peer, prefix, path_id, attrs),
        };
        if added {
            self.counts(prefix).accepted += 1;
        }
        self.c.announced += 1;
    }

    fn remove(&mut self, prefix: IpNet, path_id: u32) {
        if self.rib.withdraw(self.peer, prefix, path_id) {
            let fc = self.counts(prefix);
            fc.accepted = fc.accepted.saturating_sub(1);
        }
        self.c.withdrawn += 1;
    }
}

impl ImportSink for ToRib<'_> {
    fn intern(&mut self, attrs: Attrs) -> AttrRef {
        self.rib.intern(attrs)
    }

    fn intern_counted(&mut self, attrs: ToIntern, n: u32) -> (AttrRef, Clones) {
        self.rib.intern_counted(attrs, n)
    }

    fn release(&mut self, attrs: AttrRef) {
        self.rib.release(attrs);
    }

    fn announce(&mut self, prefix: IpNet, path_id: u32, attrs: AttrRef) {
        self.place(prefix, path_id, attrs, None);
    }

    fn withdraw(&mut self, prefix: IpNet, path_id: u32) {
        if !self.rejected.is_empty() {
            self.rejected.remove(&(prefix, path_id));
        }
        self.remove(prefix, path_id);
    }

    fn reject(&mut self, prefix: IpNet, path_id: u32) {
        self.rejected.insert((prefix, path_id));
        self.remove(prefix, path_id);
    }
}

#[cfg(test)]
mod tests;
