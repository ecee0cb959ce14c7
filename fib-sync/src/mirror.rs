//! Optional mirror of the FIB into a kernel routing table (rtnetlink), for locally generated traffic
//! and for packets the XDP forwarder passes up: the kernel then routes them as the maps do.
//!
//! ```text
//!   Syncer ──Cmd::Routes / Cmd::Nexthops (mpsc, never blocks)──► worker thread ──batched netlink──► kernel
//!                                                                  │ nexthop objects (RTM_NEWNEXTHOP, proto bgp):
//!                                                                  │   one per resolved BGP next-hop (gateway, oif),
//!                                                                  │   one group per next-hop set (weights)
//!                                                                  └ routes in the table: RTA_NH_ID = the set's group
//! ```
//!
//! A BGP next-hop dying is one kernel write: its nexthop object is deleted, the kernel drops it from
//! every group (and the routes of groups left empty). When it comes back, it is recreated, the groups
//! that contain it are replaced, and the routes of groups that had emptied are installed again.
//! Route kinds without next-hops: blackhole routes stay blackholes; pass-to-kernel and local prefixes
//! get no route here (the kernel's own tables decide). A next-hop set with no resolved member has no
//! route either. The worker coalesces whatever queued up since its last batch, so the sync engine
//! never waits for the kernel. At start the worker removes what a previous process left: nexthop
//! objects of its id range (with their routes) and blackhole routes of protocol bgp in the table.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ipnet::IpNet;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rustc_hash::FxHashMap;

use crate::SyncError;
use crate::types::{NhSet, PrefixMap, Route, RouteAction};

/// Settings of the kernel mirror.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Kernel routing table the routes go into (254 is `main`).
    pub table: u32,
    /// First kernel nexthop id the mirror owns; it uses ids `nh_id_base..nh_id_base + 2^24`.
    pub nh_id_base: u32,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            table: 254,
            nh_id_base: 0x5200_0000,
        }
    }
}

/// How the kernel reaches a BGP next-hop: egress interface and directly connected gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelNh {
    pub oif: u32,
    pub gateway: IpAddr,
}

enum Cmd {
    Routes(Vec<Route>),
    Nexthops(Vec<(IpAddr, Option<KernelNh>)>),
    Stop,
}

/// Counters of the worker (for metrics and tests).
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Netlink messages sent.
    pub messages: AtomicU64,
    /// Messages the kernel refused.
    pub errors: AtomicU64,
    /// Batches (sendmsg + ACKs) done.
    pub batches: AtomicU64,
}

/// Handle on the mirror worker. Dropping it stops the worker (routes stay in the kernel).
pub struct KernelMirror {
    tx: mpsc::Sender<Cmd>,
    job: Option<JoinHandle<()>>,
    stats: Arc<MirrorStats>,
    /// (commands queued, commands done): `wait_idle` waits for them to match.
    progress: Arc<(Mutex<(u64, u64)>, Condvar)>,
}

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_DELNEXTHOP: u16 = 105;
const RTM_GETNEXTHOP: u16 = 106;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ROOT: u16 = 0x100;
const NLM_F_MATCH: u16 = 0x200;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_TABLE: u16 = 15;
const RTA_NH_ID: u16 = 30;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_GROUP_TYPE: u16 = 3;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
/// `proto bgp`.
pub const RTPROT_BGP: u8 = 186;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
/// Messages per sendmsg (each ACKed).
const BATCH_BYTES: usize = 60 * 1024;
const ID_RANGE: u32 = 1 << 24;

