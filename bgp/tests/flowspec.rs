//! FlowSpec in UPDATEs (RFC 8955, RFC 8956): MP_REACH/MP_UNREACH with SAFI 133, End-of-RIB, the RFC 7606
//! outcome of every kind of malformed FlowSpec NLRI (a table), splitting, and property tests (round trip of
//! random valid rules, mutated bytes never panic).

use bgp::wire::attr::community::ExtCommunity;
use bgp::wire::attr::mp::{MpReach, MpUnreach, NextHop};
use bgp::wire::attr::{Origin, PathAttributes};
use bgp::wire::flowspec::action::FlowAction;
use bgp::wire::flowspec::{BitmaskTerm, Cmp, Component, FlowPrefix, FlowSpec, NumericTerm};
use bgp::wire::nlri::Family;
use bgp::wire::{AfiSafi, Context, Error, Message, Update, frame};
use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];

/// RFC 8955 §4.3 example 1: dst 192.0.2.0/24 proto =6 port =25.
const RULE1: &[u8] = &[
    0x0b, 0x01, 0x18, 0xc0, 0x00, 0x02, 0x03, 0x81, 0x06, 0x04, 0x81, 0x19,
];
/// dst 10.0.0.0/8 proto =17.
const RULE2: &[u8] = &[0x06, 0x01, 0x08, 0x0a, 0x03, 0x81, 0x11];

