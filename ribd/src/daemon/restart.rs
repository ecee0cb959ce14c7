//! Graceful restart as the restarting speaker (RFC 4724 §4.1) and the start-up phase it shares with
//! the dataplane. Sans-IO: time is an argument, peers are described by [`PeerProgress`].
//!
//! ```text
//!   start ──pinned maps held routes?──► Startup { restarting, preserved [v4, v6] }
//!     OPENs: capability(R = restarting, F = preserved per family)
//!     while !done(): our Adj-RIB-Out waits (restarting only), the pinned dataplane keeps forwarding
//!   done() ─► reconcile / first write of the dataplane, advertise to every session + End-of-RIB,
//!             capability for later connections: R clear, F = the dataplane forwards
//! ```
//!
//! "Initial convergence" ([`Startup::done`]) is one notion for everything that waits for the peers'
//! tables after a start: the reconcile of a pinned dataplane, the bulk first write into a fresh one
//! (`initial-load-hold`), the deferral of our advertisements, and the switch of the capability to its
//! steady state. It is reached when every established peer has sent its table — End-of-RIB for each
//! negotiated family, or, for a peer without graceful restart (which need not send End-of-RIB at
//! all: BIRD sends none to such a peer), [`QUIET`] without UPDATEs — and peers that are not up yet
//! have had [`Startup::grace`] to come up; or when the deadline passes (`select-defer-time` after a
//! restart, `initial-sync-timeout` after a fresh start).

use std::time::{Duration, Instant};

use bgp::fsm::GracefulRestart;

use crate::config::{Family, GrMode};

/// A peer without graceful restart that has been quiet this long has sent its table.
pub const QUIET: Duration = Duration::from_secs(2);
/// After a fresh start, how long sessions that are not up yet are waited for.
pub const WAIT_FOR_PEERS: Duration = Duration::from_secs(5);
/// After a restart, how long sessions that are not up yet are waited for: the peers were up before
/// the restart and reconnect at once (their helper keeps our routes meanwhile), but a first connect
/// can meet a peer still tearing down the old session and wait a connect-retry.
pub const WAIT_FOR_RESTARTED_PEERS: Duration = Duration::from_secs(15);

/// Our graceful restart capability for a neighbour with `families`.
///
/// - `restarting`: the Restart State bit (only during the restart phase of a restarting speaker);
/// - `forwarding`: whether the dataplane holds forwarding state that survives a restart of the
///   session, per unicast family [IPv4, IPv6]. FlowSpec families never claim it (the classifier's
///   rules are kept across a restart but are not what the F bit promises: forwarding of routes).
///
/// In helper-only mode the capability lists no family: peers keep nothing of ours when we restart.
pub fn capability(
    mode: GrMode,
    families: &[Family],
    restart_time: u16,
    restarting: bool,
    forwarding: [bool; 2],
) -> GracefulRestart {
    let families = match mode {
        GrMode::HelperOnly => Vec::new(),
        GrMode::Full => families
            .iter()
            .map(|f| {
                let kept = match f {
                    Family::Ipv4Unicast => forwarding[0],
                    Family::Ipv6Unicast => forwarding[1],
                    Family::Ipv4Flowspec | Family::Ipv6Flowspec => false,
                };
                (f.afi_safi(), kept)
            })
            .collect(),
    };
    GracefulRestart {
        restarting: restarting && mode == GrMode::Full,
        restart_time: restart_time.min(4095),
        families,
    }
}

/// Where one enabled peer is in sending its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerProgress {
    pub established: bool,
    /// Graceful restart negotiated on the session.
    pub gr: bool,
    /// End-of-RIB received for every family the session negotiated (of those configured).
    pub all_eor: bool,
    /// No UPDATE for [`QUIET`].
    pub quiet: bool,
}

