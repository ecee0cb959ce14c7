//! Per-AFI prefix tables: each prefix holds its candidate paths (the post-policy Adj-RIB-In of every
//! peer, shared in one place) ordered best first, plus how many lead the multipath set.
//!
//! Memory per prefix is what the product competes on, so the layout is deliberate:
//! - a table is 65,536 buckets of sorted vectors of `(prefix, Paths)` (bucketed by the top 16 address
//!   bits for IPv4, which keeps address order; by a hash of the top 32 bits for IPv6). No hash table
//!   load-factor slack, no per-entry allocation, and ordered walks for `--longer` queries;
//! - [`Paths`] is 16 bytes: one path inline (the common case: one path per peer per prefix), or a
//!   boxed slice when several peers announce the prefix, told apart by the low bit of the first
//!   word (an `Arc` pointer's is clear), with the multipath count in the lone path's rank or
//!   beside the slice's length;
//! - a [`Path`] is 16 bytes: an interned attribute pointer, the ADD-PATH path id, a 16-bit peer
//!   index, flags, and its arrival rank among the prefix's paths (all the decision process needs of
//!   arrival order), so every further peer's path costs 16 bytes in the prefix's slice.
//!
//! An IPv4 entry costs 24 bytes (an IPv6 entry 40) plus the interned attribute set's share; with
//! a 24-byte `Paths` they were 32 and 48 (8 bytes per path of a full table from one peer).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use super::attrs::AttrRef;

/// Index of a peer in the RIB's peer table (at most 65,536 peers and local origins).
pub type PeerId = u16;

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

/// One candidate path for a prefix. `repr(C)` with the attribute pointer first: [`Paths`] tells an
/// inline path from a boxed slice by that word's low bit (always clear in an `Arc` pointer).
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Path {
    pub attrs: AttrRef,
    pub path_id: u32,
    pub peer: PeerId,
    pub flags: u8,
    /// Arrival order among the paths of the prefix: a path announced (or replaced) later has a
    /// higher rank. Ranks are compacted when they would overflow, keeping their order. Only the
    /// order among a prefix's paths means anything (a prefix's only path keeps its multipath
    /// count here, see [`Paths`]).
    pub rank: u8,
}

impl Path {
    /// A path; [`Paths::push_newest`] (or being a prefix's only path) gives it its rank.
    pub fn new(peer: PeerId, path_id: u32, attrs: AttrRef) -> Path {
        Path {
            attrs,
            path_id,
            peer,
            flags: 0,
            rank: 0,
        }
    }
}

/// All candidates of one prefix, best first, with the multipath count (see [`Paths::multipath`]).
///
/// 16 bytes, so a table entry is 24 (IPv4) or 40 (IPv6) bytes: either the one path inline (the
/// common case; its multipath count, 0 or 1, is kept in its `rank`, which means nothing for a
/// lone path), or a boxed slice of several as (data pointer with the low bit set, length,
/// multipath count). An `Arc` pointer is 8-aligned, so an inline path's first word has that bit
/// clear; callers only ever see `Path`s, and no `Path` value can set it.
#[repr(C)]
pub struct Paths {
    repr: Repr,
}

#[repr(C)]
union Repr {
    one: std::mem::ManuallyDrop<Path>,
    many: Many,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Many {
    /// `Box<[Path]>` data pointer | 1.
    ptr: *mut Path,
    len: u32,
    mp: u8,
}

const _: () = {
    assert!(std::mem::size_of::<AttrRef>() == 8);
    assert!(std::mem::size_of::<Path>() == 16 && std::mem::align_of::<Path>() == 8);
    assert!(std::mem::size_of::<Many>() == 16);
    assert!(std::mem::size_of::<Paths>() == 16);
};

// SAFETY: a `Paths` owns its path or its boxed slice exclusively, like `Box<[Path]>` does; `Path`
// is `Send + Sync` (asserted below).
unsafe impl Send for Paths {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Paths {}
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Path>();
};

impl Paths {
    /// The entry of a prefix's first path.
    pub fn one(mut p: Path) -> Paths {
        p.rank = 0;
        Paths::inline(p)
    }

