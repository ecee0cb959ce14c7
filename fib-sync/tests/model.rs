//! Property test: random batches of route deltas and next-hop changes always leave the dataplane's
//! answers — asked through the XDP program with BPF_PROG_TEST_RUN — equal to a model longest-prefix
//! match, and the consistency check clean. Routes carry backup sets and BGP withdraws and restores
//! next-hops (PIC): the model forwards over the live primaries, or with none live the live backups.
//! Needs root (CAP_BPF).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use fib_ebpf::Engine4;
use fib_sync::{NhL2, Route, RouteAction, SyncConfig};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

const NEXT_HOPS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8:ff::1"];

#[derive(Debug, Clone)]
enum Op {
    /// prefix index, action: None withdraw, Some(0) blackhole, Some(mask) forward over the
    /// next-hops whose bit is set (weights 1..); then the backup mask.
    Route(usize, Option<u8>, u8),
    /// next-hop index, Some(mac byte) resolved, None unresolved.
    Nh(usize, Option<u8>),
    /// BGP withdraws the next-hop (its session went down).
    Withdraw(usize),
    /// Every withdrawal is lifted.
    Restore,
}

fn universe() -> Vec<IpNet> {
    let mut v = Vec::new();
    for (a, lens) in [
        ([10, 0, 0, 0], &[8u8, 16, 24][..]),
        ([10, 1, 2, 0], &[23, 24, 25, 26, 30, 32]),
        ([10, 1, 2, 128], &[25, 27, 32]),
        ([10, 1, 3, 0], &[24, 28]),
        ([172, 16, 0, 0], &[12, 16, 31]),
        ([0, 0, 0, 0], &[0, 1]),
    ] {
        for &l in lens {
            v.push(IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc(),
            ));
        }
    }
    for (a, lens) in [
        ("2001:db8::", &[32u8, 48, 64, 128][..]),
        ("2001:db8:0:1::", &[64, 96]),
        ("::", &[0]),
    ] {
        for &l in lens {
            let a: Ipv6Addr = a.parse().unwrap();
            v.push(IpNet::V6(Ipv6Net::new(a, l).unwrap().trunc()));
        }
    }
    v.sort();
    v.dedup();
    v
}

fn probes(u: &[IpNet]) -> Vec<IpAddr> {
    let mut v = Vec::new();
    for p in u {
        v.push(p.network());
        v.push(p.broadcast());
        match p {
            IpNet::V4(n) => v.push(IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | 0x41))),
            IpNet::V6(n) => v.push(IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | 0x41))),
        }
    }
    v.push("1.2.3.4".parse().unwrap());
    v.push("200.1.1.1".parse().unwrap());
    v.push("3fff::1".parse().unwrap());
    // Destinations the forwarder hands to the kernel whatever the routes say, or that no router
    // forwards: multicast, broadcast, loopback, "this network", link-local.
    v.retain(|a| match a {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] != 0 && o[0] != 127 && o[0] < 224
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            s[0] & 0xff00 != 0xff00
                && s[0] & 0xffc0 != 0xfe80
                && !a.is_unspecified()
                && !a.is_loopback()
        }
    });
    v.sort();
    v.dedup();
    v
}

fn op() -> impl Strategy<Value = Op> {
    let n = universe().len();
    prop_oneof![
        6 => (0..n, proptest::option::weighted(0.75, 0u8..16), 0u8..16)
            .prop_map(|(i, a, b)| Op::Route(i, a, b)),
        1 => (0..NEXT_HOPS.len(), proptest::option::weighted(0.8, 1u8..4))
            .prop_map(|(i, m)| Op::Nh(i, m)),
        1 => (0..NEXT_HOPS.len()).prop_map(Op::Withdraw),
        1 => Just(Op::Restore),
    ]
}

fn l2(i: usize, mac: u8) -> NhL2 {
    lo_nh((i as u8) << 4 | mac)
}

fn to_route(u: &[IpNet], i: usize, a: Option<u8>, b: u8) -> Route {
    let prefix = u[i];
    match a {
        None => Route::withdraw(prefix),
        Some(0) => Route {
            prefix,
            action: Some(RouteAction::Blackhole),
        },
        Some(mask) => {
            let set = |mask: u8| {
                (0..NEXT_HOPS.len())
                    .filter(move |b| mask & (1 << b) != 0)
                    .map(|b| (NEXT_HOPS[b].parse().unwrap(), b as u32 + 1))
            };
            Route::forward_with_backup(prefix, set(mask), set(b))
        }
    }
}

