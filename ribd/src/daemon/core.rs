//! The daemon's state and the handlers that change it. Owned by one task; see the module above.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp::fsm::{Cause, Family as BgpFamily, FsmConfig, State, default_capabilities};
use bgp::session::{self, Event, Listener, PeerHandle, SocketOptions, TtlMode};
use bgp::wire::AddPathDirection;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Options;
use super::restart::{self, PeerProgress, Startup};
use crate::adj_out::{AdjOut, Env, MemberSpec};
use crate::api;
use crate::config::{self, AddPath, Family, Loaded, Neighbor};
use crate::flowspec::{FlowEntry, FlowPath, FlowRib};
use crate::import::ImportCtx;
use crate::inbound::{Action as InboundAction, FamilyCounts, Inbound, Stale};
use crate::rib::attrs::Attrs;
use crate::rib::decision::{PeerInfo, PeerKind};
use crate::rib::{FibEntry, FibNextHop, Rib};

/// An API request and where to send the answer.
pub struct Request {
    pub kind: RequestKind,
    pub reply: oneshot::Sender<Response>,
}

#[derive(Debug)]
pub enum RequestKind {
    Summary,
    Counters,
    Peers(Option<String>),
    Rib(IpFamily, api::RibQuery),
    Route(IpNet),
    Fib(Option<IpNet>, usize, Option<String>),
    Lookup(IpAddr, api::FlowQuery),
    Stats,
    Check,
    PeerAction(String, PeerAction),
    Reload,
    Metrics,
    FlowSpec,
    Acl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAction {
    Enable,
    Disable,
    Reset,
    Refresh,
}

/// An API answer: JSON (or text for metrics), or an HTTP status with a message.
#[derive(Debug)]
pub enum Response {
    Json(serde_json::Value),
    Text(String),
    Error(u16, String),
}

impl Response {
    fn json<T: serde::Serialize>(v: &T) -> Response {
        match serde_json::to_value(v) {
            Ok(v) => Response::Json(v),
            Err(e) => Response::Error(500, format!("serialising the answer failed: {e}")),
        }
    }
}

struct PeerRt {
    nb: Neighbor,
    handle: PeerHandle,
    /// Adj-RIB-In bookkeeping, max-prefix, graceful restart and LLGR (sans-IO).
    inb: Inbound,
    established: bool,
    /// What the session negotiated, while Established (export context, codec).
    negotiated: Option<Box<bgp::fsm::Negotiated>>,
    /// Encoded UPDATEs to this peer, sent in order by a task of its own; each carries the session epoch
    /// it was encoded for, and the task drops what belongs to an earlier session.
    out: mpsc::UnboundedSender<(u64, bytes::Bytes)>,
    epoch: Arc<AtomicU64>,
    /// When the session last delivered UPDATEs (or came up): a peer that sends no End-of-RIB counts
    /// as loaded once it has been quiet for a while (see `first_sync_write`).
    last_rx: Instant,
}

/// The initial load into a fresh dataplane. Writing a full table prefix by prefix as it arrives costs
/// several times what one bulk write of the finished table costs (fib-sync sorts it and paints the
/// DIR-24-8 image in one pass), and nothing forwards yet anyway; like an "update delay", the first
/// write waits until the table is in: the end of the start-up phase ([`restart::Startup::done`]).
///
/// Later changes are written as they come. Only with `[dataplane] initial-load-hold = true`; without
/// it the first batch (with the local host routes) is written as soon as it comes.
struct FirstSync {
    /// The RIB's deltas so far, in order and in fib-sync's compact bulk-load form (the bulk load
    /// keeps the last of a repeated prefix and drops withdrawn ones; reaching [`FirstSync::cap`]
    /// keeps only those, see [`super::dataplane::HeldLoad::hold`]), or `None` once even that
    /// outgrew the cap: then the whole table is taken from the RIB at the end instead (a walk of
    /// the RIB that recomputes every prefix's forwarding: 0.7 s of the core's time on the scaled
    /// table from 4 ECMP feeders).
    held: Option<super::dataplane::HeldLoad>,
}

impl FirstSync {
    /// Held deltas beyond twice the forwarding table (prefixes changing again and again, several
    /// peers each adding to ECMP sets) are not worth their memory.
    fn cap(fib_len: [usize; 2]) -> usize {
        2 * (fib_len[0] + fib_len[1]) + 65_536
    }
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub updates_in: u64,
    pub prefixes_announced: u64,
    pub prefixes_withdrawn: u64,
    pub fib_batches: u64,
    pub fib_deltas: u64,
    pub sync_seconds: Vec<f64>,
}

pub struct Core {
    loaded: Loaded,
    opts: Options,
    listener: Listener,
    events: mpsc::Sender<Event>,
    rib: Rib,
    peers: BTreeMap<String, PeerRt>,
    by_session: HashMap<u32, String>,
    next_session_id: u32,
    static_peer: crate::rib::table::PeerId,
    started: Instant,
    pub counters: Counters,
    dataplane: Option<super::dataplane::Dataplane>,
    dataplane_error: Option<String>,
    /// The start-up phase until the peers' tables are in ("initial convergence"): a restart's
    /// reconcile of the pinned dataplane, a fresh dataplane's first write, the deferral of our
    /// advertisements (restarting speaker) and our graceful restart capability's R and F bits all
    /// follow it. `None` once it is over.
    startup: Option<Startup>,
    /// Why and when the start-up phase ended (for the API).
    startup_end: Option<(Instant, &'static str)>,
    /// A fresh dataplane: FIB deltas are held during the initial load and the whole table is written
    /// at once when it is in (see `first_sync_write`).
    first_sync: Option<FirstSync>,
    /// What the maps hold of the RIB's forwarding table ([IPv4, IPv6] prefixes) after the last write.
    programmed: [usize; 2],
    /// Adj-RIBs-Out, one per update group.
    adj: AdjOut,
    /// FlowSpec rules learned from peers.
    flow: FlowRib,
    /// The last evaluation of `flow` (order, feasibility, classifier rules), what the API shows.
    flow_view: Vec<FlowEntry>,
    /// The unicast FIB changed since `flow_view` was computed (feasibility may have changed).
    flow_unicast_changed: bool,
    /// The classifier rule set last installed.
    flow_installed: Vec<fib_sync::fib_ebpf::acl::Rule>,
    /// Whether this process has installed a rule set yet: until then the pinned set is a previous
    /// process's, unknown here, and must be replaced even by an empty one.
    flow_install_done: bool,
    /// `flow_view` changed since the classifier was last given it (installs wait for the initial sync).
    flow_install_pending: bool,
    /// FlowSpec Adj-RIBs-Out (sessions that negotiated a FlowSpec family).
    flow_out: crate::adj_out::flowspec::FlowOut,
    /// RFC 7606 outcomes of FlowSpec UPDATEs, per peer name.
    flow_stats: BTreeMap<String, crate::flowspec::FlowPeerStats>,
    /// Why each peer's last session ended (shown next to the current state).
    last_down: BTreeMap<String, String>,
    /// When to hand freed heap back to the kernel (after a table load, after churn).
    trim: super::memory::Trim,
}

/// A config ACL rule restricted to its interfaces' current ifindexes (an interface that does not
/// exist makes the rule match nothing until it appears and the rule set is rebuilt).
fn acl_rule_with_interfaces(a: &crate::acl::AclRule) -> fib_sync::fib_ebpf::acl::Rule {
    let mut r = a.rule.clone();
    if let Some(ifs) = &a.interfaces {
        let idx: Vec<u32> = ifs
            .iter()
            .filter_map(|name| {
                let c = std::ffi::CString::new(name.as_str()).ok()?;
                // SAFETY: a valid NUL-terminated string.
                let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
                if i == 0 {
                    tracing::warn!(acl = %a.acl, rule = %a.name, interface = %name, "ACL interface not found: the rule does not apply there");
                    None
                } else {
                    Some(i)
                }
            })
            .collect();
        r.matches.ingress_ifindex = Some(idx);
    }
    r
}

/// The unicast RIB as the FlowSpec feasibility check sees it (RFC 8955 §6).
struct RibView<'a>(&'a Rib);

impl RibView<'_> {
    fn origin(&self, prefix: IpNet) -> Option<crate::flowspec::UnicastOrigin> {
        let (paths, _) = self.0.usable_paths(prefix)?;
        let best = paths.first()?;
        let info = self.0.peer(best.peer)?;
        Some(crate::flowspec::UnicastOrigin {
            prefix,
            peer_addr: info.addr,
            peer_as: info.remote_as,
        })
    }
}

impl crate::flowspec::UnicastView for RibView<'_> {
    fn best_match(&self, p: IpNet) -> Option<crate::flowspec::UnicastOrigin> {
        (0..=p.prefix_len())
            .rev()
            .find_map(|len| self.origin(IpNet::new(p.addr(), len).ok()?.trunc()))
    }

    fn more_specific_from_other_as(&self, p: IpNet, asn: u32) -> bool {
        let other = |n: IpNet| n != p && self.origin(n).is_some_and(|o| o.peer_as != asn);
        match p {
            IpNet::V4(v4) => self
                .0
                .ipv4()
                .more_specifics(&v4)
                .any(|k| other(IpNet::V4(*k))),
            IpNet::V6(v6) => self
                .0
                .ipv6()
                .more_specifics(&v6)
                .any(|k| other(IpNet::V6(*k))),
        }
    }
}

fn family_of(f: Family) -> BgpFamily {
    f.afi_safi()
}

/// FlowSpec export candidates: `src` holds (index into `view`, source peer, source is an RR client).
fn flow_candidates<'a>(
    view: &'a [FlowEntry],
    src: &'a [(usize, PeerInfo, bool)],
) -> Vec<crate::adj_out::flowspec::FlowCandidate<'a>> {
    src.iter()
        .filter_map(|(i, info, rr)| {
            let e = view.get(*i)?;
            Some(crate::adj_out::flowspec::FlowCandidate {
                rule: &e.rule,
                attrs: &e.best.attrs,
                src: crate::export::Source {
                    peer: info,
                    rr_client: *rr,
                },
            })
        })
        .collect()
}

