//! BGP PIC in the sync engine: backup next-hop sets (PIC edge) and next-hops withdrawn by BGP
//! (session down, PIC core), against the real maps of a loaded forwarder; answers read back through
//! the XDP program (BPF_PROG_TEST_RUN). Needs root (CAP_BPF).

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use common::*;
use fib_ebpf::Engine4;
use fib_ebpf::abi::NHG_PASS;
use fib_sync::{FibSync, NhSet, Route, RouteAction, SyncConfig};
use ipnet::IpNet;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const C: &str = "192.0.2.3";
const D: &str = "192.0.2.4";

/// The i-th /24 from 20.0.0.0 on.
fn p24(i: u32) -> IpNet {
    IpNet::new(IpAddr::V4((0x1400_0000 + (i << 8)).into()), 24).unwrap()
}

/// The last byte of the destination MAC of every flow (64 source ports) to an address in `p`;
/// 0 stands for "not redirected".
fn flows(inst: &mut Instance, p: IpNet) -> Vec<u8> {
    let dst = match p {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
    };
    (0..64)
        .map(|port| match inst.send(dst, 2000 + port) {
            (XDP_REDIRECT, mac) => mac[5],
            _ => 0,
        })
        .collect()
}

fn macs(v: &[u8]) -> BTreeSet<u8> {
    v.iter().copied().collect()
}

fn route(p: IpNet, set: &NhSet) -> Route {
    Route {
        prefix: p,
        action: Some(RouteAction::Forward(set.clone())),
    }
}

fn resolve_all(s: &mut FibSync) {
    s.set_nexthops(&[
        (addr(A), Some(lo_nh(1))),
        (addr(B), Some(lo_nh(2))),
        (addr(C), Some(lo_nh(3))),
        (addr(D), Some(lo_nh(4))),
    ])
    .unwrap();
}

