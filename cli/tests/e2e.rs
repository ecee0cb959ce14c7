//! End to end: the real `ribd` binary in a network namespace, fed by real peers (GoBGP over IPv4 and
//! IPv6, BIRD 2 over IPv4) in their own namespaces, and every `ribctl` command run against it, with the
//! error cases an operator meets (unknown peer/prefix, refused actions, wrong token, socket permission,
//! daemon stopped).
//!
//! ```text
//!   ns gobgp (AS 64501) 10.255.1.2, fd00:255:1::2 ──veth── 10.255.1.1, fd00:255:1::1  ns ribd (AS 65000)
//!   ns bird  (AS 64502) 10.255.2.2                ──veth── 10.255.2.1                 API: DIR/ribd.sock,
//!   (down-c 10.255.3.2 is configured, never answers)                                  127.0.0.1:8179 (token)
//! ```
//!
//! Needs root (namespaces) and gobgpd/bird; the ribd binary is built with `cargo build -p ribd` unless
//! `RIBD_BIN` names one.

mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use ribd::api::*;
use testbed::netns::{self, Netns};
use testbed::peers::{BgpPeer, Bird, Daemon, GoBgp, Neighbor, PeerConfig, Route, signal};

const TOKEN: &str = "e2e-token-5f2c";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The ribd daemon binary: `RIBD_BIN`, or built from the workspace (default features: the daemon).
fn ribd_bin() -> PathBuf {
    testbed::bins::workspace_bin("ribd", "ribd").expect("the ribd binary")
}