impl KernelMirror {
    /// Opens a netlink socket in the calling thread's network namespace, removes what a previous
    /// mirror left in `cfg.table`, and starts the worker.
    pub fn start(cfg: MirrorConfig) -> Result<KernelMirror, SyncError> {
        if cfg.table == 0 || cfg.nh_id_base == 0 || cfg.nh_id_base.checked_add(ID_RANGE).is_none() {
            return Err(SyncError::Netlink(format!(
                "kernel mirror: table {} / nexthop id base {:#x} out of range",
                cfg.table, cfg.nh_id_base
            )));
        }
        let mut nl = Nl::open()?;
        let stats = Arc::new(MirrorStats::default());
        let mut w = Worker::new(cfg, stats.clone());
        w.cleanup(&mut nl)?;
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new((Mutex::new((0u64, 0u64)), Condvar::new()));
        let p = progress.clone();
        let job = std::thread::Builder::new()
            .name("kernel-mirror".into())
            .spawn(move || w.run(&mut nl, rx, &p))
            .map_err(|e| SyncError::Netlink(format!("spawning the kernel mirror: {e}")))?;
        Ok(KernelMirror {
            tx,
            job: Some(job),
            stats,
            progress,
        })
    }

    fn send(&self, c: Cmd) {
        let (m, _) = &*self.progress;
        if let Ok(mut g) = m.lock() {
            g.0 += 1;
        }
        // A stopped worker (netlink socket gone) only means the mirror lags; the maps are unaffected.
        let _ = self.tx.send(c);
    }

    /// Queues a batch of route changes (as given to [`crate::FibSync::apply`]).
    pub fn routes(&self, routes: Vec<Route>) {
        if !routes.is_empty() {
            self.send(Cmd::Routes(routes));
        }
    }

    /// Queues next-hop changes: `Some` reachable through (oif, gateway), `None` unreachable.
    pub fn nexthops(&self, changes: Vec<(IpAddr, Option<KernelNh>)>) {
        if !changes.is_empty() {
            self.send(Cmd::Nexthops(changes));
        }
    }

    /// Waits until every queued change has been written (tests, shutdown).
    pub fn wait_idle(&self) {
        let (m, cv) = &*self.progress;
        let Ok(mut g) = m.lock() else { return };
        while g.1 < g.0 {
            match cv.wait(g) {
                Ok(x) => g = x,
                Err(_) => return,
            }
        }
    }

    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }
}

impl Drop for KernelMirror {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(j) = self.job.take() {
            let _ = j.join();
        }
    }
}

/// What a prefix is in the kernel table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Set(NhSet),
    Blackhole,
}

struct Group {
    id: u32,
    refs: u64,
    /// Members as installed: (kernel nexthop id, weight); empty = no group in the kernel.
    members: Vec<(u32, u32)>,
}

struct Worker {
    cfg: MirrorConfig,
    stats: Arc<MirrorStats>,
    next_id: u32,
    free: Vec<u32>,
    /// BGP next-hop → (kernel nexthop id, how it is reached).
    nhs: FxHashMap<IpAddr, (u32, KernelNh)>,
    groups: FxHashMap<NhSet, Group>,
    routes: PrefixMap<IpNet, Want>,
    /// Netlink sequence numbers.
    seq: u32,
}

/// Messages of one worker batch, in the order they must reach the kernel.
#[derive(Default)]
struct Out {
    nh_new: Vec<Vec<u8>>,
    group_new: Vec<Vec<u8>>,
    route_new: Vec<Vec<u8>>,
    route_del: Vec<Vec<u8>>,
    group_del: Vec<Vec<u8>>,
    nh_del: Vec<Vec<u8>>,
}

impl Worker {
    fn new(cfg: MirrorConfig, stats: Arc<MirrorStats>) -> Worker {
        Worker {
            next_id: cfg.nh_id_base,
            cfg,
            stats,
            free: Vec::new(),
            nhs: FxHashMap::default(),
            groups: FxHashMap::default(),
            routes: PrefixMap::default(),
            seq: 0,
        }
    }