/// 100k prefixes over (primary {A}, backup {B}) and (primary {A,B}, backup {C}). The backups are
/// never used while a primary lives; when every primary is dead the path-list moves to its live
/// backups, one store per path-list and no prefix write, and back when a primary returns.
#[test]
fn backups_are_used_only_while_every_primary_is_dead_one_store_per_path_list() {
    let mut inst = Instance::new("picbk", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    resolve_all(&mut s);
    let a_b = NhSet::with_backup([(addr(A), 1)], [(addr(B), 1)]);
    let ab_c = NhSet::with_backup([(addr(A), 1), (addr(B), 1)], [(addr(C), 1)]);
    let routes: Vec<Route> = (0..100_000u32)
        .map(|i| route(p24(i), if i % 2 == 0 { &a_b } else { &ab_c }))
        .collect();
    s.apply(&routes).unwrap();
    s.settle().unwrap();
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    let (x, y) = (p24(0), p24(1)); // (A; B) and (A,B; C)
    assert_eq!(macs(&flows(&mut inst, x)), BTreeSet::from([1]));
    assert_eq!(macs(&flows(&mut inst, y)), BTreeSet::from([1, 2]));

    // A dies: (A; B) moves to its backup, (A,B; C) keeps its live primary B (not C).
    let r = s.set_nexthops(&[(addr(A), None)]).unwrap();
    assert_eq!((r.prefixes, r.writes.pathlist), (0, 2), "{r:?}");
    assert_eq!(r.writes.dir24 + r.writes.dir8 + r.writes.fib4, 0);
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    assert_eq!(macs(&flows(&mut inst, x)), BTreeSet::from([2]));
    assert_eq!(macs(&flows(&mut inst, y)), BTreeSet::from([2]));

    // B dies too: (A; B) has nothing live left, (A,B; C) moves to C.
    let r = s.set_nexthops(&[(addr(B), None)]).unwrap();
    assert_eq!((r.prefixes, r.writes.pathlist), (0, 2), "{r:?}");
    assert_eq!(s.group_of(s.pathlist_of(&a_b).unwrap()), Some(NHG_PASS));
    assert_eq!(flows(&mut inst, x), vec![0; 64], "passed to the kernel");
    assert_eq!(macs(&flows(&mut inst, y)), BTreeSet::from([3]));
    assert_eq!(s.check(&routes).unwrap(), vec![]);

    // A returns: both path-lists fall back to their primaries (A alone is primary of both).
    let r = s.set_nexthops(&[(addr(A), Some(lo_nh(1)))]).unwrap();
    assert_eq!((r.prefixes, r.writes.pathlist), (0, 2), "{r:?}");
    assert_eq!(macs(&flows(&mut inst, x)), BTreeSet::from([1]));
    assert_eq!(macs(&flows(&mut inst, y)), BTreeSet::from([1]));
    // A backup's own death while its primary lives changes nothing in the dataplane.
    let r = s.set_nexthops(&[(addr(C), None)]).unwrap();
    assert_eq!(r.writes.total(), 0, "{r:?}");
    let r = s
        .set_nexthops(&[(addr(B), Some(lo_nh(2))), (addr(C), Some(lo_nh(3)))])
        .unwrap();
    assert_eq!((r.prefixes, r.writes.pathlist), (0, 1), "{r:?}");
    assert_eq!(macs(&flows(&mut inst, y)), BTreeSet::from([1, 2]));
    assert_eq!(s.check(&routes).unwrap(), vec![]);
}

/// Session down: BGP withdraws next-hop A while it still resolves. The path-lists containing it
/// flip at once (one store each); the RIB's per-prefix deltas that follow move the prefixes to
/// path-lists without A, onto the group they already use, so no flow moves a second time; lifting
/// the mark afterwards writes nothing.
#[test]
fn a_withdrawn_next_hop_flips_path_lists_before_the_prefixes_move_and_they_move_onto_the_same_group()
 {
    let mut inst = Instance::new("picwd", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    resolve_all(&mut s);
    let a_b = NhSet::with_backup([(addr(A), 1)], [(addr(B), 1)]);
    let abc = NhSet::new([(addr(A), 1), (addr(B), 1), (addr(C), 1)]);
    let routes: Vec<Route> = (0..50_000u32)
        .map(|i| route(p24(i), if i % 2 == 0 { &a_b } else { &abc }))
        .collect();
    s.apply(&routes).unwrap();
    s.settle().unwrap();
    let (x, y) = (p24(0), p24(1));
    let y_before = flows(&mut inst, y);
    assert_eq!(macs(&y_before), BTreeSet::from([1, 2, 3]));

    let r = s.withdraw_nexthops(&[addr(A)]).unwrap();
    assert_eq!((r.prefixes, r.writes.pathlist), (0, 2), "{r:?}");
    assert!(s.is_live(&addr(B)) && !s.is_live(&addr(A)));
    assert_eq!(macs(&flows(&mut inst, x)), BTreeSet::from([2]));
    let y_flipped = flows(&mut inst, y);
    assert_eq!(macs(&y_flipped), BTreeSet::from([2, 3]));
    for (before, now) in y_before.iter().zip(&y_flipped) {
        if *before != 1 {
            assert_eq!(before, now, "a flow of a surviving next-hop moved");
        }
    }
    assert_eq!(s.check(&routes).unwrap(), vec![]);

    // The RIB catches up: (A; B) → {B}, {A,B,C} → {B,C}. Both target path-lists are new and
    // inherit the groups their prefixes use: no group is written and no flow moves.
    let b = NhSet::new([(addr(B), 1)]);
    let bc = NhSet::new([(addr(B), 1), (addr(C), 1)]);
    let after: Vec<Route> = (0..50_000u32)
        .map(|i| route(p24(i), if i % 2 == 0 { &b } else { &bc }))
        .collect();
    let g_x = s.group_of(s.pathlist_of(&a_b).unwrap());
    let g_y = s.group_of(s.pathlist_of(&abc).unwrap());
    let r = s.apply(&after).unwrap();
    assert_eq!(r.prefixes, 50_000);
    assert_eq!(r.writes.nhg, 0, "{r:?}");
    assert_eq!(s.group_of(s.pathlist_of(&b).unwrap()), g_x);
    assert_eq!(s.group_of(s.pathlist_of(&bc).unwrap()), g_y);
    assert_eq!(flows(&mut inst, y), y_flipped);
    assert_eq!(macs(&flows(&mut inst, x)), BTreeSet::from([2]));
    assert_eq!(s.check(&after).unwrap(), vec![]);
    assert!(!s.uses_nexthop(&addr(A)));
    assert_eq!(s.restore_nexthops(None).unwrap(), None, "nothing uses A");
    assert_eq!(s.check(&after).unwrap(), vec![]);
}

/// A path through a withdrawn next-hop came back (from another session) before the mark was
/// lifted: lifting it puts the next-hop back into the path-lists that contain it.
#[test]
fn lifting_a_withdrawal_restores_path_lists_that_still_use_the_next_hop() {
    let mut inst = Instance::new("picrs", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    resolve_all(&mut s);
    let a_b = NhSet::with_backup([(addr(A), 1)], [(addr(B), 1)]);
    let routes = vec![route(p24(0), &a_b)];
    s.apply(&routes).unwrap();
    s.withdraw_nexthops(&[addr(A)]).unwrap();
    assert_eq!(macs(&flows(&mut inst, p24(0))), BTreeSet::from([2]));
    // Withdrawing again, or a resolution change of a withdrawn next-hop, keeps it dead.
    assert_eq!(s.withdraw_nexthops(&[addr(A)]).unwrap().writes.total(), 0);
    s.set_nexthops(&[(addr(A), Some(lo_nh(9)))]).unwrap();
    assert_eq!(macs(&flows(&mut inst, p24(0))), BTreeSet::from([2]));
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    let r = s.restore_nexthops(Some(&[addr(A)])).unwrap().unwrap();
    assert_eq!((r.prefixes, r.writes.pathlist), (0, 1));
    assert_eq!(macs(&flows(&mut inst, p24(0))), BTreeSet::from([9]));
    assert_eq!(s.check(&routes).unwrap(), vec![]);
}

/// A change of the backup alone moves prefixes to another path-list (the key is the pair) but
/// onto the same group: forwarding does not change and no group is written.
#[test]
fn a_backup_only_change_keeps_the_group_and_every_flow() {
    let mut inst = Instance::new("picbo", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    resolve_all(&mut s);
    let ab_c = NhSet::with_backup([(addr(A), 1), (addr(B), 1)], [(addr(C), 1)]);
    let ab_d = NhSet::with_backup([(addr(A), 1), (addr(B), 1)], [(addr(D), 1)]);
    let ab = NhSet::new([(addr(A), 1), (addr(B), 1)]);
    let before: Vec<Route> = (0..1000).map(|i| route(p24(i), &ab_c)).collect();
    s.apply(&before).unwrap();
    let f = flows(&mut inst, p24(7));
    let g = s.group_of(s.pathlist_of(&ab_c).unwrap());
    for next in [&ab_d, &ab] {
        let routes: Vec<Route> = (0..1000).map(|i| route(p24(i), next)).collect();
        let r = s.apply(&routes).unwrap();
        assert_eq!(
            (r.prefixes, r.writes.nhg, r.writes.nh),
            (1000, 0, 0),
            "{r:?}"
        );
        assert_eq!(s.group_of(s.pathlist_of(next).unwrap()), g);
        assert_eq!(flows(&mut inst, p24(7)), f);
        assert_eq!(s.check(&routes).unwrap(), vec![]);
    }
    // Same primary, different backups: distinct path-lists, one group.
    let mixed = vec![route(p24(0), &ab_c), route(p24(1), &ab_d)];
    s.apply(&mixed).unwrap();
    assert_ne!(s.pathlist_of(&ab_c), s.pathlist_of(&ab_d));
    assert_eq!(s.group_of(s.pathlist_of(&ab_d).unwrap()), g);
}

#[test]
fn nh_set_backups_are_canonical_and_never_repeat_a_primary() {
    let s = NhSet::with_backup(
        [(addr(B), 1), (addr(A), 0)],
        [(addr(A), 5), (addr(C), 1), (addr(C), 2)],
    );
    assert_eq!(s.members(), &[(addr(A), 1), (addr(B), 1)]);
    assert_eq!(s.backup(), &[(addr(C), 3)]);
    assert_eq!(s.all_addrs().count(), 3);
    assert_eq!(s.without_backup(), NhSet::new([(addr(A), 1), (addr(B), 1)]));
    assert_ne!(
        s,
        s.without_backup(),
        "the backup is part of the path-list key"
    );
    assert_eq!(
        NhSet::with_backup([(addr(A), 1)], []),
        NhSet::new([(addr(A), 1)])
    );
}
