//! Cost of the classifier stage per packet, via BPF_PROG_TEST_RUN (needs root).
//!
//! Two forwarders with the same routes (0.0.0.0/0 to an 8-way group on lo, so every packet is
//! forwarded): one built without the stage (`classifier: false`), one with it and N rules installed
//! (0, 100, 1,000, 10,000). Each test-run pass is 1M repeated runs of `xdp_bench_forward4`, which
//! writes the next destination of a 1M-address table into the frame before each run; passes of the
//! two programs are interleaved, and the figure is the median (and min) of the per-pass differences.
//!
//! Rule mixes (seeded): 70% destination prefix (/24 mostly, some /16 and /32) + TCP or UDP + a
//! destination port or range; 15% source prefix + destination prefix + protocol; 10% destination +
//! TCP SYN or a length range; 5% ICMP or fragments to a destination. Actions are terminal accepts that
//! count (so the forwarder still forwards and both sides do the same work after the stage).
//! Destination streams: "miss" = uniform over the IPv4 space (few packets are near a rule), "hit" =
//! inside the rules' destination prefixes (the fields' bitmaps overlap and chunks are ANDed).
//!
//! Run: `cargo bench -p fib-ebpf --bench classify` (`-- --reps N` for more passes, `--rules 100,1000`
//! for only those rule counts, `--hit-only` without the uniform stream).

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Instant;

use aya::maps::{Array, Map};
use aya::programs::{TestRun, TestRunOptions};
use fib_ebpf::abi::*;
use fib_ebpf::acl::{Action, ByteSet, Match, Prefix, Rule, RuleSet};
use fib_ebpf::{Dir24, Forwarder, LoadOptions};

const DESTS: usize = BENCH_BATCH * BENCH_ROWS as usize;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn load(classifier: bool) -> Forwarder {
    let f = Forwarder::load_with(&LoadOptions {
        bench: true,
        classifier,
        ..Default::default()
    })
    .expect("load forwarder with benchmark programs (root needed)");
    let m = f.maps();
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
    let buckets = fib_ebpf::nhg::buckets(&(1..=8).map(|i| (i, 1)).collect::<Vec<_>>(), 256);
    m.nhg_write(1, &buckets).expect("nhg");
    m.pathlist_set(PL_FIRST_DYNAMIC, 1).expect("pathlist");
    let mut dir = Dir24::new(DIR8_MAX_GROUPS, std::time::Duration::from_secs(1));
    let mut sink = f.maps();
    dir.insert(&mut sink, Ipv4Addr::UNSPECIFIED, 0, PL_FIRST_DYNAMIC)
        .expect("default route");
    f
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

/// TCP 100.64.0.1:40000 → (rewritten per run) :443, ACK, 40 bytes of IP.
fn frame4() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xbb]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&40u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[100, 64, 0, 1]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&443u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x10;
    f
}

fn rand_prefix(r: &mut Rng, pool: &[u32]) -> Prefix {
    let base = pool[r.below(pool.len() as u64) as usize];
    let len = match r.below(10) {
        0 => 16,
        1 => 32,
        _ => 24,
    };
    let host = if len == 32 { r.below(256) as u32 } else { 0 };
    Prefix::V4(
        Ipv4Addr::from((base & (u32::MAX << (32 - len))) | host),
        len as u8,
    )
}

fn port(r: &mut Rng) -> Vec<RangeInclusive<u16>> {
    const WELL_KNOWN: [u16; 10] = [53, 80, 123, 443, 22, 25, 161, 389, 1900, 11211];
    match r.below(4) {
        0 => {
            let a = 1024 + r.below(60000) as u16;
            vec![a..=a.saturating_add(r.below(500) as u16)]
        }
        _ => {
            let p = WELL_KNOWN[r.below(WELL_KNOWN.len() as u64) as usize];
            vec![p..=p]
        }
    }
}

fn proto(r: &mut Rng) -> Vec<RangeInclusive<u8>> {
    if r.below(3) == 0 {
        vec![17..=17]
    } else {
        vec![6..=6]
    }
}

