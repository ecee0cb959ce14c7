//! RIB ingest benchmark: time to converge and bytes per prefix and per additional prefix-path, from one
//! peer and from four, on
//! - the real full IPv4 table (python3-pyasn's 512,621 prefixes with their real origin ASes, AS paths
//!   synthesised per origin: 47k attribute sets per peer);
//! - the same 512,621 prefixes with the attribute mix `testbed bench` feeds (`testbed::tablegen`: real
//!   AS-path, community and MED sharing, 159k sets per peer): what the testbed's "ribd RIB only" runs hold;
//! - through the daemon's import path: decoded UPDATEs of that feed through `Inbound::updates` (import
//!   checks, an accept-all policy, decision, FIB deltas and best-path changes taken per batch of 1,024
//!   UPDATEs, as the core does), timed in CPU time of the one thread doing it; then the first peer's
//!   table once more (a route refresh: the same sets, nothing changes); from four peers of four
//!   ASes (each further path goes behind the best) and from four peers of one AS with the same AS
//!   paths, as `testbed bench`'s feeders send them (every prefix a 4-way ECMP set);
//! - optionally the scaled synthetic full tables (1.05M IPv4 + 240k IPv6, `RIB_LOAD_SYNTHETIC=1`).
//!
//! For profiling: `RIB_LOAD_ONLY=import` runs only the import path, `RIB_LOAD_ONLY=import:1`,
//! `import:4` or `import:ecmp` only that case, and `RIB_LOAD_AGAIN=0` leaves out the table sent again.
//!
//! Each peer's paths start with that peer's AS and carry its next-hop. Prints figures (median and min of
//! `RIB_LOAD_RUNS`, default 3, for the rates, in thread CPU time and wall time) against the goals of
//! issue 6, with the load average; asserts nothing about time.
//!
//!   cargo bench -p ribd --bench rib_load
//!
//! The heap is the daemon's allocator, mimalloc, wrapped by a counting global allocator: bytes
//! requested, and the usable size of the blocks mimalloc gave for them (its size classes); the RSS
//! growth (RssAnon, after `mi_collect(true)`, first run of each scenario) is printed beside them,
//! and the RIB's own
//! accounting (`Rib::memory`) says which part holds the bytes.

use std::alloc::{GlobalAlloc, Layout};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bgp::wire::{Context, Message, Update};
use ipnet::IpNet;
use ribd::inbound::Inbound;
use ribd::rib::attrs::{AsPath, AttrRef, Attrs, LargeCommunity, Origin};
use ribd::rib::decision::{PeerInfo, PeerKind};
use ribd::rib::table::PeerId;
use ribd::rib::{NhState, Rib, RibConfig, RibMemory};
use testbed::tablegen;

mod common;

struct Counting;
/// Bytes requested and live.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The usable size of the blocks mimalloc gave for them.
static CHUNKS: AtomicIsize = AtomicIsize::new(0);
/// Live allocations.
static COUNT: AtomicIsize = AtomicIsize::new(0);

/// The usable size of mimalloc's block at `p`.
fn usable(p: *const u8) -> isize {
    // SAFETY: `p` is a live block mimalloc allocated.
    unsafe { libmimalloc_sys::mi_usable_size(p.cast()) as isize }
}

