//! Parsing the operator text form that `Display` writes (see `display.rs`), so rules can be written in
//! configuration files and on command lines: `dst 192.0.2.0/24 proto =6 dport >=80&<=90 tcp-flags =syn&!ack`.
//!
//! Values get the fewest octets that hold them (so text → rule → text is stable, and rule → text → rule is the
//! identity for rules built with [`NumericTerm::new`] / [`BitmaskTerm::new`]). Numbers are decimal or `0x` hex.

use super::{BitmaskTerm, Cmp, Component, FlowPrefix, FlowSpec, FlowSpecError, NumericTerm};
use super::{fragment, tcp_flag};
use crate::wire::nlri::Family;

/// Why a rule's text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown component {0:?}")]
    UnknownComponent(String),
    #[error("component {0:?} has no value")]
    MissingValue(String),
    #[error("bad {what} {text:?}")]
    Bad { what: &'static str, text: String },
    #[error(transparent)]
    Invalid(#[from] FlowSpecError),
}

fn bad(what: &'static str, text: &str) -> ParseError {
    ParseError::Bad {
        what,
        text: text.to_string(),
    }
}

fn number(s: &str) -> Result<u64, ParseError> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| bad("number", s))
}

/// Splits a term list at `&` / `|`, returning (and, term) pairs.
fn terms(s: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut and = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '&' || c == '|' {
            out.push((and, &s[start..i]));
            and = c == '&';
            start = i + 1;
        }
    }
    out.push((and, &s[start..]));
    out
}

fn numeric(s: &str) -> Result<Vec<NumericTerm>, ParseError> {
    terms(s)
        .into_iter()
        .map(|(and, t)| {
            let (cmp, v) = match t {
                "true" => (Cmp::TRUE, "0"),
                "false" => (Cmp::FALSE, "0"),
                _ => [
                    (">=", Cmp::GE),
                    ("<=", Cmp::LE),
                    ("!=", Cmp::NE),
                    ("=", Cmp::EQ),
                    (">", Cmp::GT),
                    ("<", Cmp::LT),
                ]
                .into_iter()
                .find_map(|(p, c)| t.strip_prefix(p).map(|v| (c, v)))
                .ok_or_else(|| bad("numeric term", t))?,
            };
            let mut term = NumericTerm::new(cmp, number(v)?);
            term.and = and;
            Ok(term)
        })
        .collect()
}

fn bitmask(s: &str, names: &[(u64, &str)]) -> Result<Vec<BitmaskTerm>, ParseError> {
    terms(s)
        .into_iter()
        .map(|(and, t)| {
            let (not, t) = t.strip_prefix('!').map_or((false, t), |r| (true, r));
            let (all, t) = t.strip_prefix('=').map_or((false, t), |r| (true, r));
            let mut value = 0;
            for b in t.split('+') {
                value |= match names.iter().find(|(_, n)| *n == b) {
                    Some((v, _)) => *v,
                    None => number(b)?,
                };
            }
            let mut term = BitmaskTerm::new(not, all, value);
            term.and = and;
            Ok(term)
        })
        .collect()
}

const TCP: [(u64, &str); 8] = [
    (tcp_flag::FIN, "fin"),
    (tcp_flag::SYN, "syn"),
    (tcp_flag::RST, "rst"),
    (tcp_flag::PSH, "psh"),
    (tcp_flag::ACK, "ack"),
    (tcp_flag::URG, "urg"),
    (tcp_flag::ECE, "ece"),
    (tcp_flag::CWR, "cwr"),
];

const FRAG: [(u64, &str); 4] = [
    (fragment::DONT_FRAGMENT, "dont-fragment"),
    (fragment::IS_FRAGMENT, "is-fragment"),
    (fragment::FIRST_FRAGMENT, "first-fragment"),
    (fragment::LAST_FRAGMENT, "last-fragment"),
];

impl FlowSpec {
    /// Parses the text form of a rule of `family` (what `Display` writes) and validates it as
    /// [`FlowSpec::new`] does (components in type order, allowed value lengths).
    pub fn parse(family: Family, text: &str) -> Result<FlowSpec, ParseError> {
        let mut words = text.split_whitespace().peekable();
        let mut components = Vec::new();
        while let Some(name) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| ParseError::MissingValue(name.to_string()))?;
            let c = match name {
                "dst" | "src" => {
                    let net: ipnet::IpNet = value.parse().map_err(|_| bad("prefix", value))?;
                    let p = if words.peek() == Some(&"offset") {
                        words.next();
                        let o = words.next().ok_or_else(|| bad("offset", ""))?;
                        let o: u8 = o.parse().map_err(|_| bad("offset", o))?;
                        match net {
                            ipnet::IpNet::V6(n) => {
                                FlowPrefix::v6_with_offset(n.addr(), n.prefix_len(), o)
                                    .ok_or_else(|| bad("offset", value))?
                            }
                            ipnet::IpNet::V4(_) => return Err(bad("offset (IPv6 only)", value)),
                        }
                    } else {
                        FlowPrefix::new(net)
                    };
                    if name == "dst" {
                        Component::DestinationPrefix(p)
                    } else {
                        Component::SourcePrefix(p)
                    }
                }
                "proto" | "next-header" => Component::Protocol(numeric(value)?),
                "port" => Component::Port(numeric(value)?),
                "dport" => Component::DestinationPort(numeric(value)?),
                "sport" => Component::SourcePort(numeric(value)?),
                "icmp-type" => Component::IcmpType(numeric(value)?),
                "icmp-code" => Component::IcmpCode(numeric(value)?),
                "tcp-flags" => Component::TcpFlags(bitmask(value, &TCP)?),
                "length" => Component::PacketLength(numeric(value)?),
                "dscp" => Component::Dscp(numeric(value)?),
                "fragment" => Component::Fragment(bitmask(value, &FRAG)?),
                "flow-label" => Component::FlowLabel(numeric(value)?),
                _ => return Err(ParseError::UnknownComponent(name.to_string())),
            };
            components.push(c);
        }
        Ok(FlowSpec::new(family, components)?)
    }
}
