//! FlowSpec NLRI (SAFI 133): traffic filtering rules for IPv4 (RFC 8955 §4) and IPv6 (RFC 8956 §3), their
//! precedence order (RFC 8955 §5.1, RFC 8956 §4) and the traffic filtering action extended communities
//! ([`action`], RFC 8955 §7, RFC 8956 §6).
//!
//! ```text
//!  MP_REACH/MP_UNREACH NLRI field (AFI 1 or 2, SAFI 133):
//!  +--------------------------------+----------------------------------------------+
//!  | length: 1 octet if < 240,      | components, strictly increasing by type:     |
//!  | else 2 octets 0xfNNN (≤ 4095)  | type (1) + prefix, or type (1) + op/value... |
//!  +--------------------------------+----------------------------------------------+ ... next NLRI
//! ```
//!
//! A rule is a [`FlowSpec`]: its address family and an ordered list of [`Component`]s, each either a prefix
//! ([`FlowPrefix`]) or a list of (operator, value) terms ([`NumericTerm`], [`BitmaskTerm`]). Decoding
//! validates everything RFC 8955 §4.2 asks for; bits the RFCs say are ignored on receipt (reserved operator
//! bits, the AND bit of a list's first term, prefix bits past the prefix length) are cleared, so a decoded
//! rule is in canonical form and its encoding is the NLRI a conforming speaker sends.
//!
//! Errors come in two kinds, because they call for different RFC 7606 handling (see [`decode_field`]):
//! * framing: an NLRI length that overruns the field. Nothing after it can be located, so the receiver must
//!   use "AFI/SAFI disable" or "session reset" (RFC 7606 §3 j, §5.3, §7.11; RFC 4760 §7);
//! * content: a rule whose own octets are malformed (unknown component type, components out of order or
//!   repeated, a truncated operator list, a value length the component does not allow, ...). Its length was
//!   sound, so every other NLRI of the attribute is still located exactly and the UPDATE is handled as
//!   "treat-as-withdraw" (RFC 7606 §2): the well-formed rules are withdrawn, the malformed one is dropped (it
//!   can never have been accepted, so there is nothing of it to withdraw).

pub mod action;
mod display;
mod parse;

pub use parse::ParseError;

use super::nlri::Family;
use super::{Afi, AfiSafi, Safi};
use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::net::{Ipv4Addr, Ipv6Addr};

/// SAFI 133: dissemination of flow specification rules (RFC 8955 §4).
pub const SAFI: Safi = Safi(133);

/// Largest NLRI length the 2-octet form can express (RFC 8955 §4: 0xfnnn).
pub const MAX_NLRI_LEN: usize = 0x0fff;

/// Component type codes (IANA "Flow Spec Component Types", RFC 8955 §4.2.2, RFC 8956 §3).
pub mod component {
    pub const DESTINATION_PREFIX: u8 = 1;
    pub const SOURCE_PREFIX: u8 = 2;
    /// IPv4: IP protocol; IPv6: upper-layer protocol (last Next Header).
    pub const PROTOCOL: u8 = 3;
    pub const PORT: u8 = 4;
    pub const DESTINATION_PORT: u8 = 5;
    pub const SOURCE_PORT: u8 = 6;
    pub const ICMP_TYPE: u8 = 7;
    pub const ICMP_CODE: u8 = 8;
    pub const TCP_FLAGS: u8 = 9;
    pub const PACKET_LENGTH: u8 = 10;
    pub const DSCP: u8 = 11;
    pub const FRAGMENT: u8 = 12;
    /// IPv6 only (RFC 8956 §3.7).
    pub const FLOW_LABEL: u8 = 13;
}

/// Fragment component bits (RFC 8955 §4.2.2.12; DF is IPv4 only, RFC 8956 §3.6).
pub mod fragment {
    pub const DONT_FRAGMENT: u64 = 0x01;
    pub const IS_FRAGMENT: u64 = 0x02;
    pub const FIRST_FRAGMENT: u64 = 0x04;
    pub const LAST_FRAGMENT: u64 = 0x08;
}

/// TCP flag bits of the TCP flags component (RFC 8955 §4.2.2.9: the TCP header's flags octet, in the low
/// octet of a 2-octet value).
pub mod tcp_flag {
    pub const FIN: u64 = 0x01;
    pub const SYN: u64 = 0x02;
    pub const RST: u64 = 0x04;
    pub const PSH: u64 = 0x08;
    pub const ACK: u64 = 0x10;
    pub const URG: u64 = 0x20;
    pub const ECE: u64 = 0x40;
    pub const CWR: u64 = 0x80;
}

/// The FlowSpec family of an address family, and back.
pub fn afi_safi(family: Family) -> AfiSafi {
    match family {
        Family::V4 => AfiSafi::IPV4_FLOWSPEC,
        Family::V6 => AfiSafi::IPV6_FLOWSPEC,
    }
}

/// The address family of a FlowSpec AFI/SAFI (IPv4 or IPv6 with SAFI 133), if `af` is one.
pub fn family(af: AfiSafi) -> Option<Family> {
    match (af.afi, af.safi) {
        (Afi::IPV4, SAFI) => Some(Family::V4),
        (Afi::IPV6, SAFI) => Some(Family::V6),
        _ => None,
    }
}

