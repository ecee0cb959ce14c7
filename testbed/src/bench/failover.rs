//! Failover: two feeders announce the table (best + backup: the second one's paths one AS longer; or
//! ECMP: equal paths), one of them fails, and sampled lookups through the dataplane say when no flow
//! uses the dead upstream any more and when every flow uses the survivor.
//!
//! Failures of feeder 0, where the clock starts ("from event") and when the dut detected it ("from
//! detection", [`DutWatch`] on the dut's interface, every instant on CLOCK_MONOTONIC):
//! - `notification`: it sends Cease (event: stamped by the feeder as it queues the NOTIFICATION;
//!   detection: the NOTIFICATION's kernel receive timestamp on the dut's interface);
//! - `frozen`: SIGSTOP (event: the dut's Hold Timer Expired NOTIFICATION passing the feeder's
//!   interface; detection: the same NOTIFICATION leaving the dut's interface, just after the hold
//!   timer fired), with hold time `--hold-time`;
//! - `kill`: SO_LINGER 0 on its sockets, then SIGKILL (event: the command to the feeder; detection:
//!   the kernel's RST arriving at the dut);
//! - `linkdown`: its end of the veth goes down (event: just before the ioctl; detection: the dut's
//!   kernel announcing carrier loss, RTM_NEWLINK read by a real-time-priority listener in the dut's
//!   namespace; the kernel may take from under a millisecond to hundreds of them to send it).
//!
//! A figure from detection is bracketed: "dead last seen" is the last lookup that still found the
//! dead upstream (a lower bound), "unused by" the end of the first round of lookups without it (an
//! upper bound); a round of lookups is the resolution (`probe_round_ms`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::ingest::{Bed, start_feeder, wait_loaded};
use super::probe::{
    Counts, DutWatch, KernelProbe, NotificationSniffer, Probe, Seen, XdpProbe, link_down, mac_of,
};
use super::sut::{Sut, SutKind, SutSpec};
use super::table::{FeedSet, dut_v4, feeder_v4};
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
    /// Event → the dut detected the failure ([`detection`]); `None` when it was not seen.
    event_to_detect: Option<f64>,
    /// Detection → no sampled flow on the dead upstream.
    first_unused_after_detect: Option<f64>,
    /// Detection → every sampled flow on the survivor.
    all_survivor_after_detect: Option<f64>,
    /// Detection → the last lookup that still found the dead upstream (the lower bound of
    /// `first_unused_after_detect`; `None` when no lookup after the event found it).
    last_dead_after_detect: Option<f64>,
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
    let watch = DutWatch::start(bed.dut.name(), "f0", dut_v4(0), feeder_v4(0))?;
    // The feeder's own stamp of its NOTIFICATION comes back through a pipe after the fact: the
    // lookups start at once, the stamp is read after them.
    let mut stamped_by_feeder = false;
    let mut event = match failure {
        "notification" => {
            let t = mono_ns();
            fa.command("stop")?;
            stamped_by_feeder = true;
            t
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
    let mut dead_last = 0u64;
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
        dead_last = dead_last.max(c.dead_at);
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
    let seen = watch.finish()?;
    if stamped_by_feeder {
        event = fa.wait("stopped", Duration::from_secs(5))?;
    }
    drop(fa);
    drop(fb);
    let det = detection(failure, &seen);
    if det.is_none() {
        let what = match failure {
            "linkdown" => "carrier loss (RTM_NEWLINK)",
            "kill" => "RST",
            _ => "NOTIFICATION",
        };
        if !note.is_empty() {
            note.push_str("; ");
        }
        let _ = write!(
            note,
            "the dut's {what} was not seen: no figure from detection"
        );
    }
    let signed = |from: u64, to: u64| (to as f64 - from as f64) / 1e9;
    Ok(FailoverRun {
        event_to_detect: det.map(|d| signed(event, d)),
        first_unused_after_detect: det.zip(first_unused).map(|(d, t)| signed(d, t)),
        all_survivor_after_detect: det.zip(all).map(|(d, t)| signed(d, t)),
        last_dead_after_detect: det.filter(|_| dead_last > 0).map(|d| signed(d, dead_last)),
        first_unused: secs(event, first_unused.unwrap_or(event)),
        all_survivor: secs(event, all.unwrap_or(event)),
        blackhole: last_none.map(|t| secs(event, t)).unwrap_or(0.0),
        probe_ms: probe_ns as f64 / rounds.max(1) as f64 / 1e6,
        detect,
        note,
    })
}

/// When the system under test detected the failure (see [`Seen`]): the NOTIFICATION arriving
/// (`notification`), its own Hold Timer Expired NOTIFICATION leaving (`frozen`: the hold timer
/// fired just before), the RST arriving (`kill`), its kernel announcing carrier loss (`linkdown`).
fn detection(failure: &str, seen: &Seen) -> Option<u64> {
    match failure {
        "notification" => seen.notification_in,
        "frozen" => seen.notification_out,
        "kill" => seen.rst_in,
        "linkdown" => seen.carrier_lost,
        _ => None,
    }
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
                    let ms = |v: Option<f64>| {
                        v.map(|v| format!("{:.1} ms", v * 1e3))
                            .unwrap_or_else(|| "–".into())
                    };
                    println!(
                        "  {sys:7} rep {}: dead unused after {:8.4} s, all on survivor after {:8.4} s, no route until {:8.4} s; detected {} after the event; after detection: dead last seen {}, unused by {}, all on survivor by {} (probe round {:.1} ms){} [{}] {}",
                        rep + 1,
                        r.first_unused,
                        r.all_survivor,
                        r.blackhole,
                        ms(r.event_to_detect),
                        ms(r.last_dead_after_detect),
                        ms(r.first_unused_after_detect),
                        ms(r.all_survivor_after_detect),
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
                    if let (Some(d), Some(u), Some(all)) = (
                        r.event_to_detect,
                        r.first_unused_after_detect,
                        r.all_survivor_after_detect,
                    ) {
                        res.push(key("detect_secs", "s"), d, "");
                        res.push(key("first_unused_after_detect_secs", "s"), u, "");
                        res.push(key("all_survivor_after_detect_secs", "s"), all, "");
                    }
                    if let Some(l) = r.last_dead_after_detect {
                        res.push(key("last_dead_after_detect_secs", "s"), l, "");
                    }
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
