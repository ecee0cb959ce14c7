//! Forwarding (`--sections forward`): runs `testbed fwd-bench` (live frames injected at the dut's
//! ingress; XDP forwarder vs the kernel forwarding the same routes; XDP classifier vs nftables dropping)
//! and records its figures with the others, so BENCHMARKS.md's goals table reads them too:
//!
//! | case | systems | metric |
//! |---|---|---|
//! | `live frames, N routes` | ribd (XDP forwarder), Linux kernel | `pps` delivered at the sinks |
//! | `BPF_PROG_TEST_RUN, N routes` | ribd | `whole_ns`, `forwarder_ns` (whole minus the harness's rewrite) |
//! | `drop, N rules` | ribd (XDP classifier), nftables (netdev ingress) | `drop_pps` |

use anyhow::Result;

use super::{BenchArgs, RunResults};
use crate::fwdbench::{FwdBenchArgs, run as fwd_run};

/// System names of this section in the tables.
pub const KERNEL: &str = "Linux kernel";
pub const NFTABLES: &str = "nftables";

pub fn run(
    a: &BenchArgs,
    res: &mut RunResults,
    save: &dyn Fn(&RunResults) -> Result<()>,
) -> Result<()> {
    println!("\n== forward: testbed fwd-bench ==");
    let r = fwd_run(FwdBenchArgs {
        prefixes: a.prefixes,
        packets: a.packets,
        runs: a.repeat.max(1),
        batch: 64,
        cpu: 0,
        json: None,
        drop_rules: 1000,
        no_drop: false,
        drop_only: false,
    })?;
    record(&r, res);
    save(res)?;
    let mut cases: Vec<String> = Vec::new();
    for f in res.figures.iter().filter(|f| f.section == "forward") {
        if !cases.contains(&f.case) {
            cases.push(f.case.clone());
        }
    }
    for c in cases {
        println!("  {c}");
        super::report::print_ratios(res, "forward", &c);
    }
    Ok(())
}

fn routes_label(n: usize) -> String {
    if n == 1 {
        "1 route (default)".to_string()
    } else {
        format!("{} routes (real table)", super::table::thousands(n))
    }
}

/// Turns fwd-bench's results into figures (one value per run).
pub fn record(r: &crate::fwdbench::Results, res: &mut RunResults) {
    for c in &r.cases {
        let case = format!("64-byte UDP, live frames, {}", routes_label(c.routes));
        let sys = if c.system.starts_with("ribd") {
            "ribd"
        } else {
            KERNEL
        };
        let note = format!(
            "delivered {:.1}% of the injected frames, {:.0}% via sink 1",
            c.delivered * 100.0,
            c.split * 100.0
        );
        for v in &c.runs {
            res.push(("forward", &case, sys, "pps", "/s"), *v, &note);
        }
    }
    for p in &r.prog {
        let case = format!("BPF_PROG_TEST_RUN, {}", routes_label(p.routes));
        for v in &p.whole_ns {
            res.push(("forward", &case, "ribd", "whole_ns", "ns"), *v, "");
        }
        for v in &p.forwarder_ns {
            res.push(("forward", &case, "ribd", "forwarder_ns", "ns"), *v, "");
        }
    }
    for d in &r.drop {
        // the live-frame source (and its harness) alone is a ceiling for both systems, not one of them
        if d.system == crate::fwdbench::SOURCE_CEILING || d.system == crate::fwdbench::HARNESS_FLOOR
        {
            continue;
        }
        let case = format!(
            "64-byte UDP, every frame dropped, {} rule{}",
            super::table::thousands(d.rules),
            if d.rules == 1 { "" } else { "s" }
        );
        let sys = if d.system.starts_with("ribd") {
            "ribd"
        } else {
            NFTABLES
        };
        let note = if d.leaked > 0 {
            format!("{} frames leaked to the sinks", d.leaked)
        } else {
            String::new()
        };
        for v in &d.runs {
            res.push(("forward", &case, sys, "drop_pps", "/s"), *v, &note);
        }
    }
}
