//! End to end, the demo topology as assertions (testbed::fabric):
//!
//! ```text
//!   src ── dut (ribd, XDP; kernel forwarding off) ──┬── up1 (BIRD) ──┬── dst
//!                                                   └── up2 (FRR)  ──┘
//! ```
//! - both upstreams' sessions (IPv4 and IPv6) Established, ECMP sets of 2 in the FIB, many UDP flows over
//!   IPv4 and IPv6 forwarded by XDP across both upstreams, nothing lost;
//! - a prefix withdrawn by both upstreams leaves the FIB, and its traffic is no longer forwarded by XDP
//!   (counted as pass_no_route and handed to dut's kernel, which does not forward).
//!
//! ribd runs as a child process: this crate's own binary, `testbed ribd --config FILE` (the ribd library's
//! daemon, as the `ribd` binary runs it); cargo builds it for these tests, so it is never stale.
//! Needs root (namespaces, XDP); skipped otherwise. On failure the test prints the namespaces, ribd's
//! config/socket/log and the peers' files and log tails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use testbed::fabric::{self, Fabric, RibdCommand};
use testbed::peers::{BgpPeer, wait_until};
use testbed::traffic::{LossReport, Receiver, Sender};

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

/// Prints the fabric's diagnostics if the test fails while it is alive.
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

/// Sends `flows` flows at `pps` to `dst` for `secs`, returns the loss report.
fn traffic(f: &Fabric, dst: SocketAddr, flows: u32, pps: u32, secs: f64) -> LossReport {
    let rx = Receiver::start(
        &f.dst.path(),
        SocketAddr::new(unspecified(&dst), dst.port()),
    )
    .expect("receiver");
    let tx = Sender::start(&f.src.path(), dst, 21000, flows, pps, 100).expect("sender");
    std::thread::sleep(Duration::from_secs_f64(secs));
    let sent = tx.stop().expect("sender");
    std::thread::sleep(Duration::from_millis(300));
    LossReport::new(&sent, &rx.stop(), pps)
}

fn unspecified(a: &SocketAddr) -> std::net::IpAddr {
    if a.is_ipv4() {
        "0.0.0.0".parse().unwrap()
    } else {
        "::".parse().unwrap()
    }
}

#[test]
fn ecmp_over_two_upstreams_forwarded_by_xdp_ipv4_and_ipv6_then_withdraw() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2ef", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let guard = OnFailure(&mut fab);
    let f = &*guard.0;

    // Sessions and the FIB.
    let peers = f.ribd.peers().unwrap();
    assert_eq!(peers.len(), 4);
    for p in &peers {
        assert_eq!(p.state, "Established", "{p:?}");
    }
    for p in fabric::DST_V4.iter().chain([&fabric::DST_V6]) {
        let r = f.ribd.fib_route(p).unwrap().expect("FIB entry");
        assert_eq!(r.kind, "forward", "{r:?}");
        assert_eq!(r.nexthops.len(), 2, "ECMP set of 2 for {p}: {r:?}");
        assert!(r.nexthops.iter().all(|n| n.resolved), "{r:?}");
        assert!(r.group.is_some(), "{p} has a dataplane group: {r:?}");
    }
    for p in fabric::UP1_V4 {
        let r = f.ribd.fib_route(p).unwrap().expect("FIB entry");
        assert_eq!(r.nexthops.len(), 1, "{r:?}");
        assert_eq!(r.nexthops[0].address.to_string(), fabric::UP1_V4_ADDR);
    }
    let check: ribd::api::CheckReport = f.ribd.get("/v1/fib/check").unwrap();
    assert!(check.ok, "fib check: {check:?}");

    // IPv4: 64 flows across both upstreams, forwarded by XDP.
    let fwd0 = f.ribd.reason("forwarded").unwrap();
    let nh0 = f.nexthop_packets().unwrap();
    let l4 = traffic(f, Fabric::dst_sockaddr(1, 9000), 64, 3000, 3.0);
    let nh1 = f.nexthop_packets().unwrap();
    let fwd1 = f.ribd.reason("forwarded").unwrap();
    let (a, b) = (nh1.0 - nh0.0, nh1.1 - nh0.1);
    eprintln!(
        "IPv4: {l4}; XDP tx via up1 {a}, via up2 {b}; forwarded +{}",
        fwd1 - fwd0
    );
    assert_eq!(l4.dead_flows, 0, "{l4}");
    assert!(
        l4.received * 100 >= l4.sent * 99,
        "loss over a steady ECMP path: {l4}"
    );
    assert!(
        fwd1 - fwd0 >= l4.received,
        "every received packet crossed dut by XDP"
    );
    assert!(
        a > l4.sent / 10 && b > l4.sent / 10,
        "both upstreams carry traffic: {a} / {b}"
    );
    assert!(
        a + b >= l4.received,
        "tx per next-hop {a}+{b} vs received {}",
        l4.received
    );

    // IPv6 end to end.
    let nh0 = f.nexthop_packets().unwrap();
    let l6 = traffic(f, SocketAddr::new(fabric::dst_host6(), 9001), 32, 2000, 2.0);
    let nh1 = f.nexthop_packets().unwrap();
    let (a6, b6) = (nh1.0 - nh0.0, nh1.1 - nh0.1);
    eprintln!("IPv6: {l6}; XDP tx via up1 {a6}, via up2 {b6}");
    assert_eq!(l6.dead_flows, 0, "{l6}");
    assert!(l6.received * 100 >= l6.sent * 99, "{l6}");
    assert!(a6 > 0 && b6 > 0, "both upstreams carry IPv6: {a6} / {b6}");

    // Withdraw 10.100.3.0/24 on both upstreams: it leaves the FIB and XDP passes its traffic up.
    let gone: ipnet::IpNet = fabric::DST_V4[3].parse().unwrap();
    f.up1.withdraw(gone).unwrap();
    f.up2.withdraw(gone).unwrap();
    wait_until(Duration::from_secs(15), || {
        Ok(f.ribd.fib_route(fabric::DST_V4[3])?.is_none().then_some(()))
    })
    .expect("withdrawn prefix leaves the FIB");
    let nr0 = f.ribd.reason("pass_no_route").unwrap();
    let fwd0 = f.ribd.reason("forwarded").unwrap();
    let lw = traffic(f, Fabric::dst_sockaddr(3, 9002), 16, 1000, 1.5);
    let nr1 = f.ribd.reason("pass_no_route").unwrap();
    let fwd1 = f.ribd.reason("forwarded").unwrap();
    eprintln!(
        "withdrawn {gone}: {lw}; pass_no_route +{}, forwarded +{}",
        nr1 - nr0,
        fwd1 - fwd0
    );
    assert_eq!(lw.received, 0, "nothing reaches dst without a route: {lw}");
    assert!(
        nr1 - nr0 >= lw.sent * 9 / 10,
        "XDP passes the withdrawn prefix's packets to the kernel (pass_no_route +{} of {})",
        nr1 - nr0,
        lw.sent
    );
    assert!(fwd1 - fwd0 < lw.sent / 10, "and does not forward them");
    // The other networks still forward.
    let still = traffic(f, Fabric::dst_sockaddr(2, 9003), 8, 800, 1.0);
    assert!(still.received * 100 >= still.sent * 99, "{still}");
}
