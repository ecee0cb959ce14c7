//! Adj-RIB-Out per update group: peers whose export context is identical share one computed
//! Adj-RIB-Out and one encoding of every UPDATE; MinRouteAdvertisementInterval; ADD-PATH send.
//!
//! ```text
//!   Loc-RIB changes ──► for each group: export once per prefix (policy, eBGP/iBGP/RR rules)
//!                          │   group table: prefix → [(tx path id, source peer, exported attrs)]
//!                          ▼   diff old → new, per audience: All | Except(member) | Only(member)
//!                       UPDATEs packed per attribute set, encoded once per audience ──► Send { to, bytes }
//!   MRAI: announcements inside the interval wait (only the last state is sent when it ends);
//!         withdrawals go at once.
//! ```
//!
//! Sans-IO: time is an argument, the output is encoded bytes and the members they go to. The daemon
//! (`daemon::core`) writes them to the sessions.
//!
//! **Groups.** The group key is everything the exported attributes and their encoding depend on: the
//! export policy chain (by identity), eBGP/iBGP, route-reflector client, next-hop self and our local
//! addresses (for next-hop self), the families, the ADD-PATH send mode per family, MRAI, LLGR, and the
//! codec context (4-octet AS, ADD-PATH, message size, extended next-hop). The peer's address and AS are in
//! the key only when the policy looks at them ([`crate::policy::Policy::depends_on_peer`]).
//!
//! **Per-member state** is only what cannot be shared: a member never receives its own routes (RFC 4271
//! §9.1.3 "never back to the source"). The group's table records the source peer of each exported path,
//! so what a member has is "every path of the table whose source is not this member"; no per-member
//! table exists. A change whose source is a member goes to the audience `Except(member)` (and a
//! withdrawal to `Only(member)` when that member had the previous path). Each audience's UPDATEs are
//! encoded once and the same bytes are queued to every member of it.
//!
//! **Joining.** A member that joins (session up) or asks for a refresh gets the group's table dumped to it
//! alone, then End-of-RIB; from then on it receives the group's shared UPDATEs. A group is created with
//! its first member and computed from the whole Loc-RIB; it is dropped with its last.
//!
//! **MRAI** (RFC 4271 §9.2.1.1) is per group (members share the key, so the interval): after a batch that
//! announced something, announcements are held until the interval ends; a held prefix is recomputed
//! from the Loc-RIB at that time, so several changes inside the interval produce one UPDATE with the
//! final state. Withdrawals are never held (as FRR and most implementations do). No jitter is applied.
//!
//! **ADD-PATH send** (RFC 7911): with a mode negotiated for a family, every selected path of a prefix is
//! exported on its own with a path identifier: `All` (every path with a reachable next-hop), `Best(n)`
//! (the first n in decision order) or `Ecmp` (the multipath set). Path identifiers are allocated per
//! (source peer, received path id) and never change, so a path keeps its id for as long as it exists
//! and a withdrawal names exactly that path; ids are unique per prefix because one (source peer,
//! received id) pair is at most one path of a prefix.

pub mod flowspec;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use bgp::wire::{AfiSafi, Context as WireCtx, Nlri, Update};
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::export::{ExportCtx, Source, announce_nlri, export_shared, withdraw_nlri};
use crate::rib::Rib;
use crate::rib::attrs::{AttrRef, AttrStore, community};
use crate::rib::table::PeerId;

/// The daemon's name for a member (its session id).
pub type MemberId = u32;

/// Which paths of a prefix are advertised with ADD-PATH (per neighbour and family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AddPathSend {
    /// Every path with a reachable next-hop.
    All,
    /// The best `n` paths in decision order.
    Best(u8),
    /// The multipath (ECMP/UCMP) set.
    Ecmp,
}