/// A realistic mix of `n` rules over destination /24s drawn from `pool`.
fn rules(r: &mut Rng, n: usize, pool: &[u32]) -> RuleSet {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let dst = Some(rand_prefix(r, pool));
        let m = match r.below(100) {
            0..70 => Match {
                dst,
                protocol: Some(proto(r)),
                dst_port: Some(port(r)),
                ..Default::default()
            },
            70..85 => Match {
                src: Some(Prefix::V4(
                    Ipv4Addr::from(r.next() as u32 & 0xffff_ff00),
                    8 + r.below(17) as u8,
                )),
                dst,
                protocol: Some(proto(r)),
                ..Default::default()
            },
            85..95 => {
                if r.below(2) == 0 {
                    Match {
                        dst,
                        protocol: Some(vec![6..=6]),
                        tcp_flags: Some(ByteSet::masked(0x12, 0x02)),
                        ..Default::default()
                    }
                } else {
                    let a = 40 + r.below(1400) as u16;
                    Match {
                        dst,
                        pkt_len: Some(vec![a..=a + 100]),
                        ..Default::default()
                    }
                }
            }
            _ => {
                if r.below(2) == 0 {
                    Match {
                        dst,
                        protocol: Some(vec![1..=1]),
                        ..Default::default()
                    }
                } else {
                    Match {
                        dst,
                        fragment: Some(ByteSet::any_of(0x02)),
                        ..Default::default()
                    }
                }
            }
        };
        v.push(Rule::new(i as u64, m, Action::Accept));
    }
    RuleSet::new(v)
}

/// A unicast address (the forwarder passes 224/4 and 0/8 would be odd): 1.0.0.0–223.255.255.255.
fn unicast(a: u32) -> u32 {
    a % (0xe000_0000 - 0x0100_0000) + 0x0100_0000
}

fn pass(f: &mut Forwarder, frame: &[u8]) -> f64 {
    let p = f.program_named("xdp_bench_forward4").expect("program");
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: DESTS as u32,
            ..Default::default()
        })
        .expect("run");
    assert_eq!(r.return_value, 4, "the forwarder redirects");
    // the kernel reports the mean duration of one run
    r.duration.as_nanos() as f64
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    // `--rules 100,1000`: only these rule counts (the rule sets are drawn in order, so each count
    // gets the same rules as in a full run)
    let only: Option<Vec<usize>> = args
        .iter()
        .position(|a| a == "--rules")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect());
    // `--hit-only`: skip the uniform ("miss") stream
    let hit_only = args.iter().any(|a| a == "--hit-only");
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "classifier cost per packet, {reps} interleaved passes of {DESTS} runs each; load average {}",
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut r = Rng(0x00c1_a551_f1e5);
    // destination /24s the rules protect: 5,000 random ones
    let pool: Vec<u32> = (0..5000)
        .map(|_| unicast(r.next() as u32) & 0xffff_ff00)
        .collect();
    let miss: Vec<u32> = (0..DESTS).map(|_| unicast(r.next() as u32)).collect();
    let frame = frame4();

    let mut base = load(false);
    let mut cls_fwd = load(true);
    let mut cls = cls_fwd.classifier().expect("classifier");
    println!(
        "  {:<8} {:<6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "rules",
        "dests",
        "with ns",
        "without",
        "added med",
        "added min",
        "bitmaps",
        "words KiB",
        "install"
    );
    for n in [0usize, 100, 1000, 10_000] {
        let set = rules(&mut r, n, &pool);
        let t = Instant::now();
        let rep = cls.install(&set).expect("install");
        let install = t.elapsed();
        // "hit": inside the installed rules' destination prefixes (all of the pool when no rules)
        let dsts: Vec<Prefix> = set.rules.iter().filter_map(|x| x.matches.dst).collect();
        let hit: Vec<u32> = (0..DESTS)
            .map(|_| {
                let p = if dsts.is_empty() {
                    Prefix::V4(
                        Ipv4Addr::from(pool[r.below(pool.len() as u64) as usize]),
                        24,
                    )
                } else {
                    dsts[r.below(dsts.len() as u64) as usize]
                };
                let Prefix::V4(a, l) = p else { unreachable!() };
                let host = if l == 32 {
                    0
                } else {
                    r.next() as u32 & (u32::MAX >> l)
                };
                u32::from(a) | host
            })
            .collect();
        if only.as_ref().is_some_and(|o| !o.contains(&n)) {
            continue;
        }
        for (name, stream) in [("miss", &miss), ("hit", &hit)] {
            if hit_only && name == "miss" {
                continue;
            }
            fill_dst4(&mut base, stream);
            fill_dst4(&mut cls_fwd, stream);
            pass(&mut base, &frame);
            pass(&mut cls_fwd, &frame);
            let (mut with, mut without, mut diff) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..reps {
                let a = pass(&mut cls_fwd, &frame);
                let b = pass(&mut base, &frame);
                with.push(a);
                without.push(b);
                diff.push(a - b);
            }
            let min = diff.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "  {:<8} {:<6} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>9} {:>9} {:>7.0}ms",
                n,
                name,
                median(&mut with),
                median(&mut without),
                median(&mut diff),
                min,
                rep.bitmaps,
                rep.words * 8 / 1024,
                install.as_secs_f64() * 1e3
            );
        }
        let st = cls.stats().expect("stats");
        println!(
            "           classified {} matched {} ({:.1}%)",
            st.classified,
            st.matched,
            100.0 * st.matched as f64 / st.classified.max(1) as f64
        );
    }
}
