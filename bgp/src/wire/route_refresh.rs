//! ROUTE-REFRESH message (RFC 2918 §3) with the Enhanced Route Refresh subtypes (RFC 7313 §3).

use super::{Afi, AfiSafi, Error, Safi};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

/// ROUTE-REFRESH body.
///
/// ```text
///  0       7      15      23      31
///  +-------+-------+-------+-------+
///  |      AFI      |Subtype| SAFI  |
///  +-------+-------+-------+-------+
/// ```
///
/// The third octet was "Reserved" in RFC 2918; RFC 7313 made it the message subtype: 0 normal request,
/// 1 Beginning of Route Refresh (BoRR), 2 End of Route Refresh (EoRR). Other values are kept and, per RFC 7313
/// §5, the message is to be ignored by the receiver. ORF entries (RFC 5291) after the four octets are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteRefresh {
    pub afi_safi: AfiSafi,
    pub subtype: u8,
    /// Anything after the fixed four octets (Outbound Route Filtering, RFC 5291), kept verbatim.
    pub orf: Vec<u8>,
}

/// Route refresh subtypes (RFC 7313 §3).
pub mod subtype {
    pub const NORMAL: u8 = 0;
    pub const BORR: u8 = 1;
    pub const EORR: u8 = 2;
}

impl RouteRefresh {
    /// A plain refresh request (RFC 2918).
    pub fn request(afi_safi: AfiSafi) -> Self {
        RouteRefresh {
            afi_safi,
            subtype: subtype::NORMAL,
            orf: vec![],
        }
    }

    /// Beginning of Route Refresh (RFC 7313 §4).
    pub fn borr(afi_safi: AfiSafi) -> Self {
        RouteRefresh {
            afi_safi,
            subtype: subtype::BORR,
            orf: vec![],
        }
    }

    /// End of Route Refresh (RFC 7313 §4).
    pub fn eorr(afi_safi: AfiSafi) -> Self {
        RouteRefresh {
            afi_safi,
            subtype: subtype::EORR,
            orf: vec![],
        }
    }

    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, Error> {
        match body {
            [a0, a1, st, safi, rest @ ..] => {
                // RFC 7313 §5: BoRR/EoRR messages must be exactly 4 octets of body.
                if (*st == subtype::BORR || *st == subtype::EORR) && !rest.is_empty() {
                    let mut data = vec![0xff; 16];
                    data.extend_from_slice(
                        &((super::HEADER_LEN + body.len()) as u16).to_be_bytes(),
                    );
                    data.push(5);
                    data.extend_from_slice(body);
                    return Err(Error::InvalidRouteRefreshLength(data));
                }
                Ok(RouteRefresh {
                    afi_safi: AfiSafi::new(Afi(u16::from_be_bytes([*a0, *a1])), Safi(*safi)),
                    subtype: *st,
                    orf: rest.to_vec(),
                })
            }
            _ => Err(Error::BadMessageLength(
                (super::HEADER_LEN + body.len()) as u16,
            )),
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        buf.put_u16(self.afi_safi.afi.0);
        buf.put_u8(self.subtype);
        buf.put_u8(self.afi_safi.safi.0);
        buf.put_slice(&self.orf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Context, Message};

    #[test]
    fn route_refresh_request_bytes_rfc2918_3() {
        let m = Message::RouteRefresh(RouteRefresh::request(AfiSafi::IPV6_UNICAST));
        let b = m.to_bytes(&Context::default()).unwrap();
        assert_eq!(&b[16..], &[0, 23, 5, 0, 2, 0, 1]);
        assert_eq!(Message::decode(&b, &Context::default()), Ok(m));
    }

    #[test]
    fn borr_eorr_roundtrip_rfc7313_3() {
        for m in [
            RouteRefresh::borr(AfiSafi::IPV4_UNICAST),
            RouteRefresh::eorr(AfiSafi::IPV4_UNICAST),
        ] {
            let b = Message::RouteRefresh(m.clone())
                .to_bytes(&Context::default())
                .unwrap();
            assert_eq!(
                Message::decode(&b, &Context::default()),
                Ok(Message::RouteRefresh(m))
            );
        }
    }

    #[test]
    fn borr_with_extra_octets_is_error_7_1_rfc7313_5() {
        let mut b = vec![0xff; 16];
        b.extend_from_slice(&[0, 24, 5, 0, 1, 1, 1, 0]);
        let e = Message::decode(&b, &Context::default()).unwrap_err();
        let n = e.notification();
        assert_eq!((n.code, n.subcode), (7, 1));
        assert_eq!(n.data, b);
    }
}
