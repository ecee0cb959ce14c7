//! The configuration file: one TOML document, validated before anything is touched.
//!
//! ```text
//!   ribd.toml ──toml/serde (unknown keys are errors)──► Config ──validate()──► normalized Config
//!                   │ errors: "FILE:LINE:COL: field: what is expected"
//! ```
//!
//! Every error names the file, the line and the dotted field, and says what was expected. A config that
//! fails at start makes ribd exit non-zero before it touches the dataplane; one that fails at reload is
//! rejected and the running config stays.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::policy::{
    AsPathListDef, CommunityListDef, PolicyDef, PolicyDefs, PolicySet, PrefixListDef,
};
use crate::rib::RibConfig;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    /// Addresses to accept BGP connections on.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    #[serde(default = "default_log_level")]
    pub log_level: String,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// Graceful restart (RFC 4724) as the restarting speaker.
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    #[serde(default)]
    pub rib: RibConfig,
    #[serde(default)]
    pub peer_group: BTreeMap<String, PeerSettings>,
    #[serde(default)]
    pub peer: BTreeMap<String, PeerConfig>,
    #[serde(default, rename = "static")]
    pub statics: Vec<StaticRoute>,
    #[serde(default)]
    pub policy: BTreeMap<String, PolicyDef>,
    #[serde(default)]
    pub prefix_list: BTreeMap<String, PrefixListDef>,
    #[serde(default)]
    pub as_path_list: BTreeMap<String, AsPathListDef>,
    #[serde(default)]
    pub community_list: BTreeMap<String, CommunityListDef>,
    /// FlowSpec validation and enforcement.
    #[serde(default)]
    pub flowspec: crate::flowspec::FlowSpecConfig,
    /// Static ACLs, applied by the XDP classifier before FlowSpec rules and the route lookup.
    #[serde(default)]
    pub acl: Vec<crate::acl::AclDef>,
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        "0.0.0.0:179".parse().expect("static"),
        "[::]:179".parse().expect("static"),
    ]
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    /// Unix socket of the control API (mode 0660).
    pub socket: PathBuf,
    /// Optional TCP endpoint for the API and `/metrics`; requires a bearer token for the API.
    pub tcp: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            socket: PathBuf::from(crate::api::DEFAULT_SOCKET),
            tcp: None,
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpMode {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv4Engine {
    Dir24,
    Trie,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataplaneConfig {
    /// Program the XDP dataplane at all (off: RIB and BGP only).
    pub enabled: bool,
    /// bpffs instance name: maps and links are pinned under /sys/fs/bpf/<instance>/.
    pub instance: String,
    /// Interfaces the forwarder is attached to (ingress) and may redirect to.
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpMode,
    pub ipv4_engine: Ipv4Engine,
    pub route_cache: bool,
    /// After a fresh start, seconds the start-up phase waits at most for the peers' tables (the first
    /// bulk write with `initial-load-hold`). A restart over pinned maps waits `[graceful-restart]
    /// select-defer-time` instead.
    pub initial_sync_timeout: u64,
    /// "Update delay" for a fresh dataplane (nothing pinned): hold the RIB's changes until every
    /// session has sent its table (End-of-RIB, or quiet for 2 s) and write the whole table in one
    /// bulk batch, several times faster than prefix by prefix, at the price of forwarding nothing
    /// until then. Off by default: routes are forwarded as they arrive.
    pub initial_load_hold: bool,
    /// Optional copy of the FIB in a kernel routing table (off by default).
    pub kernel_mirror: KernelMirrorConfig,
}

/// What ribd does as a graceful-restart speaker (RFC 4724), for every neighbour with
/// `graceful-restart = true` (the default; `false` advertises no capability at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrMode {
    /// Restarting speaker and helper: after a restart over a dataplane that kept forwarding, OPENs set
    /// the Restart State bit and the Forwarding State bit of each family the pinned maps preserved,
    /// and our routes are advertised only once the peers' tables are in (selection deferral).
    Full,
    /// Helper only: peers' routes are kept while they restart, but our capability claims nothing
    /// (no Restart State bit, no families), so peers drop our routes when we restart, and our
    /// routes are advertised as soon as sessions come up.
    HelperOnly,
}

/// `[graceful-restart]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct GracefulRestartConfig {
    /// "full" (default) or "helper-only".
    pub mode: GrMode,
    /// Seconds a restart waits at most for End-of-RIB from the peers before it advertises our routes
    /// and reconciles the dataplane anyway (FRR's select-defer-time, 360 s there). 1-3600, default 120:
    /// below the peers' usual stale-path timers (FRR 360 s), so they never flush our routes while we
    /// still hold them back.
    pub select_defer_time: u64,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            mode: GrMode::Full,
            select_defer_time: 120,
        }
    }
}

