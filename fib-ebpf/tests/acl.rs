//! Classifier packet tables through BPF_PROG_TEST_RUN: every match component, every action, rule
//! order and overlap, non-terminal chains, the atomic swap and pinned state across a restart. Each
//! case states the verdict, the DSCP of the frame that comes out (built from scratch, IPv4 checksum
//! recomputed in full) and which rules counted it; the reference matcher must say the same.
//! Needs root (CAP_BPF). No routes are installed: a frame the classifier lets through is passed to
//! the kernel (no route), so XDP_PASS = accepted, XDP_DROP = dropped.

mod acl_common;

use std::collections::HashMap;

use acl_common::*;
use fib_ebpf::acl::reference::{PacketFields, evaluate};
use fib_ebpf::acl::{
    Action, ByteSet, Classifier, Family, Match, RateLimit, RateUnit, Rule, RuleId, RuleSet,
};
use fib_ebpf::{Forwarder, LoadOptions};

struct Case {
    desc: &'static str,
    pkt: Pkt,
    iif: u32,
    /// None: accepted unchanged; Some(d): accepted with DSCP d. Ignored when dropped.
    dscp: Option<u8>,
    drop: bool,
    /// Rule ids whose counters must grow by one packet.
    counted: Vec<u64>,
}

fn case(desc: &'static str, pkt: Pkt, dscp: Option<u8>, counted: &[u64]) -> Case {
    Case {
        desc,
        pkt,
        iif: 1,
        dscp,
        drop: false,
        counted: counted.to_vec(),
    }
}

fn dropped(desc: &'static str, pkt: Pkt, counted: &[u64]) -> Case {
    Case {
        desc,
        pkt,
        iif: 1,
        dscp: None,
        drop: true,
        counted: counted.to_vec(),
    }
}

fn load() -> (Forwarder, Classifier) {
    let fwd = Forwarder::load_with(&LoadOptions {
        cls_test_clock: true,
        ..Default::default()
    })
    .expect("load forwarder");
    let cls = fwd.classifier().expect("classifier maps");
    (fwd, cls)
}

fn counts(cls: &Classifier) -> HashMap<RuleId, (u64, u64)> {
    cls.counters()
        .unwrap()
        .into_iter()
        .map(|c| (c.id, (c.packets, c.dropped_packets)))
        .collect()
}

/// Runs every case against `set`, checking the program against the case and the reference.
fn check(set: &RuleSet, cases: &[Case]) {
    let (mut fwd, mut cls) = load();
    cls.install(set).expect("install");
    for c in cases {
        let frame = c.pkt.frame();
        let fields = PacketFields::from_frame(&frame, c.iif).expect("classifiable frame");
        let want = evaluate(set, &fields, |_, l, _| l.rate > 0);
        assert_eq!(
            want.dropped(),
            c.drop,
            "{}: the reference disagrees with the case",
            c.desc
        );
        let counted: Vec<u64> = want.counted.iter().map(|&i| set.rules[i].id.0).collect();
        assert_eq!(
            counted, c.counted,
            "{}: the reference counts other rules",
            c.desc
        );
        if !c.drop {
            assert_eq!(
                want.set_dscp, c.dscp,
                "{}: the reference marks otherwise",
                c.desc
            );
        }

        let before = counts(&cls);
        let (action, out) = run_on(fwd.program().unwrap(), &frame, c.iif);
        let after = counts(&cls);
        if c.drop {
            assert_eq!(action, XDP_DROP, "{}: not dropped", c.desc);
        } else {
            assert_eq!(action, XDP_PASS, "{}: action {action}", c.desc);
            let expect = match c.dscp {
                Some(d) => with_dscp(&frame, d),
                None => frame.clone(),
            };
            assert_eq!(out, expect, "{}: output frame", c.desc);
        }
        for r in &set.rules {
            let (p0, d0) = before[&r.id];
            let (p1, d1) = after[&r.id];
            let hit = c.counted.contains(&r.id.0);
            assert_eq!(
                p1 - p0,
                u64::from(hit),
                "{}: packets of rule {}",
                c.desc,
                r.id.0
            );
            let dropper = c.drop && c.counted.last() == Some(&r.id.0);
            assert_eq!(
                d1 - d0,
                u64::from(dropper),
                "{}: drops of rule {}",
                c.desc,
                r.id.0
            );
        }
    }
}

