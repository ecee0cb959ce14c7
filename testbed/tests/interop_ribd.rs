//! The interop matrix of the real `ribd` daemon against real BIRD 2, FRR, GoBGP and ExaBGP.
//!
//! ```text
//!   per implementation, in parallel (one thread each):
//!   ns rd: ribd AS 65000          10.0.0.1, fd00::1 ──veth── 10.0.0.2, fd00::2   ns p: peer AS 646xx
//!     peer "v4" (IPv4 transport, IPv4 unicast, ADD-PATH receive)  ◄──► neighbour 10.0.0.1 (GR, ADD-PATH send)
//!     peer "v6" (IPv6 transport, IPv6 unicast, MP-BGP)            ◄──► neighbour fd00::1  (GR)
//!     statics 192.0.2.0/24, 2001:db8:ff::/48 (communities)  ──►  203.0.113.0/24, 2001:db8:1x::/48 ◄──
//!                                                                198.51.100.0/24 twice (path ids) ◄──
//! ```
//!
//! Every feature is a row, every implementation a column; a cell is pass, fail or a known failure
//! (a ribd bug, listed in `KNOWN` with its reason). The test prints the matrix and fails on any
//! unexpected failure. With `INTEROP_WRITE=1` it also writes `docs/INTEROP.md`.
//!
//! Needs root (namespaces) and the four implementations; ribd is built with `cargo build -p ribd`
//! unless `RIBD_BIN` names a binary.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use ribd::api::RibPath;
use testbed::peers::{
    BgpPeer, Bird, ExaBgp, Family, Frr, GoBgp, Kind, Neighbor, PanicReport, PeerConfig,
    ReceivedRoute, Route,
};
use testbed::ribd::{Ribd, RibdConfig, RibdPeer, RibdStatic};
use testbed::topo::Topology;

const T: Duration = Duration::from_secs(30);
const LOCAL_AS: u32 = 65000;
/// Restart time the peers advertise (RFC 4724): long enough for a restart, short enough to wait out.
const GR_TIME: u16 = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    SessionV4,
    SessionV6,
    V4In,
    V4Out,
    V6In,
    V6Out,
    CommIn,
    CommOut,
    LargeIn,
    LargeOut,
    AddPath,
    GrKept,
    GrBack,
    GrNoStale,
    GrExpired,
}

impl Row {
    const ALL: [Row; 15] = [
        Row::SessionV4,
        Row::SessionV6,
        Row::V4In,
        Row::V4Out,
        Row::V6In,
        Row::V6Out,
        Row::CommIn,
        Row::CommOut,
        Row::LargeIn,
        Row::LargeOut,
        Row::AddPath,
        Row::GrKept,
        Row::GrBack,
        Row::GrNoStale,
        Row::GrExpired,
    ];

    fn title(self) -> &'static str {
        match self {
            Row::SessionV4 => "Session Established, IPv4 transport",
            Row::SessionV6 => "Session Established, IPv6 transport",
            Row::V4In => "IPv4 unicast peer → ribd (AS path, next hop)",
            Row::V4Out => "IPv4 unicast ribd → peer (AS path, next hop self)",
            Row::V6In => "IPv6 unicast (MP-BGP) peer → ribd",
            Row::V6Out => "IPv6 unicast (MP-BGP) ribd → peer",
            Row::CommIn => "Communities peer → ribd",
            Row::CommOut => "Communities ribd → peer",
            Row::LargeIn => "Large communities peer → ribd",
            Row::LargeOut => "Large communities ribd → peer",
            Row::AddPath => "ADD-PATH: peer sends 2 paths, ribd keeps both ids",
            Row::GrKept => "GR: peer restarts, ribd keeps its routes (stale)",
            Row::GrBack => "GR: routes stay after the peer is back (EoR)",
            Row::GrNoStale => "GR: stale paths not re-sent are gone after End-of-RIB",
            Row::GrExpired => "GR: routes removed when the peer stays down",
        }
    }
}

/// Cells that fail because of a known ribd bug: (implementation, row, reason).
const KNOWN: &[(Kind, Row, &str)] = &[];

#[derive(Clone, Debug)]
enum Cell {
    Pass(String),
    Fail(String),
    Known(String),
}

