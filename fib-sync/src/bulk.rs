//! The initial load into empty maps: a flat DIR-24-8 image built in plain arrays (shortest prefixes
//! painted first, tbl8 groups numbered in order of their /24), written groups first and tbl24 after;
//! the incremental shadow (`Dir24`) for later batches is built from the same routes on another
//! thread, inserting the long prefixes in the same order so it numbers the groups identically.
//!
//! ```text
//!   routes ─► sort by length ─► val24[16M] painted ─► groups (/24 order) ─► dir8 stores ─► dir24 stores
//!          └─► thread: Dir24 inserts (long prefixes in group order, then short) ─► joined before the next batch
//! ```

use std::thread::JoinHandle;
use std::time::Duration;

use fib_ebpf::abi::{DIR_ENTRY_TBL8, DIR8_ENTRIES};
use fib_ebpf::dir24::{Dir24, Dir24Sink, NullSink};
use ipnet::Ipv4Net;

use crate::SyncError;

/// A shadow being built in the background, and what it must agree with.
pub(crate) struct PendingShadow {
    pub job: JoinHandle<Result<Dir24, SyncError>>,
    /// (/24 index, group) pairs the maps hold.
    pub groups: Vec<u32>,
}

impl PendingShadow {
    pub fn join(self) -> Result<Dir24, SyncError> {
        let d = self
            .job
            .join()
            .map_err(|_| SyncError::Map("the DIR-24-8 shadow builder panicked".into()))??;
        for (g, &idx) in self.groups.iter().enumerate() {
            if d.entry24(idx) != DIR_ENTRY_TBL8 | g as u32 {
                return Err(SyncError::Map(format!(
                    "the DIR-24-8 shadow numbered the group of /24 {idx:#x} differently from the maps"
                )));
            }
        }
        Ok(d)
    }
}

/// Writes the IPv4 `routes` (prefix, path-list id) into empty maps through `sink`, and starts the
/// shadow build. Returns the pending shadow.
pub(crate) fn load(
    routes: Vec<(Ipv4Net, u32)>,
    sink: &mut impl Dir24Sink,
    max_groups: u32,
    quarantine: Duration,
) -> Result<PendingShadow, SyncError> {
    let (mut short, mut long): (Vec<_>, Vec<_>) =
        routes.into_iter().partition(|(n, _)| n.prefix_len() <= 24);
    short.sort_unstable_by_key(|(n, _)| n.prefix_len());
    long.sort_unstable_by_key(|(n, _)| (u32::from(n.network()) >> 8, n.prefix_len()));
    let mut val24 = vec![0u32; 1 << 24];
    for (n, v) in &short {
        let start = (u32::from(n.network()) >> 8) as usize;
        let count = 1usize << (24 - n.prefix_len());
        val24[start..start + count].fill(*v);
    }
    let mut groups: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < long.len() {
        let idx = u32::from(long[i].0.network()) >> 8;
        let g = groups.len() as u32;
        if g >= max_groups {
            return Err(SyncError::Map(format!(
                "all {max_groups} tbl8 groups are in use"
            )));
        }
        let mut table = [val24[idx as usize]; DIR8_ENTRIES];
        while i < long.len() && u32::from(long[i].0.network()) >> 8 == idx {
            let (n, v) = long[i];
            let start = (u32::from(n.network()) & 0xff) as usize;
            table[start..start + (1usize << (32 - n.prefix_len()))].fill(v);
            i += 1;
        }
        for (j, &v) in table.iter().enumerate() {
            sink.store8(g, j as u8, v);
        }
        groups.push(idx);
        val24[idx as usize] = DIR_ENTRY_TBL8 | g;
    }
    for (idx, &e) in val24.iter().enumerate() {
        sink.store24(idx as u32, e);
    }
    drop(val24);
    let job = std::thread::Builder::new()
        .name("dir24-shadow".into())
        .spawn(move || {
            let mut d = Dir24::new(max_groups);
            d.set_quarantine_time(quarantine);
            for (n, v) in long.iter().chain(short.iter()) {
                d.insert(&mut NullSink, n.network(), n.prefix_len(), *v)
                    .map_err(|e| SyncError::Map(e.to_string()))?;
            }
            Ok(d)
        })
        .map_err(|e| SyncError::Map(format!("spawning the shadow builder: {e}")))?;
    Ok(PendingShadow { job, groups })
}
