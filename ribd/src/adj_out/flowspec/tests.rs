//! FlowSpec Adj-RIB-Out observed on the wire: every test decodes what a member was sent with the
//! codec (rules, actions, AS path, End-of-RIB) after the table or the export context changed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::wire::flowspec::action::FlowAction;
use bgp::wire::{AfiSafi, Message};

use super::*;
use crate::policy::{Policy, PolicyDefs, PolicySet};
use crate::rib::attrs::AsPath;
use crate::rib::decision::{PeerInfo, PeerKind};

fn peer(n: u8, asn: u32, kind: PeerKind) -> PeerInfo {
    PeerInfo {
        name: format!("p{n}"),
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
        router_id: Ipv4Addr::new(10, 0, 0, n),
        remote_as: asn,
        local_as: 65000,
        kind,
        confed: false,
    }
}

fn chain(text: &str, names: &[&str]) -> Vec<Arc<Policy>> {
    let defs: PolicyDefs = toml::from_str(text).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    PolicySet::compile(&defs).unwrap().chain(&names).unwrap()
}

const ALL: &str = "[[policy.ALL.term]]\nname = \"all\"\naction = \"accept\"\n";

fn spec(n: u8, asn: u32, policy: Option<Vec<Arc<Policy>>>) -> FlowMemberSpec {
    FlowMemberSpec {
        id: n as MemberId,
        ctx: ExportCtx {
            peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            peer_as: asn,
            local_as: 65000,
            router_id: Ipv4Addr::new(10, 0, 0, 254),
            ebgp: asn != 65000,
            rr_client: false,
            next_hop_self: false,
            local_v4: Some(Ipv4Addr::new(192, 0, 2, 254)),
            local_v6: None,
            policy,
        },
        families: [true, true],
        wire: WireCtx {
            four_octet_as: true,
            ..WireCtx::default()
        },
    }
}

fn rule(text: &str) -> FlowSpec {
    let fam = if text.contains(':') {
        Family::V6
    } else {
        Family::V4
    };
    FlowSpec::parse(fam, text).unwrap()
}

fn attrs(path: &[u32], actions: &[FlowAction]) -> Attrs {
    let mut a = Attrs::default().with_as_path(AsPath::sequence(path.to_vec()));
    a.set_ext_communities(
        actions
            .iter()
            .filter_map(|x| x.to_ext_community())
            .map(|c| c.0)
            .collect::<Vec<_>>(),
    );
    a
}

const DISCARD: FlowAction = FlowAction::TrafficRateBytes {
    asn: 0,
    bytes_per_second: 0.0,
};

/// What a member decoded: announced (rule text, actions, AS path), withdrawn rule texts, End-of-RIB
/// families, and the next-hop of every MP_REACH (must be empty).
#[derive(Debug, Default)]
struct Rx {
    announced: Vec<(String, Vec<FlowAction>, String)>,
    withdrawn: Vec<String>,
    eor: Vec<AfiSafi>,
    updates: usize,
}