fn m() -> Match {
    Match::default()
}

#[test]
fn every_match_component() {
    // Each rule marks with its own id as DSCP and is terminal: the output DSCP names the match.
    let set = RuleSet::new(vec![
        mark(
            1,
            Match {
                dst: Some(pfx("10.1.0.0/16")),
                ..m()
            },
        ),
        mark(
            2,
            Match {
                src: Some(pfx("192.0.2.0/24")),
                ..m()
            },
        ),
        mark(
            3,
            Match {
                protocol: Some(vec![17..=17]),
                dst_port: Some(vec![53..=53]),
                ..m()
            },
        ),
        mark(
            4,
            Match {
                protocol: Some(vec![6..=6]),
                src_port: Some(vec![1000..=2000]),
                ..m()
            },
        ),
        mark(
            5,
            Match {
                dst_port: Some(vec![22..=23, 8000..=8080]),
                ..m()
            },
        ),
        mark(
            6,
            Match {
                icmp_type: Some(vec![8..=8]),
                icmp_code: Some(vec![0..=0]),
                ..m()
            },
        ),
        mark(
            7,
            Match {
                tcp_flags: Some(ByteSet::masked(0x12, 0x02)),
                ..m()
            },
        ),
        mark(
            8,
            Match {
                pkt_len: Some(vec![1000..=1500]),
                ..m()
            },
        ),
        mark(
            9,
            Match {
                dscp: Some(vec![46..=46]),
                ..m()
            },
        ),
        mark(
            10,
            Match {
                fragment: Some(ByteSet::any_of(0x02)),
                ..m()
            },
        ),
        mark(
            11,
            Match {
                ingress_ifindex: Some(vec![2]),
                ..m()
            },
        ),
        mark(
            12,
            Match {
                dst: Some(pfx("2001:db8:1::/48")),
                ..m()
            },
        ),
        mark(
            13,
            Match {
                src: Some(pfx("2001:db8:ffff::/64")),
                protocol: Some(vec![6..=6]),
                ..m()
            },
        ),
        mark(
            14,
            Match {
                family: Some(Family::V6),
                icmp_type: Some(vec![128..=128]),
                ..m()
            },
        ),
        mark(
            15,
            Match {
                family: Some(Family::V6),
                protocol: Some(vec![17..=17]),
                dst_port: Some(vec![4789..=4789]),
                ..m()
            },
        ),
        mark(
            16,
            Match {
                fragment: Some(ByteSet::all_of(0x01)),
                protocol: Some(vec![47..=47]),
                ..m()
            },
        ),
    ]);
    let base = || Pkt::v4("100.64.0.1", "198.18.0.1");
    let base6 = || Pkt::v6("2001:db8:eeee::1", "2001:db8:9::1");
    let cases = vec![
        case("nothing matches", base(), None, &[]),
        case(
            "dst prefix",
            base().with(|p| p.dst = "10.1.200.7".parse().unwrap()),
            Some(1),
            &[1],
        ),
        case(
            "dst prefix: just outside",
            base().with(|p| p.dst = "10.2.0.1".parse().unwrap()),
            None,
            &[],
        ),
        case(
            "src prefix",
            base().with(|p| p.src = "192.0.2.77".parse().unwrap()),
            Some(2),
            &[2],
        ),
        case(
            "udp dst port 53",
            base().with(|p| {
                p.proto = 17;
                p.dport = 53
            }),
            Some(3),
            &[3],
        ),
        case(
            "tcp dst port 53 is not udp",
            base().with(|p| p.dport = 53),
            None,
            &[],
        ),
        case(
            "tcp src port range, low end",
            base().with(|p| p.sport = 1000),
            Some(4),
            &[4],
        ),
        case(
            "tcp src port range, high end",
            base().with(|p| p.sport = 2000),
            Some(4),
            &[4],
        ),
        case(
            "tcp src port past the range",
            base().with(|p| p.sport = 2001),
            None,
            &[],
        ),
        case(
            "udp src port in range but not tcp",
            base().with(|p| {
                p.proto = 17;
                p.sport = 1500
            }),
            None,
            &[],
        ),
        case(
            "port list: 23",
            base().with(|p| p.dport = 23),
            Some(5),
            &[5],
        ),
        case(
            "port list: 8080",
            base().with(|p| p.dport = 8080),
            Some(5),
            &[5],
        ),
        case(
            "port list: sctp 8000",
            base().with(|p| {
                p.proto = 132;
                p.dport = 8000
            }),
            Some(5),
            &[5],
        ),
        case(
            "port list: 24 is not in it",
            base().with(|p| p.dport = 24),
            None,
            &[],
        ),
        case(
            "icmp echo request",
            base().with(|p| {
                p.proto = 1;
                p.icmp = (8, 0)
            }),
            Some(6),
            &[6],
        ),
        case(
            "icmp echo reply",
            base().with(|p| {
                p.proto = 1;
                p.icmp = (0, 0)
            }),
            None,
            &[],
        ),
        case(
            "icmp type 8 code 1",
            base().with(|p| {
                p.proto = 1;
                p.icmp = (8, 1)
            }),
            None,
            &[],
        ),
        case(
            "tcp SYN",
            base().with(|p| p.tcp_flags = 0x02),
            Some(7),
            &[7],
        ),
        case(
            "tcp SYN+ACK is not SYN-without-ACK",
            base().with(|p| p.tcp_flags = 0x12),
            None,
            &[],
        ),
        case(
            "udp has no tcp flags",
            base().with(|p| {
                p.proto = 17;
                p.tcp_flags = 0x02
            }),
            None,
            &[],
        ),
        case(
            "packet length 1000",
            base().with(|p| p.pad = 1000 - 40),
            Some(8),
            &[8],
        ),
        case(
            "packet length 999",
            base().with(|p| p.pad = 999 - 40),
            None,
            &[],
        ),
        case("dscp EF", base().with(|p| p.dscp = 46), Some(9), &[9]),
        case(
            "dscp EF keeps ECN bits",
            base().with(|p| {
                p.dscp = 46;
                p.ecn = 3
            }),
            Some(9),
            &[9],
        ),
        case(
            "first fragment",
            base().with(|p| p.mf = true),
            Some(10),
            &[10],
        ),
        case(
            "later fragment without ports",
            base().with(|p| {
                p.frag_off = 100;
                p.dport = 53
            }),
            Some(10),
            &[10],
        ),
        case(
            "non-first fragment never matches ports",
            base().with(|p| {
                p.proto = 17;
                p.frag_off = 100;
                p.dport = 53;
                p.mf = true
            }),
            Some(10),
            &[10],
        ),
        case("ingress interface 2", base(), Some(11), &[11]).iif(2),
        case("ingress interface 3", base(), None, &[]).iif(3),
        case(
            "v6 dst prefix",
            base6().with(|p| p.dst = "2001:db8:1:ff::9".parse().unwrap()),
            Some(12),
            &[12],
        ),
        case(
            "v6 src prefix + tcp",
            base6().with(|p| p.src = "2001:db8:ffff::42".parse().unwrap()),
            Some(13),
            &[13],
        ),
        case(
            "v6 src prefix, udp",
            base6().with(|p| {
                p.src = "2001:db8:ffff::42".parse().unwrap();
                p.proto = 17
            }),
            None,
            &[],
        ),
        case(
            "icmpv6 echo request",
            base6().with(|p| {
                p.proto = 58;
                p.icmp = (128, 0)
            }),
            Some(14),
            &[14],
        ),
        case(
            "icmpv4 type 128 is not a v6 rule",
            base().with(|p| {
                p.proto = 1;
                p.icmp = (128, 0)
            }),
            None,
            &[],
        ),
        case(
            "v6 vxlan",
            base6().with(|p| {
                p.proto = 17;
                p.dport = 4789
            }),
            Some(15),
            &[15],
        ),
        case(
            "v4 vxlan is not a v6 rule",
            base().with(|p| {
                p.proto = 17;
                p.dport = 4789
            }),
            None,
            &[],
        ),
        case(
            "DF gre",
            base().with(|p| {
                p.proto = 47;
                p.df = true
            }),
            Some(16),
            &[16],
        ),
        case("gre without DF", base().with(|p| p.proto = 47), None, &[]),
        case("v6 dscp EF", base6().with(|p| p.dscp = 46), Some(9), &[9]),
        case(
            "vlan-tagged dst prefix",
            base().with(|p| {
                p.dst = "10.1.0.1".parse().unwrap();
                p.vlan = Some(10)
            }),
            Some(1),
            &[1],
        ),
    ];
    check(&set, &cases);
}

