//! COMMUNITIES (RFC 1997), EXTENDED_COMMUNITIES (RFC 4360, link bandwidth draft-ietf-idr-link-bandwidth) and
//! LARGE_COMMUNITIES (RFC 8092).

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A community (RFC 1997): `AS:value` in one 32-bit number.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |        AS (2 octets)          |       value (2 octets)        |
/// +-------------------------------+-------------------------------+
/// ```
///
/// `repr(transparent)`: a list of communities is a list of `u32`s ([`Community::as_u32s`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(transparent)]
pub struct Community(pub u32);

impl Community {
    /// The numbers of a list of communities, without copying them.
    pub fn as_u32s(list: &[Community]) -> &[u32] {
        // SAFETY: `Community` is `repr(transparent)` over `u32`: same size, alignment and validity,
        // so the slice's elements read as `u32`s for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(list.as_ptr().cast::<u32>(), list.len()) }
    }

    /// RFC 8326.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// RFC 7611.
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// RFC 9494.
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// RFC 9494.
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// RFC 7999.
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// RFC 1997.
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// RFC 1997.
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// RFC 1997.
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// RFC 3765.
    pub const NOPEER: Community = Community(0xFFFF_FF04);

    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }

    pub fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }

    pub fn value(self) -> u16 {
        self.0 as u16
    }

    /// The IANA name of a well-known community, if this is one.
    pub fn well_known_name(self) -> Option<&'static str> {
        Some(match self {
            Community::GRACEFUL_SHUTDOWN => "GRACEFUL_SHUTDOWN",
            Community::ACCEPT_OWN => "ACCEPT_OWN",
            Community::LLGR_STALE => "LLGR_STALE",
            Community::NO_LLGR => "NO_LLGR",
            Community::BLACKHOLE => "BLACKHOLE",
            Community::NO_EXPORT => "NO_EXPORT",
            Community::NO_ADVERTISE => "NO_ADVERTISE",
            Community::NO_EXPORT_SUBCONFED => "NO_EXPORT_SUBCONFED",
            Community::NOPEER => "NOPEER",
            _ => return None,
        })
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.well_known_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}:{}", self.asn(), self.value()),
        }
    }
}

/// A large community (RFC 8092 §3): three 32-bit numbers, `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl std::fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

/// An extended community (RFC 4360 §2), kept as its 8 octets; [`ExtCommunity::kind`] interprets it.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |  Type high    |  Type low(*)  |                               |
/// +-------------------------------+          Value                |
/// |                                                               |
/// +---------------------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtCommunity(pub [u8; 8]);

/// Extended community types this codebase acts on; everything else is [`ExtCommunityKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExtCommunityKind {
    /// Route target, 2-octet AS specific (type 0x00 subtype 0x02), IPv4 (0x01/0x02) or 4-octet AS (0x02/0x02).
    RouteTarget(ExtGlobal, u32),
    /// Route origin (subtype 0x03), same three global administrator forms.
    RouteOrigin(ExtGlobal, u32),
    /// Link bandwidth (type 0x40 subtype 0x04, non-transitive; 0x00/0x04 transitive form also accepted):
    /// 2-octet AS and the bandwidth in bytes per second as an IEEE 754 float.
    LinkBandwidth {
        asn: u16,
        bytes_per_second: f32,
    },
    Other,
}

/// The global administrator of an AS- or IP-specific extended community.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtGlobal {
    As2(u16),
    Ipv4(Ipv4Addr),
    As4(u32),
}

impl ExtCommunity {
    /// Transitive bit clear = type high 0x40 set (RFC 4360 §2).
    pub fn is_transitive(self) -> bool {
        self.0[0] & 0x40 == 0
    }

    pub fn route_target_as2(asn: u16, value: u32) -> Self {
        let mut b = [0, 0x02, 0, 0, 0, 0, 0, 0];
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&value.to_be_bytes());
        ExtCommunity(b)
    }

    /// Link bandwidth, non-transitive form (type 0x40, subtype 0x04).
    pub fn link_bandwidth(asn: u16, bytes_per_second: f32) -> Self {
        let mut b = [0x40, 0x04, 0, 0, 0, 0, 0, 0];
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&bytes_per_second.to_bits().to_be_bytes());
        ExtCommunity(b)
    }

    pub fn kind(self) -> ExtCommunityKind {
        let b = self.0;
        let u16at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let global = match b[0] & 0x3f {
            0x00 => Some((ExtGlobal::As2(u16at(2)), u32at(4))),
            0x01 => Some((
                ExtGlobal::Ipv4(Ipv4Addr::from(u32at(2))),
                u32::from(u16at(6)),
            )),
            0x02 => Some((ExtGlobal::As4(u32at(2)), u32::from(u16at(6)))),
            _ => None,
        };
        match (b[0], b[1], global) {
            (0x40 | 0x00, 0x04, _) => ExtCommunityKind::LinkBandwidth {
                asn: u16at(2),
                bytes_per_second: f32::from_bits(u32at(4)),
            },
            (0x00..=0x02, 0x02, Some((g, v))) => ExtCommunityKind::RouteTarget(g, v),
            (0x00..=0x02, 0x03, Some((g, v))) => ExtCommunityKind::RouteOrigin(g, v),
            _ => ExtCommunityKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_communities_reads_as_their_numbers_in_order() {
        let list = [
            Community::new(65000, 100),
            Community::NO_EXPORT,
            Community(7),
        ];
        assert_eq!(Community::as_u32s(&list), &[0xFDE8_0064, 0xFFFF_FF01, 7]);
        assert!(Community::as_u32s(&[]).is_empty());
    }

    #[test]
    fn well_known_names_rfc1997() {
        assert_eq!(Community::NO_EXPORT.to_string(), "NO_EXPORT");
        assert_eq!(Community::new(65000, 100).to_string(), "65000:100");
        assert_eq!(Community::BLACKHOLE.well_known_name(), Some("BLACKHOLE"));
    }

    #[test]
    fn link_bandwidth_kind() {
        let c = ExtCommunity::link_bandwidth(65001, 1.25e9);
        assert!(!c.is_transitive());
        assert_eq!(
            c.kind(),
            ExtCommunityKind::LinkBandwidth {
                asn: 65001,
                bytes_per_second: 1.25e9
            }
        );
    }

    #[test]
    fn route_target_kinds_rfc4360_4() {
        assert_eq!(
            ExtCommunity::route_target_as2(65000, 7).kind(),
            ExtCommunityKind::RouteTarget(ExtGlobal::As2(65000), 7)
        );
        let ip = ExtCommunity([0x01, 0x03, 192, 0, 2, 1, 0, 9]);
        assert_eq!(
            ip.kind(),
            ExtCommunityKind::RouteOrigin(ExtGlobal::Ipv4(Ipv4Addr::new(192, 0, 2, 1)), 9)
        );
        assert_eq!(
            ExtCommunity([0x03, 0x0c, 0, 0, 0, 0, 0, 1]).kind(),
            ExtCommunityKind::Other
        );
    }
}
