//! The RIB's cheap paths for announcements against the full computation they skip: a path
//! re-announced with the same attribute set by the same peer must leave the RIB exactly as
//! withdrawing and announcing it again would (order, best, multipath set, forwarding), under every
//! decision option, with the FIB delta stream still reproducing the forwarding table.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::attrs::{AsPath, Attrs};
use super::decision::{DecisionConfig, PeerInfo, PeerKind};
use super::*;

fn rib_with(cfg: DecisionConfig) -> (Rib, Vec<PeerId>) {
    let mut rib = Rib::new(RibConfig {
        ipv4: cfg.clone(),
        ipv6: cfg,
        ..RibConfig::default()
    });
    let peers = (0..4u8)
        .map(|i| {
            rib.add_peer(PeerInfo {
                name: format!("p{i}"),
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, i + 1)),
                // Two pairs of equal router ids, so the oldest-path step and arrival order decide.
                router_id: Ipv4Addr::new(10, 0, 0, i / 2),
                remote_as: if i < 3 {
                    64500 + u32::from(i % 2)
                } else {
                    65000
                },
                local_as: 65000,
                kind: if i < 3 {
                    PeerKind::Ebgp
                } else {
                    PeerKind::Ibgp
                },
                confed: false,
            })
            .expect("a free peer slot")
        })
        .collect();
    (rib, peers)
}

fn pool() -> Vec<Attrs> {
    (0..6u32)
        .map(|i| {
            Attrs::default()
                .with_as_path(AsPath::sequence(vec![64500 + i % 2, 15169]))
                .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(
                    203,
                    0,
                    113,
                    (i % 3) as u8 + 1,
                ))))
                .with_med((i % 3 != 0).then_some(i * 10 % 30))
        })
        .collect()
}

fn prefix(i: u8) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::new(10, i, 0, 0)), 16).unwrap()
}

/// One candidate as the two RIBs must agree on it: peer, path id, flags, its entry's multipath
/// count, its attribute set, best, in the multipath set.
type Row = (PeerId, u32, u8, usize, Attrs, bool, bool);

/// Every prefix's candidates, best first.
fn state(rib: &Rib) -> Vec<(IpNet, Vec<Row>)> {
    rib.ipv4()
        .iter()
        .map(|(k, e)| {
            let explained = rib.explain(IpNet::V4(*k));
            let v = e
                .iter()
                .zip(explained)
                .map(|(p, x)| {
                    (
                        p.peer,
                        p.path_id,
                        p.flags,
                        e.multipath(),
                        x.attrs,
                        x.best,
                        x.multipath,
                    )
                })
                .collect();
            (IpNet::V4(*k), v)
        })
        .collect()
}

fn drain(rib: &mut Rib, model: &mut BTreeMap<IpNet, FibEntry>) {
    for d in rib.take_fib_deltas() {
        match d.entry {
            Some(e) => model.insert(d.prefix, e),
            None => model.remove(&d.prefix),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Announcements with repeats (the same set again, or another) and next-hops going down in
    /// between: announcing over an existing path equals withdrawing it and announcing it anew.
    #[test]
    fn reannouncing_a_path_equals_withdrawing_and_announcing_it(
        anns in prop::collection::vec((0..4usize, 0..3u8, 0..6usize), 1..30),
        down in prop::collection::vec((0..30usize, 1..4u8), 0..3),
        opts in prop::collection::vec(any::<bool>(), 4),
    ) {
        let cfg = DecisionConfig {
            deterministic_med: opts[0],
            always_compare_med: opts[1],
            prefer_oldest_ebgp: opts[2],
            as_path_relax: opts[3],
            ..DecisionConfig::default()
        };
        let pool = pool();
        let (mut a, pa) = rib_with(cfg.clone());
        let (mut b, pb) = rib_with(cfg);
        let mut model = BTreeMap::new();
        for (i, &(peer, pfx, set)) in anns.iter().enumerate() {
            for &(_, nh) in down.iter().filter(|(at, _)| *at == i) {
                let st = NhState { reachable: false, igp_cost: 0 };
                a.set_nexthop(IpAddr::V4(Ipv4Addr::new(203, 0, 113, nh)), st);
                b.set_nexthop(IpAddr::V4(Ipv4Addr::new(203, 0, 113, nh)), st);
            }
            let x = a.intern(pool[set].clone());
            a.announce(pa[peer], prefix(pfx), 0, x);
            b.withdraw(pb[peer], prefix(pfx), 0);
            let y = b.intern(pool[set].clone());
            b.announce(pb[peer], prefix(pfx), 0, y);
            drain(&mut a, &mut model);
            let _ = b.take_fib_deltas();
            prop_assert_eq!(state(&a), state(&b), "after announcement {}", i);
            prop_assert_eq!(&model, &a.fib().into_iter().collect::<BTreeMap<_, _>>());
            prop_assert_eq!(a.fib(), b.fib());
            prop_assert_eq!(a.attr_sets(), b.attr_sets());
        }
    }
}

/// With the oldest-eBGP step on, the same set re-announced makes the path the newest, which can
/// hand the best to the other (now older) path: the cheap path must not apply.
#[test]
fn reannounced_same_set_becomes_newest_for_the_oldest_path_step_rfc5004() {
    let cfg = DecisionConfig {
        prefer_oldest_ebgp: true,
        ..DecisionConfig::default()
    };
    let (mut rib, p) = rib_with(cfg);
    // p0 and p1 have the same router id; p0 (lower address) would win without the oldest step.
    let set = Attrs::default()
        .with_as_path(AsPath::sequence(vec![64500, 15169]))
        .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))));
    let other = Attrs::default()
        .with_as_path(AsPath::sequence(vec![64501, 15169]))
        .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2))));
    let x = rib.intern(set.clone());
    rib.announce(p[0], prefix(1), 0, x);
    let y = rib.intern(other);
    rib.announce(p[1], prefix(1), 0, y);
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    assert_eq!(rib.ipv4().get(&k).unwrap().best().unwrap().peer, p[0]);
    let x = rib.intern(set);
    rib.announce(p[0], prefix(1), 0, x);
    let e = rib.ipv4().get(&k).unwrap();
    assert_eq!(e.best().unwrap().peer, p[1], "p1's path is the oldest now");
}

