//! Failover: two feeders announce the table (best + backup: the second one's paths one AS longer; or
//! ECMP: equal paths), one of them fails, and sampled lookups through the dataplane say when no flow
//! uses the dead upstream any more and when every flow uses the survivor.
//!
//! Failures of feeder 0 and where the clock starts:
//! - `notification`: it sends Cease (stamped by the feeder as it queues the NOTIFICATION);
//! - `frozen`: SIGSTOP; the clock starts when the system under test's Hold Timer Expired NOTIFICATION
//!   passes the feeder's interface (expiry detection), with hold time `--hold-time`;
//! - `kill`: SO_LINGER 0 on its sockets, then SIGKILL (the kernel sends a TCP RST);
//! - `linkdown`: its end of the veth goes down (the dut's end loses carrier).

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::ingest::{Bed, start_feeder, wait_loaded};
use super::probe::{Counts, KernelProbe, NotificationSniffer, Probe, XdpProbe, link_down, mac_of};
use super::sut::{Sut, SutKind, SutSpec};
use super::table::{FeedSet, dut_v4};
use super::{BenchArgs, RunResults, mono_ns, secs};

#[derive(Debug, Default)]
struct FailoverRun {
    /// Event → no sampled flow on the dead upstream.
    first_unused: f64,
    /// Event → every sampled flow on the survivor.
    all_survivor: f64,
    /// Event → last probe that found a sample without a usable route (0: never).
    blackhole: f64,
    /// Mean duration of one probe round (the resolution of the figures above).
    probe_ms: f64,
    /// Freeze → expiry detection (frozen case).
    detect: Option<f64>,
    note: String,
}

fn baseline_ok(ecmp: bool, c: &Counts, n: usize) -> bool {
    if ecmp {
        c.none == 0 && c.dead > 0 && c.survivor > 0
    } else {
        c.dead == n
    }
}

