//! Hostile and broken input against `bgp::session`, while a real BIRD 2 session runs next to it.
//!
//! Topology: "ours" (our speaker) ─veth─ "good" (BIRD, AS 65002) and ─veth─ "bad" (a raw TCP client).
//! The bad node's link address is configured on our side as a passive peer (AS 65003), so its bytes are
//! read and answered; a second address on it is not configured and must be refused without a byte read.
//! After every case the BIRD session is still Established and has never flapped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bgp::fsm::{Family, FsmConfig, State, code, open_error};
use bgp::session::{PeerConfig, PeerId, SocketOptions};
use bgp::wire::{self, Message, Notification, Open};
use bytes::BytesMut;
use testbed::collect::NsSpeaker;
use testbed::netns::{Netns, addr};
use testbed::peers::{
    BgpPeer, Bird, Neighbor, PanicReport, PeerConfig as DriverConfig, Route, SessionState,
};
use testbed::topo::Topology;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(30);
const OUR_AS: u32 = 65001;
const BAD_AS: u32 = 65003;

struct Bed {
    topo: Topology,
    ours: NsSpeaker,
    bird: Bird,
    our_bad_side: Ipv4Addr,
    unconfigured: Ipv4Addr,
}

fn config(id: u32, local: Ipv4Addr, peer: Ipv4Addr, peer_as: u32, passive: bool) -> PeerConfig {
    let mut f = FsmConfig::new(OUR_AS, peer_as, Ipv4Addr::new(10, 255, 0, 1));
    f.hold_time = 9;
    f.passive = passive;
    f.connect_retry = Duration::from_secs(2);
    f.idle_hold = Duration::from_millis(200);
    f.idle_hold_max = Duration::from_millis(800);
    f.capabilities.families = vec![Family::IPV4_UNICAST];
    let mut c = PeerConfig::new(PeerId(id), SocketAddr::new(IpAddr::V4(peer), 179), f);
    c.socket = SocketOptions {
        local_addr: Some(IpAddr::V4(local)),
        ..SocketOptions::default()
    };
    c
}

fn bed() -> Result<Bed> {
    let topo = Topology::builder()
        .node("ours")
        .node("good")
        .node("bad")
        .link("ours", "good")
        .link("ours", "bad")
        .build()?;
    let good = topo.link_between("ours", "good")?.clone();
    let bad = topo.link_between("ours", "bad")?.clone();
    let (our_good, bird_ip) = if good.a == "ours" {
        (good.a_v4, good.b_v4)
    } else {
        (good.b_v4, good.a_v4)
    };
    let (our_bad, bad_ip, bad_if) = if bad.a == "ours" {
        (bad.a_v4, bad.b_v4, bad.b_if.clone())
    } else {
        (bad.b_v4, bad.a_v4, bad.a_if.clone())
    };
    // A second address on the bad node that no peer is configured for.
    let o = bad_ip.octets();
    let unconfigured = Ipv4Addr::new(o[0], o[1], o[2], 100);
    addr(
        topo.ns("bad")?,
        &bad_if,
        &format!("{unconfigured}/{}", bad.v4_len),
    )?;
    let bird = Bird::start(
        topo.ns_name("good")?,
        DriverConfig::new(65002, Ipv4Addr::new(10, 255, 0, 2))
            .neighbor(Neighbor::new(IpAddr::V4(our_good), OUR_AS).hold_time(9))
            .route(Route::parse("198.51.100.0/24")),
    )?;
    let ours = NsSpeaker::start(
        topo.ns("ours")?,
        &[SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 179)],
        vec![
            (config(1, our_good, bird_ip, 65002, false), vec![]),
            (config(2, our_bad, bad_ip, BAD_AS, true), vec![]),
        ],
    )?;
    ours.wait_established(0, T)?;
    bird.wait_established(IpAddr::V4(our_good), T)?;
    Ok(Bed {
        topo,
        ours,
        bird,
        our_bad_side: our_bad,
        unconfigured,
    })
}

impl Bed {
    fn bad_ns(&self) -> Result<&Netns> {
        self.topo.ns("bad")
    }

