//! The FSM's view of BGP messages: what the state machine reads from an OPEN and a NOTIFICATION, and what
//! it asks the driver to send. The driver converts to and from `wire` types at the edge; UPDATE contents
//! never pass through the FSM (only the fact that one arrived, for the hold timer and the state check).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// AS_TRANS (RFC 6793 §9): the 2-octet placeholder for a 4-octet AS.
pub const AS_TRANS: u16 = 23456;

/// An address family / subsequent address family pair (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Family {
    pub afi: u16,
    pub safi: u8,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Family::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Family::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi{afi}/safi{safi}"),
        }
    }
}

/// ADD-PATH send/receive flags for one family (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddPathMode {
    Receive,
    Send,
    Both,
}

impl AddPathMode {
    pub fn can_receive(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }
    pub fn can_send(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }
}

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

/// Capability codes (IANA "Capability Codes").
pub mod cap_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GR: u8 = 71;
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
            cap_code::LONG_LIVED_GR => self.long_lived_gr.is_some(),
            other => self.unknown.iter().any(|(c, _)| *c == other),
        }
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

/// An OPEN message as the FSM sees it (RFC 4271 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub version: u8,
    /// "My Autonomous System": AS_TRANS when the real AS does not fit 2 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub caps: Capabilities,
    /// Optional parameter types other than Capabilities (2), which this speaker does not support.
    pub unsupported_params: Vec<u8>,
}

impl Open {
    /// The sender's AS: the 4-octet capability's value when present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.caps.four_octet_as.unwrap_or(u32::from(self.my_as))
    }
}

/// NOTIFICATION error codes and subcodes (RFC 4271 §4.5, RFC 4486, RFC 6608, RFC 8203, RFC 9003).
pub mod code {
    pub const HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;

    /// OPEN Message Error subcodes.
    pub mod open {
        pub const UNSUPPORTED_VERSION: u8 = 1;
        pub const BAD_PEER_AS: u8 = 2;
        pub const BAD_BGP_ID: u8 = 3;
        pub const UNSUPPORTED_OPTIONAL_PARAM: u8 = 4;
        pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
        pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    }

    /// Finite State Machine Error subcodes (RFC 6608).
    pub mod fsm {
        pub const UNSPECIFIED: u8 = 0;
        pub const IN_OPENSENT: u8 = 1;
        pub const IN_OPENCONFIRM: u8 = 2;
        pub const IN_ESTABLISHED: u8 = 3;
    }

    /// Cease subcodes (RFC 4486).
    pub mod cease {
        pub const MAX_PREFIXES: u8 = 1;
        pub const ADMIN_SHUTDOWN: u8 = 2;
        pub const PEER_DECONFIGURED: u8 = 3;
        pub const ADMIN_RESET: u8 = 4;
        pub const CONNECTION_REJECTED: u8 = 5;
        pub const OTHER_CONFIG_CHANGE: u8 = 6;
        pub const CONNECTION_COLLISION: u8 = 7;
        pub const OUT_OF_RESOURCES: u8 = 8;
        pub const HARD_RESET: u8 = 9;
    }
}

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease with a shutdown communication (RFC 8203 / RFC 9003): one length octet, then up to 255
    /// octets of UTF-8, cut at a character boundary.
    pub fn cease_with_message(subcode: u8, message: Option<&str>) -> Self {
        let mut data = Vec::new();
        if let Some(m) = message.filter(|m| !m.is_empty()) {
            let mut end = m.len().min(255);
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            data.push(end as u8);
            data.extend_from_slice(&m.as_bytes()[..end]);
        }
        Notification::new(code::CEASE, subcode, data)
    }

    /// The shutdown communication of an administrative shutdown/reset Cease, if it carries a valid one.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                code::cease::ADMIN_SHUTDOWN | code::cease::ADMIN_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match (self.code, self.subcode) {
            (code::HEADER, _) => "message header error",
            (code::OPEN, code::open::UNSUPPORTED_VERSION) => "OPEN: unsupported version",
            (code::OPEN, code::open::BAD_PEER_AS) => "OPEN: bad peer AS",
            (code::OPEN, code::open::BAD_BGP_ID) => "OPEN: bad BGP identifier",
            (code::OPEN, code::open::UNSUPPORTED_OPTIONAL_PARAM) => {
                "OPEN: unsupported optional parameter"
            }
            (code::OPEN, code::open::UNACCEPTABLE_HOLD_TIME) => "OPEN: unacceptable hold time",
            (code::OPEN, code::open::UNSUPPORTED_CAPABILITY) => "OPEN: unsupported capability",
            (code::OPEN, _) => "OPEN message error",
            (code::UPDATE, _) => "UPDATE message error",
            (code::HOLD_TIMER_EXPIRED, _) => "hold timer expired",
            (code::FSM, _) => "finite state machine error",
            (code::CEASE, code::cease::ADMIN_SHUTDOWN) => "cease: administrative shutdown",
            (code::CEASE, code::cease::ADMIN_RESET) => "cease: administrative reset",
            (code::CEASE, code::cease::CONNECTION_COLLISION) => {
                "cease: connection collision resolution"
            }
            (code::CEASE, code::cease::MAX_PREFIXES) => "cease: maximum number of prefixes reached",
            (code::CEASE, _) => "cease",
            (code::ROUTE_REFRESH, _) => "ROUTE-REFRESH message error",
            _ => "unknown error",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)?;
        if let Some(m) = self.shutdown_message() {
            write!(f, ": \"{m}\"")?;
        }
        Ok(())
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
