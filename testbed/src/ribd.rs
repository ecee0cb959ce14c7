//! A driver for the real `ribd` daemon: started inside a namespace (nsenter, so bpffs stays visible)
//! with a generated configuration in a temporary directory, queried over its control API (JSON over
//! the Unix socket), stopped and killed on drop.
//!
//! ```text
//!   RibdConfig { AS, router id, listen, peers, statics } ──Ribd::start(ns)──► DIR/ribd.toml, DIR/ribd.log
//!   get("/v1/...") ──HTTP/1.0 over UnixStream DIR/ribd.sock──► JSON (ribd::api types)
//!   wait_* poll with a bounded timeout; on expiry the error carries the log path and its tail
//!   Drop ──► SIGKILL, temp dir removed (kept with TESTBED_KEEP)
//! ```

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ipnet::IpNet;
use ribd::api::{Peer, RibPage, RibRoute};

use crate::peers::{Daemon, tail, wait_until};

/// One neighbour in ribd's configuration.
#[derive(Clone, Debug)]
pub struct RibdPeer {
    /// The `[peer.NAME]` key, also the `peer` field of RIB paths.
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    /// `ipv4-unicast`, `ipv6-unicast`; empty: ribd's default (the family of the address).
    pub families: Vec<&'static str>,
    /// `add-path = "receive" | "send" | "both"`.
    pub add_path: Option<&'static str>,
    pub hold_time: u16,
}

impl RibdPeer {
    pub fn new(name: &str, address: IpAddr, remote_as: u32) -> RibdPeer {
        RibdPeer {
            name: name.to_string(),
            address,
            remote_as,
            families: Vec::new(),
            add_path: None,
            hold_time: 9,
        }
    }
    pub fn families(mut self, f: &[&'static str]) -> Self {
        self.families = f.to_vec();
        self
    }
    pub fn add_path(mut self, mode: &'static str) -> Self {
        self.add_path = Some(mode);
        self
    }
}

/// A `[[static]]` route (blackhole unless a next hop is given).
#[derive(Clone, Debug)]
pub struct RibdStatic {
    pub prefix: IpNet,
    pub next_hop: Option<IpAddr>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
}

impl RibdStatic {
    pub fn blackhole(prefix: &str) -> RibdStatic {
        RibdStatic {
            prefix: prefix
                .parse()
                .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}")),
            next_hop: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }
    pub fn community(mut self, c: &str) -> Self {
        self.communities.push(c.to_string());
        self
    }
    pub fn large_community(mut self, c: &str) -> Self {
        self.large_communities.push(c.to_string());
        self
    }
}

/// What the generated `ribd.toml` contains. Every peer imports and exports everything (policy `ALL`),
/// the dataplane is off: this drives BGP only.
#[derive(Clone, Debug)]
pub struct RibdConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    pub listen: Vec<SocketAddr>,
    pub peers: Vec<RibdPeer>,
    pub statics: Vec<RibdStatic>,
}