trait Iif {
    fn iif(self, i: u32) -> Self;
}
impl Iif for Case {
    fn iif(mut self, i: u32) -> Case {
        self.iif = i;
        self
    }
}

#[test]
fn actions_order_and_overlap() {
    let nt = |mut r: Rule| {
        r.terminal = false;
        r
    };
    let set = RuleSet::new(vec![
        // /8 listed before the /24 inside it: the /8 wins (order, not specificity)
        rule(
            1,
            Match {
                dst: Some(pfx("10.0.0.0/8")),
                dst_port: Some(vec![80..=80]),
                ..m()
            },
            Action::Drop,
        ),
        mark(
            2,
            Match {
                dst: Some(pfx("10.1.2.0/24")),
                ..m()
            },
        ),
        // non-terminal count, then terminal drop
        nt(rule(
            3,
            Match {
                dst: Some(pfx("198.51.100.0/24")),
                ..m()
            },
            Action::Accept,
        )),
        rule(
            4,
            Match {
                dst: Some(pfx("198.51.100.0/25")),
                protocol: Some(vec![17..=17]),
                ..m()
            },
            Action::Drop,
        ),
        // non-terminal marks: the first one that sets DSCP wins; a later terminal accept ends it
        nt(Rule {
            set_dscp: Some(10),
            ..rule(
                5,
                Match {
                    dst: Some(pfx("203.0.113.0/24")),
                    ..m()
                },
                Action::Accept,
            )
        }),
        nt(Rule {
            set_dscp: Some(20),
            ..rule(
                6,
                Match {
                    dst: Some(pfx("203.0.113.0/25")),
                    ..m()
                },
                Action::Accept,
            )
        }),
        rule(
            7,
            Match {
                dst: Some(pfx("203.0.113.0/26")),
                ..m()
            },
            Action::Accept,
        ),
        rule(
            8,
            Match {
                dst: Some(pfx("203.0.113.0/24")),
                ..m()
            },
            Action::Drop,
        ),
        // rate 0 = drop (FlowSpec traffic-rate 0)
        rule(
            9,
            Match {
                src: Some(pfx("192.0.2.0/24")),
                ..m()
            },
            Action::RateLimit(RateLimit {
                rate: 0,
                unit: RateUnit::Bytes,
                burst: 1,
            }),
        ),
        // a marking rule, then a drop for the same traffic: dropped, not marked
        nt(Rule {
            set_dscp: Some(30),
            ..rule(
                10,
                Match {
                    dst: Some(pfx("172.16.0.0/12")),
                    ..m()
                },
                Action::Accept,
            )
        }),
        rule(
            11,
            Match {
                dst: Some(pfx("172.16.5.0/24")),
                ..m()
            },
            Action::Drop,
        ),
        // overlapping v6 prefixes
        rule(
            12,
            Match {
                dst: Some(pfx("2001:db8::/32")),
                ..m()
            },
            Action::Drop,
        ),
        mark(
            13,
            Match {
                dst: Some(pfx("2001:db8:5::/48")),
                ..m()
            },
        ),
    ]);
    let p = |d: &str| Pkt::v4("100.64.0.1", d);
    let cases = vec![
        dropped(
            "/8 drop before /24 mark",
            p("10.1.2.3").with(|p| p.dport = 80),
            &[1],
        ),
        case(
            "/24 mark when the /8 rule's port does not match",
            p("10.1.2.3"),
            Some(2),
            &[2],
        ),
        case(
            "non-terminal count only",
            p("198.51.100.200").with(|p| p.proto = 17),
            None,
            &[3],
        ),
        dropped(
            "non-terminal count then drop",
            p("198.51.100.1").with(|p| p.proto = 17),
            &[3, 4],
        ),
        case(
            "chain: first DSCP wins, terminal accept stops before the drop",
            p("203.0.113.1"),
            Some(10),
            &[5, 6, 7],
        ),
        dropped(
            "chain: /25 only past the /26, reaches the drop",
            p("203.0.113.100"),
            &[5, 6, 8],
        ),
        dropped("chain: /24 only", p("203.0.113.200"), &[5, 8]),
        dropped("rate 0 drops", Pkt::v4("192.0.2.9", "100.100.0.1"), &[9]),
        dropped("mark then drop: dropped", p("172.16.5.5"), &[10, 11]),
        case("mark without the drop", p("172.16.6.5"), Some(30), &[10]),
        dropped(
            "v6 /32 drop before /48",
            Pkt::v6("2001:db8:eeee::1", "2001:db8:5::1"),
            &[12],
        ),
        case(
            "v6 outside",
            Pkt::v6("2001:db8:eeee::1", "2001:db9::1"),
            None,
            &[],
        ),
    ];
    check(&set, &cases);
}

