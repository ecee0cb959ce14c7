//! Traffic filtering actions: extended communities that say what to do with the traffic a FlowSpec rule
//! matches (RFC 8955 §7, RFC 8956 §6). They travel in EXTENDED_COMMUNITIES (8 octets each) and, for the IPv6
//! redirect, in IPV6_ADDRESS_SPECIFIC_EXTENDED_COMMUNITY (RFC 5701, 20 octets each). Both attributes stay
//! verbatim in [`crate::wire::PathAttributes`]; this module is the typed view and the constructors.
//!
//! ```text
//!  type     action                  value (6 octets; IPv6 redirect: 18)
//!  0x8006   traffic-rate-bytes      AS (2) | rate in bytes/s, IEEE 754 single (4)
//!  0x800c   traffic-rate-packets    AS (2) | rate in packets/s, IEEE 754 single (4)
//!  0x8007   traffic-action          reserved (46 bits) | S (sample) | T (terminal action)
//!  0x8008   redirect AS-2octet      AS (2) | local administrator (4)       (route target to import into)
//!  0x8108   redirect IPv4           IPv4 address (4) | local administrator (2)
//!  0x8208   redirect AS-4octet      AS (4) | local administrator (2)
//!  0x8009   traffic-marking         reserved (5) | 2 bits reserved + DSCP (6 bits)
//!  0x000d   redirect IPv6 (RFC 5701 attribute) IPv6 address (16) | local administrator (2)
//! ```
//!
//! Anything else is not an action ([`FlowAction::from_ext_community`] returns `None`) and passes through
//! unchanged. RFC 8955 §10: an action community that "cannot be decoded" makes the attribute malformed
//! (RFC 7606 §7.14, treat-as-withdraw); every octet string of these types decodes except a rate that is not a
//! number or is negative, which [`FlowAction::is_malformed`] reports (the UPDATE decoder applies it to UPDATEs
//! that carry FlowSpec rules).

use crate::wire::attr::community::ExtCommunity;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Path attribute type of the IPv6 address specific extended communities (RFC 5701 §2).
pub const IPV6_EXT_COMMUNITIES: u8 = 25;

/// One traffic filtering action.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FlowAction {
    /// 0x8006: limit to `bytes_per_second` (0 = discard). `asn` is informational.
    TrafficRateBytes { asn: u16, bytes_per_second: f32 },
    /// 0x800c: limit to `packets_per_second` (0 = discard).
    TrafficRatePackets { asn: u16, packets_per_second: f32 },
    /// 0x8007. `terminal` is the T bit, whose meaning is the opposite of its name (RFC 8955 §7.3): when set,
    /// the rules after this one (in [`super::FlowSpec::compare_precedence`] order) are evaluated too, and the
    /// actions of every matching rule are collected; when clear (the default), evaluation stops at this rule.
    /// `sample` (S bit) enables traffic sampling and logging.
    TrafficAction { sample: bool, terminal: bool },
    /// 0x8008: redirect into the VRF importing route target AS2:value.
    RedirectAs2 { asn: u16, value: u32 },
    /// 0x8108: redirect into the VRF importing route target IPv4:value.
    RedirectIpv4 { address: Ipv4Addr, value: u16 },
    /// 0x8208: redirect into the VRF importing route target AS4:value.
    RedirectAs4 { asn: u32, value: u16 },
    /// 0x8009: rewrite the DSCP to `dscp` (6 bits).
    TrafficMarking { dscp: u8 },
    /// 0x000d in the IPv6 address specific extended communities (RFC 8956 §6): redirect into the VRF
    /// importing route target IPv6:value.
    RedirectIpv6 { address: Ipv6Addr, value: u16 },
}

