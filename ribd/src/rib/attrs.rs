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

/// One AS_PATH segment, owned (for building paths; an [`AsPath`] keeps its segments in one array).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub kind: SegmentKind,
    pub asns: Box<[u32]>,
}

/// One segment of an [`AsPath`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef<'a> {
    pub kind: SegmentKind,
    pub asns: &'a [u32],
}

impl SegmentKind {
    fn code(self) -> u32 {
        match self {
            SegmentKind::Set => 0,
            SegmentKind::Sequence => 1,
            SegmentKind::ConfedSequence => 2,
            SegmentKind::ConfedSet => 3,
        }
    }

    fn from_code(c: u32) -> SegmentKind {
        match c {
            0 => SegmentKind::Set,
            1 => SegmentKind::Sequence,
            2 => SegmentKind::ConfedSequence,
            _ => SegmentKind::ConfedSet,
        }
    }
}

/// A 4-octet AS_PATH (AS4_PATH already merged by the codec per RFC 6793 §4.2.3), in one allocation:
/// each segment is a header word (kind in the top byte, AS count below) followed by its AS numbers.
/// (Boxed segments each with boxed numbers cost two allocations per path, ≈ 64 bytes of malloc
/// chunks for a typical 5-AS path; this is one of 32.)
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "AsPathRepr", into = "AsPathRepr")]
pub struct AsPath {
    words: Box<[u32]>,
}

/// The serialised form of an [`AsPath`] (as it always was: a list of segments).
#[derive(Serialize, Deserialize)]
struct AsPathRepr {
    segments: Vec<Segment>,
}

impl From<AsPathRepr> for AsPath {
    fn from(r: AsPathRepr) -> AsPath {
        AsPath::from_segments(r.segments.iter().map(|s| (s.kind, &s.asns[..])))
    }
}

impl From<AsPath> for AsPathRepr {
    fn from(p: AsPath) -> AsPathRepr {
        AsPathRepr {
            segments: p.segments().map(SegmentRef::to_owned).collect(),
        }
    }
}

impl SegmentRef<'_> {
    pub fn to_owned(self) -> Segment {
        Segment {
            kind: self.kind,
            asns: self.asns.into(),
        }
    }
}

impl std::fmt::Debug for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

/// Segments of an [`AsPath`], in order.
#[derive(Clone)]
pub struct Segments<'a> {
    words: &'a [u32],
}

impl<'a> Iterator for Segments<'a> {
    type Item = SegmentRef<'a>;
    fn next(&mut self) -> Option<SegmentRef<'a>> {
        let (&h, rest) = self.words.split_first()?;
        let n = ((h & 0x00FF_FFFF) as usize).min(rest.len());
        let (asns, rest) = rest.split_at(n);
        self.words = rest;
        Some(SegmentRef {
            kind: SegmentKind::from_code(h >> 24),
            asns,
        })
    }
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: impl Into<Vec<u32>>) -> AsPath {
        let asns = asns.into();
        AsPath::from_segments([(SegmentKind::Sequence, &asns[..])])
    }

    /// A path of the given segments (empty segments are dropped).
    pub fn from_segments<'a>(segs: impl IntoIterator<Item = (SegmentKind, &'a [u32])>) -> AsPath {
        let mut words = Vec::new();
        for (kind, asns) in segs {
            if asns.is_empty() {
                continue;
            }
            // A wire segment holds at most 255 ASes; longer ones (built here) are split.
            for part in asns.chunks(0x00FF_FFFF) {
                // Exact: a one-segment path (most) allocates once and boxes without reallocating.
                words.reserve_exact(1 + part.len());
                words.push(kind.code() << 24 | part.len() as u32);
                words.extend_from_slice(part);
            }
        }
        AsPath {
            words: words.into(),
        }
    }

    /// The segments, in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments { words: &self.words }
    }

    /// True for an empty path (a route of our own AS).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Heap bytes of the path.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }

    /// Length for best-path selection (RFC 4271 §9.1.2.2 a): an AS_SET counts 1, confederation
    /// segments count 0 (RFC 5065 §5.3).
    pub fn selection_len(&self) -> u32 {
        self.segments()
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
        for s in self.segments() {
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
        match self.segments().last() {
            Some(s) if s.kind == SegmentKind::Sequence => s.asns.last().copied(),
            _ => None,
        }
    }

    /// True when `asn` appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments().any(|s| s.asns.contains(&asn))
    }

    /// Number of times `asn` appears (for allowas-in).
    pub fn count(&self, asn: u32) -> usize {
        self.segments()
            .map(|s| s.asns.iter().filter(|a| **a == asn).count())
            .sum()
    }

    /// Every AS number in path order, segment kinds flattened (for regex matching and display).
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments().flat_map(|s| s.asns.iter().copied())
    }

    /// Prepends `asn` `times` times to the leading AS_SEQUENCE (creating one if needed).
    pub fn prepend(&mut self, asn: u32, times: usize) {
        if times == 0 {
            return;
        }
        let mut segs: Vec<Segment> = self.segments().map(SegmentRef::to_owned).collect();
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
        *self = AsPath::from_segments(segs.iter().map(|s| (s.kind, &s.asns[..])));
    }
}

