//! Max-prefix, graceful restart and LLGR driven through real `bgp::fsm` state machines: our FSM and the
//! peer's, connected in memory on virtual time (messages delivered in order, as on TCP). The session's
//! `Established` output gives the negotiated capabilities, a connection loss or a NOTIFICATION gives its
//! `Down` cause, our `Action::Cease` is handed to our FSM (`Input::Cease`) and must reach the peer's FSM
//! as that NOTIFICATION. UPDATEs are encoded and decoded by the real codec with the session's context.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp::fsm::{
    Cause, ConnId, Fsm, FsmConfig, GracefulRestart, Input, LongLivedGr, Negotiated, Output,
    default_capabilities,
};
use bgp::wire::{AfiSafi, Message, Update, notification::cease};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::*;
use crate::config;
use crate::rib::attrs::{AsPath, Attrs, community};
use crate::rib::decision::{PeerInfo, PeerKind};
use crate::rib::table::flags;
use crate::rib::{Rib, RibConfig};

/// Two FSMs and one connection between them (ours connects, theirs accepts).
struct Session {
    ours: Fsm,
    theirs: Fsm,
    now: Duration,
    our_c: Option<ConnId>,
    their_c: Option<ConnId>,
    /// Everything our FSM and the peer's reported, in order.
    our_log: Vec<Output>,
    their_log: Vec<Output>,
}

impl Session {
    fn new(gr: Option<u16>, llgr: Option<u32>, our_llgr: Option<u32>) -> Session {
        let fams = [AfiSafi::IPV4_UNICAST];
        let mut ours = FsmConfig::new(65000, 64501, Ipv4Addr::new(10, 0, 0, 1));
        ours.capabilities = default_capabilities(65000, &fams);
        ours.capabilities.graceful_restart = Some(GracefulRestart {
            restarting: false,
            restart_time: 120,
            families: vec![(AfiSafi::IPV4_UNICAST, true)],
        });
        ours.capabilities.long_lived_gr = our_llgr.map(|t| LongLivedGr {
            families: vec![(AfiSafi::IPV4_UNICAST, false, t)],
        });
        let mut theirs = FsmConfig::new(64501, 65000, Ipv4Addr::new(10, 0, 0, 2));
        theirs.passive = true;
        theirs.capabilities = default_capabilities(64501, &fams);
        theirs.capabilities.graceful_restart = gr.map(|t| GracefulRestart {
            restarting: false,
            restart_time: t,
            families: vec![(AfiSafi::IPV4_UNICAST, true)],
        });
        theirs.capabilities.long_lived_gr = llgr.map(|t| LongLivedGr {
            families: vec![(AfiSafi::IPV4_UNICAST, true, t)],
        });
        let mut s = Session {
            ours: Fsm::new(ours),
            theirs: Fsm::new(theirs),
            now: Duration::ZERO,
            our_c: None,
            their_c: None,
            our_log: Vec::new(),
            their_log: Vec::new(),
        };
        let t = s.theirs.handle(s.now, Input::Start);
        s.pump(Vec::new(), t);
        s
    }

    /// Connects and runs the OPEN/KEEPALIVE exchange; returns what our side negotiated.
    fn establish(&mut self) -> Box<Negotiated> {
        let mut a = self.ours.handle(self.now, Input::Start);
        let c = a
            .iter()
            .find_map(|o| match o {
                Output::Connect(c) => Some(*c),
                _ => None,
            })
            .expect("our FSM connects");
        self.our_c = Some(c);
        a.extend(self.ours.handle(self.now, Input::Connected(c)));
        let b = self.theirs.handle(self.now, Input::Incoming);
        self.their_c = b.iter().find_map(|o| match o {
            Output::Accept(c) => Some(*c),
            _ => None,
        });
        assert!(self.their_c.is_some(), "the peer accepts: {b:?}");
        let from = self.our_log.len();
        self.pump(a, b);
        self.our_log[from..]
            .iter()
            .find_map(|o| match o {
                Output::Established(_, n) => Some(n.clone()),
                _ => None,
            })
            .expect("session established")
    }

    /// Delivers sends and closes between the two FSMs until both are quiet.
    fn pump(&mut self, mut a: Vec<Output>, mut b: Vec<Output>) {
        while !a.is_empty() || !b.is_empty() {
            let (mut na, mut nb) = (Vec::new(), Vec::new());
            for o in &a {
                match o {
                    Output::Send(_, m) => {
                        if let Some(c) = self.their_c {
                            nb.extend(self.theirs.handle(self.now, Input::Received(c, m.clone())));
                        }
                    }
                    Output::Close(_) => {
                        if let Some(c) = self.their_c.take() {
                            nb.extend(self.theirs.handle(self.now, Input::Closed(c)));
                        }
                    }
                    _ => {}
                }
            }
            for o in &b {
                match o {
                    Output::Send(_, m) => {
                        if let Some(c) = self.our_c {
                            na.extend(self.ours.handle(self.now, Input::Received(c, m.clone())));
                        }
                    }
                    Output::Close(_) => {
                        if let Some(c) = self.our_c.take() {
                            na.extend(self.ours.handle(self.now, Input::Closed(c)));
                        }
                    }
                    _ => {}
                }
            }
            self.our_log.append(&mut a);
            self.their_log.append(&mut b);
            a = na;
            b = nb;
        }
    }

