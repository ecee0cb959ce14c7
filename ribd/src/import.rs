//! From BGP UPDATEs to RIB operations: attribute conversion (once per UPDATE), RFC 7606 outcomes,
//! loop detection, route-reflection checks and the import policy chain (per prefix, or once per UPDATE
//! family when no term of the chain reads the prefix).
//!
//! ```text
//!   bgp::wire::Update ──to_attrs()──► rib::Attrs (per family next-hop) ──checks──► policy chain ─► Ops
//! ```
//! The result is a list of operations for the RIB, so the logic is testable without sessions.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use bgp::wire::attr::as_path::SegmentType;
use bgp::wire::attr::community::Community;
use bgp::wire::attr::mp::NextHop;
use bgp::wire::attr::{Origin as WireOrigin, PathAttributes};
use bgp::wire::{AfiSafi, Nlri, Update};
use ipnet::IpNet;

use crate::policy::{Policy, RouteCtx, RouteKind, RpkiState, Verdict, evaluate};
use crate::rib::attrs::{
    AsPath, AttrRef, Attrs, Clones, CommonAttrs, LargeCommunity, Origin, RareAttrs, RawAttr,
    SegmentKind, ToIntern,
};

/// What the import path needs to know about the session.
#[derive(Debug, Clone)]
pub struct ImportCtx {
    pub local_as: u32,
    pub peer_as: u32,
    pub peer_addr: IpAddr,
    pub local_addr: Option<IpAddr>,
    pub router_id: std::net::Ipv4Addr,
    pub ebgp: bool,
    /// How often our own AS may appear in a received path (allowas-in).
    pub allowas_in: u8,
    /// The import chain; `None` = no policy configured (RFC 8212: eBGP rejects, iBGP accepts).
    pub policy: Option<Vec<Arc<Policy>>>,
}

/// One RIB operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Announce {
        prefix: IpNet,
        path_id: u32,
        attrs: Attrs,
    },
    Withdraw {
        prefix: IpNet,
        path_id: u32,
    },
    /// Received but refused (loop, policy): withdrawn from the RIB if it was there, counted as received.
    Reject {
        prefix: IpNet,
        path_id: u32,
    },
}

/// Counts for the peer's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub withdrawn: u64,
    pub treat_as_withdraw: u64,
}

/// Converts the codec's path attributes to the RIB's, with `next_hop` chosen by the caller per family.
pub fn to_attrs(
    a: &PathAttributes,
    next_hop: Option<IpAddr>,
    next_hop_ll: Option<Ipv6Addr>,
) -> Attrs {
    convert(a, next_hop, next_hop_ll, a.local_pref)
}

/// The RIB's kind of a wire AS_PATH segment.
fn segment_kind(t: SegmentType) -> SegmentKind {
    match t {
        SegmentType::Set => SegmentKind::Set,
        SegmentType::Sequence => SegmentKind::Sequence,
        SegmentType::ConfedSequence => SegmentKind::ConfedSequence,
        SegmentType::ConfedSet => SegmentKind::ConfedSet,
    }
}

/// [`to_attrs`] with `local_pref` in place of the UPDATE's. One allocation for the set (and one for
/// its rare attributes when it has any): the AS path is gathered on the stack, the communities are
/// read in place.
fn convert(
    a: &PathAttributes,
    next_hop: Option<IpAddr>,
    next_hop_ll: Option<Ipv6Addr>,
    local_pref: Option<u32>,
) -> Attrs {
    let mut path_buf = smallvec::SmallVec::<[u32; 32]>::new();
    let segments = a
        .as_path
        .iter()
        .flat_map(|p| &p.segments)
        .map(|s| (segment_kind(s.kind), &s.asns[..]));
    let as_path = AsPath::encode_in(segments, &mut path_buf);
    let common = CommonAttrs {
        origin: match a.origin {
            Some(WireOrigin::Igp) | None => Origin::Igp,
            Some(WireOrigin::Egp) => Origin::Egp,
            Some(WireOrigin::Incomplete) => Origin::Incomplete,
        },
        atomic_aggregate: a.atomic_aggregate,
        as_path,
        next_hop,
        med: a.med,
        local_pref,
        communities: Community::as_u32s(&a.communities),
        weight: 0,
    };
    let rare = next_hop_ll.is_some()
        || a.aggregator.is_some()
        || a.originator_id.is_some()
        || !a.cluster_list.is_empty()
        || !a.ext_communities.is_empty()
        || !a.large_communities.is_empty()
        || !a.unknown.is_empty();
    if !rare {
        return Attrs::new(&common);
    }
    Attrs::with_rare(
        &common,
        RareAttrs {
            next_hop_ll,
            aggregator: a.aggregator.map(|g| (g.asn, g.address)),
            originator_id: a.originator_id,
            cluster_list: a.cluster_list.clone().into(),
            ext_communities: a.ext_communities.iter().map(|c| c.0).collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(|c| LargeCommunity {
                    global: c.global,
                    local1: c.local1,
                    local2: c.local2,
                })
                .collect(),
            unknown: a
                .unknown
                .iter()
                .map(|u| RawAttr {
                    flags: u.flags,
                    type_code: u.type_code,
                    value: u.value.clone().into(),
                })
                .collect(),
        },
    )
}

