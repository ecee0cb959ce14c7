//! FRR ↔ GoBGP in two namespaces: IPv4 session with a TCP MD5 password and IPv6 session, attributes
//! both ways, and graceful restart (RFC 4724): GoBGP is killed and restarted while FRR keeps its routes.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use testbed::peers::{BgpPeer, Family, Frr, GoBgp, Neighbor, PanicReport, PeerConfig, Route};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

#[test]
fn frr_and_gobgp_with_md5_and_graceful_restart() -> Result<()> {
    let topo = Topology::pair("frr", "gobgp")?;
    let l = topo.link(0)?;
    let (f4, g4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let (f6, g6): (IpAddr, IpAddr) = (l.a_v6.into(), l.b_v6.into());

    let frr = Frr::start(
        topo.ns_name("frr")?,
        PeerConfig::new(65100, "10.255.1.1".parse()?)
            .neighbor(
                Neighbor::new(g4, 65200)
                    .hold_time(9)
                    .password("s3cret")
                    .graceful_restart(60),
            )
            .neighbor(Neighbor::new(g6, 65200).hold_time(9).graceful_restart(60))
            .route(
                Route::parse("198.51.100.0/24")
                    .community(65100, 1)
                    .large_community(65100, 0, 1)
                    .prepend(&[65101]),
            ),
    )?;
    let gobgp = GoBgp::start(
        topo.ns_name("gobgp")?,
        PeerConfig::new(65200, "10.255.1.2".parse()?)
            .neighbor(
                Neighbor::new(f4, 65100)
                    .hold_time(9)
                    .password("s3cret")
                    .graceful_restart(60),
            )
            .neighbor(Neighbor::new(f6, 65100).hold_time(9).graceful_restart(60))
            .route(
                Route::parse("203.0.113.0/24")
                    .community(65200, 2)
                    .large_community(65200, 3, 4),
            )
            .route(
                Route::parse("2001:db8:200::/48")
                    .community(65200, 6)
                    .med(60),
            ),
    )?;
    let _report = PanicReport::new(&[&frr, &gobgp]);

    for (peer, nbr) in [
        (&frr as &dyn BgpPeer, g4),
        (&frr, g6),
        (&gobgp, f4),
        (&gobgp, f6),
    ] {
        peer.wait_established(nbr, T)?;
    }
    let r = gobgp.wait_route("198.51.100.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65100, 65101]);
    assert_eq!(r.communities, vec![(65100, 1)]);
    assert_eq!(r.large_communities, vec![(65100, 0, 1)]);
    let r = frr.wait_route("203.0.113.0/24".parse()?, T)?;
    assert_eq!(r.as_path, vec![65200]);
    assert_eq!(r.communities, vec![(65200, 2)]);
    assert_eq!(r.large_communities, vec![(65200, 3, 4)]);
    let r6 = frr.wait_route("2001:db8:200::/48".parse()?, T)?;
    assert_eq!(r6.med, Some(60));
    assert_eq!(r6.from, Some(g6));

    // Graceful restart: GoBGP dies without a NOTIFICATION; FRR keeps the routes (stale) meanwhile and
    // still has them once the restarted GoBGP re-establishes and re-announces.
    gobgp.kill()?;
    frr.wait_not_established(g4, T)?;
    assert!(
        frr.received(Family::Ipv4Unicast)?
            .iter()
            .any(|r| r.prefix == Some("203.0.113.0/24".parse().unwrap())),
        "FRR dropped the routes of a restarting GR peer"
    );
    gobgp.restart()?;
    frr.wait_established(g4, T)?;
    gobgp.wait_established(f6, T)?;
    frr.wait_route("203.0.113.0/24".parse()?, T)?;
    gobgp.wait_route("198.51.100.0/24".parse()?, T)?;

    // Withdraw after the restart still reaches FRR.
    gobgp.withdraw("203.0.113.0/24".parse()?)?;
    frr.wait_route_gone("203.0.113.0/24".parse()?, T)?;
    Ok(())
}
