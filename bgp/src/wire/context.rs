//! What the two speakers negotiated: the codec's only input besides the bytes.

use super::{AfiSafi, MAX_MESSAGE_LEN};
use serde::{Deserialize, Serialize};

/// A small set of the AFI/SAFIs this implementation carries routes for (IPv4/IPv6 unicast and multicast).
///
/// Used for per-family switches (ADD-PATH, extended next-hop). Other AFI/SAFIs are never members: their NLRI
/// are kept opaque (or, for FlowSpec, never carry path identifiers here), so a switch for them would change
/// nothing; [`AfiSafiSet::can_hold`] says which families can be members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AfiSafiSet(u8);

impl AfiSafiSet {
    pub const EMPTY: AfiSafiSet = AfiSafiSet(0);
    pub const ALL: AfiSafiSet = AfiSafiSet(0b1111);

    fn bit(af: AfiSafi) -> u8 {
        match af {
            AfiSafi::IPV4_UNICAST => 1,
            AfiSafi::IPV6_UNICAST => 2,
            AfiSafi::IPV4_MULTICAST => 4,
            AfiSafi::IPV6_MULTICAST => 8,
            _ => 0,
        }
    }

    /// Whether `af` can be a member (IPv4/IPv6 unicast and multicast).
    pub fn can_hold(af: AfiSafi) -> bool {
        Self::bit(af) != 0
    }

    pub fn contains(self, af: AfiSafi) -> bool {
        self.0 & Self::bit(af) != 0
    }

    pub fn insert(&mut self, af: AfiSafi) {
        self.0 |= Self::bit(af);
    }

    pub fn remove(&mut self, af: AfiSafi) {
        self.0 &= !Self::bit(af);
    }

    pub fn with(mut self, af: AfiSafi) -> Self {
        self.insert(af);
        self
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The ADD-PATH Send/Receive field (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddPathDirection {
    Receive = 1,
    Send = 2,
    Both = 3,
}

impl AddPathDirection {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(AddPathDirection::Receive),
            2 => Some(AddPathDirection::Send),
            3 => Some(AddPathDirection::Both),
            _ => None,
        }
    }
    pub fn can_send(self) -> bool {
        matches!(self, AddPathDirection::Send | AddPathDirection::Both)
    }
    pub fn can_receive(self) -> bool {
        matches!(self, AddPathDirection::Receive | AddPathDirection::Both)
    }
}

/// Negotiated session parameters that change the wire format, from the local speaker's point of view.
///
/// Decoding uses the `*_rx` fields (what we receive), encoding the `*_tx` fields (what we send): with ADD-PATH
/// the two directions are negotiated separately (RFC 7911 §4). The default is the pre-Established format:
/// 2-octet AS, no ADD-PATH, 4096-octet messages, no extended next-hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH/AGGREGATOR carry 4-octet ASNs.
    pub four_octet_as: bool,
    /// Families whose received NLRI carry a path identifier (we said Receive, the peer said Send).
    pub add_path_rx: AfiSafiSet,
    /// Families whose sent NLRI carry a path identifier (we said Send, the peer said Receive).
    pub add_path_tx: AfiSafiSet,
    /// Largest message accepted and produced: 4096, or 65535 with extended messages (RFC 8654).
    pub max_message_len: usize,
    /// Families whose NLRI may come with an IPv6 next-hop (RFC 8950; in practice IPv4 unicast).
    pub extended_next_hop: AfiSafiSet,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            four_octet_as: false,
            add_path_rx: AfiSafiSet::EMPTY,
            add_path_tx: AfiSafiSet::EMPTY,
            max_message_len: MAX_MESSAGE_LEN,
            extended_next_hop: AfiSafiSet::EMPTY,
        }
    }
}

impl Context {
    /// A context with 4-octet AS numbers, the common case between modern speakers.
    pub fn four_octet() -> Self {
        Context {
            four_octet_as: true,
            ..Context::default()
        }
    }

    /// The same context seen from the peer: receive and send swapped (for loopback tests and replay).
    pub fn mirrored(&self) -> Self {
        Context {
            add_path_rx: self.add_path_tx,
            add_path_tx: self.add_path_rx,
            ..*self
        }
    }

    /// Whether received NLRI of `af` carry ADD-PATH identifiers.
    pub fn add_path_receive(&self, af: AfiSafi) -> bool {
        self.add_path_rx.contains(af)
    }

    /// Whether sent NLRI of `af` carry ADD-PATH identifiers.
    pub fn add_path_send(&self, af: AfiSafi) -> bool {
        self.add_path_tx.contains(af)
    }
}

impl Context {
    /// The context two OPENs negotiate, from the point of view of the speaker that sent `local` (RFC 6793 §4,
    /// RFC 7911 §4, RFC 8654 §3, RFC 8950 §3): each feature both sides advertise, ADD-PATH per direction.
    pub fn negotiate(local: &super::Open, remote: &super::Open) -> Context {
        use super::capability::Capability as C;
        let has = |o: &super::Open, f: &dyn Fn(&C) -> bool| o.capabilities().any(f);
        let four_octet_as = has(local, &|c| matches!(c, C::FourOctetAs(_)))
            && has(remote, &|c| matches!(c, C::FourOctetAs(_)));
        let ext_msg = has(local, &|c| matches!(c, C::ExtendedMessage))
            && has(remote, &|c| matches!(c, C::ExtendedMessage));
        let add_path = |o: &super::Open, af: AfiSafi, want: fn(AddPathDirection) -> bool| {
            o.capabilities().any(|c| match c {
                C::AddPath(v) => v.iter().any(|e| e.afi_safi == af && want(e.direction)),
                _ => false,
            })
        };
        let enh = |o: &super::Open, af: AfiSafi| {
            o.capabilities().any(|c| match c {
                C::ExtendedNextHop(v) => v.iter().any(|e| {
                    e.afi == af.afi
                        && e.safi == u16::from(af.safi.0)
                        && e.next_hop_afi == super::Afi::IPV6
                }),
                _ => false,
            })
        };
        let mut ctx = Context {
            four_octet_as,
            ..Context::default()
        };
        if ext_msg {
            ctx.max_message_len = super::MAX_EXTENDED_MESSAGE_LEN;
        }
        for af in [
            AfiSafi::IPV4_UNICAST,
            AfiSafi::IPV6_UNICAST,
            AfiSafi::IPV4_MULTICAST,
            AfiSafi::IPV6_MULTICAST,
        ] {
            if add_path(local, af, AddPathDirection::can_receive)
                && add_path(remote, af, AddPathDirection::can_send)
            {
                ctx.add_path_rx.insert(af);
            }
            if add_path(local, af, AddPathDirection::can_send)
                && add_path(remote, af, AddPathDirection::can_receive)
            {
                ctx.add_path_tx.insert(af);
            }
            if enh(local, af) && enh(remote, af) {
                ctx.extended_next_hop.insert(af);
            }
        }
        ctx
    }
}
