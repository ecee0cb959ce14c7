//! `testbed fwd-bench`: packets/s through a router, the XDP forwarder against the kernel forwarding the
//! same routes, with an in-kernel packet source (issue 12, forwarding).
//!
//! ```text
//!   BPF_PROG_TEST_RUN, BPF_F_TEST_XDP_LIVE_FRAMES, ingress = dut:s0 (as xdp-trafficgen injects frames)
//!     ├─ xdp_bench_forward4: new destination per frame, then the forwarder ─ XDP_REDIRECT ─┐
//!     └─ xdp_bench_pass4:    new destination per frame, then XDP_PASS ─ kernel ip_forward ─┤
//!                                                   dut:u1 ── snk1:eth0 [xdp_sink: count, drop]
//!                                                   dut:u2 ── snk2:eth0 [xdp_sink: count, drop]
//! ```
//! A veth pair with a user-space sender (trafgen, iperf) is sender-bound and shares one CPU between
//! sender, router and receiver; the live-frame source costs the same few instructions in both cases
//! and runs on one pinned CPU, so the difference is the forwarding path. Destinations are random
//! addresses inside random prefixes of the table (64-byte UDP frames, one flow per destination); the
//! routes are ECMP over both sinks: the XDP maps programmed by fib-sync (the product path), the kernel
//! through one nexthop group object (`ip nexthop`, as FRR installs them). Delivered frames are
//! counted at the sinks; packets/s = delivered / wall time of the run. Each case is run `--runs` times,
//! the median is reported.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aya::maps::{Array, PerCpuArray};
use aya::programs::{Xdp, XdpMode};
use fib_ebpf::abi::{BENCH_BATCH, BENCH_ROWS, BenchRow4};
use fib_ebpf::{Forwarder, LoadOptions};
use fib_sync::{FibSync, PinnedMaps, Resolver, ResolverConfig, Route, SyncConfig, Syncer};
use ipnet::{IpNet, Ipv4Net};

use crate::netns::{Netns, addr, veth};

/// `testbed fwd-bench` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct FwdBenchArgs {
    /// Prefixes of the real table for the full-table case (default: all 512,621).
    #[arg(long)]
    pub prefixes: Option<usize>,
    /// Frames per run.
    #[arg(long, default_value_t = 2_000_000)]
    pub packets: u32,
    /// Runs per case (median reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Frames per test-run batch (the kernel's NAPI-like batch; at most 256).
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// CPU to run the packet source (and so the forwarding) on.
    #[arg(long, default_value_t = 0)]
    pub cpu: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Rules besides the matching one in the drop benchmark (random, non-matching).
    #[arg(long, default_value_t = 1000)]
    pub drop_rules: usize,
    /// Skip the drop benchmark (XDP classifier vs nftables).
    #[arg(long)]
    pub no_drop: bool,
    /// Only the drop benchmark (no forwarding cases, no full table).
    #[arg(long, conflicts_with = "no_drop")]
    pub drop_only: bool,
}

/// One measured case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Case {
    pub system: String,
    pub routes: usize,
    /// Median packets/s delivered at the sinks.
    pub pps: f64,
    /// Every run's packets/s.
    pub runs: Vec<f64>,
    /// Delivered / injected of the median run.
    pub delivered: f64,
    /// Share of the delivered frames that left through the first sink.
    pub split: f64,
}

/// One drop case: every injected frame matches a drop rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DropCase {
    pub system: String,
    /// Rules in the rule set (one of them matches).
    pub rules: usize,
    /// Median frames dropped per second, from the kernel's time per frame (robust to other
    /// tenants taking the CPU between batches).
    pub pps: f64,
    /// Median of injected frames / wall time of the run.
    pub pps_wall: f64,
    pub runs: Vec<f64>,
    /// Frames that still reached a sink in the median run (should be 0).
    pub leaked: u64,
}

/// BPF_PROG_TEST_RUN without live frames: the kernel runs the program `repeat` times on one frame
/// (the benchmark programs give it a new destination each time) and reports the mean ns per run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgCase {
    pub routes: usize,
    /// Per pass: ns/packet of `xdp_bench_forward4` (destination rewrite + the forwarder).
    pub whole_ns: Vec<f64>,
    /// Per pass: `xdp_bench_forward4` − `xdp_bench_pass4` (the rewrite alone): the forwarder's own cost.
    pub forwarder_ns: Vec<f64>,
}