struct Lab {
    dir: tempfile::TempDir,
    sock: PathBuf,
    config: PathBuf,
    ribd: Option<Daemon>,
    gobgp: GoBgp,
    bird: Bird,
    rd: Netns,
    _a: Netns,
    b: Netns,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// bpffs instance of this test's dataplane (pins under /sys/fs/bpf/<instance>/).
fn instance() -> String {
    format!("ribctl-e2e-{}", std::process::id())
}

fn ribd_config(sock: &Path, token_file: &Path) -> String {
    let instance = instance();
    format!(
        r#"router-id = "10.255.0.1"
local-as = 65000
listen = ["0.0.0.0:179", "[::]:179"]
log-level = "debug"

[api]
socket = "{sock}"
tcp = "127.0.0.1:8179"
token-file = "{token}"

[dataplane]
enabled = true
instance = "{instance}"
interfaces = ["to-a", "to-b"]
xdp-mode = "generic"
initial-sync-timeout = 1

[[policy.ALL.term]]
name = "everything"
action = "accept"

[peer-group.fast]
hold-time = 9
connect-retry = 1
import = ["ALL"]
export = ["ALL"]

[peer.gobgp-a]
group = "fast"
address = "10.255.1.2"
remote-as = 64501
description = "GoBGP over IPv4"

[peer.gobgp-a6]
group = "fast"
address = "fd00:255:1::2"
remote-as = 64501
families = ["ipv6-unicast"]

[peer.bird-b]
group = "fast"
address = "10.255.2.2"
remote-as = 64502

[peer.down-c]
group = "fast"
address = "10.255.3.2"
remote-as = 64503
"#,
        sock = sock.display(),
        token = token_file.display(),
        instance = instance,
    )
}

impl Lab {
    fn start() -> Lab {
        netns::sweep_stale();
        let rd = Netns::new("ribd").unwrap();
        let a = Netns::new("gobgp").unwrap();
        let b = Netns::new("bird").unwrap();
        netns::veth(&rd, "to-a", &a, "to-rd").unwrap();
        netns::veth(&rd, "to-b", &b, "to-rd").unwrap();
        netns::addr(&rd, "to-a", "10.255.1.1/30").unwrap();
        netns::addr(&rd, "to-a", "fd00:255:1::1/64").unwrap();
        netns::addr(&a, "to-rd", "10.255.1.2/30").unwrap();
        netns::addr(&a, "to-rd", "fd00:255:1::2/64").unwrap();
        netns::addr(&rd, "to-b", "10.255.2.1/30").unwrap();
        netns::addr(&b, "to-rd", "10.255.2.2/30").unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sock = dir.path().join("ribd.sock");
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let config = dir.path().join("ribd.toml");
        std::fs::write(&config, ribd_config(&sock, &token)).unwrap();
        let bin = ribd_bin();
        let mut ribd = Daemon::spawn(
            "ribd",
            rd.name(),
            bin.to_str().unwrap(),
            &["--config", config.to_str().unwrap(), "--flush-on-exit"],
            &[("RUST_LOG", "ribd=debug,bgp=info")],
            &dir.path().join("ribd.log"),
        )
        .unwrap();
        // The socket appears once the API listens; a daemon that exits instead fails here, with its log.
        let start = Instant::now();
        while !sock.exists() {
            if let Some(st) = ribd.exited() {
                panic!(
                    "ribd exited at start ({st}):\n{}",
                    testbed::peers::tail(&dir.path().join("ribd.log"), 40)
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ribd did not create {} within 30 s",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        let gobgp = GoBgp::start(
            a.name(),
            PeerConfig::new(64501, "10.255.1.2".parse().unwrap())
                .neighbor(Neighbor::new(ip("10.255.1.1"), 65000).hold_time(9))
                .neighbor(Neighbor::new(ip("fd00:255:1::1"), 65000).hold_time(9))
                .route(
                    Route::parse("203.0.113.0/24")
                        .community(64501, 100)
                        .large_community(64501, 1, 2)
                        .med(10),
                )
                .route(Route::parse("198.51.100.0/24").community(64501, 200))
                .route(Route::parse("10.10.0.0/16"))
                .route(Route::parse("10.10.1.0/24").community(64501, 300))
                .route(
                    Route::parse("2001:db8:100::/48")
                        .community(64501, 600)
                        .next_hop(ip("fd00:255:1::2")),
                ),
        )
        .unwrap();
        let bird = Bird::start(
            b.name(),
            PeerConfig::new(64502, "10.255.2.2".parse().unwrap())
                .neighbor(Neighbor::new(ip("10.255.2.1"), 65000).hold_time(9))
                .route(
                    Route::parse("198.51.100.0/24")
                        .prepend(&[64502, 64502])
                        .community(64502, 1),
                )
                .route(Route::parse("192.0.2.0/24").community(64502, 2)),
        )
        .unwrap();
        let lab = Lab {
            dir,
            sock,
            config,
            ribd: Some(ribd),
            gobgp,
            bird,
            rd,
            _a: a,
            b,
        };
        lab.wait(
            "sessions with gobgp-a, gobgp-a6, bird-b Established",
            || {
                let peers: Vec<Peer> = lab.json(&["show", "neighbors"]).ok()?;
                let up = peers.iter().filter(|p| p.state == "Established").count();
                (up == 3).then_some(())
            },
        );
        lab.wait("6 IPv4 and 1 IPv6 prefixes in the RIB", || {
            let s: Summary = lab.json(&["show", "summary"]).ok()?;
            let n = |afi: &str| s.rib.iter().find(|c| c.afi == afi).map(|c| c.prefixes);
            // 203.0.113/24, 198.51.100/24 (2 paths), 10.10/16, 10.10.1/24, 192.0.2/24.
            (n("ipv4") == Some(5) && n("ipv6") == Some(1)).then_some(())
        });
        lab.wait("both paths of 198.51.100.0/24", || {
            let r: RouteDetail = lab.json(&["show", "route", "198.51.100.0/24"]).ok()?;
            (r.candidates.len() == 2).then_some(())
        });
        lab.wait("the FIB in the dataplane, every next-hop resolved", || {
            let f: FibPage = lab.json(&["show", "fib"]).ok()?;
            let all = f.routes.len() == 6
                && f.routes
                    .iter()
                    .all(|r| r.pathlist.is_some() && r.nexthops.iter().all(|n| n.resolved));
            all.then_some(())
        });
        lab
    }

    fn sock(&self) -> &str {
        self.sock.to_str().unwrap()
    }

    /// Runs ribctl against the lab's socket.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--socket", self.sock()];
        all.extend_from_slice(args);
        ribctl(&all)
    }

    /// Runs ribctl, expects exit 0, returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "ribctl {args:?}: {}\n{}",
            text(&o.stderr),
            self.diagnostics()
        );
        text(&o.stdout)
    }

