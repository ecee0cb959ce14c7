//! OPEN message (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional parameters (RFC 9072).

use super::capability::Capability;
use super::{AS_TRANS, EncodeError, Error, IResult};
use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Optional parameter type carrying capabilities (RFC 5492 §4).
pub const PARAM_CAPABILITIES: u8 = 2;
/// Non-Ext OP Type marking the extended optional parameters format (RFC 9072 §2).
pub const PARAM_EXTENDED_LENGTH: u8 = 255;

/// OPEN message body.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+
/// |    Version    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     My Autonomous System      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Hold Time           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         BGP Identifier                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Opt Parm Len  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             Optional Parameters (variable)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// RFC 9072 extended form: Opt Parm Len = 255, then Non-Ext OP Type = 255, then a 2-octet
/// Extended Opt. Parm. Length, and each parameter's length field is 2 octets.
/// ```
///
/// Each optional parameter of type 2 carries one or more capabilities. Speakers differ in how they group them
/// (BIRD: all in one parameter; FRR and GoBGP: one parameter each), so the grouping is kept in
/// `capability_params` and re-encoded as received. Any other parameter type is refused with OPEN error 2/4.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Open {
    /// Always 4 once decoded.
    pub version: u8,
    /// The 2-octet "My Autonomous System" field: the AS, or AS_TRANS (23456) for a 4-octet AS (RFC 6793 §3).
    pub my_as: u16,
    /// Seconds; 0 or at least 3.
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Capability optional parameters in order, each a list of capabilities.
    pub capability_params: Vec<Vec<Capability>>,
}

impl Open {
    /// An OPEN for `asn` (AS_TRANS in the 2-octet field when it does not fit) with all `capabilities` in one
    /// optional parameter. A 4-octet AS capability is not added implicitly: include it in `capabilities`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
            hold_time,
            bgp_id,
            capability_params: if capabilities.is_empty() {
                vec![]
            } else {
                vec![capabilities]
            },
        }
    }

    /// All capabilities, across parameters, in order.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.capability_params.iter().flatten()
    }

    /// The speaker's AS: from the 4-octet AS capability if present (RFC 6793 §4.1), else `my_as`.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The value of the 4-octet AS capability, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, Error> {
        fn fixed(i: &[u8]) -> IResult<'_, (u8, u16, u16, u32, u8)> {
            let (i, v) = be_u8(i)?;
            let (i, a) = be_u16(i)?;
            let (i, h) = be_u16(i)?;
            let (i, id) = be_u32(i)?;
            let (i, l) = be_u8(i)?;
            Ok((i, (v, a, h, id, l)))
        }
        let (rest, (version, my_as, hold_time, id, opt_len)) = fixed(body)
            .map_err(|_| Error::MalformedOpen("shorter than its fixed fields".into()))?;
        if version != 4 {
            return Err(Error::UnsupportedVersionNumber(version));
        }
        // RFC 9072 §2: 255/255 announces the extended format.
        let extended = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED_LENGTH);
        let (params, len) = if extended {
            let len = rest
                .get(1..3)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            (
                &rest[3.min(rest.len())..],
                len.ok_or(Error::MalformedOpen(
                    "truncated extended parameter length".into(),
                ))?,
            )
        } else {
            (rest, usize::from(opt_len))
        };
        if params.len() != len {
            return Err(Error::MalformedOpen(
                "optional parameters length does not match the message".into(),
            ));
        }
        let capability_params = parse_params(params, extended)?;
        if hold_time == 1 || hold_time == 2 {
            return Err(Error::UnacceptableHoldTime(hold_time));
        }
        if id == 0 {
            return Err(Error::BadBgpIdentifier);
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capability_params,
        })
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(self.version);
        buf.put_u16(self.my_as);
        buf.put_u16(self.hold_time);
        buf.put_u32(u32::from(self.bgp_id));
        // Encode the parameters once in the classic format; switch to RFC 9072's when they do not fit.
        let mut params = BytesMut::new();
        let mut caps = BytesMut::new();
        let mut extended = false;
        let mut encoded: Vec<BytesMut> = Vec::with_capacity(self.capability_params.len());
        for group in &self.capability_params {
            caps.clear();
            for c in group {
                c.encode(&mut caps)?;
            }
            extended |= caps.len() > 255;
            encoded.push(caps.clone());
        }
        for value in &encoded {
            params.put_u8(PARAM_CAPABILITIES);
            if extended {
                params.put_u16(value.len() as u16);
            } else {
                params.put_u8(value.len() as u8);
            }
            params.put_slice(value);
        }
        if !extended && params.len() >= 255 {
            // Too long for one octet: redo with 2-octet parameter lengths.
            params.clear();
            extended = true;
            for value in &encoded {
                params.put_u8(PARAM_CAPABILITIES);
                params.put_u16(value.len() as u16);
                params.put_slice(value);
            }
        }
        if extended {
            if params.len() > usize::from(u16::MAX) {
                return Err(EncodeError::Unencodable(
                    "optional parameters longer than 65535 octets",
                ));
            }
            buf.put_u8(255);
            buf.put_u8(PARAM_EXTENDED_LENGTH);
            buf.put_u16(params.len() as u16);
        } else {
            buf.put_u8(params.len() as u8);
        }
        buf.put_slice(&params);
        Ok(())
    }
}

