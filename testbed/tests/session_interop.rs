//! `bgp::session` against real BGP implementations (BIRD 2, FRR, GoBGP, ExaBGP), each its own processes
//! in a network namespace with its configuration in a temp dir (the `testbed::peers` drivers).
//!
//! Per implementation:
//! * eBGP over IPv4 transport, IPv4 + IPv6 unicast via MP-BGP, our AS 4-octet (4200000001): routes both
//!   ways with the right AS paths and next hops; our ROUTE-REFRESH answered by the peer and the peer's
//!   answered by us; the peer frozen (SIGSTOP) → our hold timer expires → session back after SIGCONT; the
//!   peer shuts the session down (NOTIFICATION Cease) → clean teardown, reconnect after it re-enables.
//! * iBGP over IPv6 transport with GTSM (TTL 255 both ways, RFC 5082), and eBGP over IPv6 transport, with
//!   routes both ways.
//! * TCP-MD5 (RFC 2385): a wrong password never establishes (and nothing crashes); the right one does, with
//!   us connecting and (BIRD, FRR) with the peer connecting to our listener's per-peer key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Result, bail};
use bgp::fsm::{Cause, Family, FsmConfig, State, code};
use bgp::session::{PeerConfig, PeerId, SocketOptions, TtlMode};
use bgp::wire::attr::mp::{MpReach, NextHop};
use bgp::wire::attr::{Origin, as_path::AsPath};
use bgp::wire::{Nlri, PathAttributes, Update};
use ipnet::IpNet;
use testbed::collect::NsSpeaker;
use testbed::peers::{
    self, BgpPeer, Bird, ExaBgp, Frr, GoBgp, Kind, Neighbor, PanicReport,
    PeerConfig as DriverConfig, Route,
};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(40);
const OUR_AS: u32 = 4_200_000_001;
const PEER_AS: u32 = 65002;

/// One running implementation, kept as its concrete driver for implementation-specific commands.
enum Peer {
    Bird(Bird),
    Frr(Frr),
    GoBgp(GoBgp),
    ExaBgp(ExaBgp),
}

impl std::ops::Deref for Peer {
    type Target = dyn BgpPeer;
    fn deref(&self) -> &(dyn BgpPeer + 'static) {
        match self {
            Peer::Bird(p) => p,
            Peer::Frr(p) => p,
            Peer::GoBgp(p) => p,
            Peer::ExaBgp(p) => p,
        }
    }
}

fn start_peer(kind: Kind, ns: &str, cfg: DriverConfig) -> Result<Peer> {
    Ok(match kind {
        Kind::Bird => Peer::Bird(Bird::start(ns, cfg)?),
        Kind::Frr => Peer::Frr(Frr::start(ns, cfg)?),
        Kind::GoBgp => Peer::GoBgp(GoBgp::start(ns, cfg)?),
        Kind::ExaBgp => Peer::ExaBgp(ExaBgp::start(ns, cfg)?),
    })
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn v4_update(prefix: &str, local_as: u32, nh: Ipv4Addr, ibgp: bool) -> Update {
    Update {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if ibgp {
                AsPath::default()
            } else {
                AsPath::sequence([local_as])
            }),
            next_hop: Some(nh),
            local_pref: ibgp.then_some(100),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(net(prefix))],
        ..Update::default()
    }
}

fn v6_update(prefix: &str, local_as: u32, nh: Ipv6Addr, ibgp: bool) -> Update {
    Update {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if ibgp {
                AsPath::default()
            } else {
                AsPath::sequence([local_as])
            }),
            local_pref: ibgp.then_some(100),
            ..PathAttributes::default()
        },
        mp_reach: Some(MpReach {
            afi_safi: Family::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: nh,
                link_local: None,
            },
            nlri: vec![Nlri::new(net(prefix))],
            flowspec: Vec::new(),
            opaque_nlri: Vec::new(),
        }),
        ..Update::default()
    }
}

/// Our side of a session with `peer` (address), hold 9 s, quick retries.
fn our_config(local: IpAddr, peer: IpAddr, local_as: u32, peer_as: u32) -> PeerConfig {
    let mut f = FsmConfig::new(local_as, peer_as, Ipv4Addr::new(10, 255, 0, 1));
    f.hold_time = 9;
    f.connect_retry = Duration::from_secs(2);
    f.idle_hold = Duration::from_millis(500);
    f.idle_hold_max = Duration::from_secs(4);
    f.capabilities.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    f.capabilities.extended_message = false;
    let mut c = PeerConfig::new(PeerId(1), SocketAddr::new(peer, 179), f);
    c.socket = SocketOptions {
        local_addr: Some(local),
        ..SocketOptions::default()
    };
    c
}

