//! GoBGP loads a generated table from the MRT writer (`gobgp mrt inject global`) and passes it to FRR
//! over a real session: the same table the benchmarks feed, through a third-party MRT reader.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::peers::{BgpPeer, Family, Frr, GoBgp, Neighbor, PanicReport, PeerConfig, wait_until};
use testbed::tablegen::{Config, generate};
use testbed::topo::Topology;

#[test]
fn gobgp_injects_the_generated_mrt_and_frr_receives_it() -> Result<()> {
    let topo = Topology::pair("gobgp", "frr")?;
    let l = topo.link(0)?;
    let (g4, f4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let table = generate(&Config {
        seed: 5,
        v4_count: 5_000,
        v6_count: 0,
        peer_as: Some(65001),
        ..Config::default()
    })?;

    let gobgp = GoBgp::start(
        topo.ns_name("gobgp")?,
        PeerConfig::new(65001, "10.255.9.1".parse()?)
            .neighbor(Neighbor::new(f4, 65002).hold_time(30)),
    )?;
    let frr = Frr::start(
        topo.ns_name("frr")?,
        PeerConfig::new(65002, "10.255.9.2".parse()?)
            .neighbor(Neighbor::new(g4, 65001).hold_time(30)),
    )?;
    let _report = PanicReport::new(&[&gobgp, &frr]);
    frr.wait_established(g4, Duration::from_secs(30))?;

    gobgp.inject_table(&table, g4)?;
    let n = wait_until(Duration::from_secs(60), || {
        let n = frr.received(Family::Ipv4Unicast)?.len();
        Ok((n >= table.len()).then_some(n))
    })
    .with_context(|| {
        format!(
            "FRR did not receive all {} routes\n{}",
            table.len(),
            frr.diagnostics()
        )
    })?;
    assert_eq!(n, table.len());

    // Spot-check attributes: GoBGP prepends its AS (65001) to the paths it injected.
    let got = frr.received(Family::Ipv4Unicast)?;
    for want in table.iter().step_by(499) {
        let r = got
            .iter()
            .find(|r| r.prefix == Some(want.prefix))
            .context("missing prefix")?;
        let mut path = vec![65001];
        path.extend(&want.as_path);
        assert_eq!(r.as_path, path, "{}", want.prefix);
        assert_eq!(r.communities, want.communities, "{}", want.prefix);
    }
    Ok(())
}