// SAFETY: forwards to mimalloc (the daemon's allocator) and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { ribd::alloc::Mimalloc.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
            CHUNKS.fetch_add(usable(p), Ordering::Relaxed);
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        CHUNKS.fetch_sub(usable(p), Ordering::Relaxed);
        COUNT.fetch_sub(1, Ordering::Relaxed);
        unsafe { ribd::alloc::Mimalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let was = usable(p);
        let q = unsafe { ribd::alloc::Mimalloc.realloc(p, l, n) };
        if !q.is_null() {
            LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
            CHUNKS.fetch_add(usable(q) - was, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

#[derive(Clone, Copy, Default)]
struct Heap {
    live: isize,
    chunks: isize,
    count: isize,
}

fn heap() -> Heap {
    Heap {
        live: LIVE.load(Ordering::Relaxed),
        chunks: CHUNKS.load(Ordering::Relaxed),
        count: COUNT.load(Ordering::Relaxed),
    }
}

/// Anonymous resident bytes of the process, after returning free heap pages to the kernel.
fn rss_anon() -> usize {
    // SAFETY: mimalloc's own collection (purges the pages it holds free), then a plain libc call
    // (what little glibc's malloc holds).
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libc::malloc_trim(0);
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

const TABLE: &str = "/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz";

/// Issue 6's baselines and goals.
const BIRD_B_PER_PREFIX: f64 = 119.0;
const GOAL_RATIO: f64 = 0.7;
const GOAL_EXTRA_PATH: f64 = 40.0;
const GOAL_RATE: f64 = 3.0e6;

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
fn ingest(rib: &mut Rib, table: &[(IpNet, u32)], peer_ids: &[PeerId], first: u8) -> usize {
    let mut n = 0;
    for (k, &pid) in peer_ids.iter().enumerate() {
        let peer_as = 64500 + (first as u32 + k as u32);
        let nh = IpAddr::V4(Ipv4Addr::new(203, 0, 113, first + k as u8));
        let mut last: Option<(u32, AttrRef)> = None;
        for (i, &(prefix, origin)) in table.iter().enumerate() {
            let attrs = match &last {
                Some((o, a)) if *o == origin => a.clone(),
                _ => {
                    let a = rib.intern(
                        Attrs::default()
                            .with_as_path(AsPath::sequence(path_for(peer_as, origin)))
                            .with_next_hop(Some(nh))
                            .with_communities([(peer_as << 16) | (origin & 0xffff)]),
                    );
                    last = Some((origin, a.clone()));
                    a
                }
            };
            rib.announce(pid, prefix, 0, attrs);
            n += 1;
            if i % 4096 == 0 {
                let _ = rib.take_fib_deltas();
            }
        }
        let _ = rib.take_fib_deltas();
    }
    n
}

/// The generated table's attribute sets for one peer: its AS first, its next-hop.
fn gen_attrs(set: &tablegen::AttrSet, peer_as: u32, k: u8) -> Attrs {
    let mut path = set.as_path.clone();
    match path.first_mut() {
        Some(first) => *first = peer_as,
        None => path.push(peer_as),
    }
    Attrs::default()
        .with_origin(match set.origin {
            0 => Origin::Igp,
            1 => Origin::Egp,
            _ => Origin::Incomplete,
        })
        .with_as_path(AsPath::sequence(path))
        .with_next_hop(Some(match set.next_hop {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, k)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, k as u16)),
        }))
        .with_med(set.med)
        .with_communities(
            set.communities
                .iter()
                .map(|(a, b)| ((*a as u32) << 16) | *b as u32)
                .collect::<Vec<u32>>(),
        )
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

/// Feeds a generated table from each peer in turn (attributes interned once per set and peer).
fn ingest_gen(rib: &mut Rib, table: &tablegen::Table, peer_ids: &[PeerId]) -> usize {
    let mut n = 0;
    for (k, &pid) in peer_ids.iter().enumerate() {
        let peer_as = 64501 + k as u32;
        let mut cache: Vec<Option<AttrRef>> = vec![None; table.attrs.len()];
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
    n
}

/// Loads a table from the given peers into a fresh RIB; returns the prefix-paths announced.
type Loader<'a> = dyn Fn(&mut Rib, &[PeerId]) -> usize + 'a;

/// One scenario's figures over `runs` runs: times (sorted), heap and RSS of the first run.
struct Figures {
    paths: usize,
    prefixes: usize,
    cpu: Vec<f64>,
    wall: Vec<f64>,
    heap: Heap,
    rss: f64,
    mem: RibMemory,
    /// Table capacity `Rib::shrink` released after the load, and its wall time (first run).
    shrunk: usize,
    shrink_secs: f64,
}

impl Figures {
    fn new(prefixes: usize) -> Figures {
        Figures {
            paths: 0,
            prefixes,
            cpu: Vec::new(),
            wall: Vec::new(),
            heap: Heap::default(),
            rss: 0.0,
            mem: RibMemory::default(),
            shrunk: 0,
            shrink_secs: 0.0,
        }
    }

    fn finish(mut self) -> Figures {
        self.cpu.sort_by(|a, b| a.total_cmp(b));
        self.wall.sort_by(|a, b| a.total_cmp(b));
        self
    }

    /// (median, best) prefix-paths per second of thread CPU time, and of wall time.
    fn rates(&self) -> ((f64, f64), (f64, f64)) {
        let r = |v: &[f64]| (self.paths as f64 / v[v.len() / 2], self.paths as f64 / v[0]);
        (r(&self.cpu), r(&self.wall))
    }

    fn per_prefix(&self, bytes: f64) -> f64 {
        bytes / self.prefixes as f64
    }
}

/// Runs `body` `runs` times on a fresh RIB with `peers` peers, timing the load and measuring the
/// memory of the first run (the RIB is shrunk as the daemon does when it trims the heap after a
/// load).
fn run(runs: usize, peers: u8, prefixes: usize, load: &Loader<'_>) -> Figures {
    let mut f = Figures::new(prefixes);
    for r in 0..runs {
        let rss0 = rss_anon();
        let heap0 = heap();
        let mut rib = Rib::new(RibConfig::default());
        let ids: Vec<PeerId> = (1..=peers)
            .map(|i| rib.add_peer(peer(i)).expect("a free peer slot"))
            .collect();
        let (t, c) = (Instant::now(), thread_cpu());
        f.paths = load(&mut rib, &ids);
        f.cpu.push(thread_cpu() - c);
        f.wall.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let shrunk = rib.shrink();
        let shrink_secs = t.elapsed().as_secs_f64();
        if r == 0 {
            f.shrunk = shrunk;
            f.shrink_secs = shrink_secs;
            let h = heap();
            f.heap = Heap {
                live: h.live - heap0.live,
                chunks: h.chunks - heap0.chunks,
                count: h.count - heap0.count,
            };
            f.rss = rss_anon().saturating_sub(rss0) as f64;
            f.mem = rib.memory();
        }
        assert_eq!(rib.ipv4().len() + rib.ipv6().len(), prefixes);
        drop(rib);
    }
    f.finish()
}

fn print_rates(name: &str, peers: usize, f: &Figures) {
    if f.cpu.is_empty() {
        return;
    }
    let ((cmed, cbest), (wmed, wbest)) = f.rates();
    println!(
        "  {name}, {peers} peer(s): {} prefix-paths: {:.2} M/CPU-s median ({:.2} best), wall {:.2} M/s median ({:.2} best) = {:.2}x the {:.0}M/s goal (CPU median)",
        f.paths,
        cmed / 1e6,
        cbest / 1e6,
        wmed / 1e6,
        wbest / 1e6,
        cmed / GOAL_RATE,
        GOAL_RATE / 1e6
    );
}

fn print_memory(name: &str, peers: usize, f: &Figures) {
    let pp = |b: f64| f.per_prefix(b);
    let m = &f.mem;
    let t = |x: &ribd::rib::table::TableMemory| {
        (
            (x.buckets + x.entries) as f64,
            x.path_slices as f64,
            x.nh_index as f64,
        )
    };
    let (e4, s4, n4) = t(&m.ipv4);
    let (e6, s6, n6) = t(&m.ipv6);
    println!(
        "  {name}, {peers} peer(s): heap {:.1} B/prefix requested, {:.1} B/prefix in mimalloc blocks ({:.2} allocations/prefix); RssAnon +{:.1} B/prefix (after Rib::shrink released {:.1} B/prefix of table capacity in {:.1} ms)",
        pp(f.heap.live as f64),
        pp(f.heap.chunks as f64),
        f.heap.count as f64 / f.prefixes as f64,
        pp(f.rss),
        pp(f.shrunk as f64),
        f.shrink_secs * 1e3,
    );
    println!(
        "    where (requested B/prefix): table entries {:.1}, path blocks {:.1} ({} prefixes with several paths), attribute sets {:.1} ({} sets, {:.0} B each) + their lists {:.1} + interning index {:.1}, next-hop index {:.1}, next-hop sets {:.1}",
        pp(e4 + e6),
        pp(s4 + s6),
        m.ipv4.slices + m.ipv6.slices,
        pp(m.attr_set_bytes as f64),
        m.attr_sets,
        (m.attr_set_bytes + m.attr_list_bytes) as f64 / m.attr_sets.max(1) as f64,
        pp(m.attr_list_bytes as f64),
        pp(m.attr_index_bytes as f64),
        pp(n4 + n6),
        pp(m.nhset_bytes as f64),
    );
}

/// Memory and rates of one table from 1 and from 4 peers, with the goals.
fn report(name: &str, one: &Figures, four: &Figures) {
    for (peers, f) in [(1, one), (4, four)] {
        print_memory(name, peers, f);
        print_rates(name, peers, f);
    }
    let n = one.prefixes as f64;
    let b1 = |f: &Figures| (f.heap.live as f64 / n, f.heap.chunks as f64 / n, f.rss / n);
    let (l1, c1, r1) = b1(one);
    let (l4, c4, r4) = b1(four);
    println!(
        "  {name}: one peer {l1:.1} B/prefix requested = {:.2}x BIRD's {BIRD_B_PER_PREFIX:.0} ({c1:.1} in mimalloc blocks = {:.2}x; RssAnon {r1:.1} = {:.2}x; goal <= {GOAL_RATIO}x = {:.0} B)",
        l1 / BIRD_B_PER_PREFIX,
        c1 / BIRD_B_PER_PREFIX,
        r1 / BIRD_B_PER_PREFIX,
        GOAL_RATIO * BIRD_B_PER_PREFIX,
    );
    println!(
        "  {name}: per additional prefix-path (peers 2-4) {:.1} B requested ({:.1} in mimalloc blocks, RssAnon {:.1}) = {:.2}x the goal of <= {GOAL_EXTRA_PATH:.0} B",
        (l4 - l1) / 3.0,
        (c4 - c1) / 3.0,
        (r4 - r1) / 3.0,
        (l4 - l1) / 3.0 / GOAL_EXTRA_PATH,
    );
    // The same difference by part (what each further path adds where).
    let parts = |f: &Figures| {
        let m = &f.mem;
        let t = |x: &ribd::rib::table::TableMemory| (x.buckets + x.entries, x.path_slices);
        let ((e4, b4), (e6, b6)) = (t(&m.ipv4), t(&m.ipv6));
        [
            (b4 + b6) as f64,
            (m.attr_set_bytes + m.attr_list_bytes) as f64,
            m.attr_index_bytes as f64,
            (e4 + e6) as f64,
            (m.ipv4.nh_index + m.ipv6.nh_index + m.nhset_bytes) as f64,
        ]
    };
    let d: Vec<f64> = parts(four)
        .iter()
        .zip(parts(one))
        .map(|(x4, x1)| (x4 - x1) / n / 3.0)
        .collect();
    println!(
        "    of which (requested B per additional prefix-path): path blocks {:.1}, the peer's attribute sets {:.1}, interning index {:.1}, table entries {:.1}, next-hop tracking {:.1}, the rest {:.1}",
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        (l4 - l1) / 3.0 - d.iter().sum::<f64>(),
    );
}

const IMPORT_CONFIG_HEAD: &str = r#"
router-id = "10.255.0.1"
local-as = 4200000000

[rib.ipv4]
max-paths-ebgp = 8

[[policy.ALL.term]]
name = "all"
action = "accept"
"#;

/// The `testbed bench` feed of `table` as peer `k` in AS `asn` sends it (`asn` first, its own
/// next-hop), decoded into the batches of ≤ 1,024 UPDATEs the session reader hands the core.
fn feed_batches(table: &tablegen::Table, k: usize, asn: u32) -> Vec<Vec<Update>> {
    let mut t = table.clone();
    for a in &mut t.attrs {
        match a.as_path.first_mut() {
            Some(first) => *first = asn,
            None => a.as_path.push(asn),
        }
    }
    let nh = Ipv4Addr::new(10, 0, 0, 2 + k as u8);
    let octets = testbed::bench::table::encode(&t, nh, Ipv6Addr::LOCALHOST, 0).expect("encode");
    let ctx = Context::four_octet();
    let mut out = Vec::new();
    let mut batch = Vec::with_capacity(1024);
    let mut i = 0;
    while let Ok(Some(len)) = bgp::wire::frame(&octets[i..], ctx.max_message_len) {
        match Message::decode(&octets[i..i + len], &ctx) {
            Ok(Message::Update(u)) => batch.push(u),
            other => panic!("unexpected message: {other:?}"),
        }
        if batch.len() == 1024 {
            out.push(std::mem::replace(&mut batch, Vec::with_capacity(1024)));
        }
        i += len;
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// The daemon's import path from `feeds.len()` peers (peer `k` in AS `asns[k]`), one after the
/// other; then (the second figures) the first peer's table sent again, the same attribute sets for
/// the same prefixes (a route refresh or a re-sent table), which changes no best path and no
/// forwarding.
fn import_run(
    runs: usize,
    feeds: &[Vec<Vec<Update>>],
    asns: &[u32],
    prefixes: usize,
) -> (Figures, Figures) {
    let mut text = IMPORT_CONFIG_HEAD.to_string();
    for (k, asn) in asns.iter().enumerate().take(feeds.len()) {
        text.push_str(&format!(
            "[peer.f{k}]\naddress = \"10.0.0.{}\"\nremote-as = {asn}\nimport = [\"ALL\"]\n",
            2 + k,
        ));
    }
    let loaded = ribd::config::parse(&text, "rib_load.toml").expect("config");
    let mut f = Figures::new(prefixes);
    let mut again = Figures::new(prefixes);
    for _ in 0..runs {
        let mut rib = Rib::new(loaded.config.rib.clone());
        rib.set_track_best(true);
        let mut inbs: Vec<Inbound> = loaded
            .neighbors
            .iter()
            .map(|nb| common::inbound_for(&mut rib, &loaded, nb))
            .collect();
        let now = Instant::now();
        let (t, c) = (Instant::now(), thread_cpu());
        let mut deltas = 0;
        let mut per_peer = Vec::new();
        for ((nb, inb), feed) in loaded.neighbors.iter().zip(&mut inbs).zip(feeds) {
            let c = thread_cpu();
            for b in feed {
                inb.updates(now, &mut rib, nb, b);
                deltas += rib.take_fib_deltas().len();
                let _ = rib.take_best_changes();
            }
            per_peer.push(format!("{:.0}", (thread_cpu() - c) * 1e9 / prefixes as f64));
        }
        if std::env::var_os("RIB_LOAD_PER_PEER").is_some() {
            println!(
                "    ns per prefix-path, peer by peer: {}",
                per_peer.join(" ")
            );
        }
        f.cpu.push(thread_cpu() - c);
        f.wall.push(t.elapsed().as_secs_f64());
        assert!(deltas >= prefixes);
        if feeds.len() > 1 && asns[..feeds.len()].iter().all(|a| *a == asns[0]) {
            // One AS, the same paths: each peer's path joins the multipath set.
            assert_eq!(
                deltas,
                feeds.len() * prefixes,
                "every path changes forwarding"
            );
        }
        assert_eq!(rib.ipv4().len(), prefixes);
        f.paths = rib.path_count()[0];
        if f.cpu.len() == 1 && feeds.len() > 1 {
            session_up(&mut rib, prefixes);
        }

        if std::env::var("RIB_LOAD_AGAIN").as_deref() == Ok("0") {
            // Profiling the first load alone.
            continue;
        }
        let sets = rib.attr_sets();
        let (t, c) = (Instant::now(), thread_cpu());
        let mut deltas = 0;
        for b in &feeds[0] {
            inbs[0].updates(now, &mut rib, &loaded.neighbors[0], b);
            deltas += rib.take_fib_deltas().len();
            let _ = rib.take_best_changes();
        }
        again.cpu.push(thread_cpu() - c);
        again.wall.push(t.elapsed().as_secs_f64());
        assert_eq!(deltas, 0, "the same table again changes no forwarding");
        assert_eq!(rib.attr_sets(), sets);
        again.paths = prefixes;
    }
    (f.finish(), again.finish())
}

/// What a session coming up costs the core over a full RIB ([`Rib::set_peer_info`], called on
/// every Established with the router id the OPEN gave): for a new peer without paths, for a peer
/// coming back with the router id it had (a graceful restart keeps its paths), and for a peer
/// whose router id changed (its prefixes are selected again). Then what next-hop tracking costs
/// when the first peer's next-hop changes (its prefixes are selected again): its IGP cost, and
/// it going down and coming back. Leaves the RIB as it was.
fn session_up(rib: &mut Rib, prefixes: usize) {
    let timed = |rib: &mut Rib, change: &dyn Fn(&mut Rib)| {
        let c = thread_cpu();
        change(rib);
        let ms = (thread_cpu() - c) * 1e3;
        let _ = rib.take_fib_deltas();
        let _ = rib.take_best_changes();
        ms
    };
    let first = rib.peer(0).expect("peer 0").clone();
    let info = PeerInfo {
        name: "up".into(),
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 99)),
        ..first.clone()
    };
    let new = rib.add_peer(info.clone()).expect("a free peer slot");
    let fresh = timed(rib, &|rib| {
        rib.set_peer_info(
            new,
            PeerInfo {
                router_id: Ipv4Addr::new(10, 0, 0, 99),
                ..info.clone()
            },
        )
    });
    rib.remove_peer(new);
    let same = timed(rib, &|rib| rib.set_peer_info(0, first.clone()));
    let changed = timed(rib, &|rib| {
        rib.set_peer_info(
            0,
            PeerInfo {
                router_id: Ipv4Addr::new(10, 0, 0, 1),
                ..first.clone()
            },
        )
    });
    timed(rib, &|rib| rib.set_peer_info(0, first.clone()));
    println!(
        "    a session comes up (Rib::set_peer_info): a new peer {fresh:.2} ms, a peer back with its router id {same:.2} ms, a new router id ({prefixes} prefixes selected again) {changed:.1} ms (CPU)"
    );
    let nh = first.addr;
    let state = |reachable, igp_cost| NhState {
        reachable,
        igp_cost,
    };
    let cost = timed(rib, &|rib| rib.set_nexthop(nh, state(true, 10)));
    let down = timed(rib, &|rib| rib.set_nexthop(nh, state(false, 10)));
    let up = timed(rib, &|rib| rib.set_nexthop(nh, state(true, 0)));
    println!(
        "    the first peer's next-hop ({prefixes} prefixes selected again, Rib::set_nexthop): its IGP cost changes {cost:.1} ms, it goes down {down:.1} ms, it comes back {up:.1} ms (CPU)"
    );
}

fn main() {
    let runs: usize = std::env::var("RIB_LOAD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!("load average at start: {}", load_avg());
    let table = load_table();
    let prefixes = table.len();
    let distinct_origins = table
        .iter()
        .map(|(_, o)| *o)
        .collect::<std::collections::HashSet<_>>()
        .len();
    println!(
        "real IPv4 table: {prefixes} prefixes ({TABLE}), {distinct_origins} distinct origin ASes; {runs} run(s) per scenario"
    );
    println!(
        "goals (issue 6): <= {GOAL_RATIO}x BIRD's {BIRD_B_PER_PREFIX:.0} B/prefix on one peer, <= {GOAL_EXTRA_PATH:.0} B per additional prefix-path, >= {:.0}M prefix-paths/s through import policy + decision + FIB deltas on one core",
        GOAL_RATE / 1e6
    );

    // `RIB_LOAD_ONLY=import` runs only the import path (for profiling it); `import:1`, `import:4`
    // and `import:ecmp` run only that import case.
    let only = std::env::var("RIB_LOAD_ONLY").unwrap_or_default();
    let only_import = only.starts_with("import");
    let case = |name: &str| !only.starts_with("import:") || only == format!("import:{name}");
    if !only_import {
        println!("real 513k IPv4, AS paths synthesised per origin:");
        let real = |rib: &mut Rib, ids: &[PeerId]| ingest(rib, &table, ids, 1);
        let one = run(runs, 1, prefixes, &real);
        let four = run(runs, 4, prefixes, &real);
        report("per-origin attrs", &one, &four);
    }

    let t = Instant::now();
    let feed = tablegen::generate(&tablegen::Config {
        v4_count: prefixes,
        v6_count: 0,
        peer_as: Some(65001),
        ..tablegen::Config::default()
    })
    .expect("the testbed feed table");
    println!(
        "real 513k IPv4 with the testbed feed's attributes (testbed::tablegen, {} sets, generated in {:.1} s):",
        feed.attrs.len(),
        t.elapsed().as_secs_f64()
    );
    if !only_import {
        let fed = |rib: &mut Rib, ids: &[PeerId]| ingest_gen(rib, &feed, ids);
        let one = run(runs, 1, prefixes, &fed);
        let four = run(runs, 4, prefixes, &fed);
        report("feed attrs", &one, &four);
    }

    let t = Instant::now();
    let own_as: Vec<u32> = (0..4).map(|k| 65001 + k).collect();
    let feeds: Vec<Vec<Vec<Update>>> = (0..4).map(|k| feed_batches(&feed, k, own_as[k])).collect();
    println!(
        "import path (Inbound::updates: import checks, accept-all policy, decision, FIB deltas and best changes per batch), the feed decoded beforehand ({} UPDATEs per peer, {:.1} s):",
        feeds[0].iter().map(Vec::len).sum::<usize>(),
        t.elapsed().as_secs_f64()
    );
    if case("1") {
        let (one, again1) = import_run(runs, &feeds[..1], &own_as, prefixes);
        print_rates("import", 1, &one);
        print_rates("import, the table again", 1, &again1);
    }
    if only == "import:2" {
        // Not in the default run: the second peer alone adds a block and a backup per prefix.
        let (two, _) = import_run(runs, &feeds[..2], &own_as, prefixes);
        print_rates("import", 2, &two);
    }
    if case("4") {
        let (four, again4) = import_run(runs, &feeds, &own_as, prefixes);
        print_rates("import", 4, &four);
        print_rates("import, the first peer's table again", 4, &again4);
    }
    drop(feeds);
    // As `testbed bench`'s feeders send it: four eBGP peers of one AS, the same AS paths, each its
    // own next-hop, so every prefix becomes a 4-way ECMP set and each further path changes its
    // forwarding (a reselection, the forwarding computed again and a FIB delta per path).
    if case("ecmp") {
        let one_as = [65001; 4];
        let feeds: Vec<Vec<Vec<Update>>> =
            (0..4).map(|k| feed_batches(&feed, k, one_as[k])).collect();
        let (ecmp, again_ecmp) = import_run(runs, &feeds, &one_as, prefixes);
        print_rates("import, one AS: 4-way ECMP", 4, &ecmp);
        print_rates(
            "import, the first peer's table again, 4-way ECMP",
            4,
            &again_ecmp,
        );
    }
    println!("load average at end: {}", load_avg());

    if std::env::var("RIB_LOAD_SYNTHETIC").as_deref() != Ok("1") {
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
    report("synthetic 1.05M+240k", &one, &four);
}
