//! The IPv6 prefixes fib-sync holds (prefix → path-list id), packed: 20 bytes per prefix where the
//! hashed map it replaces took 25-byte slots at a load factor between 7/16 and 7/8 (≈ 55 bytes per
//! prefix on the 240k-prefix table).
//!
//! ```text
//!   prefix a/len ──► key: a | 1 << (127 - len)     (one u128; the lowest set bit marks the length,
//!                     │                              since every bit below the length is zero)
//!                     ├─► bucket: top bits of a hash of the key (2^k buckets, ≤ 64 prefixes on
//!                     │            average each; doubled by splitting each bucket in two)
//!                     └─► sorted Vec of (key as four big-endian u32 words, id): 20 bytes, binary searched
//!   /128 (no bit left for the marker) ──► a small hashed side map (host routes are rare in BGP)
//! ```
//!
//! The kernel's LPM trie does the longest-prefix matching; fib-sync needs only exact lookups,
//! insert/replace/remove (each returning the old id), a walk over every prefix (check, restart,
//! `FibSync::table`) and a bulk build from the sorted routes of an initial load. The buckets hash
//! the key because IPv6 routes crowd into a few top-level blocks (2001::/16, 2a00::/12, ...):
//! address-ordered buckets would be a few huge vectors. Walks are therefore not in address order.
//! Bucket vectors grow by a quarter, not double (they are the memory), and are sized exactly by a
//! bulk build.

use ipnet::Ipv6Net;

use crate::types::PrefixMap;

/// Fewest buckets (an empty table costs 64 vector headers).
const MIN_BITS: u32 = 6;
/// Average prefixes per bucket above which the bucket count doubles.
const PER_BUCKET: usize = 64;

/// A bucket entry: the key's four 32-bit words, most significant first (so array order is
/// numeric order), and the path-list id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: [u32; 4],
    id: u32,
}

fn words(k: u128) -> [u32; 4] {
    [
        (k >> 96) as u32,
        (k >> 64) as u32,
        (k >> 32) as u32,
        k as u32,
    ]
}

fn from_words(w: [u32; 4]) -> u128 {
    u128::from(w[0]) << 96 | u128::from(w[1]) << 64 | u128::from(w[2]) << 32 | u128::from(w[3])
}

/// The key of `addr/len` (`len` < 128, `addr` masked to `len`).
fn key(addr: u128, len: u8) -> u128 {
    debug_assert!(len < 128);
    addr | 1u128 << (127 - len)
}

/// (address, length) of a key.
fn unkey(k: u128) -> (u128, u8) {
    let tz = k.trailing_zeros();
    (k & !(1u128 << tz), (127 - tz) as u8)
}

