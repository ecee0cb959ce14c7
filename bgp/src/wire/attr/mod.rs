//! Path attributes (RFC 4271 §4.3, §5) and their RFC 7606 error handling.
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +---------------+---------------+------------------------------+
//! |  Attr. Flags  |Attr. Type Code| Length (1 octet, or 2 with   |
//! +---------------+---------------+ the Extended Length flag)    |
//! |  O T P E 0 0 0 0                                             |
//! +--------------------------------------------------------------+
//! ```
//! (O = optional, T = transitive, P = partial, E = extended length.)
//!
//! [`decode`] walks the attribute field once and fills a [`PathAttributes`]; MP_REACH_NLRI/MP_UNREACH_NLRI go
//! to the UPDATE itself. Each malformed attribute is handled as RFC 7606 §7 says for its type:
//!
//! | attribute | malformed → |
//! |---|---|
//! | ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, ORIGINATOR_ID, CLUSTER_LIST, EXTENDED_COMMUNITIES, LARGE_COMMUNITIES | treat-as-withdraw |
//! | ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH, AS4_AGGREGATOR (RFC 6793 §6) | attribute discard |
//! | MP_REACH_NLRI, MP_UNREACH_NLRI, duplicate MP attribute, unrecognized well-known | session reset |
//! | MP_REACH_NLRI, MP_UNREACH_NLRI of a FlowSpec family (RFC 8955 §10) | AFI/SAFI disable (`Update::afi_safi_disable`) |
//! | a FlowSpec rule malformed inside a sound NLRI length (RFC 8955 §4.2) | treat-as-withdraw |
//!
//! A repeated attribute other than MP_* is discarded (all but the first, §3 g). An attribute header or length
//! that overruns the field is treat-as-withdraw when the UPDATE's prefixes can still be located (§4), and a
//! session reset otherwise.

pub mod as_path;
pub mod community;
pub mod mp;

use crate::wire::{AS_TRANS, Context, EncodeError, Error};
use as_path::AsPath;
use bytes::{BufMut, BytesMut};
use community::{Community, ExtCommunity, LargeCommunity};
use mp::{MpError, MpReach, MpUnreach};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AGGREGATOR / AS4_AGGREGATOR (RFC 4271 §5.1.7, RFC 6793 §3), always with a 4-octet AS here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// An attribute this codec does not interpret, kept verbatim (flags as received).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// How the attributes looked on the wire, kept so that re-encoding a received UPDATE gives the same octets:
/// the order of the attribute types (GoBGP, for one, does not sort them) and which types used the Extended
/// Length flag although short (FRR does for MP_REACH_NLRI). Ignored by equality and hashing.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct WireHints {
    /// Bit `t` set: attribute type `t` (< 64) had the Extended Length flag.
    pub ext_len: u64,
    /// The first `order_len` attribute types in the order received; others follow in type order.
    pub order: [u8; 24],
    pub order_len: u8,
}

/// Type order used for attributes without a received order.
const CANONICAL: [u8; 16] = [
    code::ORIGIN,
    code::AS_PATH,
    code::NEXT_HOP,
    code::MULTI_EXIT_DISC,
    code::LOCAL_PREF,
    code::ATOMIC_AGGREGATE,
    code::AGGREGATOR,
    code::COMMUNITIES,
    code::ORIGINATOR_ID,
    code::CLUSTER_LIST,
    code::MP_REACH_NLRI,
    code::MP_UNREACH_NLRI,
    code::EXTENDED_COMMUNITIES,
    code::AS4_PATH,
    code::AS4_AGGREGATOR,
    code::LARGE_COMMUNITIES,
];