/// Peers of every kind for the added-path tests: eBGP in two neighbouring ASes (two of them with
/// one router id, so later steps decide), an iBGP peer, a confederation eBGP peer and a local
/// origin (static routes). The iBGP and confederation peers share an address and a router id, so
/// their paths can tie at every step (the order of a tie is arrival order).
fn rib_with_kinds(cfg: DecisionConfig, backups: bool) -> (Rib, Vec<PeerId>) {
    let mut rib = Rib::new(RibConfig {
        ipv4: cfg.clone(),
        ipv6: cfg,
        backup_paths: backups,
        ..RibConfig::default()
    });
    let kinds = [
        (PeerKind::Ebgp, 64500, false),
        (PeerKind::Ebgp, 64501, false),
        (PeerKind::Ebgp, 64500, false),
        (PeerKind::Ibgp, 65000, false),
        (PeerKind::Ebgp, 65100, true),
        (PeerKind::Local, 65000, false),
    ];
    let peers = kinds
        .iter()
        .enumerate()
        .map(|(i, &(kind, remote_as, confed))| {
            rib.add_peer(PeerInfo {
                name: format!("p{i}"),
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 - (i as u8).min(3))),
                router_id: Ipv4Addr::new(10, 0, 0, [0, 1, 1, 2, 2, 3][i]),
                remote_as,
                local_as: 65000,
                kind,
                confed,
            })
            .expect("a free peer slot")
        })
        .collect();
    (rib, peers)
}

/// Attribute sets that tie and differ at every step: neighbouring AS, AS-path length and
/// AS_SETs, ORIGIN, MED present or not, LOCAL_PREF, weight, next-hop (none: a blackhole for a
/// local origin), link bandwidth.
fn attrs_strategy() -> impl Strategy<Value = Attrs> {
    (
        (0..3u32, 1..3usize, prop::bool::weighted(0.15)),
        prop::option::of(prop_oneof![Just(0u32), Just(10), Just(20)]),
        prop::option::of(prop_oneof![Just(100u32), Just(200)]),
        (0..2u8, prop::bool::weighted(0.1), prop::bool::weighted(0.1)),
        (prop::option::of(1..5u8), prop::bool::weighted(0.15)),
    )
        .prop_map(
            |((first, len, set), med, lp, (origin, weight, llgr), (nh, bw))| {
                let mut asns = vec![64500 + first];
                asns.extend((1..len).map(|i| 15169 + i as u32));
                let as_path = if set {
                    AsPath::from_segments([(super::attrs::SegmentKind::Set, &asns[..])])
                } else {
                    AsPath::sequence(asns)
                };
                let mut a = Attrs::default()
                    .with_as_path(as_path)
                    .with_med(med)
                    .with_local_pref(lp)
                    .with_origin(
                        [super::attrs::Origin::Igp, super::attrs::Origin::Incomplete]
                            [origin as usize],
                    )
                    .with_weight(u32::from(weight))
                    .with_next_hop(nh.map(|n| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))));
                if llgr {
                    a.set_communities([super::attrs::community::NO_LLGR]);
                }
                if bw {
                    // Transitive link bandwidth (RFC 7153 type 0x40 0x04): AS 64500, 1000 bytes/s.
                    let mut c = [0x40, 0x04, 0xfb, 0xf4, 0, 0, 0, 0];
                    c[4..].copy_from_slice(&1000f32.to_be_bytes());
                    a.set_ext_communities(vec![c]);
                }
                a
            },
        )
}

fn config_strategy() -> impl Strategy<Value = (DecisionConfig, bool)> {
    (
        prop::collection::vec(any::<bool>(), 7),
        1..4usize,
        1..3usize,
    )
        .prop_map(|(b, ebgp, ibgp)| {
            (
                DecisionConfig {
                    ignore_as_path_len: b[0],
                    always_compare_med: b[1],
                    med_missing_as_worst: b[2],
                    deterministic_med: b[3],
                    prefer_oldest_ebgp: b[4],
                    as_path_relax: b[5],
                    max_paths_ebgp: ebgp,
                    max_paths_ibgp: ibgp,
                    ..DecisionConfig::default()
                },
                b[6],
            )
        })
}

#[derive(Debug, Clone)]
enum Op {
    Announce {
        peer: usize,
        prefix: u8,
        path_id: u32,
        set: usize,
    },
    Withdraw {
        peer: usize,
        prefix: u8,
        path_id: u32,
    },
    NextHop {
        nh: u8,
        reachable: bool,
        cost: u32,
    },
    /// Graceful restart: the session drops, the peer's paths become stale; then LLGR.
    Restart {
        peer: usize,
        llgr: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (0..6usize, 0..3u8, 0..2u32, 0..8usize)
            .prop_map(|(peer, prefix, path_id, set)| Op::Announce { peer, prefix, path_id, set }),
        6 => (0..6usize, 0..3u8, 0..2u32)
            .prop_map(|(peer, prefix, path_id)| Op::Withdraw { peer, prefix, path_id }),
        6 => (1..5u8, prop::bool::weighted(0.6), 0..3u32)
            .prop_map(|(nh, reachable, cost)| Op::NextHop { nh, reachable, cost }),
        1 => (0..6usize, any::<bool>()).prop_map(|(peer, llgr)| Op::Restart { peer, llgr }),
    ]
}

/// (peer, path id, flags) of an entry's paths in order, and its multipath count.
type Shape = (Vec<(PeerId, u32, u8)>, usize);

fn shape(e: &Paths) -> Shape {
    (
        e.iter().map(|p| (p.peer, p.path_id, p.flags)).collect(),
        e.multipath(),
    )
}

