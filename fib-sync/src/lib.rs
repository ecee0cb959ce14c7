//! fib-sync: turns the RIB's FIB deltas (`prefix → Option<set of (next-hop, weight)>`) into ordered,
//! make-before-break writes to the pinned eBPF maps of [`fib_ebpf`], resolving BGP next-hops through the
//! kernel's routes and neighbours.
//!
//! ```text
//!   ribd::rib ──Route batches──► FibSync ──nh, nhg, pathlist, dir24/dir8/fib6 writes──► fib-ebpf maps
//!                                   ▲  │
//!            (addr, Option<NhL2>)   │  └── check(): expected FIB vs maps
//!                                   │
//!   netlink ──links, addresses, routes, neighbours──► Resolver ──NhtUpdate{addr, reachable, cost}──► RIB
//! ```
//!
//! Modules: [`types`] (input/output), [`ids`] (quarantined id pools), [`sync`] (the engine and its
//! batches), [`check`] (consistency check), [`maps`] (pinned map handles), [`mirror`] (optional copy
//! of the FIB in a kernel routing table).

mod bulk;
pub mod check;
mod dir4;
pub mod ids;
pub mod maps;
pub mod mirror;
pub mod reconcile;
pub mod resolve;
pub mod sync;
pub mod syncer;
mod table6;
pub mod types;

pub use bulk::BulkLoad;
pub use check::Mismatch;
pub use fib_ebpf;
pub use maps::PinnedMaps;
pub use mirror::{KernelMirror, KernelNh, MirrorConfig};
pub use reconcile::ReconcileReport;
pub use resolve::{Resolution, Resolver, ResolverConfig};
pub use sync::{BatchReport, FibSync, SyncConfig, WriteCounts};
pub use syncer::Syncer;
pub use types::{NhL2, NhSet, NhtUpdate, Route, RouteAction};

/// Errors of the sync engine.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Map(String),
    #[error("all {0} ids are in use or in quarantine")]
    IdsExhausted(&'static str),
    #[error("netlink: {0}")]
    Netlink(String),
}