impl std::fmt::Display for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in self.segments() {
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
///
/// Every distinct set is held once, so its size is most of the RIB's bytes per prefix on a real
/// feed (≈ 0.3 sets per prefix): the attributes most routes carry are fields, the rarely present ones
/// (IPv6 link-local next-hop, AGGREGATOR, route-reflection attributes, extended and large
/// communities, unknown attributes) sit behind one optional box, read and set through methods.
/// 80 bytes instead of 176.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "AttrsRepr", into = "AttrsRepr")]
pub struct Attrs {
    origin: Origin,
    atomic_aggregate: bool,
    as_path: AsPath,
    /// BGP next-hop (IPv4 NEXT_HOP or the global MP_REACH next-hop); `None` for local routes.
    next_hop: Option<IpAddr>,
    med: Option<u32>,
    local_pref: Option<u32>,
    communities: Box<[u32]>,
    /// Local weight set by import policy (not a BGP attribute, never advertised); higher wins first.
    weight: u32,
    /// The rare attributes, read and set through [`Attrs`]' methods.
    rare: RareAttrs,
}

/// The rarely present attributes of an [`Attrs`]: nothing (8 bytes, no allocation) when all are
/// absent, which the setters keep so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct RareAttrs(Option<Box<Rare>>);

/// The attributes few routes carry (see [`Attrs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Rare {
    next_hop_ll: Option<Ipv6Addr>,
    aggregator: Option<(u32, Ipv4Addr)>,
    originator_id: Option<Ipv4Addr>,
    cluster_list: Box<[Ipv4Addr]>,
    ext_communities: Box<[[u8; 8]]>,
    large_communities: Box<[LargeCommunity]>,
    unknown: Box<[RawAttr]>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.next_hop_ll.is_none()
            && self.aggregator.is_none()
            && self.originator_id.is_none()
            && self.cluster_list.is_empty()
            && self.ext_communities.is_empty()
            && self.large_communities.is_empty()
            && self.unknown.is_empty()
    }
}

/// The serialised form of [`Attrs`] (every attribute a field, as it always was).
#[derive(Serialize, Deserialize)]
struct AttrsRepr {
    origin: Origin,
    as_path: AsPath,
    next_hop: Option<IpAddr>,
    next_hop_ll: Option<Ipv6Addr>,
    med: Option<u32>,
    local_pref: Option<u32>,
    atomic_aggregate: bool,
    aggregator: Option<(u32, Ipv4Addr)>,
    communities: Box<[u32]>,
    ext_communities: Box<[[u8; 8]]>,
    large_communities: Box<[LargeCommunity]>,
    originator_id: Option<Ipv4Addr>,
    cluster_list: Box<[Ipv4Addr]>,
    unknown: Box<[RawAttr]>,
    weight: u32,
}

impl From<AttrsRepr> for Attrs {
    fn from(r: AttrsRepr) -> Attrs {
        let mut a = Attrs {
            origin: r.origin,
            atomic_aggregate: r.atomic_aggregate,
            as_path: r.as_path,
            next_hop: r.next_hop,
            med: r.med,
            local_pref: r.local_pref,
            communities: r.communities,
            weight: r.weight,
            rare: RareAttrs::default(),
        };
        a.set_rare(Rare {
            next_hop_ll: r.next_hop_ll,
            aggregator: r.aggregator,
            originator_id: r.originator_id,
            cluster_list: r.cluster_list,
            ext_communities: r.ext_communities,
            large_communities: r.large_communities,
            unknown: r.unknown,
        });
        a
    }
}