fn parse_params(mut i: &[u8], extended: bool) -> Result<Vec<Vec<Capability>>, Error> {
    let mut out = Vec::new();
    while !i.is_empty() {
        let header = |i| -> IResult<'_, (u8, &[u8])> {
            let (i, ty) = be_u8(i)?;
            let (i, len) = if extended {
                be_u16(i)?
            } else {
                be_u8(i).map(|(i, l)| (i, u16::from(l)))?
            };
            let (i, v) = take(len)(i)?;
            Ok((i, (ty, v)))
        };
        let (rest, (ty, mut value)) =
            header(i).map_err(|_| Error::MalformedOpen("optional parameter overruns".into()))?;
        if ty != PARAM_CAPABILITIES {
            return Err(Error::UnsupportedOptionalParameter);
        }
        let mut caps = Vec::new();
        while !value.is_empty() {
            let (r, c) = Capability::parse(value)
                .map_err(|_| Error::MalformedOpen("capability overruns".into()))?;
            caps.push(c);
            value = r;
        }
        out.push(caps);
        i = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::capability::AddPath;
    use crate::wire::{AddPathDirection, AfiSafi, Context, Message};

    fn open() -> Open {
        Open::new(
            4_200_000_001,
            90,
            Ipv4Addr::new(192, 0, 2, 1),
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_001),
                Capability::AddPath(vec![AddPath {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    direction: AddPathDirection::Both,
                }]),
            ],
        )
    }

    #[test]
    fn open_roundtrip_rfc4271_4_2() {
        let m = Message::Open(open());
        let b = m.to_bytes(&Context::default()).unwrap();
        assert_eq!(b[18], 1);
        assert_eq!(&b[19..29], &[4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 1, 22]);
        assert_eq!(Message::decode(&b, &Context::default()), Ok(m));
        if let Ok(Message::Open(o)) = Message::decode(&b, &Context::default()) {
            assert_eq!(o.asn(), 4_200_000_001);
            assert_eq!(o.my_as, 23456);
        }
    }

    #[test]
    fn extended_optional_parameters_rfc9072_2() {
        let mut o = open();
        // 70 FQDN-ish unknown capabilities of 6 octets push the parameters over 255 octets.
        o.capability_params = vec![
            (0..70)
                .map(|i| Capability::Unknown {
                    code: 200,
                    value: vec![i; 4],
                })
                .collect(),
        ];
        let b = Message::Open(o.clone())
            .to_bytes(&Context::default())
            .unwrap();
        assert_eq!(&b[28..31], &[255, 255, 0x01]);
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Ok(Message::Open(o))
        );
    }

    #[test]
    fn bad_version_and_hold_time_rfc4271_6_2() {
        let mut b = Message::Open(open()).to_bytes(&Context::default()).unwrap();
        b[19] = 3;
        let e = Message::decode(&b, &Context::default()).unwrap_err();
        assert_eq!(e.notification().to_string(), "OPEN message error (2/1)");
        assert_eq!(e.notification().data, vec![0, 4]);
        b[19] = 4;
        b[22..24].copy_from_slice(&[0, 2]);
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Err(Error::UnacceptableHoldTime(2))
        );
        b[22..24].copy_from_slice(&[0, 3]);
        b[24..28].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Err(Error::BadBgpIdentifier)
        );
    }

    #[test]
    fn unsupported_optional_parameter_rfc4271_6_2() {
        let o = Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), vec![]);
        let mut b = Message::Open(o)
            .to_bytes(&Context::default())
            .unwrap()
            .to_vec();
        b[28] = 3;
        b.extend_from_slice(&[1, 1, 0]);
        b[17] = b.len() as u8;
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Err(Error::UnsupportedOptionalParameter)
        );
    }

    #[test]
    fn parameter_overrun_is_malformed_open() {
        let o = Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), vec![]);
        let mut b = Message::Open(o)
            .to_bytes(&Context::default())
            .unwrap()
            .to_vec();
        b[28] = 2;
        b.extend_from_slice(&[2, 5]);
        b[17] = b.len() as u8;
        assert!(matches!(
            Message::decode(&b, &Context::default()),
            Err(Error::MalformedOpen(_))
        ));
    }
}
