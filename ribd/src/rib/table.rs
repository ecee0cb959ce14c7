//! Per-AFI prefix tables: each prefix holds its candidate paths (the post-policy Adj-RIB-In of every
//! peer, shared in one place) ordered best first, plus how many lead the multipath set.
//!
//! Memory per prefix is what the product competes on, so the layout is deliberate:
//! - a table is 65,536 buckets of sorted vectors of `(prefix, Paths)` (bucketed by the top 16 address
//!   bits for IPv4, which keeps address order; by a hash of the top 32 bits for IPv6). No hash table
//!   load-factor slack, no per-entry allocation, and ordered walks for `--longer` queries;
//! - [`Paths`] is 16 bytes: one [`Path`] inline (the common case: one path per peer per prefix), or
//!   a pointer to a block of several when several peers announce the prefix, told apart by the low
//!   bit of the first word (an attribute set pointer's is clear), with the multipath count in the
//!   lone path's rank or beside the block's length;
//! - a block stores its paths column by column: the interned attribute pointers (8 bytes each), then
//!   each path's 16-bit peer index, flags and arrival rank (4 bytes each), then the ADD-PATH path ids
//!   (4 bytes each) only when one of them is not 0. Without ADD-PATH a prefix with n paths costs
//!   12·n bytes of block, so every further peer's path costs 12 to 24 bytes (16 at 4 peers; a
//!   boxed slice of 16-byte `Path`s cost 64/3 = 21.3 at 4 peers, because the inline slot then only
//!   points). A block that grows has room up to the next size class (4, 8, 16 paths), so a prefix
//!   reaching 4 paths allocates once, not once per path; `Rib::shrink` (the daemon's trim after a
//!   load) makes blocks exact again. Callers read paths as [`PathRef`] views (the attribute
//!   handle by reference, the rest copied), through [`Paths::iter`] and [`PathSlice`], and change
//!   them through [`PathMut`].
//!
//! An IPv4 entry costs 24 bytes (an IPv6 entry 40) plus the interned attribute set's share; with
//! a 24-byte `Paths` (first path inline, a pointer to the others) they would be 32 and 48 (8 bytes
//! per path of a full table from one peer).
//!
//! `cargo bench -p ribd --bench rib_load` ("feed attrs": the real 513k IPv4 prefixes with the
//! testbed feed's attribute mix; allocator counts, load 4.5): 50.2 B/prefix requested from one peer
//! and 38.4 B per additional prefix-path from peers 2–4 (16.0 of it the block, against 21.3 and
//! 43.7 B with 16-byte paths in a boxed slice).

use std::alloc::Layout;
use std::mem::ManuallyDrop;
use std::net::IpAddr;
use std::ptr;

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
    /// The path's MED group (`decision::Key::group`: its neighbouring AS, or the local AS for an
    /// empty path) is its peer's remote AS. Set when the path is stored and when its peer's
    /// information changes, so selection can tell which paths' MEDs compare without reading
    /// their attribute sets. Internal: [`PathRef::flags`](super::PathRef) leaves it out.
    pub(crate) const PEER_AS: u8 = 0x8;
    /// The path forwards to its peer's address, with no link bandwidth to weigh it (the eBGP
    /// rule: the set's next-hop is the peer's address and it has no link-bandwidth extended
    /// community). Set when the path is stored and when its peer's information changes, so a
    /// forwarding result over such paths is told from the peers without reading their attribute
    /// sets. Internal, as [`PEER_AS`].
    pub(crate) const NH_PEER: u8 = 0x10;
    /// The flags only the RIB reads.
    pub(crate) const INTERNAL: u8 = PEER_AS | NH_PEER;
}

/// One candidate path for a prefix, owned: what goes into a [`Paths`] and comes out of it (a
/// [`Paths`] lends its paths as [`PathRef`]s). `repr(C)`: the attribute pointer first ([`Paths`]
/// tells an inline path from a block by that word's low bit, always clear in an attribute pointer),
/// and peer, flags and rank last in the order of a block's [`Meta`] column, so a lone inline path
/// is read like a block of one.
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

    /// This path as the view [`Paths`] lends.
    pub fn view(&self) -> PathRef<'_> {
        PathRef {
            attrs: &self.attrs,
            path_id: self.path_id,
            peer: self.peer,
            flags: self.flags,
            rank: self.rank,
            internal: self.flags & flags::INTERNAL,
        }
    }

    /// The peer, flags and rank, laid out as a block's [`Meta`] column.
    fn meta(&self) -> &Meta {
        // SAFETY: `Path` is `repr(C)` with `peer`, `flags` and `rank` at `META_OFFSET` in `Meta`'s
        // order (asserted below); the pointer is derived from the whole `Path`, and the `&Meta`
        // only reads, for as long as `self` is borrowed.
        unsafe {
            &*(self as *const Path)
                .cast::<u8>()
                .add(META_OFFSET)
                .cast::<Meta>()
        }
    }
}

/// A path of a [`Paths`], read in place: the attribute handle by reference, the rest copied (see
/// [`Path`] for the fields).
#[derive(Debug, Clone, Copy)]
pub struct PathRef<'a> {
    pub attrs: &'a AttrRef,
    pub path_id: u32,
    pub peer: PeerId,
    pub flags: u8,
    pub rank: u8,
    /// The flags only the RIB reads ([`flags::INTERNAL`]), which `flags` leaves out.
    pub(crate) internal: u8,
}

impl PathRef<'_> {
    /// An owned copy (one more handle to the attribute set).
    pub fn to_path(self) -> Path {
        Path {
            attrs: self.attrs.clone(),
            path_id: self.path_id,
            peer: self.peer,
            flags: self.flags,
            rank: self.rank,
        }
    }
}

/// A path of a [`Paths`], changed in place: its attribute set and its flags. The peer and path id
/// (which identify it) and the rank (the entry's bookkeeping) are copies.
#[derive(Debug)]
pub struct PathMut<'a> {
    pub attrs: &'a mut AttrRef,
    pub flags: &'a mut u8,
    pub path_id: u32,
    pub peer: PeerId,
    pub rank: u8,
}

/// A path's peer, flags and rank: one element of a block's second column, and the last 4 bytes
/// of a [`Path`].
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Meta {
    peer: PeerId,
    flags: u8,
    rank: u8,
}

/// Where [`Meta`]'s fields start in a [`Path`].
const META_OFFSET: usize = std::mem::offset_of!(Path, peer);
/// Bytes per path of a block's columns.
const ATTRS_COL: usize = std::mem::size_of::<AttrRef>();
const META_COL: usize = std::mem::size_of::<Meta>();
const ID_COL: usize = std::mem::size_of::<u32>();

