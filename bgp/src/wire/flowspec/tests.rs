use super::action::FlowAction;
use super::*;
use crate::wire::attr::community::ExtCommunity;

fn v4(s: &str) -> FlowPrefix {
    FlowPrefix::new(s.parse().unwrap())
}

fn eq(v: u64) -> NumericTerm {
    NumericTerm::new(Cmp::EQ, v)
}

fn rule(c: Vec<Component>) -> FlowSpec {
    FlowSpec::new(Family::V4, c).unwrap()
}

fn decode_one(b: &[u8], fam: Family) -> Result<FlowSpec, FlowSpecError> {
    let (body, rest) = split_nlri(b)?;
    assert!(rest.is_empty());
    FlowSpec::decode(body, fam)
}

#[test]
fn rfc8955_example_1_dst_proto_port() {
    // RFC 8955 §4.3 example 1: packets to 192.0.2.0/24 and TCP port 25.
    let b = [
        0x0b, 0x01, 0x18, 0xc0, 0x00, 0x02, 0x03, 0x81, 0x06, 0x04, 0x81, 0x19,
    ];
    let f = decode_one(&b, Family::V4).unwrap();
    let want = rule(vec![
        Component::DestinationPrefix(v4("192.0.2.0/24")),
        Component::Protocol(vec![eq(6)]),
        Component::Port(vec![eq(25)]),
    ]);
    assert_eq!(f, want);
    assert_eq!(want.to_bytes(), b);
    assert_eq!(f.to_string(), "dst 192.0.2.0/24 proto =6 port =25");
}

#[test]
fn rfc8955_example_2_port_range_or_value() {
    // RFC 8955 §4.3 example 2: to 192.0.2.0/24 from 203.0.113.0/24, port [137, 139] or 8080.
    let b = [
        0x12, 0x01, 0x18, 0xc0, 0x00, 0x02, 0x02, 0x18, 0xcb, 0x00, 0x71, 0x04, 0x03, 0x89, 0x45,
        0x8b, 0x91, 0x1f, 0x90,
    ];
    let f = decode_one(&b, Family::V4).unwrap();
    let port = vec![
        NumericTerm::new(Cmp::GE, 137),
        NumericTerm::new(Cmp::LE, 139).and(),
        eq(8080),
    ];
    let want = rule(vec![
        Component::DestinationPrefix(v4("192.0.2.0/24")),
        Component::SourcePrefix(v4("203.0.113.0/24")),
        Component::Port(port.clone()),
    ]);
    assert_eq!(f, want);
    assert_eq!(want.to_bytes(), b);
    assert_eq!(
        f.to_string(),
        "dst 192.0.2.0/24 src 203.0.113.0/24 port >=137&<=139|=8080"
    );
    // AND binds tighter than OR (RFC 8955 §4.2.1.1).
    for (p, m) in [
        (136, false),
        (137, true),
        (139, true),
        (140, false),
        (8080, true),
    ] {
        assert_eq!(eval_numeric(&port, p), m, "port {p}");
    }
}

#[test]
fn rfc8956_examples_ipv6_prefix_offset() {
    // RFC 8956 §3.8 example 1: dst 2001:db8::/32, src bits 64..104 = 0x123456789a, upper-layer protocol 6.
    let b = [
        0x12, 0x01, 0x20, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x68, 0x40, 0x12, 0x34, 0x56, 0x78,
        0x9a, 0x03, 0x81, 0x06,
    ];
    let f = decode_one(&b, Family::V6).unwrap();
    let src = FlowPrefix::v6_with_offset("::1234:5678:9a00:0".parse().unwrap(), 104, 64).unwrap();
    let want = FlowSpec::new(
        Family::V6,
        vec![
            Component::DestinationPrefix(FlowPrefix::new("2001:db8::/32".parse().unwrap())),
            Component::SourcePrefix(src),
            Component::Protocol(vec![eq(6)]),
        ],
    )
    .unwrap();
    assert_eq!(f, want);
    assert_eq!(want.to_bytes(), b);
    assert_eq!(
        f.to_string(),
        "dst 2001:db8::/32 src ::1234:5678:9a00:0/104 offset 64 next-header =6"
    );
    assert!(src.contains("2001:db8::1234:5678:9aff:1".parse().unwrap()));
    assert!(!src.contains("2001:db8::1234:5678:9bff:1".parse().unwrap()));
    // Example 2: offset 65 leaves 39 bits of pattern, the last octet carries one padding bit.
    let b = [
        0x0f, 0x01, 0x20, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x02, 0x68, 0x41, 0x24, 0x68, 0xac, 0xf1,
        0x34,
    ];
    let f = decode_one(&b, Family::V6).unwrap();
    assert_eq!(f.to_bytes(), b);
    assert_eq!(f.components()[1].prefix().unwrap().offset(), 65);
}