fn one_run(
    a: &BenchArgs,
    feed: &FeedSet,
    kind: SutKind,
    ecmp: bool,
    failure: &str,
) -> Result<FailoverRun> {
    let bed = Bed::new(2)?;
    let spec = SutSpec {
        feeders: 2,
        hold_time: a.hold_time,
        v6: feed.v6 > 0,
    };
    let sut = Sut::start(kind, bed.dut.name(), &spec)?;
    let mut fa = start_feeder(&bed, feed, &sut, 0, 0, a.hold_time)?;
    let mut fb = start_feeder(&bed, feed, &sut, 1, if ecmp { 0 } else { 1 }, a.hold_time)?;
    let t0 = fa
        .wait("established", Duration::from_secs(60))
        .with_context(|| sut.diagnostics())?;
    fb.wait("established", Duration::from_secs(60))
        .with_context(|| sut.diagnostics())?;
    let n = feed.prefixes() as u64;
    wait_loaded(
        &sut,
        t0,
        2 * n,
        n,
        Duration::from_millis(a.poll_ms.max(50)),
        Duration::from_secs(1200),
    )?;
    let samples = feed.sample(a.samples);
    let ns = samples.len();
    let mut probe = match kind {
        SutKind::Ribd => Probe::Xdp(Box::new(XdpProbe::new(
            bed.dut.name(),
            &samples,
            mac_of(bed.feed.name(), "e0")?,
            mac_of(bed.feed.name(), "e1")?,
        )?)),
        SutKind::Bird | SutKind::Frr => {
            Probe::Kernel(KernelProbe::new(bed.dut.name(), &samples, "f0", "f1"))
        }
        SutKind::GoBgp | SutKind::RibdRibOnly => bail!("{} has no FIB", kind.name()),
    };
    // Wait until the dataplane shows the intended state (ECMP sets complete, or everything on the best).
    let mut last = Counts::default();
    super::poll(Duration::from_secs(120), Duration::from_millis(200), || {
        last = probe.probe().ok()?;
        baseline_ok(ecmp, &last, ns).then_some(())
    })
    .with_context(|| {
        format!(
            "{}: dataplane never reached the starting state ({last:?} of {ns} samples)\n{}",
            kind.name(),
            sut.diagnostics()
        )
    })?;
    let mut note = String::new();
    let mut detect = None;
    let event = match failure {
        "notification" => {
            fa.command("stop")?;
            fa.wait("stopped", Duration::from_secs(5))?
        }
        "frozen" => {
            let sniff = NotificationSniffer::start(
                bed.feed.name(),
                "e0",
                dut_v4(0),
                Duration::from_secs(u64::from(a.hold_time) * 3 + 10),
            )?;
            fa.signal(libc::SIGSTOP)?;
            let frozen = mono_ns();
            match sniff.wait()? {
                Some(t) => {
                    detect = Some(secs(frozen, t));
                    t
                }
                None => {
                    note = "no NOTIFICATION seen: clock started at freeze + hold time".into();
                    frozen + u64::from(a.hold_time) * 1_000_000_000
                }
            }
        }
        "kill" => {
            let t = mono_ns();
            fa.command("reset")?;
            t
        }
        "linkdown" => link_down(bed.feed.name(), "e0")?,
        other => bail!("unknown failure {other:?} (notification, frozen, kill, linkdown)"),
    };
    let (mut first_unused, mut all, mut last_none) = (None, None, None);
    let (mut rounds, mut probe_ns) = (0u64, 0u64);
    let deadline = event + 120_000_000_000;
    while all.is_none() {
        let start = mono_ns();
        let c = probe.probe()?;
        let t = mono_ns();
        rounds += 1;
        probe_ns += t - start;
        if c.dead == 0 && first_unused.is_none() {
            first_unused = Some(t);
        }
        if c.none > 0 {
            last_none = Some(t);
        }
        if c.survivor == ns {
            all = Some(t);
        }
        if t > deadline {
            bail!(
                "{}: {failure}: not failed over after 120 s ({c:?})\n{}",
                kind.name(),
                sut.diagnostics()
            );
        }
    }
    drop(fa);
    drop(fb);
    Ok(FailoverRun {
        first_unused: secs(event, first_unused.unwrap_or(event)),
        all_survivor: secs(event, all.unwrap_or(event)),
        blackhole: last_none.map(|t| secs(event, t)).unwrap_or(0.0),
        probe_ms: probe_ns as f64 / rounds.max(1) as f64 / 1e6,
        detect,
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
    for mode in &a.modes {
        let ecmp = match mode.as_str() {
            "ecmp" => true,
            "backup" => false,
            other => bail!("unknown mode {other:?} (backup, ecmp)"),
        };
        for failure in &a.failures {
            let case = format!("{}, {mode}, {failure}", feed.label);
            println!(
                "\n== failover: {case} (hold time {} s, {} sampled prefixes) ==",
                a.hold_time, a.samples
            );
            for rep in 0..a.repeat {
                for &kind in systems.iter().filter(|k| k.has_fib()) {
                    let sys = kind.name();
                    let r = match one_run(a, feed, kind, ecmp, failure) {
                        Ok(r) => r,
                        Err(e) => {
                            println!("  {sys} rep {}: FAILED: {e:#}", rep + 1);
                            res.notes
                                .push(format!("failover {case} {sys} rep {}: {e:#}", rep + 1));
                            save(res)?;
                            continue;
                        }
                    };
                    println!(
                        "  {sys:7} rep {}: dead unused after {:8.4} s, all on survivor after {:8.4} s, no route until {:8.4} s (probe round {:.1} ms){} [{}] {}",
                        rep + 1,
                        r.first_unused,
                        r.all_survivor,
                        r.blackhole,
                        r.probe_ms,
                        r.detect
                            .map(|d| format!(", expiry detected {d:.2} s after the freeze"))
                            .unwrap_or_default(),
                        super::uptime(),
                        r.note
                    );
                    let key =
                        |m: &'static str, u: &'static str| ("failover", case.as_str(), sys, m, u);
                    res.push(key("first_unused_secs", "s"), r.first_unused, &r.note);
                    res.push(key("all_survivor_secs", "s"), r.all_survivor, "");
                    res.push(key("blackhole_secs", "s"), r.blackhole, "");
                    res.push(key("probe_round_ms", "ms"), r.probe_ms, "");
                    if let Some(d) = r.detect {
                        res.push(key("expiry_detect_secs", "s"), d, "");
                    }
                    save(res)?;
                }
            }
            super::report::print_ratios(res, "failover", &case);
        }
    }
    Ok(())
}
