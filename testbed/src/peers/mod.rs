//! Drivers for real BGP implementations (BIRD 2, FRR, GoBGP, ExaBGP), each run as its own processes
//! inside a network namespace with a generated configuration in a temporary directory.
//!
//! ```text
//!   PeerConfig { local AS, router id, neighbours, routes } ──start(ns)──► Bird | Frr | GoBgp | ExaBgp
//!        │                                                                   │ owns: temp dir (config, logs,
//!        │                                                                   │       control sockets) + Daemon(s)
//!   announce / withdraw ──► birdc configure | vtysh | gobgp CLI | ExaBGP API file
//!   received / session_state ◄── birdc show route all | vtysh … json | gobgp … -j | ExaBGP json stream
//!   pause / resume / kill / restart / shutdown_neighbor ──► signals, CLI (sends a NOTIFICATION)
//!   Drop ──► SIGKILL every process, remove the temp dir
//! ```
//!
//! Every driver implements [`BgpPeer`]; the `wait_*` helpers poll with a bounded timeout and, when it
//! expires, fail with [`BgpPeer::diagnostics`]: namespace, processes, file paths and the log tail.

pub mod bird;
pub mod exabgp;
pub mod flow;
pub mod frr;
pub mod gobgp;

use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;

pub use bird::Bird;
pub use exabgp::ExaBgp;
pub use flow::{FlowAct, FlowRoute, Fragment};
pub use frr::Frr;
pub use gobgp::GoBgp;

/// Address family (AFI/SAFI) of a session or route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
    /// IPv4 FlowSpec (RFC 8955, SAFI 133): rules are [`FlowRoute`]s, not prefixes.
    Ipv4Flowspec,
    /// IPv6 FlowSpec (RFC 8956, SAFI 133).
    Ipv6Flowspec,
}

impl Family {
    /// The unicast family of a prefix.
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }

    pub fn is_flowspec(self) -> bool {
        matches!(self, Family::Ipv4Flowspec | Family::Ipv6Flowspec)
    }

    pub fn is_ipv4(self) -> bool {
        matches!(self, Family::Ipv4Unicast | Family::Ipv4Flowspec)
    }
}

/// ADD-PATH (RFC 7911) directions to negotiate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddPath {
    pub send: bool,
    pub receive: bool,
}

/// ORIGIN attribute values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl Origin {
    fn word(self) -> &'static str {
        match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    }

    fn parse(s: &str) -> Option<Origin> {
        match s.to_ascii_lowercase().as_str() {
            "igp" | "i" | "0" => Some(Origin::Igp),
            "egp" | "e" | "1" => Some(Origin::Egp),
            "incomplete" | "?" | "2" => Some(Origin::Incomplete),
            _ => None,
        }
    }
}

/// One BGP neighbour of a peer under test.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// The neighbour's address.
    pub address: IpAddr,
    pub remote_as: u32,
    /// Our address for this session (required by ExaBGP and BIRD for multihop; optional otherwise).
    pub local_address: Option<IpAddr>,
    /// Wait for the neighbour to connect instead of connecting.
    pub passive: bool,
    /// eBGP multihop with this TTL.
    pub multihop: Option<u8>,
    /// GTSM (RFC 5082): accept only packets with TTL 255 (implies directly connected).
    pub ttl_security: bool,
    /// TCP MD5 signature (RFC 2385) password.
    pub password: Option<String>,
    /// Hold time in seconds; the keepalive interval is a third of it.
    pub hold_time: Option<u16>,
    /// Address families to negotiate.
    pub families: Vec<Family>,
    /// ADD-PATH, where the implementation supports it.
    pub add_path: Option<AddPath>,
    /// Graceful restart (RFC 4724), with this restart time in seconds.
    pub graceful_restart: Option<u16>,
    /// Advertise route refresh (RFC 2918). Most implementations always do; BIRD can turn it off.
    pub route_refresh: bool,
}

impl Neighbor {
    /// A neighbour with the given address and AS, active, negotiating the family of its address.
    pub fn new(address: IpAddr, remote_as: u32) -> Neighbor {
        let family = if address.is_ipv4() {
            Family::Ipv4Unicast
        } else {
            Family::Ipv6Unicast
        };
        Neighbor {
            address,
            remote_as,
            local_address: None,
            passive: false,
            multihop: None,
            ttl_security: false,
            password: None,
            hold_time: None,
            families: vec![family],
            add_path: None,
            graceful_restart: None,
            route_refresh: true,
        }
    }

