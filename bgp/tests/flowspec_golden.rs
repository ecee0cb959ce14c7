//! Golden tests on FlowSpec messages captured from real BIRD 2, GoBGP and ExaBGP sessions
//! (`fixtures/capture_flowspec.sh`, see fixtures/README.md): every captured message decodes under the context
//! its session negotiated and re-encodes to the same octets, and the rules and actions each daemon was
//! configured to send decode to the expected typed values.

use bgp::wire::flowspec::action::FlowAction;
use bgp::wire::flowspec::{FlowSpec, component};
use bgp::wire::{AfiSafi, Context, Message, Open, Update};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flowspec")
}

fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir().join(name)).expect("fixture index");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).expect("fixture file")
}

fn open(file: &str) -> Open {
    match Message::decode(&read(file), &Context::default()) {
        Ok(Message::Open(o)) => o,
        other => panic!("{file}: not an OPEN: {other:?}"),
    }
}

/// (file, sender, type, context, bytes) of every captured message.
fn fixtures() -> Vec<(String, String, String, Context, Vec<u8>)> {
    let conns: HashMap<String, Vec<String>> = tsv("connections.tsv")
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    let mut out = Vec::new();
    for row in tsv("index.tsv") {
        let (file, conn, sender, ty) = (&row[0], &row[1], &row[2], &row[4]);
        let ctx = match conns.get(conn) {
            Some(c) if ty != "open" => {
                let (s_open, r_open) = if &c[1] == sender {
                    (&c[3], &c[4])
                } else {
                    (&c[4], &c[3])
                };
                let rx = Context::negotiate(&open(r_open), &open(s_open));
                Context {
                    add_path_tx: rx.add_path_rx,
                    ..rx
                }
            }
            _ => Context::default(),
        };
        out.push((file.clone(), sender.clone(), ty.clone(), ctx, read(file)));
    }
    out
}

/// Every FlowSpec UPDATE of one sender: (file, update).
fn updates(sender: &str) -> Vec<(String, Update)> {
    fixtures()
        .into_iter()
        .filter(|(_, s, ty, _, _)| s == sender && ty == "update")
        .map(|(f, _, _, ctx, b)| match Message::decode(&b, &ctx) {
            Ok(Message::Update(u)) => (f, u),
            other => panic!("{f}: {other:?}"),
        })
        .collect()
}