/// Which announcements a fast-path property checks: where the fast answer said "last" for the
/// path about to be added (the path carries the flags the RIB would give it), and whether it
/// joins the multipath set there.
type FastLast = fn(&Ctx<'_>, &Paths, &Path) -> Option<Added>;

/// Runs `ops` (each with whether an announced set's first AS is rewritten to the announcing
/// peer's remote AS, and a next-hop in 192.0.2.0/24 to the peer's address: the eBGP rule),
/// checking after every announcement that the entry is what full reselection
/// gives, and where `fast` said "last", that the others stayed as they were (with the multipath
/// count one more where it said the path joins the set); after every op, that the FIB delta
/// stream reproduces the forwarding table.
fn check_added_paths(
    (cfg, backups): (DecisionConfig, bool),
    sets: &[Attrs],
    ops: &[(Op, bool)],
    fast: FastLast,
) -> Result<(), TestCaseError> {
    let (mut rib, peers) = rib_with_kinds(cfg, backups);
    let mut model = BTreeMap::new();
    for (i, (op, own_as)) in ops.iter().enumerate() {
        match *op {
            Op::Announce {
                peer,
                prefix: x,
                path_id,
                set,
            } => {
                let mut attrs = sets[set].clone();
                let info = rib.peer(peers[peer]).expect("a peer").clone();
                if *own_as && info.kind != PeerKind::Local {
                    let mut segs: Vec<(super::attrs::SegmentKind, Vec<u32>)> = attrs
                        .as_path()
                        .segments()
                        .map(|g| (g.kind, g.asns.to_vec()))
                        .collect();
                    if let Some(first) = segs.first_mut().and_then(|g| g.1.first_mut()) {
                        *first = info.remote_as;
                    }
                    attrs.set_as_path(AsPath::from_segments(
                        segs.iter().map(|(k, v)| (*k, &v[..])),
                    ));
                    if let Some(IpAddr::V4(a)) = attrs.next_hop()
                        && a.octets()[..3] == [192, 0, 2]
                    {
                        attrs.set_next_hop(Some(info.addr));
                    }
                }
                let a = rib.intern(attrs);
                let mut path = Path::new(peers[peer], path_id, a.clone());
                let ctx = rib.ctx(&rib.cfg.ipv4);
                path.flags |= ctx.stored_flags(path.peer, &path.attrs, path.attrs.next_hop());
                let k = match prefix(x) {
                    IpNet::V4(n) => n,
                    IpNet::V6(_) => unreachable!(),
                };
                let is_fast = rib.ipv4().get(&k).and_then(|e| {
                    if e.iter()
                        .any(|p| p.peer == path.peer && p.path_id == path_id)
                    {
                        None
                    } else {
                        fast(&ctx, e, &path)
                    }
                });
                let before = rib.ipv4().get(&k).map(shape);
                drop(path);
                rib.announce(peers[peer], prefix(x), path_id, a);
                let e = rib.ipv4().get(&k).expect("announced");
                let mut full = e.clone();
                rib.ctx(&rib.cfg.ipv4).reselect(&mut full);
                prop_assert_eq!(
                    shape(e),
                    shape(&full),
                    "op {}: the entry is what reselection gives",
                    i
                );
                if let Some(added) = is_fast {
                    let (mut was, mp) = before.expect("an entry before");
                    let now = shape(e);
                    was.push(*now.0.last().expect("a path"));
                    let mp = mp + usize::from(added == Added::Multipath);
                    prop_assert_eq!((was, mp), now, "op {}: the others stay as they were", i);
                }
            }
            Op::Withdraw {
                peer,
                prefix: x,
                path_id,
            } => {
                rib.withdraw(peers[peer], prefix(x), path_id);
            }
            Op::NextHop {
                nh,
                reachable,
                cost,
            } => {
                rib.set_nexthop(
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, nh)),
                    NhState {
                        reachable,
                        igp_cost: cost,
                    },
                );
            }
            Op::Restart { peer, llgr } => {
                rib.peer_down(peers[peer], true);
                if llgr {
                    rib.peer_llgr_stale(peers[peer]);
                }
            }
        }
        drain(&mut rib, &mut model);
        prop_assert_eq!(
            &model,
            &rib.fib().into_iter().collect::<BTreeMap<_, _>>(),
            "after op {}",
            i
        );
    }
    Ok(())
}

/// Decision options with deterministic MED (not always-compare) and without `as-path-relax`:
/// where [`Ctx::joins_last_by_groups`] applies.
fn grouped_config_strategy() -> impl Strategy<Value = (DecisionConfig, bool)> {
    config_strategy().prop_map(|(cfg, backups)| {
        (
            DecisionConfig {
                deterministic_med: true,
                always_compare_med: false,
                as_path_relax: false,
                ..cfg
            },
            backups,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A path added to a prefix that has paths already, where the RIB puts it last without
    /// reselecting ([`Ctx::joins_last`]), leaves the entry exactly as full reselection of its
    /// paths would (order, multipath count, reachability flags), under random decision options,
    /// peer kinds, next-hop changes and graceful-restart staleness; and the FIB delta stream
    /// still reproduces the forwarding table.
    #[test]
    fn an_added_path_put_last_is_what_full_reselection_gives(
        opts in config_strategy(),
        sets in prop::collection::vec(attrs_strategy(), 8),
        ops in prop::collection::vec(op_strategy().prop_map(|op| (op, false)), 1..60),
    ) {
        check_added_paths(opts, &sets, &ops, |ctx, e, path| ctx.joins_last(e, path))?;
    }

    /// The cheap paths that read few attribute sets: a path added where every path's MED group
    /// is its peer's AS ([`Ctx::joins_last_by_groups`]) and the forwarding result kept from the
    /// backup hint ([`Ctx::appended_keeps_backup`]). Most announced sets start with the
    /// announcing peer's AS (so the groups are known).
    #[test]
    fn an_added_path_put_last_by_its_group_is_what_full_reselection_gives(
        opts in grouped_config_strategy(),
        sets in prop::collection::vec(attrs_strategy(), 8),
        ops in prop::collection::vec((op_strategy(), prop::bool::weighted(0.8)), 1..60),
    ) {
        check_added_paths(opts, &sets, &ops, |ctx, e, path| {
            ctx.joins_last_by_groups(e, path).flatten()
        })?;
    }
}

/// The import benchmark's shape: four eBGP peers with their own first AS, one router id, the
/// same rest of the path. Each further peer's path loses at the peer-address step and goes last
/// without reselection, as the backup only when it is the first after the best; the result is
/// the one full reselection gives.
#[test]
fn a_further_peers_worse_path_is_put_last_without_reselection() {
    let mut rib = Rib::new(RibConfig::default());
    let peers: Vec<PeerId> = (0..4u8)
        .map(|i| {
            rib.add_peer(PeerInfo {
                name: format!("f{i}"),
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + i)),
                router_id: Ipv4Addr::new(10, 0, 0, 2),
                remote_as: 65001 + u32::from(i),
                local_as: 4_200_000_000,
                kind: PeerKind::Ebgp,
                confed: false,
            })
            .expect("a free peer slot")
        })
        .collect();
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let mut model = BTreeMap::new();
    for (i, &p) in peers.iter().enumerate() {
        let a = rib.intern(
            Attrs::default()
                .with_as_path(AsPath::sequence(vec![65001 + i as u32, 3356, 15169]))
                .with_med(Some(10 * i as u32))
                .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + i as u8)))),
        );
        if let Some(e) = rib.ipv4().get(&k) {
            let path = Path::new(p, 0, a.clone());
            assert_eq!(
                rib.ctx(&rib.cfg.ipv4).joins_last(e, &path),
                Some(Added::Behind(true)),
                "peer {i}'s path goes last"
            );
        }
        rib.announce(p, prefix(1), 0, a);
        drain(&mut rib, &mut model);
        let e = rib.ipv4().get(&k).unwrap();
        let mut full = e.clone();
        rib.ctx(&rib.cfg.ipv4).reselect(&mut full);
        assert_eq!(shape(e), shape(&full));
    }
    let e = rib.ipv4().get(&k).unwrap();
    assert_eq!(
        e.iter().map(|p| p.peer).collect::<Vec<_>>(),
        peers,
        "by peer address"
    );
    assert_eq!(e.multipath(), 1, "different AS paths: no ECMP");
    match model.get(&prefix(1)) {
        Some(FibEntry::Forward(f)) => {
            assert_eq!(f.primary[0].addr, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
            assert_eq!(f.backup()[0].addr, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)));
        }
        other => panic!("{other:?}"),
    }
}