const _: () = {
    assert!(std::mem::size_of::<AttrRef>() == 8 && std::mem::align_of::<AttrRef>() == 8);
    assert!(std::mem::size_of::<Path>() == 16 && std::mem::align_of::<Path>() == 8);
    assert!(std::mem::offset_of!(Path, attrs) == 0);
    assert!(std::mem::offset_of!(Path, path_id) == 8);
    assert!(META_OFFSET == 12);
    assert!(std::mem::offset_of!(Path, flags) == META_OFFSET + std::mem::offset_of!(Meta, flags));
    assert!(std::mem::offset_of!(Path, rank) == META_OFFSET + std::mem::offset_of!(Meta, rank));
    assert!(std::mem::offset_of!(Meta, peer) == 0);
    assert!(META_COL == 4 && std::mem::align_of::<Meta>() <= 4 && ID_COL == 4);
    assert!(std::mem::size_of::<Many>() == 16);
    assert!(std::mem::size_of::<Paths>() == 16);
};

/// All candidates of one prefix, best first, with the multipath count (see [`Paths::multipath`]).
///
/// 16 bytes, so a table entry is 24 (IPv4) or 40 (IPv6) bytes: either the one path inline (the
/// common case; its multipath count, 0 or 1, is kept in its `rank`, which means nothing for a
/// lone path), or (block pointer with the low bit set, length, multipath count, whether the block
/// has the path-id column). An attribute pointer is 8-aligned, so an inline path's first word has
/// that bit clear; callers only ever see `Path`s and views of them, and none can set it.
///
/// A block of n paths with room for c >= n (see [`capacity`]: c = n unless the block grew and was
/// not shrunk since), from its 8-aligned start: c attribute handles (`AttrRef`, 8 bytes), c
/// [`Meta`]s (4 bytes), and c path ids (4 bytes) only when the flag says so (a path id is 0
/// without ADD-PATH). The first n slots of each column are initialised; a block holds at least 2
/// paths, or none for the placeholder [`Paths::default`] (a dangling pointer, nothing
/// allocated).
#[repr(C)]
pub struct Paths {
    repr: Repr,
}