    pub fn local_address(mut self, a: IpAddr) -> Self {
        self.local_address = Some(a);
        self
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }
    pub fn ttl_security(mut self) -> Self {
        self.ttl_security = true;
        self
    }
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_string());
        self
    }
    pub fn hold_time(mut self, secs: u16) -> Self {
        self.hold_time = Some(secs);
        self
    }
    pub fn families(mut self, f: &[Family]) -> Self {
        self.families = f.to_vec();
        self
    }
    pub fn add_path(mut self, send: bool, receive: bool) -> Self {
        self.add_path = Some(AddPath { send, receive });
        self
    }
    pub fn graceful_restart(mut self, restart_time: u16) -> Self {
        self.graceful_restart = Some(restart_time);
        self
    }
    pub fn has(&self, f: Family) -> bool {
        self.families.contains(&f)
    }
}

/// A route a peer originates, with the attributes it should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    /// Next hop to announce (GoBGP, ExaBGP; BIRD when it is in the subnet shared with the neighbour);
    /// `None` means the session's own address.
    pub next_hop: Option<IpAddr>,
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
    pub med: Option<u32>,
    /// LOCAL_PREF (only visible on iBGP sessions).
    pub local_pref: Option<u32>,
    /// AS numbers placed in front of the path before the local AS is prepended on export.
    pub prepend: Vec<u32>,
    pub origin: Option<Origin>,
}

impl Route {
    pub fn new(prefix: IpNet) -> Route {
        Route {
            prefix,
            next_hop: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            med: None,
            local_pref: None,
            prepend: Vec::new(),
            origin: None,
        }
    }

    /// Parses the prefix; panics on a malformed literal (for tests and fixed topologies).
    pub fn parse(prefix: &str) -> Route {
        Route::new(
            prefix
                .parse()
                .unwrap_or_else(|e| panic!("bad prefix {prefix}: {e}")),
        )
    }
    pub fn next_hop(mut self, nh: IpAddr) -> Self {
        self.next_hop = Some(nh);
        self
    }
    pub fn community(mut self, asn: u16, value: u16) -> Self {
        self.communities.push((asn, value));
        self
    }
    pub fn large_community(mut self, global: u32, d1: u32, d2: u32) -> Self {
        self.large_communities.push((global, d1, d2));
        self
    }
    pub fn med(mut self, med: u32) -> Self {
        self.med = Some(med);
        self
    }
    pub fn local_pref(mut self, lp: u32) -> Self {
        self.local_pref = Some(lp);
        self
    }
    pub fn prepend(mut self, asns: &[u32]) -> Self {
        self.prepend = asns.to_vec();
        self
    }
    pub fn origin(mut self, o: Origin) -> Self {
        self.origin = Some(o);
        self
    }
}

/// A route as a peer received it from a neighbour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceivedRoute {
    pub prefix: Option<IpNet>,
    /// The neighbour it came from, when the implementation says.
    pub from: Option<IpAddr>,
    pub next_hop: Option<IpAddr>,
    pub as_path: Vec<u32>,
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub origin: Option<Origin>,
    /// ADD-PATH path identifier, when one was received.
    pub path_id: Option<u32>,
}

/// BGP session state (RFC 4271 §8.2.2) as reported by the implementation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    /// Administratively down, or a state word the driver does not map.
    Other(String),
}

impl SessionState {
    /// Maps the usual spellings (BIRD, FRR, ExaBGP words; GoBGP's numbers as words).
    pub fn parse(s: &str) -> SessionState {
        match s.trim().to_ascii_lowercase().as_str() {
            "idle" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" => SessionState::Active,
            "opensent" | "open_sent" => SessionState::OpenSent,
            "openconfirm" | "open_confirm" => SessionState::OpenConfirm,
            "established" | "up" => SessionState::Established,
            other => SessionState::Other(other.to_string()),
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionState::Other(s) => write!(f, "{s}"),
            s => write!(f, "{s:?}"),
        }
    }
}

/// Which implementation a driver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bird,
    Frr,
    GoBgp,
    ExaBgp,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Bird => "BIRD",
            Kind::Frr => "FRR",
            Kind::GoBgp => "GoBGP",
            Kind::ExaBgp => "ExaBGP",
        })
    }
}