fn msg(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = vec![0xff; 16];
    let len = 19 + 2 + 2 + attrs.len() + nlri.len();
    b.extend_from_slice(&(len as u16).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

fn attr(flags: u8, t: u8, v: &[u8]) -> Vec<u8> {
    let mut a = vec![flags | 0x10, t];
    a.extend_from_slice(&(v.len() as u16).to_be_bytes());
    a.extend_from_slice(v);
    a
}

/// MP_REACH_NLRI value: AFI, SAFI 133, next-hop, reserved, NLRI.
fn reach(afi: u16, nh: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(133);
    v.push(nh.len() as u8);
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(nlri);
    attr(0x80, 14, &v)
}

fn unreach(afi: u16, nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(133);
    v.extend_from_slice(nlri);
    attr(0x80, 15, &v)
}

fn ext(c: &[[u8; 8]]) -> Vec<u8> {
    attr(0xc0, 16, &c.concat())
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode(b: &[u8]) -> Result<Update, Error> {
    match Message::decode(b, &Context::four_octet()) {
        Ok(Message::Update(u)) => Ok(u),
        Ok(m) => panic!("not an UPDATE: {m:?}"),
        Err(e) => Err(e),
    }
}

fn rule(s: &[u8]) -> FlowSpec {
    FlowSpec::decode(&s[1..], Family::V4).unwrap()
}

#[test]
fn mp_reach_flowspec_with_empty_next_hop_rfc8955_4() {
    let rate = [0x80, 0x06, 0, 0, 0, 0, 0, 0];
    let b = msg(
        &cat(&[
            ORIGIN,
            AS_PATH,
            &reach(1, &[], &cat(&[RULE1, RULE2])),
            &ext(&[rate]),
        ]),
        &[],
    );
    let u = decode(&b).unwrap();
    assert_eq!(u.treat_as_withdraw, None);
    let got: Vec<_> = u.announced_flowspec().collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, AfiSafi::IPV4_FLOWSPEC);
    assert_eq!(got[0].1.to_string(), "dst 192.0.2.0/24 proto =6 port =25");
    assert_eq!(got[1].1.to_string(), "dst 10.0.0.0/8 proto =17");
    assert_eq!(
        u.mp_reach.as_ref().unwrap().next_hop,
        NextHop::Other(vec![])
    );
    assert_eq!(
        u.attrs.flow_actions(),
        vec![FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 0.0
        }]
    );
    assert_eq!(u.announced().count(), 0);
    assert_eq!(u.prefix_count(), 2);
    let again = Message::Update(u).to_bytes(&Context::four_octet()).unwrap();
    assert_eq!(&again[..], &b[..]);
}

#[test]
fn mp_unreach_flowspec_and_end_of_rib_rfc4724_2() {
    let b = msg(&unreach(1, RULE1), &[]);
    let u = decode(&b).unwrap();
    let w: Vec<_> = u.withdrawn_flowspec().collect();
    assert_eq!(w, vec![(AfiSafi::IPV4_FLOWSPEC, &rule(RULE1))]);
    assert_eq!(u.end_of_rib_family(), None);
    for af in [AfiSafi::IPV4_FLOWSPEC, AfiSafi::IPV6_FLOWSPEC] {
        let eor = Message::Update(Update::end_of_rib(af))
            .to_bytes(&Context::default())
            .unwrap();
        assert_eq!(
            &eor[19..],
            &[0, 0, 0, 6, 0x80, 15, 3, 0, af.afi.0 as u8, 133]
        );
        let u = decode(&eor).unwrap();
        assert_eq!(u.end_of_rib_family(), Some(af));
    }
}

#[test]
fn ipv6_flowspec_rfc8956() {
    // dst 2001:db8::/32, src bits 64..104, next header 6 (RFC 8956 §3.8 example 1) with a 16-octet next-hop.
    let r = [
        0x12, 0x01, 0x20, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x68, 0x40, 0x12, 0x34, 0x56, 0x78,
        0x9a, 0x03, 0x81, 0x06,
    ];
    let nh: [u8; 16] = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let b = msg(&cat(&[ORIGIN, AS_PATH, &reach(2, &nh, &r)]), &[]);
    let u = decode(&b).unwrap();
    let (af, f) = u.announced_flowspec().next().unwrap();
    assert_eq!(af, AfiSafi::IPV6_FLOWSPEC);
    assert_eq!(f.family(), Family::V6);
    assert_eq!(
        f.to_string(),
        "dst 2001:db8::/32 src ::1234:5678:9a00:0/104 offset 64 next-header =6"
    );
    let again = Message::Update(u).to_bytes(&Context::four_octet()).unwrap();
    assert_eq!(&again[..], &b[..]);
}

/// What the receiver does with an UPDATE.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// NOTIFICATION (code, subcode) and session reset.
    Reset(u8, u8),
    /// AFI/SAFI disable for this family; the count of IPv4 unicast prefixes still announced.
    Disable(AfiSafi, usize),
    /// Treat-as-withdraw: rules withdrawn.
    Withdraw(usize),
    /// Accepted: rules announced.
    Accept(usize),
}

fn outcome(b: &[u8]) -> Outcome {
    match decode(b) {
        Err(e) => {
            let n = e.notification();
            Outcome::Reset(n.code, n.subcode)
        }
        Ok(u) => {
            if let Some((af, _)) = u.afi_safi_disable {
                assert!(u.mp_reach.is_none() || u.mp_reach.as_ref().unwrap().afi_safi != af);
                Outcome::Disable(af, u.announced().count())
            } else if u.treat_as_withdraw.is_some() {
                assert_eq!(u.announced_flowspec().count(), 0);
                Outcome::Withdraw(u.withdrawn_flowspec().count())
            } else {
                Outcome::Accept(u.announced_flowspec().count())
            }
        }
    }
}

