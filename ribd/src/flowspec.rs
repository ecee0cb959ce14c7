//! FlowSpec (RFC 8955, RFC 8956) in ribd: the rules peers announce, one table per family, the best
//! announcement of each rule, the feasibility check of RFC 8955 §6 against the unicast RIB, the
//! §5.1 order, and the translation into the XDP classifier's rule model.
//!
//! ```text
//!   UPDATE (MP_REACH/MP_UNREACH, SAFI 133) ──► FlowRib: rule ─► announcements (one per peer)
//!                                                   │ best: LOCAL_PREF, AS_PATH length, eBGP, address
//!   unicast RIB ──best-match / more-specifics──► feasible? (§6: destination present, same neighbour
//!                                                   │        as the best unicast route, no more-specific
//!                                                   │        from another neighbour AS)
//!                                                   ▼ §5.1 order
//!                                  fib_ebpf::acl::Rule (matches, drop / police / mark, terminal)
//! ```
//!
//! What the classifier cannot express is reported, not approximated: an IPv6 prefix with an offset
//! and the flow-label component make a rule "unsupported" (it is kept in the table and shown, but not
//! installed); redirect actions are shown and ignored (there are no VRFs to redirect into). The port
//! component (type 4, source *or* destination port) becomes two classifier rules, one per direction,
//! with the same action; a rate limit on it then polices each direction separately.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use bgp::wire::flowspec::action::FlowAction;
use bgp::wire::flowspec::{
    BitmaskTerm, Component, FlowPrefix, FlowSpec, NumericTerm, eval_bitmask, eval_numeric,
};
use fib_sync::fib_ebpf::acl;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// FlowSpec settings (`[flowspec]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlowSpecConfig {
    /// RFC 8955 §6 feasibility check against the unicast RIB. Off accepts every rule a peer sends
    /// (for controllers that announce mitigations without the covering unicast route).
    #[serde(default = "yes")]
    pub validate: bool,
    /// Install feasible rules into the XDP classifier. Off keeps the table for inspection only.
    #[serde(default = "yes")]
    pub enforce: bool,
    /// Rules of this router (`[[flowspec.rule]]`): enforced like a peer's (no §6 check: they are ours)
    /// and advertised to FlowSpec peers under the export policy.
    #[serde(default)]
    pub rule: Vec<LocalRuleDef>,
}

/// One locally configured rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LocalRuleDef {
    /// The match in the operator text form (`dst 192.0.2.0/24 proto =17 dport =53`); the family is
    /// IPv6 when `family = "ipv6"`.
    #[serde(rename = "match")]
    pub matches: String,
    #[serde(default)]
    pub family: Option<LocalFamily>,
    /// Actions: `discard`, `rate-bytes N`, `rate-packets N`, `mark DSCP`, `continue` (T bit: go on with
    /// the next rules), `sample`.
    pub then: Vec<String>,
    /// Communities attached when advertised (`ASN:VALUE` or well-known names).
    #[serde(default)]
    pub communities: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalFamily {
    Ipv4,
    Ipv6,
}

/// The name the FlowRib knows locally configured rules by (not a valid peer name in the config).
pub const LOCAL_PEER: &str = "(config)";

impl LocalRuleDef {
    /// The rule and its attribute set (actions as extended communities, communities), or what is wrong
    /// with it (field name, message).
    pub fn compile(&self) -> Result<(FlowSpec, crate::rib::attrs::Attrs), (String, String)> {
        let fam = match self.family {
            Some(LocalFamily::Ipv6) => bgp::wire::nlri::Family::V6,
            _ => bgp::wire::nlri::Family::V4,
        };
        let rule =
            FlowSpec::parse(fam, &self.matches).map_err(|e| ("match".into(), e.to_string()))?;
        let mut ext = Vec::new();
        for (i, t) in self.then.iter().enumerate() {
            let a = parse_action(t).map_err(|e| (format!("then[{i}]"), e))?;
            if let Some(c) = a.to_ext_community() {
                ext.push(c.0);
            }
        }
        let mut communities = Vec::new();
        for (i, c) in self.communities.iter().enumerate() {
            communities.push(
                crate::policy::community::parse_community(c)
                    .map_err(|e| (format!("communities[{i}]"), e.to_string()))?,
            );
        }
        Ok((
            rule,
            crate::rib::attrs::Attrs::default()
                .with_communities(communities)
                .with_ext_communities(ext),
        ))
    }
}

