//! BIRD 2 ↔ FRR in two namespaces: sessions over IPv4 and IPv6, routes with communities and large
//! communities both ways, withdraw, administrative shutdown (NOTIFICATION) and recovery.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use ipnet::IpNet;
use testbed::peers::{
    BgpPeer, Bird, Family, Frr, Neighbor, PanicReport, PeerConfig, Route, SessionState,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

#[test]
fn bird_and_frr_exchange_routes_over_ipv4_and_ipv6() -> Result<()> {
    let topo = Topology::pair("bird", "frr")?;
    let l = topo.link(0)?;
    let (b4, f4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let (b6, f6): (IpAddr, IpAddr) = (l.a_v6.into(), l.b_v6.into());

    let bird_cfg = PeerConfig::new(65001, "10.255.0.1".parse()?)
        .neighbor(Neighbor::new(f4, 65002).hold_time(9))
        .neighbor(Neighbor::new(f6, 65002).hold_time(9))
        .route(
            Route::parse("198.51.100.0/24")
                .community(65001, 7)
                .large_community(65001, 1, 2)
                .prepend(&[65001]),
        )
        .route(
            Route::parse("2001:db8:100::/48")
                .community(65001, 8)
                .large_community(65001, 6, 6),
        );
    let frr_cfg = PeerConfig::new(65002, "10.255.0.2".parse()?)
        .neighbor(Neighbor::new(b4, 65001).hold_time(9).passive())
        .neighbor(Neighbor::new(b6, 65001).hold_time(9))
        .route(
            Route::parse("203.0.113.0/24")
                .community(65002, 9)
                .large_community(65002, 3, 4)
                .med(7),
        );

    let bird = Bird::start(topo.ns_name("bird")?, bird_cfg)?;
    let frr = Frr::start(topo.ns_name("frr")?, frr_cfg)?;
    let _report = PanicReport::new(&[&bird, &frr]);

    for (peer, nbr) in [
        (&bird as &dyn BgpPeer, f4),
        (&bird, f6),
        (&frr, b4),
        (&frr, b6),
    ] {
        peer.wait_established(nbr, T)?;
    }

    // BIRD → FRR, IPv4 and IPv6, attributes preserved.
    let r = frr.wait_route("198.51.100.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65001, 65001]);
    assert_eq!(r.communities, vec![(65001, 7)]);
    assert_eq!(r.large_communities, vec![(65001, 1, 2)]);
    assert_eq!(r.from, Some(b4));
    let r6 = frr.wait_route("2001:db8:100::/48".parse()?, T)?;
    assert_eq!(r6.as_path, vec![65001]);
    assert_eq!(r6.communities, vec![(65001, 8)]);
    assert_eq!(r6.large_communities, vec![(65001, 6, 6)]);

    // FRR → BIRD, with MED.
    let r = bird.wait_route("203.0.113.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65002]);
    assert_eq!(r.communities, vec![(65002, 9)]);
    assert_eq!(r.large_communities, vec![(65002, 3, 4)]);
    assert_eq!(r.med, Some(7));
    assert_eq!(r.next_hop, Some(f4));

    // Run-time announcements and withdrawals on both sides.
    frr.announce(&Route::parse("2001:db8:200::/48").large_community(65002, 5, 5))?;
    let r = bird.wait_route("2001:db8:200::/48".parse()?, T)?;
    assert_eq!(r.large_communities, vec![(65002, 5, 5)]);
    bird.announce(&Route::parse("192.0.2.0/24").community(65001, 100))?;
    assert_eq!(
        frr.wait_route("192.0.2.0/24".parse()?, T)?.communities,
        vec![(65001, 100)]
    );
    bird.withdraw("198.51.100.0/24".parse()?)?;
    frr.wait_route_gone("198.51.100.0/24".parse()?, T)?;
    frr.withdraw("203.0.113.0/24".parse()?)?;
    bird.wait_route_gone("203.0.113.0/24".parse()?, T)?;
    let kept: IpNet = "192.0.2.0/24".parse()?;
    assert!(
        frr.received(Family::Ipv4Unicast)?
            .iter()
            .any(|r| r.prefix == Some(kept))
    );

    // FRR shuts the IPv4 session (NOTIFICATION Cease): BIRD sees it go down and drops its routes.
    frr.shutdown_neighbor(b4)?;
    let st = bird.wait_not_established(f4, T)?;
    assert_ne!(st, SessionState::Established);
    bird.wait_route_gone("2001:db8:200::/48".parse()?, Duration::from_secs(1))
        .ok();
    frr.enable_neighbor(b4)?;
    bird.wait_established(f4, T)?;
    Ok(())
}