    fn alloc(&mut self) -> u32 {
        // Freed ids are reused only after their delete went out (a later batch).
        self.free.pop().unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id - 1
        })
    }

    fn run(
        &mut self,
        nl: &mut Nl,
        rx: mpsc::Receiver<Cmd>,
        progress: &(Mutex<(u64, u64)>, Condvar),
    ) {
        let mut freed: Vec<u32> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut cmds = vec![first];
            cmds.extend(rx.try_iter());
            let n = cmds.len() as u64;
            let mut out = Out::default();
            let mut stop = false;
            // Ids deleted in the previous batch are free now.
            self.free.append(&mut freed);
            for c in cmds {
                match c {
                    Cmd::Routes(r) => self.plan_routes(&r, &mut out, &mut freed),
                    Cmd::Nexthops(n) => self.plan_nexthops(&n, &mut out, &mut freed),
                    Cmd::Stop => stop = true,
                }
            }
            let msgs = out
                .nh_new
                .into_iter()
                .chain(out.group_new)
                .chain(out.route_new)
                .chain(out.route_del)
                .chain(out.group_del)
                .chain(out.nh_del);
            match nl.transact(msgs) {
                Ok((sent, errs)) => {
                    self.stats.messages.fetch_add(sent, Ordering::Relaxed);
                    self.stats.errors.fetch_add(errs, Ordering::Relaxed);
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kernel mirror: netlink batch failed");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let (m, cv) = progress;
            if let Ok(mut g) = m.lock() {
                g.1 += n;
            }
            cv.notify_all();
            if stop {
                return;
            }
        }
    }

    /// Members of `set` as kernel nexthops: (id, weight) of its resolved next-hops.
    fn members(&self, set: &NhSet) -> Vec<(u32, u32)> {
        set.members()
            .iter()
            .filter_map(|(a, w)| self.nhs.get(a).map(|(id, _)| (*id, *w)))
            .collect()
    }

    fn plan_routes(&mut self, routes: &[Route], out: &mut Out, freed: &mut Vec<u32>) {
        for r in routes {
            let p = r.prefix.trunc();
            let want = match &r.action {
                Some(RouteAction::Forward(s)) if !s.is_empty() => Some(Want::Set(s.clone())),
                Some(RouteAction::Blackhole) => Some(Want::Blackhole),
                // Pass-to-kernel, local, withdrawn: no route in this table.
                _ => None,
            };
            let old = match &want {
                Some(w) => self.routes.insert(p, w.clone()),
                None => self.routes.remove(&p),
            };
            if old == want {
                continue;
            }
            let old_installed = old.as_ref().is_some_and(|o| self.installed(o));
            let new_nh = match &want {
                Some(Want::Set(s)) => {
                    let g = self.group_ref(s, out);
                    (g.1).then_some(g.0)
                }
                Some(Want::Blackhole) => Some(0),
                None => None,
            };
            match new_nh {
                Some(id) => out.route_new.push(route_msg(
                    RTM_NEWROUTE,
                    self.cfg.table,
                    &p,
                    id,
                    &mut self.seq,
                )),
                None if old_installed => out.route_del.push(route_msg(
                    RTM_DELROUTE,
                    self.cfg.table,
                    &p,
                    0,
                    &mut self.seq,
                )),
                None => {}
            }
            if let Some(Want::Set(s)) = old {
                self.group_unref(&s, out, freed);
            }
        }
    }

    /// Whether a route of this kind is in the kernel now.
    fn installed(&self, w: &Want) -> bool {
        match w {
            Want::Blackhole => true,
            Want::Set(s) => self.groups.get(s).is_some_and(|g| !g.members.is_empty()),
        }
    }

    /// Takes a reference on the group of `set`, creating it; returns (id, live in the kernel).
    fn group_ref(&mut self, set: &NhSet, out: &mut Out) -> (u32, bool) {
        if let Some(g) = self.groups.get_mut(set) {
            g.refs += 1;
            return (g.id, !g.members.is_empty());
        }
        let id = self.alloc();
        let members = self.members(set);
        if !members.is_empty() {
            out.group_new
                .push(group_msg(id, &members, false, &mut self.seq));
        }
        let live = !members.is_empty();
        self.groups.insert(
            set.clone(),
            Group {
                id,
                refs: 1,
                members,
            },
        );
        (id, live)
    }

    fn group_unref(&mut self, set: &NhSet, out: &mut Out, freed: &mut Vec<u32>) {
        let Some(g) = self.groups.get_mut(set) else {
            return;
        };
        g.refs -= 1;
        if g.refs == 0 {
            let g = self.groups.remove(set).expect("present");
            if !g.members.is_empty() {
                out.group_del.push(nh_del_msg(g.id, &mut self.seq));
            }
            freed.push(g.id);
        }
    }

    fn plan_nexthops(
        &mut self,
        changes: &[(IpAddr, Option<KernelNh>)],
        out: &mut Out,
        freed: &mut Vec<u32>,
    ) {
        let mut changed: Vec<IpAddr> = Vec::new();
        for &(addr, k) in changes {
            let old = self.nhs.get(&addr).copied();
            match (old, k) {
                (Some((_, o)), Some(n)) if o == n => continue,
                (Some((id, _)), Some(n)) => {
                    // Moved: replace the object in place; groups keep pointing at the id.
                    out.nh_new.push(nh_msg(id, &n, &mut self.seq));
                    self.nhs.insert(addr, (id, n));
                    continue;
                }
                (Some((id, _)), None) => {
                    // Dead: one write; the kernel drops it from every group (and the routes of
                    // groups it empties).
                    out.nh_del.push(nh_del_msg(id, &mut self.seq));
                    freed.push(id);
                    self.nhs.remove(&addr);
                }
                (None, Some(n)) => {
                    let id = self.alloc();
                    out.nh_new.push(nh_msg(id, &n, &mut self.seq));
                    self.nhs.insert(addr, (id, n));
                }
                (None, None) => continue,
            }
            changed.push(addr);
        }
        if changed.is_empty() {
            return;
        }
        // Groups containing a changed next-hop: bring the kernel's group (and routes) up to date.
        let sets: Vec<NhSet> = self
            .groups
            .keys()
            .filter(|s| s.addrs().any(|a| changed.contains(&a)))
            .cloned()
            .collect();
        let mut revived: Vec<u32> = Vec::new();
        for s in sets {
            let members = self.members(&s);
            let Some(g) = self.groups.get_mut(&s) else {
                continue;
            };
            let was_live = !g.members.is_empty();
            let only_dropped = members.iter().all(|m| g.members.contains(m));
            if members.is_empty() {
                // The kernel deleted the group and its routes with the last member.
                g.members.clear();
                continue;
            }
            if was_live && only_dropped && members.len() < g.members.len() {
                // The kernel already removed the dead member from the group.
                g.members = members;
                continue;
            }
            if members != g.members || !was_live {
                out.group_new
                    .push(group_msg(g.id, &members, was_live, &mut self.seq));
                g.members = members;
                if !was_live {
                    revived.push(g.id);
                }
            }
        }
        if !revived.is_empty() {
            // Routes of groups that were empty go back in (a scan: recovery, not the failure path).
            for (p, w) in &self.routes {
                if let Want::Set(s) = w
                    && let Some(g) = self.groups.get(s)
                    && revived.contains(&g.id)
                {
                    out.route_new.push(route_msg(
                        RTM_NEWROUTE,
                        self.cfg.table,
                        p,
                        g.id,
                        &mut self.seq,
                    ));
                }
            }
        }
    }

    /// Removes what a previous mirror left: nexthop objects in our id range (the kernel deletes
    /// their routes) and protocol-bgp blackhole routes in our table.
    fn cleanup(&mut self, nl: &mut Nl) -> Result<(), SyncError> {
        let mut msgs = Vec::new();
        let base = self.cfg.nh_id_base;
        let mut nh_req = Vec::new();
        put_hdr(
            &mut nh_req,
            RTM_GETNEXTHOP,
            NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH,
            1,
        );
        nh_req.extend_from_slice(&[0u8; 8]);
        finish(&mut nh_req);
        for (ty, body) in nl.dump(&nh_req)? {
            if ty != RTM_NEWNEXTHOP || body.len() < 8 {
                continue;
            }
            if let Some(id) = attrs(&body[8..])
                .find(|(t, _)| *t == NHA_ID)
                .and_then(|(_, v)| u32_of(v))
                && id >= base
                && id - base < ID_RANGE
            {
                msgs.push((id, nh_del_msg(id, &mut self.seq)));
            }
        }
        // Groups before their members.
        msgs.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        let mut all: Vec<Vec<u8>> = msgs.into_iter().map(|(_, m)| m).collect();
        for family in [AF_INET, AF_INET6] {
            let mut req = Vec::new();
            put_hdr(
                &mut req,
                RTM_GETROUTE,
                NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH,
                2,
            );
            req.extend_from_slice(&[family, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            finish(&mut req);
            for (ty, body) in nl.dump(&req)? {
                if ty != RTM_NEWROUTE || body.len() < 12 {
                    continue;
                }
                let (fam, dst_len, proto, kind) = (body[0], body[1], body[5], body[7]);
                let mut table = u32::from(body[4]);
                let mut dst: Option<IpAddr> = None;
                for (t, v) in attrs(&body[12..]) {
                    match t {
                        RTA_TABLE => table = u32_of(v).unwrap_or(table),
                        RTA_DST if v.len() == 4 => {
                            dst = Some(IpAddr::from(<[u8; 4]>::try_from(v).expect("4 bytes")))
                        }
                        RTA_DST if v.len() == 16 => {
                            dst = Some(IpAddr::from(<[u8; 16]>::try_from(v).expect("16 bytes")))
                        }
                        _ => {}
                    }
                }
                if table != self.cfg.table || proto != RTPROT_BGP || kind != RTN_BLACKHOLE {
                    continue;
                }
                let dst = dst.unwrap_or(if fam == AF_INET {
                    IpAddr::from([0u8; 4])
                } else {
                    IpAddr::from([0u8; 16])
                });
                if let Ok(p) = IpNet::new(dst, dst_len) {
                    all.push(route_msg(
                        RTM_DELROUTE,
                        self.cfg.table,
                        &p,
                        0,
                        &mut self.seq,
                    ));
                }
            }
        }
        if !all.is_empty() {
            let n = all.len();
            nl.transact(all.into_iter())?;
            tracing::info!(
                table = self.cfg.table,
                objects = n,
                "kernel mirror: removed what a previous process left"
            );
        }
        Ok(())
    }
}

// ---- netlink encoding (rtnetlink has no nexthop-object support in netlink-packet-route 0.34) ----

fn put_hdr(b: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) {
    b.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by `finish`
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
}

fn put_attr(b: &mut Vec<u8>, ty: u16, v: &[u8]) {
    b.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(v);
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

fn finish(b: &mut [u8]) {
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_ne_bytes());
}

fn next_seq(seq: &mut u32) -> u32 {
    *seq = seq.wrapping_add(1).max(16);
    *seq
}

fn ip_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn family(a: &IpAddr) -> u8 {
    if a.is_ipv4() { AF_INET } else { AF_INET6 }
}

/// RTM_NEWROUTE (replace) through nexthop object `nh` (0: blackhole), or RTM_DELROUTE.
fn route_msg(ty: u16, table: u32, p: &IpNet, nh: u32, seq: &mut u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    let flags = if ty == RTM_NEWROUTE {
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_REQUEST | NLM_F_ACK
    };
    put_hdr(&mut b, ty, flags, next_seq(seq));
    let addr = p.network();
    let kind = if nh == 0 { RTN_BLACKHOLE } else { RTN_UNICAST };
    let t8 = if table < 256 { table as u8 } else { 252 }; // RT_TABLE_COMPAT, RTA_TABLE says which
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope (universe), type, flags
    b.extend_from_slice(&[family(&addr), p.prefix_len(), 0, 0, t8, RTPROT_BGP, 0, kind]);
    b.extend_from_slice(&0u32.to_ne_bytes());
    put_attr(&mut b, RTA_TABLE, &table.to_ne_bytes());
    put_attr(&mut b, RTA_DST, &ip_bytes(&addr));
    if ty == RTM_NEWROUTE && nh != 0 {
        put_attr(&mut b, RTA_NH_ID, &nh.to_ne_bytes());
    }
    finish(&mut b);
    b
}

/// RTM_NEWNEXTHOP (replace) for one gateway.
fn nh_msg(id: u32, k: &KernelNh, seq: &mut u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(48);
    put_hdr(
        &mut b,
        RTM_NEWNEXTHOP,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        next_seq(seq),
    );
    // nhmsg: family, scope, protocol, resvd, flags
    b.extend_from_slice(&[family(&k.gateway), 0, RTPROT_BGP, 0]);
    b.extend_from_slice(&0u32.to_ne_bytes());
    put_attr(&mut b, NHA_ID, &id.to_ne_bytes());
    put_attr(&mut b, NHA_OIF, &k.oif.to_ne_bytes());
    put_attr(&mut b, NHA_GATEWAY, &ip_bytes(&k.gateway));
    finish(&mut b);
    b
}

/// RTM_NEWNEXTHOP for a multipath group (weights 1..=256).
fn group_msg(id: u32, members: &[(u32, u32)], replace: bool, seq: &mut u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(48 + 8 * members.len());
    let mut flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    if replace {
        flags |= NLM_F_REPLACE;
    }
    put_hdr(&mut b, RTM_NEWNEXTHOP, flags, next_seq(seq));
    b.extend_from_slice(&[0, 0, RTPROT_BGP, 0]);
    b.extend_from_slice(&0u32.to_ne_bytes());
    put_attr(&mut b, NHA_ID, &id.to_ne_bytes());
    // struct nexthop_grp { u32 id; u8 weight (weight - 1); u8 weight_high; u16 resvd }
    let mut g = Vec::with_capacity(8 * members.len());
    for &(nh, w) in members {
        g.extend_from_slice(&nh.to_ne_bytes());
        g.push((w.clamp(1, 256) - 1) as u8);
        g.extend_from_slice(&[0, 0, 0]);
    }
    put_attr(&mut b, NHA_GROUP, &g);
    put_attr(&mut b, NHA_GROUP_TYPE, &0u16.to_ne_bytes()); // NEXTHOP_GRP_TYPE_MPATH
    finish(&mut b);
    b
}

fn nh_del_msg(id: u32, seq: &mut u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    put_hdr(
        &mut b,
        RTM_DELNEXTHOP,
        NLM_F_REQUEST | NLM_F_ACK,
        next_seq(seq),
    );
    b.extend_from_slice(&[0u8; 8]);
    put_attr(&mut b, NHA_ID, &id.to_ne_bytes());
    finish(&mut b);
    b
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

/// Netlink attributes in `b`: (type without flag bits, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let v = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, v))
    })
}

