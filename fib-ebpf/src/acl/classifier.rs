//! Installing compiled rule sets into the dataplane and reading their counters.
//!
//! ```text
//!   install(RuleSet) ─compile─► counters assigned by RuleId (kept across installs and restarts)
//!        │ wait until the inactive slot has been out of use for SLOT_QUIESCE
//!        ▼
//!   write slot s' = other slot: trie nodes, tables, bitmap words + destination records, rules, iif
//!   entries, header
//!        │ release fence
//!        ▼
//!   cls_ctl.active = s' + 1   (one aligned u32 store: the next packet sees the whole new set)
//! ```
//!
//! A packet reads `cls_ctl.active` once and then only that slot, so it sees the old set or the new
//! one. XDP programs run to completion in microseconds; a slot that stopped being active is rewritten
//! only after [`SLOT_QUIESCE`], by which time no packet can still be reading it.
//!
//! Counters and rate-limiter states live outside the slots, indexed by a counter number that stays
//! with the rule's [`RuleId`]. A new id gets a free number whose counters and bucket are zeroed first.
//! After a restart, [`Classifier`] reads the active slot's rules (their ids and numbers) back from
//! the pinned maps, so an unchanged rule keeps counting where it was.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use aya::maps::MapData;
use thiserror::Error;

use super::abi::*;
use super::compile::{CompileError, Compiled, compile};
use super::{RuleId, RuleSet};
use crate::sys::{self, Mmap, bytes_of, slice_bytes};

/// How long a slot must have been inactive before it is rewritten.
pub const SLOT_QUIESCE: Duration = Duration::from_millis(20);

#[derive(Debug, Error)]
pub enum AclError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("classifier map {map}: {source}")]
    Open {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("classifier map {map}: {op}: {source}")]
    Io {
        map: &'static str,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "pinned classifier maps have ABI version {found}, this build speaks {expected}: remove the \
         cls_* pins of the instance (rules and counters are lost) or run the matching build"
    )]
    AbiMismatch { found: u32, expected: u32 },
}

fn io_err(map: &'static str, op: &'static str) -> impl FnOnce(io::Error) -> AclError {
    move |source| AclError::Io { map, op, source }
}

/// Counters of one installed rule (summed over CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleCounters {
    pub id: RuleId,
    /// Packets and bytes (frame length) that matched the rule.
    pub packets: u64,
    pub bytes: u64,
    /// Of those, dropped by this rule (drop action, or over its rate).
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

/// Classifier-wide packet counts (summed over CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassifierStats {
    /// Packets that went through a non-empty rule set.
    pub classified: u64,
    /// ... and matched at least one rule.
    pub matched: u64,
    /// Dropped by drop rules.
    pub dropped: u64,
    /// Dropped by rate limiters.
    pub rate_dropped: u64,
    /// DSCP rewritten.
    pub remarked: u64,
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallReport {
    pub rules: usize,
    /// The slot now active (None for an empty set: the stage is off).
    pub slot: Option<u32>,
    pub bitmaps: usize,
    /// Bitmap words written (dense bitmaps and destination records), 8 bytes each.
    pub words: usize,
    pub trie_nodes: usize,
    /// Rules that kept the counters of an earlier install.
    pub kept_counters: usize,
}

/// Handle on the classifier maps of a loaded (or pinned) forwarder.
pub struct Classifier {
    ctl: Mmap,
    slot_mm: Mmap,
    rules_mm: Mmap,
    node_mm: Mmap,
    tab_mm: Mmap,
    chunk_mm: Mmap,
    iif: MapData,
    counters: MapData,
    rl: MapData,
    stats: MapData,
    ncpus: usize,
    counter_of: HashMap<RuleId, u32>,
    free: Vec<u32>,
    installed: Vec<RuleId>,
    last_flip: Option<Instant>,
}

fn page_round(n: usize) -> usize {
    n.div_ceil(4096) * 4096
}