impl FlowAction {
    /// The typed action of an extended community, if it is one of RFC 8955 §7's.
    pub fn from_ext_community(c: ExtCommunity) -> Option<FlowAction> {
        let b = c.0;
        let u16at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(match (b[0], b[1]) {
            (0x80, 0x06) => FlowAction::TrafficRateBytes {
                asn: u16at(2),
                bytes_per_second: f32::from_bits(u32at(4)),
            },
            (0x80, 0x0c) => FlowAction::TrafficRatePackets {
                asn: u16at(2),
                packets_per_second: f32::from_bits(u32at(4)),
            },
            (0x80, 0x07) => FlowAction::TrafficAction {
                sample: b[7] & 0x02 != 0,
                terminal: b[7] & 0x01 != 0,
            },
            (0x80, 0x08) => FlowAction::RedirectAs2 {
                asn: u16at(2),
                value: u32at(4),
            },
            (0x81, 0x08) => FlowAction::RedirectIpv4 {
                address: Ipv4Addr::from(u32at(2)),
                value: u16at(6),
            },
            (0x82, 0x08) => FlowAction::RedirectAs4 {
                asn: u32at(2),
                value: u16at(6),
            },
            (0x80, 0x09) => FlowAction::TrafficMarking { dscp: b[7] & 0x3f },
            _ => return None,
        })
    }

    /// The typed action of an IPv6 address specific extended community (20 octets), if it is one.
    pub fn from_ipv6_ext_community(c: &[u8; 20]) -> Option<FlowAction> {
        match (c[0], c[1]) {
            (0x00, 0x0d) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&c[2..18]);
                Some(FlowAction::RedirectIpv6 {
                    address: Ipv6Addr::from(a),
                    value: u16::from_be_bytes([c[18], c[19]]),
                })
            }
            _ => None,
        }
    }

    /// The extended community for this action; `None` for [`FlowAction::RedirectIpv6`], which is an IPv6
    /// address specific community ([`FlowAction::to_ipv6_ext_community`]).
    pub fn to_ext_community(self) -> Option<ExtCommunity> {
        let mut b = [0u8; 8];
        match self {
            FlowAction::TrafficRateBytes {
                asn,
                bytes_per_second: r,
            }
            | FlowAction::TrafficRatePackets {
                asn,
                packets_per_second: r,
            } => {
                b[1] = if matches!(self, FlowAction::TrafficRateBytes { .. }) {
                    0x06
                } else {
                    0x0c
                };
                b[0] = 0x80;
                b[2..4].copy_from_slice(&asn.to_be_bytes());
                b[4..8].copy_from_slice(&r.to_bits().to_be_bytes());
            }
            FlowAction::TrafficAction { sample, terminal } => {
                b[..2].copy_from_slice(&[0x80, 0x07]);
                b[7] = (u8::from(sample) << 1) | u8::from(terminal);
            }
            FlowAction::RedirectAs2 { asn, value } => {
                b[..2].copy_from_slice(&[0x80, 0x08]);
                b[2..4].copy_from_slice(&asn.to_be_bytes());
                b[4..8].copy_from_slice(&value.to_be_bytes());
            }
            FlowAction::RedirectIpv4 { address, value } => {
                b[..2].copy_from_slice(&[0x81, 0x08]);
                b[2..6].copy_from_slice(&address.octets());
                b[6..8].copy_from_slice(&value.to_be_bytes());
            }
            FlowAction::RedirectAs4 { asn, value } => {
                b[..2].copy_from_slice(&[0x82, 0x08]);
                b[2..6].copy_from_slice(&asn.to_be_bytes());
                b[6..8].copy_from_slice(&value.to_be_bytes());
            }
            FlowAction::TrafficMarking { dscp } => {
                b[..2].copy_from_slice(&[0x80, 0x09]);
                b[7] = dscp & 0x3f;
            }
            FlowAction::RedirectIpv6 { .. } => return None,
        }
        Some(ExtCommunity(b))
    }

    /// The IPv6 address specific community of [`FlowAction::RedirectIpv6`].
    pub fn to_ipv6_ext_community(self) -> Option<[u8; 20]> {
        let FlowAction::RedirectIpv6 { address, value } = self else {
            return None;
        };
        let mut c = [0u8; 20];
        c[1] = 0x0d;
        c[2..18].copy_from_slice(&address.octets());
        c[18..].copy_from_slice(&value.to_be_bytes());
        Some(c)
    }

    /// RFC 8955 §10: a rate that is NaN or negative cannot be decoded as a rate.
    pub fn is_malformed(self) -> bool {
        match self {
            FlowAction::TrafficRateBytes {
                bytes_per_second: r,
                ..
            }
            | FlowAction::TrafficRatePackets {
                packets_per_second: r,
                ..
            } => r.is_nan() || r < 0.0,
            _ => false,
        }
    }
}