impl From<Attrs> for AttrsRepr {
    fn from(a: Attrs) -> AttrsRepr {
        let r = a.rare.0.map(|b| *b).unwrap_or_default();
        AttrsRepr {
            origin: a.origin,
            as_path: a.as_path,
            next_hop: a.next_hop,
            next_hop_ll: r.next_hop_ll,
            med: a.med,
            local_pref: a.local_pref,
            atomic_aggregate: a.atomic_aggregate,
            aggregator: r.aggregator,
            communities: a.communities,
            ext_communities: r.ext_communities,
            large_communities: r.large_communities,
            originator_id: r.originator_id,
            cluster_list: r.cluster_list,
            unknown: r.unknown,
            weight: a.weight,
        }
    }
}

impl Attrs {
    /// ORIGIN (RFC 4271 §5.1.1).
    pub fn origin(&self) -> Origin {
        self.origin
    }

    pub fn set_origin(&mut self, v: Origin) {
        self.origin = v;
    }

    /// `self` with [`Attrs::set_origin`] applied.
    pub fn with_origin(mut self, v: Origin) -> Self {
        self.set_origin(v);
        self
    }

    /// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
    pub fn atomic_aggregate(&self) -> bool {
        self.atomic_aggregate
    }

    pub fn set_atomic_aggregate(&mut self, v: bool) {
        self.atomic_aggregate = v;
    }

    /// `self` with [`Attrs::set_atomic_aggregate`] applied.
    pub fn with_atomic_aggregate(mut self, v: bool) -> Self {
        self.set_atomic_aggregate(v);
        self
    }

    /// AS_PATH (4-octet, AS4_PATH merged).
    pub fn as_path(&self) -> &AsPath {
        &self.as_path
    }

    pub fn set_as_path(&mut self, v: AsPath) {
        self.as_path = v;
    }

    /// `self` with [`Attrs::set_as_path`] applied.
    pub fn with_as_path(mut self, v: AsPath) -> Self {
        self.set_as_path(v);
        self
    }

    /// Prepends `asn` `times` times to the AS path (see [`AsPath::prepend`]).
    pub fn prepend_as_path(&mut self, asn: u32, times: usize) {
        self.as_path.prepend(asn, times);
    }

    /// BGP next-hop (IPv4 NEXT_HOP or the global MP_REACH next-hop); `None` for local routes.
    pub fn next_hop(&self) -> Option<IpAddr> {
        self.next_hop
    }

    pub fn set_next_hop(&mut self, v: Option<IpAddr>) {
        self.next_hop = v;
    }

    /// `self` with [`Attrs::set_next_hop`] applied.
    pub fn with_next_hop(mut self, v: Option<IpAddr>) -> Self {
        self.set_next_hop(v);
        self
    }

    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    pub fn med(&self) -> Option<u32> {
        self.med
    }

    pub fn set_med(&mut self, v: Option<u32>) {
        self.med = v;
    }

    /// `self` with [`Attrs::set_med`] applied.
    pub fn with_med(mut self, v: Option<u32>) -> Self {
        self.set_med(v);
        self
    }

    /// LOCAL_PREF (RFC 4271 §5.1.5).
    pub fn local_pref(&self) -> Option<u32> {
        self.local_pref
    }

    pub fn set_local_pref(&mut self, v: Option<u32>) {
        self.local_pref = v;
    }

    /// `self` with [`Attrs::set_local_pref`] applied.
    pub fn with_local_pref(mut self, v: Option<u32>) -> Self {
        self.set_local_pref(v);
        self
    }

    /// COMMUNITIES (RFC 1997), in the order received or set.
    pub fn communities(&self) -> &[u32] {
        &self.communities
    }

    pub fn set_communities(&mut self, v: impl Into<Box<[u32]>>) {
        self.communities = v.into();
    }

    /// `self` with [`Attrs::set_communities`] applied.
    pub fn with_communities(mut self, v: impl Into<Box<[u32]>>) -> Self {
        self.set_communities(v);
        self
    }

