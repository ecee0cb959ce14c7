//! Restart without loss: adopt what a previous process left in the pinned maps, then reconcile it
//! to the first full FIB by writing only the difference.
//!
//! ```text
//!   pinned maps ──read──► live tbl24/tbl8 answers, trie entries, path-list → group → next-hops
//!        │ adopt every id in use (pools: in use; gaps quarantined), intern groups and next-hops by
//!        │ content, match old path-lists to the new next-hop sets by bucket shares (votes: the
//!        │ prefixes that point at them now)
//!        ▼
//!   plan the expected FIB on top (fresh ids only for what does not exist yet)
//!        ▼
//!   write: nh, nhg, path-lists ─► tbl8 entries that differ (adopted groups keep their index; new
//!   groups are filled before being linked) ─► tbl24 entries that differ ─► trie inserts ─► trie
//!   deletes ─► retire what nothing uses (old path-lists, groups, next-hops, tbl8 groups, tx ports)
//! ```
//!
//! DIR-24-8 is rewritten from the expected image so that every tbl8 group the maps link keeps its
//! number when its /24 still needs one; the other numbers below the highest one linked wait in
//! quarantine (the old process may have unlinked a group just before it died), new groups get
//! numbers above.

use std::net::IpAddr;
use std::time::Instant;

use fib_ebpf::Engine4;
use fib_ebpf::abi::*;
use fib_ebpf::nhg as buckets;
use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::SyncError;
use crate::dir4::{Tables, image};
use crate::maps::PinnedMaps;
use crate::sync::{
    BatchReport, CountingSink, Dead, FibSync, Group, NextHop, PathList, Plan, SyncConfig,
    WriteCounts, nh_l2,
};
use crate::types::{NhL2, NhSet, PrefixMap, Route, RouteAction};

/// What a restart found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// The reconciling batch.
    pub batch: BatchReport,
    /// Ids found in use in the maps: (path-lists, groups, next-hops, tbl8 groups).
    pub found: (usize, usize, usize, usize),
    /// Old path-lists re-used for a next-hop set of the new FIB.
    pub pathlists_kept: usize,
    /// tbl8 groups kept at their index.
    pub tbl8_kept: usize,
}

fn share_signature(table: &[u32]) -> Vec<(u32, usize)> {
    let mut c: FxHashMap<u32, usize> = FxHashMap::default();
    for &x in table {
        *c.entry(x).or_insert(0) += 1;
    }
    let mut v: Vec<_> = c.into_iter().collect();
    v.sort_unstable();
    v
}

fn merr(e: impl std::fmt::Display) -> SyncError {
    SyncError::Map(e.to_string())
}