/// Why a FlowSpec NLRI (or a rule being built) is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error, Serialize, Deserialize)]
pub enum FlowSpecError {
    /// Framing: an NLRI length (or its second octet) runs past the end of the field.
    #[error("FlowSpec NLRI length overruns the NLRI field")]
    LengthOverrun,
    /// An NLRI with no component (it would match every packet); treated as malformed.
    #[error("FlowSpec NLRI without components")]
    Empty,
    /// A component type this implementation does not know, or not defined for the address family
    /// (RFC 8955 §4.2: the NLRI is malformed).
    #[error("unknown FlowSpec component type {0}")]
    UnknownComponent(u8),
    /// Components not in strictly increasing type order, or one repeated (RFC 8955 §4.2).
    #[error("FlowSpec component type {next} after type {prev}")]
    OutOfOrder { prev: u8, next: u8 },
    /// A component's octets run past the end of the NLRI (truncated prefix, operator or value).
    #[error("FlowSpec component type {0} truncated")]
    Truncated(u8),
    /// A prefix longer than 32/128 bits, or an IPv6 offset beyond the prefix length (RFC 8956 §3.1).
    #[error("FlowSpec component type {0}: bad prefix length or offset")]
    BadPrefix(u8),
    /// A value length the component does not allow (e.g. 8 octets for a port, RFC 8955 §4.2.2).
    #[error("FlowSpec component type {component}: value of {len} octets not allowed")]
    BadValueLength { component: u8, len: u8 },
    /// A value that does not fit in its own length field (building rules only).
    #[error("FlowSpec component type {0}: value does not fit its length")]
    ValueTooLarge(u8),
    /// A component with no term (building rules only; on the wire a list always has one).
    #[error("FlowSpec component type {0} has no term")]
    NoTerms(u8),
    /// A prefix of the other address family (building rules only).
    #[error("FlowSpec component type {0}: prefix of the wrong address family")]
    WrongFamily(u8),
    /// The encoded rule would be longer than 4095 octets.
    #[error("FlowSpec NLRI longer than 4095 octets")]
    TooLong,
}

impl FlowSpecError {
    /// Whether the error leaves the NLRI field unframed (nothing after it can be located).
    pub fn is_framing(self) -> bool {
        matches!(self, FlowSpecError::LengthOverrun)
    }
}

/// The comparison bits of a numeric operator (RFC 8955 §4.2.1.1): the term is true when the packet's value
/// compares to the term's value as one of the set bits says (lt | gt | eq: 000 false, 111 true).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cmp {
    pub lt: bool,
    pub gt: bool,
    pub eq: bool,
}

impl Cmp {
    pub const FALSE: Cmp = Cmp::bits(0);
    pub const EQ: Cmp = Cmp::bits(1);
    pub const GT: Cmp = Cmp::bits(2);
    pub const GE: Cmp = Cmp::bits(3);
    pub const LT: Cmp = Cmp::bits(4);
    pub const LE: Cmp = Cmp::bits(5);
    pub const NE: Cmp = Cmp::bits(6);
    pub const TRUE: Cmp = Cmp::bits(7);

    const fn bits(b: u8) -> Cmp {
        Cmp {
            lt: b & 4 != 0,
            gt: b & 2 != 0,
            eq: b & 1 != 0,
        }
    }

    fn to_bits(self) -> u8 {
        (u8::from(self.lt) << 2) | (u8::from(self.gt) << 1) | u8::from(self.eq)
    }

    /// Whether `data` (from the packet) compares to `value` as this operator asks.
    pub fn eval(self, data: u64, value: u64) -> bool {
        match data.cmp(&value) {
            Ordering::Less => self.lt,
            Ordering::Greater => self.gt,
            Ordering::Equal => self.eq,
        }
    }
}

/// One (numeric_op, value) pair (RFC 8955 §4.2.1.1).
///
/// ```text
///    0   1   2   3   4   5   6   7
///  +---+---+---+---+---+---+---+---+
///  | e | a |  len  | 0 |lt |gt |eq |     e: end of list (set on the last term when encoded)
///  +---+---+---+---+---+---+---+---+     a: AND with the previous term (else OR); AND binds tighter
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NumericTerm {
    /// AND with the previous term (OR when false). Always false on a list's first term.
    pub and: bool,
    pub cmp: Cmp,
    pub value: u64,
    /// Octets of the value on the wire: 1, 2, 4 or 8.
    pub len: u8,
}

impl NumericTerm {
    /// A term ORed with the previous one, value in the fewest octets that hold it.
    pub fn new(cmp: Cmp, value: u64) -> Self {
        NumericTerm {
            and: false,
            cmp,
            value,
            len: min_len(value),
        }
    }

    /// The same term ANDed with the previous one.
    pub fn and(self) -> Self {
        NumericTerm { and: true, ..self }
    }

    fn op(self, last: bool) -> u8 {
        end_bit(last) | and_bit(self.and) | len_bits(self.len) | self.cmp.to_bits()
    }
}