#[test]
fn at_most_16_rules_apply_to_one_packet() {
    let mut rules: Vec<Rule> = (0..20)
        .map(|i| Rule {
            terminal: false,
            ..rule(i, m(), Action::Accept)
        })
        .collect();
    rules.push(rule(20, m(), Action::Drop));
    let set = RuleSet::new(rules);
    let counted: Vec<u64> = (0..16).collect();
    check(
        &set,
        &[case(
            "20 non-terminal rules, then a drop",
            Pkt::v4("1.1.1.1", "2.2.2.2"),
            None,
            &counted,
        )],
    );
}

#[test]
fn rules_beyond_the_first_chunks_match_in_order() {
    // 2,000 rules: only 1,203 and 1,999 match; the packet is counted by both and dropped by 1,999.
    let mut rules: Vec<Rule> = (0..2000u64)
        .map(|i| {
            let port = 20_000 + i as u16;
            rule(
                i,
                Match {
                    dst_port: Some(vec![port..=port]),
                    ..m()
                },
                Action::Drop,
            )
        })
        .collect();
    rules[1203] = Rule {
        terminal: false,
        ..rule(
            1203,
            Match {
                dst_port: Some(vec![9..=9]),
                ..m()
            },
            Action::Accept,
        )
    };
    rules[1999] = rule(
        1999,
        Match {
            dst_port: Some(vec![9..=9]),
            ..m()
        },
        Action::Drop,
    );
    let set = RuleSet::new(rules);
    check(
        &set,
        &[
            dropped(
                "two matches far apart",
                Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 9),
                &[1203, 1999],
            ),
            dropped(
                "rule 0",
                Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 20_000),
                &[0],
            ),
            case(
                "no match",
                Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 10),
                None,
                &[],
            ),
        ],
    );
}