fn prefixes(v: &[Nlri]) -> impl Iterator<Item = (IpNet, u32)> + '_ {
    v.iter().map(|n| (n.prefix, n.path_id.unwrap_or(0)))
}

/// Why a received path is not even offered to import policy.
fn rejected_before_policy(ctx: &ImportCtx, a: &Attrs) -> Option<&'static str> {
    if a.as_path().count(ctx.local_as) > ctx.allowas_in as usize {
        return Some("AS_PATH loop (own AS)");
    }
    if !ctx.ebgp && a.originator_id() == Some(ctx.router_id) {
        return Some("ORIGINATOR_ID is ours (RFC 4456 §8)");
    }
    if !ctx.ebgp && a.cluster_list().contains(&ctx.router_id) {
        return Some("CLUSTER_LIST loop (RFC 4456 §8)");
    }
    None
}

/// Where [`import_into`] puts its operations, in UPDATE order, and how it shares attribute sets.
pub trait ImportSink {
    /// The shared copy of `attrs` (the RIB's interning). [`import_into`] asks once per distinct set of
    /// an UPDATE, not per prefix, and gives back every reference it keeps with [`ImportSink::release`].
    fn intern(&mut self, attrs: Attrs) -> AttrRef;
    /// [`ImportSink::intern`] with `n` more references to the shared copy counted ahead (for the
    /// prefixes of the UPDATE): the RIB's store counts them without an atomic operation when the
    /// set is new.
    fn intern_counted(&mut self, attrs: ToIntern, n: u32) -> (AttrRef, Clones) {
        let a = self.intern(attrs.into_attrs());
        let more = a.clones(n);
        (a, more)
    }
    /// Gives back a reference taken with [`ImportSink::intern`].
    fn release(&mut self, attrs: AttrRef);
    /// An accepted path.
    fn announce(&mut self, prefix: IpNet, path_id: u32, attrs: AttrRef);
    /// A withdrawal (or an announcement an RFC 7606 treat-as-withdraw turned into one).
    fn withdraw(&mut self, prefix: IpNet, path_id: u32);
    /// Received but refused (loop, policy): withdrawn from the RIB if it was there.
    fn reject(&mut self, prefix: IpNet, path_id: u32);
}

/// The announcements of one family of an UPDATE: next-hop, IPv6 link-local next-hop, NLRI.
type Family<'a> = (Option<IpAddr>, Option<Ipv6Addr>, &'a [Nlri]);

/// An UPDATE family's attribute set: converted from the UPDATE, then interned once. Fields, not an
/// enum of states: an enum moved as a whole (taken by value at the end of the family) was copied
/// in 16-byte loads over the counter just written in 4 bytes, and such a load waits for every
/// earlier store to reach the cache (5% of the import path).
struct Base {
    /// As converted, until its first unmodified acceptance.
    owned: Option<ToIntern>,
    /// The interned set, after it.
    shared: Option<AttrRef>,
    /// References to `shared` counted ahead for the family's next prefixes.
    spare: Option<Clones>,
}

impl Base {
    fn new(a: ToIntern) -> Base {
        Base {
            owned: Some(a),
            shared: None,
            spare: None,
        }
    }

    fn get(&self) -> &Attrs {
        static EMPTY: std::sync::OnceLock<Attrs> = std::sync::OnceLock::new();
        match (&self.shared, &self.owned) {
            (Some(a), _) => a,
            (None, Some(a)) => a.attrs(),
            (None, None) => EMPTY.get_or_init(Attrs::default),
        }
    }