/// Announced rules of a sender as text, with the actions of their UPDATE.
fn announced(sender: &str) -> Vec<(String, Vec<FlowAction>)> {
    let mut v: Vec<(String, Vec<FlowAction>)> = updates(sender)
        .iter()
        .flat_map(|(_, u)| {
            let acts = u.attrs.flow_actions();
            u.announced_flowspec()
                .map(move |(_, r)| (r.to_string(), acts.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

fn find<'a>(v: &'a [(String, Vec<FlowAction>)], rule: &str) -> &'a [FlowAction] {
    &v.iter()
        .find(|(r, _)| r == rule)
        .unwrap_or_else(|| panic!("rule {rule:?} not announced; have {v:#?}"))
        .1
}

#[test]
fn captured_flowspec_messages_decode_and_reencode_identically() {
    let all = fixtures();
    let mut rules = 0;
    let mut malformed = 0;
    for (file, _, ty, ctx, bytes) in &all {
        let m = Message::decode(bytes, ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        if std::env::var_os("GOLDEN_DUMP").is_some() {
            eprintln!("{file}: {m:?}");
            if let Message::Update(u) = &m {
                for (af, r) in u.announced_flowspec() {
                    eprintln!("  + {af} {r}   {:?}", u.attrs.flow_actions());
                }
                for (af, r) in u.withdrawn_flowspec() {
                    eprintln!("  - {af} {r}");
                }
            }
        }
        if let Message::Update(u) = &m {
            if u.treat_as_withdraw.is_some() {
                // ExaBGP 4.2 writes the whole 16-octet address as the pattern of an IPv6 prefix with an offset
                // (RFC 8956 §3.1: length − offset bits): a malformed rule inside a sound NLRI length.
                assert!(file.contains("exabgp"), "{file}");
                let m = u.mp_reach.as_ref().expect("MP_REACH_NLRI");
                assert_eq!(m.afi_safi, AfiSafi::IPV6_FLOWSPEC, "{file}");
                malformed += 1;
                continue;
            }
            assert_eq!(u.afi_safi_disable, None, "{file}");
            assert!(u.discarded.is_empty(), "{file}");
            rules += u.announced_flowspec().count() + u.withdrawn_flowspec().count();
        }
        let again = m
            .to_bytes(ctx)
            .unwrap_or_else(|e| panic!("{file} ({ty}): {e}"));
        assert_eq!(
            &again[..],
            &bytes[..],
            "{file} ({ty}) re-encodes differently"
        );
    }
    assert!(rules >= 30, "only {rules} FlowSpec rules in the fixtures");
    assert!(
        malformed >= 1,
        "the ExaBGP IPv6 offset rule is in the fixtures"
    );
}

#[test]
fn everyone_negotiated_both_flowspec_families_rfc4760_8() {
    for (file, _, ty, _, bytes) in fixtures() {
        if ty != "open" {
            continue;
        }
        let Ok(Message::Open(o)) = Message::decode(&bytes, &Context::default()) else {
            panic!("{file}")
        };
        let fams: Vec<AfiSafi> = o
            .capabilities()
            .filter_map(|c| match c {
                bgp::wire::capability::Capability::Multiprotocol(af) => Some(*af),
                _ => None,
            })
            .collect();
        assert!(fams.contains(&AfiSafi::IPV4_FLOWSPEC), "{file}: {fams:?}");
        assert!(fams.contains(&AfiSafi::IPV6_FLOWSPEC), "{file}: {fams:?}");
    }
}

#[test]
fn bird_static_flow_routes_and_filter_actions() {
    let v = announced("bird");
    let discard = [FlowAction::TrafficRateBytes {
        asn: 0,
        bytes_per_second: 0.0,
    }];
    assert_eq!(
        find(
            &v,
            "dst 10.1.0.0/24 proto =6 dport >=80&<=90 tcp-flags =syn&!ack"
        ),
        discard
    );
    assert_eq!(
        find(
            &v,
            "dst 10.1.1.0/24 src 192.0.2.0/25 proto =17 sport =53 length >512"
        ),
        discard
    );
    assert_eq!(
        find(
            &v,
            "dst 10.1.2.0/24 port >=137&<=139|=8080 fragment =is-fragment|!first-fragment"
        ),
        discard
    );
    let rate = [FlowAction::TrafficRateBytes {
        asn: 0,
        bytes_per_second: 125000.0,
    }];
    assert_eq!(
        find(&v, "dst 10.1.3.0/24 icmp-type =8 icmp-code =0 dscp =46"),
        rate
    );
    assert_eq!(
        find(&v, "dst 10.1.4.0/24 proto =6 dport =443|=8443|>60000"),
        rate
    );
    assert_eq!(
        find(&v, "dst 10.1.5.0/24 proto !=6"),
        // BIRD sorts extended communities.
        [
            FlowAction::TrafficAction {
                sample: true,
                terminal: true
            },
            FlowAction::TrafficMarking { dscp: 46 },
        ]
    );
    assert_eq!(find(&v, "dst 10.1.9.0/24 proto =47"), []);
    let pps = [FlowAction::TrafficRatePackets {
        asn: 0,
        packets_per_second: 1000.0,
    }];
    assert_eq!(
        find(&v, "dst 2001:db8:1::/48 next-header =6 dport =22"),
        pps
    );
    assert_eq!(
        find(
            &v,
            "dst 2001:db8:1:1::/64 src ::1234:5678:9800:0/101 offset 64 next-header =17 flow-label =4660"
        ),
        pps
    );
    // The disabled static protocol's rule is withdrawn in MP_UNREACH_NLRI.
    let w: Vec<String> = updates("bird")
        .iter()
        .flat_map(|(_, u)| {
            u.withdrawn_flowspec()
                .map(|(_, r)| r.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        w.contains(&"dst 10.1.9.0/24 proto =47".to_string()),
        "{w:?}"
    );
}

#[test]
fn gobgp_cli_rules_and_actions() {
    let v = announced("gobgp");
    assert_eq!(
        find(&v, "dst 10.3.0.0/24 proto =6 dport >=80&<=90"),
        [FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 0.0
        }]
    );
    assert_eq!(
        find(&v, "src 10.3.1.0/24 proto =17 port =53 length >=1000"),
        [FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 100000.0
        }]
    );
    assert_eq!(
        find(&v, "dst 10.3.2.0/24 dscp =46 fragment is-fragment"),
        [FlowAction::TrafficMarking { dscp: 10 }]
    );
    assert_eq!(
        find(&v, "dst 10.3.3.0/24 proto =1 icmp-type =8 icmp-code =0"),
        [FlowAction::RedirectAs2 {
            asn: 65003,
            value: 100
        }]
    );
    assert_eq!(
        find(&v, "dst 10.3.5.0/24 sport >1024&<2048"),
        [FlowAction::RedirectIpv4 {
            address: Ipv4Addr::new(10, 0, 13, 3),
            value: 7
        }]
    );
    let w: Vec<String> = updates("gobgp")
        .iter()
        .flat_map(|(_, u)| {
            u.withdrawn_flowspec()
                .map(|(_, r)| r.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(w.iter().any(|r| r.starts_with("dst 10.3.4.0/24")), "{w:?}");
}

#[test]
fn exabgp_flow_routes_and_actions() {
    let v = announced("exabgp");
    assert_eq!(
        find(
            &v,
            "dst 10.4.0.0/24 src 10.4.1.0/24 proto =6|=17 dport >=80&<=90|=443"
        ),
        [FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 9600.0
        }]
    );
    assert_eq!(
        find(
            &v,
            "dst 10.4.2.0/24 tcp-flags syn length >200&<300|>400&<500"
        ),
        [FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 0.0
        }]
    );
    assert_eq!(
        find(
            &v,
            "dst 10.4.3.0/24 icmp-type =8 dscp =10|=20 fragment first-fragment|last-fragment"
        ),
        [FlowAction::TrafficMarking { dscp: 10 }]
    );
    assert_eq!(
        find(&v, "dst 10.4.4.0/24 port =80|=8080 sport >1024"),
        [FlowAction::RedirectAs2 {
            asn: 65004,
            value: 7
        }]
    );
    assert_eq!(
        find(&v, "dst 10.4.5.0/24 proto !=6"),
        [FlowAction::TrafficAction {
            sample: true,
            terminal: true
        }]
    );
    // "SYN RST&FIN&!=push": any of SYN, or (any of RST and any of FIN and not all of PSH).
    assert_eq!(
        find(&v, "dst 10.4.6.0/24 tcp-flags syn|rst&fin&!=psh"),
        [FlowAction::RedirectIpv4 {
            address: Ipv4Addr::new(10, 0, 14, 9),
            value: 5
        }]
    );
    // ExaBGP's traffic-class is the DSCP component (type 11).
    assert_eq!(
        find(
            &v,
            "dst 2001:db8:4:1::/64 next-header =6 dport =80 dscp =10"
        ),
        [FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 1000.0
        }]
    );
    // Its rule with an IPv6 source offset is malformed (see the re-encoding test): never announced.
    assert!(v.iter().all(|(r, _)| !r.contains("offset")), "{v:?}");
}

#[test]
fn golden_rules_sort_by_precedence_rfc8955_5_1() {
    let mut rules: Vec<FlowSpec> = fixtures()
        .into_iter()
        .filter(|(_, _, ty, _, _)| ty == "update")
        .flat_map(|(f, _, _, ctx, b)| match Message::decode(&b, &ctx) {
            Ok(Message::Update(u)) => u
                .announced_flowspec()
                .map(|(_, r)| r.clone())
                .collect::<Vec<_>>(),
            other => panic!("{f}: {other:?}"),
        })
        .collect();
    rules.sort();
    rules.dedup();
    for w in rules.windows(2) {
        assert_eq!(w[0].cmp(&w[1]), std::cmp::Ordering::Less);
        if w[0].family() == w[1].family() {
            // A rule with a destination prefix sorts before one without (type 1 first).
            let (a, b) = (w[0].destination(), w[1].destination());
            assert!(!(a.is_none() && b.is_some()), "{} before {}", w[0], w[1]);
        }
    }
    assert!(
        rules
            .iter()
            .any(|r| r.component(component::FLOW_LABEL).is_some())
    );
}