impl RibdConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> RibdConfig {
        RibdConfig {
            local_as,
            router_id,
            listen: Vec::new(),
            peers: Vec::new(),
            statics: Vec::new(),
        }
    }
    pub fn listen(mut self, a: IpAddr) -> Self {
        self.listen.push(SocketAddr::new(a, 179));
        self
    }
    pub fn peer(mut self, p: RibdPeer) -> Self {
        self.peers.push(p);
        self
    }
    pub fn static_route(mut self, s: RibdStatic) -> Self {
        self.statics.push(s);
        self
    }

    /// The TOML text, with the API socket at `socket`.
    pub fn to_toml(&self, socket: &Path) -> String {
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let listen: Vec<String> = self.listen.iter().map(|a| a.to_string()).collect();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "router-id = \"{}\"\nlocal-as = {}\nlisten = [{}]\nlog-level = \"debug\"\n",
            self.router_id,
            self.local_as,
            q(&listen)
        );
        let _ = writeln!(
            s,
            "[api]\nsocket = {:?}\n\n[dataplane]\nenabled = false\n",
            socket.display().to_string()
        );
        let _ = writeln!(
            s,
            "[[policy.ALL.term]]\nname = \"all\"\naction = \"accept\"\n"
        );
        for p in &self.peers {
            let _ = writeln!(
                s,
                "[peer.{}]\naddress = \"{}\"\nremote-as = {}\nhold-time = {}\nconnect-retry = 1\n\
                 import = [\"ALL\"]\nexport = [\"ALL\"]",
                p.name, p.address, p.remote_as, p.hold_time
            );
            if !p.families.is_empty() {
                let f: Vec<String> = p.families.iter().map(|f| f.to_string()).collect();
                let _ = writeln!(s, "families = [{}]", q(&f));
            }
            if let Some(ap) = p.add_path {
                let _ = writeln!(s, "add-path = \"{ap}\"");
            }
            s.push('\n');
        }
        for st in &self.statics {
            let _ = writeln!(s, "[[static]]\nprefix = \"{}\"", st.prefix);
            match st.next_hop {
                Some(nh) => {
                    let _ = writeln!(s, "next-hop = \"{nh}\"");
                }
                None => s.push_str("blackhole = true\n"),
            }
            let _ = writeln!(
                s,
                "communities = [{}]\nlarge-communities = [{}]\n",
                q(&st.communities),
                q(&st.large_communities)
            );
        }
        s
    }
}

/// The ribd daemon binary: `RIBD_BIN`, or built once per test process with `cargo build -p ribd`.
pub fn ribd_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_ribd().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_ribd() -> Result<PathBuf> {
    crate::bins::workspace_bin("ribd", "ribd")
}

/// A running ribd.
pub struct Ribd {
    ns: String,
    dir: tempfile::TempDir,
    sock: PathBuf,
    daemon: Mutex<Option<Daemon>>,
}

impl Ribd {
    /// Writes the configuration, starts ribd in namespace `ns` and waits for its API socket.
    pub fn start(ns: &str, cfg: &RibdConfig) -> Result<Ribd> {
        let bin = ribd_bin()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("tb-ribd-{ns}-"))
            .disable_cleanup(std::env::var_os("TESTBED_KEEP").is_some())
            .tempdir()
            .context("creating a temporary directory")?;
        let sock = dir.path().join("ribd.sock");
        let config = dir.path().join("ribd.toml");
        std::fs::write(&config, cfg.to_toml(&sock)).context("writing ribd.toml")?;
        let daemon = Daemon::spawn(
            "ribd",
            ns,
            &bin.display().to_string(),
            &["--config", &config.display().to_string()],
            &[("RUST_LOG", "ribd=debug,bgp=debug")],
            &dir.path().join("ribd.log"),
        )?;
        let r = Ribd {
            ns: ns.to_string(),
            dir,
            sock,
            daemon: Mutex::new(Some(daemon)),
        };
        wait_until(Duration::from_secs(30), || {
            if let Some(d) = r.lock().as_mut()
                && let Some(st) = d.exited()
            {
                bail!("ribd exited at start ({st})");
            }
            Ok(r.get::<Vec<Peer>>("/v1/peers").ok().map(|_| ()))
        })
        .with_context(|| format!("ribd's API did not answer\n{}", r.diagnostics()))?;
        Ok(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn netns(&self) -> &str {
        &self.ns
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ribd.log")
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// `GET path` on the API, the body parsed as JSON.
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (status, body) = http_get(&self.sock, path)?;
        if status != 200 {
            bail!(
                "GET {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "GET {path}: bad JSON: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )
        })
    }

    pub fn peers(&self) -> Result<Vec<Peer>> {
        self.get("/v1/peers")
    }

    pub fn peer(&self, name: &str) -> Result<Peer> {
        self.get(&format!("/v1/peers/{name}"))
    }