/// Asks the peer to send us a ROUTE-REFRESH (inbound soft reset), where the implementation can.
fn peer_refresh(peer: &Peer, ours: IpAddr) -> Result<bool> {
    match peer {
        // BIRD names its protocols n0, n1, ... in neighbour order; ours is the only one.
        Peer::Bird(p) => p.birdc(&["reload", "in", "n0"]).map(|_| true),
        Peer::Frr(p) => p
            .vtysh(&[&format!("clear bgp {ours} soft in")])
            .map(|_| true),
        // GoBGP keeps its Adj-RIB-In and re-applies policy from it on `softresetin` without sending
        // ROUTE-REFRESH; ExaBGP has no command for it.
        Peer::GoBgp(_) | Peer::ExaBgp(_) => Ok(false),
    }
}

fn ebgp_full(kind: Kind) -> Result<()> {
    let topo = Topology::pair("ours", "peer")?;
    let l = topo.link(0)?.clone();
    let (our4, peer4, our6) = (IpAddr::V4(l.a_v4), IpAddr::V4(l.b_v4), l.a_v6);
    let peer_cfg = DriverConfig::new(PEER_AS, Ipv4Addr::new(10, 255, 0, 2))
        .neighbor(
            Neighbor::new(our4, OUR_AS)
                .hold_time(9)
                .families(&[peers::Family::Ipv4Unicast, peers::Family::Ipv6Unicast]),
        )
        .route(Route::parse("198.51.100.0/24"))
        .route(Route::parse("2001:db8:100::/48").next_hop(IpAddr::V6(l.b_v6)));
    let peer = start_peer(kind, topo.ns_name("peer")?, peer_cfg)?;
    let _report = PanicReport::new(&[&*peer]);
    let ours = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(our4, 179)],
        vec![(
            our_config(our4, peer4, OUR_AS, PEER_AS),
            vec![
                v4_update("203.0.113.0/24", OUR_AS, l.a_v4, false),
                v6_update("2001:db8:200::/48", OUR_AS, our6, false),
            ],
        )],
    )?;
    ours.wait_established(0, T)?;
    peer.wait_established(our4, T)?;
    let neg = ours.handles[0].status().negotiated.expect("negotiated");
    assert!(neg.four_octet_as, "{kind}: 4-octet AS negotiated");
    assert_eq!(neg.peer_as, PEER_AS);
    assert!(
        neg.families.contains(&Family::IPV6_UNICAST),
        "{kind}: MP IPv6 negotiated: {neg:?}"
    );

    // Routes both ways, IPv4 and IPv6.
    let (path, nh) = ours.wait(T, "198.51.100.0/24 from the peer", |r| {
        r.get(net("198.51.100.0/24")).cloned()
    })?;
    assert_eq!(path, vec![PEER_AS]);
    assert_eq!(nh, Some(peer4));
    let (path6, _) = ours.wait(T, "2001:db8:100::/48 from the peer", |r| {
        r.get(net("2001:db8:100::/48")).cloned()
    })?;
    assert_eq!(path6, vec![PEER_AS]);
    let r = peer.wait_route(net("203.0.113.0/24"), T)?;
    assert_eq!(r.as_path, vec![OUR_AS]);
    let r6 = peer.wait_route(net("2001:db8:200::/48"), T)?;
    assert_eq!(r6.as_path, vec![OUR_AS]);

    // Our ROUTE-REFRESH: the peer sends its routes again.
    let before = ours.rib().updates;
    ours.handles[0].refresh(Family::IPV4_UNICAST);
    ours.wait(T, "UPDATEs re-sent after our ROUTE-REFRESH", |r| {
        (r.updates > before).then_some(())
    })?;
    // The peer's ROUTE-REFRESH: we answer by announcing again.
    let sent_before = ours.handles[0].status().messages.sent[2];
    if peer_refresh(&peer, our4)? {
        ours.wait(T, "the peer's ROUTE-REFRESH", |r| {
            (r.refresh_requests > 0).then_some(())
        })?;
        let deadline = std::time::Instant::now() + T;
        while ours.handles[0].status().messages.sent[2] <= sent_before {
            if std::time::Instant::now() > deadline {
                bail!("{kind}: we did not answer the ROUTE-REFRESH");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        peer.wait_route(net("203.0.113.0/24"), T)?;
    }

    // Peer frozen: our hold timer (9 s) expires; after SIGCONT the session comes back.
    peer.pause()?;
    let cause = ours.wait(Duration::from_secs(30), "hold timer expiry", |r| {
        r.downs.first().map(|d| d.1.clone())
    })?;
    assert!(
        matches!(&cause, Cause::Sent(n) if n.code == code::HOLD_TIMER_EXPIRED),
        "{kind}: expected hold timer expiry, got {cause}"
    );
    assert!(
        ours.rib().get(net("198.51.100.0/24")).is_none(),
        "routes of a dead session are gone"
    );
    peer.resume()?;
    ours.wait_established(0, Duration::from_secs(60))?;
    peer.wait_established(our4, Duration::from_secs(60))?;
    ours.wait(T, "routes again after the peer came back", |r| {
        r.get(net("198.51.100.0/24")).cloned()
    })?;

    // The peer shuts the session down: we get its Cease, tear down, and reconnect once it re-enables.
    let downs = ours.rib().downs.len();
    peer.shutdown_neighbor(our4)?;
    let cause = ours.wait(T, "the peer's NOTIFICATION", |r| {
        r.downs.get(downs).map(|d| d.1.clone())
    })?;
    match &cause {
        Cause::Received(n) => assert_eq!(n.code, code::CEASE, "{kind}: {n}"),
        // ExaBGP's teardown may close the TCP connection right after its NOTIFICATION.
        Cause::ConnectionClosed if kind == Kind::ExaBgp => {}
        other => bail!("{kind}: expected a Cease from the peer, got {other}"),
    }
    assert_ne!(ours.handles[0].state(), State::Established);
    peer.enable_neighbor(our4)?;
    ours.wait_established(0, Duration::from_secs(60))?;
    ours.wait(T, "routes after re-enable", |r| {
        r.get(net("198.51.100.0/24")).cloned()
    })?;
    assert!(ours.handles[0].status().flaps >= 2);
    Ok(())
}

/// A session over IPv6 transport carrying IPv6 unicast: iBGP with GTSM, or plain eBGP.
fn ipv6_transport(kind: Kind, ibgp: bool) -> Result<()> {
    let topo = Topology::pair("ours", "peer")?;
    let l = topo.link(0)?.clone();
    let (our6, peer6) = (IpAddr::V6(l.a_v6), IpAddr::V6(l.b_v6));
    let (asn, peer_as) = if ibgp {
        (65010, 65010)
    } else {
        (OUR_AS, PEER_AS)
    };
    let mut n = Neighbor::new(our6, asn).hold_time(9);
    if ibgp {
        n = n.ttl_security();
    }
    let peer_cfg = DriverConfig::new(peer_as, Ipv4Addr::new(10, 255, 0, 2))
        .neighbor(n)
        .route(Route::parse("2001:db8:300::/48").next_hop(peer6));
    let peer = start_peer(kind, topo.ns_name("peer")?, peer_cfg)?;
    let _report = PanicReport::new(&[&*peer]);
    let mut cfg = our_config(our6, peer6, asn, peer_as);
    cfg.fsm.capabilities.families = vec![Family::IPV6_UNICAST];
    if ibgp {
        cfg.socket.ttl = TtlMode::Gtsm { hops: 1 };
    }
    let ours = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(our6, 179)],
        vec![(cfg, vec![v6_update("2001:db8:400::/48", asn, l.a_v6, ibgp)])],
    )?;
    ours.wait_established(0, T)?;
    peer.wait_established(our6, T)?;
    let (path, nh) = ours.wait(T, "2001:db8:300::/48 over IPv6", |r| {
        r.get(net("2001:db8:300::/48")).cloned()
    })?;
    let r = peer.wait_route(net("2001:db8:400::/48"), T)?;
    let neg = ours.handles[0].status().negotiated.expect("negotiated");
    if ibgp {
        assert!(
            path.is_empty(),
            "{kind}: iBGP route from the peer's own AS has an empty path: {path:?}"
        );
        assert!(r.as_path.is_empty(), "{kind}: {r:?}");
        assert!(!neg.is_ebgp());
    } else {
        assert_eq!(path, vec![PEER_AS]);
        assert_eq!(
            nh,
            Some(peer6),
            "{kind}: next hop of an eBGP route over IPv6"
        );
        assert_eq!(r.as_path, vec![OUR_AS]);
        assert!(neg.is_ebgp());
    }
    Ok(())
}

