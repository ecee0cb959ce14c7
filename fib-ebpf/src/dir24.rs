//! The DIR-24-8 builder, the one place that decides what the `dir24`/`dir8` maps hold (fib-sync
//! drives it, the fib-ebpf tests and benchmarks too). It keeps no userspace copy of the arrays:
//! its user is their only writer, so it reads tbl24 back from them, and which entries a prefix
//! owns follows from the ordered table of prefixes itself.
//!
//! ```text
//!   Rules4: 65,536 buckets (address >> 16), each a sorted Vec of packed u64
//!           (low 16 address bits, length, path-list id): 8 bytes per prefix, ordered by
//!           (address, length), so a prefix's more-specifics are one contiguous run
//!        │ write(prefix, value) / erase(prefix): every /24 (tbl24) or tbl8 entry of the prefix
//!        │ that no longer prefix of the table covers, skipping the more-specifics' ranges
//!        ▼
//!   Dir24Sink::load24 / store24 / store8 / fill24 (FibMaps: mmapped arrays, atomic stores)
//!
//!   load_sorted(routes sorted by (address, length)): one sweep into arrays that hold no route
//! ```
//!
//! The table is updated before the arrays (a batch plans every prefix first), so a paint sees the
//! batch's final table: each store writes the entry's final value, and an entry owned by a prefix
//! the batch has not painted yet keeps its old value until that prefix's own paint. A deleted
//! prefix's entries get its parent's value (the longest shorter prefix covering it). A /24 with a
//! prefix longer than /24 under it links a tbl8 group, filled from the /24's value before tbl24
//! points at it; the group remembers its /24 and its covering value (what tbl24 gets back when
//! the last long prefix goes and the group is unlinked into quarantine: reusable only after two
//! more committed batches and a minimum time, so a forwarder that read the old tbl24 entry just
//! before the unlink never reads a recycled group). [`Dir24::insert`] and [`Dir24::delete`] are
//! batches of one route.
//!
//! Memory: 8 bytes per prefix plus 1.5 MiB of bucket headers and 8 bytes per tbl8 group, where the
//! previous shadow kept 80 MiB (a u32 tbl24 copy and a u8 depth per /24) plus a hashed rule set.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::abi::{DIR_ENTRY_TBL8, DIR8_ENTRIES, PL_NO_ROUTE};

/// Where the arrays are: the live maps ([`crate::maps::FibMaps`], through the mmapped arrays) or
/// memory (tests). The builder keeps no copy of tbl24: it reads it back from here.
pub trait Dir24Sink {
    /// tbl24 entry `idx` (a path-list id, or `DIR_ENTRY_TBL8 | group`).
    fn load24(&self, idx: u32) -> u32;
    fn store24(&mut self, idx: u32, value: u32);
    fn store8(&mut self, group: u32, j: u8, value: u32);
    /// Stores `value` into the tbl24 entries `from..to` that hold something else.
    fn fill24(&mut self, from: u32, to: u32, value: u32) {
        for i in from..to {
            if self.load24(i) != value {
                self.store24(i, value);
            }
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Dir24Error {
    #[error("all {0} tbl8 groups are in use or in quarantine")]
    GroupsExhausted(u32),
    #[error("prefix length {0} is longer than 32")]
    PrefixLen(u8),
    #[error("path-list id {0:#x} collides with the tbl8 marker bit")]
    Value(u32),
}

const BUCKETS: usize = 1 << 16;

fn mask(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - len))
    }
}

/// Last address of `addr/len`.
fn last(addr: u32, len: u8) -> u32 {
    addr | u32::MAX.checked_shr(len.into()).unwrap_or(0)
}

/// A bucket entry: (low 16 address bits, length) as the sort key in the high half, the value
/// in the low half.
fn pack(addr: u32, len: u8, v: u32) -> u64 {
    u64::from(key(addr, len)) << 32 | u64::from(v)
}

fn key(addr: u32, len: u8) -> u32 {
    (addr & 0xffff) << 8 | u32::from(len)
}

fn unpack(bucket: usize, e: u64) -> (u32, u8, u32) {
    let k = (e >> 32) as u32;
    ((bucket as u32) << 16 | k >> 8, k as u8, e as u32)
}

/// IPv4 prefixes → path-list ids, ordered by (address, length).
pub struct Rules4 {
    buckets: Box<[Vec<u64>]>,
    len: usize,
}

impl Default for Rules4 {
    fn default() -> Self {
        Rules4 {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            len: 0,
        }
    }
}

