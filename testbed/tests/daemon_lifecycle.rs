//! ribd as an operator runs it: a real BIRD peer, the XDP dataplane forwarding with kernel forwarding off,
//! metrics that parse and move, live reloads (policy change without a session reset, a peer added and
//! removed, an invalid file rejected), and SIGTERM leaving the dataplane forwarding.
//!
//! ```text
//!   src 10.77.1.2 ──veth── s0 10.77.1.1 [dut: ribd, XDP on s0+u0, ip_forward=0] u0 10.77.2.1 ──veth── 10.77.2.2 bird (AS 64601)
//!                                                                                         198.51.100.1/24 on lo
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use fib_ebpf::Forwarder;
use fib_ebpf::loader::LoadOptions;
use testbed::bins::{api, get_json, wait_until, workspace_bin};
use testbed::netns::{self, Netns};
use testbed::peers::{BgpPeer, Bird, Daemon, Neighbor, PanicReport, PeerConfig, Route, tail};

const T: Duration = Duration::from_secs(30);

fn config(sock: &Path, instance: &str, import_lp: u32, extra_peer: bool) -> String {
    let extra = if extra_peer {
        "\n[peer.later]\naddress = \"10.77.2.9\"\nremote-as = 64609\nimport = [\"ALL\"]\n"
    } else {
        ""
    };
    format!(
        r#"router-id = "10.77.2.1"
local-as = 65000
listen = ["10.77.2.1:179"]

[api]
socket = "{sock}"

[dataplane]
instance = "{instance}"
interfaces = ["s0", "u0"]
initial-sync-timeout = 5

[peer.bird]
address = "10.77.2.2"
remote-as = 64601
hold-time = 9
connect-retry = 1
import = ["ALL"]
export = ["ALL"]
{extra}
[[static]]
prefix = "10.77.1.0/24"
next-hop = "10.77.1.2"

[[policy.ALL.term]]
name = "all"
action = "accept"
set.local-pref = {import_lp}
"#,
        sock = sock.display()
    )
}

fn ping(src: &Netns, dst: &str) -> bool {
    src.exec("ping", &["-c", "3", "-i", "0.05", "-W", "1", dst])
        .is_ok()
}

/// Checks the exposition format line by line: HELP/TYPE comments, `name{labels} value`, every sample of a
/// declared family, numeric values.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut declared = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().expect("TYPE name").to_string();
            let kind = it.next().expect("TYPE kind");
            assert!(
                matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ),
                "{line}"
            );
            declared.insert(name);
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| {
            n.strip_suffix(s)
                .filter(|b| declared.contains(*b))
                .unwrap_or(n)
        });
        assert!(declared.contains(family), "sample without TYPE: {line}");
        samples.insert(series.to_string(), v);
    }
    samples
}

