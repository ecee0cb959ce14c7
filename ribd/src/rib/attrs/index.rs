//! The attribute store's index ([`super::AttrStore`]): open addressing with linear probing over one
//! word per slot.
//!
//! A slot holds a stored set's address with 7 bits of its hash above the address bits, so:
//! - a probe reads a set only when its tag matches (1 in 128 of the other sets it passes);
//! - the slot a look-up starts at follows from the hash alone, so it can be prefetched once the set
//!   is converted, an UPDATE before it is interned ([`SetIndex::prefetch`]): the store of a full
//!   table from four peers has about 635k sets, and its look-up missed the cache once per UPDATE;
//! - growing reads each set's stored hash from its header, and prefetches the headers ahead
//!   (`std`'s table read them one miss at a time).
//!
//! A removed set leaves a `GONE` mark that probes pass over (unless the next slot is empty); the
//! marks are cleared when the table is rebuilt ([`SetIndex::rebuilt_len`] says at what size).

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use super::{AttrRef, Attrs, Header, drop_refs};
use crate::rib::table::prefetch;

const EMPTY: u64 = 0;
/// A removed set's slot: probes go on past it. (Blocks are aligned, so no set is at address 1.)
const GONE: u64 = 1;
/// Address bits of a slot. User-space addresses on Linux stay below 2^57 (below 2^47 without
/// 5-level paging, and 2^52 on arm64), so the bits above are free for the tag.
const ADDR_BITS: u32 = 57;
const ADDR: u64 = (1 << ADDR_BITS) - 1;
/// The smallest table allocated.
const MIN_SLOTS: usize = 16;

/// The tag of a hash, in a slot's position.
#[inline]
fn tag(hash: u32) -> u64 {
    u64::from(hash & 0x7f) << ADDR_BITS
}

/// A slot for the block at `p` with hash `hash`.
#[inline]
fn slot(p: NonNull<Header>, hash: u32) -> u64 {
    let addr = p.as_ptr() as u64;
    // Cannot happen on Linux (see `ADDR_BITS`); a tag over address bits would corrupt the table.
    if addr & !ADDR != 0 {
        std::process::abort();
    }
    addr | tag(hash)
}

/// Whether a slot holds a set.
#[inline]
fn live(s: u64) -> bool {
    s > GONE
}

/// The block a live slot holds.
#[inline]
fn block(s: u64) -> NonNull<Header> {
    // SAFETY: only called on live slots, which hold a block's (non-null) address.
    unsafe { NonNull::new_unchecked((s & ADDR) as *mut Header) }
}

/// The store's reference held by a live slot, lent without taking it.
#[inline]
fn view(s: u64) -> ManuallyDrop<AttrRef> {
    ManuallyDrop::new(AttrRef { p: block(s) })
}

/// The index: each live slot holds one counted reference to its set (the store's).
#[derive(Default)]
pub(super) struct SetIndex {
    /// A power of two in length (or empty, before the first set).
    slots: Box<[u64]>,
    /// Sets held.
    live: usize,
    /// Slots not empty (sets and `GONE` marks): a probe ends only at an empty slot.
    used: usize,
    /// Rebuilds so far.
    #[cfg(test)]
    rebuilds: usize,
}