impl Rules4 {
    /// From routes sorted by (address, length) without duplicates; buckets sized exactly.
    pub fn from_sorted(routes: &[(u32, u8, u32)]) -> Rules4 {
        debug_assert!(routes.is_sorted_by_key(|r| (r.0, r.1)));
        let mut r = Rules4::default();
        let mut i = 0;
        while i < routes.len() {
            let b = (routes[i].0 >> 16) as usize;
            let n = routes[i..].partition_point(|x| (x.0 >> 16) as usize == b);
            let v: Vec<u64> = routes[i..i + n]
                .iter()
                .map(|&(a, l, v)| pack(a, l, v))
                .collect();
            r.buckets[b] = v;
            i += n;
        }
        r.len = routes.len();
        r
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn find(b: &[u64], addr: u32, len: u8) -> Result<usize, usize> {
        let k = key(addr, len);
        b.binary_search_by_key(&k, |e| (e >> 32) as u32)
    }

    /// The value of exactly `addr/len` (`addr` masked).
    pub fn get(&self, addr: u32, len: u8) -> Option<u32> {
        let b = &self.buckets[(addr >> 16) as usize];
        Self::find(b, addr, len).ok().map(|i| b[i] as u32)
    }

    /// Inserts or replaces; returns the old value.
    pub fn insert(&mut self, addr: u32, len: u8, v: u32) -> Option<u32> {
        let b = &mut self.buckets[(addr >> 16) as usize];
        match Self::find(b, addr, len) {
            Ok(i) => {
                let old = b[i] as u32;
                b[i] = pack(addr, len, v);
                Some(old)
            }
            Err(i) => {
                if b.len() == b.capacity() {
                    // Grow by a quarter, not double: these vectors are most of the memory.
                    b.reserve_exact((b.len() / 4).max(2));
                }
                b.insert(i, pack(addr, len, v));
                self.len += 1;
                None
            }
        }
    }

    /// Removes; returns the old value.
    pub fn remove(&mut self, addr: u32, len: u8) -> Option<u32> {
        let b = &mut self.buckets[(addr >> 16) as usize];
        let i = Self::find(b, addr, len).ok()?;
        let old = b.remove(i) as u32;
        self.len -= 1;
        if b.is_empty() {
            *b = Vec::new();
        } else if b.capacity() > 8 && b.capacity() >= 2 * b.len() {
            b.shrink_to(b.len() + b.len() / 4);
        }
        Some(old)
    }

    /// Every prefix with its value, in (address, length) order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u8, u32)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .flat_map(|(b, v)| v.iter().map(move |&e| unpack(b, e)))
    }

    /// The prefixes whose address lies in `lo..=hi`, in (address, length) order.
    pub fn range(&self, lo: u32, hi: u32) -> impl Iterator<Item = (u32, u8, u32)> + '_ {
        let (b0, b1) = ((lo >> 16) as usize, (hi >> 16) as usize);
        (b0..=b1).flat_map(move |b| {
            let v = &self.buckets[b];
            let from = if b == b0 {
                v.partition_point(|&e| ((e >> 32) as u32) < key(lo, 0))
            } else {
                0
            };
            v[from..]
                .iter()
                .map(move |&e| unpack(b, e))
                .take_while(move |r| r.0 <= hi)
        })
    }

    /// The longest prefix shorter than `len` covering `addr`: its value, or no route.
    pub fn parent(&self, addr: u32, len: u8) -> u32 {
        (0..len)
            .rev()
            .find_map(|l| self.get(mask(addr, l), l))
            .unwrap_or(PL_NO_ROUTE)
    }

    /// Heap bytes held (bucket headers and entries).
    pub fn heap_bytes(&self) -> usize {
        self.buckets.len() * size_of::<Vec<u64>>()
            + self.buckets.iter().map(|b| b.capacity() * 8).sum::<usize>()
    }
}

/// No group: the `idx24` of a free or quarantined group slot.
const UNLINKED: u32 = u32::MAX;

/// The IPv4 FIB: the prefixes, and the tbl8 groups they use in the maps.
pub struct Dir24 {
    /// The prefixes. A batch updates them before it paints ([`Dir24::write`], [`Dir24::erase`]).
    pub rules: Rules4,
    /// Per group number: the /24 it is linked from (`UNLINKED` when free or quarantined) and
    /// the value of the /24-or-shorter prefix covering that /24.
    idx24: Vec<u32>,
    cover: Vec<u32>,
    linked: usize,
    free: Vec<u32>,
    quarantine: VecDeque<(u32, u64, Instant)>,
    max_groups: u32,
    batch: u64,
    quarantine_time: Duration,
}

impl Dir24 {
    /// No prefixes, over arrays that hold no route; `max_groups` tbl8 groups, freed groups
    /// reusable after two more batches and `quarantine_time`.
    pub fn new(max_groups: u32, quarantine_time: Duration) -> Dir24 {
        Dir24 {
            rules: Rules4::default(),
            idx24: Vec::new(),
            cover: Vec::new(),
            linked: 0,
            free: Vec::new(),
            quarantine: VecDeque::new(),
            max_groups,
            batch: 0,
            quarantine_time,
        }
    }

    /// After a bulk load (the table follows): the groups the maps link, numbered 0.. as given:
    /// (/24, covering value).
    pub fn loaded(&mut self, groups: &[(u32, u32)]) {
        self.idx24 = groups.iter().map(|g| g.0).collect();
        self.cover = groups.iter().map(|g| g.1).collect();
        self.linked = groups.len();
        self.free.clear();
        self.quarantine.clear();
    }

