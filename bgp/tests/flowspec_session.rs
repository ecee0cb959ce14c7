//! FlowSpec through the FSM and the session driver: the families are configured like any other
//! (`Capabilities::families`), negotiated (RFC 4760 §8), and their UPDATEs reach the consumer as
//! `Event::Updates` with typed rules; End-of-RIB per FlowSpec family; "AFI/SAFI disable" on a malformed
//! FlowSpec NLRI field keeps the session and the other families up (RFC 4760 §7, RFC 7606 §7.11).
//!
//! Two of our own speakers over loopback TCP, and (as root) a real GoBGP announcing FlowSpec to our speaker
//! across a veth between two network namespaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::fsm::{AddPathMode, Family, FsmConfig, State, local_open, negotiate};
use bgp::session::{Event, Listener, PeerConfig, PeerHandle, PeerId};
use bgp::wire::attr::Origin;
use bgp::wire::attr::as_path::AsPath;
use bgp::wire::attr::mp::{MpReach, NextHop};
use bgp::wire::flowspec::action::FlowAction;
use bgp::wire::flowspec::{Cmp, Component, FlowPrefix, FlowSpec, NumericTerm};
use bgp::wire::nlri::Family as IpFamily;
use bgp::wire::{AfiSafi, Message, Nlri, PathAttributes, Update};
use bytes::Bytes;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

fn fsm(asn: u32, peer: u32, id: u8, families: &[Family]) -> FsmConfig {
    let mut f = FsmConfig::new(asn, peer, Ipv4Addr::new(10, 0, 0, id));
    f.hold_time = 9;
    f.connect_retry = Duration::from_secs(1);
    f.idle_hold = Duration::from_millis(200);
    f.capabilities.families = families.to_vec();
    f
}

#[test]
fn flowspec_families_negotiate_like_any_other_rfc4760_8() {
    let all = [
        Family::IPV4_UNICAST,
        Family::IPV4_FLOWSPEC,
        Family::IPV6_FLOWSPEC,
    ];
    let mut ours = fsm(65001, 65002, 1, &all);
    // ADD-PATH asked for a FlowSpec family is not negotiated: its NLRI never carry path identifiers here.
    ours.capabilities.add_path = vec![
        (Family::IPV4_FLOWSPEC, AddPathMode::Both),
        (Family::IPV4_UNICAST, AddPathMode::Both),
    ];
    let mut theirs = fsm(
        65002,
        65001,
        2,
        &[Family::IPV4_UNICAST, Family::IPV4_FLOWSPEC],
    );
    theirs.capabilities.add_path = ours.capabilities.add_path.clone();
    let open = local_open(&ours);
    let caps: Vec<_> = open.capabilities().cloned().collect();
    for f in all {
        assert!(
            caps.contains(&bgp::wire::capability::Capability::Multiprotocol(f)),
            "{f} advertised"
        );
    }
    let n = negotiate(&ours, &local_open(&theirs));
    assert_eq!(
        n.families,
        vec![Family::IPV4_UNICAST, Family::IPV4_FLOWSPEC]
    );
    assert_eq!(n.add_path_rx, vec![Family::IPV4_UNICAST]);
    assert_eq!(n.add_path_tx, vec![Family::IPV4_UNICAST]);
    let ctx = n.context();
    assert!(!ctx.add_path_receive(AfiSafi::IPV4_FLOWSPEC));
    assert_eq!(AfiSafi::IPV4_FLOWSPEC.to_string(), "ipv4-flowspec");
    assert_eq!(AfiSafi::IPV6_FLOWSPEC.to_string(), "ipv6-flowspec");
}

fn rule(dst: &str, port: u64) -> FlowSpec {
    FlowSpec::new(
        IpFamily::V4,
        vec![
            Component::DestinationPrefix(FlowPrefix::new(dst.parse().unwrap())),
            Component::Protocol(vec![NumericTerm::new(Cmp::EQ, 6)]),
            Component::DestinationPort(vec![NumericTerm::new(Cmp::EQ, port)]),
        ],
    )
    .unwrap()
}

