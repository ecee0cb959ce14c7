//! BGP-4 message codec: bytes from a TCP stream in, typed messages out, and back.
//!
//! ```text
//!   TCP bytes ──frame()──► one whole message ──Message::decode(&[u8], &Context)──► Message
//!   Message ──Message::encode(&Context, &mut BytesMut)──► bytes     (Update::encode_split packs + splits)
//! ```
//!
//! * [`frame`] looks at the start of a stream buffer and says whether a whole message is there and how long it
//!   is, validating marker, length and type (RFC 4271 §6.1) against the negotiated maximum length (RFC 8654).
//! * [`Message::decode`] takes exactly one message (header included) and returns either a [`Message`] or an
//!   [`Error`] that maps to the NOTIFICATION to send ([`Error::notification`]) — the RFC 7606 "session reset".
//!   UPDATE errors that RFC 7606 handles without a reset ("treat-as-withdraw", "attribute discard") are not
//!   errors: the decoded [`Update`] carries them ([`Update::treat_as_withdraw`], [`Update::discarded`]).
//! * [`Context`] is what the two speakers negotiated (4-octet AS, ADD-PATH per AFI/SAFI and direction, maximum
//!   message length, extended next-hop). Decoding and encoding both take it; the FSM builds it once, when the
//!   session reaches Established ([`Context::default`] is right for OPEN and before).
//!
//! Decoding never panics on any input, and allocates in proportion to what the input holds: NLRI are counted
//! before their vector is sized, so an UPDATE costs a handful of allocations whatever its number of prefixes.
//! nom parsers are used internally with `()` as their error type; errors become [`Error`] at each boundary.

pub mod attr;
pub mod capability;
mod context;
mod error;
pub mod flowspec;
mod keepalive;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod route_refresh;
pub mod update;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

pub use attr::PathAttributes;
pub use context::{AddPathDirection, AfiSafiSet, Context};
pub use error::{EncodeError, Error};
pub use flowspec::FlowSpec;
pub use keepalive::Keepalive;
pub use nlri::Nlri;
pub use notification::Notification;
pub use open::Open;
pub use route_refresh::RouteRefresh;
pub use update::Update;

/// Length of the fixed header: 16-octet marker, 2-octet length, 1-octet type (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;
/// Maximum message length without the extended message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Maximum message length once the extended message capability is negotiated (RFC 8654 §4).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// The AS number a 2-octet speaker sees in place of a 4-octet one (RFC 6793 §9).
pub const AS_TRANS: u32 = 23456;

pub(crate) type IResult<'a, T> = nom::IResult<&'a [u8], T, ()>;

/// Address Family Identifier (IANA "Address Family Numbers"). Unknown values are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (IANA "SAFI Values"). Unknown values are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
    /// Dissemination of flow specification rules (RFC 8955 §4).
    pub const FLOWSPEC: Safi = Safi(133);
}

/// An AFI/SAFI pair, as carried by the multiprotocol capability, ADD-PATH, MP_REACH_NLRI and ROUTE-REFRESH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AfiSafi {
    pub afi: Afi,
    pub safi: Safi,
}

impl AfiSafi {
    pub const IPV4_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::UNICAST);
    pub const IPV6_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::UNICAST);
    pub const IPV4_MULTICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::MULTICAST);
    pub const IPV6_MULTICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::MULTICAST);
    /// IPv4 FlowSpec (RFC 8955).
    pub const IPV4_FLOWSPEC: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::FLOWSPEC);
    /// IPv6 FlowSpec (RFC 8956).
    pub const IPV6_FLOWSPEC: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::FLOWSPEC);

    pub const fn new(afi: Afi, safi: Safi) -> Self {
        AfiSafi { afi, safi }
    }
}

