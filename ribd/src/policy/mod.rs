//! Routing policy: named policies of ordered terms, each with match conditions, attribute changes and
//! an action; chained per peer and direction. Pure functions over the RIB's attribute sets: no I/O.
//!
//! ```text
//!   PolicyDefs (TOML, serde) ──compile──► PolicySet { policies, prefix lists, AS-path lists, communities }
//!   route (prefix, peer, &Attrs) ──evaluate(chain)──► Accept(unchanged | modified Attrs) | Reject
//! ```
//!
//! Semantics, in the spirit of Junos policy-statements and BIRD filters:
//! - a term matches when every condition it lists holds (a term without conditions always matches);
//!   within one condition, any listed value may match (`community = ["65000:1", "65000:2"]` is "either");
//! - a matching term applies its `set` changes, then its action: `accept` / `reject` end the evaluation,
//!   `next-policy` skips the rest of this policy, `next-term` (or no action) goes on;
//! - when the chain ends without a decision, the route is rejected (say `accept` explicitly).
//!
//! Attributes are copy-on-write: a route that no term modifies keeps its shared attribute set.

pub mod community;
pub mod defaults;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::rib::attrs::{Attrs, LargeCommunity, Origin};

// ---------------------------------------------------------------- definitions (config file form)

/// Everything policy-related in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyDefs {
    pub policy: BTreeMap<String, PolicyDef>,
    pub prefix_list: BTreeMap<String, PrefixListDef>,
    pub as_path_list: BTreeMap<String, AsPathListDef>,
    pub community_list: BTreeMap<String, CommunityListDef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyDef {
    pub term: Vec<TermDef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TermDef {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: MatchDef,
    pub set: SetDef,
    pub action: Option<Action>,
}

/// Match conditions; every listed condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatchDef {
    /// Names of prefix lists; the prefix must match one of them.
    pub prefix_list: Vec<String>,
    /// Inline prefix ranges: `10.0.0.0/8`, `10.0.0.0/8 le 24`, `2001:db8::/32 ge 48 le 64`.
    pub prefix: Vec<String>,
    /// AS-path regular expressions over the path as text (`_` is a boundary: `^64500_`, `_15169$`).
    pub as_path: Vec<String>,
    pub as_path_list: Vec<String>,
    /// Origin AS (last AS of the path).
    pub origin_as: Vec<u32>,
    /// AS-path length bounds (selection length: AS_SET counts 1, confederation segments 0).
    pub as_path_length_min: Option<u32>,
    pub as_path_length_max: Option<u32>,
    /// Communities: literals (`65000:100`, `no-export`) or `re:PATTERN` over `ASN:VALUE`.
    pub community: Vec<String>,
    pub community_list: Vec<String>,
    /// Large communities: `G:L1:L2` or `re:PATTERN`.
    pub large_community: Vec<String>,
    /// Extended communities: `rt:65000:1`, `ro:…`, `lb:…` or `re:PATTERN`.
    pub ext_community: Vec<String>,
    /// The BGP next-hop lies in one of these prefixes.
    pub next_hop: Vec<IpNet>,
    /// The route came from a peer address in one of these prefixes.
    pub peer_address: Vec<IpNet>,
    pub peer_as: Vec<u32>,
    /// RPKI origin validation state (placeholder: every route is `not-found` until RPKI lands).
    pub rpki: Option<RpkiState>,
    /// Restrict the term to one address family.
    pub afi: Option<AfiDef>,
    /// Restrict the term to unicast routes or to FlowSpec rules (RFC 8955). For a FlowSpec rule the
    /// prefix conditions (`prefix`, `prefix-list`, `afi`) look at its destination prefix component; a
    /// rule without one matches no prefix condition.
    pub safi: Option<SafiDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SafiDef {
    Unicast,
    Flowspec,
}

/// What kind of route a policy evaluates ([`RouteCtx::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    #[default]
    Unicast,
    /// A FlowSpec rule; [`RouteCtx::prefix`] is its destination prefix component.
    FlowSpec,
    /// A FlowSpec rule without destination prefix; [`RouteCtx::prefix`] is the family's `/0` (for
    /// `afi`), and prefix conditions do not match.
    FlowSpecNoDestination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RpkiState {
    Valid,
    Invalid,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AfiDef {
    Ipv4,
    Ipv6,
}

/// Attribute changes of a matching term.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SetDef {
    pub local_pref: Option<u32>,
    /// `med = 50`, or `med = "+10"` / `"-10"` to adjust, or `"remove"`.
    pub med: Option<MedSet>,
    pub origin: Option<Origin>,
    /// `"self"`, `"unchanged"` (export), `"peer-address"`, or an address.
    pub next_hop: Option<String>,
    pub community_add: Vec<String>,
    /// Literals or `re:PATTERN`.
    pub community_remove: Vec<String>,
    /// Replace every community with these.
    pub community_replace: Option<Vec<String>>,
    pub large_community_add: Vec<String>,
    pub large_community_remove: Vec<String>,
    pub ext_community_add: Vec<String>,
    pub ext_community_remove: Vec<String>,
    /// Prepend the local AS this many times.
    pub prepend: Option<u8>,
    /// AS to prepend instead of the local AS.
    pub prepend_as: Option<u32>,
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MedSet {
    Value(u32),
    Expr(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Accept,
    Reject,
    NextTerm,
    NextPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrefixListDef {
    pub prefixes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AsPathListDef {
    pub regex: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommunityListDef {
    pub members: Vec<String>,
}

// ---------------------------------------------------------------- compiled form

/// A prefix with the range of lengths it accepts (`ge`/`le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixRange {
    pub net: IpNet,
    pub ge: u8,
    pub le: u8,
}

impl PrefixRange {
    /// Parses `P`, `P le N`, `P ge N`, `P ge N le M`, or `P+` (any more specific).
    pub fn parse(s: &str) -> Result<PrefixRange, String> {
        let mut it = s.split_whitespace();
        let first = it.next().ok_or_else(|| "empty prefix".to_string())?;
        let (p, plus) = match first.strip_suffix('+') {
            Some(p) => (p, true),
            None => (first, false),
        };
        let net: IpNet = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix (e.g. 10.0.0.0/8 or 2001:db8::/32)"))?;
        if net.trunc() != net {
            return Err(format!(
                "{p:?} has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        let len = net.prefix_len();
        let (mut ge, mut le) = if plus {
            (len, net.max_prefix_len())
        } else {
            (len, len)
        };
        let mut explicit_le = false;
        while let Some(kw) = it.next() {
            let v: u8 = it
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{s:?}: `{kw}` needs a prefix length"))?;
            match kw {
                "ge" => {
                    ge = v;
                    if !explicit_le {
                        le = net.max_prefix_len();
                    }
                }
                "le" => {
                    le = v;
                    explicit_le = true;
                }
                _ => return Err(format!("{s:?}: expected `ge N` or `le N`, found {kw:?}")),
            }
        }
        if ge < len || le < ge || le > net.max_prefix_len() {
            return Err(format!(
                "{s:?}: need {len} <= ge <= le <= {}",
                net.max_prefix_len()
            ));
        }
        Ok(PrefixRange { net, ge, le })
    }

    pub fn matches(&self, p: &IpNet) -> bool {
        let l = p.prefix_len();
        l >= self.ge && l <= self.le && self.net.contains(p)
    }
}

#[derive(Debug, Clone)]
pub struct PrefixList {
    pub ranges: Vec<PrefixRange>,
}

impl PrefixList {
    pub fn matches(&self, p: &IpNet) -> bool {
        self.ranges.iter().any(|r| r.matches(p))
    }
}

/// A community condition: a literal or a regex over the text form.
#[derive(Debug, Clone)]
enum Pattern<T> {
    Exact(T),
    Regex(Regex),
}

impl<T: PartialEq> Pattern<T> {
    fn parse(s: &str, lit: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        match s.strip_prefix("re:") {
            Some(re) => Regex::new(re)
                .map(Pattern::Regex)
                .map_err(|e| format!("bad regex {re:?}: {e}")),
            None => lit(s).map(Pattern::Exact),
        }
    }

    fn matches(&self, v: &T, text: impl Fn(&T) -> String) -> bool {
        match self {
            Pattern::Exact(x) => x == v,
            Pattern::Regex(r) => r.is_match(&text(v)),
        }
    }
}

/// Translates an operator AS-path regex into a `regex` over the space-separated path. `_` is the
/// Cisco/FRR delimiter: it matches the start, the end, or one separator (space, comma, brace), so
/// `^64500_64501_` matches "64500 64501 ...".
pub fn compile_as_path_regex(s: &str) -> Result<Regex, String> {
    let translated = s.replace('_', r"(?:^|$|[ ,{}()])");
    Regex::new(&translated).map_err(|e| format!("bad AS-path regex {s:?}: {e}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NextHopSet {
    SelfAddr,
    Unchanged,
    PeerAddress,
    Addr(IpAddr),
}

#[derive(Debug, Clone)]
struct Term {
    name: String,
    prefix_lists: Vec<Arc<PrefixList>>,
    prefixes: Vec<PrefixRange>,
    as_paths: Vec<Regex>,
    origin_as: Vec<u32>,
    len_min: Option<u32>,
    len_max: Option<u32>,
    communities: Vec<Pattern<u32>>,
    larges: Vec<Pattern<LargeCommunity>>,
    exts: Vec<Pattern<[u8; 8]>>,
    next_hop: Vec<IpNet>,
    peer_address: Vec<IpNet>,
    peer_as: Vec<u32>,
    rpki: Option<RpkiState>,
    afi: Option<AfiDef>,
    safi: Option<SafiDef>,
    set: Set,
    action: Action,
}

#[derive(Debug, Clone, Default)]
struct Set {
    local_pref: Option<u32>,
    med: Option<MedOp>,
    origin: Option<Origin>,
    next_hop: Option<NextHopSet>,
    community_add: Vec<u32>,
    community_remove: Vec<Pattern<u32>>,
    community_replace: Option<Vec<u32>>,
    large_add: Vec<LargeCommunity>,
    large_remove: Vec<Pattern<LargeCommunity>>,
    ext_add: Vec<[u8; 8]>,
    ext_remove: Vec<Pattern<[u8; 8]>>,
    prepend: Option<(Option<u32>, u8)>,
    weight: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum MedOp {
    Set(u32),
    Add(u32),
    Sub(u32),
    Remove,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    terms: Vec<Term>,
}

impl Policy {
    /// True when the result can differ between two prefixes of one address family with the same
    /// attributes and peer (a term matches on prefix lists or ranges; no action reads the prefix):
    /// otherwise the import path evaluates the policy once per UPDATE family, not per prefix.
    pub fn reads_prefix(&self) -> bool {
        self.terms
            .iter()
            .any(|t| !t.prefix_lists.is_empty() || !t.prefixes.is_empty())
    }

    /// True when the result can differ between two peers of otherwise identical export context (a term
    /// matches on the peer's address or AS, or sets the next-hop to the peer's address): such peers
    /// cannot share an update group.
    pub fn depends_on_peer(&self) -> bool {
        self.terms.iter().any(|t| {
            !t.peer_address.is_empty()
                || !t.peer_as.is_empty()
                || t.set.next_hop == Some(NextHopSet::PeerAddress)
        })
    }
}

/// All compiled policies and lists, by name.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: HashMap<String, Arc<Policy>>,
    prefix_lists: HashMap<String, Arc<PrefixList>>,
}

/// What evaluation needs to know about the route besides its attributes.
#[derive(Debug, Clone, Copy)]
pub struct RouteCtx {
    pub prefix: IpNet,
    pub peer_addr: IpAddr,
    pub peer_as: u32,
    pub local_as: u32,
    /// Our address on the session (for `next-hop = "self"`).
    pub local_addr: Option<IpAddr>,
    pub rpki: RpkiState,
    /// Unicast route or FlowSpec rule.
    pub kind: RouteKind,
}

/// Outcome of a policy chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted; `Some` carries the modified attributes (re-intern them), `None` means unchanged.
    Accept(Option<Attrs>),
    Reject,
}

impl PolicySet {
    /// Compiles the definitions (with the built-in defaults available by name). Every problem is
    /// reported, each naming the policy, term and field.
    pub fn compile(defs: &PolicyDefs) -> Result<PolicySet, Vec<String>> {
        let mut errors = Vec::new();
        let mut all = defaults::definitions();
        all.policy.extend(defs.policy.clone());
        all.prefix_list.extend(defs.prefix_list.clone());
        all.as_path_list.extend(defs.as_path_list.clone());
        all.community_list.extend(defs.community_list.clone());

        let mut prefix_lists = HashMap::new();
        for (name, pl) in &all.prefix_list {
            let mut ranges = Vec::new();
            for (i, p) in pl.prefixes.iter().enumerate() {
                match PrefixRange::parse(p) {
                    Ok(r) => ranges.push(r),
                    Err(e) => errors.push(format!("prefix-list {name}: prefixes[{i}]: {e}")),
                }
            }
            prefix_lists.insert(name.clone(), Arc::new(PrefixList { ranges }));
        }
        let mut as_path_lists: HashMap<&str, Vec<Regex>> = HashMap::new();
        for (name, l) in &all.as_path_list {
            let mut v = Vec::new();
            for (i, r) in l.regex.iter().enumerate() {
                match compile_as_path_regex(r) {
                    Ok(r) => v.push(r),
                    Err(e) => errors.push(format!("as-path-list {name}: regex[{i}]: {e}")),
                }
            }
            as_path_lists.insert(name, v);
        }
        let mut community_lists: HashMap<&str, Vec<Pattern<u32>>> = HashMap::new();
        for (name, l) in &all.community_list {
            let mut v = Vec::new();
            for (i, c) in l.members.iter().enumerate() {
                match Pattern::parse(c, community::parse_community) {
                    Ok(p) => v.push(p),
                    Err(e) => errors.push(format!("community-list {name}: members[{i}]: {e}")),
                }
            }
            community_lists.insert(name, v);
        }

        let mut policies = HashMap::new();
        for (pname, p) in &all.policy {
            let mut terms = Vec::new();
            for (ti, t) in p.term.iter().enumerate() {
                let at = |field: &str| {
                    format!("policy {pname}: term {} ({:?}): {field}", ti + 1, t.name)
                };
                let mut term = Term {
                    name: if t.name.is_empty() {
                        format!("term-{}", ti + 1)
                    } else {
                        t.name.clone()
                    },
                    prefix_lists: Vec::new(),
                    prefixes: Vec::new(),
                    as_paths: Vec::new(),
                    origin_as: t.matches.origin_as.clone(),
                    len_min: t.matches.as_path_length_min,
                    len_max: t.matches.as_path_length_max,
                    communities: Vec::new(),
                    larges: Vec::new(),
                    exts: Vec::new(),
                    next_hop: t.matches.next_hop.clone(),
                    peer_address: t.matches.peer_address.clone(),
                    peer_as: t.matches.peer_as.clone(),
                    rpki: t.matches.rpki,
                    afi: t.matches.afi,
                    safi: t.matches.safi,
                    set: Set::default(),
                    action: t.action.unwrap_or(Action::NextTerm),
                };
                let m = &t.matches;
                for n in &m.prefix_list {
                    match prefix_lists.get(n) {
                        Some(pl) => term.prefix_lists.push(pl.clone()),
                        None => errors.push(format!(
                            "{}: unknown prefix list {n:?}",
                            at("match.prefix-list")
                        )),
                    }
                }
                for (i, s) in m.prefix.iter().enumerate() {
                    match PrefixRange::parse(s) {
                        Ok(r) => term.prefixes.push(r),
                        Err(e) => {
                            errors.push(format!("{}: {e}", at(&format!("match.prefix[{i}]"))))
                        }
                    }
                }
                for (i, s) in m.as_path.iter().enumerate() {
                    match compile_as_path_regex(s) {
                        Ok(r) => term.as_paths.push(r),
                        Err(e) => {
                            errors.push(format!("{}: {e}", at(&format!("match.as-path[{i}]"))))
                        }
                    }
                }
                for n in &m.as_path_list {
                    match as_path_lists.get(n.as_str()) {
                        Some(v) => term.as_paths.extend(v.iter().cloned()),
                        None => errors.push(format!(
                            "{}: unknown AS-path list {n:?}",
                            at("match.as-path-list")
                        )),
                    }
                }
                for (i, s) in m.community.iter().enumerate() {
                    match Pattern::parse(s, community::parse_community) {
                        Ok(p) => term.communities.push(p),
                        Err(e) => {
                            errors.push(format!("{}: {e}", at(&format!("match.community[{i}]"))))
                        }
                    }
                }
                for n in &m.community_list {
                    match community_lists.get(n.as_str()) {
                        Some(v) => term.communities.extend(v.iter().cloned()),
                        None => errors.push(format!(
                            "{}: unknown community list {n:?}",
                            at("match.community-list")
                        )),
                    }
                }
                for (i, s) in m.large_community.iter().enumerate() {
                    match Pattern::parse(s, community::parse_large) {
                        Ok(p) => term.larges.push(p),
                        Err(e) => errors.push(format!(
                            "{}: {e}",
                            at(&format!("match.large-community[{i}]"))
                        )),
                    }
                }
                for (i, s) in m.ext_community.iter().enumerate() {
                    match Pattern::parse(s, community::parse_ext) {
                        Ok(p) => term.exts.push(p),
                        Err(e) => errors
                            .push(format!("{}: {e}", at(&format!("match.ext-community[{i}]")))),
                    }
                }
                term.set = compile_set(&t.set, &at, &mut errors);
                terms.push(term);
            }
            policies.insert(
                pname.clone(),
                Arc::new(Policy {
                    name: pname.clone(),
                    terms,
                }),
            );
        }
        if errors.is_empty() {
            Ok(PolicySet {
                policies,
                prefix_lists,
            })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.get(name).cloned()
    }

    pub fn prefix_list(&self, name: &str) -> Option<Arc<PrefixList>> {
        self.prefix_lists.get(name).cloned()
    }

    /// Resolves a chain of policy names; unknown names are an error naming them.
    pub fn chain(&self, names: &[String]) -> Result<Vec<Arc<Policy>>, String> {
        names
            .iter()
            .map(|n| self.get(n).ok_or_else(|| format!("unknown policy {n:?}")))
            .collect()
    }
}

fn compile_set(s: &SetDef, at: &dyn Fn(&str) -> String, errors: &mut Vec<String>) -> Set {
    fn list<T>(
        items: &[String],
        f: impl Fn(&str) -> Result<T, String>,
        field: &str,
        at: &dyn Fn(&str) -> String,
        errors: &mut Vec<String>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, s) in items.iter().enumerate() {
            match f(s) {
                Ok(v) => out.push(v),
                Err(e) => errors.push(format!("{}: {e}", at(&format!("set.{field}[{i}]")))),
            }
        }
        out
    }
    let med = match &s.med {
        None => None,
        Some(MedSet::Value(v)) => Some(MedOp::Set(*v)),
        Some(MedSet::Expr(e)) => {
            let parsed = if e == "remove" {
                Some(MedOp::Remove)
            } else if let Some(n) = e.strip_prefix('+') {
                n.parse().ok().map(MedOp::Add)
            } else if let Some(n) = e.strip_prefix('-') {
                n.parse().ok().map(MedOp::Sub)
            } else {
                e.parse().ok().map(MedOp::Set)
            };
            if parsed.is_none() {
                errors.push(format!(
                    "{}: expected a number, \"+N\", \"-N\" or \"remove\", found {e:?}",
                    at("set.med")
                ));
            }
            parsed
        }
    };
    let next_hop = s.next_hop.as_deref().and_then(|nh| match nh {
        "self" => Some(NextHopSet::SelfAddr),
        "unchanged" => Some(NextHopSet::Unchanged),
        "peer-address" => Some(NextHopSet::PeerAddress),
        a => match a.parse() {
            Ok(ip) => Some(NextHopSet::Addr(ip)),
            Err(_) => {
                errors.push(format!("{}: expected \"self\", \"unchanged\", \"peer-address\" or an IP address, found {a:?}", at("set.next-hop")));
                None
            }
        },
    });
    Set {
        local_pref: s.local_pref,
        med,
        origin: s.origin,
        next_hop,
        community_add: list(
            &s.community_add,
            community::parse_community,
            "community-add",
            at,
            errors,
        ),
        community_remove: list(
            &s.community_remove,
            |x| Pattern::parse(x, community::parse_community),
            "community-remove",
            at,
            errors,
        ),
        community_replace: s.community_replace.as_ref().map(|v| {
            list(
                v,
                community::parse_community,
                "community-replace",
                at,
                errors,
            )
        }),
        large_add: list(
            &s.large_community_add,
            community::parse_large,
            "large-community-add",
            at,
            errors,
        ),
        large_remove: list(
            &s.large_community_remove,
            |x| Pattern::parse(x, community::parse_large),
            "large-community-remove",
            at,
            errors,
        ),
        ext_add: list(
            &s.ext_community_add,
            community::parse_ext,
            "ext-community-add",
            at,
            errors,
        ),
        ext_remove: list(
            &s.ext_community_remove,
            |x| Pattern::parse(x, community::parse_ext),
            "ext-community-remove",
            at,
            errors,
        ),
        prepend: s.prepend.map(|n| (s.prepend_as, n)),
        weight: s.weight,
    }
}

impl Term {
    fn matches(&self, r: &RouteCtx, a: &Attrs) -> bool {
        if let Some(safi) = self.safi {
            let flow = r.kind != RouteKind::Unicast;
            if flow != (safi == SafiDef::Flowspec) {
                return false;
            }
        }
        if r.kind == RouteKind::FlowSpecNoDestination
            && !(self.prefix_lists.is_empty() && self.prefixes.is_empty())
        {
            return false;
        }
        if let Some(afi) = self.afi {
            let v4 = matches!(r.prefix, IpNet::V4(_));
            if v4 != (afi == AfiDef::Ipv4) {
                return false;
            }
        }
        if !self.prefix_lists.is_empty() && !self.prefix_lists.iter().any(|l| l.matches(&r.prefix))
        {
            return false;
        }
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| p.matches(&r.prefix)) {
            return false;
        }
        if !self.peer_as.is_empty() && !self.peer_as.contains(&r.peer_as) {
            return false;
        }
        if !self.peer_address.is_empty()
            && !self.peer_address.iter().any(|n| n.contains(&r.peer_addr))
        {
            return false;
        }
        if !self.next_hop.is_empty()
            && !a
                .next_hop()
                .is_some_and(|nh| self.next_hop.iter().any(|n| n.contains(&nh)))
        {
            return false;
        }
        if self.rpki.is_some_and(|s| s != r.rpki) {
            return false;
        }
        if !self.origin_as.is_empty()
            && !a
                .as_path()
                .origin_as()
                .is_some_and(|o| self.origin_as.contains(&o))
        {
            return false;
        }
        if self.len_min.is_some() || self.len_max.is_some() {
            let len = a.as_path().selection_len();
            if self.len_min.is_some_and(|m| len < m) || self.len_max.is_some_and(|m| len > m) {
                return false;
            }
        }
        if !self.as_paths.is_empty() {
            let text = a
                .as_path()
                .asns()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            if !self.as_paths.iter().any(|re| re.is_match(&text)) {
                return false;
            }
        }
        if !self.communities.is_empty()
            && !a.communities().iter().any(|c| {
                self.communities
                    .iter()
                    .any(|p| p.matches(c, |c| community::format_community(*c)))
            })
        {
            return false;
        }
        if !self.larges.is_empty()
            && !a.large_communities().iter().any(|c| {
                self.larges
                    .iter()
                    .any(|p| p.matches(c, community::format_large))
            })
        {
            return false;
        }
        if !self.exts.is_empty()
            && !a.ext_communities().iter().any(|c| {
                self.exts
                    .iter()
                    .any(|p| p.matches(c, community::format_ext))
            })
        {
            return false;
        }
        true
    }
}

impl Set {
    fn is_empty(&self) -> bool {
        self.local_pref.is_none()
            && self.med.is_none()
            && self.origin.is_none()
            && self.next_hop.is_none()
            && self.community_add.is_empty()
            && self.community_remove.is_empty()
            && self.community_replace.is_none()
            && self.large_add.is_empty()
            && self.large_remove.is_empty()
            && self.ext_add.is_empty()
            && self.ext_remove.is_empty()
            && self.prepend.is_none()
            && self.weight.is_none()
    }

    fn apply(&self, r: &RouteCtx, a: &mut Attrs) {
        if let Some(v) = self.local_pref {
            a.set_local_pref(Some(v));
        }
        match self.med {
            Some(MedOp::Set(v)) => a.set_med(Some(v)),
            Some(MedOp::Add(v)) => a.set_med(Some(a.med().unwrap_or(0).saturating_add(v))),
            Some(MedOp::Sub(v)) => a.set_med(Some(a.med().unwrap_or(0).saturating_sub(v))),
            Some(MedOp::Remove) => a.set_med(None),
            None => {}
        }
        if let Some(o) = self.origin {
            a.set_origin(o);
        }
        match &self.next_hop {
            Some(NextHopSet::SelfAddr) => {
                if let Some(l) = r.local_addr {
                    a.set_next_hop(Some(l));
                    a.set_next_hop_ll(None);
                }
            }
            Some(NextHopSet::PeerAddress) => a.set_next_hop(Some(r.peer_addr)),
            Some(NextHopSet::Addr(ip)) => a.set_next_hop(Some(*ip)),
            Some(NextHopSet::Unchanged) | None => {}
        }
        if let Some(rep) = &self.community_replace {
            a.set_communities(rep.clone());
        }
        if !self.community_remove.is_empty() {
            let kept: Vec<u32> = a
                .communities()
                .iter()
                .copied()
                .filter(|c| {
                    !self
                        .community_remove
                        .iter()
                        .any(|p| p.matches(c, |c| community::format_community(*c)))
                })
                .collect();
            a.set_communities(kept);
        }
        if !self.community_add.is_empty() {
            a.set_communities(merge_sorted(a.communities(), &self.community_add));
        }
        if !self.large_remove.is_empty() {
            let kept: Vec<_> = a
                .large_communities()
                .iter()
                .copied()
                .filter(|c| {
                    !self
                        .large_remove
                        .iter()
                        .any(|p| p.matches(c, community::format_large))
                })
                .collect();
            a.set_large_communities(kept);
        }
        if !self.large_add.is_empty() {
            a.set_large_communities(merge_sorted(a.large_communities(), &self.large_add));
        }
        if !self.ext_remove.is_empty() {
            let kept: Vec<_> = a
                .ext_communities()
                .iter()
                .copied()
                .filter(|c| {
                    !self
                        .ext_remove
                        .iter()
                        .any(|p| p.matches(c, community::format_ext))
                })
                .collect();
            a.set_ext_communities(kept);
        }
        if !self.ext_add.is_empty() {
            a.set_ext_communities(merge_sorted(a.ext_communities(), &self.ext_add));
        }
        if let Some((asn, n)) = self.prepend {
            a.prepend_as_path(asn.unwrap_or(r.local_as), n as usize);
        }
        if let Some(w) = self.weight {
            a.set_weight(w);
        }
    }
}

/// Existing values in their order, then the added ones that are new (no duplicates).
fn merge_sorted<T: Copy + PartialEq>(have: &[T], add: &[T]) -> Box<[T]> {
    let mut v = have.to_vec();
    for x in add {
        if !v.contains(x) {
            v.push(*x);
        }
    }
    v.into()
}

/// Runs a chain of policies over one route. An empty chain rejects (callers decide the RFC 8212
/// default before calling: eBGP without policy rejects, iBGP accepts).
pub fn evaluate(chain: &[Arc<Policy>], r: &RouteCtx, attrs: &Attrs) -> Verdict {
    let mut cow: Cow<'_, Attrs> = Cow::Borrowed(attrs);
    for policy in chain {
        for term in &policy.terms {
            if !term.matches(r, &cow) {
                continue;
            }
            if !term.set.is_empty() {
                term.set.apply(r, cow.to_mut());
            }
            match term.action {
                Action::Accept => {
                    return Verdict::Accept(match cow {
                        Cow::Borrowed(_) => None,
                        Cow::Owned(a) => (a != *attrs).then_some(a),
                    });
                }
                Action::Reject => return Verdict::Reject,
                Action::NextPolicy => break,
                Action::NextTerm => {}
            }
        }
    }
    Verdict::Reject
}

/// Names of the terms of a policy, in order (for display).
impl Policy {
    pub fn term_names(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.name.as_str())
    }
}

#[cfg(test)]
mod tests;
