//! Ratios on the terminal and `docs/BENCHMARKS.md` from result files.

use std::fmt::Write as _;

use super::{Figure, RunResults};

const SYSTEMS: [&str; 7] = [
    "ribd",
    "ribd RIB only",
    "BIRD 2",
    "FRR",
    "GoBGP",
    super::forward::KERNEL,
    super::forward::NFTABLES,
];

/// Diagnostics shown without a ratio: not a figure of merit (how fast the feeder's socket drained).
const NO_RATIO: [&str; 1] = ["send_secs"];

/// Ratio to ribd's figure, oriented so that above 1 means ribd does better: theirs / ours for times
/// and sizes, ours / theirs for rates (unit "/s").
pub fn ratio(unit: &str, ours: f64, theirs: f64) -> f64 {
    if unit == "/s" {
        ours / theirs
    } else {
        theirs / ours
    }
}

fn fmt_val(v: f64, unit: &str) -> String {
    match unit {
        "/s" if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
        "/s" => format!("{:.0} k/s", v / 1e3),
        "ns" => format!("{v:.1} ns"),
        "s" if v < 0.1 => format!("{:.1} ms", v * 1000.0),
        "s" => format!("{v:.3} s"),
        "MiB" => format!("{v:.0} MiB"),
        "B" => format!("{v:.0} B"),
        "" => format!("{v:.0}"),
        u => format!("{v:.1} {u}"),
    }
}

/// Metrics of a section in first-seen order.
fn metrics<'a>(figs: &[&'a Figure]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for f in figs {
        if !out.iter().any(|(m, _)| *m == f.metric) {
            out.push((&f.metric, &f.unit));
        }
    }
    out
}

/// Prints, per metric, every system's median and its ratio to ribd's ([`ratio`]: > 1 means ribd
/// does better).
pub fn print_ratios(res: &RunResults, section: &str, case: &str) {
    let figs: Vec<&Figure> = res
        .figures
        .iter()
        .filter(|f| f.section == section && f.case == case)
        .collect();
    println!(
        "  -- medians (min) and ratio to ribd (above 1: ribd does better) -- {}",
        super::uptime()
    );
    for (m, unit) in metrics(&figs) {
        let ours = res.get(section, case, "ribd", m).and_then(|f| f.median);
        let mut line = format!("  {m:22}");
        for s in SYSTEMS {
            let Some(f) = res.get(section, case, s, m) else {
                continue;
            };
            let (Some(med), Some(min)) = (f.median, f.min) else {
                continue;
            };
            let _ = write!(
                line,
                "  {s}: {} ({})",
                fmt_val(med, unit),
                fmt_val(min, unit)
            );
            if s != "ribd"
                && !NO_RATIO.contains(&m)
                && let Some(o) = ours
                && o > 0.0
                && med > 0.0
            {
                let _ = write!(line, " = {:.1}x", ratio(unit, o, med));
            }
        }
        println!("{line}");
    }
}

const METRIC_DOC: &[(&str, &str)] = &[
    (
        "rib_secs",
        "first feeder Established → every path in the RIB",
    ),
    (
        "fib_secs",
        "first feeder Established → every prefix in the FIB (ribd: XDP maps; BIRD/FRR: kernel)",
    ),
    ("peak_rss_mib", "VmHWM (FRR: bgpd + zebra)"),
    ("steady_rss_mib", "VmRSS 2 s after loading"),
    (
        "bytes_per_path",
        "(VmRSS after − VmRSS before the feed) / paths",
    ),
    (
        "anon_bytes_per_path",
        "the same with RssAnon (ribd's mmapped XDP maps excluded)",
    ),
    (
        "first_unused_secs",
        "event → no sampled flow uses the dead next-hop",
    ),
    (
        "all_survivor_secs",
        "event → every sampled flow uses the survivor",
    ),
    (
        "quiesce_rib_secs",
        "churn: first octet of the churn stream sent → the system has processed all of it (ribd: its UPDATE counter; others: the sentinel prefix sent last is in the RIB; resolution one poll round, `--poll-ms` plus the query)",
    ),
    (
        "quiesce_fib_secs",
        "churn: the same, until the sentinel is in the FIB (kernel table; ribd: the XDP maps, applied before the counter is answered)",
    ),
    (
        "rib_changes_per_s",
        "churn: prefix-level changes in the stream (NLRI announced + withdrawn) / `quiesce_rib_secs`",
    ),
    ("fib_changes_per_s", "churn: the same / `quiesce_fib_secs`"),
    (
        "send_secs",
        "churn: first → last octet of the stream into the feeder's socket (TCP backpressure: ≈ how long the system took to read it)",
    ),
    (
        "pps",
        "forward: 64-byte frames/s delivered at the sinks, live frames injected at the dut's ingress (`testbed fwd-bench`)",
    ),
    (
        "whole_ns",
        "forward: BPF_PROG_TEST_RUN ns/packet of the benchmark forwarder (new destination per packet + the forwarder)",
    ),
    (
        "forwarder_ns",
        "forward: `whole_ns` minus the same harness passing every packet: the forwarder's own cost",
    ),
    (
        "drop_pps",
        "forward: frames/s dropped when every frame matches the last of the rules (XDP classifier vs nftables netdev ingress)",
    ),
    (
        "blackhole_secs",
        "event → last probe that found a sampled prefix without a usable route (no route, unresolved, passed to the kernel; 0: never)",
    ),
];

