//! The demo topology, shared by `testbed demo` and the end-to-end suite (tests/e2e_*.rs):
//!
//! ```text
//!                                 ┌── u1 ── eth0 up1 (BIRD, AS 65001) d0 ── e1 ─┐
//!   src eth0 ── s0 dut (ribd, XDP)                                               dst (lo: 10.100.0-3.0/24,
//!                                 └── u2 ── eth0 up2 (FRR,  AS 65002) d0 ── e2 ─┘       fd00:100::/64)
//! ```
//! dut (AS 65000) runs ribd with the XDP forwarder on s0, u1, u2, kernel forwarding off (IPv4 and IPv6):
//! whatever crosses dut is forwarded by XDP or not at all. up1 and up2 announce dst's networks over an IPv4
//! and an IPv6 session each; up1 also announces networks of its own (10.201.0-1.0/24 on its loopback).
//! ECMP needs `as-path-relax` (the upstreams are different ASes). up1, up2 and dst forward with the kernel.
//! Frames XDP redirects into a veth need GRO (or an XDP program) on the receiving end: GRO is switched on
//! for src:eth0, up1:eth0 and up2:eth0.
//!
//! [`Fabric`] owns everything: namespaces, peers, ribd (a child process, its config, socket and log in a
//! temp dir) and the bpffs instance `/sys/fs/bpf/<instance>`; dropping it kills the processes, removes
//! the pins (which detaches XDP) and deletes the namespaces, also when a test panics.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::netns::{Netns, addr, veth};
use crate::peers::{self, BgpPeer, Bird, Daemon, Frr, Neighbor, Origin, PeerConfig, Route};

/// dst's networks, announced by both upstreams.
pub const DST_V4: [&str; 4] = [
    "10.100.0.0/24",
    "10.100.1.0/24",
    "10.100.2.0/24",
    "10.100.3.0/24",
];
pub const DST_V6: &str = "fd00:100::/64";
/// Networks only up1 announces (on up1's loopback).
pub const UP1_V4: [&str; 2] = ["10.201.0.0/24", "10.201.1.0/24"];

pub const UP1_V4_ADDR: &str = "10.0.11.2";
pub const UP2_V4_ADDR: &str = "10.0.12.2";
pub const UP1_V6_ADDR: &str = "fd00:11::2";
pub const UP2_V6_ADDR: &str = "fd00:12::2";

/// How to start ribd: a program and the arguments before `--config FILE`.
#[derive(Clone, Debug)]
pub struct RibdCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl RibdCommand {
    /// The `ribd` binary next to the running executable (`target/<profile>/`), falling back to `ribd`
    /// in PATH.
    pub fn sibling() -> RibdCommand {
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("ribd")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("ribd"));
        RibdCommand {
            program,
            args: Vec::new(),
        }
    }
}

/// The running ribd: a child process inside dut.
pub struct Ribd {
    cmd: RibdCommand,
    ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    daemon: Option<Daemon>,
}

impl Ribd {
    /// Writes `config` to `dir/ribd.toml` and starts ribd with it in namespace `ns` (socket and log in
    /// `dir` too; the config must name `dir/ribd.sock` as its API socket): for topologies other than
    /// the fabric's.
    pub fn start(cmd: RibdCommand, ns: &str, dir: &Path, config: &str) -> Result<Ribd> {
        let path = dir.join("ribd.toml");
        std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        let mut r = Ribd {
            cmd,
            ns: ns.to_string(),
            config: path,
            socket: dir.join("ribd.sock"),
            log: dir.join("ribd.log"),
            daemon: None,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut args: Vec<&str> = self.cmd.args.iter().map(String::as_str).collect();
        let conf = self.config.display().to_string();
        args.extend(["--config", &conf]);
        let _ = std::fs::remove_file(&self.socket);
        let program = self.cmd.program.display().to_string();
        self.daemon = Some(Daemon::spawn(
            "ribd",
            &self.ns,
            &program,
            &args,
            &[("RIBD_LOG", "info")],
            &self.log,
        )?);
        peers::wait_until(Duration::from_secs(20), || {
            if let Some(d) = self.daemon.as_mut()
                && let Some(st) = d.exited()
            {
                bail!("ribd exited at start ({st})");
            }
            Ok(self.socket.exists().then_some(()))
        })
        .with_context(|| format!("ribd did not open its API socket\n{}", self.diagnostics()))
    }

    pub fn pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// SIGKILL: no NOTIFICATION, no clean-up; the pinned dataplane stays.
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
    }