#[test]
fn malformed_flowspec_outcomes_rfc8955_10_rfc7606() {
    let base = |mp: Vec<u8>| msg(&cat(&[ORIGIN, AS_PATH, &mp]), &[]);
    let nh4 = [0x40, 3, 4, 192, 0, 2, 1];
    let nan = [0x80, 0x06, 0, 0, 0x7f, 0xc0, 0, 0];
    let neg = [0x80, 0x0c, 0, 0, 0xbf, 0x80, 0, 0];
    let cases: Vec<(&str, Vec<u8>, Outcome)> = vec![
        (
            "well-formed",
            base(reach(1, &[], &cat(&[RULE1, RULE2]))),
            Outcome::Accept(2),
        ),
        // Framing (RFC 7606 §5.3, §7.11): the NLRI cannot be located → AFI/SAFI disable, session kept.
        (
            "NLRI length overruns the attribute",
            base(reach(1, &[], &[0x20, 0x01, 0x18, 0xc0])),
            Outcome::Disable(AfiSafi::IPV4_FLOWSPEC, 0),
        ),
        (
            "second rule's length overruns",
            base(reach(1, &[], &cat(&[RULE1, &[0x09, 0x03, 0x81]]))),
            Outcome::Disable(AfiSafi::IPV4_FLOWSPEC, 0),
        ),
        (
            "2-octet length cut",
            base(reach(1, &[], &[0xf1])),
            Outcome::Disable(AfiSafi::IPV4_FLOWSPEC, 0),
        ),
        (
            "next-hop length overruns",
            base(attr(0x80, 14, &[0, 1, 133, 40, 0, 0])),
            Outcome::Disable(AfiSafi::IPV4_FLOWSPEC, 0),
        ),
        (
            "MP_UNREACH length overruns (IPv6)",
            base(unreach(2, &[0x30, 0x03, 0x81, 0x06])),
            Outcome::Disable(AfiSafi::IPV6_FLOWSPEC, 0),
        ),
        (
            "IPv4 unicast NLRI of the same UPDATE survive a disable",
            msg(
                &cat(&[ORIGIN, AS_PATH, &nh4, &reach(1, &[], &[0x20])]),
                &[24, 10, 9, 9],
            ),
            Outcome::Disable(AfiSafi::IPV4_FLOWSPEC, 1),
        ),
        // Content inside a sound length (RFC 8955 §4.2): treat-as-withdraw of the UPDATE's rules.
        (
            "unknown component type",
            base(reach(1, &[], &cat(&[RULE1, &[0x03, 0x0e, 0x81, 0x01]]))),
            Outcome::Withdraw(1),
        ),
        (
            "components out of order",
            base(reach(
                1,
                &[],
                &cat(&[&[0x06, 0x04, 0x81, 0x19, 0x03, 0x81, 0x06], RULE2]),
            )),
            Outcome::Withdraw(1),
        ),
        (
            "truncated operator list",
            base(reach(1, &[], &[0x03, 0x03, 0x01, 0x06])),
            Outcome::Withdraw(0),
        ),
        (
            "8-octet value for a 2-octet field",
            base(reach(1, &[], &[0x0a, 0x05, 0xb1, 0, 0, 0, 0, 0, 0, 0, 80])),
            Outcome::Withdraw(0),
        ),
        (
            "IPv6 offset beyond the prefix length",
            base(reach(2, &[], &[0x04, 0x01, 8, 9, 0])),
            Outcome::Withdraw(0),
        ),
        (
            "empty rule",
            base(reach(1, &[], &[0x00])),
            Outcome::Withdraw(0),
        ),
        // RFC 8955 §10 / RFC 7606 §7.14: an action that cannot be decoded.
        (
            "NaN traffic-rate",
            msg(
                &cat(&[ORIGIN, AS_PATH, &reach(1, &[], RULE1), &ext(&[nan])]),
                &[],
            ),
            Outcome::Withdraw(1),
        ),
        (
            "negative traffic-rate-packets",
            msg(
                &cat(&[ORIGIN, AS_PATH, &reach(1, &[], RULE1), &ext(&[neg])]),
                &[],
            ),
            Outcome::Withdraw(1),
        ),
        // Mandatory attributes (RFC 7606 §3 d) apply to FlowSpec announcements too.
        (
            "no AS_PATH",
            msg(&cat(&[ORIGIN, &reach(1, &[], RULE1)]), &[]),
            Outcome::Withdraw(1),
        ),
        // Still a session reset: a repeated MP attribute (RFC 7606 §3 g), an MP attribute too short to
        // name its family.
        (
            "two MP_REACH_NLRI",
            base(cat(&[&reach(1, &[], RULE1), &reach(1, &[], RULE2)])),
            Outcome::Reset(3, 1),
        ),
        (
            "MP_REACH of 2 octets",
            base(attr(0x80, 14, &[0, 1])),
            Outcome::Reset(3, 9),
        ),
    ];
    for (what, b, want) in cases {
        assert_eq!(outcome(&b), want, "{what}");
    }
    // The NaN rate on an UPDATE without rules: actions mean nothing there, accepted.
    let b = msg(
        &cat(&[ORIGIN, AS_PATH, &nh4, &ext(&[nan])]),
        &[24, 10, 9, 9],
    );
    assert_eq!(decode(&b).unwrap().treat_as_withdraw, None);
}