impl TryFrom<String> for AddPathSend {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "all" => Ok(AddPathSend::All),
            "ecmp" => Ok(AddPathSend::Ecmp),
            _ => s
                .strip_prefix("best-")
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| *n >= 1)
                .map(AddPathSend::Best)
                .ok_or_else(|| {
                    format!("expected \"all\", \"ecmp\" or \"best-N\" (N 1-255), found {s:?}")
                }),
        }
    }
}

impl From<AddPathSend> for String {
    fn from(m: AddPathSend) -> String {
        match m {
            AddPathSend::All => "all".into(),
            AddPathSend::Ecmp => "ecmp".into(),
            AddPathSend::Best(n) => format!("best-{n}"),
        }
    }
}

/// Everything about a session that decides what it is sent.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub id: MemberId,
    /// The peer's id in the RIB (to recognise its own routes).
    pub rib_peer: PeerId,
    pub ctx: ExportCtx,
    /// Families exported: [IPv4 unicast, IPv6 unicast].
    pub families: [bool; 2],
    /// ADD-PATH send mode per family, when negotiated in the send direction.
    pub add_path: [Option<AddPathSend>; 2],
    pub mrai: Duration,
    /// The peer negotiated long-lived graceful restart: LLGR-stale routes may be sent to it (RFC 9494 §4.5).
    pub llgr: bool,
    /// The session's codec context (negotiated).
    pub wire: WireCtx,
}

/// What the Loc-RIB side of an export needs besides the RIB.
pub struct Env<'a> {
    pub rib: &'a Rib,
    /// RIB peers that are our route-reflector clients.
    pub rr_clients: &'a [PeerId],
}

/// Encoded UPDATEs and the members they go to (in order; one member's sends keep their order).
#[derive(Debug, Clone)]
pub struct Send {
    pub to: Vec<MemberId>,
    pub bytes: Bytes,
    /// BGP messages in `bytes`.
    pub messages: usize,
}

/// Size and membership of one group, for metrics.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    pub members: Vec<MemberId>,
    /// Paths in the group's Adj-RIB-Out per family.
    pub paths: [u64; 2],
    /// Announcements held by MRAI.
    pub held: usize,
    /// Bytes of the group's table (entries, spilled path lists, held set).
    pub bytes: usize,
    /// UPDATE messages encoded for this group (each encoded once whatever the number of members).
    pub messages_encoded: u64,
    /// Messages queued to members (encoded messages × recipients).
    pub messages_sent: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct GroupKey {
    ebgp: bool,
    local_as: u32,
    router_id: Ipv4Addr,
    rr_client: bool,
    next_hop_self: bool,
    local_v4: Option<Ipv4Addr>,
    local_v6: Option<Ipv6Addr>,
    policy: Option<Vec<usize>>,
    peer: Option<(IpAddr, u32)>,
    families: [bool; 2],
    add_path: [Option<AddPathSend>; 2],
    mrai: Duration,
    llgr: bool,
    wire: WireCtx,
}

impl GroupKey {
    fn of(s: &MemberSpec) -> GroupKey {
        let c = &s.ctx;
        let peer_dependent = c
            .policy
            .as_ref()
            .is_some_and(|ch| ch.iter().any(|p| p.depends_on_peer()));
        GroupKey {
            ebgp: c.ebgp,
            local_as: c.local_as,
            router_id: c.router_id,
            rr_client: c.rr_client,
            next_hop_self: c.next_hop_self,
            local_v4: c.local_v4,
            local_v6: c.local_v6,
            policy: c.policy.as_ref().map(|ch| {
                ch.iter()
                    .map(|p| std::sync::Arc::as_ptr(p) as usize)
                    .collect()
            }),
            peer: peer_dependent.then_some((c.peer_addr, c.peer_as)),
            families: s.families,
            add_path: s.add_path,
            mrai: s.mrai,
            llgr: s.llgr,
            wire: s.wire,
        }
    }
}

/// One exported path.
#[derive(Debug, Clone)]
struct OutPath {
    /// Path identifier on the wire (0 without ADD-PATH).
    id: u32,
    src: PeerId,
    attrs: AttrRef,
}

