//! The `executor` binary: parses arguments and maps the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    validator::quiet_error_backtraces();
    let cli = executor::cli::Cli::parse();
    match executor::cli::run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            executor::exit::ExitStatus::Error.into()
        }
    }
}