impl fmt::Display for FlowAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlowAction::TrafficRateBytes {
                bytes_per_second: r,
                ..
            }
            | FlowAction::TrafficRatePackets {
                packets_per_second: r,
                ..
            } if r == 0.0 => f.write_str("discard"),
            FlowAction::TrafficRateBytes {
                bytes_per_second: r,
                ..
            } => write!(f, "rate-limit {r} bytes/s"),
            FlowAction::TrafficRatePackets {
                packets_per_second: r,
                ..
            } => write!(f, "rate-limit {r} packets/s"),
            FlowAction::TrafficAction { sample, terminal } => {
                let mut v = vec![];
                if terminal {
                    v.push("terminal");
                }
                if sample {
                    v.push("sample");
                }
                if v.is_empty() {
                    v.push("none");
                }
                write!(f, "action {}", v.join(","))
            }
            FlowAction::RedirectAs2 { asn, value } => write!(f, "redirect {asn}:{value}"),
            FlowAction::RedirectIpv4 { address, value } => write!(f, "redirect {address}:{value}"),
            FlowAction::RedirectAs4 { asn, value } => write!(f, "redirect {asn}:{value}"),
            FlowAction::TrafficMarking { dscp } => write!(f, "mark dscp {dscp}"),
            FlowAction::RedirectIpv6 { address, value } => {
                write!(f, "redirect [{address}]:{value}")
            }
        }
    }
}

/// The IPv6 address specific extended communities of an attribute value (RFC 5701: 20 octets each; a
/// trailing partial one is ignored).
pub fn ipv6_ext_communities(value: &[u8]) -> impl Iterator<Item = [u8; 20]> + '_ {
    value
        .chunks_exact(20)
        .map(|c| <[u8; 20]>::try_from(c).unwrap_or([0; 20]))
}

impl crate::wire::PathAttributes {
    /// The traffic filtering actions among this set's extended communities and IPv6 address specific
    /// extended communities, in the order received.
    pub fn flow_actions(&self) -> Vec<FlowAction> {
        let mut v: Vec<FlowAction> = self
            .ext_communities
            .iter()
            .filter_map(|c| FlowAction::from_ext_community(*c))
            .collect();
        if let Some(raw) = self
            .unknown
            .iter()
            .find(|u| u.type_code == IPV6_EXT_COMMUNITIES)
        {
            v.extend(
                ipv6_ext_communities(&raw.value)
                    .filter_map(|c| FlowAction::from_ipv6_ext_community(&c)),
            );
        }
        v
    }

    /// Adds actions: 8-octet ones to EXTENDED_COMMUNITIES, the IPv6 redirect to the IPv6 address specific
    /// extended communities attribute (optional transitive, created if absent).
    pub fn add_flow_actions(&mut self, actions: &[FlowAction]) {
        for a in actions {
            if let Some(c) = a.to_ext_community() {
                self.ext_communities.push(c);
            } else if let Some(c) = a.to_ipv6_ext_community() {
                let at = match self
                    .unknown
                    .iter()
                    .position(|u| u.type_code == IPV6_EXT_COMMUNITIES)
                {
                    Some(i) => i,
                    None => {
                        let i = self
                            .unknown
                            .partition_point(|u| u.type_code < IPV6_EXT_COMMUNITIES);
                        self.unknown.insert(
                            i,
                            crate::wire::attr::RawAttribute {
                                flags: crate::wire::attr::flags::OPTIONAL
                                    | crate::wire::attr::flags::TRANSITIVE,
                                type_code: IPV6_EXT_COMMUNITIES,
                                value: Vec::new(),
                            },
                        );
                        i
                    }
                };
                self.unknown[at].value.extend_from_slice(&c);
            }
        }
    }
}
