//! Control API model: the JSON types exchanged between ribd and its clients (ribctl, scripts).
//! Stable: fields are only ever added.

use serde::{Deserialize, Serialize};

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/ribd/ribd.sock";

/// Daemon identity, returned by `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub name: String,
    pub version: String,
}
