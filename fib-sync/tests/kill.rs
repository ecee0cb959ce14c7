//! `kill -9` of the process holding the maps while traffic flows, restart, reconcile: no ping is
//! lost, the maps equal the new FIB, nothing is leaked. The syncing side runs as a child process
//! (this test binary re-run with the ignored `child_syncer` test). Needs root.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aya::programs::XdpMode;
use common::*;
use fib_ebpf::{AttachMode, Engine4};
use fib_sync::{FibSync, PinnedMaps, Resolver, ResolverConfig, Route, SyncConfig, Syncer};
use ipnet::IpNet;

const NH1: &str = "192.0.2.2";
const NH2: &str = "198.51.100.2";

/// Variant 0 is what the killed process installed, variant 1 what the RIB says after the restart.
fn fib(variant: u32) -> Vec<Route> {
    let (x, y): (IpAddr, IpAddr) = (NH1.parse().unwrap(), NH2.parse().unwrap());
    let sets = [vec![(x, 1), (y, 1)], vec![(x, 1)], vec![(y, 1)]];
    let mut v = vec![
        Route::forward("10.99.0.0/16".parse().unwrap(), sets[0].clone()),
        Route::forward("10.98.0.0/16".parse().unwrap(), sets[1].clone()),
    ];
    for i in 0..2000u32 {
        if variant == 1 && i % 9 == 0 {
            continue;
        }
        let len = [24u8, 25, 32, 22][i as usize % 4];
        let p = IpNet::new(IpAddr::V4(Ipv4Addr::from(0x1400_0000u32 + (i << 10))), len)
            .unwrap()
            .trunc();
        v.push(Route::forward(p, sets[(i + variant) as usize % 3].clone()));
    }
    for i in 0..200u32 {
        let p: IpNet = format!("2001:db8:{:x}::/48", i + 1).parse().unwrap();
        v.push(Route::forward(p, sets[(i + variant) as usize % 3].clone()));
    }
    v
}

/// The syncing process: restart over the pins, reconcile to the FIB variant, report, and with
/// churn keep announcing and withdrawing extra prefixes until killed.
#[test]
#[ignore = "child process of kill_9_while_traffic_flows"]
fn child_syncer() {
    let pin = std::env::var("FS_CHILD_PIN").expect("FS_CHILD_PIN");
    let ns = std::env::var("FS_CHILD_NS").expect("FS_CHILD_NS");
    let variant: u32 = std::env::var("FS_CHILD_FIB").unwrap().parse().unwrap();
    let churn = std::env::var("FS_CHILD_CHURN").is_ok();
    let ns = Ns { name: ns };
    ns.run_in(|| {
        let maps = PinnedMaps::open(std::path::Path::new(&pin)).expect("pins");
        let res = Resolver::new(ResolverConfig::default()).expect("resolver");
        let expected = fib(variant);
        let (mut sy, rep) = Syncer::restart(
            maps,
            SyncConfig::default(),
            res,
            &expected,
            Duration::from_secs(5),
        )
        .expect("restart");
        let mismatches = sy.sync.check(&expected).expect("check");
        for m in &mismatches {
            eprintln!("child: {m}");
        }
        println!(
            "RECONCILED mismatches={} kept={} tbl8_kept={} writes={}",
            mismatches.len(),
            rep.pathlists_kept,
            rep.tbl8_kept,
            rep.batch.writes.total()
        );
        if !churn {
            return;
        }
        let (x, y): (IpAddr, IpAddr) = (NH1.parse().unwrap(), NH2.parse().unwrap());
        for round in 0u32.. {
            let batch: Vec<Route> = (0..200u32)
                .map(|i| {
                    let p = IpNet::new(
                        IpAddr::V4(Ipv4Addr::from(
                            0x1e00_0000u32 + (i << 8) + (round % 2) * 200,
                        )),
                        [24u8, 28][(i % 2) as usize],
                    )
                    .unwrap()
                    .trunc();
                    if (round + i) % 3 == 0 {
                        Route::withdraw(p)
                    } else {
                        Route::forward(p, [(x, 1 + i % 2), (y, 1)])
                    }
                })
                .collect();
            sy.apply(&batch).expect("churn");
            let _ = sy.poll(Duration::from_millis(1));
        }
    });
    // The namespace belongs to the parent test.
    std::mem::forget(ns);
}

