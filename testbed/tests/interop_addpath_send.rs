//! ADD-PATH send (RFC 7911) from the real ribd to a real receiver: GoBGP (AS 65001) sends two paths of
//! one prefix to ribd with path identifiers; ribd (AS 65000, `add-path = "send"` toward the receiver, the
//! default selection "all") advertises both to a second GoBGP (AS 65002) that negotiated ADD-PATH
//! receive, which must hold two paths for the prefix with distinct identifiers. Withdrawing one path at
//! the source withdraws exactly that path at the receiver (withdraw by path id).
//!
//! ```text
//!   src (GoBGP 65001) ──10.0.0.0/24── rd (ribd 65000) ──10.0.1.0/24── rx (GoBGP 65002, add-paths receive)
//! ```
//!
//! Needs root (namespaces) and gobgpd.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use testbed::peers::{BgpPeer, Family, GoBgp, Neighbor, PanicReport, PeerConfig};
use testbed::ribd::{Ribd, RibdConfig, RibdPeer};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(40);
const PREFIX: &str = "198.51.100.0/24";

#[test]
fn ribd_sends_two_paths_of_one_prefix_to_an_add_path_receiver_rfc7911() -> Result<()> {
    let topo = Topology::builder()
        .node("rd")
        .node("src")
        .node("rx")
        .link("rd", "src")
        .link("rd", "rx")
        .build()?;
    let l_src = topo.link_between("rd", "src")?;
    let l_rx = topo.link_between("rd", "rx")?;
    let (rd_s, src): (IpAddr, IpAddr) = (l_src.a_v4.into(), l_src.b_v4.into());
    let (rd_r, rx): (IpAddr, IpAddr) = (l_rx.a_v4.into(), l_rx.b_v4.into());

    let ribd = Ribd::start(
        topo.ns_name("rd")?,
        &RibdConfig::new(65000, "10.255.0.1".parse()?)
            .listen(rd_s)
            .listen(rd_r)
            .peer(RibdPeer::new("src", src, 65001).add_path("receive"))
            .peer(RibdPeer::new("rx", rx, 65002).add_path("send")),
    )?;
    let source = GoBgp::start(
        topo.ns_name("src")?,
        PeerConfig::new(65001, "10.255.0.2".parse()?).neighbor(
            Neighbor::new(rd_s, 65000)
                .local_address(src)
                .hold_time(9)
                .add_path(true, false),
        ),
    )?;
    let receiver = GoBgp::start(
        topo.ns_name("rx")?,
        PeerConfig::new(65002, "10.255.0.3".parse()?).neighbor(
            Neighbor::new(rd_r, 65000)
                .local_address(rx)
                .hold_time(9)
                .add_path(false, true),
        ),
    )?;
    let _report = PanicReport::new(&[&source as &dyn BgpPeer, &receiver as &dyn BgpPeer]);
    ribd.wait_established("src", T)?;
    ribd.wait_established("rx", T)?;
    receiver.wait_established(rd_r, T)?;
    let caps = ribd.peer("rx")?.capabilities;
    assert!(
        caps.iter().any(|c| c.starts_with("add-path send")),
        "ADD-PATH send negotiated with the receiver: {caps:?}"
    );

    for id in [1, 2] {
        source.gobgp(&[
            "global",
            "rib",
            "add",
            "-a",
            "ipv4",
            PREFIX,
            "identifier",
            &id.to_string(),
            "community",
            &format!("65001:1{id}"),
        ])?;
    }
    let prefix = PREFIX.parse()?;
    let got = receiver.wait_received(Family::Ipv4Unicast, T, "two paths of the prefix", &|rs| {
        rs.iter().filter(|r| r.prefix == Some(prefix)).count() >= 2
    })?;
    let paths: Vec<_> = got.iter().filter(|r| r.prefix == Some(prefix)).collect();
    let mut ids: Vec<u32> = paths.iter().filter_map(|r| r.path_id).collect();
    ids.sort_unstable();
    ids.dedup();
    println!("receiver holds {} paths of {PREFIX}: ", paths.len());
    for p in &paths {
        println!(
            "  path id {:?} as-path {:?} communities {:?} next-hop {:?}",
            p.path_id, p.as_path, p.communities, p.next_hop
        );
    }
    let text = receiver.gobgp(&["global", "rib", "-a", "ipv4", PREFIX])?;
    println!("{text}");
    // GoBGP 3.10's JSON has no path identifier (the driver's `path_id` stays None), but it keeps two
    // paths from one neighbour apart only by their ADD-PATH identifiers: without distinct ids the
    // second would have replaced the first.
    if !ids.is_empty() && ids.len() < 2 {
        bail!("the receiver's paths do not carry two distinct path identifiers: {paths:?}");
    }
    if paths.len() != 2 || paths.iter().any(|p| p.from != Some(rd_r)) {
        bail!("expected two paths from ribd ({rd_r}): {paths:?}");
    }
    assert!(paths.iter().all(|p| p.as_path == vec![65000, 65001]));
    let mut comms: Vec<(u16, u16)> = paths.iter().flat_map(|p| p.communities.clone()).collect();
    comms.sort_unstable();
    assert_eq!(
        comms,
        vec![(65001, 11), (65001, 12)],
        "both paths, each with its own attributes"
    );

    // The source withdraws path 1: exactly the path carrying 65001:11 goes at the receiver.
    source.gobgp(&[
        "global",
        "rib",
        "del",
        "-a",
        "ipv4",
        PREFIX,
        "identifier",
        "1",
    ])?;
    let left = receiver.wait_received(Family::Ipv4Unicast, T, "one path left", &|rs| {
        rs.iter().filter(|r| r.prefix == Some(prefix)).count() == 1
    })?;
    let last: Vec<_> = left.iter().filter(|r| r.prefix == Some(prefix)).collect();
    assert_eq!(
        last[0].communities,
        vec![(65001, 12)],
        "the withdrawal named the other path's identifier: {last:?}"
    );
    Ok(())
}
