//! The userspace DIR-24-8 builder/updater: the one place that decides what the `dir24`/`dir8` maps
//! hold.
//!
//! ```text
//!   insert/delete(prefix, pl_id) ──► shadow (value + depth per entry, groups, rule set)
//!                                        │ only entries whose answer changes
//!                                        ▼
//!                                    Dir24Sink::store24 / store8 (FibMaps: atomic u32 stores)
//! ```
//!
//! tbl24 has one entry per /24: a path-list id, or `DIR_ENTRY_TBL8 | group` when some prefix longer
//! than /24 lies under it. A tbl8 group holds the 256 addresses of that /24. The shadow keeps, per
//! entry, the length of the prefix that wrote it, so an insert never overwrites an entry owned by a
//! longer prefix and a delete restores exactly the entries the deleted prefix owned (to its parent's
//! answer). A new group is filled from its covering value before tbl24 points at it; a group whose
//! entries all come from /24-or-shorter prefixes again is unlinked (tbl24 gets the covering value
//! back) and quarantined: it is reused only after two more committed batches and a minimum time,
//! so a forwarder that read the old tbl24 entry just before the unlink never reads a recycled group.
//!
//! Bulk build: insert everything into a `Dir24` with a [`NullSink`], then [`Dir24::sync_all`] into
//! the maps (groups first, then tbl24).

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::abi::{DIR_ENTRY_TBL8, DIR8_ENTRIES, PL_NO_ROUTE};

const TBL24_ENTRIES: usize = 1 << 24;

/// Where the entries go. [`crate::maps::FibMaps`] stores them into the live maps.
pub trait Dir24Sink {
    fn store24(&mut self, idx: u32, value: u32);
    fn store8(&mut self, group: u32, j: u8, value: u32);
}

/// Discards writes: for building the shadow before one bulk copy.
pub struct NullSink;

impl Dir24Sink for NullSink {
    fn store24(&mut self, _: u32, _: u32) {}
    fn store8(&mut self, _: u32, _: u8, _: u32) {}
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

struct Group {
    idx24: u32,
    /// The value of the /24-or-shorter prefix covering the group's /24 (what tbl24 gets back when
    /// the group is unlinked).
    cover: u32,
    val: [u32; DIR8_ENTRIES],
    depth: [u8; DIR8_ENTRIES],
}

/// DIR-24-8 shadow and updater.
pub struct Dir24 {
    /// tbl24 as the maps hold it: a path-list id, or `DIR_ENTRY_TBL8 | group` when a group is
    /// linked (its covering value is then in the group). One array, not a value array plus a group
    /// array: 64 MiB less.
    e24: Vec<u32>,
    /// Length of the /24-or-shorter prefix owning each /24 (its covering value's depth).
    depth24: Vec<u8>,
    linked: usize,
    groups: Vec<Option<Box<Group>>>,
    free: Vec<u32>,
    quarantine: VecDeque<(u32, u64, Instant)>,
    max_groups: u32,
    rules: HashMap<(u32, u8), u32>,
    batch: u64,
    quarantine_time: Duration,
}

fn mask(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - len))
    }
}

impl Dir24 {
    /// An empty table (every address: no route) with room for `max_groups` tbl8 groups.
    pub fn new(max_groups: u32) -> Dir24 {
        Dir24 {
            e24: vec![PL_NO_ROUTE; TBL24_ENTRIES],
            depth24: vec![0; TBL24_ENTRIES],
            linked: 0,
            groups: Vec::new(),
            free: Vec::new(),
            quarantine: VecDeque::new(),
            max_groups,
            rules: HashMap::default(),
            batch: 0,
            quarantine_time: Duration::from_secs(1),
        }
    }

    /// Minimum time a freed group waits before reuse (besides two committed batches).
    pub fn set_quarantine_time(&mut self, d: Duration) {
        self.quarantine_time = d;
    }

    /// Number of prefixes held.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// tbl8 groups linked from tbl24 right now.
    pub fn groups_in_use(&self) -> usize {
        self.linked
    }

    /// Groups waiting in quarantine.
    pub fn groups_quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Longest-prefix answer of the shadow (what the maps hold once every write has landed).
    pub fn lookup(&self, addr: Ipv4Addr) -> u32 {
        let a = u32::from(addr);
        let i = (a >> 8) as usize;
        match self.group_at(i as u32) {
            Some(g) => self.group(g).val[(a & 0xff) as usize],
            None => self.e24[i],
        }
    }

