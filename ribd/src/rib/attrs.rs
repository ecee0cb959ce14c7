//! The RIB's view of a route's path attributes, and the interner that shares them.
//!
//! The RIB owns its attribute representation (as BIRD's `nest/` does): the BGP codec converts once per
//! UPDATE, never per prefix, and every distinct attribute set exists once in memory, in one allocation
//! shared by reference-counted [`AttrRef`]s across all peers and prefixes that carry it. A full table
//! from N peers costs one set per distinct set, not per prefix.

use std::alloc::Layout;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// A 4-octet AS_PATH (AS4_PATH already merged by the codec per RFC 6793 §4.2.3), owned, in one
/// allocation: each segment is a header word (kind in the top byte, AS count below) followed by its AS
/// numbers. (Boxed segments each with boxed numbers cost two allocations per path, ≈ 64 bytes of malloc
/// chunks for a typical 5-AS path; this is one of 32.) Reads go through [`AsPathSlice`], which an
/// attribute set hands out for the words it keeps inline ([`Attrs::as_path`]).
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "AsPathRepr", into = "AsPathRepr")]
pub struct AsPath {
    words: Box<[u32]>,
}

/// A borrowed AS path: the words of an [`AsPath`] or of an attribute set's inline copy.
#[derive(PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct AsPathSlice {
    words: [u32],
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

impl std::fmt::Debug for AsPathSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

impl std::fmt::Debug for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Segments of an AS path, in order.
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

impl std::ops::Deref for AsPath {
    type Target = AsPathSlice;
    fn deref(&self) -> &AsPathSlice {
        AsPathSlice::from_words(&self.words)
    }
}

impl std::borrow::Borrow<AsPathSlice> for AsPath {
    fn borrow(&self) -> &AsPathSlice {
        self
    }
}

impl ToOwned for AsPathSlice {
    type Owned = AsPath;
    fn to_owned(&self) -> AsPath {
        AsPath {
            words: self.words.into(),
        }
    }
}

impl PartialEq<AsPath> for AsPathSlice {
    fn eq(&self, other: &AsPath) -> bool {
        *self == **other
    }
}

impl PartialEq<AsPathSlice> for AsPath {
    fn eq(&self, other: &AsPathSlice) -> bool {
        **self == *other
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
        // Exact: a one-segment path (most) allocates once and boxes without reallocating.
        encode_segments(segs, |header, asns| {
            words.reserve_exact(1 + asns.len());
            words.push(header);
            words.extend_from_slice(asns);
        });
        AsPath {
            words: words.into(),
        }
    }

    /// The path of `segs` encoded in `buf` (cleared first), without allocating while it fits:
    /// for a set built once and then probably found interned already (the import path).
    pub(crate) fn encode_in<'w, const N: usize>(
        segs: impl IntoIterator<Item = (SegmentKind, &'w [u32])>,
        buf: &'w mut smallvec::SmallVec<[u32; N]>,
    ) -> &'w AsPathSlice {
        buf.clear();
        encode_segments(segs, |header, asns| {
            buf.push(header);
            buf.extend_from_slice(asns);
        });
        AsPathSlice::from_words(buf)
    }

    /// Heap bytes of the path.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }

    /// Prepends `asn` `times` times to the leading AS_SEQUENCE (creating one if needed).
    pub fn prepend(&mut self, asn: u32, times: usize) {
        *self = self.prepended(asn, times);
    }
}

/// Encodes AS_PATH segments as [`AsPath`] words: `push` gets each part's header word and AS
/// numbers, in order.
fn encode_segments<'a>(
    segs: impl IntoIterator<Item = (SegmentKind, &'a [u32])>,
    mut push: impl FnMut(u32, &[u32]),
) {
    for (kind, asns) in segs {
        if asns.is_empty() {
            continue;
        }
        // A wire segment holds at most 255 ASes; longer ones (built here) are split.
        for part in asns.chunks(0x00FF_FFFF) {
            push(kind.code() << 24 | part.len() as u32, part);
        }
    }
}

impl AsPathSlice {
    /// The words as a path. Every `[u32]` reads as some path (segment lengths are clamped to the
    /// words present), but only words an [`AsPath`] built are meaningful.
    #[inline]
    fn from_words(words: &[u32]) -> &AsPathSlice {
        // SAFETY: `AsPathSlice` is `repr(transparent)` over `[u32]`, so the pointer (with its length)
        // and the lifetime carry over unchanged.
        unsafe { &*(words as *const [u32] as *const AsPathSlice) }
    }

    /// The encoded words (segment headers and AS numbers).
    #[inline]
    fn words(&self) -> &[u32] {
        &self.words
    }