impl PartialEq for WireHints {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for WireHints {}
impl std::hash::Hash for WireHints {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// The path attributes of one UPDATE, decoded once (MP_REACH/MP_UNREACH excluded: see [`crate::wire::Update`]).
///
/// ASes are always 4-octet: a 2-octet peer's AS_PATH/AS4_PATH and AGGREGATOR/AS4_AGGREGATOR are merged on
/// decode (RFC 6793 §4.2.3) and split again when encoding for a 2-octet peer. Empty vectors mean "absent".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<Community>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognized optional attributes in the order received (RFC 4271 §5: transitive ones are passed on).
    pub unknown: Vec<RawAttribute>,
    pub hints: WireHints,
}

/// RFC 7606 approach for one malformed attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approach {
    Withdraw,
    Discard,
    Reset,
}

fn approach(t: u8) -> Approach {
    match t {
        code::ATOMIC_AGGREGATE | code::AGGREGATOR | code::AS4_PATH | code::AS4_AGGREGATOR => {
            Approach::Discard
        }
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => Approach::Reset,
        _ => Approach::Withdraw,
    }
}

/// The O and T bits each known type must have (RFC 4271 §5, RFC 4760, RFC 4456, RFC 4360, RFC 6793, RFC 8092).
fn expected_ot(t: u8) -> Option<u8> {
    use flags::{OPTIONAL as O, TRANSITIVE as T};
    Some(match t {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => T,
        code::MULTI_EXIT_DISC
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => O,
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITIES => O | T,
        _ => return None,
    })
}

/// The UPDATE being filled, and whether the attribute field could be walked to its end.
struct Decoded<'u> {
    u: &'u mut crate::wire::Update,
    /// The field could not be walked to its end (RFC 7606 §4 overrun).
    overrun: bool,
}

impl Decoded<'_> {
    fn malformed(&mut self, t: u8, e: Error) -> Result<(), Error> {
        match approach(t) {
            Approach::Reset => return Err(e),
            Approach::Withdraw => {
                if self.u.treat_as_withdraw.is_none() {
                    self.u.treat_as_withdraw = Some(e);
                }
            }
            Approach::Discard => self.u.discarded.push(e),
        }
        Ok(())
    }
}

impl Decoded<'_> {
    /// A FlowSpec rule malformed inside a sound NLRI length: the other rules are located exactly, so the
    /// UPDATE is treat-as-withdraw (see `wire::flowspec`).
    fn flowspec_content(&mut self, bad: Option<crate::wire::flowspec::FlowSpecError>) {
        if bad.is_some() && self.u.treat_as_withdraw.is_none() {
            self.u.treat_as_withdraw = Some(Error::InvalidNetworkField);
        }
    }

    /// A malformed MP_REACH_NLRI / MP_UNREACH_NLRI. For FlowSpec families it is "AFI/SAFI disable" (RFC 4760
    /// §7, RFC 7606 §7.11): the NLRI cannot be located, the attribute is dropped and the family is reported
    /// in `Update::afi_safi_disable`; the rest of the UPDATE stays usable. Other families: session reset.
    fn mp_error(&mut self, v: &[u8], e: MpError, whole: &[u8]) -> Result<(), Error> {
        let err = match e {
            MpError::Attribute => Error::OptionalAttributeError(whole.to_vec()),
            MpError::Nlri => Error::InvalidNetworkField,
        };
        if let [a0, a1, s, ..] = *v {
            let af = crate::wire::AfiSafi::new(
                crate::wire::Afi(u16::from_be_bytes([a0, a1])),
                crate::wire::Safi(s),
            );
            if crate::wire::flowspec::family(af).is_some() {
                if self.u.afi_safi_disable.is_none() {
                    self.u.afi_safi_disable = Some((af, err));
                }
                return Ok(());
            }
        }
        Err(err)
    }
}

fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// Decodes an attribute field into `u` (attributes, MP_REACH/MP_UNREACH, RFC 7606 outcomes), in place: the
/// UPDATE is large and moving it costs more than decoding a small one. `Err` is a session reset; `Ok(true)`
/// says the field overran (RFC 7606 §4).
pub(crate) fn decode(
    mut buf: &[u8],
    ctx: &Context,
    u: &mut crate::wire::Update,
) -> Result<bool, Error> {
    let mut d = Decoded { u, overrun: false };
    let mut seen = [0u64; 4];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    // AS4_PATH / AS4_AGGREGATOR as received, kept when RFC 6793 §4.2.3 says to ignore them.
    let mut as4_raw: Vec<RawAttribute> = Vec::new();
    while !buf.is_empty() {
        // Header: flags, type, 1- or 2-octet length.
        let (fl, t) = match buf {
            [f, t, ..] => (*f, *t),
            _ => {
                d.overrun = true;
                break;
            }
        };
        let ext = fl & flags::EXTENDED_LENGTH != 0;
        let hlen = if ext { 4 } else { 3 };
        let len = match (ext, buf.get(2..hlen)) {
            (true, Some(l)) => usize::from(u16::from_be_bytes([l[0], l[1]])),
            (false, Some(l)) => usize::from(l[0]),
            _ => {
                d.overrun = true;
                break;
            }
        };
        let Some(whole) = buf.get(..hlen + len) else {
            d.overrun = true;
            // The attribute that overruns is itself malformed: report it with what is there.
            let e = Error::AttributeLengthError(buf.to_vec());
            if matches!(t, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(Error::MalformedAttributeList);
            }
            d.malformed(t, e)?;
            break;
        };
        let v = &whole[hlen..];
        buf = &buf[hlen + len..];

        // Duplicates (RFC 7606 §3 g): MP_* duplicates reset the session, others keep the first.
        let (w, bit) = (usize::from(t / 64), 1u64 << (t % 64));
        if seen[w] & bit != 0 {
            if matches!(t, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(Error::MalformedAttributeList);
            }
            d.u.discarded.push(Error::MalformedAttributeList);
            continue;
        }
        seen[w] |= bit;
        if ext && t < 64 {
            d.u.attrs.hints.ext_len |= 1 << t;
        }
        let h = &mut d.u.attrs.hints;
        if let Some(slot) = h.order.get_mut(usize::from(h.order_len)) {
            *slot = t;
            h.order_len += 1;
        }

        let Some(ot) = expected_ot(t) else {
            if fl & flags::OPTIONAL == 0 {
                return Err(Error::UnrecognizedWellKnownAttribute(whole.to_vec()));
            }
            d.u.attrs.unknown.push(RawAttribute {
                flags: fl & !flags::EXTENDED_LENGTH,
                type_code: t,
                value: v.to_vec(),
            });
            if ext {
                // Keep the flag for unknowns in their flags (hint bitmask covers only t < 64).
                if let Some(u) = d.u.attrs.unknown.last_mut() {
                    u.flags |= flags::EXTENDED_LENGTH;
                }
            }
            continue;
        };
        if fl & (flags::OPTIONAL | flags::TRANSITIVE) != ot {
            d.malformed(t, Error::AttributeFlagsError(whole.to_vec()))?;
            continue;
        }
        if matches!(t, code::AS4_PATH | code::AS4_AGGREGATOR) && !ctx.four_octet_as {
            as4_raw.push(RawAttribute {
                flags: fl,
                type_code: t,
                value: v.to_vec(),
            });
        }
        let len_err = || Error::AttributeLengthError(whole.to_vec());
        let a = &mut d.u.attrs;
        let r: Result<(), Error> = match t {
            code::ORIGIN => match v {
                [o @ 0..=2] => {
                    a.origin =
                        Some([Origin::Igp, Origin::Egp, Origin::Incomplete][usize::from(*o)]);
                    Ok(())
                }
                [_] => Err(Error::InvalidOriginAttribute(whole.to_vec())),
                _ => Err(len_err()),
            },
            code::AS_PATH => match AsPath::decode(v, if ctx.four_octet_as { 4 } else { 2 }) {
                Ok(p) => {
                    a.as_path = Some(p);
                    Ok(())
                }
                Err(_) => Err(Error::MalformedAsPath),
            },
            code::NEXT_HOP => match v {
                [a0, a1, a2, a3] => {
                    a.next_hop = Some(Ipv4Addr::new(*a0, *a1, *a2, *a3));
                    Ok(())
                }
                _ => Err(len_err()),
            },
            code::MULTI_EXIT_DISC => u32_of(v).map(|x| a.med = Some(x)).ok_or_else(len_err),
            code::LOCAL_PREF => u32_of(v)
                .map(|x| a.local_pref = Some(x))
                .ok_or_else(len_err),
            code::ATOMIC_AGGREGATE => {
                if v.is_empty() {
                    a.atomic_aggregate = true;
                    Ok(())
                } else {
                    Err(len_err())
                }
            }
            code::AGGREGATOR => match (ctx.four_octet_as, v.len()) {
                (true, 8) => {
                    let asn = u32_of(&v[..4]).unwrap_or(0);
                    a.aggregator = Some(Aggregator {
                        asn,
                        address: Ipv4Addr::from(u32_of(&v[4..]).unwrap_or(0)),
                    });
                    Ok(())
                }
                (false, 6) => {
                    let asn = u32::from(u16::from_be_bytes([v[0], v[1]]));
                    a.aggregator = Some(Aggregator {
                        asn,
                        address: Ipv4Addr::from(u32_of(&v[2..]).unwrap_or(0)),
                    });
                    Ok(())
                }
                _ => Err(len_err()),
            },
            code::AS4_AGGREGATOR => match v.len() {
                8 => {
                    let asn = u32_of(&v[..4]).unwrap_or(0);
                    as4_aggregator = Some(Aggregator {
                        asn,
                        address: Ipv4Addr::from(u32_of(&v[4..]).unwrap_or(0)),
                    });
                    Ok(())
                }
                _ => Err(len_err()),
            },
            code::COMMUNITIES => {
                if v.is_empty() || v.len() % 4 != 0 {
                    Err(len_err())
                } else {
                    a.communities = v
                        .chunks_exact(4)
                        .map(|c| Community(u32_of(c).unwrap_or(0)))
                        .collect();
                    Ok(())
                }
            }
            code::ORIGINATOR_ID => u32_of(v)
                .map(|x| a.originator_id = Some(Ipv4Addr::from(x)))
                .ok_or_else(len_err),
            code::CLUSTER_LIST => {
                if v.is_empty() || v.len() % 4 != 0 {
                    Err(len_err())
                } else {
                    a.cluster_list = v
                        .chunks_exact(4)
                        .map(|c| Ipv4Addr::from(u32_of(c).unwrap_or(0)))
                        .collect();
                    Ok(())
                }
            }
            code::EXTENDED_COMMUNITIES => {
                if v.is_empty() || v.len() % 8 != 0 {
                    Err(len_err())
                } else {
                    a.ext_communities = v
                        .chunks_exact(8)
                        .map(|c| ExtCommunity(c.try_into().unwrap_or([0; 8])))
                        .collect();
                    Ok(())
                }
            }
            code::LARGE_COMMUNITIES => {
                if v.is_empty() || v.len() % 12 != 0 {
                    Err(len_err())
                } else {
                    a.large_communities = v
                        .chunks_exact(12)
                        .map(|c| LargeCommunity {
                            global: u32_of(&c[..4]).unwrap_or(0),
                            local1: u32_of(&c[4..8]).unwrap_or(0),
                            local2: u32_of(&c[8..]).unwrap_or(0),
                        })
                        .collect();
                    Ok(())
                }
            }
            code::AS4_PATH => match AsPath::decode(v, 4) {
                Ok(p) => {
                    as4_path = Some(p);
                    Ok(())
                }
                Err(_) => Err(Error::OptionalAttributeError(whole.to_vec())),
            },
            code::MP_REACH_NLRI => match MpReach::decode(v, ctx) {
                Ok((m, bad)) => {
                    d.u.mp_reach = Some(m);
                    d.flowspec_content(bad);
                    Ok(())
                }
                Err(e) => d.mp_error(v, e, whole),
            },
            code::MP_UNREACH_NLRI => match MpUnreach::decode(v, ctx) {
                Ok((m, bad)) => {
                    d.u.mp_unreach = Some(m);
                    d.flowspec_content(bad);
                    Ok(())
                }
                Err(e) => d.mp_error(v, e, whole),
            },
            _ => Ok(()),
        };
        if let Err(e) = r {
            d.malformed(t, e)?;
        }
    }

    // RFC 6793 §4.2.3: merge what a 2-octet speaker sent. A 4-octet speaker's AS4_* are ignored (§4.1).
    if !ctx.four_octet_as {
        let agg_is_trans = d.u.attrs.aggregator.is_none_or(|a| a.asn == AS_TRANS);
        if agg_is_trans {
            if let (Some(a4), Some(_)) = (as4_aggregator, d.u.attrs.aggregator) {
                d.u.attrs.aggregator = Some(a4);
            }
            if let Some(p4) = as4_path
                && let Some(p) = d.u.attrs.as_path.take()
            {
                d.u.attrs.as_path = Some(AsPath::reconstruct(p, p4));
            }
        } else {
            // An AGGREGATOR with a real 2-octet AS: AS4_PATH and AS4_AGGREGATOR are ignored. They are kept
            // verbatim, like unknown attributes, so that a 2-octet peer gets them as they came.
            for mut raw in as4_raw {
                let at =
                    d.u.attrs
                        .unknown
                        .partition_point(|u| u.type_code < raw.type_code);
                raw.flags &= !flags::EXTENDED_LENGTH;
                if d.u.attrs.hints.ext_len & (1 << raw.type_code) != 0 {
                    raw.flags |= flags::EXTENDED_LENGTH;
                }
                d.u.attrs.unknown.insert(at, raw);
            }
        }
    }
    Ok(d.overrun)
}

