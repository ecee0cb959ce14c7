//! Per-AFI prefix tables: each prefix holds its candidate paths (the post-policy Adj-RIB-In of every
//! peer, shared in one place) ordered best first, plus how many lead the multipath set.
//!
//! Memory per prefix is what the product competes on, so the layout is deliberate:
//! - a table is 65,536 buckets of sorted vectors of `(prefix, Paths)` (bucketed by the top 16 address
//!   bits for IPv4, which keeps address order; by a hash of the top 32 bits for IPv6). No hash table
//!   load-factor slack, no per-entry allocation, and ordered walks for `--longer` queries;
//! - [`Paths`] is 24 bytes: one path inline (the common case: one path per peer per prefix), or a boxed
//!   slice when several peers announce the prefix;
//! - a path is an interned attribute pointer plus peer, path id, arrival sequence and flags.
//!
//! An IPv4 entry costs 32 bytes plus the interned attribute set's share.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use super::attrs::AttrRef;

/// Index of a peer in the RIB's peer table.
pub type PeerId = u32;

/// Path flags.
pub mod flags {
    /// Kept after the session went down with graceful restart (RFC 4724 §4.2).
    pub const STALE: u8 = 0x1;
    /// Long-lived stale (RFC 9494): least preferred.
    pub const LLGR_STALE: u8 = 0x2;
    /// The next-hop was unreachable at the entry's last selection (kept by selection, so a backup
    /// computed before and after a reachability change sees the state each selection saw).
    pub const NH_DOWN: u8 = 0x4;
    /// Graceful-restart stale, of either kind.
    pub const ANY_STALE: u8 = STALE | LLGR_STALE;
}

/// One candidate path for a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    pub attrs: AttrRef,
    pub peer: PeerId,
    pub path_id: u32,
    pub seq: u32,
    pub flags: u8,
    /// Multipath count of the entry; meaningful only in the first path (see [`Paths::multipath`]).
    mp: u8,
}

impl Path {
    pub fn new(peer: PeerId, path_id: u32, attrs: AttrRef, seq: u32) -> Path {
        Path {
            attrs,
            peer,
            path_id,
            seq,
            flags: 0,
            mp: 0,
        }
    }
}

/// All candidates of one prefix, best first.
#[derive(Debug, Clone)]
pub enum Paths {
    One(Path),
    Many(Box<[Path]>),
}