impl Cell {
    fn text(&self) -> String {
        let with = |w: &str, r: &str| {
            if r.is_empty() {
                w.to_string()
            } else {
                format!("{w}: {r}")
            }
        };
        match self {
            Cell::Pass(r) => with("pass", r),
            Cell::Fail(r) => with("**fail**", r),
            Cell::Known(r) => with("known failure", r),
        }
    }
}

/// The results of one implementation.
struct Column {
    kind: Kind,
    cells: Vec<(Row, Cell)>,
    /// Full errors of failed checks (printed after the matrix).
    errors: Vec<String>,
}

impl Column {
    fn new(kind: Kind) -> Column {
        Column {
            kind,
            cells: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Records the outcome of a check: `Ok(note)` passes, `Err` fails (or is a known failure).
    fn record(&mut self, row: Row, r: Result<String>) {
        let known = KNOWN
            .iter()
            .find(|(k, w, _)| *k == self.kind && *w == row)
            .map(|(_, _, why)| *why);
        let cell = match (r, known) {
            (Ok(note), None) => Cell::Pass(note),
            (Ok(note), Some(_)) => Cell::Pass(
                format!("{note} (listed in KNOWN: remove it)")
                    .trim()
                    .to_string(),
            ),
            (Err(e), Some(why)) => {
                self.errors
                    .push(format!("{} / {} (known): {e:#}", self.kind, row.title()));
                Cell::Known(why.to_string())
            }
            (Err(e), None) => {
                let short = format!("{e}");
                let short: String = short
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(70)
                    .collect();
                self.errors
                    .push(format!("{} / {}: {e:?}", self.kind, row.title()));
                Cell::Fail(short)
            }
        };
        self.cells.push((row, cell));
    }

    fn get(&self, row: Row) -> Cell {
        self.cells
            .iter()
            .find(|(r, _)| *r == row)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| Cell::Fail("not run (an earlier step failed)".into()))
    }
}

/// The concrete peer (ADD-PATH needs implementation-specific commands).
enum Peer {
    Bird(Bird),
    Frr(Frr),
    GoBgp(GoBgp),
    ExaBgp(ExaBgp),
}

impl Peer {
    fn dyn_ref(&self) -> &dyn BgpPeer {
        match self {
            Peer::Bird(p) => p,
            Peer::Frr(p) => p,
            Peer::GoBgp(p) => p,
            Peer::ExaBgp(p) => p,
        }
    }
}

fn peer_as(kind: Kind) -> u32 {
    match kind {
        Kind::Bird => 64601,
        Kind::Frr => 64602,
        Kind::GoBgp => 64603,
        Kind::ExaBgp => 64604,
    }
}

fn v6_prefix(kind: Kind) -> IpNet {
    let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    format!("2001:db8:1{i}::/48").parse().unwrap()
}

const OUR_V4: &str = "192.0.2.0/24";
const OUR_V6: &str = "2001:db8:ff::/48";
const THEIR_V4: &str = "203.0.113.0/24";
const ADDPATH_PREFIX: &str = "198.51.100.0/24";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The temp dir a driver made for namespace `ns` (`tb-<kind>-<ns>-XXXX`).
fn driver_dir(kind: &str, ns: &str) -> Result<std::path::PathBuf> {
    let prefix = format!("tb-{kind}-{ns}-");
    std::fs::read_dir(std::env::temp_dir())?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .with_context(|| format!("no temp dir {prefix}* of the {kind} driver"))
}

/// Makes the peer originate two paths for `ADDPATH_PREFIX` (communities ASN:11 and ASN:12) that it
/// sends over ADD-PATH.
fn originate_two_paths(peer: &Peer, cfg: &PeerConfig, ribd_v4: IpAddr) -> Result<()> {
    let asn = cfg.local_as;
    match peer {
        Peer::GoBgp(g) => {
            for id in [1, 2] {
                g.gobgp(&[
                    "global",
                    "rib",
                    "add",
                    "-a",
                    "ipv4",
                    ADDPATH_PREFIX,
                    "identifier",
                    &id.to_string(),
                    "community",
                    &format!("{asn}:1{id}"),
                ])?;
            }
        }
        Peer::ExaBgp(e) => {
            let api = driver_dir("exabgp", e.netns())?.join("api.in");
            let mut text = String::new();
            for id in [1, 2] {
                let _ = writeln!(
                    text,
                    "neighbor {ribd_v4} announce route {ADDPATH_PREFIX} next-hop self path-information 0.0.0.{id} community [{asn}:1{id}]"
                );
            }
            let mut f = std::fs::OpenOptions::new().append(true).open(&api)?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
        }
        Peer::Bird(b) => {
            // Two static protocols: two routes for one prefix in BIRD's table, both exported.
            let conf = driver_dir("bird", b.netns())?.join("bird.conf");
            let mut text = b.config_text(cfg);
            for id in [1, 2] {
                let _ = writeln!(
                    text,
                    "protocol static ap{id} {{\n  ipv4;\n  route {ADDPATH_PREFIX} blackhole {{ bgp_community.add(({asn},1{id})); }};\n}}"
                );
            }
            std::fs::write(&conf, text)?;
            b.birdc(&["configure"])?;
        }
        Peer::Frr(f) => {
            // A `network` path and a redistributed static path: two paths of the one prefix.
            f.announce(&Route::parse(ADDPATH_PREFIX).community(asn as u16, 11))?;
            // A kernel route zebra sees, redistributed: the second path.
            testbed::netns::run(std::process::Command::new("ip").args([
                "-n",
                f.netns(),
                "route",
                "add",
                "blackhole",
                ADDPATH_PREFIX,
            ]))?;
            let lines = [
                "configure terminal".to_string(),
                "route-map AP2 permit 10".to_string(),
                format!("set community {asn}:12"),
                "exit".to_string(),
                format!("router bgp {asn}"),
                "address-family ipv4 unicast".to_string(),
                "redistribute kernel route-map AP2".to_string(),
            ];
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            f.vtysh(&refs)?;
        }
    }
    Ok(())
}

fn paths_of(ribd: &Ribd, prefix: IpNet, peer: &str) -> Result<Vec<RibPath>> {
    Ok(ribd
        .route(prefix)?
        .map(|r| r.paths.into_iter().filter(|p| p.peer == peer).collect())
        .unwrap_or_default())
}

/// Every stale path in ribd's RIB, as `prefix peer id N`.
fn stale_paths(ribd: &Ribd) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for afi in ["ipv4", "ipv6"] {
        for r in ribd.rib(afi)? {
            for p in r.paths.iter().filter(|p| p.stale) {
                out.push(format!(
                    "{} from {} path id {}",
                    r.prefix, p.peer, p.path_id
                ));
            }
        }
    }
    Ok(out)
}