impl Core {
    pub fn new(
        loaded: Loaded,
        opts: Options,
        listener: Listener,
        events: mpsc::Sender<Event>,
    ) -> anyhow::Result<Core> {
        let mut rib = Rib::new(loaded.config.rib.clone());
        let static_peer = rib
            .add_peer(PeerInfo {
                name: "static".into(),
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                router_id: loaded.config.router_id,
                remote_as: loaded.config.local_as,
                local_as: loaded.config.local_as,
                kind: PeerKind::Local,
                confed: false,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut core = Core {
            loaded,
            opts,
            listener,
            events,
            rib,
            peers: BTreeMap::new(),
            by_session: HashMap::new(),
            next_session_id: 1,
            static_peer,
            started: Instant::now(),
            counters: Counters::default(),
            dataplane: None,
            dataplane_error: None,
            startup: None,
            startup_end: None,
            first_sync: None,
            programmed: [0, 0],
            adj: AdjOut::new(),
            // Changed from the start: the first evaluation replaces whatever rule set is pinned.
            flow: {
                let mut f = FlowRib::default();
                f.changed = true;
                f
            },
            flow_view: Vec::new(),
            flow_unicast_changed: false,
            flow_installed: Vec::new(),
            flow_install_done: false,
            flow_install_pending: true,
            flow_out: crate::adj_out::flowspec::FlowOut::new(),
            flow_stats: BTreeMap::new(),
            last_down: BTreeMap::new(),
            trim: super::memory::Trim::new(Instant::now()),
        };
        // No update group yet: nothing to collect best-path changes for (see `AdjOut::track`).
        core.adj.track(&mut core.rib);
        if core.loaded.config.dataplane.enabled {
            match super::dataplane::Dataplane::start(
                &core.loaded.config.dataplane,
                core.opts.flush_on_exit,
            ) {
                Ok(mut dp) => {
                    let local = local_addresses();
                    if let Err(e) = dp.install_local(&local) {
                        tracing::warn!(error = %e, "installing local host routes failed");
                    }
                    if !dp.is_pending()
                        && dp.first_sync_due()
                        && core.loaded.config.dataplane.initial_load_hold
                    {
                        core.first_sync = Some(FirstSync {
                            held: Some(Default::default()),
                        });
                    }
                    core.dataplane = Some(dp);
                }
                Err(e) => {
                    tracing::error!(
                        "dataplane not programmed, running as a BGP speaker only: {e:#}"
                    );
                    core.dataplane_error = Some(format!("{e:#}"));
                }
            }
        } else {
            core.dataplane_error =
                Some("disabled in the configuration ([dataplane] enabled = false)".into());
        }
        let preserved = core
            .dataplane
            .as_ref()
            .map_or([false, false], |d| d.preserved());
        let cfg = &core.loaded.config;
        let st = Startup::new(
            Instant::now(),
            cfg.graceful_restart.mode,
            preserved,
            Duration::from_secs(cfg.graceful_restart.select_defer_time),
            Duration::from_secs(cfg.dataplane.initial_sync_timeout),
        );
        if st.restarting {
            tracing::info!(
                ipv4 = preserved[0],
                ipv6 = preserved[1],
                select_defer_secs = cfg.graceful_restart.select_defer_time,
                "graceful restart: forwarding state preserved; OPENs set the Restart State bit and our routes wait for the peers' End-of-RIB"
            );
        } else if preserved.iter().any(|p| *p) {
            tracing::info!(
                ipv4 = preserved[0],
                ipv6 = preserved[1],
                "forwarding state preserved (graceful restart helper-only: not advertised)"
            );
        }
        core.startup = Some(st);
        core.apply_statics();
        Ok(core)
    }

    /// Our graceful restart bits now: (Restart State, forwarding preserved [IPv4, IPv6]). During
    /// the start-up phase what the pinned maps preserved; after it, whether a dataplane forwards
    /// (it keeps forwarding through a session's loss, so a later reconnection may say so).
    fn gr_bits(&self) -> (bool, [bool; 2]) {
        match &self.startup {
            Some(st) => (st.restarting, st.preserved),
            None => {
                let fwd = self.dataplane.is_some();
                (false, [fwd, fwd])
            }
        }
    }

    /// Gives every session our current graceful restart capability for its next connections.
    fn push_gr_capability(&self) {
        let (r, f) = self.gr_bits();
        let mode = self.loaded.config.graceful_restart.mode;
        for p in self.peers.values().filter(|p| p.nb.graceful_restart) {
            p.handle.set_graceful_restart(restart::capability(
                mode,
                &p.nb.families,
                p.nb.restart_time,
                r,
                f,
            ));
        }
    }

    /// True while our advertisements wait for the peers' tables (restarting speaker, RFC 4724 §4.1).
    fn deferring(&self) -> bool {
        self.startup.as_ref().is_some_and(|s| s.restarting)
    }

    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn apply_statics(&mut self) {
        // Locally configured FlowSpec rules (validated with the config).
        let local = self
            .loaded
            .config
            .flowspec
            .rule
            .iter()
            .filter_map(|r| r.compile().ok())
            .collect();
        self.flow.set_local(local);
        let statics = self.loaded.config.statics.clone();
        for st in statics {
            let attrs = Attrs::default()
                .with_next_hop(st.next_hop)
                .with_communities(
                    st.communities
                        .iter()
                        .filter_map(|c| crate::policy::community::parse_community(c).ok())
                        .collect::<Vec<u32>>(),
                )
                .with_large_communities(
                    st.large_communities
                        .iter()
                        .filter_map(|c| crate::policy::community::parse_large(c).ok())
                        .collect::<Vec<_>>(),
                );
            let a = self.rib.intern(attrs);
            self.rib.announce(self.static_peer, st.prefix, 0, a);
        }
        self.flush();
    }

    /// Spawns a session task for every configured neighbour.
    pub fn start_peers(&mut self) {
        let nbs = self.loaded.neighbors.clone();
        for nb in nbs {
            if let Err(e) = self.add_peer(nb.clone()) {
                tracing::error!(peer = %nb.name, error = %e, "cannot start peer");
            }
        }
    }

    fn session_config(&self, nb: &Neighbor, id: u32) -> session::PeerConfig {
        let cfg = &self.loaded.config;
        let families: Vec<BgpFamily> = nb.families.iter().map(|f| family_of(*f)).collect();
        let mut fsm = FsmConfig::new(nb.local_as, nb.remote_as, cfg.router_id);
        fsm.hold_time = nb.hold_time;
        fsm.keepalive = nb.keepalive;
        fsm.connect_retry = Duration::from_secs(nb.connect_retry);
        fsm.passive = nb.passive;
        let mut caps = default_capabilities(nb.local_as, &families);
        if let Some(ap) = nb.add_path {
            let dir = match ap {
                AddPath::Receive => AddPathDirection::Receive,
                AddPath::Send => AddPathDirection::Send,
                AddPath::Both => AddPathDirection::Both,
            };
            // ADD-PATH is for unicast; a FlowSpec rule is its own identity.
            caps.add_path = nb
                .families
                .iter()
                .filter(|f| !f.is_flowspec())
                .map(|f| (family_of(*f), dir))
                .collect();
        }
        if nb.graceful_restart {
            let (r, f) = self.gr_bits();
            caps.graceful_restart = Some(restart::capability(
                cfg.graceful_restart.mode,
                &nb.families,
                nb.restart_time,
                r,
                f,
            ));
        }
        if nb.long_lived_stale_time > 0 {
            // RFC 9494: we keep the peer's routes as LLGR-stale for up to this long (helper side).
            caps.long_lived_gr = Some(bgp::fsm::LongLivedGr {
                families: families
                    .iter()
                    .map(|f| (*f, false, nb.long_lived_stale_time))
                    .collect(),
            });
        }
        // RFC 8950: carry IPv4 routes over an IPv6 session and vice versa when both families run.
        fsm.capabilities = caps;
        let socket = SocketOptions {
            md5_key: nb.password.as_ref().map(|p| p.as_bytes().to_vec()),
            ttl: match (nb.multihop, nb.ttl_security) {
                (_, Some(h)) => TtlMode::Gtsm { hops: h },
                (Some(t), None) => TtlMode::Multihop(t),
                (None, None) => TtlMode::Default,
            },
            local_addr: nb.local_address,
            recv_buffer: None,
            send_buffer: None,
        };
        let mut pc =
            session::PeerConfig::new(session::PeerId(id), SocketAddr::new(nb.address, 179), fsm);
        pc.socket = socket;
        pc
    }

    fn import_ctx(&self, nb: &Neighbor) -> ImportCtx {
        let policy = nb
            .import
            .as_ref()
            .map(|names| self.loaded.policies.chain(names).unwrap_or_default());
        ImportCtx {
            local_as: nb.local_as,
            peer_as: nb.remote_as,
            peer_addr: nb.address,
            local_addr: nb.local_address,
            router_id: self.loaded.config.router_id,
            ebgp: nb.is_ebgp(),
            allowas_in: nb.allowas_in,
            policy,
        }
    }

    fn add_peer(&mut self, nb: Neighbor) -> anyhow::Result<()> {
        // The RIB slot first: a peer that does not fit must not leave a session task behind.
        let rib_id = self.rib.add_peer(PeerInfo {
            name: nb.name.clone(),
            addr: nb.address,
            router_id: Ipv4Addr::UNSPECIFIED,
            remote_as: nb.remote_as,
            local_as: nb.local_as,
            kind: if nb.is_ebgp() {
                PeerKind::Ebgp
            } else {
                PeerKind::Ibgp
            },
            confed: false,
        })?;
        let id = self.next_session_id;
        self.next_session_id += 1;
        let pc = self.session_config(&nb, id);
        let handle = match PeerHandle::spawn(pc, Some(&self.listener), self.events.clone()) {
            Ok(h) => h,
            Err(e) => {
                self.rib.remove_peer(rib_id);
                return Err(e.into());
            }
        };
        if nb.enabled {
            handle.start();
        }
        let import = self.import_ctx(&nb);
        let (out, mut out_rx) = mpsc::unbounded_channel::<(u64, bytes::Bytes)>();
        let epoch = Arc::new(AtomicU64::new(0));
        let sender = handle.clone();
        let pname = nb.name.clone();
        let current = epoch.clone();
        tokio::spawn(async move {
            while let Some((e, bytes)) = out_rx.recv().await {
                if e != current.load(Ordering::Acquire) {
                    continue; // encoded for a session that has ended
                }
                if let Err(e) = sender.send_raw(bytes).await {
                    tracing::debug!(peer = %pname, error = %e, "UPDATEs not sent");
                }
            }
        });
        tracing::info!(peer = %nb.name, address = %nb.address, remote_as = nb.remote_as, "peer configured");
        self.by_session.insert(id, nb.name.clone());
        self.peers.insert(
            nb.name.clone(),
            PeerRt {
                nb,
                handle,
                inb: Inbound::new(rib_id, import),
                established: false,
                negotiated: None,
                out,
                epoch,
                last_rx: Instant::now(),
            },
        );
        Ok(())
    }

    fn remove_peer(&mut self, name: &str, why: &str) {
        if let Some(p) = self.peers.remove(name) {
            p.handle.stop(Some(why));
            self.pic_peer_gone(p.inb.rib_id);
            if let Some((&sid, _)) = self.by_session.iter().find(|(_, n)| n.as_str() == name) {
                self.adj.leave(sid);
                self.adj.track(&mut self.rib);
                self.flow_out.leave(sid);
            }
            self.flow_stats.remove(name);
            self.by_session.retain(|_, n| n != name);
            self.rib.remove_peer(p.inb.rib_id);
            self.flow.peer_down(name);
            self.flush();
            tracing::info!(peer = %name, "peer removed: {why}");
        }
    }

    /// One event from a session.
    pub fn on_event(&mut self, ev: Event) {
        let sid = match &ev {
            Event::Established { peer, .. }
            | Event::Updates { peer, .. }
            | Event::RouteRefresh { peer, .. }
            | Event::Down { peer, .. } => peer.0,
        };
        let Some(name) = self.by_session.get(&sid).cloned() else {
            return;
        };
        match ev {
            Event::Established { negotiated, .. } => {
                let Some(p) = self.peers.get_mut(&name) else {
                    return;
                };
                p.established = true;
                p.last_rx = Instant::now();
                // A graceful restart's stale paths stay until End-of-RIB (or the stale timer) removes
                // those the peer did not send again (RFC 4724 §4.2): the deadline survives re-establishment.
                tracing::info!(peer = %name, peer_id = %negotiated.peer_id, hold = negotiated.hold_time, "session established");
                let mut info = self
                    .rib
                    .peer(p.inb.rib_id)
                    .cloned()
                    .unwrap_or_else(|| PeerInfo {
                        name: name.clone(),
                        addr: p.nb.address,
                        router_id: negotiated.peer_id,
                        remote_as: p.nb.remote_as,
                        local_as: p.nb.local_as,
                        kind: PeerKind::Ebgp,
                        confed: false,
                    });
                info.router_id = negotiated.peer_id;
                p.negotiated = Some(negotiated);
                p.inb.established();
                p.epoch.fetch_add(1, Ordering::AcqRel);
                // Re-register the peer with its real router id, keeping (stale) paths: GR restart.
                self.rib.set_peer_info(p.inb.rib_id, info);
                // Export what is already pending first, so the new member's dump is current.
                self.flush();
                if self.deferring() {
                    tracing::info!(peer = %name, "graceful restart: our routes to the peer wait for the end of the restart (selection deferral)");
                    return;
                }
                self.advertise_to(sid);
            }
            Event::Updates { updates, .. } => {
                for u in &updates {
                    // FlowSpec MP attributes, even with no rule left in them (a treat-as-withdraw
                    // UPDATE whose only rule was malformed still counts).
                    let fs = |af: Option<bgp::wire::AfiSafi>| {
                        af.and_then(bgp::wire::flowspec::family).is_some()
                    };
                    if fs(u.mp_reach.as_ref().map(|m| m.afi_safi))
                        || fs(u.mp_unreach.as_ref().map(|m| m.afi_safi))
                        || u.afi_safi_disable.is_some()
                    {
                        self.import_flowspec(&name, u);
                    }
                }
                let Some(p) = self.peers.get_mut(&name) else {
                    return;
                };
                let now = Instant::now();
                p.last_rx = now;
                let (actions, c) = p.inb.updates(now, &mut self.rib, &p.nb, &updates);
                self.counters.updates_in += c.updates;
                self.counters.prefixes_announced += c.announced;
                self.counters.prefixes_withdrawn += c.withdrawn;
                self.perform(&name, actions);
                self.track_added_nexthops();
            }
            Event::RouteRefresh { family, .. } => {
                tracing::info!(peer = %name, %family, "route refresh requested: re-sending the Adj-RIB-Out");
                let sends = match bgp::wire::flowspec::family(family) {
                    Some(f) => self.flow_refresh(sid, f),
                    None => self.adj.refresh(sid),
                };
                self.dispatch(sends);
            }
            Event::Down { cause, .. } => {
                // BGP PIC first: the dataplane leaves the peer's next-hops before any other work
                // (leaving the update group may free a whole table).
                let notification = matches!(cause, Cause::Sent(_) | Cause::Received(_));
                if let Some(p) = self.peers.get(&name)
                    && Inbound::down_removes_paths(&p.nb, p.negotiated.as_deref(), notification)
                {
                    let rib_id = p.inb.rib_id;
                    self.pic_peer_gone(rib_id);
                }
                self.adj.leave(sid);
                self.flow_out.leave(sid);
                self.last_down.insert(name.clone(), cause.to_string());
                if let Some(st) = self.flow_stats.get_mut(&name) {
                    st.session_reset();
                }
                self.adj.track(&mut self.rib);
                let Some(p) = self.peers.get_mut(&name) else {
                    return;
                };
                p.established = false;
                let negotiated = p.negotiated.take();
                p.epoch.fetch_add(1, Ordering::AcqRel);
                tracing::info!(peer = %name, %cause, "session down");
                p.inb.down(
                    Instant::now(),
                    &mut self.rib,
                    &p.nb,
                    negotiated.as_deref(),
                    notification,
                );
                let flows = self.flow.peer_down(&name);
                if flows > 0 {
                    tracing::info!(peer = %name, rules = flows, "FlowSpec rules of the peer removed");
                }
            }
        }
    }

    /// The session `sid` joins its update group (our table, then End-of-RIB) and the FlowSpec
    /// Adj-RIB-Out.
    fn advertise_to(&mut self, sid: u32) {
        if let Some(spec) = self.member_spec(sid) {
            let env_rr = self.rr_clients();
            let env = Env {
                rib: &self.rib,
                rr_clients: &env_rr,
            };
            let sends = self.adj.join(spec, &env);
            self.adj.track(&mut self.rib);
            self.dispatch(sends);
        }
        self.flow_join(sid);
    }

    /// BGP PIC: the paths of `rib_id` are about to go. Next-hops no other peer has a path through
    /// are dead for forwarding: the dataplane moves the path-lists containing them to their other
    /// next-hops or their backups now (one store each), before the RIB walks its prefixes; the
    /// RIB's deltas then follow without moving any flow again, and [`Core::flush_fib`] lifts the
    /// marks once they are applied.
    fn pic_peer_gone(&mut self, rib_id: crate::rib::table::PeerId) {
        let Some(dp) = self.dataplane.as_mut() else {
            return;
        };
        let dead = self.rib.nexthops_only_from(rib_id);
        if dead.is_empty() {
            return;
        }
        if let Err(e) = dp.withdraw_nexthops(&dead) {
            tracing::warn!("withdrawing next-hops from the dataplane: {e:#}");
        }
    }

    /// Carries out what a peer's inbound state asks of its session.
    fn perform(&mut self, name: &str, actions: Vec<InboundAction>) {
        let Some(p) = self.peers.get(name) else {
            return;
        };
        for a in actions {
            match a {
                InboundAction::Cease(n) => p.handle.cease(n),
                InboundAction::Start => p.handle.start(),
            }
        }
    }

    /// Pushes accumulated FIB deltas to the dataplane; next-hop reachability learned on the way goes
    /// back to the RIB (which may produce more deltas: repeated, bounded).
    pub fn flush(&mut self) {
        self.flush_fib();
        self.export_changes();
        self.flush_flowspec();
    }

    /// FlowSpec parts of one UPDATE from `name`: announcements (MP_REACH, with the traffic-filtering
    /// actions of its extended communities) and withdrawals (MP_UNREACH, or MP_REACH of an UPDATE
    /// treated as withdraw, RFC 7606), through the import policy ([`crate::flowspec::import_rule`]).
    /// RFC 7606 outcomes are counted per peer and family.
    fn import_flowspec(&mut self, name: &str, u: &bgp::wire::Update) {
        let stats = self.flow_stats.entry(name.to_string()).or_default();
        // AFI/SAFI disable (RFC 7606 §7.11, an unframeable FlowSpec field): the session ignores the
        // family from now on, so what the peer sent of it goes too.
        if let Some((af, e)) = &u.afi_safi_disable
            && let Some(fam) = bgp::wire::flowspec::family(*af)
        {
            stats.disable(fam, e.to_string());
            let n = self.flow.peer_family_down(name, fam);
            tracing::warn!(peer = %name, family = %af, error = %e, rules = n, "FlowSpec family disabled for this session: rules removed");
        }
        if let Some(e) = &u.treat_as_withdraw {
            let fam = u
                .mp_reach
                .as_ref()
                .map(|m| m.afi_safi)
                .or(u.mp_unreach.as_ref().map(|m| m.afi_safi))
                .and_then(bgp::wire::flowspec::family);
            if let Some(fam) = fam {
                stats.treat_as_withdraw(fam, e.to_string());
            }
        }
        for (_, rule) in u.withdrawn_flowspec() {
            self.flow.withdraw(rule, name);
        }
        let Some(p) = self.peers.get(name) else {
            return;
        };
        // Treat-as-withdraw is applied by the codec: what is "announced" here is sound.
        let received = std::sync::Arc::new(crate::import::to_attrs(&u.attrs, None, None));
        let mut refused = 0;
        for (_, rule) in u.announced_flowspec() {
            let Some(a) = crate::flowspec::import_rule(rule, &received, &p.inb.import) else {
                self.flow.withdraw(rule, name);
                refused += 1;
                continue;
            };
            let attrs = if a == *received {
                received.clone()
            } else {
                std::sync::Arc::new(a)
            };
            let path = FlowPath {
                peer: name.to_string(),
                peer_addr: p.nb.address,
                peer_as: p.inb.import.peer_as,
                ebgp: p.inb.import.ebgp,
                local_pref: attrs.local_pref().unwrap_or(100),
                as_path_len: attrs.as_path().selection_len() as usize,
                actions: crate::export::to_wire(&attrs).flow_actions(),
                attrs,
            };
            self.flow.announce(rule.clone(), path);
        }
        if refused > 0 {
            tracing::debug!(peer = %name, refused, "FlowSpec rules refused by import policy (RFC 8212 for eBGP without one)");
        }
        tracing::debug!(peer = %name, rules = self.flow.len(), "FlowSpec UPDATE");
    }

    /// The FlowSpec Adj-RIB-Out context of session `sid`, when it negotiated a FlowSpec family.
    fn flow_member_spec(&self, sid: u32) -> Option<crate::adj_out::flowspec::FlowMemberSpec> {
        let name = self.by_session.get(&sid)?;
        let p = self.peers.get(name)?;
        let n = p.negotiated.as_ref()?;
        let fam = |f: Family| p.nb.families.contains(&f) && n.families.contains(&family_of(f));
        Some(crate::adj_out::flowspec::FlowMemberSpec {
            id: sid,
            ctx: self.export_ctx(p),
            families: [fam(Family::Ipv4Flowspec), fam(Family::Ipv6Flowspec)],
            wire: n.context(),
        })
    }

    /// The rules offered for export: every feasible rule's best announcement (RFC 8955 §6: an
    /// infeasible rule is not used, so not passed on), with the PeerInfo of where it came from.
    fn flow_sources(&self) -> Vec<(usize, PeerInfo, bool)> {
        self.flow_view
            .iter()
            .enumerate()
            .filter(|(_, e)| e.feasible)
            .filter_map(|(i, e)| {
                if e.best.peer == crate::flowspec::LOCAL_PEER {
                    return Some((i, self.rib.peer(self.static_peer)?.clone(), false));
                }
                let p = self.peers.get(&e.best.peer)?;
                let info = self.rib.peer(p.inb.rib_id)?.clone();
                Some((i, info, p.nb.route_reflector_client))
            })
            .collect()
    }

    fn flow_join(&mut self, sid: u32) {
        let Some(spec) = self.flow_member_spec(sid) else {
            return;
        };
        let src = self.flow_sources();
        let cands = flow_candidates(&self.flow_view, &src);
        let sends = self.flow_out.join(spec, &cands);
        self.dispatch(sends);
    }

    fn flow_refresh(
        &mut self,
        sid: u32,
        family: bgp::wire::nlri::Family,
    ) -> Vec<crate::adj_out::Send> {
        let src = self.flow_sources();
        let cands = flow_candidates(&self.flow_view, &src);
        self.flow_out.refresh(sid, family, &cands)
    }

    /// Every FlowSpec member's export context again (after a reload), sending differences.
    fn flow_respec(&mut self) {
        let specs: Vec<_> = self
            .by_session
            .keys()
            .filter(|sid| self.flow_out.is_member(**sid))
            .filter_map(|sid| self.flow_member_spec(*sid))
            .collect();
        let src = self.flow_sources();
        let cands = flow_candidates(&self.flow_view, &src);
        let mut sends = Vec::new();
        for spec in specs {
            sends.extend(self.flow_out.respec(spec, &cands));
        }
        self.dispatch(sends);
    }

    /// Re-evaluates the FlowSpec table when it or the unicast RIB changed, sends the differences to
    /// the FlowSpec peers, and installs the result into the XDP classifier when it differs from what
    /// is installed.
    fn flush_flowspec(&mut self) {
        let unicast_matters = self.flow_unicast_changed && !self.flow.is_empty();
        if self.flow.changed || unicast_matters {
            let cfg = &self.loaded.config.flowspec;
            let view = RibView(&self.rib);
            let new = self.flow.evaluate(cfg.validate, &view);
            self.flow.changed = false;
            self.flow_unicast_changed = false;
            self.flow_install_pending = true;
            if new != self.flow_view {
                let changed = crate::flowspec::changed_rules(&self.flow_view, &new);
                self.flow_view = new;
                let src = self.flow_sources();
                let cands = flow_candidates(&self.flow_view, &src);
                let sends = self.flow_out.sync_changed(&cands, &changed);
                self.dispatch(sends);
            }
        }
        // After a restart the pinned rule set keeps protecting until the peers have re-sent theirs.
        let restoring = self.dataplane.as_ref().is_some_and(|d| d.is_pending());
        if restoring || !self.flow_install_pending {
            return;
        }
        self.flow_install_pending = false;
        let cfg = &self.loaded.config.flowspec;
        // Config ACLs first (the operator's own policy), then FlowSpec in RFC 8955 order.
        let mut rules: Vec<fib_sync::fib_ebpf::acl::Rule> = self
            .loaded
            .acls
            .iter()
            .map(acl_rule_with_interfaces)
            .collect();
        if cfg.enforce {
            rules.extend(
                self.flow_view
                    .iter()
                    .flat_map(|e| e.compiled.iter().cloned()),
            );
        }
        if self.flow_install_done && rules == self.flow_installed {
            return;
        }
        let Some(dp) = self.dataplane.as_mut() else {
            self.flow_installed = rules;
            return;
        };
        match dp.install_rules(&rules) {
            Ok(()) => {
                tracing::info!(rules = rules.len(), "classifier rule set installed");
                self.flow_installed = rules;
                self.flow_install_done = true;
            }
            Err(e) => {
                tracing::error!("installing the classifier rules failed: {e:#}");
                self.dataplane_error = Some(format!("classifier: {e:#}"));
            }
        }
    }

    fn flush_fib(&mut self) {
        if self.first_sync.is_some() {
            // The initial load: the deltas are kept for one write at its end (`first_sync_write`);
            // next-hops are resolved as they appear.
            for _ in 0..4 {
                let deltas = self.rib.take_fib_deltas();
                if deltas.is_empty() {
                    break;
                }
                self.flow_unicast_changed = true;
                let cap = FirstSync::cap(self.rib.fib_len());
                if let Some(fs) = self.first_sync.as_mut() {
                    let fits = match &mut fs.held {
                        Some(h) => h.hold(&deltas, cap),
                        None => false,
                    };
                    if !fits {
                        fs.held = None;
                    }
                }
                let tracked = self.track_nexthops();
                self.apply_nht(tracked);
            }
            return;
        }
        let mut drained = false;
        for _ in 0..4 {
            let t = Instant::now();
            let deltas = self.rib.take_fib_deltas();
            if deltas.is_empty() {
                drained = true;
                break;
            }
            self.flow_unicast_changed = true;
            let nht = match self.dataplane.as_mut().map(|dp| dp.apply(&deltas)) {
                Some(Ok(nht)) => {
                    self.programmed = self.rib.fib_len();
                    nht
                }
                Some(Err(e)) => {
                    tracing::error!("dataplane update failed: {e:#}");
                    self.dataplane_error = Some(format!("{e:#}"));
                    Vec::new()
                }
                None => Vec::new(),
            };
            self.counters.fib_batches += 1;
            self.counters.fib_deltas += deltas.len() as u64;
            self.counters.sync_seconds.push(t.elapsed().as_secs_f64());
            if self.counters.sync_seconds.len() > 4096 {
                self.counters.sync_seconds.drain(..2048);
            }
            let tracked = self.track_nexthops();
            self.apply_nht(tracked);
            self.apply_nht(nht);
        }
        // The deltas that follow a session down are applied: no prefix uses its next-hops any more
        // unless a path through them came back, so the withdrawn marks go.
        if !drained {
            return;
        }
        if let Some(Err(e)) = self.dataplane.as_mut().map(|dp| dp.restore_nexthops()) {
            tracing::warn!("restoring withdrawn next-hops: {e:#}");
        }
    }

    /// Next-hops the RIB began to use with this event are resolved now, not at the end of the
    /// drained events (`flush`): the paths through them that the next events bring are then
    /// selected with their real state, where the RIB's default (reachable, IGP cost 0) had each
    /// selected again once the state came. An IPv6 next-hop's connected route has metric 256, so
    /// up to a whole IPv6 table per peer was selected twice during a load (`set_nexthop` 0.2 s of
    /// the core's 8 s on the scaled table from 4 feeders, perf).
    fn track_added_nexthops(&mut self) {
        let Some(dp) = self.dataplane.as_mut() else {
            return;
        };
        let wanted = self.rib.nexthops();
        match dp.track_added(&wanted) {
            Ok(nht) => self.apply_nht(nht),
            Err(e) => tracing::warn!("next-hop tracking: {e:#}"),
        }
    }

    /// Makes the dataplane resolve every next-hop the RIB uses; returns the state of new ones.
    fn track_nexthops(&mut self) -> Vec<fib_sync::NhtUpdate> {
        let wanted = self.rib.nexthops();
        match self.dataplane.as_mut().map(|dp| dp.track_nexthops(&wanted)) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::warn!("next-hop tracking: {e:#}");
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Where `p` is in sending its table (for [`Startup::done`]).
    fn progress(p: &PeerRt, now: Instant) -> PeerProgress {
        let n = p.negotiated.as_deref();
        PeerProgress {
            established: p.established,
            gr: n.is_some_and(|n| n.graceful_restart.is_some()),
            all_eor: n.is_some_and(|n| {
                p.nb.families
                    .iter()
                    .map(|f| family_of(*f))
                    .filter(|f| n.families.contains(f))
                    .all(|f| p.inb.eor.contains(&f))
            }),
            quiet: now.duration_since(p.last_rx) >= restart::QUIET,
        }
    }

    /// Ends the start-up phase once [`Startup::done`] says the peers' tables are in: reconciles a
    /// pinned dataplane or writes a fresh one's held table, advertises to the sessions that waited
    /// (restarting speaker), and clears the Restart State bit for later connections.
    fn maybe_end_startup(&mut self) {
        let Some(st) = &self.startup else {
            return;
        };
        let now = Instant::now();
        let why = st.done(
            now,
            self.peers
                .values()
                .filter(|p| p.nb.enabled)
                .map(|p| Self::progress(p, now)),
        );
        let Some(why) = why else {
            return;
        };
        let Some(st) = self.startup.take() else {
            return;
        };
        self.startup_end = Some((now, why));
        tracing::info!(
            why,
            secs = now.duration_since(st.started).as_secs_f64(),
            restarting = st.restarting,
            "initial convergence: the peers' tables are in"
        );
        if self.dataplane.as_ref().is_some_and(|d| d.is_pending()) {
            self.reconcile(why);
        } else if self.first_sync.is_some() {
            self.first_sync_write(why);
        }
        // Later connections: no Restart State bit; F says whether the dataplane forwards.
        self.push_gr_capability();
        if st.restarting {
            let sids: Vec<u32> = self
                .by_session
                .iter()
                .filter(|(_, n)| self.peers.get(*n).is_some_and(|p| p.established))
                .map(|(sid, _)| *sid)
                .collect();
            tracing::info!(
                sessions = sids.len(),
                "graceful restart over: advertising our routes, then End-of-RIB"
            );
            for sid in sids {
                self.advertise_to(sid);
            }
        }
    }

    /// Writes the RIB's whole forwarding table into a fresh dataplane in one batch (fib-sync's bulk
    /// path) at the end of the initial load.
    fn first_sync_write(&mut self, why: &str) {
        let t = Instant::now();
        let mut held = self.first_sync.take().and_then(|fs| fs.held);
        let last = self.rib.take_fib_deltas();
        if !held.as_mut().is_some_and(|h| h.push(&last)) {
            held = None;
        }
        drop(last);
        enum Load {
            Held(super::dataplane::HeldLoad),
            Routes(Vec<fib_sync::Route>),
        }
        let (load, n) = match held {
            Some(h) => {
                let n = h.len();
                (Load::Held(h), n)
            }
            None => {
                let routes = super::dataplane::fib_routes(&self.rib);
                let n = routes.len();
                (Load::Routes(routes), n)
            }
        };
        let tracked = self.track_nexthops();
        self.apply_nht(tracked);
        let res = self.dataplane.as_mut().map(|dp| match load {
            Load::Held(h) => dp.apply_held(h),
            Load::Routes(r) => dp.apply_routes(r),
        });
        match res {
            Some(Ok(nht)) => {
                self.programmed = self.rib.fib_len();
                self.counters.fib_batches += 1;
                self.counters.fib_deltas += n as u64;
                self.counters.sync_seconds.push(t.elapsed().as_secs_f64());
                tracing::info!(
                    routes = n,
                    prefixes = self.programmed[0] + self.programmed[1],
                    secs = t.elapsed().as_secs_f64(),
                    why,
                    "initial load: whole forwarding table written to the dataplane"
                );
                self.apply_nht(nht);
            }
            Some(Err(e)) => {
                tracing::error!("dataplane update failed: {e:#}");
                self.dataplane_error = Some(format!("{e:#}"));
            }
            None => {}
        }
        // Whatever changed since (next-hop reachability) goes out as ordinary deltas.
        self.flush();
    }

    fn export_ctx(&self, p: &PeerRt) -> crate::export::ExportCtx {
        let local = local_addrs_towards(p.nb.address);
        crate::export::ExportCtx {
            peer_addr: p.nb.address,
            peer_as: p.nb.remote_as,
            local_as: p.nb.local_as,
            router_id: self.loaded.config.router_id,
            ebgp: p.nb.is_ebgp(),
            rr_client: p.nb.route_reflector_client,
            next_hop_self: p.nb.next_hop_self,
            local_v4: p
                .nb
                .local_address
                .and_then(|a| match a {
                    IpAddr::V4(v) => Some(v),
                    _ => None,
                })
                .or(local.0),
            local_v6: p
                .nb
                .local_address
                .and_then(|a| match a {
                    IpAddr::V6(v) => Some(v),
                    _ => None,
                })
                .or(local.1),
            policy: p
                .nb
                .export
                .as_ref()
                .map(|names| self.loaded.policies.chain(names).unwrap_or_default()),
        }
    }

    /// RIB ids of our route-reflector clients.
    fn rr_clients(&self) -> Vec<crate::rib::table::PeerId> {
        self.peers
            .values()
            .filter(|p| p.nb.route_reflector_client)
            .map(|p| p.inb.rib_id)
            .collect()
    }

    /// What decides the Adj-RIB-Out of the established session `sid` (its update group's key).
    fn member_spec(&self, sid: u32) -> Option<MemberSpec> {
        let name = self.by_session.get(&sid)?;
        let p = self.peers.get(name)?;
        let n = p.negotiated.as_ref()?;
        let fam = |f: Family| p.nb.families.contains(&f) && n.families.contains(&family_of(f));
        let ap = |f: Family| {
            (fam(f) && n.add_path_tx.contains(&family_of(f))).then(|| p.nb.add_path_send_for(f))
        };
        Some(MemberSpec {
            id: sid,
            rib_peer: p.inb.rib_id,
            ctx: self.export_ctx(p),
            families: [fam(Family::Ipv4Unicast), fam(Family::Ipv6Unicast)],
            add_path: [ap(Family::Ipv4Unicast), ap(Family::Ipv6Unicast)],
            mrai: Duration::from_secs(p.nb.advertisement_interval.into()),
            llgr: n.long_lived_gr.is_some(),
            wire: n.context(),
        })
    }

    /// Queues encoded UPDATEs to their members' sessions and refreshes the advertised counts.
    fn dispatch(&mut self, sends: Vec<crate::adj_out::Send>) {
        if sends.is_empty() {
            return;
        }
        for s in sends {
            for m in s.to {
                let Some(p) = self.by_session.get(&m).and_then(|n| self.peers.get(n)) else {
                    continue;
                };
                let _ = p
                    .out
                    .send((p.epoch.load(Ordering::Acquire), s.bytes.clone()));
            }
        }
        self.refresh_advertised();
    }

    fn refresh_advertised(&mut self) {
        let sids: Vec<(u32, String)> = self
            .by_session
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (sid, name) in sids {
            let [a4, a6] = self.adj.advertised(sid);
            if let Some(p) = self.peers.get_mut(&name) {
                p.inb.v4.advertised = a4;
                p.inb.v6.advertised = a6;
            }
        }
    }

    /// Best-path changes since the last call, to every update group.
    fn export_changes(&mut self) {
        let mut changed = self.rib.take_best_changes();
        if changed.is_empty() {
            return;
        }
        changed.sort_unstable();
        changed.dedup();
        let rr = self.rr_clients();
        let env = Env {
            rib: &self.rib,
            rr_clients: &rr,
        };
        let sends = self.adj.changes(Instant::now(), &env, &changed);
        self.dispatch(sends);
    }

    /// Announcements held by MRAI whose interval has ended.
    fn export_held(&mut self) {
        let rr = self.rr_clients();
        let env = Env {
            rib: &self.rib,
            rr_clients: &rr,
        };
        let sends = self.adj.tick(Instant::now(), &env);
        self.dispatch(sends);
    }

    fn apply_nht(&mut self, nht: Vec<fib_sync::NhtUpdate>) {
        for u in nht {
            tracing::debug!(nexthop = %u.addr, reachable = u.reachable, "next-hop tracking");
            self.rib.set_nexthop(
                u.addr,
                crate::rib::NhState {
                    reachable: u.reachable,
                    igp_cost: u.igp_cost.unwrap_or(0),
                },
            );
        }
    }

    /// The netlink event descriptor of the dataplane's resolver, when there is a dataplane.
    pub fn dataplane_event_fd(&self) -> Option<std::os::fd::OwnedFd> {
        self.dataplane.as_ref().and_then(|d| d.event_fd().ok())
    }

    /// Kernel link/neighbour/route changes.
    pub fn poll_dataplane(&mut self) {
        let nht = match self.dataplane.as_mut().map(|d| d.poll()) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::warn!("netlink poll: {e:#}");
                Vec::new()
            }
            None => Vec::new(),
        };
        self.apply_nht(nht);
        self.flush();
    }

    /// Work after a batch of session events.
    pub fn after_events(&mut self) {
        self.maybe_end_startup();
        let (work, eor) = self.trim_inputs();
        if self.trim.after_events(Instant::now(), work, eor) {
            super::memory::release_memory(&mut self.rib);
        }
    }

    /// Route operations so far and End-of-RIB markers held, for [`super::memory::Trim`].
    fn trim_inputs(&self) -> (u64, usize) {
        let c = &self.counters;
        let work = c.prefixes_announced + c.prefixes_withdrawn + c.fib_deltas;
        (work, self.peers.values().map(|p| p.inb.eor.len()).sum())
    }

    /// After a restart over a forwarding dataplane, at the end of the start-up phase: reconciles the
    /// pinned maps with the RIB.
    fn reconcile(&mut self, why: &str) {
        let fib: Vec<crate::rib::FibDelta> = self
            .rib
            .fib()
            .into_iter()
            .map(|(prefix, e)| crate::rib::FibDelta {
                prefix,
                entry: Some(e),
            })
            .collect();
        tracing::info!(
            prefixes = fib.len(),
            why,
            "first full FIB ready: reconciling the pinned dataplane"
        );
        let _ = self.rib.take_fib_deltas();
        let res = self.dataplane.as_mut().map(|dp| dp.reconcile(&fib));
        match res {
            Some(Ok(nht)) => {
                self.programmed = self.rib.fib_len();
                self.apply_nht(nht);
            }
            Some(Err(e)) => {
                tracing::error!("reconcile failed: {e:#}");
                self.dataplane_error = Some(format!("{e:#}"));
            }
            None => {}
        }
        self.flush();
    }

    pub fn on_tick(&mut self) {
        self.maybe_end_startup();
        let now = Instant::now();
        let names: Vec<String> = self.peers.keys().cloned().collect();
        for name in names {
            let Some(p) = self.peers.get_mut(&name) else {
                continue;
            };
            let actions = p.inb.tick(now, &mut self.rib, &p.nb);
            self.perform(&name, actions);
        }
        self.flush();
        self.export_held();
        // The first sync's IPv6 table is built in the background and joined here when idle; the
        // sorted routes it drops were freed after the End-of-RIB trim, so trim again then.
        let settled = self.dataplane.as_mut().is_some_and(|d| d.settle_load());
        let (work, eor) = self.trim_inputs();
        if self.trim.on_tick(now, work, eor) || settled {
            super::memory::release_memory(&mut self.rib);
        }
    }

    /// Re-reads the config file; an invalid file changes nothing.
    pub fn reload(&mut self) -> String {
        let path = self.opts.config_path.clone();
        let new = match config::load(&path) {
            Ok(l) => l,
            Err(errs) => {
                let text = errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::error!("reload rejected, running config kept: {text}");
                return format!("reload rejected, running config kept: {text}");
            }
        };
        let old: BTreeMap<String, Neighbor> = self
            .peers
            .iter()
            .map(|(k, p)| (k.clone(), p.nb.clone()))
            .collect();
        let mut added = 0;
        let mut removed = 0;
        let mut reset = 0;
        let mut updated = 0;
        let old_statics = std::mem::take(&mut self.loaded.config.statics);
        // Any change of a policy or list may change what a chain does, even under the same names.
        let policies_changed = self.loaded.config.policy_defs() != new.config.policy_defs();
        self.loaded = new;
        // ACLs or FlowSpec settings may have changed: rebuild the classifier's rule set.
        self.flow.changed = true;
        for name in old.keys() {
            if !self.loaded.neighbors.iter().any(|n| &n.name == name) {
                self.remove_peer(name, "removed from the configuration");
                removed += 1;
            }
        }
        for nb in self.loaded.neighbors.clone() {
            match old.get(&nb.name) {
                None => {
                    let name = nb.name.clone();
                    match self.add_peer(nb) {
                        Ok(()) => added += 1,
                        Err(e) => tracing::error!(peer = %name, error = %e, "cannot start peer"),
                    }
                }
                Some(o) if !o.same_session(&nb) => {
                    self.remove_peer(&nb.name, "session parameters changed");
                    let name = nb.name.clone();
                    match self.add_peer(nb) {
                        Ok(()) => reset += 1,
                        Err(e) => tracing::error!(peer = %name, error = %e, "cannot start peer"),
                    }
                }
                Some(o) => {
                    let import = self.import_ctx(&nb);
                    let policy_changed =
                        o.import != nb.import || (policies_changed && nb.import.is_some());
                    if let Some(p) = self.peers.get_mut(&nb.name) {
                        if nb.enabled != p.nb.enabled {
                            if nb.enabled {
                                p.handle.start()
                            } else {
                                p.handle.stop(Some("disabled in the configuration"))
                            }
                        }
                        p.nb = nb.clone();
                        p.inb.import = import;
                        // Import policy changed: ask the peer to send everything again (RFC 2918) so the
                        // new policy applies to every route, without resetting the session.
                        if (policy_changed || o != &nb) && p.established {
                            for f in &nb.families {
                                p.handle.refresh(family_of(*f));
                            }
                        }
                    }
                    updated += 1;
                }
            }
        }
        // Statics: withdraw the old ones, announce the new (the RIB emits FIB deltas only for real changes).
        for st in old_statics {
            self.rib.withdraw(self.static_peer, st.prefix, 0);
        }
        self.apply_statics();
        // `[graceful-restart] mode` may have changed: later connections advertise the new capability.
        self.push_gr_capability();
        // Export policies may have changed: re-evaluate every Adj-RIB-Out (only differences are sent).
        // While a restart defers our advertisements nobody has joined yet: the end of the restart
        // sends each session the table under the policies then in force.
        let established: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.established && !self.deferring())
            .map(|(n, _)| n.clone())
            .collect();
        for n in established {
            let Some(sid) = self
                .by_session
                .iter()
                .find(|(_, x)| **x == n)
                .map(|(k, _)| *k)
            else {
                continue;
            };
            if let Some(spec) = self.member_spec(sid) {
                let rr = self.rr_clients();
                let env = Env {
                    rib: &self.rib,
                    rr_clients: &rr,
                };
                let sends = self.adj.update_member(spec, &env);
                self.dispatch(sends);
            }
        }
        self.flow_respec();
        self.adj.track(&mut self.rib);
        let msg = format!(
            "reloaded {}: {added} peers added, {removed} removed, {reset} reset, {updated} updated in place",
            path.display()
        );
        tracing::info!("{msg}");
        msg
    }