fn spawn_child(inst: &Instance, r: &Ns, variant: u32, churn: bool) -> (Child, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_syncer", "--ignored", "--nocapture"])
        .env("FS_CHILD_PIN", &inst.dir)
        .env("FS_CHILD_NS", &r.name)
        .env("FS_CHILD_FIB", variant.to_string())
        .stdout(Stdio::piped());
    if churn {
        cmd.env("FS_CHILD_CHURN", "1");
    }
    let mut child = cmd.spawn().expect("spawn child");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut lines = BufReader::new(out).lines();
    for l in lines.by_ref() {
        let l = l.expect("child stdout");
        if l.starts_with("RECONCILED") {
            line = l;
            break;
        }
    }
    // Keep reading, so the child's later output never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(!line.is_empty(), "the child did not reconcile");
    (child, line)
}

/// Kills the child on drop (a failing test leaves no process behind).
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ping_loss(out: std::process::Output) -> (u32, u32) {
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("ping output: {s}"));
    let n: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    (n[0], n[1])
}

#[test]
fn kill_9_while_traffic_flows_then_restart_reconciles_without_loss_or_leaks() {
    let t = topo("kill");
    let mut inst = Instance::with("kill", Engine4::Dir24, true);
    for (ns, ifc) in [(&t.n1, "n1"), (&t.n2, "n2")] {
        ns.run_in(|| {
            inst.fwd()
                .program_named("xdp_pass")
                .expect("xdp_pass")
                .attach(ifc, XdpMode::default())
                .expect("attach xdp_pass")
        });
    }
    t.r.run_in(|| inst.fwd().attach("rs", AttachMode::Auto).expect("attach"));

    let (child, line) = spawn_child(&inst, &t.r, 0, true);
    let mut child = Reap(child);
    assert!(line.contains("mismatches=0"), "{line}");
    assert!(
        t.s.ping("10.99.1.1", 3) && t.s.ping("10.98.1.1", 3),
        "forwarding works"
    );

    // Two flows of pings across the kill and the restart.
    let pings: Vec<_> = ["10.99.1.1", "10.98.1.1"]
        .iter()
        .map(|d| {
            Command::new("ip")
                .args([
                    "netns", "exec", &t.s.name, "ping", "-c", "600", "-i", "0.005", "-W", "1", d,
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("ping")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    child.0.kill().expect("kill -9");
    child.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (child2, line) = spawn_child(&inst, &t.r, 1, false);
    let _child2 = Reap(child2);
    eprintln!("restarted: {line}");
    assert!(
        line.contains("mismatches=0"),
        "maps equal the new FIB: {line}"
    );
    for p in pings {
        let (sent, received) = ping_loss(p.wait_with_output().unwrap());
        assert_eq!(received, sent, "no ping lost across kill -9 and restart");
        assert!(sent >= 600);
    }

    // Nothing leaked: one more restart with the same FIB finds exactly that state (nothing to
    // write: no churn prefix, id or tbl8 group left over), and it equals a build from scratch.
    let expected = fib(1);
    let (s, rep) = t.r.run_in(|| {
        let res = Resolver::new(ResolverConfig::default()).unwrap();
        Syncer::restart(
            PinnedMaps::open(&inst.dir).unwrap(),
            SyncConfig::default(),
            res,
            &expected,
            Duration::from_secs(5),
        )
        .map(|(sy, rep)| (sy.sync, rep))
        .unwrap()
    });
    assert_eq!(rep.batch.writes.total(), 0, "leftovers rewritten: {rep:?}");
    assert_eq!(s.check(&expected).unwrap(), vec![]);
    let fresh_inst = Instance::new("kill-fresh", Engine4::Dir24);
    let mut fresh: FibSync = fresh_inst.sync(SyncConfig::default());
    let res: Vec<_> = [NH1, NH2]
        .iter()
        .map(|a| {
            let a: IpAddr = a.parse().unwrap();
            (a, s.resolution(&a))
        })
        .collect();
    fresh.set_nexthops(&res).unwrap();
    fresh.apply(&expected).unwrap();
    assert_eq!(s.ids_in_use(), fresh.ids_in_use(), "ids in use");
    assert_eq!(s.tbl8_in_use(), fresh.tbl8_in_use(), "tbl8 groups in use");
}