#[test]
fn nlri_length_uses_two_octets_from_240_rfc8955_4() {
    // 80 port terms of 3 octets: 1 (type) + 240 = 241 octets of body.
    let terms: Vec<NumericTerm> = (0..80)
        .map(|i| NumericTerm::new(Cmp::EQ, 1000 + i))
        .collect();
    let f = rule(vec![Component::DestinationPort(terms)]);
    let b = f.to_bytes();
    assert_eq!(&b[..2], &[0xf0, 241]);
    assert_eq!(b.len(), 243);
    assert_eq!(f.wire_len(), 243);
    assert_eq!(decode_one(&b, Family::V4), Ok(f));
    // The 2-octet form is also accepted for short lengths.
    let short = [0xf0, 0x03, 0x03, 0x81, 0x06];
    assert_eq!(
        decode_one(&short, Family::V4).unwrap(),
        rule(vec![Component::Protocol(vec![eq(6)])])
    );
}

#[test]
fn malformed_nlri_table_rfc8955_4_2() {
    use FlowSpecError as E;
    let cases: &[(&str, &[u8], Family, FlowSpecError)] = &[
        ("empty rule", &[0x00], Family::V4, E::Empty),
        (
            "unknown type 14",
            &[0x03, 0x0e, 0x81, 0x01],
            Family::V4,
            E::UnknownComponent(14),
        ),
        (
            "flow label in IPv4",
            &[0x03, 0x0d, 0x81, 0x01],
            Family::V4,
            E::UnknownComponent(13),
        ),
        (
            "type 0",
            &[0x03, 0x00, 0x81, 0x01],
            Family::V4,
            E::UnknownComponent(0),
        ),
        (
            "out of order",
            &[0x06, 0x04, 0x81, 0x19, 0x03, 0x81, 0x06],
            Family::V4,
            E::OutOfOrder { prev: 4, next: 3 },
        ),
        (
            "repeated type",
            &[0x06, 0x03, 0x81, 0x06, 0x03, 0x81, 0x11],
            Family::V4,
            E::OutOfOrder { prev: 3, next: 3 },
        ),
        (
            "no end-of-list",
            &[0x03, 0x03, 0x01, 0x06],
            Family::V4,
            E::Truncated(3),
        ),
        (
            "operator without value",
            &[0x02, 0x03, 0x81],
            Family::V4,
            E::Truncated(3),
        ),
        (
            "2-octet value cut",
            &[0x03, 0x05, 0x91, 0x01],
            Family::V4,
            E::Truncated(5),
        ),
        (
            "8-octet port value",
            &[0x0a, 0x05, 0xb1, 0, 0, 0, 0, 0, 0, 0, 80],
            Family::V4,
            E::BadValueLength {
                component: 5,
                len: 8,
            },
        ),
        (
            "2-octet protocol",
            &[0x04, 0x03, 0x91, 0x00, 0x06],
            Family::V4,
            E::BadValueLength {
                component: 3,
                len: 2,
            },
        ),
        (
            "4-octet TCP flags",
            &[0x06, 0x09, 0xa1, 0, 0, 0, 2],
            Family::V4,
            E::BadValueLength {
                component: 9,
                len: 4,
            },
        ),
        (
            "prefix /33",
            &[0x07, 0x01, 33, 1, 2, 3, 4, 5],
            Family::V4,
            E::BadPrefix(1),
        ),
        (
            "prefix cut",
            &[0x03, 0x01, 24, 10],
            Family::V4,
            E::Truncated(1),
        ),
        (
            "IPv6 /129",
            &[0x03, 0x01, 129, 0],
            Family::V6,
            E::BadPrefix(1),
        ),
        (
            "IPv6 offset > length",
            &[0x04, 0x01, 8, 9, 0],
            Family::V6,
            E::BadPrefix(1),
        ),
        (
            "IPv6 pattern cut",
            &[0x04, 0x01, 64, 0, 0x20],
            Family::V6,
            E::Truncated(1),
        ),
    ];
    for (what, b, fam, want) in cases {
        assert_eq!(decode_one(b, *fam), Err(*want), "{what}");
        assert!(!want.is_framing(), "{what}");
    }
}