    pub async fn shutdown(&mut self) {
        for p in self.peers.values() {
            p.handle.stop(Some("ribd shutting down"));
        }
        // Give the NOTIFICATIONs a moment to leave.
        for p in self.peers.values() {
            let _ =
                tokio::time::timeout(Duration::from_millis(500), p.handle.wait_for(State::Idle))
                    .await;
        }
        if let Some(dp) = self.dataplane.take() {
            dp.shutdown();
        }
    }

    pub fn on_request(&mut self, req: Request) {
        let resp = self.answer(req.kind);
        let _ = req.reply.send(resp);
    }

    fn answer(&mut self, kind: RequestKind) -> Response {
        match kind {
            RequestKind::Summary => Response::json(&self.summary()),
            RequestKind::Counters => Response::json(&self.api_counters()),
            RequestKind::Peers(None) => Response::json(
                &self
                    .peers
                    .values()
                    .map(|p| self.peer_view(p))
                    .collect::<Vec<_>>(),
            ),
            RequestKind::Peers(Some(name)) => match self.peers.get(&name) {
                Some(p) => Response::json(&self.peer_view(p)),
                None => Response::Error(
                    404,
                    format!("no peer named {name:?} (configured: {})", self.peer_names()),
                ),
            },
            RequestKind::Rib(fam, q) => match super::server::rib_page(self, fam, &q) {
                Ok(page) => Response::json(&page),
                Err(e) => Response::Error(400, e),
            },
            RequestKind::Route(prefix) => {
                let cands = self.rib.explain(prefix);
                if cands.is_empty() {
                    return Response::Error(404, format!("{prefix} is not in the RIB"));
                }
                let detail = api::RouteDetail {
                    prefix: prefix.to_string(),
                    candidates: cands
                        .iter()
                        .map(|c| api::Candidate {
                            path: rib_path(
                                &c.peer,
                                c.path_id,
                                c.best,
                                c.multipath,
                                c.stale,
                                &c.attrs,
                            ),
                            reachable: c.reachable,
                            igp_cost: c.igp_cost,
                            lost_at: c
                                .lost_at
                                .and_then(|s| serde_json::to_value(s).ok())
                                .and_then(|v| v.as_str().map(str::to_string)),
                            reason: c.reason.clone(),
                        })
                        .collect(),
                    fib: self.fib_route(prefix),
                };
                Response::json(&detail)
            }
            RequestKind::Fib(prefix, limit, after) => {
                Response::json(&self.fib_page(prefix, limit, after))
            }
            RequestKind::Lookup(addr, q) => Response::json(&self.lookup(addr, &q)),
            RequestKind::Stats => match &self.dataplane {
                Some(dp) => Response::json(&dp.stats()),
                None => Response::Error(
                    409,
                    format!(
                        "no dataplane: {}",
                        self.dataplane_error.clone().unwrap_or_default()
                    ),
                ),
            },
            RequestKind::Check => match &self.dataplane {
                Some(dp) => {
                    let expected: Vec<crate::rib::FibDelta> = self
                        .rib
                        .fib()
                        .into_iter()
                        .map(|(prefix, e)| crate::rib::FibDelta {
                            prefix,
                            entry: Some(e),
                        })
                        .collect();
                    Response::json(&dp.check(&expected))
                }
                None => Response::Error(
                    409,
                    format!(
                        "no dataplane to check: {}",
                        self.dataplane_error.clone().unwrap_or_default()
                    ),
                ),
            },
            RequestKind::PeerAction(name, action) => self.peer_action(&name, action),
            RequestKind::Reload => {
                let msg = self.reload();
                let ok = !msg.starts_with("reload rejected");
                if ok {
                    Response::json(&api::ActionResult { ok, message: msg })
                } else {
                    Response::Error(422, msg)
                }
            }
            RequestKind::Metrics => Response::Text(super::metrics::render(self)),
            RequestKind::FlowSpec => Response::json(&self.flowspec_table()),
            RequestKind::Acl => Response::json(&self.acl_table()),
        }
    }

