//! bgp: everything that speaks BGP-4 on the wire, and nothing else.
//!
//! ```text
//!   TCP/179 ◄──► session (tokio task per peer) ◄──► fsm (sans-IO, time is an input) ◄──► wire (codec)
//! ```
//!
//! This crate depends on no other workspace crate; `wire` and `fsm` never touch sockets, tokio or clocks.

pub mod fsm;
#[cfg(feature = "session")]
pub mod session;
pub mod wire;
