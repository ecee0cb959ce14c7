//! Loading the embedded forwarder, pinning its maps and links, attaching to interfaces.
//!
//! ```text
//!   LoadOptions{instance, engine4, hash_seed, route_cache}
//!        │ check pinned meta.abi_version + map shapes ──► refuse (AbiMismatch / Incompatible)
//!        │ classifier pins of another classifier ABI ──► removed, created afresh (acl::classifier::check_pinned)
//!        ▼
//!   EbpfLoader: override_global(cfg_*), map_pin_path(each map → /sys/fs/bpf/<instance>/<map>)
//!        │ (pinned maps that exist are re-used: routes survive a restart)
//!        ▼
//!   attach(iface): pinned link /sys/fs/bpf/<instance>/link-<iface>
//!        present → BPF_LINK_UPDATE to the new program (atomic, no gap)
//!        absent  → attach native (→ generic with a warning), pin the link
//!   detach(iface): unpin + close → the kernel removes the program from the interface
//! ```
//!
//! Without an instance nothing is pinned and links die with the process (tests, benchmarks).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use aya::maps::MapData;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use thiserror::Error;

use crate::abi::*;
use crate::maps::{FibMaps, MapsError, PINNED_MAPS};
use crate::sys::Mmap;
use crate::{FORWARD_OBJ, XDP_PROGRAM};

/// Programs of the object that only the benchmark loads.
pub const BENCH_PROGRAMS: [&str; 13] = [
    "xdp_bench_lookup4",
    "xdp_bench_forward4",
    "xdp_bench_pass4",
    "xdp_bench_drop4",
    "xdp_bench_drop",
    "xdp_bench_forward6",
    "xdp_bench_pass6",
    "xdp_bench_mem",
    "xdp_bench_mem_chain",
    "xdp_bench_dir24_chain",
    "xdp_bench_lookup6",
    "xdp_bench_fib_lookup4",
    "xdp_pass",
];

#[derive(Debug, Error)]
pub enum LoaderError {
    #[error("loading the forwarder object failed: {0}")]
    Load(#[from] Box<aya::EbpfError>),
    #[error("the forwarder program {0:?} is missing from the object")]
    MissingProgram(String),
    #[error(
        "pinned maps in {dir} have dataplane ABI version {found}, this build speaks {expected}: \
         refusing to re-use them. Stop the old forwarder and remove {dir} (forwarding stops until \
         the routes are written again), or run the matching build"
    )]
    AbiMismatch {
        dir: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("pinned map {path} does not match this build ({detail}); remove it to start fresh")]
    Incompatible { path: PathBuf, detail: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Maps(#[from] MapsError),
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
    #[error("taking over the pinned XDP link {path}: {detail}")]
    Takeover { path: PathBuf, detail: String },
    #[error("pinning the XDP link at {path}: {detail}")]
    PinLink { path: PathBuf, detail: String },
    #[error("{iface}: no XDP link of this forwarder")]
    NotAttached { iface: String },
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

/// What attaching did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Generic,
    /// A pinned link of an earlier process was switched to this program (BPF_LINK_UPDATE); the
    /// interface keeps the mode that link was created with.
    TookOver,
}

/// IPv4 lookup engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine4 {
    /// DIR-24-8 in mmapable arrays (default).
    #[default]
    Dir24,
    /// The BPF LPM trie `fib4` (reference engine).
    Lpm,
}

/// Load-time settings.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Pin maps and links under `<pin_root>/<instance>/`; `None` pins nothing.
    pub instance: Option<String>,
    /// bpffs mount point (default `/sys/fs/bpf`).
    pub pin_root: PathBuf,
    pub engine4: Engine4,
    /// Per-box flow-hash seed (so boxes in series do not polarise ECMP).
    pub hash_seed: u32,
    /// Per-CPU route cache in front of the lookup.
    pub route_cache: bool,
    /// Also load the benchmark programs and size their tables.
    pub bench: bool,
    /// Compile the classifier stage into the program (`cfg_classifier`). With no rules installed it
    /// costs one load per packet; `false` removes it entirely.
    pub classifier: bool,
    /// Tests only: the classifier's rate limiters read their clock from the `cls_clock` map.
    pub cls_test_clock: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            instance: None,
            pin_root: PathBuf::from(crate::bpffs::BPFFS),
            engine4: Engine4::Dir24,
            hash_seed: 0x5eed_5eed,
            route_cache: false,
            bench: false,
            classifier: true,
            cls_test_clock: false,
        }
    }
}

