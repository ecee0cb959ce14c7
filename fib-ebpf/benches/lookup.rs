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
use fib_ebpf::{Dir24, Engine4, Forwarder, LoadOptions, NullSink};

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
    let mut dir = Dir24::new(DIR8_MAX_GROUPS);
    for &(a, l, asn) in t {
        dir.insert(&mut NullSink, Ipv4Addr::from(a), l, pl_of(asn))
            .expect("dir24");
    }
    dir.sync_all(fwd.maps_mut());
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

/// Mean test-run ns per packet over `frames`, one run per frame (different destinations), and the
/// mean with every frame repeated `hot` times (same destination, caches warm).
fn per_packet(fwd: &mut Forwarder, prog: &str, frames: &[Vec<u8>], hot: u32) -> (f64, f64, u32) {
    let p = fwd.program_named(prog).expect("program");
    let mut cold = 0.0;
    let mut warm = 0.0;
    let mut last = 0;
    for _ in 0..2 {
        cold = 0.0;
        for f in frames {
            let r = p
                .test_run(TestRunOptions {
                    data_in: Some(f),
                    repeat: 1,
                    ..Default::default()
                })
                .expect("run");
            cold += r.duration.as_nanos() as f64;
            last = r.return_value;
        }
    }
    for f in frames.iter().take(64) {
        let r = p
            .test_run(TestRunOptions {
                data_in: Some(f),
                repeat: hot,
                ..Default::default()
            })
            .expect("run");
        warm += r.duration.as_nanos() as f64;
    }
    (cold / frames.len() as f64, warm / 64.0, last)
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
    println!(
        "{:<6} {:<26} {:>12} {:>12}",
        "table", "engine", "ns/lookup", "populate s"
    );
    if !packet_only {
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
    // Whole packet at full table: forwarder (DIR-24-8) vs XDP_PASS, 4096 different destinations.
    println!();
    let mut f = load(Engine4::Dir24, false);
    populate_dir24(&mut f, &full4);
    wire_nexthops(&f);
    let frames: Vec<Vec<u8>> = (0..4096)
        .map(|i| frame4(pick4(&mut r, &full4), i as u16))
        .collect();
    let (fwd_cold, fwd_hot, action) = per_packet(&mut f, fib_ebpf::XDP_PROGRAM, &frames, 10_000);
    assert_eq!(action, 4, "the forwarder redirects the benchmark frames");
    let (pass_cold, pass_hot, _) = per_packet(&mut f, "xdp_pass", &frames, 10_000);
    // Looping: each repeated run rewrites the destination from the 1M-destination table first.
    let uni = uniform4(&mut r, &full4);
    fill_dst4(&mut f, &uni);
    let loop_ns = |f: &mut Forwarder, prog: &str| -> (f64, u32) {
        let p = f.program_named(prog).expect("program");
        let frame = frame4(0x0a00_0001, 1234);
        let mut total = 0.0;
        let mut action = 0;
        for _ in 0..=passes {
            let r = p
                .test_run(TestRunOptions {
                    data_in: Some(&frame),
                    repeat: DESTS as u32,
                    ..Default::default()
                })
                .expect("run");
            total = r.duration.as_nanos() as f64; // keep the last (warm) pass
            action = r.return_value;
        }
        (total, action)
    };
    let (fwd_loop, a1) = loop_ns(&mut f, "xdp_bench_forward4");
    let (pass_loop, _) = loop_ns(&mut f, "xdp_bench_pass4");
    assert_eq!(a1, 4, "the looping forwarder redirects");
    println!(
        "whole packet, full table, ns/packet   {:>14} {:>14} {:>14}",
        "loop, new dst", "1 run per dst", "same dst x1e4"
    );
    println!(
        "  forwarder (DIR-24-8)                {fwd_loop:>14.1} {fwd_cold:>14.1} {fwd_hot:>14.1}"
    );
    println!(
        "  XDP_PASS baseline                   {pass_loop:>14.1} {pass_cold:>14.1} {pass_hot:>14.1}"
    );
    println!(
        "  forwarder - baseline                {:>14.1} {:>14.1} {:>14.1}",
        fwd_loop - pass_loop,
        fwd_cold - pass_cold,
        fwd_hot - pass_hot
    );
    drop(f);
    // The same loop on the 10k table: the destinations then fall in few tbl24 rows (cache- and
    // TLB-resident), which shows how much of the full-table figure is the tbl24 memory access.
    let mut f = load(Engine4::Dir24, false);
    populate_dir24(&mut f, &shuffled[..10_000]);
    wire_nexthops(&f);
    let uni = uniform4(&mut r, &shuffled[..10_000]);
    fill_dst4(&mut f, &uni);
    let (fwd10k, _) = loop_ns(&mut f, "xdp_bench_forward4");
    let (pass10k, _) = loop_ns(&mut f, "xdp_bench_pass4");
    println!(
        "  10k table, loop: forwarder {fwd10k:.1}, baseline {pass10k:.1}, difference {:.1}",
        fwd10k - pass10k
    );

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
