//! TTL handling of `bgp::session` across a router (one hop between us and BIRD 2):
//! multihop eBGP works; GTSM (RFC 5082) with the right hop count works; and our minimum-TTL check
//! really drops a peer whose packets arrive with a low TTL (BIRD itself checks nothing in that case).
//!
//! ours (10.0.0.1) ── r (forwarding) ── bird (10.0.1.2)

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use bgp::fsm::{Family, FsmConfig, State};
use bgp::session::{PeerConfig, PeerId, SocketOptions, TtlMode};
use testbed::collect::NsSpeaker;
use testbed::peers::{BgpPeer, Bird, Neighbor, PanicReport, PeerConfig as DriverConfig, Route};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

fn routed() -> Result<(Topology, Ipv4Addr, Ipv4Addr)> {
    let topo = Topology::builder()
        .node("ours")
        .router("r")
        .node("bird")
        .link("ours", "r")
        .link("r", "bird")
        .route("ours", "10.0.1.0/24 via 10.0.0.2")
        .route("bird", "10.0.0.0/24 via 10.0.1.1")
        .build()?;
    let ours = topo.link(0)?.a_v4;
    let bird = topo.link(1)?.b_v4;
    Ok((topo, ours, bird))
}

fn ours_cfg(local: Ipv4Addr, peer: Ipv4Addr, ttl: TtlMode) -> PeerConfig {
    let mut f = FsmConfig::new(65001, 65002, Ipv4Addr::new(10, 255, 0, 1));
    f.hold_time = 9;
    f.connect_retry = Duration::from_secs(2);
    f.idle_hold = Duration::from_millis(300);
    f.capabilities.families = vec![Family::IPV4_UNICAST];
    let mut c = PeerConfig::new(PeerId(1), SocketAddr::new(IpAddr::V4(peer), 179), f);
    c.socket = SocketOptions {
        local_addr: Some(IpAddr::V4(local)),
        ttl,
        ..SocketOptions::default()
    };
    c
}

fn bird(topo: &Topology, ours: Ipv4Addr, bird_ip: Ipv4Addr, gtsm: bool) -> Result<Bird> {
    let mut n = Neighbor::new(IpAddr::V4(ours), 65001)
        .hold_time(9)
        .multihop(2)
        .local_address(IpAddr::V4(bird_ip));
    if gtsm {
        n = n.ttl_security();
    }
    Bird::start(
        topo.ns_name("bird")?,
        DriverConfig::new(65002, Ipv4Addr::new(10, 255, 0, 2))
            .neighbor(n)
            .route(Route::parse("198.51.100.0/24")),
    )
}

#[test]
fn multihop_ebgp_across_a_router_establishes() -> Result<()> {
    let (topo, ours, bird_ip) = routed()?;
    let b = bird(&topo, ours, bird_ip, false)?;
    let _report = PanicReport::new(&[&b]);
    let s = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(IpAddr::V4(ours), 179)],
        vec![(ours_cfg(ours, bird_ip, TtlMode::Multihop(2)), vec![])],
    )?;
    s.wait_established(0, T)?;
    s.wait(T, "a route over the multihop session", |r| {
        r.get("198.51.100.0/24".parse().ok()?).cloned()
    })?;
    Ok(())
}

#[test]
fn gtsm_with_two_hops_establishes_across_a_router_rfc5082() -> Result<()> {
    let (topo, ours, bird_ip) = routed()?;
    let b = bird(&topo, ours, bird_ip, true)?;
    let _report = PanicReport::new(&[&b]);
    let s = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(IpAddr::V4(ours), 179)],
        vec![(ours_cfg(ours, bird_ip, TtlMode::Gtsm { hops: 2 }), vec![])],
    )?;
    s.wait_established(0, T)?;
    Ok(())
}

#[test]
fn gtsm_drops_a_peer_whose_packets_arrive_with_a_low_ttl_rfc5082_3() -> Result<()> {
    // BIRD sends with TTL 2 (plain multihop), so its packets arrive with TTL 1 < 254: our IP_MINTTL drops
    // them. BIRD checks nothing, so the session can only fail because of our check.
    let (topo, ours, bird_ip) = routed()?;
    let b = bird(&topo, ours, bird_ip, false)?;
    let _report = PanicReport::new(&[&b]);
    let s = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(IpAddr::V4(ours), 179)],
        vec![(ours_cfg(ours, bird_ip, TtlMode::Gtsm { hops: 2 }), vec![])],
    )?;
    std::thread::sleep(Duration::from_secs(8));
    assert_ne!(s.handles[0].state(), State::Established);
    assert_eq!(s.rib().established, 0);
    assert_ne!(
        b.session_state(IpAddr::V4(ours))?,
        testbed::peers::SessionState::Established
    );
    Ok(())
}