impl SetIndex {
    /// The slot a probe for `hash` starts at (Fibonacci hashing: the product's top bits depend on
    /// every bit of the hash, whatever the table's size). The table is not empty.
    #[inline]
    fn home(&self, hash: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Asks for the line a look-up of `hash` starts at.
    #[inline]
    pub(super) fn prefetch(&self, hash: u32) {
        if !self.slots.is_empty() {
            prefetch(self.slots[self.home(hash)..].as_ptr().cast());
        }
    }

    /// The stored set equal to `a`, whose content hash is `hash`, lent (the caller clones it to
    /// keep it); or where to insert it ([`SetIndex::insert_at`]): the first slot of the probe
    /// without a set.
    pub(super) fn find(&self, hash: u32, a: &Attrs) -> Result<ManuallyDrop<AttrRef>, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let (t, mask) = (tag(hash), self.mask());
        let mut i = self.home(hash);
        let mut vacant = None;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return Err(vacant.unwrap_or(i));
            }
            if !live(s) {
                vacant = vacant.or(Some(i));
            } else if s & !ADDR == t {
                let r = view(s);
                if r.header().hash == hash && **r == *a {
                    return Ok(r);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The stored set equal to `a` (see [`SetIndex::find`]).
    #[cfg(test)]
    pub(super) fn get(&self, hash: u32, a: &Attrs) -> Option<ManuallyDrop<AttrRef>> {
        self.find(hash, a).ok()
    }

    /// Stores `a` (content hash `hash`, not in the index), taking over the reference it holds.
    #[cfg(test)]
    pub(super) fn insert(&mut self, hash: u32, a: AttrRef) {
        let at = if self.slots.is_empty() {
            0
        } else {
            self.vacant(hash)
        };
        self.insert_at(at, hash, a);
    }

    /// Stores `a` (content hash `hash`, not in the index) at `vacant`, where [`SetIndex::find`]
    /// found no equal set, taking over the reference `a` holds.
    pub(super) fn insert_at(&mut self, mut vacant: usize, hash: u32, a: AttrRef) {
        if (self.used + 1) * 4 > self.slots.len() * 3 {
            // Full at 3/4 (linear probing's probes grow fast above that).
            self.rebuild(self.rebuilt_len());
            vacant = self.vacant(hash);
        }
        let p = ManuallyDrop::new(a).p;
        if self.slots[vacant] == EMPTY {
            self.used += 1;
        }
        self.slots[vacant] = slot(p, hash);
        self.live += 1;
    }

    /// The first slot without a set from `hash`'s home on (the table has room).
    #[inline]
    fn vacant(&self, hash: u32) -> usize {
        let mask = self.mask();
        let mut i = self.home(hash);
        while live(self.slots[i]) {
            i = (i + 1) & mask;
        }
        i
    }

    /// Takes `a`'s slot out of the index and gives back the store's reference to it (`a` is held).
    pub(super) fn remove(&mut self, a: &AttrRef) -> Option<AttrRef> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = a.header().hash;
        let want = slot(a.p, hash);
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if s == want {
                break;
            }
            i = (i + 1) & mask;
        }
        // A slot before an empty one ends no probe that goes further: it can be empty too.
        // So can the marks just before it.
        if self.slots[(i + 1) & mask] == EMPTY {
            self.slots[i] = EMPTY;
            self.used -= 1;
            let mut j = i.wrapping_sub(1) & mask;
            while self.slots[j] == GONE {
                self.slots[j] = EMPTY;
                self.used -= 1;
                j = j.wrapping_sub(1) & mask;
            }
        } else {
            self.slots[i] = GONE;
        }
        self.live -= 1;
        Some(AttrRef { p: block(want) })
    }

    /// The size to rebuild a full table at: twice its size when sets fill more than half of what it
    /// may hold, else (`GONE` marks fill the rest) a size the sets fill at most 3/8 of, no larger
    /// than now. Either way a rebuild is followed by at least 3/8 of the table's slots in new sets
    /// before the next one: a table kept near full by sets coming and going was otherwise rebuilt
    /// at the same size every few insertions.
    fn rebuilt_len(&self) -> usize {
        let (need, len) = (self.live + 1, self.slots.len());
        if need * 8 > len * 3 {
            (len * 2).max(MIN_SLOTS)
        } else {
            slots_for(2 * need).min(len)
        }
    }

