//! Decision-process tables (one case per tie-break step) and RIB behaviour tests.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use super::attrs::{AsPath, Attrs, Origin, SegmentKind};
use super::decision::{Candidate, DecisionConfig, PeerInfo, PeerKind, Step, compare, select};
use super::*;

fn peer(n: u8, kind: PeerKind, remote_as: u32) -> PeerInfo {
    PeerInfo {
        name: format!("p{n}"),
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
        router_id: Ipv4Addr::new(10, 0, 0, n),
        remote_as,
        local_as: 65000,
        kind,
        confed: false,
    }
}

fn attrs(path: &[u32]) -> Attrs {
    Attrs::default()
        .with_as_path(AsPath::sequence(path.to_vec()))
        .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))))
}

fn cand<'a>(p: &'a PeerInfo, a: &'a Attrs) -> Candidate<'a> {
    Candidate {
        peer: p,
        attrs: a,
        reachable: true,
        igp_cost: 0,
        llgr_stale: false,
        seq: 0,
        path_id: 0,
    }
}

/// One row: a preferred path, a worse one, the step that must decide.
struct Case {
    name: &'static str,
    step: Step,
    setup: fn(&mut Candidate<'_>, &mut Candidate<'_>),
    attrs: fn(&mut Attrs, &mut Attrs),
    cfg: fn(&mut DecisionConfig),
}

fn none_c(_: &mut Candidate<'_>, _: &mut Candidate<'_>) {}
fn none_a(_: &mut Attrs, _: &mut Attrs) {}
fn none_cfg(_: &mut DecisionConfig) {}