#[repr(C)]
union Repr {
    one: ManuallyDrop<Path>,
    many: Many,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Many {
    /// The block's address | 1.
    ptr: *mut u8,
    len: u32,
    mp: u8,
    /// 1 when the block has the path-id column.
    ids: u8,
    /// 1 when the block has room for paths beyond `len` (see [`capacity`]).
    spare: u8,
    /// 1 + the index of the backup's lead (the first path after the multipath set the backup
    /// starts from) as the RIB last computed it for these paths; 0 when unknown. Every change of
    /// the paths, their order, flags or multipath count forgets it.
    lead: u8,
}

impl Many {
    /// How many paths the block has room for (its columns are laid out for that many).
    fn cap(&self) -> usize {
        capacity(self.len as usize, self.spare != 0)
    }
}

/// The capacity of a block of `len` paths: `len` for an exact block, else the size class above it
/// (4, 8, 16, ...). A block that grows gets room to grow ([`Paths::push`]): a prefix reaching 4
/// paths (4 peers) allocates once instead of once per path (2, then 3, then 4: three allocations
/// and two frees); [`Paths::shrink`] (the daemon's post-load trim, through `Rib::shrink`) makes
/// it exact again.
fn capacity(len: usize, spare: bool) -> usize {
    if spare {
        len.max(4).next_power_of_two()
    } else {
        len
    }
}

// SAFETY: a `Paths` owns its path or its block exclusively, like `Box<[Path]>` does; `Path` is
// `Send + Sync` (asserted below).
unsafe impl Send for Paths {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Paths {}
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Path>();
};

/// The layout of a block of `n` paths.
fn block_layout(n: usize, ids: bool) -> Layout {
    let per = ATTRS_COL + META_COL + if ids { ID_COL } else { 0 };
    Layout::from_size_align(n * per, std::mem::align_of::<AttrRef>()).expect("block size")
}

/// A new, uninitialised block for `n` paths (a dangling, aligned pointer for 0).
fn alloc_block(n: usize, ids: bool) -> *mut u8 {
    if n == 0 {
        return ptr::NonNull::<AttrRef>::dangling().as_ptr().cast();
    }
    let layout = block_layout(n, ids);
    // SAFETY: `layout` has a non-zero size (n > 0, and every column is wider than 0).
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// The column starts of a block with room for `n` paths at `base` (its capacity, which its
/// layout follows): attribute handles, metas, path ids (the last is the block's end when it has
/// no id column).
///
/// # Safety
/// `base` is a block with room for `n` paths, or dangling for n = 0. The third pointer may only be
/// used when the block has the id column.
unsafe fn columns(base: *mut u8, n: usize) -> (*mut AttrRef, *mut Meta, *mut u32) {
    // SAFETY: both offsets are within the block or one past its end (see `block_layout`).
    unsafe {
        (
            base.cast(),
            base.add(n * ATTRS_COL).cast(),
            base.add(n * (ATTRS_COL + META_COL)).cast(),
        )
    }
}

/// Writes `p` as path `i` of a block, moving its attribute handle in (a previous occupant is
/// overwritten, not dropped).
///
/// # Safety
/// `i < n` for a block with room for `n` paths at `base`, with the id column when `p.path_id` is
/// not 0.
unsafe fn write_path(base: *mut u8, n: usize, ids: bool, i: usize, p: Path) {
    debug_assert!(i < n && (ids || p.path_id == 0));
    let meta = *p.meta();
    let path_id = p.path_id;
    // SAFETY: per the contract, the slots are inside the block and aligned for their types.
    unsafe {
        let (a, m, id) = columns(base, n);
        ptr::write(a.add(i), p.attrs);
        ptr::write(m.add(i), meta);
        if ids {
            ptr::write(id.add(i), path_id);
        }
    }
}

/// Makes a block with room for `cap` paths (id column: `ids`) one for its first `n` (id column:
/// `keep_ids`), in place: the metas (then ids) move down to the smaller layout's column starts and
/// the block is reallocated to that layout's size. Returns the block's new base.
///
/// # Safety
/// `base` was allocated with `block_layout(cap, ids)` and its first `n` paths are initialised,
/// `0 < n <= cap`, and `keep_ids` only if `ids`. The old `base` is not used again.
unsafe fn shrink_block(base: *mut u8, cap: usize, ids: bool, n: usize, keep_ids: bool) -> *mut u8 {
    debug_assert!(0 < n && n <= cap && (ids || !keep_ids));
    let (old, new) = (block_layout(cap, ids), block_layout(n, keep_ids));
    // SAFETY: the metas (then ids) move from the `cap`-layout's column starts to the `n`-layout's,
    // which are not higher: `ptr::copy` allows the overlap, and the meta move ends at 12·n <= the
    // old id column's start (12·cap), so it clobbers no id not yet moved; the attribute column's
    // first `n` handles stay where they are. `realloc` to the smaller (or equal) size keeps those
    // first `new.size()` bytes.
    unsafe {
        let (_, me_src, id_src) = columns(base, cap);
        let (_, me_dst, id_dst) = columns(base, n);
        ptr::copy(me_src, me_dst, n);
        if keep_ids {
            ptr::copy(id_src, id_dst, n);
        }
        let out = std::alloc::realloc(base, old, new.size());
        if out.is_null() {
            std::alloc::handle_alloc_error(new);
        }
        out
    }
}

/// Moves path `i` out of a block (its slots are then uninitialised as far as ownership goes).
///
/// # Safety
/// `i < n` for a block with room for `n` paths at `base` whose path `i` is initialised; the
/// caller does not use path `i`'s attribute handle in the block again.
unsafe fn read_path(base: *mut u8, n: usize, ids: bool, i: usize) -> Path {
    // SAFETY: per the contract.
    unsafe {
        let (a, m, id) = columns(base, n);
        let meta = ptr::read(m.add(i));
        Path {
            attrs: ptr::read(a.add(i)),
            path_id: if ids { ptr::read(id.add(i)) } else { 0 },
            peer: meta.peer,
            flags: meta.flags,
            rank: meta.rank,
        }
    }
}

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
                one: ManuallyDrop::new(p),
            },
        };
        debug_assert!(!r.is_many());
        r
    }

    /// An entry owning the block at `base` (untagged) of `n` initialised paths, laid out for
    /// `capacity(n, spare)` of them.
    fn from_block(base: *mut u8, n: usize, mp: u8, ids: bool, spare: bool) -> Paths {
        debug_assert!(base as usize & 1 == 0 && n != 1 && (n >= 2 || !spare));
        let len = u32::try_from(n).expect("fewer than 2^32 paths per prefix");
        Paths {
            repr: Repr {
                many: Many {
                    ptr: base.map_addr(|a| a | 1),
                    len,
                    mp,
                    ids: u8::from(ids),
                    spare: u8::from(spare),
                    lead: 0,
                },
            },
        }
    }

    /// A block of the paths `v` (2 or more), with the id column when a path id is not 0.
    fn block(v: Vec<Path>, mp: u8) -> Paths {
        let n = v.len();
        let ids = v.iter().any(|p| p.path_id != 0);
        let base = alloc_block(n, ids);
        for (i, p) in v.into_iter().enumerate() {
            // SAFETY: `base` is a new block of `n` paths, with the id column if any path needs it.
            unsafe { write_path(base, n, ids, i, p) };
        }
        Paths::from_block(base, n, mp, ids, false)
    }

    fn is_many(&self) -> bool {
        // SAFETY: both members start with a pointer-sized word: the tagged block pointer or the
        // attribute handle's pointer (bit 0 clear); reading it as a raw pointer is valid for either.
        unsafe { self.repr.many.ptr.addr() & 1 == 1 }
    }

    /// A block entry's fields, with the pointer untagged; `None` for an inline path.
    fn many(&self) -> Option<Many> {
        self.is_many().then(|| {
            // SAFETY: the active member is `many` (tag bit set).
            let m = unsafe { self.repr.many };
            Many {
                ptr: m.ptr.map_addr(|a| a & !1),
                ..m
            }
        })
    }

    /// The paths, best first.
    pub fn as_slice(&self) -> PathSlice<'_> {
        match self.many() {
            Some(m) => {
                let n = m.len as usize;
                // SAFETY: the block (laid out for `m.cap()` paths, the first `n` initialised) is
                // owned by `self`, and neither changed nor freed while `self` is borrowed; the
                // columns are disjoint.
                unsafe {
                    let (a, me, id) = columns(m.ptr, m.cap());
                    PathSlice {
                        attrs: std::slice::from_raw_parts(a, n),
                        meta: std::slice::from_raw_parts(me, n),
                        ids: if m.ids != 0 {
                            std::slice::from_raw_parts(id, n)
                        } else {
                            &[]
                        },
                    }
                }
            }
            None => {
                // SAFETY: the active member is `one`.
                let p: &Path = unsafe { &self.repr.one };
                PathSlice {
                    attrs: std::slice::from_ref(&p.attrs),
                    meta: std::slice::from_ref(p.meta()),
                    ids: std::slice::from_ref(&p.path_id),
                }
            }
        }
    }

    /// The columns, to change in place (forgets the backup hint).
    fn columns_mut(&mut self) -> (&mut [AttrRef], &mut [Meta], &mut [u32]) {
        self.forget_backup_hint();
        match self.many() {
            Some(m) => {
                let n = m.len as usize;
                // SAFETY: as in `as_slice`, with `self` borrowed exclusively.
                unsafe {
                    let (a, me, id) = columns(m.ptr, m.cap());
                    (
                        std::slice::from_raw_parts_mut(a, n),
                        std::slice::from_raw_parts_mut(me, n),
                        if m.ids != 0 {
                            std::slice::from_raw_parts_mut(id, n)
                        } else {
                            &mut []
                        },
                    )
                }
            }
            None => {
                // SAFETY: the active member is `one`. The three references are to disjoint bytes
                // of it (attrs 0..8, path id 8..12, `Meta` 12..16, asserted above), derived from
                // one raw pointer to the whole path, and live as long as `self`'s borrow.
                unsafe {
                    let p: *mut Path = (&raw mut self.repr.one).cast();
                    (
                        std::slice::from_mut(&mut (*p).attrs),
                        std::slice::from_mut(&mut *p.cast::<u8>().add(META_OFFSET).cast::<Meta>()),
                        std::slice::from_mut(&mut (*p).path_id),
                    )
                }
            }
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.as_slice().iter()
    }

    pub fn get(&self, i: usize) -> Option<PathRef<'_>> {
        self.as_slice().get(i)
    }

    /// The paths, to change their attribute sets and flags in place.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        let (attrs, meta, ids) = self.columns_mut();
        IterMut {
            attrs: attrs.iter_mut(),
            meta: meta.iter_mut(),
            ids: ids.iter(),
        }
    }

    pub fn get_mut(&mut self, i: usize) -> Option<PathMut<'_>> {
        self.iter_mut().nth(i)
    }

    /// Makes `p` the newest path of the entry: it replaces the path `at` when given, else it is
    /// added. Returns the replaced path.
    pub fn push_newest(&mut self, mut p: Path, at: Option<usize>) -> Option<Path> {
        self.forget_backup_hint();
        if !self.is_many() && at == Some(0) {
            // The lone path replaced: the multipath count stays (in the rank).
            p.rank = self.multipath() as u8;
            // SAFETY: the active member is `one`.
            return Some(std::mem::replace(unsafe { &mut *self.repr.one }, p));
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
            Some(i) => Some(self.replace(i, p)),
            None => {
                self.push(p);
                None
            }
        }
    }

    /// Puts `p` in place of block path `i`; returns the path that was there.
    fn replace(&mut self, i: usize, p: Path) -> Path {
        let m = self.many().expect("a block entry");
        let n = m.len as usize;
        assert!(i < n, "path {i} of {n}");
        if p.path_id != 0 && m.ids == 0 {
            self.add_id_column();
        }
        let m = self.many().expect("a block entry");
        // SAFETY: `i < n <= cap` in this entry's block (with the id column if `p` needs it); the
        // old path is moved out before its slots are overwritten.
        unsafe {
            let old = read_path(m.ptr, m.cap(), m.ids != 0, i);
            write_path(m.ptr, m.cap(), m.ids != 0, i, p);
            old
        }
    }

    /// Gives a block entry the path-id column (all 0: every path's id was).
    fn add_id_column(&mut self) {
        let m = self.many().expect("a block entry");
        let n = m.len as usize;
        if m.ids != 0 || n == 0 {
            return;
        }
        let cap = m.cap();
        let old = block_layout(cap, false);
        let new = block_layout(cap, true);
        // SAFETY: the block was allocated with `old`; `realloc` keeps its first `old.size()` bytes,
        // which are the attribute and meta columns at the same offsets in the new layout (the id
        // column comes last), and the id column's first `n` entries are then written before the
        // entry is read again.
        let base = unsafe {
            let base = std::alloc::realloc(m.ptr, old, new.size());
            if base.is_null() {
                std::alloc::handle_alloc_error(new);
            }
            let (_, _, id) = columns(base, cap);
            ptr::write_bytes(id, 0, n);
            base
        };
        // The old pointer is freed (or is `base`): overwrite without dropping.
        // SAFETY: writing the `many` member (plain data) of a block entry.
        unsafe {
            self.repr.many = Many {
                ptr: base.map_addr(|a| a | 1),
                ids: 1,
                ..self.repr.many
            };
        }
    }

    /// Renumbers the ranks 0.. in their order (skipping the path `skip`); returns the next rank.
    fn compact_ranks(&mut self, skip: Option<usize>) -> u8 {
        let (_, meta, _) = self.columns_mut();
        let mut idx: Vec<usize> = (0..meta.len()).filter(|&i| Some(i) != skip).collect();
        idx.sort_by_key(|&i| meta[i].rank);
        for (r, &i) in idx.iter().enumerate() {
            meta[i].rank = r.min(u8::MAX as usize - 1) as u8;
        }
        idx.len().min(u8::MAX as usize) as u8
    }

    pub fn len(&self) -> usize {
        self.many().map_or(1, |m| m.len as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of leading paths forming the multipath (forwarding) set; 0 = nothing usable.
    pub fn multipath(&self) -> usize {
        match self.many() {
            Some(m) => m.mp as usize,
            // SAFETY: the active member is `one`.
            None => unsafe { self.repr.one.rank as usize },
        }
    }

    pub fn set_multipath(&mut self, n: usize) {
        self.forget_backup_hint();
        let n = n.min(self.len()).min(u8::MAX as usize) as u8;
        if self.is_many() {
            // The active member is `many` (a plain `Copy` field write); only its count changes.
            self.repr.many.mp = n;
        } else {
            // SAFETY: the active member is `one`; a plain field write.
            unsafe { (*(&raw mut self.repr.one).cast::<Path>()).rank = n };
        }
    }

    pub fn best(&self) -> Option<PathRef<'_>> {
        if self.multipath() > 0 {
            self.get(0)
        } else {
            None
        }
    }

    /// The multipath set: the first [`Paths::multipath`] paths.
    pub fn forwarding(&self) -> PathSlice<'_> {
        self.as_slice().slice(..self.multipath())
    }

    /// Adds `p` last: in the block's spare room when it has some (and the id column if `p` needs
    /// it), else into a new block with room to grow (see [`capacity`]).
    fn push(&mut self, p: Path) {
        let n = self.len();
        if n == 0 {
            *self = Paths::one(p);
            return;
        }
        if let Some(m) = self.many()
            && n < m.cap()
            && (m.ids != 0 || p.path_id == 0)
        {
            // SAFETY: `n < cap`: slot `n` is inside the block and free; it is written before the
            // length covers it. The active member is `many` (plain `Copy` data).
            unsafe {
                write_path(m.ptr, m.cap(), m.ids != 0, n, p);
                self.repr.many.len += 1;
            }
            return;
        }
        let mp = self.multipath() as u8;
        let ids = p.path_id != 0 || self.as_slice().iter().any(|q| q.path_id != 0);
        let cap = capacity(n + 1, true);
        let base = alloc_block(cap, ids);
        let src = self.as_slice();
        // SAFETY: `base` is a new block with room for `cap` > n paths; the first n take this
        // entry's paths bit for bit (the attribute handles move: the old storage is released
        // below without dropping them), slot n takes `p`.
        unsafe {
            let (a, m, id) = columns(base, cap);
            ptr::copy_nonoverlapping(src.attrs.as_ptr(), a, n);
            ptr::copy_nonoverlapping(src.meta.as_ptr(), m, n);
            if ids {
                if src.ids.is_empty() {
                    ptr::write_bytes(id, 0, n);
                } else {
                    ptr::copy_nonoverlapping(src.ids.as_ptr(), id, n);
                }
            }
            if !self.is_many() {
                // A lone path's rank was the multipath count; it is the oldest now.
                (*m).rank = 0;
            }
            write_path(base, cap, ids, n, p);
        }
        let old = std::mem::replace(self, Paths::from_block(base, n + 1, mp, ids, true));
        // SAFETY: `old`'s paths were moved into the new block above.
        unsafe { old.forget_paths() };
    }

    /// The index of the backup's lead as the RIB last recorded it for the paths as they are
    /// ([`Paths::set_backup_hint`]); `None` when unknown (an inline path never has one).
    pub(crate) fn backup_hint(&self) -> Option<usize> {
        self.many()
            .and_then(|m| m.lead.checked_sub(1))
            .map(usize::from)
    }

    /// Records that path `i` leads the entry's backup (ignored for an inline path or an index
    /// that does not fit).
    pub(crate) fn set_backup_hint(&mut self, i: usize) {
        if let Some(m) = self.many()
            && i < m.len as usize
            && i < usize::from(u8::MAX)
        {
            // The active member is `many` (a plain `Copy` field write).
            self.repr.many.lead = i as u8 + 1;
        }
    }

    fn forget_backup_hint(&mut self) {
        if self.is_many() {
            // The active member is `many` (a plain `Copy` field write).
            self.repr.many.lead = 0;
        }
    }

    /// Gives a block's spare room back (see [`capacity`]): the block becomes exact. Returns the
    /// bytes released.
    pub fn shrink(&mut self) -> usize {
        let Some(m) = self.many() else {
            return 0;
        };
        if m.spare == 0 {
            return 0;
        }
        let (n, cap, ids) = (m.len as usize, m.cap(), m.ids != 0);
        let (old, new) = (block_layout(cap, ids), block_layout(n, ids));
        let base = if n < cap {
            // SAFETY: the block was allocated with `old` and holds `0 < n < cap` initialised
            // paths; the entry is given the new base below.
            unsafe { shrink_block(m.ptr, cap, ids, n, ids) }
        } else {
            m.ptr
        };
        // The old pointer is freed (or is `base`): overwrite without dropping.
        // SAFETY: writing the `many` member (plain data) of a block entry.
        unsafe {
            self.repr.many = Many {
                ptr: base.map_addr(|a| a | 1),
                spare: 0,
                ..self.repr.many
            };
        }
        old.size() - new.size()
    }

    /// Frees a block entry's block without dropping its attribute handles (an inline path's
    /// handle is not dropped either).
    ///
    /// # Safety
    /// The caller moved every attribute handle out (bitwise) and does not use this entry again.
    unsafe fn forget_paths(self) {
        let me = ManuallyDrop::new(self);
        if let Some(m) = me.many()
            && m.len > 0
        {
            // SAFETY: the block was allocated with this layout and is owned by `me` alone.
            unsafe { std::alloc::dealloc(m.ptr, block_layout(m.cap(), m.ids != 0)) };
        }
    }

    /// Removes the paths matching `pred`, returning them; `None` in the result's second place means the
    /// entry is now empty. The multipath count of what is kept is 0 until selection runs again.
    ///
    /// In place: the kept paths close up in their block, which shrinks (`realloc`, in place with
    /// glibc); only the removed paths' vector is allocated (a peer's flush runs this per prefix).
    pub fn extract(mut self, pred: impl Fn(PathRef<'_>) -> bool) -> (Vec<Path>, Option<Paths>) {
        let gone: smallvec::SmallVec<[bool; 8]> = self.iter().map(&pred).collect();
        let k = gone.iter().filter(|&&g| g).count();
        if k == 0 {
            self.set_multipath(0);
            return (Vec::new(), Some(self));
        }
        let Some(m) = self.many() else {
            // The lone path goes.
            return (self.into_vec(), None);
        };
        let n = m.len as usize;
        let cap = m.cap();
        let ids = m.ids != 0;
        let left = n - k;
        // The block's ownership passes to the code below (the result's entry, or freed).
        let _owner = ManuallyDrop::new(self);
        let mut removed = Vec::with_capacity(k);
        // SAFETY: the block holds `n` initialised paths in its `cap`-layout and is owned here (not
        // dropped). Each path is moved once: out into `removed`, or down to the next kept position
        // `w <= i` of each column (whole elements, `w < i` so never onto itself). Afterwards
        // positions `0..left` of the `cap`-layout's columns hold the kept paths and nothing else
        // owns a handle.
        unsafe {
            let (a, me_col, id) = columns(m.ptr, cap);
            let mut w = 0;
            for (i, &g) in gone.iter().enumerate() {
                if g {
                    removed.push(read_path(m.ptr, cap, ids, i));
                    continue;
                }
                if w != i {
                    ptr::copy_nonoverlapping(a.add(i), a.add(w), 1);
                    ptr::copy_nonoverlapping(me_col.add(i), me_col.add(w), 1);
                    if ids {
                        ptr::copy_nonoverlapping(id.add(i), id.add(w), 1);
                    }
                }
                w += 1;
            }
        }
        let old = block_layout(cap, ids);
        if left < 2 {
            // SAFETY: position 0 holds the one kept path (if any), moved out before the block,
            // allocated with `old`, is freed.
            let kept = unsafe {
                let p = (left == 1).then(|| read_path(m.ptr, cap, ids, 0));
                std::alloc::dealloc(m.ptr, old);
                p
            };
            return (removed, kept.map(Paths::one));
        }
        // SAFETY: the id column's first `left` entries are initialised (checked only with it).
        let keep_ids = ids && (0..left).any(|i| unsafe { *columns(m.ptr, cap).2.add(i) } != 0);
        // SAFETY: the block, allocated with `old`, holds the `2 <= left < n <= cap` kept paths
        // at positions `0..left`; the new entry below takes the new base.
        let base = unsafe { shrink_block(m.ptr, cap, ids, left, keep_ids) };
        (
            removed,
            Some(Paths::from_block(base, left, 0, keep_ids, false)),
        )
    }

    pub fn into_vec(self) -> Vec<Path> {
        let Some(m) = self.many() else {
            let me = ManuallyDrop::new(self);
            // SAFETY: the active member is `one`, read out once; `me` is not dropped.
            let mut p = unsafe { ptr::read(&*me.repr.one) };
            p.rank = 0;
            return vec![p];
        };
        let n = m.len as usize;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: each path of the block is moved out once; the block is then freed without
            // dropping them.
            v.push(unsafe { read_path(m.ptr, m.cap(), m.ids != 0, i) });
        }
        // SAFETY: every path was moved into `v`.
        unsafe { self.forget_paths() };
        v
    }

    pub fn from_vec(mut v: Vec<Path>) -> Option<Paths> {
        match v.len() {
            0 => None,
            1 => v.pop().map(Paths::one),
            _ => Some(Paths::block(v, 0)),
        }
    }

    /// Heap bytes of a block, spare room included (0 for an inline path).
    pub fn heap_bytes(&self) -> usize {
        self.many()
            .map_or(0, |m| block_layout(m.cap(), m.ids != 0).size())
    }

    /// Reorders the paths: `order[i]` is the index of the path that goes to position i (`order`
    /// is a permutation of the indices). In place, without allocating: selection runs on every
    /// change of a prefix with several paths.
    pub fn permute(&mut self, order: &[usize]) {
        if !self.is_many() {
            return;
        }
        let (attrs, meta, ids) = self.columns_mut();
        if order.len() != attrs.len() {
            return;
        }
        // Position i takes the path first at order[i]; one that already moved away (to a position
        // before i, by the swap that filled it) is found by following the permutation.
        for i in 0..order.len() {
            let mut j = order[i];
            while j < i {
                j = order[j];
            }
            attrs.swap(i, j);
            meta.swap(i, j);
            if !ids.is_empty() {
                ids.swap(i, j);
            }
        }
    }
}