impl std::fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            AfiSafi::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            AfiSafi::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            AfiSafi::IPV4_MULTICAST => f.write_str("ipv4-multicast"),
            AfiSafi::IPV6_MULTICAST => f.write_str("ipv6-multicast"),
            AfiSafi::IPV4_FLOWSPEC => f.write_str("ipv4-flowspec"),
            AfiSafi::IPV6_FLOWSPEC => f.write_str("ipv6-flowspec"),
            AfiSafi { afi, safi } => write!(f, "afi{}-safi{}", afi.0, safi.0),
        }
    }
}

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// Smallest valid length of a whole message of this type (RFC 4271 §4, RFC 2918 §3).
    pub fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        }
    }
}

/// Finds the first message in a stream buffer (RFC 4271 §6.1 message header checks).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                           Marker                              |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Length               |      Type     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Returns `Ok(None)` while fewer bytes than a whole message are buffered, `Ok(Some(len))` when the first
/// `len` bytes are one message (pass them to [`Message::decode`]), and an error — to be sent as a
/// NOTIFICATION before closing — when the header is invalid: marker not all ones (1/1), length below the
/// type's minimum or above `max_len` (1/2, data = the length), unknown type (1/3, data = the type). OPEN and
/// KEEPALIVE are always limited to 4096 octets (RFC 8654 §4). Header errors are reported as soon as the 19
/// header octets are there, without waiting for the body.
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<usize>, Error> {
    if buf.len() < HEADER_LEN {
        // A marker that is already wrong can be reported early; everything else waits for the header.
        if buf.iter().take(16).any(|&b| b != 0xff) {
            return Err(Error::ConnectionNotSynchronized);
        }
        return Ok(None);
    }
    let len = header_check(&buf[..HEADER_LEN], max_len)?;
    Ok(if buf.len() >= len { Some(len) } else { None })
}

/// Validates a 19-octet header and returns the message length it announces.
fn header_check(h: &[u8], max_len: usize) -> Result<usize, Error> {
    if h[..16].iter().any(|&b| b != 0xff) {
        return Err(Error::ConnectionNotSynchronized);
    }
    let len = u16::from_be_bytes([h[16], h[17]]);
    let ty = MessageType::from_u8(h[18]).ok_or(Error::BadMessageType(h[18]))?;
    let max = match ty {
        MessageType::Open | MessageType::Keepalive => MAX_MESSAGE_LEN,
        _ => max_len.clamp(MAX_MESSAGE_LEN, MAX_EXTENDED_MESSAGE_LEN),
    };
    let l = usize::from(len);
    let ok = match ty {
        MessageType::Keepalive => l == HEADER_LEN,
        MessageType::RouteRefresh => l >= ty.min_len() && l <= max, // RFC 7313: ORF entries may follow
        _ => l >= ty.min_len() && l <= max,
    };
    if !ok {
        return Err(Error::BadMessageLength(len));
    }
    Ok(l)
}

