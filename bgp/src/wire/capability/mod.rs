//! Capabilities advertised in OPEN (RFC 5492) and what each one carries.
//!
//! Every capability the project negotiates is typed; anything else — including a known code whose value is
//! malformed, which RFC 5492 lets a speaker ignore — is kept as [`Capability::Unknown`] with its raw value,
//! so it re-encodes to the same octets and never fails an OPEN.

use super::context::AddPathDirection;
use super::{Afi, AfiSafi, IResult, Safi};
use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::be_u8;
use serde::{Deserialize, Serialize};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    pub const FQDN: u8 = 73;
    /// Pre-standard route refresh still sent by several implementations; kept as `Unknown`.
    pub const ROUTE_REFRESH_CISCO: u8 = 128;
}

/// Capability TLV (RFC 5492 §4).
///
/// ```text
/// +------------------------------+
/// | Capability Code (1 octet)    |
/// +------------------------------+
/// | Capability Length (1 octet)  |
/// +------------------------------+
/// | Capability Value (variable)  |
/// ~                              ~
/// +------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capability {
    /// RFC 4760 §8: AFI (2), reserved (1), SAFI (1). Unknown AFI/SAFI values are kept.
    Multiprotocol(AfiSafi),
    /// RFC 2918 §2, no value.
    RouteRefresh,
    /// RFC 8950 §3: (NLRI AFI, NLRI SAFI, next-hop AFI) triples.
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// RFC 8654 §3, no value.
    ExtendedMessage,
    /// RFC 4724 §3.
    GracefulRestart(GracefulRestart),
    /// RFC 6793 §3: our 4-octet AS number.
    FourOctetAs(u32),
    /// RFC 7911 §4.
    AddPath(Vec<AddPath>),
    /// RFC 7313 §3, no value.
    EnhancedRouteRefresh,
    /// RFC 9494 §3: per AFI/SAFI flags and long-lived stale time.
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// draft-walton-bgp-hostname-capability: host and domain name (FRR, GoBGP, BIRD send it).
    Fqdn { hostname: Vec<u8>, domain: Vec<u8> },
    /// Anything else, kept verbatim.
    Unknown { code: u8, value: Vec<u8> },
}

/// One RFC 8950 tuple: NLRI of `afi_safi` may have a next-hop of `next_hop_afi`.
///
/// ```text
/// +-----------------------------------------------------+
/// | NLRI AFI - 1 (2 octets)                             |
/// | NLRI SAFI - 1 (2 octets)                            |
/// | Nexthop AFI - 1 (2 octets)                          |
/// +-----------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtendedNextHop {
    pub afi: Afi,
    /// SAFI on two octets here; values above 255 cannot name a SAFI and are kept as they are.
    pub safi: u16,
    pub next_hop_afi: Afi,
}

/// Graceful restart (RFC 4724 §3).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits)                           |
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | AFI (16 bits) | SAFI (8 bits) | Flags for AF (8) |  repeated
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GracefulRestart {
    /// The 4 restart flag bits (0x8 = Restart State "R", 0x4 = Notification "N", RFC 8538).
    pub flags: u8,
    /// 12-bit restart time in seconds.
    pub restart_time: u16,
    pub families: Vec<GrFamily>,
}

/// One AFI/SAFI of the graceful restart capability; `flags` bit 0x80 = forwarding state preserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrFamily {
    pub afi_safi: AfiSafi,
    pub flags: u8,
}

/// One ADD-PATH tuple (RFC 7911 §4): AFI (2), SAFI (1), Send/Receive (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddPath {
    pub afi_safi: AfiSafi,
    pub direction: AddPathDirection,
}