/// Messages in a received buffer: (type, seq, body).
fn messages(buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4")) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4"));
        out.push((ty, seq, &buf[off + 16..off + len]));
        off += (len + 3) & !3;
    }
    out
}

struct Nl {
    sock: Socket,
    rbuf: Vec<u8>,
}

impl Nl {
    fn open() -> Result<Nl, SyncError> {
        let e = |what: &str, e: std::io::Error| {
            SyncError::Netlink(format!("kernel mirror {what}: {e}"))
        };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|x| e("socket", x))?;
        sock.bind_auto().map_err(|x| e("bind", x))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|x| e("connect", x))?;
        let _ = sock.set_rx_buf_sz(4 << 20);
        Ok(Nl {
            sock,
            rbuf: vec![0u8; 1 << 17],
        })
    }

    /// Sends `msgs` packed into ~60 KiB sendmsgs, reading every ACK; returns (sent, refused).
    fn transact(&mut self, msgs: impl Iterator<Item = Vec<u8>>) -> Result<(u64, u64), SyncError> {
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES + 4096);
        let (mut pending, mut sent, mut errs) = (0u64, 0u64, 0u64);
        for m in msgs {
            if !buf.is_empty() && buf.len() + m.len() > BATCH_BYTES {
                errs += self.flush(&mut buf, &mut pending)?;
            }
            buf.extend_from_slice(&m);
            pending += 1;
            sent += 1;
        }
        errs += self.flush(&mut buf, &mut pending)?;
        Ok((sent, errs))
    }

    fn flush(&mut self, buf: &mut Vec<u8>, pending: &mut u64) -> Result<u64, SyncError> {
        if *pending == 0 {
            return Ok(0);
        }
        self.sock
            .send(buf, 0)
            .map_err(|e| SyncError::Netlink(format!("kernel mirror send: {e}")))?;
        buf.clear();
        let mut errs = 0;
        while *pending > 0 {
            let n = self
                .sock
                .recv(&mut &mut self.rbuf[..], 0)
                .map_err(|e| SyncError::Netlink(format!("kernel mirror recv: {e}")))?;
            for (ty, _, body) in messages(&self.rbuf[..n]) {
                if ty == NLMSG_ERROR {
                    *pending = pending.saturating_sub(1);
                    let code = body
                        .get(..4)
                        .map_or(0, |c| i32::from_ne_bytes(c.try_into().expect("4")));
                    if code != 0 {
                        errs += 1;
                        tracing::debug!(
                            errno = -code,
                            "kernel mirror: the kernel refused a change"
                        );
                    }
                }
            }
        }
        Ok(errs)
    }

    /// A dump request; returns every reply message (type, body).
    fn dump(&mut self, req: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, SyncError> {
        self.sock
            .send(req, 0)
            .map_err(|e| SyncError::Netlink(format!("kernel mirror dump: {e}")))?;
        let mut out = Vec::new();
        loop {
            let n = self
                .sock
                .recv(&mut &mut self.rbuf[..], 0)
                .map_err(|e| SyncError::Netlink(format!("kernel mirror dump: {e}")))?;
            for (ty, _, body) in messages(&self.rbuf[..n]) {
                match ty {
                    NLMSG_DONE => return Ok(out),
                    // A kernel without nexthop objects answers the dump with an error.
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map_or(0, |c| i32::from_ne_bytes(c.try_into().expect("4")));
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(SyncError::Netlink(format!(
                            "kernel mirror dump: {}",
                            std::io::Error::from_raw_os_error(-code)
                        )));
                    }
                    _ => out.push((ty, body.to_vec())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_padded_and_their_length_patched() {
        let mut seq = 0;
        let m = group_msg(7, &[(1, 1), (2, 300)], false, &mut seq);
        assert_eq!(m.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWNEXTHOP);
        let a: Vec<(u16, Vec<u8>)> = attrs(&m[24..]).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(a[0], (NHA_ID, 7u32.to_ne_bytes().to_vec()));
        assert_eq!(a[1].0, NHA_GROUP);
        assert_eq!(a[1].1[4], 0, "weight 1 is encoded as 0");
        assert_eq!(a[1].1[12], 255, "weights are capped at 256");
        let r = route_msg(
            RTM_NEWROUTE,
            1000,
            &"10.0.0.0/8".parse().unwrap(),
            7,
            &mut seq,
        );
        let a: Vec<u16> = attrs(&r[28..]).map(|(t, _)| t).collect();
        assert_eq!(a, vec![RTA_TABLE, RTA_DST, RTA_NH_ID]);
        assert_eq!(r[16 + 4], 252, "tables above 255 go in RTA_TABLE");
    }
}
