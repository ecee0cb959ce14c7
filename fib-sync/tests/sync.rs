//! The sync engine against the real maps of a loaded forwarder, answers checked through the XDP
//! program itself (BPF_PROG_TEST_RUN). Needs root (CAP_BPF).

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use fib_ebpf::Engine4;
use fib_ebpf::abi::{PL_BLACKHOLE, PL_FIRST_DYNAMIC};
use fib_sync::{BulkLoad, NhSet, Route, RouteAction, SyncConfig};
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

#[test]
fn ecmp_routes_forward_through_both_next_hops_and_the_maps_check_clean() {
    let mut inst = Instance::new("ecmp", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
        .unwrap();
    let routes = vec![
        Route::forward(net("10.0.0.0/8"), [(addr(A), 1), (addr(B), 1)]),
        Route::forward(net("10.1.0.0/16"), [(addr(B), 1)]),
        Route::forward(net("10.1.2.128/25"), [(addr(A), 1)]),
        Route::forward(net("2001:db8::/32"), [(addr(A), 1), (addr(B), 1)]),
        Route {
            prefix: net("192.0.2.0/24"),
            action: Some(RouteAction::Blackhole),
        },
    ];
    let r = s.apply(&routes).unwrap();
    assert_eq!(r.prefixes, 5);
    assert_eq!(
        r.writes.nh, 2,
        "one next-hop per distinct (ifindex, MAC, VLAN)"
    );
    assert_eq!(r.writes.nhg, 3, "{{A,B}}, {{B}}, {{A}}");
    assert_eq!(s.check(&routes).unwrap(), vec![]);

    let mut macs = HashSet::new();
    for port in 0..64 {
        let (act, dmac) = inst.send(addr("10.9.9.9"), 1000 + port);
        assert_eq!(act, XDP_REDIRECT);
        macs.insert(dmac[5]);
    }
    assert_eq!(
        macs,
        HashSet::from([1, 2]),
        "flows spread over both next-hops"
    );
    assert_eq!(inst.send(addr("10.1.9.9"), 1).1[5], 2);
    assert_eq!(inst.send(addr("10.1.2.200"), 1).1[5], 1);
    assert_eq!(inst.send(addr("10.1.2.1"), 1).1[5], 2);
    assert_eq!(inst.send(addr("192.0.2.7"), 1).0, XDP_DROP);
    assert_eq!(inst.send(addr("11.0.0.1"), 1).0, XDP_PASS);
    let (act, _) = inst.send(addr("2001:db8::1"), 1);
    assert_eq!(act, XDP_REDIRECT);

    // Withdraw everything: nothing is left in use, ids wait in quarantine, the maps are empty.
    let withdraw: Vec<Route> = routes.iter().map(|r| Route::withdraw(r.prefix)).collect();
    s.apply(&withdraw).unwrap();
    assert_eq!(s.ids_in_use(), (0, 0, 0));
    assert_eq!(s.tbl8_in_use(), 0);
    assert_eq!(s.check(&[]).unwrap(), vec![]);
    assert_eq!(inst.send(addr("10.9.9.9"), 1).0, XDP_PASS);
}

#[test]
fn unresolved_next_hops_pass_to_the_kernel_until_they_resolve() {
    let mut inst = Instance::new("unres", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    let routes = vec![Route::forward(net("198.51.100.0/24"), [(addr(A), 1)])];
    s.apply(&routes).unwrap();
    assert_eq!(inst.send(addr("198.51.100.1"), 1).0, XDP_PASS);
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    let r = s.set_nexthops(&[(addr(A), Some(lo_nh(7)))]).unwrap();
    assert_eq!((r.writes.pathlist, r.prefixes), (1, 0));
    assert_eq!(
        inst.send(addr("198.51.100.1"), 1),
        (XDP_REDIRECT, lo_nh(7).dmac)
    );
    assert_eq!(s.check(&routes).unwrap(), vec![]);
}

/// 200k prefixes over two next-hops; one dies. The work is one store per path-list containing it,
/// independent of the number of prefixes, and every flow then uses the survivor.
#[test]
fn a_next_hop_death_rewrites_only_its_path_lists_prefix_independent() {
    let mut inst = Instance::new("pic", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
        .unwrap();
    let sets = [
        vec![(addr(A), 1), (addr(B), 1)],
        vec![(addr(A), 1)],
        vec![(addr(B), 1)],
        vec![(addr(A), 3), (addr(B), 1)],
    ];
    let mut routes = Vec::new();
    for i in 0..200_000u32 {
        // 200k distinct /24s from 20.0.0.0 on, spread over the four sets.
        let p = IpNet::new(IpAddr::V4((0x1400_0000 + (i << 8)).into()), 24).unwrap();
        routes.push(Route::forward(p, sets[i as usize % 4].clone()));
    }
    s.apply(&routes).unwrap();
    assert_eq!(s.len(), 200_000);
    let t = Instant::now();
    let r = s.set_nexthops(&[(addr(A), None)]).unwrap();
    let map_work = t.elapsed();
    eprintln!(
        "next-hop death with 200k prefixes: {:?} writes, {map_work:?} of map work",
        r.writes
    );
    assert_eq!(r.prefixes, 0);
    assert_eq!(
        r.writes.dir24 + r.writes.dir8 + r.writes.fib4 + r.writes.fib6,
        0
    );
    assert_eq!(
        r.writes.pathlist, 3,
        "the three path-lists containing A, one store each"
    );
    assert!(
        r.writes.nhg <= 2,
        "new groups: {{B}} (resilient from {{A,B}}), not per prefix"
    );
    let t = Instant::now();
    for i in (0..200_000u32).step_by(997) {
        let d = IpAddr::V4((0x1400_0000 + (i << 8) + 9).into());
        let (act, dmac) = inst.send(d, i as u16);
        if i % 4 == 1 {
            assert_eq!(act, XDP_PASS, "{d}: only A, now unresolved");
        } else {
            assert_eq!((act, dmac[5]), (XDP_REDIRECT, 2), "{d} uses the survivor");
        }
    }
    eprintln!(
        "all sampled flows checked on the survivor {:?} after the batch",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    eprintln!("consistency check of 200k prefixes: {:?}", t.elapsed());

    // Incremental batches after the bulk load (its DIR-24-8 shadow is joined first): withdraw some
    // /24s, add more-specifics under others.
    let mut delta = Vec::new();
    for i in (0..200_000u32).step_by(1000) {
        let base = 0x1400_0000 + (i << 8);
        delta.push(Route::withdraw(
            IpNet::new(IpAddr::V4(base.into()), 24).unwrap(),
        ));
        let sub = IpNet::new(IpAddr::V4((base + 256 + 128).into()), 25).unwrap();
        delta.push(Route::forward(sub, [(addr(B), 1)]));
    }
    s.apply(&delta).unwrap();
    let mut now: std::collections::BTreeMap<IpNet, Route> =
        routes.into_iter().map(|r| (r.prefix, r)).collect();
    for r in delta {
        match r.action {
            Some(_) => now.insert(r.prefix, r),
            None => now.remove(&r.prefix),
        };
    }
    let now: Vec<Route> = now.into_values().collect();
    assert_eq!(s.check(&now).unwrap(), vec![]);
    assert_eq!(s.tbl8_in_use(), 200);
}

#[test]
fn freed_ids_are_not_reused_within_the_quarantine_window() {
    let inst = Instance::new("quar", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig {
        quarantine: Duration::from_millis(300),
        ..Default::default()
    });
    s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
        .unwrap();
    let p = net("203.0.113.0/24");
    s.apply(&[Route::forward(p, [(addr(A), 1)])]).unwrap();
    let pl = s.route(&p).unwrap();
    assert_eq!(pl, PL_FIRST_DYNAMIC);
    let nhg = s.group_of(pl).unwrap();
    s.apply(&[Route::withdraw(p)]).unwrap();
    assert!(s.pl_id_quarantined(pl) && s.nhg_id_quarantined(nhg));
    // Batches go by but the time has not: a new set gets fresh ids.
    for _ in 0..3 {
        s.tick();
    }
    s.apply(&[Route::forward(p, [(addr(B), 1)])]).unwrap();
    let pl2 = s.route(&p).unwrap();
    assert_ne!(pl2, pl);
    assert_ne!(s.group_of(pl2).unwrap(), nhg);
    s.apply(&[Route::withdraw(p)]).unwrap();
    // Time goes by but not two batches: still quarantined.
    std::thread::sleep(Duration::from_millis(350));
    s.apply(&[Route::forward(
        net("203.0.114.0/24"),
        [(addr(A), 2), (addr(B), 1)],
    )])
    .unwrap();
    assert!(
        s.pl_id_quarantined(pl2),
        "one batch after the retirement of pl2"
    );
    assert!(
        !s.pl_id_quarantined(pl),
        "pl: long enough and many batches ago"
    );
    s.tick();
    assert!(!s.pl_id_quarantined(pl) && !s.pl_id_quarantined(pl2));
    s.apply(&[Route::forward(p, [(addr(A), 1)])]).unwrap();
    let pl3 = s.route(&p).unwrap();
    assert!(pl3 == pl || pl3 == pl2, "released ids are reused");
    assert_eq!(
        s.route(&net("203.0.114.0/24")).map(|x| x > PL_BLACKHOLE),
        Some(true)
    );
}

#[test]
fn the_lpm_engine_gets_the_same_answers() {
    let mut inst = Instance::new("lpm", Engine4::Lpm);
    let mut s = inst.sync(SyncConfig {
        engine4: Engine4::Lpm,
        ..Default::default()
    });
    s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
        .unwrap();
    let routes = vec![
        Route::forward(net("10.0.0.0/8"), [(addr(A), 1)]),
        Route::forward(net("10.1.2.3/32"), [(addr(B), 1)]),
    ];
    s.apply(&routes).unwrap();
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    assert_eq!(inst.send(addr("10.1.2.3"), 1).1[5], 2);
    assert_eq!(inst.send(addr("10.1.2.4"), 1).1[5], 1);
    let same: Vec<Route> = vec![Route::withdraw(net("10.1.2.3/32"))];
    s.apply(&same).unwrap();
    assert_eq!(inst.send(addr("10.1.2.3"), 1).1[5], 1);
    assert_eq!(s.check(&routes[..1]).unwrap(), vec![]);
    let _ = NhSet::new([(addr(A), 1)]);
}

/// The check is only worth something if it sees damage: tamper with each kind of map entry and
/// expect it reported.
#[test]
fn the_consistency_check_reports_tampered_entries() {
    let inst = Instance::new("tamper", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
        .unwrap();
    let routes = vec![
        Route::forward(net("10.0.0.0/8"), [(addr(A), 1), (addr(B), 1)]),
        Route::forward(net("10.1.2.128/25"), [(addr(A), 1)]),
        Route::forward(net("2001:db8::/32"), [(addr(B), 1)]),
    ];
    s.apply(&routes).unwrap();
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    let m = fib_sync::PinnedMaps::open(&inst.dir).unwrap();
    let kinds = |s: &fib_sync::FibSync| -> Vec<String> {
        s.check(&routes)
            .unwrap()
            .iter()
            .map(|d| {
                format!("{d:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };

    // A tbl24 entry answering another path-list.
    let old = m.fib.dir24_load(0x0a0505);
    m.fib.dir24_store(0x0a0505, fib_ebpf::abi::PL_BLACKHOLE);
    assert_eq!(kinds(&s), vec!["Answer"]);
    m.fib.dir24_store(0x0a0505, old);

    // A path-list pointing at another group.
    let pl = s.route(&net("10.0.0.0/8")).unwrap();
    let g = m.fib.pathlist_get(pl).unwrap();
    m.fib.pathlist_set(pl, fib_ebpf::abi::NHG_PASS).unwrap();
    assert_eq!(kinds(&s), vec!["Pathlist"]);
    m.fib.pathlist_set(pl, g).unwrap();

    // A next-hop with a stale MAC.
    let id = s.nh_id(&lo_nh(2)).unwrap();
    m.fib
        .nh_write(
            id,
            &fib_ebpf::abi::Nh {
                ifindex: 1,
                dmac: [2, 0, 0, 0, 0, 9],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(kinds(&s), vec!["NextHop"]);
    let l2 = lo_nh(2);
    m.fib
        .nh_write(
            id,
            &fib_ebpf::abi::Nh {
                ifindex: 1,
                smac: l2.smac,
                dmac: l2.dmac,
                ..Default::default()
            },
        )
        .unwrap();

    // A group whose buckets changed under the engine.
    let g = s.group_of(pl).unwrap();
    let table = m.fib.nhg_read(g).unwrap();
    m.fib.nhg_write(g, &table[..128]).unwrap();
    assert_eq!(kinds(&s), vec!["Group"]);
    m.fib.nhg_write(g, &table).unwrap();

    // An IPv6 prefix missing from the trie, and a stray one.
    m.fib
        .fib6_remove("2001:db8::".parse().unwrap(), 32)
        .unwrap();
    m.fib
        .fib6_insert(
            "2001:db9::".parse().unwrap(),
            32,
            fib_ebpf::abi::FibVal {
                pl_id: pl,
                flags: 0,
            },
        )
        .unwrap();
    assert_eq!(kinds(&s), vec!["Trie", "Trie"]);
    m.fib
        .fib6_remove("2001:db9::".parse().unwrap(), 32)
        .unwrap();
    let pl6 = s.route(&net("2001:db8::/32")).unwrap();
    m.fib
        .fib6_insert(
            "2001:db8::".parse().unwrap(),
            32,
            fib_ebpf::abi::FibVal {
                pl_id: pl6,
                flags: 0,
            },
        )
        .unwrap();
    assert_eq!(s.check(&routes).unwrap(), vec![]);

    // A route the engine does not know about is reported against the expected FIB.
    let mut more = routes.clone();
    more.push(Route::forward(net("192.0.2.0/24"), [(addr(A), 1)]));
    let d = s.check(&more).unwrap();
    assert!(
        d.iter()
            .any(|x| matches!(x, fib_sync::Mismatch::Route { .. })),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|x| matches!(x, fib_sync::Mismatch::Answer { .. })),
        "{d:?}"
    );
}

#[test]
fn a_bulk_load_takes_the_last_route_of_a_repeated_prefix_and_answers_before_it_settles() {
    // As a list of routes, and gathered as a BulkLoad (the daemon's initial load).
    for (engine, gathered) in [
        (Engine4::Dir24, false),
        (Engine4::Lpm, false),
        (Engine4::Dir24, true),
    ] {
        let inst = Instance::new("bulkdup", engine);
        let mut s = inst.sync(SyncConfig {
            engine4: engine,
            bulk_threshold: 16,
            ..SyncConfig::default()
        });
        s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
            .unwrap();
        let mut routes = Vec::new();
        for i in 0..64u32 {
            let p4 = IpNet::new(IpAddr::V4((0x0a00_0000 + (i << 8)).into()), 24).unwrap();
            let p4l = IpNet::new(IpAddr::V4((0x0a00_0000 + (i << 8) + 64).into()), 26).unwrap();
            let p6 = IpNet::new(
                IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i) << 64).into()),
                64,
            )
            .unwrap();
            routes.push(Route::forward(p4, [(addr(A), 1)]));
            routes.push(Route::forward(p4l, [(addr(A), 1)]));
            routes.push(Route::forward(p6, [(addr(A), 1)]));
            // Repeated later in the batch: the last one wins (B, blackhole or a withdrawal).
            match i % 3 {
                0 => {
                    routes.push(Route::forward(p4, [(addr(B), 1)]));
                    routes.push(Route::forward(p6, [(addr(B), 1)]));
                }
                1 => {
                    routes.push(Route::withdraw(p4l));
                    routes.push(Route::withdraw(p6));
                }
                _ => routes.push(Route {
                    prefix: p4,
                    action: Some(RouteAction::Blackhole),
                }),
            }
        }
        let r = if gathered {
            let mut load = BulkLoad::new();
            for r in &routes {
                assert!(load.push(r.prefix, r.action.as_ref()));
            }
            s.apply_load(load).unwrap()
        } else {
            s.apply(&routes).unwrap()
        };
        let mut want: std::collections::BTreeMap<IpNet, Route> = Default::default();
        for r in &routes {
            match r.action {
                Some(_) => want.insert(r.prefix, r.clone()),
                None => want.remove(&r.prefix),
            };
        }
        assert_eq!(r.prefixes, want.len() as u64);
        // Answers from the loaded routes before the background shadow is joined.
        let pl_b = s.pathlist_of(&NhSet::new([(addr(B), 1)])).unwrap();
        assert_eq!(s.len(), want.len());
        assert_eq!(s.route(&net("10.0.0.0/24")), Some(pl_b));
        assert_eq!(s.route(&net("10.0.2.0/24")), Some(PL_BLACKHOLE));
        assert_eq!(
            s.route(&net("10.0.1.64/26")),
            None,
            "withdrawn later in the batch"
        );
        assert_eq!(s.route(&net("2001:db8:0:1::/64")), None);
        let want: Vec<Route> = want.into_values().collect();
        assert_eq!(
            s.check(&want).unwrap(),
            vec![],
            "{engine:?}, before settling"
        );
        assert!(s.load_pending(), "the IPv6 table is joined later");
        s.settle().unwrap();
        assert!(!s.load_pending(), "settled: the sorted routes are dropped");
        assert_eq!(s.check(&want).unwrap(), vec![], "{engine:?}, settled");
        assert_eq!(s.tbl8_in_use(), (0..64).filter(|i| i % 3 != 1).count());
        if gathered {
            // A load into maps that hold routes is an ordinary batch.
            let mut load = BulkLoad::new();
            for i in 0..32u32 {
                let p = IpNet::new(IpAddr::V4((0x0a00_0000 + (i << 8)).into()), 24).unwrap();
                load.push(p, None);
            }
            let r = s.apply_load(load).unwrap();
            assert_eq!(r.prefixes, 32);
            assert_eq!(s.route(&net("10.0.0.0/24")), None);
            assert_eq!(s.route(&net("10.0.33.0/24")), Some(pl_b));
            let want: Vec<Route> = want
                .into_iter()
                .filter(|r| !(r.prefix.prefix_len() == 24 && r.prefix < net("10.0.32.0/24")))
                .collect();
            assert_eq!(s.check(&want).unwrap(), vec![], "after the second load");
        }
    }
}

/// A bulk load with several trie batches of IPv6 (the trie writer and the DIR-24-8 thread share
/// them) and nested IPv4 prefixes over unrouted gaps: every IPv6 prefix is in the trie once, the
/// maps check clean, and tbl24 is written only where a route is (a fresh map reads as no route).
#[test]
fn a_bulk_load_shares_the_trie_batches_and_writes_only_routed_tbl24_entries() {
    let inst = Instance::new("bulkshare", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    s.set_nexthops(&[(addr(A), Some(lo_nh(1))), (addr(B), Some(lo_nh(2)))])
        .unwrap();
    let mut routes = Vec::new();
    let n6 = 20_000u32;
    for i in 0..n6 {
        // /56s of 2001:db8::/32, every seventh replaced by a /44 that covers some of them.
        let p6 = if i % 7 == 0 {
            IpNet::new(
                IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i / 7) << 84).into()),
                44,
            )
        } else {
            IpNet::new(
                IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i) << 72).into()),
                56,
            )
        }
        .unwrap();
        let nh = if i % 2 == 0 { A } else { B };
        routes.push(Route::forward(p6.trunc(), [(addr(nh), 1)]));
    }
    // 10.0.0.0/16 with /24s and /28s under it, and /24s of 11.0.0.0/8 (no cover).
    routes.push(Route::forward(net("10.0.0.0/16"), [(addr(A), 1)]));
    for i in 0..256u32 {
        let p = IpNet::new(IpAddr::V4((0x0a00_0000 + (i << 8)).into()), 24).unwrap();
        if i % 3 == 0 {
            routes.push(Route::forward(p, [(addr(B), 1)]));
        }
        let q = IpNet::new(IpAddr::V4((0x0b00_0000 + (i << 12)).into()), 24).unwrap();
        routes.push(Route::forward(q, [(addr(A), 1)]));
        if i % 5 == 0 {
            let l = IpNet::new(IpAddr::V4((0x0a00_0000 + (i << 8) + 32).into()), 28).unwrap();
            routes.push(Route::forward(l, [(addr(A), 1), (addr(B), 1)]));
        }
    }
    let r = s.apply(&routes).unwrap();
    assert_eq!(r.writes.fib6, u64::from(n6));
    let groups = 256 / 5 + 1;
    // tbl24: the /16's 256 entries (each a value or a group link) and 256 uncovered /24s.
    assert_eq!(r.writes.dir24, 256 + 256, "no write to unrouted entries");
    assert_eq!(r.writes.dir8, groups * 256);
    let in_trie = s.maps().fib6_entries().unwrap();
    assert_eq!(in_trie.len(), n6 as usize);
    assert_eq!(s.check(&routes).unwrap(), vec![]);
    s.settle().unwrap();
    assert_eq!(s.check(&routes).unwrap(), vec![]);
}

#[test]
fn a_next_hop_death_with_a_million_prefixes_is_one_store_per_path_list() {
    let inst = Instance::new("pic1m", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    let c = addr("192.0.2.3");
    s.set_nexthops(&[
        (addr(A), Some(lo_nh(1))),
        (addr(B), Some(lo_nh(2))),
        (c, Some(lo_nh(3))),
    ])
    .unwrap();
    let sets = [
        NhSet::new([(addr(A), 1)]),
        NhSet::new([(addr(B), 1)]),
        NhSet::new([(addr(A), 1), (addr(B), 1)]),
        NhSet::new([(addr(A), 2), (addr(B), 1), (c, 1)]),
        NhSet::new([(addr(B), 1), (c, 1)]),
    ];
    let routes: Vec<Route> = (0..1_000_000u32)
        .map(|i| Route {
            prefix: IpNet::new(IpAddr::V4((0x1400_0000 + (i << 8)).into()), 24).unwrap(),
            action: Some(RouteAction::Forward(sets[i as usize % sets.len()].clone())),
        })
        .collect();
    s.apply(&routes).unwrap();
    s.settle().unwrap();
    for round in 0..3 {
        let r = s.set_nexthops(&[(addr(A), None)]).unwrap();
        assert_eq!(r.prefixes, 0);
        assert_eq!(
            r.writes.dir24 + r.writes.dir8 + r.writes.fib4 + r.writes.fib6,
            0,
            "round {round}: no prefix entry is written"
        );
        assert_eq!(
            r.writes.pathlist, 3,
            "round {round}: {{A}}, {{A,B}} and {{A,B,C}}: one store each"
        );
        assert!(
            r.writes.nhg <= 1,
            "round {round}: at most the new {{B,C}} table of {{A,B,C}} ({{B}} exists): {:?}",
            r.writes
        );
        assert_eq!(r.writes.nh, 0);
        let r = s.set_nexthops(&[(addr(A), Some(lo_nh(1)))]).unwrap();
        assert_eq!((r.writes.pathlist, r.prefixes), (3, 0), "recovery");
    }
    // The maps' answers follow: {A} passes to the kernel, {A,B} uses B's group.
    s.set_nexthops(&[(addr(A), None)]).unwrap();
    let pl_ab = s.pathlist_of(&sets[2]).unwrap();
    let pl_b = s.pathlist_of(&sets[1]).unwrap();
    assert_eq!(s.group_of(pl_ab), s.group_of(pl_b));
    assert_eq!(
        s.group_of(s.pathlist_of(&sets[0]).unwrap()),
        Some(fib_ebpf::abi::NHG_PASS)
    );
}