    /// Every route of `afi` (`ipv4` or `ipv6`), all pages.
    pub fn rib(&self, afi: &str) -> Result<Vec<RibRoute>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/rib/{afi}?limit=1000");
            if let Some(a) = &after {
                let _ = write!(path, "&after={}", a.replace('/', "%2F"));
            }
            let page: RibPage = self.get(&path)?;
            all.extend(page.routes);
            match page.next {
                Some(n) if !n.is_empty() => after = Some(n),
                _ => return Ok(all),
            }
        }
    }

    /// The RIB entry of `prefix`, if ribd has one.
    pub fn route(&self, prefix: IpNet) -> Result<Option<RibRoute>> {
        let afi = if prefix.addr().is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        Ok(self
            .rib(afi)?
            .into_iter()
            .find(|r| r.prefix.parse::<IpNet>().ok() == Some(prefix)))
    }

    /// Session state of peer `name` (`Established`, `Active`, ...).
    pub fn peer_state(&self, name: &str) -> Result<String> {
        Ok(self.peer(name)?.state)
    }

    /// Waits until `f` returns `Some`, failing with `what` and the diagnostics after `timeout`.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Ribd) -> Result<Option<T>>,
    ) -> Result<T> {
        wait_until(timeout, || f(self)).with_context(|| {
            format!(
                "ribd: {what}: not within {timeout:?}\n{}",
                self.diagnostics()
            )
        })
    }

    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        self.wait(timeout, &format!("peer {name} Established"), |r| {
            Ok((r.peer_state(name)? == "Established").then_some(()))
        })
    }

    /// Whether the ribd process is still running.
    pub fn running(&self) -> bool {
        self.lock().as_mut().is_some_and(|d| d.exited().is_none())
    }

    /// Namespace, process state, files and the tail of the log.
    pub fn diagnostics(&self) -> String {
        let mut s = format!("ribd in namespace {}:\n", self.ns);
        if let Some(d) = self.lock().as_mut() {
            s.push_str(&d.describe());
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "  config {}\n  socket {}\n  log {}",
            self.dir.path().join("ribd.toml").display(),
            self.sock.display(),
            self.log_path().display()
        );
        s.push_str(&tail(&self.log_path(), 30));
        s
    }

    /// Stops ribd (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&self) {
        let mut g = self.lock();
        if let Some(mut d) = g.take() {
            let _ = crate::peers::signal(d.pid(), libc::SIGTERM);
            let start = Instant::now();
            while d.exited().is_none() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            d.kill();
        }
    }
}

impl Drop for Ribd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        // Daemon's own Drop sends SIGKILL.
        self.lock().take();
    }
}

/// One `GET` over the Unix socket (HTTP/1.0, so the server closes after the response). Returns the
/// status code and the body.
pub fn http_get(sock: &Path, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut s =
        UnixStream::connect(sock).with_context(|| format!("connecting to {}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: ribd\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).context("reading the response")?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line: {head}"))?;
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .context("bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_for_ribd() {
        let cfg = RibdConfig::new(65000, "10.0.0.1".parse().unwrap())
            .listen("10.0.0.1".parse().unwrap())
            .listen("fd00::1".parse().unwrap())
            .peer(RibdPeer::new("v4", "10.0.0.2".parse().unwrap(), 64512).add_path("receive"))
            .peer(
                RibdPeer::new("v6", "fd00::2".parse().unwrap(), 64512).families(&["ipv6-unicast"]),
            )
            .static_route(
                RibdStatic::blackhole("192.0.2.0/24")
                    .community("65000:100")
                    .large_community("65000:1:2"),
            );
        let text = cfg.to_toml(Path::new("/tmp/x/ribd.sock"));
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(v["peer"]["v4"]["add-path"].as_str(), Some("receive"));
        assert_eq!(
            v["peer"]["v6"]["families"][0].as_str(),
            Some("ipv6-unicast")
        );
        assert_eq!(v["static"][0]["blackhole"].as_bool(), Some(true));
        assert_eq!(v["dataplane"]["enabled"].as_bool(), Some(false));
        assert_eq!(v["listen"][1].as_str(), Some("[fd00::1]:179"));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }
}
