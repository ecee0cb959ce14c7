//! ribd as the restarting speaker (RFC 4724 §4.1) against a real BIRD 2 helper: ribd advertises a
//! route with graceful restart negotiated, is killed with SIGKILL and started again over the same
//! pinned dataplane. BIRD keeps ribd's route (stale) the whole time, sees the Restart State bit in
//! ribd's second OPEN, and ends its graceful restart (the route fresh again) only at ribd's
//! End-of-RIB, which ribd sends once BIRD's End-of-RIB is in (selection deferral). A fresh start and
//! a connection after the restart phase carry no Restart State bit.
//!
//! ```text
//!   [dut: ribd, XDP on u0] u0 10.78.2.1 ──veth── 10.78.2.2 bird (AS 64602, graceful restart 120 s)
//!   ribd: static 203.0.113.0/24 → BIRD        BIRD: 198.51.100.0/24 → ribd
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use testbed::bins::{api, get_json, wait_until, workspace_bin};
use testbed::netns::{self, Netns};
use testbed::peers::{BgpPeer, Bird, Daemon, Neighbor, PanicReport, PeerConfig, Route, tail};

const T: Duration = Duration::from_secs(40);
const OURS: &str = "203.0.113.0/24";

fn config(sock: &Path, instance: &str) -> String {
    format!(
        r#"router-id = "10.78.2.1"
local-as = 65000
listen = ["10.78.2.1:179"]

[api]
socket = "{sock}"

[dataplane]
instance = "{instance}"
interfaces = ["u0"]

[graceful-restart]
select-defer-time = 60

[peer.bird]
address = "10.78.2.2"
remote-as = 64602
hold-time = 9
connect-retry = 1
restart-time = 120
import = ["ALL"]
export = ["ALL"]

[[static]]
prefix = "{OURS}"
next-hop = "10.78.2.2"

[[policy.ALL.term]]
name = "all"
action = "accept"
"#,
        sock = sock.display()
    )
}

