//! ribctl: the operator's command line for ribd (see the library's module docs).

use std::io::{self, Write};

use clap::Parser;
use ribctl::args::Cli;
use ribctl::commands::{Failure, run};

fn main() {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = run(&cli, &mut out);
    let flushed = out.flush();
    let code = match (result, flushed) {
        (Ok(code), Ok(())) => code,
        // Output cut short by the reader (`ribctl show rib | head`): nothing to report.
        (Ok(_), Err(e)) | (Err(Failure::Output(e)), _) if e.kind() == io::ErrorKind::BrokenPipe => {
            0
        }
        (Ok(_), Err(e)) | (Err(Failure::Output(e)), _) => {
            eprintln!("ribctl: writing output: {e}");
            ribctl::error::EXIT_API
        }
        (Err(Failure::Error(e)), _) => {
            eprintln!("ribctl: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
