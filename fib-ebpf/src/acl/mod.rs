//! Packet classification in the forwarder: a protocol-neutral rule model, its compiler into the
//! dataplane's lookup tables, a plain reference matcher, and the handle that installs rule sets.
//!
//! ```text
//!   config ACLs ─┐                        compile (per-field lookups → rule bitmaps)
//!   FlowSpec ────┴─► RuleSet{Vec<Rule>} ───────────────► Compiled ──Classifier::install──►
//!                    (order = priority)                             inactive slot of the pinned
//!                          │                                        cls_* maps, then one u32 flip
//!                          └─► reference::evaluate (linear, the oracle the tests compare with)
//!   Classifier::counters ◄── cls_counters (per CPU, summed)   ◄── XDP classifier stage
//! ```
//!
//! Semantics (those of FlowSpec, RFC 8955 §5.1 ordering applied by the caller): rules are tried in
//! the order given. Every matching rule counts the packet. A drop rule drops it; a rate-limit rule
//! drops it when its token bucket is empty; a rule's DSCP rewrite applies unless an earlier applied
//! rule set one. Evaluation stops at the first terminal rule that matches (or the first drop), so
//! non-terminal rules before it also act (count, mark, police). At most
//! [`abi::CLS_MAX_APPLY`] matching rules are applied per packet. No match: the packet goes on to the
//! route lookup unchanged.
//!
//! Fields a rule leaves as `None` match anything. A condition on a field the packet does not carry
//! (ports on ICMP, ICMP type on UDP, TCP flags on UDP, anything of L4 on a non-first fragment) does
//! not match. IPv6 packets with extension headers never reach the classifier (the forwarder hands
//! them to the kernel first), so IPv6 fragment bits are always 0.

pub mod abi;
mod classifier;
mod compile;
pub mod reference;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

pub(crate) use classifier::check_pinned;
pub use classifier::{
    AclError, Classifier, ClassifierStats, InstallReport, RuleCounters, SLOT_QUIESCE,
};
pub use compile::{CompileError, Compiled, compile};

/// Maps of the classifier the loader pins next to the forwarder's.
pub const PINNED_MAPS: [&str; 10] = [
    "cls_ctl",
    "cls_slot",
    "cls_rules",
    "cls_node",
    "cls_tab",
    "cls_chunk",
    "cls_iif",
    "cls_counters",
    "cls_rl",
    "cls_stats",
];

/// Maps earlier classifier ABIs pinned and this one no longer has (removed on upgrade).
pub const RETIRED_MAPS: [&str; 1] = ["cls_sum"];

/// A caller-chosen stable identity of a rule. Counters and rate-limiter state follow the id across
/// rule-set changes and process restarts (e.g. a hash of the FlowSpec NLRI, or an ACL's name + term).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RuleId(pub u64);

/// An IPv4 or IPv6 prefix. Host bits beyond the length are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Prefix {
    pub fn family(&self) -> Family {
        match self {
            Prefix::V4(..) => Family::V4,
            Prefix::V6(..) => Family::V6,
        }
    }

    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }

    /// Address bits as a left-aligned u128 (IPv4 in the top 32 bits), masked to the length.
    pub(crate) fn bits(&self) -> u128 {
        let (a, l) = match *self {
            Prefix::V4(a, l) => ((u32::from(a) as u128) << 96, l),
            Prefix::V6(a, l) => (u128::from(a), l),
        };
        if l == 0 {
            0
        } else {
            a & (u128::MAX << (128 - u32::from(l)))
        }
    }

    /// Whether `addr` (left-aligned like [`Prefix::bits`]) lies inside.
    pub(crate) fn contains_bits(&self, addr: u128) -> bool {
        let l = self.prefix_len();
        l == 0 || (addr ^ self.bits()) >> (128 - u32::from(l)) == 0
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prefix::V4(a, l) => write!(f, "{a}/{l}"),
            Prefix::V6(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: not addr/len"))?;
        let l: u8 = l.parse().map_err(|_| format!("{s}: bad length"))?;
        if let Ok(a) = a.parse::<Ipv4Addr>() {
            return Ok(Prefix::V4(a, l));
        }
        let a: Ipv6Addr = a.parse().map_err(|_| format!("{s}: bad address"))?;
        Ok(Prefix::V6(a, l))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// A set of 8-bit values (TCP flags byte, fragment bits), as a 256-bit membership table. Any
/// predicate on the byte (FlowSpec's bitmask operator chains with AND/OR/NOT included) is one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteSet(pub [u64; 4]);

impl ByteSet {
    pub const EMPTY: ByteSet = ByteSet([0; 4]);
    pub const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    pub fn from_fn(f: impl Fn(u8) -> bool) -> ByteSet {
        let mut s = ByteSet::EMPTY;
        for v in 0..=255u8 {
            if f(v) {
                s.0[usize::from(v >> 6)] |= 1 << (v & 63);
            }
        }
        s
    }
    /// Values with every bit of `bits` set (FlowSpec bitmask "match").
    pub fn all_of(bits: u8) -> ByteSet {
        Self::from_fn(|v| v & bits == bits)
    }
    /// Values with at least one bit of `bits` set (FlowSpec bitmask without "match").
    pub fn any_of(bits: u8) -> ByteSet {
        Self::from_fn(|v| v & bits != 0)
    }
    /// Values whose `mask` bits equal `value`.
    pub fn masked(mask: u8, value: u8) -> ByteSet {
        Self::from_fn(|v| v & mask == value & mask)
    }
    pub fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v >> 6)] >> (v & 63) & 1 == 1
    }
    pub fn and(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }
    pub fn or(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }
    pub fn complement(self) -> ByteSet {
        ByteSet(std::array::from_fn(|i| !self.0[i]))
    }
}

