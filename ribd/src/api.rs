//! Control API model: the JSON types exchanged between ribd and its clients (ribctl, scripts).
//!
//! Stable: fields are only ever added. Everything here builds without the `daemon` feature, so the CLI
//! links only this module. Endpoints (HTTP over the Unix socket, or TCP with a bearer token):
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/summary` | [`Summary`] |
//! | GET | `/v1/counters` | [`Counters`] (O(peers): cheap enough to poll while a table loads) |
//! | GET | `/v1/peers`, `/v1/peers/{name}` | `Vec<`[`Peer`]`>`, [`Peer`] |
//! | GET | `/v1/rib/{ipv4,ipv6}?prefix=P&match=exact\|longer\|shorter&peer=N&community=C&as-path=RE&limit=N&after=P` | [`RibPage`] |
//! | GET | `/v1/route/{prefix}` (prefix with `/` written as `_` or URL-encoded) | [`RouteDetail`] |
//! | GET | `/v1/fib?prefix=P&limit=N&after=P` | [`FibPage`] |
//! | GET | `/v1/lookup/{address}?src=S&proto=N&sport=P&dport=P` | [`Lookup`] (with the flow's next-hop when `src` is given) |
//! | GET | `/v1/dataplane/stats` | [`DataplaneStats`] |
//! | GET | `/v1/fib/check` | [`CheckReport`] |
//! | POST | `/v1/peers/{name}/{enable,disable,reset,refresh}` | [`ActionResult`] |
//! | POST | `/v1/reload` | [`ActionResult`] |
//! | GET | `/metrics` | Prometheus text |
//!
//! Errors are 4xx/5xx with an [`ErrorBody`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/ribd/ribd.sock";

/// API version prefix.
pub const V1: &str = "/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub version: String,
    pub router_id: String,
    pub local_as: u32,
    pub uptime_secs: u64,
    pub config_file: String,
    pub peers_configured: usize,
    pub peers_established: usize,
    pub rib: Vec<AfiCount>,
    pub attribute_sets: usize,
    pub fib: Vec<AfiCount>,
    pub dataplane: DataplaneSummary,
    /// Graceful restart (RFC 4724) as the restarting speaker; absent from older daemons.
    #[serde(default)]
    pub graceful_restart: GrSummary,
}

/// The daemon's graceful restart state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GrSummary {
    /// "full" (restarting speaker and helper) or "helper-only".
    pub mode: String,
    /// "restarting" (started over a dataplane that kept forwarding: OPENs set the Restart State bit
    /// and our routes wait for the peers' End-of-RIB), "starting" (a fresh start waiting for the
    /// peers' tables), or "done".
    pub phase: String,
    /// Whether OPENs sent now set the Restart State (R) bit.
    pub restart_state: bool,
    /// Unicast families whose Forwarding State (F) bit OPENs sent now set.
    pub forwarding_preserved: Vec<String>,
    /// Our advertisements are held back (selection deferral) until the phase ends.
    pub deferring: bool,
    /// Seconds until `select-defer-time` (or `initial-sync-timeout`) ends the phase at the latest.
    pub deadline_secs: Option<u64>,
    /// Why the phase ended and how many seconds after start.
    pub ended: Option<String>,
    pub ended_after_secs: Option<f64>,
}

/// Running totals kept by the core, read without walking the RIB (`/v1/summary` counts paths by
/// walking every prefix). The core answers only between event batches, after the batch's FIB changes
/// were applied, so the FIB figures include everything the RIB figures do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// UPDATE messages processed by the core (End-of-RIB included), all peers.
    pub updates_in: u64,
    /// NLRI announced and withdrawn in those UPDATEs.
    pub prefixes_announced: u64,
    pub prefixes_withdrawn: u64,
    /// FIB batches applied and the deltas in them.
    pub fib_batches: u64,
    pub fib_deltas: u64,
    /// Per family: prefixes in the RIB, and paths from peers (sum of the peers' accepted counts).
    pub rib: Vec<AfiCount>,
    /// Per family: prefixes with a forwarding entry (`paths` = `prefixes`).
    pub fib: Vec<AfiCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfiCount {
    pub afi: String,
    pub prefixes: u64,
    pub paths: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneSummary {
    pub enabled: bool,
    pub instance: String,
    pub interfaces: Vec<Interface>,
    /// Set when the dataplane could not be programmed; the RIB keeps working.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    /// "native" or "generic", or "down" when not attached.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    pub local_as: u32,
    pub description: String,
    /// "ebgp" or "ibgp".
    pub kind: String,
    pub enabled: bool,
    /// Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    pub uptime_secs: Option<u64>,
    pub flaps: u64,
    /// Why the session is not Established (the last connection or session error); `None` while
    /// Established.
    pub last_error: Option<String>,
    /// Why the last Established session ended, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_down: Option<String>,
    pub router_id: Option<String>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    /// Negotiated capabilities in words ("4-octet AS", "route refresh", "add-path rx ipv4-unicast", ...).
    pub capabilities: Vec<String>,
    pub families: Vec<PeerFamily>,
    pub messages: MessageCounts,
    pub import: Vec<String>,
    pub export: Vec<String>,
    /// Graceful restart with this peer; absent when it is off for the peer (`graceful-restart =
    /// false`) and no long-lived stale phase runs for it, or from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<PeerGr>,
}