#[test]
fn framing_errors_and_content_errors_are_told_apart_rfc7606_5_3() {
    let good = [0x03, 0x03, 0x81, 0x06];
    let bad_content = [0x03, 0x0e, 0x81, 0x06];
    // Length 5 with only 3 octets: nothing after can be located.
    let mut out = Vec::new();
    assert_eq!(
        decode_field(&[0x05, 0x03, 0x81, 0x06], Family::V4, &mut out),
        Err(FlowSpecError::LengthOverrun)
    );
    // A 2-octet length whose second octet is missing.
    assert_eq!(
        decode_field(&[0xf0], Family::V4, &mut out),
        Err(FlowSpecError::LengthOverrun)
    );
    // A framing error after good rules still adds nothing.
    let mut f = good.to_vec();
    f.extend_from_slice(&[0x09, 0x01]);
    assert_eq!(
        decode_field(&f, Family::V4, &mut out),
        Err(FlowSpecError::LengthOverrun)
    );
    assert!(out.is_empty());
    // A bad rule between good ones: the good ones decode, the first error is reported.
    let mut f = good.to_vec();
    f.extend_from_slice(&bad_content);
    f.extend_from_slice(&good);
    assert_eq!(
        decode_field(&f, Family::V4, &mut out),
        Ok(Some(FlowSpecError::UnknownComponent(14)))
    );
    assert_eq!(out.len(), 2);
}

#[test]
fn ignored_bits_are_cleared_on_decode_rfc8955_4_2_1() {
    // First term with the AND bit, reserved bit 0x08 set in a numeric op, reserved 0x0c in a bitmask op,
    // host bits past a /23.
    let b = [0x0b, 0x01, 23, 10, 0, 3, 0x03, 0xc9, 0x06, 0x09, 0x8d, 0x02];
    let f = decode_one(&b, Family::V4).unwrap();
    assert_eq!(
        f,
        rule(vec![
            Component::DestinationPrefix(v4("10.0.2.0/23")),
            Component::Protocol(vec![eq(6)]),
            Component::TcpFlags(vec![BitmaskTerm::new(false, true, 0x02)]),
        ])
    );
    assert_eq!(
        f.to_bytes(),
        [0x0b, 0x01, 23, 10, 0, 2, 0x03, 0x81, 0x06, 0x09, 0x81, 0x02]
    );
}

#[test]
fn new_validates_rfc8955_4_2() {
    let p = Component::Protocol(vec![eq(6)]);
    let d = Component::DestinationPrefix(v4("10.0.0.0/8"));
    assert_eq!(
        FlowSpec::new(Family::V4, vec![p.clone(), d.clone()]),
        Err(FlowSpecError::OutOfOrder { prev: 3, next: 1 })
    );
    assert_eq!(FlowSpec::new(Family::V4, vec![]), Err(FlowSpecError::Empty));
    assert_eq!(
        FlowSpec::new(Family::V6, vec![d]),
        Err(FlowSpecError::WrongFamily(1))
    );
    assert_eq!(
        FlowSpec::new(Family::V4, vec![Component::Protocol(vec![])]),
        Err(FlowSpecError::NoTerms(3))
    );
    assert_eq!(
        FlowSpec::new(Family::V4, vec![Component::Protocol(vec![eq(300)])]),
        Err(FlowSpecError::BadValueLength {
            component: 3,
            len: 2
        })
    );
    let mut t = eq(300);
    t.len = 1;
    assert_eq!(
        FlowSpec::new(Family::V4, vec![Component::DestinationPort(vec![t])]),
        Err(FlowSpecError::ValueTooLarge(5))
    );
    assert_eq!(
        FlowSpec::new(Family::V4, vec![Component::FlowLabel(vec![eq(1)])]),
        Err(FlowSpecError::UnknownComponent(13))
    );
    // Prefix bits the encoding does not carry are cleared, as decoding does.
    let raw = FlowPrefix::V6 {
        prefix: "ffff::ffff:ffff:ffff:ffff:ffff:ffff/80".parse().unwrap(),
        offset: 64,
    };
    let f = FlowSpec::new(Family::V6, vec![Component::SourcePrefix(raw)]).unwrap();
    assert_eq!(
        f.components()[0].prefix().unwrap().prefix().to_string(),
        "::ffff:0:0:0/80"
    );
    let b = f.to_bytes();
    assert_eq!(decode_one(&b, Family::V6).unwrap(), f);
    // The first term's AND bit is cleared.
    let f = rule(vec![Component::Protocol(vec![eq(6).and()])]);
    assert_eq!(f.components()[0].numeric().unwrap()[0], eq(6));
    // Longer than 4095 octets.
    let many: Vec<NumericTerm> = (0..1400)
        .map(|i| NumericTerm::new(Cmp::EQ, 300 + i))
        .collect();
    assert_eq!(
        FlowSpec::new(Family::V4, vec![Component::Port(many)]),
        Err(FlowSpecError::TooLong)
    );
}

