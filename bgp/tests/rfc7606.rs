//! RFC 7606 revised error handling: one case per rule, each asserting the action taken (session reset with the
//! NOTIFICATION's exact octets, treat-as-withdraw listing the withdrawn prefixes, attribute discard, or
//! acceptance) for a hand-built UPDATE.

use bgp::wire::{AfiSafi, AfiSafiSet, Context, Error, Message, Update};

/// What the receiver must do.
#[derive(Debug, PartialEq)]
enum Action {
    /// Send this NOTIFICATION (code, subcode, data) and reset the session.
    Reset(u8, u8, Vec<u8>),
    /// Withdraw every prefix of the UPDATE; the error that caused it (code, subcode) is for the log.
    TreatAsWithdraw(u8, u8),
    /// Drop these many attributes and use the UPDATE.
    Discard(usize),
    Accept,
}

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]; // 4-octet AS 65001
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 192, 0, 2, 1];
const NLRI: &[u8] = &[24, 10, 0, 0]; // 10.0.0.0/24

fn msg(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = vec![0xff; 16];
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    b.extend_from_slice(&(len as u16).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

/// The three mandatory attributes with `extra` appended (or replacing one when `drop` names its type).
fn attrs(drop: u8, extra: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for a in [ORIGIN, AS_PATH, NEXT_HOP] {
        if a[1] != drop {
            v.extend_from_slice(a);
        }
    }
    for e in extra {
        v.extend_from_slice(e);
    }
    v
}

fn classify(bytes: &[u8], ctx: &Context) -> (Action, Option<Update>) {
    match Message::decode(bytes, ctx) {
        Err(e) => {
            let n = e.notification();
            // The NOTIFICATION as sent: check its octets once more through the codec.
            let wire = Message::Notification(n.clone()).to_bytes(ctx).unwrap();
            assert_eq!(&wire[19..21], &[n.code, n.subcode]);
            assert_eq!(&wire[21..], &n.data[..]);
            (Action::Reset(n.code, n.subcode, n.data), None)
        }
        Ok(Message::Update(u)) => {
            let a = match (&u.treat_as_withdraw, u.discarded.len()) {
                (Some(e), _) => {
                    let n = e.notification();
                    Action::TreatAsWithdraw(n.code, n.subcode)
                }
                (None, 0) => Action::Accept,
                (None, d) => Action::Discard(d),
            };
            (a, Some(u))
        }
        Ok(other) => panic!("not an UPDATE: {other:?}"),
    }
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Action,
}

fn cases() -> Vec<Case> {
    let a = |drop: u8, extra: &[&[u8]]| attrs(drop, extra);
    let std = a(0, &[]);
    vec![
        Case {
            name: "well-formed UPDATE is accepted",
            bytes: msg(&[], &std, NLRI),
            expect: Action::Accept,
        },
        Case {
            name: "§4 withdrawn routes length overruns the message → reset 3/1",
            bytes: {
                let mut b = msg(&[], &std, NLRI);
                b[19..21].copy_from_slice(&[0x10, 0]);
                b
            },
            expect: Action::Reset(3, 1, vec![]),
        },
        Case {
            name: "§4 total path attribute length overruns the message → reset 3/1",
            bytes: {
                let mut b = msg(&[], &std, NLRI);
                b[21..23].copy_from_slice(&[0x10, 0]);
                b
            },
            expect: Action::Reset(3, 1, vec![]),
        },
        Case {
            name: "§4 attribute length overruns the attribute field, NLRI locatable → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0x80, 4, 9, 0, 0]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§4 attribute overrun with no prefix to withdraw → reset 3/1",
            bytes: msg(&[], &[0x40, 1, 5, 0], &[]),
            expect: Action::Reset(3, 1, vec![]),
        },
        Case {
            name: "§5.3 NLRI prefix length above 32 → reset 3/10",
            bytes: msg(&[], &std, &[33, 10, 0, 0, 0, 0]),
            expect: Action::Reset(3, 10, vec![]),
        },
        Case {
            name: "§5.3 NLRI prefix overruns the message (trailing octets) → reset 3/10",
            bytes: msg(&[], &std, &[24, 10, 0, 0, 24, 10]),
            expect: Action::Reset(3, 10, vec![]),
        },
        Case {
            name: "§5.3 withdrawn prefix malformed → reset 3/10",
            bytes: msg(&[40, 1, 2, 3, 4, 5], &[], &[]),
            expect: Action::Reset(3, 10, vec![]),
        },
        Case {
            name: "§3 d missing ORIGIN → treat-as-withdraw 3/3",
            bytes: msg(&[], &a(1, &[]), NLRI),
            expect: Action::TreatAsWithdraw(3, 3),
        },
        Case {
            name: "§3 d missing AS_PATH → treat-as-withdraw 3/3",
            bytes: msg(&[], &a(2, &[]), NLRI),
            expect: Action::TreatAsWithdraw(3, 3),
        },
        Case {
            name: "§3 d missing NEXT_HOP with IPv4 NLRI → treat-as-withdraw 3/3",
            bytes: msg(&[], &a(3, &[]), NLRI),
            expect: Action::TreatAsWithdraw(3, 3),
        },
        Case {
            name: "§3 d nothing announced: no attribute is mandatory",
            bytes: msg(&[24, 10, 0, 0], &[], &[]),
            expect: Action::Accept,
        },
        Case {
            name: "§3 c ORIGIN with the optional flag → treat-as-withdraw 3/4",
            bytes: msg(&[], &a(1, &[&[0xc0, 1, 1, 0]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 4),
        },
        Case {
            name: "§3 c MP_REACH_NLRI with the transitive flag → reset 3/4 (data = attribute)",
            bytes: msg(&[], &a(0, &[&[0xc0, 14, 5, 0, 2, 1, 0, 0]]), &[]),
            expect: Action::Reset(3, 4, vec![0xc0, 14, 5, 0, 2, 1, 0, 0]),
        },
        Case {
            name: "§3 g repeated ORIGIN → all but the first discarded",
            bytes: msg(&[], &a(0, &[&[0x40, 1, 1, 2]]), NLRI),
            expect: Action::Discard(1),
        },
        Case {
            name: "§3 g repeated MP_UNREACH_NLRI → reset 3/1",
            bytes: msg(
                &[],
                &[&[0x80u8, 15, 3, 0, 2, 1][..], &[0x80, 15, 3, 0, 2, 1]].concat(),
                &[],
            ),
            expect: Action::Reset(3, 1, vec![]),
        },
        Case {
            name: "RFC 4271 §6.3 unrecognized well-known attribute → reset 3/2 (data = attribute)",
            bytes: msg(&[], &a(0, &[&[0x40, 99, 1, 7]]), NLRI),
            expect: Action::Reset(3, 2, vec![0x40, 99, 1, 7]),
        },
        Case {
            name: "unrecognized optional transitive attribute is kept",
            bytes: msg(&[], &a(0, &[&[0xc0, 99, 1, 7]]), NLRI),
            expect: Action::Accept,
        },
        Case {
            name: "§7.1 ORIGIN of length 2 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(1, &[&[0x40, 1, 2, 0, 0]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.1 ORIGIN value 3 → treat-as-withdraw 3/6",
            bytes: msg(&[], &a(1, &[&[0x40, 1, 1, 3]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 6),
        },
        Case {
            name: "§7.2 AS_PATH segment overruns → treat-as-withdraw 3/11",
            bytes: msg(&[], &a(2, &[&[0x40, 2, 6, 2, 2, 0, 0, 0xfd, 0xe9]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 11),
        },
        Case {
            name: "§7.2 AS_PATH unknown segment type → treat-as-withdraw 3/11",
            bytes: msg(&[], &a(2, &[&[0x40, 2, 6, 9, 1, 0, 0, 0xfd, 0xe9]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 11),
        },
        Case {
            name: "§7.3 NEXT_HOP of length 5 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(3, &[&[0x40, 3, 5, 192, 0, 2, 1, 0]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.4 MULTI_EXIT_DISC of length 3 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0x80, 4, 3, 0, 0, 1]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.5 LOCAL_PREF of length 2 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0x40, 5, 2, 0, 1]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.6 ATOMIC_AGGREGATE of length 1 → attribute discard",
            bytes: msg(&[], &a(0, &[&[0x40, 6, 1, 0]]), NLRI),
            expect: Action::Discard(1),
        },
        Case {
            name: "§7.7 AGGREGATOR of length 7 → attribute discard",
            bytes: msg(
                &[],
                &a(0, &[&[0xc0, 7, 7, 0, 0, 0xfd, 0xe9, 1, 2, 3]]),
                NLRI,
            ),
            expect: Action::Discard(1),
        },
        Case {
            name: "§7.8 COMMUNITIES of length 5 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0xc0, 8, 5, 0, 0, 0, 1, 2]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.9 ORIGINATOR_ID of length 3 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0x80, 9, 3, 1, 2, 3]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.10 CLUSTER_LIST of length 6 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0x80, 10, 6, 1, 2, 3, 4, 5, 6]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "§7.11 MP_REACH_NLRI next-hop length 5 for IPv6 → reset 3/9 (data = attribute)",
            bytes: msg(
                &[],
                &a(3, &[&[0x80, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0]]),
                &[],
            ),
            expect: Action::Reset(3, 9, vec![0x80, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0]),
        },
        Case {
            name: "§7.11 MP_REACH_NLRI with a 129-bit IPv6 prefix → reset 3/10",
            bytes: msg(
                &[],
                &a(
                    3,
                    &[&[
                        &[0x80u8, 14, 23, 0, 2, 1, 16][..],
                        &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                        &[0, 129, 1],
                    ]
                    .concat()],
                ),
                &[],
            ),
            expect: Action::Reset(3, 10, vec![]),
        },
        Case {
            name: "§7.12 MP_UNREACH_NLRI shorter than AFI+SAFI → reset 3/9",
            bytes: msg(&[], &[0x80, 15, 2, 0, 2], &[]),
            expect: Action::Reset(3, 9, vec![0x80, 15, 2, 0, 2]),
        },
        Case {
            name: "§7.14 EXTENDED_COMMUNITIES of length 7 → treat-as-withdraw 3/5",
            bytes: msg(&[], &a(0, &[&[0xc0, 16, 7, 0, 2, 0, 1, 0, 0, 0]]), NLRI),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "RFC 8092 §5 LARGE_COMMUNITIES of length 13 → treat-as-withdraw 3/5",
            bytes: msg(
                &[],
                &a(0, &[&[&[0xc0u8, 32, 13][..], &[0; 13]].concat()]),
                NLRI,
            ),
            expect: Action::TreatAsWithdraw(3, 5),
        },
        Case {
            name: "RFC 6793 §6 malformed AS4_PATH → attribute discard",
            bytes: msg(&[], &a(0, &[&[0xc0, 17, 3, 2, 1, 0]]), NLRI),
            expect: Action::Discard(1),
        },
        Case {
            name: "RFC 6793 §6 AS4_AGGREGATOR of length 7 → attribute discard",
            bytes: msg(
                &[],
                &a(0, &[&[0xc0, 18, 7, 0, 0, 0xfd, 0xe9, 1, 2, 3]]),
                NLRI,
            ),
            expect: Action::Discard(1),
        },
    ]
}

#[test]
fn rfc7606_table() {
    let ctx = Context::four_octet();
    let mut failures = Vec::new();
    for c in cases() {
        let (got, update) = classify(&c.bytes, &ctx);
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
            continue;
        }
        // Treat-as-withdraw must list the UPDATE's prefixes as withdrawn and announce nothing.
        if let (Action::TreatAsWithdraw(..), Some(u)) = (&got, &update) {
            let w: Vec<String> = u
                .withdrawn_routes()
                .map(|(_, n)| n.prefix.to_string())
                .collect();
            if w != ["10.0.0.0/24"] || u.announced().count() != 0 {
                failures.push(format!("{}: withdrawn {w:?}", c.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn treat_as_withdraw_lists_mp_prefixes_too_rfc7606_5_3() {
    // MP_REACH with one IPv6 prefix, plus a malformed MED.
    let mp: &[u8] = &[
        0x80, 14, 28, 0, 2, 1, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 48,
        0x20, 1, 0x0d, 0xb8, 0, 7,
    ];
    let b = msg(&[], &attrs(3, &[mp, &[0x80, 4, 1, 0]]), &[]);
    let Ok(Message::Update(u)) = Message::decode(&b, &Context::four_octet()) else {
        panic!()
    };
    assert!(matches!(
        u.treat_as_withdraw,
        Some(Error::AttributeLengthError(_))
    ));
    let w: Vec<(AfiSafi, String)> = u
        .withdrawn_routes()
        .map(|(af, n)| (af, n.prefix.to_string()))
        .collect();
    assert_eq!(
        w,
        vec![(AfiSafi::IPV6_UNICAST, "2001:db8:7::/48".to_string())]
    );
}

#[test]
fn add_path_nlri_without_negotiation_is_invalid_network_field_rfc7911_3() {
    // Path id 1 then 10.0.0.1/32. Read without ADD-PATH: /0, /0, /0, /1, /10, then /1 overruns.
    let b = msg(&[], &attrs(0, &[]), &[0, 0, 0, 1, 32, 10, 0, 0, 1]);
    let with = Context {
        add_path_rx: AfiSafiSet::ALL,
        ..Context::four_octet()
    };
    assert!(
        matches!(Message::decode(&b, &with), Ok(Message::Update(u)) if u.nlri[0].path_id == Some(1))
    );
    assert_eq!(
        Message::decode(&b, &Context::four_octet()).unwrap_err(),
        Error::InvalidNetworkField
    );
}