    /// Local weight set by import policy (not a BGP attribute, never advertised); higher wins first.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub fn set_weight(&mut self, v: u32) {
        self.weight = v;
    }

    /// `self` with [`Attrs::set_weight`] applied.
    pub fn with_weight(mut self, v: u32) -> Self {
        self.set_weight(v);
        self
    }
}

impl Attrs {
    /// IPv6 link-local next-hop when the peer sent one (RFC 2545 §3).
    pub fn next_hop_ll(&self) -> Option<Ipv6Addr> {
        match self.rare.0.as_deref() {
            Some(r) => r.next_hop_ll,
            None => None,
        }
    }

    pub fn set_next_hop_ll(&mut self, v: Option<Ipv6Addr>) {
        self.update_rare(|r| r.next_hop_ll = v);
    }

    /// `self` with [`Attrs::set_next_hop_ll`] applied.
    pub fn with_next_hop_ll(mut self, v: Option<Ipv6Addr>) -> Self {
        self.set_next_hop_ll(v);
        self
    }

    /// AGGREGATOR (RFC 4271 §5.1.7): AS and address.
    pub fn aggregator(&self) -> Option<(u32, Ipv4Addr)> {
        match self.rare.0.as_deref() {
            Some(r) => r.aggregator,
            None => None,
        }
    }

    pub fn set_aggregator(&mut self, v: Option<(u32, Ipv4Addr)>) {
        self.update_rare(|r| r.aggregator = v);
    }

    /// `self` with [`Attrs::set_aggregator`] applied.
    pub fn with_aggregator(mut self, v: Option<(u32, Ipv4Addr)>) -> Self {
        self.set_aggregator(v);
        self
    }

    /// ORIGINATOR_ID (RFC 4456 §8).
    pub fn originator_id(&self) -> Option<Ipv4Addr> {
        match self.rare.0.as_deref() {
            Some(r) => r.originator_id,
            None => None,
        }
    }

    pub fn set_originator_id(&mut self, v: Option<Ipv4Addr>) {
        self.update_rare(|r| r.originator_id = v);
    }

    /// `self` with [`Attrs::set_originator_id`] applied.
    pub fn with_originator_id(mut self, v: Option<Ipv4Addr>) -> Self {
        self.set_originator_id(v);
        self
    }

    /// CLUSTER_LIST (RFC 4456 §8).
    pub fn cluster_list(&self) -> &[Ipv4Addr] {
        match self.rare.0.as_deref() {
            Some(r) => &r.cluster_list,
            None => &[],
        }
    }

    pub fn set_cluster_list(&mut self, v: impl Into<Box<[Ipv4Addr]>>) {
        let v = v.into();
        self.update_rare(|r| r.cluster_list = v);
    }

    /// `self` with [`Attrs::set_cluster_list`] applied.
    pub fn with_cluster_list(mut self, v: impl Into<Box<[Ipv4Addr]>>) -> Self {
        self.set_cluster_list(v);
        self
    }

    /// Extended communities (RFC 4360), as their 8 octets.
    pub fn ext_communities(&self) -> &[[u8; 8]] {
        match self.rare.0.as_deref() {
            Some(r) => &r.ext_communities,
            None => &[],
        }
    }

    pub fn set_ext_communities(&mut self, v: impl Into<Box<[[u8; 8]]>>) {
        let v = v.into();
        self.update_rare(|r| r.ext_communities = v);
    }

    /// `self` with [`Attrs::set_ext_communities`] applied.
    pub fn with_ext_communities(mut self, v: impl Into<Box<[[u8; 8]]>>) -> Self {
        self.set_ext_communities(v);
        self
    }

    /// Large communities (RFC 8092).
    pub fn large_communities(&self) -> &[LargeCommunity] {
        match self.rare.0.as_deref() {
            Some(r) => &r.large_communities,
            None => &[],
        }
    }

    pub fn set_large_communities(&mut self, v: impl Into<Box<[LargeCommunity]>>) {
        let v = v.into();
        self.update_rare(|r| r.large_communities = v);
    }

    /// `self` with [`Attrs::set_large_communities`] applied.
    pub fn with_large_communities(mut self, v: impl Into<Box<[LargeCommunity]>>) -> Self {
        self.set_large_communities(v);
        self
    }