#[test]
fn afi_safi_disable_drops_later_updates_of_the_family_rfc4760_7() {
    let disabled = [AfiSafi::IPV4_FLOWSPEC];
    // The disabling UPDATE itself is delivered (the RIB flushes the family).
    let mut u = decode(&msg(&cat(&[ORIGIN, AS_PATH, &reach(1, &[], &[0x20])]), &[])).unwrap();
    assert!(u.drop_families(&disabled));
    // Later announcements, withdrawals and End-of-RIB of the family are dropped whole.
    let mut u = decode(&msg(&cat(&[ORIGIN, AS_PATH, &reach(1, &[], RULE1)]), &[])).unwrap();
    assert!(!u.drop_families(&disabled));
    let mut u = decode(&msg(&unreach(1, RULE1), &[])).unwrap();
    assert!(!u.drop_families(&disabled));
    let mut eor = Update::end_of_rib(AfiSafi::IPV4_FLOWSPEC);
    assert!(!eor.drop_families(&disabled));
    // Other families pass; a mixed UPDATE keeps its IPv4 unicast part.
    let mut eor6 = Update::end_of_rib(AfiSafi::IPV6_FLOWSPEC);
    assert!(eor6.drop_families(&disabled));
    let mut u = decode(&msg(
        &cat(&[
            ORIGIN,
            AS_PATH,
            &[0x40, 3, 4, 192, 0, 2, 1],
            &reach(1, &[], RULE1),
        ]),
        &[24, 10, 9, 9],
    ))
    .unwrap();
    assert!(u.drop_families(&disabled));
    assert!(u.mp_reach.is_none());
    assert_eq!(u.announced().count(), 1);
}

fn attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(bgp::wire::attr::as_path::AsPath::sequence([65001])),
        ..Default::default()
    }
}

#[test]
fn many_rules_split_over_messages_rfc4271_4_3() {
    let rules: Vec<FlowSpec> = (0..600u64)
        .map(|i| {
            FlowSpec::new(
                Family::V4,
                vec![
                    Component::DestinationPrefix(FlowPrefix::new(
                        format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap(),
                    )),
                    Component::DestinationPort(vec![NumericTerm::new(Cmp::EQ, 1000 + i)]),
                ],
            )
            .unwrap()
        })
        .collect();
    let u = Update {
        attrs: attrs(),
        mp_reach: Some(MpReach {
            afi_safi: AfiSafi::IPV4_FLOWSPEC,
            next_hop: NextHop::Other(vec![]),
            nlri: vec![],
            flowspec: rules.clone(),
            opaque_nlri: vec![],
        }),
        mp_unreach: Some(MpUnreach {
            afi_safi: AfiSafi::IPV4_FLOWSPEC,
            withdrawn: vec![],
            flowspec: rules[..400].to_vec(),
            opaque_withdrawn: vec![],
        }),
        ..Update::default()
    };
    let ctx = Context::four_octet();
    let mut buf = BytesMut::new();
    let n = u.encode_split(&ctx, &mut buf).unwrap();
    assert!(n >= 3, "{n} messages");
    let (mut ann, mut wd) = (vec![], vec![]);
    let mut rest = &buf[..];
    while let Some(len) = frame(rest, 4096).unwrap() {
        let u = decode(&rest[..len]).unwrap();
        ann.extend(u.announced_flowspec().map(|(_, r)| r.clone()));
        wd.extend(u.withdrawn_flowspec().map(|(_, r)| r.clone()));
        rest = &rest[len..];
        if rest.is_empty() {
            break;
        }
    }
    assert_eq!(ann, rules);
    assert_eq!(wd, rules[..400]);
}

