//! GoBGP ↔ ExaBGP in two namespaces: IPv4 and IPv6 sessions, communities and large communities both
//! ways, ADD-PATH path identifiers, run-time announce/withdraw, and a NOTIFICATION from either side.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use testbed::peers::{
    BgpPeer, ExaBgp, GoBgp, Neighbor, PanicReport, PeerConfig, Route, SessionState,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

#[test]
fn gobgp_and_exabgp_exchange_routes_over_ipv4_and_ipv6() -> Result<()> {
    let topo = Topology::pair("gobgp", "exabgp")?;
    let l = topo.link(0)?;
    let (g4, e4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let (g6, e6): (IpAddr, IpAddr) = (l.a_v6.into(), l.b_v6.into());

    let gobgp = GoBgp::start(
        topo.ns_name("gobgp")?,
        PeerConfig::new(65010, "10.255.0.10".parse()?)
            .neighbor(Neighbor::new(e4, 65020).hold_time(9).add_path(true, true))
            .neighbor(Neighbor::new(e6, 65020).hold_time(9))
            .route(
                Route::parse("198.51.100.0/24")
                    .community(65010, 1)
                    .large_community(65010, 2, 3)
                    .med(40),
            )
            .route(
                Route::parse("2001:db8:10::/48")
                    .community(65010, 6)
                    .prepend(&[65011]),
            ),
    )?;
    let exabgp = ExaBgp::start(
        topo.ns_name("exabgp")?,
        PeerConfig::new(65020, "10.255.0.20".parse()?)
            .neighbor(
                Neighbor::new(g4, 65010)
                    .hold_time(9)
                    .add_path(true, true)
                    .passive(),
            )
            .neighbor(Neighbor::new(g6, 65010).hold_time(9))
            .route(
                Route::parse("203.0.113.0/24")
                    .community(65020, 5)
                    .large_community(65020, 7, 8)
                    .prepend(&[65021]),
            ),
    )?;
    let _report = PanicReport::new(&[&gobgp, &exabgp]);

    for (peer, nbr) in [
        (&gobgp as &dyn BgpPeer, e4),
        (&gobgp, e6),
        (&exabgp, g4),
        (&exabgp, g6),
    ] {
        peer.wait_established(nbr, T)?;
    }

    let r = exabgp.wait_route("198.51.100.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65010]);
    assert_eq!(r.communities, vec![(65010, 1)]);
    assert_eq!(r.large_communities, vec![(65010, 2, 3)]);
    assert_eq!(r.med, Some(40));
    assert_eq!(r.next_hop, Some(g4));
    assert!(
        r.path_id.is_some(),
        "ADD-PATH negotiated on the IPv4 session: {r:?}"
    );
    let r6 = exabgp.wait_route("2001:db8:10::/48".parse()?, T)?;
    assert_eq!(r6.as_path, vec![65010, 65011]);
    assert_eq!(r6.communities, vec![(65010, 6)]);
    assert_eq!(r6.from, Some(g6));

    let r = gobgp.wait_route("203.0.113.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65020, 65021]);
    assert_eq!(r.communities, vec![(65020, 5)]);
    assert_eq!(r.large_communities, vec![(65020, 7, 8)]);

    exabgp.announce(&Route::parse("2001:db8:20::/48").large_community(65020, 1, 1))?;
    assert_eq!(
        gobgp
            .wait_route("2001:db8:20::/48".parse()?, T)?
            .large_communities,
        vec![(65020, 1, 1)]
    );
    exabgp.withdraw("203.0.113.0/24".parse()?)?;
    gobgp.wait_route_gone("203.0.113.0/24".parse()?, T)?;
    gobgp.announce(&Route::parse("192.0.2.0/24").community(65010, 99))?;
    assert_eq!(
        exabgp.wait_route("192.0.2.0/24".parse()?, T)?.communities,
        vec![(65010, 99)]
    );
    gobgp.withdraw("192.0.2.0/24".parse()?)?;
    exabgp.wait_route_gone("192.0.2.0/24".parse()?, T)?;

    // GoBGP disables the IPv6 neighbour (NOTIFICATION Cease): ExaBGP sees the session go down and
    // forgets its routes; enabling it brings both back.
    gobgp.shutdown_neighbor(e6)?;
    assert_ne!(
        exabgp.wait_not_established(g6, T)?,
        SessionState::Established
    );
    exabgp.wait_route_gone("2001:db8:10::/48".parse()?, T)?;
    gobgp.enable_neighbor(e6)?;
    exabgp.wait_established(g6, T)?;
    exabgp.wait_route("2001:db8:10::/48".parse()?, T)?;

    // ExaBGP tears the IPv4 session down (Cease): GoBGP leaves Established.
    exabgp.shutdown_neighbor(g4)?;
    gobgp.wait_not_established(e4, T)?;
    Ok(())
}