/// How ribd shows its help with the peer's restart, once the peer was killed: each session's
/// graceful-restart view in the API (the graceful-restart phase, its timer within the peer's
/// restart time, stale paths of the session's family) and the same counts in `/metrics`.
fn helper_view(ribd: &Ribd) -> Result<String> {
    let (code, body) = testbed::ribd::http_get(ribd.socket(), "/metrics")?;
    if code != 200 {
        bail!("/metrics answered {code}");
    }
    let metrics = String::from_utf8(body)?;
    let mut seen = Vec::new();
    for (name, afi) in [("v4", "ipv4"), ("v6", "ipv6")] {
        let p = ribd.peer(name)?;
        let g = p
            .graceful_restart
            .with_context(|| format!("no graceful-restart view of peer {name}"))?;
        let n = if afi == "ipv4" {
            g.stale_paths_ipv4
        } else {
            g.stale_paths_ipv6
        };
        if g.stale_phase.as_deref() != Some("graceful-restart") || n == 0 {
            bail!(
                "peer {name}: stale phase {:?}, {n} stale {afi} paths",
                g.stale_phase
            );
        }
        if g.stale_remaining_secs
            .is_none_or(|s| s > u64::from(GR_TIME))
        {
            bail!(
                "peer {name}: {:?} s left of a {GR_TIME} s restart time",
                g.stale_remaining_secs
            );
        }
        let line = format!(
            "ribd_bgp_peer_stale_paths{{peer=\"{name}\",address=\"{}\",afi=\"{afi}\"}} {n}",
            p.address
        );
        if !metrics.lines().any(|l| l == line) {
            bail!("/metrics lacks `{line}`");
        }
        seen.push(format!("{n} {afi}"));
    }
    Ok(format!("API and /metrics: {} stale", seen.join(", ")))
}