    /// The segments, in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments { words: &self.words }
    }

    /// True for an empty path (a route of our own AS).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
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
        if let Some((_, first)) = self.one_sequence() {
            return Some(first);
        }
        for s in self.segments() {
            match s.kind {
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => continue,
                SegmentKind::Sequence => return s.asns.first().copied(),
                SegmentKind::Set => return None,
            }
        }
        None
    }

    /// A path of one non-empty AS_SEQUENCE (most paths): its length and first AS.
    #[inline]
    fn one_sequence(&self) -> Option<(u32, u32)> {
        match self.words {
            [h, first, ..]
                if h >> 24 == SegmentKind::Sequence.code()
                    && (h & 0x00FF_FFFF) as usize + 1 == self.words.len() =>
            {
                Some((h & 0x00FF_FFFF, first))
            }
            _ => None,
        }
    }

    /// [`AsPathSlice::selection_len`] and [`AsPathSlice::neighbor_as`], read off the first word
    /// for a path of one AS_SEQUENCE (best-path selection reads both for every candidate).
    pub fn selection_len_and_neighbor(&self) -> (u32, Option<u32>) {
        match self.one_sequence() {
            Some((len, first)) => (len, Some(first)),
            None => (self.selection_len(), self.neighbor_as()),
        }
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

    /// The path with `asn` prepended `times` times to the leading AS_SEQUENCE (creating one if
    /// needed).
    pub fn prepended(&self, asn: u32, times: usize) -> AsPath {
        if times == 0 {
            return self.to_owned();
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
        AsPath::from_segments(segs.iter().map(|s| (s.kind, &s.asns[..])))
    }
}

impl std::fmt::Display for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl std::fmt::Display for AsPathSlice {
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

/// The attributes of a path as the RIB sees them: an owned set, built and changed through methods,
/// and once interned ([`AttrStore::intern`]) shared by [`AttrRef`]s.
///
/// Every distinct set is held once, so its size is most of the RIB's bytes per prefix on a real feed
/// (≈ 0.3 sets per prefix, and every eBGP peer has its own). A set is one allocation (a "block"): a
/// 16-byte header (reference count, content hash, list lengths, flags), the rare attributes' pointer
/// when there are any, then `u32` words holding, in this order, only what is present: the next-hop
/// (1 word for IPv4, 4 for IPv6), MED, LOCAL_PREF, a non-zero weight, the AS path's words and the
/// communities. Presence is in the flags, so an absent MED costs nothing. The rarely present
/// attributes (IPv6 link-local next-hop, AGGREGATOR, route-reflection attributes, extended and large
/// communities, unknown attributes) sit behind that one pointer. A typical IPv4 set of the feed
/// (next-hop, MED, a 5-AS path, two communities) is 56 bytes instead of 104 plus two lists.
///
/// `Attrs` owns its block alone (reference count 1, never read); [`AttrRef`] shares one. Both are a
/// single non-null, 8-aligned pointer to the block.
#[repr(transparent)]
pub struct Attrs {
    p: NonNull<Header>,
}

/// The fixed part of a set's block; the words follow it.
#[repr(C)]
struct Header {
    /// Handles to a shared block ([`AttrRef`]s, the store's included); 1 and unused while owned.
    rc: AtomicU32,
    /// Content hash, filled when the set is interned or shared.
    hash: u32,
    /// Words of the AS path.
    path_len: u32,
    /// Number of communities.
    comm_len: u16,
    /// [`flag`] bits.
    flags: u16,
}

// Blocks allocated and not yet freed by this thread, for the tests' leak and double-free checks.
#[cfg(test)]
thread_local! {
    static LIVE_BLOCKS: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn count_block(d: isize) {
    LIVE_BLOCKS.with(|c| c.set(c.get() + d));
}

/// Bytes before the first word.
const HEADER: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER == 16 && std::mem::align_of::<Header>() == 4);
/// Bytes of the rare attributes' pointer, right after the header when [`flag::RARE`] is set (the
/// block is 8-aligned, so the pointer is too).
const RARE_SLOT: usize = std::mem::size_of::<*mut Rare>();
const _: () = assert!(HEADER.is_multiple_of(std::mem::align_of::<*mut Rare>()));

/// Bits of [`Header::flags`].
mod flag {
    /// ORIGIN code (0 IGP, 1 EGP, 2 incomplete).
    pub const ORIGIN: u16 = 0b11;
    pub const ATOMIC_AGGREGATE: u16 = 1 << 2;
    /// Next-hop kind: 0 none, 1 IPv4 (1 word), 2 IPv6 (4 words).
    pub const NH_SHIFT: u16 = 3;
    pub const NH: u16 = 0b11 << NH_SHIFT;
    pub const MED: u16 = 1 << 5;
    pub const LOCAL_PREF: u16 = 1 << 6;
    /// A non-zero weight is stored (zero is not).
    pub const WEIGHT: u16 = 1 << 7;
    /// The block has the rare attributes' pointer after the header (non-null but for the moment
    /// a rebuild moves the box to a new block).
    pub const RARE: u16 = 1 << 8;
}

/// What best-path selection reads of a set ([`Attrs::for_selection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectionAttrs {
    pub next_hop: Option<IpAddr>,
    pub origin: Origin,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub weight: u32,
    /// [`AsPathSlice::selection_len`].
    pub as_path_len: u32,
    /// [`AsPathSlice::neighbor_as`].
    pub neighbor_as: Option<u32>,
    pub originator_id: Option<Ipv4Addr>,
    /// Entries of the CLUSTER_LIST.
    pub cluster_len: u32,
}

/// The attributes every set has a place for, borrowed, to build a set in one allocation
/// ([`Attrs::new`]) or read them all at once ([`Attrs::common`]).
#[derive(Debug, Clone, Copy)]
pub struct CommonAttrs<'a> {
    pub origin: Origin,
    pub atomic_aggregate: bool,
    pub as_path: &'a AsPathSlice,
    /// BGP next-hop (IPv4 NEXT_HOP or the global MP_REACH next-hop); `None` for local routes.
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: &'a [u32],
    /// Local weight set by import policy (not a BGP attribute, never advertised); higher wins first.
    pub weight: u32,
}

impl Default for CommonAttrs<'_> {
    fn default() -> Self {
        CommonAttrs {
            origin: Origin::Igp,
            atomic_aggregate: false,
            as_path: AsPathSlice::from_words(&[]),
            next_hop: None,
            med: None,
            local_pref: None,
            communities: &[],
            weight: 0,
        }
    }
}

/// Offset of the first word.
#[inline]
fn words_offset(flags: u16) -> usize {
    HEADER
        + if flags & flag::RARE != 0 {
            RARE_SLOT
        } else {
            0
        }
}

/// The block's layout for `words` words.
fn block_layout(flags: u16, words: usize) -> Layout {
    // Cannot fail for any length a set can have (isize::MAX bytes would not fit the address space).
    Layout::from_size_align(words_offset(flags) + 4 * words, 8).expect("attribute set size")
}

#[inline]
fn nh_words(flags: u16) -> usize {
    match (flags & flag::NH) >> flag::NH_SHIFT {
        0 => 0,
        1 => 1,
        _ => 4,
    }
}

/// Words before the AS path: next-hop, MED, LOCAL_PREF, weight.
#[inline]
fn fixed_words(flags: u16) -> usize {
    nh_words(flags)
        + usize::from(flags & flag::MED != 0)
        + usize::from(flags & flag::LOCAL_PREF != 0)
        + usize::from(flags & flag::WEIGHT != 0)
}