    fn peer_names(&self) -> String {
        self.peers.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn peer_action(&mut self, name: &str, action: PeerAction) -> Response {
        let Some(p) = self.peers.get_mut(name) else {
            return Response::Error(
                404,
                format!("no peer named {name:?} (configured: {})", self.peer_names()),
            );
        };
        let msg = match action {
            PeerAction::Enable => {
                p.handle.start();
                p.nb.enabled = true;
                "enabled: the session will be (re)established".to_string()
            }
            PeerAction::Disable => {
                p.handle.stop(Some("disabled by operator"));
                p.nb.enabled = false;
                "disabled: Cease/Administrative Shutdown sent".to_string()
            }
            PeerAction::Reset => {
                p.handle.reset(Some("reset by operator"));
                "reset: Cease/Administrative Reset sent, reconnecting".to_string()
            }
            PeerAction::Refresh => {
                if !p.established {
                    return Response::Error(409, format!("peer {name} is not established"));
                }
                for f in &p.nb.families {
                    p.handle.refresh(family_of(*f));
                }
                "ROUTE-REFRESH sent".to_string()
            }
        };
        Response::json(&api::ActionResult {
            ok: true,
            message: format!("{name}: {msg}"),
        })
    }

    /// O(1): the API's readiness counters are polled while a table loads.
    pub fn summary(&self) -> api::Summary {
        let (p4, p6) = (self.rib.ipv4().len() as u64, self.rib.ipv6().len() as u64);
        let [n4, n6] = self.rib.path_count().map(|n| n as u64);
        // With a dataplane: what its maps hold (the RIB's table as of the last write; nothing during
        // the initial load). Without one, or while a restart waits to reconcile: the RIB's view.
        let [f4, f6] = match &self.dataplane {
            Some(dp) if !dp.is_pending() => self.programmed,
            _ => self.rib.fib_len(),
        }
        .map(|n| n as u64);
        let cfg = &self.loaded.config;
        api::Summary {
            version: env!("CARGO_PKG_VERSION").into(),
            router_id: cfg.router_id.to_string(),
            local_as: cfg.local_as,
            uptime_secs: self.started.elapsed().as_secs(),
            config_file: self.loaded.source.clone(),
            peers_configured: self.peers.len(),
            peers_established: self.peers.values().filter(|p| p.established).count(),
            rib: vec![
                api::AfiCount {
                    afi: "ipv4".into(),
                    prefixes: p4,
                    paths: n4,
                },
                api::AfiCount {
                    afi: "ipv6".into(),
                    prefixes: p6,
                    paths: n6,
                },
            ],
            attribute_sets: self.rib.attr_sets(),
            fib: vec![
                api::AfiCount {
                    afi: "ipv4".into(),
                    prefixes: f4,
                    paths: f4,
                },
                api::AfiCount {
                    afi: "ipv6".into(),
                    prefixes: f6,
                    paths: f6,
                },
            ],
            dataplane: match &self.dataplane {
                Some(dp) => dp.summary(&cfg.dataplane),
                None => api::DataplaneSummary {
                    enabled: false,
                    instance: cfg.dataplane.instance.clone(),
                    interfaces: Vec::new(),
                    error: self.dataplane_error.clone(),
                },
            },
            graceful_restart: self.gr_summary(),
        }
    }

    fn gr_summary(&self) -> api::GrSummary {
        let (r, f) = self.gr_bits();
        let now = Instant::now();
        let mode = self.loaded.config.graceful_restart.mode;
        api::GrSummary {
            mode: match mode {
                config::GrMode::Full => "full",
                config::GrMode::HelperOnly => "helper-only",
            }
            .into(),
            phase: match &self.startup {
                Some(st) if st.preserved.iter().any(|p| *p) => "restarting",
                Some(_) => "starting",
                None => "done",
            }
            .into(),
            restart_state: r && mode == config::GrMode::Full,
            forwarding_preserved: if mode == config::GrMode::Full {
                [("ipv4-unicast", f[0]), ("ipv6-unicast", f[1])]
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(n, _)| n.to_string())
                    .collect()
            } else {
                Vec::new()
            },
            deferring: self.deferring(),
            deadline_secs: self
                .startup
                .as_ref()
                .map(|st| st.deadline.saturating_duration_since(now).as_secs()),
            ended: self.startup_end.map(|(_, why)| why.to_string()),
            ended_after_secs: self
                .startup_end
                .map(|(t, _)| t.duration_since(self.started).as_secs_f64()),
        }
    }