impl Drop for Paths {
    fn drop(&mut self) {
        match self.many() {
            Some(m) => {
                let n = m.len as usize;
                // SAFETY: the block's first `n` attribute handles are initialised and owned here;
                // they are dropped once, then the block (allocated with this layout) is freed.
                unsafe {
                    let (a, _, _) = columns(m.ptr, m.cap());
                    ptr::drop_in_place(ptr::slice_from_raw_parts_mut(a, n));
                    if n > 0 {
                        std::alloc::dealloc(m.ptr, block_layout(m.cap(), m.ids != 0));
                    }
                }
            }
            // SAFETY: the active member is `one`, dropped once.
            None => unsafe { ManuallyDrop::drop(&mut self.repr.one) },
        }
    }
}

impl Clone for Paths {
    fn clone(&self) -> Self {
        let Some(m) = self.many() else {
            // SAFETY: the active member is `one` (its rank, the multipath count, is copied too).
            return Paths::inline(unsafe { (*self.repr.one).clone() });
        };
        let n = m.len as usize;
        let ids = m.ids != 0;
        let src = self.as_slice();
        let base = alloc_block(n, ids);
        // SAFETY: `base` is a new block of `n` paths with the same columns as this one; every
        // slot is written (the handles cloned, the rest copied) before the entry is built.
        unsafe {
            let (a, me, id) = columns(base, n);
            for (i, x) in src.attrs.iter().enumerate() {
                ptr::write(a.add(i), x.clone());
            }
            ptr::copy_nonoverlapping(src.meta.as_ptr(), me, n);
            if ids {
                ptr::copy_nonoverlapping(src.ids.as_ptr(), id, n);
            }
        }
        Paths::from_block(base, n, m.mp, ids, false)
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
    /// An empty block entry (a placeholder the table fills at once; nothing allocated).
    fn default() -> Self {
        Paths::from_block(alloc_block(0, false), 0, 0, false, false)
    }
}

/// Some of an entry's paths in order, read in place (what `&[Path]` was before the columns).
#[derive(Clone, Copy)]
pub struct PathSlice<'a> {
    attrs: &'a [AttrRef],
    meta: &'a [Meta],
    /// Empty when every path id is 0, else as long as `attrs`.
    ids: &'a [u32],
}

