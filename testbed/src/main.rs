//! `testbed`: the demo and the tools the test and benchmark suites drive.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod demo;

#[derive(Debug, Parser)]
#[command(
    name = "testbed",
    version,
    about = "Namespace topologies with real peers and traffic"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the demo topology, forward traffic through the XDP program and print what happened.
    Demo {
        /// Keep the topology running after the demo and print how to poke at it.
        #[arg(long)]
        keep: bool,
    },
    /// Run the ribd daemon (the `ribd` library, exactly as the `ribd` binary runs it). The end-to-end
    /// suite starts ribd this way: cargo builds this binary for testbed's tests, so the daemon under test
    /// is always the current source, with no separate `cargo build -p ribd` step that could go stale.
    #[command(hide = true)]
    Ribd {
        #[arg(short, long)]
        config: std::path::PathBuf,
        #[arg(long)]
        flush_on_exit: bool,
    },
    /// Remove namespaces left behind by testbed processes that no longer exist.
    Sweep,
    /// Open a BGP session and announce a table as fast as the peer accepts it, then hold it.
    Feed(testbed::feed::FeedArgs),
    /// Accept a BGP session and count (or record) what arrives; report at End-of-RIB or N prefixes.
    Collect(testbed::collect::CollectArgs),
    /// Feed the real 513k table into our collector, BIRD 2 and GoBGP; print prefixes/s and ratios.
    SessionBench(testbed::feed::BenchArgs),
    /// Packets/s through dut: the XDP forwarder vs kernel forwarding, live frames injected at its ingress.
    FwdBench(testbed::fwdbench::FwdBenchArgs),
    /// ribd against BIRD 2, FRR and GoBGP on the same feed: ingest, failover; JSON results, ratios.
    Bench(testbed::bench::BenchArgs),
    /// One feeder of `testbed bench` (started by it inside the feed namespace).
    #[command(hide = true)]
    BenchFeeder(testbed::bench::feeder::FeederArgs),
}

fn main() -> Result<()> {
    // Before anything else: the daemon installs its own signal handling and must not sweep namespaces.
    if std::env::args().nth(1).as_deref() == Some("ribd") {
        let cli = Cli::parse();
        if let Cmd::Ribd {
            config,
            flush_on_exit,
        } = cli.cmd
        {
            return run_ribd(config, flush_on_exit);
        }
    }
    // A feeder of `testbed bench` owns no namespaces: no sweeping, no signal thread.
    if std::env::args().nth(1).as_deref() == Some("bench-feeder")
        && let Cmd::BenchFeeder(a) = Cli::parse().cmd
    {
        return testbed::bench::feeder::run(a);
    }
    testbed::netns::install_cleanup_on_signal();
    testbed::netns::sweep_stale();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Demo { keep } => demo::run(keep),
        Cmd::Sweep | Cmd::Ribd { .. } => Ok(()),
        Cmd::Feed(a) => testbed::feed::run(a),
        Cmd::Collect(a) => testbed::collect::run(a),
        Cmd::SessionBench(a) => testbed::feed::bench(a),
        Cmd::FwdBench(a) => testbed::fwdbench::run(a).map(|_| ()),
        Cmd::Bench(a) => testbed::bench::run(a),
        Cmd::BenchFeeder(_) => Ok(()),
    };
    testbed::netns::delete_all_live();
    result
}

/// What `ribd --config FILE` does (ribd/src/main.rs `run`).
fn run_ribd(config: std::path::PathBuf, flush_on_exit: bool) -> Result<()> {
    let loaded = match ribd::config::load(&config) {
        Ok(l) => l,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            anyhow::bail!("{} error(s) in {}", errs.len(), config.display());
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIBD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&loaded.config.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    let opts = ribd::daemon::Options {
        config_path: config,
        flush_on_exit,
    };
    rt.block_on(ribd::daemon::run(loaded, opts))
}
