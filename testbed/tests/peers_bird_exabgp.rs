//! BIRD ↔ ExaBGP in two namespaces: IPv4 and IPv6 sessions, attributes both ways, withdraw, and a
//! frozen peer (SIGSTOP) whose hold timer expires, then recovers after SIGCONT.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use testbed::peers::{
    BgpPeer, Bird, ExaBgp, Neighbor, PanicReport, PeerConfig, Route, SessionState,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

#[test]
fn bird_and_exabgp_exchange_routes_and_survive_a_frozen_peer() -> Result<()> {
    let topo = Topology::pair("bird", "exabgp")?;
    let l = topo.link(0)?;
    let (b4, e4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let (b6, e6): (IpAddr, IpAddr) = (l.a_v6.into(), l.b_v6.into());

    let bird = Bird::start(
        topo.ns_name("bird")?,
        PeerConfig::new(65300, "10.255.2.1".parse()?)
            .neighbor(Neighbor::new(e4, 65400).hold_time(3).ttl_security())
            .neighbor(Neighbor::new(e6, 65400).hold_time(9))
            .route(
                Route::parse("198.51.100.0/24")
                    .community(65300, 1)
                    .large_community(65300, 1, 1),
            )
            .route(Route::parse("2001:db8:300::/48").large_community(65300, 6, 6)),
    )?;
    let exabgp = ExaBgp::start(
        topo.ns_name("exabgp")?,
        PeerConfig::new(65400, "10.255.2.2".parse()?)
            .neighbor(Neighbor::new(b4, 65300).hold_time(3).ttl_security())
            .neighbor(Neighbor::new(b6, 65300).hold_time(9))
            .route(
                Route::parse("203.0.113.0/24")
                    .community(65400, 4)
                    .large_community(65400, 4, 4)
                    .med(4),
            )
            .route(Route::parse("2001:db8:400::/48").community(65400, 6)),
    )?;
    let _report = PanicReport::new(&[&bird, &exabgp]);

    for (peer, nbr) in [
        (&bird as &dyn BgpPeer, e4),
        (&bird, e6),
        (&exabgp, b4),
        (&exabgp, b6),
    ] {
        peer.wait_established(nbr, T)?;
    }
    let r = exabgp.wait_route("198.51.100.0/24".parse()?, T)?;
    assert_eq!(
        (r.as_path.clone(), r.communities.clone()),
        (vec![65300], vec![(65300, 1)])
    );
    assert_eq!(r.large_communities, vec![(65300, 1, 1)]);
    assert_eq!(
        exabgp
            .wait_route("2001:db8:300::/48".parse()?, T)?
            .large_communities,
        vec![(65300, 6, 6)]
    );
    let r = bird.wait_route("203.0.113.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65400]);
    assert_eq!(r.communities, vec![(65400, 4)]);
    assert_eq!(r.large_communities, vec![(65400, 4, 4)]);
    assert_eq!(r.med, Some(4));
    let r6 = bird.wait_route("2001:db8:400::/48".parse()?, T)?;
    assert_eq!(r6.communities, vec![(65400, 6)]);
    assert_eq!(r6.next_hop, Some(e6));

    bird.withdraw("2001:db8:300::/48".parse()?)?;
    exabgp.wait_route_gone("2001:db8:300::/48".parse()?, T)?;
    exabgp.withdraw("203.0.113.0/24".parse()?)?;
    bird.wait_route_gone("203.0.113.0/24".parse()?, T)?;

    // Freeze BIRD: ExaBGP's 3 s hold timer expires on the IPv4 session; after SIGCONT it comes back.
    bird.pause()?;
    let st = exabgp.wait_not_established(b4, T);
    bird.resume()?;
    assert_ne!(st?, SessionState::Established);
    exabgp.wait_established(b4, T)?;
    exabgp.wait_route("198.51.100.0/24".parse()?, T)?;
    Ok(())
}