/// `docs/BENCHMARKS.md` from one or more runs.
pub fn markdown(runs: &[RunResults]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks: ribd against BIRD 2, FRR and GoBGP\n\n\
         Generated by `testbed bench` from the result files listed below (issue 12); do not edit by hand:\n\
         re-run the commands and regenerate with `testbed bench --doc-only --doc docs/BENCHMARKS.md --merge FILE,...`.\n\
         Every system gets the same pre-encoded feed from the same feeder processes, in the same run, on the\n\
         same machine; figures are the median (and min) over the repetitions, ratios are theirs / ours\n\
         for times and sizes, ours / theirs for rates (above 1: ribd does better). The machine is shared with other jobs: each run records\n\
         the load average, and timings are noisy. Nothing here is asserted by a test.\n"
    );
    if let Some(r) = runs.first() {
        let m = &r.machine;
        let _ = writeln!(
            s,
            "## Machine\n\n{} vCPUs ({}), {} MiB RAM, Linux {}.",
            m.cpus, m.cpu_model, m.mem_total_mib, m.kernel
        );
        for (k, v) in &m.versions {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s.push('\n');
    }
    goals(&mut s, runs);
    let _ = writeln!(s, "## What is measured\n");
    for (m, d) in METRIC_DOC {
        let _ = writeln!(s, "- `{m}`: {d}");
    }
    s.push('\n');
    for r in runs {
        let _ = writeln!(
            s,
            "## Run {} (commit {})\n\n```\n{}\n```\nLoad before: {}; after: {}.\n",
            r.started_utc, r.machine.git_rev, r.command, r.uptime_before, r.uptime_after
        );
        let mut cases: Vec<(&str, &str)> = Vec::new();
        for f in &r.figures {
            if !cases
                .iter()
                .any(|(sec, c)| *sec == f.section && *c == f.case)
            {
                cases.push((&f.section, &f.case));
            }
        }
        for (section, case) in cases {
            let figs: Vec<&Figure> = r
                .figures
                .iter()
                .filter(|f| f.section == section && f.case == case)
                .collect();
            let present: Vec<&str> = SYSTEMS
                .iter()
                .copied()
                .filter(|sy| figs.iter().any(|f| f.system == *sy))
                .collect();
            let _ = writeln!(s, "### {section}: {case}\n");
            let _ = write!(s, "| metric |");
            for sy in &present {
                let _ = write!(s, " {sy} |");
            }
            s.push('\n');
            let _ = write!(s, "|---|");
            for _ in &present {
                s.push_str("---|");
            }
            s.push('\n');
            for (m, unit) in metrics(&figs) {
                let ours = r.get(section, case, "ribd", m).and_then(|f| f.median);
                let _ = write!(s, "| `{m}` |");
                for sy in &present {
                    match r.get(section, case, sy, m) {
                        Some(f) => {
                            let (Some(med), Some(min)) = (f.median, f.min) else {
                                s.push_str(" – |");
                                continue;
                            };
                            let _ = write!(
                                s,
                                " {} (min {}, n={})",
                                fmt_val(med, unit),
                                fmt_val(min, unit),
                                f.values.len()
                            );
                            if *sy != "ribd"
                                && !NO_RATIO.contains(&m)
                                && let Some(o) = ours
                                && o > 0.0
                                && med > 0.0
                            {
                                let _ = write!(s, " **{:.1}x**", ratio(unit, o, med));
                            }
                            s.push_str(" |");
                        }
                        None => s.push_str(" – |"),
                    }
                }
                s.push('\n');
            }
            let loads: Vec<f64> = figs.iter().flat_map(|f| f.load.iter().copied()).collect();
            if let (Some(lo), Some(hi)) = (
                loads.iter().copied().reduce(f64::min),
                loads.iter().copied().reduce(f64::max),
            ) {
                let _ = writeln!(
                    s,
                    "\nLoad average (1 min) during these runs: {lo:.2}–{hi:.2}."
                );
            }
            for f in &figs {
                if !f.note.is_empty() {
                    let _ = writeln!(s, "- {} `{}`: {}", f.system, f.metric, f.note);
                }
            }
            s.push('\n');
        }
        if !r.notes.is_empty() {
            let _ = writeln!(s, "Notes:\n");
            for n in &r.notes {
                let one: String = n.replace('\n', " ").chars().take(240).collect();
                let _ = writeln!(s, "- {one}");
            }
            s.push('\n');
        }
    }
    s
}

