//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4), IPv6 next-hops (RFC 2545 §3), IPv6 next-hop for IPv4
//! NLRI (RFC 8950), FlowSpec rules (RFC 8955 §4, RFC 8956 §3: SAFI 133, any next-hop length, usually 0).

use crate::wire::flowspec::{self, FlowSpec, FlowSpecError};
use crate::wire::nlri::{self, Family, Nlri};
use crate::wire::{Afi, AfiSafi, Context, Safi};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The next-hop of an MP_REACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NextHop {
    /// 4 octets.
    Ipv4(Ipv4Addr),
    /// 16 octets (global), or 32 (global followed by link-local, RFC 2545 §3).
    Ipv6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    /// A family whose next-hop this codec does not interpret, kept verbatim.
    Other(Vec<u8>),
}

impl NextHop {
    fn wire_len(&self) -> usize {
        match self {
            NextHop::Ipv4(_) => 4,
            NextHop::Ipv6 {
                link_local: None, ..
            } => 16,
            NextHop::Ipv6 {
                link_local: Some(_),
                ..
            } => 32,
            NextHop::Other(v) => v.len(),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            NextHop::Ipv4(a) => buf.put_slice(&a.octets()),
            NextHop::Ipv6 { global, link_local } => {
                buf.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    buf.put_slice(&ll.octets());
                }
            }
            NextHop::Other(v) => buf.put_slice(v),
        }
    }
}

/// The prefix format of the AFI/SAFIs whose NLRI this codec parses (IPv4/IPv6 unicast and multicast).
pub fn family(af: AfiSafi) -> Option<Family> {
    match (af.afi, af.safi) {
        (Afi::IPV4, Safi::UNICAST | Safi::MULTICAST) => Some(Family::V4),
        (Afi::IPV6, Safi::UNICAST | Safi::MULTICAST) => Some(Family::V6),
        _ => None,
    }
}

/// MP_REACH_NLRI (RFC 4760 §3).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MpReach {
    pub afi_safi: AfiSafi,
    pub next_hop: NextHop,
    /// Parsed prefixes (families of [`family`]).
    pub nlri: Vec<Nlri>,
    /// FlowSpec rules (IPv4/IPv6 FlowSpec, [`flowspec::family`]).
    pub flowspec: Vec<FlowSpec>,
    /// NLRI octets of any other AFI/SAFI, kept verbatim.
    pub opaque_nlri: Vec<u8>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Withdrawn Routes (variable)                             |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MpUnreach {
    pub afi_safi: AfiSafi,
    pub withdrawn: Vec<Nlri>,
    /// Withdrawn FlowSpec rules (IPv4/IPv6 FlowSpec).
    pub flowspec: Vec<FlowSpec>,
    /// Withdrawn octets of any other AFI/SAFI, kept verbatim.
    pub opaque_withdrawn: Vec<u8>,
}

/// Why an MP attribute is malformed (RFC 7606 §7.11: session reset, or AFI/SAFI disable for FlowSpec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpError {
    /// Too short, next-hop length overrun or not valid for the family: OPTIONAL ATTRIBUTE ERROR (3/9).
    Attribute,
    /// A prefix is malformed, or a FlowSpec NLRI length overruns the field: INVALID NETWORK FIELD (3/10).
    Nlri,
}

fn afi_safi(b: &[u8]) -> AfiSafi {
    AfiSafi::new(Afi(u16::from_be_bytes([b[0], b[1]])), Safi(b[2]))
}