    /// `/v1/counters`: running totals, no walk over the RIB.
    pub fn api_counters(&self) -> api::Counters {
        let (mut a4, mut a6) = (0, 0);
        for p in self.peers.values() {
            a4 += p.inb.v4.accepted;
            a6 += p.inb.v6.accepted;
        }
        let [f4, f6] = self.rib.fib_len().map(|n| n as u64);
        let afi = |afi: &str, prefixes: u64, paths: u64| api::AfiCount {
            afi: afi.into(),
            prefixes,
            paths,
        };
        let c = &self.counters;
        api::Counters {
            updates_in: c.updates_in,
            prefixes_announced: c.prefixes_announced,
            prefixes_withdrawn: c.prefixes_withdrawn,
            fib_batches: c.fib_batches,
            fib_deltas: c.fib_deltas,
            rib: vec![
                afi("ipv4", self.rib.ipv4().len() as u64, a4),
                afi("ipv6", self.rib.ipv6().len() as u64, a6),
            ],
            fib: vec![afi("ipv4", f4, f4), afi("ipv6", f6, f6)],
        }
    }

    /// Dataplane counters, when there is a dataplane.
    pub fn dataplane_stats(&self) -> Option<api::DataplaneStats> {
        self.dataplane.as_ref().map(|d| d.stats())
    }

