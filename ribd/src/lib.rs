//! ribd: the routing daemon.
//!
//! ```text
//!   bgp sessions ──routes──► rib (Adj-RIB-In → policy → Loc-RIB → best/multipath) ──FibDelta──► fib-sync
//!                                  └─ export policy ─► Adj-RIB-Out ─► bgp sessions
//!   config (TOML) ─► reload diff        control API (axum, Unix socket) ─► ribctl        /metrics
//! ```
//!
//! The API model types live in [`api`] and are all the CLI links against (feature `daemon` off).

#[cfg(feature = "daemon")]
pub mod acl;
#[cfg(feature = "daemon")]
pub mod adj_out;
#[cfg(feature = "daemon")]
pub mod alloc;
pub mod api;
#[cfg(feature = "daemon")]
pub mod config;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod export;
#[cfg(feature = "daemon")]
pub mod flowspec;
#[cfg(feature = "daemon")]
pub mod import;
#[cfg(feature = "daemon")]
pub mod inbound;
#[cfg(feature = "daemon")]
pub mod policy;
#[cfg(feature = "daemon")]
pub mod rib;