fn rx(sends: &[Send], m: MemberId) -> Rx {
    let ctx = WireCtx {
        four_octet_as: true,
        ..WireCtx::default()
    };
    let mut r = Rx::default();
    for s in sends.iter().filter(|s| s.to.contains(&m)) {
        let mut buf = &s.bytes[..];
        let mut n = 0;
        while let Some(len) = bgp::wire::frame(buf, 65535).unwrap() {
            let Message::Update(u) = Message::decode(&buf[..len], &ctx).unwrap() else {
                panic!("not an UPDATE")
            };
            n += 1;
            r.updates += 1;
            assert!(u.treat_as_withdraw.is_none() && u.afi_safi_disable.is_none());
            if let Some(f) = u.end_of_rib_family() {
                r.eor.push(f);
            }
            for (_, f) in u.withdrawn_flowspec() {
                r.withdrawn.push(f.to_string());
            }
            if let Some(m) = &u.mp_reach {
                assert_eq!(
                    m.next_hop,
                    bgp::wire::attr::mp::NextHop::Other(vec![]),
                    "FlowSpec next-hop length 0 (RFC 8955 §4)"
                );
                assert!(u.attrs.next_hop.is_none());
            }
            let path = u
                .attrs
                .as_path
                .as_ref()
                .map(|p| {
                    p.segments
                        .iter()
                        .flat_map(|s| s.asns.iter().map(|a| a.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            for (_, f) in u.announced_flowspec() {
                r.announced
                    .push((f.to_string(), u.attrs.flow_actions(), path.clone()));
            }
            buf = &buf[len..];
        }
        assert_eq!(n, s.messages, "Send::messages counts the encoded messages");
    }
    r
}

struct Table {
    rows: Vec<(FlowSpec, Attrs, PeerInfo, bool)>,
}

impl Table {
    fn cands(&self) -> Vec<FlowCandidate<'_>> {
        self.rows
            .iter()
            .map(|(r, a, p, rr)| FlowCandidate {
                rule: r,
                attrs: a,
                src: Source {
                    peer: p,
                    rr_client: *rr,
                },
            })
            .collect()
    }
}

#[test]
fn join_sends_the_table_then_end_of_rib_per_family_rfc4724_rfc8955() {
    let src = peer(1, 65010, PeerKind::Ebgp);
    let t = Table {
        rows: vec![
            (
                rule("dst 10.100.1.0/24 proto =17 dport =5001"),
                attrs(&[65010], &[DISCARD]),
                src.clone(),
                false,
            ),
            (
                rule("dst fd00:100::/64 next-header =17"),
                attrs(&[65010], &[FlowAction::TrafficMarking { dscp: 46 }]),
                src.clone(),
                false,
            ),
        ],
    };
    let mut out = FlowOut::new();
    let sends = out.join(spec(2, 65020, Some(chain(ALL, &["ALL"]))), &t.cands());
    let r = rx(&sends, 2);
    assert_eq!(
        r.announced,
        vec![
            (
                "dst 10.100.1.0/24 proto =17 dport =5001".to_string(),
                vec![DISCARD],
                "65000 65010".to_string()
            ),
            (
                "dst fd00:100::/64 next-header =17".to_string(),
                vec![FlowAction::TrafficMarking { dscp: 46 }],
                "65000 65010".to_string()
            ),
        ]
    );
    assert_eq!(r.eor, vec![AfiSafi::IPV4_FLOWSPEC, AfiSafi::IPV6_FLOWSPEC]);
    assert_eq!(out.advertised(2), [1, 1]);

    // Only IPv4 FlowSpec negotiated: no IPv6 rule, one End-of-RIB.
    let mut s = spec(3, 65030, Some(chain(ALL, &["ALL"])));
    s.families = [true, false];
    let r = rx(&out.join(s, &t.cands()), 3);
    assert_eq!(r.announced.len(), 1);
    assert_eq!(r.eor, vec![AfiSafi::IPV4_FLOWSPEC]);
    // No FlowSpec family at all: not a member, nothing sent.
    let mut s = spec(4, 65040, Some(chain(ALL, &["ALL"])));
    s.families = [false, false];
    assert!(out.join(s, &t.cands()).is_empty());
    assert!(!out.is_member(4));
}

#[test]
fn withdrawals_and_changed_actions_propagate_as_differences() {
    let src = peer(1, 65010, PeerKind::Ebgp);
    let r1 = rule("dst 10.100.1.0/24 proto =17");
    let r2 = rule("dst 10.100.2.0/24 proto =6");
    let mut t = Table {
        rows: vec![
            (r1.clone(), attrs(&[65010], &[DISCARD]), src.clone(), false),
            (r2.clone(), attrs(&[65010], &[DISCARD]), src.clone(), false),
        ],
    };
    let mut out = FlowOut::new();
    let first = rx(
        &out.join(spec(2, 65020, Some(chain(ALL, &["ALL"]))), &t.cands()),
        2,
    );
    // Two rules with one attribute set: packed into one UPDATE (plus two End-of-RIB).
    assert_eq!((first.announced.len(), first.updates), (2, 3));
    assert!(out.sync(&t.cands()).is_empty(), "no change, nothing sent");

    // r2's action changes to a rate limit: only r2 is announced again.
    let rate = FlowAction::TrafficRatePackets {
        asn: 0,
        packets_per_second: 200.0,
    };
    t.rows[1].1 = attrs(&[65010], &[rate]);
    let r = rx(&out.sync(&t.cands()), 2);
    assert_eq!(r.announced.len(), 1);
    assert_eq!(r.announced[0].0, r2.to_string());
    assert_eq!(r.announced[0].1, vec![rate]);
    assert!(r.withdrawn.is_empty());

    // r1 is withdrawn by its source: MP_UNREACH_NLRI with exactly that rule.
    t.rows.remove(0);
    let r = rx(&out.sync(&t.cands()), 2);
    assert_eq!(r.withdrawn, vec![r1.to_string()]);
    assert!(r.announced.is_empty());
    assert_eq!(out.advertised(2), [1, 0]);

    // A refresh of IPv4 FlowSpec sends the table again and End-of-RIB.
    let r = rx(&out.refresh(2, Family::V4, &t.cands()), 2);
    assert_eq!(r.announced.len(), 1);
    assert_eq!(r.eor, vec![AfiSafi::IPV4_FLOWSPEC]);
    out.leave(2);
    assert!(out.sync(&t.cands()).is_empty());
}

#[test]
fn usual_propagation_rules_apply_to_rules_rfc4271_rfc4456_rfc8212() {
    let ebgp_src = peer(1, 65010, PeerKind::Ebgp);
    let ibgp_src = peer(5, 65000, PeerKind::Ibgp);
    let mut no_export = attrs(&[65010], &[DISCARD]);
    no_export.set_communities([crate::rib::attrs::community::NO_EXPORT]);
    let t = Table {
        rows: vec![
            (
                rule("dst 10.1.0.0/16"),
                attrs(&[65010], &[DISCARD]),
                ebgp_src.clone(),
                false,
            ),
            (rule("dst 10.2.0.0/16"), no_export, ebgp_src.clone(), false),
            (
                rule("dst 10.3.0.0/16"),
                attrs(&[], &[DISCARD]),
                ibgp_src.clone(),
                false,
            ),
        ],
    };
    let all = Some(chain(ALL, &["ALL"]));
    let mut out = FlowOut::new();
    // Never back to the source: the source's own rules stay, the iBGP-learned one goes to it.
    let r = rx(&out.join(spec(1, 65010, all.clone()), &t.cands()), 1);
    let got: Vec<&str> = r.announced.iter().map(|(x, ..)| x.as_str()).collect();
    assert_eq!(got, vec!["dst 10.3.0.0/16"], "{r:?}");
    assert_eq!(r.eor.len(), 2);
    // eBGP: NO_EXPORT stays home; an iBGP-learned rule goes out with our AS prepended.
    let r = rx(&out.join(spec(2, 65020, all.clone()), &t.cands()), 2);
    let got: Vec<(&str, &str)> = r
        .announced
        .iter()
        .map(|(x, _, p)| (x.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("dst 10.1.0.0/16", "65000 65010"),
            ("dst 10.3.0.0/16", "65000")
        ]
    );
    // eBGP without export policy: nothing (RFC 8212).
    let r = rx(&out.join(spec(3, 65030, None), &t.cands()), 3);
    assert!(r.announced.is_empty());
    // iBGP non-client: eBGP-learned rules only (no iBGP-to-iBGP without reflection).
    let r = rx(&out.join(spec(6, 65000, None), &t.cands()), 6);
    let got: Vec<&str> = r.announced.iter().map(|(x, ..)| x.as_str()).collect();
    assert_eq!(got, vec!["dst 10.1.0.0/16", "dst 10.2.0.0/16"]);
    // A route-reflector client gets the iBGP-learned one too.
    let mut s = spec(7, 65000, None);
    s.ctx.rr_client = true;
    s.ctx.peer_addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let r = rx(&out.join(s, &t.cands()), 7);
    assert_eq!(r.announced.len(), 3);
}

#[test]
fn export_policy_matches_destination_community_and_safi() {
    let src = peer(1, 65010, PeerKind::Ebgp);
    let mut tagged = attrs(&[65010], &[DISCARD]);
    tagged.set_communities([(65010 << 16) | 666]);
    let t = Table {
        rows: vec![
            (
                rule("dst 10.100.1.0/24 proto =17"),
                attrs(&[65010], &[DISCARD]),
                src.clone(),
                false,
            ),
            (rule("dst 192.0.2.0/24"), tagged, src.clone(), false),
            (
                rule("proto =47"),
                attrs(&[65010], &[DISCARD]),
                src.clone(),
                false,
            ),
        ],
    };
    let text = r#"
[[policy.FS.term]]
name = "unicast-only-term"
match.safi = "unicast"
action = "accept"

[[policy.FS.term]]
name = "blackhole-tag"
match.safi = "flowspec"
match.community = ["65010:666"]
set.community-add = ["65000:1"]
action = "accept"

[[policy.FS.term]]
name = "customer-space"
match.safi = "flowspec"
match.prefix = ["10.100.0.0/16 le 32"]
action = "accept"
"#;
    let mut out = FlowOut::new();
    let r = rx(
        &out.join(spec(2, 65020, Some(chain(text, &["FS"]))), &t.cands()),
        2,
    );
    let got: Vec<&str> = r.announced.iter().map(|(x, ..)| x.as_str()).collect();
    // The rule without destination prefix matches no prefix condition; the unicast-only term matches
    // no rule.
    assert_eq!(got, vec!["dst 10.100.1.0/24 proto =17", "dst 192.0.2.0/24"]);
    let sent: Vec<_> = out.sent(2).collect();
    let tagged = sent
        .iter()
        .find(|(r, _)| r.to_string() == "dst 192.0.2.0/24")
        .unwrap();
    assert!(tagged.1.communities().contains(&((65000 << 16) | 1)));

    // A reload with another policy: the member gets the difference only.
    let text2 = r#"
[[policy.FS2.term]]
name = "only-no-dst"
match.safi = "flowspec"
match.prefix = ["0.0.0.0/0 le 32"]
action = "reject"

[[policy.FS2.term]]
name = "rest"
action = "accept"
"#;
    let r = rx(
        &out.respec(spec(2, 65020, Some(chain(text2, &["FS2"]))), &t.cands()),
        2,
    );
    assert_eq!(
        r.withdrawn,
        vec!["dst 10.100.1.0/24 proto =17", "dst 192.0.2.0/24"]
    );
    let got: Vec<&str> = r.announced.iter().map(|(x, ..)| x.as_str()).collect();
    assert_eq!(got, vec!["proto =47"]);
    assert!(r.eor.is_empty());
}

mod model {
    //! Property: whatever the sequence of table changes, a member that applies every UPDATE it was
    //! sent (announce = replace, withdraw = remove) holds exactly what export says it should have
    //! now, and `advertised` counts it — with full (`sync`) and incremental (`sync_changed`) updates.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const RULES: [&str; 6] = [
        "dst 10.0.1.0/24",
        "dst 10.0.2.0/24 proto =17",
        "dst 10.0.0.0/16 dport >=80&<=90",
        "proto =47",
        "dst fd00::/64",
        "dst fd00:1::/64 next-header =6",
    ];

    fn action(i: u8) -> FlowAction {
        match i % 3 {
            0 => DISCARD,
            1 => FlowAction::TrafficMarking { dscp: i },
            _ => FlowAction::TrafficRateBytes {
                asn: 0,
                bytes_per_second: f32::from(i) * 1000.0,
            },
        }
    }

    /// One table state: per rule, absent or (source 1 or 2, action).
    fn table() -> impl Strategy<Value = Vec<Option<(u8, u8)>>> {
        proptest::collection::vec(proptest::option::of((1u8..=2, 0u8..6)), RULES.len())
    }

    fn apply(sends: &[Send], m: MemberId, have: &mut BTreeMap<String, Vec<FlowAction>>) {
        let ctx = WireCtx {
            four_octet_as: true,
            ..WireCtx::default()
        };
        for s in sends.iter().filter(|s| s.to.contains(&m)) {
            let mut buf = &s.bytes[..];
            while let Some(len) = bgp::wire::frame(buf, 65535).unwrap() {
                let Message::Update(u) = Message::decode(&buf[..len], &ctx).unwrap() else {
                    panic!("not an UPDATE")
                };
                for (_, f) in u.withdrawn_flowspec() {
                    assert!(
                        have.remove(&f.to_string()).is_some(),
                        "withdrawn unsent {f}"
                    );
                }
                for (_, f) in u.announced_flowspec() {
                    have.insert(f.to_string(), u.attrs.flow_actions());
                }
                buf = &buf[len..];
            }
        }
    }

    proptest! {
        #[test]
        fn member_view_follows_the_table(
            states in proptest::collection::vec(table(), 1..8),
            join_at in 0usize..8,
            incremental in any::<bool>(),
        ) {
            let peers = [peer(1, 65010, PeerKind::Ebgp), peer(2, 65020, PeerKind::Ebgp)];
            let all = Some(chain(ALL, &["ALL"]));
            let mut out = FlowOut::new();
            // Member 1 is also source 1: it must never get its own rules.
            let mut have: BTreeMap<String, Vec<FlowAction>> = BTreeMap::new();
            let mut joined = false;
            for (step, st) in states.iter().enumerate() {
                let rows: Vec<(FlowSpec, Attrs, PeerInfo, bool)> = st
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| x.map(|(src, a)| (i, src, a)))
                    .map(|(i, src, a)| {
                        (
                            rule(RULES[i]),
                            attrs(&[65000 + 10 * u32::from(src)], &[action(a)]),
                            peers[usize::from(src) - 1].clone(),
                            false,
                        )
                    })
                    .collect();
                let t = Table { rows };
                // The changed rules, as the daemon computes them from two evaluations.
                let changed: std::collections::BTreeSet<FlowSpec> = RULES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| step == 0 || states[step - 1][*i] != st[*i])
                    .map(|(_, r)| rule(r))
                    .collect();
                let sends = if !joined && step >= join_at.min(states.len() - 1) {
                    joined = true;
                    out.join(spec(1, 65010, all.clone()), &t.cands())
                } else if incremental {
                    out.sync_changed(&t.cands(), &changed)
                } else {
                    out.sync(&t.cands())
                };
                apply(&sends, 1, &mut have);
                if joined {
                    let want: BTreeMap<String, Vec<FlowAction>> = st
                        .iter()
                        .enumerate()
                        .filter_map(|(i, x)| x.map(|(src, a)| (i, src, a)))
                        .filter(|(_, src, _)| *src != 1)
                        .map(|(i, _, a)| (rule(RULES[i]).to_string(), vec![action(a)]))
                        .collect();
                    prop_assert_eq!(&have, &want);
                    let v6 = want.keys().filter(|k| k.contains(':')).count() as u64;
                    prop_assert_eq!(out.advertised(1), [want.len() as u64 - v6, v6]);
                } else {
                    prop_assert!(sends.is_empty());
                }
            }
        }
    }
}
