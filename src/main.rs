//! The `tcplab` command: parse the command line, run the command, turn the
//! outcome into an exit code (DESIGN.md: 0 passed, 1 failed expectation,
//! 2 bad usage or file, 3 environment, 130/143 interrupted).

mod cli;
mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("tcplab: error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