fn ord(a: &FlowSpec, b: &FlowSpec) -> Ordering {
    let o = a.compare_precedence(b);
    assert_eq!(b.compare_precedence(a), o.reverse(), "antisymmetric");
    o
}

#[test]
fn precedence_lower_component_type_first_rfc8955_5_1() {
    let dst = rule(vec![Component::DestinationPrefix(v4("10.0.0.0/8"))]);
    let proto = rule(vec![Component::Protocol(vec![eq(6)])]);
    assert_eq!(ord(&dst, &proto), Ordering::Less);
    // Same destination: the rule with a source prefix (type 2) before the one whose next is protocol (3).
    let a = rule(vec![
        Component::DestinationPrefix(v4("10.0.0.0/8")),
        Component::SourcePrefix(v4("192.0.2.0/24")),
    ]);
    let b = rule(vec![
        Component::DestinationPrefix(v4("10.0.0.0/8")),
        Component::Protocol(vec![eq(6)]),
    ]);
    assert_eq!(ord(&a, &b), Ordering::Less);
    // Equal so far, one rule ends: the one with more components goes first (end of list = infinity).
    let c = rule(vec![Component::DestinationPrefix(v4("10.0.0.0/8"))]);
    assert_eq!(ord(&b, &c), Ordering::Less);
    assert_eq!(ord(&c, &c.clone()), Ordering::Equal);
}

#[test]
fn precedence_prefixes_more_specific_then_lower_value_rfc8955_5_1() {
    let r = |p: &str| rule(vec![Component::DestinationPrefix(v4(p))]);
    // Nested: more specific first.
    assert_eq!(ord(&r("10.0.0.0/24"), &r("10.0.0.0/16")), Ordering::Less);
    assert_eq!(ord(&r("10.0.1.0/24"), &r("10.0.0.0/16")), Ordering::Less);
    // Disjoint: lower value over the common bits first, whatever the lengths.
    assert_eq!(ord(&r("10.0.0.0/24"), &r("10.1.0.0/16")), Ordering::Less);
    assert_eq!(ord(&r("10.1.0.0/24"), &r("10.0.0.0/16")), Ordering::Greater);
    assert_eq!(ord(&r("9.255.0.0/16"), &r("10.0.0.0/8")), Ordering::Less);
    // /0 is a prefix of everything: always after.
    assert_eq!(ord(&r("0.0.0.0/0"), &r("255.0.0.0/8")), Ordering::Greater);
    // Prefix equal, decided by the next component.
    let a = rule(vec![
        Component::DestinationPrefix(v4("10.0.0.0/8")),
        Component::Protocol(vec![eq(6)]),
    ]);
    let b = rule(vec![
        Component::DestinationPrefix(v4("10.0.0.0/8")),
        Component::Protocol(vec![eq(17)]),
    ]);
    assert_eq!(ord(&a, &b), Ordering::Less);
}