/// Expected XDP verdict for `dst`: (action, allowed dmacs).
fn model(
    fib: &BTreeMap<IpNet, Route>,
    res: &HashMap<IpAddr, NhL2>,
    withdrawn: &std::collections::HashSet<IpAddr>,
    dst: IpAddr,
) -> (u32, Vec<[u8; 6]>) {
    let live = |a: &IpAddr| {
        res.get(a)
            .filter(|_| !withdrawn.contains(a))
            .map(|l| l.dmac)
    };
    let best = fib
        .values()
        .filter(|r| r.prefix.contains(&dst))
        .max_by_key(|r| r.prefix.prefix_len());
    match best.and_then(|r| r.action.as_ref()) {
        None | Some(RouteAction::PassToKernel) | Some(RouteAction::Local) => (XDP_PASS, vec![]),
        Some(RouteAction::Blackhole) => (XDP_DROP, vec![]),
        Some(RouteAction::Forward(set)) => {
            let mut macs: Vec<[u8; 6]> = set.addrs().filter_map(|a| live(&a)).collect();
            if macs.is_empty() {
                macs = set.backup().iter().filter_map(|(a, _)| live(a)).collect();
            }
            if macs.is_empty() {
                (XDP_PASS, vec![])
            } else {
                (XDP_REDIRECT, macs)
            }
        }
    }
}

static INSTANCE: Mutex<Option<Instance>> = Mutex::new(None);
/// The previous case ended with empty maps.
static CLEAN: AtomicBool = AtomicBool::new(false);

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_deltas_keep_the_dataplane_equal_to_a_model_lpm(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..24), 1..6),
        small in proptest::bool::ANY,
    ) {
        let mut guard = INSTANCE.lock().unwrap_or_else(|e| e.into_inner());
        // A case that failed half-way leaves routes behind: start the next one on fresh maps.
        if guard.is_none() || !CLEAN.swap(false, Ordering::SeqCst) {
            *guard = None;
            *guard = Some(Instance::new("model", Engine4::Dir24));
        }
        let inst = guard.as_mut().expect("instance");
        let u = universe();
        let probes = probes(&u);
        // `small`: the first batch takes the bulk path and every later batch with both families
        // writes the IPv6 trie on a second thread, as large batches do.
        let mut s = inst.sync(if small {
            SyncConfig { bulk_threshold: 1, parallel_min: 1, ..SyncConfig::default() }
        } else {
            SyncConfig::default()
        });
        let mut fib: BTreeMap<IpNet, Route> = BTreeMap::new();
        let mut res: HashMap<IpAddr, NhL2> = HashMap::new();
        let mut withdrawn: std::collections::HashSet<IpAddr> = Default::default();
        for (bi, batch) in batches.iter().enumerate() {
            let mut routes = Vec::new();
            let mut nhs = Vec::new();
            let (mut wd, mut restore) = (Vec::new(), false);
            for o in batch {
                match *o {
                    Op::Route(i, a, b) => routes.push(to_route(&u, i, a, b)),
                    Op::Nh(i, m) => nhs.push((NEXT_HOPS[i].parse::<IpAddr>().unwrap(), m.map(|m| l2(i, m)))),
                    Op::Withdraw(i) => wd.push(NEXT_HOPS[i].parse::<IpAddr>().unwrap()),
                    Op::Restore => restore = true,
                }
            }
            if restore {
                s.restore_nexthops(None).unwrap();
                withdrawn.clear();
            }
            s.withdraw_nexthops(&wd).unwrap();
            withdrawn.extend(wd);
            s.set_nexthops(&nhs).unwrap();
            for (a, l) in &nhs {
                match l { Some(l) => { res.insert(*a, *l); } None => { res.remove(a); } }
            }
            s.apply(&routes).unwrap();
            for r in &routes {
                match r.action { Some(_) => { fib.insert(r.prefix, r.clone()); } None => { fib.remove(&r.prefix); } }
            }
            for (k, &dst) in probes.iter().enumerate() {
                let (act, dmac) = inst.send(dst, 1000 + k as u16);
                let (want, macs) = model(&fib, &res, &withdrawn, dst);
                prop_assert_eq!(act, want, "{}", dst);
                if want == XDP_REDIRECT {
                    prop_assert!(macs.contains(&dmac), "{} went to {:?}, expected one of {:?}", dst, dmac, macs);
                }
            }
            if bi + 1 == batches.len() {
                let expected: Vec<Route> = fib.values().cloned().collect();
                let diff = s.check(&expected).unwrap();
                prop_assert!(diff.is_empty(), "check: {:?}", diff);
            }
        }
        // Withdraw everything: nothing may be left behind for the next case.
        let all: Vec<Route> = fib.keys().map(|p| Route::withdraw(*p)).collect();
        s.apply(&all).unwrap();
        prop_assert_eq!(s.ids_in_use(), (0, 0, 0));
        prop_assert_eq!(s.tbl8_in_use(), 0);
        let diff = s.check(&[]).unwrap();
        prop_assert!(diff.is_empty(), "after withdrawing everything: {:?}", diff);
        CLEAN.store(true, Ordering::SeqCst);
    }
}