impl LoadOptions {
    /// `<pin_root>/<instance>` when pinning.
    pub fn pin_dir(&self) -> Option<PathBuf> {
        self.instance.as_ref().map(|i| self.pin_root.join(i))
    }
}

/// Expected (key size, value size, max entries) of every pinned map.
fn expected_shape(map: &str) -> (u32, u32, u32) {
    let s = |t: usize| t as u32;
    match map {
        "stats" => (4, s(size_of::<StatCounter>()), STAT_MAX),
        "nh_stats" => (4, s(size_of::<StatCounter>()), NH_MAX),
        "meta" => (4, s(size_of::<FibMeta>()), 1),
        "dir24" => (4, s(size_of::<Dir24Row>()), DIR24_ROWS),
        "dir8" => (4, s(size_of::<Dir8Group>()), DIR8_MAX_GROUPS),
        "fib4" => (s(size_of::<Fib4Key>()), s(size_of::<FibVal>()), FIB4_MAX),
        "fib6" => (s(size_of::<Fib6Key>()), s(size_of::<FibVal>()), FIB6_MAX),
        "pathlist" => (4, 4, PATHLIST_MAX),
        "nhg" => (4, s(size_of::<Nhg>()), NHG_MAX),
        "nh" => (4, s(size_of::<Nh>()), NH_MAX),
        "tx_port" => (4, s(size_of::<TxPortVal>()), 1024),
        "route_cache" => (4, s(size_of::<RouteCacheEntry>()), ROUTE_CACHE_SLOTS),
        _ => (0, 0, 0),
    }
}

/// Checks maps pinned in `dir` before they are re-used: the ABI version recorded in `meta` and the
/// shape of every map. Returns whether pinned maps were found.
pub fn check_pinned_abi(dir: &Path) -> Result<bool, LoaderError> {
    let meta_path = dir.join("meta");
    if !meta_path.exists() {
        return Ok(false);
    }
    let meta = MapData::from_pin(&meta_path).map_err(|source| LoaderError::Map {
        map: "meta",
        source,
    })?;
    let mm = Mmap::new(meta.fd().as_fd(), 4096).map_err(|source| LoaderError::Io {
        what: "mmap pinned meta",
        path: meta_path.clone(),
        source,
    })?;
    let found = mm.u32_at(0).load(std::sync::atomic::Ordering::Acquire);
    if found != FIB_ABI_VERSION {
        return Err(LoaderError::AbiMismatch {
            dir: dir.to_path_buf(),
            found,
            expected: FIB_ABI_VERSION,
        });
    }
    for name in PINNED_MAPS {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let md =
            MapData::from_pin(&path).map_err(|source| LoaderError::Map { map: name, source })?;
        let info = md
            .info()
            .map_err(|source| LoaderError::Map { map: name, source })?;
        let (k, v, n) = expected_shape(name);
        let got = (info.key_size(), info.value_size(), info.max_entries());
        // aya forces DEVMAP values to 8 bytes whatever the definition says; ours is 8 as well.
        if got != (k, v, n) {
            return Err(LoaderError::Incompatible {
                path,
                detail: format!("key/value/max_entries {got:?}, expected {:?}", (k, v, n)),
            });
        }
    }
    crate::acl::check_pinned(dir)?;
    Ok(true)
}

/// A loaded forwarder: the program, its maps and the links it owns.
pub struct Forwarder {
    ebpf: Ebpf,
    maps: FibMaps,
    opts: LoadOptions,
    /// Pinned links, by interface name (only with an instance).
    pinned: HashMap<String, PathBuf>,
    /// Unpinned links, by interface name.
    links: HashMap<String, aya::programs::xdp::XdpLinkId>,
    reused_pins: bool,
}

impl Forwarder {
    /// Loads with default options (DIR-24-8, no cache, nothing pinned).
    pub fn load() -> Result<Self, LoaderError> {
        Self::load_with(&LoadOptions::default())
    }