impl<'a> PathSlice<'a> {
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<PathRef<'a>> {
        let m = self.meta.get(i)?;
        Some(PathRef {
            // SAFETY: `attrs` and `meta` have the same length (every `PathSlice` is built so).
            attrs: unsafe { self.attrs.get_unchecked(i) },
            path_id: self.ids.get(i).copied().unwrap_or(0),
            peer: m.peer,
            flags: m.flags & !flags::INTERNAL,
            rank: m.rank,
            internal: m.flags & flags::INTERNAL,
        })
    }

    /// Whether path `i` has [`flags::PEER_AS`] (false when out of range).
    pub(crate) fn peer_as(&self, i: usize) -> bool {
        self.meta
            .get(i)
            .is_some_and(|m| m.flags & flags::PEER_AS != 0)
    }

    /// Whether every path has [`flags::NH_PEER`].
    pub(crate) fn all_nh_peer(&self) -> bool {
        self.meta.iter().all(|m| m.flags & flags::NH_PEER != 0)
    }

    /// The paths' peers, in order.
    pub(crate) fn peers(&self) -> impl ExactSizeIterator<Item = PeerId> + 'a {
        self.meta.iter().map(|m| m.peer)
    }

    /// Path `i`; panics when out of range (as indexing a slice does).
    pub fn at(&self, i: usize) -> PathRef<'a> {
        match self.get(i) {
            Some(p) => p,
            None => panic!("path index {i} out of range for {} paths", self.len()),
        }
    }

    /// The attribute sets of the paths, in order.
    pub fn attrs(&self) -> &'a [AttrRef] {
        self.attrs
    }

    pub fn first(&self) -> Option<PathRef<'a>> {
        self.get(0)
    }

    pub fn iter(&self) -> Iter<'a> {
        Iter {
            s: *self,
            front: 0,
            back: self.len(),
        }
    }

    /// The paths in `r` (panics when out of range, as slicing does).
    pub fn slice(&self, r: impl std::ops::RangeBounds<usize>) -> PathSlice<'a> {
        use std::ops::Bound;
        let start = match r.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match r.end_bound() {
            Bound::Included(&e) => e + 1,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len(),
        };
        PathSlice {
            attrs: &self.attrs[start..end],
            meta: &self.meta[start..end],
            ids: if self.ids.is_empty() {
                &[]
            } else {
                &self.ids[start..end]
            },
        }
    }
}

