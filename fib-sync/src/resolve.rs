//! Next-hop resolution through the kernel (rtnetlink): for each tracked BGP next-hop, the kernel
//! route that reaches it, the egress interface and gateway, and the neighbour's MAC; changes to
//! links, addresses, routes and neighbours re-resolve the tracked next-hops.
//!
//! ```text
//!   track(addr) ──► RTM_GETROUTE (FIB match) ─► route: unicast? via default? proto bgp? metric = IGP cost
//!                    │ oif, gateway (recursive next-hops resolve through the kernel route)
//!                    ├► RTM_GETLINK oif ──► smac, VLAN device → (parent ifindex, vlan id)
//!                    └► RTM_GETNEIGH (oif, gateway or addr) ──► dmac when usable
//!                         └ otherwise RTM_NEWNEIGH managed (NTF_EXT_MANAGED): the kernel resolves it
//!                           and keeps it resolved; its RTM_NEWNEIGH event completes the resolution
//!   multicast groups: link, IPv4/IPv6 addresses, IPv4/IPv6 routes, neighbours ──► poll() ─► changes
//! ```
//!
//! Blocking sockets and `poll(2)`; the daemon drives [`Resolver::poll`] from a thread, or waits on
//! [`Resolver::event_fd`] with its own reactor.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::SyncError;
use crate::types::{NhL2, NhtUpdate};

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// Resolver settings.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Accept the default route as the route to a next-hop (off: like FRR's default, a next-hop
    /// reachable only through the default route is unreachable).
    pub resolve_via_default: bool,
    /// Create managed neighbour entries (kernel ≥ 5.16) for needed neighbours.
    pub manage_neighbours: bool,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            resolve_via_default: false,
            manage_neighbours: true,
        }
    }
}

/// How the kernel reaches a BGP next-hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resolution {
    /// A usable kernel route reaches it.
    pub reachable: bool,
    /// The route's metric.
    pub igp_cost: Option<u32>,
    /// Egress interface of the route (the VLAN device itself when it is one).
    pub oif: Option<u32>,
    /// The neighbour frames go to: the route's gateway, or the next-hop itself when connected.
    pub neighbour: Option<IpAddr>,
    /// Set once the neighbour's MAC is known.
    pub l2: Option<NhL2>,
}

impl Resolution {
    /// How a kernel route reaches the next-hop (for the kernel mirror): its egress interface and
    /// directly connected gateway, when a usable route reaches it.
    pub fn kernel_nh(&self) -> Option<crate::mirror::KernelNh> {
        match (self.reachable, self.oif, self.neighbour) {
            (true, Some(oif), Some(gateway)) => Some(crate::mirror::KernelNh { oif, gateway }),
            _ => None,
        }
    }

    pub fn nht(&self, addr: IpAddr) -> NhtUpdate {
        NhtUpdate {
            addr,
            reachable: self.reachable,
            igp_cost: self.igp_cost,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    mac: Option<[u8; 6]>,
    up: bool,
    /// (parent ifindex, vlan id) of a VLAN device.
    vlan: Option<(u32, u16)>,
}

/// Tracks BGP next-hops through the kernel.
pub struct Resolver {
    req: Socket,
    events: Socket,
    seq: u32,
    cfg: ResolverConfig,
    tracked: BTreeMap<IpAddr, Resolution>,
    links: FxHashMap<u32, Link>,
    /// Managed neighbour entries this resolver created: (ifindex, address).
    managed: FxHashSet<(u32, IpAddr)>,
}

fn nl_err(what: &str) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
    move |e| SyncError::Netlink(format!("{what}: {e}"))
}

impl Resolver {
    /// Opens the request socket and subscribes to link, address, route and neighbour changes.
    pub fn new(cfg: ResolverConfig) -> Result<Resolver, SyncError> {
        let mut req = Socket::new(NETLINK_ROUTE).map_err(nl_err("netlink socket"))?;
        req.bind_auto().map_err(nl_err("bind"))?;
        req.connect(&SocketAddr::new(0, 0))
            .map_err(nl_err("connect"))?;
        let mut events = Socket::new(NETLINK_ROUTE).map_err(nl_err("netlink socket"))?;
        events.bind_auto().map_err(nl_err("bind"))?;
        for g in [
            RTNLGRP_LINK,
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV6_ROUTE,
        ] {
            events
                .add_membership(g)
                .map_err(nl_err("netlink multicast group"))?;
        }
        events
            .set_non_blocking(true)
            .map_err(nl_err("non-blocking"))?;
        let _ = events.set_rx_buf_sz(4 << 20);
        Ok(Resolver {
            req,
            events,
            seq: 1,
            cfg,
            tracked: BTreeMap::new(),
            links: FxHashMap::default(),
            managed: FxHashSet::default(),
        })
    }

    /// The socket that becomes readable when the kernel reports a change.
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// Starts tracking `addr` and resolves it now.
    pub fn track(&mut self, addr: IpAddr) -> Result<Resolution, SyncError> {
        if let Some(r) = self.tracked.get(&addr) {
            return Ok(*r);
        }
        let r = self.resolve(addr)?;
        self.tracked.insert(addr, r);
        Ok(r)
    }