type OutPaths = SmallVec<[OutPath; 1]>;

#[derive(Debug)]
struct Member {
    id: MemberId,
    rib_peer: PeerId,
    /// Paths of the table whose source is this member (not sent to it), per family.
    own: [u64; 2],
}

#[derive(Debug)]
struct Group {
    key: GroupKey,
    ctx: ExportCtx,
    members: Vec<Member>,
    table: FxHashMap<IpNet, OutPaths>,
    /// Heap path slots of spilled entries (memory accounting).
    spilled: usize,
    paths: [u64; 2],
    held: FxHashSet<IpNet>,
    /// Announcements wait until this time (MRAI).
    hold_until: Option<Instant>,
    encoded: u64,
    sent: u64,
}

impl Group {
    fn member_of(&self, src: PeerId) -> Option<MemberId> {
        self.members
            .iter()
            .find(|m| m.rib_peer == src)
            .map(|m| m.id)
    }

    fn own_mut(&mut self, src: PeerId) -> Option<&mut [u64; 2]> {
        self.members
            .iter_mut()
            .find(|m| m.rib_peer == src)
            .map(|m| &mut m.own)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Audience {
    All,
    Except(MemberId),
    Only(MemberId),
}

/// NLRI per family: [IPv4, IPv6].
type PerFamily = [Vec<Nlri>; 2];

/// UPDATE contents being collected for one group, per audience.
#[derive(Default)]
struct Batch {
    withdraw: Vec<(Audience, PerFamily)>,
    withdraw_at: FxHashMap<Audience, usize>,
    announce: Vec<((Audience, AttrRef), PerFamily)>,
    announce_at: FxHashMap<(Audience, AttrRef), usize>,
}

impl Batch {
    fn withdraw(&mut self, aud: Audience, n: Nlri) {
        let i = *self.withdraw_at.entry(aud).or_insert_with(|| {
            self.withdraw.push((aud, Default::default()));
            self.withdraw.len() - 1
        });
        self.withdraw[i].1[afi(&n.prefix)].push(n);
    }

    fn announce(&mut self, aud: Audience, a: &AttrRef, n: Nlri) {
        let key = (aud, a.clone());
        let i = match self.announce_at.get(&key) {
            Some(i) => *i,
            None => {
                self.announce.push((key.clone(), Default::default()));
                self.announce_at.insert(key, self.announce.len() - 1);
                self.announce.len() - 1
            }
        };
        self.announce[i].1[afi(&n.prefix)].push(n);
    }

    fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }
}

fn afi(p: &IpNet) -> usize {
    usize::from(!p.addr().is_ipv4())
}

/// All update groups and the attribute sets of their Adj-RIBs-Out.
#[derive(Debug, Default)]
pub struct AdjOut {
    groups: Vec<Option<Group>>,
    member_group: FxHashMap<MemberId, usize>,
    attrs: AttrStore,
    /// ADD-PATH identifiers: (source peer, received path id) → our path id.
    tx_ids: FxHashMap<(PeerId, u32), u32>,
}

impl AdjOut {
    pub fn new() -> AdjOut {
        AdjOut::default()
    }

    /// True when some group advertises several paths per prefix (the RIB must then report every
    /// change of a prefix's candidates, see [`Rib::set_track_all_changes`]).
    pub fn needs_all_changes(&self) -> bool {
        self.groups
            .iter()
            .flatten()
            .any(|g| g.key.add_path.iter().any(Option::is_some))
    }

    /// True when some group exports anything. Groups of eBGP peers without an export policy (RFC
    /// 8212) export nothing, and with only such groups the RIB's best-path changes concern no one.
    pub fn wants_changes(&self) -> bool {
        self.groups
            .iter()
            .flatten()
            .any(|g| !g.ctx.exports_nothing())
    }

