//! End to end on the demo topology (testbed::fabric), with traffic flowing while things break:
//! - up1's BGP session shut down (BIRD `disable`, a NOTIFICATION Cease) → traffic moves to up2, loss
//!   measured; re-enabled → back on both;
//! - up1's link to dut down (carrier loss, the session still up until its hold timer) → traffic moves to
//!   up2, loss measured; link up → back on both;
//! - ribd killed with SIGKILL and started again while 32 flows run → no flow stops (the XDP program and
//!   its pinned maps keep forwarding; the new ribd adopts them and reconciles).
//!
//! Loss is printed (`cargo test -p testbed --test e2e_failover -- --nocapture`) and asserted only
//! against generous bounds; nothing asserts wall-clock time. ribd is `testbed ribd` (see
//! e2e_forwarding.rs). Root only; skipped otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testbed::fabric::{self, Fabric, RibdCommand};
use testbed::peers::BgpPeer;
use testbed::traffic::{LossReport, Receiver, Sender};

const FLOWS: u32 = 32;
const PPS: u32 = 2000;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0;
    if !ok {
        eprintln!("skipped: needs root (network namespaces, XDP)");
    }
    ok
}

fn ribd_cmd() -> RibdCommand {
    RibdCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_testbed")),
        args: vec!["ribd".into()],
    }
}

struct OnFailure<'a>(&'a mut Fabric);
impl Drop for OnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n==== e2e failure: where to look ====\n{}",
                self.0.diagnostics()
            );
        }
    }
}

/// Traffic running in the background for the duration of an event.
struct Run {
    rx: Receiver,
    tx: Sender,
}

impl Run {
    fn start(f: &Fabric, port: u16) -> Run {
        let rx = Receiver::start(&f.dst.path(), SocketAddr::from(([0, 0, 0, 0], port))).unwrap();
        let tx = Sender::start(
            &f.src.path(),
            Fabric::dst_sockaddr(1, port),
            22000,
            FLOWS,
            PPS,
            100,
        )
        .unwrap();
        Run { rx, tx }
    }
    fn finish(self) -> LossReport {
        let sent = self.tx.stop().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        LossReport::new(&sent, &self.rx.stop(), PPS)
    }
}

/// Packets the upstreams' links received from dut during `d` (traffic running).
fn split_during(f: &Fabric, d: Duration) -> (u64, u64) {
    let (a0, b0) = (f.upstream_rx(1).unwrap(), f.upstream_rx(2).unwrap());
    std::thread::sleep(d);
    (
        f.upstream_rx(1).unwrap() - a0,
        f.upstream_rx(2).unwrap() - b0,
    )
}

fn assert_both(split: (u64, u64), what: &str) {
    let total = split.0 + split.1;
    assert!(
        split.0 > total / 10 && split.1 > total / 10,
        "{what}: traffic on both upstreams, got up1 {} / up2 {}",
        split.0,
        split.1
    );
}

fn assert_only_up2(split: (u64, u64), what: &str) {
    // A few packets of control traffic (IPv6 session keepalives, ARP/ND) may still cross up1's link.
    assert!(
        split.0 * 50 < split.1,
        "{what}: traffic moved to up2, got up1 {} / up2 {}",
        split.0,
        split.1
    );
}

#[test]
fn failover_session_down_then_recovery() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2eo", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let guard = OnFailure(&mut fab);
    let f = &*guard.0;
    let up1_peer: std::net::IpAddr = "10.0.11.1".parse().unwrap();
    let tgt = fabric::DST_V4[1];
    let fib_members = || {
        f.ribd
            .fib_route(tgt)
            .unwrap()
            .map_or(0, |r| r.nexthops.len())
    };

    // Session shut down by up1 (NOTIFICATION): ribd withdraws up1's paths, the group shrinks.
    let run = Run::start(f, 9100);
    assert_both(split_during(f, Duration::from_secs(1)), "before");
    f.up1.shutdown_neighbor(up1_peer).unwrap();
    testbed::peers::wait_until(Duration::from_secs(15), || {
        Ok((fib_members() == 1).then_some(()))
    })
    .expect("up1's path leaves the FIB after its session goes down");
    assert_only_up2(
        split_during(f, Duration::from_secs(1)),
        "after up1's session went down",
    );
    let l = run.finish();
    eprintln!("failover (up1 session shut down): {l}");
    assert_eq!(l.dead_flows, 0, "{l}");
    assert!(l.lost * 4 < l.sent, "loss bound: {l}");

    // Recovery.
    let run = Run::start(f, 9101);
    f.up1.enable_neighbor(up1_peer).unwrap();
    f.wait_converged(Duration::from_secs(30)).unwrap();
    assert_both(
        split_during(f, Duration::from_secs(1)),
        "after up1's session came back",
    );
    let l = run.finish();
    eprintln!("recovery (up1 session back): {l}");
    assert_eq!(l.dead_flows, 0, "{l}");
    assert!(l.lost * 4 < l.sent, "loss bound: {l}");
}