fn wait_path(ribd: &Ribd, prefix: IpNet, peer: &str) -> Result<RibPath> {
    ribd.wait(T, &format!("a path for {prefix} from {peer}"), |r| {
        Ok(paths_of(r, prefix, peer)?.into_iter().next())
    })
}

fn wait_received(peer: &dyn BgpPeer, prefix: IpNet) -> Result<ReceivedRoute> {
    peer.wait_route(prefix, T)
}

/// Checks a path ribd learned: AS path and next hop.
fn check_in(p: &RibPath, asn: u32, nh: IpAddr) -> Result<String> {
    if p.as_path != asn.to_string() {
        bail!("AS path {:?}, expected {asn}", p.as_path);
    }
    if p.next_hop != Some(nh) {
        bail!("next hop {:?}, expected {nh}", p.next_hop);
    }
    Ok(String::new())
}

/// Checks a route the peer received from ribd: AS path [65000] and next hop.
fn check_out(r: &ReceivedRoute, nh: IpAddr) -> Result<String> {
    if r.as_path != vec![LOCAL_AS] {
        bail!("AS path {:?}, expected [{LOCAL_AS}]", r.as_path);
    }
    match r.next_hop {
        Some(a) if a == nh => Ok(String::new()),
        Some(IpAddr::V6(a)) if a.is_unicast_link_local() => {
            Ok("peer shows the link-local next hop".into())
        }
        other => bail!("next hop {other:?}, expected {nh}"),
    }
}

fn run_column(kind: Kind) -> Column {
    let mut col = Column::new(kind);
    if let Err(e) = matrix_for(kind, &mut col) {
        col.errors.push(format!("{kind}: setup: {e:?}"));
        let short: String = format!("{e}").chars().take(70).collect();
        for row in Row::ALL {
            if !col.cells.iter().any(|(r, _)| *r == row) {
                col.cells.push((row, Cell::Fail(format!("setup: {short}"))));
            }
        }
    }
    col
}

