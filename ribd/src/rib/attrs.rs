//! The RIB's view of a route's path attributes, and the interner that shares them.
//!
//! The RIB owns its attribute representation (as BIRD's `nest/` does): the BGP codec converts once per
//! UPDATE, never per prefix, and every distinct attribute set exists once in memory, shared by `Arc`
//! across all peers and prefixes that carry it. A full table from N peers costs one [`Attrs`] per
//! distinct set, not per prefix.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// ORIGIN (RFC 4271 §5.1.1); lower is preferred.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    #[default]
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AS_PATH segment kinds (RFC 4271 §4.3, RFC 5065 for confederations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Set,
    Sequence,
    ConfedSequence,
    ConfedSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub kind: SegmentKind,
    pub asns: Box<[u32]>,
}

/// A 4-octet AS_PATH (AS4_PATH already merged by the codec per RFC 6793 §4.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct AsPath {
    pub segments: Box<[Segment]>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: impl Into<Vec<u32>>) -> AsPath {
        let asns = asns.into();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: Box::new([Segment {
                kind: SegmentKind::Sequence,
                asns: asns.into(),
            }]),
        }
    }

    /// Length for best-path selection (RFC 4271 §9.1.2.2 a): an AS_SET counts 1, confederation
    /// segments count 0 (RFC 5065 §5.3).
    pub fn selection_len(&self) -> u32 {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len() as u32,
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of the first AS_SEQUENCE (confederation segments skipped),
    /// used to decide whether MEDs are comparable (RFC 4271 §9.1.2.2 c). `None` for a local route.
    pub fn neighbor_as(&self) -> Option<u32> {
        for s in &self.segments {
            match s.kind {
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => continue,
                SegmentKind::Sequence => return s.asns.first().copied(),
                SegmentKind::Set => return None,
            }
        }
        None
    }

    /// The origin AS: the last AS of the last segment when it is a sequence.
    pub fn origin_as(&self) -> Option<u32> {
        match self.segments.last() {
            Some(s) if s.kind == SegmentKind::Sequence => s.asns.last().copied(),
            _ => None,
        }
    }

    /// True when `asn` appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Number of times `asn` appears (for allowas-in).
    pub fn count(&self, asn: u32) -> usize {
        self.segments
            .iter()
            .map(|s| s.asns.iter().filter(|a| **a == asn).count())
            .sum()
    }

    /// Every AS number in path order, segment kinds flattened (for regex matching and display).
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.iter().flat_map(|s| s.asns.iter().copied())
    }

    /// Prepends `asn` `times` times to the leading AS_SEQUENCE (creating one if needed).
    pub fn prepend(&mut self, asn: u32, times: usize) {
        if times == 0 {
            return;
        }
        let mut segs: Vec<Segment> = std::mem::take(&mut self.segments).into_vec();
        match segs.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() + times <= 255 => {
                let mut asns = vec![asn; times];
                asns.extend_from_slice(&s.asns);
                s.asns = asns.into();
            }
            _ => segs.insert(
                0,
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn; times].into(),
                },
            ),
        }
        self.segments = segs.into();
    }
}

impl std::fmt::Display for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.segments {
            let (open, close) = match s.kind {
                SegmentKind::Sequence => ("", ""),
                SegmentKind::Set => ("{", "}"),
                SegmentKind::ConfedSequence => ("(", ")"),
                SegmentKind::ConfedSet => ("[", "]"),
            };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(open)?;
            for (i, a) in s.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(
                        if matches!(s.kind, SegmentKind::Sequence | SegmentKind::ConfedSequence) {
                            " "
                        } else {
                            ","
                        },
                    )?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// A path attribute the RIB does not interpret, kept verbatim for re-advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawAttr {
    pub flags: u8,
    pub type_code: u8,
    pub value: Box<[u8]>,
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

/// The attributes of a path as the RIB sees them. Interned: compare by pointer where possible.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Attrs {
    pub origin: Origin,
    pub as_path: AsPath,
    /// BGP next-hop (IPv4 NEXT_HOP or the global MP_REACH next-hop); `None` for local routes.
    pub next_hop: Option<IpAddr>,
    /// IPv6 link-local next-hop when the peer sent one (RFC 2545 §3).
    pub next_hop_ll: Option<Ipv6Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Box<[u32]>,
    pub ext_communities: Box<[[u8; 8]]>,
    pub large_communities: Box<[LargeCommunity]>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Box<[Ipv4Addr]>,
    /// Optional transitive attributes not understood, re-advertised with the Partial bit set.
    pub unknown: Box<[RawAttr]>,
    /// Local weight set by import policy (not a BGP attribute, never advertised); higher wins first.
    pub weight: u32,
}

/// Well-known communities (RFC 1997, RFC 7999, RFC 8326).
pub mod community {
    pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;
    pub const ACCEPT_OWN: u32 = 0xFFFF_0001;
    pub const LLGR_STALE: u32 = 0xFFFF_0006;
    pub const NO_LLGR: u32 = 0xFFFF_0007;
    pub const BLACKHOLE: u32 = 0xFFFF_029A;
    pub const NO_EXPORT: u32 = 0xFFFF_FF01;
    pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
    pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
    pub const NO_PEER: u32 = 0xFFFF_FF04;
}

impl Attrs {
    /// Link bandwidth (RFC 7311-style extended community 0x40/0x04 or 0x00/0x04: 2-octet AS, IEEE
    /// float bytes/s) when present, for UCMP weights.
    pub fn link_bandwidth(&self) -> Option<f32> {
        self.ext_communities.iter().find_map(|c| {
            if (c[0] == 0x40 || c[0] == 0x00) && c[1] == 0x04 {
                let bw = f32::from_be_bytes([c[4], c[5], c[6], c[7]]);
                (bw.is_finite() && bw > 0.0).then_some(bw)
            } else {
                None
            }
        })
    }

