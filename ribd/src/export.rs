//! From the Loc-RIB to a peer: who may receive a best path (RFC 4271 §9.1.3, RFC 4456 route reflection,
//! RFC 1997 well-known communities), the attribute changes on the way out (eBGP: prepend our AS,
//! next-hop self, no LOCAL_PREF; iBGP: LOCAL_PREF kept, next-hop unchanged unless `next-hop-self`), the
//! export policy (RFC 8212 for eBGP), and the conversion back to the codec's UPDATEs.
//!
//! ```text
//!   best path (Attrs, source peer) ──eligible?──► transform ──export policy──► Attrs for this peer
//!   Adj-RIB-Out diff ──group by attribute set──► bgp::wire::Update (IPv4 NLRI / MP_REACH for IPv6)
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::wire::attr::as_path::{AsPath as WAsPath, Segment as WSegment, SegmentType};
use bgp::wire::attr::community::{Community, ExtCommunity, LargeCommunity as WLarge};
use bgp::wire::attr::mp::{MpReach, MpUnreach, NextHop};
use bgp::wire::attr::{Aggregator, Origin as WOrigin, PathAttributes, RawAttribute};
use bgp::wire::flowspec::FlowSpec;
use bgp::wire::{AfiSafi, Nlri, Update};
use ipnet::IpNet;

use crate::policy::{Policy, RouteCtx, RouteKind, RpkiState, Verdict, evaluate};
use crate::rib::attrs::{Attrs, Origin, SegmentKind, community};
use crate::rib::decision::{PeerInfo, PeerKind};

/// The receiving side of an export.
#[derive(Debug, Clone)]
pub struct ExportCtx {
    pub peer_addr: IpAddr,
    pub peer_as: u32,
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    pub ebgp: bool,
    pub rr_client: bool,
    pub next_hop_self: bool,
    /// Our addresses on the session's link, per family (for next-hop self).
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<std::net::Ipv6Addr>,
    /// `None` = no export policy configured (RFC 8212: eBGP exports nothing, iBGP everything allowed).
    pub policy: Option<Vec<Arc<Policy>>>,
}

impl ExportCtx {
    /// RFC 8212: an eBGP peer without export policy is sent nothing, whatever the route.
    pub fn exports_nothing(&self) -> bool {
        self.ebgp && self.policy.is_none()
    }
}

/// What the source of a best path was.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub peer: &'a PeerInfo,
    /// The source peer is our route-reflector client.
    pub rr_client: bool,
}

/// The attributes `to` should receive for `prefix`, or `None` when nothing is to be sent.
pub fn export(prefix: IpNet, best: &Attrs, src: Source<'_>, to: &ExportCtx) -> Option<Attrs> {
    if src.peer.addr == to.peer_addr && src.peer.kind != PeerKind::Local {
        return None; // never back to where it came from
    }
    export_shared(prefix, best, src, to)
}

/// [`export`] without the "never back to the source peer" rule: what an update group computes once
/// for all its members (the group leaves each member's own routes out per member, see
/// [`crate::adj_out`]).
pub fn export_shared(
    prefix: IpNet,
    best: &Attrs,
    src: Source<'_>,
    to: &ExportCtx,
) -> Option<Attrs> {
    let mut out = transform(best, src, to)?;
    let from_ibgp = src.peer.kind == PeerKind::Ibgp;
    let self_nh = to.ebgp || to.next_hop_self || out.next_hop().is_none();
    if self_nh && !(to.rr_client && from_ibgp && !to.next_hop_self) {
        let v4 = prefix.addr().is_ipv4();
        let nh = if v4 {
            to.local_v4.map(IpAddr::V4)
        } else {
            to.local_v6.map(IpAddr::V6)
        }
        .or(out.next_hop());
        out.set_next_hop(nh);
        out.set_next_hop_ll(None);
    }
    out.next_hop()?;
    apply_policy(prefix, RouteKind::Unicast, out, to)
}