/// The next-hop of a set with the flags `f` and the words `w` (its first words). Always inlined:
/// returned from a call the 17-byte `Option<IpAddr>` went through memory, about a third of the
/// call's instructions, and the import path reads next-hops several times per path.
#[inline(always)]
fn next_hop_of(f: u16, w: &[u32]) -> Option<IpAddr> {
    match (f & flag::NH) >> flag::NH_SHIFT {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::from(w[0]))),
        _ => {
            let b = (u128::from(w[0]) << 96)
                | (u128::from(w[1]) << 64)
                | (u128::from(w[2]) << 32)
                | u128::from(w[3]);
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
    }
}

/// MED, LOCAL_PREF and weight of a set with the flags `f` and the words `w`, the first of them
/// (those present) at `i`, which is left after them.
#[inline]
fn med_local_pref_weight_at(f: u16, w: &[u32], i: &mut usize) -> (Option<u32>, Option<u32>, u32) {
    let mut take = |bit: u16| {
        (f & bit != 0).then(|| {
            *i += 1;
            w[*i - 1]
        })
    };
    let med = take(flag::MED);
    let local_pref = take(flag::LOCAL_PREF);
    let weight = take(flag::WEIGHT).unwrap_or(0);
    (med, local_pref, weight)
}

fn origin_code(o: Origin) -> u16 {
    o as u16
}

fn origin_of(flags: u16) -> Origin {
    match flags & flag::ORIGIN {
        0 => Origin::Igp,
        1 => Origin::Egp,
        _ => Origin::Incomplete,
    }
}

/// Frees a block and its rare attributes.
///
/// # Safety
/// `p` came from [`Attrs::new`] (directly or through a copy), its header is intact, and nothing
/// uses the block afterwards.
unsafe fn free_block(p: NonNull<Header>) {
    // SAFETY: the caller guarantees `p` is a live block no one else uses.
    unsafe {
        let h = p.as_ptr();
        let flags = (*h).flags;
        if flags & flag::RARE != 0 {
            let rare = *rare_slot(p);
            if !rare.is_null() {
                drop(Box::from_raw(rare));
            }
        }
        let words = fixed_words(flags) + (*h).path_len as usize + usize::from((*h).comm_len);
        std::alloc::dealloc(p.as_ptr().cast(), block_layout(flags, words));
    }
    #[cfg(test)]
    count_block(-1);
}

/// The rare attributes' pointer of a block with [`flag::RARE`].
///
/// # Safety
/// `p` is a live block whose flags have [`flag::RARE`].
unsafe fn rare_slot(p: NonNull<Header>) -> *mut *mut Rare {
    // SAFETY: such a block has the pointer right after the header, 8-aligned (block 8-aligned,
    // header 16 bytes), within the allocation; derived from the block's pointer, which covers it.
    unsafe { p.as_ptr().cast::<u8>().add(HEADER).cast::<*mut Rare>() }
}

// SAFETY: an `Attrs` owns its block and the `Rare` behind it; nothing in them is tied to a thread,
// and `&Attrs` only reads (the reference count is atomic and not touched through `&Attrs`).
unsafe impl Send for Attrs {}
// SAFETY: as above; shared access only reads plain data.
unsafe impl Sync for Attrs {}

impl Attrs {
    /// A set of the common attributes (rare ones absent), in one allocation.
    pub fn new(c: &CommonAttrs<'_>) -> Attrs {
        Attrs::build(c, std::ptr::null_mut())
    }

    /// A set of the common attributes and the rare ones `r`, built in one go (the rare ones
    /// allocated only when any is present): what setting each rare attribute in turn ends with.
    pub fn with_rare(c: &CommonAttrs<'_>, r: RareAttrs) -> Attrs {
        let rare = Rare::from(r);
        let p = if rare.is_empty() {
            std::ptr::null_mut()
        } else {
            Box::into_raw(Box::new(rare))
        };
        Attrs::build(c, p)
    }

    /// A set of the common attributes with the rare ones behind `rare` (null: none), which the new
    /// block takes over (it frees the box).
    fn build(c: &CommonAttrs<'_>, rare: *mut Rare) -> Attrs {
        let path = c.as_path.words();
        let comm_len = u16::try_from(c.communities.len())
            .expect("at most 65,535 communities (an UPDATE carries at most 16,383)");
        let path_len =
            u32::try_from(path.len()).expect("an AS path of at most 4G words (wire: 16,383)");
        let mut flags = origin_code(c.origin);
        if !rare.is_null() {
            flags |= flag::RARE;
        }
        if c.atomic_aggregate {
            flags |= flag::ATOMIC_AGGREGATE;
        }
        let mut fixed = [0u32; 7];
        let mut n = 0;
        match c.next_hop {
            None => {}
            Some(IpAddr::V4(a)) => {
                flags |= 1 << flag::NH_SHIFT;
                fixed[0] = u32::from(a);
                n = 1;
            }
            Some(IpAddr::V6(a)) => {
                flags |= 2 << flag::NH_SHIFT;
                let b = u128::from(a);
                fixed[..4].copy_from_slice(&[
                    (b >> 96) as u32,
                    (b >> 64) as u32,
                    (b >> 32) as u32,
                    b as u32,
                ]);
                n = 4;
            }
        }
        for (bit, v) in [
            (flag::MED, c.med),
            (flag::LOCAL_PREF, c.local_pref),
            (flag::WEIGHT, (c.weight != 0).then_some(c.weight)),
        ] {
            if let Some(v) = v {
                flags |= bit;
                fixed[n] = v;
                n += 1;
            }
        }
        debug_assert_eq!(n, fixed_words(flags));
        let words = n + path.len() + c.communities.len();
        let layout = block_layout(flags, words);
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(p) = NonNull::new(raw.cast::<Header>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(test)]
        count_block(1);
        // SAFETY: `p` is a fresh allocation of `words_offset(flags) + 4 * words` bytes, 8-aligned:
        // the header fits at its start, the rare pointer (8-aligned) after it when flagged, and the
        // words (4-aligned) after those, within the allocation.
        unsafe {
            p.as_ptr().write(Header {
                rc: AtomicU32::new(1),
                hash: 0,
                path_len,
                comm_len,
                flags,
            });
            if !rare.is_null() {
                *rare_slot(p) = rare;
            }
            let w = raw.add(words_offset(flags)).cast::<u32>();
            std::ptr::copy_nonoverlapping(fixed.as_ptr(), w, n);
            std::ptr::copy_nonoverlapping(path.as_ptr(), w.add(n), path.len());
            std::ptr::copy_nonoverlapping(
                c.communities.as_ptr(),
                w.add(n + path.len()),
                c.communities.len(),
            );
        }
        Attrs { p }
    }