#[test]
fn swap_installs_whole_sets_and_keeps_counters_by_id() {
    let (mut fwd, mut cls) = load();
    let drop80 = rule(
        1,
        Match {
            dst_port: Some(vec![80..=80]),
            ..m()
        },
        Action::Drop,
    );
    let drop443 = rule(
        2,
        Match {
            dst_port: Some(vec![443..=443]),
            ..m()
        },
        Action::Drop,
    );
    let p80 = Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 80).frame();
    let p443 = Pkt::v4("1.1.1.1", "2.2.2.2")
        .with(|p| p.dport = 443)
        .frame();
    let rep = cls.install(&RuleSet::new(vec![drop80.clone()])).unwrap();
    assert_eq!(rep.slot, Some(0));
    assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_DROP);
    assert_eq!(run_on(fwd.program().unwrap(), &p443, 1).0, XDP_PASS);
    let rep = cls
        .install(&RuleSet::new(vec![drop443.clone(), drop80.clone()]))
        .unwrap();
    assert_eq!((rep.slot, rep.kept_counters), (Some(1), 1));
    assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_DROP);
    assert_eq!(run_on(fwd.program().unwrap(), &p443, 1).0, XDP_DROP);
    let c = cls.counter(RuleId(1)).unwrap().unwrap();
    assert_eq!(
        (c.packets, c.dropped_packets),
        (2, 2),
        "rule 1 kept its counter across the swap"
    );
    cls.install(&RuleSet::new(vec![drop443.clone()])).unwrap();
    assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_PASS);
    assert_eq!(cls.counter(RuleId(1)).unwrap(), None);
    // rule 1 again: a fresh counter
    cls.install(&RuleSet::new(vec![drop80.clone()])).unwrap();
    assert_eq!(cls.counter(RuleId(1)).unwrap().unwrap().packets, 0);
    cls.clear().unwrap();
    assert_eq!(cls.active_slot(), None);
    assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_PASS);
    let st = cls.stats().unwrap();
    assert_eq!(st.dropped, 3);
}

