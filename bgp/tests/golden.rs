//! Golden tests on messages captured from real BIRD 2, FRR and GoBGP sessions (see fixtures/README.md):
//! every captured message decodes under the context its session negotiated and re-encodes to the same octets.

use bgp::wire::{Context, Message, Open};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages")
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

/// Every captured message with the context its receiver decodes it under (and its sender encoded it under).
pub fn fixtures() -> Vec<(String, String, Context, Vec<u8>)> {
    // connection → (A, B, A's OPEN, B's OPEN)
    let conns: HashMap<String, Vec<String>> = tsv("connections.tsv")
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    let mut out = Vec::new();
    for row in tsv("index.tsv") {
        let (file, conn, sender, ty) = (&row[0], &row[1], &row[2], &row[4]);
        let bytes = read(file);
        let ctx = if ty == "open" {
            Context::default()
        } else {
            let c = &conns[conn];
            let (s_open, r_open) = if &c[1] == sender {
                (&c[3], &c[4])
            } else {
                (&c[4], &c[3])
            };
            // Receiver's point of view; the codec uses the same switches to encode as the sender did.
            let rx = Context::negotiate(&open(r_open), &open(s_open));
            Context {
                add_path_tx: rx.add_path_rx,
                ..rx
            }
        };
        out.push((file.clone(), ty.clone(), ctx, bytes));
    }
    out
}

#[test]
fn captured_messages_decode_and_reencode_identically_rfc4271_4() {
    let all = fixtures();
    assert!(
        all.len() >= 25,
        "need at least 25 captured messages, have {}",
        all.len()
    );
    let mut by_type: HashMap<String, usize> = HashMap::new();
    for (file, ty, ctx, bytes) in &all {
        let m = Message::decode(bytes, ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        if std::env::var_os("GOLDEN_DUMP").is_some() {
            eprintln!("{file}: {ctx:?}\n  {m:?}");
        }
        if let Message::Update(u) = &m {
            assert_eq!(u.treat_as_withdraw, None, "{file}");
            assert!(u.discarded.is_empty(), "{file}");
        }
        let again = m.to_bytes(ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&again[..], &bytes[..], "{file}: re-encoding differs");
        *by_type.entry(ty.clone()).or_default() += 1;
    }
    for ty in [
        "open",
        "update",
        "notification",
        "keepalive",
        "route-refresh",
    ] {
        assert!(
            by_type.get(ty).copied().unwrap_or(0) > 0,
            "no captured {ty}"
        );
    }
}

// ---- decoded values against what the daemons were configured to send (capture.sh) ------------------------

use bgp::wire::attr::Origin;
use bgp::wire::attr::community::{Community, ExtCommunityKind, ExtGlobal, LargeCommunity};
use bgp::wire::attr::mp::NextHop;
use bgp::wire::capability::Capability;
use bgp::wire::notification::cease;
use bgp::wire::route_refresh::subtype;
use bgp::wire::{AfiSafi, Update};

/// Decoded messages with their file name and connection.
fn decoded() -> Vec<(String, String, Message)> {
    let conns: HashMap<String, String> = tsv("index.tsv")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    fixtures()
        .into_iter()
        .map(|(file, _, ctx, bytes)| {
            let m = Message::decode(&bytes, &ctx).unwrap();
            (conns[&file].clone(), file, m)
        })
        .collect()
}

fn updates_from<'a>(
    all: &'a [(String, String, Message)],
    sender: &str,
    conn: &str,
) -> Vec<&'a Update> {
    all.iter()
        .filter(|(c, f, _)| c.starts_with(conn) && f.contains(&format!("-{sender}-")))
        .filter_map(|(_, _, m)| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn announcing<'a>(ups: &[&'a Update], prefix: &str) -> &'a Update {
    let p: ipnet::IpNet = prefix.parse().unwrap();
    ups.iter()
        .copied()
        .find(|u| u.announced().any(|(_, n)| n.prefix == p))
        .unwrap_or_else(|| panic!("no UPDATE announces {prefix}"))
}