#[test]
fn precedence_other_components_memcmp_rfc8955_5_1() {
    let r = |t: Vec<NumericTerm>| rule(vec![Component::DestinationPort(t)]);
    // =80 is 81 50, =80|=443 is 01 50 91 01 bb: the operator octets differ first (0x01 < 0x81).
    assert_eq!(
        ord(&r(vec![eq(80), eq(443)]), &r(vec![eq(80)])),
        Ordering::Less
    );
    // Same operator, lower value first.
    assert_eq!(ord(&r(vec![eq(22)]), &r(vec![eq(80)])), Ordering::Less);
    // A 2-octet value compares by its octets: =256 (91 01 00) after =80 (81 50) by the operator octet.
    assert_eq!(ord(&r(vec![eq(80)]), &r(vec![eq(256)])), Ordering::Less);
    // >=80&<=90 (03 50 c5 5a) before =80 (81 50).
    let range = r(vec![
        NumericTerm::new(Cmp::GE, 80),
        NumericTerm::new(Cmp::LE, 90).and(),
    ]);
    assert_eq!(ord(&range, &r(vec![eq(80)])), Ordering::Less);
}

#[test]
fn precedence_ipv6_offsets_rfc8956_4() {
    let r = |addr: &str, len, off| {
        FlowSpec::new(
            Family::V6,
            vec![Component::SourcePrefix(
                FlowPrefix::v6_with_offset(addr.parse().unwrap(), len, off).unwrap(),
            )],
        )
        .unwrap()
    };
    // Lower offset first, whatever the patterns.
    assert_eq!(
        ord(&r("ffff::", 16, 0), &r("::1:0:0:0", 80, 64)),
        Ordering::Less
    );
    // Same offset: more specific, then lower pattern.
    assert_eq!(
        ord(&r("::1:0:0:0", 96, 64), &r("::1:0:0:0", 80, 64)),
        Ordering::Less
    );
    assert_eq!(
        ord(&r("::1:0:0:0", 80, 64), &r("::2:0:0:0", 80, 64)),
        Ordering::Less
    );
    // Sorting a table puts IPv4 rules first, then by precedence.
    let mut v = [
        r("::2:0:0:0", 80, 64),
        rule(vec![Component::Protocol(vec![eq(6)])]),
        r("::1:0:0:0", 80, 64),
        rule(vec![Component::DestinationPrefix(v4("10.0.0.0/8"))]),
    ];
    v.sort();
    assert_eq!(
        v.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        [
            "dst 10.0.0.0/8",
            "proto =6",
            "src ::1:0:0:0/80 offset 64",
            "src ::2:0:0:0/80 offset 64"
        ]
    );
}

#[test]
fn display_operator_text() {
    let f = rule(vec![
        Component::DestinationPrefix(v4("192.0.2.0/24")),
        Component::Protocol(vec![eq(6)]),
        Component::DestinationPort(vec![
            NumericTerm::new(Cmp::GE, 80),
            NumericTerm::new(Cmp::LE, 90).and(),
        ]),
        Component::TcpFlags(vec![
            BitmaskTerm::new(false, true, tcp_flag::SYN),
            BitmaskTerm::new(true, false, tcp_flag::ACK | tcp_flag::RST).and(),
        ]),
        Component::PacketLength(vec![NumericTerm::new(Cmp::GT, 1000)]),
        Component::Dscp(vec![eq(46)]),
        Component::Fragment(vec![BitmaskTerm::new(
            false,
            false,
            fragment::IS_FRAGMENT | 0x40,
        )]),
    ]);
    assert_eq!(
        f.to_string(),
        "dst 192.0.2.0/24 proto =6 dport >=80&<=90 tcp-flags =syn&!rst+ack length >1000 dscp =46 \
         fragment is-fragment+0x40"
    );
    let t = rule(vec![Component::IcmpType(vec![NumericTerm::new(
        Cmp::TRUE,
        0,
    )])]);
    assert_eq!(t.to_string(), "icmp-type true");
}