/// `[dataplane.kernel-mirror]`: mirror the forwarding table into a kernel routing table through
/// nexthop objects (`proto bgp`), so locally generated traffic and packets XDP passes up are routed
/// by the kernel as XDP routes transit traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelMirrorConfig {
    pub enabled: bool,
    /// Kernel routing table id (254 = main).
    pub table: u32,
    /// First kernel nexthop object id the mirror owns (it uses 2^24 ids from there).
    pub nexthop_id_base: u32,
}

impl Default for KernelMirrorConfig {
    fn default() -> Self {
        KernelMirrorConfig {
            enabled: false,
            table: 254,
            nexthop_id_base: 0x5200_0000,
        }
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            enabled: true,
            instance: "ribd".into(),
            interfaces: Vec::new(),
            xdp_mode: XdpMode::Auto,
            ipv4_engine: Ipv4Engine::Dir24,
            route_cache: false,
            initial_sync_timeout: 30,
            initial_load_hold: false,
            kernel_mirror: KernelMirrorConfig::default(),
        }
    }
}

/// Address families a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
    /// FlowSpec rules (RFC 8955), enforced by the XDP classifier (see `[flowspec]`).
    Ipv4Flowspec,
    Ipv6Flowspec,
}

impl Family {
    pub fn is_flowspec(self) -> bool {
        matches!(self, Family::Ipv4Flowspec | Family::Ipv6Flowspec)
    }