/// One (bitmask_op, value) pair (RFC 8955 §4.2.1.2).
///
/// ```text
///    0   1   2   3   4   5   6   7
///  +---+---+---+---+---+---+---+---+
///  | e | a |  len  | 0 | 0 |not| m |     m (match): (data & value) == value, else (data & value) != 0
///  +---+---+---+---+---+---+---+---+     not: the result is negated
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BitmaskTerm {
    pub and: bool,
    pub not: bool,
    /// The `m` bit: all bits of `value` set (else: any of them).
    pub match_all: bool,
    pub value: u64,
    /// Octets of the value on the wire: 1 or 2 for the components defined so far.
    pub len: u8,
}

impl BitmaskTerm {
    /// A term ORed with the previous one: any (`match_all` false) or all of `value`'s bits set, negated
    /// when `not`.
    pub fn new(not: bool, match_all: bool, value: u64) -> Self {
        BitmaskTerm {
            and: false,
            not,
            match_all,
            value,
            len: min_len(value),
        }
    }

    pub fn and(self) -> Self {
        BitmaskTerm { and: true, ..self }
    }

    /// Whether the packet's `data` satisfies this term alone.
    pub fn eval(self, data: u64) -> bool {
        let hit = if self.match_all {
            data & self.value == self.value
        } else {
            data & self.value != 0
        };
        hit != self.not
    }

    fn op(self, last: bool) -> u8 {
        end_bit(last)
            | and_bit(self.and)
            | len_bits(self.len)
            | (u8::from(self.not) << 1)
            | u8::from(self.match_all)
    }
}

fn end_bit(last: bool) -> u8 {
    if last { 0x80 } else { 0 }
}

fn and_bit(and: bool) -> u8 {
    if and { 0x40 } else { 0 }
}

fn len_bits(len: u8) -> u8 {
    (match len {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }) << 4
}