/// Packets on another CPU while sets are swapped: each outcome is one whole set's answer.
#[test]
fn concurrent_swaps_never_show_a_half_built_set() {
    let (fwd, mut cls) = load();
    let fwd = std::sync::Mutex::new(fwd);
    // A marks everything 10 and drops port 80; B marks everything 20 and drops port 443. Both are
    // built differently enough (different fields) that a mix of their tables would show.
    let set = |dscp: u8, port: u16, extra: u64| {
        let mut rules = vec![
            Rule {
                terminal: false,
                set_dscp: Some(dscp),
                ..rule(1, m(), Action::Accept)
            },
            rule(
                2,
                Match {
                    dst_port: Some(vec![port..=port]),
                    ..m()
                },
                Action::Drop,
            ),
        ];
        for i in 0..extra {
            rules.push(rule(
                10 + i,
                Match {
                    dst: Some(Prefix4::nth(i)),
                    protocol: Some(vec![17..=17]),
                    ..m()
                },
                Action::Drop,
            ));
        }
        RuleSet::new(rules)
    };
    let a = set(10, 80, 0);
    let b = set(20, 443, 700);
    let p80 = Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 80).frame();
    let p443 = Pkt::v4("1.1.1.1", "2.2.2.2")
        .with(|p| p.dport = 443)
        .frame();
    let ok80 = [None, Some(with_dscp(&p80, 20))];
    let ok443 = [Some(with_dscp(&p443, 10)), None];
    cls.install(&a).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let probes = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut fwd = fwd.lock().unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (f, ok) in [(&p80, &ok80), (&p443, &ok443)] {
                    let (act, out) = run_on(fwd.program().unwrap(), f, 1);
                    let got = (act == XDP_PASS).then_some(out);
                    assert!(ok.contains(&got), "an outcome of neither set: action {act}");
                    n += 1;
                }
            }
            n
        });
        // stops the prober also when an install panics (the scope would wait for it forever)
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let guard = Stop(&stop);
        for i in 0..40 {
            cls.install(if i % 2 == 0 { &b } else { &a }).unwrap();
        }
        drop(guard);
        h.join().unwrap()
    });
    assert!(probes > 100, "only {probes} probes ran");
}

struct Prefix4;
impl Prefix4 {
    fn nth(i: u64) -> fib_ebpf::acl::Prefix {
        fib_ebpf::acl::Prefix::V4(
            std::net::Ipv4Addr::from(0x0a00_0000u32 + ((i as u32) << 8)),
            24,
        )
    }
}

/// Removes a pinned instance's directory when dropped (also when the test fails).
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Load options for a pinned instance named after `name` and this process, and the guard that
/// removes its pins.
fn pinned_instance(name: &str) -> (LoadOptions, Cleanup) {
    let opts = LoadOptions {
        instance: Some(format!("{name}-{}", std::process::id())),
        ..Default::default()
    };
    let guard = Cleanup(opts.pin_dir().unwrap());
    (opts, guard)
}