/// TCP-MD5 with us connecting (`passive` false) or with the peer connecting to our listener.
fn md5(kind: Kind, passive: bool) -> Result<()> {
    let topo = Topology::pair("ours", "peer")?;
    let l = topo.link(0)?.clone();
    let (our4, peer4) = (IpAddr::V4(l.a_v4), IpAddr::V4(l.b_v4));
    let peer_cfg = DriverConfig::new(PEER_AS, Ipv4Addr::new(10, 255, 0, 2))
        .neighbor(
            Neighbor::new(our4, OUR_AS)
                .hold_time(9)
                .password("right-secret"),
        )
        .route(Route::parse("198.51.100.0/24"));
    let peer = start_peer(kind, topo.ns_name("peer")?, peer_cfg)?;
    let _report = PanicReport::new(&[&*peer]);
    let mut wrong = our_config(our4, peer4, OUR_AS, PEER_AS);
    wrong.socket.md5_key = Some(b"wrong-secret".to_vec());
    wrong.fsm.passive = passive;
    {
        let ours = NsSpeaker::start(
            topo.ns("ours")?,
            &[SocketAddr::new(our4, 179)],
            vec![(wrong, vec![])],
        )?;
        std::thread::sleep(Duration::from_secs(8));
        assert_ne!(
            ours.handles[0].state(),
            State::Established,
            "{kind}: wrong MD5 password established"
        );
        assert_eq!(ours.rib().established, 0);
        assert_ne!(peer.session_state(our4)?, peers::SessionState::Established);
    }
    let mut right = our_config(our4, peer4, OUR_AS, PEER_AS);
    right.socket.md5_key = Some(b"right-secret".to_vec());
    right.fsm.passive = passive;
    let ours = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(our4, 179)],
        vec![(right, vec![])],
    )?;
    ours.wait_established(0, T)?;
    ours.wait(T, "a route over the MD5 session", |r| {
        r.get(net("198.51.100.0/24")).cloned()
    })?;
    Ok(())
}

