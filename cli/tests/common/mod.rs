//! Shared test helpers: fixtures built from the `ribd::api` types, golden-file comparison, output
//! normalisation, and running the `ribctl` binary.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ribd::api::*;

pub fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

/// Regenerate golden/fixture files instead of comparing (`UPDATE_GOLDEN=1 cargo test -p cli`).
pub fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0")
}

/// Compares `actual` with `tests/golden/NAME` (or writes it when updating).
pub fn golden(name: &str, actual: &str) {
    let path = dir("golden").join(name);
    if updating() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}\n(UPDATE_GOLDEN=1 \
             rewrites it)",
            path.display()
        );
    }
}

/// Replaces what changes from run to run: uptimes/durations (`00:01:02`, `1d02h03m`, `2w3d04h`),
/// wall-clock seconds in "over the last N s" and sample rates.
pub fn normalise(s: &str) -> String {
    let re = regex::Regex::new(r"\b(\d{2}:\d{2}:\d{2}|\d+d\d{2}h\d{2}m|\d+w\d+d\d{2}h)\b").unwrap();
    let s = re.replace_all(s, "<uptime>");
    let re = regex::Regex::new(r"over the last [0-9.]+ s").unwrap();
    re.replace_all(&s, "over the last <secs> s").into_owned()
}

/// Removes ANSI colour escapes.
pub fn strip_ansi(s: &str) -> String {
    let re = regex::Regex::new("\x1b\\[[0-9;]*[A-Za-z]").unwrap();
    re.replace_all(s, "").into_owned()
}

/// The built `ribctl` binary.
pub fn ribctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ribctl"))
}