impl FibSync {
    /// Starts over maps that may hold a previous process's routes: adopts their ids and
    /// reconciles them to `expected` (the whole FIB) under `resolutions` (every next-hop of it,
    /// `None` when unresolved), writing only what differs. Works on empty maps too.
    pub fn restart(
        maps: PinnedMaps,
        cfg: SyncConfig,
        resolutions: &[(IpAddr, Option<NhL2>)],
        expected: &[Route],
    ) -> Result<(FibSync, ReconcileReport), SyncError> {
        let mut s = FibSync::new(maps, cfg);
        let now = Instant::now();
        let lpm4 = s.cfg.engine4 == Engine4::Lpm;

        // 1. What the dataplane holds now.
        let live24: Vec<u32> = (0..1u32 << 24).map(|i| s.maps.fib.dir24_load(i)).collect();
        let mut used_pl: FxHashSet<u32> = FxHashSet::default();
        let mut live_group_of: FxHashMap<u32, u32> = FxHashMap::default(); // group -> /24
        for (i, &e) in live24.iter().enumerate() {
            if e & DIR_ENTRY_TBL8 != 0 {
                let g = e & !DIR_ENTRY_TBL8;
                live_group_of.insert(g, i as u32);
                for j in 0..=255u8 {
                    let v = s.maps.fib.dir8_load(g, j);
                    if v >= PL_FIRST_DYNAMIC {
                        used_pl.insert(v);
                    }
                }
            } else if e >= PL_FIRST_DYNAMIC {
                used_pl.insert(e);
            }
        }
        let live6: PrefixMap<IpNet, u32> = s
            .maps
            .fib6_entries()?
            .into_iter()
            .map(|(n, v)| (IpNet::V6(n), v))
            .collect();
        let live4: PrefixMap<IpNet, u32> = if lpm4 {
            s.maps
                .fib4_entries()?
                .into_iter()
                .map(|(n, v)| (IpNet::V4(n), v))
                .collect()
        } else {
            PrefixMap::default()
        };
        for &v in live6.values().chain(live4.values()) {
            if v >= PL_FIRST_DYNAMIC {
                used_pl.insert(v);
            }
        }
        let mut old_pl: Vec<(u32, u32)> = Vec::new();
        let mut old_groups: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for &pl in &used_pl {
            let g = s.maps.fib.pathlist_get(pl).map_err(merr)?;
            old_pl.push((pl, g));
            if g != NHG_PASS && !old_groups.contains_key(&g) {
                old_groups.insert(g, s.maps.fib.nhg_read(g).map_err(merr)?);
            }
        }
        old_pl.sort_unstable();
        let mut old_nh: Vec<u32> = old_groups.values().flatten().copied().collect();
        old_nh.sort_unstable();
        old_nh.dedup();
        let found = (
            old_pl.len(),
            old_groups.len(),
            old_nh.len(),
            live_group_of.len(),
        );

        // 2. Adopt: ids in use, objects interned by content, all with no references yet.
        let mut plan = Plan::default();
        for &id in &old_nh {
            let l2 = nh_l2(&s.maps.nh_read(id)?);
            s.nh_ids.adopt(id, 0, now);
            s.nhs.insert(id, NextHop { refs: 0, l2 });
            s.nh_of_l2.entry(l2).or_insert(id);
            *s.ports.entry(l2.ifindex).or_insert(0) += 1;
            plan.dead_nhs.push(id);
        }
        let mut gids: Vec<u32> = old_groups.keys().copied().collect();
        gids.sort_unstable();
        for g in gids {
            let table: std::sync::Arc<[u32]> = old_groups[&g].clone().into();
            s.nhg_ids.adopt(g, 0, now);
            for nh in crate::sync::distinct_nhs(&table) {
                if let Some(n) = s.nhs.get_mut(&nh) {
                    n.refs += 1;
                }
            }
            s.group_of_table.entry(table.clone()).or_insert(g);
            s.groups.insert(g, Group { refs: 0, table });
            plan.dead_groups.push(g);
        }
        for &(pl, _) in &old_pl {
            s.pl_ids.adopt(pl, 0, now);
        }
        for &(a, l2) in resolutions {
            if let Some(l2) = l2 {
                s.resolution.insert(a, l2);
            }
        }

        // 3. Match old path-lists to the new sets: same bucket shares under the current
        //    resolutions, preferring the path-list most of the set's prefixes point at now.
        let answer = |p: &IpNet| -> u32 {
            match p {
                IpNet::V4(n) if !lpm4 => {
                    let a = u32::from(n.network());
                    let e = live24[(a >> 8) as usize];
                    if e & DIR_ENTRY_TBL8 != 0 {
                        s.maps.fib.dir8_load(e & !DIR_ENTRY_TBL8, (a & 0xff) as u8)
                    } else {
                        e
                    }
                }
                IpNet::V4(_) => live4.get(p).copied().unwrap_or(PL_NO_ROUTE),
                IpNet::V6(_) => live6.get(p).copied().unwrap_or(PL_NO_ROUTE),
            }
        };
        let mut votes: FxHashMap<(NhSet, u32), usize> = FxHashMap::default();
        for r in expected {
            if let Some(RouteAction::Forward(set)) = &r.action
                && !set.is_empty()
            {
                let old = answer(&r.prefix.trunc());
                if old >= PL_FIRST_DYNAMIC {
                    *votes.entry((set.clone(), old)).or_insert(0) += 1;
                }
            }
        }
        let old_sig: FxHashMap<u32, (u32, Vec<(u32, usize)>)> = old_pl
            .iter()
            .map(|&(pl, g)| {
                let sig = old_groups
                    .get(&g)
                    .map(|t| share_signature(t))
                    .unwrap_or_default();
                (pl, (g, sig))
            })
            .collect();
        let mut want_sig: FxHashMap<NhSet, Vec<(u32, usize)>> = FxHashMap::default();
        let mut ranked: Vec<((NhSet, u32), usize)> = votes.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.1.cmp(&b.0.1)));
        let mut taken: FxHashSet<u32> = FxHashSet::default();
        let mut kept = 0usize;
        for ((set, old), _) in ranked {
            if taken.contains(&old) || s.pl_of_set.contains_key(&set) {
                continue;
            }
            if !want_sig.contains_key(&set) {
                let members = s.members(&set, &mut plan)?;
                let sig = if members.is_empty() {
                    Vec::new()
                } else {
                    share_signature(&buckets::buckets(&members, s.cfg.buckets))
                };
                want_sig.insert(set.clone(), sig);
            }
            let Some((g, sig)) = old_sig.get(&old) else {
                continue;
            };
            if *sig != want_sig[&set] {
                continue;
            }
            taken.insert(old);
            kept += 1;
            if let Some(grp) = s.groups.get_mut(g) {
                grp.refs += 1;
            }
            s.pls.insert(
                old,
                PathList {
                    set: set.clone(),
                    refs: 0,
                    nhg: *g,
                },
            );
            s.pl_of_set.insert(set.clone(), old);
            for a in set.all_addrs() {
                s.pls_of_addr.entry(a).or_default().insert(old);
            }
            plan.dead_pls.push(old);
        }
        // Old path-lists nothing matched keep their group referenced until they are retired.
        let orphans: Vec<(u32, u32)> = old_pl
            .iter()
            .filter(|(pl, _)| !taken.contains(pl))
            .copied()
            .collect();
        for (_, g) in &orphans {
            if let Some(grp) = s.groups.get_mut(g) {
                grp.refs += 1;
            }
        }

        // 4. Plan the expected FIB on top; fresh ids only for what is new.
        for r in expected {
            if r.action.is_some() {
                s.plan_route(r, &mut plan)?;
            }
        }
        let mut c = WriteCounts::default();
        let mut err: Option<SyncError> = None;
        s.write_objects(&plan, &mut c, &mut err);

        // 5. DIR-24-8: a shadow keeping the live group indexes, then only differing entries.
        let tbl8_kept = s.rebuild_dir24(&live24, &live_group_of, &mut c, now)?;

        // 6. Tries: inserts/updates, then deletes.
        let mut trie_del: Vec<IpNet> = Vec::new();
        for (live, fam4) in [(&live6, false), (&live4, true)] {
            if fam4 && !lpm4 {
                continue;
            }
            for (p, v) in s.routes() {
                if p.addr().is_ipv4() != fam4 || live.get(&p) == Some(&v) {
                    continue;
                }
                let val = FibVal { pl_id: v, flags: 0 };
                let r = match p {
                    IpNet::V4(n) => {
                        c.fib4 += 1;
                        s.maps.fib.fib4_insert(n.network(), n.prefix_len(), val)
                    }
                    IpNet::V6(n) => {
                        c.fib6 += 1;
                        s.maps.fib.fib6_insert(n.network(), n.prefix_len(), val)
                    }
                };
                if let Err(e) = r {
                    err.get_or_insert(merr(e));
                }
            }
            trie_del.extend(live.keys().filter(|p| s.route_now(p).is_none()));
        }
        for p in &trie_del {
            let r = match p {
                IpNet::V4(n) => {
                    c.fib4 += 1;
                    s.maps.fib.fib4_remove(n.network(), n.prefix_len())
                }
                IpNet::V6(n) => {
                    c.fib6 += 1;
                    s.maps.fib.fib6_remove(n.network(), n.prefix_len())
                }
            };
            if let Err(e) = r {
                err.get_or_insert(merr(e));
            }
        }

        // 7. Retire what nothing uses, and tx ports no next-hop needs.
        let mut dead = Dead {
            pls: std::mem::take(&mut plan.dead_pls),
            groups: std::mem::take(&mut plan.dead_groups),
            nhs: std::mem::take(&mut plan.dead_nhs),
        };
        for (pl, g) in orphans {
            if let Some(grp) = s.groups.get_mut(&g) {
                grp.refs -= 1;
                if grp.refs == 0 {
                    dead.groups.push(g);
                }
            }
            s.pl_ids.retire(pl, s.batch, now);
        }
        s.retire(dead, now, &mut c, &mut err);
        let live_ports: FxHashSet<u32> = s.maps.tx_ports()?.into_iter().collect();
        for &port in &live_ports {
            if !s.ports.contains_key(&port) {
                c.tx_port += 1;
                if let Err(e) = s.maps.fib.tx_port_remove(port) {
                    err.get_or_insert(merr(e));
                }
            }
        }
        for &port in s.ports.keys().filter(|p| !live_ports.contains(p)) {
            c.tx_port += 1;
            if let Err(e) = s.maps.fib.tx_port_add(port) {
                err.get_or_insert(merr(e));
            }
        }
        s.maps.fib.bump_generation();
        s.commit(now);
        s.total.add(&c);
        let report = ReconcileReport {
            batch: BatchReport {
                writes: c,
                prefixes: s.len() as u64,
                pathlist_flips: plan.pathlist.len() as u64,
                batch: s.batch,
            },
            found,
            pathlists_kept: kept,
            tbl8_kept,
        };
        match err {
            Some(e) => Err(e),
            None => Ok((s, report)),
        }
    }

    /// Rewrites DIR-24-8 for the IPv4 table (planned already) so that each live tbl8 group whose
    /// /24 still needs one keeps its number, writing only the entries that differ from what the
    /// maps hold: groups first (new ones completely, kept ones entry by entry), then tbl24. The
    /// other group numbers the dead process used wait in quarantine. Returns the groups kept.
    fn rebuild_dir24(
        &mut self,
        live24: &[u32],
        live_group_of: &FxHashMap<u32, u32>,
        c: &mut WriteCounts,
        now: Instant,
    ) -> Result<usize, SyncError> {
        let v4: Vec<(u32, u8, u32)> = self.dir4.rules.iter().collect();
        // The expected image: tbl24 values and, per /24 needing a group, its entries.
        let mut want: Vec<(u32, u32, Box<[u32; DIR8_ENTRIES]>)> = Vec::new();
        let mut val24 = image(&v4, |i, cover, t| {
            want.push((i, cover, Box::new(*t)));
            Ok(())
        })?;
        drop(v4);
        let n = live_group_of.keys().max().map_or(0, |&g| g + 1);
        let mut keep: Vec<(u32, u32, u32)> = Vec::new();
        let mut number: Vec<Option<u32>> = Vec::with_capacity(want.len());
        for (i, cover, _) in &want {
            let e = live24[*i as usize];
            let g = e & !DIR_ENTRY_TBL8;
            if e & DIR_ENTRY_TBL8 != 0 && live_group_of.get(&g) == Some(i) {
                keep.push((g, *i, *cover));
                number.push(Some(g));
            } else {
                number.push(None);
            }
        }
        self.dir4.adopted(&keep, n, now);
        let m = &self.maps.fib;
        let mut sink = CountingSink { maps: m, c };
        // Groups first: a new group is complete before tbl24 links it.
        for ((i, cover, t), g) in want.iter().zip(number) {
            let (g, same) = match g {
                Some(g) => (g, true),
                None => {
                    let g = self.dir4.alloc_group()?;
                    self.dir4.link(g, *i, *cover);
                    (g, false)
                }
            };
            for (j, &v) in t.iter().enumerate() {
                if !same || m.dir8_load(g, j as u8) != v {
                    sink.store8(g, j as u8, v);
                }
            }
            val24[*i as usize] = DIR_ENTRY_TBL8 | g;
        }
        for (i, &e) in val24.iter().enumerate() {
            if live24[i] != e {
                sink.store24(i as u32, e);
            }
        }
        Ok(keep.len())
    }
}
