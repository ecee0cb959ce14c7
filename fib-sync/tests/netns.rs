//! Next-hop resolution against the real kernel in namespaces, and traffic through the XDP
//! forwarder: connected and recursive next-hops, managed neighbours, a neighbour's MAC change, a
//! link going down under one ECMP member. Needs root.
//!
//! ```text
//!   S (s0 10.0.1.2) ── rs [R, XDP] r1 ── n1 [N1, xdp_pass] lo 10.99.1.1, 10.98.1.1
//!                                  r2 ── n2 [N2, xdp_pass] lo 10.99.1.1
//! ```

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use aya::programs::XdpMode;
use common::*;
use fib_ebpf::abi::StatReason;
use fib_ebpf::{AttachMode, Engine4};
use fib_sync::{Resolver, ResolverConfig, Route, SyncConfig, Syncer};
use ipnet::IpNet;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Polls the resolver until `done` holds (events arrive asynchronously), at most 10 s.
fn poll_until(
    sy: &mut Syncer,
    mut done: impl FnMut(&Syncer) -> bool,
) -> Vec<fib_sync::BatchReport> {
    let t = Instant::now();
    let mut reports = Vec::new();
    while !done(sy) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "condition not reached in 10 s"
        );
        let (rep, _) = sy.poll(Duration::from_millis(200)).expect("poll");
        reports.extend(rep);
    }
    reports
}

#[test]
fn connected_recursive_and_unreachable_next_hops_resolve_with_managed_neighbours() {
    let t = topo("res");
    t.r.ip(&[
        "route",
        "add",
        "10.77.0.0/16",
        "via",
        "198.51.100.2",
        "metric",
        "30",
    ]);
    let n1_mac = t.n1.mac("n1");
    let n2_mac = t.n2.mac("n2");
    let (r1, r2) = (t.r.ifindex("r1"), t.r.ifindex("r2"));
    t.r.run_in(|| {
        let mut res = Resolver::new(ResolverConfig::default()).expect("resolver");
        for nh in ["192.0.2.2", "10.77.0.1", "2001:db8:1::2", "203.0.113.9"] {
            res.track(a(nh)).expect("track");
        }
        let t0 = Instant::now();
        while res.tracked().filter(|(_, r)| r.l2.is_some()).count() < 3 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "neighbours did not resolve: {:?}",
                res.tracked().collect::<Vec<_>>()
            );
            res.poll(Duration::from_millis(200)).expect("poll");
        }
        let c = res.get(&a("192.0.2.2")).unwrap();
        assert!(c.reachable);
        assert_eq!(
            c.neighbour,
            Some(a("192.0.2.2")),
            "connected: the next-hop is the neighbour"
        );
        let l2 = c.l2.unwrap();
        assert_eq!((l2.ifindex, l2.dmac, l2.vlan), (r1, n1_mac, None));
        let rec = res.get(&a("10.77.0.1")).unwrap();
        assert_eq!(
            rec.neighbour,
            Some(a("198.51.100.2")),
            "recursive through the kernel route"
        );
        assert_eq!(rec.igp_cost, Some(30), "the route's metric is the IGP cost");
        assert_eq!(
            (rec.l2.unwrap().ifindex, rec.l2.unwrap().dmac),
            (r2, n2_mac)
        );
        let v6 = res.get(&a("2001:db8:1::2")).unwrap();
        assert_eq!(v6.l2.unwrap().dmac, n1_mac);
        let un = res.get(&a("203.0.113.9")).unwrap();
        assert!(!un.reachable && un.l2.is_none());
    });
    let neigh = t.r.exec("ip", &["-d", "neigh", "show"]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with("192.0.2.2 ") && l.contains("managed")),
        "the kernel keeps the neighbour as a managed entry:\n{neigh}"
    );
    // A default route does not make a next-hop reachable (resolve_via_default off).
    t.r.ip(&["route", "add", "default", "via", "192.0.2.2"]);
    t.r.run_in(|| {
        let mut res = Resolver::new(ResolverConfig::default()).expect("resolver");
        assert!(!res.track(a("203.0.113.9")).unwrap().reachable);
        let mut res = Resolver::new(ResolverConfig {
            resolve_via_default: true,
            ..Default::default()
        })
        .expect("resolver");
        assert!(res.track(a("203.0.113.9")).unwrap().reachable);
    });
}