#[test]
fn reference_matcher() {
    use std::net::IpAddr;
    let f = rule(vec![
        Component::DestinationPrefix(v4("192.0.2.0/24")),
        Component::Protocol(vec![eq(6)]),
        Component::DestinationPort(vec![
            NumericTerm::new(Cmp::GE, 80),
            NumericTerm::new(Cmp::LE, 90).and(),
        ]),
        Component::TcpFlags(vec![
            BitmaskTerm::new(false, true, tcp_flag::SYN),
            BitmaskTerm::new(true, false, tcp_flag::ACK).and(),
        ]),
    ]);
    let p = Packet {
        src: IpAddr::from([198, 51, 100, 1]),
        dst: IpAddr::from([192, 0, 2, 7]),
        protocol: 6,
        src_port: Some(40000),
        dst_port: Some(85),
        icmp_type: None,
        icmp_code: None,
        tcp_flags: Some(0x02),
        length: 60,
        dscp: 0,
        fragment: 0,
        flow_label: None,
    };
    assert!(f.matches(&p));
    assert!(!f.matches(&Packet {
        tcp_flags: Some(0x12),
        ..p
    }));
    assert!(!f.matches(&Packet {
        dst_port: Some(91),
        ..p
    }));
    assert!(!f.matches(&Packet {
        dst: IpAddr::from([192, 0, 3, 7]),
        ..p
    }));
    assert!(!f.matches(&Packet { protocol: 17, ..p }));
    // Bitmask semantics (RFC 8955 §4.2.1.2).
    assert!(BitmaskTerm::new(false, false, 0x12).eval(0x02)); // any of
    assert!(!BitmaskTerm::new(false, true, 0x12).eval(0x02)); // all of
    assert!(BitmaskTerm::new(true, true, 0x12).eval(0x02)); // not all of
    assert!(!BitmaskTerm::new(true, false, 0x12).eval(0x02)); // none of
    assert!(
        Cmp::NE.eval(1, 2) && !Cmp::NE.eval(2, 2) && Cmp::TRUE.eval(0, 9) && !Cmp::FALSE.eval(9, 9)
    );
}

#[test]
fn traffic_filtering_actions_rfc8955_7() {
    let cases: &[(FlowAction, [u8; 8], &str)] = &[
        (
            FlowAction::TrafficRateBytes {
                asn: 65001,
                bytes_per_second: 0.0,
            },
            [0x80, 0x06, 0xfd, 0xe9, 0, 0, 0, 0],
            "discard",
        ),
        (
            FlowAction::TrafficRateBytes {
                asn: 0,
                bytes_per_second: 125000.0,
            },
            [0x80, 0x06, 0, 0, 0x47, 0xf4, 0x24, 0x00],
            "rate-limit 125000 bytes/s",
        ),
        (
            FlowAction::TrafficRatePackets {
                asn: 0,
                packets_per_second: 1000.0,
            },
            [0x80, 0x0c, 0, 0, 0x44, 0x7a, 0x00, 0x00],
            "rate-limit 1000 packets/s",
        ),
        (
            FlowAction::TrafficAction {
                sample: true,
                terminal: true,
            },
            [0x80, 0x07, 0, 0, 0, 0, 0, 0x03],
            "action terminal,sample",
        ),
        (
            FlowAction::RedirectAs2 {
                asn: 65000,
                value: 100,
            },
            [0x80, 0x08, 0xfd, 0xe8, 0, 0, 0, 100],
            "redirect 65000:100",
        ),
        (
            FlowAction::RedirectIpv4 {
                address: Ipv4Addr::new(192, 0, 2, 1),
                value: 7,
            },
            [0x81, 0x08, 192, 0, 2, 1, 0, 7],
            "redirect 192.0.2.1:7",
        ),
        (
            FlowAction::RedirectAs4 {
                asn: 4_200_000_000,
                value: 9,
            },
            [0x82, 0x08, 0xfa, 0x56, 0xea, 0x00, 0, 9],
            "redirect 4200000000:9",
        ),
        (
            FlowAction::TrafficMarking { dscp: 46 },
            [0x80, 0x09, 0, 0, 0, 0, 0, 46],
            "mark dscp 46",
        ),
    ];
    for (a, b, text) in cases {
        let c = ExtCommunity(*b);
        assert_eq!(a.to_ext_community(), Some(c), "{text}");
        assert_eq!(FlowAction::from_ext_community(c), Some(*a), "{text}");
        assert_eq!(a.to_string(), *text);
        assert!(!a.is_malformed());
    }
    // Reserved bits are ignored on receipt.
    assert_eq!(
        FlowAction::from_ext_community(ExtCommunity([0x80, 0x09, 1, 2, 3, 4, 5, 0xc0 | 10])),
        Some(FlowAction::TrafficMarking { dscp: 10 })
    );
    // Not actions: route target, link bandwidth.
    assert_eq!(
        FlowAction::from_ext_community(ExtCommunity::route_target_as2(65000, 1)),
        None
    );
    assert_eq!(
        FlowAction::from_ext_community(ExtCommunity::link_bandwidth(1, 1.0)),
        None
    );
    // RFC 8955 §10: a rate that cannot be a rate.
    assert!(
        FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: f32::NAN
        }
        .is_malformed()
    );
    assert!(
        FlowAction::TrafficRatePackets {
            asn: 0,
            packets_per_second: -1.0
        }
        .is_malformed()
    );
}