impl PeerProgress {
    /// The peer's table is in. A graceful-restart peer must send End-of-RIB (RFC 4724 §4.1: its
    /// End-of-RIB is what selection waits for); another may send none, so quiet is enough.
    pub fn loaded(&self) -> bool {
        self.established && (self.all_eor || (!self.gr && self.quiet))
    }
}

/// The phase after a start until the peers' tables are in (see the module note).
#[derive(Debug, Clone)]
pub struct Startup {
    pub started: Instant,
    pub deadline: Instant,
    /// A restart over a dataplane that kept forwarding, as a restarting speaker: OPENs set R and our
    /// advertisements wait for the end of the phase (selection deferral).
    pub restarting: bool,
    /// Forwarding state the pinned maps held at start, [IPv4, IPv6].
    pub preserved: [bool; 2],
}

impl Startup {
    /// The phase after a start at `now`. `preserved` is what the pinned maps held (all false on a
    /// fresh dataplane or without one); with any of it and `mode` full, this is a restart.
    pub fn new(
        now: Instant,
        mode: GrMode,
        preserved: [bool; 2],
        select_defer_time: Duration,
        initial_sync_timeout: Duration,
    ) -> Startup {
        let restarting = mode == GrMode::Full && preserved.iter().any(|p| *p);
        let wait = if preserved.iter().any(|p| *p) {
            select_defer_time
        } else {
            initial_sync_timeout
        };
        Startup {
            started: now,
            deadline: now + wait,
            restarting,
            preserved,
        }
    }

    /// How long peers that are not up yet are waited for.
    pub fn grace(&self) -> Duration {
        if self.preserved.iter().any(|p| *p) {
            WAIT_FOR_RESTARTED_PEERS
        } else {
            WAIT_FOR_PEERS
        }
    }

