//! ADD-PATH (RFC 7911) through real implementations: ExaBGP and GoBGP both originate one prefix
//! towards FRR, which sends every path (addpath-tx-all-paths) to BIRD and to a second GoBGP; both
//! receivers end up with two paths for the prefix from the one session, then one after a withdraw.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use ipnet::IpNet;
use testbed::peers::{
    BgpPeer, Bird, ExaBgp, Family, Frr, GoBgp, Neighbor, PanicReport, PeerConfig, Route,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

#[test]
fn frr_sends_all_paths_to_bird_and_gobgp() -> Result<()> {
    let topo = Topology::builder()
        .node("hub")
        .node("exa")
        .node("gob")
        .node("bird")
        .node("rx")
        .link("hub", "exa")
        .link("hub", "gob")
        .link("hub", "bird")
        .link("hub", "rx")
        .build()?;
    let ends: Vec<(IpAddr, IpAddr)> = (0..4)
        .map(|i| topo.link(i).map(|l| (l.a_v4.into(), l.b_v4.into())))
        .collect::<Result<_>>()?;
    let prefix: IpNet = "203.0.113.0/24".parse()?;

    let frr = Frr::start(
        topo.ns_name("hub")?,
        PeerConfig::new(65100, "10.255.6.1".parse()?)
            .neighbor(Neighbor::new(ends[0].1, 65011).hold_time(30))
            .neighbor(Neighbor::new(ends[1].1, 65012).hold_time(30))
            .neighbor(
                Neighbor::new(ends[2].1, 65013)
                    .hold_time(30)
                    .add_path(true, true),
            )
            .neighbor(
                Neighbor::new(ends[3].1, 65014)
                    .hold_time(30)
                    .add_path(true, true),
            ),
    )?;
    let exa = ExaBgp::start(
        topo.ns_name("exa")?,
        PeerConfig::new(65011, "10.255.6.2".parse()?)
            .neighbor(Neighbor::new(ends[0].0, 65100).hold_time(30))
            .route(Route::new(prefix).community(65011, 1)),
    )?;
    let gob = GoBgp::start(
        topo.ns_name("gob")?,
        PeerConfig::new(65012, "10.255.6.3".parse()?)
            .neighbor(Neighbor::new(ends[1].0, 65100).hold_time(30))
            .route(Route::new(prefix).community(65012, 1)),
    )?;
    let bird = Bird::start(
        topo.ns_name("bird")?,
        PeerConfig::new(65013, "10.255.6.4".parse()?).neighbor(
            Neighbor::new(ends[2].0, 65100)
                .hold_time(30)
                .add_path(false, true),
        ),
    )?;
    let rx = GoBgp::start(
        topo.ns_name("rx")?,
        PeerConfig::new(65014, "10.255.6.5".parse()?).neighbor(
            Neighbor::new(ends[3].0, 65100)
                .hold_time(30)
                .add_path(false, true),
        ),
    )?;
    let _report = PanicReport::new(&[&frr, &exa, &gob, &bird, &rx]);

    for (i, (hub, _)) in ends.iter().enumerate() {
        let p: &dyn BgpPeer = [&exa as &dyn BgpPeer, &gob, &bird, &rx][i];
        p.wait_established(*hub, T)?;
    }
    let two_paths = |r: &[testbed::peers::ReceivedRoute]| {
        let mut paths: Vec<Vec<u32>> = r
            .iter()
            .filter(|r| r.prefix == Some(prefix))
            .map(|r| r.as_path.clone())
            .collect();
        paths.sort();
        paths == vec![vec![65100, 65011], vec![65100, 65012]]
    };
    bird.wait_received(
        Family::Ipv4Unicast,
        T,
        "two paths for 203.0.113.0/24",
        &two_paths,
    )?;
    let got = rx.wait_received(
        Family::Ipv4Unicast,
        T,
        "two paths for 203.0.113.0/24",
        &two_paths,
    )?;
    // Both paths come from the one FRR session: only ADD-PATH lets the second not replace the first.
    // (GoBGP 3.10's JSON does not show the path identifiers.)
    assert!(got.iter().all(|r| r.from == Some(ends[3].0)), "{got:?}");

    // One origin withdraws: one path remains at both receivers.
    exa.withdraw(prefix)?;
    let one = |r: &[testbed::peers::ReceivedRoute]| {
        r.iter()
            .filter(|r| r.prefix == Some(prefix))
            .map(|r| r.as_path.clone())
            .collect::<Vec<_>>()
            == vec![vec![65100, 65012]]
    };
    bird.wait_received(Family::Ipv4Unicast, T, "only GoBGP's path", &one)?;
    rx.wait_received(Family::Ipv4Unicast, T, "only GoBGP's path", &one)?;
    Ok(())
}