impl MpReach {
    /// Decodes the attribute value. For FlowSpec, `Ok` may come with the first error of a rule that was
    /// malformed inside a sound NLRI length (the rule is left out; RFC 7606 treat-as-withdraw applies).
    pub fn decode(v: &[u8], ctx: &Context) -> Result<(MpReach, Option<FlowSpecError>), MpError> {
        let [_, _, _, nh_len, ..] = v else {
            return Err(MpError::Attribute);
        };
        let af = afi_safi(v);
        let nh_len = usize::from(*nh_len);
        let nh = v.get(4..4 + nh_len).ok_or(MpError::Attribute)?;
        // The reserved octet (formerly the SNPA count) must be there; its value is ignored (RFC 4760 §3).
        let nlri_bytes = v.get(5 + nh_len..).ok_or(MpError::Attribute)?;
        let v6 = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or([0; 16]));
        if let Some(fam) = flowspec::family(af) {
            // RFC 8955 §4 / RFC 8956 §3: the next-hop is normally empty and has no meaning for the rules;
            // any length is accepted and kept (typed when it is an address).
            let next_hop = match nh.len() {
                4 => NextHop::Ipv4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
                16 | 32 => NextHop::Ipv6 {
                    global: v6(&nh[..16]),
                    link_local: (nh.len() == 32).then(|| v6(&nh[16..])),
                },
                _ => NextHop::Other(nh.to_vec()),
            };
            let mut rules = Vec::new();
            let bad =
                flowspec::decode_field(nlri_bytes, fam, &mut rules).map_err(|_| MpError::Nlri)?;
            return Ok((
                MpReach {
                    afi_safi: af,
                    next_hop,
                    nlri: vec![],
                    flowspec: rules,
                    opaque_nlri: vec![],
                },
                bad,
            ));
        }
        let Some(fam) = family(af) else {
            return Ok((
                MpReach {
                    afi_safi: af,
                    next_hop: NextHop::Other(nh.to_vec()),
                    nlri: vec![],
                    flowspec: vec![],
                    opaque_nlri: nlri_bytes.to_vec(),
                },
                None,
            ));
        };
        let next_hop = match nh.len() {
            4 => NextHop::Ipv4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
            16 | 32 if fam == Family::V6 || ctx.extended_next_hop.contains(af) => NextHop::Ipv6 {
                global: v6(&nh[..16]),
                link_local: (nh.len() == 32).then(|| v6(&nh[16..])),
            },
            _ => return Err(MpError::Attribute),
        };
        let mut nlri = Vec::new();
        nlri::decode_into(nlri_bytes, fam, ctx.add_path_receive(af), &mut nlri)
            .map_err(|_| MpError::Nlri)?;
        Ok((
            MpReach {
                afi_safi: af,
                next_hop,
                nlri,
                flowspec: vec![],
                opaque_nlri: vec![],
            },
            None,
        ))
    }

    /// Appends the attribute value (not its header).
    pub fn encode_value(&self, ctx: &Context, buf: &mut BytesMut) {
        self.encode_header(buf);
        let ap = ctx.add_path_send(self.afi_safi);
        for n in &self.nlri {
            n.encode(ap, buf);
        }
        flowspec::encode_field(&self.flowspec, buf);
        buf.put_slice(&self.opaque_nlri);
    }

    /// Appends AFI, SAFI, next-hop and the reserved octet: everything before the NLRI.
    pub(crate) fn encode_header(&self, buf: &mut BytesMut) {
        buf.put_u16(self.afi_safi.afi.0);
        buf.put_u8(self.afi_safi.safi.0);
        buf.put_u8(self.next_hop.wire_len() as u8);
        self.next_hop.encode(buf);
        buf.put_u8(0);
    }
}

impl MpUnreach {
    /// Decodes the attribute value; FlowSpec content errors as for [`MpReach::decode`].
    pub fn decode(v: &[u8], ctx: &Context) -> Result<(MpUnreach, Option<FlowSpecError>), MpError> {
        if v.len() < 3 {
            return Err(MpError::Attribute);
        }
        let af = afi_safi(v);
        if let Some(fam) = flowspec::family(af) {
            let mut rules = Vec::new();
            let bad =
                flowspec::decode_field(&v[3..], fam, &mut rules).map_err(|_| MpError::Nlri)?;
            return Ok((
                MpUnreach {
                    afi_safi: af,
                    withdrawn: vec![],
                    flowspec: rules,
                    opaque_withdrawn: vec![],
                },
                bad,
            ));
        }
        let Some(fam) = family(af) else {
            return Ok((
                MpUnreach {
                    afi_safi: af,
                    withdrawn: vec![],
                    flowspec: vec![],
                    opaque_withdrawn: v[3..].to_vec(),
                },
                None,
            ));
        };
        let mut withdrawn = Vec::new();
        nlri::decode_into(&v[3..], fam, ctx.add_path_receive(af), &mut withdrawn)
            .map_err(|_| MpError::Nlri)?;
        Ok((
            MpUnreach {
                afi_safi: af,
                withdrawn,
                flowspec: vec![],
                opaque_withdrawn: vec![],
            },
            None,
        ))
    }

    pub fn encode_value(&self, ctx: &Context, buf: &mut BytesMut) {
        buf.put_u16(self.afi_safi.afi.0);
        buf.put_u8(self.afi_safi.safi.0);
        let ap = ctx.add_path_send(self.afi_safi);
        for n in &self.withdrawn {
            n.encode(ap, buf);
        }
        flowspec::encode_field(&self.flowspec, buf);
        buf.put_slice(&self.opaque_withdrawn);
    }
}