/// Long-lived graceful restart (RFC 9494 §4.3) of a peer whose path is in a backup's multipath
/// set: the path becomes LLGR-stale and leaves the set, which changes the backup's weights, so it
/// is a FIB delta (the forwarding result before used to be computed after the marking, equal to
/// the one after, and the change was lost).
#[test]
fn llgr_marking_a_backup_member_is_a_fib_change_rfc9494_4_3() {
    let (mut rib, p) = rib_with_kinds(DecisionConfig::default(), true);
    let nh = |i: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i));
    let set = |n: u8| {
        Attrs::default()
            .with_as_path(AsPath::sequence(vec![64500]))
            .with_next_hop(Some(nh(n)))
    };
    let mut model = BTreeMap::new();
    // A static route through .1 is best; two eBGP paths through .2 with one AS path back it up.
    for (peer, n) in [(p[5], 1), (p[0], 2), (p[1], 2)] {
        let a = rib.intern(set(n));
        rib.announce(peer, prefix(0), 0, a);
    }
    drain(&mut rib, &mut model);
    let backup = |m: &BTreeMap<IpNet, FibEntry>| match m.get(&prefix(0)) {
        Some(FibEntry::Forward(f)) => f.backup().to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        backup(&model),
        vec![FibNextHop {
            addr: nh(2),
            weight: 2
        }]
    );
    rib.peer_down(p[0], true);
    rib.peer_llgr_stale(p[0]);
    drain(&mut rib, &mut model);
    assert_eq!(
        backup(&model),
        vec![FibNextHop {
            addr: nh(2),
            weight: 1
        }]
    );
    assert_eq!(model, rib.fib().into_iter().collect::<BTreeMap<_, _>>());
}

/// Four eBGP peers in their own ASes (as `a_further_peers_worse_path_is_put_last_without_reselection`)
/// with `n` rank-ordered router ids; returns the RIB and peers.
fn grouped_rib(asns: &[u32], router_ids: &[u8]) -> (Rib, Vec<PeerId>) {
    let mut rib = Rib::new(RibConfig::default());
    let peers = asns
        .iter()
        .zip(router_ids)
        .enumerate()
        .map(|(i, (&asn, &rid))| {
            rib.add_peer(PeerInfo {
                name: format!("g{i}"),
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + i as u8)),
                router_id: Ipv4Addr::new(10, 0, 0, rid),
                remote_as: asn,
                local_as: 65000,
                kind: PeerKind::Ebgp,
                confed: false,
            })
            .expect("a free peer slot")
        })
        .collect();
    (rib, peers)
}

fn grouped_set(asn: u32, med: Option<u32>, lp: Option<u32>, nh: u8) -> Attrs {
    Attrs::default()
        .with_as_path(AsPath::sequence(vec![asn, 3356, 15169]))
        .with_med(med)
        .with_local_pref(lp)
        .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, nh))))
}

/// Deterministic MED: the last group's leader L (MED 0, router id 3) precedes X (MED 10, router
/// id 1), which beats L without MED. A path N of a new neighbouring AS with router id 2 loses to
/// the last path X without MED but beats the leader L, so its group goes before L's: the cheap
/// answer must compare with the leader, not the last path, and say "not last".
#[test]
fn a_new_groups_path_is_compared_with_the_last_groups_leader_not_its_last_path() {
    let (mut rib, p) = grouped_rib(&[64501, 64500, 64500, 64502], &[5, 3, 1, 2]);
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let sets = [
        grouped_set(64501, None, Some(200), 2),
        grouped_set(64500, Some(0), None, 3),
        grouped_set(64500, Some(10), None, 4),
        grouped_set(64502, None, None, 5),
    ];
    let mut model = BTreeMap::new();
    for (i, set) in sets.iter().enumerate() {
        let a = rib.intern(set.clone());
        if i == 3 {
            let e = rib.ipv4().get(&k).unwrap();
            let mut path = Path::new(p[3], 0, a.clone());
            let ctx = rib.ctx(&rib.cfg.ipv4);
            path.flags |= ctx.stored_flags(path.peer, &path.attrs, path.attrs.next_hop());
            assert_eq!(
                e.iter().map(|x| x.peer).collect::<Vec<_>>(),
                &p[..3],
                "best, then L before X"
            );
            assert_eq!(ctx.joins_last_by_groups(e, &path), Some(None), "not last");
        }
        rib.announce(p[i], prefix(1), 0, a);
        drain(&mut rib, &mut model);
    }
    let e = rib.ipv4().get(&k).unwrap();
    assert_eq!(
        e.iter().map(|x| x.peer).collect::<Vec<_>>(),
        [p[0], p[3], p[1], p[2]]
    );
    let mut full = e.clone();
    rib.ctx(&rib.cfg.ipv4).reselect(&mut full);
    assert_eq!(shape(e), shape(&full));
    assert_eq!(model, rib.fib().into_iter().collect::<BTreeMap<_, _>>());
}

