//! `testbed bench --sections churn` against ribd on a small table, end to end: the feeder loads the
//! table, sends the churn stream, ribd's UPDATE counter says when it is absorbed, and afterwards its
//! RIB and FIB hold the table plus the sentinel (the run writes a note when they do not). Also the
//! result file and the generated document. Timings are recorded, never asserted. Needs root.

use clap::Parser;
use testbed::bench::{BenchArgs, RunResults};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

#[test]
fn churn_section_runs_against_ribd_and_leaves_the_table_plus_the_sentinel() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (namespaces, XDP)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let results = dir.path().join("results");
    let doc = dir.path().join("BENCHMARKS.md");
    let cli = Cli::parse_from([
        "bench",
        "--sections",
        "churn",
        "--systems",
        "ribd,gobgp",
        "--skip",
        "gobgp:churn=not needed by this test",
        "--prefixes",
        "3000",
        "--churn",
        "4000",
        "--repeat",
        "1",
        "--results",
        results.to_str().expect("utf-8 path"),
        "--doc",
        doc.to_str().expect("utf-8 path"),
    ]);
    testbed::bench::set_exe(env!("CARGO_BIN_EXE_testbed").into());
    testbed::bench::run(cli.bench).unwrap_or_else(|e| panic!("{e:#}"));

    let file = std::fs::read_dir(&results)
        .expect("results dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .expect("a result file");
    let r: RunResults =
        serde_json::from_str(&std::fs::read_to_string(file.path()).expect("readable"))
            .expect("parses");
    let fig = |m: &str| {
        r.figures
            .iter()
            .find(|f| f.section == "churn" && f.system == "ribd" && f.metric == m)
            .unwrap_or_else(|| panic!("no ribd {m} in {:#?}", r.figures))
    };
    for m in [
        "quiesce_rib_secs",
        "quiesce_fib_secs",
        "rib_changes_per_s",
        "fib_changes_per_s",
    ] {
        let f = fig(m);
        assert_eq!(f.values.len(), 1, "{f:?}");
        assert!(f.values[0] > 0.0, "{f:?}");
        // A note means the final RIB/FIB counts were not the table plus the sentinel.
        assert!(f.note.is_empty(), "{f:?}");
    }
    assert!(
        r.figures.iter().all(|f| f.system != "GoBGP"),
        "GoBGP was skipped"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("skipped GoBGP in churn") && n.contains("not needed by this test")),
        "{:?}",
        r.notes
    );
    let text = std::fs::read_to_string(&doc).expect("doc written");
    assert!(text.contains("### churn: real 3,000 IPv4"), "{text}");
    assert!(text.contains("`quiesce_rib_secs`"), "{text}");
}