#[test]
fn traffic_follows_a_mac_change_and_survives_a_link_down_under_one_ecmp_member() {
    let t = topo("traffic");
    let mut inst = Instance::with("traffic", Engine4::Dir24, true);
    for (ns, ifc) in [(&t.n1, "n1"), (&t.n2, "n2")] {
        ns.run_in(|| {
            inst.fwd()
                .program_named("xdp_pass")
                .expect("xdp_pass")
                .attach(ifc, XdpMode::default())
                .expect("attach xdp_pass")
        });
    }
    t.r.run_in(|| {
        inst.fwd()
            .attach("rs", AttachMode::Auto)
            .expect("attach forwarder")
    });
    let maps = fib_sync::PinnedMaps::open(&inst.dir).unwrap();
    let forwarded = || maps.fib.stat(StatReason::Forwarded).unwrap().packets;

    let (nh1, nh2) = (a("192.0.2.2"), a("198.51.100.2"));
    let ecmp = Route::forward(
        "10.99.0.0/16".parse::<IpNet>().unwrap(),
        [(nh1, 1), (nh2, 1)],
    );
    let single = Route::forward("10.98.0.0/16".parse::<IpNet>().unwrap(), [(nh1, 1)]);
    let sync = inst.sync(SyncConfig::default());
    let mut sy = t.r.run_in(|| {
        let res = Resolver::new(ResolverConfig::default()).expect("resolver");
        let mut sy = Syncer::new(sync, res);
        let (_, nht) = sy.apply(&[ecmp.clone(), single.clone()]).expect("apply");
        assert_eq!(nht.len(), 2, "both next-hops reported to the RIB: {nht:?}");
        assert!(nht.iter().all(|u| u.reachable));
        poll_until(&mut sy, |sy| {
            sy.sync.resolution(&nh1).is_some() && sy.sync.resolution(&nh2).is_some()
        });
        sy
    });
    assert_eq!(
        sy.sync.check(&[ecmp.clone(), single.clone()]).unwrap(),
        vec![]
    );

    let before = forwarded();
    assert!(t.s.ping("10.98.1.1", 5), "ping through the XDP forwarder");
    assert!(t.s.ping("10.99.1.1", 5));
    assert!(
        forwarded() >= before + 10,
        "the pings were forwarded in XDP"
    );

    // N1 changes its MAC: the gratuitous ARP updates R's neighbour, the event re-resolves, and
    // frames go to the new MAC (N1 would drop frames to the old one as not for it).
    let old = sy.sync.resolution(&nh1).unwrap();
    let new_mac = [0x02, 0x4e, 0x31, 0, 0, 0x77];
    t.n1.ip(&["link", "set", "n1", "address", "02:4e:31:00:00:77"]);
    t.r.run_in(|| {
        poll_until(&mut sy, |sy| {
            sy.sync.resolution(&nh1).map(|l| l.dmac) == Some(new_mac)
        })
    });
    assert!(
        sy.sync.nh_id(&old).is_none(),
        "the old next-hop was retired"
    );
    let new_nh = sy.sync.nh_id(&sy.sync.resolution(&nh1).unwrap()).unwrap();
    let tx_before = maps.fib.nh_stats(new_nh).unwrap().packets;
    assert!(
        t.s.ping("10.98.1.1", 5),
        "forwarding continues with the new MAC"
    );
    assert!(maps.fib.nh_stats(new_nh).unwrap().packets >= tx_before + 5);
    assert_eq!(
        sy.sync.check(&[ecmp.clone(), single.clone()]).unwrap(),
        vec![]
    );

    // r1 goes down: every path-list containing N1 drops it in one batch; the ECMP prefix keeps
    // forwarding through N2.
    let pl_ecmp = sy.sync.route(&ecmp.prefix).unwrap();
    let pl_single = sy.sync.route(&single.prefix).unwrap();
    t.r.ip(&["link", "set", "r1", "down"]);
    let reports =
        t.r.run_in(|| poll_until(&mut sy, |sy| sy.sync.resolution(&nh1).is_none()));
    let flips: u64 = reports.iter().map(|r| r.pathlist_flips).sum();
    let last = reports.last().unwrap();
    assert_eq!(
        last.pathlist_flips, 2,
        "both path-lists with N1 in the same batch: {reports:?}"
    );
    assert_eq!(flips, 2);
    assert_eq!(last.prefixes, 0, "no prefix entry rewritten");
    assert_eq!(
        sy.sync.route(&ecmp.prefix),
        Some(pl_ecmp),
        "path-list ids are stable"
    );
    assert_eq!(sy.sync.route(&single.prefix), Some(pl_single));
    let before = forwarded();
    assert!(
        t.s.ping("10.99.1.1", 5),
        "traffic continues on the remaining member"
    );
    assert!(forwarded() >= before + 5);
    assert_eq!(sy.sync.check(&[ecmp, single]).unwrap(), vec![]);
}
