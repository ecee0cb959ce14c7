//! Update groups, MRAI and ADD-PATH send, observed on the wire: every test decodes the bytes the group
//! produced and counts UPDATEs and NLRI. Time is virtual (an `Instant` plus offsets, never slept).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::wire::{AfiSafi, AfiSafiSet, Message};

use super::*;
use crate::policy::{Policy, PolicyDefs, PolicySet};
use crate::rib::attrs::{AsPath, Attrs};
use crate::rib::decision::{PeerInfo, PeerKind};
use crate::rib::{Rib, RibConfig};

fn peer_info(n: u8, asn: u32) -> PeerInfo {
    PeerInfo {
        name: format!("p{n}"),
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
        router_id: Ipv4Addr::new(10, 0, 0, n),
        remote_as: asn,
        local_as: 65000,
        kind: PeerKind::Ebgp,
        confed: false,
    }
}

fn chain(text: &str, names: &[&str]) -> Vec<Arc<Policy>> {
    let defs: PolicyDefs = toml::from_str(text).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    PolicySet::compile(&defs).unwrap().chain(&names).unwrap()
}

const ALL: &str = "[[policy.ALL.term]]\nname = \"all\"\naction = \"accept\"\n";

struct World {
    rib: Rib,
    adj: AdjOut,
    policy: Vec<Arc<Policy>>,
    t0: Instant,
}

impl World {
    fn new() -> World {
        let mut rib = Rib::new(RibConfig::default());
        rib.set_track_best(true);
        World {
            rib,
            adj: AdjOut::new(),
            policy: chain(ALL, &["ALL"]),
            t0: Instant::now(),
        }
    }

    /// An eBGP session on the same LAN (192.0.2.0/24), member id = `n`, RIB peer registered.
    fn spec(&mut self, n: u8, asn: u32) -> MemberSpec {
        let rib_peer = self
            .rib
            .add_peer(peer_info(n, asn))
            .expect("a free peer slot");
        MemberSpec {
            id: n as MemberId,
            rib_peer,
            ctx: ExportCtx {
                peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
                peer_as: asn,
                local_as: 65000,
                router_id: Ipv4Addr::new(10, 0, 0, 254),
                ebgp: true,
                rr_client: false,
                next_hop_self: false,
                local_v4: Some(Ipv4Addr::new(192, 0, 2, 254)),
                local_v6: None,
                policy: Some(self.policy.clone()),
            },
            families: [true, false],
            add_path: [None, None],
            mrai: Duration::ZERO,
            llgr: false,
            wire: WireCtx {
                four_octet_as: true,
                ..WireCtx::default()
            },
        }
    }

    fn join(&mut self, s: MemberSpec) -> Vec<Send> {
        let env = Env {
            rib: &self.rib,
            rr_clients: &[],
        };
        let out = self.adj.join(s, &env);
        self.adj.track(&mut self.rib);
        out
    }

    fn announce(&mut self, from: PeerId, prefix: &str, path_id: u32, path: &[u32], med: u32) {
        let a = self.rib.intern(
            Attrs::default()
                .with_as_path(AsPath::sequence(path.to_vec()))
                .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + from as u8))))
                .with_med(Some(med)),
        );
        self.rib.announce(from, prefix.parse().unwrap(), path_id, a);
    }

    fn changes(&mut self, secs: u64) -> Vec<Send> {
        let mut ch = self.rib.take_best_changes();
        ch.sort_unstable();
        ch.dedup();
        let env = Env {
            rib: &self.rib,
            rr_clients: &[],
        };
        self.adj
            .changes(self.t0 + Duration::from_secs(secs), &env, &ch)
    }

    fn tick(&mut self, secs: u64) -> Vec<Send> {
        let env = Env {
            rib: &self.rib,
            rr_clients: &[],
        };
        self.adj.tick(self.t0 + Duration::from_secs(secs), &env)
    }
}

/// What one member received: (UPDATE messages, announced (prefix, path id, AS path), withdrawn
/// (prefix, path id), End-of-RIB count).
#[derive(Debug, Default)]
struct Rx {
    updates: usize,
    announced: Vec<(String, Option<u32>, String)>,
    withdrawn: Vec<(String, Option<u32>)>,
    eor: usize,
}

