//! End to end, the demo topology as assertions (testbed::fabric):
//!
//! ```text
//!   src ── dut (ribd, XDP; kernel forwarding off) ──┬── up1 (BIRD) ──┬── dst
//!                                                   └── up2 (FRR)  ──┘
//! ```
//! - both upstreams' sessions (IPv4 and IPv6) Established, ECMP sets of 2 in the FIB, many UDP flows over
//!   IPv4 and IPv6 forwarded by XDP across both upstreams, nothing lost;
//! - a prefix withdrawn by both upstreams leaves the FIB, and its traffic is no longer forwarded by XDP
//!   (counted as pass_no_route and handed to dut's kernel, which does not forward);
//! - a route whose (third-party) next hop does not answer ARP is passed up (pass_unresolved), and is
//!   forwarded by XDP as soon as a host takes the address and the neighbour resolves.
//!
//! ribd runs as a child process: this crate's own binary, `testbed ribd --config FILE` (the ribd library's
//! daemon, as the `ribd` binary runs it); cargo builds it for these tests, so it is never stale.
//! Needs root (namespaces, XDP); skipped otherwise. On failure the test prints the namespaces, ribd's
//! config/socket/log and the peers' files and log tails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use testbed::fabric::{self, Fabric, RibdCommand};
use testbed::peers::{BgpPeer, Route, wait_until};
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

/// A route whose next hop does not answer ARP yet: XDP passes its packets to dut's kernel (counted as
/// pass_unresolved; the kernel does not forward), and once a host takes the address and answers, the
/// neighbour resolves and XDP forwards the prefix without any change on the BGP side.
#[test]
fn route_with_unresolved_next_hop_is_passed_up_then_forwarded_once_the_neighbour_resolves() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2eu", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let guard = OnFailure(&mut fab);
    let f = &*guard.0;
    // A network behind dst reached through up1, announced by BIRD with the third-party next hop
    // 10.0.11.3 on the dut–up1 subnet, where nobody holds that address yet.
    let (net, host, third) = ("10.100.9.0/24", "10.100.9.1", "10.0.11.3");
    f.dst
        .ip(&["addr", "add", &format!("{host}/24"), "dev", "lo"])
        .unwrap();
    f.n_up1
        .ip(&["route", "add", net, "via", "10.0.21.2"])
        .unwrap();
    f.up1
        .announce(&Route::parse(net).next_hop(third.parse().unwrap()))
        .unwrap();
    let r = wait_until(Duration::from_secs(20), || {
        Ok(f.ribd.fib_route(net)?.filter(|r| !r.nexthops.is_empty()))
    })
    .expect("the route reaches the FIB");
    assert_eq!(r.nexthops.len(), 1, "{r:?}");
    assert_eq!(
        r.nexthops[0].address.to_string(),
        third,
        "third-party next hop: {r:?}"
    );
    assert!(!r.nexthops[0].resolved, "nobody answers for {third}: {r:?}");

    let dst: SocketAddr = format!("{host}:9010").parse().unwrap();
    let un0 = f.ribd.reason("pass_unresolved").unwrap();
    let lu = traffic(f, dst, 16, 1000, 1.5);
    let un1 = f.ribd.reason("pass_unresolved").unwrap();
    eprintln!("unresolved {third}: {lu}; pass_unresolved +{}", un1 - un0);
    assert_eq!(lu.received, 0, "dut's kernel does not forward: {lu}");
    assert!(
        un1 - un0 >= lu.sent * 9 / 10,
        "XDP passes the packets up as unresolved (+{} of {})",
        un1 - un0,
        lu.sent
    );

    // up1 takes the address: the neighbour resolves (ribd keeps it managed, so the kernel probes
    // again by itself) and the same route is forwarded by XDP.
    f.n_up1
        .ip(&["addr", "add", &format!("{third}/24"), "dev", "eth0"])
        .unwrap();
    let r = wait_until(Duration::from_secs(30), || {
        Ok(f.ribd
            .fib_route(net)?
            .filter(|r| r.nexthops.iter().all(|n| n.resolved)))
    })
    .expect("the next hop resolves once a host answers for it");
    assert_eq!(r.nexthops[0].interface.as_deref(), Some("u1"), "{r:?}");
    let fwd0 = f.ribd.reason("forwarded").unwrap();
    let lf = traffic(f, dst, 16, 1000, 1.5);
    let fwd1 = f.ribd.reason("forwarded").unwrap();
    eprintln!("resolved {third}: {lf}; forwarded +{}", fwd1 - fwd0);
    assert_eq!(lf.dead_flows, 0, "{lf}");
    assert!(lf.received * 100 >= lf.sent * 99, "{lf}");
    assert!(fwd1 - fwd0 >= lf.received, "forwarded by XDP");
}