/// One action word of a local rule.
fn parse_action(t: &str) -> Result<FlowAction, String> {
    let mut w = t.split_whitespace();
    let num = |v: Option<&str>| -> Result<f32, String> {
        v.and_then(|x| x.parse::<f32>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("{t:?}: expected a non-negative number"))
    };
    let a = match w.next() {
        Some("discard") => FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 0.0,
        },
        Some("rate-bytes") => FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: num(w.next())?,
        },
        Some("rate-packets") => FlowAction::TrafficRatePackets {
            asn: 0,
            packets_per_second: num(w.next())?,
        },
        Some("mark") => FlowAction::TrafficMarking {
            dscp: w
                .next()
                .and_then(|x| x.parse::<u8>().ok())
                .filter(|d| *d < 64)
                .ok_or_else(|| format!("{t:?}: expected a DSCP value 0-63"))?,
        },
        Some("continue") => FlowAction::TrafficAction {
            sample: false,
            terminal: true,
        },
        Some("sample") => FlowAction::TrafficAction {
            sample: true,
            terminal: false,
        },
        _ => {
            return Err(format!(
                "{t:?}: expected discard, rate-bytes N, rate-packets N, mark DSCP, continue or sample"
            ));
        }
    };
    if w.next().is_some() {
        return Err(format!("{t:?}: unexpected words after the action"));
    }
    Ok(a)
}

/// Checks every `[[flowspec.rule]]` (config validation): (field, message) per problem.
pub fn validate_local(cfg: &FlowSpecConfig) -> Vec<(String, String)> {
    cfg.rule
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.compile()
                .err()
                .map(|(f, m)| (format!("flowspec.rule[{i}].{f}"), m))
        })
        .collect()
}

fn yes() -> bool {
    true
}

impl Default for FlowSpecConfig {
    fn default() -> Self {
        FlowSpecConfig {
            validate: true,
            enforce: true,
            rule: Vec::new(),
        }
    }
}

/// One peer's announcement of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowPath {
    pub peer: String,
    pub peer_addr: IpAddr,
    pub peer_as: u32,
    pub ebgp: bool,
    pub local_pref: u32,
    pub as_path_len: usize,
    pub actions: Vec<FlowAction>,
    /// Every path attribute as received (no next-hop), for export to other peers.
    pub attrs: std::sync::Arc<crate::rib::attrs::Attrs>,
}

/// RFC 7606 outcomes of FlowSpec UPDATEs from one peer, for the API and metrics. Counts are since ribd
/// started (they survive session resets); `disabled` is for the current session only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowPeerStats {
    /// UPDATEs of each family (IPv4, IPv6) handled as treat-as-withdraw (RFC 7606 §2, RFC 8955 §4.2, §10).
    pub treat_as_withdraw: [u64; 2],
    /// "AFI/SAFI disable" events per family (RFC 7606 §2, §5.3, RFC 4760 §7).
    pub afi_safi_disable: [u64; 2],
    /// The family is disabled on the current session, with the error that disabled it.
    pub disabled: [Option<String>; 2],
    /// The last RFC 7606 error of each family.
    pub last_error: [Option<String>; 2],
}

impl FlowPeerStats {
    /// An UPDATE of `family` handled as treat-as-withdraw because of `error`.
    pub fn treat_as_withdraw(&mut self, family: bgp::wire::nlri::Family, error: String) {
        let i = fam_index(family);
        self.treat_as_withdraw[i] += 1;
        self.last_error[i] = Some(error);
    }

    /// `family` disabled for the rest of the session because of `error`.
    pub fn disable(&mut self, family: bgp::wire::nlri::Family, error: String) {
        let i = fam_index(family);
        self.afi_safi_disable[i] += 1;
        self.disabled[i] = Some(error.clone());
        self.last_error[i] = Some(error);
    }

    /// A new session (or the end of one): no family is disabled any more.
    pub fn session_reset(&mut self) {
        self.disabled = [None, None];
    }
}

/// 0 for IPv4, 1 for IPv6 (index of per-family arrays).
pub fn fam_index(family: bgp::wire::nlri::Family) -> usize {
    match family {
        bgp::wire::nlri::Family::V4 => 0,
        bgp::wire::nlri::Family::V6 => 1,
    }
}

/// The best unicast route covering a prefix: who it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnicastOrigin {
    pub prefix: IpNet,
    pub peer_addr: IpAddr,
    pub peer_as: u32,
}

/// What the unicast RIB answers for the feasibility check.
pub trait UnicastView {
    /// The longest unicast route containing `p` (`p` itself included) and the neighbour of its best path.
    fn best_match(&self, p: IpNet) -> Option<UnicastOrigin>;
    /// Whether a unicast route strictly inside `p` has a best path from a neighbour AS other than `asn`.
    fn more_specific_from_other_as(&self, p: IpNet, asn: u32) -> bool;
}

/// The rules learned, per rule the announcements of every peer.
#[derive(Debug, Default)]
pub struct FlowRib {
    /// `Ord` of [`FlowSpec`] is the §5.1 precedence (IPv4 before IPv6): iteration is install order.
    rules: BTreeMap<FlowSpec, Vec<FlowPath>>,
    /// Set on every change; the daemon clears it once it has re-evaluated.
    pub changed: bool,
}

/// A rule as evaluated: what the API shows and what the dataplane gets.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowEntry {
    pub rule: FlowSpec,
    pub best: FlowPath,
    /// Other peers announcing the same rule.
    pub alternatives: usize,
    pub feasible: bool,
    /// Why it is not feasible, not supported, or what of it is ignored.
    pub reason: Option<String>,
    /// Classifier rules to install (empty when infeasible or unsupported).
    pub compiled: Vec<acl::Rule>,
    /// The rules it translates to, installed or not (what it would do).
    pub translated: Vec<acl::Rule>,
}

