//! `testbed fwd-bench` on a small table: both forwarding paths the benchmark compares really deliver
//! every injected frame at the sinks, spread over both ECMP next hops, and both drop paths (XDP
//! classifier, nftables) drop every frame (the figures themselves are
//! not asserted: timings on a shared machine are noise). Needs root.

use testbed::fwdbench::{FwdBenchArgs, run};

#[test]
fn live_frames_reach_the_sinks_through_xdp_and_through_the_kernel() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (namespaces, XDP, BPF_PROG_TEST_RUN)");
        return;
    }
    let r = run(FwdBenchArgs {
        prefixes: Some(500),
        packets: 20_000,
        runs: 1,
        batch: 64,
        cpu: 0,
        json: None,
        drop_rules: 100,
        no_drop: false,
        drop_only: false,
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.cases.len(), 4, "{r:?}");
    for c in &r.cases {
        assert!(
            c.delivered >= 0.99,
            "{} with {} routes: {c:?}",
            c.system,
            c.routes
        );
        assert!(
            (0.35..=0.65).contains(&c.split),
            "ECMP over both sinks: {c:?}"
        );
        assert!(c.pps > 0.0);
    }
    // BPF_PROG_TEST_RUN ns/packet with 1 route and with the table, one value per pass.
    assert_eq!(r.prog.len(), 2, "{r:?}");
    for p in &r.prog {
        assert_eq!((p.whole_ns.len(), p.forwarder_ns.len()), (1, 1), "{p:?}");
        assert!(p.whole_ns[0] > 0.0, "{p:?}");
    }
    // The drop cases, with 1 and 101 rules: the harness alone, the packet source alone, the XDP
    // classifier, nftables (sets); nothing leaks to the sinks.
    assert_eq!(r.drop.len(), 8, "{r:?}");
    for c in &r.drop {
        assert_eq!(c.leaked, 0, "{c:?}");
        assert!(c.pps > 0.0);
    }
}