#[test]
fn each_tie_break_step_decides_in_rfc4271_9_1_2_order() {
    let cases = [
        Case {
            name: "unreachable next-hop loses (9.1.2.1)",
            step: Step::NextHopReachability,
            setup: |_, b| b.reachable = false,
            attrs: |a, b| {
                a.set_local_pref(Some(50));
                b.set_local_pref(Some(500))
            },
            cfg: none_cfg,
        },
        Case {
            name: "LLGR-stale path loses (RFC 9494 4.3)",
            step: Step::LlgrStale,
            setup: |_, b| b.llgr_stale = true,
            attrs: |_, b| b.set_local_pref(Some(500)),
            cfg: none_cfg,
        },
        Case {
            name: "higher weight wins",
            step: Step::Weight,
            setup: none_c,
            attrs: |a, b| {
                a.set_weight(10);
                b.set_local_pref(Some(500))
            },
            cfg: none_cfg,
        },
        Case {
            name: "higher LOCAL_PREF wins (9.1.2.2 preamble)",
            step: Step::LocalPref,
            setup: none_c,
            attrs: |a, b| {
                a.set_local_pref(Some(200));
                b.set_as_path(AsPath::default())
            },
            cfg: none_cfg,
        },
        Case {
            name: "missing LOCAL_PREF uses the default",
            step: Step::LocalPref,
            setup: none_c,
            attrs: |_, b| b.set_local_pref(Some(99)),
            cfg: none_cfg,
        },
        Case {
            name: "shorter AS_PATH wins (9.1.2.2 a)",
            step: Step::AsPathLength,
            setup: none_c,
            attrs: |a, b| {
                a.set_as_path(AsPath::sequence(vec![1]));
                b.set_origin(Origin::Igp);
                a.set_origin(Origin::Incomplete)
            },
            cfg: none_cfg,
        },
        Case {
            name: "AS_SET counts one (9.1.2.2 a)",
            step: Step::AsPathLength,
            setup: none_c,
            attrs: |a, b| {
                a.set_as_path(AsPath::from_segments([
                    (SegmentKind::Sequence, &[1][..]),
                    (SegmentKind::Set, &[7, 8, 9][..]),
                ]));
                b.set_as_path(AsPath::sequence(vec![1, 2, 3]))
            },
            cfg: none_cfg,
        },
        Case {
            name: "ignore-as-path-len skips to ORIGIN",
            step: Step::Origin,
            setup: none_c,
            attrs: |a, b| {
                a.set_as_path(AsPath::sequence(vec![1, 2, 3, 4]));
                b.set_origin(Origin::Egp)
            },
            cfg: |c| c.ignore_as_path_len = true,
        },
        Case {
            name: "lower ORIGIN wins (9.1.2.2 b)",
            step: Step::Origin,
            setup: none_c,
            attrs: |_, b| b.set_origin(Origin::Incomplete),
            cfg: none_cfg,
        },
        Case {
            name: "lower MED wins within the same neighbour AS (9.1.2.2 c)",
            step: Step::Med,
            setup: none_c,
            attrs: |a, b| {
                a.set_med(Some(10));
                b.set_med(Some(20))
            },
            cfg: none_cfg,
        },
        Case {
            name: "missing MED is best by default",
            step: Step::Med,
            setup: none_c,
            attrs: |_, b| b.set_med(Some(1)),
            cfg: none_cfg,
        },
        Case {
            name: "missing MED as worst",
            step: Step::Med,
            setup: none_c,
            attrs: |a, _| a.set_med(Some(1_000_000)),
            cfg: |c| c.med_missing_as_worst = true,
        },
        Case {
            name: "always-compare-med compares across neighbour ASes",
            step: Step::Med,
            setup: none_c,
            attrs: |a, b| {
                a.set_as_path(AsPath::sequence(vec![9, 2]));
                a.set_med(Some(1));
                b.set_med(Some(2))
            },
            cfg: |c| c.always_compare_med = true,
        },
        Case {
            name: "MED ignored across neighbour ASes: eBGP over iBGP decides",
            step: Step::EbgpOverIbgp,
            setup: |a, b| {
                a.peer = Box::leak(Box::new(peer(1, PeerKind::Ebgp, 1)));
                b.peer = Box::leak(Box::new(peer(2, PeerKind::Ibgp, 65000)))
            },
            attrs: |a, b| {
                a.set_as_path(AsPath::sequence(vec![9, 2]));
                a.set_med(Some(100));
                b.set_med(Some(1))
            },
            cfg: none_cfg,
        },
        Case {
            name: "lower IGP cost wins (9.1.2.2 e)",
            step: Step::IgpCost,
            setup: |a, b| {
                a.igp_cost = 5;
                b.igp_cost = 10
            },
            attrs: none_a,
            cfg: none_cfg,
        },
        Case {
            name: "oldest eBGP path wins when configured (RFC 5004)",
            step: Step::Oldest,
            setup: |a, b| {
                a.seq = 1;
                b.seq = 2;
                a.peer = Box::leak(Box::new(peer(9, PeerKind::Ebgp, 1)))
            },
            attrs: none_a,
            cfg: |c| c.prefer_oldest_ebgp = true,
        },
        Case {
            name: "lower router-id wins (9.1.2.2 f)",
            step: Step::RouterId,
            setup: |a, b| {
                a.peer = Box::leak(Box::new(peer(3, PeerKind::Ebgp, 1)));
                b.peer = Box::leak(Box::new(peer(1, PeerKind::Ebgp, 1)))
            },
            attrs: |a, _| a.set_originator_id(Some(Ipv4Addr::new(1, 1, 1, 1))),
            cfg: none_cfg,
        },
        Case {
            name: "shorter CLUSTER_LIST wins (RFC 4456 9)",
            step: Step::ClusterListLength,
            setup: none_c,
            attrs: |_, b| b.set_cluster_list([Ipv4Addr::new(9, 9, 9, 9)]),
            cfg: none_cfg,
        },
        Case {
            name: "lower peer address wins (9.1.2.2 g)",
            step: Step::PeerAddress,
            setup: |a, b| {
                let mut pa = peer(1, PeerKind::Ebgp, 1);
                pa.router_id = Ipv4Addr::new(10, 0, 0, 7);
                let mut pb = peer(2, PeerKind::Ebgp, 1);
                pb.router_id = Ipv4Addr::new(10, 0, 0, 7);
                a.peer = Box::leak(Box::new(pa));
                b.peer = Box::leak(Box::new(pb))
            },
            attrs: none_a,
            cfg: none_cfg,
        },
        Case {
            name: "lower ADD-PATH id from one peer breaks the last tie",
            step: Step::PathId,
            setup: |a, b| {
                a.path_id = 1;
                b.path_id = 2
            },
            attrs: none_a,
            cfg: none_cfg,
        },
    ];
    let pe = peer(1, PeerKind::Ebgp, 1);
    for case in cases {
        let mut cfg = DecisionConfig::default();
        (case.cfg)(&mut cfg);
        let mut aa = attrs(&[1, 2]);
        let mut ab = attrs(&[1, 2]);
        (case.attrs)(&mut aa, &mut ab);
        let mut a = cand(&pe, &aa);
        let mut b = cand(&pe, &ab);
        (case.setup)(&mut a, &mut b);
        assert_eq!(
            compare(&a, &b, &cfg),
            (Ordering::Less, case.step),
            "{}: a must beat b",
            case.name
        );
        assert_eq!(
            compare(&b, &a, &cfg),
            (Ordering::Greater, case.step),
            "{}: symmetric",
            case.name
        );
        let sel = select(&[b, a], &cfg);
        assert_eq!(sel.order[0], 1, "{}: select picks a", case.name);
    }
}

#[test]
fn locally_originated_route_beats_learned_ones() {
    let pl = peer(0, PeerKind::Local, 65000);
    let pe = peer(1, PeerKind::Ebgp, 1);
    let al = attrs(&[]).with_as_path(AsPath::default());
    let ae = attrs(&[1]);
    let cfg = DecisionConfig::default();
    assert_eq!(
        compare(&cand(&pl, &al), &cand(&pe, &ae), &cfg),
        (Ordering::Less, Step::LocallyOriginated)
    );
}

#[test]
fn deterministic_med_is_independent_of_arrival_order() {
    // Classic MED intransitivity: A(AS1, MED 10) beats B(AS1, MED 20) on MED; C(AS2) beats A on router-id
    // but loses to B; pairwise comparison in arrival order can pick any of them.
    let p1 = peer(3, PeerKind::Ebgp, 1);
    let p2 = peer(1, PeerKind::Ebgp, 2);
    let p3 = peer(2, PeerKind::Ebgp, 1);
    let a = attrs(&[1, 5]).with_med(Some(10));
    let b = attrs(&[1, 5]).with_med(Some(20));
    let c = attrs(&[2, 5]);
    let cfg = DecisionConfig::default();
    let ca = cand(&p1, &a);
    let cb = cand(&p3, &b);
    let cc = cand(&p2, &c);
    let perms: [[Candidate<'_>; 3]; 6] = [
        [ca, cb, cc],
        [ca, cc, cb],
        [cb, ca, cc],
        [cb, cc, ca],
        [cc, ca, cb],
        [cc, cb, ca],
    ];
    let winners: Vec<String> = perms
        .iter()
        .map(|p| {
            let s = select(p, &cfg);
            format!(
                "{}/{:?}",
                p[s.order[0]].peer.name,
                p[s.order[0]].attrs.med()
            )
        })
        .collect();
    assert!(
        winners.iter().all(|w| w == &winners[0]),
        "winners differ by arrival order: {winners:?}"
    );
}

fn rib_with_peers(n: u8) -> (Rib, Vec<PeerId>) {
    let mut rib = Rib::default();
    let ids = (1..=n)
        .map(|i| {
            rib.add_peer(peer(i, PeerKind::Ebgp, 64500 + i as u32))
                .expect("a free peer slot")
        })
        .collect();
    (rib, ids)
}

fn nh(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, i))
}

