//! Consistency check: the expected FIB against what the maps hold (used by `ribctl fib check` and
//! the tests).
//!
//! ```text
//!   expected routes ──► engine state (prefix → path-list of the right next-hop set)
//!                  └──► DIR-24-8 image painted from them ──answers per /24 and per tbl8 entry──► dir24/dir8
//!                  └──► exact prefix sets ──────────────────────────────────────────────────► fib6 (fib4)
//!   path-lists ──► pathlist[pl] ──► nhg buckets (members = resolved next-hops, weights) ──► nh (MACs)
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use fib_ebpf::Engine4;
use fib_ebpf::abi::*;
use fib_ebpf::nhg as buckets;
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::SyncError;
use crate::dir4::image;
use crate::sync::{FibSync, nh_l2};
use crate::types::{NhL2, PrefixMap, Route, RouteAction};

/// One difference between what should be and what is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The engine's own table disagrees with the expected FIB.
    Route {
        prefix: IpNet,
        expected: String,
        found: String,
    },
    /// The dataplane answers another path-list for an address.
    Answer {
        addr: IpAddr,
        expected: u32,
        found: u32,
    },
    /// A trie holds a prefix it should not, lacks one, or holds another path-list.
    Trie {
        prefix: IpNet,
        expected: Option<u32>,
        found: Option<u32>,
    },
    Pathlist {
        pl: u32,
        expected: u32,
        found: u32,
    },
    Group {
        nhg: u32,
        detail: String,
    },
    NextHop {
        nh: u32,
        expected: NhL2,
        found: Option<NhL2>,
    },
    Tbl8 {
        linked_in_maps: usize,
        expected: usize,
    },
    TxPort {
        detail: String,
    },
    /// More differences of the same kind were left out.
    More {
        what: &'static str,
        count: usize,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Route {
                prefix,
                expected,
                found,
            } => write!(f, "route {prefix}: expected {expected}, engine has {found}"),
            Mismatch::Answer {
                addr,
                expected,
                found,
            } => write!(
                f,
                "lookup {addr}: expected path-list {expected}, maps answer {found}"
            ),
            Mismatch::Trie {
                prefix,
                expected,
                found,
            } => write!(
                f,
                "trie {prefix}: expected {expected:?}, maps hold {found:?}"
            ),
            Mismatch::Pathlist {
                pl,
                expected,
                found,
            } => write!(
                f,
                "path-list {pl}: expected group {expected}, maps hold {found}"
            ),
            Mismatch::Group { nhg, detail } => write!(f, "group {nhg}: {detail}"),
            Mismatch::NextHop {
                nh,
                expected,
                found,
            } => write!(
                f,
                "next-hop {nh}: expected {expected:?}, maps hold {found:?}"
            ),
            Mismatch::Tbl8 {
                linked_in_maps,
                expected,
            } => write!(
                f,
                "tbl8 groups: {linked_in_maps} linked in the maps, {expected} expected"
            ),
            Mismatch::TxPort { detail } => write!(f, "tx ports: {detail}"),
            Mismatch::More { what, count } => write!(f, "… and {count} more {what} differences"),
        }
    }
}

const MAX_PER_KIND: usize = 50;

struct Out {
    v: Vec<Mismatch>,
    counts: FxHashMap<&'static str, usize>,
}

impl Out {
    fn push(&mut self, what: &'static str, m: Mismatch) {
        let n = self.counts.entry(what).or_insert(0);
        *n += 1;
        if *n <= MAX_PER_KIND {
            self.v.push(m);
        }
    }
    fn finish(mut self) -> Vec<Mismatch> {
        let mut more: Vec<_> = self
            .counts
            .iter()
            .filter(|&(_, &n)| n > MAX_PER_KIND)
            .map(|(&what, &n)| Mismatch::More {
                what,
                count: n - MAX_PER_KIND,
            })
            .collect();
        more.sort_by_key(|m| format!("{m}"));
        self.v.extend(more);
        self.v
    }
}

/// A path-list id no map can hold: stands for "the engine has no path-list for this set".
const MISSING: u32 = 0x7fff_fff0;