    #[cfg(test)]
    fn addr_for_test(&self) -> usize {
        self.p.as_ptr() as usize
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: `p` points at a live block's initialised header for as long as `self` is borrowed
        // (an owned block lives until `self` drops; a shared one while the `AttrRef` lent here lives).
        unsafe { self.p.as_ref() }
    }

    /// Every word of the block (fixed words, AS path, communities).
    #[inline]
    fn words(&self) -> &[u32] {
        let h = self.header();
        let n = fixed_words(h.flags) + h.path_len as usize + usize::from(h.comm_len);
        // SAFETY: the block holds `n` initialised words right after the header (see `Attrs::new`);
        // the pointer is derived from the block's own, so it covers them.
        unsafe {
            std::slice::from_raw_parts(
                self.p
                    .as_ptr()
                    .cast::<u8>()
                    .add(words_offset(h.flags))
                    .cast::<u32>(),
                n,
            )
        }
    }

    /// The words, writable: only for an owned set (`&mut self`), whose block no one else sees.
    fn words_mut(&mut self) -> &mut [u32] {
        let n = self.words().len();
        // SAFETY: as in `words`, and `&mut self` means the block is not shared (an `AttrRef` never
        // hands out `&mut Attrs`).
        unsafe {
            std::slice::from_raw_parts_mut(
                self.p
                    .as_ptr()
                    .cast::<u8>()
                    .add(words_offset(self.flags()))
                    .cast::<u32>(),
                n,
            )
        }
    }

    #[inline]
    fn flags(&self) -> u16 {
        self.header().flags
    }

    fn set_flags(&mut self, f: u16) {
        // SAFETY: owned block (`&mut self`): no other reader.
        unsafe { (*self.p.as_ptr()).flags = f }
    }

    #[inline]
    fn rare(&self) -> Option<&Rare> {
        if self.flags() & flag::RARE == 0 {
            return None;
        }
        // SAFETY: the block has the slot (flag); it holds null or a `Box<Rare>` the block owns,
        // alive as long as the block.
        unsafe { (*rare_slot(self.p)).as_ref() }
    }

    /// The rare attributes' pointer (null when none), for a rebuild to hand to the new block.
    fn rare_ptr(&self) -> *mut Rare {
        match self.flags() & flag::RARE {
            0 => std::ptr::null_mut(),
            // SAFETY: the block has the slot (flag).
            _ => unsafe { *rare_slot(self.p) },
        }
    }

    /// Replaces the (owned) block by one `build` makes from this one and its rare pointer: the
    /// new block takes the rare box over, this one lets go of it before it is freed.
    fn rebuild(&mut self, build: impl FnOnce(&Attrs, *mut Rare) -> Attrs) {
        let new = build(self, self.rare_ptr());
        if self.flags() & flag::RARE != 0 {
            // SAFETY: owned block with the slot; nulling it leaves the box to `new` alone (nothing
            // ran between `build` and here that could drop either block).
            unsafe { *rare_slot(self.p) = std::ptr::null_mut() };
        }
        *self = new;
    }

    /// Index of the first AS-path word.
    #[inline]
    fn path_start(&self) -> usize {
        fixed_words(self.flags())
    }