    /// `p` inline; its rank is the multipath count (0 or 1).
    fn inline(p: Path) -> Paths {
        let r = Paths {
            repr: Repr {
                one: std::mem::ManuallyDrop::new(p),
            },
        };
        debug_assert!(!r.is_many());
        r
    }

    fn boxed(v: Box<[Path]>, mp: u8) -> Paths {
        let len = u32::try_from(v.len()).expect("fewer than 2^32 paths per prefix");
        let ptr = Box::into_raw(v) as *mut Path;
        debug_assert!(ptr as usize & 1 == 0);
        Paths {
            repr: Repr {
                many: Many {
                    ptr: ptr.map_addr(|a| a | 1),
                    len,
                    mp,
                },
            },
        }
    }

    fn is_many(&self) -> bool {
        // SAFETY: both members start with a pointer-sized word: the tagged slice pointer or the
        // attribute `Arc` pointer (bit 0 clear); reading it as a raw pointer is valid for either.
        unsafe { self.repr.many.ptr.addr() & 1 == 1 }
    }

    /// The slice of a boxed entry (data pointer, length), `None` for an inline path.
    fn many(&self) -> Option<(*mut Path, usize)> {
        self.is_many().then(|| {
            // SAFETY: the active member is `many` (tag bit set).
            let m = unsafe { self.repr.many };
            (m.ptr.map_addr(|a| a & !1), m.len as usize)
        })
    }

    pub fn as_slice(&self) -> &[Path] {
        match self.many() {
            // SAFETY: (ptr, len) came from a `Box<[Path]>` this value owns.
            Some((ptr, len)) => unsafe { std::slice::from_raw_parts(ptr, len) },
            // SAFETY: the active member is `one`.
            None => std::slice::from_ref(unsafe { &*self.repr.one }),
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Path] {
        match self.many() {
            // SAFETY: (ptr, len) came from a `Box<[Path]>` this value owns exclusively.
            Some((ptr, len)) => unsafe { std::slice::from_raw_parts_mut(ptr, len) },
            // SAFETY: the active member is `one`.
            None => std::slice::from_mut(unsafe { &mut *self.repr.one }),
        }
    }

    /// Makes `p` the newest path of the entry: it replaces the path `at` when given, else it is
    /// added. Returns the replaced path.
    pub fn push_newest(&mut self, mut p: Path, at: Option<usize>) -> Option<Path> {
        if !self.is_many() && at == Some(0) {
            // The lone path replaced: the multipath count stays (in the rank).
            p.rank = self.multipath() as u8;
            return Some(std::mem::replace(&mut self.as_mut_slice()[0], p));
        }
        let newest = self
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != at)
            .map(|(_, x)| x.rank)
            .max();
        p.rank = match newest {
            None => 0,
            Some(r) if r < u8::MAX => r + 1,
            Some(_) => self.compact_ranks(at),
        };
        match at {
            Some(i) => Some(std::mem::replace(&mut self.as_mut_slice()[i], p)),
            None => {
                self.push(p);
                None
            }
        }
    }

    /// Renumbers the ranks 0.. in their order (skipping the path `skip`); returns the next rank.
    fn compact_ranks(&mut self, skip: Option<usize>) -> u8 {
        let s = self.as_mut_slice();
        let mut idx: Vec<usize> = (0..s.len()).filter(|&i| Some(i) != skip).collect();
        idx.sort_by_key(|&i| s[i].rank);
        for (r, &i) in idx.iter().enumerate() {
            s[i].rank = r.min(u8::MAX as usize - 1) as u8;
        }
        idx.len().min(u8::MAX as usize) as u8
    }