    /// The tbl24 entry as the maps hold it.
    pub fn entry24(&self, idx: u32) -> u32 {
        self.e24[idx as usize]
    }

    fn group_at(&self, i: u32) -> Option<u32> {
        let e = self.e24[i as usize];
        (e & DIR_ENTRY_TBL8 != 0).then_some(e & !DIR_ENTRY_TBL8)
    }

    fn group(&self, g: u32) -> &Group {
        self.groups[g as usize]
            .as_deref()
            .expect("linked group exists")
    }

    fn group_mut(&mut self, g: u32) -> &mut Group {
        self.groups[g as usize]
            .as_deref_mut()
            .expect("linked group exists")
    }

    /// Inserts or replaces `addr/len → value` (a path-list id, reserved ids included).
    pub fn insert(
        &mut self,
        sink: &mut impl Dir24Sink,
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
        if len <= 24 {
            self.rules.insert((a, len), value);
            self.fill24(sink, a, len, |d| d <= len, value, len);
        } else {
            let i = a >> 8;
            let g = self.ensure_group(sink, i)?;
            self.rules.insert((a, len), value);
            self.fill8(sink, g, a, len, |d| d <= len, value, len);
        }
        Ok(())
    }

    /// Deletes `addr/len`; its addresses fall back to the next shorter covering prefix. Returns
    /// whether the prefix was present.
    pub fn delete(
        &mut self,
        sink: &mut impl Dir24Sink,
        addr: Ipv4Addr,
        len: u8,
    ) -> Result<bool, Dir24Error> {
        if len > 32 {
            return Err(Dir24Error::PrefixLen(len));
        }
        let a = mask(u32::from(addr), len);
        if self.rules.remove(&(a, len)).is_none() {
            return Ok(false);
        }
        let (pval, pdepth) = self.parent(a, len);
        if len <= 24 {
            self.fill24(sink, a, len, |d| d == len, pval, pdepth);
        } else {
            let i = a >> 8;
            let g = self
                .group_at(i)
                .expect("a prefix longer than /24 has a group");
            self.fill8(sink, g, a, len, |d| d == len, pval, pdepth);
            if self.group(g).depth.iter().all(|&d| d <= 24) {
                // Uniform again: tbl24 takes the covering value, the group waits in quarantine.
                let cover = self.group(g).cover;
                sink.store24(i, cover);
                self.e24[i as usize] = cover;
                self.linked -= 1;
                self.quarantine.push_back((g, self.batch, Instant::now()));
            }
        }
        Ok(true)
    }

    /// Marks the end of a batch; groups freed at least two batches and `quarantine_time` ago
    /// become reusable.
    pub fn commit(&mut self) {
        self.batch += 1;
        while let Some(&(g, b, t)) = self.quarantine.front() {
            if b + 2 <= self.batch && t.elapsed() >= self.quarantine_time {
                self.quarantine.pop_front();
                self.groups[g as usize] = None;
                self.free.push(g);
            } else {
                break;
            }
        }
    }

    /// Writes the whole table into `sink`: every linked group, then every tbl24 entry. Used after
    /// a bulk build into a fresh map set.
    pub fn sync_all(&self, sink: &mut impl Dir24Sink) {
        for (g, grp) in self.groups.iter().enumerate() {
            let g = g as u32;
            let Some(grp) = grp.as_deref() else { continue };
            if self.group_at(grp.idx24) != Some(g) {
                continue; // quarantined, not linked
            }
            for (j, &v) in grp.val.iter().enumerate() {
                sink.store8(g, j as u8, v);
            }
        }
        for i in 0..TBL24_ENTRIES as u32 {
            sink.store24(i, self.entry24(i));
        }
    }

    /// Longest rule strictly shorter than `len` covering `a`: (value, depth), or no route.
    fn parent(&self, a: u32, len: u8) -> (u32, u8) {
        for l in (0..len).rev() {
            if let Some(&v) = self.rules.get(&(mask(a, l), l)) {
                return (v, l);
            }
        }
        (PL_NO_ROUTE, 0)
    }

