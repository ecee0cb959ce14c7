//! Max-prefix protection with a real peer: BIRD announces five prefixes to ribd, which allows three.
//! With `action = "discard"` the session stays up and exactly three are accepted; with
//! `action = "teardown"` ribd closes the session (BIRD sees it go down) and withdraws what it had.

use std::path::Path;
use std::time::{Duration, Instant};

use testbed::bins::{api, workspace_bin};
use testbed::netns::{self, Netns};
use testbed::peers::{BgpPeer, Bird, Daemon, Neighbor, PanicReport, PeerConfig, Route, tail};

const T: Duration = Duration::from_secs(30);

fn peer(sock: &Path) -> serde_json::Value {
    let (code, body) = api(sock, "GET", "/v1/peers/bird").expect("API");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

fn wait(what: &str, log: &Path, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < T,
            "timed out waiting for {what}; ribd log {}:\n{}",
            log.display(),
            tail(log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(action: &str) {
    let dut = Netns::new("mpdut").unwrap();
    let up = Netns::new("mpbird").unwrap();
    netns::veth(&dut, "u0", &up, "eth0").unwrap();
    netns::addr(&dut, "u0", "10.78.0.1/24").unwrap();
    netns::addr(&up, "eth0", "10.78.0.2/24").unwrap();
    let mut cfg = PeerConfig::new(64602, "10.78.0.2".parse().unwrap())
        .neighbor(Neighbor::new("10.78.0.1".parse().unwrap(), 65000).hold_time(9));
    for i in 0..5 {
        cfg = cfg.route(Route::parse(&format!("198.51.{i}.0/24")));
    }
    let bird = Bird::start(up.name(), cfg).unwrap();
    let _report = PanicReport::new(&[&bird]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ribd.sock");
    let conf = dir.path().join("ribd.toml");
    std::fs::write(
        &conf,
        format!(
            r#"router-id = "10.78.0.1"
local-as = 65000
listen = ["10.78.0.1:179"]
[api]
socket = "{}"
[dataplane]
enabled = false
[peer.bird]
address = "10.78.0.2"
remote-as = 64602
hold-time = 9
import = ["ALL"]
max-prefix = {{ limit = 3, warning-percent = 50, action = "{action}", restart-after = 0 }}
[[policy.ALL.term]]
name = "all"
action = "accept"
"#,
            sock.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("ribd.log");
    let bin = workspace_bin("ribd", "ribd").unwrap();
    let mut ribd = Daemon::spawn(
        "ribd",
        dut.name(),
        bin.to_str().unwrap(),
        &["--config", conf.to_str().unwrap()],
        &[],
        &log,
    )
    .unwrap();
    wait("the API socket", &log, || {
        assert!(ribd.exited().is_none(), "ribd exited:\n{}", tail(&log, 30));
        sock.exists()
    });
    let accepted = |s: &Path| peer(s)["families"][0]["accepted"].as_u64().unwrap_or(0);
    let received = |s: &Path| peer(s)["families"][0]["received"].as_u64().unwrap_or(0);
    match action {
        "discard" => {
            wait("all five prefixes received", &log, || received(&sock) >= 5);
            assert_eq!(accepted(&sock), 3, "three accepted, the rest discarded");
            assert_eq!(peer(&sock)["state"], "Established", "the session stays up");
            let (_, rib) = api(&sock, "GET", "/v1/rib/ipv4").unwrap();
            let rib: serde_json::Value = serde_json::from_str(&rib).unwrap();
            assert_eq!(rib["total"], 3, "{rib}");
        }
        _ => {
            wait("the session torn down", &log, || {
                peer(&sock)["state"] != "Established" && peer(&sock)["flaps"].as_u64() >= Some(1)
            });
            assert!(
                bird.wait_not_established("10.78.0.1".parse().unwrap(), T)
                    .is_ok(),
                "BIRD sees the session closed"
            );
            assert_eq!(accepted(&sock), 0, "the peer's routes are withdrawn");
            let (_, rib) = api(&sock, "GET", "/v1/rib/ipv4").unwrap();
            assert!(rib.contains("\"total\":0"), "{rib}");
            assert!(
                tail(&log, 200).contains("max-prefix exceeded"),
                "logged:\n{}",
                tail(&log, 30)
            );
        }
    }
}

#[test]
fn max_prefix_discard_keeps_the_session_and_the_first_prefixes() {
    run("discard");
}

#[test]
fn max_prefix_teardown_closes_the_session_and_withdraws() {
    run("teardown");
}