/// Configuration common to every driver.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<Neighbor>,
    /// Routes announced from the start.
    pub routes: Vec<Route>,
    /// FlowSpec rules announced from the start (and kept across [`BgpPeer::restart`]).
    pub flows: Vec<FlowRoute>,
}

impl PeerConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> PeerConfig {
        PeerConfig {
            local_as,
            router_id,
            neighbors: Vec::new(),
            routes: Vec::new(),
            flows: Vec::new(),
        }
    }
    pub fn neighbor(mut self, n: Neighbor) -> Self {
        self.neighbors.push(n);
        self
    }
    pub fn route(mut self, r: Route) -> Self {
        self.routes.push(r);
        self
    }
    pub fn flow(mut self, f: FlowRoute) -> Self {
        self.flows.push(f);
        self
    }
}

/// What every peer driver can do. Every method takes `&self` (drivers lock their mutable state), so
/// tests can hold several peers in a [`PanicReport`] and still drive them.
pub trait BgpPeer: Send + Sync {
    fn kind(&self) -> Kind;
    /// Name of the namespace the peer runs in.
    fn netns(&self) -> &str;
    /// Starts announcing `route` (replacing an earlier announcement of the same prefix).
    fn announce(&self, route: &Route) -> Result<()>;
    /// Stops announcing `prefix`.
    fn withdraw(&self, prefix: IpNet) -> Result<()>;
    /// Starts announcing a FlowSpec rule to every neighbour of its family (replacing an earlier one
    /// with the same match, so the action can change). FRR only receives FlowSpec: it refuses.
    fn announce_flow(&self, flow: &FlowRoute) -> Result<()> {
        let _ = flow;
        bail!("{} does not originate FlowSpec rules", self.kind())
    }
    /// Withdraws the FlowSpec rule with `flow`'s match (its action is ignored).
    fn withdraw_flow(&self, flow: &FlowRoute) -> Result<()> {
        let _ = flow;
        bail!("{} does not originate FlowSpec rules", self.kind())
    }
    /// FlowSpec rules received from neighbours in `family` (a FlowSpec family), with their actions.
    fn received_flows(&self, family: Family) -> Result<Vec<flow::ReceivedFlow>> {
        let _ = family;
        bail!(
            "the {} driver does not read back FlowSpec rules",
            self.kind()
        )
    }
    /// Routes received from neighbours (not the peer's own), in a unicast `family`.
    fn received(&self, family: Family) -> Result<Vec<ReceivedRoute>>;
    /// Number of paths received from neighbours in `family` (what [`BgpPeer::received`] would return),
    /// from the implementation's counters where it has them: cheap enough for full tables.
    fn received_count(&self, family: Family) -> Result<usize> {
        Ok(self.received(family)?.len())
    }
    /// State of the session with `neighbor`.
    fn session_state(&self, neighbor: IpAddr) -> Result<SessionState>;
    /// Administratively shuts the session down (the peer sends a NOTIFICATION Cease).
    fn shutdown_neighbor(&self, neighbor: IpAddr) -> Result<()>;
    /// Undoes [`BgpPeer::shutdown_neighbor`].
    fn enable_neighbor(&self, neighbor: IpAddr) -> Result<()>;
    /// Asks `neighbor` to send its routes again: a ROUTE-REFRESH (RFC 2918) for every family of the
    /// session (BIRD `reload in`, FRR `clear bgp … soft in`, ExaBGP `announce route-refresh`). GoBGP
    /// keeps its Adj-RIB-In and only re-applies import policy (`softresetin`): nothing is sent.
    fn refresh_in(&self, neighbor: IpAddr) -> Result<()>;
    /// The BGP processes (those that hold sessions), for signals.
    fn bgp_pids(&self) -> Vec<i32>;
    /// Kills the BGP processes with SIGKILL (no NOTIFICATION is sent).
    fn kill(&self) -> Result<()>;
    /// Kills (SIGKILL) and starts the BGP processes again with the current configuration, so a neighbour
    /// that negotiated graceful restart keeps the routes as stale.
    fn restart(&self) -> Result<()>;
    /// Where to look when something fails: namespace, processes, files, and the tail of the logs.
    fn diagnostics(&self) -> String;