#[test]
fn pinned_rules_and_counters_survive_a_restart() {
    let (opts, _guard) = pinned_instance("acl-test");
    let set = RuleSet::new(vec![
        rule(
            7,
            Match {
                dst_port: Some(vec![80..=80]),
                ..m()
            },
            Action::Drop,
        ),
        Rule {
            terminal: false,
            ..rule(
                8,
                Match {
                    protocol: Some(vec![6..=6]),
                    ..m()
                },
                Action::Accept,
            )
        },
    ]);
    let p80 = Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 80).frame();
    let p22 = Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 22).frame();
    {
        let mut fwd = Forwarder::load_with(&opts).unwrap();
        let mut cls = fwd.classifier().unwrap();
        cls.install(&set).unwrap();
        for _ in 0..3 {
            assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_DROP);
        }
        assert_eq!(run_on(fwd.program().unwrap(), &p22, 1).0, XDP_PASS);
    }
    // "restart": a new process image loads against the same pins
    let mut fwd = Forwarder::load_with(&opts).unwrap();
    assert!(fwd.reused_pinned_maps());
    let mut cls = fwd.classifier().unwrap();
    assert_eq!(cls.installed(), &[RuleId(7), RuleId(8)]);
    assert_eq!(
        run_on(fwd.program().unwrap(), &p80, 1).0,
        XDP_DROP,
        "rules enforced before any install"
    );
    let c7 = cls.counter(RuleId(7)).unwrap().unwrap();
    assert_eq!((c7.packets, c7.dropped_packets), (4, 4));
    assert_eq!(cls.counter(RuleId(8)).unwrap().unwrap().packets, 1);
    // re-installing the same set keeps counting where it was
    let rep = cls.install(&set).unwrap();
    assert_eq!(rep.kept_counters, 2);
    assert_eq!(run_on(fwd.program().unwrap(), &p22, 1).0, XDP_PASS);
    assert_eq!(cls.counter(RuleId(8)).unwrap().unwrap().packets, 2);
    // another process reads the same counters from the pins
    let other = Classifier::open_pinned(&opts.pin_dir().unwrap()).unwrap();
    assert_eq!(other.counters().unwrap(), cls.counters().unwrap());
}