/// MP attributes to write among the others, each with the prefixes to put in it (a slice when splitting).
#[derive(Clone, Copy, Default)]
pub(crate) struct MpPart<'a> {
    pub reach: Option<(
        &'a MpReach,
        &'a [crate::wire::Nlri],
        &'a [crate::wire::FlowSpec],
    )>,
    pub unreach: Option<(
        &'a MpUnreach,
        &'a [crate::wire::Nlri],
        &'a [crate::wire::FlowSpec],
    )>,
}

/// Starts an attribute with a 2-octet length; [`end_attr`] shrinks it to 1 octet when allowed.
fn begin_attr(buf: &mut BytesMut, fl: u8, t: u8) -> usize {
    buf.put_u8(fl | flags::EXTENDED_LENGTH);
    buf.put_u8(t);
    buf.put_u16(0);
    buf.len()
}

fn end_attr(buf: &mut BytesMut, value_at: usize, keep_ext: bool) -> Result<(), EncodeError> {
    let len = buf.len() - value_at;
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::Unencodable(
            "attribute longer than 65535 octets",
        ));
    }
    if keep_ext || len > 255 {
        buf[value_at - 2..value_at].copy_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf[value_at - 4] &= !flags::EXTENDED_LENGTH;
        buf[value_at - 2] = len as u8;
        buf.copy_within(value_at.., value_at - 1);
        buf.truncate(buf.len() - 1);
    }
    Ok(())
}