impl Classifier {
    /// Opens the maps through `open(name)` (the loader's duplicated fds, or pins), and recovers the
    /// installed rules' counter numbers from the active slot.
    pub(crate) fn open_with(
        mut open: impl FnMut(&'static str) -> Result<MapData, aya::maps::MapError>,
    ) -> Result<Classifier, AclError> {
        let mut get =
            |map: &'static str| open(map).map_err(|source| AclError::Open { map, source });
        let mm = |md: &MapData, map: &'static str, len: usize| {
            Mmap::new(md.fd().as_fd(), page_round(len)).map_err(io_err(map, "mmap"))
        };
        let slots = CLS_SLOTS as usize;
        let ctl = mm(&get("cls_ctl")?, "cls_ctl", size_of::<ClsCtl>())?;
        let slot_mm = mm(&get("cls_slot")?, "cls_slot", slots * size_of::<ClsSlot>())?;
        let rules_mm = mm(
            &get("cls_rules")?,
            "cls_rules",
            slots * CLS_MAX_RULES as usize * size_of::<ClsRule>(),
        )?;
        let node_mm = mm(
            &get("cls_node")?,
            "cls_node",
            slots * CLS_NODES_PER_SLOT as usize * size_of::<ClsNode>(),
        )?;
        let tab_mm = mm(
            &get("cls_tab")?,
            "cls_tab",
            slots * CLS_TAB_ROWS_PER_SLOT as usize * size_of::<ClsTabRow>(),
        )?;
        let chunk_mm = mm(
            &get("cls_chunk")?,
            "cls_chunk",
            slots * CLS_CHUNKS_PER_SLOT as usize * size_of::<ClsChunk>(),
        )?;
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| AclError::Io {
            map: "cls_counters",
            op: "possible cpus",
            source: e,
        })?;
        let mut c = Classifier {
            ctl,
            slot_mm,
            rules_mm,
            node_mm,
            tab_mm,
            chunk_mm,
            iif: get("cls_iif")?,
            counters: get("cls_counters")?,
            rl: get("cls_rl")?,
            stats: get("cls_stats")?,
            ncpus,
            counter_of: HashMap::new(),
            free: Vec::new(),
            installed: Vec::new(),
            last_flip: None,
        };
        let version = c.ctl.u32_at(4).load(Ordering::Acquire);
        if version == 0 {
            c.ctl.u32_at(4).store(CLS_ABI_VERSION, Ordering::Release);
        } else if version != CLS_ABI_VERSION {
            return Err(AclError::AbiMismatch {
                found: version,
                expected: CLS_ABI_VERSION,
            });
        }
        // Recover the installed rules (a restarted process keeps their counters).
        if let Some(slot) = c.active_slot() {
            let hdr: ClsSlot = c.read_slot(slot);
            for i in 0..hdr.n_rules.min(CLS_MAX_RULES) {
                let r = c.read_rule(slot, i);
                c.counter_of.insert(RuleId(r.id), r.counter);
                c.installed.push(RuleId(r.id));
            }
        }
        let used: std::collections::HashSet<u32> = c.counter_of.values().copied().collect();
        c.free = (0..CLS_MAX_RULES)
            .rev()
            .filter(|i| !used.contains(i))
            .collect();
        Ok(c)
    }

    /// Opens the classifier maps pinned under `dir` (`/sys/fs/bpf/<instance>`) by another process.
    pub fn open_pinned(dir: &Path) -> Result<Classifier, AclError> {
        Self::open_with(|name| MapData::from_pin(dir.join(name)))
    }

    /// The slot packets use now, if any rules are installed.
    pub fn active_slot(&self) -> Option<u32> {
        match self.ctl.u32_at(0).load(Ordering::Acquire) {
            0 => None,
            a => Some((a - 1) & 1),
        }
    }

    /// Rule ids installed now, in priority order.
    pub fn installed(&self) -> &[RuleId] {
        &self.installed
    }

    fn read_slot(&self, slot: u32) -> ClsSlot {
        let mut s = ClsSlot::default();
        // SAFETY: ClsSlot is plain data; the buffer is exactly its size.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(&mut s as *mut ClsSlot as *mut u8, size_of::<ClsSlot>())
        };
        self.slot_mm.read(slot as usize * size_of::<ClsSlot>(), buf);
        s
    }

    fn read_rule(&self, slot: u32, i: u32) -> ClsRule {
        let mut r = ClsRule::default();
        // SAFETY: as above.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(&mut r as *mut ClsRule as *mut u8, size_of::<ClsRule>())
        };
        let at = (slot * CLS_MAX_RULES + i) as usize * size_of::<ClsRule>();
        self.rules_mm.read(at, buf);
        r
    }

    /// Compiles `set` and makes it the active rule set atomically. On error nothing changes.
    pub fn install(&mut self, set: &RuleSet) -> Result<InstallReport, AclError> {
        let compiled = compile(set)?;
        self.install_compiled(&compiled)
    }

    /// Installs an already compiled set.
    pub fn install_compiled(&mut self, c: &Compiled) -> Result<InstallReport, AclError> {
        // Counter numbers: kept by id, new ids take free numbers (zeroed before use).
        let mut counter_of = HashMap::with_capacity(c.ids.len());
        let mut kept = 0;
        let mut fresh = Vec::new();
        for id in &c.ids {
            if let Some(&n) = self.counter_of.get(id) {
                counter_of.insert(*id, n);
                kept += 1;
            } else {
                let n = self
                    .free
                    .pop()
                    .ok_or(AclError::Compile(CompileError::Capacity {
                        what: "counters",
                        need: c.ids.len(),
                        max: CLS_MAX_RULES as usize,
                    }))?;
                counter_of.insert(*id, n);
                fresh.push(n);
            }
        }
        for &n in &fresh {
            self.reset_counter(n)?;
        }
        let report_base = InstallReport {
            rules: c.ids.len(),
            slot: None,
            bitmaps: c.n_bitmaps(),
            words: c.chunks.len(),
            trie_nodes: c.nodes.len(),
            kept_counters: kept,
        };
        if c.ids.is_empty() {
            self.flip(0);
            self.retire(counter_of);
            return Ok(report_base);
        }
        let target = match self.active_slot() {
            Some(s) => 1 - s,
            None => 0,
        };
        if let Some(t) = self.last_flip {
            let waited = t.elapsed();
            if waited < SLOT_QUIESCE {
                std::thread::sleep(SLOT_QUIESCE - waited);
            }
        }
        self.write_slot(target, c, &counter_of)?;
        fence(Ordering::Release);
        self.flip(target + 1);
        self.retire(counter_of);
        self.installed = c.ids.clone();
        Ok(InstallReport {
            slot: Some(target),
            ..report_base
        })
    }

    /// Removes every rule (the stage goes back to one load per packet). Counters of the removed
    /// rules are released.
    pub fn clear(&mut self) -> Result<(), AclError> {
        self.install(&RuleSet::default()).map(|_| ())
    }

    fn flip(&mut self, active: u32) {
        self.ctl.u32_at(0).store(active, Ordering::Release);
        self.ctl.u64_at(8).fetch_add(1, Ordering::AcqRel);
        self.last_flip = Some(Instant::now());
        if active == 0 {
            self.installed.clear();
        }
    }

    /// Releases the counters of ids no longer installed.
    fn retire(&mut self, counter_of: HashMap<RuleId, u32>) {
        for (id, n) in self.counter_of.drain() {
            if !counter_of.contains_key(&id) {
                self.free.push(n);
            }
        }
        self.counter_of = counter_of;
    }

    fn reset_counter(&self, n: u32) -> Result<(), AclError> {
        let zeros = vec![0u8; size_of::<ClsCounter>() * self.ncpus];
        sys::update(
            self.counters.fd().as_fd(),
            bytes_of(&n),
            &zeros,
            sys::BPF_ANY,
        )
        .map_err(io_err("cls_counters", "update"))?;
        sys::update(
            self.rl.fd().as_fd(),
            bytes_of(&n),
            bytes_of(&ClsRl::default()),
            sys::BPF_ANY,
        )
        .map_err(io_err("cls_rl", "update"))
    }

    fn write_slot(
        &self,
        slot: u32,
        c: &Compiled,
        counter_of: &HashMap<RuleId, u32>,
    ) -> Result<(), AclError> {
        let s = slot as usize;
        self.node_mm.write(
            s * CLS_NODES_PER_SLOT as usize * size_of::<ClsNode>(),
            slice_bytes(&c.nodes),
        );
        self.tab_mm.write(
            s * CLS_TAB_ROWS_PER_SLOT as usize * size_of::<ClsTabRow>(),
            slice_bytes(&c.tab),
        );
        self.chunk_mm.write(
            s * CLS_CHUNKS_PER_SLOT as usize * size_of::<ClsChunk>(),
            slice_bytes(&c.chunks),
        );
        let rules: Vec<ClsRule> = c
            .rules
            .iter()
            .map(|r| ClsRule {
                counter: counter_of[&RuleId(r.id)],
                ..*r
            })
            .collect();
        self.rules_mm.write(
            s * CLS_MAX_RULES as usize * size_of::<ClsRule>(),
            slice_bytes(&rules),
        );
        // ingress interfaces: drop this slot's old entries, then add the new ones
        let fd = self.iif.fd().as_fd();
        let mut stale = Vec::new();
        let mut key = ClsIifKey::default();
        let mut first = true;
        loop {
            let mut next = ClsIifKey::default();
            // SAFETY: ClsIifKey is plain data; the buffer is exactly its size.
            let nb = unsafe {
                std::slice::from_raw_parts_mut(&mut next as *mut ClsIifKey as *mut u8, 8)
            };
            let more = sys::next_key(fd, (!first).then_some(bytes_of(&key)), nb)
                .map_err(io_err("cls_iif", "next key"))?;
            if !more {
                break;
            }
            if next.slot == slot {
                stale.push(next);
            }
            key = next;
            first = false;
        }
        for k in stale {
            sys::delete(fd, bytes_of(&k)).map_err(io_err("cls_iif", "delete"))?;
        }
        for &(ifindex, bm) in &c.iif {
            let k = ClsIifKey { slot, ifindex };
            sys::update(fd, bytes_of(&k), bytes_of(&bm), sys::BPF_ANY)
                .map_err(io_err("cls_iif", "update"))?;
        }
        self.slot_mm
            .write(s * size_of::<ClsSlot>(), bytes_of(&c.slot));
        Ok(())
    }

    fn percpu_sum<const N: usize>(
        &self,
        md: &MapData,
        map: &'static str,
        key: u32,
    ) -> Result<[u64; N], AclError> {
        let stride = (N * 8).div_ceil(8) * 8;
        let mut buf = vec![0u8; stride * self.ncpus];
        sys::lookup(md.fd().as_fd(), bytes_of(&key), &mut buf).map_err(io_err(map, "lookup"))?;
        let mut sum = [0u64; N];
        for cpu in buf.chunks_exact(stride) {
            for (i, s) in sum.iter_mut().enumerate() {
                *s += u64::from_ne_bytes(cpu[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            }
        }
        Ok(sum)
    }

    /// Counters of every installed rule, in priority order.
    pub fn counters(&self) -> Result<Vec<RuleCounters>, AclError> {
        self.installed
            .iter()
            .map(|id| self.counter(*id).map(|c| c.unwrap_or_default()))
            .collect()
    }

    /// Counters of one installed rule (`None` when the id is not installed).
    pub fn counter(&self, id: RuleId) -> Result<Option<RuleCounters>, AclError> {
        let Some(&n) = self.counter_of.get(&id) else {
            return Ok(None);
        };
        let [packets, bytes, dropped_packets, dropped_bytes] =
            self.percpu_sum::<4>(&self.counters, "cls_counters", n)?;
        Ok(Some(RuleCounters {
            id,
            packets,
            bytes,
            dropped_packets,
            dropped_bytes,
        }))
    }

    /// Classifier-wide counts.
    pub fn stats(&self) -> Result<ClassifierStats, AclError> {
        let v = self.percpu_sum::<{ CLS_STAT_MAX as usize }>(&self.stats, "cls_stats", 0)?;
        let get = |i: u32| v[i as usize];
        Ok(ClassifierStats {
            classified: get(CLS_STAT_CLASSIFIED),
            matched: get(CLS_STAT_MATCHED),
            dropped: get(CLS_STAT_DROPPED),
            rate_dropped: get(CLS_STAT_RATE_DROPPED),
            remarked: get(CLS_STAT_REMARKED),
        })
    }
}

/// Expected (key size, value size, max entries) of the pinned classifier maps.
pub(crate) fn expected_shape(map: &str) -> Option<(u32, u32, u32)> {
    let s = |t: usize| t as u32;
    Some(match map {
        "cls_ctl" => (4, s(size_of::<ClsCtl>()), 1),
        "cls_slot" => (4, s(size_of::<ClsSlot>()), CLS_SLOTS),
        "cls_rules" => (4, s(size_of::<ClsRule>()), CLS_SLOTS * CLS_MAX_RULES),
        "cls_node" => (4, CLS_NODE_ENTRIES_PER_SLOT * 4, CLS_SLOTS),
        "cls_tab" => (4, CLS_TAB_ENTRIES * 4, CLS_SLOTS),
        "cls_chunk" => (4, CLS_WORDS_PER_SLOT * 8, CLS_SLOTS),
        "cls_iif" => (8, 4, CLS_IIF_MAX),
        "cls_counters" => (4, s(size_of::<ClsCounter>()), CLS_MAX_RULES),
        "cls_rl" => (4, s(size_of::<ClsRl>()), CLS_MAX_RULES),
        "cls_stats" => (4, s(size_of::<ClsStats>()), 1),
        _ => return None,
    })
}

/// Why the classifier maps pinned in `dir` cannot be re-used by this build, if they cannot: a map's
/// shape or the ABI version recorded in `cls_ctl` differs.
fn pinned_mismatch(dir: &Path) -> Result<Option<String>, crate::LoaderError> {
    use crate::LoaderError;
    for name in super::PINNED_MAPS {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let md =
            MapData::from_pin(&path).map_err(|source| LoaderError::Map { map: name, source })?;
        let info = md
            .info()
            .map_err(|source| LoaderError::Map { map: name, source })?;
        let want = expected_shape(name).unwrap_or_default();
        let got = (info.key_size(), info.value_size(), info.max_entries());
        if got != want {
            return Ok(Some(format!(
                "{name}: key/value/max_entries {got:?}, expected {want:?}"
            )));
        }
        if name == "cls_ctl" {
            let mm = Mmap::new(md.fd().as_fd(), 4096).map_err(|source| LoaderError::Io {
                what: "mmap pinned cls_ctl",
                path: path.clone(),
                source,
            })?;
            let v = mm.u32_at(4).load(Ordering::Acquire);
            if v != 0 && v != CLS_ABI_VERSION {
                return Ok(Some(format!(
                    "classifier ABI version {v}, this build speaks {CLS_ABI_VERSION}"
                )));
            }
        }
    }
    Ok(None)
}

/// Checks the classifier maps pinned in `dir` before the loader re-uses them (shapes, and the ABI
/// version recorded in `cls_ctl`). Classifier state is derived: the rules come from the config and
/// FlowSpec, which ribd installs again when it starts. So pins of another classifier ABI (an
/// upgrade) are not refused but removed, and the loader creates them afresh: until the next install
/// no rule applies, and per-rule counters, rate-limiter states and the classifier-wide counts start
/// from zero. A program still attached keeps the old maps (they live while it does) until the new
/// program replaces it. The forwarder's own pins (routes) are not touched. Returns whether the
/// classifier pins were rebuilt.
pub(crate) fn check_pinned(dir: &Path) -> Result<bool, crate::LoaderError> {
    let retired = super::RETIRED_MAPS.iter().find(|m| dir.join(m).exists());
    let why = match retired {
        Some(m) => Some(format!("{m}: a map this build no longer has")),
        None => pinned_mismatch(dir)?,
    };
    let Some(why) = why else {
        return Ok(false);
    };
    tracing::warn!(
        dir = %dir.display(),
        %why,
        "classifier pins of another ABI: removing them to create them afresh (installed rules \
         are gone until the next install; per-rule counters and rate-limiter states restart from 0)"
    );
    for name in super::PINNED_MAPS.iter().chain(super::RETIRED_MAPS.iter()) {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(crate::LoaderError::Io {
                    what: "remove classifier pin of another ABI",
                    path,
                    source,
                });
            }
        }
    }
    Ok(true)
}
