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
    /// Remove namespaces left behind by testbed processes that no longer exist.
    Sweep,
    /// Open a BGP session and announce a table as fast as the peer accepts it, then hold it.
    Feed(testbed::feed::FeedArgs),
    /// Accept a BGP session and count (or record) what arrives; report at End-of-RIB or N prefixes.
    Collect(testbed::collect::CollectArgs),
    /// Feed the real 513k table into our collector, BIRD 2 and GoBGP; print prefixes/s and ratios.
    SessionBench(testbed::feed::BenchArgs),
}

fn main() -> Result<()> {
    testbed::netns::install_cleanup_on_signal();
    testbed::netns::sweep_stale();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Demo { keep } => demo::run(keep),
        Cmd::Sweep => Ok(()),
        Cmd::Feed(a) => testbed::feed::run(a),
        Cmd::Collect(a) => testbed::collect::run(a),
        Cmd::SessionBench(a) => testbed::feed::bench(a),
    };
    testbed::netns::delete_all_live();
    result
}