impl PathAttributes {
    /// Appends the attributes (no MP attribute).
    pub fn encode(&self, ctx: &Context, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_with(ctx, MpPart::default(), buf)
    }

    /// For re-advertisement (RFC 4271 §5, §9.1.3): unknown optional non-transitive attributes are dropped and
    /// unknown optional transitive ones get the Partial bit.
    pub fn prepare_readvertisement(&mut self) {
        self.unknown.retain(|u| u.flags & flags::TRANSITIVE != 0);
        for u in &mut self.unknown {
            u.flags |= flags::PARTIAL;
        }
    }

    pub(crate) fn encode_with(
        &self,
        ctx: &Context,
        mp: MpPart<'_>,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        // Received order first (so a decoded UPDATE re-encodes to its own octets), then the rest in type order.
        let mut done = [0u64; 4];
        let order =
            &self.hints.order[..usize::from(self.hints.order_len).min(self.hints.order.len())];
        for &t in order {
            let (w, bit) = (usize::from(t / 64), 1u64 << (t % 64));
            if done[w] & bit == 0 {
                done[w] |= bit;
                self.emit(t, ctx, mp, buf)?;
            }
        }
        let mut unknown = self.unknown.iter().map(|u| u.type_code).peekable();
        for &t in &CANONICAL {
            while let Some(u) = unknown.next_if(|&u| u < t) {
                self.emit_once(u, &mut done, ctx, mp, buf)?;
            }
            self.emit_once(t, &mut done, ctx, mp, buf)?;
        }
        for u in unknown {
            self.emit_once(u, &mut done, ctx, mp, buf)?;
        }
        Ok(())
    }