    /// Freezes the BGP processes (SIGSTOP): sessions stop sending keepalives, sockets stay open.
    fn pause(&self) -> Result<()> {
        for pid in self.bgp_pids() {
            signal(pid, libc::SIGSTOP)?;
        }
        Ok(())
    }
    /// Undoes [`BgpPeer::pause`] (SIGCONT).
    fn resume(&self) -> Result<()> {
        for pid in self.bgp_pids() {
            signal(pid, libc::SIGCONT)?;
        }
        Ok(())
    }

    /// Waits until the session with `neighbor` is Established.
    fn wait_established(&self, neighbor: IpAddr, timeout: Duration) -> Result<()> {
        let mut last = SessionState::Idle;
        wait_until(timeout, || {
            last = self.session_state(neighbor)?;
            Ok((last == SessionState::Established).then_some(()))
        })
        .with_context(|| {
            format!(
                "{} session with {neighbor} not Established within {timeout:?} (last state {last})\n{}",
                self.kind(),
                self.diagnostics()
            )
        })
    }

    /// Waits until the session with `neighbor` is anything but Established.
    fn wait_not_established(&self, neighbor: IpAddr, timeout: Duration) -> Result<SessionState> {
        wait_until(timeout, || {
            let s = self.session_state(neighbor)?;
            Ok((s != SessionState::Established).then_some(s))
        })
        .with_context(|| {
            format!(
                "{} session with {neighbor} still Established after {timeout:?}\n{}",
                self.kind(),
                self.diagnostics()
            )
        })
    }

    /// Waits until a route for `prefix` has been received and returns it (the first one, if several).
    fn wait_route(&self, prefix: IpNet, timeout: Duration) -> Result<ReceivedRoute> {
        let family = Family::of(&prefix);
        wait_until(timeout, || {
            Ok(self
                .received(family)?
                .into_iter()
                .find(|r| r.prefix == Some(prefix)))
        })
        .with_context(|| {
            format!(
                "{} never received {prefix} within {timeout:?}\n{}",
                self.kind(),
                self.diagnostics()
            )
        })
    }

    /// Waits until no route for `prefix` is present any more.
    fn wait_route_gone(&self, prefix: IpNet, timeout: Duration) -> Result<()> {
        let family = Family::of(&prefix);
        wait_until(timeout, || {
            Ok((!self
                .received(family)?
                .iter()
                .any(|r| r.prefix == Some(prefix)))
            .then_some(()))
        })
        .with_context(|| {
            format!(
                "{} still has {prefix} after {timeout:?}\n{}",
                self.kind(),
                self.diagnostics()
            )
        })
    }

    /// Waits until at least `n` paths have been received in `family`; returns the count.
    fn wait_received_count(&self, family: Family, n: usize, timeout: Duration) -> Result<usize> {
        let mut last = 0;
        wait_until(timeout, || {
            last = self.received_count(family)?;
            Ok((last >= n).then_some(last))
        })
        .with_context(|| {
            format!(
                "{} has {last} of {n} paths in {family:?} after {timeout:?}\n{}",
                self.kind(),
                self.diagnostics()
            )
        })
    }

    /// Waits until `pred` holds for the received routes of `family`, and returns them.
    fn wait_received(
        &self,
        family: Family,
        timeout: Duration,
        what: &str,
        pred: &dyn Fn(&[ReceivedRoute]) -> bool,
    ) -> Result<Vec<ReceivedRoute>> {
        wait_until(timeout, || {
            let routes = self.received(family)?;
            Ok(pred(&routes).then_some(routes))
        })
        .with_context(|| {
            format!(
                "{}: {what} not seen within {timeout:?}\n{}",
                self.kind(),
                self.diagnostics()
            )
        })
    }
}

/// Starts implementation `kind` in namespace `ns` (for matrices over every implementation).
pub fn start(kind: Kind, ns: &str, cfg: PeerConfig) -> Result<Box<dyn BgpPeer>> {
    Ok(match kind {
        Kind::Bird => Box::new(Bird::start(ns, cfg)?),
        Kind::Frr => Box::new(Frr::start(ns, cfg)?),
        Kind::GoBgp => Box::new(GoBgp::start(ns, cfg)?),
        Kind::ExaBgp => Box::new(ExaBgp::start(ns, cfg)?),
    })
}

impl Kind {
    /// Every implementation, in the order the interop matrix prints them.
    pub const ALL: [Kind; 4] = [Kind::Bird, Kind::Frr, Kind::GoBgp, Kind::ExaBgp];

