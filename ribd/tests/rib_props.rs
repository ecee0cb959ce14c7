//! Property tests of the RIB: selection does not depend on arrival order, the FIB delta stream always
//! reproduces the RIB's forwarding table, and withdrawing everything leaves nothing behind.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;
use ribd::rib::attrs::{AsPath, Attrs, Origin};
use ribd::rib::decision::{PeerInfo, PeerKind};
use ribd::rib::{FibEntry, NhState, Rib, RibConfig};

#[derive(Debug, Clone)]
struct Ann {
    peer: usize,
    prefix: usize,
    path_id: u32,
    attrs: usize,
}

fn prefixes() -> Vec<IpNet> {
    let mut v: Vec<IpNet> = (0..12u8)
        .map(|i| {
            IpNet::new(IpAddr::V4(Ipv4Addr::new(10, i, 0, 0)), 16 + i)
                .unwrap()
                .trunc()
        })
        .collect();
    v.extend((0..4u16).map(|i| {
        IpNet::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0)),
            48,
        )
        .unwrap()
    }));
    v
}

fn attr_pool() -> Vec<Attrs> {
    let mut v = Vec::new();
    for i in 0..16u32 {
        let nh = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 5) as u8 + 1))
        } else {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xffff,
                0,
                0,
                0,
                0,
                (i % 5) as u16 + 1,
            ))
        };
        v.push(
            Attrs::default()
                .with_origin(if i % 7 == 0 {
                    Origin::Incomplete
                } else {
                    Origin::Igp
                })
                .with_as_path(AsPath::sequence(vec![64500 + i % 3, 15169 + i % 2]))
                .with_next_hop(Some(nh))
                .with_med((i % 3 != 0).then_some(i % 4 * 10))
                .with_local_pref((i % 5 == 0).then_some(150))
                .with_communities([i]),
        );
    }
    v
}

fn new_rib(relax: bool) -> (Rib, Vec<ribd::rib::table::PeerId>) {
    with_five_peers(rib_config(relax))
}

fn rib_config(relax: bool) -> RibConfig {
    let mut cfg = RibConfig::default();
    cfg.ipv4.as_path_relax = relax;
    cfg.ipv6.as_path_relax = relax;
    cfg.ipv4.max_paths_ibgp = 4;
    cfg
}