    /// After a restart: the groups linked (number → (/24, cover)) and the numbers below
    /// `n` that are not, which go to quarantine (the dead process may just have unlinked them).
    pub fn adopted(&mut self, linked: &[(u32, u32, u32)], n: u32, now: Instant) {
        self.idx24 = vec![UNLINKED; n as usize];
        self.cover = vec![PL_NO_ROUTE; n as usize];
        for &(g, idx, cover) in linked {
            self.idx24[g as usize] = idx;
            self.cover[g as usize] = cover;
        }
        self.linked = linked.len();
        self.free.clear();
        self.quarantine = (0..n)
            .filter(|&g| self.idx24[g as usize] == UNLINKED)
            .map(|g| (g, self.batch, now))
            .collect();
    }

    /// Records group `g` as linked from /24 `idx` (a restart links it itself).
    pub fn link(&mut self, g: u32, idx: u32, cover: u32) {
        self.idx24[g as usize] = idx;
        self.cover[g as usize] = cover;
        self.linked += 1;
    }

    /// A free group number (used by a restart).
    pub fn alloc_group(&mut self) -> Result<u32, Dir24Error> {
        match self.free.pop() {
            Some(g) => Ok(g),
            None if (self.idx24.len() as u32) < self.max_groups => {
                self.idx24.push(UNLINKED);
                self.cover.push(PL_NO_ROUTE);
                Ok(self.idx24.len() as u32 - 1)
            }
            None => Err(Dir24Error::GroupsExhausted(self.max_groups)),
        }
    }

    /// Group numbers ever handed out (linked, quarantined or free).
    pub fn group_slots(&self) -> usize {
        self.idx24.len()
    }

    pub fn groups_in_use(&self) -> usize {
        self.linked
    }

    pub fn groups_quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.rules.heap_bytes()
            + (self.idx24.capacity() + self.cover.capacity() + self.free.capacity()) * 4
            + self.quarantine.capacity() * size_of::<(u32, u64, Instant)>()
    }

    /// Marks the end of a batch; groups unlinked at least two batches and the quarantine time
    /// ago become reusable.
    pub fn commit(&mut self) {
        self.batch += 1;
        while let Some(&(g, b, t)) = self.quarantine.front() {
            if b + 2 <= self.batch && t.elapsed() >= self.quarantine_time {
                self.quarantine.pop_front();
                self.free.push(g);
            } else {
                break;
            }
        }
    }

    /// Writes `addr/len`'s value `v` (already in `rules`) into the arrays: the entries it owns,
    /// i.e. those no longer prefix of `rules` covers.
    pub fn write(
        &mut self,
        t: &mut impl Dir24Sink,
        addr: u32,
        len: u8,
        v: u32,
    ) -> Result<(), Dir24Error> {
        debug_assert_eq!(self.rules.get(addr, len), Some(v));
        if len <= 24 {
            self.paint24(t, addr, len, v);
        } else {
            let g = self.ensure_group(t, addr >> 8)?;
            paint8(&self.rules, t, g, addr, len, v);
        }
        Ok(())
    }

    /// Gives the entries `addr/len` (already gone from `rules`) owned to its parent; unlinks a
    /// group no longer prefix needs.
    pub fn erase(&mut self, t: &mut impl Dir24Sink, addr: u32, len: u8) {
        if len <= 24 {
            let pv = self.rules.parent(addr, len);
            self.paint24(t, addr, len, pv);
            return;
        }
        let j = addr >> 8;
        let e = t.load24(j);
        if e & DIR_ENTRY_TBL8 == 0 {
            // Unlinked by the erase of another long prefix of this /24 in the same batch: tbl24
            // holds the covering value, every entry's final answer.
            return;
        }
        let g = e & !DIR_ENTRY_TBL8;
        // The parent: the longest shorter long prefix in this /24 covering `addr`, else the cover.
        let mut pv = self.cover[g as usize];
        let mut any_long = false;
        for (ra, rl, rv) in self.rules.range(j << 8, last(j << 8, 24)) {
            if rl > 24 {
                any_long = true;
                if rl < len && mask(addr, rl) == ra {
                    pv = rv; // ascending lengths at one address: the last one found is longest
                }
            }
        }
        paint8(&self.rules, t, g, addr, len, pv);
        if !any_long {
            // Uniform again: tbl24 takes the covering value, the group waits in quarantine.
            t.store24(j, self.cover[g as usize]);
            self.idx24[g as usize] = UNLINKED;
            self.linked -= 1;
            self.quarantine.push_back((g, self.batch, Instant::now()));
        }
    }

    /// One route as a batch of its own: `addr/len → value` into the table, then painted.
    pub fn insert(
        &mut self,
        t: &mut impl Dir24Sink,
        addr: Ipv4Addr,
        len: u8,
        value: u32,
    ) -> Result<(), Dir24Error> {
        if len > 32 {
            return Err(Dir24Error::PrefixLen(len));
        }
        if value & DIR_ENTRY_TBL8 != 0 {
            return Err(Dir24Error::Value(value));
        }
        let a = mask(u32::from(addr), len);
        let old = self.rules.insert(a, len, value);
        let r = self.write(t, a, len, value);
        if r.is_err() {
            // No group for it: the table goes back to what the arrays answer.
            match old {
                Some(v) => self.rules.insert(a, len, v),
                None => self.rules.remove(a, len),
            };
        }
        r
    }

    /// One deletion as a batch of its own; returns whether `addr/len` was present.
    pub fn delete(
        &mut self,
        t: &mut impl Dir24Sink,
        addr: Ipv4Addr,
        len: u8,
    ) -> Result<bool, Dir24Error> {
        if len > 32 {
            return Err(Dir24Error::PrefixLen(len));
        }
        let a = mask(u32::from(addr), len);
        if self.rules.remove(a, len).is_none() {
            return Ok(false);
        }
        self.erase(t, a, len);
        Ok(true)
    }

    /// Paints `v` into the /24s of `addr/len` (len ≤ 24) that no longer /24-or-shorter prefix
    /// covers; in a /24 with a group, into the entries no long prefix covers.
    fn paint24(&mut self, t: &mut impl Dir24Sink, addr: u32, len: u8, v: u32) {
        let (rules, cover) = (&self.rules, &mut self.cover);
        let first = addr >> 8;
        let end = u64::from(first) + (1u64 << (24 - len));
        let mut cursor = u64::from(first);
        // Addresses below this lie inside a more-specific already stepped over.
        let mut skip_end = 0u64;
        for (ra, rl, _) in rules.range(addr, last(addr, len)) {
            if rl <= len || u64::from(ra) < skip_end {
                continue;
            }
            let j = u64::from(ra >> 8);
            for i in cursor..j {
                paint_slot(rules, cover, t, i as u32, v, true);
            }
            if rl <= 24 {
                cursor = j + (1u64 << (24 - rl));
                skip_end = u64::from(ra) + (1u64 << (32 - rl));
            } else {
                // The first long prefix of /24 j: its group keeps what they cover.
                paint_slot(rules, cover, t, j as u32, v, false);
                cursor = j + 1;
                skip_end = (j + 1) << 8;
            }
        }
        for i in cursor..end {
            paint_slot(rules, cover, t, i as u32, v, true);
        }
    }

    /// The group under /24 `i`, allocated, filled from tbl24's value and linked if absent.
    fn ensure_group(&mut self, t: &mut impl Dir24Sink, i: u32) -> Result<u32, Dir24Error> {
        let e = t.load24(i);
        if e & DIR_ENTRY_TBL8 != 0 {
            return Ok(e & !DIR_ENTRY_TBL8);
        }
        let g = self.alloc_group()?;
        for j in 0..DIR8_ENTRIES {
            t.store8(g, j as u8, e);
        }
        // Linked only after every entry of the group is stored (Release stores).
        t.store24(i, DIR_ENTRY_TBL8 | g);
        self.idx24[g as usize] = i;
        self.cover[g as usize] = e;
        self.linked += 1;
        Ok(g)
    }
}

