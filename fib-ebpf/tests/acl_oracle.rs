//! Property test: the real program (BPF_PROG_TEST_RUN) agrees with the reference matcher on random
//! rule sets and random packets biased to hit them: verdict, output frame (DSCP rewrite), and which
//! rules counted and dropped each packet. Needs root.

mod acl_common;

use std::cell::RefCell;

use acl_common::*;
use fib_ebpf::acl::reference::{PacketFields, evaluate};
use fib_ebpf::acl::{Classifier, RuleSet};
use fib_ebpf::{Forwarder, LoadOptions};
use proptest::prelude::*;

thread_local! {
    static DP: RefCell<Option<(Forwarder, Classifier)>> = const { RefCell::new(None) };
}

fn with_dp<T>(f: impl FnOnce(&mut Forwarder, &mut Classifier) -> T) -> T {
    DP.with(|dp| {
        let mut dp = dp.borrow_mut();
        let (fwd, cls) = dp.get_or_insert_with(|| {
            let fwd = Forwarder::load_with(&LoadOptions::default()).expect("load forwarder");
            let cls = fwd.classifier().expect("classifier");
            (fwd, cls)
        });
        f(fwd, cls)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn program_agrees_with_the_reference(
        rules in rules_strategy(40),
        pkts in prop::collection::vec(pkt_strategy(), 48),
    ) {
        let set = RuleSet::new(rules);
        with_dp(|fwd, cls| -> Result<(), TestCaseError> {
            cls.install(&set).expect("install");
            for (p, iif) in &pkts {
                let frame = p.frame();
                let f = PacketFields::from_frame(&frame, *iif).expect("parse");
                let want = evaluate(&set, &f, |_, l, _| l.rate > 0);
                let before = cls.counters().unwrap();
                let (action, out) = run_on(fwd.program().unwrap(), &frame, *iif);
                let after = cls.counters().unwrap();
                if want.dropped() {
                    prop_assert_eq!(action, XDP_DROP, "{:?}", f);
                } else {
                    prop_assert_eq!(action, XDP_PASS, "{:?}", f);
                    let expect = match want.set_dscp {
                        Some(d) => with_dscp(&frame, d),
                        None => frame.clone(),
                    };
                    prop_assert_eq!(out, expect, "output frame of {:?}", f);
                }
                for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                    prop_assert_eq!(b.id, set.rules[i].id);
                    let counted = want.counted.contains(&i);
                    prop_assert_eq!(a.packets - b.packets, u64::from(counted), "rule {} packets, {:?}", i, f);
                    prop_assert_eq!(a.bytes - b.bytes, if counted { frame.len() as u64 } else { 0 });
                    let dropper = want.dropped_by == Some(i);
                    prop_assert_eq!(a.dropped_packets - b.dropped_packets, u64::from(dropper), "rule {} drops, {:?}", i, f);
                }
            }
            Ok(())
        })?;
    }
}

/// Large rule sets (several 512-rule chunks, candidate words past the first summary word): most
/// rules narrowed to destinations from a pool that the packets aim at, so matches land in every
/// word, not only in the first rules. Verdict and output frame per packet, per-rule counters summed
/// over the run.
#[test]
fn program_agrees_with_the_reference_on_large_rule_sets() {
    use fib_ebpf::acl::{Match, Prefix, Rule, RuleId};
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::net::{IpAddr, Ipv4Addr};

    let mut runner = TestRunner::deterministic();
    let sample_m = |r: &mut TestRunner| matches_strategy().new_tree(r).unwrap().current();
    for (case, n) in [(0u64, 1500usize), (1, 4700), (2, 9000)] {
        let mut rng = 0x5eed_0000_u64 + case;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let pool: Vec<Prefix> = (0..n / 3)
            .map(|_| {
                let len = [16u8, 24, 24, 24, 28, 32][(next() % 6) as usize];
                let a = (next() as u32 % 0xdf00_0000 + 0x0100_0000) & (u32::MAX << (32 - len));
                Prefix::V4(Ipv4Addr::from(a), len)
            })
            .collect();
        let rules: Vec<Rule> = (0..n)
            .map(|i| {
                let (action, set_dscp, terminal) =
                    action_strategy().new_tree(&mut runner).unwrap().current();
                let mut m: Match = sample_m(&mut runner);
                // 0.2% as generated (mostly wide), the rest narrowed to a pool destination, half of
                // those with nothing else to match
                if next() % 500 != 0 {
                    let dst = Some(pool[(next() % pool.len() as u64) as usize]);
                    if next() % 2 == 0 {
                        m = Match {
                            dst,
                            ..Default::default()
                        };
                    } else {
                        m.family = None;
                        m.src = None;
                        m.dst = dst;
                        m.ingress_ifindex = None;
                    }
                }
                Rule {
                    id: RuleId(i as u64),
                    matches: m,
                    action,
                    set_dscp,
                    terminal,
                }
            })
            .collect();
        let set = RuleSet::new(rules);
        let mut want_count = vec![(0u64, 0u64); n];
        with_dp(|fwd, cls| {
            cls.install(&set).expect("install");
            let before = cls.counters().unwrap();
            for _ in 0..400 {
                let (mut p, iif) = pkt_strategy().new_tree(&mut runner).unwrap().current();
                if next() % 5 != 0 {
                    let Prefix::V4(a, l) = pool[(next() % pool.len() as u64) as usize] else {
                        unreachable!()
                    };
                    let host = if l == 32 {
                        0
                    } else {
                        next() as u32 & (u32::MAX >> l)
                    };
                    p.dst = IpAddr::V4(Ipv4Addr::from(u32::from(a) | host));
                    if p.src.is_ipv6() {
                        p.src = IpAddr::V4(Ipv4Addr::from(next() as u32));
                    }
                    if p.proto == 58 {
                        p.proto = 1;
                    }
                }
                let frame = p.frame();
                let f = PacketFields::from_frame(&frame, iif).expect("parse");
                let want = evaluate(&set, &f, |_, l, _| l.rate > 0);
                let (action, out) = run_on(fwd.program().unwrap(), &frame, iif);
                if want.dropped() {
                    assert_eq!(action, XDP_DROP, "{n} rules: {f:?}");
                } else {
                    assert_eq!(action, XDP_PASS, "{n} rules: {f:?}");
                    let expect = match want.set_dscp {
                        Some(d) => with_dscp(&frame, d),
                        None => frame.clone(),
                    };
                    assert_eq!(out, expect, "{n} rules: output frame of {f:?}");
                }
                for &i in &want.counted {
                    want_count[i].0 += 1;
                }
                if let Some(i) = want.dropped_by {
                    want_count[i].1 += 1;
                }
            }
            let after = cls.counters().unwrap();
            let mut matched = 0;
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                let got = (a.packets - b.packets, a.dropped_packets - b.dropped_packets);
                assert_eq!(got, want_count[i], "{n} rules: rule {i} (packets, drops)");
                matched += got.0;
            }
            // the packets did reach rules all over the set, not only the first words
            let deep = want_count[n / 2..].iter().filter(|c| c.0 > 0).count();
            assert!(
                matched > 100 && deep > 10,
                "{n} rules: {matched} matches, {deep} past the middle"
            );
        });
    }
}
