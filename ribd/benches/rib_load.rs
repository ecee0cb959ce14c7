//! RIB ingest benchmark: time to converge (attributes interned + decision + FIB deltas) and heap bytes
//! per prefix and per additional prefix-path, from one peer and from four, on
//! - the real full IPv4 table (python3-pyasn's 512,621 prefixes with their real origin ASes, AS paths
//!   synthesised per origin), and
//! - the scaled synthetic full tables of `testbed::tablegen` (1.05M IPv4 + 240k IPv6, real prefix-length,
//!   AS-path, community and attribute-sharing mix); each peer's paths start with that peer's AS and
//!   carry its next-hop.
//!
//! Prints figures (median and min of `RIB_LOAD_RUNS`, default 3, for the rates); asserts nothing about
//! time. `RIB_LOAD_SYNTHETIC=0` skips the synthetic tables.
//!
//!   cargo bench -p ribd --bench rib_load
//!
//! Heap bytes are counted by a global allocator wrapper (live bytes requested), so the figure is the
//! RIB's own, independent of allocator slack; RSS growth is printed beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ipnet::IpNet;
use ribd::rib::attrs::{AsPath, Attrs, LargeCommunity, Origin};
use ribd::rib::decision::{PeerInfo, PeerKind};
use ribd::rib::table::PeerId;
use ribd::rib::{Rib, RibConfig};
use testbed::tablegen;

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
fn ingest(rib: &mut Rib, table: &[(IpNet, u32)], peer_ids: &[PeerId], first: u8) -> (usize, f64) {
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

/// The synthetic table's attribute sets for one peer: its AS first, its next-hop.
fn gen_attrs(set: &tablegen::AttrSet, peer_as: u32, k: u8) -> Attrs {
    let mut path = set.as_path.clone();
    match path.first_mut() {
        Some(first) => *first = peer_as,
        None => path.push(peer_as),
    }
    Attrs {
        origin: match set.origin {
            0 => Origin::Igp,
            1 => Origin::Egp,
            _ => Origin::Incomplete,
        },
        as_path: AsPath::sequence(path),
        next_hop: Some(match set.next_hop {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, k)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, k as u16)),
        }),
        med: set.med,
        communities: set
            .communities
            .iter()
            .map(|(a, b)| ((*a as u32) << 16) | *b as u32)
            .collect(),
        ..Attrs::default()
    }
    .with_large_communities(
        set.large_communities
            .iter()
            .map(|(g, a, b)| LargeCommunity {
                global: *g,
                local1: *a,
                local2: *b,
            })
            .collect::<Vec<_>>(),
    )
}

/// Feeds the synthetic table from each peer in turn (attributes interned once per set and peer).
fn ingest_gen(rib: &mut Rib, table: &tablegen::Table, peer_ids: &[PeerId]) -> (usize, f64) {
    let t = Instant::now();
    let mut n = 0;
    for (k, &pid) in peer_ids.iter().enumerate() {
        let peer_as = 64501 + k as u32;
        let mut cache: Vec<Option<ribd::rib::attrs::AttrRef>> = vec![None; table.attrs.len()];
        for (i, &(prefix, set)) in table.routes.iter().enumerate() {
            let a = match &cache[set as usize] {
                Some(a) => a.clone(),
                None => {
                    let a = rib.intern(gen_attrs(&table.attrs[set as usize], peer_as, k as u8 + 1));
                    cache[set as usize] = Some(a.clone());
                    a
                }
            };
            rib.announce(pid, prefix, 0, a);
            n += 1;
            if i % 4096 == 0 {
                let _ = rib.take_fib_deltas();
            }
        }
        let _ = rib.take_fib_deltas();
    }
    (n, t.elapsed().as_secs_f64())
}

/// Loads a table from the given peers: (prefix-paths, seconds).
type Loader<'a> = dyn Fn(&mut Rib, &[PeerId]) -> (usize, f64) + 'a;

/// One scenario's figures over `runs` runs: rates (median, min), heap of the last run.
struct Figures {
    paths: usize,
    secs: Vec<f64>,
    heap: f64,
    rss: f64,
    sets: usize,
}