/// The backup hint: after the second path the entry knows its backup's lead, and a further
/// path of another neighbouring AS leaves the forwarding result as it is without reading the
/// lead's set (no FIB delta, the hint kept); a path with the lead's AS path joins the backup's
/// multipath set (a FIB delta with both next-hops); reselection forgets the hint.
#[test]
fn the_backup_hint_keeps_forwarding_for_another_as_and_not_for_the_leads_as_path() {
    let (mut rib, p) = grouped_rib(&[64501, 64502, 64503, 64502], &[2, 2, 2, 2]);
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let mut model = BTreeMap::new();
    let mut announce = |rib: &mut Rib, i: usize, asn: u32| {
        let a = rib.intern(grouped_set(asn, None, None, 2 + i as u8));
        rib.announce(p[i], prefix(1), 0, a);
        let n = rib.take_fib_deltas();
        for d in &n {
            match &d.entry {
                Some(e) => model.insert(d.prefix, e.clone()),
                None => model.remove(&d.prefix),
            };
        }
        n.len()
    };
    assert_eq!(announce(&mut rib, 0, 64501), 1);
    assert_eq!(announce(&mut rib, 1, 64502), 1, "a backup appears");
    assert_eq!(rib.ipv4().get(&k).unwrap().backup_hint(), Some(1));
    let a = rib.intern(grouped_set(64503, None, None, 4));
    let b = rib.intern(grouped_set(64502, None, None, 5));
    let e = rib.ipv4().get(&k).unwrap();
    let ctx = rib.ctx(&rib.cfg.ipv4);
    let neighbor = |a: &AttrRef| a.as_path().neighbor_as();
    assert!(
        ctx.appended_keeps_backup(e, 1, neighbor(&a)),
        "another AS path"
    );
    assert!(
        !ctx.appended_keeps_backup(e, 1, neighbor(&b)),
        "the lead's AS path"
    );
    drop((a, b));
    assert_eq!(announce(&mut rib, 2, 64503), 0, "no forwarding change");
    assert_eq!(rib.ipv4().get(&k).unwrap().backup_hint(), Some(1), "kept");
    assert_eq!(announce(&mut rib, 3, 64502), 1, "joins the backup's set");
    match model.get(&prefix(1)) {
        Some(FibEntry::Forward(f)) => assert_eq!(f.backup().len(), 2, "{f:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(model, rib.fib().into_iter().collect::<BTreeMap<_, _>>());
    rib.set_nexthop(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
        NhState {
            reachable: false,
            igp_cost: 0,
        },
    );
    assert_eq!(
        rib.ipv4().get(&k).unwrap().backup_hint(),
        None,
        "reselection forgets it"
    );
}

/// Sets for multipath joins: one AS path (so every eBGP path of AS 64500 may join the best's
/// set), a few next-hops (shared ones merge into one weighted next-hop; none is a blackhole for a
/// local origin; most are the addresses of [`rib_with_kinds`]'s first peers, which
/// [`check_added_paths`] makes the announcing peer's own when it gives it its AS, so a path may
/// forward to its own peer, [`flags::NH_PEER`], or to another), MED and LOCAL_PREF mostly equal,
/// link bandwidth on some (UCMP only when every member has it), NO_LLGR on a few.
fn ecmp_attrs_strategy() -> impl Strategy<Value = Attrs> {
    let nh = |n: u8| match n {
        1..=2 => Ipv4Addr::new(203, 0, 113, n),
        _ => Ipv4Addr::new(192, 0, 2, 13 - n),
    };
    (
        prop::option::weighted(0.95, 1..6u8),
        prop::option::weighted(0.3, prop_oneof![Just(1000f32), Just(2000f32)]),
        prop::option::weighted(0.15, Just(10u32)),
        prop::option::weighted(0.1, Just(200u32)),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(nh_of, bw, med, lp, llgr)| {
            let mut a = Attrs::default()
                .with_as_path(AsPath::sequence(vec![64500, 15169]))
                .with_med(med)
                .with_local_pref(lp)
                .with_next_hop(nh_of.map(|n| IpAddr::V4(nh(n))));
            if llgr {
                a.set_communities([super::attrs::community::NO_LLGR]);
            }
            if let Some(bw) = bw {
                let mut c = [0x40, 0x04, 0xfb, 0xf4, 0, 0, 0, 0];
                c[4..].copy_from_slice(&bw.to_be_bytes());
                a.set_ext_communities(vec![c]);
            }
            a
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Paths that join the multipath set last ([`Added::Multipath`]: every path was a member and
    /// the set has room) leave the entry as full reselection would and the FIB delta stream
    /// reproduces the forwarding table: ECMP and UCMP (link bandwidth on every member or not),
    /// shared next-hops, the max-paths limits, backups on and off, next-hops going down and
    /// costs changing, and graceful-restart and LLGR staleness, under random decision options.
    #[test]
    fn a_path_joining_the_multipath_set_last_is_what_full_reselection_gives(
        opts in config_strategy(),
        sets in prop::collection::vec(ecmp_attrs_strategy(), 8),
        ops in prop::collection::vec(ecmp_op_strategy().prop_map(|op| (op, false)), 1..60),
    ) {
        check_added_paths(opts, &sets, &ops, |ctx, e, path| ctx.joins_last(e, path))?;
    }
}

/// [`ecmp_attrs_strategy`] with AS paths of one neighbouring AS and one length that differ after
/// it (paths that tie through the IGP cost but may not share a multipath set), and a longer one.
fn ecmp_varied_attrs_strategy() -> impl Strategy<Value = Attrs> {
    (ecmp_attrs_strategy(), 0..3usize).prop_map(|(a, path)| {
        let asns = [
            vec![64500, 15169],
            vec![64500, 3356],
            vec![64500, 3356, 15169],
        ];
        a.with_as_path(AsPath::sequence(asns[path].clone()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// [`Ctx::joins_last_by_groups`] where multipath sets form and paths that tie through the IGP
    /// cost may have other AS paths: a path is admitted to a set whose every path is a member
    /// by comparing it with the last member instead of the best, which must be the same answer.
    #[test]
    fn a_path_joining_the_multipath_set_by_its_group_is_what_full_reselection_gives(
        opts in grouped_config_strategy(),
        sets in prop::collection::vec(ecmp_varied_attrs_strategy(), 8),
        ops in prop::collection::vec(ecmp_op_strategy().prop_map(|op| (op, true)), 1..60),
    ) {
        check_added_paths(opts, &sets, &ops, |ctx, e, path| {
            ctx.joins_last_by_groups(e, path).flatten()
        })?;
    }
}

/// [`op_strategy`] with most announcements from the eBGP peers (the ones whose paths may share
/// a multipath set), so that entries whose every path is a member are common.
fn ecmp_op_strategy() -> impl Strategy<Value = Op> {
    (op_strategy(), prop::bool::weighted(0.7)).prop_map(|(op, ebgp)| match op {
        Op::Announce {
            peer,
            prefix,
            path_id,
            set,
        } if ebgp => Op::Announce {
            peer: peer % 3,
            prefix,
            path_id,
            set,
        },
        op => op,
    })
}

/// Peers of one AS for the multipath tests: eBGP, router ids in their order (each further
/// peer's path loses at the router-id step), at most `max` eBGP paths in a set.
fn one_as_rib(n: u8, max: usize) -> (Rib, Vec<PeerId>) {
    let mut rib = Rib::new(RibConfig {
        ipv4: DecisionConfig {
            max_paths_ebgp: max,
            ..DecisionConfig::default()
        },
        ..RibConfig::default()
    });
    let peers = (0..n)
        .map(|i| {
            rib.add_peer(PeerInfo {
                name: format!("m{i}"),
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + i)),
                router_id: Ipv4Addr::new(10, 0, 0, 2 + i),
                remote_as: 65001,
                local_as: 65000,
                kind: PeerKind::Ebgp,
                confed: false,
            })
            .expect("a free peer slot")
        })
        .collect();
    (rib, peers)
}

/// The set peer `i` of [`one_as_rib`] sends: one AS path, next-hop 203.0.113.`nh`, link
/// bandwidth `bw` bytes/s when given.
fn one_as_set(nh: u8, bw: Option<f32>) -> Attrs {
    one_as_set_via(Ipv4Addr::new(203, 0, 113, nh), bw)
}

/// [`one_as_set`] through the next-hop `nh`.
fn one_as_set_via(nh: Ipv4Addr, bw: Option<f32>) -> Attrs {
    let mut a = Attrs::default()
        .with_as_path(AsPath::sequence(vec![65001, 3356, 15169]))
        .with_next_hop(Some(IpAddr::V4(nh)));
    if let Some(bw) = bw {
        let mut c = [0x40, 0x04, 0xfd, 0xe9, 0, 0, 0, 0];
        c[4..].copy_from_slice(&bw.to_be_bytes());
        a.set_ext_communities(vec![c]);
    }
    a
}

/// Announces peer `i`'s set for 10.1.0.0/16 in `rib`, checking what [`Ctx::joins_last`] said
/// beforehand against `expect`, the entry against full reselection and the delta stream against
/// the forwarding table; returns the FIB deltas it made and the forwarding entry.
fn announce_one_as(
    rib: &mut Rib,
    model: &mut BTreeMap<IpNet, FibEntry>,
    peer: PeerId,
    set: Attrs,
    expect: Option<Added>,
) -> (usize, Option<FibEntry>) {
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let a = rib.intern(set);
    if let Some(e) = rib.ipv4().get(&k) {
        let ctx = rib.ctx(&rib.cfg.ipv4);
        let mut path = Path::new(peer, 0, a.clone());
        path.flags |= ctx.stored_flags(path.peer, &path.attrs, path.attrs.next_hop());
        assert_eq!(ctx.joins_last(e, &path), expect, "peer {peer}");
    }
    rib.announce(peer, prefix(1), 0, a);
    let deltas = rib.take_fib_deltas();
    for d in &deltas {
        match &d.entry {
            Some(e) => model.insert(d.prefix, e.clone()),
            None => model.remove(&d.prefix),
        };
    }
    let e = rib.ipv4().get(&k).expect("announced");
    let mut full = e.clone();
    rib.ctx(&rib.cfg.ipv4).reselect(&mut full);
    assert_eq!(shape(e), shape(&full), "peer {peer}");
    assert_eq!(*model, rib.fib().into_iter().collect::<BTreeMap<_, _>>());
    (deltas.len(), model.get(&prefix(1)).cloned())
}

/// (last octet, weight) of a forwarding entry's next-hops.
type Hops = Vec<(u8, u32)>;

/// The primary and backup next-hops of a forwarding entry.
fn fib_hops(e: Option<FibEntry>) -> (Hops, Hops) {
    let v4 = |s: &[FibNextHop]| {
        s.iter()
            .map(|n| match n.addr {
                IpAddr::V4(a) => (a.octets()[3], n.weight),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect()
    };
    match e {
        Some(FibEntry::Forward(f)) => (v4(&f.primary), v4(f.backup())),
        other => panic!("{other:?}"),
    }
}

/// The import benchmark's ECMP shape: peers of one AS sending one AS path, each with its own
/// next-hop. Each further path joins the multipath set last without reselection, one FIB delta
/// each, until max-paths: the path after that goes behind, as the backup.
#[test]
fn a_further_peers_equal_path_joins_the_multipath_set_until_max_paths() {
    let (mut rib, p) = one_as_rib(4, 3);
    let mut model = BTreeMap::new();
    let expect = [None, Some(Added::Multipath), Some(Added::Multipath)];
    for (i, &x) in expect.iter().enumerate() {
        let (n, fwd) =
            announce_one_as(&mut rib, &mut model, p[i], one_as_set(i as u8 + 1, None), x);
        assert_eq!(n, 1, "path {i} changes forwarding");
        let want: Vec<(u8, u32)> = (1..=i as u8 + 1).map(|h| (h, 1)).collect();
        assert_eq!(fib_hops(fwd), (want, vec![]));
    }
    let behind = Some(Added::Behind(true));
    let (n, fwd) = announce_one_as(&mut rib, &mut model, p[3], one_as_set(4, None), behind);
    assert_eq!(n, 1, "a backup appears");
    assert_eq!(fib_hops(fwd), (vec![(1, 1), (2, 1), (3, 1)], vec![(4, 1)]));
}

/// UCMP: with link bandwidth on every member the weights follow it (1000 and 2000 bytes/s: 1
/// and 2); a member without it makes the set equal-cost again; and a member through a next-hop
/// already there with the same bandwidth as the only other member merges into it with the same
/// ratio (weights 2, divided by their common factor: 1), so nothing changes for the FIB.
#[test]
fn a_path_joining_the_multipath_set_reweighs_it_by_link_bandwidth() {
    let (mut rib, p) = one_as_rib(4, 8);
    let mut model = BTreeMap::new();
    let mp = Some(Added::Multipath);
    announce_one_as(
        &mut rib,
        &mut model,
        p[0],
        one_as_set(1, Some(1000.0)),
        None,
    );
    let (n, fwd) = announce_one_as(&mut rib, &mut model, p[1], one_as_set(2, Some(2000.0)), mp);
    assert_eq!((n, fib_hops(fwd)), (1, (vec![(1, 1), (2, 2)], vec![])));
    let (n, fwd) = announce_one_as(&mut rib, &mut model, p[2], one_as_set(3, None), mp);
    assert_eq!(
        (n, fib_hops(fwd)),
        (1, (vec![(1, 1), (2, 1), (3, 1)], vec![]))
    );

    let (mut rib, p) = one_as_rib(2, 8);
    let mut model = BTreeMap::new();
    announce_one_as(
        &mut rib,
        &mut model,
        p[0],
        one_as_set(1, Some(1000.0)),
        None,
    );
    let (n, fwd) = announce_one_as(&mut rib, &mut model, p[1], one_as_set(1, Some(1000.0)), mp);
    assert_eq!(
        (n, fib_hops(fwd)),
        (0, (vec![(1, 1)], vec![])),
        "the same ratio"
    );
}

/// Paths forwarding to their peers' addresses (the eBGP rule, [`flags::NH_PEER`]) join the
/// multipath set with the next-hops told from the peers; a path through another peer's address, one
/// with link bandwidth, and the paths of a peer whose address changed are not flagged, and the
/// joins after them read the sets. The delta stream matches the table throughout.
#[test]
fn paths_forwarding_to_their_peers_join_the_multipath_set_by_the_peers_addresses() {
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let all_nh_peer = |rib: &Rib| rib.ipv4().get(&k).unwrap().as_slice().all_nh_peer();
    // Peer `i`'s path through peer `via`'s address, with link bandwidth `bw`, joining the set
    // (after the first): whether every path is flagged then, the FIB deltas and the primary hops.
    let join = |rib: &mut Rib, model: &mut BTreeMap<_, _>, p: PeerId, via: u8, bw: Option<f32>| {
        let first = rib.ipv4().get(&k).is_none();
        let expect = (!first).then_some(Added::Multipath);
        let set = one_as_set_via(Ipv4Addr::new(10, 0, 0, 2 + via), bw);
        let (n, fwd) = announce_one_as(rib, model, p, set, expect);
        (all_nh_peer(rib), n, fib_hops(fwd).0)
    };

    let (mut rib, p) = one_as_rib(6, 8);
    let mut m = BTreeMap::new();
    join(&mut rib, &mut m, p[0], 0, None);
    let h = |o: &[u8]| o.iter().map(|&x| (x, 1)).collect::<Vec<_>>();
    assert_eq!(join(&mut rib, &mut m, p[1], 1, None), (true, 1, h(&[2, 3])));
    assert_eq!(
        join(&mut rib, &mut m, p[2], 2, None),
        (true, 1, h(&[2, 3, 4]))
    );
    // Through peer 1's address: weight 2 there.
    let via_1 = (false, 1, vec![(2, 1), (3, 2), (4, 1)]);
    assert_eq!(join(&mut rib, &mut m, p[3], 1, None), via_1);

    // Link bandwidth on a path to its own peer: not flagged.
    let (mut rib, p) = one_as_rib(2, 8);
    let mut m = BTreeMap::new();
    join(&mut rib, &mut m, p[0], 0, Some(1000.0));
    let ucmp = (false, 1, vec![(2, 1), (3, 2)]);
    assert_eq!(join(&mut rib, &mut m, p[1], 1, Some(2000.0)), ucmp);

    // A peer's address changes: its path no longer forwards to it; and back.
    let (mut rib, p) = one_as_rib(3, 8);
    let mut m = BTreeMap::new();
    join(&mut rib, &mut m, p[0], 0, None);
    assert!(join(&mut rib, &mut m, p[1], 1, None).0);
    let mut info = rib.peer(p[0]).unwrap().clone();
    info.addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 99));
    rib.set_peer_info(p[0], info.clone());
    assert!(!all_nh_peer(&rib));
    assert_eq!(
        join(&mut rib, &mut m, p[2], 2, None),
        (false, 1, h(&[2, 3, 4]))
    );
    info.addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    rib.set_peer_info(p[0], info);
    assert!(all_nh_peer(&rib));
}

/// Prefixes whose paths come from the same peers, each forwarding to its peer, forward over one
/// shared set, which the next prefix takes by its peers ([`PeerSetMemo`]); when a peer leaves and
/// one with another address takes its slot, the same peers by index forward elsewhere, and the
/// remembered set is not used.
#[test]
fn prefixes_joined_by_the_same_peers_share_a_set_until_a_peer_changes() {
    let (mut rib, p) = one_as_rib(3, 8);
    let addr = |i: u8| Ipv4Addr::new(10, 0, 0, 2 + i);
    let mut model = BTreeMap::new();
    let announce_all = |rib: &mut Rib, prefixes: std::ops::Range<u8>, peers: &[(PeerId, u8)]| {
        for x in prefixes {
            for &(peer, i) in peers {
                let a = rib.intern(one_as_set_via(addr(i), None));
                rib.announce(peer, prefix(x), 0, a);
            }
        }
    };
    let primary = |m: &BTreeMap<IpNet, FibEntry>, x: u8| match m.get(&prefix(x)) {
        Some(FibEntry::Forward(f)) => f.primary.clone(),
        other => panic!("{other:?}"),
    };
    let hops = |m: &BTreeMap<IpNet, FibEntry>, x: u8| fib_hops(m.get(&prefix(x)).cloned()).0;
    announce_all(&mut rib, 0..4, &[(p[0], 0), (p[1], 1), (p[2], 2)]);
    drain(&mut rib, &mut model);
    assert_eq!(model, rib.fib().into_iter().collect::<BTreeMap<_, _>>());
    assert_eq!(hops(&model, 0), [(2, 1), (3, 1), (4, 1)]);
    for x in 1..4 {
        assert!(
            Arc::ptr_eq(&primary(&model, 0), &primary(&model, x)),
            "prefix {x}"
        );
    }
    // The last set remembered is by peers 0 and 2.
    announce_all(&mut rib, 4..6, &[(p[0], 0), (p[2], 2)]);
    drain(&mut rib, &mut model);
    assert_eq!(hops(&model, 5), [(2, 1), (4, 1)]);

    rib.remove_peer(p[2]);
    drain(&mut rib, &mut model);
    let mut info = rib.peer(p[0]).unwrap().clone();
    info.name = "m9".into();
    info.addr = IpAddr::V4(addr(7));
    let q = rib.add_peer(info).unwrap();
    assert_eq!(q, p[2], "the slot is reused");
    announce_all(&mut rib, 6..8, &[(p[0], 0), (q, 7)]);
    drain(&mut rib, &mut model);
    assert_eq!(model, rib.fib().into_iter().collect::<BTreeMap<_, _>>());
    assert_eq!(hops(&model, 6), [(2, 1), (9, 1)]);
}

/// A path whose next-hop is down does not join the set (it goes behind, flagged down); a
/// further reachable path then joins the set ahead of it, which is no cheap append (the set did
/// not hold every path) but a reselection.
#[test]
fn a_path_through_a_dead_next_hop_does_not_join_the_multipath_set() {
    let (mut rib, p) = one_as_rib(3, 8);
    let mut model = BTreeMap::new();
    let down = NhState {
        reachable: false,
        igp_cost: 0,
    };
    rib.set_nexthop(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2)), down);
    announce_one_as(&mut rib, &mut model, p[0], one_as_set(1, None), None);
    let behind = Some(Added::Behind(false));
    let (n, fwd) = announce_one_as(&mut rib, &mut model, p[1], one_as_set(2, None), behind);
    assert_eq!((n, fib_hops(fwd)), (0, (vec![(1, 1)], vec![])));
    let (n, fwd) = announce_one_as(&mut rib, &mut model, p[2], one_as_set(3, None), None);
    assert_eq!((n, fib_hops(fwd)), (1, (vec![(1, 1), (3, 1)], vec![])));
    let e = rib.ipv4().get(&"10.1.0.0/16".parse().unwrap()).unwrap();
    assert_eq!(
        e.iter().map(|x| x.peer).collect::<Vec<_>>(),
        [p[0], p[2], p[1]]
    );
}

/// AS paths for [`Ctx::neighbors_differ`]: empty, starting with each test peer's AS (and with our
/// own, and another local AS), with an AS_SET, and of another AS.
fn neighbor_path(i: usize) -> AsPath {
    use super::attrs::SegmentKind;
    match i {
        0 => AsPath::default(),
        1 => AsPath::sequence(vec![64500, 15169]),
        2 => AsPath::sequence(vec![64501, 15169]),
        3 => AsPath::sequence(vec![65000]),
        4 => AsPath::sequence(vec![65001]),
        5 => AsPath::sequence(vec![65100, 64500]),
        6 => AsPath::from_segments([(SegmentKind::Set, &[64500u32, 64501][..])]),
        7 => AsPath::sequence(vec![64500]),
        _ => AsPath::sequence(vec![64502, 1, 2]),
    }
}

/// [`rib_with_kinds`] and a peer whose remote AS is the local AS it is configured with (65001,
/// not the others' 65000): its paths and the iBGP peer's may both have no neighbouring AS.
fn rib_with_neighbors(cfg: DecisionConfig) -> (Rib, Vec<PeerId>) {
    let (mut rib, mut peers) = rib_with_kinds(cfg, true);
    peers.push(
        rib.add_peer(PeerInfo {
            name: "p6".into(),
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)),
            router_id: Ipv4Addr::new(10, 0, 0, 6),
            remote_as: 65001,
            local_as: 65001,
            kind: PeerKind::Ibgp,
            confed: false,
        })
        .expect("a free peer slot"),
    );
    (rib, peers)
}

/// The paths of one prefix from the peers of [`rib_with_neighbors`], peer `i` with the AS path
/// `neighbor_path(paths[i])`; checks `check` on every ordered pair.
fn each_pair(
    cfg: DecisionConfig,
    paths: &[usize],
    mut check: impl FnMut(&Ctx<'_>, PathRef<'_>, PathRef<'_>),
) {
    let (mut rib, peers) = rib_with_neighbors(cfg);
    for (&peer, &i) in peers.iter().zip(paths) {
        let set = Attrs::default()
            .with_as_path(neighbor_path(i))
            .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))));
        let a = rib.intern(set);
        rib.announce(peer, prefix(1), 0, a);
    }
    let k: Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let ctx = rib.ctx(&rib.cfg.ipv4);
    let s = rib.ipv4().get(&k).expect("the prefix").as_slice();
    for a in s.iter() {
        for b in s.iter().filter(|b| b.peer != a.peer) {
            check(&ctx, a, b);
        }
    }
}

