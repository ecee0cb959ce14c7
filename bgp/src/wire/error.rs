//! Errors: every decode error is a NOTIFICATION (RFC 4271 §6) the session sends before it closes.

use super::notification::{Notification, code, header, open, route_refresh, update};
use serde::{Deserialize, Serialize};

/// A decode error that ends the session (RFC 4271 §6, RFC 7606 "session reset").
///
/// Each variant maps to one NOTIFICATION error code/subcode; the `Vec<u8>` payloads are the NOTIFICATION's
/// data field as RFC 4271 §6.3 prescribes (usually the offending attribute: type, length and value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// 1/1: the marker is not all ones.
    #[error("message header: connection not synchronized (bad marker)")]
    ConnectionNotSynchronized,
    /// 1/2: length field out of range for the type or the negotiated maximum; data = the length.
    #[error("message header: bad message length {0}")]
    BadMessageLength(u16),
    /// 1/3: unknown message type; data = the type.
    #[error("message header: bad message type {0}")]
    BadMessageType(u8),

    /// 2/0: OPEN body inconsistent in a way no specific subcode covers (e.g. parameter length overrun).
    #[error("OPEN: malformed ({0})")]
    MalformedOpen(String),
    /// 2/1: version other than 4; data = the largest version supported (4), 2 octets.
    #[error("OPEN: unsupported version number {0}")]
    UnsupportedVersionNumber(u8),
    /// 2/2: peer AS not the configured one (raised by the FSM, not the codec).
    #[error("OPEN: bad peer AS")]
    BadPeerAs,
    /// 2/3: BGP identifier zero, or equal to ours for iBGP (RFC 6286).
    #[error("OPEN: bad BGP identifier")]
    BadBgpIdentifier,
    /// 2/4: an optional parameter other than capabilities (type 2) or the RFC 9072 marker (255).
    #[error("OPEN: unsupported optional parameter")]
    UnsupportedOptionalParameter,
    /// 2/6: hold time 1 or 2 seconds.
    #[error("OPEN: unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// 2/7: a required capability is missing or malformed (RFC 5492 §5); data = capability TLVs.
    #[error("OPEN: unsupported capability")]
    UnsupportedCapability(Vec<u8>),

    /// 3/1: the attribute list or withdrawn-routes length overruns the message.
    #[error("UPDATE: malformed attribute list")]
    MalformedAttributeList,
    /// 3/2: a well-known attribute we do not know (data = the attribute).
    #[error("UPDATE: unrecognized well-known attribute")]
    UnrecognizedWellKnownAttribute(Vec<u8>),
    /// 3/3: ORIGIN, AS_PATH or NEXT_HOP missing; data = the missing type code.
    #[error("UPDATE: missing well-known attribute {0}")]
    MissingWellKnownAttribute(u8),
    /// 3/4: attribute flags conflict with the type (data = the attribute).
    #[error("UPDATE: attribute flags error")]
    AttributeFlagsError(Vec<u8>),
    /// 3/5: attribute length wrong for its type (data = the attribute).
    #[error("UPDATE: attribute length error")]
    AttributeLengthError(Vec<u8>),
    /// 3/6: ORIGIN value undefined (data = the attribute).
    #[error("UPDATE: invalid ORIGIN attribute")]
    InvalidOriginAttribute(Vec<u8>),
    /// 3/8: NEXT_HOP syntactically wrong (data = the attribute).
    #[error("UPDATE: invalid NEXT_HOP attribute")]
    InvalidNextHopAttribute(Vec<u8>),
    /// 3/9: an optional attribute is malformed (data = the attribute).
    #[error("UPDATE: optional attribute error")]
    OptionalAttributeError(Vec<u8>),
    /// 3/10: a prefix is syntactically wrong (length > 32/128, or overruns its field).
    #[error("UPDATE: invalid network field")]
    InvalidNetworkField,
    /// 3/11: AS_PATH malformed (bad segment type or length).
    #[error("UPDATE: malformed AS_PATH")]
    MalformedAsPath,

    /// 7/1: ROUTE-REFRESH length wrong (RFC 7313 §5); data = the whole message.
    #[error("ROUTE-REFRESH: invalid message length")]
    InvalidRouteRefreshLength(Vec<u8>),
}

