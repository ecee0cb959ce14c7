//! OPEN validation (RFC 4271 §6.2, RFC 6793, RFC 6286, RFC 5492) and the negotiation of what both sides
//! support, which becomes the codec context once the session is Established.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::FsmConfig;
use super::msg::{AddPathMode, Capabilities, Family, GracefulRestart, LongLivedGr};
use crate::wire::capability::code as cap_code;
use crate::wire::notification::{code, open as open_err};
use crate::wire::{AS_TRANS, AfiSafiSet, Context, Notification, Open};

/// What both sides agreed on; computed once per session when the peer's OPEN is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    pub local_as: u32,
    pub peer_as: u32,
    pub local_id: Ipv4Addr,
    pub peer_id: Ipv4Addr,
    /// min(local, peer) seconds; 0 = no hold timer and no keepalives.
    pub hold_time: u16,
    /// Seconds between KEEPALIVEs; 0 = none.
    pub keepalive: u16,
    /// Both sides sent the 4-octet AS capability: AS numbers in AS_PATH/AGGREGATOR are 4 octets.
    pub four_octet_as: bool,
    /// Families both sides advertised.
    pub families: Vec<Family>,
    /// Families for which received NLRI carry a path identifier (we receive, the peer sends).
    pub add_path_rx: Vec<Family>,
    /// Families for which NLRI we send carry a path identifier (we send, the peer receives).
    pub add_path_tx: Vec<Family>,
    /// RFC 8654: messages up to 65535 octets both ways.
    pub extended_message: bool,
    /// RFC 8950 (NLRI family, next-hop AFI) pairs both sides advertised.
    pub extended_next_hop: Vec<(Family, u16)>,
    /// The peer accepts ROUTE-REFRESH (RFC 2918) / enhanced route refresh (RFC 7313).
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, when both sides sent one.
    pub graceful_restart: Option<GracefulRestart>,
    pub long_lived_gr: Option<LongLivedGr>,
    /// Everything the peer advertised, as received.
    pub peer_caps: Capabilities,
}

impl Negotiated {
    /// The largest message either side may send (RFC 8654: 65535 when negotiated, else 4096).
    pub fn max_message_len(&self) -> usize {
        if self.extended_message { 65535 } else { 4096 }
    }

    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }

    /// The codec context for this session (what changes the wire format).
    pub fn context(&self) -> Context {
        let set = |v: &[Family]| v.iter().fold(AfiSafiSet::EMPTY, |s, f| s.with(*f));
        let enh: Vec<Family> = self
            .extended_next_hop
            .iter()
            .filter(|(_, nh)| *nh == 2)
            .map(|(f, _)| *f)
            .collect();
        Context {
            four_octet_as: self.four_octet_as,
            add_path_rx: set(&self.add_path_rx),
            add_path_tx: set(&self.add_path_tx),
            max_message_len: self.max_message_len(),
            extended_next_hop: set(&enh),
        }
    }
}

fn open_error(subcode: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::OPEN_MESSAGE, subcode, data)
}