    /// Tells the RIB which changes to collect for [`AdjOut::changes`]: none while no group exports
    /// anything (a full-table load from eBGP peers with no export policy would otherwise queue,
    /// sort and discard a best-path change per prefix and path), every candidate change when a
    /// group sends several paths per prefix, best-path changes otherwise. Call after every change
    /// of membership. A group that starts exporting is filled from the RIB when it forms
    /// ([`AdjOut::join`], [`AdjOut::update_member`]), so it needs no change from before.
    pub fn track(&self, rib: &mut crate::rib::Rib) {
        rib.set_track_best(self.wants_changes());
        rib.set_track_all_changes(self.needs_all_changes());
    }

    pub fn is_member(&self, m: MemberId) -> bool {
        self.member_group.contains_key(&m)
    }

    /// Paths `m` currently has been sent, per family.
    pub fn advertised(&self, m: MemberId) -> [u64; 2] {
        let Some(g) = self
            .member_group
            .get(&m)
            .and_then(|&i| self.groups[i].as_ref())
        else {
            return [0, 0];
        };
        let own = g
            .members
            .iter()
            .find(|x| x.id == m)
            .map(|x| x.own)
            .unwrap_or_default();
        [g.paths[0] - own[0], g.paths[1] - own[1]]
    }

    /// The members sharing `m`'s group (itself included).
    pub fn group_of(&self, m: MemberId) -> Vec<MemberId> {
        self.member_group
            .get(&m)
            .and_then(|&i| self.groups[i].as_ref())
            .map(|g| g.members.iter().map(|x| x.id).collect())
            .unwrap_or_default()
    }

    /// A session came up: `spec.id` joins the group of its key (created from the Loc-RIB when new) and
    /// is sent the group's table and End-of-RIB.
    pub fn join(&mut self, spec: MemberSpec, env: &Env<'_>) -> Vec<Send> {
        if self.is_member(spec.id) {
            self.leave(spec.id);
        }
        let id = spec.id;
        self.join_quiet(spec, env);
        self.dump(id, true)
    }

    fn join_quiet(&mut self, spec: MemberSpec, env: &Env<'_>) -> usize {
        let key = GroupKey::of(&spec);
        let gi = match self
            .groups
            .iter()
            .position(|g| g.as_ref().is_some_and(|g| g.key == key))
        {
            Some(i) => i,
            None => {
                let g = Group {
                    key,
                    ctx: spec.ctx.clone(),
                    members: Vec::new(),
                    table: FxHashMap::default(),
                    spilled: 0,
                    paths: [0, 0],
                    held: FxHashSet::default(),
                    hold_until: None,
                    encoded: 0,
                    sent: 0,
                };
                let gi = match self.groups.iter().position(Option::is_none) {
                    Some(i) => {
                        self.groups[i] = Some(g);
                        i
                    }
                    None => {
                        self.groups.push(Some(g));
                        self.groups.len() - 1
                    }
                };
                let mut all: Vec<IpNet> = Vec::new();
                if spec.families[0] {
                    all.extend(env.rib.ipv4().iter().map(|(k, _)| IpNet::V4(*k)));
                }
                if spec.families[1] {
                    all.extend(env.rib.ipv6().iter().map(|(k, _)| IpNet::V6(*k)));
                }
                let mut batch = Batch::default();
                for p in all {
                    let new = self.wanted(gi, p, env);
                    self.apply(gi, p, new, false, &mut batch);
                }
                gi
            }
        };
        let g = self.groups[gi].as_mut().expect("group just found");
        let mut own = [0u64; 2];
        for (p, paths) in &g.table {
            own[afi(p)] += paths.iter().filter(|x| x.src == spec.rib_peer).count() as u64;
        }
        g.members.push(Member {
            id: spec.id,
            rib_peer: spec.rib_peer,
            own,
        });
        self.member_group.insert(spec.id, gi);
        gi
    }