fn path_attrs(asn: u32, nexthop: u8) -> Attrs {
    Attrs::default()
        .with_as_path(AsPath::sequence(vec![asn, 15169]))
        .with_next_hop(Some(nh(nexthop)))
}

#[test]
fn equal_paths_from_two_ebgp_peers_form_an_ecmp_set_only_with_as_path_relax() {
    let mut rib = Rib::default();
    let a = rib
        .add_peer(peer(1, PeerKind::Ebgp, 64501))
        .expect("a free peer slot");
    let b = rib
        .add_peer(peer(2, PeerKind::Ebgp, 64502))
        .expect("a free peer slot");
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    let x = rib.intern(path_attrs(64501, 1));
    let y = rib.intern(path_attrs(64502, 2));
    rib.announce(a, p, 0, x.clone());
    rib.announce(b, p, 0, y.clone());
    let d = rib.take_fib_deltas();
    assert_eq!(d.len(), 2);
    match &d[1].entry {
        Some(FibEntry::Forward(set)) => {
            assert_eq!(
                set.iter().map(|n| n.addr).collect::<Vec<_>>(),
                vec![nh(1)],
                "second path with a different AS path is not multipath"
            );
            assert_eq!(
                set.backup().iter().map(|n| n.addr).collect::<Vec<_>>(),
                vec![nh(2)],
                "it is the backup"
            );
        }
        other => panic!("expected a forward entry, got {other:?}"),
    }

    let mut cfg = RibConfig::default();
    cfg.ipv4.as_path_relax = true;
    let mut rib = Rib::new(cfg);
    let a = rib
        .add_peer(peer(1, PeerKind::Ebgp, 64501))
        .expect("a free peer slot");
    let b = rib
        .add_peer(peer(2, PeerKind::Ebgp, 64502))
        .expect("a free peer slot");
    let x = rib.intern(path_attrs(64501, 1));
    let y = rib.intern(path_attrs(64502, 2));
    rib.announce(a, p, 0, x);
    rib.announce(b, p, 0, y);
    let d = rib.take_fib_deltas();
    assert_eq!(d.len(), 2);
    match &d[1].entry {
        Some(FibEntry::Forward(set)) => {
            assert_eq!(
                &set[..],
                &[
                    FibNextHop {
                        addr: nh(1),
                        weight: 1
                    },
                    FibNextHop {
                        addr: nh(2),
                        weight: 1
                    }
                ]
            )
        }
        other => panic!("expected ECMP over two next-hops, got {other:?}"),
    }
}

#[test]
fn link_bandwidth_gives_ucmp_weights() {
    let mut cfg = RibConfig::default();
    cfg.ipv4.as_path_relax = true;
    let mut rib = Rib::new(cfg);
    let a = rib
        .add_peer(peer(1, PeerKind::Ebgp, 64501))
        .expect("a free peer slot");
    let b = rib
        .add_peer(peer(2, PeerKind::Ebgp, 64502))
        .expect("a free peer slot");
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    let lb = |bw: f32| {
        let b = bw.to_be_bytes();
        [0x40, 0x04, 0, 1, b[0], b[1], b[2], b[3]]
    };
    let x = rib.intern(path_attrs(64501, 1).with_ext_communities([lb(1.25e9)]));
    let y = rib.intern(path_attrs(64502, 2).with_ext_communities([lb(3.75e9)]));
    rib.announce(a, p, 0, x);
    rib.announce(b, p, 0, y);
    let d = rib.take_fib_deltas();
    let Some(FibEntry::Forward(set)) = &d.last().unwrap().entry else {
        panic!("no forward entry")
    };
    assert_eq!(
        &set[..],
        &[
            FibNextHop {
                addr: nh(1),
                weight: 1
            },
            FibNextHop {
                addr: nh(2),
                weight: 3
            }
        ]
    );
}

#[test]
fn attribute_change_that_keeps_forwarding_emits_no_fib_delta() {
    let (mut rib, ids) = rib_with_peers(1);
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    let x = rib.intern(path_attrs(64501, 1));
    rib.announce(ids[0], p, 0, x);
    assert_eq!(rib.take_fib_deltas().len(), 1);
    let y = rib.intern(path_attrs(64501, 1).with_med(Some(5)).with_communities([1]));
    rib.announce(ids[0], p, 0, y);
    assert!(
        rib.take_fib_deltas().is_empty(),
        "same next-hop: the FIB is not touched"
    );
    assert_eq!(rib.attr_sets(), 1, "the replaced attribute set was freed");
}

