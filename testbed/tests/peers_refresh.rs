//! A star: GoBGP in the middle, BIRD, FRR and ExaBGP around it, each on its own link. Every driver's
//! `refresh_in` makes GoBGP count a received ROUTE-REFRESH (RFC 2918).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use testbed::peers::{
    BgpPeer, Bird, ExaBgp, Frr, GoBgp, Neighbor, PanicReport, PeerConfig, Route, ns_output,
    wait_until,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

/// ROUTE-REFRESH messages GoBGP received from `from`.
fn gobgp_refresh_received(g: &GoBgp, from: IpAddr) -> Result<u64> {
    let text = ns_output(
        g.netns(),
        "gobgp",
        &["-p", "50051", "neighbor", &from.to_string(), "-j"],
    )?;
    let v: Value = serde_json::from_str(&text)?;
    Ok(v.pointer("/state/messages/received/refresh")
        .and_then(Value::as_u64)
        .unwrap_or(0))
}

#[test]
fn every_driver_sends_route_refresh_in_a_star_around_gobgp() -> Result<()> {
    let topo = Topology::builder()
        .node("hub")
        .node("bird")
        .node("frr")
        .node("exabgp")
        .link("hub", "bird")
        .link("hub", "frr")
        .link("hub", "exabgp")
        .build()?;
    let ends: Vec<(IpAddr, IpAddr)> = (0..3)
        .map(|i| topo.link(i).map(|l| (l.a_v4.into(), l.b_v4.into())))
        .collect::<Result<_>>()?;
    let mut hub_cfg = PeerConfig::new(65000, "10.255.5.1".parse()?)
        .route(Route::parse("192.0.2.0/24").community(65000, 1));
    for (i, (_, spoke)) in ends.iter().enumerate() {
        hub_cfg = hub_cfg.neighbor(Neighbor::new(*spoke, 65001 + i as u32).hold_time(30));
    }
    let hub = GoBgp::start(topo.ns_name("hub")?, hub_cfg)?;
    let spoke_cfg = |i: usize| -> Result<PeerConfig> {
        Ok(
            PeerConfig::new(65001 + i as u32, format!("10.255.5.{}", 2 + i).parse()?)
                .neighbor(Neighbor::new(ends[i].0, 65000).hold_time(30)),
        )
    };
    let bird = Bird::start(topo.ns_name("bird")?, spoke_cfg(0)?)?;
    let frr = Frr::start(topo.ns_name("frr")?, spoke_cfg(1)?)?;
    let exabgp = ExaBgp::start(topo.ns_name("exabgp")?, spoke_cfg(2)?)?;
    let spokes: [&dyn BgpPeer; 3] = [&bird, &frr, &exabgp];
    let _report = PanicReport::new(&[&hub, &bird, &frr, &exabgp]);

    for (s, (h, spoke)) in spokes.iter().zip(&ends) {
        s.wait_established(*h, T)?;
        hub.wait_established(*spoke, T)?;
        s.wait_route("192.0.2.0/24".parse()?, T)?;
        let before = gobgp_refresh_received(&hub, *spoke)?;
        s.refresh_in(*h)?;
        wait_until(T, || {
            Ok((gobgp_refresh_received(&hub, *spoke)? > before).then_some(()))
        })
        .with_context(|| {
            format!(
                "GoBGP got no ROUTE-REFRESH from {}\n{}",
                s.kind(),
                s.diagnostics()
            )
        })?;
    }

    // GoBGP keeps its Adj-RIB-In: its refresh_in re-applies import policy and sends nothing.
    hub.refresh_in(ends[1].1)?;
    hub.wait_established(ends[1].1, T)?;
    Ok(())
}