fn hash(k: u128) -> u64 {
    let mut z = (k as u64)
        ^ ((k >> 64) as u64)
            .rotate_left(29)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn net(addr: u128, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(addr.into(), len)
}

/// IPv6 prefixes → path-list ids.
pub(crate) struct Table6 {
    /// 2^bits sorted vectors; a key lives in bucket `hash(key) >> (64 - bits)`.
    buckets: Vec<Vec<Entry>>,
    bits: u32,
    /// /128 routes by address.
    hosts: PrefixMap<u128, u32>,
    len: usize,
}

impl Default for Table6 {
    fn default() -> Self {
        Table6 {
            buckets: (0..1usize << MIN_BITS).map(|_| Vec::new()).collect(),
            bits: MIN_BITS,
            hosts: PrefixMap::default(),
            len: 0,
        }
    }
}

/// Bucket bits for `n` prefixes.
fn bits_for(n: usize) -> u32 {
    let mut bits = MIN_BITS;
    while n > PER_BUCKET << bits {
        bits += 1;
    }
    bits
}

impl Table6 {
    /// From routes (address, length, id) with no prefix twice; buckets sized exactly.
    pub fn from_routes(routes: &[(u128, u8, u32)]) -> Table6 {
        let hosts = routes.iter().filter(|r| r.1 >= 128).count();
        let bits = bits_for(routes.len() - hosts);
        let mut counts = vec![0usize; 1 << bits];
        for &(a, l, _) in routes.iter().filter(|r| r.1 < 128) {
            counts[(hash(key(a, l)) >> (64 - bits)) as usize] += 1;
        }
        let mut t = Table6 {
            buckets: counts.iter().map(|&c| Vec::with_capacity(c)).collect(),
            bits,
            hosts: PrefixMap::default(),
            len: routes.len(),
        };
        t.hosts.reserve(hosts);
        for &(a, l, id) in routes {
            if l >= 128 {
                t.hosts.insert(a, id);
            } else {
                let k = key(a, l);
                t.buckets[(hash(k) >> (64 - bits)) as usize].push(Entry { key: words(k), id });
            }
        }
        for b in &mut t.buckets {
            b.sort_unstable_by_key(|e| e.key);
        }
        debug_assert!(
            t.buckets
                .iter()
                .all(|b| b.windows(2).all(|w| w[0].key < w[1].key))
        );
        t
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, k: u128) -> usize {
        (hash(k) >> (64 - self.bits)) as usize
    }

    /// The id of exactly `n` (its address masked to its length).
    pub fn get(&self, n: &Ipv6Net) -> Option<u32> {
        let (a, l) = (u128::from(n.network()), n.prefix_len());
        if l >= 128 {
            return self.hosts.get(&a).copied();
        }
        let k = key(a, l);
        let b = &self.buckets[self.slot(k)];
        let w = words(k);
        b.binary_search_by(|e| e.key.cmp(&w)).ok().map(|i| b[i].id)
    }

    /// Inserts or replaces; returns the old id.
    pub fn insert(&mut self, n: &Ipv6Net, id: u32) -> Option<u32> {
        let (a, l) = (u128::from(n.network()), n.prefix_len());
        if l >= 128 {
            let old = self.hosts.insert(a, id);
            self.len += usize::from(old.is_none());
            return old;
        }
        let k = key(a, l);
        let s = self.slot(k);
        let b = &mut self.buckets[s];
        let w = words(k);
        match b.binary_search_by(|e| e.key.cmp(&w)) {
            Ok(i) => Some(std::mem::replace(&mut b[i].id, id)),
            Err(i) => {
                if b.len() == b.capacity() {
                    // A quarter more, not double: these vectors are the table's memory.
                    b.reserve_exact((b.len() / 4).max(2));
                }
                b.insert(i, Entry { key: w, id });
                self.len += 1;
                if self.len - self.hosts.len() > PER_BUCKET << self.bits {
                    self.split();
                }
                None
            }
        }
    }

    /// Removes; returns the old id.
    pub fn remove(&mut self, n: &Ipv6Net) -> Option<u32> {
        let (a, l) = (u128::from(n.network()), n.prefix_len());
        if l >= 128 {
            let old = self.hosts.remove(&a);
            self.len -= usize::from(old.is_some());
            return old;
        }
        let k = key(a, l);
        let s = self.slot(k);
        let b = &mut self.buckets[s];
        let w = words(k);
        let i = b.binary_search_by(|e| e.key.cmp(&w)).ok()?;
        let old = b.remove(i).id;
        self.len -= 1;
        if b.is_empty() {
            *b = Vec::new();
        } else if b.capacity() > 8 && b.capacity() >= 2 * b.len() {
            b.shrink_to(b.len() + b.len() / 4);
        }
        Some(old)
    }

    /// Doubles the buckets: bucket i's keys go to 2i or 2i+1 by the next hash bit (a stable
    /// partition, so both halves stay sorted).
    fn split(&mut self) {
        let bits = self.bits + 1;
        let old = std::mem::take(&mut self.buckets);
        let mut buckets = Vec::with_capacity(old.len() * 2);
        for b in old {
            let (lo, hi): (Vec<Entry>, Vec<Entry>) = b
                .into_iter()
                .partition(|e| (hash(from_words(e.key)) >> (64 - bits)) & 1 == 0);
            buckets.push(lo);
            buckets.push(hi);
        }
        self.buckets = buckets;
        self.bits = bits;
    }

    /// Every prefix with its id (not in address order).
    pub fn iter(&self) -> impl Iterator<Item = (Ipv6Net, u32)> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| {
                b.iter().map(|e| {
                    let (a, l) = unkey(from_words(e.key));
                    (net(a, l), e.id)
                })
            })
            .chain(self.hosts.iter().map(|(&a, &id)| (net(a, 128), id)))
    }

    /// Heap bytes held: bucket headers, entries (capacity) and the /128 side map.
    pub fn heap_bytes(&self) -> usize {
        let host_slot = size_of::<(u128, u32)>() + 1;
        self.buckets.capacity() * size_of::<Vec<Entry>>()
            + self
                .buckets
                .iter()
                .map(|b| b.capacity() * size_of::<Entry>())
                .sum::<usize>()
            + if self.hosts.capacity() == 0 {
                0
            } else {
                (self.hosts.capacity() * 8 / 7).next_power_of_two() * host_slot
            }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn p(s: &str) -> Ipv6Net {
        s.parse::<Ipv6Net>().unwrap().trunc()
    }

    #[test]
    fn an_entry_is_20_bytes() {
        assert_eq!(size_of::<Entry>(), 20);
    }

    #[test]
    fn keys_round_trip_for_every_length_below_128() {
        let a: u128 = 0x2001_0db8_85a3_0000_0000_8a2e_0370_7334;
        for l in 0..128u8 {
            let n = net(a, l).trunc();
            let na = u128::from(n.network());
            assert_eq!(unkey(key(na, l)), (na, l), "/{l}");
        }
        // Same address, different lengths: distinct keys.
        assert_ne!(key(0, 0), key(0, 1));
        assert_eq!(unkey(key(0, 0)), (0, 0));
    }

    #[test]
    fn nested_prefixes_and_host_routes_are_distinct_entries() {
        let mut t = Table6::default();
        let ps = [
            "::/0",
            "2001:db8::/32",
            "2001:db8::/48",
            "2001:db8::/64",
            "2001:db8::/127",
            "2001:db8::/128",
            "2001:db8::1/128",
        ];
        for (i, s) in ps.iter().enumerate() {
            assert_eq!(t.insert(&p(s), i as u32), None);
        }
        assert_eq!(t.len(), ps.len());
        for (i, s) in ps.iter().enumerate() {
            assert_eq!(t.get(&p(s)), Some(i as u32), "{s}");
        }
        assert_eq!(t.get(&p("2001:db8::/33")), None);
        assert_eq!(t.insert(&p("2001:db8::/128"), 99), Some(5));
        assert_eq!(t.remove(&p("2001:db8::/128")), Some(99));
        assert_eq!(t.remove(&p("2001:db8::/128")), None);
        assert_eq!(t.remove(&p("::/0")), Some(0));
        assert_eq!(t.len(), ps.len() - 2);
        let mut got: Vec<(Ipv6Net, u32)> = t.iter().collect();
        got.sort();
        let mut want: Vec<(Ipv6Net, u32)> = [1, 2, 3, 4, 6]
            .iter()
            .map(|&i| (p(ps[i]), i as u32))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    /// Growing past 64 prefixes per bucket splits buckets; every prefix stays findable and the
    /// memory stays near 20 bytes per prefix (the hashed map took ≈ 55 on the same table).
    #[test]
    fn splitting_keeps_every_prefix_and_twenty_odd_bytes_each() {
        let mut t = Table6::default();
        let n = 200_000u32;
        let net_of = |i: u32| net(0x2a00u128 << 112 | u128::from(i) << 80, 48);
        for i in 0..n {
            assert_eq!(t.insert(&net_of(i), i), None);
        }
        assert!(t.bits > MIN_BITS);
        assert_eq!(t.len(), n as usize);
        for i in (0..n).step_by(7) {
            assert_eq!(t.get(&net_of(i)), Some(i));
        }
        let per = t.heap_bytes() as f64 / f64::from(n);
        assert!(per < 27.0, "{per} B/prefix");
        let bulk: Vec<(u128, u8, u32)> = (0..n)
            .map(|i| (u128::from(net_of(i).network()), 48, i))
            .collect();
        let b = Table6::from_routes(&bulk);
        let per = b.heap_bytes() as f64 / f64::from(n);
        assert!(per < 22.0, "bulk {per} B/prefix");
        for i in (0..n).step_by(5) {
            assert_eq!(b.get(&net_of(i)), Some(i));
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u128, u8, u32),
        Remove(u128, u8),
    }

    /// Prefixes from a small address pool and every length class (short, /48-ish, long, host),
    /// so operations hit the same prefixes often.
    fn prefix() -> impl Strategy<Value = (u128, u8)> {
        (0u128..64, prop_oneof![0u8..=16, 28u8..=64, 100u8..=128]).prop_map(|(x, l)| {
            // Spread the pool over the bits a prefix of any length keeps.
            let a = 0x2001_0db8u128 << 96 | x << 120 >> 8 | x << 64 | x;
            (u128::from(net(a, l).trunc().network()), l)
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (prefix(), 0u32..1000).prop_map(|((a, l), v)| Op::Insert(a, l, v)),
            2 => prefix().prop_map(|(a, l)| Op::Remove(a, l)),
        ]
    }

    proptest! {
        /// Any sequence of inserts and removes, from empty or from a bulk build, answers exactly as
        /// an ordered map does: the returned old values, lookups, length and the whole content.
        #[test]
        fn behaves_like_a_btreemap(
            start in prop::collection::btree_map(prefix(), 0u32..1000, 0..300),
            ops in prop::collection::vec(op(), 0..3000),
        ) {
            let routes: Vec<(u128, u8, u32)> = start.iter().map(|(&(a, l), &v)| (a, l, v)).collect();
            let mut t = Table6::from_routes(&routes);
            let mut model: BTreeMap<(u128, u8), u32> = start.clone();
            for op in &ops {
                match *op {
                    Op::Insert(a, l, v) => {
                        prop_assert_eq!(t.insert(&net(a, l), v), model.insert((a, l), v));
                    }
                    Op::Remove(a, l) => {
                        prop_assert_eq!(t.remove(&net(a, l)), model.remove(&(a, l)));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            for (&(a, l), &v) in &model {
                prop_assert_eq!(t.get(&net(a, l)), Some(v));
            }
            let mut got: Vec<((u128, u8), u32)> =
                t.iter().map(|(n, v)| ((u128::from(n.network()), n.prefix_len()), v)).collect();
            got.sort();
            let want: Vec<((u128, u8), u32)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }

    /// Many buckets split while the table is edited: a small PER_BUCKET would hide bugs in
    /// `split`, so this drives the real one with enough prefixes and checks against the model.
    #[test]
    fn edits_across_splits_match_the_model() {
        let mut t = Table6::default();
        let mut model = BTreeMap::new();
        let mut x: u64 = 0x1234_5678;
        for i in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let l = [32u8, 40, 44, 48, 56, 64, 128][(x % 7) as usize];
            let a = u128::from(
                net(0x2000u128 << 112 | u128::from(x >> 8) << 60, l)
                    .trunc()
                    .network(),
            );
            if x.is_multiple_of(5) {
                assert_eq!(t.remove(&net(a, l)), model.remove(&(a, l)));
            } else {
                assert_eq!(t.insert(&net(a, l), i), model.insert((a, l), i));
            }
        }
        assert!(t.bits >= MIN_BITS + 2, "split at least twice: {}", t.bits);
        assert_eq!(t.len(), model.len());
        for (&(a, l), &v) in &model {
            assert_eq!(t.get(&net(a, l)), Some(v));
        }
        assert_eq!(t.iter().count(), model.len());
    }
}
