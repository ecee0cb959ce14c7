//! Lookup benchmark of the XDP forwarder's engines, via BPF_PROG_TEST_RUN (needs root).
//!
//! Tables: the real full IPv4 table (513k prefixes) and IPv6 table of python3-pyasn
//! (`/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz`, `ipasn6_20151101.dat.gz`), and
//! random 10k / 100k subsets of the IPv4 one. Destinations: 1M random addresses inside random
//! prefixes of the table (uniform), or a Zipf(1.0) draw over 100k such addresses. Each test run
//! looks up 64 destinations of the next row of a 1M-destination table (rows advance per run, so
//! the destinations of consecutive runs differ); ns/lookup = test-run ns per run / 64.
//!
//! Engines: DIR-24-8, BPF LPM trie, LPM trie behind the per-CPU route cache, and `bpf_fib_lookup`
//! on the kernel FIB holding the same routes (in a private network namespace). Also: populate time
//! per engine, and whole-packet ns of the forwarder against an XDP_PASS program.
//!
//! Run: `cargo bench -p fib-ebpf --bench lookup` (add `-- --quick` to skip the kernel FIB at full
//! table, which takes ~15 s to populate; `-- --packet` runs only the whole-packet section).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Instant;

use aya::maps::{Array, Map};
use aya::programs::{TestRun, TestRunOptions};
use fib_ebpf::abi::*;
use fib_ebpf::{Engine4, Forwarder, LoadOptions, dir24};

const V4: &str = "/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz";
const V6: &str = "/usr/lib/python3/dist-packages/data/ipasn6_20151101.dat.gz";
/// (prefix, length, origin AS) of one IPv4 route.
type Route4 = (u32, u8, u32);

const DESTS: usize = BENCH_BATCH * BENCH_ROWS as usize;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn read_gz(path: &str) -> String {
    let out = Command::new("gzip")
        .args(["-dc", path])
        .output()
        .expect("gzip");
    assert!(
        out.status.success(),
        "gzip -dc {path}: install python3-pyasn"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (prefix, len, asn) lines of an ipasn file.
fn table4() -> Vec<(u32, u8, u32)> {
    read_gz(V4)
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let (p, asn) = l.split_once('\t')?;
            let (a, len) = p.split_once('/')?;
            let a: Ipv4Addr = a.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            (8..=32)
                .contains(&len)
                .then(|| (u32::from(a), len, asn.trim().parse().unwrap_or(0)))
        })
        .collect()
}

fn table6() -> Vec<(u128, u8, u32)> {
    read_gz(V6)
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let (p, asn) = l.split_once('\t')?;
            let (a, len) = p.split_once('/')?;
            let a: Ipv6Addr = a.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            (8..=128)
                .contains(&len)
                .then(|| (u128::from(a), len, asn.trim().parse().unwrap_or(0)))
        })
        .collect()
}

fn pl_of(asn: u32) -> u32 {
    PL_FIRST_DYNAMIC + asn % 64
}

/// A random address inside a random prefix of `t`.
fn pick4(r: &mut Rng, t: &[(u32, u8, u32)]) -> u32 {
    let p = t[r.below(t.len())];
    rand_in4(r, p)
}

fn pick6(r: &mut Rng, t: &[(u128, u8, u32)]) -> u128 {
    let p = t[r.below(t.len())];
    rand_in6(r, p)
}

fn rand_in4(r: &mut Rng, (a, l, _): (u32, u8, u32)) -> u32 {
    let host = if l == 32 {
        0
    } else {
        (r.next() as u32) & (u32::MAX >> l)
    };
    a | host
}

fn rand_in6(r: &mut Rng, (a, l, _): (u128, u8, u32)) -> u128 {
    let host = if l == 128 {
        0
    } else {
        (u128::from(r.next()) << 64 | u128::from(r.next())) & (u128::MAX >> l)
    };
    a | host
}

fn uniform4(r: &mut Rng, t: &[(u32, u8, u32)]) -> Vec<u32> {
    (0..DESTS).map(|_| pick4(r, t)).collect()
}

/// DESTS indices into a pool of `distinct`, drawn Zipf(1.0): a few hot, a long tail.
fn zipf_indices(r: &mut Rng, distinct: usize) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(distinct);
    let mut acc = 0.0f64;
    for k in 1..=distinct {
        acc += 1.0 / k as f64;
        cdf.push(acc);
    }
    (0..DESTS)
        .map(|_| {
            let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64 * acc;
            cdf.partition_point(|&c| c < u).min(distinct - 1)
        })
        .collect()
}