/// The whole result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Results {
    pub machine: String,
    pub load: String,
    pub packets_per_run: u32,
    pub batch: u32,
    pub cases: Vec<Case>,
    pub drop: Vec<DropCase>,
    pub prog: Vec<ProgCase>,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SinkCounter {
    packets: u64,
    bytes: u64,
}
// SAFETY: plain old data, the layout of `struct sink_counter` in bpf/sink.bpf.c.
unsafe impl aya::Pod for SinkCounter {}

/// A loaded sink on one veth end (detached when dropped).
struct Sink {
    ebpf: aya::Ebpf,
}

impl Sink {
    fn attach(ns: &Netns, ifc: &str) -> Result<Sink> {
        ns.run_in(|| -> Result<Sink> {
            let mut ebpf = aya::Ebpf::load(fib_ebpf::SINK_OBJ).context("loading the sink")?;
            let p: &mut Xdp = ebpf
                .program_mut("xdp_sink")
                .context("xdp_sink")?
                .try_into()?;
            p.load()?;
            p.attach(ifc, XdpMode::Driver)
                .with_context(|| format!("attaching the sink to {}:{ifc}", ns.name()))?;
            Ok(Sink { ebpf })
        })?
    }

    fn packets(&self) -> Result<u64> {
        let m: PerCpuArray<_, SinkCounter> =
            PerCpuArray::try_from(self.ebpf.map("sink_count").context("sink_count")?)?;
        Ok(m.get(&0, 0)?.iter().map(|c| c.packets).sum())
    }
}

/// The bpffs instance of the forwarder, removed on drop.
struct PinGuard(PathBuf);
impl Drop for PinGuard {
    fn drop(&mut self) {
        crate::netns::remove_pin_dir(&self.0);
    }
}

fn mac_of(ns: &Netns, ifc: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&["-j", "link", "show", "dev", ifc])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let s = v[0]["address"].as_str().context("no MAC")?;
    let mut mac = [0u8; 6];
    for (i, part) in s.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16)?;
    }
    Ok(mac)
}

fn ifindex_of(ns: &Netns, ifc: &str) -> Result<u32> {
    let out = ns.ip(&["-j", "link", "show", "dev", ifc])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v[0]["ifindex"].as_u64().context("no ifindex")? as u32)
}

/// A 60-byte (64 on the wire) Ethernet/IPv4/UDP frame to `dmac`; the benchmark programs overwrite the
/// destination address, TTL and header checksum of every frame.
fn frame(dmac: [u8; 6], smac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&Ipv4Addr::new(10, 0, 1, 2).octets());
    ip[16..20].copy_from_slice(&Ipv4Addr::new(10, 100, 0, 1).octets());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&26u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(60, 0);
    f
}