/// A FlowSpec rule's attributes for `to` (RFC 8955 §8, §9: FlowSpec follows the usual propagation rules), or
/// `None` when it is not to be sent: never back to its source, NO_ADVERTISE / NO_EXPORT, iBGP split
/// horizon with route reflection, eBGP prepends our AS and drops LOCAL_PREF and a third AS's MED, then
/// the export policy (RFC 8212 for eBGP) with the rule's destination prefix as the prefix (see
/// [`crate::policy::MatchDef::safi`]). A rule has no next-hop (RFC 8955 §4: next-hop length 0): none is
/// set, whatever `next-hop-self` says. The traffic filtering actions are extended communities and go on
/// unchanged unless the policy changes them.
pub fn export_flowspec(
    rule: &bgp::wire::flowspec::FlowSpec,
    best: &Attrs,
    src: Source<'_>,
    to: &ExportCtx,
) -> Option<Attrs> {
    if src.peer.addr == to.peer_addr && src.peer.kind != PeerKind::Local {
        return None;
    }
    let mut out = transform(best, src, to)?;
    out.set_next_hop(None);
    out.set_next_hop_ll(None);
    let (prefix, kind) = match rule.destination() {
        Some(d) => (d.prefix(), RouteKind::FlowSpec),
        None => (
            match rule.family() {
                bgp::wire::nlri::Family::V4 => IpNet::V4(Default::default()),
                bgp::wire::nlri::Family::V6 => IpNet::V6(Default::default()),
            },
            RouteKind::FlowSpecNoDestination,
        ),
    };
    let mut a = apply_policy(prefix, kind, out, to)?;
    // A policy's `next-hop` setting means nothing for a rule.
    a.set_next_hop(None);
    a.set_next_hop_ll(None);
    Some(a)
}

/// The export policy (RFC 8212: an eBGP peer without one gets nothing).
fn apply_policy(prefix: IpNet, kind: RouteKind, out: Attrs, to: &ExportCtx) -> Option<Attrs> {
    let verdict = match &to.policy {
        None if to.ebgp => Verdict::Reject,
        None => Verdict::Accept(None),
        Some(chain) => evaluate(
            chain,
            &RouteCtx {
                prefix,
                peer_addr: to.peer_addr,
                peer_as: to.peer_as,
                local_as: to.local_as,
                local_addr: if prefix.addr().is_ipv4() {
                    to.local_v4.map(IpAddr::V4)
                } else {
                    to.local_v6.map(IpAddr::V6)
                },
                rpki: RpkiState::NotFound,
                kind,
            },
            &out,
        ),
    };
    match verdict {
        Verdict::Accept(Some(a)) => Some(a),
        Verdict::Accept(None) => Some(out),
        Verdict::Reject => None,
    }
}

/// The propagation rules shared by unicast and FlowSpec: well-known communities, iBGP split horizon
/// and route reflection (RFC 4456), eBGP AS prepend, LOCAL_PREF and MED handling. Next-hop and policy
/// are the caller's.
fn transform(best: &Attrs, src: Source<'_>, to: &ExportCtx) -> Option<Attrs> {
    // RFC 8212 decides before anything is copied (a full table is exported prefix by prefix).
    if to.exports_nothing() || best.has_community(community::NO_ADVERTISE) {
        return None;
    }
    if to.ebgp
        && (best.has_community(community::NO_EXPORT)
            || best.has_community(community::NO_EXPORT_SUBCONFED))
    {
        return None;
    }
    let from_ibgp = src.peer.kind == PeerKind::Ibgp;
    let mut out = best.clone();
    out.set_weight(0);
    if !to.ebgp && from_ibgp {
        // iBGP to iBGP only by reflection (RFC 4456 §6): client routes to everyone, non-client routes
        // to clients only.
        if !src.rr_client && !to.rr_client {
            return None;
        }
        if out.originator_id().is_none() {
            out.set_originator_id(Some(src.peer.router_id));
        }
        let mut cl = vec![to.router_id];
        cl.extend_from_slice(out.cluster_list());
        out.set_cluster_list(cl);
    }
    if to.ebgp {
        out.prepend_as_path(to.local_as, 1);
        out.set_local_pref(None);
        out.set_originator_id(None);
        out.set_cluster_list(Vec::new());
        if src.peer.kind == PeerKind::Ebgp {
            out.set_med(None); // MED is not passed on to a third AS (RFC 4271 §5.1.4)
        }
    } else if out.local_pref().is_none() {
        out.set_local_pref(Some(100));
    }
    Some(out)
}