fn rx(sends: &[Send], m: MemberId, ctx: &WireCtx) -> Rx {
    // What the member decodes with: our tx ADD-PATH families are its rx families.
    let dctx = WireCtx {
        add_path_rx: ctx.add_path_tx,
        ..*ctx
    };
    let mut r = Rx::default();
    for s in sends.iter().filter(|s| s.to.contains(&m)) {
        let mut buf = &s.bytes[..];
        let mut n = 0;
        while let Some(len) = bgp::wire::frame(buf, 65535).unwrap() {
            let Message::Update(u) = Message::decode(&buf[..len], &dctx).unwrap() else {
                panic!("not an UPDATE")
            };
            n += 1;
            r.updates += 1;
            if u.end_of_rib_family().is_some() {
                r.eor += 1;
            }
            for (_, nl) in u.withdrawn_routes() {
                r.withdrawn.push((nl.prefix.to_string(), nl.path_id));
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
            for (_, nl) in u.announced() {
                r.announced
                    .push((nl.prefix.to_string(), nl.path_id, path.clone()));
            }
            buf = &buf[len..];
        }
        assert_eq!(n, s.messages, "Send::messages counts the encoded messages");
    }
    r
}

#[test]
fn members_with_the_same_export_context_share_one_group_and_one_encoding() {
    let mut w = World::new();
    let src = w.spec(1, 64501);
    let (m2, m3) = (w.spec(2, 64502), w.spec(3, 64503));
    let ctx = m2.wire;
    assert!(w.join(m2).iter().all(|s| s.to == vec![2]));
    w.join(m3);
    assert_eq!(
        w.adj.group_of(2),
        vec![2, 3],
        "same policy, LAN, families: one group"
    );
    assert_eq!(w.adj.stats().len(), 1);
    for i in 0..3 {
        w.announce(
            src.rib_peer,
            &format!("198.51.{i}.0/24"),
            0,
            &[64501, 15169],
            0,
        );
    }
    let before = w.adj.stats()[0].clone();
    let sends = w.changes(0);
    assert_eq!(sends.len(), 1, "encoded once");
    assert_eq!(sends[0].to, vec![2, 3], "queued to both members");
    for m in [2, 3] {
        let r = rx(&sends, m, &ctx);
        assert_eq!(
            r.updates, 1,
            "three prefixes with one attribute set: one UPDATE"
        );
        assert_eq!(r.announced.len(), 3);
        assert_eq!(r.announced[0].2, "65000 64501 15169");
    }
    let st = &w.adj.stats()[0];
    assert_eq!(st.messages_encoded - before.messages_encoded, 1);
    assert_eq!(st.messages_sent - before.messages_sent, 2);
    assert!(st.bytes > 0);
    assert_eq!(w.adj.advertised(2), [3, 0]);
}

#[test]
fn a_member_never_receives_its_own_routes_rfc4271_9_1_3() {
    let mut w = World::new();
    let (m2, m3) = (w.spec(2, 64502), w.spec(3, 64503));
    let src = w.spec(1, 64501);
    let ctx = m2.wire;
    let (p2, p3) = (m2.rib_peer, m3.rib_peer);
    w.join(m2);
    w.join(m3);
    // Learned from member 2: only member 3 hears of it.
    w.announce(p2, "198.51.100.0/24", 0, &[64502, 15169], 0);
    let sends = w.changes(0);
    assert_eq!(rx(&sends, 2, &ctx).announced.len(), 0);
    assert_eq!(rx(&sends, 3, &ctx).announced.len(), 1);
    assert_eq!(w.adj.advertised(2), [0, 0]);
    assert_eq!(w.adj.advertised(3), [1, 0]);
    // A better path from a non-member: member 2 now gets it, member 3 gets the replacement.
    w.announce(src.rib_peer, "198.51.100.0/24", 0, &[64501, 1], 0);
    let sends = w.changes(1);
    assert_eq!(rx(&sends, 2, &ctx).announced[0].2, "65000 64501 1");
    assert_eq!(rx(&sends, 3, &ctx).announced[0].2, "65000 64501 1");
    // Best moves to member 3's own (shorter) path: member 3 must lose what it had, member 2 gets it.
    w.announce(p3, "198.51.100.0/24", 0, &[64503], 0);
    let sends = w.changes(2);
    let r3 = rx(&sends, 3, &ctx);
    assert_eq!(r3.withdrawn, vec![("198.51.100.0/24".into(), None)]);
    assert!(r3.announced.is_empty());
    assert_eq!(rx(&sends, 2, &ctx).announced[0].2, "65000 64503");
    assert_eq!(w.adj.advertised(3), [0, 0]);
    assert_eq!(w.adj.advertised(2), [1, 0]);
    // Withdrawn everywhere: only member 2 had it.
    for p in [p2, p3, src.rib_peer] {
        w.rib.withdraw(p, "198.51.100.0/24".parse().unwrap(), 0);
    }
    let sends = w.changes(3);
    assert_eq!(rx(&sends, 2, &ctx).withdrawn.len(), 1);
    assert_eq!(rx(&sends, 3, &ctx).withdrawn.len(), 0);
    assert_eq!(w.adj.advertised(2), [0, 0]);
}

#[test]
fn different_export_policies_make_different_groups_and_a_joining_member_gets_a_dump_and_end_of_rib()
{
    let mut w = World::new();
    let src = w.spec(1, 64501);
    let m2 = w.spec(2, 64502);
    let mut m3 = w.spec(3, 64503);
    let ctx = m2.wire;
    m3.ctx.policy = Some(chain(
        "[[policy.SHORT.term]]\nname = \"s\"\nmatch.as-path-length-max = 2\naction = \"accept\"\n",
        &["SHORT"],
    ));
    w.announce(src.rib_peer, "198.51.100.0/24", 0, &[64501], 0);
    w.announce(src.rib_peer, "198.51.101.0/24", 0, &[64501, 15169], 0);
    w.changes(0);
    let d2 = w.join(m2);
    let r = rx(&d2, 2, &ctx);
    assert_eq!(
        (r.announced.len(), r.eor),
        (2, 1),
        "dump of the new group, then End-of-RIB"
    );
    let d3 = w.join(m3);
    assert!(
        d3.iter().all(|s| s.to == vec![3]),
        "a dump goes to the joining member only"
    );
    assert_eq!(rx(&d3, 3, &ctx).announced.len(), 1);
    assert_eq!(w.adj.stats().len(), 2);
    // A policy that looks at the peer keeps peers apart even with everything else equal.
    let mut w = World::new();
    w.policy = chain(
        "[[policy.P.term]]\nname = \"p\"\nmatch.peer-as = [64502]\naction = \"accept\"\n",
        &["P"],
    );
    let (a, b) = (w.spec(2, 64502), w.spec(3, 64503));
    w.join(a);
    w.join(b);
    assert_eq!(w.adj.stats().len(), 2);
}

#[test]
fn mrai_holds_announcements_and_sends_only_the_last_state_rfc4271_9_2_1_1() {
    let mut w = World::new();
    let src = w.spec(1, 64501);
    let mut m = w.spec(2, 64502);
    m.mrai = Duration::from_secs(30);
    let ctx = m.wire;
    w.join(m);
    w.announce(src.rib_peer, "198.51.100.0/24", 0, &[64501], 1);
    w.announce(src.rib_peer, "198.51.101.0/24", 0, &[64501, 64999], 1);
    let r = rx(&w.changes(0), 2, &ctx);
    assert_eq!(
        (r.updates, r.announced.len()),
        (2, 2),
        "first announcement goes at once"
    );
    // Three changes of one prefix inside the interval: nothing sent yet.
    for (t, path) in [
        (1, vec![64501, 1]),
        (5, vec![64501, 2]),
        (9, vec![64501, 3]),
    ] {
        w.announce(src.rib_peer, "198.51.100.0/24", 0, &path, 1);
        assert_eq!(rx(&w.changes(t), 2, &ctx).updates, 0);
    }
    // A withdrawal is not held.
    w.rib
        .withdraw(src.rib_peer, "198.51.101.0/24".parse().unwrap(), 0);
    let r = rx(&w.changes(10), 2, &ctx);
    assert_eq!(r.withdrawn, vec![("198.51.101.0/24".into(), None)]);
    assert_eq!(r.updates, 1);
    assert_eq!(w.adj.next_deadline(), Some(w.t0 + Duration::from_secs(30)));
    assert_eq!(rx(&w.tick(29), 2, &ctx).updates, 0, "interval not over");
    let r = rx(&w.tick(30), 2, &ctx);
    assert_eq!(r.updates, 1, "coalesced: one UPDATE");
    assert_eq!(
        r.announced,
        vec![("198.51.100.0/24".into(), None, "65000 64501 3".into())],
        "only the last state"
    );
    assert_eq!(rx(&w.tick(31), 2, &ctx).updates, 0, "nothing left");
    // A prefix announced then withdrawn inside the interval is only withdrawn (never announced).
    w.announce(src.rib_peer, "198.51.102.0/24", 0, &[64501], 1);
    assert_eq!(
        rx(&w.changes(40), 2, &ctx).updates,
        0,
        "held: last send at 30 s"
    );
    w.rib
        .withdraw(src.rib_peer, "198.51.102.0/24".parse().unwrap(), 0);
    assert_eq!(rx(&w.changes(41), 2, &ctx).updates, 0, "it was never sent");
    assert_eq!(rx(&w.tick(60), 2, &ctx).updates, 0);
    assert_eq!(w.adj.stats()[0].held, 0);
}

#[test]
fn mrai_zero_sends_every_change_at_once() {
    let mut w = World::new();
    let src = w.spec(1, 64501);
    let m = w.spec(2, 64502);
    let ctx = m.wire;
    w.join(m);
    for i in 0..3u32 {
        w.announce(src.rib_peer, "198.51.100.0/24", 0, &[64501, i], 1);
        assert_eq!(rx(&w.changes(0), 2, &ctx).updates, 1);
    }
}

fn add_path_world(mode: AddPathSend) -> (World, MemberSpec, [PeerId; 3]) {
    let mut w = World::new();
    let s1 = w.spec(1, 64501).rib_peer;
    let s2 = w.spec(3, 64503).rib_peer;
    let s3 = w.spec(4, 64504).rib_peer;
    let mut m = w.spec(2, 64502);
    m.add_path = [Some(mode), None];
    m.wire.add_path_tx = AfiSafiSet::EMPTY.with(AfiSafi::IPV4_UNICAST);
    (w, m, [s1, s2, s3])
}

#[test]
fn add_path_all_sends_every_path_with_stable_ids_and_withdraws_by_id_rfc7911() {
    let (mut w, m, [s1, s2, s3]) = add_path_world(AddPathSend::All);
    let ctx = m.wire;
    w.join(m);
    w.announce(s1, "198.51.100.0/24", 0, &[64501, 15169], 0);
    w.announce(s2, "198.51.100.0/24", 0, &[64503, 15169], 0);
    w.announce(s3, "198.51.100.0/24", 0, &[64504, 9, 15169], 0);
    let r = rx(&w.changes(0), 2, &ctx);
    assert_eq!(r.announced.len(), 3, "{r:?}");
    let mut ids: Vec<u32> = r.announced.iter().filter_map(|a| a.1).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one identifier per path");
    let id_of = |r: &Rx, path: &str| r.announced.iter().find(|a| a.2 == path).and_then(|a| a.1);
    let id2 = id_of(&r, "65000 64503 15169");
    // s2 withdraws: exactly its identifier is withdrawn, the others are not re-sent.
    w.rib.withdraw(s2, "198.51.100.0/24".parse().unwrap(), 0);
    let r2 = rx(&w.changes(1), 2, &ctx);
    assert_eq!(r2.withdrawn, vec![("198.51.100.0/24".into(), id2)]);
    assert!(r2.announced.is_empty());
    // s2 comes back with a changed path: same identifier as before.
    w.announce(s2, "198.51.100.0/24", 0, &[64503, 7, 15169], 0);
    let r3 = rx(&w.changes(2), 2, &ctx);
    assert_eq!(r3.announced.len(), 1);
    assert_eq!(r3.announced[0].1, id2, "identifiers are stable per path");
    assert_eq!(w.adj.advertised(2), [3, 0]);
    // A new member of the same group gets all three paths in its dump.
    let mut m5 = w.spec(5, 64505);
    m5.add_path = [Some(AddPathSend::All), None];
    m5.wire.add_path_tx = AfiSafiSet::EMPTY.with(AfiSafi::IPV4_UNICAST);
    let d = rx(&w.join(m5), 5, &ctx);
    assert_eq!((d.announced.len(), d.eor), (3, 1));
    assert_eq!(w.adj.group_of(5), vec![2, 5]);
}

#[test]
fn add_path_best_n_and_ecmp_select_the_leading_paths() {
    let (mut w, m, [s1, s2, s3]) = add_path_world(AddPathSend::Best(2));
    let ctx = m.wire;
    w.join(m);
    w.announce(s1, "198.51.100.0/24", 0, &[64501, 15169], 0);
    w.announce(s2, "198.51.100.0/24", 0, &[64503, 1, 15169], 0);
    w.announce(s3, "198.51.100.0/24", 0, &[64504, 1, 2, 15169], 0);
    let r = rx(&w.changes(0), 2, &ctx);
    let paths: Vec<&str> = r.announced.iter().map(|a| a.2.as_str()).collect();
    assert_eq!(paths.len(), 2);
    assert!(paths.contains(&"65000 64501 15169") && paths.contains(&"65000 64503 1 15169"));

    let (mut w, m, [s1, s2, s3]) = add_path_world(AddPathSend::Ecmp);
    w.rib = Rib::new(RibConfig {
        ipv4: crate::rib::decision::DecisionConfig {
            as_path_relax: true,
            ..Default::default()
        },
        ..Default::default()
    });
    w.rib.set_track_best(true);
    for (n, asn) in [(1, 64501), (3, 64503), (4, 64504), (2, 64502)] {
        w.rib.add_peer(peer_info(n, asn)).expect("a free peer slot");
    }
    w.join(m);
    // Two equal-length paths form the multipath set; the longer one is not in it.
    w.announce(s1, "198.51.100.0/24", 0, &[64501, 15169], 0);
    w.announce(s2, "198.51.100.0/24", 0, &[64503, 15169], 0);
    w.announce(s3, "198.51.100.0/24", 0, &[64504, 1, 15169], 0);
    let r = rx(&w.changes(0), 2, &ctx);
    assert_eq!(r.announced.len(), 2, "{r:?}");
    assert!(r.announced.iter().all(|a| !a.2.contains("64504")));
}

#[test]
fn a_member_whose_context_changes_moves_group_and_gets_only_the_difference() {
    let mut w = World::new();
    let src = w.spec(1, 64501);
    let m = w.spec(2, 64502);
    let ctx = m.wire;
    w.join(m.clone());
    w.announce(src.rib_peer, "198.51.100.0/24", 0, &[64501], 0);
    w.announce(src.rib_peer, "198.51.101.0/24", 0, &[64501, 15169], 0);
    w.changes(0);
    let mut m2 = m;
    m2.ctx.policy = Some(chain(
        "[[policy.SHORT.term]]\nname = \"s\"\nmatch.as-path-length-max = 2\naction = \"accept\"\n",
        &["SHORT"],
    ));
    let env = Env {
        rib: &w.rib,
        rr_clients: &[],
    };
    let sends = w.adj.update_member(m2, &env);
    let r = rx(&sends, 2, &ctx);
    assert_eq!(r.withdrawn, vec![("198.51.101.0/24".into(), None)]);
    assert!(r.announced.is_empty(), "unchanged prefix not re-sent");
    assert_eq!(r.eor, 0);
    assert_eq!(
        w.adj.stats().len(),
        1,
        "the old group went with its last member"
    );
}

#[test]
fn best_changes_are_collected_only_while_a_group_exports_rfc8212() {
    let mut w = World::new();
    let src = w.spec(1, 64501);
    // An eBGP member without an export policy exports nothing (RFC 8212).
    let mut m = w.spec(2, 64502);
    m.ctx.policy = None;
    let ctx = m.wire;
    let r = rx(&w.join(m.clone()), 2, &ctx);
    assert!(r.announced.is_empty());
    assert!(!w.adj.wants_changes());
    w.announce(src.rib_peer, "198.51.100.0/24", 0, &[64501], 0);
    assert!(
        w.rib.take_best_changes().is_empty(),
        "no group exports: the RIB collects no best-path changes"
    );
    // A reload gives the member an export policy: its new group is filled from the RIB, which
    // collects changes again from then on.
    m.ctx.policy = Some(w.policy.clone());
    let env = Env {
        rib: &w.rib,
        rr_clients: &[],
    };
    let sends = w.adj.update_member(m.clone(), &env);
    w.adj.track(&mut w.rib);
    let r = rx(&sends, 2, &ctx);
    assert_eq!(
        r.announced,
        vec![("198.51.100.0/24".into(), None, "65000 64501".into())]
    );
    w.announce(src.rib_peer, "198.51.101.0/24", 0, &[64501], 0);
    let r = rx(&w.changes(0), 2, &ctx);
    assert_eq!(
        r.announced,
        vec![("198.51.101.0/24".into(), None, "65000 64501".into())]
    );
    // The exporting member leaves: nothing to collect for again.
    w.adj.leave(2);
    w.adj.track(&mut w.rib);
    w.announce(src.rib_peer, "198.51.102.0/24", 0, &[64501], 0);
    assert!(w.rib.take_best_changes().is_empty());
}

#[test]
fn leaving_frees_the_groups_attribute_sets() {
    let mut w = World::new();
    let src = w.spec(1, 64501);
    let m = w.spec(2, 64502);
    w.join(m);
    for i in 0..50u32 {
        w.announce(src.rib_peer, &format!("198.51.{i}.0/24"), 0, &[64501, i], 0);
    }
    w.changes(0);
    assert_eq!(w.adj.attr_stats().0, 50);
    w.adj.leave(2);
    assert_eq!(w.adj.attr_stats().0, 0);
    assert!(w.adj.stats().is_empty());
}

#[test]
fn add_path_send_modes_parse_from_config_words() {
    assert_eq!(
        AddPathSend::try_from("all".to_string()),
        Ok(AddPathSend::All)
    );
    assert_eq!(
        AddPathSend::try_from("ecmp".to_string()),
        Ok(AddPathSend::Ecmp)
    );
    assert_eq!(
        AddPathSend::try_from("best-3".to_string()),
        Ok(AddPathSend::Best(3))
    );
    assert!(AddPathSend::try_from("best-0".to_string()).is_err());
    assert!(AddPathSend::try_from("some".to_string()).is_err());
    assert_eq!(String::from(AddPathSend::Best(2)), "best-2");
}

/// The prefixes `m` was sent with the LLGR_STALE community, and without it.
fn llgr_marked(sends: &[Send], m: MemberId, ctx: &WireCtx) -> (Vec<String>, Vec<String>) {
    let (mut stale, mut fresh) = (Vec::new(), Vec::new());
    for s in sends.iter().filter(|s| s.to.contains(&m)) {
        let mut buf = &s.bytes[..];
        while let Some(len) = bgp::wire::frame(buf, 65535).unwrap() {
            let Message::Update(u) = Message::decode(&buf[..len], ctx).unwrap() else {
                panic!("not an UPDATE")
            };
            let marked = u
                .attrs
                .communities
                .contains(&bgp::wire::attr::community::Community::LLGR_STALE);
            for (_, nl) in u.announced() {
                let into = if marked { &mut stale } else { &mut fresh };
                into.push(nl.prefix.to_string());
            }
            buf = &buf[len..];
        }
    }
    (stale, fresh)
}

#[test]
fn a_best_path_turning_llgr_stale_is_re_advertised_with_llgr_stale_to_llgr_members_and_withdrawn_from_the_others_rfc9494_4_5()
 {
    let mut w = World::new();
    let src = w.spec(1, 65001);
    let from = src.rib_peer;
    let mut llgr = w.spec(2, 65002);
    llgr.llgr = true;
    let plain = w.spec(3, 65003);
    let (lw, pw) = (llgr.wire, plain.wire);
    w.join(src);
    w.join(llgr);
    w.join(plain);
    w.announce(from, "203.0.113.0/24", 0, &[65001, 64999], 0);
    w.announce(from, "198.51.100.0/24", 0, &[65001, 64998], 0);
    let s = w.changes(0);
    for (m, ctx) in [(2, &lw), (3, &pw)] {
        assert_eq!(
            llgr_marked(&s, m, ctx).1.len(),
            2,
            "member {m} got both, unmarked"
        );
    }

    // The session drops with graceful restart: the paths stay, stale but unchanged on the wire.
    w.rib.peer_down(from, true);
    let s = w.changes(1);
    assert_eq!(rx(&s, 2, &lw).updates + rx(&s, 3, &pw).updates, 0);

    // The restart time passes and LLGR begins: the LLGR member hears both routes again, now
    // carrying LLGR_STALE; the member without LLGR has them withdrawn (RFC 9494 §4.5).
    w.rib.peer_llgr_stale(from);
    let s = w.changes(2);
    let (mut stale, fresh) = llgr_marked(&s, 2, &lw);
    stale.sort();
    assert_eq!(stale, ["198.51.100.0/24", "203.0.113.0/24"]);
    assert!(fresh.is_empty());
    let r = rx(&s, 3, &pw);
    assert!(r.announced.is_empty(), "{r:?}");
    let mut gone: Vec<String> = r.withdrawn.into_iter().map(|(p, _)| p).collect();
    gone.sort();
    assert_eq!(gone, ["198.51.100.0/24", "203.0.113.0/24"]);
}