/// Medians of `metric` for `system` over every case of `section` whose name contains `filter`.
fn medians<'a>(
    runs: &'a [RunResults],
    section: &'a str,
    filter: &'a str,
    system: &'a str,
    metric: &'a str,
) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    runs.iter().flat_map(move |r| {
        r.figures.iter().filter_map(move |f| {
            (f.section == section
                && f.case.contains(filter)
                && f.system == system
                && f.metric == metric)
                .then_some(())?;
            Some((f.case.as_str(), f.median?))
        })
    })
}

/// Routes in a case name ("..., 512,621 routes (real table)"): the number before " route".
fn routes_in(case: &str) -> usize {
    case.find(" route")
        .and_then(|i| case[..i].rsplit(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or(0)
}

/// The goals of issue 12 against the medians measured, computed from the figures.
fn goals(s: &mut String, runs: &[RunResults]) {
    let _ = writeln!(
        s,
        "## Goals (issue 12) against these figures\n\n| goal | measured | met |\n|---|---|---|"
    );
    let row = |s: &mut String, goal: &str, measured: String, met: Option<bool>| {
        let m = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {goal} | {measured} | {m} |");
    };
    // Ingest to the dataplane ≥ 5x faster than the fastest of the others to the kernel FIB; every
    // comparison pairs figures of one run (the same code, the same load).
    let mut ingest = Vec::new();
    let mut mem = Vec::new();
    for r in runs {
        let one = std::slice::from_ref(r);
        let when = r.started_utc.get(11..16).unwrap_or("");
        for (case, ours) in medians(one, "ingest", "", "ribd", "fib_secs") {
            let best = ["BIRD 2", "FRR"]
                .iter()
                .filter_map(|o| {
                    medians(one, "ingest", case, o, "fib_secs")
                        .find(|(c, _)| *c == case)
                        .map(|(_, v)| (*o, v))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((who, v)) = best {
                ingest.push((format!("{case} (run {when})"), ours, who, v));
            }
        }
        // RSS per prefix ≤ 0.7x BIRD's.
        for (case, ours) in medians(one, "ingest", "", "ribd", "bytes_per_path") {
            if let Some((_, b)) =
                medians(one, "ingest", case, "BIRD 2", "bytes_per_path").find(|(c, _)| *c == case)
            {
                let rib_only = medians(one, "ingest", case, "ribd RIB only", "bytes_per_path")
                    .find(|(c, _)| *c == case)
                    .map(|(_, v)| format!(" (ribd without dataplane {v:.0} B = {:.2}x)", v / b))
                    .unwrap_or_default();
                mem.push((
                    format!(
                        "{case} (run {when}): ribd {ours:.0} B vs BIRD {b:.0} B = {:.2}x{rib_only}",
                        ours / b
                    ),
                    ours / b <= 0.7,
                ));
            }
        }
    }
    let met = (!ingest.is_empty()).then(|| ingest.iter().all(|(_, o, _, v)| v / o >= 5.0));
    let text = ingest
        .iter()
        .map(|(c, o, who, v)| format!("{c}: ribd {o:.2} s vs {who} {v:.2} s = {:.1}x", v / o))
        .collect::<Vec<_>>()
        .join("; ");
    row(
        s,
        "ingest to the dataplane ≥ 5x faster than the fastest other to the kernel FIB",
        text,
        met,
    );
    row(
        s,
        "RSS per prefix ≤ 0.7x BIRD's",
        mem.iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
            .join("; "),
        (!mem.is_empty()).then(|| mem.iter().all(|(_, m)| *m)),
    );
    // Failover ≤ 10 ms from detection for every failure kind, no blackhole with best + backup: the
    // latest runs that measured them (cases measured again later replace the earlier ones).
    let latest = |section: &'static str, metric: &'static str| -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        let mut sorted: Vec<&RunResults> = runs.iter().collect();
        sorted.sort_by(|a, b| b.started_utc.cmp(&a.started_utc));
        for r in sorted {
            let when = r.started_utc.get(11..16).unwrap_or("");
            for (c, v) in medians(std::slice::from_ref(r), section, "", "ribd", metric) {
                if !out.iter().any(|(k, _)| k.starts_with(c)) {
                    out.push((format!("{c} (run {when})"), v));
                }
            }
        }
        out
    };
    let fo = latest("failover", "all_survivor_secs");
    let worst = fo.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let under = fo.iter().filter(|(_, v)| *v <= 0.010).count();
    row(
        s,
        "failover ≤ 10 ms from detection, every failure kind",
        match worst {
            Some((c, v)) => format!(
                "{under} of {} cases within 10 ms; worst {c}: {:.3} s",
                fo.len(),
                v
            ),
            None => String::new(),
        },
        (!fo.is_empty()).then_some(under == fo.len()),
    );
    let bhs: Vec<(String, f64)> = latest("failover", "blackhole_secs")
        .into_iter()
        .filter(|(c, _)| c.contains("backup"))
        .collect();
    let any = !bhs.is_empty();
    let bh: Vec<&(String, f64)> = bhs.iter().filter(|(_, v)| *v > 0.0).collect();
    row(
        s,
        "no blackhole window with best + backup",
        if bh.is_empty() && any {
            format!(
                "none in the {} best + backup cases of the latest runs",
                bhs.len()
            )
        } else {
            bh.iter()
                .map(|(c, v)| format!("{c}: {v:.3} s without a usable route"))
                .collect::<Vec<_>>()
                .join("; ")
        },
        any.then_some(bh.is_empty()),
    );
    // XDP forwarding ≥ 3x the kernel at full table: the forward section's live-frame cases with the
    // most routes.
    let fwd: Vec<(&str, f64)> = medians(runs, "forward", "live frames", "ribd", "pps").collect();
    let full = fwd.iter().copied().max_by_key(|(c, _)| routes_in(c));
    let mut text = String::new();
    let mut met = None;
    if let Some((case, ours)) = full
        && let Some((_, k)) =
            medians(runs, "forward", case, super::forward::KERNEL, "pps").find(|(c, _)| *c == case)
    {
        text = format!(
            "{case}: XDP {:.2} Mpps vs kernel {:.2} Mpps = {:.2}x",
            ours / 1e6,
            k / 1e6,
            ours / k
        );
        met = Some(ours / k >= 3.0);
    }
    for (case, v) in medians(runs, "forward", "BPF_PROG_TEST_RUN", "ribd", "forwarder_ns") {
        let _ = write!(text, "; {case}: forwarder {v:.0} ns/packet");
    }
    row(
        s,
        "XDP forwarding ≥ 3x the kernel's packets/s at full table",
        text.trim_start_matches("; ").to_string(),
        met,
    );
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_favour_ribd_above_one_for_times_and_for_rates() {
        assert_eq!(ratio("s", 2.0, 6.0), 3.0);
        assert_eq!(ratio("B", 100.0, 50.0), 0.5);
        assert_eq!(ratio("/s", 9e6, 3e6), 3.0);
    }

    #[test]
    fn routes_are_read_from_forward_case_names() {
        assert_eq!(
            routes_in("64-byte UDP, live frames, 512,621 routes (real table)"),
            512_621
        );
        assert_eq!(routes_in("64-byte UDP, live frames, 1 route (default)"), 1);
        assert_eq!(
            routes_in("64-byte UDP, every frame dropped, 1,001 rules"),
            0
        );
    }
}