/// The codec's path attributes for an exported attribute set (next-hop handled per family).
pub fn to_wire(a: &Attrs) -> PathAttributes {
    PathAttributes {
        origin: Some(match a.origin() {
            Origin::Igp => WOrigin::Igp,
            Origin::Egp => WOrigin::Egp,
            Origin::Incomplete => WOrigin::Incomplete,
        }),
        as_path: Some(WAsPath {
            segments: a
                .as_path()
                .segments()
                .map(|s| WSegment {
                    kind: match s.kind {
                        SegmentKind::Set => SegmentType::Set,
                        SegmentKind::Sequence => SegmentType::Sequence,
                        SegmentKind::ConfedSequence => SegmentType::ConfedSequence,
                        SegmentKind::ConfedSet => SegmentType::ConfedSet,
                    },
                    asns: s.asns.to_vec(),
                })
                .collect(),
        }),
        next_hop: match a.next_hop() {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        },
        med: a.med(),
        local_pref: a.local_pref(),
        atomic_aggregate: a.atomic_aggregate(),
        aggregator: a
            .aggregator()
            .map(|(asn, address)| Aggregator { asn, address }),
        communities: a.communities().iter().map(|c| Community(*c)).collect(),
        originator_id: a.originator_id(),
        cluster_list: a.cluster_list().to_vec(),
        ext_communities: a
            .ext_communities()
            .iter()
            .map(|c| ExtCommunity(*c))
            .collect(),
        large_communities: a
            .large_communities()
            .iter()
            .map(|c| WLarge {
                global: c.global,
                local1: c.local1,
                local2: c.local2,
            })
            .collect(),
        // Unknown optional transitive attributes go on with the Partial bit set (RFC 4271 §5).
        unknown: a
            .unknown()
            .iter()
            .filter(|u| u.flags & 0xC0 == 0xC0)
            .map(|u| RawAttribute {
                flags: u.flags | 0x20,
                type_code: u.type_code,
                value: u.value.to_vec(),
            })
            .collect(),
        ..PathAttributes::default()
    }
}

/// UPDATEs announcing `prefixes` (all with attribute set `a`) in one address family.
pub fn announce(a: &Attrs, prefixes: &[IpNet]) -> Option<Update> {
    let nlri: Vec<Nlri> = prefixes.iter().map(|p| Nlri::new(*p)).collect();
    announce_nlri(a, nlri)
}

/// An UPDATE announcing `nlri` (one address family, path identifiers set when ADD-PATH is used) with
/// attribute set `a`; `Update::encode_split` cuts it to the negotiated message size.
pub fn announce_nlri(a: &Attrs, nlri: Vec<Nlri>) -> Option<Update> {
    let first = nlri.first()?.prefix;
    let mut u = Update {
        attrs: to_wire(a),
        ..Update::default()
    };
    if first.addr().is_ipv4() {
        u.attrs.next_hop = match a.next_hop() {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => return None,
        };
        u.nlri = nlri;
    } else {
        let global = match a.next_hop() {
            Some(IpAddr::V6(v6)) => v6,
            _ => return None,
        };
        u.attrs.next_hop = None;
        u.mp_reach = Some(MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global,
                link_local: a.next_hop_ll(),
            },
            nlri,
            flowspec: Vec::new(),
            opaque_nlri: Vec::new(),
        });
    }
    Some(u)
}

/// An UPDATE withdrawing `prefixes` of one address family.
pub fn withdraw(prefixes: &[IpNet]) -> Option<Update> {
    withdraw_nlri(prefixes.iter().map(|p| Nlri::new(*p)).collect())
}