#[test]
fn unreachable_next_hop_reselects_only_prefixes_using_it() {
    let (mut rib, ids) = rib_with_peers(2);
    let x = rib.intern(path_attrs(64501, 1));
    let y = rib.intern(path_attrs(64502, 2));
    let shared: IpNet = "198.51.100.0/24".parse().unwrap();
    let only_b: IpNet = "192.0.2.0/24".parse().unwrap();
    rib.announce(ids[0], shared, 0, x);
    rib.announce(ids[1], shared, 0, y.clone());
    rib.announce(ids[1], only_b, 0, y);
    rib.take_fib_deltas();
    let before = rib.stats().selections;
    rib.set_nexthop(
        nh(1),
        NhState {
            reachable: false,
            igp_cost: 0,
        },
    );
    let d = rib.take_fib_deltas();
    assert_eq!(
        rib.stats().selections - before,
        1,
        "only the prefix with a path via 203.0.113.1 re-ran"
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].prefix, shared);
    assert!(matches!(&d[0].entry, Some(FibEntry::Forward(s)) if s[0].addr == nh(2)));
    rib.set_nexthop(
        nh(2),
        NhState {
            reachable: false,
            igp_cost: 0,
        },
    );
    let d = rib.take_fib_deltas();
    assert_eq!(d.len(), 2);
    assert!(
        d.iter().all(|d| d.entry.is_none()),
        "no usable path: prefixes leave the FIB"
    );
}

#[test]
fn graceful_restart_keeps_stale_paths_until_end_of_rib_rfc4724_4_2() {
    let (mut rib, ids) = rib_with_peers(1);
    let x = rib.intern(path_attrs(64501, 1));
    let kept: IpNet = "198.51.100.0/24".parse().unwrap();
    let gone: IpNet = "192.0.2.0/24".parse().unwrap();
    rib.announce(ids[0], kept, 0, x.clone());
    rib.announce(ids[0], gone, 0, x.clone());
    rib.take_fib_deltas();
    rib.peer_down(ids[0], true);
    assert!(
        rib.take_fib_deltas().is_empty(),
        "stale paths keep forwarding"
    );
    rib.announce(ids[0], kept, 0, x);
    rib.flush_stale(ids[0]);
    let d = rib.take_fib_deltas();
    assert_eq!(
        d,
        vec![FibDelta {
            prefix: gone,
            entry: None
        }]
    );
    assert_eq!(rib.ipv4().len(), 1);
}

#[test]
fn static_blackhole_route_is_a_blackhole_fib_entry() {
    let mut rib = Rib::default();
    let local = rib
        .add_peer(peer(0, PeerKind::Local, 65000))
        .expect("a free peer slot");
    let a = rib.intern(Attrs::default());
    let p: IpNet = "2001:db8::/32".parse().unwrap();
    rib.announce(local, p, 0, a);
    assert_eq!(
        rib.take_fib_deltas(),
        vec![FibDelta {
            prefix: p,
            entry: Some(FibEntry::Blackhole)
        }]
    );
}

#[test]
fn explain_says_why_the_best_won() {
    let (mut rib, ids) = rib_with_peers(2);
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    let x = rib.intern(path_attrs(64501, 1).with_local_pref(Some(200)));
    let y = rib.intern(path_attrs(64502, 2));
    rib.announce(ids[1], p, 0, y);
    rib.announce(ids[0], p, 0, x);
    let e = rib.explain(p);
    assert_eq!(e.len(), 2);
    assert!(e[0].best && e[0].peer == "p1");
    assert_eq!(e[1].lost_at, Some(Step::LocalPref));
    assert_eq!(e[1].reason.as_deref(), Some("best won: higher local-pref"));
}

#[test]
fn end_of_rib_for_one_family_flushes_only_that_familys_stale_paths_rfc4724_4_2() {
    let (mut rib, ids) = rib_with_peers(1);
    let v4: IpNet = "198.51.100.0/24".parse().unwrap();
    let v6: IpNet = "2001:db8:1::/48".parse().unwrap();
    let a4 = rib.intern(path_attrs(64501, 1));
    let a6 = rib.intern(path_attrs(64501, 1).with_next_hop(Some("2001:db8::1".parse().unwrap())));
    rib.announce(ids[0], v4, 0, a4);
    rib.announce(ids[0], v6, 0, a6);
    rib.take_fib_deltas();
    rib.peer_down(ids[0], true);
    rib.flush_stale_family(ids[0], true);
    assert_eq!(
        rib.take_fib_deltas(),
        vec![FibDelta {
            prefix: v4,
            entry: None
        }]
    );
    assert_eq!(
        rib.ipv6().len(),
        1,
        "the IPv6 stale path waits for its own End-of-RIB"
    );
    rib.flush_stale_family(ids[0], false);
    assert!(rib.ipv6().is_empty());
    assert_eq!(rib.attr_sets(), 0);
}

fn addrs(s: &[FibNextHop]) -> Vec<IpAddr> {
    s.iter().map(|n| n.addr).collect()
}

fn fwd_of(d: &FibDelta) -> (Vec<IpAddr>, Vec<IpAddr>) {
    match &d.entry {
        Some(FibEntry::Forward(set)) => (addrs(set), addrs(set.backup())),
        other => panic!("expected a forward entry, got {other:?}"),
    }
}

