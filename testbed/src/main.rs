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
}

fn main() -> Result<()> {
    testbed::netns::install_cleanup_on_signal();
    testbed::netns::sweep_stale();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Demo { keep } => demo::run(keep),
        Cmd::Sweep => Ok(()),
    };
    testbed::netns::delete_all_live();
    result
}