    /// Moves every set into a table of `len` slots (a power of two, enough for them all), which
    /// clears the `GONE` marks. Each set's header is read for its hash, prefetched 16 slots ahead.
    fn rebuild(&mut self, len: usize) {
        const AHEAD: usize = 16;
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; len].into_boxed_slice());
        self.used = self.live;
        #[cfg(test)]
        {
            self.rebuilds += 1;
        }
        for (i, &s) in old.iter().enumerate() {
            if let Some(&next) = old.get(i + AHEAD)
                && live(next)
            {
                prefetch(block(next).as_ptr().cast());
            }
            if live(s) {
                // SAFETY: a live slot's block lives while the store holds it.
                let hash = unsafe { block(s).as_ref() }.hash;
                let j = self.vacant(hash);
                self.slots[j] = (s & ADDR) | tag(hash);
            }
        }
    }

    /// Keeps only the sets `keep` says yes to; the others' references are dropped.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&AttrRef) -> bool) {
        let mut dropped = false;
        for s in self.slots.iter_mut() {
            if live(*s) && !keep(&view(*s)) {
                // SAFETY: the slot held the store's counted reference, gone with the slot.
                unsafe { drop_refs(block(*s), 1) };
                *s = GONE;
                self.live -= 1;
                dropped = true;
            }
        }
        if dropped {
            self.rebuild(slots_for(self.live));
        }
    }

    /// The sets held, lent.
    pub(super) fn iter(&self) -> impl Iterator<Item = ManuallyDrop<AttrRef>> + '_ {
        self.slots.iter().filter(|s| live(**s)).map(|s| view(*s))
    }

    /// Sets held.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Bytes of the table.
    pub(super) fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }
}

/// The table size for `n` sets: a power of two at most 3/4 full with them, at least [`MIN_SLOTS`].
fn slots_for(n: usize) -> usize {
    (n * 4 / 3 + 1).next_power_of_two().max(MIN_SLOTS)
}

impl Drop for SetIndex {
    fn drop(&mut self) {
        for &s in self.slots.iter() {
            if live(s) {
                // SAFETY: each live slot holds one counted reference, gone with the index.
                unsafe { drop_refs(block(s), 1) };
            }
        }
    }
}

