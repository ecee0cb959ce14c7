//! Rate-limiter accuracy through BPF_PROG_TEST_RUN on a controlled clock (`cls_test_clock`: the
//! limiter reads `cls_clock`, which the test advances per packet), so the assertions count tokens,
//! not wall-clock time. Needs root.

mod acl_common;

use acl_common::*;
use aya::maps::Array;
use fib_ebpf::acl::{Action, Match, RateLimit, RateUnit, RuleId, RuleSet};
use fib_ebpf::{Forwarder, LoadOptions};

fn set_clock(fwd: &mut Forwarder, ns: u64) {
    let mut a: Array<_, u64> =
        Array::try_from(fwd.raw_map_mut("cls_clock").expect("cls_clock")).unwrap();
    a.set(0, ns, 0).unwrap();
}

fn pin_cpu(cpu: usize) {
    // SAFETY: sched_setaffinity on the calling thread with a zeroed, then filled, cpu set.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(rc, 0);
}

/// Offers `n` packets `gap_ns` apart from `start` (ns; the clock never goes back) (frame from `frame(i)`), alternating over `cpus`; returns how
/// many passed.
fn offer(
    fwd: &mut Forwarder,
    start: u64,
    n: u64,
    gap_ns: u64,
    cpus: &[usize],
    frame: impl Fn(u64) -> Vec<u8>,
) -> u64 {
    let mut passed = 0;
    for i in 0..n {
        if cpus.len() > 1 {
            pin_cpu(cpus[i as usize % cpus.len()]);
        }
        set_clock(fwd, start + i * gap_ns);
        let (act, _) = run_on(fwd.program().unwrap(), &frame(i), 1);
        if act == XDP_PASS {
            passed += 1;
        } else {
            assert_eq!(act, XDP_DROP);
        }
    }
    passed
}

fn limit(rate: u64, unit: RateUnit, burst: u64) -> RuleSet {
    RuleSet::new(vec![fib_ebpf::acl::Rule::new(
        1,
        Match {
            protocol: Some(vec![17..=17]),
            ..Default::default()
        },
        Action::RateLimit(RateLimit { rate, unit, burst }),
    )])
}

fn udp(len: usize) -> Vec<u8> {
    Pkt::v4("10.0.0.1", "10.9.9.9")
        .with(|p| {
            p.proto = 17;
            p.pad = len - 40
        })
        .frame()
}

#[test]
fn packet_rate_holds_over_ten_times_the_offered_load() {
    let mut fwd = Forwarder::load_with(&LoadOptions {
        cls_test_clock: true,
        ..Default::default()
    })
    .unwrap();
    let mut cls = fwd.classifier().unwrap();
    cls.install(&limit(1000, RateUnit::Packets, 10)).unwrap();
    // 10,000 pps offered for 2 s against 1,000 pps with a burst of 10
    let passed = offer(&mut fwd, 1_000_000_000, 20_000, 100_000, &[], |_| udp(100));
    let expect = 2 * 1000 + 10;
    println!("passed {passed} of 20000, expected {expect}");
    assert!(
        passed.abs_diff(expect) <= 2,
        "passed {passed}, expected {expect} (±2)"
    );
    let c = cls.counter(RuleId(1)).unwrap().unwrap();
    assert_eq!((c.packets, c.dropped_packets), (20_000, 20_000 - passed));
    assert_eq!(cls.stats().unwrap().rate_dropped, 20_000 - passed);
    // below the rate nothing is dropped
    let passed = offer(&mut fwd, 3_000_000_000, 500, 2_000_000, &[], |_| udp(100));
    assert_eq!(passed, 500);
}

#[test]
fn byte_rate_counts_ip_bytes() {
    let mut fwd = Forwarder::load_with(&LoadOptions {
        cls_test_clock: true,
        ..Default::default()
    })
    .unwrap();
    let mut cls = fwd.classifier().unwrap();
    // 1 Mbit/s = 125,000 B/s; burst 1,500 B. Offered: 1,000 pps of 200..1,400-byte packets for 2 s.
    cls.install(&limit(125_000, RateUnit::Bytes, 1500)).unwrap();
    let size = |i: u64| 200 + (i * 7919 % 1201) as usize;
    let mut passed_bytes = 0u64;
    let n = 2000;
    for i in 0..n {
        set_clock(&mut fwd, 5_000_000_000 + i * 1_000_000);
        if run_on(fwd.program().unwrap(), &udp(size(i)), 1).0 == XDP_PASS {
            passed_bytes += size(i) as u64;
        }
    }
    let offered: u64 = (0..n).map(|i| size(i) as u64).sum();
    let expect = 2 * 125_000 + 1500;
    println!("passed {passed_bytes} B of {offered} B offered, expected ≈{expect}");
    // GCRA lets a packet through while the bucket is not yet empty: at most one packet over
    assert!(
        passed_bytes <= expect + 1400 && passed_bytes + 1400 >= expect,
        "passed {passed_bytes} B, expected {expect} B"
    );
    assert!(passed_bytes.abs_diff(expect) * 10 <= expect, "outside ±10%");
}

#[test]
fn the_bucket_is_shared_by_all_cpus() {
    let cpus: Vec<usize> = (0..std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4))
        .collect();
    if cpus.len() < 2 {
        eprintln!("one CPU: nothing to share");
        return;
    }
    let mut fwd = Forwarder::load_with(&LoadOptions {
        cls_test_clock: true,
        ..Default::default()
    })
    .unwrap();
    let mut cls = fwd.classifier().unwrap();
    cls.install(&limit(1000, RateUnit::Packets, 5)).unwrap();
    let passed = offer(&mut fwd, 1_000_000_000, 8000, 250_000, &cpus, |_| udp(64)); // 4,000 pps for 2 s over the CPUs
    let expect = 2 * 1000 + 5;
    println!(
        "passed {passed} over {} CPUs, expected {expect}",
        cpus.len()
    );
    assert!(
        passed.abs_diff(expect) <= 2,
        "passed {passed}, expected {expect}: per-CPU buckets would pass ~{}x",
        cpus.len()
    );
}

#[test]
fn a_rate_change_keeps_the_bucket_and_a_new_rule_starts_full() {
    let mut fwd = Forwarder::load_with(&LoadOptions {
        cls_test_clock: true,
        ..Default::default()
    })
    .unwrap();
    let mut cls = fwd.classifier().unwrap();
    cls.install(&limit(100, RateUnit::Packets, 1)).unwrap();
    // back-to-back at one instant: only the burst passes
    let passed = offer(&mut fwd, 1_000_000_000, 50, 0, &[], |_| udp(64));
    assert_eq!(passed, 1);
    // same id, new rate: 1 s later at 10x the rate: 10x the packets
    cls.install(&limit(1000, RateUnit::Packets, 1)).unwrap();
    let mut passed = 0;
    for i in 0..10_000u64 {
        set_clock(&mut fwd, 2_000_000_000 + i * 100_000);
        passed += u64::from(run_on(fwd.program().unwrap(), &udp(64), 1).0 == XDP_PASS);
    }
    assert!(passed.abs_diff(1001) <= 2, "passed {passed}");
}