    /// A session went down: the member leaves its group (dropped with its last member).
    pub fn leave(&mut self, m: MemberId) {
        let Some(gi) = self.member_group.remove(&m) else {
            return;
        };
        let Some(g) = self.groups[gi].as_mut() else {
            return;
        };
        g.members.retain(|x| x.id != m);
        if g.members.is_empty()
            && let Some(g) = self.groups[gi].take()
        {
            for (_, paths) in g.table {
                for p in paths {
                    self.attrs.release(p.attrs);
                }
            }
        }
    }

    /// ROUTE-REFRESH from `m`: its view of the group's table again, then End-of-RIB.
    pub fn refresh(&mut self, m: MemberId) -> Vec<Send> {
        self.dump(m, true)
    }

    /// The table as `m` sees it, to `m` alone.
    fn dump(&mut self, m: MemberId, end_of_rib: bool) -> Vec<Send> {
        let Some(&gi) = self.member_group.get(&m) else {
            return Vec::new();
        };
        let Some(g) = self.groups[gi].as_ref() else {
            return Vec::new();
        };
        let Some(me) = g.members.iter().find(|x| x.id == m) else {
            return Vec::new();
        };
        let mut batch = Batch::default();
        let mut keys: Vec<&IpNet> = g.table.keys().collect();
        keys.sort_unstable();
        for p in keys {
            let ap = g.key.add_path[afi(p)].is_some();
            for x in g.table[p].iter().filter(|x| x.src != me.rib_peer) {
                batch.announce(Audience::Only(m), &x.attrs, nlri(*p, x.id, ap));
            }
        }
        let mut out = Vec::new();
        let eor: Vec<Update> = if end_of_rib {
            [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
                .into_iter()
                .zip(g.key.families)
                .filter(|(_, on)| *on)
                .map(|(f, _)| Update::end_of_rib(f))
                .collect()
        } else {
            Vec::new()
        };
        self.encode(gi, batch, eor, m, &mut out);
        out
    }

    /// Loc-RIB changes (prefixes whose best path, or with ADD-PATH any candidate, changed) at `now`.
    pub fn changes(&mut self, now: Instant, env: &Env<'_>, prefixes: &[IpNet]) -> Vec<Send> {
        let mut out = Vec::new();
        for gi in 0..self.groups.len() {
            let Some(g) = self.groups[gi].as_ref() else {
                continue;
            };
            if g.ctx.exports_nothing() {
                // A group's context never changes (a reload moves members), so it holds nothing.
                continue;
            }
            let fams = g.key.families;
            let hold = g.hold_until.is_some_and(|t| now < t);
            let mut batch = Batch::default();
            let mut announced = false;
            for p in prefixes.iter().filter(|p| fams[afi(p)]) {
                let new = self.wanted(gi, *p, env);
                announced |= self.apply(gi, *p, new, hold, &mut batch);
            }
            self.after_batch(gi, now, announced);
            self.encode(gi, batch, Vec::new(), 0, &mut out);
        }
        out
    }

    /// Announcements held by MRAI whose interval ended by `now`.
    pub fn tick(&mut self, now: Instant, env: &Env<'_>) -> Vec<Send> {
        let mut out = Vec::new();
        for gi in 0..self.groups.len() {
            let Some(g) = self.groups[gi].as_mut() else {
                continue;
            };
            if g.held.is_empty() || g.hold_until.is_some_and(|t| now < t) {
                continue;
            }
            let mut held: Vec<IpNet> = std::mem::take(&mut g.held).into_iter().collect();
            held.sort_unstable();
            let mut batch = Batch::default();
            let mut announced = false;
            for p in held {
                let new = self.wanted(gi, p, env);
                announced |= self.apply(gi, p, new, false, &mut batch);
            }
            self.after_batch(gi, now, announced);
            self.encode(gi, batch, Vec::new(), 0, &mut out);
        }
        out
    }

    /// When the next held announcements are due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups
            .iter()
            .flatten()
            .filter(|g| !g.held.is_empty())
            .filter_map(|g| g.hold_until)
            .min()
    }