/// Encodes one capability TLV the way it appears in an OPEN, for the data of an "Unsupported
/// Capability" NOTIFICATION (RFC 5492 §5).
fn capability_tlv(code_: u8, local: &Capabilities) -> Vec<u8> {
    let value: Vec<u8> = match code_ {
        cap_code::MULTIPROTOCOL => local
            .families
            .first()
            .map(|f| {
                let a = f.afi.0.to_be_bytes();
                vec![a[0], a[1], 0, f.safi.0]
            })
            .unwrap_or_default(),
        cap_code::FOUR_OCTET_AS => local
            .four_octet_as
            .map(|a| a.to_be_bytes().to_vec())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut tlv = vec![code_, value.len() as u8];
    tlv.extend_from_slice(&value);
    tlv
}

/// Checks the peer's OPEN against the configuration. `Err` is the NOTIFICATION to send.
pub fn validate_open(cfg: &FsmConfig, open: &Open) -> Result<(), Notification> {
    // RFC 4271 §6.2: version; the data is the largest version we support.
    if open.version != 4 {
        return Err(open_error(
            open_err::UNSUPPORTED_VERSION_NUMBER,
            4u16.to_be_bytes().to_vec(),
        ));
    }
    // Optional parameters other than Capabilities are refused by the codec (2/4) before we get here.
    let caps = Capabilities::from_open(open);
    // Peer AS (RFC 4271 §6.2, RFC 6793 §4.1/§9).
    if let Some(as4) = caps.four_octet_as {
        let consistent = if as4 > u32::from(u16::MAX) {
            u32::from(open.my_as) == AS_TRANS
        } else {
            u32::from(open.my_as) == as4 || u32::from(open.my_as) == AS_TRANS
        };
        if !consistent {
            return Err(open_error(open_err::BAD_PEER_AS, Vec::new()));
        }
    }
    if let Some(expected) = cfg.peer_as
        && open.asn() != expected
    {
        return Err(open_error(open_err::BAD_PEER_AS, Vec::new()));
    }
    // A peer whose AS needs 4 octets must also be reachable through a 4-octet AS session on our side.
    if caps.four_octet_as.is_none()
        && u32::from(open.my_as) == AS_TRANS
        && cfg.peer_as != Some(AS_TRANS)
    {
        return Err(open_error(open_err::BAD_PEER_AS, Vec::new()));
    }
    if open.asn() > u32::from(u16::MAX) && cfg.capabilities.four_octet_as.is_none() {
        return Err(open_error(open_err::BAD_PEER_AS, Vec::new()));
    }
    // Hold time: 0 or at least 3 seconds (RFC 4271 §4.2, §6.2).
    if matches!(open.hold_time, 1 | 2) {
        return Err(open_error(open_err::UNACCEPTABLE_HOLD_TIME, Vec::new()));
    }
    // BGP Identifier: non-zero, not a multicast/broadcast-looking value; for iBGP distinct from ours
    // (RFC 6286 §2.1 allows equal identifiers between different ASes).
    let id = u32::from(open.bgp_id);
    let ibgp = open.asn() == cfg.local_as;
    if id == 0 || id == u32::MAX || (ibgp && open.bgp_id == cfg.router_id) {
        return Err(open_error(open_err::BAD_BGP_IDENTIFIER, Vec::new()));
    }
    // Capabilities we insist on (RFC 5492 §5): the data lists what was missing.
    for &c in &cfg.required_capabilities {
        if !caps.has(c) {
            return Err(open_error(
                open_err::UNSUPPORTED_CAPABILITY,
                capability_tlv(c, &cfg.capabilities),
            ));
        }
    }
    Ok(())
}

/// Combines our capabilities with the peer's accepted OPEN.
pub fn negotiate(cfg: &FsmConfig, open: &Open) -> Negotiated {
    let local = &cfg.capabilities;
    let peer = &Capabilities::from_open(open);
    let hold_time = cfg.hold_time.min(open.hold_time);
    let keepalive = if hold_time == 0 {
        0
    } else {
        let wanted = cfg.keepalive.unwrap_or(hold_time / 3);
        wanted.clamp(1, (hold_time / 3).max(1))
    };
    let peer_families = peer.effective_families();
    let families: Vec<Family> = local
        .effective_families()
        .into_iter()
        .filter(|f| peer_families.contains(f))
        .collect();
    let peer_add_path = |f: Family| {
        peer.add_path
            .iter()
            .find(|(pf, _)| *pf == f)
            .map(|(_, m)| *m)
    };
    let mut add_path_rx = Vec::new();
    let mut add_path_tx = Vec::new();
    for &(f, mode) in &local.add_path {
        // ADD-PATH only where the codec carries path identifiers (not FlowSpec: its NLRI would be misread).
        if !families.contains(&f) || !AfiSafiSet::can_hold(f) {
            continue;
        }
        if let Some(pm) = peer_add_path(f) {
            if mode.can_receive() && pm.can_send() {
                add_path_rx.push(f);
            }
            if mode.can_send() && pm.can_receive() {
                add_path_tx.push(f);
            }
        }
    }
    let extended_next_hop = local
        .extended_next_hop
        .iter()
        .filter(|x| peer.extended_next_hop.contains(x))
        .copied()
        .collect();
    Negotiated {
        local_as: cfg.local_as,
        peer_as: open.asn(),
        local_id: cfg.router_id,
        peer_id: open.bgp_id,
        hold_time,
        keepalive,
        four_octet_as: local.four_octet_as.is_some() && peer.four_octet_as.is_some(),
        families,
        add_path_rx,
        add_path_tx,
        extended_message: local.extended_message && peer.extended_message,
        extended_next_hop,
        route_refresh: peer.route_refresh || peer.enhanced_route_refresh,
        enhanced_route_refresh: local.enhanced_route_refresh && peer.enhanced_route_refresh,
        graceful_restart: local
            .graceful_restart
            .as_ref()
            .and(peer.graceful_restart.clone()),
        long_lived_gr: local.long_lived_gr.as_ref().and(peer.long_lived_gr.clone()),
        peer_caps: peer.clone(),
    }
}

/// Our OPEN for a configuration (RFC 4271 §4.2, RFC 6793 §3: AS_TRANS when the AS needs 4 octets).
pub fn local_open(cfg: &FsmConfig) -> Open {
    Open::new(
        cfg.local_as,
        cfg.hold_time,
        cfg.router_id,
        cfg.capabilities.to_wire(),
    )
}

/// Convenience for configurations: the usual set of capabilities for a speaker of `local_as` that
/// carries `families`.
pub fn default_capabilities(local_as: u32, families: &[Family]) -> Capabilities {
    Capabilities {
        families: families.to_vec(),
        four_octet_as: Some(local_as),
        route_refresh: true,
        enhanced_route_refresh: false,
        add_path: Vec::new(),
        extended_message: true,
        extended_next_hop: Vec::new(),
        graceful_restart: None,
        long_lived_gr: None,
        unknown: Vec::new(),
    }
}

/// ADD-PATH mode for one family in a capability list, if any.
pub fn add_path_mode(caps: &Capabilities, f: Family) -> Option<AddPathMode> {
    caps.add_path
        .iter()
        .find(|(pf, _)| *pf == f)
        .map(|(_, m)| *m)
}
