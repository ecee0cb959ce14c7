//! The peer drivers' FlowSpec support against the real implementations: BIRD 2, GoBGP and ExaBGP each
//! negotiate IPv4 and IPv6 FlowSpec (RFC 8955/8956) with our speaker (`collect::NsSpeaker`, decoding with
//! `bgp::wire`), send a rule configured at start, rules announced at run time with every action the
//! implementation can express (discard, traffic-rate bytes, traffic-marking, and traffic-rate packets
//! where it has it), replace a rule's action, and withdraw rules. What arrives is compared with the
//! driver's own model of the rule (`FlowRoute::to_flowspec`, `FlowAct::expected`), so the rendering of
//! each implementation's syntax is checked end to end. Root only (namespaces).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use bgp::fsm::{Family, FsmConfig};
use bgp::session::{PeerConfig, PeerId, SocketOptions};
use testbed::collect::{NsSpeaker, Rib};
use testbed::peers::{
    self, FlowRoute, Fragment, Kind, Neighbor, PanicReport, PeerConfig as DriverConfig,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(40);
const OUR_AS: u32 = 4_200_000_001;
const PEER_AS: u32 = 65002;

fn our_config(local: IpAddr, peer: IpAddr) -> PeerConfig {
    let mut f = FsmConfig::new(OUR_AS, PEER_AS, Ipv4Addr::new(10, 255, 0, 1));
    f.hold_time = 9;
    f.connect_retry = Duration::from_secs(2);
    f.idle_hold = Duration::from_millis(500);
    f.idle_hold_max = Duration::from_secs(4);
    f.capabilities.families = vec![Family::IPV4_FLOWSPEC, Family::IPV6_FLOWSPEC];
    f.capabilities.extended_message = false;
    let mut c = PeerConfig::new(PeerId(1), SocketAddr::new(peer, 179), f);
    c.socket = SocketOptions {
        local_addr: Some(local),
        ..SocketOptions::default()
    };
    c
}

/// Whether the speaker holds `flow` (same semantics, with its action) from any peer.
fn holds(rib: &Rib, flow: &FlowRoute) -> bool {
    rib.flows
        .iter()
        .any(|((_, rule), actions)| flow.is_received_as(rule, actions))
}

/// Whether any rule with `flow`'s match is held, whatever its action.
fn holds_match(rib: &Rib, flow: &FlowRoute) -> bool {
    let want = flow.text().ok();
    rib.flows
        .keys()
        .any(|(_, rule)| Some(peers::flow::canonical_text(rule)) == want)
}

fn dump(rib: &Rib) -> String {
    rib.flows
        .iter()
        .map(|((_, r), a)| format!("  {r}  {a:?}\n"))
        .collect()
}

fn flowspec_from(kind: Kind) -> Result<()> {
    let topo = Topology::pair("ours", "peer")?;
    let l = topo.link(0)?.clone();
    let (our4, peer4) = (IpAddr::V4(l.a_v4), IpAddr::V4(l.b_v4));
    let at_start = FlowRoute::ipv4()
        .dst("10.100.9.0/24")
        .protocol(47)
        .discard();
    let peer_cfg = DriverConfig::new(PEER_AS, Ipv4Addr::new(10, 255, 0, 2))
        .neighbor(
            Neighbor::new(our4, OUR_AS)
                .hold_time(9)
                .families(&[peers::Family::Ipv4Flowspec, peers::Family::Ipv6Flowspec]),
        )
        .flow(at_start.clone());
    let peer = peers::start(kind, topo.ns_name("peer")?, peer_cfg)?;
    let _report = PanicReport::new(&[&*peer]);
    let ours = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(our4, 179)],
        vec![(our_config(our4, peer4), vec![])],
    )?;
    ours.wait_established(0, T)?;
    let neg = ours.handles[0].status().negotiated.expect("negotiated");
    assert!(
        neg.families.contains(&Family::IPV4_FLOWSPEC)
            && neg.families.contains(&Family::IPV6_FLOWSPEC),
        "{kind}: both FlowSpec families negotiated: {:?}",
        neg.families
    );
    ours.wait(T, &format!("{kind}: the rule configured at start"), |r| {
        holds(r, &at_start).then_some(())
    })?;

    let discard = FlowRoute::ipv4()
        .dst("10.100.1.0/24")
        .protocol(17)
        .dst_port(5001)
        .discard();
    let rate = FlowRoute::ipv4()
        .dst("10.100.2.0/24")
        .src("10.9.0.0/16")
        .protocol(17)
        .dst_ports(6000, 6010)
        .packet_len(64, 1500)
        .rate_bytes(25_000.0);
    let mark = FlowRoute::ipv4()
        .dst("10.100.3.0/24")
        .protocol(6)
        .tcp_flags(bgp::wire::flowspec::tcp_flag::SYN as u8)
        .dscp(0)
        .mark(46);
    let frag = FlowRoute::ipv4()
        .dst("10.100.4.0/24")
        .fragment(Fragment::IsFragment)
        .src_port(53)
        .discard();
    let v6 = FlowRoute::ipv6()
        .dst("fd00:100::/64")
        .protocol(17)
        .dst_port(5001)
        .rate_bytes(12_500.0);
    let mut all = vec![discard.clone(), rate.clone(), mark.clone(), frag, v6];
    if kind != Kind::GoBgp {
        all.push(
            FlowRoute::ipv4()
                .dst("10.100.5.0/24")
                .protocol(17)
                .rate_packets(200.0),
        );
    } else {
        let pps = FlowRoute::ipv4().dst("10.100.5.0/24").rate_packets(200.0);
        assert!(
            peer.announce_flow(&pps).is_err(),
            "GoBGP has no traffic-rate-packets: the driver must refuse"
        );
    }
    for f in &all {
        peer.announce_flow(f)?;
    }
    let rib = ours.wait(T, &format!("{kind}: every announced rule"), |r| {
        all.iter().all(|f| holds(r, f)).then(|| r.clone())
    })?;
    eprintln!("{kind} sent:\n{}", dump(&rib));
    assert!(holds(&rib, &at_start), "{kind}: start rule still there");
    assert_eq!(
        rib.flows.len(),
        all.len() + 1,
        "{kind}: exactly the announced rules\n{}",
        dump(&rib)
    );

    // A new action for the same match replaces the rule (RFC 8955 §5: the NLRI is the key).
    let remarked = mark.clone().mark(10);
    peer.announce_flow(&remarked)?;
    ours.wait(T, &format!("{kind}: marking changed to 10"), |r| {
        (holds(r, &remarked) && !holds(r, &mark)).then_some(())
    })?;

    // Withdrawals remove exactly those rules.
    peer.withdraw_flow(&discard)?;
    peer.withdraw_flow(&at_start)?;
    let rib = ours.wait(T, &format!("{kind}: two rules withdrawn"), |r| {
        (!holds_match(r, &discard) && !holds_match(r, &at_start)).then(|| r.clone())
    })?;
    assert!(
        holds(&rib, &rate),
        "{kind}: other rules stay\n{}",
        dump(&rib)
    );
    assert_eq!(rib.flows.len(), all.len() - 1, "{kind}\n{}", dump(&rib));
    assert!(
        rib.downs.is_empty(),
        "{kind}: session never went down: {:?}",
        rib.downs
    );
    Ok(())
}

#[test]
fn bird_sends_flowspec_rules_with_actions() -> Result<()> {
    flowspec_from(Kind::Bird)
}

#[test]
fn gobgp_sends_flowspec_rules_with_actions() -> Result<()> {
    flowspec_from(Kind::GoBgp)
}

#[test]
fn exabgp_sends_flowspec_rules_with_actions() -> Result<()> {
    flowspec_from(Kind::ExaBgp)
}