    /// Starts ribd again with the same configuration.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn()
    }

    pub fn client(&self) -> ribctl::client::Client {
        ribctl::client::Client::new(
            ribctl::client::Target::Unix(self.socket.clone()),
            Duration::from_secs(10),
        )
    }

    /// GET an API path into its model type.
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.client()
            .get(path)
            .map_err(|e| anyhow::anyhow!("ribd API {path}: {e}"))
    }

    pub fn peers(&self) -> Result<Vec<ribd::api::Peer>> {
        self.get("/v1/peers")
    }

    pub fn stats(&self) -> Result<ribd::api::DataplaneStats> {
        self.get("/v1/dataplane/stats")
    }

    /// Packets counted under `reason` (forwarded, pass_no_route, ...).
    pub fn reason(&self, reason: &str) -> Result<u64> {
        Ok(self
            .stats()?
            .reasons
            .iter()
            .find(|r| r.reason == reason)
            .map(|r| r.packets)
            .unwrap_or(0))
    }

    /// The FIB entry for `prefix`, if the FIB has one.
    pub fn fib_route(&self, prefix: &str) -> Result<Option<ribd::api::FibRoute>> {
        let page: ribd::api::FibPage = self.get(&ribctl::client::with_query(
            "/v1/fib",
            &[("prefix", Some(prefix.to_string()))],
        ))?;
        Ok(page.routes.into_iter().find(|r| r.prefix == prefix))
    }

    /// Process state, files and the tail of the log.
    pub fn diagnostics(&mut self) -> String {
        let state = match self.daemon.as_mut() {
            Some(d) => d.describe(),
            None => "  ribd: not running".into(),
        };
        format!(
            "== ribd in namespace {} ==\n{state}\n  config {}\n  socket {}\n{}",
            self.ns,
            self.config.display(),
            self.socket.display(),
            peers::tail(&self.log, 40)
        )
    }
}

/// The whole demo topology, running.
pub struct Fabric {
    // Field order is drop order: processes first, then the pins, then the namespaces.
    pub ribd: Ribd,
    pub up1: Bird,
    pub up2: Frr,
    pins: PinDir,
    pub dir: tempfile::TempDir,
    pub src: Netns,
    pub dut: Netns,
    pub n_up1: Netns,
    pub n_up2: Netns,
    pub dst: Netns,
}

/// `/sys/fs/bpf/<instance>`, removed on drop (removing the link pins detaches XDP).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        crate::netns::remove_pin_dir(&self.0);
    }
}