    pub fn len(&self) -> usize {
        self.many().map_or(1, |(_, n)| n)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of leading paths forming the multipath (forwarding) set; 0 = nothing usable.
    pub fn multipath(&self) -> usize {
        if self.is_many() {
            // SAFETY: the active member is `many`.
            unsafe { self.repr.many.mp as usize }
        } else {
            self.as_slice()[0].rank as usize
        }
    }

    pub fn set_multipath(&mut self, n: usize) {
        let n = n.min(self.len()).min(u8::MAX as usize) as u8;
        if self.is_many() {
            // The active member is `many` (a plain `Copy` field write); only its count changes.
            self.repr.many.mp = n;
        } else {
            self.as_mut_slice()[0].rank = n;
        }
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

    fn push(&mut self, p: Path) {
        let mp = self.multipath() as u8;
        let old = std::mem::take(self).into_vec();
        // One allocation of the final size (growing a vector and boxing it reallocated twice).
        let mut v: Vec<Path> = Vec::with_capacity(old.len() + 1);
        v.extend(old);
        v.push(p);
        *self = Paths::boxed(v.into_boxed_slice(), mp);
    }

    /// Removes the paths matching `pred`, returning them; `None` in the result's second place means the
    /// entry is now empty. The multipath count of what is kept is 0 until selection runs again.
    pub fn extract(self, pred: impl Fn(&Path) -> bool) -> (Vec<Path>, Option<Paths>) {
        let (removed, kept): (Vec<Path>, Vec<Path>) =
            self.into_vec().into_iter().partition(|p| pred(p));
        (removed, Paths::from_vec(kept))
    }

    pub fn into_vec(self) -> Vec<Path> {
        let me = std::mem::ManuallyDrop::new(self);
        match me.many() {
            // SAFETY: (ptr, len) came from `Box::into_raw` of a `[Path]` this value owned; `me`
            // is not dropped, so the box has one owner again.
            Some((ptr, len)) => unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)).into_vec()
            },
            None => {
                // SAFETY: the active member is `one`, read out once; `me` is not dropped.
                let mut p = unsafe { std::ptr::read(&*me.repr.one) };
                p.rank = 0;
                vec![p]
            }
        }
    }

    pub fn from_vec(mut v: Vec<Path>) -> Option<Paths> {
        match v.len() {
            0 => None,
            1 => v.pop().map(Paths::one),
            _ => Some(Paths::boxed(v.into_boxed_slice(), 0)),
        }
    }

    /// Heap bytes of a boxed slice (0 for an inline path).
    pub fn heap_bytes(&self) -> usize {
        self.many()
            .map_or(0, |(_, n)| n * std::mem::size_of::<Path>())
    }

    /// Reorders the paths: `order[i]` is the index of the path that goes to position i (`order`
    /// is a permutation of the indices). In place, without allocating: selection runs on every
    /// change of a prefix with several paths.
    pub fn permute(&mut self, order: &[usize]) {
        if !self.is_many() {
            return;
        }
        let v = self.as_mut_slice();
        if order.len() != v.len() {
            return;
        }
        // Position i takes the path first at order[i]; one that already moved away (to a position
        // before i, by the swap that filled it) is found by following the permutation.
        for i in 0..order.len() {
            let mut j = order[i];
            while j < i {
                j = order[j];
            }
            v.swap(i, j);
        }
    }
}

impl Drop for Paths {
    fn drop(&mut self) {
        match self.many() {
            // SAFETY: (ptr, len) came from `Box::into_raw`; this is its only owner.
            Some((ptr, len)) => unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)));
            },
            // SAFETY: the active member is `one`, dropped once.
            None => unsafe { std::mem::ManuallyDrop::drop(&mut self.repr.one) },
        }
    }
}

impl Clone for Paths {
    fn clone(&self) -> Self {
        if self.is_many() {
            Paths::boxed(self.as_slice().into(), self.multipath() as u8)
        } else {
            Paths::inline(self.as_slice()[0].clone())
        }
    }
}

impl std::fmt::Debug for Paths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paths")
            .field("multipath", &self.multipath())
            .field("paths", &self.as_slice())
            .finish()
    }
}

