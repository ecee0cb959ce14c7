//! The kernel mirror in a namespace: the routes the maps hold go into a kernel table (through
//! nexthop objects and groups), `ip route get` in that table resolves like the maps, a next-hop
//! death is one kernel write, and its recovery restores the routes. Needs root.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::*;
use fib_ebpf::Engine4;
use fib_ebpf::abi::{PL_BLACKHOLE, PL_NO_ROUTE, PL_PASS};
use fib_sync::{KernelMirror, KernelNh, MirrorConfig, NhSet, Route, RouteAction, SyncConfig};
use ipnet::IpNet;

const TABLE: u32 = 1000;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `ip route get` inside `ns` (the rule sends lookups to TABLE first): Ok(gateway) or Err(text).
fn route_get(ns: &Ns, dst: IpAddr) -> Result<IpAddr, String> {
    let out = ns.exec("ip", &["route", "get", &dst.to_string()]);
    let s =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let w: Vec<&str> = s.split_whitespace().collect();
    match w.iter().position(|x| *x == "via") {
        Some(i) => w[i + 1].parse().map_err(|_| s.clone()),
        None => Err(s),
    }
}

/// The longest route of `model` covering `dst` for which `keep` holds.
fn longest(
    model: &BTreeMap<IpNet, RouteAction>,
    dst: IpAddr,
    keep: impl Fn(&RouteAction) -> bool,
) -> Option<RouteAction> {
    model
        .iter()
        .filter(|(p, a)| p.contains(&dst) && keep(a))
        .max_by_key(|(p, _)| p.prefix_len())
        .map(|(_, a)| a.clone())
}