    fn emit_once(
        &self,
        t: u8,
        done: &mut [u64; 4],
        ctx: &Context,
        mp: MpPart<'_>,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let (w, bit) = (usize::from(t / 64), 1u64 << (t % 64));
        if done[w] & bit == 0 {
            done[w] |= bit;
            self.emit(t, ctx, mp, buf)?;
        }
        Ok(())
    }

    /// Writes attribute `t` if this set has it.
    fn emit(
        &self,
        t: u8,
        ctx: &Context,
        mp: MpPart<'_>,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        use flags::{OPTIONAL as O, TRANSITIVE as T};
        let ext = t < 64 && self.hints.ext_len & (1 << t) != 0;
        let simple = |buf: &mut BytesMut, fl: u8, value: &[u8]| -> Result<(), EncodeError> {
            let at = begin_attr(buf, fl, t);
            buf.put_slice(value);
            end_attr(buf, at, ext)
        };
        match t {
            code::ORIGIN => {
                if let Some(o) = self.origin {
                    simple(buf, T, &[o as u8])?;
                }
            }
            code::AS_PATH => {
                if let Some(p) = &self.as_path {
                    let at = begin_attr(buf, T, t);
                    p.encode(if ctx.four_octet_as { 4 } else { 2 }, buf)?;
                    end_attr(buf, at, ext)?;
                }
            }
            code::NEXT_HOP => {
                if let Some(nh) = self.next_hop {
                    simple(buf, T, &nh.octets())?;
                }
            }
            code::MULTI_EXIT_DISC => {
                if let Some(m) = self.med {
                    simple(buf, O, &m.to_be_bytes())?;
                }
            }
            code::LOCAL_PREF => {
                if let Some(l) = self.local_pref {
                    simple(buf, T, &l.to_be_bytes())?;
                }
            }
            code::ATOMIC_AGGREGATE => {
                if self.atomic_aggregate {
                    simple(buf, T, &[])?;
                }
            }
            code::AGGREGATOR => {
                if let Some(ag) = self.aggregator {
                    let at = begin_attr(buf, O | T, t);
                    if ctx.four_octet_as {
                        buf.put_u32(ag.asn);
                    } else {
                        buf.put_u16(u16::try_from(ag.asn).unwrap_or(AS_TRANS as u16));
                    }
                    buf.put_slice(&ag.address.octets());
                    end_attr(buf, at, ext)?;
                }
            }
            code::COMMUNITIES => {
                if !self.communities.is_empty() {
                    let at = begin_attr(buf, O | T, t);
                    self.communities.iter().for_each(|c| buf.put_u32(c.0));
                    end_attr(buf, at, ext)?;
                }
            }
            code::ORIGINATOR_ID => {
                if let Some(id) = self.originator_id {
                    simple(buf, O, &id.octets())?;
                }
            }
            code::CLUSTER_LIST => {
                if !self.cluster_list.is_empty() {
                    let at = begin_attr(buf, O, t);
                    self.cluster_list
                        .iter()
                        .for_each(|c| buf.put_slice(&c.octets()));
                    end_attr(buf, at, ext)?;
                }
            }
            code::MP_REACH_NLRI => {
                if let Some((m, nlri, rules)) = mp.reach {
                    let at = begin_attr(buf, O, t);
                    m.encode_header(buf);
                    let ap = ctx.add_path_send(m.afi_safi);
                    for n in nlri {
                        n.encode(ap, buf);
                    }
                    crate::wire::flowspec::encode_field(rules, buf);
                    buf.put_slice(&m.opaque_nlri);
                    end_attr(buf, at, ext)?;
                }
            }
            code::MP_UNREACH_NLRI => {
                if let Some((m, w, rules)) = mp.unreach {
                    let at = begin_attr(buf, O, t);
                    buf.put_u16(m.afi_safi.afi.0);
                    buf.put_u8(m.afi_safi.safi.0);
                    let ap = ctx.add_path_send(m.afi_safi);
                    for n in w {
                        n.encode(ap, buf);
                    }
                    crate::wire::flowspec::encode_field(rules, buf);
                    buf.put_slice(&m.opaque_withdrawn);
                    end_attr(buf, at, ext)?;
                }
            }
            code::EXTENDED_COMMUNITIES => {
                if !self.ext_communities.is_empty() {
                    let at = begin_attr(buf, O | T, t);
                    self.ext_communities
                        .iter()
                        .for_each(|c| buf.put_slice(&c.0));
                    end_attr(buf, at, ext)?;
                }
            }
            // RFC 6793 §4.2.2: a 2-octet peer gets the real ASes in AS4_PATH / AS4_AGGREGATOR.
            code::AS4_PATH => {
                if let Some(p) = self
                    .as_path
                    .as_ref()
                    .filter(|p| !ctx.four_octet_as && p.has_four_octet())
                {
                    let at = begin_attr(buf, O | T, t);
                    p.encode_filtered(4, true, buf)?;
                    end_attr(buf, at, ext)?;
                } else if !ctx.four_octet_as {
                    self.emit_raw(t, buf)?;
                }
            }
            code::AS4_AGGREGATOR => {
                if let Some(ag) = self
                    .aggregator
                    .filter(|a| !ctx.four_octet_as && a.asn > 0xffff)
                {
                    let at = begin_attr(buf, O | T, t);
                    buf.put_u32(ag.asn);
                    buf.put_slice(&ag.address.octets());
                    end_attr(buf, at, ext)?;
                } else if !ctx.four_octet_as {
                    self.emit_raw(t, buf)?;
                }
            }
            code::LARGE_COMMUNITIES => {
                if !self.large_communities.is_empty() {
                    let at = begin_attr(buf, O | T, t);
                    for c in &self.large_communities {
                        buf.put_u32(c.global);
                        buf.put_u32(c.local1);
                        buf.put_u32(c.local2);
                    }
                    end_attr(buf, at, ext)?;
                }
            }
            _ => self.emit_raw(t, buf)?,
        }
        Ok(())
    }

    /// Writes the kept raw attribute of type `t`, if any.
    fn emit_raw(&self, t: u8, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if let Some(u) = self.unknown.iter().find(|u| u.type_code == t) {
            let at = begin_attr(buf, u.flags & !flags::EXTENDED_LENGTH, t);
            buf.put_slice(&u.value);
            end_attr(buf, at, u.flags & flags::EXTENDED_LENGTH != 0)?;
        }
        Ok(())
    }
}