impl FibSync {
    /// Compares `expected` (the whole FIB: every route with `Some` action) with the engine's state
    /// and the maps. Returns the differences (empty when consistent).
    pub fn check(&self, expected: &[Route]) -> Result<Vec<Mismatch>, SyncError> {
        let mut out = Out {
            v: Vec::new(),
            counts: FxHashMap::default(),
        };
        // Expected prefix → path-list id, via the engine's path-lists.
        let mut want: PrefixMap<IpNet, u32> = PrefixMap::default();
        for r in expected {
            let p = r.prefix.trunc();
            let id = match &r.action {
                None => continue,
                Some(RouteAction::Forward(s)) if s.is_empty() => PL_PASS,
                Some(RouteAction::Forward(s)) => self.pathlist_of(s).unwrap_or(MISSING),
                Some(RouteAction::Blackhole) => PL_BLACKHOLE,
                Some(RouteAction::PassToKernel) => PL_PASS,
                Some(RouteAction::Local) => PL_LOCAL,
            };
            want.insert(p, id);
        }
        for (p, &id) in &want {
            let found = self.route(p);
            if found != Some(id) {
                out.push(
                    "route",
                    Mismatch::Route {
                        prefix: *p,
                        expected: describe(self, id),
                        found: found.map_or("nothing".into(), |f| describe(self, f)),
                    },
                );
            }
        }
        for (p, id) in self.routes() {
            if !want.contains_key(&p) {
                out.push(
                    "route",
                    Mismatch::Route {
                        prefix: p,
                        expected: "nothing".into(),
                        found: describe(self, id),
                    },
                );
            }
        }
        self.check_dir24(&want, &mut out);
        self.check_tries(&want, &mut out)?;
        self.check_objects(&mut out)?;
        Ok(out.finish())
    }

    fn check_dir24(&self, want: &PrefixMap<IpNet, u32>, out: &mut Out) {
        let mut v4: Vec<(u32, u8, u32)> = want
            .iter()
            .filter_map(|(p, &id)| match p {
                IpNet::V4(n) => Some((u32::from(n.network()), n.prefix_len(), id)),
                IpNet::V6(_) => None,
            })
            .collect();
        v4.sort_unstable();
        // The expected image: tbl24 values, and the entries of each /24 that needs a group
        // (tbl24 then holds the tbl8 flag and the group's place in `groups`).
        let mut groups: Vec<(u32, Box<[u32; DIR8_ENTRIES]>)> = Vec::new();
        let Ok(mut val24) = image(&v4, |i, _, t| {
            groups.push((i, Box::new(*t)));
            Ok(())
        }) else {
            return;
        };
        drop(v4);
        for (k, (i, _)) in groups.iter().enumerate() {
            val24[*i as usize] = DIR_ENTRY_TBL8 | k as u32;
        }
        let exp = |a: u32| {
            let x = val24[(a >> 8) as usize];
            if x & DIR_ENTRY_TBL8 != 0 {
                groups[(x & !DIR_ENTRY_TBL8) as usize].1[(a & 0xff) as usize]
            } else {
                x
            }
        };
        let m = &self.maps;
        let mut linked = 0usize;
        for i in 0..(1u32 << 24) {
            let e = m.fib.dir24_load(i);
            let x = val24[i as usize];
            if e & DIR_ENTRY_TBL8 != 0 {
                linked += 1;
            }
            if e & DIR_ENTRY_TBL8 == 0 && x & DIR_ENTRY_TBL8 == 0 {
                if e != x {
                    out.push(
                        "answer",
                        Mismatch::Answer {
                            addr: IpAddr::V4(Ipv4Addr::from(i << 8)),
                            expected: x,
                            found: e,
                        },
                    );
                }
                continue;
            }
            for j in 0..=255u32 {
                let a = Ipv4Addr::from((i << 8) | j);
                let found = if e & DIR_ENTRY_TBL8 != 0 {
                    m.fib.dir8_load(e & !DIR_ENTRY_TBL8, j as u8)
                } else {
                    e
                };
                let x = exp(u32::from(a));
                if found != x {
                    out.push(
                        "answer",
                        Mismatch::Answer {
                            addr: IpAddr::V4(a),
                            expected: x,
                            found,
                        },
                    );
                }
            }
        }
        if linked != self.tbl8_in_use() {
            out.push(
                "tbl8",
                Mismatch::Tbl8 {
                    linked_in_maps: linked,
                    expected: self.tbl8_in_use(),
                },
            );
        }
    }

    fn check_tries(&self, want: &PrefixMap<IpNet, u32>, out: &mut Out) -> Result<(), SyncError> {
        let mut found: PrefixMap<IpNet, u32> = PrefixMap::default();
        for (n, id) in self.maps.fib6_entries()? {
            found.insert(IpNet::V6(n), id);
        }
        let lpm4 = self.cfg.engine4 == Engine4::Lpm;
        if lpm4 {
            for (n, id) in self.maps.fib4_entries()? {
                found.insert(IpNet::V4(n), id);
            }
        }
        for (p, &id) in want {
            if (p.addr().is_ipv4() && !lpm4) || found.get(p) == Some(&id) {
                continue;
            }
            out.push(
                "trie",
                Mismatch::Trie {
                    prefix: *p,
                    expected: Some(id),
                    found: found.get(p).copied(),
                },
            );
        }
        for (p, &id) in &found {
            if !want.contains_key(p) {
                out.push(
                    "trie",
                    Mismatch::Trie {
                        prefix: *p,
                        expected: None,
                        found: Some(id),
                    },
                );
            }
        }
        Ok(())
    }

