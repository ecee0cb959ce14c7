//! Churn: one feeder announces the table; once it is in the RIB and the FIB, the same feeder sends the
//! churn stream ([`super::churn_stream`]: withdraw + re-announce, AS path, MED, community and next-hop
//! changes, pre-encoded, sentinel last) as fast as the system under test reads it. Measured from the
//! feeder's `send-start` stamp:
//!
//! - `quiesce_rib_secs` / `quiesce_fib_secs`: until the system has processed the whole stream. ribd:
//!   its `updates_in` counter (`/v1/counters`) reaches the UPDATEs sent (the core answers after applying
//!   the batch's FIB changes, so RIB and FIB are the same moment); BIRD, FRR, GoBGP: the sentinel
//!   prefix is in the RIB (birdc, vtysh, gobgp) and in the kernel table (`ip route show exact`). Each
//!   processes one session's UPDATEs in order, so the sentinel arriving means everything before it did.
//! - `rib_changes_per_s` / `fib_changes_per_s`: prefix-level changes of the stream (NLRI announced +
//!   withdrawn) over those times, the rate the system absorbed.
//! - `send_secs`: `send-start` → the last octet in the feeder's socket (≈ the quiesce time when the
//!   system reads as it processes; much shorter when it buffers).
//!
//! After quiescing, the RIB and FIB counts are checked against the table + sentinel (a mismatch is
//! written into the figure's note).

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::churn_stream::ChurnStream;
use super::ingest::{Bed, start_feeder, wait_loaded};
use super::sut::{Sut, SutKind, SutSpec};
use super::table::{FeedSet, feeder_v4_alt, feeder_v6_alt};
use super::{BenchArgs, RunResults, mono_ns, secs};
use crate::netns::addr;

/// What one churn run measured.
#[derive(Debug, Default)]
pub struct ChurnRun {
    pub rib_secs: f64,
    pub fib_secs: Option<f64>,
    pub send_secs: Option<f64>,
    pub note: String,
}

/// Polls until the system has absorbed the stream: ribd by its UPDATE counter reaching `target`,
/// the others by the sentinel. Returns (RIB, FIB) completion times (CLOCK_MONOTONIC ns).
pub fn wait_quiesced(
    sut: &Sut,
    churn: &ChurnStream,
    ribd_target: u64,
    poll: Duration,
    timeout: Duration,
) -> Result<(u64, Option<u64>)> {
    let deadline = mono_ns() + timeout.as_nanos() as u64;
    let (mut rib, mut fib) = (None, None);
    let mut last = String::new();
    loop {
        match sut.kind {
            SutKind::Ribd | SutKind::RibdRibOnly => {
                if let Ok(c) = sut.ribd_counters() {
                    let now = mono_ns();
                    last = format!("{} of {ribd_target} UPDATEs processed", c.updates_in);
                    if c.updates_in >= ribd_target {
                        rib = Some(now);
                        if sut.kind.has_fib() {
                            fib = Some(now);
                        }
                    }
                }
            }
            _ => {
                if rib.is_none()
                    && let Ok(Some(true)) = sut.has_route(churn.sentinel, false)
                {
                    rib = Some(mono_ns());
                }
                if fib.is_none()
                    && sut.kind.has_fib()
                    && let Ok(Some(true)) = sut.has_route(churn.sentinel, true)
                {
                    fib = Some(mono_ns());
                }
                last = format!(
                    "sentinel {} in RIB: {}, in FIB: {}",
                    churn.sentinel,
                    rib.is_some(),
                    fib.is_some()
                );
            }
        }
        if rib.is_some() && (fib.is_some() || !sut.kind.has_fib()) {
            return Ok((rib.unwrap_or_default(), fib));
        }
        if mono_ns() > deadline {
            bail!(
                "{}: not quiesced after {timeout:?} ({last})\n{}",
                sut.kind.name(),
                sut.diagnostics()
            );
        }
        std::thread::sleep(poll);
    }
}