/// Match conditions. `None` = any value; `Some(ranges)` = the value lies in one of the inclusive
/// ranges (`Some(vec![])` matches nothing, as an unsatisfiable FlowSpec component does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Restricts the rule to one address family. Implied by `src`/`dst` (which must agree).
    pub family: Option<Family>,
    pub src: Option<Prefix>,
    pub dst: Option<Prefix>,
    /// IPv4 protocol / IPv6 next header.
    pub protocol: Option<Vec<RangeInclusive<u8>>>,
    /// TCP, UDP and SCTP ports.
    pub src_port: Option<Vec<RangeInclusive<u16>>>,
    pub dst_port: Option<Vec<RangeInclusive<u16>>>,
    /// ICMP (IPv4) or ICMPv6 (IPv6) type and code.
    pub icmp_type: Option<Vec<RangeInclusive<u8>>>,
    pub icmp_code: Option<Vec<RangeInclusive<u8>>>,
    /// TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub tcp_flags: Option<ByteSet>,
    /// IP packet length (IPv4 total length, IPv6 payload length + 40).
    pub pkt_len: Option<Vec<RangeInclusive<u16>>>,
    /// DSCP (0..=63).
    pub dscp: Option<Vec<RangeInclusive<u8>>>,
    /// FlowSpec fragment bits of the packet: DF 0x01, is-fragment 0x02, first 0x04, last 0x08.
    pub fragment: Option<ByteSet>,
    /// Ingress interfaces (ifindex); `Some(vec![])` matches nothing.
    pub ingress_ifindex: Option<Vec<u32>>,
}

impl Match {
    /// The family the rule is restricted to, if any (explicit, or from its prefixes).
    pub fn effective_family(&self) -> Option<Family> {
        self.family
            .or(self.src.map(|p| p.family()))
            .or(self.dst.map(|p| p.family()))
    }
}

/// What a token bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    Packets,
    /// IP packet bytes (the length `pkt_len` matches on).
    Bytes,
}

/// A token bucket: `rate` units per second, up to `burst` units at once (burst ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub rate: u64,
    pub unit: RateUnit,
    pub burst: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Count only (non-terminal) or let through without looking further (terminal).
    Accept,
    /// Drop (always ends evaluation).
    Drop,
    /// Drop what exceeds the rate (a rate of 0 drops everything, as FlowSpec's traffic-rate 0).
    RateLimit(RateLimit),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    pub matches: Match,
    pub action: Action,
    /// Rewrite the DSCP (IPv4 header checksum updated; IPv6 traffic class) of packets not dropped.
    pub set_dscp: Option<u8>,
    /// Stop evaluating after this rule when it matches.
    pub terminal: bool,
}

impl Rule {
    /// A terminal rule with `action` and no DSCP rewrite.
    pub fn new(id: u64, matches: Match, action: Action) -> Rule {
        Rule {
            id: RuleId(id),
            matches,
            action,
            set_dscp: None,
            terminal: true,
        }
    }
}

/// Rules in priority order (first = highest priority). Ids must be unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        RuleSet { rules }
    }
}