    /// Our side performs `actions` (the daemon's `perform`); returns our Down cause if the session ended.
    fn perform(&mut self, actions: Vec<Action>) -> Option<Cause> {
        let from = self.our_log.len();
        for a in actions {
            let out = match a {
                Action::Cease(n) => self.ours.handle(self.now, Input::Cease { notification: n }),
                Action::Start => self.ours.handle(self.now, Input::Start),
            };
            if let Some(c) = out.iter().find_map(|o| match o {
                Output::Connect(c) => Some(*c),
                _ => None,
            }) {
                self.our_c = Some(c);
            }
            self.pump(out, Vec::new());
        }
        self.our_log[from..].iter().find_map(|o| match o {
            Output::Down(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// The TCP connection breaks (the peer process died): no NOTIFICATION.
    fn lose(&mut self) -> Cause {
        let c = self.our_c.take().expect("connected");
        let out = self.ours.handle(self.now, Input::Closed(c));
        self.their_c = None;
        let cause = out
            .iter()
            .find_map(|o| match o {
                Output::Down(c) => Some(c.clone()),
                _ => None,
            })
            .expect("session down");
        self.our_log.extend(out);
        // The peer "restarts": a fresh FSM with the same configuration, waiting for us.
        let cfg = self.theirs_config();
        self.theirs = Fsm::new(cfg);
        let t = self.theirs.handle(self.now, Input::Start);
        self.pump(Vec::new(), t);
        cause
    }

    fn theirs_config(&self) -> FsmConfig {
        self.theirs.config().clone()
    }
}

/// An UPDATE from the peer, through the codec with the session's context.
fn wire(n: &Negotiated, u: Update) -> Update {
    let ctx = n.context();
    let bytes = Message::Update(u).to_bytes(&ctx).unwrap();
    match Message::decode(&bytes, &ctx).unwrap() {
        Message::Update(u) => u,
        m => panic!("not an UPDATE: {m:?}"),
    }
}

fn announce(prefixes: &[&str], communities: &[u32]) -> Update {
    let a = Attrs::default()
        .with_as_path(AsPath::sequence(vec![64501, 15169]))
        .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))))
        .with_communities(communities.to_vec());
    let p: Vec<IpNet> = prefixes.iter().map(|p| p.parse().unwrap()).collect();
    crate::export::announce(&a, &p).unwrap()
}

fn nb(extra: &str) -> Neighbor {
    let text = format!(
        "router-id = \"10.0.0.1\"\nlocal-as = 65000\n[[policy.ALL.term]]\nname = \"a\"\naction = \"accept\"\n\
         [peer.up]\naddress = \"192.0.2.2\"\nremote-as = 64501\nimport = [\"ALL\"]\nexport = [\"ALL\"]\n{extra}"
    );
    config::parse(&text, "test.toml")
        .unwrap()
        .neighbors
        .remove(0)
}

struct World {
    rib: Rib,
    inb: Inbound,
    nb: Neighbor,
    t0: Instant,
    other: PeerId,
}