fn ip_of(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// dst's address inside each of its networks (on its loopback).
pub fn dst_host(net: usize) -> IpAddr {
    ip_of(&format!("10.100.{net}.1"))
}
pub fn dst_host6() -> IpAddr {
    ip_of("fd00:100::1")
}

impl Fabric {
    /// Builds the topology, starts BIRD on up1, FRR on up2 and ribd on dut, and waits until all four
    /// sessions are Established and ribd's FIB holds the ECMP routes.
    pub fn start(tag: &str, ribd_cmd: RibdCommand) -> Result<Fabric> {
        fib_ebpf::bpffs::ensure_bpffs().context("bpffs")?;
        let src = Netns::new(&format!("{tag}-src"))?;
        let dut = Netns::new(&format!("{tag}-dut"))?;
        let n_up1 = Netns::new(&format!("{tag}-up1"))?;
        let n_up2 = Netns::new(&format!("{tag}-up2"))?;
        let dst = Netns::new(&format!("{tag}-dst"))?;
        veth(&src, "eth0", &dut, "s0")?;
        veth(&dut, "u1", &n_up1, "eth0")?;
        veth(&dut, "u2", &n_up2, "eth0")?;
        veth(&n_up1, "d0", &dst, "e1")?;
        veth(&n_up2, "d0", &dst, "e2")?;
        for (ns, ifc, a4, a6) in [
            (&src, "eth0", "10.0.1.2/24", "fd00:1::2/64"),
            (&dut, "s0", "10.0.1.1/24", "fd00:1::1/64"),
            (&dut, "u1", "10.0.11.1/24", "fd00:11::1/64"),
            (&n_up1, "eth0", "10.0.11.2/24", "fd00:11::2/64"),
            (&dut, "u2", "10.0.12.1/24", "fd00:12::1/64"),
            (&n_up2, "eth0", "10.0.12.2/24", "fd00:12::2/64"),
            (&n_up1, "d0", "10.0.21.1/24", "fd00:21::1/64"),
            (&dst, "e1", "10.0.21.2/24", "fd00:21::2/64"),
            (&n_up2, "d0", "10.0.22.1/24", "fd00:22::1/64"),
            (&dst, "e2", "10.0.22.2/24", "fd00:22::2/64"),
        ] {
            addr(ns, ifc, a4)?;
            addr(ns, ifc, a6)?;
        }
        for (i, _) in DST_V4.iter().enumerate() {
            addr(&dst, "lo", &format!("10.100.{i}.1/24"))?;
        }
        addr(&dst, "lo", "fd00:100::1/64")?;
        for (i, _) in UP1_V4.iter().enumerate() {
            addr(&n_up1, "lo", &format!("10.201.{i}.1/24"))?;
        }
        // src sends everything to dut; dst returns over both upstreams.
        src.ip(&["route", "add", "default", "via", "10.0.1.1"])?;
        src.ip(&["-6", "route", "add", "default", "via", "fd00:1::1"])?;
        dst.ip(&[
            "route",
            "add",
            "default",
            "nexthop",
            "via",
            "10.0.21.1",
            "nexthop",
            "via",
            "10.0.22.1",
        ])?;
        dst.ip(&["-6", "route", "add", "default", "via", "fd00:21::1"])?;
        for (up, via4, via6, back4, back6) in [
            (&n_up1, "10.0.21.2", "fd00:21::2", "10.0.11.1", "fd00:11::1"),
            (&n_up2, "10.0.22.2", "fd00:22::2", "10.0.12.1", "fd00:12::1"),
        ] {
            up.ip(&["route", "add", "10.100.0.0/16", "via", via4])?;
            up.ip(&["-6", "route", "add", DST_V6, "via", via6])?;
            up.ip(&["route", "add", "10.0.1.0/24", "via", back4])?;
            up.ip(&["-6", "route", "add", "fd00:1::/64", "via", back6])?;
            up.sysctl("net.ipv4.ip_forward", "1")?;
            // Keep IPv6 addresses across a link down/up (the failover test downs up1's link).
            up.sysctl("net.ipv6.conf.all.keep_addr_on_down", "1")?;
            up.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }
        dst.sysctl("net.ipv4.ip_forward", "1")?;
        // dut: the kernel must not forward; only XDP does.
        dut.sysctl("net.ipv4.ip_forward", "0")?;
        dut.sysctl("net.ipv6.conf.all.forwarding", "0")?;
        for (ns, ifc) in [(&src, "eth0"), (&n_up1, "eth0"), (&n_up2, "eth0")] {
            ns.exec("ethtool", &["-K", ifc, "gro", "on"])
                .with_context(|| format!("enabling GRO on {}:{ifc}", ns.name()))?;
        }
        // A veth hands locally generated packets over with the transport checksum still to be filled in
        // (CHECKSUM_PARTIAL). Native XDP on dut sees the bare frame without that state, so nobody would
        // ever compute it and dst drops the datagram (UdpInCsumErrors). On a wire the sender's NIC has
        // computed it: do the same by switching tx checksum offload off on the hosts around dut.
        for (ns, ifc) in [
            (&src, "eth0"),
            (&n_up1, "eth0"),
            (&n_up1, "d0"),
            (&n_up2, "eth0"),
            (&n_up2, "d0"),
            (&dst, "e1"),
            (&dst, "e2"),
        ] {
            ns.exec("ethtool", &["-K", ifc, "tx", "off"])
                .with_context(|| format!("tx checksum offload off on {}:{ifc}", ns.name()))?;
        }

        let dst_routes = || {
            let mut v: Vec<Route> = DST_V4
                .iter()
                .map(|p| Route::parse(p).origin(Origin::Igp))
                .collect();
            v.push(Route::parse(DST_V6).origin(Origin::Igp));
            v
        };
        let mut c1 = PeerConfig::new(65001, "10.0.11.2".parse()?)
            .neighbor(Neighbor::new(ip_of("10.0.11.1"), 65000).hold_time(9))
            .neighbor(Neighbor::new(ip_of("fd00:11::1"), 65000).hold_time(9));
        for r in dst_routes() {
            c1 = c1.route(r);
        }
        for p in UP1_V4 {
            c1 = c1.route(Route::parse(p).origin(Origin::Igp));
        }
        let mut c2 = PeerConfig::new(65002, "10.0.12.2".parse()?)
            .neighbor(Neighbor::new(ip_of("10.0.12.1"), 65000).hold_time(9))
            .neighbor(Neighbor::new(ip_of("fd00:12::1"), 65000).hold_time(9));
        for r in dst_routes() {
            c2 = c2.route(r);
        }
        let up1 = Bird::start(n_up1.name(), c1)?;
        let up2 = Frr::start(n_up2.name(), c2)?;

        let dir = tempfile::Builder::new()
            .prefix(&format!("tb-ribd-{}-", dut.name()))
            .disable_cleanup(std::env::var_os("TESTBED_KEEP").is_some())
            .tempdir()?;
        // Unique per namespace set: parallel tests and a demo never share pinned maps.
        let instance = dut.name().to_string();
        let pins = PinDir(PathBuf::from("/sys/fs/bpf").join(&instance));
        crate::netns::register_pin_dir(&pins.0);
        let config = dir.path().join("ribd.toml");
        let socket = dir.path().join("ribd.sock");
        std::fs::write(&config, ribd_config(&instance, &socket))?;
        let mut ribd = Ribd {
            cmd: ribd_cmd,
            ns: dut.name().to_string(),
            config,
            socket,
            log: dir.path().join("ribd.log"),
            daemon: None,
        };
        ribd.spawn()?;
        let f = Fabric {
            ribd,
            up1,
            up2,
            pins,
            dir,
            src,
            dut,
            n_up1,
            n_up2,
            dst,
        };
        f.wait_converged(Duration::from_secs(40))?;
        Ok(f)
    }

    /// Waits for four Established sessions and ECMP over both upstreams for dst's networks.
    pub fn wait_converged(&self, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        peers::wait_until(timeout, || {
            let peers = self.ribd.peers()?;
            let up = peers.iter().filter(|p| p.state == "Established").count();
            let mut ecmp = 0;
            for p in DST_V4.iter().chain([&DST_V6]) {
                if let Some(r) = self.ribd.fib_route(p)? {
                    ecmp += (r.nexthops.iter().filter(|n| n.resolved).count() == 2) as usize;
                }
            }
            last =
                format!("{up}/4 sessions Established, {ecmp}/5 prefixes with 2 resolved next-hops");
            Ok((up == 4 && ecmp == 5).then_some(()))
        })
        .with_context(|| {
            format!(
                "not converged after {timeout:?}: {last}\n{}",
                self.diagnostics_ref()
            )
        })
    }

    /// Everything to look at when a test fails: namespaces, ribd's log, both peers' logs.
    pub fn diagnostics(&mut self) -> String {
        format!(
            "namespaces: src {} dut {} up1 {} up2 {} dst {}\nbpffs instance {}\n{}\n{}\n{}",
            self.src.name(),
            self.dut.name(),
            self.n_up1.name(),
            self.n_up2.name(),
            self.dst.name(),
            self.pins.0.display(),
            self.ribd.diagnostics(),
            self.up1.diagnostics(),
            self.up2.diagnostics()
        )
    }

    fn diagnostics_ref(&self) -> String {
        format!(
            "namespaces: src {} dut {} up1 {} up2 {} dst {}\nribd log {}\n{}\n{}\n{}",
            self.src.name(),
            self.dut.name(),
            self.n_up1.name(),
            self.n_up2.name(),
            self.dst.name(),
            self.ribd.log.display(),
            peers::tail(&self.ribd.log, 40),
            self.up1.diagnostics(),
            self.up2.diagnostics()
        )
    }

    /// Packets received on an upstream's link from dut (`ip -s link`), i.e. what XDP sent its way.
    pub fn upstream_rx(&self, which: u8) -> Result<u64> {
        let ns = if which == 1 { &self.n_up1 } else { &self.n_up2 };
        link_rx_packets(ns, "eth0")
    }

    /// Per-next-hop XDP tx counters from ribd, summed per upstream (up1, up2). fib-sync interns
    /// next-hops by their L2 rewrite (interface, MAC), so an upstream's IPv4 and IPv6 next-hop share one
    /// counter.
    pub fn nexthop_packets(&self) -> Result<(u64, u64)> {
        let s = self.ribd.stats()?;
        let mut up = (0, 0);
        // `interface` reads "u1 (10.0.11.2)" / "u2 (fd00:12::2)".
        for n in &s.nexthops {
            if n.interface.starts_with("u1 ") {
                up.0 += n.packets;
            } else if n.interface.starts_with("u2 ") {
                up.1 += n.packets;
            }
        }
        Ok(up)
    }

    /// Where to send traffic for dst's network `net` (index into [`DST_V4`]).
    pub fn dst_sockaddr(net: usize, port: u16) -> SocketAddr {
        SocketAddr::new(dst_host(net), port)
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pins.0
    }
}

/// RX packets of `ifc` inside `ns`.
pub fn link_rx_packets(ns: &Netns, ifc: &str) -> Result<u64> {
    let out = ns.ip(&["-j", "-s", "link", "show", "dev", ifc])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .with_context(|| format!("no rx counter for {ifc} in {}", ns.name()))
}

/// ribd's configuration for the fabric.
pub fn ribd_config(instance: &str, socket: &Path) -> String {
    format!(
        r#"# generated by testbed::fabric
router-id = "10.0.1.1"
local-as = 65000
listen = ["0.0.0.0:179", "[::]:179"]
log-level = "info"

[api]
socket = "{socket}"

[dataplane]
instance = "{instance}"
interfaces = ["s0", "u1", "u2"]
# a restarted ribd reconciles the pinned maps after End-of-RIB from every peer, or after this many seconds
initial-sync-timeout = 10

[rib.ipv4]
max-paths-ebgp = 8
as-path-relax = true       # up1 and up2 are different ASes: ECMP over both

[rib.ipv6]
max-paths-ebgp = 8
as-path-relax = true

[peer-group.upstream]
import = ["ALL"]           # eBGP without an import policy imports nothing (RFC 8212)
hold-time = 9

[peer.up1]
address = "{UP1_V4_ADDR}"
remote-as = 65001
group = "upstream"
description = "up1, BIRD 2"

[peer.up1-v6]
address = "{UP1_V6_ADDR}"
remote-as = 65001
group = "upstream"
families = ["ipv6-unicast"]
description = "up1, BIRD 2, IPv6"

[peer.up2]
address = "{UP2_V4_ADDR}"
remote-as = 65002
group = "upstream"
description = "up2, FRR"

[peer.up2-v6]
address = "{UP2_V6_ADDR}"
remote-as = 65002
group = "upstream"
families = ["ipv6-unicast"]
description = "up2, FRR, IPv6"

# the way back to src (connected on s0)
[[static]]
prefix = "10.0.1.0/24"
next-hop = "10.0.1.2"

[[static]]
prefix = "fd00:1::/64"
next-hop = "fd00:1::2"

[[policy.ALL.term]]
name = "all"
action = "accept"
"#,
        socket = socket.display()
    )
}
