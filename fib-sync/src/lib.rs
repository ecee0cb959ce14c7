//! fib-sync: turns the RIB's FIB deltas (`prefix → Option<set of (next-hop, weight)>`) into ordered,
//! make-before-break writes to the pinned eBPF maps of [`fib_ebpf`], resolving BGP next-hops through the
//! kernel's routes and neighbours.
//!
//! ```text
//!   ribd::rib ──FibDelta batches──► fib-sync ──nh, nhg, pathlist, dir24/dir8/fib6 writes──► fib-ebpf maps
//!                                      ▲
//!                          netlink: links, addresses, routes, neighbours
//! ```

pub use fib_ebpf;
