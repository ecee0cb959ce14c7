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