/// An UPDATE withdrawing `nlri` (one address family; with path identifiers under ADD-PATH).
pub fn withdraw_nlri(nlri: Vec<Nlri>) -> Option<Update> {
    let first = nlri.first()?.prefix;
    Some(if first.addr().is_ipv4() {
        Update {
            withdrawn: nlri,
            ..Update::default()
        }
    } else {
        Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                withdrawn: nlri,
                flowspec: Vec::new(),
                opaque_withdrawn: Vec::new(),
            }),
            ..Update::default()
        }
    })
}

/// An UPDATE announcing FlowSpec `rules` of one family with attribute set `a` (MP_REACH_NLRI with a
/// next-hop of length 0, RFC 8955 §4; the actions are in `a`'s extended communities).
pub fn announce_flowspec(
    a: &Attrs,
    family: bgp::wire::nlri::Family,
    rules: Vec<FlowSpec>,
) -> Update {
    let mut attrs = to_wire(a);
    attrs.next_hop = None;
    Update {
        attrs,
        mp_reach: Some(MpReach {
            afi_safi: bgp::wire::flowspec::afi_safi(family),
            next_hop: NextHop::Other(Vec::new()),
            nlri: Vec::new(),
            flowspec: rules,
            opaque_nlri: Vec::new(),
        }),
        ..Update::default()
    }
}

