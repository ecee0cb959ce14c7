//! Loading the embedded forwarder and attaching it to interfaces.
//!
//! XDP attach on current kernels is a bpf_link; the link lives as long as this process unless pinned.

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use thiserror::Error;

use crate::abi::{FIB_ABI_VERSION, FibMeta, STAT_MAX, StatCounter, StatReason};
use crate::{FORWARD_OBJ, XDP_PROGRAM};

#[derive(Debug, Error)]
pub enum LoaderError {
    #[error("loading the forwarder object failed: {0}")]
    Load(#[from] Box<aya::EbpfError>),
    #[error("the forwarder program {0:?} is missing from the object")]
    MissingProgram(&'static str),
    #[error("map {0:?} is missing from the object")]
    MissingMap(&'static str),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "attaching XDP to {iface} failed in native mode ({native}) and in generic mode ({generic})"
    )]
    Attach {
        iface: String,
        native: Box<ProgramError>,
        generic: Box<ProgramError>,
    },
    #[error("attaching XDP to {iface} in {mode:?} mode failed: {source}")]
    AttachMode {
        iface: String,
        mode: AttachMode,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(transparent)]
    Program(#[from] Box<ProgramError>),
}

/// How to attach to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic (skb) mode with a warning.
    #[default]
    Auto,
    /// Native mode only.
    Native,
    /// Generic (skb) mode only: slower, works on every interface.
    Generic,
}

/// The mode an interface ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
}

/// A loaded forwarder: the program and its maps.
pub struct Forwarder {
    ebpf: Ebpf,
}

impl Forwarder {
    /// Loads the embedded object into the kernel (maps created, program verified) without attaching.
    pub fn load() -> Result<Self, LoaderError> {
        let mut ebpf = EbpfLoader::new().load(FORWARD_OBJ).map_err(Box::new)?;
        let prog: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or(LoaderError::MissingProgram(XDP_PROGRAM))?
            .try_into()
            .map_err(Box::new)?;
        prog.load().map_err(Box::new)?;
        let mut f = Forwarder { ebpf };
        f.write_meta()?;
        Ok(f)
    }

    fn write_meta(&mut self) -> Result<(), LoaderError> {
        let map = self
            .ebpf
            .map_mut("meta")
            .ok_or(LoaderError::MissingMap("meta"))?;
        let mut meta: Array<&mut MapData, FibMeta> =
            Array::try_from(map).map_err(|source| LoaderError::Map {
                map: "meta",
                source,
            })?;
        let value = FibMeta {
            abi_version: FIB_ABI_VERSION,
            _pad: 0,
            generation: 0,
        };
        meta.set(0, value, 0).map_err(|source| LoaderError::Map {
            map: "meta",
            source,
        })
    }

    /// The XDP program, for attaching or BPF_PROG_TEST_RUN.
    pub fn program(&mut self) -> Result<&mut Xdp, LoaderError> {
        Ok(self
            .ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or(LoaderError::MissingProgram(XDP_PROGRAM))?
            .try_into()
            .map_err(Box::new)?)
    }

    /// Attaches to `iface` in the calling thread's network namespace.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachedMode, LoaderError> {
        let prog = self.program()?;
        match mode {
            AttachMode::Native => prog
                .attach(iface, XdpMode::Driver)
                .map(|_| AttachedMode::Native)
                .map_err(|source| LoaderError::AttachMode {
                    iface: iface.into(),
                    mode,
                    source: Box::new(source),
                }),
            AttachMode::Generic => prog
                .attach(iface, XdpMode::Skb)
                .map(|_| AttachedMode::Generic)
                .map_err(|source| LoaderError::AttachMode {
                    iface: iface.into(),
                    mode,
                    source: Box::new(source),
                }),
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(_) => Ok(AttachedMode::Native),
                Err(native) => match prog.attach(iface, XdpMode::Skb) {
                    Ok(_) => {
                        tracing::warn!(%iface, error = %native, "native XDP unavailable; using generic (skb) mode, which is slower");
                        Ok(AttachedMode::Generic)
                    }
                    Err(generic) => Err(LoaderError::Attach {
                        iface: iface.into(),
                        native: Box::new(native),
                        generic: Box::new(generic),
                    }),
                },
            },
        }
    }

    /// Per-reason counters summed over all CPUs.
    pub fn stats(&self) -> Result<Vec<(StatReason, StatCounter)>, LoaderError> {
        let map = self
            .ebpf
            .map("stats")
            .ok_or(LoaderError::MissingMap("stats"))?;
        let stats: PerCpuArray<&MapData, StatCounter> =
            PerCpuArray::try_from(map).map_err(|source| LoaderError::Map {
                map: "stats",
                source,
            })?;
        let mut out = Vec::with_capacity(STAT_MAX as usize);
        for reason in StatReason::ALL {
            let per_cpu = stats
                .get(&(reason as u32), 0)
                .map_err(|source| LoaderError::Map {
                    map: "stats",
                    source,
                })?;
            let mut sum = StatCounter::default();
            for c in per_cpu.iter() {
                sum.packets += c.packets;
                sum.bytes += c.bytes;
            }
            out.push((reason, sum));
        }
        Ok(out)
    }
}