fn run(runs: usize, peers: u8, prefixes: usize, load: &Loader<'_>) -> Figures {
    let mut f = Figures {
        paths: 0,
        secs: Vec::new(),
        heap: 0.0,
        rss: 0.0,
        sets: 0,
    };
    for _ in 0..runs {
        let heap0 = LIVE.load(Ordering::Relaxed);
        let rss0 = rss();
        let mut rib = Rib::new(RibConfig::default());
        let ids: Vec<PeerId> = (1..=peers).map(|i| rib.add_peer(peer(i))).collect();
        let (n, secs) = load(&mut rib, &ids);
        rib.shrink();
        f.heap = (LIVE.load(Ordering::Relaxed) - heap0) as f64;
        f.rss = rss().saturating_sub(rss0) as f64;
        f.paths = n;
        f.sets = rib.attr_sets();
        f.secs.push(secs);
        assert_eq!(rib.ipv4().len() + rib.ipv6().len(), prefixes);
        drop(rib);
    }
    f.secs.sort_by(|a, b| a.total_cmp(b));
    f
}

fn report(name: &str, prefixes: usize, one: &Figures, four: &Figures) {
    for (peers, f) in [(1, one), (4, four)] {
        let med = f.secs[f.secs.len() / 2];
        let min = f.secs[0];
        println!(
            "{name}, {peers} peer(s): {} prefix-paths, converge median {med:.3} s (min {min:.3} s) = {:.2} M prefix-paths/s median ({:.2} best); heap {:.1} MB = {:.1} B/prefix; RSS +{:.1} MB; {} attribute sets",
            f.paths,
            f.paths as f64 / med / 1e6,
            f.paths as f64 / min / 1e6,
            f.heap / 1e6,
            f.heap / prefixes as f64,
            f.rss / 1e6,
            f.sets,
        );
    }
    let extra = (four.heap - one.heap) / (3.0 * prefixes as f64);
    println!(
        "{name}: bytes per additional prefix-path (peers 2-4): {extra:.1} B (goal <= 40); one peer {:.1} B/prefix = {:.2}x BIRD's 119 (goal <= 0.7x)",
        one.heap / prefixes as f64,
        one.heap / prefixes as f64 / 119.0
    );
}

fn main() {
    let runs: usize = std::env::var("RIB_LOAD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let table = load_table();
    let prefixes = table.len();
    println!("real IPv4 table: {prefixes} prefixes ({TABLE})");
    let distinct_origins = table
        .iter()
        .map(|(_, o)| *o)
        .collect::<std::collections::HashSet<_>>()
        .len();
    println!("distinct origin ASes: {distinct_origins}; {runs} run(s) per scenario");
    let real = |rib: &mut Rib, ids: &[PeerId]| ingest(rib, &table, ids, 1);
    let one = run(runs, 1, prefixes, &real);
    let four = run(runs, 4, prefixes, &real);
    report("real 513k IPv4", prefixes, &one, &four);
    println!(
        "baselines measured on this table (issue 6): BIRD 2.0.12 119 B/prefix, FRR 1,393, GoBGP 1,775"
    );

    if std::env::var("RIB_LOAD_SYNTHETIC").as_deref() == Ok("0") {
        return;
    }
    let t = Instant::now();
    let gen_table = match tablegen::generate(&tablegen::Config::default()) {
        Ok(t) => t,
        Err(e) => {
            println!("synthetic tables skipped: {e:#}");
            return;
        }
    };
    let n = gen_table.len();
    let v4 = gen_table
        .routes
        .iter()
        .filter(|(p, _)| p.addr().is_ipv4())
        .count();
    println!(
        "synthetic full tables (testbed::tablegen, seed 1): {v4} IPv4 + {} IPv6 routes, {} attribute sets ({:.2} per route), generated in {:.1} s",
        n - v4,
        gen_table.attrs.len(),
        gen_table.sharing_ratio(),
        t.elapsed().as_secs_f64()
    );
    let synth = |rib: &mut Rib, ids: &[PeerId]| ingest_gen(rib, &gen_table, ids);
    let one = run(runs, 1, n, &synth);
    let four = run(runs, 4, n, &synth);
    report("synthetic 1.05M+240k", n, &one, &four);
}