    /// The healthy session is untouched: Established on both sides, never flapped.
    fn good_still_up(&self) -> Result<()> {
        let st = self.ours.handles[0].status();
        if st.state != State::Established || st.flaps != 0 {
            bail!("the BIRD session suffered: {st:?}");
        }
        let ours_good = self.topo.link_between("ours", "good")?;
        let ip = ours_good.addr_of("ours", false).context("address")?;
        if self.bird.session_state(ip)? != SessionState::Established {
            bail!("BIRD's side of the session is not Established");
        }
        Ok(())
    }

    /// Waits until the raw peer's FSM accepts connections again (its idle hold after the last error).
    fn bad_peer_ready(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + T;
        while self.ours.handles[1].state() != State::Active {
            if std::time::Instant::now() > deadline {
                bail!(
                    "raw peer never back to Active: {:?}",
                    self.ours.handles[1].status()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// From the bad node: connect (from `from`, default its link address), send `chunks` with `gap`
    /// between them, then read everything until the connection closes. Returns what came back.
    fn exchange(
        &self,
        from: Option<Ipv4Addr>,
        chunks: Vec<Vec<u8>>,
        gap: Duration,
    ) -> Result<Vec<u8>> {
        let target = SocketAddr::new(IpAddr::V4(self.our_bad_side), 179);
        self.bad_ns()?.run_in(move || -> Result<Vec<u8>> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let s = tokio::net::TcpSocket::new_v4()?;
                if let Some(a) = from {
                    s.bind(SocketAddr::new(IpAddr::V4(a), 0))?;
                }
                let mut c = s.connect(target).await?;
                let (mut rd, mut wr) = c.split();
                let reader = async {
                    let mut got = Vec::new();
                    let _ = tokio::time::timeout(Duration::from_secs(40), rd.read_to_end(&mut got))
                        .await;
                    got
                };
                let writer = async {
                    for ch in chunks {
                        if wr.write_all(&ch).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(gap).await;
                    }
                };
                let (got, ()) = tokio::join!(reader, writer);
                Ok(got)
            })
        })?
    }
}

/// The messages in a byte stream (as far as they decode).
fn messages(mut b: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some(len)) = wire::frame(b, wire::MAX_MESSAGE_LEN) {
        if let Ok(m) = Message::decode(&b[..len], &wire::Context::default()) {
            out.push(m);
        }
        b = &b[len..];
    }
    out
}

fn notification(b: &[u8]) -> Option<Notification> {
    messages(b).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    })
}

fn open_bytes(asn: u32) -> Vec<u8> {
    let caps = bgp::fsm::default_capabilities(asn, &[Family::IPV4_UNICAST]).to_wire();
    let open = Open::new(asn, 9, Ipv4Addr::new(10, 255, 0, 3), caps);
    let mut b = BytesMut::new();
    Message::Open(open)
        .encode(&wire::Context::default(), &mut b)
        .expect("OPEN encodes");
    b.to_vec()
}

fn header(len: u16, ty: u8) -> Vec<u8> {
    let mut h = vec![0xff; 16];
    h.extend_from_slice(&len.to_be_bytes());
    h.push(ty);
    h
}