impl Paths {
    pub fn as_slice(&self) -> &[Path] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Path] {
        match self {
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of leading paths forming the multipath (forwarding) set; 0 = nothing usable.
    pub fn multipath(&self) -> usize {
        self.as_slice()[0].mp as usize
    }

    pub fn set_multipath(&mut self, n: usize) {
        let s = self.as_mut_slice();
        for p in s.iter_mut() {
            p.mp = 0;
        }
        s[0].mp = n.min(u8::MAX as usize) as u8;
    }

    pub fn best(&self) -> Option<&Path> {
        (self.multipath() > 0).then(|| &self.as_slice()[0])
    }

    pub fn forwarding(&self) -> &[Path] {
        &self.as_slice()[..self.multipath()]
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Path> {
        self.as_slice().iter()
    }

    pub fn push(&mut self, p: Path) {
        let mut v: Vec<Path> = std::mem::take(self).into_vec();
        v.push(p);
        *self = Paths::Many(v.into_boxed_slice());
    }

    /// Removes the paths matching `pred`, returning them; `None` in the result's second place means the
    /// entry is now empty.
    pub fn extract(self, pred: impl Fn(&Path) -> bool) -> (Vec<Path>, Option<Paths>) {
        let (removed, kept): (Vec<Path>, Vec<Path>) =
            self.into_vec().into_iter().partition(|p| pred(p));
        (removed, Paths::from_vec(kept))
    }

    pub fn into_vec(self) -> Vec<Path> {
        match self {
            Paths::One(p) => vec![p],
            Paths::Many(v) => v.into_vec(),
        }
    }

    pub fn from_vec(mut v: Vec<Path>) -> Option<Paths> {
        match v.len() {
            0 => None,
            1 => v.pop().map(Paths::One),
            _ => Some(Paths::Many(v.into_boxed_slice())),
        }
    }

    /// Reorders the paths: `order[i]` is the index of the path that goes to position i.
    pub fn permute(&mut self, order: &[usize]) {
        if let Paths::Many(v) = self {
            let old: Vec<Path> = std::mem::take(v).into_vec();
            let mut slots: Vec<Option<Path>> = old.into_iter().map(Some).collect();
            let new: Vec<Path> = order
                .iter()
                .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
                .collect();
            *v = new.into_boxed_slice();
        }
    }
}

impl Default for Paths {
    fn default() -> Self {
        Paths::Many(Box::new([]))
    }
}

/// A prefix type usable as a table key.
pub trait PrefixKey: Copy + Eq + std::hash::Hash + Ord + std::fmt::Debug + Into<IpNet> {
    fn from_net(n: IpNet) -> Option<Self>;
    /// Bucket index in `0..BUCKETS`.
    fn bucket(&self) -> usize;
    /// True when `self` is `other` or more specific inside it.
    fn within(&self, other: &Self) -> bool;
    /// The bucket range holding every prefix inside `self`, when it is narrower than the table.
    fn bucket_span(&self) -> Option<(usize, usize)>;
}

/// Buckets per table.
pub const BUCKETS: usize = 1 << 16;

impl PrefixKey for Ipv4Net {
    fn from_net(n: IpNet) -> Option<Self> {
        match n {
            IpNet::V4(n) => Some(n.trunc()),
            IpNet::V6(_) => None,
        }
    }
    fn bucket(&self) -> usize {
        (u32::from(self.addr()) >> 16) as usize
    }
    fn within(&self, other: &Self) -> bool {
        other.contains(self)
    }
    fn bucket_span(&self) -> Option<(usize, usize)> {
        let lo = u32::from(self.network());
        let hi = u32::from(self.broadcast());
        Some(((lo >> 16) as usize, (hi >> 16) as usize))
    }
}

impl PrefixKey for Ipv6Net {
    fn from_net(n: IpNet) -> Option<Self> {
        match n {
            IpNet::V6(n) => Some(n.trunc()),
            IpNet::V4(_) => None,
        }
    }
    fn bucket(&self) -> usize {
        let top = (u128::from(self.addr()) >> 96) as u32;
        (top.wrapping_mul(0x9E37_79B1) >> 16) as usize
    }
    fn within(&self, other: &Self) -> bool {
        other.contains(self)
    }
    fn bucket_span(&self) -> Option<(usize, usize)> {
        // Buckets hash the top 32 bits: prefixes inside a /32-or-longer share its bucket.
        (self.prefix_len() >= 32).then(|| (self.bucket(), self.bucket()))
    }
}

/// A prefix table.
#[derive(Debug)]
pub struct Table<K: PrefixKey> {
    buckets: Vec<Vec<(K, Paths)>>,
    len: usize,
    /// next-hop → buckets holding prefixes with a path through it (lazily pruned).
    pub(crate) nh_users: FxHashMap<IpAddr, NhUsers>,
}

/// Where a next-hop is used. `refs` counts live (prefix, path) uses; `buckets` lists the buckets that may
/// hold such prefixes (2 bytes each, and a table arriving in address order touches each bucket once in
/// a row, so the list stays far shorter than the prefix count: a prefix list cost 5 bytes per IPv4 and
/// 17 per IPv6 prefix-path). It may hold stale or duplicate buckets and is compacted when it grows past
/// twice the live count (capped at the bucket count).
/// `peers` counts the same uses per source peer (a handful of entries: the peers announcing paths
/// through this next-hop), so a session going down tells at once which next-hops lose their last
/// path (BGP PIC) without walking prefixes.
#[derive(Debug)]
pub(crate) struct NhUsers {
    pub refs: usize,
    pub buckets: Vec<u16>,
    pub peers: smallvec::SmallVec<[(PeerId, u32); 2]>,
}

impl<K: PrefixKey> Default for Table<K> {
    fn default() -> Self {
        Table {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            len: 0,
            nh_users: FxHashMap::default(),
        }
    }
}

impl<K: PrefixKey> Table<K> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, k: &K) -> Option<&Paths> {
        let b = &self.buckets[k.bucket()];
        b.binary_search_by(|(x, _)| x.cmp(k)).ok().map(|i| &b[i].1)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut Paths> {
        let b = &mut self.buckets[k.bucket()];
        match b.binary_search_by(|(x, _)| x.cmp(k)) {
            Ok(i) => Some(&mut b[i].1),
            Err(_) => None,
        }
    }

    /// The entry for `k`, inserted empty when absent (callers fill it before anyone else looks).
    pub(crate) fn get_or_insert(&mut self, k: K) -> &mut Paths {
        let b = &mut self.buckets[k.bucket()];
        let i = match b.binary_search_by(|(x, _)| x.cmp(&k)) {
            Ok(i) => i,
            Err(i) => {
                b.insert(i, (k, Paths::default()));
                self.len += 1;
                i
            }
        };
        &mut b[i].1
    }

    pub(crate) fn take(&mut self, k: &K) -> Option<Paths> {
        let b = &mut self.buckets[k.bucket()];
        let i = b.binary_search_by(|(x, _)| x.cmp(k)).ok()?;
        self.len -= 1;
        Some(b.remove(i).1)
    }

    /// Puts `v` back under `k` (after [`Table::take`]), or leaves the prefix absent when `None`.
    pub(crate) fn put(&mut self, k: K, v: Option<Paths>) {
        if let Some(v) = v {
            *self.get_or_insert(k) = v;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Paths)> {
        self.buckets
            .iter()
            .flat_map(|b| b.iter().map(|(k, v)| (k, v)))
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Paths> {
        self.buckets
            .iter_mut()
            .flat_map(|b| b.iter_mut().map(|(_, v)| v))
    }

    /// Prefixes strictly more specific than `k` (inside it, longer). Scans only the buckets `k`
    /// spans: one for an IPv4 prefix of /16 or longer or an IPv6 prefix of /32 or longer.
    pub fn more_specifics<'a>(&'a self, k: &'a K) -> impl Iterator<Item = &'a K> + 'a {
        let buckets: Box<dyn Iterator<Item = &'a Vec<(K, Paths)>> + 'a> = match k.bucket_span() {
            Some((lo, hi)) => Box::new(self.buckets[lo..=hi].iter()),
            None => Box::new(self.buckets.iter()),
        };
        buckets
            .flat_map(|b| b.iter().map(|(x, _)| x))
            .filter(move |x| *x != k && x.within(k))
    }

    /// Prefixes in address order (for display and stable pagination).
    pub fn sorted_keys(&self) -> Vec<K> {
        let mut keys: Vec<K> = self.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    }

    /// Returns spare capacity to the allocator (after a full table has been loaded).
    pub fn shrink(&mut self) {
        for b in &mut self.buckets {
            if b.capacity() > b.len() + b.len() / 8 + 2 {
                b.shrink_to_fit();
            }
        }
        for u in self.nh_users.values_mut() {
            u.buckets.sort_unstable();
            u.buckets.dedup();
            u.buckets.shrink_to_fit();
        }
    }

    pub(crate) fn note_nh_use(&mut self, nh: IpAddr, k: K, peer: PeerId) {
        let b = k.bucket() as u16;
        let u = self.nh_users.entry(nh).or_insert_with(|| NhUsers {
            refs: 0,
            buckets: Vec::new(),
            peers: smallvec::SmallVec::new(),
        });
        u.refs += 1;
        match u.peers.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, n)) => *n += 1,
            None => u.peers.push((peer, 1)),
        }
        if u.buckets.last() == Some(&b) {
            return;
        }
        u.buckets.push(b);
        if u.buckets.len() > 2 * u.refs.min(BUCKETS) + 16 {
            let mut list = std::mem::take(&mut u.buckets);
            list.sort_unstable();
            list.dedup();
            list.retain(|&b| {
                self.buckets[b as usize]
                    .iter()
                    .any(|(_, e)| e.iter().any(|x| x.attrs.next_hop == Some(nh)))
            });
            if let Some(u) = self.nh_users.get_mut(&nh) {
                u.buckets = list;
            }
        }
    }

    pub(crate) fn note_nh_unuse(&mut self, nh: IpAddr, peer: PeerId) {
        if let Some(u) = self.nh_users.get_mut(&nh) {
            u.refs = u.refs.saturating_sub(1);
            if let Some(i) = u.peers.iter().position(|(p, _)| *p == peer) {
                u.peers[i].1 -= 1;
                if u.peers[i].1 == 0 {
                    u.peers.swap_remove(i);
                }
            }
            if u.refs == 0 {
                self.nh_users.remove(&nh);
            }
        }
    }

    /// The peers with paths through `nh` in this table, with their path counts.
    pub(crate) fn nh_peers(&self, nh: &IpAddr) -> &[(PeerId, u32)] {
        self.nh_users.get(nh).map_or(&[], |u| &u.peers[..])
    }

    /// Prefixes with a path through `nh`.
    pub(crate) fn nh_prefixes(&mut self, nh: IpAddr) -> Vec<K> {
        let Some(u) = self.nh_users.get_mut(&nh) else {
            return Vec::new();
        };
        u.buckets.sort_unstable();
        u.buckets.dedup();
        let mut out = Vec::new();
        for &b in &u.buckets {
            for (k, e) in &self.buckets[b as usize] {
                if e.iter().any(|x| x.attrs.next_hop == Some(nh)) {
                    out.push(*k);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_24_bytes_and_an_ipv4_entry_32() {
        assert_eq!(std::mem::size_of::<Paths>(), 24);
        assert_eq!(std::mem::size_of::<(Ipv4Net, Paths)>(), 32);
    }

    #[test]
    fn ipv4_buckets_keep_address_order() {
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let c: Ipv4Net = "192.0.2.0/24".parse().unwrap();
        assert!(a.bucket() <= b.bucket() && b.bucket() < c.bucket());
    }
}
