//! `ribd`: the routing daemon. See README.md for operation and `ribd --help` for options.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The daemon allocates with mimalloc, not glibc's malloc. A table load allocates one attribute set
/// per UPDATE and grows the RIB's bucket vectors and path blocks, freeing the smaller ones; glibc
/// sorts those freed chunks out of its unsorted bin on the next allocation, one cache miss per
/// chunk, and writes the header of the chunk after each one it hands out. That was 15% of the
/// import path (`_int_malloc`, profiled on `rib_load`'s one-peer import). `cargo bench -p ribd
/// --bench rib_load` (whose counting allocator wraps the same allocator), import path, M
/// prefix-paths per CPU-second, glibc → mimalloc run alternately: one peer 2.29 → 2.85, the
/// same table again 3.27 → 4.04, four peers 1.86 → 2.02, 4-way ECMP 1.18 → 1.30.
/// (Through [`ribd::alloc::Mimalloc`], which asks mimalloc's plain entry points for the alignments
/// every block has.)
#[global_allocator]
static ALLOC: ribd::alloc::Mimalloc = ribd::alloc::Mimalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ribd",
    version,
    about = "BGP speaker with an eBPF/XDP forwarding plane"
)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, default_value = "/etc/ribd/ribd.toml")]
    config: PathBuf,
    /// On exit, remove the pinned maps and XDP programs (default: leave them forwarding).
    #[arg(long)]
    flush_on_exit: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Validate a configuration file and print it normalized (peer groups merged, defaults filled in).
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::CheckConfig { file }) => check_config(&file),
        None => run(cli),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match ribd::config::load(file) {
        Ok(l) => {
            println!(
                "# {}: valid ({} peers, {} policies, {} static routes)",
                file.display(),
                l.neighbors.len(),
                l.config.policy.len(),
                l.config.statics.len()
            );
            // Secrets never leave the file they are in.
            let mut shown = l.config.clone();
            for s in shown
                .peer
                .values_mut()
                .map(|p| &mut p.settings)
                .chain(shown.peer_group.values_mut())
            {
                if s.password.is_some() {
                    s.password = Some("<hidden>".into());
                }
            }
            match toml::to_string_pretty(&shown) {
                Ok(t) => println!("{t}"),
                Err(e) => eprintln!("(cannot print the normalized config: {e})"),
            }
            println!("# peers after merging groups and defaults");
            for n in &l.neighbors {
                match toml::to_string_pretty(&std::collections::BTreeMap::from([(
                    n.name.clone(),
                    n,
                )])) {
                    Ok(t) => println!(
                        "[neighbor.{}]\n{}",
                        n.name,
                        t.lines().skip(1).collect::<Vec<_>>().join("\n")
                    ),
                    Err(e) => eprintln!("{}: {e}", n.name),
                }
            }
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", file.display(), errs.len());
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> ExitCode {
    let loaded = match ribd::config::load(&cli.config) {
        Ok(l) => l,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!(
                "ribd: {} error(s) in {}; nothing was started",
                errs.len(),
                cli.config.display()
            );
            return ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIBD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&loaded.config.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ribd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = ribd::daemon::Options {
        config_path: cli.config.clone(),
        flush_on_exit: cli.flush_on_exit,
    };
    match rt.block_on(ribd::daemon::run(loaded, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ribd: {e:#}");
            ExitCode::from(1)
        }
    }
}