    fn after_batch(&mut self, gi: usize, now: Instant, announced: bool) {
        if let Some(g) = self.groups[gi].as_mut()
            && announced
            && !g.key.mrai.is_zero()
        {
            g.hold_until = Some(now + g.key.mrai);
        }
    }

    /// The member's context changed (reload): it moves to the group of its new key and is sent only the
    /// difference between what it had and what the new group has for it.
    pub fn update_member(&mut self, spec: MemberSpec, env: &Env<'_>) -> Vec<Send> {
        let m = spec.id;
        let Some(&gi) = self.member_group.get(&m) else {
            return self.join(spec, env);
        };
        if self.groups[gi]
            .as_ref()
            .is_some_and(|g| g.key == GroupKey::of(&spec))
        {
            return Vec::new();
        }
        let before = self.view(m);
        self.leave(m);
        let gi = self.join_quiet(spec, env);
        let after = self.view(m);
        let ap = self.groups[gi]
            .as_ref()
            .map(|g| g.key.add_path)
            .unwrap_or_default();
        let mut batch = Batch::default();
        let after_map: FxHashMap<(IpNet, u32), &AttrRef> =
            after.iter().map(|(p, id, a)| ((*p, *id), a)).collect();
        let before_keys: FxHashSet<(IpNet, u32)> =
            before.iter().map(|(p, id, _)| (*p, *id)).collect();
        for (p, id, a) in &before {
            if !after_map.contains_key(&(*p, *id)) {
                batch.withdraw(Audience::Only(m), nlri(*p, *id, ap[afi(p)].is_some()));
            } else if let Some(na) = after_map.get(&(*p, *id))
                && **na != *a
            {
                batch.announce(Audience::Only(m), na, nlri(*p, *id, ap[afi(p)].is_some()));
            }
        }
        for (p, id, a) in &after {
            if !before_keys.contains(&(*p, *id)) {
                batch.announce(Audience::Only(m), a, nlri(*p, *id, ap[afi(p)].is_some()));
            }
        }
        drop(after_map);
        drop(before);
        drop(after);
        let mut out = Vec::new();
        self.encode(gi, batch, Vec::new(), m, &mut out);
        self.attrs.collect_garbage();
        out
    }

    fn view(&self, m: MemberId) -> Vec<(IpNet, u32, AttrRef)> {
        let Some(g) = self
            .member_group
            .get(&m)
            .and_then(|&i| self.groups[i].as_ref())
        else {
            return Vec::new();
        };
        let me = g.members.iter().find(|x| x.id == m).map(|x| x.rib_peer);
        g.table
            .iter()
            .flat_map(|(p, v)| {
                v.iter()
                    .filter(|x| Some(x.src) != me)
                    .map(|x| (*p, x.id, x.attrs.clone()))
            })
            .collect()
    }