#[test]
fn hostile_input_gets_the_right_notification_and_spares_other_sessions_rfc4271_6() -> Result<()> {
    let bed = bed()?;
    let _report = PanicReport::new(&[&bed.bird]);

    // Garbage: the marker is wrong → Message Header Error / Connection Not Synchronized (1/1).
    bed.bad_peer_ready()?;
    let got = bed.exchange(None, vec![vec![0x5a; 64]], Duration::ZERO)?;
    let n = notification(&got).context("no NOTIFICATION for garbage")?;
    assert_eq!((n.code, n.subcode), (code::MESSAGE_HEADER, 1), "{n}");
    bed.good_still_up()?;

    // A header announcing 10 octets → Bad Message Length (1/2) with the length as data.
    bed.bad_peer_ready()?;
    let got = bed.exchange(None, vec![header(10, 1)], Duration::ZERO)?;
    let n = notification(&got).context("no NOTIFICATION for a short length")?;
    assert_eq!(
        (n.code, n.subcode, n.data.clone()),
        (code::MESSAGE_HEADER, 2, vec![0, 10]),
        "{n}"
    );
    bed.good_still_up()?;

    // Oversize: an OPEN claiming 5000 octets (OPEN is limited to 4096) → 1/2.
    bed.bad_peer_ready()?;
    let got = bed.exchange(None, vec![header(5000, 1), vec![0; 200]], Duration::ZERO)?;
    let n = notification(&got).context("no NOTIFICATION for an oversize message")?;
    assert_eq!((n.code, n.subcode), (code::MESSAGE_HEADER, 2), "{n}");
    bed.good_still_up()?;

    // A truncated header, then the peer closes: we close too, without crashing or sending garbage.
    bed.bad_peer_ready()?;
    let got = bed.exchange(None, vec![vec![0xff; 11]], Duration::ZERO)?;
    let msgs = messages(&got);
    assert!(
        msgs.iter().all(|m| matches!(m, Message::Open(_))),
        "only our OPEN: {msgs:?}"
    );
    bed.good_still_up()?;

    // OPEN with the wrong AS → OPEN Message Error / Bad Peer AS (2/2).
    bed.bad_peer_ready()?;
    let got = bed.exchange(None, vec![open_bytes(64999)], Duration::ZERO)?;
    let n = notification(&got).context("no NOTIFICATION for a wrong AS")?;
    assert_eq!(
        (n.code, n.subcode),
        (code::OPEN_MESSAGE, open_error::BAD_PEER_AS),
        "{n}"
    );
    bed.good_still_up()?;

    // A correct OPEN at one byte every 150 ms: reassembled across reads and answered with KEEPALIVE;
    // the healthy session is not held up meanwhile. (We then close, which the FSM sees as a close.)
    bed.bad_peer_ready()?;
    let slow: Vec<Vec<u8>> = open_bytes(BAD_AS).into_iter().map(|b| vec![b]).collect();
    let chunks = slow.len();
    let got = bed.exchange(None, slow, Duration::from_millis(150))?;
    let msgs = messages(&got);
    assert!(
        msgs.iter().any(|m| matches!(m, Message::Keepalive)),
        "slow OPEN ({chunks} single bytes) not answered with KEEPALIVE: {msgs:?}"
    );
    bed.good_still_up()?;
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn ten_thousand_connections_from_an_unconfigured_address_are_refused_unread() -> Result<()> {
    let bed = bed()?;
    let _report = PanicReport::new(&[&bed.bird]);
    let refused_before = bed.ours.listener().refused();
    let rss_before = rss_kib();
    let target = SocketAddr::new(IpAddr::V4(bed.our_bad_side), 179);
    let from = bed.unconfigured;
    let (connected, bytes, errors) =
        bed.bad_ns()?
            .run_in(move || -> Result<(u32, usize, Vec<String>)> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let (mut connected, mut bytes) = (0u32, 0usize);
                    let mut errors = std::collections::BTreeMap::<String, u32>::new();
                    for _ in 0..10_000 {
                        let s = tokio::net::TcpSocket::new_v4()?;
                        s.set_reuseaddr(true)?;
                        s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
                        match tokio::time::timeout(Duration::from_secs(5), s.connect(target)).await
                        {
                            Ok(Ok(mut c)) => {
                                connected += 1;
                                let mut buf = [0u8; 64];
                                if let Ok(Ok(n)) =
                                    tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
                                        .await
                                {
                                    bytes += n;
                                }
                            }
                            Ok(Err(e)) => {
                                *errors.entry(format!("{:?}", e.kind())).or_default() += 1
                            }
                            Err(_) => *errors.entry("timeout".into()).or_default() += 1,
                        }
                    }
                    Ok((
                        connected,
                        bytes,
                        errors
                            .into_iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect(),
                    ))
                })
            })??;
    eprintln!(
        "10000 attempts: {connected} handshakes completed (then reset unread), others: {errors:?}"
    );
    assert_eq!(bytes, 0, "an unconfigured source got BGP bytes");
    let refused = bed.ours.listener().refused() - refused_before;
    assert!(
        refused >= u64::from(connected),
        "{refused} refused of {connected} connected"
    );
    let growth = rss_kib().saturating_sub(rss_before);
    assert!(growth < 32 * 1024, "memory grew by {growth} KiB");
    bed.good_still_up()?;
    Ok(())
}