fn min_len(v: u64) -> u8 {
    match v {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

/// Evaluates a term list: terms joined by AND bind tighter than OR (RFC 8955 §4.2.1.1), so the list is an
/// OR of AND-runs. `f` evaluates one term.
fn eval_list<T: Copy>(terms: &[T], and: impl Fn(T) -> bool, f: impl Fn(T) -> bool) -> bool {
    let mut any = false;
    let mut run = true;
    for (i, &t) in terms.iter().enumerate() {
        if i > 0 && !and(t) {
            any |= run;
            run = true;
        }
        run &= f(t);
    }
    any | (run && !terms.is_empty())
}

/// Whether `data` satisfies a numeric term list.
pub fn eval_numeric(terms: &[NumericTerm], data: u64) -> bool {
    eval_list(terms, |t| t.and, |t| t.cmp.eval(data, t.value))
}

/// Whether `data` satisfies a bitmask term list.
pub fn eval_bitmask(terms: &[BitmaskTerm], data: u64) -> bool {
    eval_list(terms, |t| t.and, |t| t.eval(data))
}

/// A prefix component: IPv4 (RFC 8955 §4.2.2.1), or IPv6 with an offset (RFC 8956 §3.1): the pattern is
/// bits `offset..prefix_len` of the address, the first `offset` bits are ignored.
///
/// ```text
///  IPv4: type | length (bits) | prefix (ceil(length/8) octets)
///  IPv6: type | length (bits) | offset (bits) | pattern (ceil((length-offset)/8) octets)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FlowPrefix {
    V4(Ipv4Net),
    /// `prefix` has every bit outside `offset..prefix_len` cleared.
    V6 {
        prefix: Ipv6Net,
        offset: u8,
    },
}

impl FlowPrefix {
    /// A prefix without offset (host bits cleared).
    pub fn new(p: IpNet) -> Self {
        match p.trunc() {
            IpNet::V4(p) => FlowPrefix::V4(p),
            IpNet::V6(p) => FlowPrefix::V6 {
                prefix: p,
                offset: 0,
            },
        }
    }

    /// An IPv6 pattern: bits `offset..len` of `addr` (others cleared). `None` if `offset > len` or
    /// `len > 128`.
    pub fn v6_with_offset(addr: Ipv6Addr, len: u8, offset: u8) -> Option<Self> {
        if offset > len || len > 128 {
            return None;
        }
        let bits = u128::from(addr) & mask128(offset, len);
        Some(FlowPrefix::V6 {
            prefix: Ipv6Net::new(Ipv6Addr::from(bits), len).ok()?,
            offset,
        })
    }

    pub fn family(self) -> Family {
        match self {
            FlowPrefix::V4(_) => Family::V4,
            FlowPrefix::V6 { .. } => Family::V6,
        }
    }

    /// The prefix (for IPv6 with an offset, with the ignored leading bits zero).
    pub fn prefix(self) -> IpNet {
        match self {
            FlowPrefix::V4(p) => IpNet::V4(p),
            FlowPrefix::V6 { prefix, .. } => IpNet::V6(prefix),
        }
    }

    pub fn offset(self) -> u8 {
        match self {
            FlowPrefix::V4(_) => 0,
            FlowPrefix::V6 { offset, .. } => offset,
        }
    }

    pub fn prefix_len(self) -> u8 {
        match self {
            FlowPrefix::V4(p) => p.prefix_len(),
            FlowPrefix::V6 { prefix, .. } => prefix.prefix_len(),
        }
    }

    /// Whether an address matches (bits `offset..len` equal).
    pub fn contains(self, addr: std::net::IpAddr) -> bool {
        match (self, addr) {
            (FlowPrefix::V4(p), std::net::IpAddr::V4(a)) => p.contains(&a),
            (FlowPrefix::V6 { prefix, offset }, std::net::IpAddr::V6(a)) => {
                let m = mask128(offset, prefix.prefix_len());
                u128::from(a) & m == u128::from(prefix.addr()) & m
            }
            _ => false,
        }
    }

    /// The pattern bits as an integer aligned at the most significant bit (for comparisons), and its width.
    fn bits(self) -> (u128, u8) {
        match self {
            FlowPrefix::V4(p) => (u128::from(u32::from(p.addr())) << 96, p.prefix_len()),
            FlowPrefix::V6 { prefix, .. } => (u128::from(prefix.addr()), prefix.prefix_len()),
        }
    }

    fn wire_len(self) -> usize {
        match self {
            FlowPrefix::V4(p) => 1 + usize::from(p.prefix_len()).div_ceil(8),
            FlowPrefix::V6 { prefix, offset } => {
                2 + usize::from(prefix.prefix_len() - offset).div_ceil(8)
            }
        }
    }

    fn encode(self, buf: &mut BytesMut) {
        match self {
            FlowPrefix::V4(p) => {
                buf.put_u8(p.prefix_len());
                let n = usize::from(p.prefix_len()).div_ceil(8);
                buf.put_slice(&p.addr().octets()[..n]);
            }
            FlowPrefix::V6 { prefix, offset } => {
                let len = prefix.prefix_len();
                buf.put_u8(len);
                buf.put_u8(offset);
                let n = usize::from(len - offset).div_ceil(8);
                // The pattern starts at bit `offset`: shift it to the top.
                let pat = u128::from(prefix.addr())
                    .checked_shl(u32::from(offset))
                    .unwrap_or(0);
                buf.put_slice(&pat.to_be_bytes()[..n]);
            }
        }
    }
}

/// Bits `from..to` (from the most significant) set.
fn mask128(from: u8, to: u8) -> u128 {
    let hi = u128::MAX.checked_shr(u32::from(from)).unwrap_or(0);
    let lo = u128::MAX.checked_shl(128 - u32::from(to)).unwrap_or(0);
    hi & lo
}

/// One component of a rule (RFC 8955 §4.2.2, RFC 8956 §3). Term lists are never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Component {
    DestinationPrefix(FlowPrefix),
    SourcePrefix(FlowPrefix),
    /// IPv4 protocol / IPv6 upper-layer protocol (type 3).
    Protocol(Vec<NumericTerm>),
    /// Source or destination port (type 4).
    Port(Vec<NumericTerm>),
    DestinationPort(Vec<NumericTerm>),
    SourcePort(Vec<NumericTerm>),
    /// ICMP / ICMPv6 type.
    IcmpType(Vec<NumericTerm>),
    IcmpCode(Vec<NumericTerm>),
    TcpFlags(Vec<BitmaskTerm>),
    /// Total IP packet length (IPv4) / payload length + 40 (IPv6, RFC 8956 §3.5), excluding L2.
    PacketLength(Vec<NumericTerm>),
    /// 6-bit DSCP (type 11).
    Dscp(Vec<NumericTerm>),
    /// Fragment bits ([`fragment`]).
    Fragment(Vec<BitmaskTerm>),
    /// IPv6 flow label, 20 bits (type 13, RFC 8956 §3.7).
    FlowLabel(Vec<NumericTerm>),
}

impl Component {
    /// The component type code.
    pub fn type_code(&self) -> u8 {
        use component as c;
        match self {
            Component::DestinationPrefix(_) => c::DESTINATION_PREFIX,
            Component::SourcePrefix(_) => c::SOURCE_PREFIX,
            Component::Protocol(_) => c::PROTOCOL,
            Component::Port(_) => c::PORT,
            Component::DestinationPort(_) => c::DESTINATION_PORT,
            Component::SourcePort(_) => c::SOURCE_PORT,
            Component::IcmpType(_) => c::ICMP_TYPE,
            Component::IcmpCode(_) => c::ICMP_CODE,
            Component::TcpFlags(_) => c::TCP_FLAGS,
            Component::PacketLength(_) => c::PACKET_LENGTH,
            Component::Dscp(_) => c::DSCP,
            Component::Fragment(_) => c::FRAGMENT,
            Component::FlowLabel(_) => c::FLOW_LABEL,
        }
    }

    /// The numeric terms, for numeric components.
    pub fn numeric(&self) -> Option<&[NumericTerm]> {
        match self {
            Component::Protocol(t)
            | Component::Port(t)
            | Component::DestinationPort(t)
            | Component::SourcePort(t)
            | Component::IcmpType(t)
            | Component::IcmpCode(t)
            | Component::PacketLength(t)
            | Component::Dscp(t)
            | Component::FlowLabel(t) => Some(t),
            _ => None,
        }
    }