    pub fn peer_views(&self) -> Vec<api::Peer> {
        self.peers.values().map(|p| self.peer_view(p)).collect()
    }

    fn peer_view(&self, p: &PeerRt) -> api::Peer {
        let st = p.handle.status();
        let caps = st
            .negotiated
            .as_ref()
            .map(capability_words)
            .unwrap_or_default();
        let m = st.messages;
        // Codec type numbers: 1 OPEN, 2 UPDATE, 3 NOTIFICATION, 4 KEEPALIVE, 5 ROUTE-REFRESH.
        let pick = |a: [u64; 6]| [a[1], a[2], a[3], a[4], a[5]];
        let held = |v4: bool| {
            p.inb
                .rejected
                .iter()
                .filter(|(pfx, _)| pfx.addr().is_ipv4() == v4)
                .count() as u64
        };
        let established = st.state == State::Established;
        let negotiated = |f: Family| {
            st.negotiated
                .as_ref()
                .is_some_and(|n| n.families.contains(&family_of(f)))
        };
        let state = |f: Family| -> String {
            if !established {
                "down"
            } else if !negotiated(f) {
                "not negotiated"
            } else {
                "active"
            }
            .into()
        };
        let fam = |name: &str, f: Family, c: &FamilyCounts| api::PeerFamily {
            afi: name.into(),
            received: c.accepted + held(name == "ipv4-unicast"),
            accepted: c.accepted,
            advertised: c.advertised,
            state: state(f),
            treat_as_withdraw: 0,
            afi_safi_disable: 0,
            last_error: None,
        };
        // Where the peer's kept paths are in its restart, and how many are stale (counted over
        // the tables only while it restarts).
        let stale = match p.inb.stale {
            Some(Stale::Gr { until, .. }) => Some(("graceful-restart", until)),
            Some(Stale::Llgr { until }) => Some(("long-lived", until)),
            None => None,
        };
        let stale_paths = if stale.is_some() {
            self.rib.stale_paths(p.inb.rib_id)
        } else {
            [0, 0]
        };
        let sid = self
            .by_session
            .iter()
            .find(|(_, n)| **n == p.nb.name)
            .map(|(k, _)| *k);
        let flow_adv = sid.map(|s| self.flow_out.advertised(s)).unwrap_or_default();
        let flow_stats = self.flow_stats.get(&p.nb.name);
        api::Peer {
            name: p.nb.name.clone(),
            address: p.nb.address,
            remote_as: p.nb.remote_as,
            local_as: p.nb.local_as,
            description: p.nb.description.clone(),
            kind: if p.nb.is_ebgp() {
                "ebgp".into()
            } else {
                "ibgp".into()
            },
            enabled: p.nb.enabled,
            state: st.state.to_string(),
            uptime_secs: st.uptime.map(|d| d.as_secs()),
            flaps: st.flaps,
            // The session's last error is stale once it is Established again (e.g. a connect that
            // failed while the peer's own connection won).
            last_error: if established {
                None
            } else {
                st.last_error.as_ref().map(|c| c.to_string())
            },
            last_down: self.last_down.get(&p.nb.name).cloned(),
            router_id: st.negotiated.as_ref().map(|n| n.peer_id.to_string()),
            hold_time: st.negotiated.as_ref().map(|n| n.hold_time),
            keepalive: st.negotiated.as_ref().map(|n| n.keepalive),
            capabilities: caps,
            families: p
                .nb
                .families
                .iter()
                .map(|f| match f {
                    Family::Ipv4Unicast => fam("ipv4-unicast", *f, &p.inb.v4),
                    Family::Ipv6Unicast => fam("ipv6-unicast", *f, &p.inb.v6),
                    Family::Ipv4Flowspec | Family::Ipv6Flowspec => {
                        let v6 = *f == Family::Ipv6Flowspec;
                        let i = usize::from(v6);
                        let n = self.flow.count_of(&p.nb.name, v6) as u64;
                        let disabled = flow_stats.and_then(|s| s.disabled[i].as_ref());
                        api::PeerFamily {
                            afi: if v6 { "ipv6-flowspec" } else { "ipv4-flowspec" }.into(),
                            received: n,
                            accepted: n,
                            advertised: flow_adv[i],
                            state: match disabled {
                                Some(_) if established => "disabled".into(),
                                _ => state(*f),
                            },
                            treat_as_withdraw: flow_stats.map_or(0, |s| s.treat_as_withdraw[i]),
                            afi_safi_disable: flow_stats.map_or(0, |s| s.afi_safi_disable[i]),
                            last_error: flow_stats.and_then(|s| s.last_error[i].clone()),
                        }
                    }
                })
                .collect(),
            messages: api::MessageCounts {
                received: pick(m.received),
                sent: pick(m.sent),
            },
            import: p.nb.import.clone().unwrap_or_default(),
            export: p.nb.export.clone().unwrap_or_default(),
            // A peer with only long-lived graceful restart on has a stale phase to show too.
            graceful_restart: (p.nb.graceful_restart || stale.is_some()).then(|| {
                let peer = st
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.graceful_restart.as_ref());
                api::PeerGr {
                    negotiated: peer.is_some(),
                    peer_restart_time: peer.map(|g| g.restart_time),
                    peer_restarting: peer.is_some_and(|g| g.restarting),
                    peer_forwarding: peer
                        .map(|g| {
                            g.families
                                .iter()
                                .filter(|(_, f)| *f)
                                .map(|(fam, _)| fam.to_string())
                                .collect()
                        })
                        .unwrap_or_default(),
                    end_of_rib_received: if established {
                        p.inb.eor.iter().map(|f| f.to_string()).collect()
                    } else {
                        Vec::new()
                    },
                    deferred: established && self.deferring(),
                    stale_phase: stale.map(|(phase, _)| phase.to_string()),
                    stale_remaining_secs: stale.map(|(_, until)| {
                        until.saturating_duration_since(Instant::now()).as_secs()
                    }),
                    stale_paths_ipv4: stale_paths[0],
                    stale_paths_ipv6: stale_paths[1],
                }
            }),
        }
    }

    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// Classifier counters by rule id: (packets, bytes, dropped packets).
    fn rule_counters(&self) -> HashMap<u64, (u64, u64, u64)> {
        match self.dataplane.as_ref() {
            Some(dp) if !self.flow_installed.is_empty() => match dp.rule_counters() {
                Ok(c) => c
                    .into_iter()
                    .map(|c| (c.id.0, (c.packets, c.bytes, c.dropped_packets)))
                    .collect(),
                Err(e) => {
                    tracing::warn!("reading classifier counters: {e:#}");
                    HashMap::new()
                }
            },
            _ => HashMap::new(),
        }
    }

    /// The config ACL rules with the classifier's counters.
    pub fn acl_table(&self) -> api::AclTable {
        let counters = self.rule_counters();
        let installed: std::collections::HashSet<u64> =
            self.flow_installed.iter().map(|r| r.id.0).collect();
        api::AclTable {
            rules: self
                .loaded
                .acls
                .iter()
                .enumerate()
                .map(|(order, a)| {
                    let c = counters.get(&a.rule.id.0).copied().unwrap_or_default();
                    api::AclRuleView {
                        order,
                        acl: a.acl.clone(),
                        name: a.name.clone(),
                        interfaces: a.interfaces.clone().unwrap_or_default(),
                        rule: a.text.clone(),
                        installed: installed.contains(&a.rule.id.0),
                        packets: c.0,
                        bytes: c.1,
                        dropped: c.2,
                    }
                })
                .collect(),
        }
    }

    /// The FlowSpec table as evaluated last, with the classifier's counters.
    pub fn flowspec_table(&self) -> api::FlowSpecTable {
        use fib_sync::fib_ebpf::acl::{Action, RateUnit};
        let counters = self.rule_counters();
        let installed: std::collections::HashSet<u64> =
            self.flow_installed.iter().map(|r| r.id.0).collect();
        let cfg = &self.loaded.config.flowspec;
        api::FlowSpecTable {
            validate: cfg.validate,
            enforce: cfg.enforce,
            rules: self
                .flow_view
                .iter()
                .enumerate()
                .map(|(order, e)| {
                    let mut sum = (0, 0, 0);
                    for r in &e.compiled {
                        if let Some(c) = counters.get(&r.id.0) {
                            sum = (sum.0 + c.0, sum.1 + c.1, sum.2 + c.2);
                        }
                    }
                    let effect = match e.translated.first() {
                        None => "none".to_string(),
                        Some(r) => {
                            let mut t = match r.action {
                                Action::Accept => "accept".to_string(),
                                Action::Drop => "drop".to_string(),
                                Action::RateLimit(l) => format!(
                                    "rate-limit {} {}",
                                    l.rate,
                                    if l.unit == RateUnit::Packets {
                                        "pps"
                                    } else {
                                        "bytes/s"
                                    }
                                ),
                            };
                            if let Some(d) = r.set_dscp {
                                t.push_str(&format!(", set dscp {d}"));
                            }
                            if !r.terminal {
                                t.push_str(", non-terminal");
                            }
                            t
                        }
                    };
                    api::FlowRule {
                        order,
                        family: match e.rule.family() {
                            bgp::wire::nlri::Family::V4 => "ipv4".into(),
                            bgp::wire::nlri::Family::V6 => "ipv6".into(),
                        },
                        rule: e.rule.to_string(),
                        peer: e.best.peer.clone(),
                        alternatives: e.alternatives,
                        actions: e.best.actions.iter().map(|a| a.to_string()).collect(),
                        effect,
                        feasible: e.feasible,
                        installed: !e.compiled.is_empty()
                            && e.compiled.iter().all(|r| installed.contains(&r.id.0)),
                        reason: e.reason.clone(),
                        packets: sum.0,
                        bytes: sum.1,
                        dropped: sum.2,
                    }
                })
                .collect(),
        }
    }

    /// Update groups and the shared exported attribute sets (count, bytes), for metrics.
    pub fn adj_out_stats(&self) -> (Vec<crate::adj_out::GroupStats>, (usize, usize)) {
        (self.adj.stats(), self.adj.attr_stats())
    }

    /// The peer name of an update-group member (session id).
    pub fn member_name(&self, m: u32) -> String {
        self.by_session
            .get(&m)
            .cloned()
            .unwrap_or_else(|| format!("session#{m}"))
    }

    pub fn peer_name_of(&self, id: crate::rib::table::PeerId) -> String {
        self.rib
            .peer(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("peer#{id}"))
    }

    fn fib_route(&self, prefix: IpNet) -> Option<api::FibRoute> {
        let entry = match prefix {
            IpNet::V4(n) => self.rib.ipv4().get(&n.trunc()),
            IpNet::V6(n) => self.rib.ipv6().get(&n.trunc()),
        }?;
        let fwd = entry.forwarding();
        let best = fwd.first()?;
        let local = self
            .rib
            .peer(best.peer)
            .is_some_and(|p| p.kind == PeerKind::Local);
        if local && best.attrs.next_hop().is_none() {
            return Some(api::FibRoute {
                prefix: prefix.to_string(),
                kind: "blackhole".into(),
                nexthops: vec![],
                backup: vec![],
                pathlist: None,
                group: None,
            });
        }
        let set = self.rib.fib_entry_of(prefix)?;
        let unresolved = |n: &FibNextHop| api::FibNextHop {
            address: n.addr,
            weight: n.weight,
            interface: None,
            mac: None,
            resolved: false,
            buckets: None,
        };
        let (nexthops, backup) = match set {
            FibEntry::Forward(s) => (
                s.primary.iter().map(unresolved).collect(),
                s.backup().iter().map(unresolved).collect(),
            ),
            FibEntry::Blackhole => (vec![], vec![]),
        };
        let mut r = api::FibRoute {
            prefix: prefix.to_string(),
            kind: "forward".into(),
            nexthops,
            backup,
            pathlist: None,
            group: None,
        };
        if let Some(dp) = &self.dataplane {
            dp.describe(&mut r);
        }
        Some(r)
    }

    fn fib_page(&self, prefix: Option<IpNet>, limit: usize, after: Option<String>) -> api::FibPage {
        let mut all = self.rib.fib();
        all.sort_by_key(|a| a.0);
        let total = all.len() as u64;
        let after: Option<IpNet> = after.and_then(|a| a.parse().ok());
        let mut routes = Vec::new();
        let mut next = None;
        for (p, _) in all
            .iter()
            .filter(|(p, _)| prefix.is_none_or(|q| q.contains(p)))
            .filter(|(p, _)| after.is_none_or(|a| *p > a))
        {
            if routes.len() >= limit {
                next = routes.last().map(|r: &api::FibRoute| r.prefix.clone());
                break;
            }
            if let Some(r) = self.fib_route(*p) {
                routes.push(r);
            }
        }
        api::FibPage {
            total,
            routes,
            next,
        }
    }

    fn lookup(&self, addr: IpAddr, q: &api::FlowQuery) -> api::Lookup {
        let best = (0..=if addr.is_ipv4() { 32 } else { 128 })
            .rev()
            .find_map(|len| {
                let p = IpNet::new(addr, len).ok()?.trunc();
                let present = match p {
                    IpNet::V4(n) => self.rib.ipv4().get(&n).is_some_and(|e| e.best().is_some()),
                    IpNet::V6(n) => self.rib.ipv6().get(&n).is_some_and(|e| e.best().is_some()),
                };
                present.then_some(p)
            });
        let rib = best.and_then(|p| super::server::rib_route(self, p, false));
        let fib = best.and_then(|p| self.fib_route(p));
        let flow = match (q.src, &fib, &self.dataplane) {
            (Some(src), Some(f), Some(dp)) => dp.flow(f, src, addr, q),
            _ => None,
        };
        api::Lookup {
            address: addr,
            rib,
            fib,
            flow,
        }
    }
}

