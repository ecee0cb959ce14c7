//! NOTIFICATION message (RFC 4271 §4.5, §6), shutdown communication (RFC 8203 / RFC 9003), Cease subcodes
//! (RFC 4486).

use super::Error;
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

/// Error codes (RFC 4271 §4.5, RFC 7313 §5).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH_MESSAGE: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5).
pub mod open {
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// 5 is deprecated (Authentication Failure).
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// RFC 9234.
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// 7 is deprecated (AS Routing Loop).
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8203, RFC 9384).
pub mod cease {
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// RFC 8538.
    pub const HARD_RESET: u8 = 9;
    /// RFC 9384.
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// Longest shutdown communication (RFC 9003 §2 raised RFC 8203's 128 to 255 octets).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// The error code as a type, for matching and display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    MessageHeader,
    OpenMessage,
    UpdateMessage,
    HoldTimerExpired,
    FiniteStateMachine,
    Cease,
    RouteRefreshMessage,
    Unknown(u8),
}

impl ErrorCode {
    pub fn from_u8(v: u8) -> Self {
        match v {
            code::MESSAGE_HEADER => ErrorCode::MessageHeader,
            code::OPEN_MESSAGE => ErrorCode::OpenMessage,
            code::UPDATE_MESSAGE => ErrorCode::UpdateMessage,
            code::HOLD_TIMER_EXPIRED => ErrorCode::HoldTimerExpired,
            code::FSM => ErrorCode::FiniteStateMachine,
            code::CEASE => ErrorCode::Cease,
            code::ROUTE_REFRESH_MESSAGE => ErrorCode::RouteRefreshMessage,
            v => ErrorCode::Unknown(v),
        }
    }
}

/// NOTIFICATION message body (RFC 4271 §4.5).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Error code    | Error subcode |   Data (variable)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// With Cease / Administrative Shutdown or Reset, the data may be a shutdown communication (RFC 8203 §2):
/// one length octet followed by that many octets of UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// Hold Timer Expired (RFC 4271 §6.5).
    pub fn hold_timer_expired() -> Self {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, vec![])
    }

    /// Finite State Machine Error with an RFC 6608 subcode ([`fsm`]).
    pub fn fsm_error(subcode: u8) -> Self {
        Notification::new(code::FSM, subcode, vec![])
    }

    /// Cease with a subcode ([`cease`]) and no data.
    pub fn cease(subcode: u8) -> Self {
        Notification::new(code::CEASE, subcode, vec![])
    }

    /// Cease / Maximum Number of Prefixes Reached with the RFC 4486 §4 data (AFI, SAFI, upper bound).
    pub fn max_prefixes(af: super::AfiSafi, limit: u32) -> Self {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&af.afi.0.to_be_bytes());
        data.push(af.safi.0);
        data.extend_from_slice(&limit.to_be_bytes());
        Notification::new(code::CEASE, cease::MAXIMUM_PREFIXES_REACHED, data)
    }

    /// Cease / Administrative Shutdown or Reset with a shutdown communication (RFC 8203 §2, RFC 9003).
    ///
    /// `subcode` should be [`cease::ADMINISTRATIVE_SHUTDOWN`] or [`cease::ADMINISTRATIVE_RESET`]. The message
    /// is cut (on a UTF-8 character boundary) to 255 octets.
    pub fn shutdown(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(1 + end);
        if end > 0 {
            data.push(end as u8);
            data.extend_from_slice(&message.as_bytes()[..end]);
        }
        Notification::new(code::CEASE, subcode, data)
    }

    /// The error code as a type.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::from_u8(self.code)
    }

    /// The shutdown communication (RFC 8203 §2), if this is an administrative shutdown/reset that carries a
    /// well-formed one. `None` when absent; `Some(Err(..))` when present but malformed (length overrun or not
    /// UTF-8), which RFC 8203 §4 says to log and otherwise ignore.
    pub fn shutdown_communication(&self) -> Option<Result<&str, &[u8]>> {
        if self.code != code::CEASE
            || !(self.subcode == cease::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease::ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let len = usize::from(len);
        if len == 0 {
            return None;
        }
        match rest.get(..len) {
            Some(s) => Some(std::str::from_utf8(s).map_err(|_| &self.data[..])),
            None => Some(Err(&self.data[..])),
        }
    }

    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, Error> {
        match body {
            [c, s, data @ ..] => Ok(Notification::new(*c, *s, data.to_vec())),
            _ => Err(Error::BadMessageLength(
                (super::HEADER_LEN + body.len()) as u16,
            )),
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        buf.put_u8(self.code);
        buf.put_u8(self.subcode);
        buf.put_slice(&self.data);
    }
}

impl From<&Error> for Notification {
    fn from(e: &Error) -> Self {
        e.notification()
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.error_code() {
            ErrorCode::MessageHeader => "message header error",
            ErrorCode::OpenMessage => "OPEN message error",
            ErrorCode::UpdateMessage => "UPDATE message error",
            ErrorCode::HoldTimerExpired => "hold timer expired",
            ErrorCode::FiniteStateMachine => "finite state machine error",
            ErrorCode::Cease => "cease",
            ErrorCode::RouteRefreshMessage => "ROUTE-REFRESH message error",
            ErrorCode::Unknown(_) => "unknown error code",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)?;
        if let Some(Ok(msg)) = self.shutdown_communication() {
            write!(f, ": \"{msg}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Context, Message};

    #[test]
    fn shutdown_communication_roundtrip_rfc8203_2() {
        let n = Notification::shutdown(cease::ADMINISTRATIVE_SHUTDOWN, "maintenance ✓");
        assert_eq!(n.shutdown_communication(), Some(Ok("maintenance ✓")));
        let bytes = Message::Notification(n.clone())
            .to_bytes(&Context::default())
            .unwrap();
        assert_eq!(bytes.len(), 19 + 2 + 1 + "maintenance ✓".len());
        assert_eq!(
            Message::decode(&bytes, &Context::default()),
            Ok(Message::Notification(n))
        );
    }

    #[test]
    fn shutdown_communication_truncated_on_char_boundary_rfc9003_2() {
        let long = "é".repeat(200); // 400 octets
        let n = Notification::shutdown(cease::ADMINISTRATIVE_RESET, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(
            n.shutdown_communication().unwrap().unwrap().chars().count(),
            127
        );
    }

    #[test]
    fn shutdown_communication_overrun_is_reported_rfc8203_4() {
        let n = Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN, vec![10, b'a']);
        assert!(matches!(n.shutdown_communication(), Some(Err(_))));
        let n = Notification::new(code::CEASE, cease::PEER_DECONFIGURED, vec![1, b'a']);
        assert_eq!(n.shutdown_communication(), None);
    }

    #[test]
    fn notification_too_short_is_bad_length_rfc4271_6_1() {
        let mut b = vec![0xff; 16];
        b.extend_from_slice(&[0, 20, 3, 6]);
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Err(Error::BadMessageLength(20))
        );
    }
}
