//! Per-AFI prefix tables: each prefix holds its candidate paths (the post-policy Adj-RIB-In of every
//! peer, shared in one place) ordered best first, plus how many lead the multipath set.
//!
//! Memory per prefix is what the product competes on, so an entry is small: the key (5 or 17 bytes),
//! one path inline (peer, path id, interned attribute pointer, arrival sequence, flags) and the
//! multipath count. Paths beyond the first spill to the heap.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use super::attrs::AttrRef;

/// Index of a peer in the RIB's peer table.
pub type PeerId = u32;

/// Path flags.
pub mod flags {
    /// Kept after the session went down with graceful restart (RFC 4724 §4.2).
    pub const STALE: u8 = 0x1;
    /// Long-lived stale (RFC 9494): least preferred.
    pub const LLGR_STALE: u8 = 0x2;
}

/// One candidate path for a prefix.
#[derive(Debug, Clone)]
pub struct Path {
    pub peer: PeerId,
    pub path_id: u32,
    pub attrs: AttrRef,
    pub seq: u32,
    pub flags: u8,
}

/// All candidates for one prefix, best first.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub paths: SmallVec<[Path; 1]>,
    /// Number of leading paths forming the multipath (forwarding) set; 0 = nothing usable.
    pub multipath: u8,
}

impl Entry {
    pub fn best(&self) -> Option<&Path> {
        (self.multipath > 0).then(|| &self.paths[0])
    }

    pub fn forwarding(&self) -> &[Path] {
        &self.paths[..self.multipath as usize]
    }
}

/// A prefix type usable as a table key.
pub trait PrefixKey: Copy + Eq + Hash + Ord + std::fmt::Debug + Into<IpNet> {
    fn from_net(n: IpNet) -> Option<Self>;
    /// True when `self` is `other` or more specific inside it.
    fn within(&self, other: &Self) -> bool;
}

impl PrefixKey for Ipv4Net {
    fn from_net(n: IpNet) -> Option<Self> {
        match n {
            IpNet::V4(n) => Some(n.trunc()),
            IpNet::V6(_) => None,
        }
    }
    fn within(&self, other: &Self) -> bool {
        other.contains(self)
    }
}

impl PrefixKey for Ipv6Net {
    fn from_net(n: IpNet) -> Option<Self> {
        match n {
            IpNet::V6(n) => Some(n.trunc()),
            IpNet::V4(_) => None,
        }
    }
    fn within(&self, other: &Self) -> bool {
        other.contains(self)
    }
}

/// A prefix table.
#[derive(Debug)]
pub struct Table<K: PrefixKey> {
    pub(crate) map: HashMap<K, Entry, FxBuildHasher>,
    /// next-hop → prefixes that had a path through it (lazily pruned; see `Nht`).
    pub(crate) nh_users: HashMap<IpAddr, NhUsers<K>, FxBuildHasher>,
}

/// Prefixes using a next-hop. `refs` counts live (prefix, path) uses; `list` may hold stale or duplicate
/// prefixes and is compacted when it grows past twice the live count.
#[derive(Debug)]
pub(crate) struct NhUsers<K> {
    pub refs: usize,
    pub list: Vec<K>,
}

impl<K: PrefixKey> Default for Table<K> {
    fn default() -> Self {
        Table {
            map: HashMap::default(),
            nh_users: HashMap::default(),
        }
    }
}

impl<K: PrefixKey> Table<K> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, k: &K) -> Option<&Entry> {
        self.map.get(k)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Entry)> {
        self.map.iter()
    }

    /// Prefixes in address order (for display and stable pagination).
    pub fn sorted_keys(&self) -> Vec<K> {
        let mut keys: Vec<K> = self.map.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    pub(crate) fn note_nh_use(&mut self, nh: IpAddr, k: K) {
        let u = self.nh_users.entry(nh).or_insert_with(|| NhUsers {
            refs: 0,
            list: Vec::new(),
        });
        u.refs += 1;
        u.list.push(k);
        if u.list.len() > 2 * u.refs + 16 {
            let map = &self.map;
            u.list.sort_unstable();
            u.list.dedup();
            u.list.retain(|p| {
                map.get(p)
                    .is_some_and(|e| e.paths.iter().any(|x| x.attrs.next_hop == Some(nh)))
            });
        }
    }

    pub(crate) fn note_nh_unuse(&mut self, nh: IpAddr) {
        if let Some(u) = self.nh_users.get_mut(&nh) {
            u.refs = u.refs.saturating_sub(1);
            if u.refs == 0 {
                self.nh_users.remove(&nh);
            }
        }
    }

    /// Distinct prefixes that may use `nh` (callers re-check).
    pub(crate) fn nh_prefixes(&mut self, nh: IpAddr) -> Vec<K> {
        match self.nh_users.get_mut(&nh) {
            Some(u) => {
                u.list.sort_unstable();
                u.list.dedup();
                u.list.clone()
            }
            None => Vec::new(),
        }
    }
}