    /// Stops tracking `addr`; a managed neighbour entry created for it alone is removed.
    pub fn untrack(&mut self, addr: IpAddr) -> Result<(), SyncError> {
        let Some(r) = self.tracked.remove(&addr) else {
            return Ok(());
        };
        if let (Some(oif), Some(n)) = (r.oif, r.neighbour) {
            let still = self
                .tracked
                .values()
                .any(|o| o.oif == Some(oif) && o.neighbour == Some(n));
            if !still && self.managed.remove(&(oif, n)) {
                self.del_neighbour(oif, n)?;
            }
        }
        Ok(())
    }

    pub fn tracked(&self) -> impl Iterator<Item = (IpAddr, Resolution)> + '_ {
        self.tracked.iter().map(|(a, r)| (*a, *r))
    }

    pub fn get(&self, addr: &IpAddr) -> Option<Resolution> {
        self.tracked.get(addr).copied()
    }

    /// Waits up to `timeout` for kernel changes, then re-resolves every tracked next-hop and
    /// returns those whose resolution changed (new value). Returns at once with what changed
    /// when events are already queued.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<(IpAddr, Resolution)>, SyncError> {
        let mut pfd = libc::pollfd {
            fd: self.events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(SyncError::Netlink(format!("poll: {e}")));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        if !self.drain_events()? {
            return Ok(Vec::new());
        }
        self.refresh()
    }

    /// Re-resolves every tracked next-hop; returns the changed ones.
    pub fn refresh(&mut self) -> Result<Vec<(IpAddr, Resolution)>, SyncError> {
        self.links.clear();
        let addrs: Vec<IpAddr> = self.tracked.keys().copied().collect();
        let mut changed = Vec::new();
        for a in addrs {
            let r = self.resolve(a)?;
            if self.tracked.insert(a, r) != Some(r) {
                changed.push((a, r));
            }
        }
        Ok(changed)
    }