#[test]
fn the_kernel_table_resolves_like_the_maps_and_a_next_hop_death_is_one_write() {
    let ns = Ns::new("mirror");
    for (a, b, v4, v6) in [
        ("u1", "p1", "10.91.1.1/24", "fd91:1::1/64"),
        ("u2", "p2", "10.91.2.1/24", "fd91:2::1/64"),
    ] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
        ns.ip(&["link", "set", b, "up"]);
        ns.ip(&["addr", "add", v4, "dev", a]);
        ns.ip(&["addr", "add", v6, "dev", a, "nodad"]);
    }
    ns.ip(&["rule", "add", "pref", "100", "lookup", &TABLE.to_string()]);
    ns.ip(&[
        "-6",
        "rule",
        "add",
        "pref",
        "100",
        "lookup",
        &TABLE.to_string(),
    ]);
    let (u1, u2) = (ns.ifindex("u1"), ns.ifindex("u2"));
    // BGP next-hops and how the kernel reaches them.
    let (a, b, c) = (addr("192.0.2.1"), addr("192.0.2.2"), addr("2001:db8::1"));
    let gw_a = KernelNh {
        oif: u1,
        gateway: addr("10.91.1.2"),
    };
    let gw_b = KernelNh {
        oif: u2,
        gateway: addr("10.91.2.2"),
    };
    let gw_c = KernelNh {
        oif: u1,
        gateway: addr("fd91:1::2"),
    };
    let gw_of = |x: IpAddr| {
        if x == a {
            gw_a.gateway
        } else if x == b {
            gw_b.gateway
        } else {
            gw_c.gateway
        }
    };

    let inst = Instance::new("mirror", Engine4::Dir24);
    let mut s = inst.sync(SyncConfig::default());
    s.set_nexthops(&[
        (a, Some(lo_nh(1))),
        (b, Some(lo_nh(2))),
        (c, Some(lo_nh(3))),
    ])
    .unwrap();
    let mirror: KernelMirror = ns.run_in(|| {
        KernelMirror::start(MirrorConfig {
            table: TABLE,
            ..MirrorConfig::default()
        })
        .expect("start the mirror")
    });
    mirror.nexthops(vec![(a, Some(gw_a)), (b, Some(gw_b)), (c, Some(gw_c))]);

    let sets = [
        NhSet::new([(a, 1)]),
        NhSet::new([(b, 1)]),
        NhSet::new([(a, 1), (b, 1)]),
    ];
    let mut routes = Vec::new();
    // Nested IPv4 prefixes of several lengths (/8 ⊃ /16 ⊃ /24 ⊃ /28) with every kind.
    for i in 0..40u32 {
        let base = (20 + i) << 24;
        for (k, (off, len)) in [
            (0u32, 8u8),
            (0x0001_0000, 16),
            (0x0001_0100, 24),
            (0x0001_0140, 28),
        ]
        .into_iter()
        .enumerate()
        {
            let p = IpNet::new(IpAddr::V4((base + off).into()), len).unwrap();
            let action = match (i as usize + k) % 5 {
                3 => RouteAction::Blackhole,
                4 if len > 8 => RouteAction::PassToKernel,
                n => RouteAction::Forward(sets[n % 3].clone()),
            };
            routes.push(Route {
                prefix: p,
                action: Some(action),
            });
        }
        let p6 = IpNet::new(
            IpAddr::V6(((0x2a00_0000_u128 + u128::from(i)) << 96).into()),
            32,
        )
        .unwrap()
        .trunc();
        routes.push(Route::forward(p6, [(c, 1)]));
    }
    s.apply(&routes).unwrap();
    mirror.routes(routes.clone());
    mirror.wait_idle();
    assert_eq!(
        mirror
            .stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let model: BTreeMap<IpNet, RouteAction> = routes
        .iter()
        .map(|r| (r.prefix, r.action.clone().unwrap()))
        .collect();

    // Every sampled destination: the maps' answer and the kernel's agree with the model.
    let dests: Vec<IpAddr> = (0..40u32)
        .flat_map(|i| {
            let base = (20 + i) << 24;
            [
                base + 0x0900_0001,
                base + 0x0001_2001,
                base + 0x0001_0105,
                base + 0x0001_0145,
            ]
            .map(|x| IpAddr::V4(x.into()))
        })
        .chain((0..40u128).map(|i| IpAddr::V6(((0x2a00_0000 + i) << 96 | 7).into())))
        .collect();
    let check = |s: &fib_sync::FibSync, dead: Option<IpAddr>| {
        let alive = |set: &NhSet| -> Vec<IpAddr> {
            set.addrs()
                .filter(|x| Some(*x) != dead)
                .map(gw_of)
                .collect()
        };
        for &d in &dests {
            // The maps: the longest prefix, whatever its kind (path-list ids survive a death).
            let pl = s.maps().lookup(d, false);
            match longest(&model, d, |_| true) {
                Some(RouteAction::Forward(set)) => {
                    assert_eq!(Some(pl), s.pathlist_of(&set), "{d}: maps")
                }
                Some(RouteAction::Blackhole) => assert_eq!(pl, PL_BLACKHOLE, "{d}: maps"),
                Some(_) => assert_eq!(pl, PL_PASS, "{d}: maps"),
                None => assert_eq!(pl, PL_NO_ROUTE, "{d}: maps"),
            }
            // The kernel table holds forward routes with a live member and blackholes; anything
            // else falls through to a shorter route (or out of the table).
            let got = route_get(&ns, d);
            let kernel = longest(&model, d, |a| match a {
                RouteAction::Forward(set) => !alive(set).is_empty(),
                RouteAction::Blackhole => true,
                _ => false,
            });
            match kernel {
                Some(RouteAction::Forward(set)) => {
                    let gw = got.unwrap_or_else(|e| panic!("{d}: kernel has no route: {e}"));
                    assert!(
                        alive(&set).contains(&gw),
                        "{d}: kernel via {gw}, set {set:?}"
                    );
                }
                Some(_) => {
                    let e = got.expect_err("blackhole");
                    assert!(!e.contains(" via "), "{d}: {e}");
                }
                None => assert!(got.is_err(), "{d}: kernel {got:?}, nothing expected"),
            }
        }
    };
    check(&s, None);

    // A dies: one kernel write; prefixes over {A, B} go via B, those over {A} alone leave the table.
    let before = mirror
        .stats()
        .messages
        .load(std::sync::atomic::Ordering::Relaxed);
    s.set_nexthops(&[(a, None)]).unwrap();
    mirror.nexthops(vec![(a, None)]);
    mirror.wait_idle();
    let writes = mirror
        .stats()
        .messages
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert_eq!(writes, 1, "a next-hop death is one kernel write");
    check(&s, Some(a));

    // A comes back: the groups are repaired and the emptied routes installed again.
    s.set_nexthops(&[(a, Some(lo_nh(1)))]).unwrap();
    mirror.nexthops(vec![(a, Some(gw_a))]);
    mirror.wait_idle();
    check(&s, None);
    assert_eq!(
        mirror
            .stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Withdrawals remove the routes; a new mirror over the same table starts clean.
    let withdraw: Vec<Route> = routes.iter().map(|r| Route::withdraw(r.prefix)).collect();
    mirror.routes(withdraw);
    mirror.wait_idle();
    for &d in &dests {
        assert!(
            route_get(&ns, d).is_err(),
            "{d} still routed after withdrawal"
        );
    }
    mirror.routes(routes.clone());
    mirror.wait_idle();
    drop(mirror);
    let again = ns.run_in(|| {
        KernelMirror::start(MirrorConfig {
            table: TABLE,
            ..MirrorConfig::default()
        })
        .expect("restart the mirror")
    });
    for &d in &dests {
        assert!(
            route_get(&ns, d).is_err(),
            "{d}: what the previous mirror left was removed at start"
        );
    }
    drop(again);
}
