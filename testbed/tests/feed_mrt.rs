//! `testbed feed --mrt`: the RouteViews TABLE_DUMP_V2 excerpts Debian's python3-pyasn ships (IPv4 and
//! IPv6), replayed over a real session to BIRD 2, which must receive every route of the chosen collector
//! peer with the dump's AS path (behind the feeder's AS), communities, large communities and MED; then a
//! `withdraw` on the feeder's stdin empties BIRD's table again.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use ipnet::IpNet;
use testbed::peers::{
    BgpPeer, Bird, Family, Neighbor, PanicReport, PeerConfig, ns_command, wait_until,
};
use testbed::topo::Topology;

fn root() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("skipped: needs root (network namespaces)");
    false
}

/// The feeder process, killed on drop so a failing test leaves nothing behind.
struct Feeder(Child);
impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn feed_replays_real_mrt_dumps_v4_and_v6_into_bird() -> Result<()> {
    if !root() {
        return Ok(());
    }
    let data = Path::new(testbed::tablegen::PYASN_DATA);
    let (f4, f6) = (
        data.join(testbed::tablegen::RIB_V4),
        data.join(testbed::tablegen::RIB_V6),
    );
    // What the feeder will announce: the fullest collector peer of each dump, behind AS 65001.
    let mut want: HashMap<IpNet, testbed::tablegen::GenRoute> = HashMap::new();
    for f in [&f4, &f6] {
        let rib = testbed::mrt::read_rib_file(f)?;
        let peer = rib.fullest_peer().context("empty dump")?;
        let t = testbed::feed::table_from_mrt(&rib, peer, 65001);
        for i in 0..t.len() {
            let r = t.route(i).context("route")?;
            want.insert(r.prefix, r);
        }
    }
    let v6 = want.keys().filter(|p| p.addr().is_ipv6()).count();
    let v4 = want.len() - v6;
    assert!(v4 > 5_000 && v6 > 1_000, "{v4} IPv4, {v6} IPv6 routes");

    let topo = Topology::pair("feeder", "bird")?;
    let l = topo.link(0)?;
    let bird = Bird::start(
        topo.ns_name("bird")?,
        PeerConfig::new(65002, "10.255.8.2".parse()?).neighbor(
            Neighbor::new(l.a_v4.into(), 65001)
                .families(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
                .hold_time(30),
        ),
    )?;
    let _report = PanicReport::new(&[&bird]);
    let mut child = ns_command(topo.ns_name("feeder")?, env!("CARGO_BIN_EXE_testbed"))
        .args(["feed", "--local-as", "65001", "--peer-as", "65002"])
        .args([
            "--local",
            &l.a_v4.to_string(),
            "--local6",
            &l.a_v6.to_string(),
        ])
        .args(["--peer", &l.b_v4.to_string()])
        .arg("--mrt")
        .arg(&f4)
        .arg("--mrt")
        .arg(&f6)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting testbed feed")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let feeder = Feeder(child);

    let got = wait_until(Duration::from_secs(90), || {
        let r4 = bird.received(Family::Ipv4Unicast)?;
        let r6 = bird.received(Family::Ipv6Unicast)?;
        Ok((r4.len() >= v4 && r6.len() >= v6).then_some((r4, r6)))
    })
    .with_context(|| {
        format!(
            "BIRD did not receive {v4} + {v6} routes\n{}",
            bird.diagnostics()
        )
    })?;
    assert_eq!((got.0.len(), got.1.len()), (v4, v6));

    let mut checked = 0;
    for r in got.0.iter().chain(got.1.iter()) {
        let p = r.prefix.context("route without prefix")?;
        let w = want
            .get(&p)
            .with_context(|| format!("{p} was not in the dump"))?;
        assert_eq!(r.as_path, w.as_path, "{p}: AS path");
        assert_eq!(r.communities, w.communities, "{p}: communities");
        assert_eq!(
            r.large_communities, w.large_communities,
            "{p}: large communities"
        );
        assert_eq!(r.med, w.med, "{p}: MED");
        let nh: IpAddr = if p.addr().is_ipv4() {
            l.a_v4.into()
        } else {
            l.a_v6.into()
        };
        assert_eq!(r.next_hop, Some(nh), "{p}: next hop");
        checked += 1;
    }
    assert_eq!(checked, v4 + v6);
    // Real data: the dump's peers tag routes, so the attributes checked above are not all empty.
    assert!(want.values().any(|r| !r.communities.is_empty()));

    writeln!(stdin, "withdraw")?;
    stdin.flush()?;
    wait_until(Duration::from_secs(60), || {
        let n =
            bird.received(Family::Ipv4Unicast)?.len() + bird.received(Family::Ipv6Unicast)?.len();
        Ok((n == 0).then_some(()))
    })
    .with_context(|| {
        format!(
            "BIRD kept routes after the withdrawal\n{}",
            bird.diagnostics()
        )
    })?;
    writeln!(stdin, "quit")?;
    drop(stdin);
    drop(feeder);
    Ok(())
}