/// Config ACLs on dut's ingress, added by a config reload while traffic is forwarded: a drop rule
/// stops exactly its traffic in XDP, a rate limit lets through about its rate (bucket + ±10%), other
/// traffic is untouched, and the counters the API shows match what was sent.
#[test]
fn config_acls_drop_and_police_in_xdp_after_a_reload() {
    if !root() {
        return;
    }
    let mut fab = Fabric::start("e2ea", ribd_cmd()).unwrap_or_else(|e| panic!("{e:#}"));
    let guard = OnFailure(&mut fab);
    let f = &*guard.0;
    let acl = r#"
[[acl]]
name = "edge-in"
interfaces = ["s0"]

[[acl.rule]]
name = "no-9100"
protocol = ["udp"]
destination-port = ["9100"]
action = "drop"

[[acl.rule]]
name = "police-9101"
destination = "10.100.0.0/16"
protocol = ["udp"]
destination-port = ["9101"]
rate-limit = "200pps"
"#;
    let mut text = std::fs::read_to_string(&f.ribd.config).unwrap();
    text.push_str(acl);
    std::fs::write(&f.ribd.config, text).unwrap();
    let r: ribd::api::ActionResult = f
        .ribd
        .client()
        .post("/v1/reload")
        .unwrap_or_else(|e| panic!("reload: {e}"));
    assert!(r.ok, "{r:?}");
    let t = wait_until(Duration::from_secs(15), || {
        let t: ribd::api::AclTable = f.ribd.get("/v1/acl")?;
        Ok((t.rules.len() == 2 && t.rules.iter().all(|r| r.installed)).then_some(t))
    })
    .expect("both ACL rules installed");
    assert_eq!(t.rules[0].name, "no-9100");

    let dropped = traffic(f, Fabric::dst_sockaddr(0, 9100), 16, 1000, 1.5);
    let other = traffic(f, Fabric::dst_sockaddr(0, 9102), 16, 1000, 1.5);
    // 2,000 pps offered for 2 s against 200 pps (+ a burst of 20).
    let policed = traffic(f, Fabric::dst_sockaddr(1, 9101), 32, 2000, 2.0);
    eprintln!("ACL drop: {dropped}\nother port: {other}\npoliced to 200 pps: {policed}");
    assert_eq!(dropped.received, 0, "{dropped}");
    assert!(other.received * 100 >= other.sent * 99, "{other}");
    let t: ribd::api::AclTable = f.ribd.get("/v1/acl").unwrap();
    assert!(
        t.rules[0].dropped >= dropped.sent && t.rules[0].packets >= dropped.sent,
        "counters of the drop rule: {:?} vs sent {}",
        t.rules[0],
        dropped.sent
    );
    // The limiter's own accuracy (±10%) is tested on a controlled clock in fib-ebpf; here the
    // sender's 2 s window on a shared machine adds its own jitter (a stalled sender wastes tokens), so
    // the band is wider below than above: never more than the rate allows, not much less.
    let allowed = 200.0 * 2.0 + 20.0;
    let got = policed.received as f64;
    assert!(
        got >= allowed * 0.8 && got <= allowed * 1.1,
        "rate limit 200 pps over 2 s: received {got}, expected about {allowed:.0}"
    );
    assert_eq!(
        t.rules[1].packets - t.rules[1].dropped,
        policed.received,
        "what the rule let through is what arrived: {:?}",
        t.rules[1]
    );
}