    /// The common attributes, borrowed.
    pub fn common(&self) -> CommonAttrs<'_> {
        CommonAttrs {
            origin: self.origin(),
            atomic_aggregate: self.atomic_aggregate(),
            as_path: self.as_path(),
            next_hop: self.next_hop(),
            med: self.med(),
            local_pref: self.local_pref(),
            communities: self.communities(),
            weight: self.weight(),
        }
    }

    /// ORIGIN (RFC 4271 §5.1.1).
    #[inline]
    pub fn origin(&self) -> Origin {
        origin_of(self.flags())
    }

    pub fn set_origin(&mut self, v: Origin) {
        self.set_flags(self.flags() & !flag::ORIGIN | origin_code(v));
    }

    /// `self` with [`Attrs::set_origin`] applied.
    pub fn with_origin(mut self, v: Origin) -> Self {
        self.set_origin(v);
        self
    }

    /// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
    #[inline]
    pub fn atomic_aggregate(&self) -> bool {
        self.flags() & flag::ATOMIC_AGGREGATE != 0
    }

    pub fn set_atomic_aggregate(&mut self, v: bool) {
        let f = self.flags() & !flag::ATOMIC_AGGREGATE;
        self.set_flags(if v { f | flag::ATOMIC_AGGREGATE } else { f });
    }

    /// `self` with [`Attrs::set_atomic_aggregate`] applied.
    pub fn with_atomic_aggregate(mut self, v: bool) -> Self {
        self.set_atomic_aggregate(v);
        self
    }

    /// AS_PATH (4-octet, AS4_PATH merged).
    #[inline]
    pub fn as_path(&self) -> &AsPathSlice {
        let s = self.path_start();
        AsPathSlice::from_words(&self.words()[s..s + self.header().path_len as usize])
    }

    pub fn set_as_path(&mut self, v: AsPath) {
        if v.words.len() == self.header().path_len as usize {
            let s = self.path_start();
            self.words_mut()[s..s + v.words.len()].copy_from_slice(&v.words);
        } else {
            self.rebuild(|a, rare| {
                let c = CommonAttrs {
                    as_path: &v,
                    ..a.common()
                };
                Attrs::build(&c, rare)
            });
        }
    }

    /// `self` with [`Attrs::set_as_path`] applied.
    pub fn with_as_path(mut self, v: AsPath) -> Self {
        self.set_as_path(v);
        self
    }

    /// Prepends `asn` `times` times to the AS path (see [`AsPathSlice::prepended`]).
    pub fn prepend_as_path(&mut self, asn: u32, times: usize) {
        let p = self.as_path().prepended(asn, times);
        self.set_as_path(p);
    }

    /// BGP next-hop (IPv4 NEXT_HOP or the global MP_REACH next-hop); `None` for local routes.
    #[inline]
    pub fn next_hop(&self) -> Option<IpAddr> {
        next_hop_of(self.flags(), self.words())
    }

    pub fn set_next_hop(&mut self, v: Option<IpAddr>) {
        match (v, nh_words(self.flags())) {
            (None, 0) => {}
            (Some(IpAddr::V4(a)), 1) => self.words_mut()[0] = u32::from(a),
            _ => {
                self.rebuild(|a, rare| {
                    let c = CommonAttrs {
                        next_hop: v,
                        ..a.common()
                    };
                    Attrs::build(&c, rare)
                });
            }
        }
    }

    /// `self` with [`Attrs::set_next_hop`] applied.
    pub fn with_next_hop(mut self, v: Option<IpAddr>) -> Self {
        self.set_next_hop(v);
        self
    }

    /// What best-path selection reads of the set, in one pass over its header and words (reading
    /// each through its own accessor found the words, and the rare attributes, again every time).
    #[inline]
    pub fn for_selection(&self) -> SelectionAttrs {
        let f = self.flags();
        let w = self.words();
        let next_hop = next_hop_of(f, w);
        let mut i = nh_words(f);
        let (med, local_pref, weight) = med_local_pref_weight_at(f, w, &mut i);
        let path = AsPathSlice::from_words(&w[i..i + self.header().path_len as usize]);
        let (as_path_len, neighbor_as) = path.selection_len_and_neighbor();
        let (originator_id, cluster_len) = match self.rare() {
            Some(r) => (r.originator_id, r.cluster_list.len() as u32),
            None => (None, 0),
        };
        SelectionAttrs {
            next_hop,
            origin: origin_of(f),
            med,
            local_pref,
            weight,
            as_path_len,
            neighbor_as,
            originator_id,
            cluster_len,
        }
    }

    /// The word index of a fixed attribute stored under `bit` (MED, LOCAL_PREF, weight).
    #[inline]
    fn fixed_index(&self, bit: u16) -> Option<usize> {
        let f = self.flags();
        if f & bit == 0 {
            return None;
        }
        let mut i = nh_words(f);
        for b in [flag::MED, flag::LOCAL_PREF, flag::WEIGHT] {
            if b == bit {
                return Some(i);
            }
            i += usize::from(f & b != 0);
        }
        None
    }

    /// MED, LOCAL_PREF and weight in one read of the header (what selection reads of them).
    #[inline]
    pub fn med_local_pref_weight(&self) -> (Option<u32>, Option<u32>, u32) {
        let f = self.flags();
        med_local_pref_weight_at(f, self.words(), &mut nh_words(f))
    }

    #[inline]
    fn fixed(&self, bit: u16) -> Option<u32> {
        self.fixed_index(bit).map(|i| self.words()[i])
    }

    /// Sets a fixed attribute in place when its presence does not change, else rebuilds.
    fn set_fixed(&mut self, bit: u16, v: Option<u32>, edit: impl FnOnce(&mut CommonAttrs<'_>)) {
        match (self.fixed_index(bit), v) {
            (Some(i), Some(v)) => self.words_mut()[i] = v,
            (None, None) => {}
            _ => {
                self.rebuild(|a, rare| {
                    let mut c = a.common();
                    edit(&mut c);
                    Attrs::build(&c, rare)
                });
            }
        }
    }

    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    #[inline]
    pub fn med(&self) -> Option<u32> {
        self.fixed(flag::MED)
    }

    pub fn set_med(&mut self, v: Option<u32>) {
        self.set_fixed(flag::MED, v, |c| c.med = v);
    }

    /// `self` with [`Attrs::set_med`] applied.
    pub fn with_med(mut self, v: Option<u32>) -> Self {
        self.set_med(v);
        self
    }

    /// LOCAL_PREF (RFC 4271 §5.1.5).
    #[inline]
    pub fn local_pref(&self) -> Option<u32> {
        self.fixed(flag::LOCAL_PREF)
    }

    pub fn set_local_pref(&mut self, v: Option<u32>) {
        self.set_fixed(flag::LOCAL_PREF, v, |c| c.local_pref = v);
    }

    /// `self` with [`Attrs::set_local_pref`] applied.
    pub fn with_local_pref(mut self, v: Option<u32>) -> Self {
        self.set_local_pref(v);
        self
    }

    /// COMMUNITIES (RFC 1997), in the order received or set.
    #[inline]
    pub fn communities(&self) -> &[u32] {
        let s = self.path_start() + self.header().path_len as usize;
        &self.words()[s..]
    }

    pub fn set_communities(&mut self, v: impl Into<Box<[u32]>>) {
        let v = v.into();
        if v.len() == self.communities().len() {
            let s = self.path_start() + self.header().path_len as usize;
            self.words_mut()[s..].copy_from_slice(&v);
        } else {
            self.rebuild(|a, rare| {
                let c = CommonAttrs {
                    communities: &v,
                    ..a.common()
                };
                Attrs::build(&c, rare)
            });
        }
    }

    /// `self` with [`Attrs::set_communities`] applied.
    pub fn with_communities(mut self, v: impl Into<Box<[u32]>>) -> Self {
        self.set_communities(v);
        self
    }

    /// Local weight set by import policy (not a BGP attribute, never advertised); higher wins first.
    #[inline]
    pub fn weight(&self) -> u32 {
        self.fixed(flag::WEIGHT).unwrap_or(0)
    }

    pub fn set_weight(&mut self, v: u32) {
        self.set_fixed(flag::WEIGHT, (v != 0).then_some(v), |c| c.weight = v);
    }

    /// `self` with [`Attrs::set_weight`] applied.
    pub fn with_weight(mut self, v: u32) -> Self {
        self.set_weight(v);
        self
    }
}

impl Drop for Attrs {
    fn drop(&mut self) {
        // SAFETY: an `Attrs` owns its block alone (shared blocks are `AttrRef`s, which never drop
        // as `Attrs`), and it is not used after this.
        unsafe { free_block(self.p) }
    }
}