/// up1's link down (carrier loss on dut's u1) with traffic running: next-hop tracking takes the member out.
fn link_down(f: &Fabric, port: u16) {
    let tgt = fabric::DST_V4[1];
    let run = Run::start(f, port);
    std::thread::sleep(Duration::from_millis(500));
    f.n_up1.ip(&["link", "set", "eth0", "down"]).unwrap();
    testbed::peers::wait_until(Duration::from_secs(30), || {
        let r = f.ribd.fib_route(tgt)?;
        Ok(r.is_some_and(|r| {
            r.nexthops
                .iter()
                .filter(|n| n.resolved)
                .all(|n| n.address.to_string() == fabric::UP2_V4_ADDR)
        })
        .then_some(()))
    })
    .expect("only up2 remains resolved after up1's link went down");
    std::thread::sleep(Duration::from_millis(500));
    let (a, b) = split_during(f, Duration::from_secs(1));
    assert!(b > 0, "traffic on up2 while up1's link is down: {a}/{b}");
    let l = run.finish();
    eprintln!("failover (up1 link down): {l}");
    assert_eq!(l.dead_flows, 0, "{l}");
    assert!(l.lost * 2 < l.sent, "loss bound: {l}");
}

#[test]
fn failover_link_down() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2el", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let guard = OnFailure(&mut fab);
    link_down(guard.0, 9102);
}

/// up1's link goes down and comes back: the next-hop stays tracked while unreachable, so its recovery is
/// noticed and traffic uses both upstreams again.
#[test]
fn recovery_after_link_down() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2er", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let guard = OnFailure(&mut fab);
    let f = &*guard.0;
    link_down(f, 9102);
    // Recovery from the link down.
    f.n_up1.ip(&["link", "set", "eth0", "up"]).unwrap();
    // The kernel dropped up1's routes through the link while it was down.
    testbed::peers::wait_until(Duration::from_secs(10), || {
        f.n_up1
            .ip(&["route", "replace", "10.0.1.0/24", "via", "10.0.11.1"])?;
        f.n_up1
            .ip(&["-6", "route", "replace", "fd00:1::/64", "via", "fd00:11::1"])?;
        Ok(Some(()))
    })
    .unwrap();
    f.wait_converged(Duration::from_secs(40)).unwrap();
    let run = Run::start(f, 9103);
    assert_both(
        split_during(f, Duration::from_secs(1)),
        "after up1's link came back",
    );
    let l = run.finish();
    eprintln!("recovery (up1 link back): {l}");
    assert!(l.lost * 100 < l.sent, "{l}");
}

#[test]
fn ribd_killed_and_restarted_while_traffic_flows_no_flow_stops() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2ek", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let old_pid = fab.ribd.pid();
    let run = Run::start(&fab, 9200);
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = Instant::now();
    fab.ribd.kill9();
    std::thread::sleep(Duration::from_millis(500));
    fab.ribd
        .restart()
        .unwrap_or_else(|e| panic!("{e:#}\n{}", fab.diagnostics()));
    let guard = OnFailure(&mut fab);
    let f = &*guard.0;
    assert_ne!(f.ribd.pid(), old_pid);
    f.wait_converged(Duration::from_secs(40)).unwrap();
    testbed::peers::wait_until(Duration::from_secs(20), || {
        let c: ribd::api::CheckReport = f.ribd.get("/v1/fib/check")?;
        Ok(c.ok.then_some(()))
    })
    .expect("fib check clean after the restart's reconcile");
    let reconciled = killed_at.elapsed();
    let mark = f_snapshot(&run);
    std::thread::sleep(Duration::from_secs(1));
    let after = f_snapshot(&run);
    let l = run.finish();
    eprintln!(
        "ribd kill -9 + restart ({:.1} s until reconciled): {l}",
        reconciled.as_secs_f64()
    );
    assert_eq!(l.dead_flows, 0, "{l}");
    for flow in 0..FLOWS {
        let (m, a) = (
            mark.get(&flow).map_or(0, |x| x.received),
            after.get(&flow).map_or(0, |x| x.received),
        );
        assert!(a > m, "flow {flow} stopped after the restart ({m} → {a})");
    }
    // The pinned program forwarded throughout: a loss of a few percent at most.
    assert!(l.lost * 20 < l.sent, "loss across the restart: {l}");
    assert_both(
        (
            f.nexthop_packets().unwrap().0,
            f.nexthop_packets().unwrap().1,
        ),
        "per next-hop counters after the restart",
    );
}

fn f_snapshot(r: &Run) -> std::collections::BTreeMap<u32, testbed::traffic::FlowRx> {
    r.rx.snapshot()
}