    /// Whether a locally set MED reaches eBGP neighbours (BIRD does not send it).
    pub fn sends_local_med(self) -> bool {
        self != Kind::Bird
    }
}

/// Polls `f` every 100 ms until it yields `Some`, an error, or `timeout` passes. Errors from `f` are
/// retried until the deadline (a daemon's control socket may not exist yet) and the last is reported.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last_err = match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            return match last_err {
                Some(e) => Err(e.context("timed out")),
                None => bail!("timed out"),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints every given peer's diagnostics if the current thread is panicking (a failed assertion).
/// Keep one alive for the duration of a test: `let _report = PanicReport::new(&[&a, &b]);`
pub struct PanicReport<'a> {
    peers: Vec<&'a dyn BgpPeer>,
}

impl<'a> PanicReport<'a> {
    pub fn new(peers: &[&'a dyn BgpPeer]) -> Self {
        PanicReport {
            peers: peers.to_vec(),
        }
    }
}

impl Drop for PanicReport<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.peers {
                eprintln!("{}", p.diagnostics());
            }
        }
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill(2) with a pid of a process this driver started.
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A command that runs inside namespace `ns` (by name), entered with nsenter (bpffs stays visible).
pub fn ns_command(ns: &str, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    c
}

/// Runs a control command (birdc, vtysh, gobgp) in `ns` and returns its stdout.
pub fn ns_output(ns: &str, program: &str, args: &[&str]) -> Result<String> {
    let out = crate::netns::run(ns_command(ns, program).args(args))
        .with_context(|| format!("in namespace {ns}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A long-running process started by a driver, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    pub ns: String,
    pub child: Child,
    /// File receiving the process's stdout and stderr.
    pub output: PathBuf,
    reaped: bool,
}

impl Daemon {
    /// Spawns `program args` inside `ns` with stdout/stderr appended to `output`.
    pub fn spawn(
        name: &str,
        ns: &str,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        output: &Path,
    ) -> Result<Daemon> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .with_context(|| format!("opening {}", output.display()))?;
        let err = out.try_clone()?;
        let mut cmd = ns_command(ns, program);
        // Own process group, so kill() also reaches helpers the daemon starts (ExaBGP's API processes).
        cmd.args(args)
            .envs(envs.iter().copied())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({program}) in namespace {ns}"))?;
        Ok(Daemon {
            name: name.to_string(),
            ns: ns.to_string(),
            child,
            output: output.to_path_buf(),
            reaped: false,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let st = self.child.try_wait().ok().flatten();
        self.reaped |= st.is_some();
        st
    }

    /// SIGKILL to the process group and reap.
    pub fn kill(&mut self) {
        if !self.reaped {
            // Not reaped yet, so the pid (and the group id it names) is still ours.
            let _ = signal(-self.pid(), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One line for diagnostics.
    pub fn describe(&mut self) -> String {
        let state = match self.exited() {
            Some(s) => format!("exited ({s})"),
            None => "running".to_string(),
        };
        format!(
            "  process {} pid {} in namespace {}: {state}; output {}",
            self.name,
            self.pid(),
            self.ns,
            self.output.display()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Locks a driver's state, ignoring poisoning (a panicking test must still be able to clean up).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The last `lines` lines of a file, or a note saying why not.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            let mut s = format!("---- {} (last {} lines) ----\n", path.display(), lines);
            for l in &all[from..] {
                s.push_str(l);
                s.push('\n');
            }
            s
        }
        Err(e) => format!("---- {}: {e} ----\n", path.display()),
    }
}

/// Creates the driver's temporary directory, named after the implementation and namespace.
/// With `TESTBED_KEEP` set in the environment the directory (configs, logs) survives the test.
fn temp_dir(kind: &str, ns: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("tb-{kind}-{ns}-"))
        .disable_cleanup(std::env::var_os("TESTBED_KEEP").is_some())
        .tempdir()
        .context("creating a temporary directory")
}

/// `a:b` community from the wire's 32-bit value.
pub fn community_from_u32(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, v as u16)
}

/// Parses "a:b" into a community.
fn parse_community(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Parses "a:b:c" into a large community.
fn parse_large_community(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':').map(|p| p.trim().parse::<u32>());
    let (a, b, c) = (it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?);
    Some((a, b, c))
}