fn numeric(lens: &'static [u8]) -> impl Strategy<Value = Vec<NumericTerm>> {
    vec(
        (
            any::<bool>(),
            0u8..8,
            any::<u64>(),
            proptest::sample::select(lens),
        ),
        1..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(and, c, value, len)| NumericTerm {
                and,
                cmp: [
                    Cmp::FALSE,
                    Cmp::EQ,
                    Cmp::GT,
                    Cmp::GE,
                    Cmp::LT,
                    Cmp::LE,
                    Cmp::NE,
                    Cmp::TRUE,
                ][usize::from(c)],
                value: value & (u64::MAX >> (64 - 8 * u32::from(len))),
                len,
            })
            .collect()
    })
}

fn bitmask(lens: &'static [u8]) -> impl Strategy<Value = Vec<BitmaskTerm>> {
    vec(
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
            proptest::sample::select(lens),
        ),
        1..4,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(and, not, match_all, value, len)| BitmaskTerm {
                and,
                not,
                match_all,
                value: value & (u64::MAX >> (64 - 8 * u32::from(len))),
                len,
            })
            .collect()
    })
}

fn prefix(v6: bool) -> BoxedStrategy<FlowPrefix> {
    if v6 {
        (any::<u128>(), 0u8..=128, any::<u8>())
            .prop_map(|(a, l, o)| FlowPrefix::v6_with_offset(a.into(), l, o % (l + 1)).unwrap())
            .boxed()
    } else {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| {
                FlowPrefix::new(ipnet::IpNet::V4(
                    ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(a), l).unwrap(),
                ))
            })
            .boxed()
    }
}

