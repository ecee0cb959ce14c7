//! Restart: a new engine adopts what the previous one left in the pinned maps and reconciles it to
//! the first full FIB by writing only the difference. Needs root (CAP_BPF).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use fib_ebpf::Engine4;
use fib_sync::{FibSync, NhL2, PinnedMaps, Route, RouteAction, SyncConfig};
use ipnet::IpNet;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const NHS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "2001:db8::9"];

/// A FIB with long and short IPv4 prefixes (tbl8 groups), IPv6, ECMP, blackholes.
fn fib(variant: u32) -> Vec<Route> {
    let (x, y, z) = (a(NHS[0]), a(NHS[1]), a(NHS[2]));
    let sets = [
        vec![(x, 1), (y, 1)],
        vec![(x, 1)],
        vec![(y, 2), (z, 1)],
        vec![(z, 1)],
    ];
    let mut v = Vec::new();
    for i in 0..3000u32 {
        if variant == 1 && i % 7 == 0 {
            continue; // withdrawn in the new FIB
        }
        let len = [24u8, 25, 28, 32, 20, 16][i as usize % 6];
        let addr = Ipv4Addr::from(0x1400_0000u32 + (i << 9) + ((i % 3) << 7));
        let p = IpNet::new(IpAddr::V4(addr), len).unwrap().trunc();
        let set = if variant == 1 && i % 11 == 0 {
            sets[(i as usize + 1) % 4].clone()
        } else {
            sets[i as usize % 4].clone()
        };
        v.push(Route::forward(p, set));
    }
    if variant == 1 {
        for i in 0..500u32 {
            let p = IpNet::new(IpAddr::V4(Ipv4Addr::from(0x3000_0000u32 + (i << 6))), 26).unwrap();
            v.push(Route::forward(p, sets[i as usize % 4].clone()));
        }
    }
    for i in 0..400u32 {
        if variant == 1 && i % 5 == 0 {
            continue;
        }
        let p: IpNet = format!("2001:db8:{:x}::/48", i + 1).parse().unwrap();
        v.push(Route::forward(
            p,
            sets[(i as usize + variant as usize) % 4].clone(),
        ));
    }
    v.push(Route {
        prefix: "192.0.2.128/25".parse().unwrap(),
        action: Some(RouteAction::Blackhole),
    });
    // Keep only the last route per prefix (generated prefixes may repeat).
    let mut seen = std::collections::HashSet::new();
    v.reverse();
    v.retain(|r| seen.insert(r.prefix));
    v
}

fn resolutions() -> Vec<(IpAddr, Option<NhL2>)> {
    NHS.iter()
        .enumerate()
        .map(|(i, s)| (a(s), Some(lo_nh(i as u8 + 1))))
        .collect()
}

#[test]
fn a_restart_with_the_same_fib_writes_nothing_and_a_changed_fib_only_the_difference() {
    let mut inst = Instance::new("restart", Engine4::Dir24);
    let cfg = SyncConfig {
        quarantine: Duration::ZERO,
        ..Default::default()
    };
    let fib_a = fib(0);
    let before = {
        let mut s = inst.sync(cfg.clone());
        s.set_nexthops(&resolutions()).unwrap();
        s.apply(&fib_a).unwrap();
        assert_eq!(s.check(&fib_a).unwrap(), vec![]);
        (s.ids_in_use(), s.tbl8_in_use())
        // dropped without any cleanup, as a killed process would be
    };
    let probes: Vec<IpAddr> = fib_a
        .iter()
        .map(|r| r.prefix.network())
        .step_by(7)
        .collect();
    let answers: Vec<(u32, [u8; 6])> = probes.iter().map(|&d| inst.send(d, 7)).collect();

    let maps = PinnedMaps::open(&inst.dir).unwrap();
    let (s, rep) = FibSync::restart(maps, cfg.clone(), &resolutions(), &fib_a).unwrap();
    eprintln!("same FIB: {rep:?}");
    assert_eq!(s.check(&fib_a).unwrap(), vec![]);
    let w = rep.batch.writes;
    assert_eq!(
        (w.nh, w.nhg, w.pathlist, w.dir24, w.dir8, w.fib6, w.tx_port),
        (0, 0, 0, 0, 0, 0, 0),
        "nothing to write: {w:?}"
    );
    assert_eq!(
        (s.ids_in_use(), s.tbl8_in_use()),
        before,
        "every id adopted, none leaked"
    );
    assert_eq!(rep.tbl8_kept, before.1);
    let again: Vec<(u32, [u8; 6])> = probes.iter().map(|&d| inst.send(d, 7)).collect();
    assert_eq!(answers, again, "every answer unchanged");
    drop(s);

    // The RIB's first full FIB differs: withdrawn, added, changed next-hop sets.
    let fib_b = fib(1);
    let maps = PinnedMaps::open(&inst.dir).unwrap();
    let (mut s, rep) = FibSync::restart(maps, cfg.clone(), &resolutions(), &fib_b).unwrap();
    eprintln!("changed FIB: {rep:?}");
    assert_eq!(s.check(&fib_b).unwrap(), vec![]);
    assert!(rep.pathlists_kept >= 3, "old path-lists re-used: {rep:?}");
    assert!(
        rep.batch.writes.dir24 < 1 << 20,
        "only differing tbl24 entries are written"
    );
    // Nothing leaked: the same state built from scratch uses as many ids and groups.
    for _ in 0..3 {
        s.tick();
    }
    let fresh_inst = Instance::new("restart-fresh", Engine4::Dir24);
    let mut fresh = fresh_inst.sync(cfg);
    fresh.set_nexthops(&resolutions()).unwrap();
    fresh.apply(&fib_b).unwrap();
    assert_eq!(
        (s.ids_in_use(), s.tbl8_in_use()),
        (fresh.ids_in_use(), fresh.tbl8_in_use())
    );
    for r in fib_b.iter().step_by(5) {
        let d = r.prefix.network();
        let (act, _) = inst.send(d, 9);
        assert_eq!(
            act,
            if matches!(r.action, Some(RouteAction::Blackhole)) {
                XDP_DROP
            } else {
                XDP_REDIRECT
            },
            "{d}"
        );
    }
    // And it keeps working as an engine.
    let withdraw: Vec<Route> = fib_b.iter().map(|r| Route::withdraw(r.prefix)).collect();
    s.apply(&withdraw).unwrap();
    assert_eq!(s.check(&[]).unwrap(), vec![]);
    assert_eq!(s.ids_in_use(), (0, 0, 0));
}
