//! fib-sync's input and output types. They do not depend on `ribd`: the RIB converts its
//! `FibDelta`s into [`Route`]s and consumes [`NhtUpdate`]s.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// A set of BGP next-hops with weights, sorted by address, without duplicates (the primary set:
/// what the prefix forwards over), plus an optional backup set (PIC edge: what it forwards over
/// only while every primary is dead). Path-lists are keyed by both, so equal (primary, backup)
/// pairs share one path-list id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhSet {
    /// Primary members, then backup members (each part sorted, no address in both).
    all: Arc<[(IpAddr, u32)]>,
    /// How many of `all` are primary.
    primary: u32,
}

/// Sorted by address, duplicate addresses merged (weights added), weight 0 counted as 1.
fn canonical(members: impl IntoIterator<Item = (IpAddr, u32)>) -> Vec<(IpAddr, u32)> {
    let mut v: Vec<(IpAddr, u32)> = members.into_iter().map(|(a, w)| (a, w.max(1))).collect();
    v.sort_unstable();
    let mut out: Vec<(IpAddr, u32)> = Vec::with_capacity(v.len());
    for (a, w) in v {
        match out.last_mut() {
            Some((la, lw)) if *la == a => *lw = lw.saturating_add(w),
            _ => out.push((a, w)),
        }
    }
    out
}

impl NhSet {
    /// Canonicalises `members`: sorted by address, duplicate addresses merged (weights added).
    /// Weight 0 counts as 1 (the bucket builder does the same). No backup.
    pub fn new(members: impl IntoIterator<Item = (IpAddr, u32)>) -> NhSet {
        let all = canonical(members);
        NhSet {
            primary: all.len() as u32,
            all: all.into(),
        }
    }

    /// A primary set with a backup set, both canonicalised; backup members that are also primary
    /// are dropped (they die with the primary).
    pub fn with_backup(
        primary: impl IntoIterator<Item = (IpAddr, u32)>,
        backup: impl IntoIterator<Item = (IpAddr, u32)>,
    ) -> NhSet {
        let mut all = canonical(primary);
        let n = all.len();
        let backup: Vec<(IpAddr, u32)> = canonical(backup)
            .into_iter()
            .filter(|(a, _)| all.binary_search_by(|(x, _)| x.cmp(a)).is_err())
            .collect();
        all.extend(backup);
        NhSet {
            all: all.into(),
            primary: n as u32,
        }
    }

    /// The primary members.
    pub fn members(&self) -> &[(IpAddr, u32)] {
        &self.all[..self.primary as usize]
    }

    /// The backup members (empty when there is no backup).
    pub fn backup(&self) -> &[(IpAddr, u32)] {
        &self.all[self.primary as usize..]
    }

    /// The same primary set without a backup.
    pub fn without_backup(&self) -> NhSet {
        if self.backup().is_empty() {
            return self.clone();
        }
        NhSet {
            all: self.members().into(),
            primary: self.primary,
        }
    }

    /// Addresses of the primary members.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.members().iter().map(|&(a, _)| a)
    }

    /// Addresses of the primary and the backup members.
    pub fn all_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.all.iter().map(|&(a, _)| a)
    }

    /// No primary member.
    pub fn is_empty(&self) -> bool {
        self.primary == 0
    }

    /// Identity of this allocation (equal sets interned by the RIB share it): a cheap cache key.
    pub(crate) fn ptr_key(&self) -> usize {
        Arc::as_ptr(&self.all) as *const u8 as usize
    }
}

/// What a prefix does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteAction {
    /// Forward over these BGP next-hops (ECMP/UCMP by weight).
    Forward(NhSet),
    /// Drop.
    Blackhole,
    /// Hand the packet to the kernel.
    PassToKernel,
    /// A destination of this box (handed to the kernel).
    Local,
}

/// One FIB change: `action` `None` withdraws the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    pub action: Option<RouteAction>,
}

impl Route {
    pub fn forward(prefix: IpNet, nhs: impl IntoIterator<Item = (IpAddr, u32)>) -> Route {
        let set = NhSet::new(nhs);
        Route {
            prefix: prefix.trunc(),
            action: if set.is_empty() {
                Some(RouteAction::PassToKernel)
            } else {
                Some(RouteAction::Forward(set))
            },
        }
    }

    /// Forward over `primary`; over `backup` only while every primary next-hop is dead (PIC edge).
    pub fn forward_with_backup(
        prefix: IpNet,
        primary: impl IntoIterator<Item = (IpAddr, u32)>,
        backup: impl IntoIterator<Item = (IpAddr, u32)>,
    ) -> Route {
        let set = NhSet::with_backup(primary, backup);
        Route {
            prefix: prefix.trunc(),
            action: if set.is_empty() {
                Some(RouteAction::PassToKernel)
            } else {
                Some(RouteAction::Forward(set))
            },
        }
    }

    pub fn withdraw(prefix: IpNet) -> Route {
        Route {
            prefix: prefix.trunc(),
            action: None,
        }
    }
}

/// Where a resolved BGP next-hop sends frames: the egress port the XDP program redirects to, the
/// MACs it writes and the VLAN tag it pushes. One dataplane next-hop id exists per distinct value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhL2 {
    /// Physical egress interface (the parent when the route points at a VLAN device).
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// 802.1Q VLAN id to tag frames with, when the route's device is a VLAN device.
    pub vlan: Option<u16>,
}

/// Next-hop tracking output for the RIB: whether a BGP next-hop is reachable through the kernel's
/// routes, and at what IGP cost (the kernel route's metric) when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NhtUpdate {
    pub addr: IpAddr,
    pub reachable: bool,
    pub igp_cost: Option<u32>,
}

/// Hasher for prefix- and address-keyed maps: FxHash alone clusters badly on IP prefixes (whose
/// low bits are mostly zero), so the state is finished with a full 64-bit mix (splitmix64).
#[derive(Debug, Default, Clone, Copy)]
pub struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i.into())
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i.into())
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i.into())
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A map keyed by prefixes (or anything IP-shaped).
pub type PrefixMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<MixHasher>>;
