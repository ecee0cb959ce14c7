//! Errors an operator can act on, each with its documented exit code (see [`crate::args::EXIT_CODES`]).

use std::fmt;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: negative answer (check failed, not found, action refused).
pub const EXIT_NEGATIVE: i32 = 1;
/// Exit code: usage (bad arguments, malformed input, HTTP 400).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: ribd unreachable.
pub const EXIT_UNREACHABLE: i32 = 3;
/// Exit code: permission denied (socket or token).
pub const EXIT_PERMISSION: i32 = 4;
/// Exit code: API error (5xx, unreadable answer).
pub const EXIT_API: i32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad arguments or input rejected before or by the daemon.
    Usage(String),
    /// The daemon does not know the peer/prefix/route (HTTP 404).
    NotFound(String),
    /// The daemon refused an action in the current state (HTTP 409/422: peer not established, reload
    /// rejected because the config file has errors).
    Refused(String),
    /// The daemon cannot be reached. `target` names the socket or URL tried.
    Unreachable { target: String, detail: String },
    /// The socket's permissions or the token keep us out.
    Permission { target: String, detail: String },
    /// Anything else the API answered that we cannot use.
    Api(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::NotFound(_) | Error::Refused(_) => EXIT_NEGATIVE,
            Error::Unreachable { .. } => EXIT_UNREACHABLE,
            Error::Permission { .. } => EXIT_PERMISSION,
            Error::Api(_) => EXIT_API,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::NotFound(m) => write!(f, "{m}"),
            Error::Refused(m) => write!(f, "refused: {m}"),
            Error::Unreachable { target, detail } => {
                write!(f, "cannot reach ribd at {target}: {detail}")
            }
            Error::Permission { target, detail } => {
                write!(f, "permission denied on {target}: {detail}")
            }
            Error::Api(m) => write!(f, "ribd API error: {m}"),
        }
    }
}

impl std::error::Error for Error {}