impl World {
    fn new(extra: &str) -> World {
        let nb = nb(extra);
        let text = "[[policy.ALL.term]]\nname = \"a\"\naction = \"accept\"\n";
        let defs: crate::policy::PolicyDefs = toml::from_str(text).unwrap();
        let policy = crate::policy::PolicySet::compile(&defs)
            .unwrap()
            .chain(&["ALL".to_string()])
            .ok();
        let mut rib = Rib::new(RibConfig::default());
        let info = |n: u8, asn: u32| PeerInfo {
            name: format!("p{n}"),
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            router_id: Ipv4Addr::new(10, 0, 0, n),
            remote_as: asn,
            local_as: 65000,
            kind: PeerKind::Ebgp,
            confed: false,
        };
        let id = rib.add_peer(info(2, 64501)).expect("a free peer slot");
        let other = rib.add_peer(info(3, 64502)).expect("a free peer slot");
        let import = ImportCtx {
            local_as: 65000,
            peer_as: 64501,
            peer_addr: nb.address,
            local_addr: None,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            ebgp: true,
            allowas_in: 0,
            policy,
        };
        World {
            rib,
            inb: Inbound::new(id, import),
            nb,
            t0: Instant::now(),
            other,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn feed(&mut self, secs: u64, n: &Negotiated, u: Update) -> Vec<Action> {
        let u = wire(n, u);
        self.inb
            .updates(self.at(secs), &mut self.rib, &self.nb, &[u])
            .0
    }

    fn paths(&self, p: &str) -> Vec<(PeerId, u8, bool)> {
        let k: Ipv4Net = p.parse().unwrap();
        self.rib
            .ipv4()
            .get(&k)
            .map(|e| {
                e.iter()
                    .map(|x| {
                        (
                            x.peer,
                            x.flags,
                            x.attrs.has_community(community::LLGR_STALE),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn pfx(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("198.51.{i}.0/24")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn max_prefix_teardown_sends_cease_maximum_prefixes_and_restarts_after_the_timer_rfc4486_4() {
    let mut w = World::new(
        "max-prefix = { limit = 10, warning-percent = 80, action = \"teardown\", restart-after = 60 }\n",
    );
    let mut s = Session::new(Some(120), None, None);
    let n = s.establish();
    w.inb.established();
    let ps = pfx(11);
    assert!(w.feed(1, &n, announce(&refs(&ps[..8]), &[])).is_empty());
    assert!(w.inb.max_prefix_warned, "80 % of 10 reached: warning");
    assert_eq!(w.inb.accepted(), 8);
    let actions = w.feed(2, &n, announce(&refs(&ps[8..]), &[]));
    let expected = Notification::max_prefixes(AfiSafi::IPV4_UNICAST, 10);
    assert_eq!(actions, vec![Action::Cease(expected.clone())]);
    assert_eq!(
        (expected.code, expected.subcode),
        (6, cease::MAXIMUM_PREFIXES_REACHED)
    );
    assert_eq!(
        expected.data,
        vec![0, 1, 1, 0, 0, 0, 10],
        "AFI 1, SAFI 1, limit 10"
    );
    assert_eq!(
        w.rib.peer_paths(w.inb.rib_id),
        [0, 0],
        "the peer's routes are gone"
    );
    // On the wire: the peer's FSM receives exactly that NOTIFICATION and goes down.
    let ours = s.perform(actions).expect("our session ends");
    assert_eq!(ours, Cause::Sent(expected.clone()));
    assert!(
        s.their_log
            .iter()
            .any(|o| *o == Output::Down(Cause::Received(expected.clone()))),
        "{:?}",
        s.their_log
    );
    w.inb.down(w.at(2), &mut w.rib, &w.nb, Some(&n), true);
    assert_eq!(
        w.inb.stale, None,
        "a NOTIFICATION ends the session without GR"
    );
    // The restart timer: nothing before 60 s, a Start at 62 s that re-establishes the session.
    assert!(w.inb.tick(w.at(61), &mut w.rib, &w.nb).is_empty());
    let start = w.inb.tick(w.at(62), &mut w.rib, &w.nb);
    assert_eq!(start, vec![Action::Start]);
    assert!(!w.inb.max_prefix_warned, "warning re-armed");
    s.perform(start);
    assert!(s.our_c.is_some(), "our FSM connects again");
}

#[test]
fn max_prefix_discard_keeps_the_session_and_ignores_new_prefixes_over_the_limit() {
    let mut w = World::new("max-prefix = { limit = 5, action = \"discard\" }\n");
    let mut s = Session::new(None, None, None);
    let n = s.establish();
    let ps = pfx(8);
    assert!(w.feed(1, &n, announce(&refs(&ps), &[])).is_empty());
    assert_eq!(w.inb.accepted(), 5);
    assert_eq!(
        w.inb.rejected.len(),
        3,
        "held as refused, counted as received"
    );
    // A replacement of an accepted prefix still applies.
    assert!(
        w.feed(2, &n, announce(&refs(&ps[..1]), &[65000]))
            .is_empty()
    );
    assert_eq!(w.paths(&ps[0]).len(), 1);
    // After a withdrawal there is room for one of the refused prefixes.
    let wd = wire(
        &n,
        crate::export::withdraw(&[ps[1].parse().unwrap()]).unwrap(),
    );
    w.inb.updates(w.at(3), &mut w.rib, &w.nb, &[wd]);
    w.feed(4, &n, announce(&refs(&ps[7..]), &[]));
    assert_eq!(w.paths(&ps[7]).len(), 1);
    assert_eq!(w.inb.accepted(), 5);
}

#[test]
fn max_prefix_warn_only_logs_and_accepts_everything() {
    let mut w = World::new("max-prefix = { limit = 5, action = \"warn\" }\n");
    let mut s = Session::new(None, None, None);
    let n = s.establish();
    assert!(w.feed(1, &n, announce(&refs(&pfx(9)), &[])).is_empty());
    assert_eq!(w.inb.accepted(), 9);
    assert!(w.inb.max_prefix_warned);
}

#[test]
fn graceful_restart_keeps_routes_stale_across_a_restart_and_flushes_at_end_of_rib_rfc4724_4_2() {
    let mut w = World::new("");
    let mut s = Session::new(Some(120), None, None);
    let n = s.establish();
    let ps = pfx(3);
    w.feed(1, &n, announce(&refs(&ps), &[]));
    // The peer dies without a NOTIFICATION.
    let cause = s.lose();
    assert_eq!(cause, Cause::ConnectionClosed);
    w.inb.down(w.at(5), &mut w.rib, &w.nb, Some(&n), false);
    assert_eq!(
        w.inb.stale,
        Some(Stale::Gr {
            until: w.at(125),
            llgr: None
        }),
        "the peer's restart time"
    );
    for p in &ps {
        assert_eq!(
            w.paths(p),
            vec![(w.inb.rib_id, flags::STALE, false)],
            "kept, stale"
        );
    }
    assert!(w.inb.tick(w.at(100), &mut w.rib, &w.nb).is_empty());
    assert_eq!(
        w.paths(&ps[0]).len(),
        1,
        "still there before the restart time"
    );
    // It comes back, re-sends two of the three, then End-of-RIB.
    let n2 = s.establish();
    w.inb.established();
    w.feed(110, &n2, announce(&refs(&ps[..2]), &[]));
    assert_eq!(
        w.paths(&ps[0]),
        vec![(w.inb.rib_id, 0, false)],
        "refreshed, not stale"
    );
    assert_eq!(w.paths(&ps[2])[0].1, flags::STALE);
    w.feed(111, &n2, Update::end_of_rib(AfiSafi::IPV4_UNICAST));
    assert!(
        w.paths(&ps[2]).is_empty(),
        "not re-sent: gone at End-of-RIB"
    );
    assert_eq!(w.paths(&ps[1]).len(), 1);
    assert_eq!(w.inb.stale, None, "restart over");
    assert_eq!(w.inb.accepted(), 2);
}

#[test]
fn graceful_restart_timer_expiry_removes_the_stale_routes() {
    let mut w = World::new("");
    let mut s = Session::new(Some(30), None, None);
    let n = s.establish();
    w.feed(1, &n, announce(&["198.51.100.0/24"], &[]));
    s.lose();
    w.inb.down(w.at(10), &mut w.rib, &w.nb, Some(&n), false);
    w.inb.tick(w.at(39), &mut w.rib, &w.nb);
    assert_eq!(w.paths("198.51.100.0/24").len(), 1);
    w.inb.tick(w.at(40), &mut w.rib, &w.nb);
    assert!(w.paths("198.51.100.0/24").is_empty());
    assert_eq!((w.inb.stale, w.inb.accepted()), (None, 0));
}

#[test]
fn a_notification_or_no_negotiated_gr_removes_routes_at_once() {
    for (gr, notification) in [(Some(120), true), (None, false)] {
        let mut w = World::new("");
        let mut s = Session::new(gr, None, None);
        let n = s.establish();
        w.feed(1, &n, announce(&["198.51.100.0/24"], &[]));
        w.inb
            .down(w.at(2), &mut w.rib, &w.nb, Some(&n), notification);
        assert!(
            w.paths("198.51.100.0/24").is_empty(),
            "{gr:?} {notification}"
        );
        assert_eq!(w.inb.stale, None);
    }
}

#[test]
fn llgr_keeps_routes_llgr_stale_and_least_preferred_after_the_restart_time_rfc9494_4_3() {
    let mut w = World::new("long-lived-stale-time = 600\n");
    // The peer offers 3600 s of long-lived stale time; ours is 600: the smaller applies.
    let mut s = Session::new(Some(30), Some(3600), Some(600));
    let n = s.establish();
    assert!(n.long_lived_gr.is_some(), "LLGR negotiated");
    w.feed(
        1,
        &n,
        announce(&["198.51.100.0/24", "198.51.101.0/24"], &[]),
    );
    w.feed(1, &n, announce(&["198.51.102.0/24"], &[community::NO_LLGR]));
    // Another peer has a worse path (longer AS path) for the first prefix.
    let worse = w.rib.intern(
        Attrs::default()
            .with_as_path(AsPath::sequence(vec![64502, 1, 2, 3, 15169]))
            .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)))),
    );
    w.rib
        .announce(w.other, "198.51.100.0/24".parse().unwrap(), 0, worse);
    let best = |w: &World| {
        w.rib
            .ipv4()
            .get(&"198.51.100.0/24".parse().unwrap())
            .and_then(|e| e.best().map(|b| b.peer))
    };
    assert_eq!(best(&w), Some(w.inb.rib_id));
    s.lose();
    w.inb.down(w.at(10), &mut w.rib, &w.nb, Some(&n), false);
    assert_eq!(
        best(&w),
        Some(w.inb.rib_id),
        "GR-stale paths keep their rank"
    );
    // Restart time over: long-lived stale phase.
    w.inb.tick(w.at(40), &mut w.rib, &w.nb);
    assert_eq!(w.inb.stale, Some(Stale::Llgr { until: w.at(640) }));
    assert_eq!(
        w.paths("198.51.101.0/24"),
        vec![(w.inb.rib_id, flags::STALE | flags::LLGR_STALE, true)],
        "LLGR_STALE community attached"
    );
    assert!(
        w.paths("198.51.102.0/24").is_empty(),
        "NO_LLGR routes are removed"
    );
    assert_eq!(best(&w), Some(w.other), "LLGR-stale is least preferred");
    assert_eq!(w.inb.accepted(), 2);
    w.inb.tick(w.at(639), &mut w.rib, &w.nb);
    assert_eq!(w.paths("198.51.101.0/24").len(), 1);
    w.inb.tick(w.at(640), &mut w.rib, &w.nb);
    assert!(
        w.paths("198.51.101.0/24").is_empty(),
        "long-lived stale time over"
    );
    assert_eq!(best(&w), Some(w.other));
    assert_eq!(w.inb.stale, None);
}

#[test]
fn llgr_stale_routes_are_replaced_and_flushed_by_end_of_rib_after_the_peer_returns() {
    let mut w = World::new("long-lived-stale-time = 600\n");
    let mut s = Session::new(Some(30), Some(3600), Some(600));
    let n = s.establish();
    w.feed(
        1,
        &n,
        announce(&["198.51.100.0/24", "198.51.101.0/24"], &[]),
    );
    s.lose();
    w.inb.down(w.at(10), &mut w.rib, &w.nb, Some(&n), false);
    w.inb.tick(w.at(40), &mut w.rib, &w.nb);
    assert!(w.paths("198.51.100.0/24")[0].2);
    let n2 = s.establish();
    w.inb.established();
    w.feed(300, &n2, announce(&["198.51.100.0/24"], &[]));
    assert_eq!(
        w.paths("198.51.100.0/24"),
        vec![(w.inb.rib_id, 0, false)],
        "re-sent: fresh, no LLGR_STALE community"
    );
    w.feed(301, &n2, Update::end_of_rib(AfiSafi::IPV4_UNICAST));
    assert!(w.paths("198.51.101.0/24").is_empty());
    assert_eq!(w.inb.stale, None);
    assert_eq!(
        w.rib.attr_sets(),
        1,
        "the LLGR copies of the attribute sets were freed"
    );
}

#[test]
fn llgr_without_gr_starts_the_long_lived_phase_at_once() {
    let mut w = World::new("long-lived-stale-time = 100\n");
    let mut s = Session::new(None, Some(50), Some(100));
    let n = s.establish();
    w.feed(1, &n, announce(&["198.51.100.0/24"], &[]));
    s.lose();
    w.inb.down(w.at(10), &mut w.rib, &w.nb, Some(&n), false);
    assert_eq!(w.inb.stale, Some(Stale::Llgr { until: w.at(60) }));
    assert!(w.paths("198.51.100.0/24")[0].2);
}

/// Every prefix of one UPDATE shares one interned attribute set (interned once, not per prefix), a
/// policy that modifies the set gives the prefixes it matches one shared modified set, and a
/// withdrawal of everything frees them all.
#[test]
fn one_update_interns_one_attribute_set_for_all_its_prefixes() {
    let mut w = World::new("");
    let mut s = Session::new(None, None, None);
    let n = s.establish();
    let ps = pfx(40);
    w.feed(1, &n, announce(&refs(&ps), &[65000]));
    assert_eq!(w.inb.accepted(), 40);
    assert_eq!(w.rib.attr_sets(), 1);
    let a: Ipv4Net = ps[0].parse().unwrap();
    let b: Ipv4Net = ps[39].parse().unwrap();
    let pa = &w.rib.ipv4().get(&a).unwrap().as_slice().at(0).attrs;
    let pb = &w.rib.ipv4().get(&b).unwrap().as_slice().at(0).attrs;
    assert!(crate::rib::attrs::AttrRef::ptr_eq(pa, pb));

    // A policy that sets MED on the prefixes of one list: two sets, each shared by its prefixes.
    let text = "[prefix-list.LOW]\nprefixes = [\"198.51.0.0/19 le 24\"]\n\
                [[policy.P.term]]\nname = \"low\"\naction = \"accept\"\n\
                [policy.P.term.match]\nprefix-list = [\"LOW\"]\n[policy.P.term.set]\nmed = 7\n\
                [[policy.P.term]]\nname = \"rest\"\naction = \"accept\"\n";
    let defs: crate::policy::PolicyDefs = toml::from_str(text).unwrap();
    w.inb.import.policy = crate::policy::PolicySet::compile(&defs)
        .unwrap()
        .chain(&["P".to_string()])
        .ok();
    w.feed(2, &n, announce(&refs(&ps), &[65001]));
    assert_eq!(w.inb.accepted(), 40, "replacements, not new paths");
    assert_eq!(w.rib.attr_sets(), 2, "the first set was freed");
    let low = |w: &World, i: usize| {
        let k: Ipv4Net = ps[i].parse().unwrap();
        w.rib.ipv4().get(&k).unwrap().as_slice().at(0).attrs.clone()
    };
    assert_eq!(low(&w, 0).med(), Some(7));
    assert!(crate::rib::attrs::AttrRef::ptr_eq(
        &low(&w, 0),
        &low(&w, 31)
    ));
    assert_eq!(low(&w, 32).med(), None);
    assert!(crate::rib::attrs::AttrRef::ptr_eq(
        &low(&w, 32),
        &low(&w, 39)
    ));

    let prefixes: Vec<IpNet> = ps.iter().map(|p| p.parse().unwrap()).collect();
    let wd = wire(&n, crate::export::withdraw(&prefixes).unwrap());
    w.inb.updates(w.at(3), &mut w.rib, &w.nb, &[wd]);
    assert_eq!(w.inb.accepted(), 0);
    assert_eq!(w.rib.attr_sets(), 0, "nothing left behind");
    assert_eq!(w.rib.path_count(), [0, 0]);
}

/// A batch is applied in prefix order, but under max-prefix `discard` the prefixes accepted are
/// still the first ones on the wire (here the highest addresses), not the lowest.
#[test]
fn max_prefix_discard_in_one_batch_accepts_the_first_prefixes_on_the_wire() {
    let mut w = World::new("max-prefix = { limit = 3, action = \"discard\" }\n");
    let mut s = Session::new(None, None, None);
    let n = s.establish();
    let ps = pfx(8);
    let batch = [
        wire(&n, announce(&[&ps[7], &ps[6]], &[])),
        wire(&n, announce(&[&ps[5], &ps[4]], &[])),
        wire(&n, announce(&[&ps[0]], &[])),
    ];
    w.inb.updates(w.at(1), &mut w.rib, &w.nb, &batch);
    assert_eq!(w.inb.accepted(), 3);
    for p in &ps[5..8] {
        assert_eq!(w.paths(p).len(), 1, "{p} came first on the wire: accepted");
    }
    for p in [&ps[4], &ps[0]] {
        assert!(w.paths(p).is_empty(), "{p} came over the limit: discarded");
        let k: IpNet = p.parse().unwrap();
        assert!(w.inb.rejected.contains(&(k, 0)));
    }
}

/// `batch` applied at once in one fresh world (with its counts) and its UPDATEs applied one by one
/// in another.
fn whole_and_one_by_one(batch: &[Update]) -> (World, Counted, World) {
    let mut whole = World::new("");
    let (_, c) = whole
        .inb
        .updates(whole.at(1), &mut whole.rib, &whole.nb, batch);
    let mut single = World::new("");
    for u in batch {
        single.inb.updates(
            single.at(1),
            &mut single.rib,
            &single.nb,
            std::slice::from_ref(u),
        );
    }
    (whole, c, single)
}

/// Applying a batch in prefix order ends in the same state as applying its UPDATEs one by one:
/// operations on one prefix (announce, withdraw, announce again, replace) keep their wire order.
#[test]
fn a_batch_applied_in_prefix_order_ends_as_the_updates_one_by_one() {
    let mut s = Session::new(None, None, None);
    let n = s.establish();
    let ps = pfx(4);
    let wd = |p: &str| wire(&n, crate::export::withdraw(&[p.parse().unwrap()]).unwrap());
    let batch = [
        wire(&n, announce(&[&ps[3], &ps[1]], &[1])),
        wd(&ps[3]),
        wire(&n, announce(&[&ps[3], &ps[2]], &[2])),
        wire(&n, announce(&[&ps[1]], &[3])),
        wd(&ps[2]),
        wire(&n, announce(&[&ps[0], &ps[2]], &[4])),
        wd(&ps[0]),
    ];
    let (whole, c, single) = whole_and_one_by_one(&batch);
    assert_eq!(
        c,
        Counted {
            updates: 7,
            announced: 7,
            withdrawn: 3
        }
    );
    let state = |w: &World| -> Vec<(String, Vec<u32>)> {
        ps.iter()
            .map(|p| {
                let k: Ipv4Net = p.parse().unwrap();
                let comms = w
                    .rib
                    .ipv4()
                    .get(&k)
                    .map(|e| {
                        e.iter()
                            .flat_map(|x| x.attrs.communities().to_vec())
                            .collect()
                    })
                    .unwrap_or_default();
                (p.clone(), comms)
            })
            .collect()
    };
    assert_eq!(state(&whole), state(&single));
    assert_eq!(
        state(&whole),
        vec![
            (ps[0].clone(), vec![]),
            (ps[1].clone(), vec![3]),
            (ps[2].clone(), vec![4]),
            (ps[3].clone(), vec![2]),
        ]
    );
    assert_eq!(whole.inb.accepted(), 3);
    assert_eq!(whole.rib.fib(), single.rib.fib());
    assert_eq!(
        whole.rib.attr_sets(),
        3,
        "sets 2, 3 and 4; set 1 was released"
    );
}

/// An End-of-RIB in the middle of a batch applies exactly there: a stale prefix re-sent before it
/// is kept throughout (no removal reaches the FIB), one re-sent only after it is flushed at the
/// End-of-RIB and then comes back, one never re-sent is gone.
#[test]
fn end_of_rib_in_the_middle_of_a_batch_applies_at_its_place_rfc4724_4_2() {
    let mut w = World::new("");
    let mut s = Session::new(Some(120), None, None);
    let n = s.establish();
    let ps = pfx(3);
    w.feed(1, &n, announce(&refs(&ps), &[]));
    s.lose();
    w.inb.down(w.at(5), &mut w.rib, &w.nb, Some(&n), false);
    let n2 = s.establish();
    w.inb.established();
    let _ = w.rib.take_fib_deltas();
    let batch = [
        wire(&n2, announce(&[&ps[2]], &[])),
        Update::end_of_rib(AfiSafi::IPV4_UNICAST),
        wire(&n2, announce(&[&ps[1]], &[])),
    ];
    w.inb.updates(w.at(10), &mut w.rib, &w.nb, &batch);
    assert_eq!(w.inb.stale, None, "restart over");
    assert!(w.paths(&ps[0]).is_empty(), "never re-sent: flushed");
    assert_eq!(w.paths(&ps[1]), vec![(w.inb.rib_id, 0, false)]);
    assert_eq!(w.paths(&ps[2]), vec![(w.inb.rib_id, 0, false)]);
    let deltas = w.rib.take_fib_deltas();
    let of = |p: &str| -> Vec<bool> {
        let k: IpNet = p.parse().unwrap();
        deltas
            .iter()
            .filter(|d| d.prefix == k)
            .map(|d| d.entry.is_some())
            .collect()
    };
    assert_eq!(of(&ps[0]), vec![false]);
    assert_eq!(
        of(&ps[1]),
        vec![false, true],
        "flushed at End-of-RIB, then back"
    );
    assert!(
        of(&ps[2]).is_empty(),
        "refreshed before End-of-RIB: untouched"
    );
}

/// IPv6 prefixes whose sort keys are equal (the same address at two lengths; addresses differing
/// only in the last bit) are applied with each prefix's operations still in wire order: the batch
/// ends as its UPDATEs applied one by one.
#[test]
fn ipv6_prefixes_sharing_a_sort_key_keep_their_wire_order() {
    let a6 = |comm: u32, prefixes: &[&str]| {
        let a = Attrs::default()
            .with_as_path(AsPath::sequence(vec![64501, 15169]))
            .with_next_hop(Some("2001:db8:ffff::2".parse().unwrap()))
            .with_communities(vec![comm]);
        let p: Vec<IpNet> = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        crate::export::announce(&a, &p).unwrap()
    };
    let wd = |p: &str| crate::export::withdraw(&[p.parse().unwrap()]).unwrap();
    let ps = [
        "2001:db8::/48",
        "2001:db8::/64",
        "2001:db8::/128",
        "2001:db8::1/128",
    ];
    let batch = [
        a6(1, &ps),
        wd(ps[0]),
        wd(ps[3]),
        a6(2, &[ps[1], ps[2]]),
        a6(3, &[ps[0], ps[3]]),
        wd(ps[1]),
        a6(4, &[ps[2]]),
    ];
    let (whole, _, single) = whole_and_one_by_one(&batch);
    let state = |w: &World| -> Vec<Vec<u32>> {
        ps.iter()
            .map(|p| {
                let k: Ipv6Net = p.parse().unwrap();
                w.rib
                    .ipv6()
                    .get(&k)
                    .map(|e| {
                        e.iter()
                            .flat_map(|x| x.attrs.communities().to_vec())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(state(&single), vec![vec![3], vec![], vec![4], vec![3]]);
    assert_eq!(state(&whole), state(&single));
    assert_eq!(whole.rib.fib(), single.rib.fib());
}

/// Prefixes for [`batches_in_prefix_order_end_as_their_updates_one_by_one`]: IPv4 ones sharing
/// addresses at several lengths, with host bits set (the tables key `10.0.0.1/8` as `10.0.0.0/8`,
/// so their operations must stay in one wire order), the ends of the space; IPv6 ones whose sort
/// keys collide.
const PROP_PREFIXES: [&str; 14] = [
    "10.0.0.0/8",
    "10.0.0.1/8",
    "10.0.0.0/16",
    "10.0.0.0/24",
    "10.1.0.0/16",
    "192.0.2.0/24",
    "192.0.2.128/25",
    "0.0.0.0/0",
    "255.255.255.255/32",
    "255.255.255.254/31",
    "2001:db8::/48",
    "2001:db8::/64",
    "2001:db8::1/128",
    "2001:db8::/128",
];

/// One UPDATE of the property test: announce (with a community) or withdraw some of
/// [`PROP_PREFIXES`] (of one family).
fn prop_update(announce: bool, v6: bool, picks: &[usize], comm: u32) -> Option<Update> {
    let ps: Vec<IpNet> = picks
        .iter()
        .map(|&i| {
            PROP_PREFIXES[if v6 { 10 + i % 4 } else { i % 10 }]
                .parse()
                .unwrap()
        })
        .collect();
    if !announce {
        return crate::export::withdraw(&ps);
    }
    let nh: IpAddr = if v6 {
        "2001:db8:ffff::2".parse().unwrap()
    } else {
        "192.0.2.2".parse().unwrap()
    };
    let a = Attrs::default()
        .with_as_path(AsPath::sequence(vec![64501, 15169]))
        .with_next_hop(Some(nh))
        .with_communities(vec![comm]);
    crate::export::announce(&a, &ps)
}

/// Each prefix's paths (their communities), the forwarding table, the counts.
fn prop_state(w: &World) -> (Vec<Vec<u32>>, String, u64, usize) {
    let paths = PROP_PREFIXES
        .iter()
        .map(|p| {
            let comms = |e: Option<&crate::rib::table::Paths>| -> Vec<u32> {
                e.map(|e| {
                    e.iter()
                        .flat_map(|x| x.attrs.communities().to_vec())
                        .collect()
                })
                .unwrap_or_default()
            };
            match p.parse::<IpNet>().unwrap().trunc() {
                IpNet::V4(k) => comms(w.rib.ipv4().get(&k)),
                IpNet::V6(k) => comms(w.rib.ipv6().get(&k)),
            }
        })
        .collect();
    (
        paths,
        format!("{:?}", w.rib.fib()),
        w.inb.accepted(),
        w.rib.attr_sets(),
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// A batch applied at once (in prefix order, IPv4-only batches through their compact keys)
    /// ends in the state of its UPDATEs applied one by one, with the same counts.
    #[test]
    fn batches_in_prefix_order_end_as_their_updates_one_by_one(
        ups in proptest::collection::vec(
            (
                proptest::bool::weighted(0.7),
                proptest::bool::weighted(0.2),
                proptest::collection::vec(0usize..10, 1..6),
                0u32..4,
            ),
            1..24,
        )
    ) {
        let batch: Vec<Update> = ups
            .iter()
            .filter_map(|(a, v6, picks, comm)| prop_update(*a, *v6, picks, *comm))
            .collect();
        let (whole, c, single) = whole_and_one_by_one(&batch);
        proptest::prop_assert_eq!(prop_state(&whole), prop_state(&single));
        let announced: usize = batch.iter().map(|u| u.announced().count()).sum();
        proptest::prop_assert_eq!(c.announced, announced as u64);
        proptest::prop_assert_eq!(c.updates, batch.len() as u64);
    }
}

proptest::proptest! {
    /// The radix sort of a run's IPv4 keys orders them as a comparison sort does, over runs long
    /// enough to take it, with prefixes repeated (ties keep their positions' order).
    #[test]
    fn ipv4_keys_sort_by_digits_as_by_comparison(
        prefixes in proptest::collection::vec((0u32..4096, 0u8..=32), 256..1200),
        spread in 0u32..=20,
    ) {
        let ops: Vec<super::Pending> = prefixes
            .iter()
            .map(|&(a, len)| super::Pending {
                attrs: None,
                path_id: 0,
                reject: false,
                prefix: IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a << spread.min(20)), len).unwrap()),
            })
            .collect();
        let mut keys = Vec::new();
        proptest::prop_assert!(super::v4_keys(&ops, &mut keys));
        let mut want = keys.clone();
        want.sort_unstable();
        super::sort_v4_keys(&mut keys, &mut Vec::new());
        proptest::prop_assert_eq!(keys, want);
    }
}