    /// Optional transitive attributes not understood, re-advertised with the Partial bit set.
    pub fn unknown(&self) -> &[RawAttr] {
        match self.rare.0.as_deref() {
            Some(r) => &r.unknown,
            None => &[],
        }
    }

    pub fn set_unknown(&mut self, v: impl Into<Box<[RawAttr]>>) {
        let v = v.into();
        self.update_rare(|r| r.unknown = v);
    }

    /// `self` with [`Attrs::set_unknown`] applied.
    pub fn with_unknown(mut self, v: impl Into<Box<[RawAttr]>>) -> Self {
        self.set_unknown(v);
        self
    }

    /// Changes the rare attributes, keeping `rare` absent when they all are.
    fn update_rare(&mut self, f: impl FnOnce(&mut Rare)) {
        match self.rare.0.as_deref_mut() {
            Some(r) => {
                f(r);
                if r.is_empty() {
                    self.rare.0 = None;
                }
            }
            None => {
                // Empty lists do not allocate: setting an absent attribute to nothing costs nothing.
                let mut r = Rare::default();
                f(&mut r);
                self.set_rare(r);
            }
        }
    }

    fn set_rare(&mut self, r: Rare) {
        self.rare.0 = (!r.is_empty()).then(|| Box::new(r));
    }
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
        self.ext_communities().iter().find_map(|c| {
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

    /// Heap bytes owned by the set (its lists and rare attributes), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of_val;
        self.as_path.heap_bytes()
            + size_of_val(&*self.communities)
            + self.rare.0.as_deref().map_or(0, |r| {
                std::mem::size_of::<Rare>()
                    + size_of_val(&*r.ext_communities)
                    + size_of_val(&*r.large_communities)
                    + size_of_val(&*r.cluster_list)
                    + size_of_val(&*r.unknown)
                    + r.unknown.iter().map(|u| u.value.len()).sum::<usize>()
            })
    }
}

/// Shared handle to an interned attribute set. Equality and hashing are by pointer: two handles from the
/// same [`AttrStore`] are equal exactly when their contents are.
#[derive(Debug, Clone)]
pub struct AttrRef(pub(crate) Arc<Interned>);

/// An interned set with its content hash, in one allocation (the hash fills what malloc's 16-byte
/// rounding would leave unused, so the interning table's slot is a bare pointer).
#[derive(Debug)]
pub(crate) struct Interned {
    hash: u64,
    attrs: Attrs,
}

impl Hash for Interned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || (self.hash == other.hash && self.attrs == other.attrs)
    }
}
impl Eq for Interned {}

impl AttrRef {
    pub fn ptr_eq(a: &AttrRef, b: &AttrRef) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// A handle to a set of its own, not interned (for code paths that only pass sets along).
    pub fn unshared(attrs: Attrs) -> AttrRef {
        AttrRef(Arc::new(Interned {
            hash: content_hash(&attrs),
            attrs,
        }))
    }

    /// How many handles to the set exist (the store's own included), for leak checks in tests.
    pub fn ref_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// The set's address: identifies it among the sets alive.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl std::ops::Deref for AttrRef {
    type Target = Attrs;
    fn deref(&self) -> &Attrs {
        &self.0.attrs
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
        self.addr().hash(state)
    }
}

/// Hash-consing store: one `Arc` per distinct attribute set.
///
/// Each set keeps its hash: growing the table rehashes the stored `u64`s instead of every attribute
/// set (AS paths, communities), which was most of the cost of interning a full table. A lookup
/// probes with the set on the stack (nothing allocated when it is known already).
#[derive(Debug, Default)]
pub struct AttrStore {
    set: HashSet<Slot, rustc_hash::FxBuildHasher>,
}

/// A slot of the store: one pointer.
#[derive(Debug)]
struct Slot(Arc<Interned>);

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}
impl Eq for Slot {}

