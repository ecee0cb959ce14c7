//! Operator text form of rules: `dst 192.0.2.0/24 proto =6 dport >=80&<=90 tcp-flags =syn&!ack`.
//!
//! Components in type order, separated by spaces, each as `name value`. Term lists: the first term, then
//! `&term` (AND) or `|term` (OR); AND binds tighter. Numeric terms are `=`, `>`, `>=`, `<`, `<=`, `!=`
//! followed by the value (`true`/`false` for the operators that ignore it). Bitmask terms are the bits (TCP
//! flag or fragment names joined by `+`, or hex) preceded by `=` when all bits must be set (the `m` bit) and
//! `!` when negated: `syn` any of, `=syn+ack` all of, `!rst` none of, `!=syn+ack` not all of. IPv6 prefixes
//! with an offset print `offset N` after the prefix.

use super::{BitmaskTerm, Cmp, Component, FlowPrefix, FlowSpec, NumericTerm, fragment, tcp_flag};
use crate::wire::nlri::Family;
use std::fmt::{self, Display, Formatter, Write};

impl Display for Cmp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match *self {
            Cmp::FALSE => "false",
            Cmp::EQ => "=",
            Cmp::GT => ">",
            Cmp::GE => ">=",
            Cmp::LT => "<",
            Cmp::LE => "<=",
            Cmp::NE => "!=",
            _ => "true",
        })
    }
}

impl Display for NumericTerm {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.cmp {
            Cmp::FALSE | Cmp::TRUE => write!(f, "{}", self.cmp),
            c => write!(f, "{c}{}", self.value),
        }
    }
}

impl Display for FlowPrefix {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FlowPrefix::V4(p) => write!(f, "{p}"),
            FlowPrefix::V6 { prefix, offset: 0 } => write!(f, "{prefix}"),
            FlowPrefix::V6 { prefix, offset } => write!(f, "{prefix} offset {offset}"),
        }
    }
}

const TCP_NAMES: [(u64, &str); 8] = [
    (tcp_flag::FIN, "fin"),
    (tcp_flag::SYN, "syn"),
    (tcp_flag::RST, "rst"),
    (tcp_flag::PSH, "psh"),
    (tcp_flag::ACK, "ack"),
    (tcp_flag::URG, "urg"),
    (tcp_flag::ECE, "ece"),
    (tcp_flag::CWR, "cwr"),
];

const FRAG_NAMES: [(u64, &str); 4] = [
    (fragment::DONT_FRAGMENT, "dont-fragment"),
    (fragment::IS_FRAGMENT, "is-fragment"),
    (fragment::FIRST_FRAGMENT, "first-fragment"),
    (fragment::LAST_FRAGMENT, "last-fragment"),
];

fn bits(f: &mut Formatter<'_>, value: u64, names: &[(u64, &str)]) -> fmt::Result {
    let mut rest = value;
    let mut first = true;
    for &(b, n) in names {
        if rest & b != 0 {
            if !first {
                f.write_char('+')?;
            }
            f.write_str(n)?;
            rest &= !b;
            first = false;
        }
    }
    if rest != 0 || first {
        if !first {
            f.write_char('+')?;
        }
        write!(f, "{rest:#x}")?;
    }
    Ok(())
}

fn bitmask_term(f: &mut Formatter<'_>, t: &BitmaskTerm, names: &[(u64, &str)]) -> fmt::Result {
    if t.not {
        f.write_char('!')?;
    }
    if t.match_all {
        f.write_char('=')?;
    }
    bits(f, t.value, names)
}

fn list<T>(
    f: &mut Formatter<'_>,
    terms: &[T],
    and: impl Fn(&T) -> bool,
    mut one: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            f.write_char(if and(t) { '&' } else { '|' })?;
        }
        one(f, t)?;
    }
    Ok(())
}

impl Component {
    /// The component's name in the text form.
    pub fn name(&self, family: Family) -> &'static str {
        match self {
            Component::DestinationPrefix(_) => "dst",
            Component::SourcePrefix(_) => "src",
            Component::Protocol(_) if family == Family::V6 => "next-header",
            Component::Protocol(_) => "proto",
            Component::Port(_) => "port",
            Component::DestinationPort(_) => "dport",
            Component::SourcePort(_) => "sport",
            Component::IcmpType(_) => "icmp-type",
            Component::IcmpCode(_) => "icmp-code",
            Component::TcpFlags(_) => "tcp-flags",
            Component::PacketLength(_) => "length",
            Component::Dscp(_) => "dscp",
            Component::Fragment(_) => "fragment",
            Component::FlowLabel(_) => "flow-label",
        }
    }

    fn fmt_value(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Component::DestinationPrefix(p) | Component::SourcePrefix(p) => write!(f, "{p}"),
            Component::TcpFlags(t) => list(f, t, |t| t.and, |f, t| bitmask_term(f, t, &TCP_NAMES)),
            Component::Fragment(t) => list(f, t, |t| t.and, |f, t| bitmask_term(f, t, &FRAG_NAMES)),
            c => list(
                f,
                c.numeric().unwrap_or(&[]),
                |t| t.and,
                |f, t| write!(f, "{t}"),
            ),
        }
    }
}

impl Display for FlowSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            write!(f, "{} ", c.name(self.family))?;
            c.fmt_value(f)?;
        }
        Ok(())
    }
}
