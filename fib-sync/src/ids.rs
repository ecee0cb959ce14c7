//! Id pools with quarantine: an id handed back is reused only after at least two more committed
//! batches and a minimum time, so a packet that read the old id just before it was unlinked never
//! finds it reused under it (path-lists, nexthop groups and next-hops all use one pool each).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Batches an id waits before reuse.
pub const QUARANTINE_BATCHES: u64 = 2;

#[derive(Debug, Clone)]
pub struct IdPool {
    what: &'static str,
    /// Next never-used id.
    next: u32,
    end: u32,
    free: Vec<u32>,
    quarantine: VecDeque<(u32, u64, Instant)>,
    min_time: Duration,
    in_use: usize,
}

impl IdPool {
    /// Ids `start..end`.
    pub fn new(what: &'static str, start: u32, end: u32, min_time: Duration) -> IdPool {
        IdPool {
            what,
            next: start,
            end,
            free: Vec::new(),
            quarantine: VecDeque::new(),
            min_time,
            in_use: 0,
        }
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    /// A free id, or `None` when every id is in use or in quarantine.
    pub fn alloc(&mut self) -> Option<u32> {
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.next < self.end => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.in_use += 1;
        Some(id)
    }

    /// Marks `id` as in use although it was not allocated here (rebuilt from pinned maps). Ids
    /// below it that are not in use are quarantined: the previous process may have retired them
    /// moments ago. Call in increasing id order, then [`IdPool::finish_adopt`].
    pub fn adopt(&mut self, id: u32, batch: u64, now: Instant) {
        debug_assert!(id >= self.next, "adopt in increasing order");
        while self.next < id {
            self.quarantine.push_back((self.next, batch, now));
            self.next += 1;
        }
        self.next = id + 1;
        self.in_use += 1;
    }

    /// Hands `id` back: reusable after [`QUARANTINE_BATCHES`] more batches and the minimum time.
    pub fn retire(&mut self, id: u32, batch: u64, now: Instant) {
        self.in_use -= 1;
        self.quarantine.push_back((id, batch, now));
    }

    /// Releases quarantined ids whose wait is over; `batch` is the number of batches committed.
    /// An id retired while building batch `b + 1` (`b` committed before it) waits for that batch and
    /// [`QUARANTINE_BATCHES`] more.
    pub fn release(&mut self, batch: u64, now: Instant) {
        while let Some(&(id, b, t)) = self.quarantine.front() {
            if b + QUARANTINE_BATCHES < batch && now.duration_since(t) >= self.min_time {
                self.quarantine.pop_front();
                self.free.push(id);
            } else {
                break;
            }
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    pub fn is_quarantined(&self, id: u32) -> bool {
        self.quarantine.iter().any(|&(q, _, _)| q == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_id_waits_two_batches_and_the_minimum_time() {
        let t0 = Instant::now();
        let mut p = IdPool::new("t", 10, 12, Duration::from_secs(1));
        assert_eq!(p.alloc(), Some(10));
        assert_eq!(p.alloc(), Some(11));
        assert_eq!(p.alloc(), None);
        p.retire(10, 5, t0);
        p.release(6, t0 + Duration::from_secs(5));
        assert_eq!(p.alloc(), None, "the retiring batch itself");
        p.release(7, t0 + Duration::from_secs(5));
        assert_eq!(p.alloc(), None, "one batch more is not enough");
        p.release(8, t0 + Duration::from_millis(500));
        assert_eq!(p.alloc(), None, "two batches but not a second");
        p.release(8, t0 + Duration::from_secs(1));
        assert_eq!(p.alloc(), Some(10));
    }

    #[test]
    fn adopted_ids_are_in_use_and_gaps_wait_in_quarantine() {
        let t0 = Instant::now();
        let mut p = IdPool::new("t", 1, 100, Duration::ZERO);
        p.adopt(3, 0, t0);
        p.adopt(5, 0, t0);
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.quarantined(), 3, "1, 2 and 4");
        assert_eq!(p.alloc(), Some(6));
        p.release(3, t0);
        let mut got: Vec<u32> = (0..3).filter_map(|_| p.alloc()).collect();
        got.sort();
        assert_eq!(got, vec![1, 2, 4]);
    }
}
