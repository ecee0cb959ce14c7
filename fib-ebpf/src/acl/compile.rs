//! The rule-set compiler: per-field lookup tables whose answers are bitmaps of rules (bit i = the
//! rule at priority position i accepts that field value), deduplicated by content, with per-bitmap
//! summaries of which 512-rule chunks are non-empty. Pure data: [`Compiled::matching`] walks the
//! result exactly as the XDP stage does, so it can be checked without a kernel.
//!
//! ```text
//!   prefix fields   distinct prefixes, each with the rules of every covering prefix (+ wildcards)
//!                   → multibit trie: root 2^16 entries (256 nodes), then 8 bits per level, leaf-pushed
//!   16-bit fields   ports, packet length: sweep over range boundaries → one bitmap per segment
//!   8-bit fields    protocol, ICMP type/code, DSCP: same sweep; TCP flags, fragment: per value
//!   ingress iface   hash entries; others get the wildcard rules
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use rustc_hash::FxHashMap;
use thiserror::Error;

use super::abi::*;
use super::reference::PacketFields;
use super::{Action, ByteSet, Family, Match, Prefix, RateUnit, RuleId, RuleSet};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("{0} rules: at most {CLS_MAX_RULES} are supported")]
    TooManyRules(usize),
    #[error("rule {0:?} appears twice: rule ids must be unique")]
    DuplicateId(RuleId),
    #[error("rule {id:?}: {what}")]
    Invalid { id: RuleId, what: String },
    #[error(
        "the rule set needs {what} {need}, the dataplane holds {max}: split it or use fewer distinct values"
    )]
    Capacity {
        what: &'static str,
        need: usize,
        max: usize,
    },
}

/// A rule set compiled into the dataplane's tables (slot-relative indexes; the counter of each rule
/// is assigned when installed).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub ids: Vec<RuleId>,
    pub slot: ClsSlot,
    /// The slot's words: first the dense bitmaps (bitmap b, chunk c: words
    /// `[(b * n_chunks + c) * 8 ..][..8]`; bitmap 0 is empty), then the destination records (see
    /// [`DstRecords`]), which the destination trie's leaves name.
    pub chunks: Vec<u64>,
    /// Distinct bitmaps: dense ones (the empty one included) and destination records.
    pub bitmaps: usize,
    /// Trie nodes; the first `CLS_ROOTS * 256` are the roots, then the IPv4 destination /16 bitmap.
    pub nodes: Vec<[u32; 256]>,
    /// `cls_tab` entries of the slot (`CLS_TAB_ENTRIES`).
    pub tab: Vec<u32>,
    /// (ifindex, bitmap) entries of `cls_iif`.
    pub iif: Vec<(u32, u32)>,
    pub rules: Vec<ClsRule>,
}

struct Bitmaps {
    words: usize,
    data: Vec<u64>,
    count: u32,
    index: FxHashMap<Vec<u64>, u32>,
}

/// The destination's bitmaps as compact records, placed after the dense bitmaps: a bitmap with one
/// non-empty word is that word; one with more is its summary (`CLS_SUM_WORDS` words, bit w = word
/// w non-empty) followed by its non-empty words in order. A destination's rules are few (its own
/// prefixes' and the wildcards), so its record is one or two cache lines where the dense bitmap
/// would spread its words over up to 2 KiB; the other fields' bitmaps are few and stay dense.
/// Leaves: record offset | first non-empty word << `CLS_LEAF_W_SHIFT` | `CLS_LEAF_MORE` when the
/// summary leads; the empty bitmap is leaf 0 (no rule).
struct DstRecords {
    /// Starts with one unused word, so no record is at offset 0; offsets are relative to this
    /// area until [`Compiled`] places it after the dense bitmaps.
    data: Vec<u64>,
    index: FxHashMap<Vec<u64>, u32>,
}

impl DstRecords {
    fn new() -> DstRecords {
        DstRecords {
            data: vec![0],
            index: FxHashMap::default(),
        }
    }