fn matrix_for(kind: Kind, col: &mut Column) -> Result<()> {
    let role = match kind {
        Kind::Bird => "bird",
        Kind::Frr => "frr",
        Kind::GoBgp => "gobgp",
        Kind::ExaBgp => "exabgp",
    };
    let topo = Topology::pair(&format!("rd-{role}"), role)?;
    let l = topo.link(0)?;
    let (rd4, p4): (IpAddr, IpAddr) = (l.a_v4.into(), l.b_v4.into());
    let (rd6, p6): (IpAddr, IpAddr) = (l.a_v6.into(), l.b_v6.into());
    let asn = peer_as(kind);
    let c16 = asn as u16;
    let their_v6 = v6_prefix(kind);

    let ribd = Ribd::start(
        topo.ns_name(&format!("rd-{role}"))?,
        &RibdConfig::new(LOCAL_AS, "10.255.0.1".parse()?)
            .listen(rd4)
            .listen(rd6)
            .peer(RibdPeer::new("v4", p4, asn).add_path("receive"))
            .peer(RibdPeer::new("v6", p6, asn).families(&["ipv6-unicast"]))
            .static_route(
                RibdStatic::blackhole(OUR_V4)
                    .community("65000:100")
                    .large_community("65000:1:2"),
            )
            .static_route(
                RibdStatic::blackhole(OUR_V6)
                    .community("65000:100")
                    .large_community("65000:1:2"),
            ),
    )?;

    let mut v6_route = Route::new(their_v6)
        .community(c16, 6)
        .large_community(asn, 6, 6);
    if kind == Kind::GoBgp {
        v6_route = v6_route.next_hop(p6);
    }
    let cfg = PeerConfig::new(asn, "10.255.0.2".parse()?)
        .neighbor(
            Neighbor::new(rd4, LOCAL_AS)
                .local_address(p4)
                .hold_time(9)
                .graceful_restart(GR_TIME)
                .add_path(true, false),
        )
        .neighbor(
            Neighbor::new(rd6, LOCAL_AS)
                .local_address(p6)
                .hold_time(9)
                .graceful_restart(GR_TIME)
                .families(&[Family::Ipv6Unicast]),
        )
        .route(
            Route::parse(THEIR_V4)
                .community(c16, 1)
                .large_community(asn, 1, 2),
        )
        .route(v6_route);
    let peer = match kind {
        Kind::Bird => Peer::Bird(Bird::start(role_ns(&topo, role)?, cfg.clone())?),
        Kind::Frr => Peer::Frr(Frr::start(role_ns(&topo, role)?, cfg.clone())?),
        Kind::GoBgp => Peer::GoBgp(GoBgp::start(role_ns(&topo, role)?, cfg.clone())?),
        Kind::ExaBgp => Peer::ExaBgp(ExaBgp::start(role_ns(&topo, role)?, cfg.clone())?),
    };
    let p = peer.dyn_ref();
    let _report = PanicReport::new(&[p]);

    // Sessions.
    col.record(
        Row::SessionV4,
        ribd.wait_established("v4", T)
            .and_then(|_| p.wait_established(rd4, T))
            .map(|_| String::new()),
    );
    col.record(
        Row::SessionV6,
        ribd.wait_established("v6", T)
            .and_then(|_| p.wait_established(rd6, T))
            .map(|_| String::new()),
    );

    // Peer → ribd.
    let in4 = wait_path(&ribd, net(THEIR_V4), "v4");
    let in6 = wait_path(&ribd, their_v6, "v6");
    col.record(
        Row::V4In,
        in4.as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|x| check_in(x, asn, p4)),
    );
    col.record(
        Row::V6In,
        in6.as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|x| check_in(x, asn, p6)),
    );
    let comm_in = |x: &RibPath, c: &str| -> Result<()> {
        if !x.communities.iter().any(|y| y == c) {
            bail!(
                "{} has communities {:?}, expected {c}",
                x.peer,
                x.communities
            );
        }
        Ok(())
    };
    let large_in = |x: &RibPath, c: &str| -> Result<()> {
        if !x.large_communities.iter().any(|y| y == c) {
            bail!(
                "{} has large communities {:?}, expected {c}",
                x.peer,
                x.large_communities
            );
        }
        Ok(())
    };
    col.record(
        Row::CommIn,
        (|| {
            comm_in(
                in4.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?,
                &format!("{asn}:1"),
            )?;
            comm_in(
                in6.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?,
                &format!("{asn}:6"),
            )?;
            Ok(String::new())
        })(),
    );
    col.record(
        Row::LargeIn,
        (|| {
            large_in(
                in4.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?,
                &format!("{asn}:1:2"),
            )?;
            large_in(
                in6.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?,
                &format!("{asn}:6:6"),
            )?;
            Ok(String::new())
        })(),
    );

    // ribd → peer.
    let out4 = wait_received(p, net(OUR_V4));
    let out6 = wait_received(p, net(OUR_V6));
    col.record(
        Row::V4Out,
        out4.as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|r| check_out(r, rd4)),
    );
    col.record(
        Row::V6Out,
        out6.as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|r| check_out(r, rd6)),
    );
    col.record(
        Row::CommOut,
        (|| {
            for r in [&out4, &out6] {
                let r = r.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                if !r.communities.contains(&(65000, 100)) {
                    bail!("{:?} communities {:?}", r.prefix, r.communities);
                }
            }
            Ok(String::new())
        })(),
    );
    col.record(
        Row::LargeOut,
        (|| {
            for r in [&out4, &out6] {
                let r = r.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                if !r.large_communities.contains(&(65000, 1, 2)) {
                    bail!("{:?} large communities {:?}", r.prefix, r.large_communities);
                }
            }
            Ok(String::new())
        })(),
    );

    // ADD-PATH: two paths of one prefix over the one IPv4 session.
    col.record(
        Row::AddPath,
        (|| {
            originate_two_paths(&peer, &cfg, rd4)?;
            let paths = ribd.wait(T, "two ADD-PATH paths for 198.51.100.0/24", |r| {
                let ps = paths_of(r, net(ADDPATH_PREFIX), "v4")?;
                Ok((ps.len() >= 2).then_some(ps))
            })?;
            let mut ids: Vec<u32> = paths.iter().map(|x| x.path_id).collect();
            ids.sort();
            ids.dedup();
            if ids.len() < 2 {
                bail!("path ids not distinct: {ids:?}");
            }
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            Ok(format!("path ids {}", ids.join(", ")))
        })(),
    );

    // Graceful restart: the peer is killed (no NOTIFICATION) and started again.
    let kept = |r: &Ribd| -> Result<Option<String>> {
        let a = paths_of(r, net(THEIR_V4), "v4")?;
        let b = paths_of(r, their_v6, "v6")?;
        Ok(match (a.first(), b.first()) {
            (Some(a), Some(b)) => Some(
                if a.stale && b.stale {
                    "marked stale"
                } else {
                    "kept but not marked stale"
                }
                .to_string(),
            ),
            _ => None,
        })
    };
    col.record(
        Row::GrKept,
        (|| {
            p.kill()?;
            ribd.wait(T, "peer v4 down after the kill", |r| {
                Ok((r.peer_state("v4")? != "Established").then_some(()))
            })?;
            // Give ribd a moment past the session loss; the routes must still be there.
            std::thread::sleep(Duration::from_millis(500));
            match kept(&ribd)? {
                Some(n) => Ok(format!("{n}; {}", helper_view(&ribd)?)),
                None => bail!("routes of {THEIR_V4} / {their_v6} gone while the peer restarts"),
            }
        })(),
    );
    col.record(
        Row::GrBack,
        (|| {
            p.restart()?;
            ribd.wait_established("v4", T)?;
            ribd.wait_established("v6", T)?;
            let mut last = String::new();
            ribd.wait(T, "routes back and no longer stale", |r| {
                let a = paths_of(r, net(THEIR_V4), "v4")?;
                let b = paths_of(r, their_v6, "v6")?;
                last = format!("{THEIR_V4}: {a:?}; {their_v6}: {b:?}");
                let fresh = |x: &[RibPath]| x.iter().any(|p| !p.stale);
                Ok((fresh(&a) && fresh(&b)).then_some(()))
            })
            .with_context(|| format!("last seen in ribd: {last}"))?;
            Ok(String::new())
        })(),
    );
    col.record(
        Row::GrNoStale,
        (|| {
            let mut last = Vec::new();
            ribd.wait(
                Duration::from_secs(10),
                "no stale path left after End-of-RIB",
                |r| {
                    last = stale_paths(r)?;
                    Ok(last.is_empty().then_some(()))
                },
            )
            .with_context(|| format!("stale paths still in ribd: {}", last.join("; ")))?;
            Ok(String::new())
        })(),
    );
    col.record(
        Row::GrExpired,
        (|| {
            p.kill()?;
            let t0 = Instant::now();
            let limit = Duration::from_secs(u64::from(GR_TIME) + 15);
            ribd.wait(limit, "routes removed after the restart time", |r| {
                let a = paths_of(r, net(THEIR_V4), "v4")?;
                let b = paths_of(r, their_v6, "v6")?;
                Ok((a.is_empty() && b.is_empty()).then_some(()))
            })?;
            Ok(format!(
                "after {} s (restart time {GR_TIME} s)",
                t0.elapsed().as_secs()
            ))
        })(),
    );
    if !ribd.running() {
        bail!("ribd died during the run\n{}", ribd.diagnostics());
    }
    Ok(())
}