impl Error {
    /// The NOTIFICATION this error is reported with (code, subcode, data).
    pub fn notification(&self) -> Notification {
        let (c, s, data): (u8, u8, Vec<u8>) = match self {
            Error::ConnectionNotSynchronized => (
                code::MESSAGE_HEADER,
                header::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            Error::BadMessageLength(l) => (
                code::MESSAGE_HEADER,
                header::BAD_MESSAGE_LENGTH,
                l.to_be_bytes().to_vec(),
            ),
            Error::BadMessageType(t) => (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE, vec![*t]),
            Error::MalformedOpen(_) => (code::OPEN_MESSAGE, 0, vec![]),
            Error::UnsupportedVersionNumber(_) => (
                code::OPEN_MESSAGE,
                open::UNSUPPORTED_VERSION_NUMBER,
                vec![0, 4],
            ),
            Error::BadPeerAs => (code::OPEN_MESSAGE, open::BAD_PEER_AS, vec![]),
            Error::BadBgpIdentifier => (code::OPEN_MESSAGE, open::BAD_BGP_IDENTIFIER, vec![]),
            Error::UnsupportedOptionalParameter => (
                code::OPEN_MESSAGE,
                open::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![],
            ),
            Error::UnacceptableHoldTime(_) => {
                (code::OPEN_MESSAGE, open::UNACCEPTABLE_HOLD_TIME, vec![])
            }
            Error::UnsupportedCapability(d) => {
                (code::OPEN_MESSAGE, open::UNSUPPORTED_CAPABILITY, d.clone())
            }
            Error::MalformedAttributeList => (
                code::UPDATE_MESSAGE,
                update::MALFORMED_ATTRIBUTE_LIST,
                vec![],
            ),
            Error::UnrecognizedWellKnownAttribute(d) => (
                code::UPDATE_MESSAGE,
                update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                d.clone(),
            ),
            Error::MissingWellKnownAttribute(t) => (
                code::UPDATE_MESSAGE,
                update::MISSING_WELL_KNOWN_ATTRIBUTE,
                vec![*t],
            ),
            Error::AttributeFlagsError(d) => (
                code::UPDATE_MESSAGE,
                update::ATTRIBUTE_FLAGS_ERROR,
                d.clone(),
            ),
            Error::AttributeLengthError(d) => (
                code::UPDATE_MESSAGE,
                update::ATTRIBUTE_LENGTH_ERROR,
                d.clone(),
            ),
            Error::InvalidOriginAttribute(d) => (
                code::UPDATE_MESSAGE,
                update::INVALID_ORIGIN_ATTRIBUTE,
                d.clone(),
            ),
            Error::InvalidNextHopAttribute(d) => (
                code::UPDATE_MESSAGE,
                update::INVALID_NEXT_HOP_ATTRIBUTE,
                d.clone(),
            ),
            Error::OptionalAttributeError(d) => (
                code::UPDATE_MESSAGE,
                update::OPTIONAL_ATTRIBUTE_ERROR,
                d.clone(),
            ),
            Error::InvalidNetworkField => {
                (code::UPDATE_MESSAGE, update::INVALID_NETWORK_FIELD, vec![])
            }
            Error::MalformedAsPath => (code::UPDATE_MESSAGE, update::MALFORMED_AS_PATH, vec![]),
            Error::InvalidRouteRefreshLength(d) => (
                code::ROUTE_REFRESH_MESSAGE,
                route_refresh::INVALID_MESSAGE_LENGTH,
                d.clone(),
            ),
        };
        Notification::new(c, s, data)
    }
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum length (RFC 4271 §4.1, RFC 8654).
    #[error("message of {len} octets exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    /// A field does not fit its wire representation (e.g. an AS_PATH segment of more than 255 ASes).
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
}