    /// The bitmask terms, for TCP flags and fragment.
    pub fn bitmask(&self) -> Option<&[BitmaskTerm]> {
        match self {
            Component::TcpFlags(t) | Component::Fragment(t) => Some(t),
            _ => None,
        }
    }

    pub fn prefix(&self) -> Option<FlowPrefix> {
        match self {
            Component::DestinationPrefix(p) | Component::SourcePrefix(p) => Some(*p),
            _ => None,
        }
    }

    /// Octets after the type code.
    fn body_len(&self) -> usize {
        if let Some(p) = self.prefix() {
            return p.wire_len();
        }
        self.term_lens().map(|(len, _)| 1 + usize::from(len)).sum()
    }

    /// (value length, value) of each term (nothing for prefixes). Allocation-free.
    fn term_lens(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        let n = self
            .numeric()
            .unwrap_or(&[])
            .iter()
            .map(|t| (t.len, t.value));
        let b = self
            .bitmask()
            .unwrap_or(&[])
            .iter()
            .map(|t| (t.len, t.value));
        n.chain(b)
    }

    /// Appends the component (type code included).
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.type_code());
        self.encode_body(buf);
    }

    fn encode_body(&self, buf: &mut BytesMut) {
        if let Some(p) = self.prefix() {
            p.encode(buf);
        } else if let Some(t) = self.numeric() {
            for (i, x) in t.iter().enumerate() {
                buf.put_u8(x.op(i + 1 == t.len()));
                buf.put_uint(x.value, usize::from(x.len));
            }
        } else if let Some(t) = self.bitmask() {
            for (i, x) in t.iter().enumerate() {
                buf.put_u8(x.op(i + 1 == t.len()));
                buf.put_uint(x.value, usize::from(x.len));
            }
        }
    }

    /// Checks terms and lengths against the component's rules for `family`.
    fn validate(&self, family: Family) -> Result<(), FlowSpecError> {
        let t = self.type_code();
        if !known(t, family) {
            return Err(FlowSpecError::UnknownComponent(t));
        }
        if let Some(p) = self.prefix() {
            if p.family() != family {
                return Err(FlowSpecError::WrongFamily(t));
            }
            if p.offset() > p.prefix_len() {
                return Err(FlowSpecError::BadPrefix(t));
            }
            return Ok(());
        }
        if self.term_lens().next().is_none() {
            return Err(FlowSpecError::NoTerms(t));
        }
        for (len, value) in self.term_lens() {
            if !value_len_allowed(t, len) {
                return Err(FlowSpecError::BadValueLength { component: t, len });
            }
            if len < 8 && value >> (8 * u32::from(len)) != 0 {
                return Err(FlowSpecError::ValueTooLarge(t));
            }
        }
        Ok(())
    }
}

/// Whether component type `t` is defined for `family`.
fn known(t: u8, family: Family) -> bool {
    match t {
        component::DESTINATION_PREFIX..=component::FRAGMENT => true,
        component::FLOW_LABEL => family == Family::V6,
        _ => false,
    }
}

/// The value lengths each component allows (RFC 8955 §4.2.2.3–12, RFC 8956 §3.3–3.7).
fn value_len_allowed(t: u8, len: u8) -> bool {
    use component as c;
    match t {
        // Protocol, ICMP type/code, DSCP, fragment: 1-octet quantities.
        c::PROTOCOL | c::ICMP_TYPE | c::ICMP_CODE | c::DSCP | c::FRAGMENT => len == 1,
        // Ports, TCP flags, packet length: 1- or 2-octet quantities.
        c::PORT | c::DESTINATION_PORT | c::SOURCE_PORT | c::TCP_FLAGS | c::PACKET_LENGTH => {
            matches!(len, 1 | 2)
        }
        // Flow label: 20 bits, so up to 4 octets.
        c::FLOW_LABEL => matches!(len, 1 | 2 | 4),
        _ => false,
    }
}

/// One flow specification rule: an address family and components in strictly increasing type order.
///
/// Built with [`FlowSpec::new`] (which validates) or [`FlowSpec::decode`]; the fields are private so that a
/// `FlowSpec` always encodes to a well-formed NLRI. Equality is equality of the NLRI octets (the rule's
/// identity in BGP). `Ord` is the RFC 8955 §5.1 / RFC 8956 §4 precedence order ([`FlowSpec::compare_precedence`],
/// IPv4 rules before IPv6 ones): sorting a table puts the rule that must be applied first at the front.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowSpec {
    family: Family,
    components: Vec<Component>,
}