#[test]
fn backup_is_the_best_path_not_through_a_primary_next_hop_and_reaches_the_fib_pic_edge() {
    let mut rib = Rib::default();
    let a = rib
        .add_peer(peer(1, PeerKind::Ebgp, 64501))
        .expect("a free peer slot");
    let b = rib
        .add_peer(peer(2, PeerKind::Ebgp, 64502))
        .expect("a free peer slot");
    let c = rib
        .add_peer(peer(3, PeerKind::Ebgp, 64503))
        .expect("a free peer slot");
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    // Best: a (shortest path) via 1. Then b via 1 too (useless as a backup), then c via 3.
    let best = rib.intern(path_attrs(64501, 1));
    let same_nh =
        rib.intern(path_attrs(64502, 1).with_as_path(AsPath::sequence(vec![64502, 64502, 15169])));
    let other = rib.intern(
        path_attrs(64503, 3).with_as_path(AsPath::sequence(vec![64503, 64503, 64503, 15169])),
    );
    rib.announce(a, p, 0, best);
    rib.announce(b, p, 0, same_nh);
    let d = rib.take_fib_deltas();
    assert_eq!(
        d.len(),
        1,
        "a path through the primary's next-hop is no backup"
    );
    assert_eq!(fwd_of(&d[0]), (vec![nh(1)], vec![]));
    rib.announce(c, p, 0, other);
    let d = rib.take_fib_deltas();
    assert_eq!(d.len(), 1, "a backup-only change is a FIB change");
    assert_eq!(fwd_of(&d[0]), (vec![nh(1)], vec![nh(3)]));
    assert_eq!(
        rib.fib(),
        vec![(p, d[0].entry.clone().unwrap())],
        "the full FIB carries the backup too"
    );
    assert_eq!(rib.fib_entry_of(p), d[0].entry);
    // An unreachable next-hop is no backup.
    rib.set_nexthop(
        nh(3),
        NhState {
            reachable: false,
            igp_cost: 0,
        },
    );
    let d = rib.take_fib_deltas();
    assert_eq!(fwd_of(&d[0]), (vec![nh(1)], vec![]));
    // The backup is reachable again, then the primary dies: the backup takes over.
    rib.set_nexthop(
        nh(3),
        NhState {
            reachable: true,
            igp_cost: 0,
        },
    );
    rib.take_fib_deltas();
    rib.set_nexthop(
        nh(1),
        NhState {
            reachable: false,
            igp_cost: 0,
        },
    );
    let d = rib.take_fib_deltas();
    assert_eq!(
        fwd_of(&d[0]),
        (vec![nh(3)], vec![]),
        "the backup becomes the primary"
    );
}

#[test]
fn a_backup_has_its_own_multipath_set() {
    let mut cfg = RibConfig::default();
    cfg.ipv4.as_path_relax = true;
    let mut rib = Rib::new(cfg);
    let ids: Vec<_> = (1..=3)
        .map(|i| {
            rib.add_peer(peer(i, PeerKind::Ebgp, 64500 + u32::from(i)))
                .expect("a free peer slot")
        })
        .collect();
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    let best = rib.intern(path_attrs(64501, 1));
    rib.announce(ids[0], p, 0, best);
    for (i, asn) in [(1usize, 64502u32), (2, 64503)] {
        let a = rib.intern(
            path_attrs(asn, i as u8 + 1).with_as_path(AsPath::sequence(vec![asn, asn, 15169])),
        );
        rib.announce(ids[i], p, 0, a);
    }
    let d = rib.take_fib_deltas();
    assert_eq!(fwd_of(d.last().unwrap()), (vec![nh(1)], vec![nh(2), nh(3)]));
}

#[test]
fn without_backup_paths_only_primary_changes_are_fib_changes() {
    let cfg = RibConfig {
        backup_paths: false,
        ..RibConfig::default()
    };
    let mut rib = Rib::new(cfg);
    let a = rib
        .add_peer(peer(1, PeerKind::Ebgp, 64501))
        .expect("a free peer slot");
    let b = rib
        .add_peer(peer(2, PeerKind::Ebgp, 64502))
        .expect("a free peer slot");
    let p: IpNet = "198.51.100.0/24".parse().unwrap();
    let x = rib.intern(path_attrs(64501, 1));
    let y =
        rib.intern(path_attrs(64502, 2).with_as_path(AsPath::sequence(vec![64502, 64502, 15169])));
    rib.announce(a, p, 0, x);
    rib.announce(b, p, 0, y);
    let d = rib.take_fib_deltas();
    assert_eq!(d.len(), 1);
    assert_eq!(fwd_of(&d[0]), (vec![nh(1)], vec![]));
}