    fn check_objects(&self, out: &mut Out) -> Result<(), SyncError> {
        let m = &self.maps;
        for (&pl, p) in &self.pls {
            let found = m
                .fib
                .pathlist_get(pl)
                .map_err(|e| SyncError::Map(e.to_string()))?;
            if found != p.nhg {
                out.push(
                    "pathlist",
                    Mismatch::Pathlist {
                        pl,
                        expected: p.nhg,
                        found,
                    },
                );
            }
            // The group's members must be exactly the live next-hops of the set's primaries (or,
            // none of them being live, of its backups), in proportion to their weights.
            let live = |&(a, w): &(IpAddr, u32)| {
                (!self.withdrawn.contains(&a))
                    .then(|| self.resolution.get(&a).map(|l2| (*l2, w)))
                    .flatten()
            };
            let mut active: Vec<(NhL2, u32)> = p.set.members().iter().filter_map(live).collect();
            if active.is_empty() {
                active = p.set.backup().iter().filter_map(live).collect();
            }
            let mut members: Vec<(u32, u32)> = Vec::new();
            let mut unknown = false;
            for (l2, w) in active {
                match self.nh_of_l2.get(&l2) {
                    Some(&id) => members.push((id, w)),
                    None => unknown = true,
                }
            }
            members.sort_unstable();
            members.dedup_by(|b, a| {
                if a.0 == b.0 {
                    a.1 = a.1.saturating_add(b.1);
                    true
                } else {
                    false
                }
            });
            let detail = if unknown {
                Some("a resolved member has no next-hop id".to_string())
            } else if members.is_empty() {
                (p.nhg != NHG_PASS).then(|| "no member resolves but not the pass group".into())
            } else {
                match self.groups.get(&p.nhg) {
                    None => Some("group unknown to the engine".into()),
                    Some(g) => {
                        let want = counts(&buckets::buckets(&members, g.table.len()));
                        let have = counts(&g.table);
                        (want != have).then(|| {
                            format!("path-list {pl}: bucket shares {have:?}, expected {want:?}")
                        })
                    }
                }
            };
            if let Some(detail) = detail {
                out.push("group", Mismatch::Group { nhg: p.nhg, detail });
            }
        }
        for (&id, g) in &self.groups {
            let found = m
                .fib
                .nhg_read(id)
                .map_err(|e| SyncError::Map(e.to_string()))?;
            if found.as_slice() != &g.table[..] {
                out.push(
                    "group",
                    Mismatch::Group {
                        nhg: id,
                        detail: "bucket table in the map differs".into(),
                    },
                );
            }
        }
        let mut ports: FxHashSet<u32> = FxHashSet::default();
        for (&id, n) in &self.nhs {
            ports.insert(n.l2.ifindex);
            let found = m.nh_read(id).ok().map(|v| nh_l2(&v));
            if found != Some(n.l2) {
                out.push(
                    "nh",
                    Mismatch::NextHop {
                        nh: id,
                        expected: n.l2,
                        found,
                    },
                );
            }
        }
        let mut have: Vec<u32> = m.tx_ports()?;
        have.sort_unstable();
        let mut want: Vec<u32> = ports.into_iter().collect();
        want.sort_unstable();
        if have != want {
            out.push(
                "tx_port",
                Mismatch::TxPort {
                    detail: format!("maps hold {have:?}, next-hops use {want:?}"),
                },
            );
        }
        Ok(())
    }
}

fn counts(t: &[u32]) -> Vec<(u32, usize)> {
    let mut c: FxHashMap<u32, usize> = FxHashMap::default();
    for &x in t {
        *c.entry(x).or_insert(0) += 1;
    }
    let mut v: Vec<_> = c.into_iter().collect();
    v.sort_unstable();
    v
}

fn describe(s: &FibSync, id: u32) -> String {
    match id {
        PL_NO_ROUTE => "no route".into(),
        PL_BLACKHOLE => "blackhole".into(),
        PL_PASS => "pass to kernel".into(),
        PL_LOCAL => "local".into(),
        MISSING => "a path-list the engine does not have".into(),
        _ => match s.pls.get(&id) {
            Some(p) if p.set.backup().is_empty() => {
                format!("path-list {id} {:?}", p.set.members())
            }
            Some(p) => format!(
                "path-list {id} {:?} backup {:?}",
                p.set.members(),
                p.set.backup()
            ),
            None => format!("unknown path-list {id}"),
        },
    }
}