impl Default for Paths {
    /// An empty boxed slice (a placeholder the table fills at once).
    fn default() -> Self {
        Paths::boxed(Box::new([]), 0)
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

/// Where a table's bytes go (see [`Table::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableMemory {
    /// The bucket array (one vector header per bucket).
    pub buckets: usize,
    /// The `(prefix, Paths)` entries, capacity included.
    pub entries: usize,
    /// Boxed path slices of prefixes with several paths, and how many there are.
    pub path_slices: usize,
    pub slices: usize,
    /// Next-hop tracking: per next-hop bucket lists and peer counts.
    pub nh_index: usize,
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
    /// An empty table: its bucket array (1.5 MB) comes with the first prefix, so a family no peer
    /// sends costs nothing.
    fn default() -> Self {
        Table {
            buckets: Vec::new(),
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
        let b = self.buckets.get(k.bucket())?;
        b.binary_search_by(|(x, _)| x.cmp(k)).ok().map(|i| &b[i].1)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut Paths> {
        let b = self.buckets.get_mut(k.bucket())?;
        match b.binary_search_by(|(x, _)| x.cmp(k)) {
            Ok(i) => Some(&mut b[i].1),
            Err(_) => None,
        }
    }

    /// Asks the CPU to start loading what a look-up of `k` reads: the bucket's vector header, or
    /// with `entries` (once the header has arrived) the middle of its entries, where the binary
    /// search starts. A batch applied in order prefetches a few prefixes ahead, so the bucket
    /// misses of a feed that jumps across the address space overlap.
    #[inline]
    pub(crate) fn prefetch(&self, k: &K, entries: bool) {
        let Some(b) = self.buckets.get(k.bucket()) else {
            return;
        };
        if !entries {
            prefetch((b as *const Vec<(K, Paths)>).cast());
        } else if !b.is_empty() {
            prefetch(b.as_ptr().wrapping_add(b.len() / 2).cast());
        }
    }

    /// The entry for `k` and whether it was absent, in one search (a table fed in attribute-set
    /// order finds each prefix in a cold bucket, so a miss followed by an insert searched it twice).
    /// An absent entry is inserted empty: the caller fills it before anyone else looks.
    pub(crate) fn slot(&mut self, k: K) -> (&mut Paths, bool) {
        if self.buckets.is_empty() {
            self.buckets = (0..BUCKETS).map(|_| Vec::new()).collect();
        }
        let b = &mut self.buckets[k.bucket()];
        match b.binary_search_by(|(x, _)| x.cmp(&k)) {
            Ok(i) => (&mut b[i].1, false),
            Err(i) => {
                b.insert(i, (k, Paths::default()));
                self.len += 1;
                (&mut b[i].1, true)
            }
        }
    }

    /// The entry for `k`, inserted empty when absent (callers fill it before anyone else looks).
    pub(crate) fn get_or_insert(&mut self, k: K) -> &mut Paths {
        if self.buckets.is_empty() {
            self.buckets = (0..BUCKETS).map(|_| Vec::new()).collect();
        }
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
        let b = self.buckets.get_mut(k.bucket())?;
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
            Some((lo, hi)) => Box::new(self.buckets.get(lo..=hi).unwrap_or(&[]).iter()),
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
                    .any(|(_, e)| e.iter().any(|x| x.attrs.next_hop() == Some(nh)))
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

    /// Bytes the table holds, by part (requested sizes; allocator overhead not included).
    pub fn memory(&self) -> TableMemory {
        let entry = std::mem::size_of::<(K, Paths)>();
        let mut m = TableMemory {
            buckets: self.buckets.capacity() * std::mem::size_of::<Vec<(K, Paths)>>(),
            ..TableMemory::default()
        };
        for b in &self.buckets {
            m.entries += b.capacity() * entry;
            for (_, e) in b {
                let n = e.heap_bytes();
                m.path_slices += n;
                m.slices += usize::from(n > 0);
            }
        }
        let slot = std::mem::size_of::<(IpAddr, NhUsers)>() + 1;
        m.nh_index = self.nh_users.capacity() * slot
            + self
                .nh_users
                .values()
                .map(|u| {
                    u.buckets.capacity() * 2
                        + if u.peers.spilled() {
                            u.peers.capacity() * std::mem::size_of::<(PeerId, u32)>()
                        } else {
                            0
                        }
                })
                .sum::<usize>();
        m
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
                if e.iter().any(|x| x.attrs.next_hop() == Some(nh)) {
                    out.push(*k);
                }
            }
        }
        out
    }
}

/// A prefetch hint for the cache line at `p`.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing the program sees, for
    // any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_16_bytes_and_entries_24_and_40() {
        assert_eq!(std::mem::size_of::<Path>(), 16);
        assert_eq!(std::mem::size_of::<Paths>(), 16);
        assert_eq!(std::mem::size_of::<(Ipv4Net, Paths)>(), 24);
        assert_eq!(std::mem::size_of::<(Ipv6Net, Paths)>(), 40);
    }