#[test]
fn ribd_forwards_reloads_and_keeps_forwarding_after_sigterm() {
    netns::sweep_stale();
    let src = Netns::new("src").unwrap();
    let dut = Netns::new("dut").unwrap();
    let up = Netns::new("bird").unwrap();
    netns::veth(&src, "eth0", &dut, "s0").unwrap();
    netns::veth(&dut, "u0", &up, "eth0").unwrap();
    netns::addr(&src, "eth0", "10.77.1.2/24").unwrap();
    netns::addr(&dut, "s0", "10.77.1.1/24").unwrap();
    netns::addr(&dut, "u0", "10.77.2.1/24").unwrap();
    netns::addr(&up, "eth0", "10.77.2.2/24").unwrap();
    up.ip(&["addr", "add", "198.51.100.1/24", "dev", "lo"])
        .unwrap();
    src.ip(&["route", "add", "default", "via", "10.77.1.1"])
        .unwrap();
    up.ip(&["route", "add", "10.77.1.0/24", "via", "10.77.2.1"])
        .unwrap();
    dut.sysctl("net.ipv4.ip_forward", "0").unwrap();
    // Frames XDP redirects into a veth need an XDP program on the receiving end.
    let mut pass = Forwarder::load_with(&LoadOptions {
        bench: true,
        ..Default::default()
    })
    .expect("load xdp_pass");
    for (ns, ifc) in [(&src, "eth0"), (&up, "eth0")] {
        ns.run_in(|| {
            pass.program_named("xdp_pass")
                .expect("xdp_pass")
                .attach(ifc, aya::programs::XdpMode::default())
                .map(|_| ())
        })
        .unwrap()
        .expect("attach xdp_pass");
    }

    let bird = Bird::start(
        up.name(),
        PeerConfig::new(64601, "10.77.2.2".parse().unwrap())
            .neighbor(Neighbor::new("10.77.2.1".parse().unwrap(), 65000).hold_time(9))
            .route(Route::parse("198.51.100.0/24").community(64601, 7)),
    )
    .unwrap();
    let _report = PanicReport::new(&[&bird]);

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ribd.sock");
    let cfg = dir.path().join("ribd.toml");
    let instance = format!("lc{}", std::process::id());
    let pin = PathBuf::from("/sys/fs/bpf").join(&instance);
    let _cleanup = PinCleanup(pin.clone());
    std::fs::write(&cfg, config(&sock, &instance, 100, false)).unwrap();
    let log = dir.path().join("ribd.log");
    let bin = workspace_bin("ribd", "ribd").unwrap();
    let mut ribd = Daemon::spawn(
        "ribd",
        dut.name(),
        bin.to_str().unwrap(),
        &["--config", cfg.to_str().unwrap()],
        &[],
        &log,
    )
    .unwrap();
    let logs = || format!("ribd log {}:\n{}", log.display(), tail(&log, 30));
    wait_until("the API socket", T, || {
        assert!(ribd.exited().is_none(), "ribd exited at start\n{}", logs());
        sock.exists()
    });

    // 1. Session up, the route in the RIB and the dataplane, pings forwarded by XDP.
    wait_until("BIRD's route in the RIB", T, || {
        get_json(&sock, "/v1/rib/ipv4?prefix=198.51.100.0/24")
            .pointer("/routes/0")
            .is_some()
    });
    let r = get_json(&sock, "/v1/route/198.51.100.0_24");
    assert_eq!(r["candidates"][0]["path"]["local_pref"], 100, "{r}");
    wait_until("the next-hop to resolve", T, || {
        get_json(&sock, "/v1/route/198.51.100.0_24")["fib"]["nexthops"][0]["resolved"] == true
    });
    assert!(
        ping(&src, "198.51.100.1"),
        "ping through XDP with ip_forward=0\n{}",
        logs()
    );
    let (code, text) = api(&sock, "GET", "/metrics").unwrap();
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    // And an independent Prometheus text-format parser reads the same samples.
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("prometheus-parse reads /metrics");
    assert!(
        scrape.samples.len() >= m.len() / 2,
        "{} samples parsed",
        scrape.samples.len()
    );
    assert!(
        scrape.samples.iter().any(
            |s| s.metric == "ribd_bgp_sessions" && s.labels.get("state") == Some("Established")
        )
    );
    assert_eq!(
        m.get("ribd_bgp_sessions{state=\"Established\"}"),
        Some(&1.0),
        "{text}"
    );
    let fwd0 = m["ribd_dataplane_packets_total{reason=\"forwarded\"}"];
    assert!(
        fwd0 >= 6.0,
        "echo requests and replies forwarded in XDP: {fwd0}"
    );
    assert!(
        m.get("ribd_dataplane_interface_tx_packets_total{interface=\"u0\"}")
            .is_some_and(|v| *v >= 3.0),
        "egress counted per interface:\n{text}"
    );
    assert!(
        bird.wait_route("10.77.1.0/24".parse().unwrap(), T).is_ok(),
        "ribd exports its static route to BIRD"
    );
    let l = get_json(
        &sock,
        "/v1/lookup/198.51.100.1?src=10.77.1.2&proto=17&sport=4000&dport=53",
    );
    assert_eq!(l["fib"]["prefix"], "198.51.100.0/24", "{l}");
    assert_eq!(
        l["flow"]["nexthop"], "10.77.2.2",
        "the flow's bucket leads to BIRD: {l}"
    );
    assert!(
        l["flow"]["bucket"].as_u64() < l["flow"]["buckets"].as_u64(),
        "{l}"
    );
    let flaps = |s: &Path| get_json(s, "/v1/peers/bird")["flaps"].as_u64().unwrap();
    let est = |s: &Path| get_json(s, "/v1/peers/bird")["state"] == "Established";
    let flaps0 = flaps(&sock);

    // 2. Reload with a changed import policy: applied by ROUTE-REFRESH, the session stays up.
    std::fs::write(&cfg, config(&sock, &instance, 250, false)).unwrap();
    let (code, body) = api(&sock, "POST", "/v1/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    wait_until("the new local-pref", T, || {
        get_json(&sock, "/v1/route/198.51.100.0_24")["candidates"][0]["path"]["local_pref"] == 250
    });
    assert!(
        est(&sock) && flaps(&sock) == flaps0,
        "a policy change must not reset the session"
    );
    let m2 = parse_metrics(&api(&sock, "GET", "/metrics").unwrap().1);
    assert!(
        m2["ribd_bgp_messages_total{peer=\"bird\",address=\"10.77.2.2\",direction=\"out\",type=\"route_refresh\"}"]
            >= 1.0
    );

    // 3. A peer added, then removed; an invalid file is rejected and changes nothing.
    std::fs::write(&cfg, config(&sock, &instance, 250, true)).unwrap();
    assert_eq!(api(&sock, "POST", "/v1/reload").unwrap().0, 200);
    assert_eq!(get_json(&sock, "/v1/peers").as_array().unwrap().len(), 2);
    std::fs::write(&cfg, config(&sock, &instance, 250, false)).unwrap();
    ribd_signal(&ribd, libc::SIGHUP);
    wait_until("the removed peer to go", T, || {
        get_json(&sock, "/v1/peers").as_array().unwrap().len() == 1
    });
    std::fs::write(
        &cfg,
        "router-id = \"10.77.2.1\"\nlocal-as = 65000\n[peer.x]\naddress = \"nope\"\n",
    )
    .unwrap();
    let (code, body) = api(&sock, "POST", "/v1/reload").unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("peer.x") || body.contains("address"),
        "{body}"
    );
    assert!(
        est(&sock) && flaps(&sock) == flaps0,
        "a rejected reload keeps the running config and session"
    );

    // 4. Bad requests get 4xx with a message.
    for (path, want) in [
        ("/v1/route/not-a-prefix", 400),
        ("/v1/peers/nobody", 404),
        ("/v1/rib/ipv5", 400),
        ("/v1/nothing", 404),
    ] {
        let (code, body) = api(&sock, "GET", path).unwrap();
        assert_eq!(code, want, "{path}: {body}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].is_string(),
            "{body}"
        );
    }

    // 5. SIGTERM: BIRD is told (Cease), ribd exits, the pinned dataplane keeps forwarding.
    ribd_signal(&ribd, libc::SIGTERM);
    wait_until("ribd to exit", T, || ribd.exited().is_some());
    assert!(
        bird.wait_not_established("10.77.2.1".parse().unwrap(), T)
            .is_ok(),
        "BIRD sees the session closed"
    );
    assert!(pin.join("link-s0").exists(), "the XDP link stays pinned");
    assert!(
        ping(&src, "198.51.100.1"),
        "forwarding continues with ribd stopped"
    );
}

fn ribd_signal(d: &Daemon, sig: libc::c_int) {
    testbed::peers::signal(d.pid(), sig).expect("signal ribd");
}

/// Removes the test's bpffs instance (detaching its pinned XDP links) however the test ends.
struct PinCleanup(PathBuf);

impl Drop for PinCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