#[test]
fn next_hops_only_from_a_peer_are_counted_per_peer_without_a_walk() {
    let (mut rib, ids) = rib_with_peers(3);
    let p1: IpNet = "198.51.100.0/24".parse().unwrap();
    let p2: IpNet = "192.0.2.0/24".parse().unwrap();
    let p6: IpNet = "2001:db8::/32".parse().unwrap();
    // Peer 0 uses next-hops 1 and 2; peer 1 uses 2; peer 2 uses 4 (also for IPv6) and 5 (IPv6 only).
    let a1 = rib.intern(path_attrs(64501, 1));
    let a2 = rib.intern(path_attrs(64501, 2));
    let b2 = rib.intern(path_attrs(64502, 2));
    let c4 = rib.intern(path_attrs(64503, 4));
    let c5 = rib.intern(path_attrs(64503, 5));
    rib.announce(ids[0], p1, 0, a1.clone());
    rib.announce(ids[0], p2, 0, a2);
    rib.announce(ids[1], p2, 0, b2.clone());
    rib.announce(ids[2], p1, 0, c4.clone());
    rib.announce(ids[2], p6, 0, c4);
    rib.announce(ids[2], p6, 1, c5);
    assert_eq!(rib.nexthops_only_from(ids[0]), vec![nh(1)]);
    assert_eq!(rib.nexthops_only_from(ids[1]), Vec::<IpAddr>::new());
    assert_eq!(rib.nexthops_only_from(ids[2]), vec![nh(4), nh(5)]);
    // Peer 1 moves its path to next-hop 1: next-hop 2 is now peer 0's alone, 1 is shared.
    let b1 = rib.intern(path_attrs(64502, 1));
    rib.announce(ids[1], p2, 0, b1);
    assert_eq!(rib.nexthops_only_from(ids[0]), vec![nh(2)]);
    assert_eq!(rib.nexthops_only_from(ids[1]), Vec::<IpAddr>::new());
    rib.peer_down(ids[0], false);
    assert_eq!(rib.nexthops_only_from(ids[1]), vec![nh(1)]);
    assert_eq!(rib.nexthops_only_from(ids[0]), Vec::<IpAddr>::new());
    rib.remove_peer(ids[2]);
    assert_eq!(rib.nexthops(), vec![nh(1)]);
}

#[test]
fn the_peer_table_full_is_an_error_naming_the_peer_and_a_freed_slot_is_reused() {
    let mut rib = Rib::default();
    for i in 0..MAX_PEERS {
        rib.add_peer(peer((i % 250) as u8 + 1, PeerKind::Ebgp, 64500))
            .expect("a free peer slot");
    }
    let mut extra = peer(1, PeerKind::Ebgp, 64501);
    extra.name = "one-too-many".into();
    let e = rib.add_peer(extra.clone()).expect_err("no slot left");
    assert_eq!(e.name, "one-too-many");
    assert!(e.to_string().contains("at most 65536"), "{e}");
    rib.remove_peer(7);
    assert_eq!(rib.add_peer(extra), Ok(7));
}

/// A second peer's paths go into blocks with room for four paths (one allocation per prefix
/// while peers 2-4 arrive), and `Rib::shrink` (the daemon's post-load trim) makes them exact
/// without changing any entry; the delta and best-change vectors start each batch at the last
/// batch's size (bounded) and are given back too.
#[test]
fn shrink_makes_path_blocks_exact_and_gives_back_the_batch_vectors() {
    let (mut rib, ids) = rib_with_peers(2);
    rib.set_track_best(true);
    let prefixes: Vec<IpNet> = (0..50u8)
        .map(|i| format!("10.{i}.0.0/16").parse().expect("a prefix"))
        .collect();
    for (k, &id) in ids.iter().enumerate() {
        let a = rib.intern(path_attrs(64501 + k as u32, k as u8 + 1));
        for &p in &prefixes {
            rib.announce(id, p, 0, a.clone());
        }
    }
    let blocks = |rib: &Rib| rib.ipv4().memory().path_slices;
    assert_eq!(blocks(&rib), 50 * 4 * 12, "room for 4 paths of 12 B");
    let deltas = rib.take_fib_deltas();
    let best = rib.take_best_changes();
    assert_eq!(
        (deltas.len(), best.len()),
        (100, 50),
        "a primary, then a backup per prefix"
    );
    assert!(rib.deltas.capacity() >= 100 && rib.best_changed.capacity() >= 50);
    let fib = rib.fib();
    let entries: Vec<_> = rib
        .ipv4()
        .iter()
        .map(|(k, e)| (*k, e.iter().map(|p| (p.peer, p.flags)).collect::<Vec<_>>()))
        .collect();
    let released = rib.shrink();
    assert_eq!(blocks(&rib), 50 * 2 * 12, "exact");
    assert!(released >= 50 * 2 * 12 + 100 * std::mem::size_of::<FibDelta>());
    assert_eq!((rib.deltas.capacity(), rib.best_changed.capacity()), (0, 0));
    assert_eq!(rib.fib(), fib);
    let after: Vec<_> = rib
        .ipv4()
        .iter()
        .map(|(k, e)| (*k, e.iter().map(|p| (p.peer, p.flags)).collect::<Vec<_>>()))
        .collect();
    assert_eq!(after, entries);
    // A third peer's path grows a shrunk block with room again.
    let id = rib
        .add_peer(peer(3, PeerKind::Ebgp, 64503))
        .expect("a free peer slot");
    let a = rib.intern(path_attrs(64503, 3));
    rib.announce(id, prefixes[0], 0, a);
    assert_eq!(blocks(&rib), 49 * 2 * 12 + 4 * 12);
}

/// A prefix, its paths as (peer, path id, flags, rank), and its multipath count.
type EntryView = (IpNet, Vec<(PeerId, u32, u8, u8)>, usize);

/// Each prefix's [`EntryView`].
fn entries(rib: &Rib) -> Vec<EntryView> {
    let v4 = rib.ipv4().iter().map(|(k, e)| (IpNet::V4(*k), e));
    let v6 = rib.ipv6().iter().map(|(k, e)| (IpNet::V6(*k), e));
    v4.chain(v6)
        .map(|(k, e)| {
            let paths = e
                .iter()
                .map(|p| (p.peer, p.path_id, p.flags, p.rank))
                .collect();
            (k, paths, e.multipath())
        })
        .collect()
}