    /// Loads the embedded object into the kernel (maps created or re-used, program verified)
    /// without attaching it anywhere.
    pub fn load_with(opts: &LoadOptions) -> Result<Self, LoaderError> {
        let pin_dir = opts.pin_dir();
        let mut reused_pins = false;
        if let Some(dir) = &pin_dir {
            crate::bpffs::ensure_bpffs().map_err(|source| LoaderError::Io {
                what: "bpffs",
                path: opts.pin_root.clone(),
                source,
            })?;
            std::fs::create_dir_all(dir).map_err(|source| LoaderError::Io {
                what: "create pin directory",
                path: dir.clone(),
                source,
            })?;
            reused_pins = check_pinned_abi(dir)?;
        }
        let engine: u32 = match opts.engine4 {
            Engine4::Dir24 => ENGINE4_DIR24,
            Engine4::Lpm => ENGINE4_LPM,
        };
        let cache: u32 = opts.route_cache.into();
        let classifier: u32 = opts.classifier.into();
        let cls_test_clock: u32 = opts.cls_test_clock.into();
        let pin_paths: Vec<(&'static str, PathBuf)> = match &pin_dir {
            Some(dir) => PINNED_MAPS
                .iter()
                .chain(crate::acl::PINNED_MAPS.iter())
                .map(|m| (*m, dir.join(m)))
                .collect(),
            None => Vec::new(),
        };
        let mut loader = EbpfLoader::new();
        loader
            .override_global("cfg_engine4", &engine, true)
            .override_global("cfg_hash_seed", &opts.hash_seed, true)
            .override_global("cfg_route_cache", &cache, true)
            .override_global("cfg_classifier", &classifier, true)
            .override_global("cfg_cls_test_clock", &cls_test_clock, true);
        if opts.bench {
            loader.map_max_entries("bench_mem", BENCH_MEM_LINES);
        } else {
            loader.map_max_entries("bench_dst4", 1);
            loader.map_max_entries("bench_dst6", 1);
        }
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(FORWARD_OBJ).map_err(Box::new)?;
        let mut programs = vec![XDP_PROGRAM];
        if opts.bench {
            programs.extend(BENCH_PROGRAMS);
        }
        for name in programs {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| LoaderError::MissingProgram(name.into()))?
                .try_into()
                .map_err(Box::new)?;
            prog.load().map_err(Box::new)?;
        }
        let maps = FibMaps::open_with(|name| {
            let md = ebpf.map(name).ok_or(aya::maps::MapError::InvalidName {
                name: name.to_string(),
            })?;
            let fd = match md {
                aya::maps::Map::Array(m)
                | aya::maps::Map::PerCpuArray(m)
                | aya::maps::Map::LpmTrie(m)
                | aya::maps::Map::DevMapHash(m)
                | aya::maps::Map::PerCpuLruHashMap(m) => m.fd().as_fd().try_clone_to_owned(),
                _ => {
                    return Err(aya::maps::MapError::InvalidName {
                        name: name.to_string(),
                    });
                }
            }
            .map_err(|io_error| {
                aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error,
                })
            })?;
            MapData::from_fd(fd)
        })?;
        if maps.abi_version() == 0 {
            // Fresh maps. Generation 0 means "never valid" to the route cache, so start at 1.
            maps.bump_generation();
            maps.set_abi_version(FIB_ABI_VERSION);
        }
        if reused_pins {
            tracing::info!(dir = ?pin_dir, generation = maps.generation(), "re-using pinned forwarder maps");
        }
        Ok(Forwarder {
            ebpf,
            maps,
            opts: opts.clone(),
            pinned: HashMap::new(),
            links: HashMap::new(),
            reused_pins,
        })
    }

    /// A handle on the classifier's maps (install rule sets, read counters).
    pub fn classifier(&self) -> Result<crate::acl::Classifier, crate::acl::AclError> {
        crate::acl::Classifier::open_with(|name| {
            let md = self
                .ebpf
                .map(name)
                .ok_or(aya::maps::MapError::InvalidName {
                    name: name.to_string(),
                })?;
            let fd = match md {
                aya::maps::Map::Array(m)
                | aya::maps::Map::PerCpuArray(m)
                | aya::maps::Map::HashMap(m) => m.fd().as_fd().try_clone_to_owned(),
                _ => {
                    return Err(aya::maps::MapError::InvalidName {
                        name: name.to_string(),
                    });
                }
            }
            .map_err(|io_error| {
                aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error,
                })
            })?;
            MapData::from_fd(fd)
        })
    }

    /// The typed map API.
    pub fn maps(&self) -> &FibMaps {
        &self.maps
    }

    /// The typed map API, mutable (the DIR-24-8 updater writes through `&mut` sinks).
    pub fn maps_mut(&mut self) -> &mut FibMaps {
        &mut self.maps
    }

    /// Whether pinned maps of an earlier process were re-used (their routes are live).
    pub fn reused_pinned_maps(&self) -> bool {
        self.reused_pins
    }

    /// The XDP forwarder program, for attaching or BPF_PROG_TEST_RUN.
    pub fn program(&mut self) -> Result<&mut Xdp, LoaderError> {
        self.program_named(XDP_PROGRAM)
    }

    /// Any loaded program of the object by name (the benchmark programs with `bench`).
    pub fn program_named(&mut self, name: &str) -> Result<&mut Xdp, LoaderError> {
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| LoaderError::MissingProgram(name.into()))?
            .try_into()
            .map_err(Box::new)?)
    }

    /// A map of the object that is not part of [`FibMaps`] (the benchmark tables).
    pub fn raw_map(&self, name: &str) -> Option<&aya::maps::Map> {
        self.ebpf.map(name)
    }

    /// Mutable access to such a map (to fill the benchmark tables).
    pub fn raw_map_mut(&mut self, name: &str) -> Option<&mut aya::maps::Map> {
        self.ebpf.map_mut(name)
    }

    fn link_pin_path(&self, iface: &str) -> Option<PathBuf> {
        self.opts.pin_dir().map(|d| d.join(format!("link-{iface}")))
    }

    /// Attaches to `iface` in the calling thread's network namespace. With an instance the link is
    /// pinned (forwarding survives this process), and a link pinned by an earlier process is taken
    /// over atomically instead.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachedMode, LoaderError> {
        let pin = self.link_pin_path(iface);
        if let Some(path) = &pin
            && path.exists()
        {
            let takeover = |detail: String| LoaderError::Takeover {
                path: path.clone(),
                detail,
            };
            let pinned = PinnedLink::from_pin(path).map_err(|e| takeover(e.to_string()))?;
            let fd_link: FdLink = pinned.into();
            let xdp_link = XdpLink::try_from(fd_link).map_err(|e| takeover(e.to_string()))?;
            let prog = self.program()?;
            let id = prog
                .attach_to_link(xdp_link)
                .map_err(|e| takeover(e.to_string()))?;
            // The pin keeps the link; our handle only needs to stop owning it.
            drop(prog.take_link(id).map_err(Box::new)?);
            self.pinned.insert(iface.to_string(), path.clone());
            return Ok(AttachedMode::TookOver);
        }
        let prog = self.program()?;
        let (id, got) = match mode {
            AttachMode::Native => prog
                .attach(iface, XdpMode::Driver)
                .map(|id| (id, AttachedMode::Native))
                .map_err(|source| LoaderError::AttachMode {
                    iface: iface.into(),
                    mode,
                    source: Box::new(source),
                })?,
            AttachMode::Generic => prog
                .attach(iface, XdpMode::Skb)
                .map(|id| (id, AttachedMode::Generic))
                .map_err(|source| LoaderError::AttachMode {
                    iface: iface.into(),
                    mode,
                    source: Box::new(source),
                })?,
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(id) => (id, AttachedMode::Native),
                Err(native) => match prog.attach(iface, XdpMode::Skb) {
                    Ok(id) => {
                        tracing::warn!(%iface, error = %native, "native XDP unavailable; using generic (skb) mode, which is slower");
                        (id, AttachedMode::Generic)
                    }
                    Err(generic) => {
                        return Err(LoaderError::Attach {
                            iface: iface.into(),
                            native: Box::new(native),
                            generic: Box::new(generic),
                        });
                    }
                },
            },
        };
        match pin {
            Some(path) => {
                let pin_err = |detail: String| LoaderError::PinLink {
                    path: path.clone(),
                    detail,
                };
                let link = prog.take_link(id).map_err(Box::new)?;
                let fd_link = FdLink::try_from(link).map_err(|e| pin_err(e.to_string()))?;
                fd_link.pin(&path).map_err(|e| pin_err(e.to_string()))?;
                self.pinned.insert(iface.to_string(), path);
            }
            None => {
                self.links.insert(iface.to_string(), id);
            }
        }
        Ok(got)
    }

    /// Detaches from `iface`: unpins (and so closes) the link of this instance, or detaches the
    /// unpinned link. A pinned link is found by name even when another process created it.
    pub fn detach(&mut self, iface: &str) -> Result<(), LoaderError> {
        if let Some(id) = self.links.remove(iface) {
            return self.program()?.detach(id).map_err(|e| Box::new(e).into());
        }
        let path = self
            .pinned
            .remove(iface)
            .or_else(|| self.link_pin_path(iface).filter(|p| p.exists()))
            .ok_or_else(|| LoaderError::NotAttached {
                iface: iface.into(),
            })?;
        std::fs::remove_file(&path).map_err(|source| LoaderError::Io {
            what: "unpin XDP link",
            path,
            source,
        })
    }

    /// Per-reason counters summed over all CPUs.
    pub fn stats(&self) -> Result<Vec<(StatReason, StatCounter)>, LoaderError> {
        Ok(self.maps.stats()?)
    }
}