impl Clone for Attrs {
    /// A copy of the set in a block of its own (also for a shared set: `(*attr_ref).clone()`).
    fn clone(&self) -> Attrs {
        let rare = self
            .rare()
            .map_or(std::ptr::null_mut(), |r| Box::into_raw(Box::new(r.clone())));
        Attrs::build(&self.common(), rare)
    }
}

impl Default for Attrs {
    fn default() -> Attrs {
        Attrs::new(&CommonAttrs::default())
    }
}

impl PartialEq for Attrs {
    fn eq(&self, other: &Attrs) -> bool {
        let (a, b) = (self.header(), other.header());
        std::ptr::eq(a, b)
            || (a.flags & !flag::RARE == b.flags & !flag::RARE
                && a.path_len == b.path_len
                && a.comm_len == b.comm_len
                && self.words() == other.words()
                && self.rare() == other.rare())
    }
}
impl Eq for Attrs {}

impl Hash for Attrs {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let h = self.header();
        state.write_u16(h.flags & !flag::RARE);
        state.write_u32(h.path_len);
        self.words().hash(state);
        self.rare().hash(state);
    }
}

impl std::fmt::Debug for Attrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Attrs");
        d.field("origin", &self.origin())
            .field("atomic_aggregate", &self.atomic_aggregate())
            .field("as_path", &self.as_path())
            .field("next_hop", &self.next_hop())
            .field("med", &self.med())
            .field("local_pref", &self.local_pref())
            .field("communities", &self.communities())
            .field("weight", &self.weight());
        if let Some(r) = self.rare() {
            d.field("rare", r);
        }
        d.finish()
    }
}

impl Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AttrsRepr::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Attrs, D::Error> {
        AttrsRepr::deserialize(d).map(Attrs::from)
    }
}

/// The attributes few routes carry, for building a set in one go ([`Attrs::with_rare`]); the
/// default has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RareAttrs {
    pub next_hop_ll: Option<Ipv6Addr>,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Box<[Ipv4Addr]>,
    pub ext_communities: Box<[[u8; 8]]>,
    pub large_communities: Box<[LargeCommunity]>,
    pub unknown: Box<[RawAttr]>,
}

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
    /// Counts live `Rare`s in tests (leak and double-free checks); nothing otherwise.
    #[cfg(test)]
    live: LiveRare,
}

impl From<RareAttrs> for Rare {
    fn from(r: RareAttrs) -> Rare {
        Rare {
            next_hop_ll: r.next_hop_ll,
            aggregator: r.aggregator,
            originator_id: r.originator_id,
            cluster_list: r.cluster_list,
            ext_communities: r.ext_communities,
            large_communities: r.large_communities,
            unknown: r.unknown,
            #[cfg(test)]
            live: LiveRare::new(),
        }
    }
}

/// A counter of live [`Rare`]s per thread, for the tests.
#[cfg(test)]
#[derive(Debug, PartialEq, Eq, Hash)]
struct LiveRare;