/// `announce_read` uses what was read of a set for its UPDATE only for that set, family and peer,
/// and only until the next-hop states or the peers change; otherwise it reads the set again. Two
/// RIBs get the same announcements, one through `announce`, the other through `announce_read`
/// with a reading that is right, of another set, family or peer, or taken before a change; they
/// end with the same paths, flags, multipath sets and forwarding. Each wrong reading, used, would
/// place its path behind where it wins (a reading that has it win is not trusted: the entry is
/// selected again): A (router id .9) and B (.2) are eBGP peers, C an iBGP one; IPv6 selection
/// takes a missing LOCAL_PREF as 50.
#[test]
fn a_reading_of_another_set_family_or_peer_or_from_before_a_change_is_read_again() {
    let info = |n: u8, kind: PeerKind, asn: u32, rid: u8| PeerInfo {
        router_id: Ipv4Addr::new(10, 0, 0, rid),
        ..peer(n, kind, asn)
    };
    let new_rib = || {
        let mut cfg = RibConfig::default();
        cfg.ipv6.default_local_pref = 50;
        let mut rib = Rib::new(cfg);
        let ids: Vec<PeerId> = [
            info(1, PeerKind::Ebgp, 64501, 9),
            info(2, PeerKind::Ebgp, 64502, 2),
            info(3, PeerKind::Ibgp, 65000, 3),
        ]
        .into_iter()
        .map(|p| rib.add_peer(p).expect("a free peer slot"))
        .collect();
        rib.set_nexthop(
            nh(4),
            NhState {
                reachable: false,
                igp_cost: 0,
            },
        );
        let sets = [
            rib.intern(path_attrs(64501, 1)),
            rib.intern(path_attrs(64502, 2)),
            rib.intern(path_attrs(64502, 4)),
            rib.intern(path_attrs(64501, 1).with_next_hop(Some("2001:db8::1".parse().unwrap()))),
        ];
        (rib, ids, sets)
    };
    let (mut plain, ids, sp) = new_rib();
    let (mut read, _, sr) = new_rib();
    #[derive(Clone, Copy, Debug)]
    enum Reading {
        Right,
        OtherSet,
        OtherFamily,
        /// Read for C.
        OtherPeer,
        /// Read before the set's next-hop comes up.
        NhUp,
        /// Read before A's router id becomes .1.
        PeerChanged,
    }
    let (a, b) = (0, 1);
    let p: Vec<IpNet> = (0..4)
        .map(|i| format!("198.51.{i}.0/24").parse().unwrap())
        .collect();
    let p6: IpNet = "2001:db8:1::/48".parse().unwrap();
    // (peer, prefix, set, reading, the prefix's best peer after), in order.
    let ops = [
        // Read from B's set: the entry would forward to B's next-hop.
        (a, p[0], 0, Reading::OtherSet, a),
        // Read for iBGP C: B would go behind A instead of winning on router id.
        (b, p[0], 1, Reading::OtherPeer, b),
        (a, p[1], 0, Reading::Right, a),
        // Read for IPv6 (LOCAL_PREF 50): B would go behind A instead of winning.
        (b, p[1], 1, Reading::OtherFamily, b),
        (a, p[2], 0, Reading::Right, a),
        // Read while 203.0.113.4 was unreachable: B would go behind A instead of winning.
        (b, p[2], 2, Reading::NhUp, b),
        (a, p6, 3, Reading::Right, a),
        (b, p6, 3, Reading::OtherPeer, b),
        (b, p[3], 1, Reading::Right, b),
        // Read while A's router id was .9: A would go behind B instead of winning.
        (a, p[3], 0, Reading::PeerChanged, a),
    ];
    for (n, &(who, prefix, set, how, best)) in ops.iter().enumerate() {
        let (peer, v6) = (ids[who], prefix.addr().is_ipv6());
        let set_r = &sr[set];
        let reading = match how {
            Reading::Right | Reading::NhUp | Reading::PeerChanged => {
                read.read_path(peer, set_r, v6)
            }
            Reading::OtherSet => read.read_path(peer, &sr[1], v6),
            Reading::OtherFamily => read.read_path(peer, set_r, !v6),
            Reading::OtherPeer => read.read_path(ids[2], set_r, v6),
        };
        for rib in [&mut plain, &mut read] {
            match how {
                Reading::NhUp => rib.set_nexthop(
                    nh(4),
                    NhState {
                        reachable: true,
                        igp_cost: 0,
                    },
                ),
                Reading::PeerChanged => rib.set_peer_info(peer, info(1, PeerKind::Ebgp, 64501, 1)),
                _ => {}
            }
        }
        plain.announce(peer, prefix, 0, sp[set].clone());
        read.announce_read(peer, prefix, 0, set_r.clone(), &reading);
        assert_eq!(entries(&read), entries(&plain), "after {:?}", ops[n]);
        let (_, paths, _) = entries(&plain)
            .into_iter()
            .find(|(k, _, _)| *k == prefix)
            .expect("the prefix has paths");
        assert_eq!(paths[0].0, ids[best], "best after {:?}", ops[n]);
        assert_eq!(
            read.take_fib_deltas(),
            plain.take_fib_deltas(),
            "after {:?}",
            ops[n]
        );
    }
    assert_eq!(read.fib(), plain.fib());
    for (rib, sets) in [(&mut plain, sp), (&mut read, sr)] {
        for s in sets {
            rib.release(s);
        }
    }
}

