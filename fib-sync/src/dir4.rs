//! The IPv4 FIB's DIR-24-8 arrays: fib-ebpf's one builder ([`fib_ebpf::dir24`]), written
//! through [`crate::sync::CountingSink`] (the live maps, stores counted). fib-sync is the arrays'
//! only writer, so the builder reads tbl24 back from the maps and keeps no copy.

pub(crate) use fib_ebpf::dir24::{
    Dir24 as Dir4, Dir24Error, Dir24Sink as Tables, Rules4, image, load_sorted,
};

impl From<Dir24Error> for crate::SyncError {
    fn from(e: Dir24Error) -> Self {
        crate::SyncError::Map(format!("dir24: {e}"))
    }
}
