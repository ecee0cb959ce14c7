//! The daemon's ingest path without sockets: the octets `testbed bench` feeds (the real 512,621-prefix
//! IPv4 table from `testbed::tablegen`, UPDATEs sharing attribute sets, End-of-RIB) through the stages
//! the daemon runs, each timed on its own and then chained:
//!
//! ```text
//!   octets ─frame + decode (session reader)─► batches of ≤ 1024 UPDATEs
//!          ─Inbound::updates (import: attributes, checks, policy "accept all"; RIB)─► FIB deltas
//!          ─to_routes─► fib-sync (root: a fresh pinned instance; incremental per batch, or one bulk batch)
//! ```
//!
//! Prints median and min over `INGEST_RUNS` (default 5) with the load average; asserts nothing about
//! time. `INGEST_DATAPLANE=0` skips the fib-sync stages (they need root and bpffs).
//!
//!   cargo bench -p ribd --bench ingest

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bgp::wire::{Context, Message, Update};
use fib_sync::fib_ebpf::{Engine4, Forwarder, LoadOptions};
use fib_sync::{FibSync, NhL2, PinnedMaps, SyncConfig};
use ribd::daemon::dataplane::{fib_routes, to_routes};
use ribd::inbound::Inbound;
use ribd::rib::{FibDelta, Rib};
use testbed::bench::table::{FEED_AS, encode};
use testbed::tablegen;

mod common;

/// The daemon's allocator (see `ribd/src/main.rs`), so the stages are timed as the daemon runs them.
#[global_allocator]
static ALLOC: ribd::alloc::Mimalloc = ribd::alloc::Mimalloc;

const CONFIG: &str = r#"
router-id = "10.255.0.1"
local-as = 4200000000

[rib.ipv4]
max-paths-ebgp = 8

[[policy.ALL.term]]
name = "all"
action = "accept"

[peer.f0]
address = "10.0.0.2"
remote-as = 65001
import = ["ALL"]
"#;

const NH: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds of the whole process (the bulk load uses helper threads).
fn cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Wall and CPU time of `f`.
struct Timer(Instant, f64);
impl Timer {
    fn start() -> Timer {
        Timer(Instant::now(), cpu())
    }
    fn stop(self, wall: &mut Vec<f64>, cpus: &mut Vec<f64>) {
        wall.push(self.0.elapsed().as_secs_f64());
        cpus.push(cpu() - self.1);
    }
}