    fn fill24(
        &mut self,
        sink: &mut impl Dir24Sink,
        a: u32,
        len: u8,
        owned: impl Fn(u8) -> bool,
        value: u32,
        depth: u8,
    ) {
        let start = (a >> 8) as usize;
        let n = 1usize << (24 - len);
        for i in start..start + n {
            if !owned(self.depth24[i]) {
                continue;
            }
            self.depth24[i] = depth;
            match self.group_at(i as u32) {
                Some(g) => {
                    let grp = self.group_mut(g);
                    grp.cover = value;
                    for j in 0..DIR8_ENTRIES {
                        if owned(grp.depth[j]) {
                            grp.val[j] = value;
                            grp.depth[j] = depth;
                            sink.store8(g, j as u8, value);
                        }
                    }
                }
                None => {
                    self.e24[i] = value;
                    sink.store24(i as u32, value)
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill8(
        &mut self,
        sink: &mut impl Dir24Sink,
        g: u32,
        a: u32,
        len: u8,
        owned: impl Fn(u8) -> bool,
        value: u32,
        depth: u8,
    ) {
        let start = (a & 0xff) as usize;
        let n = 1usize << (32 - len);
        let grp = self.group_mut(g);
        for j in start..start + n {
            if owned(grp.depth[j]) {
                grp.val[j] = value;
                grp.depth[j] = depth;
                sink.store8(g, j as u8, value);
            }
        }
    }

    /// The group under /24 `i`, allocated, filled from the covering value and linked if absent.
    fn ensure_group(&mut self, sink: &mut impl Dir24Sink, i: u32) -> Result<u32, Dir24Error> {
        if let Some(g) = self.group_at(i) {
            return Ok(g);
        }
        let g = match self.free.pop() {
            Some(g) => g,
            None if (self.groups.len() as u32) < self.max_groups => {
                self.groups.push(None);
                self.groups.len() as u32 - 1
            }
            None => return Err(Dir24Error::GroupsExhausted(self.max_groups)),
        };
        // No group is linked here, so the entry is the covering value.
        let (v, d) = (self.e24[i as usize], self.depth24[i as usize]);
        self.groups[g as usize] = Some(Box::new(Group {
            idx24: i,
            cover: v,
            val: [v; DIR8_ENTRIES],
            depth: [d; DIR8_ENTRIES],
        }));
        for j in 0..DIR8_ENTRIES {
            sink.store8(g, j as u8, v);
        }
        // Linked only after every entry of the group is stored (Release stores in the sink).
        sink.store24(i, DIR_ENTRY_TBL8 | g);
        self.e24[i as usize] = DIR_ENTRY_TBL8 | g;
        self.linked += 1;
        debug_assert_eq!(self.group(g).idx24, i);
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the table the sink would hold, to check the shadow and the writes agree.
    struct MemSink {
        t24: Vec<u32>,
        t8: HashMap<u32, [u32; 256]>,
    }

    impl Dir24Sink for MemSink {
        fn store24(&mut self, idx: u32, value: u32) {
            self.t24[idx as usize] = value;
        }
        fn store8(&mut self, group: u32, j: u8, value: u32) {
            self.t8.entry(group).or_insert([0; 256])[j as usize] = value;
        }
    }

    impl MemSink {
        fn new() -> MemSink {
            MemSink {
                t24: vec![0; TBL24_ENTRIES],
                t8: HashMap::default(),
            }
        }
        fn lookup(&self, a: Ipv4Addr) -> u32 {
            let a = u32::from(a);
            let e = self.t24[(a >> 8) as usize];
            if e & DIR_ENTRY_TBL8 != 0 {
                self.t8[&(e & !DIR_ENTRY_TBL8)][(a & 0xff) as usize]
            } else {
                e
            }
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn longer_prefixes_survive_shorter_inserts_and_deletes_restore_the_parent() {
        let mut d = Dir24::new(16);
        let mut s = MemSink::new();
        d.insert(&mut s, ip("10.1.2.128"), 25, 30).unwrap();
        d.insert(&mut s, ip("10.1.2.0"), 24, 20).unwrap();
        d.insert(&mut s, ip("10.0.0.0"), 8, 10).unwrap();
        d.insert(&mut s, ip("10.1.2.7"), 32, 40).unwrap();
        for (a, v) in [
            ("10.1.2.7", 40),
            ("10.1.2.200", 30),
            ("10.1.2.1", 20),
            ("10.9.9.9", 10),
            ("11.0.0.1", 0),
        ] {
            assert_eq!(d.lookup(ip(a)), v, "{a}");
            assert_eq!(s.lookup(ip(a)), v, "{a} in the written table");
        }
        d.delete(&mut s, ip("10.1.2.0"), 24).unwrap();
        assert_eq!(s.lookup(ip("10.1.2.1")), 10);
        assert_eq!(s.lookup(ip("10.1.2.7")), 40);
        d.delete(&mut s, ip("10.1.2.7"), 32).unwrap();
        d.delete(&mut s, ip("10.1.2.128"), 25).unwrap();
        assert_eq!(d.groups_in_use(), 0, "a uniform group is unlinked");
        assert_eq!(d.groups_quarantined(), 1);
        assert_eq!(s.t24[0x0a0102], 10, "tbl24 holds the covering value again");
        assert_eq!(s.lookup(ip("10.1.2.200")), 10);
    }

    #[test]
    fn a_freed_group_is_reused_only_after_quarantine() {
        let mut d = Dir24::new(1);
        d.set_quarantine_time(Duration::ZERO);
        let mut s = MemSink::new();
        d.insert(&mut s, ip("192.0.2.1"), 32, 20).unwrap();
        d.delete(&mut s, ip("192.0.2.1"), 32).unwrap();
        assert_eq!(
            d.insert(&mut s, ip("198.51.100.1"), 32, 21),
            Err(Dir24Error::GroupsExhausted(1))
        );
        d.commit();
        assert!(
            d.insert(&mut s, ip("198.51.100.1"), 32, 21).is_err(),
            "one batch is not enough"
        );
        d.commit();
        d.insert(&mut s, ip("198.51.100.1"), 32, 21).unwrap();
        assert_eq!(s.lookup(ip("198.51.100.1")), 21);
        assert_eq!(s.lookup(ip("198.51.100.2")), 0);
    }

    /// Random inserts and deletes of nested prefixes in a few /24s (groups linked, unlinked and
    /// reused): the shadow, the written table and a plain longest-prefix match always agree.
    #[test]
    fn random_nested_prefixes_agree_with_longest_prefix_match() {
        let mut d = Dir24::new(64);
        d.set_quarantine_time(Duration::ZERO);
        let mut s = MemSink::new();
        let mut rules: HashMap<(u32, u8), u32> = HashMap::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = u32::from(ip("10.20.0.0"));
        for step in 0..4000 {
            let r = next();
            let len = [14u8, 16, 22, 23, 24, 24, 25, 26, 28, 30, 32][(r % 11) as usize];
            let addr = mask(base | ((r >> 8) as u32 & 0x381), len);
            let value = 1 + (r >> 40) as u32 % 1000;
            if r >> 63 == 0 {
                d.insert(&mut s, addr.into(), len, value).unwrap();
                rules.insert((addr, len), value);
            } else {
                let had = rules.remove(&(addr, len)).is_some();
                assert_eq!(d.delete(&mut s, addr.into(), len).unwrap(), had);
            }
            if step % 7 == 0 {
                d.commit();
            }
            for a in (base - 256..base + 0x500).step_by(3) {
                let want = (0..=32u8)
                    .rev()
                    .find_map(|l| rules.get(&(mask(a, l), l)).copied())
                    .unwrap_or(PL_NO_ROUTE);
                assert_eq!(
                    d.lookup(a.into()),
                    want,
                    "shadow, step {step}, {}",
                    Ipv4Addr::from(a)
                );
                assert_eq!(
                    s.lookup(a.into()),
                    want,
                    "maps, step {step}, {}",
                    Ipv4Addr::from(a)
                );
                assert_eq!(d.entry24(a >> 8), s.t24[(a >> 8) as usize]);
            }
        }
    }

    #[test]
    fn a_new_group_starts_from_the_covering_value() {
        let mut d = Dir24::new(4);
        let mut s = MemSink::new();
        d.insert(&mut s, ip("203.0.113.0"), 24, 50).unwrap();
        d.insert(&mut s, ip("203.0.113.64"), 26, 51).unwrap();
        assert_eq!(s.lookup(ip("203.0.113.1")), 50);
        assert_eq!(s.lookup(ip("203.0.113.65")), 51);
        assert_eq!(s.lookup(ip("203.0.113.255")), 50);
    }
}