/// A random valid rule: a random subset of the components of its family, in type order.
fn flowspec(v6: bool) -> impl Strategy<Value = FlowSpec> {
    let n12 = &[1u8, 2][..];
    (
        (
            proptest::option::of(prefix(v6)),
            proptest::option::of(prefix(v6)),
            proptest::option::of(numeric(&[1])),
            proptest::option::of(numeric(n12)),
            proptest::option::of(numeric(n12)),
            proptest::option::of(numeric(n12)),
        ),
        (
            proptest::option::of(numeric(&[1])),
            proptest::option::of(numeric(&[1])),
            proptest::option::of(bitmask(n12)),
            proptest::option::of(numeric(n12)),
            proptest::option::of(numeric(&[1])),
            proptest::option::of(bitmask(&[1])),
            proptest::option::of(numeric(&[1, 2, 4])),
        ),
    )
        .prop_filter_map("at least one component", move |(a, b)| {
            let t = (
                a.0, a.1, a.2, a.3, a.4, a.5, b.0, b.1, b.2, b.3, b.4, b.5, b.6,
            );
            let c: Vec<Component> = [
                t.0.map(Component::DestinationPrefix),
                t.1.map(Component::SourcePrefix),
                t.2.map(Component::Protocol),
                t.3.map(Component::Port),
                t.4.map(Component::DestinationPort),
                t.5.map(Component::SourcePort),
                t.6.map(Component::IcmpType),
                t.7.map(Component::IcmpCode),
                t.8.map(Component::TcpFlags),
                t.9.map(Component::PacketLength),
                t.10.map(Component::Dscp),
                t.11.map(Component::Fragment),
                t.12.filter(|_| v6).map(Component::FlowLabel),
            ]
            .into_iter()
            .flatten()
            .collect();
            FlowSpec::new(if v6 { Family::V6 } else { Family::V4 }, c).ok()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_rules_round_trip(rules in any::<bool>().prop_flat_map(|v6| vec(flowspec(v6), 1..8))) {
        let af = rules[0].afi_safi();
        let u = Update {
            attrs: attrs(),
            mp_reach: Some(MpReach {
                afi_safi: af,
                next_hop: NextHop::Other(vec![]),
                nlri: vec![],
                flowspec: rules.clone(),
                opaque_nlri: vec![],
            }),
            ..Update::default()
        };
        let ctx = Context::four_octet();
        let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
        let d = decode(&b).unwrap();
        prop_assert_eq!(&d, &u);
        // Each rule alone: decode(encode) = rule, and the text form is stable.
        for r in &rules {
            let bytes = r.to_bytes();
            prop_assert_eq!(bytes.len(), r.wire_len());
            let body = if bytes[0] >= 0xf0 { &bytes[2..] } else { &bytes[1..] };
            prop_assert_eq!(&FlowSpec::decode(body, r.family()).unwrap(), r);
            // The text form parses back to a rule with the same text.
            let text = r.to_string();
            let parsed = FlowSpec::parse(r.family(), &text);
            prop_assert!(parsed.is_ok(), "{}: {:?}", text, parsed);
            prop_assert_eq!(parsed.unwrap().to_string(), text);
        }
        // Precedence is a total order consistent with equality.
        for a in &rules {
            for b in &rules {
                let o = a.compare_precedence(b);
                prop_assert_eq!(o.reverse(), b.compare_precedence(a));
                prop_assert_eq!(o == std::cmp::Ordering::Equal, a == b);
            }
        }
    }

    #[test]
    fn mutated_flowspec_updates_never_panic(
        rules in vec(flowspec(false), 1..4),
        flips in vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let u = Update {
            attrs: attrs(),
            mp_reach: Some(MpReach {
                afi_safi: AfiSafi::IPV4_FLOWSPEC,
                next_hop: NextHop::Other(vec![]),
                nlri: vec![],
                flowspec: rules,
                opaque_nlri: vec![],
            }),
            ..Update::default()
        };
        let ctx = Context::four_octet();
        let mut b = Message::Update(u).to_bytes(&ctx).unwrap().to_vec();
        // Mutate only the attribute field, keeping the header and length consistent.
        for (i, x) in flips {
            let i = 23 + i % (b.len() - 23);
            b[i] ^= x;
        }
        for m in [b.clone(), b[..(19 + cut % (b.len() - 18)).max(23)].to_vec()] {
            let mut m = m;
            let l = m.len() as u16;
            m[16..18].copy_from_slice(&l.to_be_bytes());
            if let Ok(Message::Update(u)) = Message::decode(&m, &ctx) {
                let _ = u.announced_flowspec().count() + u.withdrawn_flowspec().count();
                for (_, r) in u.announced_flowspec() {
                    let _ = r.to_string();
                    prop_assert!(FlowSpec::new(r.family(), r.components().to_vec()).is_ok());
                }
                if u.treat_as_withdraw.is_none() && u.discarded.is_empty() && u.afi_safi_disable.is_none() {
                    let again = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
                    prop_assert_eq!(Message::decode(&again, &ctx).unwrap(), Message::Update(u));
                }
            }
        }
    }
}

#[test]
fn flow_actions_of_an_update_rfc8955_7() {
    let mut a = attrs();
    let acts = [
        FlowAction::TrafficRatePackets {
            asn: 0,
            packets_per_second: 100.0,
        },
        FlowAction::TrafficMarking { dscp: 10 },
        FlowAction::RedirectIpv6 {
            address: "2001:db8::2".parse().unwrap(),
            value: 3,
        },
    ];
    a.add_flow_actions(&acts);
    a.ext_communities
        .push(ExtCommunity::route_target_as2(65000, 1));
    let u = Update {
        attrs: a,
        mp_reach: Some(MpReach {
            afi_safi: AfiSafi::IPV6_FLOWSPEC,
            next_hop: NextHop::Other(vec![]),
            nlri: vec![],
            flowspec: vec![
                FlowSpec::new(
                    Family::V6,
                    vec![Component::Protocol(vec![NumericTerm::new(Cmp::EQ, 58)])],
                )
                .unwrap(),
            ],
            opaque_nlri: vec![],
        }),
        ..Update::default()
    };
    let ctx = Context::four_octet();
    let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
    let d = decode(&b).unwrap();
    assert_eq!(d, u);
    assert_eq!(d.attrs.flow_actions(), acts.to_vec());
}

fn flow_action() -> impl Strategy<Value = FlowAction> {
    let rate = (0f32..1e12).prop_filter("finite", |r| r.is_finite());
    prop_oneof![
        (any::<u16>(), rate.clone()).prop_map(|(asn, r)| FlowAction::TrafficRateBytes {
            asn,
            bytes_per_second: r
        }),
        (any::<u16>(), rate).prop_map(|(asn, r)| FlowAction::TrafficRatePackets {
            asn,
            packets_per_second: r
        }),
        (any::<bool>(), any::<bool>())
            .prop_map(|(sample, terminal)| FlowAction::TrafficAction { sample, terminal }),
        (any::<u16>(), any::<u32>())
            .prop_map(|(asn, value)| FlowAction::RedirectAs2 { asn, value }),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, value)| FlowAction::RedirectIpv4 {
            address: a.into(),
            value
        }),
        (any::<u32>(), any::<u16>())
            .prop_map(|(asn, value)| FlowAction::RedirectAs4 { asn, value }),
        (0u8..64).prop_map(|dscp| FlowAction::TrafficMarking { dscp }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// RFC 8955 §7: every action encodes to an extended community that decodes to the same action, and
    /// an UPDATE carrying rules with those actions round-trips through the codec (what ribd's FlowSpec
    /// export sends: MP_REACH_NLRI with next-hop length 0 and the actions in EXTENDED_COMMUNITIES).
    #[test]
    fn actions_round_trip_rfc8955_7(
        actions in vec(flow_action(), 1..6),
        rules in vec(flowspec(false), 1..4),
    ) {
        for a in &actions {
            let c = a.to_ext_community().expect("8-octet action");
            prop_assert_eq!(FlowAction::from_ext_community(c), Some(*a));
        }
        let mut attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(Default::default()),
            ..PathAttributes::default()
        };
        attrs.add_flow_actions(&actions);
        let u = Update {
            attrs,
            mp_reach: Some(MpReach {
                afi_safi: AfiSafi::IPV4_FLOWSPEC,
                next_hop: NextHop::Other(vec![]),
                nlri: vec![],
                flowspec: rules.clone(),
                opaque_nlri: vec![],
            }),
            ..Update::default()
        };
        let ctx = Context::four_octet();
        let mut buf = BytesMut::new();
        u.encode_split(&ctx, &mut buf).unwrap();
        let mut got_rules = Vec::new();
        let mut b = &buf[..];
        while let Some(len) = frame(b, 65535).unwrap() {
            let Message::Update(d) = Message::decode(&b[..len], &ctx).unwrap() else {
                panic!("not an UPDATE")
            };
            prop_assert!(d.treat_as_withdraw.is_none());
            prop_assert_eq!(d.attrs.flow_actions(), actions.clone());
            got_rules.extend(d.announced_flowspec().map(|(_, r)| r.clone()));
            b = &b[len..];
        }
        prop_assert_eq!(got_rules, rules);
    }
}