    /// Runs ribctl, expects exit `code`, returns stderr.
    #[track_caller]
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "ribctl {args:?}: stdout {}\nstderr {}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stderr)
    }

    /// `ribctl --json ARGS`, parsed.
    fn json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> Result<T, String> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = self.run(&all);
        if !o.status.success() {
            return Err(text(&o.stderr));
        }
        serde_json::from_slice(&o.stdout).map_err(|e| format!("{e}: {}", text(&o.stdout)))
    }

    #[track_caller]
    fn json_ok<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        self.json(args)
            .unwrap_or_else(|e| panic!("ribctl --json {args:?}: {e}\n{}", self.diagnostics()))
    }

    /// Every `RibPage` document `show rib --json` printed (one per family).
    #[track_caller]
    fn rib_pages(&self, args: &[&str]) -> Vec<RibPage> {
        let mut all = vec!["--json", "show", "rib"];
        all.extend_from_slice(args);
        let o = self.run(&all);
        assert!(
            o.status.code() == Some(0) || o.status.code() == Some(1),
            "{all:?}: {}",
            text(&o.stderr)
        );
        serde_json::Deserializer::from_slice(&o.stdout)
            .into_iter::<RibPage>()
            .map(|r| r.unwrap())
            .collect()
    }

    fn prefixes(&self, args: &[&str]) -> Vec<String> {
        self.rib_pages(args)
            .into_iter()
            .flat_map(|p| p.routes.into_iter().map(|r| r.prefix))
            .collect()
    }

    #[track_caller]
    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!("timed out waiting for {what}\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn diagnostics(&self) -> String {
        format!(
            "--- ribd log ({}):\n{}\n--- {}\n--- {}",
            self.dir.path().join("ribd.log").display(),
            testbed::peers::tail(&self.dir.path().join("ribd.log"), 40),
            self.gobgp.diagnostics(),
            self.bird.diagnostics()
        )
    }

    fn peer(&self, name: &str) -> Peer {
        self.json_ok(&["show", "neighbors", name])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        // ribd removes its pins on a clean exit (--flush-on-exit); after a kill they are ours to remove.
        drop(self.ribd.take());
        let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf").join(instance()));
    }
}

#[test]
fn every_command_against_real_ribd() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = Lab::start();
    summary_and_neighbors(&lab);
    rib_filters_and_paging(&lab);
    route_fib_lookup(&lab);
    stats_and_check(&lab);
    peer_actions(&lab);
    reload(&lab);
    tcp_with_token(&lab);
    socket_permission(&lab);
    daemon_stopped(lab);
}