    pub fn has_community(&self, c: u32) -> bool {
        self.communities.contains(&c)
    }

    /// Heap bytes owned by the set (its lists), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(&*self.as_path.segments)
            + self
                .as_path
                .segments
                .iter()
                .map(|s| size_of_val(&*s.asns))
                .sum::<usize>()
            + size_of_val(&*self.communities)
            + size_of_val(&*self.ext_communities)
            + size_of_val(&*self.large_communities)
            + size_of_val(&*self.cluster_list)
            + size_of_val(&*self.unknown)
            + self.unknown.iter().map(|u| u.value.len()).sum::<usize>()
    }
}

/// Shared handle to an interned attribute set. Equality and hashing are by pointer: two handles from the
/// same [`AttrStore`] are equal exactly when their contents are.
#[derive(Debug, Clone)]
pub struct AttrRef(pub(crate) Arc<Attrs>);

impl AttrRef {
    pub fn ptr_eq(a: &AttrRef, b: &AttrRef) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl std::ops::Deref for AttrRef {
    type Target = Attrs;
    fn deref(&self) -> &Attrs {
        &self.0
    }
}

impl PartialEq for AttrRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for AttrRef {}
impl Hash for AttrRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state)
    }
}

/// Hash-consing store: one `Arc<Attrs>` per distinct attribute set.
///
/// Each slot keeps the set's hash: growing the table rehashes the stored `u64`s instead of every
/// attribute set (AS paths, communities), which was most of the cost of interning a full table.
#[derive(Debug, Default)]
pub struct AttrStore {
    set: HashSet<Stored, rustc_hash::FxBuildHasher>,
}

/// A slot of the store: the set and its content hash.
#[derive(Debug)]
struct Stored {
    hash: u64,
    attrs: Arc<Attrs>,
}

impl Hash for Stored {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.attrs, &other.attrs) || *self.attrs == *other.attrs)
    }
}
impl Eq for Stored {}

fn content_hash(a: &Attrs) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(a)
}

impl AttrStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the shared copy of `attrs`, storing it if it is new.
    pub fn intern(&mut self, attrs: Attrs) -> AttrRef {
        let probe = Stored {
            hash: content_hash(&attrs),
            attrs: Arc::new(attrs),
        };
        if let Some(s) = self.set.get(&probe) {
            return AttrRef(s.attrs.clone());
        }
        let a = probe.attrs.clone();
        self.set.insert(probe);
        AttrRef(a)
    }

    /// Called when a holder drops `a`: frees the set when the store holds the last other reference.
    pub fn release(&mut self, a: AttrRef) {
        // The store's copy + the one being released.
        if Arc::strong_count(&a.0) == 2 {
            let probe = Stored {
                hash: content_hash(&a.0),
                attrs: a.0,
            };
            self.set.remove(&probe);
        }
    }

    /// Approximate bytes of every set held (the set, its `Arc` counters, its lists and its slot in the
    /// interning table).
    pub fn approx_bytes(&self) -> usize {
        let fixed = std::mem::size_of::<Attrs>() + 16;
        self.set.capacity() * (std::mem::size_of::<Stored>() + 1)
            + self
                .set
                .iter()
                .map(|s| fixed + s.attrs.heap_bytes())
                .sum::<usize>()
    }

    /// Number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drops every set no route refers to any more (after bulk operations that bypassed `release`).
    pub fn collect_garbage(&mut self) {
        self.set.retain(|s| Arc::strong_count(&s.attrs) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_path_length_counts_set_as_one_and_confed_as_zero_rfc4271_9_1_2_2_a() {
        let p = AsPath {
            segments: Box::new([
                Segment {
                    kind: SegmentKind::ConfedSequence,
                    asns: Box::new([65001, 65002]),
                },
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: Box::new([1, 2, 3]),
                },
                Segment {
                    kind: SegmentKind::Set,
                    asns: Box::new([4, 5, 6]),
                },
            ]),
        };
        assert_eq!(p.selection_len(), 4);
        assert_eq!(p.neighbor_as(), Some(1));
        assert_eq!(p.origin_as(), None);
        assert_eq!(p.to_string(), "(65001 65002) 1 2 3 {4,5,6}");
    }

    #[test]
    fn prepend_extends_the_leading_sequence() {
        let mut p = AsPath::sequence(vec![2, 3]);
        p.prepend(1, 2);
        assert_eq!(p.to_string(), "1 1 2 3");
        let mut empty = AsPath::default();
        empty.prepend(7, 1);
        assert_eq!(empty.to_string(), "7");
    }

    #[test]
    fn interning_shares_equal_sets_and_frees_unused_ones() {
        let mut store = AttrStore::new();
        let a = Attrs {
            med: Some(5),
            ..Attrs::default()
        };
        let x = store.intern(a.clone());
        let y = store.intern(a);
        assert!(AttrRef::ptr_eq(&x, &y));
        assert_eq!(store.len(), 1);
        store.release(x);
        assert_eq!(store.len(), 1, "still referenced by y");
        store.release(y);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn link_bandwidth_is_read_from_the_extended_community() {
        let bw = 125_000_000f32.to_be_bytes();
        let a = Attrs {
            ext_communities: Box::new([[0x40, 0x04, 0xFD, 0xE8, bw[0], bw[1], bw[2], bw[3]]]),
            ..Default::default()
        };
        assert_eq!(a.link_bandwidth(), Some(125_000_000.0));
    }
}