/// A RIB with five peers: three eBGP (AS 64500-64502) and two iBGP, router ids descending.
fn with_five_peers(cfg: RibConfig) -> (Rib, Vec<ribd::rib::table::PeerId>) {
    let mut rib = Rib::new(cfg);
    let peers = (0..5u8)
        .map(|i| {
            rib.add_peer(PeerInfo {
                name: format!("p{i}"),
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, i + 1)),
                router_id: Ipv4Addr::new(10, 255, 0, 5 - i),
                remote_as: if i < 3 { 64500 + i as u32 } else { 65000 },
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

fn apply(
    rib: &mut Rib,
    peers: &[ribd::rib::table::PeerId],
    pool: &[Attrs],
    anns: &[Ann],
    model: &mut BTreeMap<IpNet, FibEntry>,
) {
    let pfx = prefixes();
    for a in anns {
        let attrs = rib.intern(pool[a.attrs].clone());
        rib.announce(peers[a.peer], pfx[a.prefix], a.path_id, attrs);
    }
    drain(rib, model);
}

fn drain(rib: &mut Rib, model: &mut BTreeMap<IpNet, FibEntry>) {
    for d in rib.take_fib_deltas() {
        match d.entry {
            Some(e) => model.insert(d.prefix, e),
            None => model.remove(&d.prefix),
        };
    }
}

/// Prefix-paths counted by walking the tables: what `Rib::path_count` must keep without walking.
fn walked_paths(rib: &Rib) -> [usize; 2] {
    [
        rib.ipv4().iter().map(|(_, e)| e.len()).sum(),
        rib.ipv6().iter().map(|(_, e)| e.len()).sum(),
    ]
}

fn rib_fib(rib: &Rib) -> BTreeMap<IpNet, FibEntry> {
    rib.fib().into_iter().collect()
}

fn best_table(rib: &Rib) -> BTreeMap<IpNet, (String, u32)> {
    prefixes()
        .into_iter()
        .filter_map(|p| {
            let e = rib.explain(p);
            let b = e.into_iter().find(|x| x.best)?;
            Some((p, (b.peer, b.path_id)))
        })
        .collect()
}

fn anns() -> impl Strategy<Value = Vec<Ann>> {
    prop::collection::vec((0..5usize, 0..16usize, 0..2u32, 0..16usize), 1..80).prop_map(|v| {
        // One path per (peer, prefix, path id): later duplicates dropped, so the set is order-free.
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|(p, x, id, _)| seen.insert((*p, *x, *id)))
            .map(|(peer, prefix, path_id, attrs)| Ann {
                peer,
                prefix,
                path_id,
                attrs,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn best_and_multipath_do_not_depend_on_arrival_order(anns in anns(), seed in any::<u64>(), relax in any::<bool>()) {
        let pool = attr_pool();
        let (mut r1, p1) = new_rib(relax);
        let mut m1 = BTreeMap::new();
        apply(&mut r1, &p1, &pool, &anns, &mut m1);

        let mut shuffled = anns.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (mut r2, p2) = new_rib(relax);
        let mut m2 = BTreeMap::new();
        apply(&mut r2, &p2, &pool, &shuffled, &mut m2);

        prop_assert_eq!(best_table(&r1), best_table(&r2));
        prop_assert_eq!(rib_fib(&r1), rib_fib(&r2));
        prop_assert_eq!(&m1, &rib_fib(&r1), "the delta stream reproduces the FIB");
        prop_assert_eq!(&m2, &rib_fib(&r2));
        prop_assert_eq!(r1.path_count(), walked_paths(&r1));
        prop_assert_eq!(r1.path_count()[0] + r1.path_count()[1], anns.len());
    }

    #[test]
    fn withdraw_all_leaves_empty_tables_and_no_attribute_sets(anns in anns(), unreachable in prop::collection::vec(1..6u8, 0..3)) {
        let pool = attr_pool();
        let (mut rib, peers) = new_rib(true);
        let mut model = BTreeMap::new();
        apply(&mut rib, &peers, &pool, &anns, &mut model);
        for nh in unreachable {
            rib.set_nexthop(IpAddr::V4(Ipv4Addr::new(203, 0, 113, nh)), NhState { reachable: false, igp_cost: 0 });
        }
        drain(&mut rib, &mut model);
        prop_assert_eq!(&model, &rib_fib(&rib));
        let pfx = prefixes();
        for (i, a) in anns.iter().enumerate() {
            prop_assert!(rib.withdraw(peers[a.peer], pfx[a.prefix], a.path_id));
            let n = rib.path_count();
            prop_assert_eq!(n[0] + n[1], anns.len() - i - 1);
        }
        drain(&mut rib, &mut model);
        prop_assert!(rib.ipv4().is_empty() && rib.ipv6().is_empty());
        prop_assert_eq!(rib.path_count(), [0, 0]);
        prop_assert_eq!(rib.attr_sets(), 0, "every interned attribute set was released");
        prop_assert!(model.is_empty(), "the FIB delta stream ends empty: {:?}", model);
        prop_assert!(rib.nexthops().is_empty(), "no next-hop left tracked");
    }

    #[test]
    fn peer_down_equals_withdrawing_its_paths(anns in anns(), victim in 0..5usize) {
        let pool = attr_pool();
        let (mut a, pa) = new_rib(true);
        let (mut b, pb) = new_rib(true);
        let mut ma = BTreeMap::new();
        let mut mb = BTreeMap::new();
        apply(&mut a, &pa, &pool, &anns, &mut ma);
        apply(&mut b, &pb, &pool, &anns, &mut mb);
        a.peer_down(pa[victim], false);
        let pfx = prefixes();
        for x in anns.iter().filter(|x| x.peer == victim) {
            b.withdraw(pb[victim], pfx[x.prefix], x.path_id);
        }
        drain(&mut a, &mut ma);
        drain(&mut b, &mut mb);
        prop_assert_eq!(&ma, &mb);
        prop_assert_eq!(rib_fib(&a), rib_fib(&b));
        prop_assert_eq!(a.attr_sets(), b.attr_sets());
        prop_assert_eq!(a.path_count(), walked_paths(&a), "peer down keeps the path count");
        prop_assert_eq!(a.path_count(), b.path_count());
    }

    /// Paths added to entries that already have some (the case where the RIB skips computing the
    /// forwarding result when the new path provably cannot change it), with next-hops going
    /// unreachable and back in between and with or without backup sets: the delta stream still
    /// reproduces the FIB at every step.
    #[test]
    fn fib_deltas_follow_every_added_path(anns in anns(), flips in prop::collection::vec((0..80usize, 1..6u8, any::<bool>()), 0..6), backups in any::<bool>(), relax in any::<bool>()) {
        let pool = attr_pool();
        let mut cfg = rib_config(relax);
        cfg.backup_paths = backups;
        let (mut rib, peers) = with_five_peers(cfg);
        let pfx = prefixes();
        let mut model = BTreeMap::new();
        for (i, a) in anns.iter().enumerate() {
            for (_, nh, up) in flips.iter().filter(|(at, _, _)| *at == i) {
                rib.set_nexthop(IpAddr::V4(Ipv4Addr::new(203, 0, 113, *nh)), NhState { reachable: *up, igp_cost: u32::from(*nh) });
            }
            let attrs = rib.intern(pool[a.attrs].clone());
            rib.announce(peers[a.peer], pfx[a.prefix], a.path_id, attrs);
            drain(&mut rib, &mut model);
            prop_assert_eq!(&model, &rib_fib(&rib), "after adding path {}", i);
        }
    }
}

/// A next-hop of a backup member going unreachable while its IGP cost changes (as next-hop
/// tracking reports both at once) changes the backup, so it reaches the FIB: the forwarding
/// result before is computed with the next-hop's old state, not the new cost (which had made the
/// member look ineligible before as well, and the change was lost).
#[test]
fn backup_member_next_hop_down_with_a_new_cost_is_a_fib_change() {
    let pool = attr_pool();
    let (mut rib, peers) = new_rib(false);
    let pfx = prefixes();
    let mut model = BTreeMap::new();
    // Two eBGP paths through .3 and .2 with the same AS path, then a better one through .4.
    for (peer, attrs) in [(0usize, 12usize), (1, 6), (2, 8)] {
        let a = rib.intern(pool[attrs].clone());
        rib.announce(peers[peer], pfx[15], 0, a);
    }
    drain(&mut rib, &mut model);
    let backup = |m: &BTreeMap<IpNet, FibEntry>| match m.get(&pfx[15]) {
        Some(FibEntry::Forward(f)) => f.backup().iter().map(|n| n.addr).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let nh = |i: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i));
    assert_eq!(
        backup(&model),
        vec![nh(2), nh(3)],
        "a backup of two next-hops"
    );
    rib.set_nexthop(
        nh(3),
        NhState {
            reachable: false,
            igp_cost: 3,
        },
    );
    drain(&mut rib, &mut model);
    assert_eq!(backup(&model), vec![nh(2)]);
    assert_eq!(model, rib_fib(&rib));
}