impl std::fmt::Debug for SetIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetIndex")
            .field("sets", &self.live)
            .field("slots", &self.slots.len())
            .field("used", &self.used)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::attrs::AsPath;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        /// Keep the sets whose key has this bit.
        Retain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..48).prop_map(Op::Insert),
            4 => (0u32..48).prop_map(Op::Remove),
            1 => (0u32..3).prop_map(|b| Op::Retain(1 << b)),
        ]
    }

    fn set(k: u32) -> Attrs {
        Attrs::default().with_as_path(AsPath::sequence(vec![64500, k]))
    }

    /// Slot invariants: `live` and `used` count what the slots hold, and every set is reachable
    /// from its home without crossing an empty slot.
    fn check(ix: &SetIndex) {
        let live_n = ix.slots.iter().filter(|s| live(**s)).count();
        let used_n = ix.slots.iter().filter(|s| **s != EMPTY).count();
        assert_eq!((ix.live, ix.used), (live_n, used_n));
        if !ix.slots.is_empty() {
            assert!(ix.used * 4 <= ix.slots.len() * 3, "at most 3/4 full");
        }
        for (i, &s) in ix.slots.iter().enumerate() {
            if live(s) {
                // SAFETY: live slots hold live blocks.
                let hash = unsafe { block(s).as_ref() }.hash;
                assert_eq!(s & !ADDR, tag(hash));
                let mut j = ix.home(hash);
                while j != i {
                    assert_ne!(ix.slots[j], EMPTY, "slot {i} reachable from its home");
                    j = (j + 1) & ix.mask();
                }
            }
        }
    }

    proptest! {
        /// Against a map of the sets held, with hashes drawn from a few values so that probes run
        /// through long clusters of equal tags and removed slots: every held set is found (the same
        /// block), no other is, the counts hold, and dropping the index frees every block.
        #[test]
        fn the_index_finds_exactly_the_sets_it_holds(
            hashes in proptest::collection::vec(0u32..6, 48),
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let before = crate::rib::attrs::tests::live_blocks();
            {
                let mut ix = SetIndex::default();
                let mut held: std::collections::BTreeMap<u32, usize> = Default::default();
                // Spread the few values over the tag and the home bits alike.
                let hash = |k: u32| hashes[k as usize].wrapping_mul(0x8000_0041);
                for o in &ops {
                    match *o {
                        Op::Insert(k) => {
                            if let Err(vacant) = ix.find(hash(k), &set(k)) {
                                let a = AttrRef::share(set(k), hash(k));
                                held.insert(k, a.addr());
                                ix.insert_at(vacant, hash(k), a);
                            }
                        }
                        Op::Remove(k) => {
                            let found = ix.get(hash(k), &set(k)).map(|r| AttrRef::clone(&r));
                            prop_assert_eq!(found.is_some(), held.contains_key(&k));
                            if let Some(a) = found {
                                let gone = ix.remove(&a).expect("held");
                                prop_assert!(AttrRef::ptr_eq(&gone, &a));
                                held.remove(&k);
                            }
                        }
                        Op::Retain(bit) => {
                            ix.retain(|a| a.as_path().origin_as().unwrap() & bit != 0);
                            held.retain(|k, _| k & bit != 0);
                        }
                    }
                    check(&ix);
                    prop_assert_eq!(ix.len(), held.len());
                    for k in 0..48 {
                        let got = ix.get(hash(k), &set(k)).map(|r| r.addr());
                        prop_assert_eq!(got, held.get(&k).copied(), "set {} after {:?}", k, o);
                    }
                    prop_assert_eq!(ix.iter().count(), held.len());
                }
            }
            let after = crate::rib::attrs::tests::live_blocks();
            prop_assert_eq!(after, before, "no block leaked or freed twice");
        }
    }

    /// A table kept near 3/4 full (760 sets in 1,024 slots) while other sets come and go: each
    /// rebuild is followed by at least 3/8 of the table in insertions. Rebuilding at the size the
    /// sets need, as first written, rebuilt it 315 times here.
    #[test]
    fn sets_coming_and_going_in_a_nearly_full_table_rebuild_it_rarely() {
        let mut ix = SetIndex::default();
        let h = |k: u32| k.wrapping_mul(0x9E37_79B9);
        let held: Vec<AttrRef> = (0..760)
            .map(|k| {
                let a = AttrRef::share(set(k), h(k));
                ix.insert(h(k), AttrRef::clone(&a));
                a
            })
            .collect();
        let (len, before) = (ix.slots.len(), ix.rebuilds);
        assert_eq!(len, 1024);
        for k in 760..10_760 {
            let a = AttrRef::share(set(k), h(k));
            ix.insert(h(k), AttrRef::clone(&a));
            drop(ix.remove(&a));
        }
        check(&ix);
        let rebuilds = ix.rebuilds - before;
        assert!(
            rebuilds <= 10_000 / (len * 3 / 8) + 1,
            "{rebuilds} rebuilds"
        );
        for (k, a) in held.iter().enumerate() {
            assert!(
                ix.get(h(k as u32), &set(k as u32))
                    .is_some_and(|r| AttrRef::ptr_eq(&r, a))
            );
        }
    }

    #[test]
    fn a_table_of_removed_slots_is_rebuilt_at_the_size_its_sets_need() {
        let mut ix = SetIndex::default();
        let keep = AttrRef::share(set(0), 7);
        ix.insert(7, AttrRef::clone(&keep));
        // Insert and remove many sets: marks accumulate, and rebuilding clears them.
        for k in 1..5000 {
            let a = AttrRef::share(set(k), k.wrapping_mul(0x9E37_79B9));
            ix.insert(k.wrapping_mul(0x9E37_79B9), AttrRef::clone(&a));
            drop(ix.remove(&a));
            check(&ix);
        }
        assert_eq!(ix.len(), 1);
        assert!(ix.slots.len() <= 64, "{} slots for one set", ix.slots.len());
        assert!(
            ix.get(7, &set(0))
                .is_some_and(|r| AttrRef::ptr_eq(&r, &keep))
        );
    }
}