    /// Arrival order survives any number of replacements: ranks are compacted, never wrapped.
    #[test]
    fn ranks_keep_arrival_order_through_many_replacements() {
        let mut store = super::super::attrs::AttrStore::new();
        let a = store.intern(super::super::attrs::Attrs::default());
        let mut e = Paths::one(Path::new(0, 0, a.clone()));
        for peer in 1..4 {
            assert!(e.push_newest(Path::new(peer, 0, a.clone()), None).is_none());
        }
        // Arrival order now 0, 1, 2, 3; replace peers 1 and 2 alternately, 600 times.
        let mut order: Vec<PeerId> = vec![0, 1, 2, 3];
        for i in 0..600 {
            let peer = 1 + (i % 2) as PeerId;
            let at = e.iter().position(|p| p.peer == peer);
            assert!(e.push_newest(Path::new(peer, 0, a.clone()), at).is_some());
            order.retain(|&p| p != peer);
            order.push(peer);
            let mut by_rank: Vec<&Path> = e.iter().collect();
            by_rank.sort_by_key(|p| p.rank);
            let got: Vec<PeerId> = by_rank.iter().map(|p| p.peer).collect();
            assert_eq!(got, order, "after replacement {i}");
            let mut ranks: Vec<u8> = e.iter().map(|p| p.rank).collect();
            ranks.sort_unstable();
            ranks.dedup();
            assert_eq!(ranks.len(), 4, "distinct ranks");
        }
        assert_eq!(e.len(), 4);
    }