/// Two paths told apart by their peers' ASes ([`Ctx::neighbors_differ`], which spares the backup
/// computation reading their sets) are never eligible for one multipath set, whatever their AS
/// paths (empty, AS_SET first, any peer's AS first) and peer kinds, including two peers whose
/// paths may both lack a neighbouring AS.
#[test]
fn paths_told_apart_by_their_peers_are_never_multipath_eligible() {
    let cfg = DecisionConfig {
        max_paths_ibgp: 8,
        ..DecisionConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    let apart = std::cell::Cell::new(0usize);
    runner
        .run(&prop::collection::vec(0..9usize, 7), |paths| {
            each_pair(cfg.clone(), &paths, |ctx, a, b| {
                if ctx.neighbors_differ(a, b) {
                    apart.set(apart.get() + 1);
                    let (ca, cb) = (ctx.candidate(a).unwrap(), ctx.candidate(b).unwrap());
                    assert!(
                        !decision::multipath_eligible(&ca, &cb, ctx.cfg),
                        "{a:?} and {b:?} told apart but eligible"
                    );
                }
            });
            Ok(())
        })
        .unwrap();
    assert!(apart.get() > 300, "only {} pairs told apart", apart.get());

    // Told apart: eBGP peers of two ASes; an empty path of the iBGP peer and a path of an eBGP
    // peer. Not: two peers of one AS; the empty paths of the two peers whose remote AS is local.
    let told = |x: usize, y: usize, px: usize, py: usize| {
        let mut paths = vec![8; 7];
        paths[x] = px;
        paths[y] = py;
        let mut seen = None;
        each_pair(cfg.clone(), &paths, |ctx, a, b| {
            if usize::from(a.peer) == x && usize::from(b.peer) == y {
                seen = Some(ctx.neighbors_differ(a, b));
            }
        });
        seen.expect("both paths")
    };
    assert!(told(0, 1, 1, 2));
    assert!(told(3, 0, 0, 1));
    assert!(!told(0, 2, 1, 7));
    assert!(!told(3, 6, 0, 0));
}
