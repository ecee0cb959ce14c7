//! RIB ingest benchmark on the real full IPv4 table (python3-pyasn's 512,621 prefixes with their real
//! origin ASes): time to converge (import + decision + FIB deltas) and heap bytes per prefix, from one
//! peer and from four. Prints figures; asserts nothing about time.
//!
//!   cargo bench -p ribd --bench rib_load
//!
//! Heap bytes are counted by a global allocator wrapper (live bytes requested), so the figure is the
//! RIB's own, independent of allocator slack; RSS growth is printed beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ipnet::IpNet;
use ribd::rib::attrs::{AsPath, Attrs};
use ribd::rib::decision::{PeerInfo, PeerKind};
use ribd::rib::{Rib, RibConfig};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<usize>().ok())
        })
        .unwrap_or(0)
        * 4096
}

const TABLE: &str = "/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz";

fn load_table() -> Vec<(IpNet, u32)> {
    let f = std::fs::File::open(TABLE)
        .unwrap_or_else(|e| panic!("{TABLE}: {e} (apt-get install python3-pyasn)"));
    let r = BufReader::new(flate2::read::GzDecoder::new(f));
    r.lines()
        .map_while(Result::ok)
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let (p, a) = l.split_once('\t')?;
            Some((p.parse().ok()?, a.trim().parse().ok()?))
        })
        .collect()
}

/// A realistic AS path for `origin` as seen from `peer_as`: 1–4 transit hops chosen from the origin so that
/// prefixes of one origin share attributes (as they do in real tables).
fn path_for(peer_as: u32, origin: u32) -> Vec<u32> {
    let h = origin.wrapping_mul(2_654_435_761);
    let transits = [174, 3356, 1299, 2914, 6939, 6453, 3257, 6762, 9002, 4637];
    let hops = 1 + (h >> 28) as usize % 4;
    let mut p = vec![peer_as];
    for i in 0..hops {
        p.push(transits[(h as usize >> (i * 4)) % transits.len()]);
    }
    p.push(origin);
    p
}

fn peer(i: u8) -> PeerInfo {
    PeerInfo {
        name: format!("upstream{i}"),
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)),
        router_id: Ipv4Addr::new(10, 0, 0, i),
        remote_as: 64500 + i as u32,
        local_as: 65000,
        kind: PeerKind::Ebgp,
        confed: false,
    }
}

/// Feeds the table from `peers` the way sessions do: attributes converted and interned once per
/// UPDATE (consecutive prefixes with the same attributes), then every prefix announced.
fn ingest(rib: &mut Rib, table: &[(IpNet, u32)], peer_ids: &[u32], first: u8) -> (usize, f64) {
    let t = Instant::now();
    let mut n = 0;
    let mut deltas = 0;
    for (k, &pid) in peer_ids.iter().enumerate() {
        let peer_as = 64500 + (first as u32 + k as u32);
        let nh = IpAddr::V4(Ipv4Addr::new(203, 0, 113, first + k as u8));
        let mut last: Option<(u32, ribd::rib::attrs::AttrRef)> = None;
        for (i, &(prefix, origin)) in table.iter().enumerate() {
            let attrs = match &last {
                Some((o, a)) if *o == origin => a.clone(),
                _ => {
                    let a = rib.intern(Attrs {
                        as_path: AsPath::sequence(path_for(peer_as, origin)),
                        next_hop: Some(nh),
                        communities: Box::new([(peer_as << 16) | (origin & 0xffff)]),
                        ..Attrs::default()
                    });
                    last = Some((origin, a.clone()));
                    a
                }
            };
            rib.announce(pid, prefix, 0, attrs);
            n += 1;
            if i % 4096 == 0 {
                deltas += rib.take_fib_deltas().len();
            }
        }
        deltas += rib.take_fib_deltas().len();
    }
    let _ = deltas;
    (n, t.elapsed().as_secs_f64())
}

fn main() {
    let table = load_table();
    let prefixes = table.len();
    println!("real IPv4 table: {prefixes} prefixes ({TABLE})");
    let distinct_origins = table
        .iter()
        .map(|(_, o)| *o)
        .collect::<std::collections::HashSet<_>>()
        .len();
    println!("distinct origin ASes: {distinct_origins}");

    let mut results: HashMap<&str, f64> = HashMap::new();
    for peers in [1u8, 4] {
        let heap0 = LIVE.load(Ordering::Relaxed);
        let rss0 = rss();
        let mut rib = Rib::new(RibConfig::default());
        let ids: Vec<u32> = (1..=peers).map(|i| rib.add_peer(peer(i))).collect();
        let (n, secs) = ingest(&mut rib, &table, &ids, 1);
        rib.shrink();
        let heap = (LIVE.load(Ordering::Relaxed) - heap0) as f64;
        let rss_grow = rss().saturating_sub(rss0) as f64;
        println!(
            "{peers} peer(s): {n} prefix-paths in {secs:.3} s = {:.2} M prefix-paths/s; heap {:.1} MB = {:.1} B/prefix ({:.1} B/prefix-path), RSS +{:.1} MB; {} attribute sets",
            n as f64 / secs / 1e6,
            heap / 1e6,
            heap / prefixes as f64,
            heap / n as f64,
            rss_grow / 1e6,
            rib.attr_sets(),
        );
        results.insert(if peers == 1 { "one" } else { "four" }, heap);
        assert_eq!(rib.ipv4().len(), prefixes);
        drop(rib);
    }
    let extra = (results["four"] - results["one"]) / (3.0 * prefixes as f64);
    println!("bytes per additional prefix-path (peers 2–4): {extra:.1} B");
    println!(
        "baselines measured on this table (issue 6): BIRD 2.0.12 119 B/prefix, FRR 1,393, GoBGP 1,775"
    );
    println!(
        "ratio to BIRD (one peer): {:.2}x",
        results["one"] / prefixes as f64 / 119.0
    );
}