    #[test]
    fn permute_puts_every_path_where_the_order_says_for_every_order() {
        fn perms(n: usize) -> Vec<Vec<usize>> {
            if n == 0 {
                return vec![Vec::new()];
            }
            let mut out = Vec::new();
            for p in perms(n - 1) {
                for i in 0..n {
                    let mut q = p.clone();
                    q.insert(i, n - 1);
                    out.push(q);
                }
            }
            out
        }
        let mut store = crate::rib::attrs::AttrStore::new();
        let a = store.intern(crate::rib::attrs::Attrs::default());
        for n in 2..=6 {
            for order in perms(n) {
                let v: Vec<Path> = (0..n)
                    .map(|i| Path::new(i as PeerId, 0, a.clone()))
                    .collect();
                let mut e = Paths::from_vec(v).unwrap();
                e.permute(&order);
                let got: Vec<usize> = e.iter().map(|p| p.peer as usize).collect();
                assert_eq!(got, order);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A path from this peer (replacing its current one, if any).
        Announce(PeerId, usize),
        /// Remove this peer's path.
        Withdraw(PeerId),
        SetMultipath(usize),
        /// Rotate the order by this much (a permutation).
        Rotate(usize),
        Clone,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..6 as PeerId, 0..3usize).prop_map(|(p, a)| Op::Announce(p, a)),
            2 => (0..6 as PeerId).prop_map(Op::Withdraw),
            2 => (0..8usize).prop_map(Op::SetMultipath),
            1 => (0..6usize).prop_map(Op::Rotate),
            1 => Just(Op::Clone),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// The 16-byte entry (one path inline or a tagged boxed slice) behaves as a vector of paths
        /// with a multipath count: same paths in the same order, same count, newest-last ranks,
        /// and every attribute handle released when entries are dropped (no leak, no double drop).
        #[test]
        fn paths_behave_like_a_vector_with_a_count(ops in prop::collection::vec(op(), 1..200)) {
            let mut store = crate::rib::attrs::AttrStore::new();
            let attrs: Vec<AttrRef> = (0..3u32)
                .map(|i| store.intern(crate::rib::attrs::Attrs::default().with_med(Some(i))))
                .collect();
            let base: Vec<usize> = attrs.iter().map(|a| a.ref_count()).collect();
            {
                // Model: (peer, attrs index) in order, newest-arrival order, multipath count.
                let mut model: Vec<(PeerId, usize)> = Vec::new();
                let mut arrival: Vec<PeerId> = Vec::new();
                let mut mp = 0usize;
                let mut e: Option<Paths> = None;
                let mut clones = Vec::new();
                for op in ops {
                    match op {
                        Op::Announce(peer, a) => {
                            let p = Path::new(peer, 0, attrs[a].clone());
                            match e.as_mut() {
                                None => {
                                    e = Some(Paths::one(p));
                                    model.push((peer, a));
                                    mp = 0;
                                }
                                Some(x) => {
                                    let at = x.iter().position(|q| q.peer == peer);
                                    let old = x.push_newest(p, at);
                                    prop_assert_eq!(old.is_some(), at.is_some());
                                    match at {
                                        Some(i) => model[i] = (peer, a),
                                        None => model.push((peer, a)),
                                    }
                                }
                            }
                            arrival.retain(|&q| q != peer);
                            arrival.push(peer);
                        }
                        Op::Withdraw(peer) => {
                            if let Some(x) = e.take() {
                                let (removed, kept) = x.extract(|q| q.peer == peer);
                                let had = model.iter().any(|m| m.0 == peer);
                                prop_assert_eq!(removed.len(), usize::from(had));
                                model.retain(|m| m.0 != peer);
                                arrival.retain(|&q| q != peer);
                                e = kept;
                                mp = 0;
                            }
                        }
                        Op::SetMultipath(n) => {
                            if let Some(x) = e.as_mut() {
                                x.set_multipath(n);
                                mp = n.min(model.len());
                            }
                        }
                        Op::Rotate(r) => {
                            if let Some(x) = e.as_mut() {
                                let n = model.len();
                                let order: Vec<usize> = (0..n).map(|i| (i + r) % n).collect();
                                x.permute(&order);
                                if n > 1 {
                                    model = order.iter().map(|&i| model[i]).collect();
                                }
                            }
                        }
                        Op::Clone => {
                            if let Some(x) = &e {
                                clones.push((x.clone(), model.clone(), mp));
                            }
                        }
                    }
                    prop_assert_eq!(e.is_none(), model.is_empty());
                    if let Some(x) = &e {
                        let got: Vec<(PeerId, usize)> = x
                            .iter()
                            .map(|p| (p.peer, attrs.iter().position(|a| a == &p.attrs).unwrap()))
                            .collect();
                        prop_assert_eq!(&got, &model);
                        prop_assert_eq!(x.len(), model.len());
                        prop_assert_eq!(x.multipath(), mp);
                        prop_assert_eq!(x.forwarding().len(), mp);
                        prop_assert_eq!(x.best().is_some(), mp > 0);
                        let mut by_rank: Vec<&Path> = x.iter().collect();
                        by_rank.sort_by_key(|p| p.rank);
                        let order: Vec<PeerId> = by_rank.iter().map(|p| p.peer).collect();
                        if model.len() > 1 {
                            prop_assert_eq!(order, arrival.clone());
                        }
                        prop_assert_eq!(x.heap_bytes(), if model.len() > 1 { 16 * model.len() } else { 0 });
                    }
                }
                // Clones are deep: each still holds what the entry held when it was cloned.
                for (c, m, mp) in &clones {
                    let got: Vec<(PeerId, usize)> = c
                        .iter()
                        .map(|p| (p.peer, attrs.iter().position(|a| a == &p.attrs).unwrap()))
                        .collect();
                    prop_assert_eq!(&got, m);
                    prop_assert_eq!(c.multipath(), *mp);
                }
            }
            let now: Vec<usize> = attrs.iter().map(|a| a.ref_count()).collect();
            prop_assert_eq!(now, base);
        }
    }

    #[test]
    fn ipv4_buckets_keep_address_order() {
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let c: Ipv4Net = "192.0.2.0/24".parse().unwrap();
        assert!(a.bucket() <= b.bucket() && b.bucket() < c.bucket());
    }
}