/// An UPDATE withdrawing FlowSpec `rules` of one family (MP_UNREACH_NLRI).
pub fn withdraw_flowspec(family: bgp::wire::nlri::Family, rules: Vec<FlowSpec>) -> Update {
    Update {
        mp_unreach: Some(MpUnreach {
            afi_safi: bgp::wire::flowspec::afi_safi(family),
            withdrawn: Vec::new(),
            flowspec: rules,
            opaque_withdrawn: Vec::new(),
        }),
        ..Update::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::attrs::AsPath;

    fn peer(kind: PeerKind, addr: &str, asn: u32) -> PeerInfo {
        PeerInfo {
            name: "src".into(),
            addr: addr.parse().unwrap(),
            router_id: Ipv4Addr::new(10, 0, 0, 9),
            remote_as: asn,
            local_as: 65000,
            kind,
            confed: false,
        }
    }

    fn to(ebgp: bool, rr_client: bool) -> ExportCtx {
        ExportCtx {
            peer_addr: "192.0.2.2".parse().unwrap(),
            peer_as: if ebgp { 64510 } else { 65000 },
            local_as: 65000,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            ebgp,
            rr_client,
            next_hop_self: false,
            local_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            local_v6: None,
            policy: if ebgp { Some(Vec::new()) } else { None },
        }
    }

    fn accept_all() -> Vec<Arc<Policy>> {
        let defs: crate::policy::PolicyDefs =
            toml::from_str("[[policy.ALL.term]]\nname = \"all\"\naction = \"accept\"\n").unwrap();
        crate::policy::PolicySet::compile(&defs)
            .unwrap()
            .chain(&["ALL".into()])
            .unwrap()
    }

    fn best() -> Attrs {
        Attrs::default()
            .with_as_path(AsPath::sequence(vec![3320, 15169]))
            .with_next_hop(Some("198.51.100.1".parse().unwrap()))
            .with_med(Some(10))
            .with_local_pref(Some(200))
    }

    const P: &str = "8.8.8.0/24";

    #[test]
    fn ebgp_export_prepends_our_as_sets_next_hop_self_and_drops_local_pref_rfc4271_5_1() {
        let mut t = to(true, false);
        t.policy = Some(accept_all());
        let src = peer(PeerKind::Ebgp, "198.51.100.1", 3320);
        let out = export(
            P.parse().unwrap(),
            &best(),
            Source {
                peer: &src,
                rr_client: false,
            },
            &t,
        )
        .unwrap();
        assert_eq!(out.as_path().to_string(), "65000 3320 15169");
        assert_eq!(out.next_hop(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(out.local_pref(), None);
        assert_eq!(out.med(), None, "MED from another AS is not passed on");
    }

    #[test]
    fn ebgp_without_export_policy_sends_nothing_rfc8212() {
        let mut t = to(true, false);
        t.policy = None;
        let src = peer(PeerKind::Ebgp, "198.51.100.1", 3320);
        assert!(
            export(
                P.parse().unwrap(),
                &best(),
                Source {
                    peer: &src,
                    rr_client: false
                },
                &t
            )
            .is_none()
        );
    }

    #[test]
    fn ibgp_routes_are_not_sent_to_ibgp_peers_unless_reflected_rfc4456() {
        let src = peer(PeerKind::Ibgp, "10.0.0.9", 65000);
        let p: IpNet = P.parse().unwrap();
        assert!(
            export(
                p,
                &best(),
                Source {
                    peer: &src,
                    rr_client: false
                },
                &to(false, false)
            )
            .is_none(),
            "split horizon"
        );
        let out = export(
            p,
            &best(),
            Source {
                peer: &src,
                rr_client: false,
            },
            &to(false, true),
        )
        .expect("reflected to a client");
        assert_eq!(out.originator_id(), Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(out.cluster_list(), &[Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(
            out.next_hop(),
            best().next_hop(),
            "reflection keeps the next-hop"
        );
        assert_eq!(out.local_pref(), Some(200));
        assert!(
            export(
                p,
                &best(),
                Source {
                    peer: &src,
                    rr_client: true
                },
                &to(false, false)
            )
            .is_some(),
            "client routes go to non-clients"
        );
    }

    #[test]
    fn well_known_communities_are_honoured_rfc1997() {
        let src = peer(PeerKind::Ebgp, "198.51.100.1", 3320);
        let mut t = to(true, false);
        t.policy = Some(accept_all());
        let p: IpNet = P.parse().unwrap();
        let no_export = best().with_communities([community::NO_EXPORT]);
        assert!(
            export(
                p,
                &no_export,
                Source {
                    peer: &src,
                    rr_client: false
                },
                &t
            )
            .is_none()
        );
        assert!(
            export(
                p,
                &no_export,
                Source {
                    peer: &src,
                    rr_client: false
                },
                &to(false, false)
            )
            .is_some(),
            "NO_EXPORT stays inside the AS"
        );
        let no_adv = best().with_communities([community::NO_ADVERTISE]);
        assert!(
            export(
                p,
                &no_adv,
                Source {
                    peer: &src,
                    rr_client: false
                },
                &to(false, false)
            )
            .is_none()
        );
    }

    #[test]
    fn never_back_to_the_source_peer() {
        let src = peer(PeerKind::Ebgp, "192.0.2.2", 64510);
        let mut t = to(true, false);
        t.policy = Some(accept_all());
        assert!(
            export(
                P.parse().unwrap(),
                &best(),
                Source {
                    peer: &src,
                    rr_client: false
                },
                &t
            )
            .is_none()
        );
    }

    #[test]
    fn updates_round_trip_through_the_codec() {
        let a = best().with_communities([0xFDE8_0001]);
        let u = announce(
            &a,
            &["8.8.8.0/24".parse().unwrap(), "8.8.4.0/24".parse().unwrap()],
        )
        .unwrap();
        let bytes = bgp::wire::Message::Update(u.clone())
            .to_bytes(&bgp::wire::Context::default())
            .unwrap();
        let bgp::wire::Message::Update(back) =
            bgp::wire::Message::decode(&bytes, &bgp::wire::Context::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(back.nlri.len(), 2);
        let (ops, _) = crate::import::import_update(
            &crate::import::ImportCtx {
                local_as: 65001,
                peer_as: 3320,
                peer_addr: "192.0.2.9".parse().unwrap(),
                local_addr: None,
                router_id: Ipv4Addr::new(10, 9, 9, 9),
                ebgp: false,
                allowas_in: 0,
                policy: None,
            },
            &back,
            RpkiState::NotFound,
        );
        let crate::import::Op::Announce { attrs, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(attrs.as_path(), a.as_path());
        assert_eq!(attrs.communities(), a.communities());
        let w = withdraw(&["2001:db8::/32".parse().unwrap()]).unwrap();
        assert_eq!(w.mp_unreach.unwrap().withdrawn.len(), 1);
    }
}