    /// A reference to the interned set (interned on first use). `left` (at least 1) is how many
    /// prefixes of the family are left, this one included: references are counted ahead for them
    /// all at once, and the last one takes the family's own reference, so a family whose prefixes
    /// are all accepted gives nothing back (a locked operation per UPDATE, after the writes of its
    /// conversion and interning, waited for them all to reach the cache: 5% of the import path).
    /// The ones not taken are given back with [`Base::release`].
    fn share(&mut self, sink: &mut impl ImportSink, left: u32) -> AttrRef {
        if let Some(x) = self.spare.as_mut().and_then(Iterator::next) {
            return x;
        }
        let ahead = left.saturating_sub(1);
        let a = match self.shared.take() {
            Some(a) => {
                self.spare = Some(a.clones(ahead));
                a
            }
            None => {
                let owned = self.owned.take().unwrap_or_else(|| Attrs::default().into());
                let (a, spare) = sink.intern_counted(owned, ahead);
                self.spare = Some(spare);
                a
            }
        };
        match self.spare.as_mut().and_then(Iterator::next) {
            // More prefixes to come: this one takes a counted reference, the family keeps its own.
            Some(x) => {
                self.shared = Some(a);
                x
            }
            // The last prefix: it takes the family's own reference.
            None => a,
        }
    }

    /// Gives back the interned set's reference and the ones counted ahead and not taken.
    fn release(&mut self, sink: &mut impl ImportSink) {
        // First the spare ones: the sink's release tells by the count whether the set's last
        // holder (besides its store) lets go.
        self.spare = None;
        if let Some(a) = self.shared.take() {
            sink.release(a);
        }
    }
}

/// What import policy decided for a prefix: the family's set, the last modified set, or no.
#[derive(Debug, Clone, Copy)]
enum Decided {
    Base,
    Changed,
    Reject,
}

/// Turns one UPDATE into RIB operations. Returns the operations and what happened, for counters.
pub fn import_update(ctx: &ImportCtx, u: &Update, rpki: RpkiState) -> (Vec<Op>, ImportCounts) {
    let mut c = CollectOps(Vec::new());
    let n = import_into(ctx, u, rpki, &mut c);
    (c.0, n)
}

/// [`import_update`]'s sink: the operations in a list, every set a copy of its own.
struct CollectOps(Vec<Op>);

impl ImportSink for CollectOps {
    fn intern(&mut self, attrs: Attrs) -> AttrRef {
        AttrRef::unshared(attrs)
    }
    fn release(&mut self, _: AttrRef) {}
    fn announce(&mut self, prefix: IpNet, path_id: u32, attrs: AttrRef) {
        self.0.push(Op::Announce {
            prefix,
            path_id,
            attrs: (*attrs).clone(),
        });
    }
    fn withdraw(&mut self, prefix: IpNet, path_id: u32) {
        self.0.push(Op::Withdraw { prefix, path_id });
    }
    fn reject(&mut self, prefix: IpNet, path_id: u32) {
        self.0.push(Op::Reject { prefix, path_id });
    }
}

/// [`import_update`] without the intermediate list: the attributes are converted once per family of
/// the UPDATE, each prefix goes through the policy chain and straight to `sink`.
pub fn import_into(
    ctx: &ImportCtx,
    u: &Update,
    rpki: RpkiState,
    sink: &mut impl ImportSink,
) -> ImportCounts {
    import_prepared(ctx, u, rpki, sink, None)
}

