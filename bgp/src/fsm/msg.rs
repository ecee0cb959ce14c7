//! The FSM's view of BGP messages. OPEN and NOTIFICATION are the codec's types; the capabilities of an OPEN
//! are read into a [`Capabilities`] set for validation and negotiation. UPDATE contents never pass through
//! the FSM (only the fact that one arrived, for the hold timer and the state check).

use serde::{Deserialize, Serialize};

use crate::wire::capability::{self, Capability, code as cap_code};
use crate::wire::{AddPathDirection, AfiSafi, Notification, Open};

/// An address family / subsequent address family pair (RFC 4760): the codec's type.
pub type Family = AfiSafi;

/// ADD-PATH send/receive flags for one family (RFC 7911 §4): the codec's type.
pub type AddPathMode = AddPathDirection;

/// Graceful restart capability (RFC 4724 §3) as advertised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestart {
    /// The Restart State (R) bit.
    pub restarting: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families with their "forwarding state preserved" (F) bit.
    pub families: Vec<(Family, bool)>,
}

/// Long-lived graceful restart (RFC 9494) per family: (family, forwarding preserved, stale time seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongLivedGr {
    pub families: Vec<(Family, bool, u32)>,
}

/// The set of capabilities one side advertises in its OPEN (RFC 5492), in semantic form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Multiprotocol extensions (RFC 4760), one per family.
    pub families: Vec<Family>,
    /// 4-octet AS number capability (RFC 6793) with the speaker's real AS.
    pub four_octet_as: Option<u32>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub add_path: Vec<(Family, AddPathMode)>,
    /// RFC 8654.
    pub extended_message: bool,
    /// RFC 8950: (NLRI family, next-hop AFI).
    pub extended_next_hop: Vec<(Family, u16)>,
    pub graceful_restart: Option<GracefulRestart>,
    pub long_lived_gr: Option<LongLivedGr>,
    /// Capabilities received that this speaker does not interpret (code, value), kept for display.
    pub unknown: Vec<(u8, Vec<u8>)>,
}

impl Capabilities {
    /// Whether a capability with this code is present.
    pub fn has(&self, code: u8) -> bool {
        match code {
            cap_code::MULTIPROTOCOL => !self.families.is_empty(),
            cap_code::ROUTE_REFRESH => self.route_refresh,
            cap_code::EXTENDED_NEXT_HOP => !self.extended_next_hop.is_empty(),
            cap_code::EXTENDED_MESSAGE => self.extended_message,
            cap_code::GRACEFUL_RESTART => self.graceful_restart.is_some(),
            cap_code::FOUR_OCTET_AS => self.four_octet_as.is_some(),
            cap_code::ADD_PATH => !self.add_path.is_empty(),
            cap_code::ENHANCED_ROUTE_REFRESH => self.enhanced_route_refresh,
            cap_code::LONG_LIVED_GRACEFUL_RESTART => self.long_lived_gr.is_some(),
            other => self.unknown.iter().any(|(c, _)| *c == other),
        }
    }

    /// Reads the capabilities of an OPEN (all optional parameters, in order; RFC 5492 §4).
    pub fn from_open(open: &Open) -> Self {
        let mut c = Capabilities::default();
        for cap in open.capabilities() {
            match cap {
                Capability::Multiprotocol(f) => {
                    if !c.families.contains(f) {
                        c.families.push(*f);
                    }
                }
                Capability::RouteRefresh => c.route_refresh = true,
                Capability::EnhancedRouteRefresh => c.enhanced_route_refresh = true,
                Capability::FourOctetAs(a) => c.four_octet_as = Some(*a),
                Capability::ExtendedMessage => c.extended_message = true,
                Capability::AddPath(v) => {
                    c.add_path
                        .extend(v.iter().map(|a| (a.afi_safi, a.direction)));
                }
                Capability::ExtendedNextHop(v) => {
                    for e in v {
                        if let Ok(safi) = u8::try_from(e.safi) {
                            let f = AfiSafi::new(e.afi, crate::wire::Safi(safi));
                            c.extended_next_hop.push((f, e.next_hop_afi.0));
                        }
                    }
                }
                Capability::GracefulRestart(g) => {
                    c.graceful_restart = Some(GracefulRestart {
                        restarting: g.flags & 0x8 != 0,
                        restart_time: g.restart_time,
                        families: g
                            .families
                            .iter()
                            .map(|f| (f.afi_safi, f.flags & 0x80 != 0))
                            .collect(),
                    });
                }
                Capability::LongLivedGracefulRestart(v) => {
                    c.long_lived_gr = Some(LongLivedGr {
                        families: v
                            .iter()
                            .map(|f| (f.afi_safi, f.flags & 0x80 != 0, f.stale_time))
                            .collect(),
                    });
                }
                other => {
                    let mut b = bytes::BytesMut::new();
                    let value = match other.encode(&mut b) {
                        Ok(()) if b.len() >= 2 => b[2..].to_vec(),
                        _ => Vec::new(),
                    };
                    c.unknown.push((other.code(), value));
                }
            }
        }
        c
    }