macro_rules! interop {
    ($($name:ident: $f:ident($($arg:expr),*);)*) => {$(
        #[test]
        fn $name() -> Result<()> {
            $f($($arg),*)
        }
    )*};
}

interop! {
    bird_ebgp_ipv4_transport_mp_four_octet_refresh_hold_expiry_notification: ebgp_full(Kind::Bird);
    frr_ebgp_ipv4_transport_mp_four_octet_refresh_hold_expiry_notification: ebgp_full(Kind::Frr);
    gobgp_ebgp_ipv4_transport_mp_four_octet_refresh_hold_expiry_notification: ebgp_full(Kind::GoBgp);
    exabgp_ebgp_ipv4_transport_mp_four_octet_hold_expiry_notification: ebgp_full(Kind::ExaBgp);
    bird_ibgp_ipv6_transport_gtsm: ipv6_transport(Kind::Bird, true);
    frr_ibgp_ipv6_transport_gtsm: ipv6_transport(Kind::Frr, true);
    gobgp_ibgp_ipv6_transport_gtsm: ipv6_transport(Kind::GoBgp, true);
    exabgp_ibgp_ipv6_transport_gtsm: ipv6_transport(Kind::ExaBgp, true);
    bird_ebgp_ipv6_transport: ipv6_transport(Kind::Bird, false);
    frr_ebgp_ipv6_transport: ipv6_transport(Kind::Frr, false);
    gobgp_ebgp_ipv6_transport: ipv6_transport(Kind::GoBgp, false);
    exabgp_ebgp_ipv6_transport: ipv6_transport(Kind::ExaBgp, false);
    bird_tcp_md5_wrong_then_right_password: md5(Kind::Bird, false);
    frr_tcp_md5_wrong_then_right_password: md5(Kind::Frr, false);
    gobgp_tcp_md5_wrong_then_right_password: md5(Kind::GoBgp, false);
    exabgp_tcp_md5_wrong_then_right_password: md5(Kind::ExaBgp, false);
    bird_tcp_md5_on_our_listener: md5(Kind::Bird, true);
    frr_tcp_md5_on_our_listener: md5(Kind::Frr, true);
}