fn min_med(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

/// Splits the octets into UPDATE batches the way the session reader does (≤ 1024 per batch).
fn decode_all(octets: &[u8], ctx: &Context) -> Vec<Vec<Update>> {
    let mut out = Vec::new();
    let mut batch = Vec::with_capacity(1024);
    let mut i = 0;
    while let Ok(Some(len)) = bgp::wire::frame(&octets[i..], ctx.max_message_len) {
        match Message::decode(&octets[i..i + len], ctx) {
            Ok(Message::Update(u)) => batch.push(u),
            other => panic!("unexpected message: {other:?}"),
        }
        if batch.len() == 1024 {
            out.push(std::mem::replace(&mut batch, Vec::with_capacity(1024)));
        }
        i += len;
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

struct Loaded {
    rib: Rib,
    inb: Inbound,
}

fn new_rib(loaded: &ribd::config::Loaded) -> Loaded {
    let nb = &loaded.neighbors[0];
    let mut rib = Rib::new(loaded.config.rib.clone());
    rib.set_track_best(true);
    let inb = common::inbound_for(&mut rib, loaded, nb);
    Loaded { rib, inb }
}

/// Import of every batch; after each one the FIB deltas are taken (and handed to `sink`), as the
/// daemon's core does after every drained batch of events.
fn import_all(
    loaded: &ribd::config::Loaded,
    batches: &[Vec<Update>],
    mut sink: impl FnMut(Vec<FibDelta>),
) -> Loaded {
    let nb = &loaded.neighbors[0];
    let mut l = new_rib(loaded);
    let now = Instant::now();
    for b in batches {
        l.inb.updates(now, &mut l.rib, nb, b);
        let d = l.rib.take_fib_deltas();
        let _ = l.rib.take_best_changes();
        sink(d);
    }
    l
}

struct Pins(std::path::PathBuf, Option<Forwarder>);
impl Pins {
    fn new(tag: &str) -> Option<Pins> {
        let name = format!("ingestbench{}-{tag}", std::process::id());
        let fwd = Forwarder::load_with(&LoadOptions {
            instance: Some(name.clone()),
            engine4: Engine4::Dir24,
            ..Default::default()
        });
        match fwd {
            Ok(f) => Some(Pins(
                std::path::Path::new("/sys/fs/bpf").join(name),
                Some(f),
            )),
            Err(e) => {
                eprintln!("dataplane stages skipped (root and bpffs needed): {e:#}");
                None
            }
        }
    }
    fn sync(&self) -> FibSync {
        let mut s = FibSync::new(PinnedMaps::open(&self.0).unwrap(), SyncConfig::default());
        let l2 = NhL2 {
            ifindex: 1,
            smac: [2, 0, 0, 0, 0, 1],
            dmac: [2, 0, 0, 0, 0, 2],
            vlan: None,
        };
        s.set_nexthops(&[(IpAddr::V4(NH), Some(l2))]).unwrap();
        s
    }
}
impl Drop for Pins {
    fn drop(&mut self) {
        self.1 = None;
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let runs: usize = std::env::var("INGEST_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dataplane = std::env::var("INGEST_DATAPLANE").map_or(true, |v| v != "0");
    let t = Instant::now();
    let table = tablegen::generate(&tablegen::Config {
        v4_count: 512_621,
        v6_count: 0,
        peer_as: Some(FEED_AS),
        ..tablegen::Config::default()
    })
    .expect("table");
    let octets = encode(&table, NH, Ipv6Addr::LOCALHOST, 0).expect("encode");
    let loaded = ribd::config::parse(CONFIG, "ingest.toml").expect("config");
    let ctx = Context::four_octet();
    let batches = decode_all(&octets, &ctx);
    let updates: usize = batches.iter().map(Vec::len).sum();
    let prefixes: usize = batches.iter().flatten().map(|u| u.nlri.len()).sum();
    println!(
        "ingest: {prefixes} prefixes in {updates} UPDATEs, {} octets (table built in {:.1} s); {runs} runs; load average {}",
        octets.len(),
        t.elapsed().as_secs_f64(),
        load_avg()
    );
    let report = |name: &str, (w, c): &mut (Vec<f64>, Vec<f64>)| {
        let (wmin, wmed) = min_med(w);
        let (cmin, cmed) = min_med(c);
        println!(
            "  {name:<42} wall {:>7.1} ms (min {:>7.1})  CPU {:>7.1} ms (min {:>7.1}) = {:>5.2} M prefixes/CPU-s",
            wmed * 1e3,
            wmin * 1e3,
            cmed * 1e3,
            cmin * 1e3,
            prefixes as f64 / cmed / 1e6,
        );
    };
    let new = || (Vec::new(), Vec::new());

    let mut v = new();
    for _ in 0..runs {
        let t = Timer::start();
        let b = decode_all(&octets, &ctx);
        t.stop(&mut v.0, &mut v.1);
        drop(b);
    }
    report("decode (frame + Message::decode)", &mut v);

    let mut v = new();
    for _ in 0..runs {
        let t = Timer::start();
        let l = import_all(&loaded, &batches, drop);
        t.stop(&mut v.0, &mut v.1);
        assert_eq!(l.rib.ipv4().len(), prefixes);
    }
    report("import + RIB (deltas taken per batch)", &mut v);

    let mut v = new();
    for _ in 0..runs {
        let t = Timer::start();
        let mut n = 0;
        let l = import_all(&loaded, &batches, |d| n += to_routes(&d).len());
        t.stop(&mut v.0, &mut v.1);
        assert_eq!(n, prefixes);
        drop(l);
    }
    report("import + RIB + to_routes per batch", &mut v);

    let mut v = new();
    for _ in 0..runs {
        let l = import_all(&loaded, &batches, drop);
        let t = Timer::start();
        let fib = fib_routes(&l.rib);
        t.stop(&mut v.0, &mut v.1);
        assert_eq!(fib.len(), prefixes);
    }
    report("whole FIB from the RIB (fib_routes)", &mut v);

    if !dataplane {
        return;
    }
    let Some(pins) = Pins::new("a") else { return };
    let mut v = new();
    let mut vb = new();
    let mut vh = new();
    for _ in 0..runs.min(3) {
        // Each delta batch written as it comes (what the daemon did before the initial-load hold).
        let mut sync = pins.sync();
        let t = Timer::start();
        let l = import_all(&loaded, &batches, |d| {
            sync.apply(&to_routes(&d)).expect("apply");
        });
        t.stop(&mut v.0, &mut v.1);
        assert_eq!(sync.len(), prefixes);
        drop(sync);
        // The finished table as one batch into fresh maps (fib-sync's bulk path), from the RIB.
        let pins_b = Pins::new("b").expect("second instance");
        let mut sync = pins_b.sync();
        let t = Timer::start();
        sync.apply(&fib_routes(&l.rib)).expect("bulk apply");
        sync.settle().expect("settle");
        t.stop(&mut vb.0, &mut vb.1);
        assert_eq!(sync.len(), prefixes);
        drop((sync, pins_b, l));
        // The daemon's initial load: deltas held while the table arrives, then one bulk write.
        let pins_h = Pins::new("h").expect("third instance");
        let mut sync = pins_h.sync();
        let t = Timer::start();
        let mut held = Vec::new();
        let l = import_all(&loaded, &batches, |d| held.extend(d));
        sync.apply(&to_routes(&held)).expect("bulk apply");
        sync.settle().expect("settle");
        t.stop(&mut vh.0, &mut vh.1);
        assert_eq!(sync.len(), prefixes);
        drop(l);
    }
    report("import + RIB + fib-sync per batch", &mut v);
    report("whole FIB + fib-sync bulk (after the RIB)", &mut vb);
    report("import + RIB, held deltas + fib-sync bulk", &mut vh);
}
