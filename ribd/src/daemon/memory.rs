//! Giving freed heap back to the kernel after bursts of routing work.
//!
//! A full-table load decodes, queues and converts hundreds of MB of UPDATEs on the session threads;
//! all of it is freed once the routes are in the RIB. With glibc's malloc (the allocator before
//! mimalloc, and still the one of the library's tests) the freed pages of its per-thread arenas
//! stayed resident: measured on the real 512,621-prefix table (`testbed bench --sections ingest
//! --systems ribd-rib`), 126 MB of a 200 MB heap were free chunks in one session-thread arena after
//! the load, 46% of the daemon's RSS, until `malloc_trim(0)` returned them. The daemon now
//! allocates with mimalloc (see `main.rs`), which returns (purges) a freed page itself shortly
//! after it empties; `mi_collect(true)` does it at once for what the calling thread and the shared
//! arenas hold. [`release_free_heap`] asks both allocators: each call costs little when its
//! allocator holds nothing.
//!
//! ```text
//!   core: after each batch of events and on each 1 s tick
//!      └─► Trim::after_events / Trim::on_tick (work done since the last trim, End-of-RIB seen, quiet)
//!             └─► release_memory: Rib::shrink, then mi_collect(true) and malloc_trim(0)
//!                    when ≥ MIN_WORK route operations happened since the last trim and a peer just
//!                    sent End-of-RIB, or a tick passed without work, or MAX_INTERVAL passed
//!                    (sustained churn)
//!   core, on a tick: Dataplane::settle_load joined the first sync's background IPv6 table
//!      └─► release_memory once more (the load's sorted routes it dropped were freed after the
//!          End-of-RIB trim)
//! ```

use std::time::{Duration, Instant};

use crate::rib::Rib;

/// Route operations (prefixes announced or withdrawn, FIB deltas) since the last trim below which
/// a trim is not worth its walk over the heap.
pub const MIN_WORK: u64 = 50_000;
/// Under sustained churn (never a quiet tick), trim at most this often.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// When to return freed heap to the kernel.
#[derive(Debug)]
pub struct Trim {
    /// Work counter at the last tick and at the last trim.
    at_tick: u64,
    at_trim: u64,
    /// End-of-RIB markers counted at the last check.
    eor_seen: usize,
    last_trim: Instant,
}

impl Trim {
    pub fn new(now: Instant) -> Trim {
        Trim {
            at_tick: 0,
            at_trim: 0,
            eor_seen: 0,
            last_trim: now,
        }
    }

    /// After a batch of events: `work` is the running count of route operations, `eor` the number of
    /// End-of-RIB markers currently received from peers. Returns whether a trim is due.
    pub fn after_events(&mut self, now: Instant, work: u64, eor: usize) -> bool {
        self.due(now, work, eor, false)
    }

    /// On the periodic tick; a tick without work since the previous one counts as quiet.
    pub fn on_tick(&mut self, now: Instant, work: u64, eor: usize) -> bool {
        let quiet = work == self.at_tick;
        self.at_tick = work;
        self.due(now, work, eor, quiet)
    }

    fn due(&mut self, now: Instant, work: u64, eor: usize, quiet: bool) -> bool {
        // Fewer markers: a session went down or restarted, its End-of-RIB will be counted again.
        let eor_new = eor > self.eor_seen;
        self.eor_seen = eor;
        if work.saturating_sub(self.at_trim) < MIN_WORK {
            return false;
        }
        if !(eor_new || quiet || now.duration_since(self.last_trim) >= MAX_INTERVAL) {
            return false;
        }
        self.at_trim = work;
        self.last_trim = now;
        true
    }
}

/// Releases what a load or a burst of churn left unused: the RIB tables' spare capacity (their
/// bucket vectors grow by doubling while a table arrives: 10.6 B per prefix of the real
/// 512,621-prefix table, `cargo bench -p ribd --bench rib_load`), then the free heap pages (see
/// [`release_free_heap`]). Logs both.
pub fn release_memory(rib: &mut Rib) {
    let t = Instant::now();
    let tables = rib.shrink();
    tracing::info!(
        bytes = tables,
        ms = t.elapsed().as_millis() as u64,
        "released the RIB tables' spare capacity"
    );
    release_free_heap();
}