impl FlowSpec {
    /// A validated rule: components strictly increasing by type, each defined for `family`, term lists
    /// non-empty with value lengths the component allows, and at most 4095 octets encoded. The first term of
    /// each list has its AND bit cleared (it has no previous term, RFC 8955 §4.2.1.1).
    pub fn new(family: Family, mut components: Vec<Component>) -> Result<FlowSpec, FlowSpecError> {
        if components.is_empty() {
            return Err(FlowSpecError::Empty);
        }
        let mut prev = 0u8;
        for c in &mut components {
            let t = c.type_code();
            c.validate(family)?;
            if t <= prev {
                return Err(FlowSpecError::OutOfOrder { prev, next: t });
            }
            prev = t;
            clear_first_and(c);
            normalize_prefix(c);
        }
        let f = FlowSpec { family, components };
        if f.body_len() > MAX_NLRI_LEN {
            return Err(FlowSpecError::TooLong);
        }
        Ok(f)
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// AFI/SAFI this rule travels in (IPv4 or IPv6 FlowSpec).
    pub fn afi_safi(&self) -> AfiSafi {
        afi_safi(self.family)
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The component of type `t`, if present.
    pub fn component(&self, t: u8) -> Option<&Component> {
        self.components.iter().find(|c| c.type_code() == t)
    }

    /// The destination prefix, if the rule has one (RFC 8955 §6 validates against it).
    pub fn destination(&self) -> Option<FlowPrefix> {
        self.component(component::DESTINATION_PREFIX)
            .and_then(Component::prefix)
    }

    fn body_len(&self) -> usize {
        self.components.iter().map(|c| 1 + c.body_len()).sum()
    }

    /// Octets the NLRI takes, length field included.
    pub fn wire_len(&self) -> usize {
        let b = self.body_len();
        b + if b < 240 { 1 } else { 2 }
    }

    /// Appends the NLRI: length (1 octet below 240, else 0xfnnn) then the components.
    pub fn encode(&self, buf: &mut BytesMut) {
        let b = self.body_len();
        if b < 240 {
            buf.put_u8(b as u8);
        } else {
            buf.put_u16(0xf000 | (b as u16 & 0x0fff));
        }
        for c in &self.components {
            c.encode(buf);
        }
    }

    /// Encodes into a fresh vector (tests, diagnostics).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = BytesMut::with_capacity(self.wire_len());
        self.encode(&mut b);
        b.to_vec()
    }

    /// Decodes one NLRI body (the octets after its length field) of `family`.
    pub fn decode(mut b: &[u8], family: Family) -> Result<FlowSpec, FlowSpecError> {
        if b.is_empty() {
            return Err(FlowSpecError::Empty);
        }
        // Upper bound on components: at most one per type; no count pass needed.
        let mut components = Vec::with_capacity(4);
        let mut prev = 0u8;
        while let Some((&t, rest)) = b.split_first() {
            if !known(t, family) {
                return Err(FlowSpecError::UnknownComponent(t));
            }
            if t <= prev {
                return Err(FlowSpecError::OutOfOrder { prev, next: t });
            }
            prev = t;
            let (c, rest) = decode_component(t, rest, family)?;
            components.push(c);
            b = rest;
        }
        Ok(FlowSpec { family, components })
    }

    /// The RFC 8955 §5.1 / RFC 8956 §4 order of two rules of the same family: `Less` when `self` has
    /// precedence over `other` (must be applied first).
    ///
    /// Components are compared in type order until one differs: a rule that has a type the other lacks (at
    /// the first point where they differ) wins; for two prefixes, IPv6 offsets first (the lower wins), then
    /// the bits both prefixes have (the lower value wins) and, when those are equal, the longer prefix; for
    /// other components, their octets (operators and values) as with memcmp over the common length, the lower
    /// string winning, and the longer string when one is a prefix of the other.
    pub fn compare_precedence(&self, other: &FlowSpec) -> Ordering {
        let mut a = self.components.iter();
        let mut b = other.components.iter();
        let mut ba = BytesMut::new();
        let mut bb = BytesMut::new();
        loop {
            let (x, y) = match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                // End of list counts as type "infinity": the rule that still has a component wins.
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (Some(x), Some(y)) => (x, y),
            };
            let o = x.type_code().cmp(&y.type_code());
            if o != Ordering::Equal {
                return o;
            }
            let o = match (x.prefix(), y.prefix()) {
                (Some(p), Some(q)) => compare_prefix(p, q),
                _ => {
                    ba.clear();
                    bb.clear();
                    x.encode_body(&mut ba);
                    y.encode_body(&mut bb);
                    let n = ba.len().min(bb.len());
                    ba[..n].cmp(&bb[..n]).then_with(|| bb.len().cmp(&ba.len()))
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
    }

    /// Whether a packet matches every component of the rule (a reference matcher: the dataplane classifier
    /// must agree with it). Components whose field the packet does not have (ports of a non-TCP/UDP packet,
    /// ICMP fields of a non-ICMP packet, the flow label of an IPv4 packet) do not match.
    pub fn matches(&self, p: &Packet) -> bool {
        self.components.iter().all(|c| {
            let num = |v: Option<u64>, t: &[NumericTerm]| v.is_some_and(|v| eval_numeric(t, v));
            match c {
                Component::DestinationPrefix(x) => x.contains(p.dst),
                Component::SourcePrefix(x) => x.contains(p.src),
                Component::Protocol(t) => eval_numeric(t, u64::from(p.protocol)),
                Component::Port(t) => {
                    num(p.src_port.map(u64::from), t) || num(p.dst_port.map(u64::from), t)
                }
                Component::DestinationPort(t) => num(p.dst_port.map(u64::from), t),
                Component::SourcePort(t) => num(p.src_port.map(u64::from), t),
                Component::IcmpType(t) => num(p.icmp_type.map(u64::from), t),
                Component::IcmpCode(t) => num(p.icmp_code.map(u64::from), t),
                Component::TcpFlags(t) => {
                    p.tcp_flags.is_some_and(|f| eval_bitmask(t, u64::from(f)))
                }
                Component::PacketLength(t) => eval_numeric(t, u64::from(p.length)),
                Component::Dscp(t) => eval_numeric(t, u64::from(p.dscp)),
                Component::Fragment(t) => eval_bitmask(t, u64::from(p.fragment)),
                Component::FlowLabel(t) => num(p.flow_label.map(u64::from), t),
            }
        })
    }
}

impl PartialOrd for FlowSpec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlowSpec {
    fn cmp(&self, other: &Self) -> Ordering {
        let fam = |f: Family| matches!(f, Family::V6);
        fam(self.family)
            .cmp(&fam(other.family))
            .then_with(|| self.compare_precedence(other))
    }
}

/// The fields of a packet a rule can match (input of [`FlowSpec::matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    /// IPv4 protocol / IPv6 upper-layer protocol.
    pub protocol: u8,
    /// TCP, UDP or SCTP ports of a first (or unfragmented) packet.
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// TCP flags octet (TCP packets only).
    pub tcp_flags: Option<u16>,
    /// IP packet length.
    pub length: u16,
    pub dscp: u8,
    /// [`fragment`] bits.
    pub fragment: u8,
    /// IPv6 only.
    pub flow_label: Option<u32>,
}

/// Prefix precedence: lower IPv6 offset first, then the lower value over the common bits, then the more
/// specific prefix.
fn compare_prefix(p: FlowPrefix, q: FlowPrefix) -> Ordering {
    let o = p.offset().cmp(&q.offset());
    if o != Ordering::Equal {
        return o;
    }
    let ((pb, pl), (qb, ql)) = (p.bits(), q.bits());
    let common = pl.min(ql);
    let m = mask128(p.offset(), common);
    (pb & m).cmp(&(qb & m)).then_with(|| ql.cmp(&pl))
}

/// Clears prefix bits the encoding does not carry (host bits; for IPv6 also the bits before the offset), as
/// decoding does, so that a built rule equals its own decoded encoding.
fn normalize_prefix(c: &mut Component) {
    if let Component::DestinationPrefix(p) | Component::SourcePrefix(p) = c {
        *p = match *p {
            FlowPrefix::V4(n) => FlowPrefix::V4(n.trunc()),
            FlowPrefix::V6 { prefix, offset } => {
                FlowPrefix::v6_with_offset(prefix.addr(), prefix.prefix_len(), offset).unwrap_or(*p)
            }
        };
    }
}

fn clear_first_and(c: &mut Component) {
    match c {
        Component::Protocol(t)
        | Component::Port(t)
        | Component::DestinationPort(t)
        | Component::SourcePort(t)
        | Component::IcmpType(t)
        | Component::IcmpCode(t)
        | Component::PacketLength(t)
        | Component::Dscp(t)
        | Component::FlowLabel(t) => {
            if let Some(f) = t.first_mut() {
                f.and = false;
            }
        }
        Component::TcpFlags(t) | Component::Fragment(t) => {
            if let Some(f) = t.first_mut() {
                f.and = false;
            }
        }
        Component::DestinationPrefix(_) | Component::SourcePrefix(_) => {}
    }
}

/// Decodes the component of type `t` from `b` (the octets after the type code); returns it and the rest.
fn decode_component(t: u8, b: &[u8], family: Family) -> Result<(Component, &[u8]), FlowSpecError> {
    use component as c;
    if matches!(t, c::DESTINATION_PREFIX | c::SOURCE_PREFIX) {
        let (p, rest) = decode_prefix(t, b, family)?;
        let comp = if t == c::DESTINATION_PREFIX {
            Component::DestinationPrefix(p)
        } else {
            Component::SourcePrefix(p)
        };
        return Ok((comp, rest));
    }
    let bitmask = matches!(t, c::TCP_FLAGS | c::FRAGMENT);
    // Count the terms first (the vector is sized once, in proportion to the input).
    let mut n = 0;
    let mut s = b;
    loop {
        let (&op, rest) = s.split_first().ok_or(FlowSpecError::Truncated(t))?;
        let len = 1u8 << ((op >> 4) & 3);
        if !value_len_allowed(t, len) {
            return Err(FlowSpecError::BadValueLength { component: t, len });
        }
        s = rest
            .get(usize::from(len)..)
            .ok_or(FlowSpecError::Truncated(t))?;
        n += 1;
        if op & 0x80 != 0 {
            break;
        }
    }
    let rest = s;
    let mut s = b;
    let mut terms = Vec::with_capacity(n);
    for i in 0..n {
        let op = s[0];
        let len = 1u8 << ((op >> 4) & 3);
        let v = s[1..1 + usize::from(len)]
            .iter()
            .fold(0u64, |a, &x| (a << 8) | u64::from(x));
        s = &s[1 + usize::from(len)..];
        // RFC 8955 §4.2.1.1: the first term's AND bit is treated as unset; reserved bits are ignored.
        let and = i > 0 && op & 0x40 != 0;
        terms.push((and, op, v, len));
    }
    let comp = if bitmask {
        let v: Vec<BitmaskTerm> = terms
            .into_iter()
            .map(|(and, op, value, len)| BitmaskTerm {
                and,
                not: op & 0x02 != 0,
                match_all: op & 0x01 != 0,
                value,
                len,
            })
            .collect();
        if t == c::TCP_FLAGS {
            Component::TcpFlags(v)
        } else {
            Component::Fragment(v)
        }
    } else {
        let v: Vec<NumericTerm> = terms
            .into_iter()
            .map(|(and, op, value, len)| NumericTerm {
                and,
                cmp: Cmp::bits(op & 0x07),
                value,
                len,
            })
            .collect();
        match t {
            c::PROTOCOL => Component::Protocol(v),
            c::PORT => Component::Port(v),
            c::DESTINATION_PORT => Component::DestinationPort(v),
            c::SOURCE_PORT => Component::SourcePort(v),
            c::ICMP_TYPE => Component::IcmpType(v),
            c::ICMP_CODE => Component::IcmpCode(v),
            c::PACKET_LENGTH => Component::PacketLength(v),
            c::DSCP => Component::Dscp(v),
            c::FLOW_LABEL => Component::FlowLabel(v),
            _ => return Err(FlowSpecError::UnknownComponent(t)),
        }
    };
    Ok((comp, rest))
}

fn decode_prefix(t: u8, b: &[u8], family: Family) -> Result<(FlowPrefix, &[u8]), FlowSpecError> {
    match family {
        Family::V4 => {
            let (&len, rest) = b.split_first().ok_or(FlowSpecError::Truncated(t))?;
            if len > 32 {
                return Err(FlowSpecError::BadPrefix(t));
            }
            let n = usize::from(len).div_ceil(8);
            let bytes = rest.get(..n).ok_or(FlowSpecError::Truncated(t))?;
            let mut o = [0u8; 4];
            o[..n].copy_from_slice(bytes);
            let a = u32::from_be_bytes(o) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let p =
                Ipv4Net::new(Ipv4Addr::from(a), len).map_err(|_| FlowSpecError::BadPrefix(t))?;
            Ok((FlowPrefix::V4(p), &rest[n..]))
        }
        Family::V6 => {
            let [len, offset, rest @ ..] = b else {
                return Err(FlowSpecError::Truncated(t));
            };
            let (len, offset) = (*len, *offset);
            if len > 128 || offset > len {
                return Err(FlowSpecError::BadPrefix(t));
            }
            let n = usize::from(len - offset).div_ceil(8);
            let bytes = rest.get(..n).ok_or(FlowSpecError::Truncated(t))?;
            let mut o = [0u8; 16];
            o[..n].copy_from_slice(bytes);
            let pattern = u128::from_be_bytes(o)
                .checked_shr(u32::from(offset))
                .unwrap_or(0);
            let p = FlowPrefix::v6_with_offset(Ipv6Addr::from(pattern), len, offset)
                .ok_or(FlowSpecError::BadPrefix(t))?;
            Ok((p, &rest[n..]))
        }
    }
}

/// Splits the first NLRI off a field: its body (after the length) and the rest of the field.
fn split_nlri(b: &[u8]) -> Result<(&[u8], &[u8]), FlowSpecError> {
    let (&first, rest) = b.split_first().ok_or(FlowSpecError::LengthOverrun)?;
    let (len, rest) = if first >= 0xf0 {
        let (&second, rest) = rest.split_first().ok_or(FlowSpecError::LengthOverrun)?;
        (usize::from(first & 0x0f) << 8 | usize::from(second), rest)
    } else {
        (usize::from(first), rest)
    };
    if rest.len() < len {
        return Err(FlowSpecError::LengthOverrun);
    }
    Ok(rest.split_at(len))
}

/// Decodes a whole NLRI field (of MP_REACH_NLRI or MP_UNREACH_NLRI) into `out`.
///
/// * `Err(e)` (only [`FlowSpecError::LengthOverrun`]): the field cannot be framed; `out` is left as it was.
/// * `Ok(None)`: every NLRI decoded.
/// * `Ok(Some(e))`: at least one NLRI was malformed inside a sound length (`e` is the first error); the
///   others are in `out`, the malformed ones are not.
///
/// The field is framed completely before anything is decoded, so a framing error is never reported after
/// rules were added. Allocation is in proportion to the field.
pub fn decode_field(
    buf: &[u8],
    family: Family,
    out: &mut Vec<FlowSpec>,
) -> Result<Option<FlowSpecError>, FlowSpecError> {
    let mut n = 0;
    let mut b = buf;
    while !b.is_empty() {
        let (_, rest) = split_nlri(b)?;
        b = rest;
        n += 1;
    }
    out.reserve(n);
    let mut first_err = None;
    let mut b = buf;
    while !b.is_empty() {
        let (body, rest) = split_nlri(b)?;
        b = rest;
        match FlowSpec::decode(body, family) {
            Ok(f) => out.push(f),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Ok(first_err)
}

/// Appends rules as an NLRI field.
pub fn encode_field(rules: &[FlowSpec], buf: &mut BytesMut) {
    for r in rules {
        r.encode(buf);
    }
}

#[cfg(test)]
mod tests;