    /// The capability TLVs to advertise for this set (RFC 5492 §4).
    pub fn to_wire(&self) -> Vec<Capability> {
        let mut v: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        if self.route_refresh {
            v.push(Capability::RouteRefresh);
        }
        if self.enhanced_route_refresh {
            v.push(Capability::EnhancedRouteRefresh);
        }
        if !self.extended_next_hop.is_empty() {
            v.push(Capability::ExtendedNextHop(
                self.extended_next_hop
                    .iter()
                    .map(|(f, nh)| capability::ExtendedNextHop {
                        afi: f.afi,
                        safi: u16::from(f.safi.0),
                        next_hop_afi: crate::wire::Afi(*nh),
                    })
                    .collect(),
            ));
        }
        if self.extended_message {
            v.push(Capability::ExtendedMessage);
        }
        if let Some(g) = &self.graceful_restart {
            v.push(Capability::GracefulRestart(capability::GracefulRestart {
                flags: if g.restarting { 0x8 } else { 0 },
                restart_time: g.restart_time.min(0x0fff),
                families: g
                    .families
                    .iter()
                    .map(|(f, fwd)| capability::GrFamily {
                        afi_safi: *f,
                        flags: if *fwd { 0x80 } else { 0 },
                    })
                    .collect(),
            }));
        }
        if let Some(a) = self.four_octet_as {
            v.push(Capability::FourOctetAs(a));
        }
        if !self.add_path.is_empty() {
            v.push(Capability::AddPath(
                self.add_path
                    .iter()
                    .map(|(f, d)| capability::AddPath {
                        afi_safi: *f,
                        direction: *d,
                    })
                    .collect(),
            ));
        }
        if let Some(l) = &self.long_lived_gr {
            v.push(Capability::LongLivedGracefulRestart(
                l.families
                    .iter()
                    .map(|(f, fwd, stale)| capability::LlgrFamily {
                        afi_safi: *f,
                        flags: if *fwd { 0x80 } else { 0 },
                        stale_time: (*stale).min(0x00ff_ffff),
                    })
                    .collect(),
            ));
        }
        v.extend(
            self.unknown
                .iter()
                .map(|(code, value)| Capability::Unknown {
                    code: *code,
                    value: value.clone(),
                }),
        );
        v
    }

    /// Families the speaker supports: its MP capabilities, or IPv4 unicast alone if it sent none
    /// (RFC 4760 §8: a speaker without the capability speaks IPv4 unicast).
    pub fn effective_families(&self) -> Vec<Family> {
        if self.families.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            self.families.clone()
        }
    }
}

/// A message as the FSM handles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Open(Open),
    /// An UPDATE arrived (its contents go from the driver to the consumer, not through the FSM).
    Update,
    Notification(Notification),
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918) for a family; `subtype` is RFC 7313's (0 = normal request).
    RouteRefresh {
        family: Family,
        subtype: u8,
    },
}

impl Msg {
    /// The BGP message type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Msg::Open(_) => 1,
            Msg::Update => 2,
            Msg::Notification(_) => 3,
            Msg::Keepalive => 4,
            Msg::RouteRefresh { .. } => 5,
        }
    }
}