/// Paints `v` as /24 `i`'s covering value: tbl24 itself, or the group's entries that no long
/// prefix covers (`all`: there is none in the table, so every entry).
fn paint_slot(
    rules: &Rules4,
    cover: &mut [u32],
    t: &mut impl Dir24Sink,
    i: u32,
    v: u32,
    all: bool,
) {
    let e = t.load24(i);
    if e & DIR_ENTRY_TBL8 == 0 {
        t.store24(i, v);
        return;
    }
    let g = e & !DIR_ENTRY_TBL8;
    cover[g as usize] = v;
    if all {
        // The group's long prefixes leave later in this batch: every entry ends up `v`.
        for j in 0..DIR8_ENTRIES {
            t.store8(g, j as u8, v);
        }
    } else {
        paint8(rules, t, g, i << 8, 24, v);
    }
}

/// Paints `v` into the entries of group `g` under `addr/len` (len ≥ 24) that no longer prefix
/// covers.
fn paint8(rules: &Rules4, t: &mut impl Dir24Sink, g: u32, addr: u32, len: u8, v: u32) {
    let first = addr & 0xff;
    let end = first + (1u32 << (32 - len));
    let mut cursor = first;
    let mut skip_end = 0u32;
    for (ra, rl, _) in rules.range(addr, last(addr, len)) {
        let j = ra & 0xff;
        if rl <= len || j < skip_end {
            continue;
        }
        for k in cursor..j {
            t.store8(g, k as u8, v);
        }
        cursor = j + (1u32 << (32 - rl));
        skip_end = cursor;
    }
    for k in cursor..end {
        t.store8(g, k as u8, v);
    }
}

/// The expected DIR-24-8 image of sorted IPv4 routes, built in memory: tbl24 values (covering
/// values where a group is needed) and, per /24 with a long prefix in address order, its
/// 256 entries. `each_group(/24, cover, entries)` receives the groups in /24 order.
pub fn image(
    routes: &[(u32, u8, u32)],
    mut each_group: impl FnMut(u32, u32, &[u32; DIR8_ENTRIES]) -> Result<(), Dir24Error>,
) -> Result<Vec<u32>, Dir24Error> {
    debug_assert!(routes.is_sorted_by_key(|r| (r.0, r.1)));
    let mut val24 = vec![PL_NO_ROUTE; 1 << 24];
    let mut table = [PL_NO_ROUTE; DIR8_ENTRIES];
    // The group being painted: its /24.
    let mut open: Option<u32> = None;
    for &(addr, len, v) in routes {
        if len <= 24 {
            // A prefix covering a /24 sorts before every longer prefix inside it, so no group of
            // the range is open or will be painted from a stale value.
            let start = (addr >> 8) as usize;
            val24[start..start + (1usize << (24 - len))].fill(v);
            continue;
        }
        let idx = addr >> 8;
        if open != Some(idx) {
            if let Some(o) = open {
                each_group(o, val24[o as usize], &table)?;
            }
            table = [val24[idx as usize]; DIR8_ENTRIES];
            open = Some(idx);
        }
        let start = (addr & 0xff) as usize;
        table[start..start + (1usize << (32 - len))].fill(v);
    }
    if let Some(o) = open {
        each_group(o, val24[o as usize], &table)?;
    }
    Ok(val24)
}