/// The "Neighbor capabilities" part of BIRD's `show protocols all` for ribd's session: what ribd's
/// OPEN on the current session said.
fn neighbor_caps(bird: &Bird) -> String {
    let text = bird
        .birdc(&["show", "protocols", "all", "n0"])
        .expect("birdc show protocols all");
    let Some(i) = text.find("Neighbor capabilities") else {
        return String::new();
    };
    let rest = &text[i..];
    let end = rest.find("Session:").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The families BIRD lists as "AF preserved" (Forwarding State bit set) in `caps`.
fn preserved(caps: &str) -> String {
    caps.lines()
        .find_map(|l| l.trim().strip_prefix("AF preserved:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no AF preserved line: {caps}"))
}

/// BIRD still runs its graceful restart for ribd (ribd's routes stale, End-of-RIB not yet received).
fn bird_gr_active(bird: &Bird) -> bool {
    bird.birdc(&["show", "protocols", "all", "n0"])
        .map(|t| t.contains("Neighbor graceful restart active"))
        .unwrap_or(false)
}

fn has_ours(bird: &Bird) -> bool {
    bird.birdc(&["show", "route", "for", "203.0.113.1", "table", "master4"])
        .map(|t| t.contains(OURS))
        .unwrap_or(false)
}

fn spawn_ribd(dut: &Netns, cfg: &Path, log: &Path) -> Daemon {
    let bin = workspace_bin("ribd", "ribd").unwrap();
    Daemon::spawn(
        "ribd",
        dut.name(),
        bin.to_str().unwrap(),
        &["--config", cfg.to_str().unwrap()],
        &[],
        log,
    )
    .unwrap()
}

#[test]
fn ribd_restarts_gracefully_and_bird_keeps_its_route_throughout_rfc4724() {
    netns::sweep_stale();
    let dut = Netns::new("dut").unwrap();
    let up = Netns::new("bird").unwrap();
    netns::veth(&dut, "u0", &up, "eth0").unwrap();
    netns::addr(&dut, "u0", "10.78.2.1/24").unwrap();
    netns::addr(&up, "eth0", "10.78.2.2/24").unwrap();
    let bird = Bird::start(
        up.name(),
        PeerConfig::new(64602, "10.78.2.2".parse().unwrap())
            .neighbor(
                Neighbor::new("10.78.2.1".parse().unwrap(), 65000)
                    .hold_time(9)
                    .graceful_restart(120),
            )
            .route(Route::parse("198.51.100.0/24")),
    )
    .unwrap();
    let _report = PanicReport::new(&[&bird]);

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ribd.sock");
    let cfg = dir.path().join("ribd.toml");
    let instance = format!("gr{}", std::process::id());
    let pin = PathBuf::from("/sys/fs/bpf").join(&instance);
    let _ = std::fs::remove_dir_all(&pin);
    let _cleanup = PinCleanup(pin.clone());
    std::fs::write(&cfg, config(&sock, &instance)).unwrap();
    let log = dir.path().join("ribd.log");
    let logs = || format!("ribd log {}:\n{}", log.display(), tail(&log, 40));

    // 1. A fresh start: no Restart State bit, no forwarding state claimed.
    let mut ribd = spawn_ribd(&dut, &cfg, &log);
    wait_until("the API socket", T, || {
        assert!(ribd.exited().is_none(), "ribd exited at start\n{}", logs());
        sock.exists()
    });
    wait_until("BIRD to get ribd's route", T, || has_ours(&bird));
    wait_until("ribd's start-up phase to end", T, || {
        get_json(&sock, "/v1/summary")["graceful_restart"]["phase"] == "done"
    });
    let caps = neighbor_caps(&bird);
    println!("fresh start, BIRD sees:\n{caps}");
    assert!(caps.contains("Graceful restart"), "GR negotiated: {caps}");
    assert!(
        !caps.contains("Restart recovery"),
        "no Restart State bit on a fresh start: {caps}"
    );
    assert_eq!(
        preserved(&caps),
        "",
        "no Forwarding State bit on a fresh start: {caps}"
    );
    let s = get_json(&sock, "/v1/summary");
    assert_eq!(s["graceful_restart"]["restart_state"], false, "{s}");
    let p = get_json(&sock, "/v1/peers/bird");
    assert_eq!(p["graceful_restart"]["negotiated"], true, "{p}");
    assert!(
        p["graceful_restart"]["end_of_rib_received"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f == "ipv4-unicast")),
        "{p}"
    );
    wait_until("BIRD's route and the static in ribd's dataplane", T, || {
        get_json(&sock, "/v1/summary")["fib"][0]["prefixes"].as_u64() >= Some(2)
    });

    // 2. SIGKILL and start again on the same pins; watch BIRD's table all along.
    let watching = Arc::new(AtomicBool::new(true));
    let (lost, samples) = std::thread::scope(|sc| {
        let w = watching.clone();
        let bird = &bird;
        let watcher = sc.spawn(move || {
            let (mut lost, mut samples) = (0u32, 0u32);
            while w.load(Ordering::Acquire) {
                samples += 1;
                if !has_ours(bird) {
                    lost += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (lost, samples)
        });
        ribd.kill();
        bird.wait_not_established("10.78.2.1".parse().unwrap(), T)
            .expect("BIRD sees ribd gone");
        assert!(bird_gr_active(bird), "BIRD runs graceful restart for ribd");
        ribd = spawn_ribd(&dut, &cfg, &log);
        bird.wait_established("10.78.2.1".parse().unwrap(), T)
            .expect("session back");
        // ribd's second OPEN set R: BIRD shows the session's capabilities.
        let caps = neighbor_caps(bird);
        println!("after the restart, BIRD sees:\n{caps}");
        assert!(
            caps.contains("Restart recovery"),
            "Restart State bit in ribd's OPEN after the restart: {caps}\n{}",
            logs()
        );
        assert_eq!(preserved(&caps), "ipv4", "IPv4 forwarding kept: {caps}");
        // BIRD leaves graceful restart at ribd's End-of-RIB; the route stays, fresh.
        wait_until(
            "BIRD to end graceful restart (ribd's End-of-RIB)",
            T,
            || !bird_gr_active(bird),
        );
        assert!(has_ours(bird), "ribd's route after its End-of-RIB");
        std::thread::sleep(Duration::from_millis(300));
        watching.store(false, Ordering::Release);
        watcher.join().unwrap()
    });
    println!("BIRD's table sampled {samples} times during the restart, route missing {lost} times");
    assert!(samples >= 3, "the watch ran: {samples}");
    assert_eq!(
        lost, 0,
        "ribd's route vanished from BIRD during the restart"
    );

    // ribd deferred its advertisement until BIRD's End-of-RIB, then ended the phase on it.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("forwarding state preserved"),
        "restart over preserved state\n{}",
        logs()
    );
    assert!(
        text.contains("selection deferral"),
        "BIRD's session waited for the end of the restart\n{}",
        logs()
    );
    let s = get_json(&sock, "/v1/summary");
    assert_eq!(s["graceful_restart"]["phase"], "done", "{s}");
    assert_eq!(
        s["graceful_restart"]["ended"], "every session sent its table",
        "ended on End-of-RIB, not on select-defer-time: {s}"
    );
    assert_eq!(s["graceful_restart"]["restart_state"], false, "{s}");
    let p = get_json(&sock, "/v1/peers/bird");
    assert_eq!(p["graceful_restart"]["deferred"], false, "{p}");
    assert!(
        p["families"][0]["advertised"].as_u64() >= Some(1),
        "advertised after the deferral: {p}"
    );

    // 3. A connection after the restart phase: no Restart State bit any more, route kept.
    let flaps = p["flaps"].as_u64().unwrap();
    let (code, body) = api(&sock, "POST", "/v1/peers/bird/reset").unwrap();
    assert_eq!(code, 200, "{body}");
    wait_until("a new session", T, || {
        let p = get_json(&sock, "/v1/peers/bird");
        p["state"] == "Established" && p["flaps"].as_u64() > Some(flaps)
    });
    bird.wait_established("10.78.2.1".parse().unwrap(), T)
        .unwrap();
    let caps = neighbor_caps(&bird);
    println!("after a reset, BIRD sees:\n{caps}");
    assert!(caps.contains("Graceful restart"), "{caps}");
    assert!(
        !caps.contains("Restart recovery"),
        "no Restart State bit once the restart is over: {caps}"
    );
    assert_eq!(preserved(&caps), "ipv4", "ribd keeps forwarding: {caps}");
    wait_until("BIRD to have ribd's route again", T, || {
        has_ours(&bird) && !bird_gr_active(&bird)
    });
    ribd.kill();
}

/// Removes the test's bpffs instance (detaching its pinned XDP links) however the test ends.
struct PinCleanup(PathBuf);

impl Drop for PinCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
