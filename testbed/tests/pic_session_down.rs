//! BGP PIC through the real daemon: two upstreams (our bench feeders) announce the same 100,000
//! real prefixes, feeder 1 one AS longer (the backup). Feeder 0's session goes down (NOTIFICATION).
//! Sampled lookups through the forwarder on ribd's pinned maps (BPF_PROG_TEST_RUN) show that every
//! sample already goes to the survivor while prefix entries in the maps still hold the path-list
//! they had before the failure: the dataplane moved by path-list flips, before the RIB's
//! per-prefix deltas were applied. No sample is ever without a usable route, and once the deltas
//! are in, `fib check` is clean. Observed, never timed. Needs root (namespaces, XDP).

use std::time::Duration;

use clap::Parser;
use fib_ebpf::FibMaps;
use fib_ebpf::abi::DIR_ENTRY_TBL8;
use ipnet::IpNet;
use testbed::bench::BenchArgs;
use testbed::bench::ingest::{Bed, start_feeder, wait_loaded};
use testbed::bench::probe::{XdpProbe, host_in, mac_of};
use testbed::bench::sut::{Sut, SutKind, SutSpec};
use testbed::bench::table::FeedSet;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// The path-list id the maps hold for an IPv4 address (DIR-24-8, as the forwarder reads it).
fn entry(maps: &FibMaps, p: &IpNet) -> u32 {
    let std::net::IpAddr::V4(a) = host_in(p) else {
        panic!("IPv4 samples only")
    };
    let a = u32::from(a);
    let e = maps.dir24_load(a >> 8);
    if e & DIR_ENTRY_TBL8 != 0 {
        maps.dir8_load(e & !DIR_ENTRY_TBL8, (a & 0xff) as u8)
    } else {
        e
    }
}

/// The FIB part of `/v1/route/PREFIX` (what `ribctl show route` prints).
fn fib_of(sut: &Sut, p: &IpNet) -> serde_json::Value {
    let path = format!("/v1/route/{}", ribd::api::prefix_to_path(&p.to_string()));
    let (st, body) = testbed::bins::api(&sut.ribd_socket(), "GET", &path).unwrap();
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["fib"].clone()
}

#[test]
fn session_down_moves_the_dataplane_before_the_rib_deltas_are_applied() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (namespaces, XDP)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::parse_from(["bench", "--prefixes", "100000", "--samples", "256"]);
    let a = cli.bench;
    testbed::bench::set_exe(env!("CARGO_BIN_EXE_testbed").into());
    let feed = FeedSet::build(&a, dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
    let bed = Bed::new(2).unwrap_or_else(|e| panic!("{e:#}"));
    let spec = SutSpec {
        feeders: 2,
        hold_time: a.hold_time,
        v6: feed.v6 > 0,
    };
    let sut = Sut::start(SutKind::Ribd, bed.dut.name(), &spec).unwrap_or_else(|e| panic!("{e:#}"));
    let diag = |e: anyhow::Error| -> String { format!("{e:#}\n{}", sut.diagnostics()) };
    let mut fa = start_feeder(&bed, &feed, &sut, 0, 0, a.hold_time).unwrap();
    let mut fb = start_feeder(&bed, &feed, &sut, 1, 1, a.hold_time).unwrap();
    let t0 = fa
        .wait("established", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}", diag(e)));
    fb.wait("established", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}", diag(e)));
    let n = feed.prefixes() as u64;
    wait_loaded(
        &sut,
        t0,
        2 * n,
        n,
        Duration::from_millis(100),
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("{}", diag(e)));

    let samples: Vec<IpNet> = feed
        .sample(a.samples)
        .into_iter()
        .filter(|p| p.addr().is_ipv4())
        .collect();
    let ns = samples.len();
    let mut probe = XdpProbe::new(
        bed.dut.name(),
        &samples,
        mac_of(bed.feed.name(), "e0").unwrap(),
        mac_of(bed.feed.name(), "e1").unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let maps = FibMaps::open_pinned(&std::path::Path::new("/sys/fs/bpf").join(bed.dut.name()))
        .expect("ribd's pinned maps");
    // The starting state: everything on feeder 0 (the best), backups in place.
    testbed::peers::wait_until(Duration::from_secs(60), || {
        Ok((probe.probe()?.dead == ns).then_some(()))
    })
    .unwrap_or_else(|e| panic!("never all on the best upstream: {}", diag(e)));
    let before: Vec<u32> = samples.iter().map(|p| entry(&maps, p)).collect();
    // What an operator sees (`ribctl show route`): the primary next-hop carrying every bucket and
    // the backup, resolved, waiting with none.
    let fib = fib_of(&sut, &samples[0]);
    let (primary, backup) = (&fib["nexthops"], &fib["backup"]);
    assert_eq!(primary.as_array().map(Vec::len), Some(1), "{fib}");
    assert_eq!(backup.as_array().map(Vec::len), Some(1), "{fib}");
    assert_ne!(primary[0]["address"], backup[0]["address"], "{fib}");
    assert_eq!(backup[0]["resolved"], true, "{fib}");
    assert_eq!(backup[0]["buckets"], 0, "{fib}");
    assert!(primary[0]["buckets"].as_u64() > Some(0), "{fib}");

    fa.command("stop").unwrap();
    let (mut flipped_first, mut rounds) = (false, 0u32);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let c = probe.probe().unwrap();
        let unchanged = samples
            .iter()
            .zip(&before)
            .filter(|(p, b)| entry(&maps, p) == **b)
            .count();
        rounds += 1;
        assert_eq!(
            c.none, 0,
            "round {rounds}: a sample without a usable route ({c:?}, {unchanged} entries unchanged)"
        );
        if c.survivor == ns && unchanged > 0 {
            flipped_first = true;
        }
        if c.survivor == ns && unchanged == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not converged: {c:?}, {unchanged} of {ns} entries unchanged\n{}",
            sut.diagnostics()
        );
    }
    eprintln!("{rounds} probe rounds until every sample's entry was rewritten");
    assert!(
        flipped_first,
        "no probe round saw the samples on the survivor while their prefix entries still held the \
         old path-lists: the dataplane did not move before the RIB's deltas"
    );
    // No backup is left once the survivor is the only path; the old backup is now the primary.
    let after = fib_of(&sut, &samples[0]);
    assert_eq!(
        after["nexthops"][0]["address"], backup[0]["address"],
        "{after}"
    );
    assert!(after.get("backup").is_none(), "{after}");
    let (st, body) = testbed::bins::api(&sut.ribd_socket(), "GET", "/v1/fib/check").unwrap();
    assert_eq!(st, 200, "{body}");
    let check: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(check["ok"], true, "fib check after the deltas: {body}");
    drop(fa);
    drop(fb);
}