/// Writes `routes` (sorted by address, then length; no duplicates) into maps that hold no
/// routes, through `sink`, in one sweep in address order: each tbl24 entry is written once with
/// its final value, and only where the map holds something else (a fresh map is all
/// `PL_NO_ROUTE`, so unrouted space costs a read); a /24 with longer prefixes gets the next
/// group number, filled completely before tbl24 links it. Returns each group's /24 and covering
/// value, by group number (for [`Dir24::loaded`]).
///
/// A covering prefix sorts before what it covers, so a stack of the open /24-or-shorter
/// prefixes (innermost on top) gives the value of the entries between two routes; the long
/// prefixes of a /24 are contiguous and come after every shorter prefix covering it.
pub fn load_sorted(
    routes: &[(u32, u8, u32)],
    sink: &mut impl Dir24Sink,
    max_groups: u32,
) -> Result<Vec<(u32, u32)>, Dir24Error> {
    let mut groups: Vec<(u32, u32)> = Vec::new();
    // Open prefixes: (first tbl24 entry past them, value).
    let mut open: Vec<(u32, u32)> = Vec::with_capacity(33);
    // tbl24 entries below this are written.
    let mut cursor = 0u32;
    let mut i = 0;
    while i < routes.len() {
        let (addr, len, v) = routes[i];
        let idx = addr >> 8;
        advance(&mut open, &mut cursor, idx, sink);
        if len <= 24 {
            open.push((idx + (1 << (24 - len)), v));
            i += 1;
            continue;
        }
        // The long prefixes of /24 `idx`, over its covering value.
        let cover = open.last().map_or(PL_NO_ROUTE, |o| o.1);
        let mut table = [cover; DIR8_ENTRIES];
        while let Some(&(a, l, v)) = routes.get(i).filter(|r| r.0 >> 8 == idx) {
            let start = (a & 0xff) as usize;
            table[start..start + (1usize << (32 - l))].fill(v);
            i += 1;
        }
        let g = groups.len() as u32;
        if g >= max_groups {
            return Err(Dir24Error::GroupsExhausted(max_groups));
        }
        for (j, &v) in table.iter().enumerate() {
            sink.store8(g, j as u8, v);
        }
        // The group is complete before its /24 links it.
        sink.store24(idx, DIR_ENTRY_TBL8 | g);
        groups.push((idx, cover));
        cursor = idx + 1;
    }
    advance(&mut open, &mut cursor, 1 << 24, sink);
    Ok(groups)
}

/// Writes the tbl24 entries from `cursor` up to `to` with the value of the innermost open prefix
/// covering each (none: `PL_NO_ROUTE`), and closes the prefixes that end by `to`.
fn advance(open: &mut Vec<(u32, u32)>, cursor: &mut u32, to: u32, sink: &mut impl Dir24Sink) {
    while *cursor < to {
        while open.last().is_some_and(|o| o.0 <= *cursor) {
            open.pop();
        }
        let (end, v) = match open.last() {
            Some(&(end, v)) => (end.min(to), v),
            None => (to, PL_NO_ROUTE),
        };
        sink.fill24(*cursor, end, v);
        *cursor = end;
    }
    while open.last().is_some_and(|o| o.0 <= to) {
        open.pop();
    }
}

/// Reads a tbl8 entry (for [`lookup`]).
pub trait Load8 {
    fn load8(&self, group: u32, j: u8) -> u32;
}

