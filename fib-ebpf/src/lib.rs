//! fib-ebpf: the XDP forwarder and everything userspace needs to drive it.
//!
//! ```text
//!   bpf/*.bpf.c ──clang -target bpf (build.rs)──► OUT_DIR/forward.bpf.o ──embedded──► FORWARD_OBJ
//!                                                                                      │
//!   fib-sync ──typed map writes──► pinned maps (/sys/fs/bpf/<instance>/) ◄──reads── XDP forwarder
//!                                         ▲                                          (per interface)
//!                                     loader (aya 0.14): load, pin, attach/take over, stats
//! ```
//!
//! The map ABI is defined once in `bpf/consts.h` + `bpf/structs.h`; [`abi`] mirrors it with `#[repr(C)]`
//! types whose sizes and offsets are checked against the C compiler's view at build time.

pub mod abi;
pub mod acl;
pub mod bpffs;
pub mod dir24;
pub mod flow;
pub mod loader;
pub mod maps;
pub mod nhg;
mod sys;

pub use dir24::{Dir24, Dir24Error, Dir24Sink};
pub use loader::{AttachMode, AttachedMode, Engine4, Forwarder, LoadOptions, LoaderError};
pub use maps::{FibMaps, MapsError};

/// The compiled forwarder object, embedded so nothing is looked up on disk at run time.
pub static FORWARD_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/forward.bpf.o"));

/// A benchmark traffic sink (`bpf/sink.bpf.c`): XDP program `xdp_sink` counts frames in the per-CPU
/// array `sink_count` (`{packets, bytes}` u64 pair) and drops them.
pub static SINK_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sink.bpf.o"));

/// Name of the XDP entry point in [`FORWARD_OBJ`].
pub const XDP_PROGRAM: &str = "xdp_forward";