fn opens_from(all: &[(String, String, Message)], sender: &str) -> Vec<Open> {
    all.iter()
        .filter(|(_, f, _)| f.contains(&format!("-{sender}-")))
        .filter_map(|(_, _, m)| match m {
            Message::Open(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn bird_ipv4_add_path_update_with_communities_rfc1997_rfc7911() {
    let all = decoded();
    let ups = updates_from(&all, "bird", "bird-frr-v4");
    let u = announcing(&ups, "10.1.1.0/24");
    assert_eq!(u.attrs.origin, Some(Origin::Igp));
    assert_eq!(
        u.attrs.as_path.as_ref().unwrap().segments[0].asns,
        vec![4_200_000_001]
    );
    assert_eq!(u.attrs.next_hop, Some("10.0.12.1".parse().unwrap()));
    assert_eq!(
        u.attrs.communities,
        vec![Community::new(65001, 100), Community::NO_EXPORT]
    );
    assert!(
        u.nlri.iter().all(|n| n.path_id.is_some()),
        "ADD-PATH ids on BIRD→FRR"
    );
    let u = announcing(&ups, "10.1.2.0/24");
    assert_eq!(u.attrs.med, Some(50));
    assert_eq!(
        u.attrs.large_communities,
        vec![
            LargeCommunity {
                global: 4_200_000_001,
                local1: 1,
                local2: 2
            },
            LargeCommunity {
                global: 4_200_000_001,
                local1: 3,
                local2: 4
            }
        ]
    );
    let u = announcing(&ups, "198.51.100.0/25");
    assert_eq!(
        u.attrs.ext_communities[0].kind(),
        ExtCommunityKind::RouteTarget(ExtGlobal::As2(65001), 7)
    );
}

#[test]
fn gobgp_to_two_octet_bird_as4_path_reconstructed_rfc6793_4_2_3() {
    let all = decoded();
    let ups = updates_from(&all, "gobgp", "bird-gobgp-v4");
    let u = announcing(&ups, "10.3.0.0/16");
    assert_eq!(
        u.attrs.as_path.as_ref().unwrap().segments[0].asns,
        vec![4_200_000_003]
    );
    assert_eq!(
        u.attrs.communities,
        vec![Community::new(65003, 1), Community::NO_ADVERTISE]
    );
    assert_eq!(
        u.attrs.large_communities,
        vec![LargeCommunity {
            global: 4_200_000_003,
            local1: 1,
            local2: 1
        }]
    );
    let u = announcing(&ups, "198.51.100.0/25");
    assert_eq!(
        u.attrs.as_path.as_ref().unwrap().segments[0].asns,
        vec![4_200_000_003, 65002, 4_200_000_001]
    );
    // On the wire the path was AS_TRANS-substituted: decoding the same octets as 4-octet would be wrong.
    let file = all
        .iter()
        .find(|(c, f, m)| {
            c.starts_with("bird-gobgp-v4")
                && f.contains("-gobgp-")
                && matches!(m, Message::Update(x) if std::ptr::eq(x, u))
        })
        .unwrap();
    let raw = read(&file.1);
    assert!(raw.windows(2).any(|w| w == [0xc0, 17]), "AS4_PATH present");
}

#[test]
fn frr_ipv6_mp_reach_with_link_local_next_hop_rfc2545_3_rfc4760_3() {
    let all = decoded();
    let ups = updates_from(&all, "frr", "bird-frr-v6");
    let u = announcing(&ups, "2001:db8:2::/48");
    let mp = u.mp_reach.as_ref().unwrap();
    assert_eq!(mp.afi_safi, AfiSafi::IPV6_UNICAST);
    match &mp.next_hop {
        NextHop::Ipv6 {
            global,
            link_local: Some(ll),
        } => {
            assert_eq!(*global, "fd00:12::2".parse::<std::net::Ipv6Addr>().unwrap());
            assert_eq!(ll.segments()[0], 0xfe80);
        }
        other => panic!("expected global + link-local next-hop, got {other:?}"),
    }
    assert_eq!(
        u.attrs.communities,
        vec![Community::new(65002, 1), Community::GRACEFUL_SHUTDOWN]
    );
    assert_eq!(
        u.attrs.large_communities,
        vec![LargeCommunity {
            global: 65002,
            local1: 2,
            local2: 3
        }]
    );
    assert_eq!(
        u.attrs.ext_communities[0].kind(),
        ExtCommunityKind::RouteTarget(ExtGlobal::As2(65002), 7)
    );
}

#[test]
fn end_of_rib_and_withdrawals_from_every_daemon_rfc4724_2() {
    let all = decoded();
    // GoBGP sends End-of-RIB only with graceful restart configured, which capture.sh does not do.
    for (sender, conn) in [("bird", "bird-frr-v4"), ("frr", "bird-frr-v4")] {
        let ups = updates_from(&all, sender, conn);
        assert!(
            ups.iter()
                .any(|u| u.end_of_rib_family() == Some(AfiSafi::IPV4_UNICAST)),
            "{sender} IPv4 EoR"
        );
    }
    for (sender, conn) in [("bird", "bird-frr-v6"), ("frr", "bird-frr-v6")] {
        let ups = updates_from(&all, sender, conn);
        assert!(
            ups.iter()
                .any(|u| u.end_of_rib_family() == Some(AfiSafi::IPV6_UNICAST)),
            "{sender} IPv6 EoR"
        );
    }
    // IPv4 withdrawal (BIRD disabled s4w → 10.1.9.0/24) and MP_UNREACH (GoBGP deleted 2001:db8:3:1::/64).
    let w4: ipnet::IpNet = "10.1.9.0/24".parse().unwrap();
    assert!(
        updates_from(&all, "bird", "bird-gobgp-v4")
            .iter()
            .any(|u| u.withdrawn.iter().any(|n| n.prefix == w4))
    );
    let w6: ipnet::IpNet = "2001:db8:3:1::/64".parse().unwrap();
    assert!(updates_from(&all, "gobgp", "frr-gobgp-v6").iter().any(|u| {
        u.mp_unreach
            .as_ref()
            .is_some_and(|m| m.withdrawn.iter().any(|n| n.prefix == w6))
    }));
}

#[test]
fn shutdown_notifications_carry_their_message_rfc8203_2() {
    let all = decoded();
    let mut seen = Vec::new();
    for (_, _, m) in &all {
        if let Message::Notification(n) = m {
            assert_eq!((n.code, n.subcode), (6, cease::ADMINISTRATIVE_SHUTDOWN));
            seen.push(n.shutdown_communication().unwrap().unwrap().to_string());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec!["BIRD going down", "FRR maintenance", "GoBGP bye"]
    );
}

#[test]
fn route_refresh_and_enhanced_route_refresh_rfc2918_rfc7313() {
    let all = decoded();
    let rr: Vec<(&str, u8)> = all
        .iter()
        .filter_map(|(_, f, m)| match m {
            Message::RouteRefresh(r) => {
                Some((if f.contains("-bird-") { "bird" } else { "frr" }, r.subtype))
            }
            _ => None,
        })
        .collect();
    for who in ["bird", "frr"] {
        for st in [subtype::NORMAL, subtype::BORR, subtype::EORR] {
            assert!(rr.contains(&(who, st)), "{who} subtype {st}: {rr:?}");
        }
    }
}

#[test]
fn open_capability_sets_of_each_daemon_rfc5492() {
    let all = decoded();
    let bird = opens_from(&all, "bird");
    // BIRD with `enable as4 off`: my AS 65001, no 4-octet AS capability; otherwise AS_TRANS + capability.
    assert!(
        bird.iter()
            .any(|o| o.my_as == 65001 && o.four_octet_as().is_none())
    );
    assert!(
        bird.iter()
            .any(|o| o.my_as == 23456 && o.asn() == 4_200_000_001)
    );
    assert!(bird.iter().all(|o| {
        o.capabilities()
            .any(|c| matches!(c, Capability::GracefulRestart(g) if g.restart_time == 120))
    }));
    assert!(bird.iter().all(|o| {
        o.capabilities()
            .any(|c| matches!(c, Capability::LongLivedGracefulRestart(_)))
    }));
    assert!(
        bird.iter().all(|o| o.capability_params.len() == 1),
        "BIRD: one parameter for all capabilities"
    );
    let frr = opens_from(&all, "frr");
    for o in &frr {
        assert_eq!((o.my_as, o.hold_time), (65002, 180));
        assert!(
            o.capability_params.iter().all(|p| p.len() == 1),
            "FRR: one parameter per capability"
        );
        assert!(
            o.capabilities()
                .any(|c| matches!(c, Capability::Fqdn { hostname, .. } if hostname == b"frr"))
        );
        assert!(
            o.capabilities()
                .any(|c| matches!(c, Capability::ExtendedMessage))
        );
        assert!(
            o.capabilities()
                .any(|c| matches!(c, Capability::Unknown { code: 128, .. }))
        );
    }
    let gobgp = opens_from(&all, "gobgp");
    assert!(
        gobgp
            .iter()
            .all(|o| o.my_as == 23456 && o.asn() == 4_200_000_003 && o.hold_time == 90)
    );
    assert!(gobgp.iter().any(|o| {
        o.capabilities()
            .any(|c| matches!(c, Capability::ExtendedNextHop(_)))
    }));
}

#[test]
fn frr_link_bandwidth_extended_community_draft_ietf_idr_link_bandwidth() {
    let all = decoded();
    let ups = updates_from(&all, "frr", "bird-frr-v4");
    let u = announcing(&ups, "10.2.2.0/23");
    assert_eq!(u.attrs.origin, Some(Origin::Incomplete));
    // `set extcommunity bandwidth 100`: 100 Mbit/s = 12.5e6 octets per second, FRR's own AS.
    assert!(
        u.attrs.ext_communities.iter().any(|c| c.kind()
            == ExtCommunityKind::LinkBandwidth {
                asn: 65002,
                bytes_per_second: 12.5e6
            }),
        "{:?}",
        u.attrs.ext_communities
    );
}

#[test]
fn exabgp_ibgp_attributes_rfc4271_5_rfc4456_8() {
    use bgp::wire::attr::Aggregator;
    let all = decoded();
    let ups = updates_from(&all, "exabgp", "bird-exabgp-v4");
    let u = announcing(&ups, "10.4.0.0/16");
    let a = &u.attrs;
    assert_eq!(
        a.as_path.as_ref().unwrap().segments[0].asns,
        vec![65010, 65020]
    );
    assert_eq!(
        (a.local_pref, a.med, a.atomic_aggregate),
        (Some(200), Some(5), true)
    );
    assert_eq!(
        a.aggregator,
        Some(Aggregator {
            asn: 65004,
            address: "10.0.0.4".parse().unwrap()
        })
    );
    assert_eq!(a.originator_id, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(
        a.cluster_list,
        vec![
            "10.0.0.8".parse::<std::net::Ipv4Addr>().unwrap(),
            "10.0.0.7".parse().unwrap()
        ]
    );
    assert_eq!(
        a.communities,
        vec![Community::new(65004, 1), Community::new(65004, 2)]
    );
    assert_eq!(
        a.large_communities,
        vec![LargeCommunity {
            global: 4_200_000_001,
            local1: 4,
            local2: 4
        }]
    );
    assert_eq!(
        a.ext_communities[0].kind(),
        ExtCommunityKind::RouteTarget(ExtGlobal::As2(65004), 4)
    );
    let p: ipnet::IpNet = "10.4.1.0/24".parse().unwrap();
    let u = announcing(&ups, "10.4.1.0/24");
    assert_eq!(
        u.nlri.iter().find(|n| n.prefix == p).unwrap().path_id,
        Some(7),
        "ExaBGP path-information 7"
    );
}

#[test]
fn as4_path_ignored_after_two_octet_aggregator_is_kept_verbatim_rfc6793_4_2_3() {
    // GoBGP passes ExaBGP's aggregated route (AGGREGATOR AS 65004) to BIRD's 2-octet session: the receiver must
    // ignore AS4_PATH, and re-encoding for a 2-octet peer gives back the AS4_PATH as received.
    let all = decoded();
    let ups = updates_from(&all, "gobgp", "bird-gobgp-v4");
    let u = announcing(&ups, "10.4.0.0/16");
    assert_eq!(u.attrs.aggregator.map(|a| a.asn), Some(65004));
    assert!(
        u.attrs.as_path.as_ref().unwrap().segments[0]
            .asns
            .contains(&23456)
    );
    assert!(u.attrs.unknown.iter().any(|r| r.type_code == 17));
    assert!(u.discarded.is_empty() && u.treat_as_withdraw.is_none());
}