/// Zipf(1.0) over `distinct` destinations of the table.
fn zipf4(r: &mut Rng, t: &[(u32, u8, u32)], distinct: usize) -> Vec<u32> {
    let pool: Vec<u32> = (0..distinct).map(|_| pick4(r, t)).collect();
    zipf_indices(r, distinct)
        .into_iter()
        .map(|i| pool[i])
        .collect()
}

fn load(engine: Engine4, cache: bool) -> Forwarder {
    Forwarder::load_with(&LoadOptions {
        engine4: engine,
        route_cache: cache,
        bench: true,
        ..Default::default()
    })
    .expect("load forwarder with benchmark programs (root needed)")
}

fn fill_dst4(fwd: &mut Forwarder, dests: &[u32]) {
    let map: &mut Map = fwd.raw_map_mut("bench_dst4").expect("bench_dst4");
    let mut arr: Array<&mut aya::maps::MapData, BenchRow4> = Array::try_from(map).expect("array");
    for (i, chunk) in dests.chunks(BENCH_BATCH).enumerate() {
        let mut row = BenchRow4 {
            addr: [0; BENCH_BATCH],
        };
        for (j, a) in chunk.iter().enumerate() {
            row.addr[j] = a.to_be();
        }
        arr.set(i as u32, row, 0).expect("bench row");
    }
}

fn fill_dst6(fwd: &mut Forwarder, dests: &[u128]) {
    let map: &mut Map = fwd.raw_map_mut("bench_dst6").expect("bench_dst6");
    let mut arr: Array<&mut aya::maps::MapData, BenchRow6> = Array::try_from(map).expect("array");
    for (i, chunk) in dests.chunks(BENCH_BATCH).enumerate() {
        let mut row = BenchRow6 {
            addr: [[0; 16]; BENCH_BATCH],
        };
        for (j, a) in chunk.iter().enumerate() {
            row.addr[j] = a.to_be_bytes();
        }
        arr.set(i as u32, row, 0).expect("bench row");
    }
}

/// ns per lookup: `passes` passes over the destination table, BENCH_BATCH lookups per run.
fn ns_per_lookup(fwd: &mut Forwarder, prog: &str, passes: u32) -> f64 {
    let p = fwd.program_named(prog).expect("bench program");
    let frame = [0u8; 64];
    // Warm-up pass (fills the route cache, faults pages in).
    p.test_run(TestRunOptions {
        data_in: Some(&frame),
        repeat: BENCH_ROWS,
        ..Default::default()
    })
    .expect("test run");
    let mut total = 0.0;
    for _ in 0..passes {
        let r = p
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                repeat: BENCH_ROWS,
                ..Default::default()
            })
            .expect("test run");
        total += r.duration.as_nanos() as f64;
    }
    total / f64::from(passes) / BENCH_BATCH as f64
}

fn populate_dir24(fwd: &mut Forwarder, t: &[(u32, u8, u32)]) -> f64 {
    let start = Instant::now();
    // The bulk build fib-sync's first batch uses: sorted by (address, length), the last of a
    // repeated prefix kept, one sweep into the fresh maps.
    let mut v: Vec<(u32, u8, u32)> = t
        .iter()
        .map(|&(a, l, asn)| {
            (
                a & u32::MAX.checked_shl(32 - u32::from(l)).unwrap_or(0),
                l,
                pl_of(asn),
            )
        })
        .collect();
    v.sort_by_key(|r| (r.0, r.1));
    v.dedup_by(|later, kept| {
        let same = (later.0, later.1) == (kept.0, kept.1);
        if same {
            kept.2 = later.2;
        }
        same
    });
    dir24::load_sorted(&v, fwd.maps_mut(), DIR8_MAX_GROUPS).expect("dir24");
    start.elapsed().as_secs_f64()
}

fn populate_lpm4(fwd: &Forwarder, t: &[(u32, u8, u32)]) -> f64 {
    let start = Instant::now();
    for &(a, l, asn) in t {
        fwd.maps()
            .fib4_insert(
                Ipv4Addr::from(a),
                l,
                FibVal {
                    pl_id: pl_of(asn),
                    flags: 0,
                },
            )
            .expect("fib4");
    }
    start.elapsed().as_secs_f64()
}