impl FlowRib {
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Adds or replaces `path.peer`'s announcement of `rule`.
    pub fn announce(&mut self, rule: FlowSpec, path: FlowPath) {
        let paths = self.rules.entry(rule).or_default();
        match paths.iter_mut().find(|p| p.peer == path.peer) {
            Some(p) if *p == path => return,
            Some(p) => *p = path,
            None => paths.push(path),
        }
        self.changed = true;
    }

    /// Removes `peer`'s announcement of `rule`; true if there was one.
    pub fn withdraw(&mut self, rule: &FlowSpec, peer: &str) -> bool {
        let Some(paths) = self.rules.get_mut(rule) else {
            return false;
        };
        let before = paths.len();
        paths.retain(|p| p.peer != peer);
        let gone = paths.len() != before;
        if paths.is_empty() {
            self.rules.remove(rule);
        }
        self.changed |= gone;
        gone
    }

    /// Replaces the locally configured rules ([`LOCAL_PEER`]) with `rules`.
    pub fn set_local(&mut self, rules: Vec<(FlowSpec, crate::rib::attrs::Attrs)>) {
        let keep: std::collections::BTreeSet<&FlowSpec> = rules.iter().map(|(r, _)| r).collect();
        let old: Vec<FlowSpec> = self
            .rules
            .iter()
            .filter(|(r, ps)| !keep.contains(r) && ps.iter().any(|p| p.peer == LOCAL_PEER))
            .map(|(r, _)| r.clone())
            .collect();
        for r in old {
            self.withdraw(&r, LOCAL_PEER);
        }
        for (rule, attrs) in rules {
            let path = FlowPath {
                peer: LOCAL_PEER.into(),
                peer_addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                peer_as: 0,
                ebgp: false,
                local_pref: attrs.local_pref().unwrap_or(100),
                as_path_len: 0,
                actions: attrs
                    .ext_communities()
                    .iter()
                    .filter_map(|c| {
                        FlowAction::from_ext_community(bgp::wire::attr::community::ExtCommunity(*c))
                    })
                    .collect(),
                attrs: std::sync::Arc::new(attrs),
            };
            self.announce(rule, path);
        }
    }

    /// Removes every announcement of `peer` (session down); returns how many.
    pub fn peer_down(&mut self, peer: &str) -> usize {
        self.remove_peer_where(peer, |_| true)
    }

    /// Removes `peer`'s announcements of one family (AFI/SAFI disable); returns how many.
    pub fn peer_family_down(&mut self, peer: &str, family: bgp::wire::nlri::Family) -> usize {
        self.remove_peer_where(peer, |r| r.family() == family)
    }

    fn remove_peer_where(&mut self, peer: &str, rule: impl Fn(&FlowSpec) -> bool) -> usize {
        let mut n = 0;
        self.rules.retain(|r, paths| {
            if !rule(r) {
                return true;
            }
            let before = paths.len();
            paths.retain(|p| p.peer != peer);
            n += before - paths.len();
            !paths.is_empty()
        });
        self.changed |= n > 0;
        n
    }

    /// Rules of one family (IPv6 when `v6`) announced by `peer`.
    pub fn count_of(&self, peer: &str, v6: bool) -> usize {
        self.rules
            .iter()
            .filter(|(r, ps)| {
                (r.family() == bgp::wire::nlri::Family::V6) == v6
                    && ps.iter().any(|p| p.peer == peer)
            })
            .count()
    }

    /// Every rule in §5.1 order with its best announcement, feasibility and classifier rules.
    pub fn evaluate(&self, validate: bool, unicast: &dyn UnicastView) -> Vec<FlowEntry> {
        self.rules
            .iter()
            .filter_map(|(rule, paths)| {
                let best = best_path(paths)?.clone();
                // Our own rules are not checked against the unicast RIB (§6 is about rules from peers).
                let infeasible = if validate && best.peer != LOCAL_PEER {
                    feasibility(rule, &best, unicast).err()
                } else {
                    None
                };
                let translated = translate(rule, &best.actions);
                let rules = translated
                    .as_ref()
                    .map(|(r, _)| r.clone())
                    .unwrap_or_default();
                let (compiled, reason) = match (&infeasible, translated) {
                    (Some(why), _) => (Vec::new(), Some(why.clone())),
                    (None, Ok((rules, note))) => (rules, note),
                    (None, Err(why)) => (Vec::new(), Some(why)),
                };
                Some(FlowEntry {
                    rule: rule.clone(),
                    alternatives: paths.len() - 1,
                    feasible: infeasible.is_none(),
                    best,
                    reason,
                    compiled,
                    translated: rules,
                })
            })
            .collect()
    }
}