#[cfg(test)]
thread_local! {
    static LIVE_RARE: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
impl LiveRare {
    fn new() -> Self {
        LIVE_RARE.with(|c| c.set(c.get() + 1));
        LiveRare
    }
}

#[cfg(test)]
impl Default for LiveRare {
    fn default() -> Self {
        LiveRare::new()
    }
}

#[cfg(test)]
impl Clone for LiveRare {
    fn clone(&self) -> Self {
        LiveRare::new()
    }
}

#[cfg(test)]
impl Drop for LiveRare {
    fn drop(&mut self) {
        LIVE_RARE.with(|c| c.set(c.get() - 1));
    }
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

    fn heap_bytes(&self) -> usize {
        use std::mem::size_of_val;
        std::mem::size_of::<Rare>()
            + size_of_val(&*self.ext_communities)
            + size_of_val(&*self.large_communities)
            + size_of_val(&*self.cluster_list)
            + size_of_val(&*self.unknown)
            + self.unknown.iter().map(|u| u.value.len()).sum::<usize>()
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
        let mut a = Attrs::new(&CommonAttrs {
            origin: r.origin,
            atomic_aggregate: r.atomic_aggregate,
            as_path: &r.as_path,
            next_hop: r.next_hop,
            med: r.med,
            local_pref: r.local_pref,
            communities: &r.communities,
            weight: r.weight,
        });
        a.set_rare(Rare::from(RareAttrs {
            next_hop_ll: r.next_hop_ll,
            aggregator: r.aggregator,
            originator_id: r.originator_id,
            cluster_list: r.cluster_list,
            ext_communities: r.ext_communities,
            large_communities: r.large_communities,
            unknown: r.unknown,
        }));
        a
    }
}

impl From<&Attrs> for AttrsRepr {
    fn from(a: &Attrs) -> AttrsRepr {
        let r = a.rare().cloned().unwrap_or_default();
        AttrsRepr {
            origin: a.origin(),
            as_path: a.as_path().to_owned(),
            next_hop: a.next_hop(),
            next_hop_ll: r.next_hop_ll,
            med: a.med(),
            local_pref: a.local_pref(),
            atomic_aggregate: a.atomic_aggregate(),
            aggregator: r.aggregator,
            communities: a.communities().into(),
            ext_communities: r.ext_communities,
            large_communities: r.large_communities,
            originator_id: r.originator_id,
            cluster_list: r.cluster_list,
            unknown: r.unknown,
            weight: a.weight(),
        }
    }
}

impl Attrs {
    /// IPv6 link-local next-hop when the peer sent one (RFC 2545 §3).
    pub fn next_hop_ll(&self) -> Option<Ipv6Addr> {
        self.rare().and_then(|r| r.next_hop_ll)
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
        self.rare().and_then(|r| r.aggregator)
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
        self.rare().and_then(|r| r.originator_id)
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
        self.rare().map_or(&[], |r| &r.cluster_list)
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
        self.rare().map_or(&[], |r| &r.ext_communities)
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
        self.rare().map_or(&[], |r| &r.large_communities)
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
        self.rare().map_or(&[], |r| &r.unknown)
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

    /// Changes the rare attributes, keeping the block without the pointer when they all are absent.
    fn update_rare(&mut self, f: impl FnOnce(&mut Rare)) {
        if self.flags() & flag::RARE != 0 {
            // SAFETY: owned block (`&mut self`, so no other access) with the slot, which holds the
            // block's own non-null `Box<Rare>` (null only inside `rebuild`).
            let r = unsafe { &mut **rare_slot(self.p) };
            f(r);
            if r.is_empty() {
                self.set_rare_box(None);
            }
        } else {
            // Nothing allocated unless something is set: setting an absent one costs nothing.
            let mut r = Rare::default();
            f(&mut r);
            if !r.is_empty() {
                self.set_rare_box(Some(Box::new(r)));
            }
        }
    }

    /// Replaces the rare attributes (empty ones count as none).
    fn set_rare(&mut self, r: Rare) {
        self.set_rare_box((!r.is_empty()).then(|| Box::new(r)));
    }

    /// Replaces the rare attributes: in place when the block keeps its pointer, else in a new
    /// block with or without one.
    fn set_rare_box(&mut self, r: Option<Box<Rare>>) {
        let r = r.filter(|r| !r.is_empty());
        let old = self.rare_ptr();
        match (self.flags() & flag::RARE != 0, r) {
            (false, None) => return,
            (true, Some(r)) => {
                // SAFETY: owned block with the slot; the block owns the new box from here on.
                unsafe { *rare_slot(self.p) = Box::into_raw(r) };
            }
            (_, r) => {
                let new = r.map_or(std::ptr::null_mut(), Box::into_raw);
                self.rebuild(|a, _| Attrs::build(&a.common(), new));
            }
        }
        if !old.is_null() {
            // SAFETY: no block holds `old` any more (its slot was overwritten, or the block was
            // replaced after `rebuild` nulled the slot), and it came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(old) });
        }
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
        self.communities().contains(&c)
    }

    /// Bytes of the set's block (header and words).
    pub fn block_bytes(&self) -> usize {
        words_offset(self.flags()) + 4 * self.words().len()
    }

    /// Heap bytes of the rare attributes (their box and lists), for memory accounting.
    pub fn rare_bytes(&self) -> usize {
        self.rare().map_or(0, Rare::heap_bytes)
    }

    /// Heap bytes owned by the set: its block and its rare attributes.
    pub fn heap_bytes(&self) -> usize {
        self.block_bytes() + self.rare_bytes()
    }
}

/// Shared handle to an interned attribute set: one pointer to the set's block, whose reference count
/// it holds. Equality and hashing are by pointer: two handles from the same [`AttrStore`] are equal
/// exactly when their contents are.
#[repr(transparent)]
pub struct AttrRef {
    p: NonNull<Header>,
}

// SAFETY: the block is only read through an `AttrRef` (plain data and the `Rare` box, both `Sync`),
// and its reference count is atomic, so handles may be cloned and dropped on any thread.
unsafe impl Send for AttrRef {}
// SAFETY: as above.
unsafe impl Sync for AttrRef {}

impl AttrRef {
    /// Shares an owned set: the block becomes this handle's (count 1), with its content hash filled.
    fn share(attrs: Attrs, hash: u32) -> AttrRef {
        // SAFETY: owned block (`attrs` by value): no other reader while the hash is written.
        unsafe { (*attrs.p.as_ptr()).hash = hash };
        let a = std::mem::ManuallyDrop::new(attrs);
        // The count is 1 from `Attrs::new` (and `Clone`), which is this handle's.
        AttrRef { p: a.p }
    }

    #[inline]
    pub fn ptr_eq(a: &AttrRef, b: &AttrRef) -> bool {
        a.p == b.p
    }

    /// A handle to a set of its own, not interned (for code paths that only pass sets along).
    pub fn unshared(attrs: Attrs) -> AttrRef {
        let hash = content_hash(&attrs);
        AttrRef::share(attrs, hash)
    }

    /// Up to `n` more handles to the set, counted with one atomic add instead of one per handle
    /// (the prefixes of an UPDATE all get its set: an atomic add per prefix was 7% of the import
    /// path). The handles not taken are given back when the [`Clones`] is dropped.
    pub fn clones(&self, n: u32) -> Clones {
        if n > 0 {
            add_refs(self.header(), n);
        }
        Clones { p: self.p, left: n }
    }

    /// How many handles to the set exist (the store's own included), for leak checks in tests.
    pub fn ref_count(&self) -> usize {
        self.header().rc.load(Ordering::Acquire) as usize
    }

    /// The set's address: identifies it among the sets alive.
    #[inline]
    pub fn addr(&self) -> usize {
        self.p.as_ptr() as usize
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the block lives while this handle (one of its counted references) does.
        unsafe { self.p.as_ref() }
    }
}

impl std::ops::Deref for AttrRef {
    type Target = Attrs;
    #[inline]
    fn deref(&self) -> &Attrs {
        // SAFETY: `AttrRef` and `Attrs` are both `repr(transparent)` over the same block pointer, so
        // the cast reads the same pointer. The `&Attrs` only lends read access (no `&mut Attrs` and
        // no drop can come from it; `clone` copies into a new block) for as long as this handle,
        // which keeps the block alive, is borrowed.
        unsafe { &*(self as *const AttrRef).cast::<Attrs>() }
    }
}

impl Clone for AttrRef {
    #[inline]
    fn clone(&self) -> AttrRef {
        add_refs(self.header(), 1);
        AttrRef { p: self.p }
    }
}

impl Drop for AttrRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this handle holds one counted reference and is gone after this.
        unsafe { drop_refs(self.p, 1) }
    }
}

/// Counts `n` more references to the block of `h`, from a holder of one. Relaxed suffices for an
/// increment from a live handle (as `Arc` does); a count this high means handles are leaked, so
/// stop before it wraps.
#[inline]
fn add_refs(h: &Header, n: u32) {
    let old = h.rc.fetch_add(n, Ordering::Relaxed);
    if old > u32::MAX / 2 {
        std::process::abort();
    }
}

/// Gives back `n` counted references to the block `p`, freeing it when they were the last.
///
/// # Safety
/// The caller holds `n` counted references to `p` and uses none of them afterwards.
#[inline]
unsafe fn drop_refs(p: NonNull<Header>, n: u32) {
    // SAFETY: the block lives while the caller's references are counted.
    let h = unsafe { p.as_ref() };
    if h.rc.fetch_sub(n, Ordering::Release) != n {
        return;
    }
    // Every other holder's uses happen before the block is freed (pairs with the Release above).
    std::sync::atomic::fence(Ordering::Acquire);
    // SAFETY: these were the last references; no `&Attrs` lent by a handle can outlive it.
    unsafe { free_block(p) }
}