    /// What group `gi` should hold for `p` now.
    fn wanted(&mut self, gi: usize, p: IpNet, env: &Env<'_>) -> OutPaths {
        let mut out = OutPaths::new();
        let Some(g) = self.groups[gi].as_ref() else {
            return out;
        };
        if g.ctx.exports_nothing() {
            // Not even worth a RIB lookup (a full table arriving would cost one per prefix).
            return out;
        }
        let Some((paths, usable)) = env.rib.usable_paths(p) else {
            return out;
        };
        let mode = g.key.add_path[afi(&p)];
        let n = match mode {
            None => usable.min(1),
            Some(AddPathSend::All) => usable,
            Some(AddPathSend::Best(n)) => usable.min(n as usize),
            Some(AddPathSend::Ecmp) => {
                let mp = match p {
                    IpNet::V4(k) => env.rib.ipv4().get(&k).map(|e| e.multipath()),
                    IpNet::V6(k) => env.rib.ipv6().get(&k).map(|e| e.multipath()),
                };
                mp.unwrap_or(0).min(usable)
            }
        };
        for path in paths.slice(..n) {
            let Some(peer) = env.rib.peer(path.peer) else {
                continue;
            };
            // RFC 9494 §4.5: LLGR-stale routes only to peers that negotiated LLGR.
            if !g.key.llgr && path.attrs.has_community(community::LLGR_STALE) {
                continue;
            }
            let src = Source {
                peer,
                rr_client: env.rr_clients.contains(&path.peer),
            };
            let Some(a) = export_shared(p, path.attrs, src, &g.ctx) else {
                continue;
            };
            let id = match mode {
                None => 0,
                Some(_) => {
                    let next = self.tx_ids.len() as u32 + 1;
                    *self.tx_ids.entry((path.peer, path.path_id)).or_insert(next)
                }
            };
            let attrs = self.attrs.intern(a);
            out.push(OutPath {
                id,
                src: path.peer,
                attrs,
            });
        }
        out
    }