fn flow_update(rules: Vec<FlowSpec>) -> Update {
    let mut attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001])),
        ..PathAttributes::default()
    };
    attrs.add_flow_actions(&[FlowAction::TrafficRateBytes {
        asn: 65001,
        bytes_per_second: 0.0,
    }]);
    Update {
        attrs,
        mp_reach: Some(MpReach {
            afi_safi: AfiSafi::IPV4_FLOWSPEC,
            next_hop: NextHop::Other(vec![]),
            nlri: vec![],
            flowspec: rules,
            opaque_nlri: vec![],
        }),
        ..Update::default()
    }
}

fn unicast(prefix: &str) -> Update {
    Update {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001])),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, 1)),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(prefix.parse().unwrap())],
        ..Update::default()
    }
}

/// Waits for the next UPDATEs (skipping other events); `None` on timeout.
async fn next_updates(rx: &mut mpsc::Receiver<Event>, wait: Duration) -> Option<Vec<Update>> {
    loop {
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(Event::Updates { updates, .. })) => return Some(updates),
            Ok(Some(Event::Down { cause, .. })) => panic!("session down: {cause:?}"),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

/// Collects updates until `done` says so.
async fn collect_until(
    rx: &mut mpsc::Receiver<Event>,
    mut done: impl FnMut(&[Update]) -> bool,
) -> Vec<Update> {
    let mut all = Vec::new();
    while !done(&all) {
        match next_updates(rx, WAIT).await {
            Some(u) => all.extend(u),
            None => panic!("timed out; got {all:#?}"),
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowspec_updates_reach_the_consumer_typed_and_afi_safi_disable_keeps_the_session() {
    let ip = |last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
    let la = Listener::bind(&[SocketAddr::new(ip(1), 0)]).unwrap();
    let lb = Listener::bind(&[SocketAddr::new(ip(2), 0)]).unwrap();
    let fams = [Family::IPV4_UNICAST, Family::IPV4_FLOWSPEC];
    let mk = |id, asn, peer, me: u8, remote| {
        let mut c = PeerConfig::new(PeerId(id), remote, fsm(asn, peer, me, &fams));
        c.socket.local_addr = Some(ip(me));
        c
    };
    let (ta, _ra) = mpsc::channel(1024);
    let (tb, mut rb) = mpsc::channel(1024);
    let a = PeerHandle::spawn(mk(1, 65001, 65002, 1, lb.local_addrs()[0]), Some(&la), ta).unwrap();
    // B waits for A's connection: one TCP connection, no collision to resolve.
    let mut cb = mk(2, 65002, 65001, 2, la.local_addrs()[0]);
    cb.fsm.passive = true;
    let b = PeerHandle::spawn(cb, Some(&lb), tb).unwrap();
    a.start();
    b.start();
    tokio::time::timeout(WAIT, a.wait_for(State::Established))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, rb.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Event::Established { negotiated, .. } => {
            assert_eq!(negotiated.families, fams.to_vec())
        }
        e => panic!("{e:?}"),
    }

    // Announce two rules, withdraw one, End-of-RIB: typed rules arrive in order.
    let (r1, r2) = (rule("192.0.2.0/24", 80), rule("198.51.100.0/24", 443));
    let mut wd = Update::end_of_rib(AfiSafi::IPV4_FLOWSPEC);
    wd.mp_unreach.as_mut().unwrap().flowspec = vec![r1.clone()];
    a.send_updates(&[
        flow_update(vec![r1.clone(), r2.clone()]),
        wd,
        Update::end_of_rib(AfiSafi::IPV4_FLOWSPEC),
    ])
    .await
    .unwrap();
    let got = collect_until(&mut rb, |u| {
        u.iter()
            .any(|u| u.end_of_rib_family() == Some(AfiSafi::IPV4_FLOWSPEC))
    })
    .await;
    let ann: Vec<&FlowSpec> = got
        .iter()
        .flat_map(|u| u.announced_flowspec())
        .map(|(_, r)| r)
        .collect();
    let wdr: Vec<&FlowSpec> = got
        .iter()
        .flat_map(|u| u.withdrawn_flowspec())
        .map(|(_, r)| r)
        .collect();
    assert_eq!(ann, vec![&r1, &r2]);
    assert_eq!(wdr, vec![&r1]);
    assert_eq!(
        got[0].attrs.flow_actions(),
        vec![FlowAction::TrafficRateBytes {
            asn: 65001,
            bytes_per_second: 0.0
        }]
    );

    // A FlowSpec NLRI whose length overruns its field: the family is disabled, the session stays up.
    let ctx = a.context().unwrap();
    let mut bad = Message::Update(flow_update(vec![r2.clone()]))
        .to_bytes(&ctx)
        .unwrap();
    let nlri = r2.to_bytes();
    let at = bad
        .windows(nlri.len())
        .position(|w| w == &nlri[..])
        .expect("the rule's octets");
    bad[at] = 0x7f; // NLRI length 127, overrunning the attribute
    a.send_raw(Bytes::from(bad.to_vec())).await.unwrap();
    // Then a FlowSpec announcement (dropped: the family is disabled) and a unicast route (delivered).
    a.send_updates(&[
        flow_update(vec![rule("203.0.113.0/24", 25)]),
        unicast("10.9.0.0/16"),
    ])
    .await
    .unwrap();
    let got = collect_until(&mut rb, |u| u.iter().any(|u| u.announced().count() > 0)).await;
    assert_eq!(
        got[0].afi_safi_disable.as_ref().map(|(af, _)| *af),
        Some(AfiSafi::IPV4_FLOWSPEC),
        "{got:#?}"
    );
    assert!(
        got.iter().all(|u| u.announced_flowspec().count() == 0),
        "{got:#?}"
    );
    assert_eq!(got.last().unwrap().announced().count(), 1);
    assert_eq!(b.state(), State::Established);
    assert_eq!(a.state(), State::Established);
}

// ---------------------------------------------------------------------------------------------------------
// A real GoBGP announcing FlowSpec to our speaker (root: two namespaces and a veth).

/// Network namespaces and processes of one test, removed on drop (also on panic).
struct Netns {
    names: Vec<String>,
    children: Vec<std::process::Child>,
    dir: std::path::PathBuf,
}

impl Netns {
    fn ip(args: &[&str]) {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Two namespaces `fss<pid>-<tag>-us` (10.0.13.1) and `-peer` (10.0.13.3) joined by a veth.
fn ns_pair(tag: &str) -> (Netns, String, String) {
    let pid = std::process::id();
    let (ours, theirs) = (format!("fss{pid}-{tag}-us"), format!("fss{pid}-{tag}-peer"));
    let dir = std::env::temp_dir().join(format!("fss{pid}-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ns = Netns {
        names: vec![],
        children: vec![],
        dir,
    };
    for n in [&ours, &theirs] {
        Netns::ip(&["netns", "add", n]);
        ns.names.push(n.clone());
        Netns::ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    Netns::ip(&[
        "link", "add", &a, "netns", &ours, "type", "veth", "peer", "name", &b, "netns", &theirs,
    ]);
    Netns::ip(&["-n", &ours, "addr", "add", "10.0.13.1/24", "dev", &a]);
    Netns::ip(&["-n", &theirs, "addr", "add", "10.0.13.3/24", "dev", &b]);
    Netns::ip(&["-n", &ours, "link", "set", &a, "up"]);
    Netns::ip(&["-n", &theirs, "link", "set", &b, "up"]);
    (ns, ours, theirs)
}

/// The rules our speaker announces to the real peers: IPv4 and IPv6, with the discard action.
fn our_rules() -> Vec<Update> {
    let v6 = FlowSpec::new(
        IpFamily::V6,
        vec![
            Component::DestinationPrefix(FlowPrefix::new("2001:db8:9::/48".parse().unwrap())),
            Component::Protocol(vec![NumericTerm::new(Cmp::EQ, 17)]),
            Component::DestinationPort(vec![
                NumericTerm::new(Cmp::GE, 1000),
                NumericTerm::new(Cmp::LE, 2000).and(),
            ]),
        ],
    )
    .unwrap();
    let mut u6 = flow_update(vec![v6]);
    u6.mp_reach.as_mut().unwrap().afi_safi = AfiSafi::IPV6_FLOWSPEC;
    vec![flow_update(vec![rule("10.9.0.0/24", 25)]), u6]
}

/// Runs our speaker (AS 65001, 10.0.13.1, IPv4 + IPv6 FlowSpec) on a thread inside namespace `ns` against
/// the peer at 10.0.13.3: collects UPDATEs until `enough`, sends [`our_rules`], then polls `accepted` (a
/// check run against the peer, up to 20 s). Returns what arrived and whether the peer accepted our rules.
fn run_speaker(
    ns: &str,
    peer_as: u32,
    enough: fn(&[Update]) -> bool,
    accepted: impl Fn() -> bool + Send + 'static,
) -> (Vec<Update>, bool) {
    let nspath = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&nspath).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only this thread.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = Listener::bind(&[SocketAddr::from(([10, 0, 13, 1], 179))]).unwrap();
            let mut f = fsm(
                65001,
                peer_as,
                1,
                &[Family::IPV4_FLOWSPEC, Family::IPV6_FLOWSPEC],
            );
            f.hold_time = 90;
            let mut c = PeerConfig::new(PeerId(1), SocketAddr::from(([10, 0, 13, 3], 179)), f);
            c.socket.local_addr = Some(IpAddr::from([10, 0, 13, 1]));
            let (tx, mut rx) = mpsc::channel(64);
            let h = PeerHandle::spawn(c, Some(&l), tx).unwrap();
            h.start();
            let got = collect_until(&mut rx, enough).await;
            h.send_updates(&our_rules()).await.unwrap();
            h.flush().await.unwrap();
            let mut ok = false;
            for _ in 0..100 {
                if accepted() {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            h.stop(None);
            (got, ok)
        })
    })
    .join()
    .unwrap()
}

/// Announced rules as (text, actions), sorted.
fn texts(got: &[Update]) -> Vec<(String, Vec<FlowAction>)> {
    let mut v: Vec<(String, Vec<FlowAction>)> = got
        .iter()
        .flat_map(|u| {
            u.announced_flowspec()
                .map(|(_, r)| (r.to_string(), u.attrs.flow_actions()))
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn output(args: &[&str]) -> String {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn gobgp_flowspec_reaches_our_speaker_and_accepts_ours() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("gobgpd") {
        eprintln!("skipped: needs root and gobgpd");
        return;
    }
    let (mut ns, ours, theirs) = ns_pair("fg");
    let conf = ns.dir.join("gobgpd.toml");
    std::fs::write(
        &conf,
        r#"[global.config]
  as = 4200000003
  router-id = "10.0.0.3"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.13.1"
    peer-as = 65001
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-flowspec"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-flowspec"
"#,
    )
    .unwrap();
    let log = std::fs::File::create(ns.dir.join("gobgpd.log")).unwrap();
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &theirs, "gobgpd", "-f"])
        .arg(&conf)
        .args(["--api-hosts", "127.0.0.1:50153", "--pprof-disable"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    ns.children.push(child);
    let gobgp = |args: &[&str]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &theirs, "gobgp", "-p", "50153"])
            .args(args)
            .stderr(std::process::Stdio::null());
        let mut ok = false;
        for _ in 0..50 {
            if cmd.status().is_ok_and(|s| s.success()) {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(ok, "gobgp {args:?}");
    };
    gobgp(&[
        "global",
        "rib",
        "-a",
        "ipv4-flowspec",
        "add",
        "match",
        "destination",
        "10.3.0.0/24",
        "protocol",
        "tcp",
        "destination-port",
        ">=80&<=90",
        "then",
        "discard",
    ]);
    gobgp(&[
        "global",
        "rib",
        "-a",
        "ipv6-flowspec",
        "add",
        "match",
        "destination",
        "2001:db8:3::/48",
        "protocol",
        "udp",
        "then",
        "rate-limit",
        "5000",
    ]);
    let t = theirs.clone();
    let (got, accepted) = run_speaker(
        &ours,
        4_200_000_003,
        // (GoBGP sends End-of-RIB only with graceful restart, which this session does not use.)
        |u| {
            u.iter()
                .map(|u| u.announced_flowspec().count())
                .sum::<usize>()
                >= 2
        },
        move || {
            let rib = |af| {
                output(&[
                    "ip", "netns", "exec", &t, "gobgp", "-p", "50153", "global", "rib", "-a", af,
                ])
            };
            let (v4, v6) = (rib("ipv4-flowspec"), rib("ipv6-flowspec"));
            v4.contains("[destination: 10.9.0.0/24][protocol: ==tcp][destination-port: ==25]")
                && v4.contains("discard")
                && v6.contains("2001:db8:9::/48")
                && v6.contains("[protocol: ==udp][destination-port: >=1000&<=2000]")
        },
    );
    assert_eq!(
        texts(&got),
        vec![
            (
                "dst 10.3.0.0/24 proto =6 dport >=80&<=90".to_string(),
                vec![FlowAction::TrafficRateBytes {
                    asn: 0,
                    bytes_per_second: 0.0
                }]
            ),
            (
                "dst 2001:db8:3::/48 next-header =17".to_string(),
                vec![FlowAction::TrafficRateBytes {
                    asn: 0,
                    bytes_per_second: 5000.0
                }]
            ),
        ]
    );
    assert!(accepted, "GoBGP did not take our IPv4 and IPv6 rules");
    drop(ns);
}

#[test]
fn bird_flowspec_reaches_our_speaker_and_accepts_ours() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("bird") {
        eprintln!("skipped: needs root and bird");
        return;
    }
    let (mut ns, ours, theirs) = ns_pair("fb");
    let conf = ns.dir.join("bird.conf");
    let ctl = ns.dir.join("bird.ctl");
    std::fs::write(
        &conf,
        r#"router id 10.0.0.1;
protocol device {}
flow4 table ft4;
flow6 table ft6;
protocol static f4 {
  flow4 { table ft4; };
  route flow4 { dst 10.1.0.0/24; proto = 6; dport >= 80 && <= 90; tcp flags 0x02/0x12; };
}
protocol static f6 {
  flow6 { table ft6; };
  route flow6 { dst 2001:db8:1:1::/64; src ::1234:5678:9800:0/101 offset 64; next header = 17; };
}
filter fx { bgp_ext_community.add((generic, 0x80060000, 0)); accept; }
protocol bgp speaker {
  local 10.0.13.3 as 4200000001; neighbor 10.0.13.1 as 65001;
  flow4 { table ft4; import all; export filter fx; };
  flow6 { table ft6; import all; export filter fx; };
}
"#,
    )
    .unwrap();
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", &theirs, "bird", "-f", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(&ctl)
        .stdout(std::fs::File::create(ns.dir.join("bird.log")).unwrap())
        .stderr(std::fs::File::create(ns.dir.join("bird.err")).unwrap())
        .spawn()
        .unwrap();
    ns.children.push(child);
    let ctl = ctl.to_string_lossy().into_owned();
    let (got, accepted) = run_speaker(
        &ours,
        4_200_000_001,
        |u| {
            // BIRD ends each family's initial table with End-of-RIB (RFC 4724 §2).
            let eor = |af| u.iter().any(|u| u.end_of_rib_family() == Some(af));
            eor(AfiSafi::IPV4_FLOWSPEC) && eor(AfiSafi::IPV6_FLOWSPEC)
        },
        move || {
            let show = |t| output(&["birdc", "-s", &ctl, "show", "route", "table", t]);
            let (v4, v6) = (show("ft4"), show("ft6"));
            v4.contains("dst 10.9.0.0/24") && v6.contains("dst 2001:db8:9::/48")
        },
    );
    let discard = vec![FlowAction::TrafficRateBytes {
        asn: 0,
        bytes_per_second: 0.0,
    }];
    assert_eq!(
        texts(&got),
        vec![
            (
                "dst 10.1.0.0/24 proto =6 dport >=80&<=90 tcp-flags =syn&!ack".to_string(),
                discard.clone()
            ),
            (
                "dst 2001:db8:1:1::/64 src ::1234:5678:9800:0/101 offset 64 next-header =17"
                    .to_string(),
                discard
            ),
        ]
    );
    assert!(accepted, "BIRD did not take our IPv4 and IPv6 rules");
    drop(ns);
}

#[test]
fn exabgp_malformed_ipv6_rule_is_treat_as_withdraw_and_the_session_stays_up() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("exabgp") {
        eprintln!("skipped: needs root and exabgp");
        return;
    }
    let (mut ns, ours, theirs) = ns_pair("fe");
    let conf = ns.dir.join("exabgp.conf");
    // ExaBGP 4.2 encodes `source ::1/128/120` with all 16 address octets as the pattern (RFC 8956 §3.1 wants
    // length − offset bits): a rule malformed inside a sound NLRI length.
    std::fs::write(
        &conf,
        r#"neighbor 10.0.13.1 {
  router-id 10.0.0.4;
  local-address 10.0.13.3;
  local-as 4200000004;
  peer-as 65001;
  hold-time 90;
  family { ipv4 flow; ipv6 flow; }
  flow {
    route good { match { destination 10.4.0.0/24; protocol tcp; destination-port [ >=80&<=90 ]; } then { discard; } }
    route bad { match { destination 2001:db8:4::/48/0; source ::1/128/120; next-header udp; } then { discard; } }
  }
}
"#,
    )
    .unwrap();
    let child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &theirs,
            "env",
            "exabgp_daemon_user=root",
            "exabgp_daemon_drop=false",
        ])
        .args(["exabgp_api_cli=false", "exabgp"])
        .arg(&conf)
        .stdout(std::fs::File::create(ns.dir.join("exabgp.log")).unwrap())
        .stderr(std::fs::File::create(ns.dir.join("exabgp.err")).unwrap())
        .spawn()
        .unwrap();
    ns.children.push(child);
    let (got, _) = run_speaker(
        &ours,
        4_200_000_004,
        |u| {
            u.iter().any(|u| u.announced_flowspec().count() > 0)
                && u.iter().any(|u| u.treat_as_withdraw.is_some())
        },
        || true,
    );
    assert_eq!(
        texts(&got).into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
        vec!["dst 10.4.0.0/24 proto =6 dport >=80&<=90".to_string()]
    );
    let bad = got.iter().find(|u| u.treat_as_withdraw.is_some()).unwrap();
    assert_eq!(
        bad.treat_as_withdraw,
        Some(bgp::wire::Error::InvalidNetworkField)
    );
    assert_eq!(
        bad.mp_reach.as_ref().map(|m| m.afi_safi),
        Some(AfiSafi::IPV6_FLOWSPEC)
    );
    assert!(got.iter().all(|u| u.afi_safi_disable.is_none()));
    drop(ns);
}