/// Handles to one set counted ahead ([`AttrRef::clones`]): each one taken is an [`AttrRef`].
pub struct Clones {
    p: NonNull<Header>,
    /// Counted references not yet taken.
    left: u32,
}

// SAFETY: as for `AttrRef`: the references it holds are counted, the count is atomic.
unsafe impl Send for Clones {}
// SAFETY: as above.
unsafe impl Sync for Clones {}

impl Iterator for Clones {
    type Item = AttrRef;

    #[inline]
    fn next(&mut self) -> Option<AttrRef> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // One of the references counted by `AttrRef::clones` becomes this handle's.
        Some(AttrRef { p: self.p })
    }
}

impl Drop for Clones {
    fn drop(&mut self) {
        if self.left > 0 {
            // SAFETY: this holds `left` counted references and is gone after this.
            unsafe { drop_refs(self.p, self.left) }
        }
    }
}

impl std::fmt::Debug for Clones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clones").field("left", &self.left).finish()
    }
}

impl std::fmt::Debug for AttrRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl PartialEq for AttrRef {
    fn eq(&self, other: &Self) -> bool {
        self.p == other.p
    }
}
impl Eq for AttrRef {}
impl Hash for AttrRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr().hash(state)
    }
}

/// Hash-consing store: one block per distinct attribute set.
///
/// Each set keeps its hash in its header: growing the table rehashes the stored hashes instead of
/// every attribute set, which was most of the cost of interning a full table. A lookup probes with
/// the owned set (nothing more allocated; on a hit the probe is freed). The index is the store's
/// own ([`index`]): its look-up can be prefetched from a set's hash.
#[derive(Debug, Default)]
pub struct AttrStore {
    set: index::SetIndex,
}

/// A set's content hash, folded to the 32 bits its header keeps (the store's index spreads it over
/// its slots).
fn content_hash(a: &Attrs) -> u32 {
    use std::hash::BuildHasher;
    let h = rustc_hash::FxBuildHasher.hash_one(a);
    (h ^ (h >> 32)) as u32
}

/// An owned set on its way into the store, with its content hash once computed. A set converted
/// ahead of its interning is hashed then, to prefetch where the store's look-up goes
/// ([`AttrStore::prefetch`]); interning does not hash it again.
pub struct ToIntern {
    attrs: Attrs,
    hash: Option<u32>,
}

impl ToIntern {
    /// `attrs` with its hash computed now.
    pub fn hashed(attrs: Attrs) -> ToIntern {
        let hash = content_hash(&attrs);
        ToIntern {
            attrs,
            hash: Some(hash),
        }
    }

    pub fn attrs(&self) -> &Attrs {
        &self.attrs
    }

    pub fn into_attrs(self) -> Attrs {
        self.attrs
    }
}

impl From<Attrs> for ToIntern {
    /// `attrs`, hashed when it is interned.
    fn from(attrs: Attrs) -> ToIntern {
        ToIntern { attrs, hash: None }
    }
}

impl AttrStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the shared copy of `attrs`, storing it if it is new.
    pub fn intern(&mut self, attrs: Attrs) -> AttrRef {
        self.intern_counted(attrs, 0).0
    }

    /// [`AttrStore::intern`] with `n` more handles counted ahead (an UPDATE's set and its
    /// prefixes). A set stored new gets its count written before anyone else can see it, without
    /// an atomic operation: a locked add after the conversion's and the store's writes waited for
    /// them all to reach the cache (4% of the import path, with one such add per UPDATE).
    pub fn intern_counted(&mut self, attrs: impl Into<ToIntern>, n: u32) -> (AttrRef, Clones) {
        let ToIntern { attrs, hash } = attrs.into();
        let hash = hash.unwrap_or_else(|| content_hash(&attrs));
        let vacant = match self.set.find(hash, &attrs) {
            Ok(s) => {
                let a = AttrRef::clone(&s);
                let more = a.clones(n);
                return (a, more);
            }
            Err(vacant) => vacant,
        };
        if n > u32::MAX / 4 {
            std::process::abort();
        }
        // The block is this function's alone until the store holds it: a plain store of the count
        // (the store's reference, the handle's and the `n` counted ahead).
        attrs.header().rc.store(2 + n, Ordering::Relaxed);
        let a = AttrRef::share(attrs, hash);
        self.set.insert_at(vacant, hash, AttrRef { p: a.p });
        let more = Clones { p: a.p, left: n };
        (a, more)
    }

    /// Asks for the cache line where interning `attrs` will look first (when its hash is known): for
    /// a set converted ahead of its interning (the look-up of a store of 635k sets missed the cache
    /// once per UPDATE).
    #[inline]
    pub fn prefetch(&self, attrs: &ToIntern) {
        if let Some(hash) = attrs.hash {
            self.set.prefetch(hash);
        }
    }

    /// Called when a holder drops `a`: frees the set when the store holds the last other reference.
    pub fn release(&mut self, a: AttrRef) {
        // The store's copy + the one being released.
        if a.ref_count() == 2 {
            drop(self.set.remove(&a));
        }
    }

    /// Approximate bytes of every set held (blocks, rare attributes, the interning table).
    pub fn approx_bytes(&self) -> usize {
        let (sets, lists, index) = self.memory();
        sets + lists + index
    }

    /// Where the store's bytes go: (the sets' blocks, their rare attributes, the interning index).
    pub fn memory(&self) -> (usize, usize, usize) {
        let (mut sets, mut rare) = (0, 0);
        for s in self.set.iter() {
            sets += s.block_bytes();
            rare += s.rare_bytes();
        }
        (sets, rare, self.set.bytes())
    }

    /// Number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.len() == 0
    }

    /// Drops every set no route refers to any more (after bulk operations that bypassed `release`).
    pub fn collect_garbage(&mut self) {
        self.set.retain(|s| s.ref_count() > 1);
    }
}

mod index;
#[cfg(test)]
mod tests;