/// One long-lived graceful restart tuple (RFC 9494 §3): AFI (2), SAFI (1), flags (1), stale time (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LlgrFamily {
    pub afi_safi: AfiSafi,
    /// 0x80 = forwarding state preserved.
    pub flags: u8,
    /// 24-bit long-lived stale time in seconds.
    pub stale_time: u32,
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Capability::Fqdn { .. } => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Parses one capability TLV.
    pub(crate) fn parse(input: &[u8]) -> IResult<'_, Capability> {
        let (input, code) = be_u8(input)?;
        let (input, len) = be_u8(input)?;
        let (input, value) = take(len)(input)?;
        Ok((input, Capability::from_value(code, value)))
    }

    /// Interprets a capability value; malformed values of known codes become `Unknown`.
    pub fn from_value(code: u8, value: &[u8]) -> Capability {
        Self::typed(code, value).unwrap_or_else(|| Capability::Unknown {
            code,
            value: value.to_vec(),
        })
    }

    fn typed(c: u8, v: &[u8]) -> Option<Capability> {
        fn all<'a, T>(
            v: &'a [u8],
            size: usize,
            f: impl Fn(&'a [u8]) -> Option<T>,
        ) -> Option<Vec<T>> {
            if !v.len().is_multiple_of(size) {
                return None;
            }
            v.chunks_exact(size).map(f).collect()
        }
        let af = |b: &[u8]| AfiSafi::new(Afi(u16::from_be_bytes([b[0], b[1]])), Safi(b[2]));
        Some(match c {
            code::MULTIPROTOCOL => match v {
                [a0, a1, _, s] => Capability::Multiprotocol(AfiSafi::new(
                    Afi(u16::from_be_bytes([*a0, *a1])),
                    Safi(*s),
                )),
                _ => return None,
            },
            code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
            code::EXTENDED_MESSAGE if v.is_empty() => Capability::ExtendedMessage,
            code::ENHANCED_ROUTE_REFRESH if v.is_empty() => Capability::EnhancedRouteRefresh,
            code::FOUR_OCTET_AS => match v {
                [a, b, c, d] => Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => return None,
            },
            code::EXTENDED_NEXT_HOP => Capability::ExtendedNextHop(all(v, 6, |b| {
                Some(ExtendedNextHop {
                    afi: Afi(u16::from_be_bytes([b[0], b[1]])),
                    safi: u16::from_be_bytes([b[2], b[3]]),
                    next_hop_afi: Afi(u16::from_be_bytes([b[4], b[5]])),
                })
            })?),
            code::GRACEFUL_RESTART => {
                if v.len() < 2 {
                    return None;
                }
                let families = all(&v[2..], 4, |b| {
                    Some(GrFamily {
                        afi_safi: af(b),
                        flags: b[3],
                    })
                })?;
                Capability::GracefulRestart(GracefulRestart {
                    flags: v[0] >> 4,
                    restart_time: u16::from_be_bytes([v[0] & 0x0f, v[1]]),
                    families,
                })
            }
            code::ADD_PATH => Capability::AddPath(all(v, 4, |b| {
                Some(AddPath {
                    afi_safi: af(b),
                    direction: AddPathDirection::from_u8(b[3])?,
                })
            })?),
            code::LONG_LIVED_GRACEFUL_RESTART => {
                Capability::LongLivedGracefulRestart(all(v, 7, |b| {
                    Some(LlgrFamily {
                        afi_safi: af(b),
                        flags: b[3],
                        stale_time: u32::from_be_bytes([0, b[4], b[5], b[6]]),
                    })
                })?)
            }
            code::FQDN => {
                let parse = |i| -> IResult<'_, (&[u8], &[u8])> {
                    let (i, hl) = be_u8(i)?;
                    let (i, h) = take(hl)(i)?;
                    let (i, dl) = be_u8(i)?;
                    let (i, d) = take(dl)(i)?;
                    Ok((i, (h, d)))
                };
                match parse(v) {
                    Ok(([], (h, d))) => Capability::Fqdn {
                        hostname: h.to_vec(),
                        domain: d.to_vec(),
                    },
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// Appends the TLV. Fails when the value exceeds 255 octets.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), super::EncodeError> {
        buf.put_u8(self.code());
        let len_at = buf.len();
        buf.put_u8(0);
        match self {
            Capability::Multiprotocol(af) => {
                buf.put_u16(af.afi.0);
                buf.put_u8(0);
                buf.put_u8(af.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(v) => {
                for e in v {
                    buf.put_u16(e.afi.0);
                    buf.put_u16(e.safi);
                    buf.put_u16(e.next_hop_afi.0);
                }
            }
            Capability::GracefulRestart(gr) => {
                buf.put_u16((u16::from(gr.flags & 0x0f) << 12) | (gr.restart_time & 0x0fff));
                for f in &gr.families {
                    buf.put_u16(f.afi_safi.afi.0);
                    buf.put_u8(f.afi_safi.safi.0);
                    buf.put_u8(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => buf.put_u32(*asn),
            Capability::AddPath(v) => {
                for e in v {
                    buf.put_u16(e.afi_safi.afi.0);
                    buf.put_u8(e.afi_safi.safi.0);
                    buf.put_u8(e.direction as u8);
                }
            }
            Capability::LongLivedGracefulRestart(v) => {
                for e in v {
                    buf.put_u16(e.afi_safi.afi.0);
                    buf.put_u8(e.afi_safi.safi.0);
                    buf.put_u8(e.flags);
                    buf.put_uint(u64::from(e.stale_time & 0x00ff_ffff), 3);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                let h = &hostname[..hostname.len().min(255)];
                let d = &domain[..domain.len().min(255)];
                buf.put_u8(h.len() as u8);
                buf.put_slice(h);
                buf.put_u8(d.len() as u8);
                buf.put_slice(d);
            }
            Capability::Unknown { value, .. } => buf.put_slice(value),
        }
        let len = buf.len() - len_at - 1;
        if len > 255 {
            return Err(super::EncodeError::Unencodable(
                "capability value longer than 255 octets",
            ));
        }
        buf[len_at] = len as u8;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Capability, bytes: &[u8]) {
        let mut b = BytesMut::new();
        c.encode(&mut b).unwrap();
        assert_eq!(&b[..], bytes);
        let (rest, d) = Capability::parse(bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(d, c);
    }

    #[test]
    fn multiprotocol_rfc4760_8() {
        roundtrip(
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            &[1, 4, 0, 2, 0, 1],
        );
    }

    #[test]
    fn four_octet_as_rfc6793_3() {
        roundtrip(
            Capability::FourOctetAs(4_200_000_001),
            &[65, 4, 0xfa, 0x56, 0xea, 0x01],
        );
    }

    #[test]
    fn graceful_restart_rfc4724_3() {
        let gr = GracefulRestart {
            flags: 0x8,
            restart_time: 120,
            families: vec![GrFamily {
                afi_safi: AfiSafi::IPV4_UNICAST,
                flags: 0x80,
            }],
        };
        roundtrip(
            Capability::GracefulRestart(gr),
            &[64, 6, 0x80, 120, 0, 1, 1, 0x80],
        );
    }

    #[test]
    fn add_path_rfc7911_4() {
        let v = vec![AddPath {
            afi_safi: AfiSafi::IPV4_UNICAST,
            direction: AddPathDirection::Both,
        }];
        roundtrip(Capability::AddPath(v), &[69, 4, 0, 1, 1, 3]);
    }

    #[test]
    fn llgr_rfc9494_3() {
        let v = vec![LlgrFamily {
            afi_safi: AfiSafi::IPV6_UNICAST,
            flags: 0x80,
            stale_time: 86400,
        }];
        roundtrip(
            Capability::LongLivedGracefulRestart(v),
            &[71, 7, 0, 2, 1, 0x80, 0x01, 0x51, 0x80],
        );
    }

    #[test]
    fn extended_next_hop_rfc8950_3() {
        let v = vec![ExtendedNextHop {
            afi: Afi::IPV4,
            safi: 1,
            next_hop_afi: Afi::IPV6,
        }];
        roundtrip(Capability::ExtendedNextHop(v), &[5, 6, 0, 1, 0, 1, 0, 2]);
    }

    #[test]
    fn fqdn_and_empty_capabilities() {
        roundtrip(
            Capability::Fqdn {
                hostname: b"r1".to_vec(),
                domain: vec![],
            },
            &[73, 4, 2, b'r', b'1', 0],
        );
        roundtrip(Capability::RouteRefresh, &[2, 0]);
        roundtrip(Capability::EnhancedRouteRefresh, &[70, 0]);
        roundtrip(Capability::ExtendedMessage, &[6, 0]);
    }

    #[test]
    fn malformed_known_capability_is_kept_unknown_rfc5492_4() {
        let (_, c) = Capability::parse(&[65, 2, 0, 1]).unwrap();
        assert_eq!(
            c,
            Capability::Unknown {
                code: 65,
                value: vec![0, 1]
            }
        );
        let (_, c) = Capability::parse(&[69, 4, 0, 1, 1, 7]).unwrap();
        assert_eq!(
            c,
            Capability::Unknown {
                code: 69,
                value: vec![0, 1, 1, 7]
            }
        );
    }
}