    fn intern(&mut self, bm: &[u64]) -> u32 {
        if let Some(&l) = self.index.get(bm) {
            return l;
        }
        let nz: Vec<usize> = (0..bm.len()).filter(|&w| bm[w] != 0).collect();
        let at = self.data.len() as u32;
        let l = match nz.as_slice() {
            [] => 0,
            [w] => {
                self.data.push(bm[*w]);
                at | (*w as u32) << CLS_LEAF_W_SHIFT
            }
            _ => {
                let mut sum = [0u64; CLS_SUM_WORDS];
                for &w in &nz {
                    sum[w / 64] |= 1 << (w % 64);
                }
                self.data.extend_from_slice(&sum);
                self.data.extend(nz.iter().map(|&w| bm[w]));
                at | (nz[0] as u32) << CLS_LEAF_W_SHIFT | CLS_LEAF_MORE
            }
        };
        self.index.insert(bm.to_vec(), l);
        l
    }
}

impl Bitmaps {
    fn new(n_chunks: usize) -> Bitmaps {
        let words = n_chunks * CLS_CHUNK_WORDS;
        let mut b = Bitmaps {
            words,
            data: Vec::new(),
            count: 0,
            index: FxHashMap::default(),
        };
        b.intern(&vec![0; words]);
        b
    }

    fn intern(&mut self, bm: &[u64]) -> u32 {
        if let Some(&id) = self.index.get(bm) {
            return id;
        }
        let id = self.count;
        self.count += 1;
        self.data.extend_from_slice(bm);
        self.index.insert(bm.to_vec(), id);
        id
    }
}

fn set_bit(bm: &mut [u64], i: usize) {
    bm[i / 64] |= 1 << (i % 64);
}

