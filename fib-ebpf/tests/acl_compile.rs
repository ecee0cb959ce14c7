//! The compiled tables, walked by `Compiled::matching` (the Rust model of the XDP stage), agree with
//! the reference matcher on random rule sets and packets. No kernel needed.

mod acl_common;

use acl_common::*;
use fib_ebpf::acl::reference::{PacketFields, matches};
use fib_ebpf::acl::{CompileError, Match, RuleSet, compile};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn compiled_tables_agree_with_the_reference(
        rules in rules_strategy(60),
        pkts in prop::collection::vec(pkt_strategy(), 64),
    ) {
        let set = RuleSet::new(rules);
        let c = compile(&set).expect("compile");
        for (p, iif) in &pkts {
            let f = PacketFields::from_frame(&p.frame(), *iif).expect("parse");
            let want: Vec<usize> = set.rules.iter().enumerate()
                .filter(|(_, r)| matches(&r.matches, &f)).map(|(i, _)| i).collect();
            prop_assert_eq!(c.matching(&f), want, "packet {:?}", f);
        }
    }
}

#[test]
fn more_rules_than_one_chunk_keep_priority_order() {
    // 1,500 rules over three chunks; the packet matches rules 7, 700 and 1,499 only.
    let mut rules = Vec::new();
    for i in 0..1500u64 {
        let port = if [7, 700, 1499].contains(&i) {
            80
        } else {
            10_000 + i as u16
        };
        rules.push(rule(
            i,
            Match {
                dst_port: Some(vec![port..=port]),
                ..Default::default()
            },
            fib_ebpf::acl::Action::Drop,
        ));
    }
    let c = compile(&RuleSet::new(rules)).unwrap();
    let f = PacketFields::from_frame(
        &Pkt::v4("1.2.3.4", "5.6.7.8").with(|p| p.dport = 80).frame(),
        1,
    )
    .unwrap();
    assert_eq!(c.matching(&f), vec![7, 700, 1499]);
}

#[test]
fn invalid_rule_sets_are_refused_with_the_rule_named() {
    let dup = RuleSet::new(vec![
        rule(1, Match::default(), fib_ebpf::acl::Action::Drop),
        rule(1, Match::default(), fib_ebpf::acl::Action::Drop),
    ]);
    assert!(matches!(compile(&dup), Err(CompileError::DuplicateId(_))));
    let mixed = RuleSet::new(vec![rule(
        2,
        Match {
            src: Some(pfx("10.0.0.0/8")),
            dst: Some(pfx("2001:db8::/32")),
            ..Default::default()
        },
        fib_ebpf::acl::Action::Drop,
    )]);
    let e = compile(&mixed).unwrap_err().to_string();
    assert!(e.contains("RuleId(2)") && e.contains("disagree"), "{e}");
    let long = RuleSet::new(vec![rule(
        3,
        Match {
            dst: Some(pfx("10.0.0.0/33")),
            ..Default::default()
        },
        fib_ebpf::acl::Action::Drop,
    )]);
    assert!(compile(&long).unwrap_err().to_string().contains("/32"));
}

#[test]
fn the_ipv4_destination_map_marks_exactly_the_slash16s_with_prefixes() {
    use fib_ebpf::acl::abi::{CLS_DST4_MAP_NODE, CLS_F_DST, CLS_ROOT_DST4};
    use fib_ebpf::acl::{Action, Prefix};
    let p = |s: &str| -> Option<Prefix> { Some(s.parse().unwrap()) };
    let set = RuleSet::new(vec![
        rule(
            1,
            Match {
                dst: p("10.1.2.0/24"),
                ..Match::default()
            },
            Action::Drop,
        ),
        rule(
            2,
            Match {
                dst: p("10.2.0.0/16"),
                ..Match::default()
            },
            Action::Drop,
        ),
        rule(
            3,
            Match {
                dst: p("11.0.0.0/8"),
                ..Match::default()
            },
            Action::Drop,
        ),
        rule(4, Match::default(), Action::Accept),
    ]);
    let c = compile(&set).unwrap();
    let bit = |hi: usize| {
        c.nodes[CLS_DST4_MAP_NODE as usize + hi / 32 / 256][hi / 32 % 256] >> (hi % 32) & 1 == 1
    };
    let marked: Vec<usize> = (0..65536).filter(|&hi| bit(hi)).collect();
    let mut want = vec![10 << 8 | 1, 10 << 8 | 2];
    want.extend((0..256).map(|b| 11 << 8 | b));
    assert_eq!(marked, want);
    // every other /16's root entry is the default leaf the header holds (rule 4 only)
    let def = c.slot.none_bm[CLS_F_DST as usize];
    assert_ne!(def, 0);
    let root = |hi: usize| c.nodes[(CLS_ROOT_DST4 * 256) as usize + hi / 256][hi % 256];
    assert!((0..65536).filter(|&hi| !bit(hi)).all(|hi| root(hi) == def));
    assert!(want.iter().all(|&hi| root(hi) != def));
}