impl std::borrow::Borrow<Interned> for Slot {
    fn borrow(&self) -> &Interned {
        &self.0
    }
}

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
        let probe = Interned {
            hash: content_hash(&attrs),
            attrs,
        };
        if let Some(s) = self.set.get(&probe) {
            return AttrRef(s.0.clone());
        }
        let a = Arc::new(probe);
        self.set.insert(Slot(a.clone()));
        AttrRef(a)
    }

    /// Called when a holder drops `a`: frees the set when the store holds the last other reference.
    pub fn release(&mut self, a: AttrRef) {
        // The store's copy + the one being released.
        if Arc::strong_count(&a.0) == 2 {
            self.set.remove(&*a.0);
        }
    }

    /// Approximate bytes of every set held (the set with its hash and `Arc` counters, its lists and
    /// its slot in the interning table).
    pub fn approx_bytes(&self) -> usize {
        let (sets, lists, index) = self.memory();
        sets + lists + index
    }

    /// Where the store's bytes go: (sets with their `Arc` headers, their lists, the interning index).
    pub fn memory(&self) -> (usize, usize, usize) {
        let fixed = std::mem::size_of::<Interned>() + 16;
        let lists = self
            .set
            .iter()
            .map(|s| s.0.attrs.heap_bytes())
            .sum::<usize>();
        (
            self.set.len() * fixed,
            lists,
            self.set.capacity() * (std::mem::size_of::<Slot>() + 1),
        )
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
        self.set.retain(|s| Arc::strong_count(&s.0) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_path_length_counts_set_as_one_and_confed_as_zero_rfc4271_9_1_2_2_a() {
        let p = AsPath::from_segments([
            (SegmentKind::ConfedSequence, &[65001, 65002][..]),
            (SegmentKind::Sequence, &[1, 2, 3][..]),
            (SegmentKind::Set, &[4, 5, 6][..]),
        ]);
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
        let a = Attrs::default()
            .with_ext_communities([[0x40, 0x04, 0xFD, 0xE8, bw[0], bw[1], bw[2], bw[3]]]);
        assert_eq!(a.link_bandwidth(), Some(125_000_000.0));
    }

    #[test]
    fn a_set_is_80_bytes_and_rare_attributes_leave_no_box_behind() {
        assert_eq!(std::mem::size_of::<Attrs>(), 80);
        let mut a = Attrs::default().with_originator_id(Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(a.rare.0.is_some());
        assert_ne!(a, Attrs::default());
        a.set_originator_id(None);
        assert!(a.rare.0.is_none(), "emptied rare attributes are dropped");
        assert_eq!(a, Attrs::default());
        let mut h1 = rustc_hash::FxHasher::default();
        let mut h2 = rustc_hash::FxHasher::default();
        a.hash(&mut h1);
        Attrs::default().hash(&mut h2);
        assert_eq!(h1.finish(), h2.finish());
    }

    #[test]
    fn serialised_form_lists_every_attribute_and_segments_as_before() {
        let a = Attrs {
            as_path: AsPath::from_segments([
                (SegmentKind::Sequence, &[64500, 3356][..]),
                (SegmentKind::Set, &[1, 2][..]),
            ]),
            communities: Box::new([0xFFFF_FF01]),
            ..Attrs::default()
        }
        .with_cluster_list(vec![Ipv4Addr::new(10, 0, 0, 9)])
        .with_next_hop_ll(Some("fe80::1".parse().unwrap()));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v["as_path"],
            serde_json::json!({"segments": [
                {"kind": "sequence", "asns": [64500, 3356]},
                {"kind": "set", "asns": [1, 2]},
            ]})
        );
        assert_eq!(v["cluster_list"], serde_json::json!(["10.0.0.9"]));
        assert_eq!(v["next_hop_ll"], serde_json::json!("fe80::1"));
        assert_eq!(v["ext_communities"], serde_json::json!([]));
        let back: Attrs = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn as_path_segments_read_back_in_order() {
        let p = AsPath::from_segments([
            (SegmentKind::Sequence, &[1, 2][..]),
            (SegmentKind::Set, &[][..]),
            (SegmentKind::ConfedSet, &[7][..]),
        ]);
        let segs: Vec<Segment> = p.segments().map(SegmentRef::to_owned).collect();
        assert_eq!(
            segs,
            vec![
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: Box::new([1, 2])
                },
                Segment {
                    kind: SegmentKind::ConfedSet,
                    asns: Box::new([7])
                },
            ]
        );
        assert_eq!(p.heap_bytes(), 5 * 4);
        assert!(AsPath::sequence(Vec::new()).is_empty());
    }
}
