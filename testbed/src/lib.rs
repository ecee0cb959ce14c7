//! testbed: builds network-namespace topologies, runs real peers and traffic in them, and tears
//! everything down again, also on panic and Ctrl-C.
//!
//! ```text
//!   Topology ──creates──► netns "tb<pid>-<n>-<role>" ──veth──► netns ...
//!      │  Drop / signal ──► kill processes, delete namespaces
//!      └─ in_netns(ns, f): run f on a thread that setns()'d into ns (bpffs stays visible, unlike `ip netns exec`)
//! ```

pub mod bench;
pub mod bins;
pub mod collect;
pub mod fabric;
pub mod feed;
pub mod fwdbench;
pub mod mrt;
pub mod netns;
pub mod peers;
pub mod ribd;
pub mod tablegen;
pub mod topo;
pub mod traffic;
