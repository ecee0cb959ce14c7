//! Ingest: N feeders announce the table to the system under test; time from the first Established to
//! (a) every path in the RIB and (b) every prefix in the FIB/dataplane; peak and steady RSS.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::feeder::{FeederArgs, FeederProc};
use super::sut::{Sut, SutKind, SutSpec};
use super::table::{DUT_AS, FEED_AS, FeedSet, dut_v4, dut_v6, feeder_v4, feeder_v6};
use super::{BenchArgs, RunResults, mono_ns, secs};
use crate::netns::{Netns, addr, veth};

/// The two namespaces: `feed` (feeders on eK) and `dut` (system under test on fK).
pub struct Bed {
    pub dut: Netns,
    pub feed: Netns,
}

impl Bed {
    pub fn new(feeders: usize) -> Result<Bed> {
        let dut = Netns::new("bdut")?;
        let feed = Netns::new("bfeed")?;
        for k in 0..feeders {
            let (e, f) = (format!("e{k}"), format!("f{k}"));
            veth(&feed, &e, &dut, &f)?;
            addr(&feed, &e, &format!("{}/24", feeder_v4(k)))?;
            addr(&dut, &f, &format!("{}/24", dut_v4(k)))?;
            addr(&feed, &e, &format!("{}/64", feeder_v6(k)))?;
            addr(&dut, &f, &format!("{}/64", dut_v6(k)))?;
        }
        Ok(Bed { dut, feed })
    }
}

/// Starts feeder `k` (announcing `prepend` extra copies of its AS) in the feed namespace.
pub fn start_feeder(
    bed: &Bed,
    feed: &FeedSet,
    sut: &Sut,
    k: usize,
    prepend: usize,
    hold_time: u16,
) -> Result<FeederProc> {
    let (stream, _) = feed.stream(k, prepend)?;
    let args = FeederArgs {
        stream,
        local: feeder_v4(k).into(),
        peer: dut_v4(k).into(),
        local_as: FEED_AS,
        peer_as: DUT_AS,
        hold_time,
        v6: feed.v6 > 0,
    };
    FeederProc::spawn(
        &format!("feeder {k}"),
        bed.feed.name(),
        &args,
        sut.dir().join(format!("feeder-{k}.log")),
    )
}

/// What one ingest run measured.
#[derive(Debug, Default)]
pub struct IngestRun {
    pub rib_secs: f64,
    pub fib_secs: Option<f64>,
    pub peak_rss_kib: u64,
    pub steady_rss_kib: u64,
    pub base_rss_kib: u64,
    pub steady_anon_kib: u64,
    pub base_anon_kib: u64,
    pub note: String,
    /// CPU time of the system's processes by thread from the feeders' start to the load's end.
    pub cpu: String,
}

/// Polls RIB and FIB counts until both are complete.
pub fn wait_loaded(
    sut: &Sut,
    t0: u64,
    rib_target: u64,
    fib_target: u64,
    poll: Duration,
    timeout: Duration,
) -> Result<(f64, Option<f64>, String)> {
    let deadline = mono_ns() + timeout.as_nanos() as u64;
    let (mut rib_done, mut fib_done) = (None, None);
    let (mut last_rib, mut rib_changed) = (0u64, mono_ns());
    let (mut last_fib, mut fib_changed) = (0u64, mono_ns());
    let mut note = String::new();
    let settle = 3_000_000_000u64;
    loop {
        // Each count is stamped when its answer arrived: a busy daemon may answer late.
        if rib_done.is_none()
            && let Ok(c) = sut.rib_paths()
        {
            let now = mono_ns();
            if c != last_rib {
                (last_rib, rib_changed) = (c, now);
            }
            if c >= rib_target {
                rib_done = Some(now);
            } else if c * 1000 >= rib_target * 999 && now - rib_changed > settle {
                note.push_str(&format!("RIB settled at {c} of {rib_target} paths; "));
                rib_done = Some(rib_changed);
            }
        }
        if fib_done.is_none()
            && sut.kind.has_fib()
            && let Ok(Some(c)) = sut.fib_prefixes()
        {
            let now = mono_ns();
            if c != last_fib {
                (last_fib, fib_changed) = (c, now);
            }
            if c >= fib_target {
                fib_done = Some(now);
            } else if c * 1000 >= fib_target * 999 && now - fib_changed > settle {
                note.push_str(&format!("FIB settled at {c} of {fib_target} prefixes; "));
                fib_done = Some(fib_changed);
            }
        }
        if rib_done.is_some() && (fib_done.is_some() || !sut.kind.has_fib()) {
            break;
        }
        if mono_ns() > deadline {
            bail!(
                "{}: after {timeout:?} RIB {last_rib}/{rib_target} paths, FIB {last_fib}/{fib_target} prefixes\n{}",
                sut.kind.name(),
                sut.diagnostics()
            );
        }
        std::thread::sleep(poll);
    }
    Ok((
        secs(t0, rib_done.unwrap_or(t0)),
        fib_done.map(|t| secs(t0, t)),
        note,
    ))
}