    /// Moves group `gi`'s entry for `p` to `new`, collecting what each audience must be told. With
    /// `hold` (MRAI running), announcements are not made: the prefix is remembered and the entry keeps
    /// what was last sent (withdrawals still go). Returns whether something was announced.
    fn apply(&mut self, gi: usize, p: IpNet, new: OutPaths, hold: bool, batch: &mut Batch) -> bool {
        let Some(g) = self.groups[gi].as_mut() else {
            for x in new {
                self.attrs.release(x.attrs);
            }
            return false;
        };
        let fam = afi(&p);
        let ap = g.key.add_path[fam].is_some();
        let old = match g.table.remove(&p) {
            Some(v) => {
                if v.spilled() {
                    g.spilled -= v.capacity();
                }
                v
            }
            None => OutPaths::new(),
        };
        let mut keep = OutPaths::new();
        let mut announced = false;
        let mut held = false;
        let mut release: Vec<AttrRef> = Vec::new();
        for o in &old {
            if !new.iter().any(|n| n.id == o.id) {
                let mo = g.member_of(o.src);
                batch.withdraw(aud_except(mo), nlri(p, o.id, ap));
                g.paths[fam] -= 1;
                if let Some(own) = g.own_mut(o.src) {
                    own[fam] -= 1;
                }
            }
        }
        let mut old_by_id: SmallVec<[Option<OutPath>; 1]> = old.into_iter().map(Some).collect();
        for n in new {
            let o = old_by_id
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|o| o.id == n.id))
                .and_then(Option::take);
            match o {
                Some(o) if o.src == n.src && o.attrs == n.attrs => {
                    release.push(n.attrs);
                    keep.push(o);
                }
                o if hold => {
                    held = true;
                    release.push(n.attrs);
                    if let Some(o) = o {
                        keep.push(o);
                    }
                }
                o => {
                    let mn = g.member_of(n.src);
                    batch.announce(aud_except(mn), &n.attrs, nlri(p, n.id, ap));
                    announced = true;
                    match &o {
                        None => g.paths[fam] += 1,
                        Some(o) => {
                            let mo = g.member_of(o.src);
                            if let Some(b) = mn
                                && mo != mn
                            {
                                batch.withdraw(Audience::Only(b), nlri(p, n.id, ap));
                            }
                            if let Some(own) = g.own_mut(o.src) {
                                own[fam] -= 1;
                            }
                        }
                    }
                    if let Some(own) = g.own_mut(n.src) {
                        own[fam] += 1;
                    }
                    if let Some(o) = o {
                        release.push(o.attrs);
                    }
                    keep.push(n);
                }
            }
        }
        // Paths withdrawn above (no longer wanted).
        for o in old_by_id.into_iter().flatten() {
            if !keep.iter().any(|k| k.id == o.id) {
                release.push(o.attrs);
            }
        }
        if held {
            g.held.insert(p);
        } else {
            g.held.remove(&p);
        }
        if !keep.is_empty() {
            if keep.spilled() {
                g.spilled += keep.capacity();
            }
            g.table.insert(p, keep);
        }
        for a in release {
            self.attrs.release(a);
        }
        announced
    }

    /// Encodes `batch` (then `tail`, e.g. End-of-RIB) once per audience. `only` names the member an
    /// `Only` audience goes to when the batch is a member's own (dump, move).
    fn encode(
        &mut self,
        gi: usize,
        batch: Batch,
        tail: Vec<Update>,
        only: MemberId,
        out: &mut Vec<Send>,
    ) {
        let Some(g) = self.groups[gi].as_mut() else {
            return;
        };
        if batch.is_empty() && tail.is_empty() {
            return;
        }
        let mut per: Vec<(Audience, Vec<Update>)> = Vec::new();
        let slot = |aud: Audience, per: &mut Vec<(Audience, Vec<Update>)>| -> usize {
            match per.iter().position(|(a, _)| *a == aud) {
                Some(i) => i,
                None => {
                    per.push((aud, Vec::new()));
                    per.len() - 1
                }
            }
        };
        for (aud, fams) in batch.withdraw {
            let i = slot(aud, &mut per);
            for nl in fams.into_iter().filter(|v| !v.is_empty()) {
                per[i].1.extend(withdraw_nlri(nl));
            }
        }
        for ((aud, a), fams) in batch.announce {
            let i = slot(aud, &mut per);
            for nl in fams.into_iter().filter(|v| !v.is_empty()) {
                per[i].1.extend(announce_nlri(&a, nl));
            }
        }
        if !tail.is_empty() {
            let i = slot(Audience::Only(only), &mut per);
            per[i].1.extend(tail);
        }
        let all: Vec<MemberId> = g.members.iter().map(|m| m.id).collect();
        for (aud, updates) in per {
            let to: Vec<MemberId> = match aud {
                Audience::All => all.clone(),
                Audience::Except(x) => all.iter().copied().filter(|m| *m != x).collect(),
                Audience::Only(x) => vec![x],
            };
            if to.is_empty() || updates.is_empty() {
                continue;
            }
            let mut buf = BytesMut::new();
            let mut messages = 0;
            for u in &updates {
                match u.encode_split(&g.key.wire, &mut buf) {
                    Ok(n) => messages += n,
                    Err(e) => tracing::error!(error = %e, "UPDATE not encodable; skipped"),
                }
            }
            g.encoded += messages as u64;
            g.sent += (messages * to.len()) as u64;
            out.push(Send {
                to,
                bytes: buf.freeze(),
                messages,
            });
        }
    }

    /// Every group's size and members.
    pub fn stats(&self) -> Vec<GroupStats> {
        let entry = std::mem::size_of::<(IpNet, OutPaths)>() + 1;
        self.groups
            .iter()
            .flatten()
            .map(|g| GroupStats {
                members: g.members.iter().map(|m| m.id).collect(),
                paths: g.paths,
                held: g.held.len(),
                bytes: g.table.capacity() * entry
                    + g.spilled * std::mem::size_of::<OutPath>()
                    + g.held.capacity() * (std::mem::size_of::<IpNet>() + 1),
                messages_encoded: g.encoded,
                messages_sent: g.sent,
            })
            .collect()
    }

    /// Distinct exported attribute sets and their approximate bytes.
    pub fn attr_stats(&self) -> (usize, usize) {
        (self.attrs.len(), self.attrs.approx_bytes())
    }
}

fn aud_except(m: Option<MemberId>) -> Audience {
    match m {
        Some(m) => Audience::Except(m),
        None => Audience::All,
    }
}

fn nlri(p: IpNet, id: u32, add_path: bool) -> Nlri {
    if add_path {
        Nlri::with_path_id(p, id)
    } else {
        Nlri::new(p)
    }
}

#[cfg(test)]
mod tests;