fn populate_lpm6(fwd: &Forwarder, t: &[(u128, u8, u32)]) -> f64 {
    let start = Instant::now();
    for &(a, l, asn) in t {
        fwd.maps()
            .fib6_insert(
                Ipv6Addr::from(a),
                l,
                FibVal {
                    pl_id: pl_of(asn),
                    flags: 0,
                },
            )
            .expect("fib6");
    }
    start.elapsed().as_secs_f64()
}

/// Every path-list forwards through one group of 8 next-hops on `lo`.
fn wire_nexthops(fwd: &Forwarder) {
    let m = fwd.maps();
    m.tx_port_add(1).expect("tx_port lo");
    for id in 1..=8 {
        m.nh_write(
            id,
            &Nh {
                ifindex: 1,
                smac: [2, 0, 0, 0, 0, 1],
                dmac: [2, 0, 0, 0, 0, id as u8],
                vlan: 0,
                flags: 0,
                _pad: 0,
            },
        )
        .expect("nh");
    }
    m.nhg_write(
        1,
        &fib_ebpf::nhg::buckets(&(1..=8).map(|i| (i, 1)).collect::<Vec<_>>(), 256),
    )
    .expect("nhg");
    for pl in PL_FIRST_DYNAMIC..PL_FIRST_DYNAMIC + 64 {
        m.pathlist_set(pl, 1).expect("pathlist");
    }
}

fn frame4(dst: u32, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[100, 64, 0, 1]);
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&443u16.to_be_bytes());
    f
}

/// A network namespace for the kernel-FIB measurement, removed on drop.
struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let s = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .expect("ip");
    assert!(s.success(), "ip {args:?}");
}

/// Installs `t[from..to]` into the namespace's kernel FIB with `ip -batch`; returns seconds.
fn kernel_routes(ns: &str, t: &[(u32, u8, u32)]) -> f64 {
    let mut batch = String::with_capacity(t.len() * 48);
    for &(a, l, _) in t {
        batch.push_str(&format!(
            "route replace {}/{} via 169.254.77.2 dev kv0\n",
            Ipv4Addr::from(a),
            l
        ));
    }
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(batch.as_bytes())
        .expect("write batch");
    assert!(
        child.wait().expect("ip -batch").success(),
        "ip -batch failed"
    );
    start.elapsed().as_secs_f64()
}

fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(format!("/var/run/netns/{ns}")).expect("netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd, affecting only this scoped thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns");
            f()
        })
        .join()
        .expect("thread")
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--packet`: only the whole-packet section.
    let packet_only = std::env::args().any(|a| a == "--packet");
    // `--mem`: only the memory-floor section.
    let mem = std::env::args().any(|a| a == "--mem");
    // `--spin SECS`: loop the whole-packet forwarder (full IPv4 table, uniform) for SECS seconds
    // before measuring, for `perf record -a` and `bpftool prog dump jited`.
    let spin: f64 = std::env::args()
        .skip_while(|a| a != "--spin")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let packet_only = packet_only || spin > 0.0;
    let passes = 3;
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let full4 = table4();
    let full6 = table6();
    let mut shuffled = full4.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, r.below(i + 1));
    }
    println!(
        "IPv4 table: {} prefixes; IPv6 table: {} prefixes; {} destinations per table, {} per run\n",
        full4.len(),
        full6.len(),
        DESTS,
        BENCH_BATCH
    );

    let sizes: [(&str, &[Route4]); 3] = [
        ("10k", &shuffled[..10_000]),
        ("100k", &shuffled[..100_000]),
        ("full", &full4),
    ];
    let mut results: HashMap<(&str, &str), f64> = HashMap::new();
    if !packet_only && !mem {
        println!(
            "{:<6} {:<26} {:>12} {:>12}",
            "table", "engine", "ns/lookup", "populate s"
        );
    }
    if !packet_only && !mem {
        for (name, t) in sizes {
            let uni = uniform4(&mut r, t);
            let zipf = zipf4(&mut r, t, 100_000);

            let mut f = load(Engine4::Dir24, false);
            let pop = populate_dir24(&mut f, t);
            fill_dst4(&mut f, &uni);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup4", passes);
            println!("{name:<6} {:<26} {ns:>12.1} {pop:>12.3}", "DIR-24-8");
            results.insert((name, "dir24"), ns);
            drop(f);

            let mut f = load(Engine4::Lpm, false);
            let pop = populate_lpm4(&f, t);
            fill_dst4(&mut f, &uni);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup4", passes);
            println!("{name:<6} {:<26} {ns:>12.1} {pop:>12.3}", "LPM trie");
            results.insert((name, "lpm"), ns);
            drop(f);

            let mut f = load(Engine4::Lpm, true);
            populate_lpm4(&f, t);
            fill_dst4(&mut f, &uni);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup4", passes);
            println!("{name:<6} {:<26} {ns:>12.1}", "LPM trie + cache, uniform");
            results.insert((name, "cache-uniform"), ns);
            fill_dst4(&mut f, &zipf);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup4", passes);
            println!("{name:<6} {:<26} {ns:>12.1}", "LPM trie + cache, Zipf");
            results.insert((name, "cache-zipf"), ns);
            drop(f);

            let mut f = load(Engine4::Dir24, true);
            populate_dir24(&mut f, t);
            fill_dst4(&mut f, &zipf);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup4", passes);
            println!("{name:<6} {:<26} {ns:>12.1}", "DIR-24-8 + cache, Zipf");
            drop(f);
        }

        // The kernel FIB, grown 10k -> 100k -> full in one namespace.
        let ns = Netns(format!("fe{}-bench", std::process::id()));
        ip(&["netns", "add", &ns.0]);
        ip(&[
            "-n", &ns.0, "link", "add", "kv0", "type", "veth", "peer", "name", "kv1",
        ]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ip(&["-n", &ns.0, "link", "set", "kv0", "up"]);
        ip(&["-n", &ns.0, "link", "set", "kv1", "up"]);
        ip(&["-n", &ns.0, "addr", "add", "169.254.77.1/30", "dev", "kv0"]);
        ip(&[
            "-n",
            &ns.0,
            "neigh",
            "replace",
            "169.254.77.2",
            "lladdr",
            "02:00:00:00:77:02",
            "dev",
            "kv0",
            "nud",
            "permanent",
        ]);
        let s = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.forwarding=1",
            ])
            .status()
            .expect("sysctl");
        assert!(s.success());
        let mut f = load(Engine4::Dir24, false);
        let steps: Vec<(&str, usize, usize)> = if quick {
            vec![("10k", 0, 10_000), ("100k", 10_000, 100_000)]
        } else {
            vec![
                ("10k", 0, 10_000),
                ("100k", 10_000, 100_000),
                ("full", 100_000, shuffled.len()),
            ]
        };
        for (name, from, to) in steps {
            let pop = kernel_routes(&ns.0, &shuffled[from..to]);
            let uni = uniform4(&mut r, &shuffled[..to]);
            fill_dst4(&mut f, &uni);
            let v = in_ns(&ns.0, || ns_per_lookup(&mut f, "xdp_bench_fib_lookup4", 1));
            println!(
                "{name:<6} {:<26} {v:>12.1} {pop:>12.3}{}",
                "bpf_fib_lookup (kernel)",
                if from > 0 { " (added routes only)" } else { "" }
            );
            results.insert((name, "kernel"), v);
        }
        drop(f);
        drop(ns);

        // IPv6: full table, trie with and without the cache.
        println!();
        let uni6: Vec<u128> = (0..DESTS).map(|_| pick6(&mut r, &full6)).collect();
        let pool6: Vec<u128> = (0..100_000).map(|_| pick6(&mut r, &full6)).collect();
        let zipf6: Vec<u128> = zipf_indices(&mut r, pool6.len())
            .into_iter()
            .map(|i| pool6[i])
            .collect();
        for cache in [false, true] {
            let mut f = load(Engine4::Dir24, cache);
            let pop = populate_lpm6(&f, &full6);
            fill_dst6(&mut f, &uni6);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup6", passes);
            let label = if cache {
                "IPv6 LPM trie + cache"
            } else {
                "IPv6 LPM trie"
            };
            println!(
                "{:<6} {:<26} {ns:>12.1} {pop:>12.3}",
                "v6full",
                format!("{label}, uniform")
            );
            fill_dst6(&mut f, &zipf6);
            let ns = ns_per_lookup(&mut f, "xdp_bench_lookup6", passes);
            println!(
                "{:<6} {:<26} {ns:>12.1}",
                "v6full",
                format!("{label}, Zipf")
            );
        }
    }
    if !packet_only || mem {
        memory_floor(&mut r, &full4);
    }
    if mem {
        return;
    }
    whole_packet(&mut r, &full4, &shuffled[..10_000], &full6, spin);

    println!();
    for name in ["10k", "100k", "full"] {
        if let (Some(d), Some(l), Some(k)) = (
            results.get(&(name, "dir24")),
            results.get(&(name, "lpm")),
            results.get(&(name, "kernel")),
        ) {
            println!(
                "{name:<6} bpf_fib_lookup / DIR-24-8 = {:>6.1}x   LPM trie / DIR-24-8 = {:>6.1}x",
                k / d,
                l / d
            );
        }
    }
}

fn frame6(dst: u128, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 20];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = 6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&0x2001_0db8_ffff_0000_0000_0000_0000_0001u128.to_be_bytes());
    ip[24..40].copy_from_slice(&dst.to_be_bytes());
    f[54..56].copy_from_slice(&sport.to_be_bytes());
    f[56..58].copy_from_slice(&443u16.to_be_bytes());
    f
}

/// ns per packet of one pass of `DESTS` repeated runs of `prog` on `frame` (the bench programs
/// write the next destination of the table into the frame before each run), and the action.
fn loop_pass(f: &mut Forwarder, prog: &str, frame: &[u8]) -> (f64, u32) {
    let p = f.program_named(prog).expect("program");
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: DESTS as u32,
            ..Default::default()
        })
        .expect("run");
    (r.duration.as_nanos() as f64, r.return_value)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One row of the whole-packet table: forwarder and baseline ns/packet (medians of `REPS`
/// interleaved passes) and forwarder − baseline (median and min of the per-pass differences).
struct PacketRow {
    case: String,
    fwd: f64,
    base: f64,
    diff_med: f64,
    diff_min: f64,
}

const REPS: usize = 5;

fn packet_row(f: &mut Forwarder, case: String, v6: bool, frame: &[u8]) -> PacketRow {
    let (fwd_prog, base_prog) = if v6 {
        ("xdp_bench_forward6", "xdp_bench_pass6")
    } else {
        ("xdp_bench_forward4", "xdp_bench_pass4")
    };
    // Warm-up: faults pages in, fills the route cache.
    let (_, action) = loop_pass(f, fwd_prog, frame);
    assert_eq!(action, 4, "{case}: the looping forwarder redirects");
    loop_pass(f, base_prog, frame);
    let (mut fwd, mut base, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        let (a, _) = loop_pass(f, fwd_prog, frame);
        let (b, _) = loop_pass(f, base_prog, frame);
        fwd.push(a);
        base.push(b);
        diff.push(a - b);
    }
    let diff_min = diff.iter().copied().fold(f64::INFINITY, f64::min);
    let row = PacketRow {
        case,
        fwd: median(&mut fwd),
        base: median(&mut base),
        diff_med: median(&mut diff),
        diff_min,
    };
    println!(
        "  {:<44} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.2}",
        row.case,
        row.fwd,
        row.base,
        row.diff_med,
        row.diff_min,
        row.diff_med / 100.0
    );
    row
}

/// Whole packet: the forwarder against an XDP_PASS program doing the same per-run destination
/// rewrite, over 1M destinations (uniform over the table's prefixes, or Zipf(1.0) over 100k of
/// them), IPv4 (DIR-24-8) and IPv6 (trie), with and without the route cache.
fn whole_packet(
    r: &mut Rng,
    full4: &[Route4],
    small4: &[Route4],
    full6: &[(u128, u8, u32)],
    spin: f64,
) {
    let uni4 = uniform4(r, full4);
    let zipf4v = zipf4(r, full4, 100_000);
    let uni10k = uniform4(r, small4);
    let uni6: Vec<u128> = (0..DESTS).map(|_| pick6(r, full6)).collect();
    let pool6: Vec<u128> = (0..100_000).map(|_| pick6(r, full6)).collect();
    let zipf6: Vec<u128> = zipf_indices(r, pool6.len())
        .into_iter()
        .map(|i| pool6[i])
        .collect();
    let f4 = frame4(0x0a00_0001, 1234);
    let f6 = frame6(0x2001_0db8_0000_0000_0000_0000_0000_0001, 1234);

    if spin > 0.0 {
        let mut f = load(Engine4::Dir24, false);
        populate_dir24(&mut f, full4);
        wire_nexthops(&f);
        fill_dst4(&mut f, &uni4);
        let id = f
            .program_named("xdp_bench_forward4")
            .expect("program")
            .info()
            .map(|i| i.id())
            .unwrap_or(0);
        println!("spinning xdp_bench_forward4 (prog id {id}) for {spin} s");
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < spin {
            loop_pass(&mut f, "xdp_bench_forward4", &f4);
        }
        return;
    }

    println!(
        "whole packet, ns/packet ({REPS} passes of {DESTS} packets, new destination per packet; diff = forwarder - baseline)"
    );
    println!(
        "  {:<44} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "case", "forwarder", "baseline", "diff med", "diff min", "med/100"
    );
    let mut rows = Vec::new();
    for cache in [false, true] {
        let tag = if cache { "cache" } else { "no cache" };
        let mut f = load(Engine4::Dir24, cache);
        populate_dir24(&mut f, full4);
        populate_lpm6(&f, full6);
        wire_nexthops(&f);
        fill_dst4(&mut f, &uni4);
        rows.push(packet_row(
            &mut f,
            format!("IPv4 full DIR-24-8, uniform, {tag}"),
            false,
            &f4,
        ));
        fill_dst4(&mut f, &zipf4v);
        rows.push(packet_row(
            &mut f,
            format!("IPv4 full DIR-24-8, Zipf, {tag}"),
            false,
            &f4,
        ));
        fill_dst6(&mut f, &uni6);
        rows.push(packet_row(
            &mut f,
            format!("IPv6 full trie, uniform, {tag}"),
            true,
            &f6,
        ));
        fill_dst6(&mut f, &zipf6);
        rows.push(packet_row(
            &mut f,
            format!("IPv6 full trie, Zipf, {tag}"),
            true,
            &f6,
        ));
    }
    // One destination over and over at full table: everything it reads stays in L1, so this is
    // the forwarder's cost without the memory misses.
    let mut f = load(Engine4::Dir24, false);
    populate_dir24(&mut f, full4);
    wire_nexthops(&f);
    fill_dst4(&mut f, &vec![uni4[0]; DESTS]);
    rows.push(packet_row(
        &mut f,
        "IPv4 full DIR-24-8, one destination".into(),
        false,
        &f4,
    ));
    drop(f);
    // The 10k table: its destinations fall in few tbl24 rows (cache- and TLB-resident), which
    // shows how much of the full-table figure is the tbl24 memory access.
    let mut f = load(Engine4::Dir24, false);
    populate_dir24(&mut f, small4);
    wire_nexthops(&f);
    fill_dst4(&mut f, &uni10k);
    rows.push(packet_row(
        &mut f,
        "IPv4 10k DIR-24-8, uniform, no cache".into(),
        false,
        &f4,
    ));
    // The classifier stage compiled out (cfg_classifier = 0): what its no-rules check costs.
    let mut f = Forwarder::load_with(&LoadOptions {
        bench: true,
        classifier: false,
        ..Default::default()
    })
    .expect("load forwarder without the classifier");
    populate_dir24(&mut f, full4);
    wire_nexthops(&f);
    fill_dst4(&mut f, &uni4);
    rows.push(packet_row(
        &mut f,
        "IPv4 full DIR-24-8, uniform, no classifier".into(),
        false,
        &f4,
    ));
    drop(f);
    let base = rows[0].diff_med;
    println!("\n  ratios of diff med to IPv4 full uniform, no cache ({base:.1} ns):");
    for row in &rows {
        println!("  {:<44} {:>8.2}", row.case, row.diff_med / base);
    }
}

/// The floor under the tbl24 access: one random read of a 64-byte line per run, in areas of
/// growing size of one mmapable ARRAY (4 KiB pages), against a 4 KiB area; runs independent (the CPU
/// overlaps consecutive misses) and chained (each read waits for the previous: full latency).
fn memory_floor(r: &mut Rng, full4: &[Route4]) {
    println!(
        "\nmemory floor: one random 64-byte read per run, mmapable BPF ARRAY (ns/run, median of {REPS} passes)"
    );
    println!(
        "  {:>10} {:>11} {:>11} {:>11} {:>11}",
        "area", "independent", "- 4 KiB", "chained", "- 4 KiB"
    );
    let mut f = load(Engine4::Dir24, false);
    let frame = [0u8; 64];
    let mut base = (0.0, 0.0);
    for kib in [4u32, 1024, 8192, 16384, 32768, 65536, 131072] {
        let lines = kib * 16;
        assert!(lines <= BENCH_MEM_LINES);
        // bench_dst4 holds addresses in network order; the program reads the index as stored.
        let idx: Vec<u32> = (0..DESTS)
            .map(|_| ((r.next() % u64::from(lines)) as u32).to_be())
            .collect();
        fill_dst4(&mut f, &idx);
        let mut med = |prog: &str| {
            loop_pass(&mut f, prog, &frame);
            let mut v: Vec<f64> = (0..REPS)
                .map(|_| loop_pass(&mut f, prog, &frame).0)
                .collect();
            median(&mut v)
        };
        let ind = med("xdp_bench_mem");
        let chain = med("xdp_bench_mem_chain");
        if kib == 4 {
            base = (ind, chain);
        }
        let area = if kib >= 1024 {
            format!("{} MiB", kib / 1024)
        } else {
            format!("{kib} KiB")
        };
        println!(
            "  {area:>10} {ind:>11.1} {:>11.1} {chain:>11.1} {:>11.1}",
            ind - base.0,
            chain - base.1
        );
    }
    // The same reads at the line a DIR-24-8 first level of 4-byte entries (64 MiB, 16 per line)
    // or of 2-byte entries (32 MiB, 32 per line) would read for real destinations: uniform over
    // the full table's prefixes, and Zipf(1.0) over 100k of them.
    let uni = uniform4(r, full4);
    let zipf = zipf4(r, full4, 100_000);
    // A candidate smaller layout, for comparison: a /16 table (64k u16 entries, 128 KiB, L2-resident)
    // and, for each /16 holding longer prefixes, a chunk of 256 u16 /24 entries (512 bytes); the line
    // read is the chunk's (the tbl16 read before it, an L2 hit, is left out).
    let mut chunked: Vec<u32> = full4
        .iter()
        .filter(|&&(_, l, _)| l > 16)
        .map(|&(a, _, _)| a >> 16)
        .collect();
    chunked.sort_unstable();
    chunked.dedup();
    let line16 = |d: &u32| -> u32 {
        match chunked.binary_search(&(d >> 16)) {
            Ok(c) => 2048 + c as u32 * 8 + ((d >> 8) & 0xff) / 32,
            Err(_) => (d >> 16) / 32,
        }
    };
    println!(
        "  ({} /16s hold longer prefixes: {} KiB of chunks)",
        chunked.len(),
        chunked.len() / 2
    );
    for (pattern, dests) in [("uniform", &uni), ("Zipf", &zipf)] {
        for (layout, shift) in [
            ("tbl24 u32 64 MiB", 12),
            ("tbl24 u16 32 MiB", 13),
            ("tbl16 + u16 /16 chunks", 0),
        ] {
            let idx: Vec<u32> = dests
                .iter()
                .map(|d| if shift == 0 { line16(d) } else { d >> shift }.to_be())
                .collect();
            fill_dst4(&mut f, &idx);
            let mut med = |prog: &str| {
                loop_pass(&mut f, prog, &frame);
                let mut v: Vec<f64> = (0..REPS)
                    .map(|_| loop_pass(&mut f, prog, &frame).0)
                    .collect();
                median(&mut v)
            };
            let ind = med("xdp_bench_mem");
            let chain = med("xdp_bench_mem_chain");
            println!(
                "  {:>26} {ind:>11.1} {:>11.1} {chain:>11.1} {:>11.1}",
                format!("{layout}, {pattern}"),
                ind - base.0,
                chain - base.1
            );
        }
    }
    // The same uniform destinations through the live DIR-24-8 maps of the full table, chained.
    populate_dir24(&mut f, full4);
    fill_dst4(&mut f, &uni);
    loop_pass(&mut f, "xdp_bench_dir24_chain", &frame);
    let mut v: Vec<f64> = (0..REPS)
        .map(|_| loop_pass(&mut f, "xdp_bench_dir24_chain", &frame).0)
        .collect();
    let chain = median(&mut v);
    println!(
        "  {:>26} {:>11} {:>11} {chain:>11.1} {:>11.1}",
        "DIR-24-8 lookup, uniform",
        "",
        "",
        chain - base.1
    );
    println!();
}
