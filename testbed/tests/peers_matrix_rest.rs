//! The two pairs the other peers_* tests do not cover, BIRD ↔ GoBGP and FRR ↔ ExaBGP, through the
//! generic `peers::start`: IPv4 and IPv6 sessions, communities and large communities both ways,
//! received counts from the implementations' own counters, and withdraw.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use testbed::peers::{self, Family, Kind, Neighbor, PanicReport, PeerConfig, Route};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

fn pair(a: Kind, b: Kind) -> Result<()> {
    let topo = Topology::pair("a", "b")?;
    let l = topo.link(0)?;
    let (a4, b4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let (a6, b6): (IpAddr, IpAddr) = (l.a_v6.into(), l.b_v6.into());
    let cfg = |asn: u32,
               id: &str,
               n4: IpAddr,
               n6: IpAddr,
               peer_as: u32,
               tag: u16|
     -> Result<PeerConfig> {
        Ok(PeerConfig::new(asn, id.parse()?)
            .neighbor(Neighbor::new(n4, peer_as).hold_time(9))
            .neighbor(Neighbor::new(n6, peer_as).hold_time(9))
            .route(
                Route::parse(&format!("198.51.{tag}.0/24"))
                    .community(asn as u16, tag)
                    .large_community(asn, tag as u32, 1),
            )
            .route(Route::parse(&format!("198.18.{tag}.0/24")).community(asn as u16, 2))
            .route(
                Route::parse(&format!("2001:db8:{tag}::/48"))
                    .community(asn as u16, tag)
                    .large_community(asn, tag as u32, 6),
            ))
    };
    let pa = peers::start(
        a,
        topo.ns_name("a")?,
        cfg(65001, "10.255.3.1", b4, b6, 65002, 1)?,
    )?;
    let pb = peers::start(
        b,
        topo.ns_name("b")?,
        cfg(65002, "10.255.3.2", a4, a6, 65001, 2)?,
    )?;
    let _report = PanicReport::new(&[pa.as_ref(), pb.as_ref()]);

    for (p, n) in [(&pa, b4), (&pa, b6), (&pb, a4), (&pb, a6)] {
        p.wait_established(n, T)?;
    }
    for (rx, tx_as, tag) in [(&pb, 65001u32, 1u16), (&pa, 65002, 2)] {
        let r = rx.wait_route(format!("198.51.{tag}.0/24").parse()?, T)?;
        assert_eq!(r.as_path, vec![tx_as], "{} from {tx_as}", rx.kind());
        assert_eq!(r.communities, vec![(tx_as as u16, tag)]);
        assert_eq!(r.large_communities, vec![(tx_as, tag as u32, 1)]);
        let r6 = rx.wait_route(format!("2001:db8:{tag}::/48").parse()?, T)?;
        assert_eq!(r6.large_communities, vec![(tx_as, tag as u32, 6)]);
        assert!(
            !r6.next_hop
                .is_some_and(|n| matches!(n, IpAddr::V6(a) if a.is_unicast_link_local()))
        );
        // ExaBGP keeps routes carrying its own AS (FRR reflects them back): count the other side's.
        let own = if tx_as == 65001 { 65002 } else { 65001 };
        let mine = |f| -> Result<usize> {
            Ok(rx
                .received(f)?
                .iter()
                .filter(|r| !r.as_path.contains(&own))
                .count())
        };
        assert_eq!(
            (mine(Family::Ipv4Unicast)?, mine(Family::Ipv6Unicast)?),
            (2, 1),
            "{}",
            rx.kind()
        );
        if rx.kind() != Kind::ExaBgp {
            assert_eq!(
                rx.wait_received_count(Family::Ipv4Unicast, 2, T)?,
                2,
                "{}",
                rx.kind()
            );
            assert_eq!(rx.received_count(Family::Ipv6Unicast)?, 1, "{}", rx.kind());
        }
    }
    pa.withdraw("198.18.1.0/24".parse()?)?;
    pb.wait_route_gone("198.18.1.0/24".parse()?, T)?;
    pb.withdraw("2001:db8:2::/48".parse()?)?;
    pa.wait_route_gone("2001:db8:2::/48".parse()?, T)?;
    let from = |p: &dyn peers::BgpPeer, f, asn: u32| -> Result<usize> {
        Ok(p.received(f)?.iter().filter(|r| r.as_path == [asn]).count())
    };
    assert_eq!(from(pb.as_ref(), Family::Ipv4Unicast, 65001)?, 1);
    assert_eq!(from(pa.as_ref(), Family::Ipv6Unicast, 65002)?, 0);
    Ok(())
}

#[test]
fn bird_and_gobgp() -> Result<()> {
    pair(Kind::Bird, Kind::GoBgp)
}

#[test]
fn frr_and_exabgp() -> Result<()> {
    pair(Kind::Frr, Kind::ExaBgp)
}