impl std::fmt::Debug for PathSlice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for PathSlice<'a> {
    type Item = PathRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a Paths {
    type Item = PathRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The paths of a [`PathSlice`] in order.
#[derive(Clone)]
pub struct Iter<'a> {
    s: PathSlice<'a>,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = PathRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<PathRef<'a>> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        self.s.get(self.front - 1)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }

    fn nth(&mut self, n: usize) -> Option<PathRef<'a>> {
        self.front = self.front.saturating_add(n).min(self.back);
        self.next()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.s.get(self.back)
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl std::iter::FusedIterator for Iter<'_> {}

/// The paths of a [`Paths`] in order, to change in place.
pub struct IterMut<'a> {
    attrs: std::slice::IterMut<'a, AttrRef>,
    meta: std::slice::IterMut<'a, Meta>,
    /// Empty when every path id is 0.
    ids: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for IterMut<'a> {
    type Item = PathMut<'a>;

    fn next(&mut self) -> Option<PathMut<'a>> {
        let attrs = self.attrs.next()?;
        let Meta { peer, flags, rank } = self.meta.next()?;
        Some(PathMut {
            attrs,
            flags,
            path_id: self.ids.next().copied().unwrap_or(0),
            peer: *peer,
            rank: *rank,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.attrs.size_hint()
    }
}