/// Graceful restart with one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerGr {
    /// Negotiated on the Established session (both sides advertised the capability).
    pub negotiated: bool,
    /// The peer's capability on the session: its restart time, Restart State bit and the
    /// families whose forwarding it preserved.
    pub peer_restart_time: Option<u16>,
    pub peer_restarting: bool,
    pub peer_forwarding: Vec<String>,
    /// Families whose End-of-RIB the peer sent on this session.
    pub end_of_rib_received: Vec<String>,
    /// Our routes to this peer wait for the end of our restart (selection deferral).
    pub deferred: bool,
    /// While we help the peer restart (its session was lost without a NOTIFICATION, or it is back
    /// and has not sent End-of-RIB for every family yet): "graceful-restart" (RFC 4724: its paths
    /// are kept, stale, for its restart time) or "long-lived" (RFC 9494: kept LLGR-stale, least
    /// preferred). Absent otherwise.
    #[serde(default)]
    pub stale_phase: Option<String>,
    /// Seconds until the phase's timer ends it: the graceful-restart phase then turns long-lived
    /// (when negotiated) or removes the stale paths; the long-lived one removes them.
    #[serde(default)]
    pub stale_remaining_secs: Option<u64>,
    /// The peer's paths in the RIB that are stale (kept from the lost session, not sent again yet):
    /// IPv4 and IPv6 unicast.
    #[serde(default)]
    pub stale_paths_ipv4: u64,
    #[serde(default)]
    pub stale_paths_ipv6: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFamily {
    pub afi: String,
    pub received: u64,
    pub accepted: u64,
    pub advertised: u64,
    /// "active" (negotiated on the Established session), "not negotiated" (configured, the peer did not
    /// offer it), "disabled" (RFC 7606 AFI/SAFI disable for the rest of the session, see `last_error`),
    /// or "down" (no Established session).
    #[serde(default)]
    pub state: String,
    /// UPDATEs of this family handled as treat-as-withdraw (RFC 7606 §2) since ribd started (FlowSpec).
    #[serde(default)]
    pub treat_as_withdraw: u64,
    /// AFI/SAFI disable events of this family (RFC 7606 §2, RFC 4760 §7) since ribd started (FlowSpec).
    #[serde(default)]
    pub afi_safi_disable: u64,
    /// The last RFC 7606 error seen in this family (FlowSpec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Messages by type: open, update, notification, keepalive, route-refresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub received: [u64; 5],
    pub sent: [u64; 5],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RibPage {
    pub afi: String,
    /// Prefixes in the table (all, not only this page).
    pub total: u64,
    /// Prefixes matching the filters.
    pub matched: u64,
    pub routes: Vec<RibRoute>,
    /// Pass as `after=` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RibRoute {
    pub prefix: String,
    pub paths: Vec<RibPath>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RibPath {
    pub peer: String,
    pub path_id: u32,
    pub best: bool,
    pub multipath: bool,
    pub next_hop: Option<IpAddr>,
    pub as_path: String,
    pub origin: String,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub ext_communities: Vec<String>,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDetail {
    pub prefix: String,
    pub candidates: Vec<Candidate>,
    pub fib: Option<FibRoute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub path: RibPath,
    pub reachable: bool,
    pub igp_cost: u32,
    /// The decision step at which the best path won over this one (`None` for the best).
    pub lost_at: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibPage {
    pub total: u64,
    pub routes: Vec<FibRoute>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibRoute {
    pub prefix: String,
    /// "forward", "blackhole", "pass" (to the kernel) or "local".
    pub kind: String,
    pub nexthops: Vec<FibNextHop>,
    /// BGP PIC backup next-hops: where the dataplane moves this route's flows when every primary
    /// next-hop is dead, before the RIB has reselected (empty without an alternative path).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<FibNextHop>,
    /// Dataplane ids, when the dataplane holds the route.
    pub pathlist: Option<u32>,
    pub group: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibNextHop {
    pub address: IpAddr,
    pub weight: u32,
    /// Resolved egress: interface, neighbour MAC; `None` until resolved (traffic goes to the kernel).
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub resolved: bool,
    /// Share of the group's buckets.
    pub buckets: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    pub address: IpAddr,
    /// The longest match in the RIB and what the dataplane does with it.
    pub rib: Option<RibRoute>,
    pub fib: Option<FibRoute>,
    /// For a given flow (`?src=&proto=&sport=&dport=`): the bucket and next-hop the forwarder picks.
    #[serde(default)]
    pub flow: Option<FlowChoice>,
}

/// Which next-hop of a group one flow takes, computed with the forwarder's own hash and the group's
/// buckets as the maps hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowChoice {
    pub source: IpAddr,
    pub protocol: u8,
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
    pub hash: u32,
    pub group: u32,
    pub bucket: u32,
    pub buckets: u32,
    /// The BGP next-hop of the chosen bucket, with its egress.
    pub nexthop: Option<IpAddr>,
    pub interface: Option<String>,
    pub mac: Option<String>,
}

/// Query of `GET /v1/lookup/{address}`: an optional flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowQuery {
    pub src: Option<IpAddr>,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...); default 6 when ports are given, else 1/58.
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataplaneStats {
    pub reasons: Vec<ReasonCounter>,
    pub nexthops: Vec<NextHopCounter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCounter {
    pub reason: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHopCounter {
    pub id: u32,
    pub interface: String,
    pub mac: String,
    pub packets: u64,
    pub bytes: u64,
}

/// The config ACL rules in the order the classifier applies them (before FlowSpec rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AclTable {
    pub rules: Vec<AclRuleView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AclRuleView {
    pub order: usize,
    pub acl: String,
    pub name: String,
    /// Ingress interfaces; empty = every forwarding interface.
    pub interfaces: Vec<String>,
    /// Match and action, e.g. `destination 192.0.2.0/24 protocol udp → drop`.
    pub rule: String,
    pub installed: bool,
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
}

/// The FlowSpec table in the order the classifier applies it (RFC 8955 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowSpecTable {
    /// RFC 8955 §6 validation on.
    pub validate: bool,
    /// Rules are installed into the XDP classifier.
    pub enforce: bool,
    pub rules: Vec<FlowRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRule {
    /// Position in the §5.1 order (0 = applied first).
    pub order: usize,
    /// "ipv4" or "ipv6".
    pub family: String,
    /// The rule in the usual text form, e.g. `dst 192.0.2.0/24 proto =17 dport =53`.
    pub rule: String,
    /// The peer whose announcement is used, and how many others announce the same rule.
    pub peer: String,
    pub alternatives: usize,
    /// Traffic-filtering actions as received.
    pub actions: Vec<String>,
    /// What the classifier does: "accept", "drop", "rate-limit N pps|bytes/s", plus "set dscp N",
    /// "non-terminal".
    pub effect: String,
    pub feasible: bool,
    /// In the classifier now.
    pub installed: bool,
    /// Why not feasible / not installable, or what of it is ignored.
    pub reason: Option<String>,
    /// Matched packets and bytes (frame length), and how many of them the rule dropped.
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub ok: bool,
    pub checked: u64,
    pub differences: Vec<String>,
}

/// Query of `GET /v1/rib/{afi}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct RibQuery {
    pub prefix: Option<String>,
    /// "exact" (default with a prefix), "longer" (the prefix and more specifics), "shorter" (covering).
    #[serde(rename = "match")]
    pub match_: Option<String>,
    pub peer: Option<String>,
    pub community: Option<String>,
    pub as_path: Option<String>,
    pub limit: Option<usize>,
    pub after: Option<String>,
    /// Only best paths.
    pub best: Option<bool>,
}

/// Writes `prefix` for a URL path segment (`/` becomes `_`).
pub fn prefix_to_path(prefix: &str) -> String {
    prefix.replace('/', "_")
}

/// Reads a prefix from a URL path segment written by [`prefix_to_path`] (or URL-encoded `%2F`).
pub fn prefix_from_path(seg: &str) -> String {
    seg.replace('_', "/")
        .replace("%2F", "/")
        .replace("%2f", "/")
}