fn one_run(a: &BenchArgs, feed: &FeedSet, kind: SutKind, feeders: usize) -> Result<IngestRun> {
    // Every feeder's stream is encoded (and cached) before any feeder starts: encoded on demand in
    // `start_feeder`, feeder k started only once the streams of feeders 0..k were encoded (2-3 s each
    // for the scaled table here), inside the timed window of the first system of the first repetition.
    for k in 0..feeders {
        feed.stream(k, 0)?;
    }
    let bed = Bed::new(feeders)?;
    let spec = SutSpec {
        feeders,
        hold_time: 90,
        v6: feed.v6 > 0,
    };
    let sut = Sut::start(kind, bed.dut.name(), &spec)?;
    std::thread::sleep(Duration::from_millis(300));
    let base = sut.rss()?;
    let cpu0: Vec<(i32, super::CpuTimes)> = sut
        .pids()
        .into_iter()
        .map(|p| (p, super::CpuTimes::of(p)))
        .collect();
    let mut procs = Vec::new();
    for k in 0..feeders {
        procs.push(start_feeder(&bed, feed, &sut, k, 0, 90)?);
    }
    let (mut t0, mut t_last) = (u64::MAX, 0);
    for p in &mut procs {
        let t = p
            .wait("established", Duration::from_secs(60))
            .with_context(|| sut.diagnostics())?;
        t0 = t0.min(t);
        t_last = t_last.max(t);
    }
    let n = feed.prefixes() as u64;
    let (rib, fib, mut note) = wait_loaded(
        &sut,
        t0,
        n * feeders as u64,
        n,
        Duration::from_millis(a.poll_ms),
        Duration::from_secs(1200),
    )?;
    if feeders > 1 {
        note.push_str(&format!("sessions up within {:.2} s; ", secs(t0, t_last)));
    }
    // Which thread the load kept busy, and how long it waited for a CPU (other load on the box).
    let cpu: Vec<String> = cpu0
        .iter()
        .map(|(p, c0)| {
            let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            format!(
                "{} CPU: {}",
                name.trim(),
                super::CpuTimes::of(*p).since(*p, c0)
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let steady = sut.rss()?;
    drop(procs);
    Ok(IngestRun {
        cpu: cpu.join("; "),
        rib_secs: rib,
        fib_secs: fib,
        peak_rss_kib: steady.hwm_kib,
        steady_rss_kib: steady.rss_kib,
        base_rss_kib: base.rss_kib,
        steady_anon_kib: steady.anon_kib,
        base_anon_kib: base.anon_kib,
        note,
    })
}

pub fn run(
    a: &BenchArgs,
    feed: &FeedSet,
    systems: &[SutKind],
    res: &mut RunResults,
    save: &dyn Fn(&RunResults) -> Result<()>,
) -> Result<()> {
    for &feeders in &a.feeders {
        run_case(a, feed, systems, feeders.max(1), res, save)?;
    }
    Ok(())
}

fn run_case(
    a: &BenchArgs,
    feed: &FeedSet,
    systems: &[SutKind],
    feeders: usize,
    res: &mut RunResults,
    save: &dyn Fn(&RunResults) -> Result<()>,
) -> Result<()> {
    let case = format!(
        "{}, {feeders} feeder{}",
        feed.label,
        if feeders == 1 { "" } else { "s" }
    );
    println!("\n== ingest: {case} ==");
    let n = feed.prefixes() as f64;
    let paths = n * feeders as f64;
    for rep in 0..a.repeat {
        for &kind in systems {
            let sys = kind.name();
            if !super::allowed(a, "ingest", &case, kind, res) {
                continue;
            }
            let r = match one_run(a, feed, kind, feeders) {
                Ok(r) => r,
                Err(e) => {
                    println!("  {sys} rep {}: FAILED: {e:#}", rep + 1);
                    res.notes
                        .push(format!("ingest {case} {sys} rep {}: {e:#}", rep + 1));
                    continue;
                }
            };
            let mib = |k: u64| k as f64 / 1024.0;
            let per_prefix =
                (r.steady_rss_kib.saturating_sub(r.base_rss_kib)) as f64 * 1024.0 / paths;
            let per_prefix_anon =
                (r.steady_anon_kib.saturating_sub(r.base_anon_kib)) as f64 * 1024.0 / paths;
            println!(
                "  {sys:7} rep {}: RIB {:7.3} s  FIB {}  peak RSS {:7.1} MiB  steady {:7.1} MiB  {:6.0} B/path (anon {:5.0})  [{}] {}",
                rep + 1,
                r.rib_secs,
                r.fib_secs
                    .map(|f| format!("{f:7.3} s"))
                    .unwrap_or_else(|| "      - ".into()),
                mib(r.peak_rss_kib),
                mib(r.steady_rss_kib),
                per_prefix,
                per_prefix_anon,
                super::uptime(),
                r.note
            );
            println!("          {}", r.cpu);
            let key = |m: &'static str, u: &'static str| ("ingest", case.as_str(), sys, m, u);
            res.push(
                key("rib_secs", "s"),
                r.rib_secs,
                &format!("{}{}", r.note, r.cpu),
            );
            if let Some(f) = r.fib_secs {
                res.push(key("fib_secs", "s"), f, &r.note);
            }
            res.push(key("peak_rss_mib", "MiB"), mib(r.peak_rss_kib), "");
            res.push(key("steady_rss_mib", "MiB"), mib(r.steady_rss_kib), "");
            res.push(key("bytes_per_path", "B"), per_prefix, "");
            res.push(key("anon_bytes_per_path", "B"), per_prefix_anon, "");
            save(res)?;
        }
    }
    super::report::print_ratios(res, "ingest", &case);
    Ok(())
}