/// The announced families of an UPDATE, in the order they are imported: the IPv4 NLRI field, then
/// MP_REACH_NLRI's unicast family.
fn families(u: &Update) -> [Option<Family<'_>>; 2] {
    let mut families: [Option<Family<'_>>; 2] = [None, None];
    if !u.nlri.is_empty() {
        families[0] = Some((u.attrs.next_hop.map(IpAddr::V4), None, &u.nlri));
    }
    if let Some(mr) = &u.mp_reach
        && (mr.afi_safi == AfiSafi::IPV4_UNICAST || mr.afi_safi == AfiSafi::IPV6_UNICAST)
    {
        let (nh, ll) = match &mr.next_hop {
            NextHop::Ipv4(a) => (Some(IpAddr::V4(*a)), None),
            NextHop::Ipv6 { global, link_local } => (Some(IpAddr::V6(*global)), *link_local),
            _ => (None, None),
        };
        families[1] = Some((nh, ll, &mr.nlri));
    }
    families
}

/// A family's set as converted from the UPDATE (before any policy).
fn family_attrs(ctx: &ImportCtx, u: &Update, nh: Option<IpAddr>, ll: Option<Ipv6Addr>) -> Attrs {
    // RFC 4271 §5.1.5: LOCAL_PREF is not sent to (and is ignored from) external peers.
    let local_pref = if ctx.ebgp { None } else { u.attrs.local_pref };
    convert(&u.attrs, nh, ll, local_pref)
}

/// The set of the first family [`import_into`] will import from `u`, converted ahead (none when
/// the UPDATE announces nothing it imports). The caller can then prefetch where its interning
/// looks ([`crate::rib::Rib::prefetch_attrs`]) and hand it to [`import_prepared`] later.
pub fn prepare(ctx: &ImportCtx, u: &Update) -> Option<ToIntern> {
    if u.treat_as_withdraw.is_some() {
        return None;
    }
    let (nh, ll, _) = families(u).into_iter().flatten().next()?;
    Some(ToIntern::hashed(family_attrs(ctx, u, nh, ll)))
}

/// [`import_into`] with the first family's set converted already by [`prepare`] for `u` (or
/// `None`: converted here).
pub fn import_prepared(
    ctx: &ImportCtx,
    u: &Update,
    rpki: RpkiState,
    sink: &mut impl ImportSink,
    mut prepared: Option<ToIntern>,
) -> ImportCounts {
    let mut n = ImportCounts::default();
    let mut withdraw_all = |n: &mut ImportCounts, v: &[Nlri]| {
        for (prefix, path_id) in prefixes(v) {
            sink.withdraw(prefix, path_id);
            n.withdrawn += 1;
        }
    };
    withdraw_all(&mut n, &u.withdrawn);
    if let Some(mu) = &u.mp_unreach {
        withdraw_all(&mut n, &mu.withdrawn);
    }
    if u.treat_as_withdraw.is_some() {
        // RFC 7606 §2: the UPDATE's announcements become withdrawals.
        n.treat_as_withdraw += 1;
        withdraw_all(&mut n, &u.nlri);
        if let Some(mr) = &u.mp_reach {
            withdraw_all(&mut n, &mr.nlri);
        }
        return n;
    }

    for (nh, ll, nlri) in families(u).into_iter().flatten() {
        let base = match prepared.take() {
            Some(a) => a,
            None => family_attrs(ctx, u, nh, ll).into(),
        };
        if let Some(_why) = rejected_before_policy(ctx, base.attrs()) {
            for (prefix, path_id) in prefixes(nlri) {
                n.received += 1;
                n.rejected += 1;
                sink.reject(prefix, path_id);
            }
            continue;
        }
        // The family's set, moved into the RIB's interning at its first unmodified acceptance; the
        // policy then reads the shared copy.
        let mut base = Base::new(base);
        // The last set a policy modified (consecutive prefixes usually get the same one).
        let mut changed: Option<AttrRef> = None;
        // A chain that reads no prefix gives every prefix of the family (same attributes, same
        // peer) the first one's verdict: it runs once. (Keyed by the prefix's family as well, for
        // an UPDATE built with both in one list.)
        let once = ctx
            .policy
            .as_ref()
            .is_some_and(|chain| !chain.iter().any(|p| p.reads_prefix()));
        let mut decided: Option<(bool, Decided)> = None;
        for (i, (prefix, path_id)) in prefixes(nlri).enumerate() {
            n.received += 1;
            let v4 = prefix.addr().is_ipv4();
            let d = match decided {
                Some((f, d)) if once && f == v4 => d,
                _ => {
                    let verdict = match &ctx.policy {
                        None if ctx.ebgp => Verdict::Reject,
                        None => Verdict::Accept(None),
                        Some(chain) => {
                            let r = RouteCtx {
                                prefix,
                                peer_addr: ctx.peer_addr,
                                peer_as: ctx.peer_as,
                                local_as: ctx.local_as,
                                local_addr: ctx.local_addr,
                                rpki,
                                kind: RouteKind::Unicast,
                            };
                            evaluate(chain, &r, base.get())
                        }
                    };
                    let d = match verdict {
                        Verdict::Accept(None) => Decided::Base,
                        Verdict::Accept(Some(modified)) => {
                            if !changed.as_ref().is_some_and(|a| **a == modified) {
                                let a = sink.intern(modified);
                                if let Some(old) = changed.replace(a) {
                                    sink.release(old);
                                }
                            }
                            Decided::Changed
                        }
                        Verdict::Reject => Decided::Reject,
                    };
                    decided = Some((v4, d));
                    d
                }
            };
            match d {
                Decided::Base => {
                    n.accepted += 1;
                    let left = u32::try_from(nlri.len() - i).unwrap_or(u32::MAX);
                    let a = base.share(sink, left);
                    sink.announce(prefix, path_id, a);
                }
                Decided::Changed => {
                    n.accepted += 1;
                    let a = changed.clone().expect("a modified set was interned");
                    sink.announce(prefix, path_id, a);
                }
                Decided::Reject => {
                    n.rejected += 1;
                    // A previously accepted path of the same prefix must go.
                    sink.reject(prefix, path_id);
                }
            }
        }
        base.release(sink);
        if let Some(a) = changed {
            sink.release(a);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use bgp::wire::attr::as_path::{AsPath as WAsPath, Segment as WSegment};
    use bgp::wire::attr::community::Community;
    use bgp::wire::attr::mp::MpReach;

    use super::*;
    use crate::policy::{PolicyDefs, PolicySet};

    fn ctx(ebgp: bool, policy: Option<&str>) -> ImportCtx {
        let policy = policy.map(|text| {
            let defs: PolicyDefs = toml::from_str(text).unwrap();
            let set = PolicySet::compile(&defs).unwrap();
            set.chain(&["P".to_string()]).unwrap()
        });
        ImportCtx {
            local_as: 65000,
            peer_as: if ebgp { 3320 } else { 65000 },
            peer_addr: "192.0.2.1".parse().unwrap(),
            local_addr: Some("192.0.2.2".parse().unwrap()),
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            ebgp,
            allowas_in: 0,
            policy,
        }
    }

    fn update(path: Vec<u32>) -> Update {
        let mut u = Update::default();
        u.attrs.origin = Some(WireOrigin::Igp);
        u.attrs.as_path = Some(WAsPath {
            segments: vec![WSegment {
                kind: SegmentType::Sequence,
                asns: path,
            }],
        });
        u.attrs.next_hop = Some(Ipv4Addr::new(192, 0, 2, 1));
        u.attrs.local_pref = Some(500);
        u.attrs.communities = vec![Community(0xFDE8_0001)];
        u.nlri = vec![Nlri::new("198.51.100.0/24".parse().unwrap())];
        u
    }

    const ACCEPT: &str = "[[policy.P.term]]\nname = \"all\"\naction = \"accept\"\n";

    #[test]
    fn ebgp_without_policy_imports_nothing_rfc8212() {
        let (ops, n) = import_update(
            &ctx(true, None),
            &update(vec![3320, 15169]),
            RpkiState::NotFound,
        );
        assert_eq!(n.rejected, 1);
        assert!(matches!(ops[0], Op::Reject { .. }));
        let (ops, _) = import_update(&ctx(false, None), &update(vec![15169]), RpkiState::NotFound);
        assert!(
            matches!(ops[0], Op::Announce { .. }),
            "iBGP without policy accepts"
        );
    }

    #[test]
    fn ebgp_local_pref_is_ignored_rfc4271_5_1_5() {
        let (ops, _) = import_update(
            &ctx(true, Some(ACCEPT)),
            &update(vec![3320, 15169]),
            RpkiState::NotFound,
        );
        let Op::Announce { attrs, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(attrs.local_pref(), None);
        assert_eq!(attrs.next_hop(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(attrs.communities(), &[0xFDE8_0001]);
        assert_eq!(attrs.as_path().to_string(), "3320 15169");
    }

    #[test]
    fn own_as_in_path_is_a_loop_rfc4271_9_1_2() {
        let (ops, n) = import_update(
            &ctx(true, Some(ACCEPT)),
            &update(vec![3320, 65000, 15169]),
            RpkiState::NotFound,
        );
        assert_eq!((n.received, n.rejected), (1, 1));
        assert!(matches!(ops[0], Op::Reject { .. }));
        let mut c = ctx(true, Some(ACCEPT));
        c.allowas_in = 1;
        let (ops, _) = import_update(&c, &update(vec![3320, 65000, 15169]), RpkiState::NotFound);
        assert!(
            matches!(ops[0], Op::Announce { .. }),
            "allowas-in 1 accepts one occurrence"
        );
    }

    #[test]
    fn reflected_route_with_our_originator_id_is_dropped_rfc4456_8() {
        let mut u = update(vec![15169]);
        u.attrs.originator_id = Some(Ipv4Addr::new(10, 0, 0, 1));
        let (_, n) = import_update(&ctx(false, None), &u, RpkiState::NotFound);
        assert_eq!(n.rejected, 1);
        let mut u = update(vec![15169]);
        u.attrs.cluster_list = vec![Ipv4Addr::new(10, 0, 0, 1)];
        let (_, n) = import_update(&ctx(false, None), &u, RpkiState::NotFound);
        assert_eq!(n.rejected, 1);
    }

    #[test]
    fn treat_as_withdraw_withdraws_every_announced_prefix_rfc7606_2() {
        let mut u = update(vec![3320, 15169]);
        u.treat_as_withdraw = Some(bgp::wire::Error::MalformedAttributeList);
        let (ops, n) = import_update(&ctx(true, Some(ACCEPT)), &u, RpkiState::NotFound);
        assert_eq!(n.treat_as_withdraw, 1);
        assert_eq!(
            ops,
            vec![Op::Withdraw {
                prefix: "198.51.100.0/24".parse().unwrap(),
                path_id: 0
            }]
        );
    }

    #[test]
    fn mp_reach_ipv6_uses_the_global_next_hop_and_keeps_the_link_local() {
        let mut u = update(vec![3320, 15169]);
        u.nlri.clear();
        u.attrs.next_hop = None;
        u.mp_reach = Some(MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: vec![Nlri {
                prefix: "2001:db8:1::/48".parse().unwrap(),
                path_id: Some(7),
            }],
            flowspec: Vec::new(),
            opaque_nlri: vec![],
        });
        let (ops, _) = import_update(&ctx(true, Some(ACCEPT)), &u, RpkiState::NotFound);
        let Op::Announce {
            prefix,
            path_id,
            attrs,
        } = &ops[0]
        else {
            panic!()
        };
        assert_eq!(
            (prefix.to_string().as_str(), *path_id),
            ("2001:db8:1::/48", 7)
        );
        assert_eq!(
            attrs.next_hop(),
            Some(IpAddr::V6("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(
            attrs.next_hop_ll(),
            Some("fe80::1".parse::<Ipv6Addr>().unwrap())
        );
    }

    /// A set converted ahead ([`prepare`]) is the first family's: importing with it gives the same
    /// operations and counts as converting in the import, for IPv4 NLRI, MP_REACH IPv6, both in one
    /// UPDATE, a treat-as-withdraw, a withdrawal only, and from eBGP and iBGP peers.
    #[test]
    fn a_set_converted_ahead_imports_as_one_converted_in_the_import() {
        let v6 = MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: vec![Nlri::new("2001:db8:1::/48".parse().unwrap())],
            flowspec: Vec::new(),
            opaque_nlri: vec![],
        };
        let v4 = update(vec![3320, 15169]);
        let mut both = v4.clone();
        both.mp_reach = Some(v6.clone());
        let mut only_v6 = both.clone();
        only_v6.nlri.clear();
        let mut malformed = both.clone();
        malformed.treat_as_withdraw = Some(bgp::wire::Error::MalformedAttributeList);
        let withdrawal = Update {
            withdrawn: v4.nlri.clone(),
            ..Update::default()
        };
        for ebgp in [true, false] {
            let ctx = ctx(ebgp, Some(ACCEPT));
            for u in [&v4, &both, &only_v6, &malformed, &withdrawal] {
                let ahead = prepare(&ctx, u);
                let announces = !u.nlri.is_empty() || u.mp_reach.is_some();
                assert_eq!(ahead.is_some(), announces && u.treat_as_withdraw.is_none());
                let mut c = CollectOps(Vec::new());
                let n = import_prepared(&ctx, u, RpkiState::NotFound, &mut c, ahead);
                assert_eq!(
                    (c.0, n),
                    import_update(&ctx, u, RpkiState::NotFound),
                    "{u:?}"
                );
            }
        }
    }

    /// Each prefix of an UPDATE gets the operation its own policy evaluation gives, whether the
    /// chain runs once per family (it reads no prefix) or per prefix: accept as is, accept with
    /// set actions (one interned set), reject, and prefix-dependent chains.
    #[test]
    fn a_chain_that_reads_no_prefix_gives_each_prefix_its_own_verdict() {
        let chains = [
            ACCEPT.to_string(),
            "[[policy.P.term]]\nname = \"r\"\naction = \"reject\"\n".to_string(),
            "[[policy.P.term]]\nname = \"s\"\naction = \"accept\"\n[policy.P.term.set]\nmed = 7\ncommunity-add = [\"65000:1\"]\n".to_string(),
            "[[policy.P.term]]\nname = \"l\"\naction = \"accept\"\n[policy.P.term.match]\nas-path-length-max = 1\n\
             [[policy.P.term]]\nname = \"s\"\naction = \"accept\"\n[policy.P.term.set]\nlocal-pref = 9\n".to_string(),
            "[[policy.P.term]]\nname = \"p\"\naction = \"accept\"\n[policy.P.term.match]\nprefix = [\"198.51.0.0/16 le 24\"]\n\
             [policy.P.term.set]\nmed = 1\n[[policy.P.term]]\nname = \"q\"\naction = \"reject\"\n[policy.P.term.match]\n\
             prefix = [\"203.0.113.0/24\"]\n[[policy.P.term]]\nname = \"rest\"\naction = \"accept\"\n".to_string(),
        ];
        let prefixes = [
            "198.51.100.0/24",
            "203.0.113.0/24",
            "192.0.2.0/25",
            "198.51.7.0/24",
        ];
        for text in &chains {
            for ebgp in [true, false] {
                let c = ctx(ebgp, Some(text));
                let mut u = update(vec![3320, 15169]);
                u.nlri = prefixes
                    .iter()
                    .map(|p| Nlri::new(p.parse().unwrap()))
                    .collect();
                let (ops, n) = import_update(&c, &u, RpkiState::NotFound);
                let lp = if ebgp { None } else { u.attrs.local_pref };
                let base = convert(&u.attrs, u.attrs.next_hop.map(IpAddr::V4), None, lp);
                let want: Vec<Op> = prefixes
                    .iter()
                    .map(|p| {
                        let prefix: IpNet = p.parse().unwrap();
                        let r = RouteCtx {
                            prefix,
                            peer_addr: c.peer_addr,
                            peer_as: c.peer_as,
                            local_as: c.local_as,
                            local_addr: c.local_addr,
                            rpki: RpkiState::NotFound,
                            kind: RouteKind::Unicast,
                        };
                        let policy = c.policy.as_ref().unwrap();
                        match evaluate(policy, &r, &base) {
                            Verdict::Accept(m) => Op::Announce {
                                prefix,
                                path_id: 0,
                                attrs: m.unwrap_or_else(|| base.clone()),
                            },
                            Verdict::Reject => Op::Reject { prefix, path_id: 0 },
                        }
                    })
                    .collect();
                assert_eq!(ops, want, "{text}");
                assert_eq!(n.received, 4);
                assert_eq!(n.accepted + n.rejected, 4);
            }
        }
    }

    /// The conversion as it was written before [`convert`]: an owned AS path, the set built, then
    /// each rare attribute set in turn and LOCAL_PREF replaced.
    fn convert_by_setters(
        a: &PathAttributes,
        nh: Option<IpAddr>,
        ll: Option<Ipv6Addr>,
        local_pref: Option<u32>,
    ) -> Attrs {
        let as_path = a
            .as_path
            .as_ref()
            .map(|p| {
                AsPath::from_segments(
                    p.segments
                        .iter()
                        .map(|s| (segment_kind(s.kind), &s.asns[..])),
                )
            })
            .unwrap_or_default();
        let communities: Vec<u32> = a.communities.iter().map(|c| c.0).collect();
        let mut out = Attrs::new(&CommonAttrs {
            origin: match a.origin {
                Some(WireOrigin::Igp) | None => Origin::Igp,
                Some(WireOrigin::Egp) => Origin::Egp,
                Some(WireOrigin::Incomplete) => Origin::Incomplete,
            },
            atomic_aggregate: a.atomic_aggregate,
            as_path: &as_path,
            next_hop: nh,
            med: a.med,
            local_pref: a.local_pref,
            communities: &communities,
            weight: 0,
        });
        out.set_next_hop_ll(ll);
        out.set_aggregator(a.aggregator.map(|g| (g.asn, g.address)));
        out.set_originator_id(a.originator_id);
        out.set_cluster_list(a.cluster_list.clone());
        out.set_ext_communities(a.ext_communities.iter().map(|c| c.0).collect::<Vec<_>>());
        out.set_large_communities(
            a.large_communities
                .iter()
                .map(|c| LargeCommunity {
                    global: c.global,
                    local1: c.local1,
                    local2: c.local2,
                })
                .collect::<Vec<_>>(),
        );
        out.set_unknown(
            a.unknown
                .iter()
                .map(|u| RawAttr {
                    flags: u.flags,
                    type_code: u.type_code,
                    value: u.value.clone().into(),
                })
                .collect::<Vec<_>>(),
        );
        out.set_local_pref(local_pref);
        out
    }

    fn opt<T: std::fmt::Debug>(
        s: impl proptest::strategy::Strategy<Value = T>,
    ) -> impl proptest::strategy::Strategy<Value = Option<T>> {
        proptest::option::weighted(0.3, s)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The one-allocation conversion builds the set (content, hash, interned identity) that
        /// building it and setting each attribute in turn builds, for paths and community lists
        /// longer than its stack buffers, every rare attribute and LOCAL_PREF kept or dropped.
        #[test]
        fn conversion_equals_setting_each_attribute(
            segs in proptest::collection::vec((0u8..4, proptest::collection::vec(1u32..5, 0..40)), 0..4),
            comms in proptest::collection::vec(proptest::num::u32::ANY, 0..24),
            med in opt(0u32..3),
            lp in opt(0u32..3),
            keep_lp in proptest::bool::ANY,
            nh6 in proptest::bool::ANY,
            ll in opt(proptest::num::u128::ANY),
            aggregator in opt((proptest::num::u32::ANY, proptest::num::u32::ANY)),
            originator in opt(proptest::num::u32::ANY),
            clusters in proptest::collection::vec(proptest::num::u32::ANY, 0..3),
            ext in proptest::collection::vec(proptest::num::u64::ANY, 0..3),
            large in proptest::collection::vec((0u32..3, 0u32..3, 0u32..3), 0..3),
            unknown in proptest::collection::vec((proptest::num::u8::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..5)), 0..2),
            atomic in proptest::bool::ANY,
            origin in 0u8..4,
        ) {
            let mut a = PathAttributes {
                origin: [None, Some(WireOrigin::Igp), Some(WireOrigin::Egp), Some(WireOrigin::Incomplete)][origin as usize],
                med,
                local_pref: lp,
                atomic_aggregate: atomic,
                aggregator: aggregator.map(|(asn, addr)| bgp::wire::attr::Aggregator { asn, address: Ipv4Addr::from(addr) }),
                communities: comms.iter().map(|c| Community(*c)).collect(),
                originator_id: originator.map(Ipv4Addr::from),
                cluster_list: clusters.iter().map(|c| Ipv4Addr::from(*c)).collect(),
                ext_communities: ext.iter().map(|e| bgp::wire::attr::community::ExtCommunity(e.to_be_bytes())).collect(),
                large_communities: large.iter().map(|(g, l1, l2)| bgp::wire::attr::community::LargeCommunity { global: *g, local1: *l1, local2: *l2 }).collect(),
                unknown: unknown.iter().map(|(t, v)| bgp::wire::attr::RawAttribute { flags: 0xC0, type_code: *t, value: v.clone() }).collect(),
                ..PathAttributes::default()
            };
            if !segs.is_empty() {
                a.as_path = Some(WAsPath {
                    segments: segs.iter().map(|(k, asns)| WSegment {
                        kind: [SegmentType::Set, SegmentType::Sequence, SegmentType::ConfedSequence, SegmentType::ConfedSet][*k as usize],
                        asns: asns.clone(),
                    }).collect(),
                });
            }
            let nh = Some(if nh6 { IpAddr::V6(Ipv6Addr::LOCALHOST) } else { IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)) });
            let ll = ll.map(Ipv6Addr::from);
            let lp = if keep_lp { a.local_pref } else { None };
            let fast = convert(&a, nh, ll, lp);
            let slow = convert_by_setters(&a, nh, ll, lp);
            proptest::prop_assert_eq!(&fast, &slow);
            let mut store = crate::rib::attrs::AttrStore::new();
            let (f, s) = (store.intern(fast), store.intern(slow));
            proptest::prop_assert!(AttrRef::ptr_eq(&f, &s), "one interned set");
            proptest::prop_assert_eq!(store.len(), 1);
            if keep_lp {
                proptest::prop_assert_eq!(to_attrs(&a, nh, ll), (*f).clone());
            }
        }
    }
}