/// One RIB path in the API's form.
pub fn rib_path(
    peer: &str,
    path_id: u32,
    best: bool,
    multipath: bool,
    stale: bool,
    a: &Attrs,
) -> api::RibPath {
    use crate::policy::community::{format_community, format_ext, format_large};
    api::RibPath {
        peer: peer.to_string(),
        path_id,
        best,
        multipath,
        next_hop: a.next_hop(),
        as_path: a.as_path().to_string(),
        origin: format!("{:?}", a.origin()).to_lowercase(),
        med: a.med(),
        local_pref: a.local_pref(),
        communities: a
            .communities()
            .iter()
            .map(|c| format_community(*c))
            .collect(),
        large_communities: a.large_communities().iter().map(format_large).collect(),
        ext_communities: a.ext_communities().iter().map(format_ext).collect(),
        stale,
    }
}

/// Our IPv4 and IPv6 addresses on the subnet that contains `peer` (for next-hop self).
fn local_addrs_towards(peer: IpAddr) -> (Option<Ipv4Addr>, Option<std::net::Ipv6Addr>) {
    let mut v4 = None;
    let mut v6 = None;
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    let mut peer_if: Option<String> = None;
    let mut all: Vec<(String, IpAddr)> = Vec::new();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return (None, None);
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            let m = (*cur).ifa_netmask;
            let name = std::ffi::CStr::from_ptr((*cur).ifa_name)
                .to_string_lossy()
                .into_owned();
            if !a.is_null() && !m.is_null() {
                let (addr, mask) = match (*a).sa_family as i32 {
                    libc::AF_INET => {
                        let s = &*(a as *const libc::sockaddr_in);
                        let n = &*(m as *const libc::sockaddr_in);
                        (
                            IpAddr::V4(Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr))),
                            IpAddr::V4(Ipv4Addr::from(u32::from_be(n.sin_addr.s_addr))),
                        )
                    }
                    libc::AF_INET6 => {
                        let s = &*(a as *const libc::sockaddr_in6);
                        let n = &*(m as *const libc::sockaddr_in6);
                        (
                            IpAddr::V6(s.sin6_addr.s6_addr.into()),
                            IpAddr::V6(n.sin6_addr.s6_addr.into()),
                        )
                    }
                    _ => {
                        cur = (*cur).ifa_next;
                        continue;
                    }
                };
                if let Ok(net) = IpNet::with_netmask(addr, mask)
                    && net.contains(&peer)
                {
                    peer_if = Some(name.clone());
                }
                all.push((name, addr));
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    for (name, addr) in all {
        if Some(&name) != peer_if.as_ref() {
            continue;
        }
        match addr {
            IpAddr::V4(a) if v4.is_none() => v4 = Some(a),
            IpAddr::V6(a) if v6.is_none() && !a.is_unicast_link_local() => v6 = Some(a),
            _ => {}
        }
    }
    (v4, v6)
}

/// Addresses configured on this namespace's interfaces (host routes for them go to the kernel).
fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match (*a).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        let v6 = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        if !v6.is_unicast_link_local() {
                            out.push(IpAddr::V6(v6));
                        }
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out.retain(|a| !a.is_loopback());
    out.sort_unstable();
    out.dedup();
    out
}

fn capability_words(n: &bgp::fsm::Negotiated) -> Vec<String> {
    let mut v = Vec::new();
    for f in &n.families {
        v.push(format!("multiprotocol {f}"));
    }
    if n.four_octet_as {
        v.push("4-octet AS".into());
    }
    if n.route_refresh {
        v.push("route refresh".into());
    }
    if n.enhanced_route_refresh {
        v.push("enhanced route refresh".into());
    }
    if n.extended_message {
        v.push("extended message".into());
    }
    for f in &n.add_path_rx {
        v.push(format!("add-path receive {f}"));
    }
    for f in &n.add_path_tx {
        v.push(format!("add-path send {f}"));
    }
    if let Some(g) = &n.graceful_restart {
        v.push(format!("graceful restart ({} s)", g.restart_time));
    }
    if n.long_lived_gr.is_some() {
        v.push("long-lived graceful restart".into());
    }
    v
}