    /// The AFI/SAFI on the wire.
    pub fn afi_safi(self) -> bgp::wire::AfiSafi {
        use bgp::wire::flowspec;
        use bgp::wire::nlri::Family as Ip;
        match self {
            Family::Ipv4Unicast => bgp::wire::AfiSafi::IPV4_UNICAST,
            Family::Ipv6Unicast => bgp::wire::AfiSafi::IPV6_UNICAST,
            Family::Ipv4Flowspec => flowspec::afi_safi(Ip::V4),
            Family::Ipv6Flowspec => flowspec::afi_safi(Ip::V6),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddPath {
    Receive,
    Send,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaxPrefixAction {
    /// Log a warning and keep accepting.
    Warn,
    /// Send Cease/Maximum Number of Prefixes Reached and close; restart after `restart-after`.
    Teardown,
    /// Keep the session, ignore prefixes beyond the limit.
    Discard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MaxPrefix {
    pub limit: u32,
    #[serde(default = "default_warning")]
    pub warning_percent: u8,
    #[serde(default = "default_mp_action")]
    pub action: MaxPrefixAction,
    /// Seconds before a torn-down session is restarted (0 = only by an operator).
    #[serde(default = "default_restart")]
    pub restart_after: u64,
}

fn default_warning() -> u8 {
    80
}
fn default_mp_action() -> MaxPrefixAction {
    MaxPrefixAction::Teardown
}
fn default_restart() -> u64 {
    300
}

/// Settings a peer may take from a peer group; every field is optional so groups and peers merge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PeerSettings {
    pub remote_as: Option<u32>,
    pub local_as: Option<u32>,
    pub description: Option<String>,
    pub local_address: Option<IpAddr>,
    pub passive: Option<bool>,
    /// eBGP multihop TTL.
    pub multihop: Option<u8>,
    /// GTSM (RFC 5082): true = directly connected (1 hop), or a number of hops.
    pub ttl_security: Option<u8>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub connect_retry: Option<u64>,
    pub families: Option<Vec<Family>>,
    pub add_path: Option<AddPath>,
    /// Which paths are sent with ADD-PATH (when negotiated in the send direction): "all" (default),
    /// "ecmp" (the multipath set) or "best-N".
    pub add_path_send: Option<crate::adj_out::AddPathSend>,
    /// Per-family override of `add-path-send`, e.g. `{ ipv6-unicast = "best-2" }`.
    pub add_path_send_family: Option<BTreeMap<Family, crate::adj_out::AddPathSend>>,
    /// MinRouteAdvertisementInterval in seconds (RFC 4271 §9.2.1.1); default 0 (as FRR and BIRD).
    pub advertisement_interval: Option<u16>,
    pub graceful_restart: Option<bool>,
    /// Seconds we ask peers to keep our routes when we restart (RFC 4724 restart time).
    pub restart_time: Option<u16>,
    /// Long-lived graceful restart (RFC 9494): seconds a peer's routes are kept as LLGR_STALE after
    /// the graceful-restart time ran out (the peer's advertised stale time is used when smaller);
    /// 0 (default) = LLGR off.
    pub long_lived_stale_time: Option<u32>,
    pub max_prefix: Option<MaxPrefix>,
    pub route_reflector_client: Option<bool>,
    pub next_hop_self: Option<bool>,
    pub import: Option<Vec<String>>,
    pub export: Option<Vec<String>>,
    /// Import allows our own AS this many times in the AS path.
    pub allowas_in: Option<u8>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PeerConfig {
    pub address: IpAddr,
    /// Peer group whose settings this peer inherits (its own settings win).
    #[serde(default)]
    pub group: Option<String>,
    #[serde(flatten)]
    pub settings: PeerSettings,
}

/// A peer with its group merged in and defaults applied: what the daemon runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Neighbor {
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    pub local_as: u32,
    pub description: String,
    pub local_address: Option<IpAddr>,
    pub passive: bool,
    pub multihop: Option<u8>,
    pub ttl_security: Option<u8>,
    #[serde(skip_serializing)]
    pub password: Option<String>,
    pub hold_time: u16,
    pub keepalive: Option<u16>,
    pub connect_retry: u64,
    pub families: Vec<Family>,
    pub add_path: Option<AddPath>,
    pub add_path_send: crate::adj_out::AddPathSend,
    pub add_path_send_family: BTreeMap<Family, crate::adj_out::AddPathSend>,
    pub advertisement_interval: u16,
    pub graceful_restart: bool,
    pub restart_time: u16,
    pub long_lived_stale_time: u32,
    pub max_prefix: Option<MaxPrefix>,
    pub route_reflector_client: bool,
    pub next_hop_self: bool,
    pub import: Option<Vec<String>>,
    pub export: Option<Vec<String>>,
    pub allowas_in: u8,
    pub enabled: bool,
}

impl Neighbor {
    pub fn is_ebgp(&self) -> bool {
        self.remote_as != self.local_as
    }

    /// The ADD-PATH send selection for `family`.
    pub fn add_path_send_for(&self, family: Family) -> crate::adj_out::AddPathSend {
        self.add_path_send_family
            .get(&family)
            .copied()
            .unwrap_or(self.add_path_send)
    }

    /// True when `other` describes the same session: changing anything compared here resets the
    /// session on reload; everything else (policies, description, max-prefix, ...) applies in place.
    pub fn same_session(&self, other: &Neighbor) -> bool {
        self.address == other.address
            && self.remote_as == other.remote_as
            && self.local_as == other.local_as
            && self.local_address == other.local_address
            && self.passive == other.passive
            && self.multihop == other.multihop
            && self.ttl_security == other.ttl_security
            && self.password == other.password
            && self.hold_time == other.hold_time
            && self.keepalive == other.keepalive
            && self.families == other.families
            && self.add_path == other.add_path
            && self.graceful_restart == other.graceful_restart
            && self.restart_time == other.restart_time
            && self.long_lived_stale_time == other.long_lived_stale_time
            && self.route_reflector_client == other.route_reflector_client
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StaticRoute {
    pub prefix: IpNet,
    /// Forward to this address (resolved like a BGP next-hop); absent with `blackhole = true`.
    #[serde(default)]
    pub next_hop: Option<IpAddr>,
    #[serde(default)]
    pub blackhole: bool,
    #[serde(default)]
    pub communities: Vec<String>,
    #[serde(default)]
    pub large_communities: Vec<String>,
    /// Export to peers (subject to their export policy).
    #[serde(default = "yes")]
    pub advertise: bool,
}

fn yes() -> bool {
    true
}

/// A configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.field, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

/// A loaded, validated configuration with its compiled policies and merged neighbours.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub neighbors: Vec<Neighbor>,
    pub policies: PolicySet,
    /// The validated ACL rules, in order.
    pub acls: Vec<crate::acl::AclRule>,
    pub source: String,
}

impl Config {
    pub fn policy_defs(&self) -> PolicyDefs {
        PolicyDefs {
            policy: self.policy.clone(),
            prefix_list: self.prefix_list.clone(),
            as_path_list: self.as_path_list.clone(),
            community_list: self.community_list.clone(),
        }
    }
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            line: None,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(&text, &file)
}

/// Parses and validates the text of a config file named `file` (for messages).
pub fn parse(text: &str, file: &str) -> Result<Loaded, Vec<ConfigError>> {
    let config: Config = toml::from_str(text).map_err(|e| vec![syntax_error(text, file, &e)])?;
    let mut errs = Vec::new();
    let err = |errs: &mut Vec<ConfigError>, path: &[&str], msg: String| {
        errs.push(ConfigError {
            file: file.into(),
            line: locate(text, path),
            field: path.join("."),
            message: msg,
        });
    };

    if config.local_as == 0 {
        err(
            &mut errs,
            &["local-as"],
            "expected an AS number 1-4294967295".into(),
        );
    }
    if config.router_id.is_unspecified() {
        err(
            &mut errs,
            &["router-id"],
            "expected a non-zero IPv4 address (the BGP identifier)".into(),
        );
    }
    if !matches!(
        config.log_level.as_str(),
        "error" | "warn" | "info" | "debug" | "trace"
    ) && tracing_filter_ok(&config.log_level).is_err()
    {
        err(
            &mut errs,
            &["log-level"],
            format!(
                "expected error, warn, info, debug, trace or a filter like \"info,ribd::rib=debug\", found {:?}",
                config.log_level
            ),
        );
    }
    if !(1..=3600).contains(&config.graceful_restart.select_defer_time) {
        err(
            &mut errs,
            &["graceful-restart", "select-defer-time"],
            format!(
                "expected 1-3600 seconds, found {}",
                config.graceful_restart.select_defer_time
            ),
        );
    }
    let km = &config.dataplane.kernel_mirror;
    if km.table == 0 {
        err(
            &mut errs,
            &["dataplane", "kernel-mirror", "table"],
            "expected a kernel routing table id 1-4294967295 (254 is main)".into(),
        );
    }
    if km.nexthop_id_base == 0 || km.nexthop_id_base > u32::MAX - (1 << 24) {
        err(
            &mut errs,
            &["dataplane", "kernel-mirror", "nexthop-id-base"],
            format!("expected 1-{}", u32::MAX - (1 << 24)),
        );
    }
    if config.dataplane.instance.is_empty()
        || config.dataplane.instance.contains('/')
        || config.dataplane.instance.starts_with('.')
    {
        err(
            &mut errs,
            &["dataplane", "instance"],
            "expected a plain name for /sys/fs/bpf/<instance>/".into(),
        );
    }
    for (i, ifname) in config.dataplane.interfaces.iter().enumerate() {
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains('/') || ifname.contains(' ') {
            err(
                &mut errs,
                &["dataplane", "interfaces"],
                format!("interfaces[{i}]: {ifname:?} is not an interface name (1-15 characters)"),
            );
        }
    }
    for (afi, c) in [("ipv4", &config.rib.ipv4), ("ipv6", &config.rib.ipv6)] {
        if c.max_paths_ebgp == 0
            || c.max_paths_ebgp > 64
            || c.max_paths_ibgp == 0
            || c.max_paths_ibgp > 64
        {
            err(
                &mut errs,
                &["rib", afi],
                "max-paths-ebgp and max-paths-ibgp must be 1-64".into(),
            );
        }
    }

    let policies = match PolicySet::compile(&config.policy_defs()) {
        Ok(p) => p,
        Err(list) => {
            for m in list {
                // "policy NAME: term N ...": locate the policy's table.
                let name = m
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .trim_end_matches(':')
                    .to_string();
                let kind = m.split_whitespace().next().unwrap_or("policy").to_string();
                errs.push(ConfigError {
                    file: file.into(),
                    line: locate(text, &[&kind, &name]),
                    field: format!("{kind}.{name}"),
                    message: m,
                });
            }
            PolicySet::default()
        }
    };

    let mut neighbors = Vec::new();
    let mut addrs = std::collections::HashSet::new();
    for (name, p) in &config.peer {
        let at = |f: &'static str| ["peer", name.as_str(), f];
        let group = match &p.group {
            Some(g) => match config.peer_group.get(g) {
                Some(s) => s.clone(),
                None => {
                    err(
                        &mut errs,
                        &at("group"),
                        format!(
                            "unknown peer group {g:?} (defined: {})",
                            names(config.peer_group.keys())
                        ),
                    );
                    PeerSettings::default()
                }
            },
            None => PeerSettings::default(),
        };
        let s = merge(&p.settings, &group);
        if !addrs.insert(p.address) {
            err(
                &mut errs,
                &at("address"),
                format!("{} is already used by another peer", p.address),
            );
        }
        let Some(remote_as) = s.remote_as else {
            err(
                &mut errs,
                &at("remote-as"),
                "missing: the peer's AS number (here or in its group)".into(),
            );
            continue;
        };
        if remote_as == 0 {
            err(
                &mut errs,
                &at("remote-as"),
                "expected an AS number 1-4294967295".into(),
            );
        }
        let hold_time = s.hold_time.unwrap_or(90);
        if hold_time != 0 && hold_time < 3 {
            err(
                &mut errs,
                &at("hold-time"),
                format!("expected 0 or 3-65535 seconds (RFC 4271 §4.2), found {hold_time}"),
            );
        }
        if let Some(k) = s.keepalive
            && hold_time != 0
            && k >= hold_time
        {
            err(
                &mut errs,
                &at("keepalive"),
                format!("must be less than hold-time ({hold_time})"),
            );
        }
        if s.multihop.is_some() && s.ttl_security.is_some() {
            err(
                &mut errs,
                &at("ttl-security"),
                "cannot be combined with multihop (GTSM sends TTL 255)".into(),
            );
        }
        if s.ttl_security == Some(0) {
            err(
                &mut errs,
                &at("ttl-security"),
                "expected a number of hops, 1 or more".into(),
            );
        }
        let password = match (&s.password, &s.password_file) {
            (Some(_), Some(_)) => {
                err(
                    &mut errs,
                    &at("password-file"),
                    "give either password or password-file, not both".into(),
                );
                None
            }
            (Some(pw), None) => Some(pw.clone()),
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(pw) => Some(pw.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => {
                    err(
                        &mut errs,
                        &at("password-file"),
                        format!("cannot read {}: {e}", f.display()),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        if password
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > 80)
        {
            err(
                &mut errs,
                &at("password"),
                "TCP-MD5 keys are 1-80 bytes (RFC 2385)".into(),
            );
        }
        if let Some(la) = s.local_address
            && la.is_ipv4() != p.address.is_ipv4()
        {
            err(
                &mut errs,
                &at("local-address"),
                format!(
                    "{la} is not of the same family as the peer address {}",
                    p.address
                ),
            );
        }
        if let Some(mp) = &s.max_prefix
            && (mp.limit == 0 || mp.warning_percent == 0 || mp.warning_percent > 100)
        {
            err(
                &mut errs,
                &at("max-prefix"),
                "limit must be > 0 and warning-percent 1-100".into(),
            );
        }
        for (dir, chain) in [("import", &s.import), ("export", &s.export)] {
            for n in chain.iter().flatten() {
                if policies.get(n).is_none() && errs.iter().all(|e| !e.field.starts_with("policy"))
                {
                    err(
                        &mut errs,
                        &at(dir),
                        format!(
                            "unknown policy {n:?} (defined: {})",
                            names(config.policy.keys())
                        ),
                    );
                }
            }
        }
        let families = s.families.clone().unwrap_or_else(|| {
            if p.address.is_ipv4() {
                vec![Family::Ipv4Unicast]
            } else {
                vec![Family::Ipv6Unicast]
            }
        });
        if families.is_empty() {
            err(
                &mut errs,
                &at("families"),
                "at least one of ipv4-unicast, ipv6-unicast, ipv4-flowspec, ipv6-flowspec".into(),
            );
        }
        neighbors.push(Neighbor {
            name: name.clone(),
            address: p.address,
            remote_as,
            local_as: s.local_as.unwrap_or(config.local_as),
            description: s.description.clone().unwrap_or_default(),
            local_address: s.local_address,
            passive: s.passive.unwrap_or(false),
            multihop: s.multihop,
            ttl_security: s.ttl_security,
            password,
            hold_time,
            keepalive: s.keepalive,
            connect_retry: s.connect_retry.unwrap_or(30),
            families,
            add_path: s.add_path,
            add_path_send: s.add_path_send.unwrap_or(crate::adj_out::AddPathSend::All),
            add_path_send_family: s.add_path_send_family.clone().unwrap_or_default(),
            advertisement_interval: s.advertisement_interval.unwrap_or(0),
            graceful_restart: s.graceful_restart.unwrap_or(true),
            restart_time: s.restart_time.unwrap_or(120),
            long_lived_stale_time: s.long_lived_stale_time.unwrap_or(0).min(0x00ff_ffff),
            max_prefix: s.max_prefix.clone(),
            route_reflector_client: s.route_reflector_client.unwrap_or(false),
            next_hop_self: s.next_hop_self.unwrap_or(false),
            import: s.import.clone(),
            export: s.export.clone(),
            allowas_in: s.allowas_in.unwrap_or(0),
            enabled: s.enabled.unwrap_or(true),
        });
    }
    // The RIB names a path's peer with 16 bits; one slot goes to the static routes.
    if let Some(name) = config.peer.keys().nth(crate::rib::MAX_PEERS - 1) {
        err(
            &mut errs,
            &["peer", name.as_str()],
            format!(
                "{} peers configured; at most {} fit in the RIB (peers are counted in name order, this is the first that does not fit)",
                config.peer.len(),
                crate::rib::MAX_PEERS - 1
            ),
        );
    }
    for (i, st) in config.statics.iter().enumerate() {
        let field = format!("static[{i}]");
        if st.prefix.trunc() != st.prefix {
            err(
                &mut errs,
                &["static"],
                format!(
                    "{field}.prefix: {} has host bits set (did you mean {}?)",
                    st.prefix,
                    st.prefix.trunc()
                ),
            );
        }
        match (st.next_hop, st.blackhole) {
            (Some(_), true) => err(
                &mut errs,
                &["static"],
                format!("{field}: next-hop and blackhole = true exclude each other"),
            ),
            (None, false) => err(
                &mut errs,
                &["static"],
                format!("{field}: needs a next-hop or blackhole = true"),
            ),
            (Some(nh), false)
                if nh.is_ipv4() != st.prefix.addr().is_ipv4() && st.prefix.addr().is_ipv4() =>
            {
                err(
                    &mut errs,
                    &["static"],
                    format!("{field}.next-hop: {nh} is not an IPv4 address"),
                )
            }
            _ => {}
        }
        for c in &st.communities {
            if let Err(e) = crate::policy::community::parse_community(c) {
                err(&mut errs, &["static"], format!("{field}.communities: {e}"));
            }
        }
        for c in &st.large_communities {
            if let Err(e) = crate::policy::community::parse_large(c) {
                err(
                    &mut errs,
                    &["static"],
                    format!("{field}.large-communities: {e}"),
                );
            }
        }
    }
    for (field, msg) in crate::flowspec::validate_local(&config.flowspec) {
        err(&mut errs, &["flowspec", "rule"], format!("{field}: {msg}"));
    }
    let acls = match crate::acl::validate(&config.acl) {
        Ok(a) => a,
        Err(list) => {
            for (field, msg) in list {
                err(&mut errs, &["acl"], format!("{field}: {msg}"));
            }
            Vec::new()
        }
    };
    if errs.is_empty() {
        Ok(Loaded {
            config,
            neighbors,
            policies,
            acls,
            source: file.into(),
        })
    } else {
        Err(errs)
    }
}

fn tracing_filter_ok(s: &str) -> Result<(), ()> {
    // Directives look like "target=level" separated by commas.
    let ok = s.split(',').all(|d| {
        let level = d.rsplit('=').next().unwrap_or("");
        matches!(level, "error" | "warn" | "info" | "debug" | "trace" | "off")
    });
    if ok { Ok(()) } else { Err(()) }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn merge(p: &PeerSettings, g: &PeerSettings) -> PeerSettings {
    macro_rules! m {
        ($($f:ident),*) => { PeerSettings { $($f: p.$f.clone().or_else(|| g.$f.clone()),)* } };
    }
    m!(
        remote_as,
        local_as,
        description,
        local_address,
        passive,
        multihop,
        ttl_security,
        password,
        password_file,
        hold_time,
        keepalive,
        connect_retry,
        families,
        add_path,
        add_path_send,
        add_path_send_family,
        advertisement_interval,
        graceful_restart,
        restart_time,
        long_lived_stale_time,
        max_prefix,
        route_reflector_client,
        next_hop_self,
        import,
        export,
        allowas_in,
        enabled
    )
}

fn syntax_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let mut line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    // With flattened tables toml points at the table header; find the offending key below it.
    if let (Some(l), Some(key)) = (
        line,
        e.message()
            .split('`')
            .nth(1)
            .filter(|_| e.message().starts_with("unknown field")),
    ) {
        line = text
            .lines()
            .enumerate()
            .skip(l - 1)
            .find(|(_, t)| t.split('=').next().map(|k| k.trim().trim_matches('"')) == Some(key))
            .map(|(i, _)| i + 1)
            .or(line);
    }
    // toml's message is multi-line with a caret excerpt; keep its first and last meaningful lines.
    let msg = e.message().trim().to_string();
    let field = line
        .and_then(|l| text.lines().nth(l - 1))
        .map(|l| {
            l.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['[', ']'])
                .to_string()
        })
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "(syntax)".into());
    ConfigError {
        file: file.into(),
        line,
        field,
        message: msg,
    }
}

/// Best-effort line of a dotted key: the `[a.b]` table header (or `[[a]]`), then the key inside it.
fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        let t = t
            .strip_prefix("[[")
            .and_then(|x| x.strip_suffix("]]"))
            .or_else(|| t.strip_prefix('[').and_then(|x| x.strip_suffix(']')))?;
        Some(
            t.split('.')
                .map(|p| p.trim().trim_matches('"'))
                .collect::<Vec<_>>()
                .join("."),
        )
    };
    let key_of = |l: &str| {
        l.split('=')
            .next()
            .map(|k| k.trim().trim_matches('"').to_string())
    };
    for split in (0..=path.len()).rev() {
        let (table, keys) = path.split_at(split);
        let table = table.join(".");
        let mut in_table = table.is_empty();
        let mut table_line = None;
        for (i, l) in lines.iter().enumerate() {
            if let Some(h) = header(l) {
                in_table = h == table || (keys.is_empty() && h.starts_with(&format!("{table}.")));
                if in_table && table_line.is_none() {
                    table_line = Some(i + 1);
                }
                continue;
            }
            if in_table
                && let Some(k) = keys.first()
                && key_of(l).as_deref() == Some(k)
            {
                return Some(i + 1);
            }
        }
        if keys.is_empty()
            && let Some(l) = table_line
        {
            return Some(l);
        }
    }
    None
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