/// A session coming up tells the RIB the peer's router id ([`Rib::set_peer_info`]). The peer's
/// prefixes are selected again only when something selection reads of the peer changed and the
/// peer has paths; a change that matters still reorders them.
#[test]
fn peer_info_reselects_only_a_change_selection_reads_of_a_peer_with_paths() {
    let mut rib = Rib::new(RibConfig::default());
    let a = rib.add_peer(peer(2, PeerKind::Ebgp, 64501)).unwrap();
    let b = rib.add_peer(peer(3, PeerKind::Ebgp, 64502)).unwrap();
    let p: Vec<IpNet> = (0..3)
        .map(|i| format!("198.51.{i}.0/24").parse().unwrap())
        .collect();
    // A and B tie up to the router id, which A (10.0.0.2) wins.
    for &x in &p {
        let s = rib.intern(attrs(&[64501, 15169]));
        rib.announce(a, x, 0, s);
        let s = rib.intern(attrs(&[64502, 15169]));
        rib.announce(b, x, 0, s);
    }
    let best = |rib: &Rib, x: IpNet| rib.explain(x).into_iter().find(|c| c.best).map(|c| c.peer);
    assert_eq!(best(&rib, p[0]).as_deref(), Some("p2"));
    let _ = rib.take_fib_deltas();
    let runs = rib.stats().selections;

    // Only the name changes: nothing is selected again.
    rib.set_peer_info(
        a,
        PeerInfo {
            name: "renamed".into(),
            ..peer(2, PeerKind::Ebgp, 64501)
        },
    );
    assert_eq!(rib.peer(a).unwrap().name, "renamed");
    assert_eq!(rib.stats().selections, runs);

    // A peer without paths learns its router id (10.0.0.1): nothing is selected again, and its
    // paths are then selected with it (it beats A on the router id).
    let c = rib.add_peer(peer(9, PeerKind::Ebgp, 64503)).unwrap();
    rib.set_peer_info(
        c,
        PeerInfo {
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            ..peer(9, PeerKind::Ebgp, 64503)
        },
    );
    assert_eq!(rib.stats().selections, runs);
    assert!(rib.take_fib_deltas().is_empty());
    let s = rib.intern(attrs(&[64503, 15169]));
    rib.announce(c, p[2], 0, s);
    assert_eq!(best(&rib, p[2]).as_deref(), Some("p9"));
    let runs = rib.stats().selections;

    // A's router id becomes 10.0.0.4: A's three prefixes are selected again, and B wins the two
    // that C is not in.
    rib.set_peer_info(
        a,
        PeerInfo {
            router_id: Ipv4Addr::new(10, 0, 0, 4),
            ..peer(2, PeerKind::Ebgp, 64501)
        },
    );
    assert_eq!(rib.stats().selections, runs + 3);
    assert_eq!(best(&rib, p[0]).as_deref(), Some("p3"));
    assert_eq!(best(&rib, p[1]).as_deref(), Some("p3"));
    assert_eq!(best(&rib, p[2]).as_deref(), Some("p9"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// The per-peer path counts kept as paths come and go ([`Rib::peer_paths`]) equal the paths
    /// found in the tables, per family, through announcements, replacements, withdrawals,
    /// graceful-restart staleness and its flushes, LLGR and a peer's removal and return.
    #[test]
    fn kept_peer_path_counts_equal_the_tables(
        ops in proptest::collection::vec((0..7u8, 0..3usize, 0..6u8, 0..2u32, 0..3u32), 1..40),
    ) {
        let mut rib = Rib::new(RibConfig::default());
        let mut ids: Vec<PeerId> = (0..3u8)
            .map(|i| rib.add_peer(peer(i + 1, PeerKind::Ebgp, 64501 + u32::from(i))).unwrap())
            .collect();
        for (n, &(op, who, x, path_id, set)) in ops.iter().enumerate() {
            let id = ids[who];
            // Prefixes 0-2 are IPv4, 3-5 IPv6.
            let prefix: IpNet = if x < 3 {
                format!("198.51.{x}.0/24").parse().unwrap()
            } else {
                format!("2001:db8:{x}::/48").parse().unwrap()
            };
            match op {
                0 | 1 => {
                    let mut s = attrs(&[64501 + set, 15169]);
                    if set == 2 {
                        // Some sets carry NO_LLGR, which LLGR removes.
                        s = s.with_communities(vec![attrs::community::NO_LLGR]);
                    }
                    let s = rib.intern(s);
                    rib.announce(id, prefix, path_id, s);
                }
                2 => {
                    rib.withdraw(id, prefix, path_id);
                }
                3 => rib.peer_down(id, set != 0),
                4 => match set {
                    0 => rib.flush_stale(id),
                    s => rib.flush_stale_family(id, s == 1),
                },
                5 => rib.peer_llgr_stale(id),
                _ => {
                    let info = rib.peer(id).unwrap().clone();
                    rib.remove_peer(id);
                    ids[who] = rib.add_peer(info).unwrap();
                }
            }
            let _ = rib.take_fib_deltas();
            let mut total = [0, 0];
            for &id in &ids {
                let kept = rib.peer_paths(id);
                proptest::prop_assert_eq!(kept, rib.peer_paths_walked(id), "peer {} after op {}", id, n);
                total[0] += kept[0] as usize;
                total[1] += kept[1] as usize;
            }
            proptest::prop_assert_eq!(total, rib.path_count(), "after op {}", n);
        }
    }
}