    /// Why the phase is over at `now`, or `None` while it goes on. `peers`: every enabled peer.
    pub fn done(
        &self,
        now: Instant,
        peers: impl IntoIterator<Item = PeerProgress>,
    ) -> Option<&'static str> {
        if now >= self.deadline {
            return Some("deadline passed");
        }
        let (mut up, mut down) = (0usize, 0usize);
        for p in peers {
            if !p.established {
                down += 1;
            } else if !p.loaded() {
                return None;
            } else {
                up += 1;
            }
        }
        if down > 0 && now.duration_since(self.started) < self.grace() {
            return None;
        }
        Some(match (up, down) {
            (0, 0) => "no peers",
            (0, _) => "no session up",
            (_, 0) => "every session sent its table",
            _ => "every session up sent its table",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::fsm::Family as BgpFamily;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const V4: BgpFamily = BgpFamily::IPV4_UNICAST;
    const V6: BgpFamily = BgpFamily::IPV6_UNICAST;

    fn up(gr: bool, all_eor: bool, quiet: bool) -> PeerProgress {
        PeerProgress {
            established: true,
            gr,
            all_eor,
            quiet,
        }
    }

    const DOWN: PeerProgress = PeerProgress {
        established: false,
        gr: false,
        all_eor: false,
        quiet: true,
    };

    fn startup(t0: Instant, preserved: [bool; 2]) -> Startup {
        Startup::new(t0, GrMode::Full, preserved, S(120), S(30))
    }

    #[test]
    fn fresh_start_advertises_no_restart_and_no_preserved_forwarding_rfc4724_3() {
        let fams = [Family::Ipv4Unicast, Family::Ipv6Unicast];
        let s = startup(Instant::now(), [false, false]);
        assert!(!s.restarting);
        let c = capability(GrMode::Full, &fams, 120, s.restarting, s.preserved);
        assert!(!c.restarting);
        assert_eq!(c.families, vec![(V4, false), (V6, false)]);
        assert_eq!(c.restart_time, 120);
    }

    #[test]
    fn restart_sets_r_and_f_only_for_the_families_the_dataplane_preserved_rfc4724_3() {
        let fams = [
            Family::Ipv4Unicast,
            Family::Ipv6Unicast,
            Family::Ipv4Flowspec,
        ];
        let s = startup(Instant::now(), [true, false]);
        assert!(s.restarting);
        let c = capability(GrMode::Full, &fams, 9000, s.restarting, s.preserved);
        assert!(c.restarting);
        assert_eq!(
            c.families,
            vec![
                (V4, true),
                (V6, false),
                (Family::Ipv4Flowspec.afi_safi(), false)
            ]
        );
        assert_eq!(c.restart_time, 4095, "12 bits");
        // After the restart phase: R clear, F = the dataplane forwards.
        let c = capability(GrMode::Full, &fams, 120, false, [true, true]);
        assert!(!c.restarting);
        assert_eq!(&c.families[..2], &[(V4, true), (V6, true)]);
    }

    #[test]
    fn helper_only_claims_nothing_even_over_a_preserved_dataplane() {
        let s = Startup::new(
            Instant::now(),
            GrMode::HelperOnly,
            [true, true],
            S(120),
            S(30),
        );
        assert!(!s.restarting, "no restarting speaker: no deferral");
        let c = capability(
            GrMode::HelperOnly,
            &[Family::Ipv4Unicast],
            120,
            true,
            s.preserved,
        );
        assert!(!c.restarting);
        assert!(c.families.is_empty());
        // The pinned dataplane still waits for the tables before it is reconciled.
        assert_eq!(s.deadline - s.started, S(120));
    }

    #[test]
    fn deferral_waits_for_end_of_rib_from_every_gr_peer_that_came_up_rfc4724_4_1() {
        let t0 = Instant::now();
        let s = startup(t0, [true, true]);
        // A GR peer without End-of-RIB holds the phase, quiet or not.
        assert_eq!(s.done(t0 + S(1), [up(true, false, true)]), None);
        assert_eq!(s.done(t0 + S(100), [up(true, false, true)]), None);
        assert_eq!(
            s.done(t0 + S(1), [up(true, true, false)]),
            Some("every session sent its table")
        );
        // Two GR peers: both End-of-RIBs.
        assert_eq!(
            s.done(t0 + S(1), [up(true, true, false), up(true, false, false)]),
            None
        );
        // The deadline (select-defer-time) ends it whatever the peers do.
        assert_eq!(
            s.done(t0 + S(120), [up(true, false, false)]),
            Some("deadline passed")
        );
    }

    #[test]
    fn a_peer_without_graceful_restart_never_holds_the_deferral_for_long() {
        let t0 = Instant::now();
        let s = startup(t0, [true, false]);
        // No End-of-RIB expected: its table is in once it is quiet.
        assert_eq!(s.done(t0 + S(1), [up(false, false, false)]), None);
        assert_eq!(
            s.done(t0 + S(3), [up(false, false, true)]),
            Some("every session sent its table")
        );
        // A peer that sends End-of-RIB anyway is done at once.
        assert!(s.done(t0 + S(1), [up(false, true, false)]).is_some());
    }

    #[test]
    fn peers_not_up_are_waited_for_only_during_the_grace() {
        let t0 = Instant::now();
        let s = startup(t0, [true, false]);
        let g = s.grace();
        assert_eq!(g, WAIT_FOR_RESTARTED_PEERS);
        assert_eq!(s.done(t0 + S(1), [up(true, true, false), DOWN]), None);
        assert_eq!(
            s.done(t0 + g, [up(true, true, false), DOWN]),
            Some("every session up sent its table")
        );
        assert_eq!(s.done(t0 + g, [DOWN]), Some("no session up"));
        // No enabled peer at all: nothing to wait for.
        assert_eq!(s.done(t0, []), Some("no peers"));
        // A fresh start waits less for sessions and uses initial-sync-timeout as its deadline.
        let f = startup(t0, [false, false]);
        assert_eq!(f.grace(), WAIT_FOR_PEERS);
        assert_eq!(f.deadline - t0, S(30));
        assert_eq!(f.done(t0 + S(5), [DOWN]), Some("no session up"));
    }
}