    /// Reads every queued event; true when any could matter (everything but our own echoes).
    fn drain_events(&mut self) -> Result<bool, SyncError> {
        let mut any = false;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.events.recv(&mut &mut buf[..], 0) {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ENOBUFS: events were lost; a full refresh covers them.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                Err(e) => return Err(SyncError::Netlink(format!("recv events: {e}"))),
            }
        }
        Ok(any)
    }

    /// Sends one request, returns the replies (an error reply becomes `Err(errno)`).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Result<Vec<RouteNetlinkMessage>, i32>, SyncError> {
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        self.seq = self.seq.wrapping_add(1);
        hdr.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(hdr, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.req.send(&out, 0).map_err(nl_err("send"))?;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .req
                .recv(&mut &mut buf[..], 0)
                .map_err(nl_err("recv"))?;
            let mut off = 0;
            let mut done = false;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..n])
                    .map_err(|e| SyncError::Netlink(format!("decode: {e}")))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::InnerMessage(i) => {
                            replies.push(i);
                            if m.header.flags & netlink_packet_core::NLM_F_MULTIPART == 0 {
                                done = true;
                            }
                        }
                        NetlinkPayload::Error(e) => {
                            return Ok(match e.code {
                                Some(c) => Err(-c.get()),
                                None => Ok(replies),
                            });
                        }
                        NetlinkPayload::Done(_) => done = true,
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
            }
            if done {
                return Ok(Ok(replies));
            }
        }
    }

    /// Resolves `addr` now (does not track it).
    pub fn resolve(&mut self, addr: IpAddr) -> Result<Resolution, SyncError> {
        let unreachable = Resolution::default();
        let Some(route) = self.route_to(addr)? else {
            return Ok(unreachable);
        };
        let h = &route.header;
        if h.kind != RouteType::Unicast
            || h.protocol == RouteProtocol::Bgp
            || (h.destination_prefix_length == 0 && !self.cfg.resolve_via_default)
            || h.flags.contains(RouteFlags::Linkdown)
            || h.flags.contains(RouteFlags::Dead)
        {
            return Ok(unreachable);
        }
        let mut r = Resolution {
            reachable: true,
            ..Default::default()
        };
        let mut gateway = None;
        for a in &route.attributes {
            match a {
                RouteAttribute::Priority(p) => r.igp_cost = Some(*p),
                RouteAttribute::Oif(i) => r.oif = Some(*i),
                RouteAttribute::Gateway(g) => gateway = route_addr(g),
                RouteAttribute::Via(_) => {}
                RouteAttribute::MultiPath(hops) if r.oif.is_none() => {
                    // The first live path of an IGP multipath route.
                    if let Some(nh) = hops.iter().find(|nh| {
                        !nh.flags
                            .contains(netlink_packet_route::route::RouteNextHopFlags::Linkdown)
                            && !nh
                                .flags
                                .contains(netlink_packet_route::route::RouteNextHopFlags::Dead)
                    }) {
                        r.oif = Some(nh.interface_index);
                        for na in &nh.attributes {
                            if let RouteAttribute::Gateway(g) = na {
                                gateway = route_addr(g);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(oif) = r.oif else {
            return Ok(unreachable);
        };
        let nbr = gateway.unwrap_or(addr);
        r.neighbour = Some(nbr);
        let Some(link) = self.link(oif)? else {
            return Ok(unreachable);
        };
        if !link.up {
            return Ok(unreachable);
        }
        let (ifindex, vlan) = match link.vlan {
            Some((parent, id)) => (parent, Some(id)),
            None => (oif, None),
        };
        let Some(smac) = link.mac else {
            // Not an Ethernet device (tunnel, lo): reachable, but XDP cannot forward there.
            return Ok(r);
        };
        match self.neighbour(oif, nbr)? {
            Some(dmac) => {
                r.l2 = Some(NhL2 {
                    ifindex,
                    smac,
                    dmac,
                    vlan,
                })
            }
            None if self.cfg.manage_neighbours => self.add_managed(oif, nbr)?,
            None => {}
        }
        if self.cfg.manage_neighbours && r.l2.is_some() && !self.managed.contains(&(oif, nbr)) {
            // Resolved already (by traffic or an earlier process): make it managed too, so the
            // kernel keeps refreshing it.
            self.add_managed(oif, nbr)?;
        }
        Ok(r)
    }

    fn route_to(&mut self, addr: IpAddr) -> Result<Option<RouteMessage>, SyncError> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(addr);
        m.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        m.header.flags = RouteFlags::FibMatch;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(addr)));
        match self.request(RouteNetlinkMessage::GetRoute(m), 0)? {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Some(m),
                _ => None,
            })),
            // ENETUNREACH, EHOSTUNREACH, ...: no route.
            Err(_) => Ok(None),
        }
    }

    fn link(&mut self, index: u32) -> Result<Option<Link>, SyncError> {
        if let Some(l) = self.links.get(&index) {
            return Ok(Some(*l));
        }
        let mut m = LinkMessage::default();
        m.header.index = index;
        let replies = match self.request(RouteNetlinkMessage::GetLink(m), 0)? {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        let Some(RouteNetlinkMessage::NewLink(l)) = replies.into_iter().next() else {
            return Ok(None);
        };
        let mut link = Link {
            mac: None,
            up: l.header.flags.contains(LinkFlags::Up)
                && l.header.flags.contains(LinkFlags::LowerUp),
            vlan: None,
        };
        let mut parent = None;
        let mut vid = None;
        let mut is_vlan = false;
        for a in &l.attributes {
            match a {
                LinkAttribute::Address(mac) if mac.len() == 6 => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(mac);
                    if m != [0; 6] {
                        link.mac = Some(m);
                    }
                }
                LinkAttribute::Link(p) => parent = Some(*p),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(InfoKind::Vlan) => is_vlan = true,
                            LinkInfo::Data(InfoData::Vlan(v)) => {
                                for x in v {
                                    if let InfoVlan::Id(id) = x {
                                        vid = Some(*id);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if is_vlan && let (Some(p), Some(id)) = (parent, vid) {
            link.vlan = Some((p, id));
        }
        self.links.insert(index, link);
        Ok(Some(link))
    }

    /// The neighbour's MAC when its entry is usable.
    fn neighbour(&mut self, ifindex: u32, addr: IpAddr) -> Result<Option<[u8; 6]>, SyncError> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(addr);
        m.header.ifindex = ifindex;
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(addr)));
        let replies = match self.request(RouteNetlinkMessage::GetNeighbour(m), 0)? {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        for r in replies {
            let RouteNetlinkMessage::NewNeighbour(n) = r else {
                continue;
            };
            let usable = matches!(
                n.header.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
            );
            if !usable {
                return Ok(None);
            }
            for a in &n.attributes {
                if let NeighbourAttribute::LinkLayerAddress(ll) = a
                    && ll.len() == 6
                {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(ll);
                    return Ok(Some(mac));
                }
            }
        }
        Ok(None)
    }

    /// Asks the kernel to resolve the neighbour and keep it resolved (NTF_EXT_MANAGED).
    fn add_managed(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), SyncError> {
        if self.managed.contains(&(ifindex, addr)) {
            return Ok(());
        }
        let mut m = NeighbourMessage::default();
        m.header.family = family(addr);
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::None;
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(addr)));
        m.attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        match self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK,
        )? {
            Ok(_) => {
                self.managed.insert((ifindex, addr));
                Ok(())
            }
            Err(errno) => {
                tracing::warn!(%addr, ifindex, errno, "managed neighbour entry refused");
                Ok(())
            }
        }
    }

    fn del_neighbour(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), SyncError> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(addr);
        m.header.ifindex = ifindex;
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(addr)));
        let _ = self.request(RouteNetlinkMessage::DelNeighbour(m), NLM_F_ACK)?;
        Ok(())
    }
}

fn family(a: IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn neigh_addr(a: IpAddr) -> NeighbourAddress {
    match a {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}