/// The answer the arrays give for `addr` (what the forwarder reads).
pub fn lookup(t: &(impl Dir24Sink + Load8), addr: Ipv4Addr) -> u32 {
    let a = u32::from(addr);
    let e = t.load24(a >> 8);
    if e & DIR_ENTRY_TBL8 != 0 {
        t.load8(e & !DIR_ENTRY_TBL8, a as u8)
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The arrays in memory, as the maps would hold them.
    struct Mem {
        t24: Vec<u32>,
        t8: HashMap<u32, [u32; 256]>,
        stores24: u64,
        stores8: u64,
    }

    impl Dir24Sink for Mem {
        fn load24(&self, idx: u32) -> u32 {
            self.t24[idx as usize]
        }
        fn store24(&mut self, idx: u32, value: u32) {
            self.stores24 += 1;
            self.t24[idx as usize] = value;
        }
        fn store8(&mut self, group: u32, j: u8, value: u32) {
            self.stores8 += 1;
            self.t8.entry(group).or_insert([0; 256])[j as usize] = value;
        }
    }

    impl Mem {
        fn new() -> Mem {
            Mem {
                t24: vec![0; 1 << 24],
                t8: HashMap::new(),
                stores24: 0,
                stores8: 0,
            }
        }
        fn lookup(&self, a: u32) -> u32 {
            let e = self.t24[(a >> 8) as usize];
            if e & DIR_ENTRY_TBL8 != 0 {
                self.t8[&(e & !DIR_ENTRY_TBL8)][(a & 0xff) as usize]
            } else {
                e
            }
        }
    }

    impl Load8 for Mem {
        fn load8(&self, group: u32, j: u8) -> u32 {
            self.t8[&group][j as usize]
        }
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    fn put(d: &mut Dir24, m: &mut Mem, a: u32, l: u8, v: u32) {
        d.rules.insert(mask(a, l), l, v);
        d.write(m, mask(a, l), l, v).unwrap();
    }

    fn del(d: &mut Dir24, m: &mut Mem, a: u32, l: u8) -> bool {
        let had = d.rules.remove(mask(a, l), l).is_some();
        if had {
            d.erase(m, mask(a, l), l);
        }
        had
    }

    #[test]
    fn rules_are_ordered_by_address_then_length_across_buckets() {
        let mut r = Rules4::default();
        for (a, l, v) in [
            ("10.1.0.0", 16, 3),
            ("10.0.0.0", 8, 1),
            ("10.0.0.0", 16, 2),
            ("10.1.2.0", 24, 4),
            ("11.0.0.0", 8, 5),
        ] {
            assert_eq!(r.insert(ip(a), l, v), None);
        }
        assert_eq!(r.insert(ip("10.1.0.0"), 16, 30), Some(3));
        let all: Vec<_> = r.iter().map(|x| x.2).collect();
        assert_eq!(all, [1, 2, 30, 4, 5]);
        let sub: Vec<_> = r
            .range(ip("10.0.0.1"), last(ip("10.0.0.0"), 8))
            .map(|x| x.2)
            .collect();
        assert_eq!(sub, [30, 4], "a range starts at its first address");
        assert_eq!(r.parent(ip("10.1.2.0"), 24), 30);
        assert_eq!(r.parent(ip("10.2.0.0"), 16), 1);
        assert_eq!(r.parent(ip("12.0.0.0"), 8), PL_NO_ROUTE);
        assert_eq!(r.remove(ip("10.0.0.0"), 8), Some(1));
        assert_eq!(r.len(), 4);
        let back = Rules4::from_sorted(&r.iter().collect::<Vec<_>>());
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            r.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn longer_prefixes_survive_shorter_writes_and_erases_restore_the_parent() {
        let mut d = Dir24::new(16, Duration::ZERO);
        let mut m = Mem::new();
        put(&mut d, &mut m, ip("10.1.2.128"), 25, 30);
        put(&mut d, &mut m, ip("10.1.2.0"), 24, 20);
        put(&mut d, &mut m, ip("10.0.0.0"), 8, 10);
        put(&mut d, &mut m, ip("10.1.2.7"), 32, 40);
        for (a, v) in [
            ("10.1.2.7", 40),
            ("10.1.2.200", 30),
            ("10.1.2.1", 20),
            ("10.9.9.9", 10),
            ("11.0.0.1", 0),
        ] {
            assert_eq!(m.lookup(ip(a)), v, "{a}");
        }
        del(&mut d, &mut m, ip("10.1.2.0"), 24);
        assert_eq!(m.lookup(ip("10.1.2.1")), 10);
        assert_eq!(m.lookup(ip("10.1.2.7")), 40);
        del(&mut d, &mut m, ip("10.1.2.7"), 32);
        del(&mut d, &mut m, ip("10.1.2.128"), 25);
        assert_eq!(d.groups_in_use(), 0, "a uniform group is unlinked");
        assert_eq!(d.groups_quarantined(), 1);
        assert_eq!(m.t24[0x0a0102], 10, "tbl24 holds the covering value again");
        assert_eq!(m.lookup(ip("10.1.2.200")), 10);
    }

    #[test]
    fn a_freed_group_is_reused_only_after_quarantine() {
        let mut d = Dir24::new(1, Duration::ZERO);
        let mut m = Mem::new();
        put(&mut d, &mut m, ip("192.0.2.1"), 32, 20);
        del(&mut d, &mut m, ip("192.0.2.1"), 32);
        d.rules.insert(ip("198.51.100.1"), 32, 21);
        assert!(d.write(&mut m, ip("198.51.100.1"), 32, 21).is_err());
        d.commit();
        assert!(
            d.write(&mut m, ip("198.51.100.1"), 32, 21).is_err(),
            "one batch is not enough"
        );
        d.commit();
        d.write(&mut m, ip("198.51.100.1"), 32, 21).unwrap();
        assert_eq!(m.lookup(ip("198.51.100.1")), 21);
        assert_eq!(m.lookup(ip("198.51.100.2")), 0);
    }

    /// Random batches of inserts, updates and deletes of nested prefixes in a few /24s (groups
    /// linked, unlinked and reused, a default route), planned into the table first and then
    /// written inserts before deletes as a batch does: after each batch the arrays equal a
    /// longest-prefix match and each group's covering value is right.
    #[test]
    fn random_batches_agree_with_longest_prefix_match() {
        let mut d = Dir24::new(64, Duration::ZERO);
        let mut m = Mem::new();
        let mut rules: HashMap<(u32, u8), u32> = HashMap::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = ip("10.20.0.0");
        let lpm = |rules: &HashMap<(u32, u8), u32>, a: u32| {
            (0..=32u8)
                .rev()
                .find_map(|l| rules.get(&(mask(a, l), l)).copied())
                .unwrap_or(PL_NO_ROUTE)
        };
        for batch in 0..600 {
            let n = 1 + next() % 12;
            let mut ops: Vec<(u32, u8, bool)> = Vec::new();
            for _ in 0..n {
                let r = next();
                let len = [0u8, 14, 16, 22, 23, 24, 24, 25, 26, 28, 30, 32][(r % 12) as usize];
                let addr = mask(base | ((r >> 8) as u32 & 0x381), len);
                if ops.iter().any(|o| (o.0, o.1) == (addr, len)) {
                    continue;
                }
                if r >> 63 == 0 {
                    let v = 16 + (r >> 40) as u32 % 1000;
                    d.rules.insert(addr, len, v);
                    rules.insert((addr, len), v);
                    ops.push((addr, len, true));
                } else if d.rules.remove(addr, len).is_some() {
                    rules.remove(&(addr, len));
                    ops.push((addr, len, false));
                }
            }
            for &(a, l, ins) in &ops {
                if ins {
                    let v = d.rules.get(a, l).unwrap();
                    d.write(&mut m, a, l, v).unwrap();
                }
            }
            for &(a, l, ins) in &ops {
                if !ins {
                    d.erase(&mut m, a, l);
                }
            }
            d.commit();
            for a in (base - 256..base + 0x500).step_by(3) {
                assert_eq!(
                    m.lookup(a),
                    lpm(&rules, a),
                    "batch {batch}, {}",
                    std::net::Ipv4Addr::from(a)
                );
            }
            for (g, &i) in d.idx24.iter().enumerate() {
                if i != UNLINKED {
                    assert_eq!(m.t24[i as usize], DIR_ENTRY_TBL8 | g as u32);
                    let want = lpm(
                        &rules
                            .iter()
                            .filter(|r| r.0.1 <= 24)
                            .map(|(k, v)| (*k, *v))
                            .collect(),
                        i << 8,
                    );
                    assert_eq!(d.cover[g], want, "cover of group {g}");
                }
            }
        }
    }

    /// The reference image: tbl24 values and the groups as (/24, cover, entries).
    #[allow(clippy::type_complexity)]
    fn image_and_groups(routes: &[(u32, u8, u32)]) -> (Vec<u32>, Vec<(u32, u32, [u32; 256])>) {
        let mut groups = Vec::new();
        let v24 = image(routes, |i, c, t| {
            groups.push((i, c, *t));
            Ok(())
        })
        .unwrap();
        (v24, groups)
    }

    #[test]
    fn the_image_equals_incremental_writes() {
        let mut d = Dir24::new(64, Duration::ZERO);
        let mut m = Mem::new();
        let routes = [
            (ip("10.0.0.0"), 8, 16),
            (ip("10.1.0.0"), 16, 17),
            (ip("10.1.2.0"), 25, 18),
            (ip("10.1.2.64"), 26, 19),
            (ip("10.3.0.0"), 24, 20),
            (ip("10.3.0.8"), 29, 21),
        ];
        for &(a, l, v) in &routes {
            put(&mut d, &mut m, a, l, v);
        }
        let (v24, groups) = image_and_groups(&routes);
        assert_eq!(groups.len(), d.groups_in_use());
        for (i, c, t) in groups {
            let e = m.t24[i as usize];
            assert_eq!(v24[i as usize], c);
            assert_eq!(&m.t8[&(e & !DIR_ENTRY_TBL8)], &t);
        }
        for i in 0..1u32 << 24 {
            if m.t24[i as usize] & DIR_ENTRY_TBL8 == 0 {
                assert_eq!(m.t24[i as usize], v24[i as usize]);
            }
        }
    }

    /// The one-route batches the fib-ebpf tests use: a new group starts from the covering value,
    /// a failed insert (no group left) leaves the table as the arrays answer.
    #[test]
    fn single_route_inserts_and_deletes() {
        let mut d = Dir24::new(1, Duration::ZERO);
        let mut m = Mem::new();
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        d.insert(&mut m, a("203.0.113.0"), 24, 50).unwrap();
        d.insert(&mut m, a("203.0.113.64"), 26, 51).unwrap();
        assert_eq!(m.lookup(ip("203.0.113.1")), 50);
        assert_eq!(m.lookup(ip("203.0.113.65")), 51);
        assert_eq!(m.lookup(ip("203.0.113.255")), 50);
        assert_eq!(
            d.insert(&mut m, a("198.51.100.1"), 32, 52),
            Err(Dir24Error::GroupsExhausted(1))
        );
        assert_eq!(d.rules.get(ip("198.51.100.1"), 32), None);
        assert_eq!(
            d.insert(&mut m, a("10.0.0.0"), 33, 5),
            Err(Dir24Error::PrefixLen(33))
        );
        assert_eq!(
            d.insert(&mut m, a("10.0.0.0"), 8, DIR_ENTRY_TBL8 | 1),
            Err(Dir24Error::Value(DIR_ENTRY_TBL8 | 1))
        );
        assert!(d.delete(&mut m, a("203.0.113.64"), 26).unwrap());
        assert!(!d.delete(&mut m, a("203.0.113.64"), 26).unwrap());
        assert_eq!(m.lookup(ip("203.0.113.65")), 50);
        assert_eq!(lookup(&m, a("203.0.113.65")), 50);
    }

    /// Nested random prefixes over a few /8s (lengths 0..=32, a default route), sorted and
    /// deduplicated as the bulk path hands them over.
    fn routes(seed: u64, n: usize) -> Vec<(u32, u8, u32)> {
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let lens = [0u8, 8, 12, 16, 19, 22, 23, 24, 24, 24, 25, 26, 28, 30, 32];
        let mut v: Vec<(u32, u8, u32)> = (0..n)
            .map(|_| {
                let r = next();
                let l = lens[(r % lens.len() as u64) as usize];
                // Three /8s, dense inside two /16s of the first so prefixes nest.
                let a = [0x0a14_0000u32, 0x2d00_0000, 0xc000_0000][(r >> 8) as usize % 3]
                    | (r >> 16) as u32 & 0x0001_ffff;
                (mask(a, l), l, 16 + (r >> 40) as u32 % 1000)
            })
            .collect();
        v.sort_by_key(|r| (r.0, r.1));
        v.dedup_by_key(|r| (r.0, r.1));
        v
    }

    fn lpm(routes: &[(u32, u8, u32)], a: u32) -> u32 {
        routes
            .iter()
            .filter(|r| mask(a, r.1) == r.0)
            .max_by_key(|r| r.1)
            .map_or(PL_NO_ROUTE, |r| r.2)
    }

    /// Into a fresh (zeroed) tbl24 the sweep writes each routed entry once and no unrouted one
    /// (the old image copy wrote all 2^24), every group is complete before its link, and the
    /// answers equal a longest-prefix match and the reference image.
    #[test]
    fn a_fresh_load_writes_only_routed_entries_and_answers_longest_match() {
        for (seed, n, default) in [(1u64, 400, false), (7, 2000, false), (11, 300, true)] {
            let mut rs = routes(0x9E37_79B9_7F4A_7C15 ^ seed, n);
            rs.retain(|r| default || r.1 > 0);
            let mut m = Mem::new();
            let groups = load_sorted(&rs, &mut m, 4096).unwrap();
            let (v24, want) = image_and_groups(&rs);
            assert_eq!(groups.len(), want.len());
            for (g, (i, c, t)) in want.iter().enumerate() {
                assert_eq!(groups[g], (*i, *c), "group {g}: /24 and cover");
                assert_eq!(m.t24[*i as usize], DIR_ENTRY_TBL8 | g as u32);
                assert_eq!(&m.t8[&(g as u32)], t);
            }
            let routed = (0..1usize << 24)
                .filter(|&i| m.t24[i] & DIR_ENTRY_TBL8 == 0)
                .inspect(|&i| assert_eq!(m.t24[i], v24[i], "tbl24 {i:#x}"))
                .filter(|&i| m.t24[i] != PL_NO_ROUTE)
                .count() as u64;
            assert_eq!(m.stores24, routed + groups.len() as u64, "seed {seed}");
            assert_eq!(m.stores8, groups.len() as u64 * DIR8_ENTRIES as u64);
            if !default {
                assert!(m.stores24 < 1 << 23, "unrouted space is not written");
            }
            let mut x = seed;
            for k in 0..20_000u32 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let a = if k % 2 == 0 {
                    let r = rs[(x >> 33) as usize % rs.len()];
                    r.0 | (x as u32 & u32::MAX.checked_shr(u32::from(r.1)).unwrap_or(0))
                } else {
                    (x >> 32) as u32
                };
                assert_eq!(m.lookup(a), lpm(&rs, a), "{}", std::net::Ipv4Addr::from(a));
            }
        }
    }

    /// tbl24 entries that hold something else (not links) are overwritten: the sweep compares
    /// with what the map holds, it does not assume zeros.
    #[test]
    fn a_load_over_stale_tbl24_values_still_answers_longest_match() {
        let rs = routes(0x5151, 1500);
        let mut fresh = Mem::new();
        load_sorted(&rs, &mut fresh, 4096).unwrap();
        let mut m = Mem::new();
        for (i, e) in m.t24.iter_mut().enumerate() {
            *e = if i % 3 == 0 { 0 } else { 1 + (i as u32 % 7) };
        }
        load_sorted(&rs, &mut m, 4096).unwrap();
        assert!(m.t24 == fresh.t24);
        assert_eq!(m.t8, fresh.t8);
    }

    #[test]
    fn running_out_of_groups_is_an_error() {
        let rs: Vec<(u32, u8, u32)> = (0..3u32)
            .map(|i| (0x0a00_0001 + (i << 8), 32, 20))
            .collect();
        assert!(load_sorted(&rs, &mut Mem::new(), 2).is_err());
        assert_eq!(load_sorted(&rs, &mut Mem::new(), 3).unwrap().len(), 3);
    }
}