fn validate(set: &RuleSet) -> Result<(), CompileError> {
    if set.rules.len() > CLS_MAX_RULES as usize {
        return Err(CompileError::TooManyRules(set.rules.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for r in &set.rules {
        let bad = |what: String| CompileError::Invalid { id: r.id, what };
        if !seen.insert(r.id) {
            return Err(CompileError::DuplicateId(r.id));
        }
        let m = &r.matches;
        for p in [m.src, m.dst].into_iter().flatten() {
            let max = if p.family() == Family::V4 { 32 } else { 128 };
            if p.prefix_len() > max {
                return Err(bad(format!("prefix {p} is longer than /{max}")));
            }
        }
        let fams: Vec<Family> = [
            m.family,
            m.src.map(|p| p.family()),
            m.dst.map(|p| p.family()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if fams.windows(2).any(|w| w[0] != w[1]) {
            return Err(bad("source, destination and family disagree".into()));
        }
        if let Some(d) = m
            .dscp
            .as_ref()
            .and_then(|d| d.iter().find(|r| *r.end() > 63))
        {
            return Err(bad(format!("DSCP range {d:?} goes beyond 63")));
        }
        if r.set_dscp.is_some_and(|d| d > 63) {
            return Err(bad("set-DSCP value beyond 63".into()));
        }
        if let Action::RateLimit(l) = r.action
            && l.burst == 0
        {
            return Err(bad("rate limit with a burst of 0".into()));
        }
    }
    Ok(())
}

/// Builds the bitmap of rules that take any value of a field (`constrained(i)` false) or whose
/// condition holds (`accepts(i)`).
fn bitmap_where(
    words: usize,
    n: usize,
    constrained: impl Fn(usize) -> bool,
    accepts: impl Fn(usize) -> bool,
) -> Vec<u64> {
    let mut bm = vec![0u64; words];
    for i in 0..n {
        if !constrained(i) || accepts(i) {
            set_bit(&mut bm, i);
        }
    }
    bm
}

/// Range field over `0..domain`: writes a bitmap id per value into `tab[base..base + domain]`.
fn range_field(
    bms: &mut Bitmaps,
    tab: &mut [u32],
    base: usize,
    domain: usize,
    n: usize,
    get: impl Fn(usize) -> Option<Vec<RangeInclusive<u32>>>,
) -> u32 {
    let mut wild = vec![0u64; bms.words];
    // value -> (rules starting, rules ending after it)
    let mut events: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for i in 0..n {
        match get(i) {
            None => set_bit(&mut wild, i),
            Some(mut rs) => {
                rs.retain(|r| r.start() <= r.end() && (*r.start() as usize) < domain);
                rs.sort_by_key(|r| *r.start());
                // merge overlapping/adjacent ranges so each rule's bit is set once per segment
                let mut merged: Vec<(usize, usize)> = Vec::new();
                for r in rs {
                    let (a, b) = (*r.start() as usize, (*r.end() as usize).min(domain - 1));
                    match merged.last_mut() {
                        Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
                        _ => merged.push((a, b)),
                    }
                }
                for (a, b) in merged {
                    events.entry(a).or_default().0.push(i);
                    events.entry(b + 1).or_default().1.push(i);
                }
            }
        }
    }
    let none = bms.intern(&wild);
    let mut cur = wild;
    let mut at = 0usize;
    let mut id = none;
    for (&v, (start, end)) in &events {
        if v > at {
            tab[base + at..base + v.min(domain)].fill(id);
        }
        for &i in end {
            cur[i / 64] &= !(1 << (i % 64));
        }
        for &i in start {
            set_bit(&mut cur, i);
        }
        id = bms.intern(&cur);
        at = v;
        if at >= domain {
            break;
        }
    }
    if at < domain {
        tab[base + at..base + domain].fill(id);
    }
    none
}

fn byte_field(
    bms: &mut Bitmaps,
    tab: &mut [u32],
    base: usize,
    domain: usize,
    n: usize,
    get: impl Fn(usize) -> Option<ByteSet>,
) -> u32 {
    let sets: Vec<Option<ByteSet>> = (0..n).map(&get).collect();
    let none = bms.intern(&bitmap_where(
        bms.words,
        n,
        |i| sets[i].is_some(),
        |_| false,
    ));
    for v in 0..domain {
        let bm = bitmap_where(
            bms.words,
            n,
            |i| sets[i].is_some(),
            |i| sets[i].is_some_and(|s| s.contains(v as u8)),
        );
        tab[base + v] = bms.intern(&bm);
    }
    none
}

struct TrieBuilder<'a> {
    nodes: &'a mut Vec<[u32; 256]>,
}

impl TrieBuilder<'_> {
    /// Fills `entries` (2^bits entries covering address bits [start, start + bits)) from
    /// `prefixes` (left-aligned bits, length, bitmap id; sorted by length), creating child nodes.
    fn level(
        &mut self,
        entries: &mut [u32],
        start: u32,
        bits: u32,
        prefixes: &[(u128, u8, u32)],
    ) -> Result<(), CompileError> {
        let end = start + bits;
        let idx = |a: u128| ((a << start) >> (128 - bits)) as usize;
        let mut deeper: BTreeMap<usize, Vec<(u128, u8, u32)>> = BTreeMap::new();
        for &(a, l, bm) in prefixes {
            let l = u32::from(l);
            if l <= end {
                if l < start {
                    continue; // painted by the caller as this node's default
                }
                let span = 1usize << (end - l);
                let first = idx(a) & !(span - 1);
                entries[first..first + span].fill(bm);
            } else {
                deeper.entry(idx(a)).or_default().push((a, l as u8, bm));
            }
        }
        for (i, group) in deeper {
            let at = self.nodes.len();
            if at >= CLS_NODES_PER_SLOT as usize {
                return Err(CompileError::Capacity {
                    what: "trie nodes",
                    need: at + 1,
                    max: CLS_NODES_PER_SLOT as usize,
                });
            }
            let mut child = [entries[i]; 256];
            self.nodes.push(child);
            self.level(&mut child, end, 8, &group)?;
            self.nodes[at] = child;
            entries[i] = CLS_NODE_CHILD | at as u32;
        }
        Ok(())
    }
}

/// Compiles `set` (validated first). Pure: nothing is written anywhere.
pub fn compile(set: &RuleSet) -> Result<Compiled, CompileError> {
    validate(set)?;
    let rules = &set.rules;
    let n = rules.len();
    let n_chunks = n.div_ceil(CLS_CHUNK_RULES as usize).max(1);
    let mut bms = Bitmaps::new(n_chunks);
    let words = bms.words;
    let mut tab = vec![0u32; CLS_TAB_ENTRIES as usize];
    // the roots, then the IPv4 destination /16 bitmap
    let mut nodes = vec![[0u32; 256]; (CLS_ROOTS * 256 + CLS_DST4_MAP_NODES) as usize];
    let mut slot = ClsSlot {
        n_rules: n as u32,
        n_chunks: n_chunks as u32,
        ..Default::default()
    };
    let m = |i: usize| -> &Match { &rules[i].matches };
    let mut used = |f: u32| slot.fields |= 1 << f;

    // ---- prefixes ----
    // The destination is always looked up: it enforces each rule's address family, and a packet
    // needs at least one field's bitmap (an empty AND would match the unused bits past n_rules).
    let dst_used = n > 0;
    let src_used = rules.iter().any(|r| r.matches.src.is_some());
    let mut roots: Vec<(u32, Family, bool)> = Vec::new();
    if dst_used {
        used(CLS_F_DST);
        roots.push((CLS_ROOT_DST4, Family::V4, true));
        roots.push((CLS_ROOT_DST6, Family::V6, true));
    }
    if src_used {
        used(CLS_F_SRC);
        roots.push((CLS_ROOT_SRC4, Family::V4, false));
        roots.push((CLS_ROOT_SRC6, Family::V6, false));
    }
    let mut dsts = DstRecords::new();
    // trie nodes holding destination leaves: the two destination roots and the children made for
    // them (the destination tries are built first)
    let mut dst_children = nodes.len()..nodes.len();
    // the destination roots' default leaves (IPv4, IPv6)
    let mut dst_def = [0u32; 2];
    for (root, fam, is_dst) in roots {
        let field = |i: usize| if is_dst { m(i).dst } else { m(i).src };
        let eligible = |i: usize| !is_dst || m(i).effective_family().is_none_or(|f| f == fam);
        // default: eligible rules without a prefix on this field
        let mut default = vec![0u64; words];
        let mut own: HashMap<(u128, u8), Vec<usize>> = HashMap::new();
        for i in 0..n {
            if !eligible(i) {
                continue;
            }
            match field(i) {
                None => set_bit(&mut default, i),
                Some(p) if p.family() == fam => {
                    own.entry((p.bits(), p.prefix_len())).or_default().push(i)
                }
                Some(_) => {}
            }
        }
        let mut keys: Vec<(u128, u8)> = own.keys().copied().collect();
        keys.sort_by_key(|&(a, l)| (l, a));
        let mut full: HashMap<(u128, u8), Vec<u64>> = HashMap::new();
        let mut prefixes = Vec::with_capacity(keys.len());
        for &(a, l) in &keys {
            let mut bm = (0..l)
                .rev()
                .find_map(|pl| {
                    let pa = if pl == 0 {
                        0
                    } else {
                        a & (u128::MAX << (128 - u32::from(pl)))
                    };
                    full.get(&(pa, pl))
                })
                .cloned()
                .unwrap_or_else(|| default.clone());
            for &i in &own[&(a, l)] {
                set_bit(&mut bm, i);
            }
            let id = if is_dst {
                dsts.intern(&bm)
            } else {
                bms.intern(&bm)
            };
            prefixes.push((a, l, id));
            full.insert((a, l), bm);
        }
        let def = if is_dst {
            dsts.intern(&default)
        } else {
            bms.intern(&default)
        };
        let mut flat = vec![def; 65536];
        TrieBuilder { nodes: &mut nodes }.level(&mut flat, 0, 16, &prefixes)?;
        for (b0, chunk) in flat.chunks_exact(256).enumerate() {
            nodes[(root * 256) as usize + b0].copy_from_slice(chunk);
        }
        if is_dst {
            dst_children.end = nodes.len();
            dst_def[usize::from(fam == Family::V6)] = def;
        }
    }

    // ---- direct tables ----
    let to32 = |v: &Option<Vec<RangeInclusive<u8>>>| {
        v.as_ref().map(|rs| {
            rs.iter()
                .map(|r| u32::from(*r.start())..=u32::from(*r.end()))
                .collect()
        })
    };
    let to32w = |v: &Option<Vec<RangeInclusive<u16>>>| {
        v.as_ref().map(|rs| {
            rs.iter()
                .map(|r| u32::from(*r.start())..=u32::from(*r.end()))
                .collect()
        })
    };
    type Get8 = fn(&Match) -> &Option<Vec<RangeInclusive<u8>>>;
    type Get16 = fn(&Match) -> &Option<Vec<RangeInclusive<u16>>>;
    let fields8: [(u32, u32, usize, Get8); 4] = [
        (CLS_F_PROTO, CLS_TAB_PROTO, 256, |m| &m.protocol),
        (CLS_F_ICMP_TYPE, CLS_TAB_ICMP_TYPE, 256, |m| &m.icmp_type),
        (CLS_F_ICMP_CODE, CLS_TAB_ICMP_CODE, 256, |m| &m.icmp_code),
        (CLS_F_DSCP, CLS_TAB_DSCP, 64, |m| &m.dscp),
    ];
    for (f, base, domain, get) in fields8 {
        if rules.iter().any(|r| get(&r.matches).is_some()) {
            used(f);
            slot.none_bm[f as usize] =
                range_field(&mut bms, &mut tab, base as usize, domain, n, |i| {
                    to32(get(m(i)))
                });
        }
    }
    let fields16: [(u32, u32, Get16); 3] = [
        (CLS_F_DPORT, CLS_TAB_DPORT, |m| &m.dst_port),
        (CLS_F_SPORT, CLS_TAB_SPORT, |m| &m.src_port),
        (CLS_F_PKTLEN, CLS_TAB_PKTLEN, |m| &m.pkt_len),
    ];
    for (f, base, get) in fields16 {
        if rules.iter().any(|r| get(&r.matches).is_some()) {
            used(f);
            slot.none_bm[f as usize] =
                range_field(&mut bms, &mut tab, base as usize, 65536, n, |i| {
                    to32w(get(m(i)))
                });
        }
    }
    if rules.iter().any(|r| r.matches.tcp_flags.is_some()) {
        used(CLS_F_TCP_FLAGS);
        slot.none_bm[CLS_F_TCP_FLAGS as usize] = byte_field(
            &mut bms,
            &mut tab,
            CLS_TAB_TCP_FLAGS as usize,
            256,
            n,
            |i| m(i).tcp_flags,
        );
    }
    if rules.iter().any(|r| r.matches.fragment.is_some()) {
        used(CLS_F_FRAG);
        slot.none_bm[CLS_F_FRAG as usize] =
            byte_field(&mut bms, &mut tab, CLS_TAB_FRAG as usize, 16, n, |i| {
                m(i).fragment
            });
    }

    // ---- ingress interface ----
    let mut iif = Vec::new();
    if rules.iter().any(|r| r.matches.ingress_ifindex.is_some()) {
        used(CLS_F_IIF);
        let lists: Vec<Option<&Vec<u32>>> = (0..n).map(|i| m(i).ingress_ifindex.as_ref()).collect();
        slot.none_bm[CLS_F_IIF as usize] =
            bms.intern(&bitmap_where(words, n, |i| lists[i].is_some(), |_| false));
        let mut ifs: Vec<u32> = lists
            .iter()
            .flatten()
            .flat_map(|l| l.iter().copied())
            .collect();
        ifs.sort_unstable();
        ifs.dedup();
        if ifs.len() > (CLS_IIF_MAX / CLS_SLOTS) as usize {
            return Err(CompileError::Capacity {
                what: "ingress interfaces",
                need: ifs.len(),
                max: (CLS_IIF_MAX / CLS_SLOTS) as usize,
            });
        }
        for ifi in ifs {
            let bm = bitmap_where(
                words,
                n,
                |i| lists[i].is_some(),
                |i| lists[i].is_some_and(|l| l.contains(&ifi)),
            );
            iif.push((ifi, bms.intern(&bm)));
        }
    }

    let n_bitmaps = bms.count as usize;
    if n_bitmaps > CLS_MAX_BITMAPS as usize {
        return Err(CompileError::Capacity {
            what: "distinct rule bitmaps",
            need: n_bitmaps,
            max: CLS_MAX_BITMAPS as usize,
        });
    }
    let dense = bms.data.len();
    if dense + dsts.data.len() > CLS_WORDS_PER_SLOT as usize {
        return Err(CompileError::Capacity {
            what: "bitmap words (distinct bitmaps × rules / 64, and the destinations' records)",
            need: dense + dsts.data.len(),
            max: CLS_WORDS_PER_SLOT as usize,
        });
    }

    // The destination records go after the dense bitmaps: their leaves move by that much.
    let place = |e: &mut u32| {
        if *e & CLS_NODE_CHILD == 0 && *e != 0 {
            *e += dense as u32;
        }
    };
    for root in [CLS_ROOT_DST4, CLS_ROOT_DST6] {
        let r = (root * 256) as usize;
        nodes[r..r + 256].iter_mut().flatten().for_each(place);
    }
    nodes[dst_children].iter_mut().flatten().for_each(place);
    dst_def.iter_mut().for_each(place);
    if dst_used {
        slot.none_bm[CLS_F_DST as usize] = dst_def[0];
        slot.dst6_leaf = dst_def[1];
        let r4 = (CLS_ROOT_DST4 * 256) as usize;
        let map = CLS_DST4_MAP_NODE as usize;
        for hi in 0..65536usize {
            if nodes[r4 + hi / 256][hi % 256] != dst_def[0] {
                nodes[map + hi / 32 / 256][hi / 32 % 256] |= 1 << (hi % 32);
            }
        }
    }

    // No destination prefix anywhere: every destination of a family has its root's (only) leaf, so
    // the program takes it from the slot header instead of walking the trie.
    if dst_used && !rules.iter().any(|r| r.matches.dst.is_some()) {
        slot.fields |= CLS_FIELDS_DST_FLAT;
    }

    let bitmaps = n_bitmaps + dsts.index.len();
    let mut chunks = bms.data;
    chunks.extend_from_slice(&dsts.data);
    let cls_rules = rules.iter().map(encode_rule).collect();
    Ok(Compiled {
        ids: rules.iter().map(|r| r.id).collect(),
        slot,
        chunks,
        bitmaps,
        nodes,
        tab,
        iif,
        rules: cls_rules,
    })
}

/// ns per unit << 16 for `rate` units per second.
fn inv_rate(rate: u64) -> u64 {
    ((1_000_000_000u128 << 16) / u128::from(rate.max(1))).min(u128::from(u64::MAX)) as u64
}

fn encode_rule(r: &super::Rule) -> ClsRule {
    let mut c = ClsRule {
        id: r.id.0,
        flags: if r.terminal { CLS_RF_TERMINAL } else { 0 },
        ..Default::default()
    };
    if let Some(d) = r.set_dscp {
        c.flags |= CLS_RF_SET_DSCP;
        c.dscp = d;
    }
    match r.action {
        Action::Accept => c.action = CLS_ACT_ACCEPT,
        Action::Drop => c.action = CLS_ACT_DROP,
        Action::RateLimit(l) if l.rate == 0 => c.action = CLS_ACT_DROP,
        Action::RateLimit(l) => {
            c.action = match l.unit {
                RateUnit::Packets => CLS_ACT_RATE_PPS,
                RateUnit::Bytes => CLS_ACT_RATE_BPS,
            };
            c.inv_rate = inv_rate(l.rate);
            // GCRA: `burst` units may pass back to back; tolerance = (burst - 1) unit intervals.
            c.tau = ((u128::from(l.burst - 1) * u128::from(c.inv_rate)) >> 16)
                .min(u128::from(u64::MAX)) as u64;
        }
    }
    c
}

impl Compiled {
    fn word(&self, bm: u32, w: usize) -> u64 {
        self.chunks[bm as usize * self.slot.n_chunks as usize * CLS_CHUNK_WORDS + w]
    }

    fn trie(&self, root: u32, a: &[u8]) -> u32 {
        let mut e = self.nodes[(root * 256) as usize + usize::from(a[0])][usize::from(a[1])];
        for &b in &a[2..] {
            if e & CLS_NODE_CHILD == 0 {
                break;
            }
            e = self.nodes[(e & !CLS_NODE_CHILD) as usize][usize::from(b)];
        }
        if e & CLS_NODE_CHILD != 0 { 0 } else { e }
    }

    /// Positions of every rule whose conditions hold for `p`, in priority order, found through
    /// the compiled tables the way the XDP stage finds them (a Rust model of `classify.h`).
    pub fn matching(&self, p: &PacketFields) -> Vec<usize> {
        let s = &self.slot;
        if s.n_rules == 0 {
            return Vec::new();
        }
        let tab = |base: u32, v: u32| self.tab[(base + v) as usize];
        let none = |f: u32| s.none_bm[f as usize];
        let (src, dst, v6): (Vec<u8>, Vec<u8>, bool) = match (p.src, p.dst) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                (a.octets().to_vec(), b.octets().to_vec(), false)
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                (a.octets().to_vec(), b.octets().to_vec(), true)
            }
            _ => return Vec::new(),
        };
        let mut bm = [0u32; CLS_NFIELDS];
        let dst_leaf = std::cell::Cell::new(0u32);
        let lookups: [(u32, Box<dyn Fn() -> u32 + '_>); CLS_NFIELDS] = [
            (
                CLS_F_DST,
                Box::new(|| {
                    let l = if s.fields & CLS_FIELDS_DST_FLAT != 0 {
                        if v6 { s.dst6_leaf } else { none(CLS_F_DST) }
                    } else if v6 {
                        self.trie(CLS_ROOT_DST6, &dst)
                    } else {
                        // the /16 bitmap: a clear bit is the default leaf
                        let hi = usize::from(dst[0]) << 8 | usize::from(dst[1]);
                        let m =
                            self.nodes[CLS_DST4_MAP_NODE as usize + hi / 32 / 256][hi / 32 % 256];
                        if m >> (hi % 32) & 1 != 0 {
                            self.trie(CLS_ROOT_DST4, &dst)
                        } else {
                            none(CLS_F_DST)
                        }
                    };
                    dst_leaf.set(l);
                    l
                }),
            ),
            (
                CLS_F_SRC,
                Box::new(|| {
                    self.trie(if v6 { CLS_ROOT_SRC6 } else { CLS_ROOT_SRC4 }, &src) & CLS_LEAF_ID
                }),
            ),
            (
                CLS_F_PROTO,
                Box::new(|| tab(CLS_TAB_PROTO, p.protocol.into())),
            ),
            (
                CLS_F_DPORT,
                Box::new(|| {
                    p.ports
                        .map_or(none(CLS_F_DPORT), |x| tab(CLS_TAB_DPORT, x.1.into()))
                }),
            ),
            (
                CLS_F_SPORT,
                Box::new(|| {
                    p.ports
                        .map_or(none(CLS_F_SPORT), |x| tab(CLS_TAB_SPORT, x.0.into()))
                }),
            ),
            (
                CLS_F_ICMP_TYPE,
                Box::new(|| {
                    p.icmp.map_or(none(CLS_F_ICMP_TYPE), |x| {
                        tab(CLS_TAB_ICMP_TYPE, x.0.into())
                    })
                }),
            ),
            (
                CLS_F_ICMP_CODE,
                Box::new(|| {
                    p.icmp.map_or(none(CLS_F_ICMP_CODE), |x| {
                        tab(CLS_TAB_ICMP_CODE, x.1.into())
                    })
                }),
            ),
            (
                CLS_F_TCP_FLAGS,
                Box::new(|| {
                    p.tcp_flags
                        .map_or(none(CLS_F_TCP_FLAGS), |x| tab(CLS_TAB_TCP_FLAGS, x.into()))
                }),
            ),
            (
                CLS_F_PKTLEN,
                Box::new(|| tab(CLS_TAB_PKTLEN, p.pkt_len.into())),
            ),
            (
                CLS_F_DSCP,
                Box::new(|| tab(CLS_TAB_DSCP, u32::from(p.dscp & 63))),
            ),
            (
                CLS_F_FRAG,
                Box::new(|| tab(CLS_TAB_FRAG, u32::from(p.fragment & 15))),
            ),
            (
                CLS_F_IIF,
                Box::new(|| {
                    self.iif
                        .iter()
                        .find(|(i, _)| *i == p.ingress_ifindex)
                        .map_or(none(CLS_F_IIF), |(_, b)| *b)
                }),
            ),
        ];
        // the destination's summary names the candidate words; a field whose bitmap is the empty
        // one (id 0) ends the walk
        for (f, look) in &lookups {
            if s.fields & (1 << f) != 0 {
                bm[*f as usize] = look();
                if bm[*f as usize] == 0 {
                    return Vec::new();
                }
            }
        }
        // the leaf names the destination's record: its only non-empty word, or its summary and
        // then its non-empty words in order
        let rec = (dst_leaf.get() & CLS_LEAF_REC) as usize;
        let (cand, mut dwords) = if dst_leaf.get() & CLS_LEAF_MORE != 0 {
            let mut c = [0u64; CLS_SUM_WORDS];
            c.copy_from_slice(&self.chunks[rec..rec + CLS_SUM_WORDS]);
            (c, rec + CLS_SUM_WORDS)
        } else {
            let w = ((dst_leaf.get() >> CLS_LEAF_W_SHIFT) & 0xff) as usize;
            let mut c = [0u64; CLS_SUM_WORDS];
            c[w / 64] = 1 << (w % 64);
            (c, rec)
        };
        let mut out = Vec::new();
        for (k, mut c) in cand.into_iter().enumerate() {
            while c != 0 {
                let w = k * 64 + c.trailing_zeros() as usize;
                c &= c - 1;
                let mut acc = self.chunks[dwords];
                dwords += 1;
                for f in 0..CLS_NFIELDS as u32 {
                    if f != CLS_F_DST && s.fields & (1 << f) != 0 {
                        acc &= self.word(bm[f as usize], w);
                    }
                }
                while acc != 0 {
                    out.push(w * 64 + acc.trailing_zeros() as usize);
                    acc &= acc - 1;
                }
            }
        }
        out
    }

    /// Bitmaps in the compiled set (including the empty one).
    pub fn n_bitmaps(&self) -> usize {
        self.bitmaps
    }
}

impl Prefix {
    /// The prefix with its host bits cleared.
    pub fn network(self) -> Prefix {
        match self {
            Prefix::V4(_, l) => Prefix::V4(std::net::Ipv4Addr::from((self.bits() >> 96) as u32), l),
            Prefix::V6(_, l) => Prefix::V6(std::net::Ipv6Addr::from(self.bits()), l),
        }
    }
}
