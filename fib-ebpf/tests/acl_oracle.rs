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