fn summary_and_neighbors(lab: &Lab) {
    let s: Summary = lab.json_ok(&["show", "summary"]);
    assert_eq!((s.router_id.as_str(), s.local_as), ("10.255.0.1", 65000));
    assert_eq!((s.peers_configured, s.peers_established), (4, 3));
    assert_eq!(s.config_file, lab.config.display().to_string());

    let out = lab.ok(&["show", "summary"]);
    assert!(
        out.starts_with(&format!(
            "ribd {}, router id 10.255.0.1, local AS 65000, up ",
            s.version
        )),
        "{out}"
    );
    assert!(
        out.contains("neighbours: 4 configured, 3 established"),
        "{out}"
    );
    assert!(out.contains("NEIGHBOR"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colours when stdout is not a terminal"
    );

    // The neighbour table: one line each, states as ribd reports them.
    let out = lab.ok(&["show", "neighbors"]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
            .to_string()
    };
    assert!(line("gobgp-a").contains("10.255.1.2"), "{out}");
    assert!(line("gobgp-a").contains("Established"), "{out}");
    assert!(line("gobgp-a6").contains("fd00:255:1::2"), "{out}");
    assert!(line("bird-b").contains("64502"), "{out}");
    assert!(!line("down-c").contains("Established"), "{out}");
    // 4 IPv4 prefixes received from GoBGP, all accepted.
    assert!(line("gobgp-a").contains(" 4/4/"), "{out}");
    let peers: Vec<Peer> = lab.json_ok(&["show", "neighbors"]);
    assert_eq!(peers.len(), 4);

    // One neighbour, by name and by address: the same answer.
    let by_name = normalise(&lab.ok(&["show", "neighbors", "gobgp-a"]));
    assert!(by_name.starts_with("gobgp-a 10.255.1.2, AS 64501 (ebgp) \"GoBGP over IPv4\""));
    assert!(by_name.contains("Established, up <uptime>"), "{by_name}");
    assert!(by_name.contains("4-octet AS"), "{by_name}");
    assert!(by_name.contains("import policy: ALL"), "{by_name}");
    let p = lab.peer("10.255.1.2");
    assert_eq!((p.name.as_str(), p.remote_as), ("gobgp-a", 64501));
    assert_eq!(p.families[0].received, 4);

    let e = lab.fails(1, &["show", "neighbors", "nope"]);
    assert!(e.contains("no peer named \"nope\""), "{e}");
    assert!(e.contains("gobgp-a"), "names the configured peers: {e}");
    let e = lab.fails(1, &["show", "neighbors", "10.255.9.9"]);
    assert!(e.contains("no neighbour with address 10.255.9.9"), "{e}");
}

fn rib_filters_and_paging(lab: &Lab) {
    // The whole table, both families, as a golden (uptimes are not in it; everything else is fixed by
    // the peers' configuration).
    let out = lab.ok(&["show", "rib"]);
    golden("e2e-rib.txt", &normalise(&out));

    // Paging: one route per request gives the same documents as one request.
    let whole = lab.rib_pages(&[]);
    let paged = lab.rib_pages(&["--page-size", "1"]);
    assert_eq!(whole, paged);
    assert_eq!(whole.len(), 2, "one document per family");
    // Streamed in pages of 2, the rows are the same; the header is repeated where a later page
    // needed wider columns (the AS path of BIRD's prepended route).
    let rows = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.trim_start().starts_with("PREFIX"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let paged_out = lab.ok(&["show", "rib", "--page-size", "2"]);
    assert_eq!(rows(&paged_out), rows(&out));
    assert_eq!(paged_out.matches("PREFIX").count(), 3, "{paged_out}");
    let v4 = &whole[0];
    assert_eq!((v4.afi.as_str(), v4.total, v4.matched), ("ipv4", 5, 5));
    assert!(v4.next.is_none());

    // Prefix matches.
    assert_eq!(
        lab.prefixes(&["10.10.0.0/16", "--longer"]),
        ["10.10.0.0/16", "10.10.1.0/24"]
    );
    assert_eq!(
        lab.prefixes(&["10.10.1.0/24", "--shorter"]),
        ["10.10.0.0/16", "10.10.1.0/24"]
    );
    assert_eq!(lab.prefixes(&["10.10.1.0/24"]), ["10.10.1.0/24"]);
    let o = lab.run(&["show", "rib", "10.99.0.0/16"]);
    assert_eq!(o.status.code(), Some(1), "an exact prefix with no route");
    assert!(text(&o.stdout).contains("no route for 10.99.0.0/16"));

    // Path filters.
    assert_eq!(
        lab.prefixes(&["--community", "64501:100"]),
        ["203.0.113.0/24"]
    );
    let bird = lab.prefixes(&["--peer", "bird-b"]);
    assert_eq!(bird, ["192.0.2.0/24", "198.51.100.0/24"]);
    assert_eq!(
        lab.prefixes(&["--peer", "10.255.2.2"]),
        bird,
        "peer by address"
    );
    assert_eq!(lab.prefixes(&["--as-path", "^64502_"]), bird);
    // A space in the regex travels percent-encoded.
    assert_eq!(
        lab.prefixes(&["--as-path", "^64502 64502"]),
        ["198.51.100.0/24"]
    );
    assert_eq!(
        lab.prefixes(&["--as-path", "_64501$", "--afi", "ipv4"]),
        [
            "10.10.0.0/16",
            "10.10.1.0/24",
            "198.51.100.0/24",
            "203.0.113.0/24"
        ]
    );
    assert_eq!(lab.prefixes(&["--afi", "ipv6"]), ["2001:db8:100::/48"]);
    let best = lab.rib_pages(&["198.51.100.0/24", "--best"]);
    assert_eq!(best[0].routes[0].paths.len(), 1);
    assert!(best[0].routes[0].paths[0].best);
    let all = lab.rib_pages(&["198.51.100.0/24"]);
    assert_eq!(all[0].routes[0].paths.len(), 2);

    let e = lab.fails(1, &["show", "rib", "--peer", "nope"]);
    assert!(e.contains("no peer named"), "{e}");
    lab.fails(2, &["show", "rib", "10.10.0.0/8"]);
}

fn route_fib_lookup(lab: &Lab) {
    let r: RouteDetail = lab.json_ok(&["show", "route", "198.51.100.0/24"]);
    assert_eq!(r.candidates.len(), 2);
    let best: Vec<_> = r.candidates.iter().filter(|c| c.path.best).collect();
    assert_eq!(best.len(), 1);
    assert_eq!(best[0].path.peer, "gobgp-a", "shorter AS path wins");
    let lost = r.candidates.iter().find(|c| !c.path.best).unwrap();
    assert_eq!(lost.path.peer, "bird-b");
    assert!(lost.lost_at.is_some(), "{lost:?}");
    let out = lab.ok(&["show", "route", "198.51.100.0/24"]);
    assert!(
        out.starts_with("198.51.100.0/24: 2 candidate paths\n"),
        "{out}"
    );
    assert!(out.contains("from gobgp-a via 10.255.1.2  best"), "{out}");
    assert!(
        out.contains(&format!(
            "from bird-b via 10.255.2.2  lost at {}",
            lost.lost_at.clone().unwrap()
        )),
        "{out}"
    );
    assert!(out.contains("communities: 64502:1"), "{out}");
    let v6: RouteDetail = lab.json_ok(&["show", "route", "2001:db8:100::/48"]);
    assert_eq!(v6.candidates[0].path.communities, ["64501:600"]);
    let e = lab.fails(1, &["show", "route", "10.99.0.0/16"]);
    assert!(e.contains("10.99.0.0/16 is not in the RIB"), "{e}");
    lab.fails(2, &["show", "route", "10.99.0.1/16"]);

    // The FIB: one entry per selected prefix; paging does not change it.
    let fib: FibPage = lab.json_ok(&["show", "fib"]);
    let paged: FibPage = lab.json_ok(&["show", "fib", "--page-size", "2"]);
    assert_eq!(fib, paged);
    assert_eq!(fib.routes.len(), 6, "{fib:?}");
    let e = fib
        .routes
        .iter()
        .find(|r| r.prefix == "198.51.100.0/24")
        .unwrap();
    assert_eq!(e.kind, "forward");
    assert_eq!(e.nexthops.len(), 1);
    let nh = &e.nexthops[0];
    assert_eq!(nh.address, ip("10.255.1.2"));
    assert_eq!(nh.interface.as_deref(), Some("to-a"));
    assert!(nh.mac.as_deref().is_some_and(|m| m.len() == 17), "{nh:?}");
    assert!(nh.buckets.is_some_and(|b| b > 0), "{nh:?}");
    assert!(e.group.is_some(), "{e:?}");
    let out = lab.ok(&["show", "fib"]);
    assert!(out.starts_with("FIB: 6 routes\n"), "{out}");
    assert!(out.contains("6 routes shown"), "{out}");
    let one: FibPage = lab.json_ok(&["show", "fib", "203.0.113.0/24"]);
    assert_eq!(one.routes.len(), 1);

    // Longest match.
    let l: Lookup = lab.json_ok(&["lookup", "10.10.1.5"]);
    assert_eq!(l.rib.as_ref().unwrap().prefix, "10.10.1.0/24");
    assert_eq!(l.fib.as_ref().unwrap().prefix, "10.10.1.0/24");
    let l: Lookup = lab.json_ok(&["lookup", "10.10.200.1"]);
    assert_eq!(l.rib.unwrap().prefix, "10.10.0.0/16");
    let out = lab.ok(&["lookup", "203.0.113.77"]);
    assert!(
        out.contains("RIB: 203.0.113.0/24 best via 10.255.1.2 from gobgp-a, AS path 64501 ?"),
        "{out}"
    );
    let out = lab.ok(&["lookup", "172.16.0.1"]);
    assert!(out.contains("RIB: no matching route"), "{out}");
    let l: Lookup = lab.json_ok(&["lookup", "2001:db8:100:5::1"]);
    assert_eq!(l.rib.unwrap().prefix, "2001:db8:100::/48");
    lab.fails(2, &["lookup", "10.0.0.0/8"]);
}

/// Forwarded packets of `stats` and the transmit count of the next hop on `iface`.
fn forwarded(s: &DataplaneStats, iface: &str) -> (u64, u64) {
    let fwd = s
        .reasons
        .iter()
        .find(|r| r.reason == "forwarded")
        .map_or(0, |r| r.packets);
    let nh = s
        .nexthops
        .iter()
        .filter(|n| n.interface.starts_with(iface))
        .map(|n| n.packets)
        .sum();
    (fwd, nh)
}

fn stats_and_check(lab: &Lab) {
    let before: DataplaneStats = lab.json_ok(&["show", "stats"]);
    // Transit traffic: from BIRD's namespace to 203.0.113.1, which ribd's XDP forwarder sends to GoBGP
    // (nobody answers; the packets only have to cross the dataplane).
    lab.b
        .ip(&["route", "add", "203.0.113.0/24", "via", "10.255.2.1"])
        .unwrap();
    let _ = lab
        .b
        .command("ping")
        .args(["-c", "5", "-i", "0.2", "-W", "1", "-q", "203.0.113.1"])
        .output()
        .unwrap();
    let after: DataplaneStats = lab.json_ok(&["show", "stats"]);
    let (f0, n0) = forwarded(&before, "to-a");
    let (f1, n1) = forwarded(&after, "to-a");
    assert!(f1 >= f0 + 5, "forwarded {f0} -> {f1}: {after:?}");
    assert!(n1 >= n0 + 5, "next hop on to-a {n0} -> {n1}: {after:?}");
    let out = lab.ok(&["show", "stats"]);
    let line = out.lines().find(|l| l.starts_with("forwarded")).unwrap();
    assert!(
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 5,
        "{out}"
    );
    assert!(out.contains("NEXT HOP ID"), "{out}");
    let out = lab.ok(&["show", "stats", "--watch", "0.2", "--count", "2"]);
    assert!(
        out.contains("sample 1") && out.contains("sample 2"),
        "{out}"
    );
    let o = lab.run(&["--json", "show", "stats", "--watch", "0.2", "--count", "3"]);
    assert_eq!(o.status.code(), Some(0));
    let docs: Vec<DataplaneStats> = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .map(|d| d.unwrap())
        .collect();
    assert_eq!(docs.len(), 3);

    // Rates between samples while traffic flows: the second sample's forwarded line has a packet rate.
    let mut ping = lab
        .b
        .command("ping")
        .args(["-c", "20", "-i", "0.1", "-W", "1", "-q", "203.0.113.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = lab.ok(&["show", "stats", "--watch", "0.5", "--count", "2"]);
    let _ = ping.wait();
    let second = &out[out.find("sample 2").expect("two samples")..];
    let line = second.lines().find(|l| l.starts_with("forwarded")).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells.len(), 5, "REASON PACKETS BYTES PKT/S BIT/S: {line}");
    assert_ne!(cells[3], "0", "a packet rate while pinging: {out}");

    // RIB, FIB and maps agree.
    let c: CheckReport = lab.json_ok(&["fib", "check"]);
    assert!(c.ok, "{c:?}");
    assert!(c.checked >= 6, "{c:?}");
    let out = lab.ok(&["fib", "check"]);
    assert!(out.starts_with("FIB check: consistent ("), "{out}");
}

fn peer_actions(lab: &Lab) {
    // Refresh: only an established session can be asked.
    let out = lab.ok(&["peer", "refresh", "gobgp-a"]);
    assert!(out.starts_with("refresh gobgp-a: "), "{out}");
    let e = lab.fails(1, &["peer", "refresh", "down-c"]);
    assert!(e.contains("refused: peer down-c is not established"), "{e}");
    let e = lab.fails(1, &["peer", "reset", "nope"]);
    assert!(e.contains("no peer named \"nope\""), "{e}");

    // Disable: the session goes down and BIRD's paths leave the RIB; enable brings them back.
    let a: ActionResult = lab.json_ok(&["peer", "disable", "10.255.2.2"]);
    assert!(a.ok, "{a:?}");
    lab.wait("bird-b down and its routes gone", || {
        let p = lab.peer("bird-b");
        let gone = lab.prefixes(&["--afi", "ipv4"]).len() == 4;
        (!p.enabled && p.state != "Established" && gone).then_some(())
    });
    let out = lab.ok(&["show", "neighbors"]);
    assert!(out.contains("(admin down)"), "{out}");
    lab.ok(&["peer", "enable", "bird-b"]);
    lab.wait("bird-b back", || {
        let p = lab.peer("bird-b");
        (p.state == "Established" && lab.prefixes(&["--peer", "bird-b"]).len() == 2).then_some(())
    });

    // Reset: the session flaps and comes back.
    let flaps = lab.peer("gobgp-a6").flaps;
    lab.ok(&["peer", "reset", "gobgp-a6"]);
    lab.wait("gobgp-a6 re-established after the reset", || {
        let p = lab.peer("gobgp-a6");
        (p.flaps > flaps && p.state == "Established").then_some(())
    });
    lab.wait("the IPv6 route back", || {
        (lab.prefixes(&["--afi", "ipv6"]).len() == 1).then_some(())
    });
}

fn reload(lab: &Lab) {
    let out = lab.ok(&["reload"]);
    assert!(out.starts_with("reload: "), "{out}");
    let good = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        good.replace("local-as = 65000", "local-as = \"x\""),
    )
    .unwrap();
    let e = lab.fails(1, &["reload"]);
    assert!(e.starts_with("ribctl: refused: "), "{e}");
    assert!(e.contains("local-as"), "names the bad field: {e}");
    std::fs::write(&lab.config, good).unwrap();
    lab.ok(&["reload"]);
    // Nothing changed: the sessions stay up.
    let peers: Vec<Peer> = lab.json_ok(&["show", "neighbors"]);
    assert_eq!(peers.iter().filter(|p| p.state == "Established").count(), 3);
}

/// ribctl inside the daemon's namespace, against the TCP listener.
fn in_ns(lab: &Lab, args: &[&str]) -> Output {
    lab.rd
        .command(ribctl_bin().to_str().unwrap())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RIBCTL_TOKEN")
        .output()
        .unwrap()
}

fn tcp_with_token(lab: &Lab) {
    let url = "http://127.0.0.1:8179";
    let token_file = lab.dir.path().join("token");
    let o = in_ns(
        lab,
        &[
            "--url",
            url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--json",
            "show",
            "summary",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let s: Summary = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s.local_as, 65000);
    let o = in_ns(
        lab,
        &[
            "--url",
            url,
            "--token",
            TOKEN,
            "show",
            "neighbors",
            "bird-b",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    for args in [
        &["--url", url, "show", "summary"][..],
        &["--url", url, "--token", "wrong", "show", "summary"],
    ] {
        let o = in_ns(lab, args);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("bearer token"),
            "{}",
            text(&o.stderr)
        );
    }
    // Nothing listens on 8180.
    let o = in_ns(lab, &["--url", "http://127.0.0.1:8180", "show", "summary"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
}

/// The daemon's socket is mode 0660 root:root: `nobody` is refused, told the mode and the group.
fn socket_permission(lab: &Lab) {
    let mode = std::fs::metadata(&lab.sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o660, "ribd creates its socket mode 0660");
    let bin = ribctl_copy(lab.dir.path());
    let o = as_nobody(&bin, &["--socket", lab.sock(), "show", "summary"]);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{e}");
    assert!(e.contains("mode 0660, owner root, group root"), "{e}");
}

/// Stopped ribd: the socket is gone, ribctl says so and how to start it (exit 3).
fn daemon_stopped(mut lab: Lab) {
    let mut d = lab.ribd.take().unwrap();
    signal(d.pid(), libc::SIGTERM).unwrap();
    let start = Instant::now();
    while d.exited().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(d);
    let e = lab.fails(3, &["show", "summary"]);
    assert!(e.contains(lab.sock()), "{e}");
    assert!(e.contains("ribd --config"), "{e}");
}

/// A large table through `show rib`: 100k IPv4 routes (generated from the real pyasn data, injected into
/// GoBGP) listed page by page; every prefix arrives exactly once, in order, whatever the page size.
/// Prints how long each listing took (no time is asserted). Ignored by default (about a minute):
/// `cargo test -p cli --test e2e -- --ignored --nocapture`.
#[test]
#[ignore]
fn large_table_streams_in_pages() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    const N: usize = 100_000;
    netns::sweep_stale();
    let rd = Netns::new("ribd").unwrap();
    let a = Netns::new("gobgp").unwrap();
    netns::veth(&rd, "to-a", &a, "to-rd").unwrap();
    netns::addr(&rd, "to-a", "10.255.1.1/30").unwrap();
    netns::addr(&a, "to-rd", "10.255.1.2/30").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ribd.sock");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let config = dir.path().join("ribd.toml");
    let cfg = ribd_config(&sock, &token).replace("enabled = true", "enabled = false");
    std::fs::write(&config, cfg).unwrap();
    let _ribd = Daemon::spawn(
        "ribd",
        rd.name(),
        ribd_bin().to_str().unwrap(),
        &["--config", config.to_str().unwrap()],
        &[],
        &dir.path().join("ribd.log"),
    )
    .unwrap();
    let gobgp = GoBgp::start(
        a.name(),
        PeerConfig::new(64501, "10.255.1.2".parse().unwrap())
            .neighbor(Neighbor::new(ip("10.255.1.1"), 65000).hold_time(30)),
    )
    .unwrap();
    let table = testbed::tablegen::generate(&testbed::tablegen::Config {
        v4_count: N,
        v6_count: 0,
        peer_as: Some(64501),
        ..Default::default()
    })
    .unwrap();
    gobgp.inject_table(&table, ip("10.255.1.2")).unwrap();
    let s = sock.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["--socket", s.as_str()];
        all.extend_from_slice(args);
        ribctl(&all)
    };
    // Learned: the count stops growing (GoBGP's MRT reader may skip a few of the generated routes).
    let start = Instant::now();
    let (mut last, mut since) = (0usize, Instant::now());
    let n = loop {
        let o = run(&["--json", "show", "summary"]);
        let now = serde_json::from_slice::<Summary>(&o.stdout)
            .ok()
            .and_then(|s| {
                s.rib
                    .iter()
                    .find(|c| c.afi == "ipv4")
                    .map(|c| c.prefixes as usize)
            })
            .unwrap_or(0);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if now > N * 9 / 10 && since.elapsed() > Duration::from_secs(3) {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "ribd learned only {now} of {N} prefixes\n{}\n{}",
            testbed::peers::tail(&dir.path().join("ribd.log"), 20),
            gobgp.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("{n} IPv4 prefixes learned (of {N} generated)");
    for page in ["1000", "10000", "100000"] {
        let t = Instant::now();
        let o = run(&["show", "rib", "--afi", "ipv4", "--page-size", page]);
        let took = t.elapsed();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        let prefixes: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(" >") || l.starts_with("S>"))
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(prefixes.len(), n, "page size {page}");
        assert!(out.contains(&format!("{n} prefixes, {n} paths shown")));
        eprintln!(
            "show rib, page size {page:>6}: {:>3} requests, {:.2} s",
            n.div_ceil(page.parse::<usize>().unwrap()),
            took.as_secs_f64()
        );
    }
    let t = Instant::now();
    let o = run(&["--json", "show", "rib", "--afi", "ipv4"]);
    let took = t.elapsed();
    let page: RibPage = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(page.routes.len(), n);
    let mut sorted = page
        .routes
        .iter()
        .map(|r| r.prefix.clone())
        .collect::<Vec<_>>();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "no prefix twice");
    eprintln!(
        "show rib --json, page size   1000: {:.2} s",
        took.as_secs_f64()
    );
}