/// Import of one announced rule from a peer: AS_PATH loop (our AS, allowas-in), then the import policy
/// with the rule's destination prefix as the prefix ([`crate::policy::MatchDef::safi`]); RFC 8212: an
/// eBGP peer without import policy imports nothing. `None` = refused; else the attributes to keep
/// (a policy may have changed them, e.g. LOCAL_PREF).
pub fn import_rule(
    rule: &FlowSpec,
    attrs: &crate::rib::attrs::Attrs,
    ctx: &crate::import::ImportCtx,
) -> Option<crate::rib::attrs::Attrs> {
    use crate::policy::{RouteCtx, RouteKind, RpkiState, Verdict, evaluate};
    if attrs.as_path().count(ctx.local_as) > usize::from(ctx.allowas_in) {
        return None;
    }
    // LOCAL_PREF is not taken from an eBGP neighbour (RFC 4271 §5.1.5).
    let stripped;
    let attrs = if ctx.ebgp && attrs.local_pref().is_some() {
        stripped = attrs.clone().with_local_pref(None);
        &stripped
    } else {
        attrs
    };
    let chain = match &ctx.policy {
        None if ctx.ebgp => return None,
        None => return Some(attrs.clone()),
        Some(chain) => chain,
    };
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
    let r = RouteCtx {
        prefix,
        peer_addr: ctx.peer_addr,
        peer_as: ctx.peer_as,
        local_as: ctx.local_as,
        local_addr: ctx.local_addr,
        rpki: RpkiState::NotFound,
        kind,
    };
    match evaluate(chain, &r, attrs) {
        Verdict::Accept(Some(a)) => Some(a),
        Verdict::Accept(None) => Some(attrs.clone()),
        Verdict::Reject => None,
    }
}

/// Rules whose evaluated entry differs between two evaluations (added, removed, other best
/// announcement, feasibility, translation): what FlowSpec export must look at again. Both lists are in
/// [`FlowSpec`] order, as [`FlowRib::evaluate`] returns them.
pub fn changed_rules(old: &[FlowEntry], new: &[FlowEntry]) -> std::collections::BTreeSet<FlowSpec> {
    let before: BTreeMap<&FlowSpec, &FlowEntry> = old.iter().map(|e| (&e.rule, e)).collect();
    let after: BTreeMap<&FlowSpec, &FlowEntry> = new.iter().map(|e| (&e.rule, e)).collect();
    let mut out = std::collections::BTreeSet::new();
    for (r, e) in &after {
        if before.get(r) != Some(e) {
            out.insert((*r).clone());
        }
    }
    for r in before.keys() {
        if !after.contains_key(r) {
            out.insert((*r).clone());
        }
    }
    out
}

/// The preferred announcement: highest LOCAL_PREF, shortest AS_PATH, eBGP over iBGP, lowest address.
fn best_path(paths: &[FlowPath]) -> Option<&FlowPath> {
    paths.iter().min_by(|a, b| {
        b.local_pref
            .cmp(&a.local_pref)
            .then(a.as_path_len.cmp(&b.as_path_len))
            .then(b.ebgp.cmp(&a.ebgp))
            .then(a.peer_addr.cmp(&b.peer_addr))
    })
}

/// RFC 8955 §6: a rule is feasible when (a) it has a destination prefix, (b) the best unicast route
/// for that prefix was learned from the same neighbour as the rule, and (c) no more-specific unicast
/// route inside it comes from another neighbour AS.
fn feasibility(rule: &FlowSpec, best: &FlowPath, unicast: &dyn UnicastView) -> Result<(), String> {
    let Some(dst) = rule.destination() else {
        return Err("infeasible: no destination prefix (RFC 8955 §6 a)".into());
    };
    let dst = dst.prefix();
    let Some(origin) = unicast.best_match(dst) else {
        return Err(format!(
            "infeasible: no unicast route covers {dst} (RFC 8955 §6 b)"
        ));
    };
    if origin.peer_addr != best.peer_addr {
        let from = if origin.peer_addr.is_unspecified() {
            "this router's configuration (static)".to_string()
        } else {
            origin.peer_addr.to_string()
        };
        return Err(format!(
            "infeasible: the best unicast route {} comes from {from}, not from the rule's neighbour {} (RFC 8955 §6 b)",
            origin.prefix, best.peer_addr
        ));
    }
    if unicast.more_specific_from_other_as(dst, origin.peer_as) {
        return Err(format!(
            "infeasible: a more-specific unicast route inside {dst} comes from a neighbour AS other than {} (RFC 8955 §6 c)",
            origin.peer_as
        ));
    }
    Ok(())
}

/// A stable rule id: a hash of the rule's encoding and the variant index (counters and rate-limiter
/// state follow it across rule-set changes and restarts).
pub fn rule_id(rule: &FlowSpec, variant: u8) -> acl::RuleId {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    rule.to_bytes().hash(&mut h);
    (rule.family() == bgp::wire::nlri::Family::V6).hash(&mut h);
    variant.hash(&mut h);
    // The top bit marks FlowSpec ids (config ACL ids have it clear).
    acl::RuleId(h.finish() | 1 << 63)
}