/// One system: load the table, send the churn, time until quiesced, check the final counts.
pub fn one_run(a: &BenchArgs, feed: &FeedSet, kind: SutKind) -> Result<ChurnRun> {
    let bed = Bed::new(1)?;
    // The churn's next-hop changes point at the feeder's second address: give it one, so it resolves.
    addr(&bed.feed, "e0", &format!("{}/24", feeder_v4_alt(0)))?;
    addr(&bed.feed, "e0", &format!("{}/64", feeder_v6_alt(0)))?;
    let spec = SutSpec {
        feeders: 1,
        hold_time: 90,
        v6: feed.v6 > 0,
    };
    let sut = Sut::start(kind, bed.dut.name(), &spec)?;
    let (churn_path, churn) = feed.churn(0)?;
    let mut fp = start_feeder(&bed, feed, &sut, 0, 0, 90)?;
    let t0 = fp
        .wait("established", Duration::from_secs(60))
        .with_context(|| sut.diagnostics())?;
    let n = feed.prefixes() as u64;
    wait_loaded(
        &sut,
        t0,
        n,
        n,
        Duration::from_millis(a.poll_ms.max(50)),
        Duration::from_secs(1200),
    )?;
    // Let the load settle (kernel writes, deferred work) before the churn starts.
    std::thread::sleep(Duration::from_secs(2));
    let ribd_target = match kind {
        SutKind::Ribd | SutKind::RibdRibOnly => {
            sut.ribd_counters()?.updates_in + churn.updates as u64
        }
        _ => 0,
    };
    fp.command(&format!("send {}", churn_path.display()))?;
    let start = fp.wait("send-start", Duration::from_secs(30))?;
    let (rib, fib) = wait_quiesced(
        &sut,
        &churn,
        ribd_target,
        Duration::from_millis(a.poll_ms),
        Duration::from_secs(1200),
    )?;
    let sent = fp.try_event("sent");
    // Final counts: the table plus the sentinel, every withdrawn prefix announced again.
    let mut note = String::new();
    let want = n + 1;
    let settle = Duration::from_secs(30);
    let rib_ok = super::poll(settle, Duration::from_millis(500), || {
        sut.rib_paths().ok().filter(|c| *c == want)
    });
    if let Err(e) = rib_ok {
        let got = sut.rib_paths().unwrap_or_default();
        note.push_str(&format!("RIB holds {got} paths, not {want} ({e}); "));
    }
    if kind.has_fib() {
        let fib_ok = super::poll(settle, Duration::from_millis(500), || {
            sut.fib_prefixes().ok().flatten().filter(|c| *c == want)
        });
        if let Err(e) = fib_ok {
            let got = sut.fib_prefixes().ok().flatten().unwrap_or_default();
            note.push_str(&format!("FIB holds {got} prefixes, not {want} ({e}); "));
        }
    }
    if matches!(kind, SutKind::Ribd | SutKind::RibdRibOnly)
        && sut.has_route(churn.sentinel, false)? != Some(true)
    {
        note.push_str("ribd counted every UPDATE but the sentinel is not in its RIB; ");
    }
    drop(fp);
    Ok(ChurnRun {
        rib_secs: secs(start, rib),
        fib_secs: fib.map(|f| secs(start, f)),
        send_secs: sent.map(|s| secs(start, s)),
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
    let (_, churn) = feed.churn(0)?;
    let case = format!(
        "{}, {} changes",
        feed.label,
        super::table::thousands(churn.changes())
    );
    println!("\n== churn: {case} ==\n  {}", churn.describe());
    res.notes
        .push(format!("churn {case}: stream {}", churn.describe()));
    let changes = churn.changes() as f64;
    for rep in 0..a.repeat {
        for &kind in systems {
            let sys = kind.name();
            if !super::allowed(a, "churn", &case, kind, res) {
                continue;
            }
            let r = match one_run(a, feed, kind) {
                Ok(r) => r,
                Err(e) => {
                    println!("  {sys} rep {}: FAILED: {e:#}", rep + 1);
                    res.notes
                        .push(format!("churn {case} {sys} rep {}: {e:#}", rep + 1));
                    continue;
                }
            };
            println!(
                "  {sys:7} rep {}: RIB quiet after {:7.3} s ({:9.0} changes/s)  FIB {}  sent in {}  [{}] {}",
                rep + 1,
                r.rib_secs,
                changes / r.rib_secs.max(1e-9),
                r.fib_secs
                    .map(|f| format!("{f:7.3} s ({:9.0}/s)", changes / f.max(1e-9)))
                    .unwrap_or_else(|| "      - ".into()),
                r.send_secs
                    .map(|f| format!("{f:.3} s"))
                    .unwrap_or_else(|| "-".into()),
                super::uptime(),
                r.note
            );
            let key = |m: &'static str, u: &'static str| ("churn", case.as_str(), sys, m, u);
            res.push(key("quiesce_rib_secs", "s"), r.rib_secs, &r.note);
            res.push(
                key("rib_changes_per_s", "/s"),
                changes / r.rib_secs.max(1e-9),
                "",
            );
            if let Some(f) = r.fib_secs {
                res.push(key("quiesce_fib_secs", "s"), f, &r.note);
                res.push(key("fib_changes_per_s", "/s"), changes / f.max(1e-9), "");
            }
            if let Some(s) = r.send_secs {
                res.push(key("send_secs", "s"), s, "");
            }
            save(res)?;
        }
    }
    super::report::print_ratios(res, "churn", &case);
    Ok(())
}