/// The `test` member of `union bpf_attr` (BPF_PROG_TEST_RUN), up to `batch_size`.
#[repr(C, align(8))]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md` as the test-run context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Runs `prog` on `repeat` live frames injected at `ifindex` (must be called inside its namespace):
/// the wall time of the call, and the kernel's own mean time per frame (ns; its timer covers the
/// program and, for XDP_PASS, the stack's processing of the batch, and stops while the thread
/// yields the CPU between batches).
fn live_run(
    prog_fd: u32,
    data: &[u8],
    ifindex: u32,
    repeat: u32,
    batch: u32,
) -> Result<(Duration, u32)> {
    let ctx = XdpMd {
        data_end: data.len() as u32,
        ingress_ifindex: ifindex,
        ..Default::default()
    };
    let mut attr = TestRunAttr {
        prog_fd,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..Default::default()
    };
    let t = Instant::now();
    // SAFETY: `attr` is a valid BPF_PROG_TEST_RUN attribute; data/ctx outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    let elapsed = t.elapsed();
    if rc < 0 {
        bail!(
            "BPF_PROG_TEST_RUN (live frames): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: the kernel wrote the result into `attr` during the call.
    let duration = unsafe { std::ptr::read_volatile(&attr.duration) };
    Ok((elapsed, duration))
}

/// Mean ns per run of `prog_fd` over `repeat` runs on `data` (plain BPF_PROG_TEST_RUN, no live frames).
fn test_run_ns(prog_fd: u32, data: &[u8], repeat: u32) -> Result<f64> {
    let mut attr = TestRunAttr {
        prog_fd,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid BPF_PROG_TEST_RUN attribute; `data` outlives the call; no output buffers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    if rc < 0 {
        bail!("BPF_PROG_TEST_RUN: {}", std::io::Error::last_os_error());
    }
    Ok(f64::from(attr.duration))
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET on an index below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "sched_setaffinity({cpu}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The bench topology and the loaded forwarder.
struct Bed {
    // Drop order: programs and maps first, then pins, then namespaces.
    fwd: Forwarder,
    syncer: Syncer,
    sinks: [Sink; 2],
    _pins: PinGuard,
    dut: Netns,
    _src: Netns,
    _snk: [Netns; 2],
    s0: u32,
    frame: Vec<u8>,
}

const NH1: &str = "10.0.11.2";
const NH2: &str = "10.0.12.2";

impl Bed {
    fn build() -> Result<Bed> {
        fib_ebpf::bpffs::ensure_bpffs().context("bpffs")?;
        let src = Netns::new("fb-src")?;
        let dut = Netns::new("fb-dut")?;
        let snk = [Netns::new("fb-snk1")?, Netns::new("fb-snk2")?];
        veth(&src, "eth0", &dut, "s0")?;
        veth(&dut, "u1", &snk[0], "eth0")?;
        veth(&dut, "u2", &snk[1], "eth0")?;
        // Live frames live in a page pool that is recycled with its contents: a frame the kernel
        // forwarded comes back with the Ethernet header it was sent with (dmac = the sink's MAC), and
        // would then be dropped as not addressed to dut (PACKET_OTHERHOST). Giving both sinks s0's MAC
        // (they are on other segments) keeps every recycled frame addressed to dut.
        let s0_mac = mac_of(&dut, "s0")?;
        let s0_mac_str = s0_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        for n in &snk {
            n.ip(&["link", "set", "eth0", "address", &s0_mac_str])?;
        }
        for (ns, ifc, a) in [
            (&src, "eth0", "10.0.1.2/24"),
            (&dut, "s0", "10.0.1.1/24"),
            (&dut, "u1", "10.0.11.1/24"),
            (&snk[0], "eth0", "10.0.11.2/24"),
            (&dut, "u2", "10.0.12.1/24"),
            (&snk[1], "eth0", "10.0.12.2/24"),
        ] {
            addr(ns, ifc, a)?;
        }
        dut.sysctl("net.ipv4.ip_forward", "1")?;
        for k in ["all", "default", "s0", "u1", "u2"] {
            dut.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0")?;
        }
        let sinks = [
            Sink::attach(&snk[0], "eth0")?,
            Sink::attach(&snk[1], "eth0")?,
        ];
        // Resolve both sinks' addresses in dut before anything is measured.
        for nh in [NH1, NH2] {
            let _ = dut.exec("ping", &["-c", "1", "-W", "1", nh]);
        }
        let instance = dut.name().to_string();
        let pins = PinGuard(PathBuf::from("/sys/fs/bpf").join(&instance));
        crate::netns::register_pin_dir(&pins.0);
        let fwd = Forwarder::load_with(&LoadOptions {
            instance: Some(instance),
            bench: true,
            ..Default::default()
        })
        .context("loading the forwarder")?;
        let sync = FibSync::new(
            PinnedMaps::open(&pins.0).context("pinned maps")?,
            SyncConfig::default(),
        );
        let syncer = dut.run_in(|| -> Result<Syncer> {
            Ok(Syncer::new(sync, Resolver::new(ResolverConfig::default())?))
        })??;
        let frame = frame(s0_mac, mac_of(&src, "eth0")?);
        let s0 = ifindex_of(&dut, "s0")?;
        Ok(Bed {
            fwd,
            syncer,
            sinks,
            _pins: pins,
            dut,
            _src: src,
            _snk: snk,
            s0,
            frame,
        })
    }

    /// Installs `prefixes` (ECMP over both sinks) in the XDP maps and in the kernel, replacing what was
    /// there.
    fn install(&mut self, prefixes: &[Ipv4Net], previous: &[Ipv4Net]) -> Result<()> {
        let nhs = [(NH1.parse()?, 1), (NH2.parse()?, 1)];
        let mut batch: Vec<Route> = previous
            .iter()
            .map(|p| Route::withdraw(IpNet::V4(*p)))
            .collect();
        batch.extend(prefixes.iter().map(|p| Route::forward(IpNet::V4(*p), nhs)));
        let Bed { syncer, dut, .. } = self;
        dut.run_in(|| -> Result<()> {
            syncer.apply(&batch)?;
            let t = Instant::now();
            while [NH1, NH2].iter().any(|a| {
                syncer
                    .sync
                    .resolution(&a.parse().expect("literal"))
                    .is_none()
            }) {
                if t.elapsed() > Duration::from_secs(10) {
                    bail!("the sinks' addresses did not resolve in dut");
                }
                syncer.poll(Duration::from_millis(100))?;
            }
            Ok(())
        })??;
        // The kernel: one ECMP nexthop group, every prefix pointing at it (what FRR does with
        // nexthop objects; BIRD writes multipath routes, which is slower to install, not to forward).
        let mut script = String::new();
        if previous.is_empty() {
            script.push_str(&format!(
                "nexthop replace id 1 via {NH1} dev u1\nnexthop replace id 2 via {NH2} dev u2\nnexthop replace id 3 group 1/2\n"
            ));
        }
        for p in previous {
            script.push_str(&format!("route del {p}\n"));
        }
        for p in prefixes {
            script.push_str(&format!("route replace {p} nhid 3\n"));
        }
        let path = std::env::temp_dir().join(format!("fwd-bench-{}.batch", std::process::id()));
        std::fs::write(&path, script)?;
        let r = self
            .dut
            .ip(&["-batch", &path.display().to_string()])
            .context("installing the kernel routes");
        let _ = std::fs::remove_file(&path);
        r?;
        Ok(())
    }

    /// Fills the benchmark destination table (rows of BENCH_BATCH addresses the programs walk).
    fn destinations(&mut self, dests: &[u32]) -> Result<()> {
        let map = self.fwd.raw_map_mut("bench_dst4").context("bench_dst4")?;
        let mut arr: Array<&mut aya::maps::MapData, BenchRow4> = Array::try_from(map)?;
        for (i, chunk) in dests
            .chunks(BENCH_BATCH)
            .enumerate()
            .take(BENCH_ROWS as usize)
        {
            let mut row = BenchRow4 {
                addr: [0; BENCH_BATCH],
            };
            for (j, a) in chunk.iter().enumerate() {
                row.addr[j] = a.to_be();
            }
            arr.set(i as u32, row, 0)?;
        }
        Ok(())
    }

    /// `passes` alternating passes of forward4 and pass4 (`repeat` runs each) on the CPU of the live runs.
    fn prog_ns(&mut self, routes: usize, a: &FwdBenchArgs, passes: usize) -> Result<ProgCase> {
        let mut fd = |name: &str| -> Result<u32> {
            Ok(self
                .fwd
                .program_named(name)
                .with_context(|| format!("program {name}"))?
                .fd()
                .context("program not loaded")?
                .as_fd()
                .as_raw_fd() as u32)
        };
        let (fwd, pass) = (fd("xdp_bench_forward4")?, fd("xdp_bench_pass4")?);
        let (frame, cpu) = (self.frame.clone(), a.cpu);
        let repeat = a.packets.clamp(1, 1_000_000);
        let mut c = ProgCase {
            routes,
            whole_ns: Vec::new(),
            forwarder_ns: Vec::new(),
        };
        self.dut.run_in(|| -> Result<()> {
            pin_to_cpu(cpu)?;
            test_run_ns(fwd, &frame, repeat.min(100_000))?;
            for _ in 0..passes.max(1) {
                let w = test_run_ns(fwd, &frame, repeat)?;
                let p = test_run_ns(pass, &frame, repeat)?;
                c.whole_ns.push(w);
                c.forwarder_ns.push(w - p);
            }
            Ok(())
        })??;
        Ok(c)
    }

    fn delivered(&self) -> Result<(u64, u64)> {
        Ok((self.sinks[0].packets()?, self.sinks[1].packets()?))
    }

    /// Warms up, then `a.runs` live runs of `prog` (by name; its fd stays owned by `fwd`): per run the
    /// wall time and the frames each sink counted.
    fn live_runs(&mut self, prog: &str, a: &FwdBenchArgs) -> Result<Vec<(Duration, (u64, u64))>> {
        let p = self
            .fwd
            .program_named(prog)
            .with_context(|| format!("program {prog}"))?
            .fd()
            .context("program not loaded")?
            .as_fd()
            .as_raw_fd() as u32;
        let (frame, s0, packets, batch, cpu) =
            (self.frame.clone(), self.s0, a.packets, a.batch, a.cpu);
        // Warm-up: neighbours, caches, page pools.
        self.dut.run_in(|| -> Result<()> {
            pin_to_cpu(cpu)?;
            live_run(p, &frame, s0, packets.min(200_000), batch)?;
            Ok(())
        })??;
        let mut out = Vec::new();
        for _ in 0..a.runs.max(1) {
            let before = self.delivered()?;
            let wall = self.dut.run_in(|| -> Result<Duration> {
                pin_to_cpu(cpu)?;
                live_run(p, &frame, s0, packets, batch).map(|r| r.0)
            })??;
            // Frames queued to the sinks' NAPI are counted when it runs: settle briefly.
            std::thread::sleep(Duration::from_millis(50));
            let after = self.delivered()?;
            out.push((wall, (after.0 - before.0, after.1 - before.1)));
        }
        Ok(out)
    }

    /// One forwarding case: packets/s delivered at the sinks, median over the runs.
    fn measure(
        &mut self,
        prog: &str,
        a: &FwdBenchArgs,
        system: &str,
        routes: usize,
    ) -> Result<Case> {
        let out: Vec<(f64, (f64, f64))> = self
            .live_runs(prog, a)?
            .into_iter()
            .map(|(wall, d)| {
                let total = d.0 + d.1;
                let split = if total > 0 {
                    d.0 as f64 / total as f64
                } else {
                    0.0
                };
                (
                    total as f64 / wall.as_secs_f64(),
                    (total as f64 / a.packets as f64, split),
                )
            })
            .collect();
        let med = median_by_first(&out);
        Ok(Case {
            system: system.to_string(),
            routes,
            pps: med.0,
            runs: out.iter().map(|r| r.0).collect(),
            delivered: med.1.0,
            split: med.1.1,
        })
    }

    /// The drop cases of one rule set, runs interleaved (each program's run i before any run i+1,
    /// so a change of load on the shared machine hits all of them alike): per program, median
    /// frames/s by the kernel's time per frame, by wall time, and frames that reached a sink.
    fn measure_drops(
        &mut self,
        progs: &[(&str, &str)],
        a: &FwdBenchArgs,
        rules: usize,
    ) -> Result<Vec<DropCase>> {
        let mut fds = Vec::new();
        for (prog, _) in progs {
            let fd = self
                .fwd
                .program_named(prog)
                .with_context(|| format!("program {prog}"))?
                .fd()
                .context("program not loaded")?
                .as_fd()
                .as_raw_fd() as u32;
            fds.push(fd);
        }
        let (frame, s0, packets, batch, cpu) =
            (self.frame.clone(), self.s0, a.packets, a.batch, a.cpu);
        // Warm-up: neighbours, caches, page pools.
        for &p in &fds {
            self.dut.run_in(|| -> Result<()> {
                pin_to_cpu(cpu)?;
                live_run(p, &frame, s0, packets.min(200_000), batch)?;
                Ok(())
            })??;
        }
        let mut runs: Vec<Vec<(f64, f64, u64)>> = vec![Vec::new(); fds.len()];
        for _ in 0..a.runs.max(1) {
            for (i, &p) in fds.iter().enumerate() {
                let before = self.delivered()?;
                let (wall, ns) = self.dut.run_in(|| -> Result<(Duration, u32)> {
                    pin_to_cpu(cpu)?;
                    live_run(p, &frame, s0, packets, batch)
                })??;
                std::thread::sleep(Duration::from_millis(50));
                let after = self.delivered()?;
                let leaked = (after.0 - before.0) + (after.1 - before.1);
                runs[i].push((
                    1e9 / f64::from(ns.max(1)),
                    packets as f64 / wall.as_secs_f64(),
                    leaked,
                ));
            }
        }
        Ok(progs
            .iter()
            .zip(runs)
            .map(|((_, system), r)| {
                let by_kernel: Vec<(f64, u64)> = r.iter().map(|x| (x.0, x.2)).collect();
                let med = median_by_first(&by_kernel);
                let wall: Vec<(f64, ())> = r.iter().map(|x| (x.1, ())).collect();
                DropCase {
                    system: system.to_string(),
                    rules,
                    pps: med.0,
                    pps_wall: median_by_first(&wall).0,
                    runs: r.iter().map(|x| x.0).collect(),
                    leaked: med.1,
                }
            })
            .collect())
    }
}

/// The run whose first figure is the median.
fn median_by_first<T: Copy>(runs: &[(f64, T)]) -> (f64, T) {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
    sorted[sorted.len() / 2]
}

/// One background rule: destination prefix, protocol (6, 17 or 1) and port (TCP/UDP).
#[derive(Debug, Clone, Copy)]
struct BgRule {
    net: Ipv4Net,
    proto: u8,
    port: u16,
}

/// `n` random rules that never match the benchmark's frames (UDP to port 9): TCP or ICMP rules,
/// or UDP rules on other ports, over random destination prefixes.
fn background_rules(n: usize, rng: &mut Rng) -> Vec<BgRule> {
    (0..n)
        .map(|i| {
            let a = Ipv4Addr::from(rng.next() as u32 & 0xffff_ff00);
            let len = 16 + (rng.next() % 17) as u8;
            let net = Ipv4Net::new(a, len).expect("length <= 32").trunc();
            let port = 1000 + (rng.next() % 60000) as u16;
            let proto = [6u8, 17, 1][i % 3];
            BgRule { net, proto, port }
        })
        .collect()
}

/// The classifier's form of the drop rules: the background rules, then `udp dport 9 drop` (last).
fn drop_ruleset(bg: &[BgRule]) -> fib_ebpf::acl::RuleSet {
    use fib_ebpf::acl::{Action, Match, Prefix, Rule, RuleSet};
    let mut rules: Vec<Rule> = bg
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let m = Match {
                dst: Some(Prefix::V4(r.net.network(), r.net.prefix_len())),
                protocol: Some(vec![r.proto..=r.proto]),
                dst_port: (r.proto != 1).then(|| vec![r.port..=r.port]),
                ..Match::default()
            };
            Rule::new(i as u64 + 2, m, Action::Drop)
        })
        .collect();
    let hit = Match {
        protocol: Some(vec![17..=17]),
        dst_port: Some(vec![9..=9]),
        ..Match::default()
    };
    rules.push(Rule::new(1, hit, Action::Drop));
    RuleSet::new(rules)
}

/// The same rules for nftables, written the way an operator would for many rules: one set lookup
/// per rule shape (`ip daddr . th dport` concatenations with intervals, pipapo in the kernel;
/// auto-merged prefixes for ICMP) instead of a linear chain, then the matching rule. Every rule
/// drops, so the order among the background rules does not change the outcome.
fn drop_nft(bg: &[BgRule]) -> String {
    let elems = |proto: u8| -> Vec<String> {
        bg.iter()
            .filter(|r| r.proto == proto)
            .map(|r| {
                if proto == 1 {
                    r.net.to_string()
                } else {
                    format!("{} . {}", r.net, r.port)
                }
            })
            .collect()
    };
    let mut nft = String::from("table netdev fwdbench {\n");
    let mut rules = Vec::new();
    for (proto, name, ty, rule) in [
        (
            6u8,
            "bg_tcp",
            "ipv4_addr . inet_service",
            "ip daddr . tcp dport @bg_tcp drop",
        ),
        (
            17,
            "bg_udp",
            "ipv4_addr . inet_service",
            "ip daddr . udp dport @bg_udp drop",
        ),
        (
            1,
            "bg_icmp",
            "ipv4_addr",
            "ip protocol icmp ip daddr @bg_icmp drop",
        ),
    ] {
        let e = elems(proto);
        if e.is_empty() {
            continue;
        }
        let merge = if proto == 1 { " auto-merge;" } else { "" };
        nft.push_str(&format!(
            "  set {name} {{ type {ty}; flags interval;{merge} elements = {{ {} }} }}\n",
            e.join(", ")
        ));
        rules.push(rule);
    }
    rules.push("udp dport 9 drop");
    nft.push_str("  chain ingress {\n    type filter hook ingress device \"s0\" priority 0;\n");
    for r in rules {
        nft.push_str(&format!("    {r}\n"));
    }
    nft.push_str("  }\n}\n");
    nft
}

/// The drop benchmark: XDP classifier vs nftables at the netdev ingress hook (the earliest place
/// nftables can drop), same rules, every frame matching the last one. Both use the same live-frame
/// source and per-frame rewrite; a first case measures that source alone (rewrite, then XDP_DROP),
/// the ceiling of any XDP figure here.
fn drop_bench(bed: &mut Bed, a: &FwdBenchArgs) -> Result<Vec<DropCase>> {
    let mut rng = Rng(0xd0d0_cafe);
    let mut cases = Vec::new();
    for extra in [0, a.drop_rules] {
        let bg = background_rules(extra, &mut rng);
        let set = drop_ruleset(&bg);
        let n = set.rules.len();
        // Both rule sets at once: the classifier runs only in xdp_bench_forward4, nftables sees only
        // the frames xdp_bench_pass4 passes.
        let mut cls = bed.fwd.classifier().context("classifier maps")?;
        cls.install(&set).context("installing the drop rules")?;
        let path = std::env::temp_dir().join(format!("fwd-bench-{}.nft", std::process::id()));
        std::fs::write(&path, drop_nft(&bg))?;
        let r = bed.dut.exec("nft", &["-f", &path.display().to_string()]);
        let _ = std::fs::remove_file(&path);
        r.context("loading the nftables rules (apt-get install nftables)")?;
        eprintln!("fwd-bench: drop, {n} rules: source alone, XDP classifier, nftables ingress");
        let c = bed.measure_drops(
            &[
                ("xdp_bench_drop", HARNESS_FLOOR),
                ("xdp_bench_drop4", SOURCE_CEILING),
                ("xdp_bench_forward4", "ribd XDP classifier"),
                ("xdp_bench_pass4", "nftables (netdev ingress)"),
            ],
            a,
            n,
        );
        cls.clear()?;
        bed.dut
            .exec("nft", &["delete", "table", "netdev", "fwdbench"])?;
        cases.extend(c?);
    }
    Ok(cases)
}

/// The drop case of the packet source alone (no rules, no nftables).
pub const SOURCE_CEILING: &str = "source alone (XDP_DROP)";
/// The live-frame harness alone: XDP_DROP without the per-frame rewrite.
pub const HARNESS_FLOOR: &str = "harness alone (no rewrite)";

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {} CPUs, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs the forwarding benchmark and prints the table.
pub fn run(a: FwdBenchArgs) -> Result<Results> {
    if a.batch == 0 || a.batch > 256 {
        bail!("--batch must be 1..=256 (the kernel's limit for live frames)");
    }
    let table: Vec<Ipv4Net> =
        crate::feed::load_ipasn(std::path::Path::new(crate::feed::IPASN), a.prefixes)?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
    // Destinations: a random address inside a random prefix of the table, the same set in every case.
    let mut rng = Rng(0x5eed_f00d);
    let dests: Vec<u32> = (0..BENCH_BATCH * BENCH_ROWS as usize)
        .map(|_| {
            let p = table[(rng.next() % table.len() as u64) as usize];
            let host = if p.prefix_len() >= 32 {
                0
            } else {
                (rng.next() as u32) & (u32::MAX >> p.prefix_len())
            };
            u32::from(p.network()) | host
        })
        .collect();
    let mut bed = Bed::build()?;
    bed.destinations(&dests)?;
    let mut cases = Vec::new();
    let default: Vec<Ipv4Net> = vec!["0.0.0.0/0".parse()?];
    if a.drop_only {
        bed.install(&default, &[])?;
        let res = Results {
            machine: machine(),
            load: load(),
            packets_per_run: a.packets,
            batch: a.batch,
            cases,
            drop: drop_bench(&mut bed, &a)?,
            prog: Vec::new(),
        };
        print(&res);
        if let Some(path) = &a.json {
            std::fs::write(path, serde_json::to_vec_pretty(&res)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(res);
    }
    eprintln!("fwd-bench: 1 route (default, ECMP over 2 next hops)");
    bed.install(&default, &[])?;
    cases.push(bed.measure("xdp_bench_forward4", &a, "ribd XDP forwarder", 1)?);
    cases.push(bed.measure("xdp_bench_pass4", &a, "Linux kernel forwarding", 1)?);
    let mut prog = vec![bed.prog_ns(1, &a, a.runs)?];
    eprintln!(
        "fwd-bench: full table, {} prefixes (installing)",
        table.len()
    );
    bed.install(&table, &default)?;
    cases.push(bed.measure("xdp_bench_forward4", &a, "ribd XDP forwarder", table.len())?);
    cases.push(bed.measure(
        "xdp_bench_pass4",
        &a,
        "Linux kernel forwarding",
        table.len(),
    )?);
    prog.push(bed.prog_ns(table.len(), &a, a.runs)?);
    let drops = if a.no_drop {
        Vec::new()
    } else {
        drop_bench(&mut bed, &a)?
    };
    let res = Results {
        machine: machine(),
        load: load(),
        packets_per_run: a.packets,
        batch: a.batch,
        cases,
        drop: drops,
        prog,
    };
    print(&res);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&res)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(bed);
    Ok(res)
}

fn print_drop(r: &Results) {
    if r.drop.is_empty() {
        return;
    }
    println!();
    println!("drop: every frame matches a drop rule (the last of the set)");
    println!(
        "(frames/s from the kernel's ns per frame, which counts the live-frame harness and the \
         per-frame rewrite in both systems; the second line per size takes that shared source out)"
    );
    println!(
        "{:<28} {:>9} {:>14} {:>14} {:>10}",
        "system", "rules", "dropped/s", "by wall time", "leaked"
    );
    for c in &r.drop {
        println!(
            "{:<28} {:>9} {:>14.0} {:>14.0} {:>10}",
            c.system, c.rules, c.pps, c.pps_wall, c.leaked
        );
    }
    let mut sizes: Vec<usize> = r.drop.iter().map(|c| c.rules).collect();
    sizes.dedup();
    for n in sizes {
        let get = |s: &str| {
            r.drop
                .iter()
                .find(|c| c.rules == n && c.system.starts_with(s))
                .map(|c| c.pps)
        };
        if let (Some(x), Some(k)) = (get("ribd"), get("nftables")) {
            let ceiling = get(SOURCE_CEILING).unwrap_or(0.0);
            println!(
                "{n:>9} rules: XDP / nftables = {:.2}x (source alone / nftables = {:.2}x)",
                x / k.max(1.0),
                ceiling / k.max(1.0)
            );
            // The same medians as ns per frame: what each system adds to the shared source (the
            // harness and the per-frame rewrite, paid by both alike).
            let ns = |pps: f64| 1e9 / pps.max(1.0);
            if let (Some(h), Some(src)) = (get(HARNESS_FLOOR), get(SOURCE_CEILING)) {
                let (xa, ka) = (ns(x) - ns(src), ns(k) - ns(src));
                println!(
                    "{:>9}        per frame above the shared source (harness {:.0} ns + rewrite {:.0} ns): \
                     XDP classifier {:.0} ns, nftables {:.0} ns = {:.2}x",
                    "",
                    ns(h),
                    ns(src) - ns(h),
                    xa,
                    ka,
                    ka / xa.max(0.1)
                );
            }
        }
    }
}

fn print(r: &Results) {
    println!(
        "forwarding, 64-byte UDP frames, many flows, live frames injected at dut's ingress ({}; load {})",
        r.machine, r.load
    );
    println!(
        "{:<28} {:>9} {:>14} {:>10} {:>12}",
        "system", "routes", "packets/s", "delivered", "via sink 1"
    );
    for c in &r.cases {
        println!(
            "{:<28} {:>9} {:>14.0} {:>9.1}% {:>11.1}%",
            c.system,
            c.routes,
            c.pps,
            c.delivered * 100.0,
            c.split * 100.0
        );
    }
    for routes in [1usize, r.cases.iter().map(|c| c.routes).max().unwrap_or(1)] {
        let get = |s: &str| {
            r.cases
                .iter()
                .find(|c| c.routes == routes && c.system.starts_with(s))
                .map(|c| c.pps)
        };
        if let (Some(x), Some(k)) = (get("ribd"), get("Linux")) {
            println!("{routes:>9} routes: XDP / kernel = {:.2}x", x / k.max(1.0));
        }
    }
    if !r.prog.is_empty() {
        println!();
        println!("BPF_PROG_TEST_RUN (no live frames), ns/packet, median of the passes");
        for c in &r.prog {
            println!(
                "{:>9} routes: whole {:>7.1} ns, forwarder alone {:>7.1} ns",
                c.routes,
                median(&c.whole_ns),
                median(&c.forwarder_ns)
            );
        }
    }
    print_drop(r);
}

fn median(v: &[f64]) -> f64 {
    crate::bench::median(v).unwrap_or(f64::NAN)
}