/// Returns free heap pages to the kernel (mimalloc's and every glibc malloc arena's); logs the
/// resident set before and after.
pub fn release_free_heap() {
    let before = resident_bytes();
    let t = Instant::now();
    // SAFETY: mi_collect only walks mimalloc's own heap and arenas; it is safe to call from any
    // thread at any time, whichever allocator is the global one.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
    let after = resident_bytes();
    tracing::info!(
        rss_before_mib = before / (1 << 20),
        rss_after_mib = after / (1 << 20),
        ms = t.elapsed().as_millis() as u64,
        "returned freed heap to the kernel"
    );
}

/// VmRSS of this process (0 when unknown).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_gives_back_the_tables_spare_capacity() {
        use std::net::{IpAddr, Ipv4Addr};

        use crate::rib::RibConfig;
        use crate::rib::attrs::Attrs;
        use crate::rib::decision::{PeerInfo, PeerKind};

        let mut rib = Rib::new(RibConfig::default());
        let id = rib
            .add_peer(PeerInfo {
                name: "up".into(),
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                router_id: Ipv4Addr::new(192, 0, 2, 1),
                remote_as: 64500,
                local_as: 65000,
                kind: PeerKind::Ebgp,
                confed: false,
            })
            .expect("a peer slot");
        let a = rib
            .intern(Attrs::default().with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))));
        // 100 buckets (one per /16) of 200 prefixes each: vectors grown by doubling hold 256.
        for x in 0..100u8 {
            for y in 0..200u8 {
                let p = format!("10.{x}.{y}.0/24").parse().expect("a prefix");
                rib.announce(id, p, 0, a.clone());
            }
        }
        let entry = std::mem::size_of::<(ipnet::Ipv4Net, crate::rib::table::Paths)>();
        assert_eq!(
            rib.ipv4().memory().entries,
            100 * 256 * entry,
            "grown by doubling"
        );
        release_memory(&mut rib);
        // Each bucket keeps at most an eighth and two entries of spare room.
        assert!(rib.ipv4().memory().entries <= 100 * (200 + 200 / 8 + 2) * entry);
        assert_eq!(rib.ipv4().len(), 20_000, "nothing is lost");
        assert_eq!(
            rib.shrink(),
            0,
            "a second release finds nothing to give back"
        );
    }

    #[test]
    fn small_work_never_trims() {
        let t0 = Instant::now();
        let mut t = Trim::new(t0);
        assert!(!t.after_events(t0, MIN_WORK - 1, 1));
        assert!(!t.on_tick(t0, MIN_WORK - 1, 1));
        assert!(!t.on_tick(t0 + MAX_INTERVAL * 2, MIN_WORK - 1, 1));
    }

    #[test]
    fn end_of_rib_after_a_load_trims_once() {
        let t0 = Instant::now();
        let mut t = Trim::new(t0);
        assert!(!t.after_events(t0, 400_000, 0), "still loading");
        assert!(t.after_events(t0, 512_621, 1), "End-of-RIB arrived");
        assert!(!t.after_events(t0, 512_700, 1), "nothing new since");
        // A second peer's End-of-RIB after another table's worth of work trims again.
        assert!(t.after_events(t0, 1_100_000, 2));
    }

    #[test]
    fn a_quiet_tick_after_work_trims_and_busy_ticks_do_not() {
        let t0 = Instant::now();
        let mut t = Trim::new(t0);
        let s = Duration::from_secs(1);
        assert!(!t.on_tick(t0 + s, 100_000, 0), "busy");
        assert!(!t.on_tick(t0 + 2 * s, 200_000, 0), "busy");
        assert!(t.on_tick(t0 + 3 * s, 200_000, 0), "quiet after work");
        assert!(!t.on_tick(t0 + 4 * s, 200_000, 0), "quiet, nothing new");
    }

    #[test]
    fn sustained_churn_trims_at_the_interval() {
        let t0 = Instant::now();
        let mut t = Trim::new(t0);
        let mut work = 0;
        let mut trims = 0;
        for s in 1..=150u64 {
            work += 10_000;
            if t.on_tick(t0 + Duration::from_secs(s), work, 0) {
                trims += 1;
            }
        }
        assert_eq!(trims, 2, "at 60 s and 120 s");
    }

    #[test]
    fn a_peer_going_down_rearms_its_end_of_rib() {
        let t0 = Instant::now();
        let mut t = Trim::new(t0);
        assert!(t.after_events(t0, 600_000, 1));
        assert!(!t.after_events(t0, 600_000, 0), "session down");
        assert!(
            t.after_events(t0, 1_200_000, 1),
            "reloaded, End-of-RIB again"
        );
    }
}