/// FNV-1a, deterministic across processes (unlike the std hasher): rule ids of FlowSpec and of
/// config ACLs must survive restarts.
pub(crate) struct Fnv(pub(crate) u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Values of `0..=max` a numeric component accepts, as inclusive ranges (evaluated exactly, so every
/// operator combination of the RFC means what it says).
fn ranges(terms: &[NumericTerm], max: u32) -> Vec<std::ops::RangeInclusive<u32>> {
    let mut out = Vec::new();
    let mut start: Option<u32> = None;
    for v in 0..=max {
        let hit = eval_numeric(terms, u64::from(v));
        match (hit, start) {
            (true, None) => start = Some(v),
            (false, Some(s)) => {
                out.push(s..=v - 1);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..=max);
    }
    out
}

fn ranges8(terms: &[NumericTerm], max: u8) -> Vec<std::ops::RangeInclusive<u8>> {
    ranges(terms, u32::from(max))
        .into_iter()
        .map(|r| *r.start() as u8..=*r.end() as u8)
        .collect()
}

fn ranges16(terms: &[NumericTerm]) -> Vec<std::ops::RangeInclusive<u16>> {
    ranges(terms, u32::from(u16::MAX))
        .into_iter()
        .map(|r| *r.start() as u16..=*r.end() as u16)
        .collect()
}

fn byteset(terms: &[BitmaskTerm]) -> acl::ByteSet {
    acl::ByteSet::from_fn(|v| eval_bitmask(terms, u64::from(v)))
}

fn prefix(p: FlowPrefix) -> Result<acl::Prefix, String> {
    if p.offset() != 0 {
        return Err(format!(
            "unsupported: IPv6 prefix with offset {} (the classifier matches from bit 0)",
            p.offset()
        ));
    }
    Ok(match p.prefix() {
        IpNet::V4(n) => acl::Prefix::V4(n.network(), n.prefix_len()),
        IpNet::V6(n) => acl::Prefix::V6(n.network(), n.prefix_len()),
    })
}

/// The classifier rules of one FlowSpec rule with its actions, plus a note on what is ignored; an
/// error when the rule cannot be enforced as written.
pub fn translate(
    rule: &FlowSpec,
    actions: &[FlowAction],
) -> Result<(Vec<acl::Rule>, Option<String>), String> {
    let mut m = acl::Match {
        family: Some(match rule.family() {
            bgp::wire::nlri::Family::V4 => acl::Family::V4,
            bgp::wire::nlri::Family::V6 => acl::Family::V6,
        }),
        ..acl::Match::default()
    };
    let mut either_port: Option<Vec<std::ops::RangeInclusive<u16>>> = None;
    for c in rule.components() {
        match c {
            Component::DestinationPrefix(p) => m.dst = Some(prefix(*p)?),
            Component::SourcePrefix(p) => m.src = Some(prefix(*p)?),
            Component::Protocol(t) => m.protocol = Some(ranges8(t, u8::MAX)),
            Component::Port(t) => either_port = Some(ranges16(t)),
            Component::DestinationPort(t) => m.dst_port = Some(ranges16(t)),
            Component::SourcePort(t) => m.src_port = Some(ranges16(t)),
            Component::IcmpType(t) => m.icmp_type = Some(ranges8(t, u8::MAX)),
            Component::IcmpCode(t) => m.icmp_code = Some(ranges8(t, u8::MAX)),
            Component::TcpFlags(t) => m.tcp_flags = Some(byteset(t)),
            Component::PacketLength(t) => m.pkt_len = Some(ranges16(t)),
            Component::Dscp(t) => m.dscp = Some(ranges8(t, 63)),
            Component::Fragment(t) => m.fragment = Some(byteset(t)),
            Component::FlowLabel(_) => {
                return Err("unsupported: the flow-label component (type 13)".into());
            }
        }
    }
    let mut action = acl::Action::Accept;
    let mut set_dscp = None;
    let mut terminal = true;
    let mut ignored = Vec::new();
    // The most restrictive rate wins when several are present; a rate of 0 discards.
    let police = |rate: f32, unit: acl::RateUnit, action: &mut acl::Action| {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate as u64
        } else {
            0
        };
        let new = if rate == 0 {
            acl::Action::Drop
        } else {
            let burst = match unit {
                acl::RateUnit::Packets => (rate / 10).max(1),
                acl::RateUnit::Bytes => (rate / 10).max(1500),
            };
            acl::Action::RateLimit(acl::RateLimit { rate, unit, burst })
        };
        *action = match (*action, new) {
            (acl::Action::Drop, _) | (_, acl::Action::Drop) => acl::Action::Drop,
            (acl::Action::RateLimit(old), acl::Action::RateLimit(n))
                if old.unit == n.unit && old.rate <= n.rate =>
            {
                acl::Action::RateLimit(old)
            }
            (_, n) => n,
        };
    };
    for a in actions {
        match *a {
            FlowAction::TrafficRateBytes {
                bytes_per_second, ..
            } => police(bytes_per_second, acl::RateUnit::Bytes, &mut action),
            FlowAction::TrafficRatePackets {
                packets_per_second, ..
            } => police(packets_per_second, acl::RateUnit::Packets, &mut action),
            // The T bit set means "go on with the next rules" (RFC 8955 §7.3).
            FlowAction::TrafficAction { terminal: t, .. } => terminal = !t,
            FlowAction::TrafficMarking { dscp } => set_dscp = Some(dscp & 0x3f),
            other => ignored.push(format!("{other}")),
        }
    }
    let note = (!ignored.is_empty())
        .then(|| format!("ignored (no VRFs to redirect into): {}", ignored.join(", ")));
    let make = |matches: acl::Match, variant: u8| acl::Rule {
        id: rule_id(rule, variant),
        matches,
        action,
        set_dscp,
        terminal,
    };
    let rules = match either_port {
        None => vec![make(m, 0)],
        Some(ports) => {
            // Source or destination port: one rule per direction (and with the other direction's
            // explicit component kept).
            let mut by_dst = m.clone();
            by_dst.dst_port = Some(intersect(by_dst.dst_port.take(), &ports));
            let mut by_src = m;
            by_src.src_port = Some(intersect(by_src.src_port.take(), &ports));
            vec![make(by_dst, 1), make(by_src, 2)]
        }
    };
    Ok((rules, note))
}

/// `a ∩ b` of two range lists (`None` = everything).
fn intersect(
    a: Option<Vec<std::ops::RangeInclusive<u16>>>,
    b: &[std::ops::RangeInclusive<u16>],
) -> Vec<std::ops::RangeInclusive<u16>> {
    let Some(a) = a else {
        return b.to_vec();
    };
    let mut out = Vec::new();
    for x in &a {
        for y in b {
            let (s, e) = ((*x.start()).max(*y.start()), (*x.end()).min(*y.end()));
            if s <= e {
                out.push(s..=e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::wire::flowspec::Cmp;
    use bgp::wire::nlri::Family;

    fn rule(c: Vec<Component>) -> FlowSpec {
        FlowSpec::new(Family::V4, c).unwrap()
    }
    fn dst(p: &str) -> Component {
        Component::DestinationPrefix(FlowPrefix::new(p.parse().unwrap()))
    }
    fn eq(v: u64) -> NumericTerm {
        NumericTerm::new(Cmp::EQ, v)
    }
    fn path(peer: &str, addr: &str, asn: u32) -> FlowPath {
        FlowPath {
            peer: peer.into(),
            peer_addr: addr.parse().unwrap(),
            peer_as: asn,
            ebgp: true,
            local_pref: 100,
            as_path_len: 1,
            actions: vec![],
            attrs: Default::default(),
        }
    }

    struct View(Vec<(IpNet, IpAddr, u32)>);
    impl UnicastView for View {
        fn best_match(&self, p: IpNet) -> Option<UnicastOrigin> {
            self.0
                .iter()
                .filter(|(n, ..)| n.contains(&p))
                .max_by_key(|(n, ..)| n.prefix_len())
                .map(|&(prefix, peer_addr, peer_as)| UnicastOrigin {
                    prefix,
                    peer_addr,
                    peer_as,
                })
        }
        fn more_specific_from_other_as(&self, p: IpNet, asn: u32) -> bool {
            self.0
                .iter()
                .any(|(n, _, a)| p.contains(n) && *n != p && *a != asn)
        }
    }

    #[test]
    fn numeric_components_become_exact_ranges() {
        // dport >=80 & <=90 or ==443
        let t = vec![
            NumericTerm::new(Cmp::GE, 80),
            NumericTerm::new(Cmp::LE, 90).and(),
            eq(443),
        ];
        assert_eq!(ranges16(&t), vec![80..=90, 443..=443]);
        assert_eq!(ranges8(&[eq(6), eq(17)], 255), vec![6..=6, 17..=17]);
        // An unsatisfiable component matches nothing rather than everything.
        let never = vec![
            NumericTerm::new(Cmp::LT, 10),
            NumericTerm::new(Cmp::GT, 20).and(),
        ];
        assert!(ranges16(&never).is_empty());
    }

    #[test]
    fn actions_map_to_drop_police_mark_and_terminal() {
        let r = rule(vec![dst("192.0.2.0/24"), Component::Protocol(vec![eq(17)])]);
        let drop = FlowAction::TrafficRateBytes {
            asn: 0,
            bytes_per_second: 0.0,
        };
        let (rules, note) = translate(&r, &[drop]).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].action, acl::Action::Drop);
        assert!(rules[0].terminal && note.is_none());
        assert_eq!(
            rules[0].matches.dst,
            Some(acl::Prefix::V4("192.0.2.0".parse().unwrap(), 24))
        );
        assert_eq!(rules[0].matches.protocol, Some(vec![17..=17]));

        let police = FlowAction::TrafficRatePackets {
            asn: 0,
            packets_per_second: 200.0,
        };
        let mark = FlowAction::TrafficMarking { dscp: 10 };
        let go_on = FlowAction::TrafficAction {
            sample: false,
            terminal: true,
        };
        let (rules, _) = translate(&r, &[police, mark, go_on]).unwrap();
        assert_eq!(
            rules[0].action,
            acl::Action::RateLimit(acl::RateLimit {
                rate: 200,
                unit: acl::RateUnit::Packets,
                burst: 20
            })
        );
        assert_eq!(rules[0].set_dscp, Some(10));
        assert!(
            !rules[0].terminal,
            "the T bit means: evaluate further rules"
        );

        let redirect = FlowAction::RedirectAs2 { asn: 1, value: 2 };
        let (rules, note) = translate(&r, &[redirect]).unwrap();
        assert_eq!(rules[0].action, acl::Action::Accept);
        assert!(note.unwrap().contains("ignored"));
    }

    #[test]
    fn port_component_becomes_one_rule_per_direction() {
        let r = rule(vec![
            dst("192.0.2.0/24"),
            Component::Port(vec![eq(53)]),
            Component::DestinationPort(vec![NumericTerm::new(Cmp::LE, 1000)]),
        ]);
        let (rules, _) = translate(&r, &[]).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].matches.dst_port, Some(vec![53..=53]));
        assert_eq!(rules[0].matches.src_port, None);
        assert_eq!(rules[1].matches.src_port, Some(vec![53..=53]));
        assert_eq!(rules[1].matches.dst_port, Some(vec![0..=1000]));
        assert_ne!(rules[0].id, rules[1].id);
    }

    #[test]
    fn flow_label_and_offsets_are_unsupported_not_approximated() {
        let r6 = FlowSpec::new(Family::V6, vec![Component::FlowLabel(vec![eq(5)])]).unwrap();
        assert!(translate(&r6, &[]).unwrap_err().contains("flow-label"));
    }

    #[test]
    fn feasibility_follows_rfc8955_section_6() {
        let peer = "10.0.0.1".parse().unwrap();
        let other = "10.0.0.2".parse().unwrap();
        let mut rib = FlowRib::default();
        let r = rule(vec![dst("192.0.2.0/24"), Component::Protocol(vec![eq(17)])]);
        rib.announce(r.clone(), path("a", "10.0.0.1", 65001));
        // (b) no unicast route at all
        let e = &rib.evaluate(true, &View(vec![]))[0];
        assert!(!e.feasible && e.compiled.is_empty(), "{e:?}");
        // (b) the covering route comes from the same neighbour: feasible
        let v = View(vec![("192.0.0.0/16".parse().unwrap(), peer, 65001)]);
        let e = &rib.evaluate(true, &v)[0];
        assert!(e.feasible && e.compiled.len() == 1, "{e:?}");
        // (b) from another neighbour: infeasible
        let v = View(vec![("192.0.2.0/24".parse().unwrap(), other, 65001)]);
        assert!(!rib.evaluate(true, &v)[0].feasible);
        // (c) a more-specific from another AS
        let v = View(vec![
            ("192.0.2.0/24".parse().unwrap(), peer, 65001),
            ("192.0.2.128/25".parse().unwrap(), other, 65002),
        ]);
        let e = &rib.evaluate(true, &v)[0];
        assert!(!e.feasible && e.reason.as_deref().unwrap().contains("§6 c"));
        // validation off: installed anyway
        assert!(rib.evaluate(false, &View(vec![]))[0].feasible);
        // (a) no destination prefix
        let nodst = rule(vec![Component::Protocol(vec![eq(6)])]);
        rib.announce(nodst.clone(), path("a", "10.0.0.1", 65001));
        let all = rib.evaluate(true, &View(vec![]));
        let e = all.iter().find(|e| e.rule == nodst).unwrap();
        assert!(e.reason.as_deref().unwrap().contains("§6 a"));
    }

    #[test]
    fn best_announcement_and_withdrawals() {
        let r = rule(vec![dst("192.0.2.0/24")]);
        let mut rib = FlowRib::default();
        let mut a = path("a", "10.0.0.1", 65001);
        a.as_path_len = 3;
        rib.announce(r.clone(), a);
        rib.announce(r.clone(), path("b", "10.0.0.2", 65002));
        let e = &rib.evaluate(false, &View(vec![]))[0];
        assert_eq!((e.best.peer.as_str(), e.alternatives), ("b", 1));
        assert!(rib.withdraw(&r, "b"));
        assert_eq!(rib.evaluate(false, &View(vec![]))[0].best.peer, "a");
        assert_eq!(rib.peer_down("a"), 1);
        assert!(rib.is_empty() && rib.changed);
    }

    #[test]
    fn import_policy_sees_the_destination_prefix_rfc8212() {
        use crate::import::ImportCtx;
        use crate::policy::{PolicyDefs, PolicySet};
        use crate::rib::attrs::{AsPath, Attrs};
        let defs: PolicyDefs = toml::from_str(
            r#"
[[policy.FS.term]]
name = "ours"
match.safi = "flowspec"
match.prefix = ["192.0.2.0/24 le 32"]
set.local-pref = 200
action = "accept"
"#,
        )
        .unwrap();
        let chain = PolicySet::compile(&defs)
            .unwrap()
            .chain(&["FS".to_string()])
            .unwrap();
        let mut ctx = ImportCtx {
            local_as: 65000,
            peer_as: 65001,
            peer_addr: "10.0.0.1".parse().unwrap(),
            local_addr: None,
            router_id: "10.0.0.254".parse().unwrap(),
            ebgp: true,
            allowas_in: 0,
            policy: Some(chain),
        };
        let a = Attrs::default().with_as_path(AsPath::sequence(vec![65001]));
        let inside = rule(vec![dst("192.0.2.128/25")]);
        let outside = rule(vec![dst("198.51.100.0/24")]);
        let no_dst = rule(vec![Component::Protocol(vec![eq(6)])]);
        assert_eq!(
            import_rule(&inside, &a, &ctx).and_then(|a| a.local_pref()),
            Some(200)
        );
        assert!(import_rule(&outside, &a, &ctx).is_none());
        assert!(import_rule(&no_dst, &a, &ctx).is_none());
        // LOCAL_PREF from an eBGP neighbour is ignored (the policy's 200 applies, not the peer's).
        let lp = a.clone().with_local_pref(Some(500));
        assert_eq!(
            import_rule(&inside, &lp, &ctx).and_then(|a| a.local_pref()),
            Some(200)
        );
        // Our own AS in the path: a loop.
        let looped = Attrs::default().with_as_path(AsPath::sequence(vec![65001, 65000]));
        assert!(import_rule(&inside, &looped, &ctx).is_none());
        // RFC 8212: eBGP without import policy imports nothing; iBGP everything.
        ctx.policy = None;
        assert!(import_rule(&inside, &a, &ctx).is_none());
        ctx.ebgp = false;
        assert!(import_rule(&no_dst, &a, &ctx).is_some());
    }

    #[test]
    fn local_rules_compile_validate_and_skip_section_6() {
        let text = r#"
router-id = "192.0.2.1"
local-as = 65000

[[flowspec.rule]]
match = "dst 203.0.113.0/24 proto =17 dport =123"
then = ["rate-packets 100", "mark 10", "continue"]
communities = ["65000:666", "no-export"]

[[flowspec.rule]]
family = "ipv6"
match = "dst 2001:db8::/32 next-header =58"
then = ["discard"]
"#;
        let l = crate::config::parse(text, "t.toml").unwrap();
        let rules: Vec<_> = l
            .config
            .flowspec
            .rule
            .iter()
            .map(|r| r.compile().unwrap())
            .collect();
        assert_eq!(
            rules[0].0.to_string(),
            "dst 203.0.113.0/24 proto =17 dport =123"
        );
        assert_eq!(rules[1].0.family(), Family::V6);
        assert_eq!(rules[0].1.communities().len(), 2);
        let mut rib = FlowRib::default();
        rib.set_local(rules);
        // Feasible with validation on and no unicast route at all: they are ours.
        let e = rib.evaluate(true, &View(vec![]));
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| e.feasible && e.best.peer == LOCAL_PEER));
        let r = &e[0].compiled[0];
        assert_eq!(
            r.action,
            acl::Action::RateLimit(acl::RateLimit {
                rate: 100,
                unit: acl::RateUnit::Packets,
                burst: 10
            })
        );
        assert_eq!((r.set_dscp, r.terminal), (Some(10), false));
        // A reload with one rule left withdraws the other.
        let one = l.config.flowspec.rule[1].compile().unwrap();
        rib.set_local(vec![one]);
        assert_eq!(rib.len(), 1);

        for (bad, field) in [
            (
                "match = \"dst 10.0.0.0/8 prot =6\"\nthen = [\"discard\"]",
                "rule[0].match",
            ),
            (
                "match = \"dst 10.0.0.0/8\"\nthen = [\"mark 64\"]",
                "rule[0].then[0]",
            ),
            (
                "match = \"dst 10.0.0.0/8\"\nthen = [\"rate-bytes -1\"]",
                "rule[0].then[0]",
            ),
            (
                "match = \"dst 10.0.0.0/8\"\nthen = [\"discard\"]\ncommunities = [\"x\"]",
                "rule[0].communities[0]",
            ),
        ] {
            let text = format!(
                "router-id = \"192.0.2.1\"\nlocal-as = 65000\n\n[[flowspec.rule]]\n{bad}\n"
            );
            let e = crate::config::parse(&text, "t.toml").unwrap_err();
            assert!(
                e.len() == 1 && e[0].to_string().contains(field),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn rules_come_out_in_rfc8955_order() {
        let mut rib = FlowRib::default();
        let wide = rule(vec![dst("192.0.0.0/16")]);
        let narrow = rule(vec![dst("192.0.2.0/24")]);
        rib.announce(wide.clone(), path("a", "10.0.0.1", 1));
        rib.announce(narrow.clone(), path("a", "10.0.0.1", 1));
        let order: Vec<FlowSpec> = rib
            .evaluate(false, &View(vec![]))
            .into_iter()
            .map(|e| e.rule)
            .collect();
        // The more specific destination prefix has precedence (RFC 8955 §5.1).
        assert_eq!(order, vec![narrow, wide]);
    }
}