impl ExactSizeIterator for IterMut<'_> {}

#[cfg(test)]
mod paths_tests;

/// A prefix type usable as a table key.
pub trait PrefixKey: Copy + Eq + std::hash::Hash + Ord + std::fmt::Debug + Into<IpNet> {
    fn from_net(n: IpNet) -> Option<Self>;
    /// Bucket index in `0..BUCKETS`.
    fn bucket(&self) -> usize;
    /// True when `self` is `other` or more specific inside it.
    fn within(&self, other: &Self) -> bool;
    /// The bucket range holding every prefix inside `self`, when it is narrower than the table.
    fn bucket_span(&self) -> Option<(usize, usize)>;
    /// Where `self` probably sits in its bucket of `len` sorted prefixes (any answer is correct,
    /// a close one saves cache misses: see [`Table::prefetch`]).
    fn guess(&self, len: usize) -> usize {
        len / 2
    }
    /// A value ordered as `Self` is (address, then length), made of integers: the bucket search
    /// compares these (the derived order compares the address byte by byte).
    type Order: Ord + Copy;
    fn order(&self) -> Self::Order;
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
    /// Interpolated from the low 16 address bits (a bucket is the prefixes of one /16, in address
    /// order): on the real table 70% of prefixes sit within 6 entries of it.
    fn guess(&self, len: usize) -> usize {
        ((u32::from(self.addr()) & 0xffff) as usize * len) >> 16
    }
    type Order = u64;
    #[inline]
    fn order(&self) -> u64 {
        u64::from(u32::from(self.addr())) << 8 | u64::from(self.prefix_len())
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
    type Order = (u128, u8);
    #[inline]
    fn order(&self) -> (u128, u8) {
        (u128::from(self.addr()), self.prefix_len())
    }
}

/// Where a table's bytes go (see [`Table::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableMemory {
    /// The bucket array (one vector header per bucket).
    pub buckets: usize,
    /// The `(prefix, Paths)` entries, capacity included.
    pub entries: usize,
    /// Column blocks of prefixes with several paths (see [`Paths`]), and how many there are.
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
    nh_users: FxHashMap<NhKey, NhUsers>,
}

/// A next-hop as the next-hop index keys it: the address bits and the family. `IpAddr`'s derived
/// hash and equality read the address in 8-byte words, while a next-hop just taken from an
/// attribute set was stored as a tag byte and 4 address bytes: each look-up's load waited for
/// those stores to reach the cache instead of taking them from the store buffer (6% of the
/// one-peer import path, in `note_nh_use`). Built by matching on the address, the key is read
/// the way it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NhKey {
    bits: u128,
    v6: bool,
}

impl From<IpAddr> for NhKey {
    #[inline]
    fn from(a: IpAddr) -> NhKey {
        match a {
            IpAddr::V4(a) => NhKey {
                bits: u128::from(a.to_bits()),
                v6: false,
            },
            IpAddr::V6(a) => NhKey {
                bits: a.to_bits(),
                v6: true,
            },
        }
    }
}