#[test]
fn classifier_pins_of_an_older_abi_are_rebuilt_on_upgrade() {
    use fib_ebpf::acl::abi::{CLS_ABI_VERSION, ClsCtl};
    let (opts, _guard) = pinned_instance("acl-upgrade");
    let dir = opts.pin_dir().unwrap();
    let set = RuleSet::new(vec![rule(
        7,
        Match {
            dst_port: Some(vec![80..=80]),
            ..m()
        },
        Action::Drop,
    )]);
    let p80 = Pkt::v4("1.1.1.1", "2.2.2.2").with(|p| p.dport = 80).frame();
    {
        let mut fwd = Forwarder::load_with(&opts).unwrap();
        fwd.maps().pathlist_set(42, 7).unwrap();
        let mut cls = fwd.classifier().unwrap();
        cls.install(&set).unwrap();
        assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_DROP);
    }
    // Make the pins look like an older build's: an older version in cls_ctl, and a bitmap map of
    // another shape (ABI 4 kept one u64 per element).
    let ctl = aya::maps::MapData::from_pin(dir.join("cls_ctl")).unwrap();
    let mut ctl: aya::maps::Array<_, ClsCtl> =
        aya::maps::Array::try_from(aya::maps::Map::Array(ctl)).unwrap();
    let mut v = ctl.get(&0, 0).unwrap();
    assert_eq!(v.abi_version, CLS_ABI_VERSION);
    v.abi_version = CLS_ABI_VERSION - 1;
    ctl.set(0, v, 0).unwrap();
    std::fs::remove_file(dir.join("cls_chunk")).unwrap();
    aya::maps::MapData::from_pin(dir.join("cls_stats"))
        .unwrap()
        .pin(dir.join("cls_chunk"))
        .unwrap();
    // and a map ABI 5 had and this build does not
    aya::maps::MapData::from_pin(dir.join("cls_slot"))
        .unwrap()
        .pin(dir.join("cls_sum"))
        .unwrap();
    // The upgrade loads: the routes' pins are re-used, the classifier's are created afresh.
    let mut fwd =
        Forwarder::load_with(&opts).expect("an older classifier ABI does not stop the load");
    assert!(fwd.reused_pinned_maps());
    assert!(
        !dir.join("cls_sum").exists(),
        "the retired map's pin is gone"
    );
    assert_eq!(fwd.maps().pathlist_get(42).unwrap(), 7, "routes are kept");
    let mut cls = fwd.classifier().unwrap();
    assert!(cls.installed().is_empty(), "the old rules are gone");
    assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_PASS);
    let ctl = aya::maps::MapData::from_pin(dir.join("cls_ctl")).unwrap();
    let ctl: aya::maps::Array<_, ClsCtl> =
        aya::maps::Array::try_from(aya::maps::Map::Array(ctl)).unwrap();
    assert_eq!(ctl.get(&0, 0).unwrap().abi_version, CLS_ABI_VERSION);
    // Installing again (what ribd does at start) enforces them, counting from zero.
    let rep = cls.install(&set).unwrap();
    assert_eq!(rep.kept_counters, 0);
    assert_eq!(run_on(fwd.program().unwrap(), &p80, 1).0, XDP_DROP);
    let c7 = cls.counter(RuleId(7)).unwrap().unwrap();
    assert_eq!((c7.packets, c7.dropped_packets), (1, 1));
    drop(cls);
    drop(fwd);
    // and the rebuilt pins are re-used by the next start, rules included
    let fwd = Forwarder::load_with(&opts).unwrap();
    assert_eq!(fwd.classifier().unwrap().installed(), &[RuleId(7)]);
}

#[test]
fn sets_without_destination_prefixes_keep_address_families_apart() {
    // No rule has a destination prefix, so the program takes each family's destination leaf from
    // the slot header instead of walking the trie: the family restrictions must still hold.
    let set = RuleSet::new(vec![
        rule(
            1,
            Match {
                family: Some(Family::V6),
                protocol: Some(vec![17..=17]),
                ..m()
            },
            Action::Drop,
        ),
        Rule {
            set_dscp: Some(9),
            ..rule(
                2,
                Match {
                    family: Some(Family::V4),
                    protocol: Some(vec![17..=17]),
                    ..m()
                },
                Action::Accept,
            )
        },
        rule(
            3,
            Match {
                dst_port: Some(vec![80..=80]),
                ..m()
            },
            Action::Drop,
        ),
    ]);
    let compiled = fib_ebpf::acl::compile(&set).unwrap();
    assert_ne!(
        compiled.slot.fields & fib_ebpf::acl::abi::CLS_FIELDS_DST_FLAT,
        0,
        "the set takes the flat destination path"
    );
    let udp4 = || Pkt::v4("100.64.0.1", "198.18.0.1").with(|p| p.proto = 17);
    let udp6 = || Pkt::v6("2001:db8::1", "2001:db8:9::1").with(|p| p.proto = 17);
    let cases = vec![
        case("IPv4 UDP: the IPv4 rule marks", udp4(), Some(9), &[2]),
        dropped("IPv6 UDP: the IPv6 rule drops", udp6(), &[1]),
        dropped(
            "IPv4 TCP to 80: any family",
            Pkt::v4("100.64.0.1", "198.18.0.1").with(|p| p.dport = 80),
            &[3],
        ),
        dropped(
            "IPv6 TCP to 80: any family",
            Pkt::v6("2001:db8::1", "2001:db8:9::1").with(|p| p.dport = 80),
            &[3],
        ),
        case(
            "IPv6 TCP to 443: nothing",
            Pkt::v6("2001:db8::1", "2001:db8:9::1"),
            None,
            &[],
        ),
    ];
    check(&set, &cases);
}