/// One BGP message (RFC 4271 §4).
///
/// `Update` is much larger than the others; it is not boxed because UPDATEs are the bulk of all messages and a
/// box would cost one more allocation for each of them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Decodes exactly one whole message, header included (as delimited by [`frame`]).
    ///
    /// An `Err` is an error that RFC 4271 / RFC 7606 answer with a NOTIFICATION and a session reset.
    pub fn decode(buf: &[u8], ctx: &Context) -> Result<Message, Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BadMessageLength(buf.len() as u16));
        }
        let len = header_check(&buf[..HEADER_LEN], ctx.max_message_len)?;
        if len != buf.len() {
            return Err(Error::BadMessageLength(
                u16::try_from(buf.len()).unwrap_or(u16::MAX),
            ));
        }
        let body = &buf[HEADER_LEN..];
        Ok(match MessageType::from_u8(buf[18]) {
            Some(MessageType::Open) => Message::Open(Open::decode_body(body)?),
            Some(MessageType::Update) => {
                // Filled in place inside the returned value: an UPDATE is ~500 octets, and moving it through
                // `Result`s cost a fifth of the decode time.
                let mut m = Message::Update(Update::default());
                if let Message::Update(u) = &mut m {
                    u.decode_in_place(body, ctx)?;
                }
                m
            }
            Some(MessageType::Notification) => {
                Message::Notification(Notification::decode_body(body)?)
            }
            Some(MessageType::Keepalive) => {
                Keepalive::decode_body(body)?;
                Message::Keepalive
            }
            Some(MessageType::RouteRefresh) => {
                Message::RouteRefresh(RouteRefresh::decode_body(body)?)
            }
            None => return Err(Error::BadMessageType(buf[18])),
        })
    }

    /// The message's type code.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Appends the message, header included, to `buf`.
    ///
    /// Fails (leaving `buf` as it was) when the message does not fit in the negotiated maximum length; use
    /// [`Update::encode_split`] to spread a large UPDATE over several messages.
    pub fn encode(&self, ctx: &Context, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        let ty = self.message_type();
        begin(buf, ty);
        let r = match self {
            Message::Open(m) => m.encode_body(buf),
            Message::Update(m) => m.encode_body(ctx, buf),
            Message::Notification(m) => {
                m.encode_body(buf);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(m) => {
                m.encode_body(buf);
                Ok(())
            }
        };
        let max = match ty {
            MessageType::Open | MessageType::Keepalive => MAX_MESSAGE_LEN,
            _ => ctx
                .max_message_len
                .clamp(MAX_MESSAGE_LEN, MAX_EXTENDED_MESSAGE_LEN),
        };
        match r.and_then(|()| finish(buf, start, max)) {
            Ok(()) => Ok(()),
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        }
    }

    /// Encodes into a fresh buffer (convenience for tests and one-off messages).
    pub fn to_bytes(&self, ctx: &Context) -> Result<BytesMut, EncodeError> {
        let mut b = BytesMut::with_capacity(64);
        self.encode(ctx, &mut b)?;
        Ok(b)
    }
}

/// Writes a header with a zero length; [`finish`] patches it.
pub(crate) fn begin(buf: &mut BytesMut, ty: MessageType) {
    buf.put_slice(&[0xff; 16]);
    buf.put_u16(0);
    buf.put_u8(ty as u8);
}