impl NhKey {
    pub(crate) fn addr(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(std::net::Ipv6Addr::from_bits(self.bits))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::from_bits(self.bits as u32))
        }
    }
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
        find(b, k).ok().map(|i| &b[i].1)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut Paths> {
        let b = self.buckets.get_mut(k.bucket())?;
        match find(b, k) {
            Ok(i) => Some(&mut b[i].1),
            Err(_) => None,
        }
    }

    /// Asks the CPU to start loading what a look-up of `k` reads: the bucket's vector header, or
    /// with `entries` (once the header has arrived) the entries around where [`PrefixKey::guess`]
    /// puts `k`, which the search reads first (see [`find`]). A batch applied in order prefetches
    /// a few prefixes ahead, so the bucket misses of a feed that jumps across the address space
    /// overlap.
    #[inline]
    pub(crate) fn prefetch(&self, k: &K, entries: bool) {
        let Some(b) = self.buckets.get(k.bucket()) else {
            return;
        };
        if !entries {
            prefetch((b as *const Vec<(K, Paths)>).cast());
            return;
        }
        let (lo, hi) = window(b.len(), k);
        let (first, last) = (b.as_ptr().wrapping_add(lo), b.as_ptr().wrapping_add(hi));
        let mut line = (first as usize) & !63;
        while line < last as usize {
            prefetch(line as *const u8);
            line += 64;
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
        match find(b, &k) {
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
        let i = match find(b, &k) {
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
        let i = find(b, k).ok()?;
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

    /// Returns spare capacity to the allocator (after a full table has been loaded: bucket vectors
    /// grow by doubling while it arrives, path blocks by size class); returns the bytes released.
    /// A bucket keeps up to an eighth (and two entries) of spare room, so churn does not
    /// reallocate it at once; path blocks become exact.
    pub fn shrink(&mut self) -> usize {
        let mut released = 0;
        for b in &mut self.buckets {
            if b.capacity() > b.len() + b.len() / 8 + 2 {
                let cap = b.capacity();
                b.shrink_to_fit();
                released += (cap - b.capacity()) * std::mem::size_of::<(K, Paths)>();
            }
            for (_, e) in b.iter_mut() {
                released += e.shrink();
            }
        }
        for u in self.nh_users.values_mut() {
            let cap = u.buckets.capacity();
            u.buckets.sort_unstable();
            u.buckets.dedup();
            u.buckets.shrink_to_fit();
            released += (cap - u.buckets.capacity()) * std::mem::size_of::<u16>();
        }
        released
    }

    pub(crate) fn note_nh_use(&mut self, nh: IpAddr, k: K, peer: PeerId) {
        let b = k.bucket() as u16;
        let key = NhKey::from(nh);
        let u = self.nh_users.entry(key).or_insert_with(|| NhUsers {
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
            if let Some(u) = self.nh_users.get_mut(&key) {
                u.buckets = list;
            }
        }
    }

    pub(crate) fn note_nh_unuse(&mut self, nh: IpAddr, peer: PeerId) {
        let key = NhKey::from(nh);
        if let Some(u) = self.nh_users.get_mut(&key) {
            u.refs = u.refs.saturating_sub(1);
            if let Some(i) = u.peers.iter().position(|(p, _)| *p == peer) {
                u.peers[i].1 -= 1;
                if u.peers[i].1 == 0 {
                    u.peers.swap_remove(i);
                }
            }
            if u.refs == 0 {
                self.nh_users.remove(&key);
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
        let slot = std::mem::size_of::<(NhKey, NhUsers)>() + 1;
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
        self.nh_users
            .get(&NhKey::from(*nh))
            .map_or(&[], |u| &u.peers[..])
    }

    /// The next-hops in use, each with the peers that have paths through it and their path counts.
    pub(crate) fn nh_uses(&self) -> impl Iterator<Item = (IpAddr, &[(PeerId, u32)])> {
        self.nh_users.iter().map(|(k, u)| (k.addr(), &u.peers[..]))
    }

    /// Whether some path of this table goes through `nh`.
    pub(crate) fn uses_nh(&self, nh: &IpAddr) -> bool {
        self.nh_users.contains_key(&NhKey::from(*nh))
    }

    /// Prefixes with a path through `nh`.
    pub(crate) fn nh_prefixes(&mut self, nh: IpAddr) -> Vec<K> {
        let Some(u) = self.nh_users.get_mut(&NhKey::from(nh)) else {
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

/// Entries on either side of [`PrefixKey::guess`] that [`find`] looks at first and
/// [`Table::prefetch`] loads ahead: 13 entries, 5-6 cache lines. On the real table 70% of
/// look-ups end inside them (a binary search over the bucket from its middle missed the cache
/// about 3 times per look-up, with the middle prefetched; this about once).
const WINDOW: usize = 6;

/// The index range [`find`] searches first for `k` in a bucket of `len` entries.
#[inline]
fn window<K: PrefixKey>(len: usize, k: &K) -> (usize, usize) {
    let g = k.guess(len).min(len.saturating_sub(1));
    (g.saturating_sub(WINDOW), (g + WINDOW + 1).min(len))
}

/// Binary search of a bucket for `k` (as `binary_search_by`: the index, or where it would go),
/// starting in the window around [`PrefixKey::guess`]: when `k` falls inside the window's first
/// and last keys only the window is searched, else only the side beyond it.
#[inline]
fn find<K: PrefixKey>(b: &[(K, Paths)], k: &K) -> Result<usize, usize> {
    let (lo, hi) = window(b.len(), k);
    if hi <= lo {
        return Err(0);
    }
    let o = k.order();
    let search = |from: usize, to: usize| {
        b[from..to]
            .binary_search_by(|(x, _)| x.order().cmp(&o))
            .map(|i| i + from)
            .map_err(|i| i + from)
    };
    if o < b[lo].0.order() {
        search(0, lo)
    } else if b[hi - 1].0.order() < o {
        search(hi, b.len())
    } else {
        search(lo, hi)
    }
}

/// A prefetch hint for the cache line at `p`.
#[inline]
pub(crate) fn prefetch(p: *const u8) {
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

    /// Every order of `0..n` (`n!` of them), for checking a permutation against all.
    pub(super) fn perms(n: usize) -> Vec<Vec<usize>> {
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
            let mut by_rank: Vec<PathRef<'_>> = e.iter().collect();
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
        /// The 16-byte entry (one path inline or a tagged pointer to a block) behaves as a vector of paths
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
                            .map(|p| (p.peer, attrs.iter().position(|a| a == p.attrs).unwrap()))
                            .collect();
                        prop_assert_eq!(&got, &model);
                        prop_assert_eq!(x.len(), model.len());
                        prop_assert_eq!(x.multipath(), mp);
                        prop_assert_eq!(x.forwarding().len(), mp);
                        prop_assert_eq!(x.best().is_some(), mp > 0);
                        let mut by_rank: Vec<PathRef<'_>> = x.iter().collect();
                        by_rank.sort_by_key(|p| p.rank);
                        let order: Vec<PeerId> = by_rank.iter().map(|p| p.peer).collect();
                        if model.len() > 1 {
                            prop_assert_eq!(order, arrival.clone());
                        }
                        // A block is exact or has room up to its size class (see `capacity`).
                        let n = model.len();
                        let exact = if n > 1 { 12 * n } else { 0 };
                        prop_assert!(x.heap_bytes() == exact || x.heap_bytes() == 12 * capacity(n, true));
                    }
                }
                // Clones are deep: each still holds what the entry held when it was cloned.
                for (c, m, mp) in &clones {
                    let got: Vec<(PeerId, usize)> = c
                        .iter()
                        .map(|p| (p.peer, attrs.iter().position(|a| a == p.attrs).unwrap()))
                        .collect();
                    prop_assert_eq!(&got, m);
                    prop_assert_eq!(c.multipath(), *mp);
                }
            }
            let now: Vec<usize> = attrs.iter().map(|a| a.ref_count()).collect();
            prop_assert_eq!(now, base);
        }
    }

    proptest! {
        /// The bucket search starts in a window around an interpolated guess: whatever the spread
        /// of a bucket's prefixes (a few clustered /16s, so buckets hold hundreds of entries), a
        /// table filled in any order finds every prefix it holds, none it does not, and keeps
        /// each bucket in address order.
        #[test]
        fn the_guessed_window_search_finds_what_a_sorted_map_holds(
            nets in prop::collection::vec((0..3u32, 0..4096u32, 8..=32u8, 0..4u8), 1..600),
            absent in prop::collection::vec((0..3u32, any::<u16>(), 16..=32u8), 0..50),
        ) {
            let mut store = crate::rib::attrs::AttrStore::new();
            let a = store.intern(crate::rib::attrs::Attrs::default());
            // Dense at the bottom of the /16 or spread over it, by the low bits' scale.
            let net = |top: u32, low: u32, len: u8| {
                Ipv4Net::new(std::net::Ipv4Addr::from((10 << 24) | (top << 16) | low), len)
                    .unwrap()
                    .trunc()
            };
            let mut t: Table<Ipv4Net> = Table::default();
            let mut model = std::collections::BTreeSet::new();
            for &(top, low, len, scale) in &nets {
                let k = net(top, (low << (scale * 4)) & 0xffff, len.max(16));
                let (e, new) = t.slot(k);
                prop_assert_eq!(new, model.insert(k));
                if new {
                    *e = Paths::one(Path::new(0, 0, a.clone()));
                }
            }
            prop_assert_eq!(t.len(), model.len());
            for k in &model {
                prop_assert!(t.get(k).is_some(), "{} held", k);
                t.prefetch(k, false);
                t.prefetch(k, true);
            }
            for &(top, low, len) in &absent {
                let k = net(top, u32::from(low), len);
                prop_assert_eq!(t.get(&k).is_some(), model.contains(&k));
            }
            let walked: Vec<Ipv4Net> = t.iter().map(|(k, _)| *k).collect();
            prop_assert_eq!(walked, model.iter().copied().collect::<Vec<_>>());
            for k in &model {
                prop_assert!(t.take(k).is_some());
            }
            prop_assert!(t.is_empty());
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
