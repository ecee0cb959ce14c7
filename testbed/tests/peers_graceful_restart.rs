//! Graceful restart (RFC 4724) with each implementation restarting: BIRD, GoBGP and ExaBGP restart
//! (SIGKILL, then start again) while FRR helps and keeps their routes; FRR restarts while GoBGP helps.
//! After the restart the session is back and the routes are still (again) there.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;
use ipnet::IpNet;
use testbed::peers::{self, Family, Kind, Neighbor, PanicReport, PeerConfig, Route};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);

/// `restarting` announces a prefix to `helper` with GR negotiated, is killed and restarted.
fn restart_with_helper(restarting: Kind, helper: Kind) -> Result<()> {
    let topo = Topology::pair("r", "h")?;
    let l = topo.link(0)?;
    let (r4, h4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let prefix: IpNet = "198.51.100.0/24".parse()?;
    let r = peers::start(
        restarting,
        topo.ns_name("r")?,
        PeerConfig::new(65001, "10.255.7.1".parse()?)
            .neighbor(Neighbor::new(h4, 65002).hold_time(9).graceful_restart(60))
            .route(Route::new(prefix).community(65001, 7)),
    )?;
    let h = peers::start(
        helper,
        topo.ns_name("h")?,
        PeerConfig::new(65002, "10.255.7.2".parse()?)
            .neighbor(Neighbor::new(r4, 65001).hold_time(9).graceful_restart(60)),
    )?;
    let _report = PanicReport::new(&[r.as_ref(), h.as_ref()]);
    h.wait_established(r4, T)?;
    assert_eq!(h.wait_route(prefix, T)?.communities, vec![(65001, 7)]);

    r.kill()?;
    h.wait_not_established(r4, T)?;
    let kept = h.received(Family::Ipv4Unicast)?;
    assert!(
        kept.iter().any(|x| x.prefix == Some(prefix)),
        "{helper} dropped the routes of restarting {restarting}: {kept:?}"
    );
    r.restart()?;
    h.wait_established(r4, T)?;
    r.wait_established(h4, T)?;
    h.wait_route(prefix, T)?;
    // The restarted peer still controls its routes.
    r.withdraw(prefix)?;
    h.wait_route_gone(prefix, T)?;
    Ok(())
}

#[test]
fn bird_restarts_frr_helps() -> Result<()> {
    restart_with_helper(Kind::Bird, Kind::Frr)
}

#[test]
fn gobgp_restarts_frr_helps() -> Result<()> {
    restart_with_helper(Kind::GoBgp, Kind::Frr)
}

#[test]
fn exabgp_restarts_frr_helps() -> Result<()> {
    restart_with_helper(Kind::ExaBgp, Kind::Frr)
}

#[test]
fn frr_restarts_gobgp_helps() -> Result<()> {
    restart_with_helper(Kind::Frr, Kind::GoBgp)
}
