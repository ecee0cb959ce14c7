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
        "detect_secs",
        "failover: event → the dut detected the failure (NOTIFICATION received, its own Hold Timer Expired NOTIFICATION sent, RST received: kernel packet timestamps on the dut's interface; link down: its kernel's RTM_NEWLINK without carrier, read by a real-time listener in the dut's namespace)",
    ),
    (
        "first_unused_after_detect_secs",
        "failover: detection → end of the first round of lookups with no sampled flow on the dead next-hop (an upper bound: the change happened during or before that round)",
    ),
    (
        "all_survivor_after_detect_secs",
        "failover: detection → end of the first round with every sampled flow on the survivor (upper bound, as above)",
    ),
    (
        "last_dead_after_detect_secs",
        "failover: detection → the last lookup that still found the dead next-hop (a lower bound; absent when no lookup after the event found it; for BIRD/FRR, whose lookups are one `ip -batch`, the start of that round)",
    ),
    (
        "expiry_detect_secs",
        "failover, frozen peer: SIGSTOP → the dut's Hold Timer Expired NOTIFICATION (the hold time, 3 s, minus the time since the last KEEPALIVE)",
    ),
    (
        "probe_round_ms",
        "failover: one round of sampled lookups (the resolution of the figures above)",
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

/// Routes in a case name ("..., 512,621 routes (real table)"): the number before " route".
fn routes_in(case: &str) -> usize {
    case.find(" route")
        .and_then(|i| case[..i].rsplit(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or(0)
}

/// The latest run (by start) in which `system` has `metric` for each case of `section` whose name
/// contains `filter`: (case, run start "HH:MM", value, the run). Cases measured again later replace
/// the earlier figures, so a goal reads what the current code does, not every run ever recorded.
fn latest<'a>(
    runs: &'a [RunResults],
    section: &str,
    filter: &str,
    system: &str,
    metric: &str,
) -> Vec<(&'a str, &'a str, f64, &'a RunResults)> {
    latest_with(runs, section, filter, system, metric, &[])
}

/// [`latest`] among the runs that also measured `metric` for one of `others` in the case (a
/// comparison within one run); no `others`: any run.
fn latest_with<'a>(
    runs: &'a [RunResults],
    section: &str,
    filter: &str,
    system: &str,
    metric: &str,
    others: &[&str],
) -> Vec<(&'a str, &'a str, f64, &'a RunResults)> {
    let mut sorted: Vec<&RunResults> = runs.iter().collect();
    sorted.sort_by(|a, b| b.started_utc.cmp(&a.started_utc));
    let mut out: Vec<(&str, &str, f64, &RunResults)> = Vec::new();
    for r in sorted {
        let when = r.started_utc.get(11..16).unwrap_or("");
        for f in &r.figures {
            if f.section == section
                && f.case.contains(filter)
                && f.system == system
                && f.metric == metric
                && let Some(v) = f.median
                && (others.is_empty()
                    || others
                        .iter()
                        .any(|o| in_run(r, section, &f.case, o, metric).is_some()))
                && !out.iter().any(|(c, ..)| *c == f.case)
            {
                out.push((f.case.as_str(), when, v, r));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// `system`'s median of `metric` in `case` of run `r`.
fn in_run(r: &RunResults, section: &str, case: &str, system: &str, metric: &str) -> Option<f64> {
    r.get(section, case, system, metric).and_then(|f| f.median)
}

/// "real 512,621 IPv4, backup, kill" → "backup, kill".
fn short_case(case: &str) -> &str {
    let mut parts = case.rsplitn(3, ", ");
    let (Some(kind), Some(mode)) = (parts.next(), parts.next()) else {
        return case;
    };
    let start = case.len() - kind.len() - mode.len() - 2;
    &case[start..]
}

fn ms(v: f64) -> String {
    format!("{:.1} ms", v * 1e3)
}

/// The goals of issue 12 against the medians measured, computed from the figures: each goal reads
/// the latest run of ribd that measured it, and compares with the others within that same run (the
/// same code, the same load).
fn goals(s: &mut String, runs: &[RunResults]) {
    let _ = writeln!(
        s,
        "## Goals (issue 12) against these figures\n\nEach goal reads the latest run of ribd that measured it (per case); comparisons with the others\nuse figures of that same run.\n\n| goal | measured | met |\n|---|---|---|"
    );
    let row = |s: &mut String, goal: &str, measured: String, met: Option<bool>| {
        let m = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {goal} | {measured} | {m} |");
    };
    // Ingest to the dataplane ≥ 5x faster than the fastest of the others to the kernel FIB.
    let mut ingest = Vec::new();
    for (case, when, ours, r) in
        latest_with(runs, "ingest", "", "ribd", "fib_secs", &["BIRD 2", "FRR"])
    {
        let best = ["BIRD 2", "FRR"]
            .iter()
            .filter_map(|o| in_run(r, "ingest", case, o, "fib_secs").map(|v| (*o, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((who, v)) = best {
            ingest.push((format!("{case} (run {when})"), ours, who, v));
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
    // RSS per prefix ≤ 0.7x BIRD's.
    let mut mem = Vec::new();
    for (case, when, ours, r) in
        latest_with(runs, "ingest", "", "ribd", "bytes_per_path", &["BIRD 2"])
    {
        if let Some(b) = in_run(r, "ingest", case, "BIRD 2", "bytes_per_path") {
            let rib_only = in_run(r, "ingest", case, "ribd RIB only", "bytes_per_path")
                .map(|v| format!(" (ribd without dataplane {v:.0} B = {:.2}x)", v / b))
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
    row(
        s,
        "RSS per prefix ≤ 0.7x BIRD's",
        mem.iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
            .join("; "),
        (!mem.is_empty()).then(|| mem.iter().all(|(_, m)| *m)),
    );
    // Failover ≤ 10 ms from detection, every failure kind: the upper bound (end of the first
    // round of lookups with everything on the survivor) after the dut detected the failure.
    let fo = latest(
        runs,
        "failover",
        "",
        "ribd",
        "all_survivor_after_detect_secs",
    );
    let under = fo.iter().filter(|f| f.2 <= 0.010).count();
    let mut text = fo
        .iter()
        .map(|(c, when, v, r)| {
            let ev = in_run(r, "failover", c, "ribd", "all_survivor_secs")
                .map(|e| format!(" ({} from the event)", ms(e)))
                .unwrap_or_default();
            format!("{} (run {when}): {}{ev}", short_case(c), ms(*v))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if !fo.is_empty() {
        text = format!("{under} of {} cases within 10 ms: {text}", fo.len());
    }
    row(
        s,
        "failover ≤ 10 ms from detection, every failure kind (ribd: every sampled flow on the survivor)",
        text,
        (!fo.is_empty()).then_some(under == fo.len()),
    );
    // ≥ 400x BIRD's session-failure case: the smallest ratio over the session failures
    // (NOTIFICATION, hold expiry, TCP reset) measured with BIRD in the same run, from the event.
    let mut bird = Vec::new();
    for (case, when, ours, r) in latest_with(
        runs,
        "failover",
        "",
        "ribd",
        "all_survivor_secs",
        &["BIRD 2"],
    ) {
        if case.ends_with("linkdown") {
            continue;
        }
        if let Some(b) = in_run(r, "failover", case, "BIRD 2", "all_survivor_secs") {
            bird.push((short_case(case), when, ours, b, b / ours));
        }
    }
    let worst = bird.iter().min_by(|a, b| a.4.total_cmp(&b.4));
    row(
        s,
        "failover ≥ 400x BIRD's session-failure case (event → every sampled flow on the survivor)",
        match worst {
            Some((c, when, o, b, x)) => format!(
                "{} session-failure cases with BIRD; smallest ratio {c} (run {when}): ribd {} vs BIRD {:.3} s = {x:.0}x",
                bird.len(),
                ms(*o),
                b
            ),
            None => String::new(),
        },
        worst.map(|w| w.4 >= 400.0),
    );
    // Better than FRR's kernel-nexthop-group case: ECMP, link down, in the same run, judged from the
    // event: with FRR's nexthop groups the kernel itself reacts to the carrier loss (its NETDEV_CHANGE
    // notifier) before the RTM_NEWLINK that is ribd's detection reaches listeners, so there is no
    // common detection instant; the figures from that RTM_NEWLINK are shown too.
    let mut frr = Vec::new();
    for (case, when, ours, r) in latest_with(
        runs,
        "failover",
        "ecmp, linkdown",
        "ribd",
        "all_survivor_secs",
        &["FRR"],
    ) {
        let Some(f) = in_run(r, "failover", case, "FRR", "all_survivor_secs") else {
            continue;
        };
        let det = in_run(
            r,
            "failover",
            case,
            "ribd",
            "all_survivor_after_detect_secs",
        )
        .zip(in_run(
            r,
            "failover",
            case,
            "FRR",
            "all_survivor_after_detect_secs",
        ));
        frr.push((when, ours, f, det));
    }
    let last = frr.first();
    row(
        s,
        "failover better than FRR's kernel-nexthop-group case (ECMP, link down; from the event)",
        match last {
            Some((when, o, f, det)) => {
                let d = det
                    .map(|(a, b)| {
                        format!(
                            "; from the dut's RTM_NEWLINK ribd {} vs FRR {}",
                            ms(a),
                            ms(b)
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "run {when}: from the event ribd {} vs FRR {}{d}",
                    ms(*o),
                    ms(*f)
                )
            }
            None => String::new(),
        },
        last.map(|(_, o, f, _)| o < f),
    );
    // No blackhole with best + backup.
    let bhs: Vec<(&str, &str, f64, &RunResults)> =
        latest(runs, "failover", "backup", "ribd", "blackhole_secs");
    let any = !bhs.is_empty();
    let bh: Vec<_> = bhs.iter().filter(|f| f.2 > 0.0).collect();
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
                .map(|(c, when, v, _)| format!("{c} (run {when}): {v:.3} s without a usable route"))
                .collect::<Vec<_>>()
                .join("; ")
        },
        any.then_some(bh.is_empty()),
    );
    // XDP forwarding ≥ 3x the kernel at full table: the latest live-frame case with the most routes.
    let fwd = latest(runs, "forward", "live frames", "ribd", "pps");
    let full = fwd.iter().max_by_key(|(c, ..)| routes_in(c));
    let mut text = String::new();
    let mut met = None;
    if let Some((case, _, ours, r)) = full
        && let Some(k) = in_run(r, "forward", case, super::forward::KERNEL, "pps")
    {
        text = format!(
            "{case}: XDP {:.2} Mpps vs kernel {:.2} Mpps = {:.2}x",
            ours / 1e6,
            k / 1e6,
            ours / k
        );
        met = Some(ours / k >= 3.0);
    }
    for (case, _, v, _) in latest(runs, "forward", "BPF_PROG_TEST_RUN", "ribd", "forwarder_ns") {
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

    fn run(started: &str, figs: &[(&str, &str, &str, f64)]) -> RunResults {
        let mut r = RunResults {
            started_utc: started.into(),
            command: String::new(),
            machine: crate::bench::Machine {
                kernel: String::new(),
                cpus: 2,
                cpu_model: String::new(),
                mem_total_mib: 0,
                versions: Vec::new(),
                git_rev: String::new(),
            },
            uptime_before: String::new(),
            uptime_after: String::new(),
            figures: Vec::new(),
            notes: Vec::new(),
        };
        for (case, system, metric, v) in figs {
            r.push(("failover", case, system, metric, "s"), *v, "");
        }
        r
    }

    fn goal_row<'a>(doc: &'a str, goal: &str) -> &'a str {
        doc.lines()
            .find(|l| l.starts_with(&format!("| {goal}")))
            .unwrap_or_else(|| panic!("no row {goal:?} in\n{doc}"))
    }

    const NOTIF: &str = "real 512,621 IPv4, backup, notification";
    const LINK: &str = "real 512,621 IPv4, ecmp, linkdown";

    #[test]
    fn failover_goals_read_the_latest_run_of_each_case() {
        let old = run(
            "2026-11-25T18:00:00Z",
            &[
                (NOTIF, "ribd", "all_survivor_after_detect_secs", 0.030),
                (NOTIF, "ribd", "all_survivor_secs", 0.031),
                (NOTIF, "BIRD 2", "all_survivor_secs", 4.0),
            ],
        );
        let new = run(
            "2026-11-26T01:00:00Z",
            &[
                (NOTIF, "ribd", "all_survivor_after_detect_secs", 0.004),
                (NOTIF, "ribd", "all_survivor_secs", 0.005),
                (NOTIF, "BIRD 2", "all_survivor_secs", 4.2),
            ],
        );
        // Either order of the files: the run's start decides.
        for runs in [
            vec![old.clone(), new.clone()],
            vec![new.clone(), old.clone()],
        ] {
            let mut doc = String::new();
            goals(&mut doc, &runs);
            let row = goal_row(&doc, "failover ≤ 10 ms from detection");
            assert!(row.contains("1 of 1 cases within 10 ms"), "{row}");
            assert!(
                row.contains("backup, notification (run 01:00): 4.0 ms"),
                "{row}"
            );
            assert!(row.ends_with("| yes |"), "{row}");
            let row = goal_row(&doc, "failover ≥ 400x BIRD");
            assert!(row.contains("= 840x"), "{row}");
            assert!(row.ends_with("| yes |"), "{row}");
        }
        // A later run of ribd alone decides the goal from detection but not the comparison with BIRD,
        // which stays with the latest run that had both.
        let alone = run(
            "2026-11-26T02:00:00Z",
            &[
                (NOTIF, "ribd", "all_survivor_after_detect_secs", 0.003),
                (NOTIF, "ribd", "all_survivor_secs", 0.001),
            ],
        );
        let mut doc = String::new();
        goals(&mut doc, &[old.clone(), new.clone(), alone]);
        assert!(goal_row(&doc, "failover ≤ 10 ms from detection").contains("(run 02:00): 3.0 ms"));
        assert!(goal_row(&doc, "failover ≥ 400x BIRD").contains("(run 01:00)"));
        // The latest run missing the goal makes it unmet, whatever older runs said.
        let mut doc = String::new();
        goals(
            &mut doc,
            &[
                new,
                run(
                    "2026-11-26T02:00:00Z",
                    &[(NOTIF, "ribd", "all_survivor_after_detect_secs", 0.012)],
                ),
            ],
        );
        assert!(goal_row(&doc, "failover ≤ 10 ms from detection").ends_with("| **no** |"));
    }

    #[test]
    fn frr_nexthop_group_case_is_compared_within_one_run() {
        let r = run(
            "2026-11-26T01:00:00Z",
            &[
                (LINK, "ribd", "all_survivor_secs", 0.120),
                (LINK, "ribd", "all_survivor_after_detect_secs", 0.003),
                (LINK, "FRR", "all_survivor_secs", 0.090),
                (LINK, "FRR", "all_survivor_after_detect_secs", 0.020),
            ],
        );
        let mut doc = String::new();
        goals(&mut doc, &[r]);
        let row = goal_row(&doc, "failover better than FRR");
        assert!(
            row.contains("from the event ribd 120.0 ms vs FRR 90.0 ms"),
            "{row}"
        );
        assert!(
            row.contains("from the dut's RTM_NEWLINK ribd 3.0 ms vs FRR 20.0 ms"),
            "{row}"
        );
        assert!(row.ends_with("| **no** |"), "{row}");
    }

    #[test]
    fn case_names_are_shortened_to_mode_and_failure() {
        assert_eq!(short_case(NOTIF), "backup, notification");
        assert_eq!(short_case("x"), "x");
    }
}