#[test]
fn redirect_ipv6_rfc8956_6() {
    let a = FlowAction::RedirectIpv6 {
        address: "2001:db8::1".parse().unwrap(),
        value: 42,
    };
    let c = a.to_ipv6_ext_community().unwrap();
    assert_eq!(&c[..2], &[0x00, 0x0d]);
    assert_eq!(&c[18..], &[0, 42]);
    assert_eq!(FlowAction::from_ipv6_ext_community(&c), Some(a));
    assert_eq!(a.to_ext_community(), None);
    assert_eq!(a.to_string(), "redirect [2001:db8::1]:42");
    let mut attrs = crate::wire::PathAttributes::default();
    let mark = FlowAction::TrafficMarking { dscp: 8 };
    attrs.add_flow_actions(&[a, mark]);
    assert_eq!(attrs.flow_actions(), vec![mark, a]);
    assert_eq!(attrs.unknown[0].type_code, action::IPV6_EXT_COMMUNITIES);
    assert_eq!(attrs.unknown[0].value.len(), 20);
}

#[test]
fn text_form_parses_back() {
    for (fam, text) in [
        (
            Family::V4,
            "dst 192.0.2.0/24 proto =6 dport >=80&<=90 tcp-flags =syn&!rst+ack",
        ),
        (
            Family::V4,
            "src 10.0.0.0/8 port >=137&<=139|=8080 length >1000 dscp =46 fragment is-fragment+0x40",
        ),
        (Family::V4, "icmp-type true icmp-code !=3"),
        (
            Family::V6,
            "dst 2001:db8::/32 src ::1234:5678:9a00:0/104 offset 64 next-header =6 flow-label =2013",
        ),
        (
            Family::V6,
            "tcp-flags !=0x300|syn fragment =first-fragment+last-fragment",
        ),
    ] {
        let f = FlowSpec::parse(fam, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(f.to_string(), text);
    }
    let f = FlowSpec::parse(Family::V4, "dst 192.0.2.0/24 proto =6 port =25").unwrap();
    assert_eq!(
        f.to_bytes(),
        [
            0x0b, 0x01, 0x18, 0xc0, 0x00, 0x02, 0x03, 0x81, 0x06, 0x04, 0x81, 0x19
        ]
    );
    use super::ParseError as P;
    assert_eq!(
        FlowSpec::parse(Family::V4, "dsp =1"),
        Err(P::UnknownComponent("dsp".into()))
    );
    assert_eq!(
        FlowSpec::parse(Family::V4, "proto"),
        Err(P::MissingValue("proto".into()))
    );
    assert!(matches!(
        FlowSpec::parse(Family::V4, "proto ~6"),
        Err(P::Bad { .. })
    ));
    assert!(matches!(
        FlowSpec::parse(Family::V4, "dst 10.0.0.0/8 offset 4"),
        Err(P::Bad { .. })
    ));
    assert_eq!(
        FlowSpec::parse(Family::V4, "proto =6 dst 10.0.0.0/8"),
        Err(P::Invalid(FlowSpecError::OutOfOrder { prev: 3, next: 1 }))
    );
    assert_eq!(
        FlowSpec::parse(Family::V4, "proto =300"),
        Err(P::Invalid(FlowSpecError::BadValueLength {
            component: 3,
            len: 2
        }))
    );
    assert_eq!(
        FlowSpec::parse(Family::V4, "flow-label =1"),
        Err(P::Invalid(FlowSpecError::UnknownComponent(13)))
    );
}