/// Patches the length of the message that starts at `start`, checking it against `max`.
pub(crate) fn finish(buf: &mut BytesMut, start: usize, max: usize) -> Result<(), EncodeError> {
    let len = buf.len() - start;
    if len > max {
        return Err(EncodeError::TooLong { len, max });
    }
    buf[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u16, ty: u8) -> Vec<u8> {
        let mut b = vec![0xff; 16];
        b.extend_from_slice(&len.to_be_bytes());
        b.push(ty);
        b
    }

    #[test]
    fn frame_waits_for_whole_message_rfc4271_4_1() {
        let k = Keepalive::BYTES;
        assert_eq!(frame(&k[..10], MAX_MESSAGE_LEN), Ok(None));
        assert_eq!(frame(&k, MAX_MESSAGE_LEN), Ok(Some(19)));
        let mut two = k.to_vec();
        two.extend_from_slice(&k[..5]);
        assert_eq!(frame(&two, MAX_MESSAGE_LEN), Ok(Some(19)));
        let mut u = header(30, 2);
        assert_eq!(frame(&u, MAX_MESSAGE_LEN), Ok(None));
        u.resize(30, 0);
        assert_eq!(frame(&u, MAX_MESSAGE_LEN), Ok(Some(30)));
    }

    #[test]
    fn frame_header_errors_rfc4271_6_1() {
        let mut bad = header(19, 4);
        bad[3] = 0;
        assert_eq!(
            frame(&bad[..5], MAX_MESSAGE_LEN),
            Err(Error::ConnectionNotSynchronized)
        );
        assert_eq!(
            frame(&header(18, 4), MAX_MESSAGE_LEN),
            Err(Error::BadMessageLength(18))
        );
        assert_eq!(
            frame(&header(20, 4), MAX_MESSAGE_LEN),
            Err(Error::BadMessageLength(20))
        );
        assert_eq!(
            frame(&header(22, 2), MAX_MESSAGE_LEN),
            Err(Error::BadMessageLength(22))
        );
        assert_eq!(
            frame(&header(4097, 2), MAX_MESSAGE_LEN),
            Err(Error::BadMessageLength(4097))
        );
        assert_eq!(
            frame(&header(19, 6), MAX_MESSAGE_LEN),
            Err(Error::BadMessageType(6))
        );
        let n = Error::BadMessageLength(4097).notification();
        assert_eq!((n.code, n.subcode, n.data), (1, 2, vec![0x10, 0x01]));
    }

    #[test]
    fn extended_message_applies_to_update_not_open_rfc8654_4() {
        assert_eq!(frame(&header(5000, 2), MAX_EXTENDED_MESSAGE_LEN), Ok(None));
        assert_eq!(
            frame(&header(5000, 1), MAX_EXTENDED_MESSAGE_LEN),
            Err(Error::BadMessageLength(5000))
        );
        assert_eq!(
            frame(&header(5000, 4), MAX_EXTENDED_MESSAGE_LEN),
            Err(Error::BadMessageLength(5000))
        );
    }

    #[test]
    fn negotiated_context_rfc6793_rfc7911_rfc8654() {
        use capability::{AddPath, Capability as C};
        use std::net::Ipv4Addr;
        let ours = Open::new(
            65001,
            90,
            Ipv4Addr::new(1, 1, 1, 1),
            vec![
                C::FourOctetAs(65001),
                C::ExtendedMessage,
                C::AddPath(vec![AddPath {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    direction: AddPathDirection::Receive,
                }]),
            ],
        );
        let theirs = Open::new(
            4_200_000_000,
            90,
            Ipv4Addr::new(2, 2, 2, 2),
            vec![
                C::FourOctetAs(4_200_000_000),
                C::ExtendedMessage,
                C::AddPath(vec![AddPath {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    direction: AddPathDirection::Both,
                }]),
            ],
        );
        let c = Context::negotiate(&ours, &theirs);
        assert!(c.four_octet_as);
        assert_eq!(c.max_message_len, MAX_EXTENDED_MESSAGE_LEN);
        assert!(c.add_path_receive(AfiSafi::IPV4_UNICAST));
        assert!(!c.add_path_send(AfiSafi::IPV4_UNICAST));
        let back = Context::negotiate(&theirs, &ours);
        assert_eq!(back, c.mirrored());
        let plain = Context::negotiate(
            &Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), vec![]),
            &theirs,
        );
        assert_eq!(plain, Context::default());
    }

    #[test]
    fn ipv4_nlri_with_ipv6_next_hop_needs_extended_next_hop_rfc8950_4() {
        use attr::mp::{MpReach, NextHop};
        let reach = MpReach {
            afi_safi: AfiSafi::IPV4_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: None,
            },
            nlri: vec![Nlri::new("192.0.2.0/24".parse().unwrap())],
            flowspec: Vec::new(),
            opaque_nlri: vec![],
        };
        let u = Update {
            attrs: PathAttributes {
                origin: Some(attr::Origin::Igp),
                as_path: Some(attr::as_path::AsPath::sequence([65001])),
                ..Default::default()
            },
            mp_reach: Some(reach),
            ..Default::default()
        };
        let ctx = Context {
            extended_next_hop: AfiSafiSet::EMPTY.with(AfiSafi::IPV4_UNICAST),
            ..Context::four_octet()
        };
        let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
        assert_eq!(Message::decode(&b, &ctx), Ok(Message::Update(u)));
        let e = Message::decode(&b, &Context::four_octet()).unwrap_err();
        assert!(matches!(e, Error::OptionalAttributeError(_)));
    }
}