fn role_ns<'a>(topo: &'a Topology, role: &str) -> Result<&'a str> {
    topo.ns_name(role)
}

fn versions() -> String {
    let first = |prog: &str, args: &[&str]| -> String {
        std::process::Command::new(prog)
            .args(args)
            .output()
            .map(|o| {
                let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
                t.push_str(&String::from_utf8_lossy(&o.stderr));
                t.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("?")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|e| format!("? ({e})"))
    };
    format!(
        "BIRD: `{}`; FRR: `{}`; GoBGP: `{}`; ExaBGP: `{}`",
        first("bird", &["--version"]),
        first("/usr/lib/frr/bgpd", &["--version"]),
        first("gobgpd", &["--version"]),
        first("exabgp", &["--version"]),
    )
}

fn table(cols: &[Column]) -> String {
    let mut s = String::from("| Feature |");
    for c in cols {
        let _ = write!(s, " {} |", c.kind);
    }
    s.push_str("\n|---|");
    for _ in cols {
        s.push_str("---|");
    }
    s.push('\n');
    for row in Row::ALL {
        let _ = write!(s, "| {} |", row.title());
        for c in cols {
            let _ = write!(s, " {} |", c.get(row).text().replace('|', "/"));
        }
        s.push('\n');
    }
    s
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn interop_matrix() -> Result<()> {
    assert!(
        is_root(),
        "the interop matrix needs root (network namespaces)"
    );
    // Build (or find) ribd once before the threads start.
    testbed::ribd::ribd_bin()?;
    // INTEROP_ONLY=FRR (or a comma-separated list) runs only those columns, for debugging.
    let only = std::env::var("INTEROP_ONLY").unwrap_or_default();
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| {
            only.is_empty()
                || only
                    .split(',')
                    .any(|o| o.trim().eq_ignore_ascii_case(&k.to_string()))
        })
        .collect();
    let t0 = Instant::now();
    let cols: Vec<Column> = std::thread::scope(|s| {
        let hs: Vec<_> = kinds
            .iter()
            .map(|&k| s.spawn(move || run_column(k)))
            .collect();
        hs.into_iter()
            .zip(kinds.iter().copied())
            .map(|(h, k)| {
                h.join().unwrap_or_else(|_| {
                    let mut c = Column::new(k);
                    c.errors.push(format!("{k}: thread panicked"));
                    c
                })
            })
            .collect()
    });
    let took = t0.elapsed();
    let matrix = table(&cols);
    println!("\nInterop matrix: ribd against real peers ({took:.0?})\n\n{matrix}");
    let errors: Vec<&String> = cols.iter().flat_map(|c| &c.errors).collect();
    for e in &errors {
        println!("---- {e}");
    }

    if std::env::var_os("INTEROP_WRITE").is_some_and(|v| v != "0") {
        assert!(
            only.is_empty(),
            "INTEROP_WRITE needs the whole matrix (unset INTEROP_ONLY)"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/INTEROP.md");
        let doc = format!(
            "# Interop matrix\n\n\
             Generated by `INTEROP_WRITE=1 cargo test -p testbed --test interop_ribd -- --nocapture` \
             (root): the real `ribd` binary in a network namespace, one namespace pair per \
             implementation, all four in parallel. Do not edit by hand.\n\n\
             Setup per implementation: ribd AS {LOCAL_AS} with peer `v4` (IPv4 transport, IPv4 unicast, \
             ADD-PATH receive) and peer `v6` (IPv6 transport, IPv6 unicast over MP-BGP), both with \
             `import`/`export` policy `ALL` (accept); static blackhole routes {OUR_V4} and {OUR_V6} with \
             community 65000:100 and large community 65000:1:2. The peer (AS 646xx) announces \
             {THEIR_V4} and an IPv6 /48 with a community and a large community, and two paths of \
             {ADDPATH_PREFIX} over ADD-PATH; it advertises graceful restart with a restart time of \
             {GR_TIME} s and is killed (SIGKILL, no NOTIFICATION) and started again, then killed for good.\n\n\
             Versions: {}.\n\n{matrix}\n\
             Cells: pass (with a note where useful); **fail** (with the first line of the error); known failure (a ribd bug, described in the test's `KNOWN` list).\n",
            versions()
        );
        std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }

    let failed: Vec<String> = cols
        .iter()
        .flat_map(|c| {
            c.cells
                .iter()
                .filter(|(_, cell)| matches!(cell, Cell::Fail(_)))
                .map(move |(r, cell)| format!("{} / {}: {}", c.kind, r.title(), cell.text()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "unexpected interop failures:\n{}\n\n{matrix}",
        failed.join("\n")
    );
    Ok(())
}
