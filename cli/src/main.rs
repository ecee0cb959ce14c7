//! ribctl: the operator's command line for ribd. It talks to the daemon's control API only.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "ribctl", version, about = "Inspect and operate ribd")]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, default_value = ribd::api::DEFAULT_SOCKET, global = true)]
    socket: String,
}

fn main() {
    let cli = Cli::parse();
    eprintln!("ribctl: no command given (daemon socket {})", cli.socket);
    std::process::exit(2);
}