/// Runs ribctl with `args`, no colour, no ambient RIBCTL_* settings.
pub fn ribctl(args: &[&str]) -> Output {
    Command::new(ribctl_bin())
        .args(args)
        .env_remove("RIBCTL_SOCKET")
        .env_remove("RIBCTL_URL")
        .env_remove("RIBCTL_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn path(peer: &str, nh: &str, as_path: &str, lp: u32, med: Option<u32>) -> RibPath {
    RibPath {
        peer: peer.to_string(),
        path_id: 0,
        best: false,
        multipath: false,
        next_hop: Some(ip(nh)),
        as_path: as_path.to_string(),
        origin: "igp".to_string(),
        med,
        local_pref: Some(lp),
        communities: vec![],
        large_communities: vec![],
        ext_communities: vec![],
        stale: false,
    }
}

pub fn summary() -> Summary {
    Summary {
        version: "0.1.0".to_string(),
        router_id: "192.0.2.1".to_string(),
        local_as: 65000,
        uptime_secs: 93_784,
        config_file: "/etc/ribd/ribd.toml".to_string(),
        peers_configured: 3,
        peers_established: 1,
        rib: vec![
            AfiCount {
                afi: "ipv4".to_string(),
                prefixes: 513_042,
                paths: 1_026_084,
            },
            AfiCount {
                afi: "ipv6".to_string(),
                prefixes: 3,
                paths: 3,
            },
        ],
        attribute_sets: 81_234,
        fib: vec![
            AfiCount {
                afi: "ipv4".to_string(),
                prefixes: 513_042,
                paths: 2,
            },
            AfiCount {
                afi: "ipv6".to_string(),
                prefixes: 3,
                paths: 1,
            },
        ],
        dataplane: DataplaneSummary {
            enabled: true,
            instance: "ribd".to_string(),
            interfaces: vec![
                Interface {
                    name: "eth0".to_string(),
                    ifindex: 2,
                    mode: "native".to_string(),
                },
                Interface {
                    name: "eth1".to_string(),
                    ifindex: 3,
                    mode: "generic".to_string(),
                },
            ],
            error: None,
        },
        graceful_restart: GrSummary {
            mode: "full".to_string(),
            phase: "restarting".to_string(),
            restart_state: true,
            forwarding_preserved: vec!["ipv4-unicast".to_string()],
            deferring: true,
            deadline_secs: Some(97),
            ended: None,
            ended_after_secs: None,
        },
    }
}

pub fn peers() -> Vec<Peer> {
    vec![
        Peer {
            name: "transit1".to_string(),
            address: ip("192.0.2.2"),
            remote_as: 64501,
            local_as: 65000,
            description: "Upstream A".to_string(),
            kind: "ebgp".to_string(),
            enabled: true,
            state: "Established".to_string(),
            uptime_secs: Some(3723),
            flaps: 2,
            last_error: None,
            last_down: Some("hold timer expired".to_string()),
            router_id: Some("198.51.100.1".to_string()),
            hold_time: Some(90),
            keepalive: Some(30),
            capabilities: vec![
                "4-octet AS".to_string(),
                "route refresh".to_string(),
                "enhanced route refresh".to_string(),
                "add-path rx ipv4-unicast".to_string(),
            ],
            families: vec![
                PeerFamily {
                    afi: "ipv4".to_string(),
                    received: 513_042,
                    accepted: 513_040,
                    advertised: 12,
                    state: "active".to_string(),
                    ..PeerFamily::default()
                },
                PeerFamily {
                    afi: "ipv4-flowspec".to_string(),
                    received: 0,
                    accepted: 0,
                    advertised: 3,
                    state: "disabled".to_string(),
                    treat_as_withdraw: 2,
                    afi_safi_disable: 1,
                    last_error: Some("invalid network field".to_string()),
                },
            ],
            messages: MessageCounts {
                received: [1, 41_230, 0, 124, 0],
                sent: [1, 3, 0, 125, 1],
            },
            import: vec!["SANE-IMPORT".to_string(), "transit-in".to_string()],
            export: vec!["own-prefixes".to_string()],
            graceful_restart: Some(PeerGr {
                negotiated: true,
                peer_restart_time: Some(120),
                peer_restarting: false,
                peer_forwarding: vec![],
                end_of_rib_received: vec!["ipv4-unicast".to_string()],
                deferred: true,
                stale_phase: None,
                stale_remaining_secs: None,
                stale_paths_ipv4: 0,
                stale_paths_ipv6: 0,
            }),
        },
        Peer {
            name: "ix-v6".to_string(),
            address: ip("2001:db8:ffff::5"),
            remote_as: 4_200_000_001,
            local_as: 65000,
            description: String::new(),
            kind: "ebgp".to_string(),
            enabled: true,
            state: "Active".to_string(),
            uptime_secs: Some(1_300_000),
            flaps: 0,
            last_error: Some("hold timer expired".to_string()),
            last_down: None,
            router_id: None,
            hold_time: None,
            keepalive: None,
            capabilities: vec![],
            families: vec![PeerFamily {
                afi: "ipv6".to_string(),
                received: 0,
                accepted: 0,
                advertised: 0,
                ..PeerFamily::default()
            }],
            messages: MessageCounts::default(),
            import: vec![],
            export: vec![],
            // Its session was lost without a NOTIFICATION: its routes are kept while it restarts.
            graceful_restart: Some(PeerGr {
                negotiated: false,
                peer_restart_time: None,
                peer_restarting: false,
                peer_forwarding: vec![],
                end_of_rib_received: vec![],
                deferred: false,
                stale_phase: Some("graceful-restart".to_string()),
                stale_remaining_secs: Some(97),
                stale_paths_ipv4: 0,
                stale_paths_ipv6: 48_210,
            }),
        },
        Peer {
            name: "rr1".to_string(),
            address: ip("10.0.0.9"),
            remote_as: 65000,
            local_as: 65000,
            description: "route reflector".to_string(),
            kind: "ibgp".to_string(),
            enabled: false,
            state: "Idle".to_string(),
            uptime_secs: None,
            flaps: 0,
            last_error: None,
            last_down: None,
            router_id: None,
            hold_time: None,
            keepalive: None,
            capabilities: vec![],
            families: vec![
                PeerFamily {
                    afi: "ipv4".to_string(),
                    received: 0,
                    accepted: 0,
                    advertised: 0,
                    ..PeerFamily::default()
                },
                PeerFamily {
                    afi: "ipv6".to_string(),
                    received: 0,
                    accepted: 0,
                    advertised: 0,
                    ..PeerFamily::default()
                },
            ],
            messages: MessageCounts::default(),
            import: vec![],
            export: vec![],
            graceful_restart: None,
        },
    ]
}

/// Two pages of IPv4 routes; the second has wider cells than the first.
pub fn rib_pages() -> Vec<RibPage> {
    let mut a = path("transit1", "192.0.2.2", "64501 64510", 100, Some(0));
    a.best = true;
    a.multipath = true;
    a.communities = vec!["64501:100".to_string(), "no-export".to_string()];
    let mut b = path("transit2", "192.0.2.6", "64502 64510", 100, Some(0));
    b.multipath = true;
    let mut c = path(
        "transit1",
        "192.0.2.2",
        "64501 64511 64511 64511",
        100,
        None,
    );
    c.best = true;
    c.origin = "incomplete".to_string();
    c.large_communities = vec!["64501:1:2".to_string()];
    let mut d = path("rr1", "10.0.0.9", "", 200, None);
    d.best = true;
    d.stale = true;
    d.path_id = 7;
    d.ext_communities = vec!["rt:65000:1".to_string()];
    vec![
        RibPage {
            afi: "ipv4".to_string(),
            total: 513_042,
            matched: 3,
            routes: vec![
                RibRoute {
                    prefix: "1.0.0.0/24".to_string(),
                    paths: vec![a, b],
                },
                RibRoute {
                    prefix: "1.0.4.0/22".to_string(),
                    paths: vec![c],
                },
            ],
            next: Some("1.0.4.0/22".to_string()),
        },
        RibPage {
            afi: "ipv4".to_string(),
            total: 513_042,
            matched: 3,
            routes: vec![RibRoute {
                prefix: "100.100.100.128/25".to_string(),
                paths: vec![d],
            }],
            next: None,
        },
    ]
}

pub fn fib_route() -> FibRoute {
    FibRoute {
        prefix: "1.0.0.0/24".to_string(),
        kind: "forward".to_string(),
        nexthops: vec![
            FibNextHop {
                address: ip("192.0.2.2"),
                weight: 1,
                interface: Some("eth0".to_string()),
                mac: Some("02:00:00:00:00:02".to_string()),
                resolved: true,
                buckets: Some(128),
            },
            FibNextHop {
                address: ip("192.0.2.6"),
                weight: 1,
                interface: None,
                mac: None,
                resolved: false,
                buckets: Some(128),
            },
        ],
        backup: vec![FibNextHop {
            address: ip("192.0.2.10"),
            weight: 1,
            interface: Some("eth2".to_string()),
            mac: Some("02:00:00:00:00:0a".to_string()),
            resolved: true,
            buckets: Some(0),
        }],
        pathlist: Some(4),
        group: Some(7),
    }
}

pub fn route_detail() -> RouteDetail {
    let pages = rib_pages();
    let best = pages[0].routes[0].paths[0].clone();
    let mp = pages[0].routes[0].paths[1].clone();
    let mut lost = path("rr1", "10.0.0.9", "64503 64510", 90, Some(10));
    lost.path_id = 3;
    RouteDetail {
        prefix: "1.0.0.0/24".to_string(),
        candidates: vec![
            Candidate {
                path: best,
                reachable: true,
                igp_cost: 0,
                lost_at: None,
                reason: None,
            },
            Candidate {
                path: mp,
                reachable: true,
                igp_cost: 0,
                lost_at: Some("router-id".to_string()),
                reason: Some("higher router id 198.51.100.2 > 198.51.100.1".to_string()),
            },
            Candidate {
                path: lost,
                reachable: false,
                igp_cost: 20,
                lost_at: Some("local-pref".to_string()),
                reason: Some("lower LOCAL_PREF 90 < 100".to_string()),
            },
        ],
        fib: Some(fib_route()),
    }
}

pub fn fib_pages() -> Vec<FibPage> {
    let mut v6 = fib_route();
    v6.prefix = "2001:db8:1234:5600::/56".to_string();
    v6.nexthops = vec![FibNextHop {
        address: ip("2001:db8:ffff::5"),
        weight: 3,
        interface: Some("eth1.100".to_string()),
        mac: Some("02:00:00:00:01:05".to_string()),
        resolved: true,
        buckets: Some(256),
    }];
    v6.backup = vec![];
    v6.pathlist = Some(9);
    v6.group = Some(11);
    vec![
        FibPage {
            total: 4,
            routes: vec![
                fib_route(),
                FibRoute {
                    prefix: "192.0.2.0/24".to_string(),
                    kind: "blackhole".to_string(),
                    nexthops: vec![],
                    backup: vec![],
                    pathlist: Some(1),
                    group: None,
                },
            ],
            next: Some("192.0.2.0/24".to_string()),
        },
        FibPage {
            total: 4,
            routes: vec![
                FibRoute {
                    prefix: "198.51.100.0/24".to_string(),
                    kind: "pass".to_string(),
                    nexthops: vec![],
                    backup: vec![],
                    pathlist: None,
                    group: None,
                },
                v6,
            ],
            next: None,
        },
    ]
}

pub fn lookup() -> Lookup {
    Lookup {
        address: ip("1.0.0.77"),
        rib: Some(rib_pages()[0].routes[0].clone()),
        fib: Some(fib_route()),
        flow: None,
    }
}

pub fn lookup_none() -> Lookup {
    Lookup {
        address: ip("2001:db8::1"),
        rib: None,
        fib: None,
        flow: None,
    }
}

pub fn stats(scale: u64) -> DataplaneStats {
    DataplaneStats {
        reasons: vec![
            ReasonCounter {
                reason: "forwarded".to_string(),
                packets: 1_000_000 * scale,
                bytes: 1_500_000_000 * scale,
            },
            ReasonCounter {
                reason: "pass-no-route".to_string(),
                packets: 12 * scale,
                bytes: 840 * scale,
            },
            ReasonCounter {
                reason: "pass-ttl".to_string(),
                packets: 3,
                bytes: 180,
            },
        ],
        nexthops: vec![
            NextHopCounter {
                id: 1,
                interface: "eth0".to_string(),
                mac: "02:00:00:00:00:02".to_string(),
                packets: 600_000 * scale,
                bytes: 900_000_000 * scale,
            },
            NextHopCounter {
                id: 2,
                interface: "eth0".to_string(),
                mac: "02:00:00:00:00:06".to_string(),
                packets: 300_000 * scale,
                bytes: 450_000_000 * scale,
            },
            NextHopCounter {
                id: 5,
                interface: "eth1.100".to_string(),
                mac: "02:00:00:00:01:05".to_string(),
                packets: 100_000 * scale,
                bytes: 150_000_000 * scale,
            },
        ],
    }
}

pub fn check_ok() -> CheckReport {
    CheckReport {
        ok: true,
        checked: 513_045,
        differences: vec![],
    }
}

pub fn check_fail() -> CheckReport {
    CheckReport {
        ok: false,
        checked: 513_045,
        differences: vec![
            "1.0.0.0/24: RIB selects group {192.0.2.2, 192.0.2.6}, dir24 points at path-list 2 (pass)"
                .to_string(),
            "203.0.113.0/24: in the maps, not in the RIB".to_string(),
        ],
    }
}

/// Copies the ribctl binary into `dir` (mode 0755), so an unprivileged user can run it wherever the
/// build directory is.
pub fn ribctl_copy(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("ribctl");
    std::fs::copy(ribctl_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs `bin args` as `nobody:nogroup` with no capabilities (setpriv). Retries while exec fails with
/// "Text file busy": a process forked by a parallel test may still hold the copy's write descriptor.
pub fn as_nobody(bin: &Path, args: &[&str]) -> Output {
    for _ in 0..50 {
        let o = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        if o.status.code() == Some(126) && text(&o.stderr).contains("Text file busy") {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        return o;
    }
    panic!("{} stayed busy", bin.display());
}
