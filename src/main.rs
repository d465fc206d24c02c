//! The `tcplab` command: parse the command line, run the command, turn the
//! outcome into an exit code (0 passed, 1 failed expectation,
//! 2 bad usage or file, 3 environment, 130/143 interrupted).

use std::io::Write;
mod cli;
mod commands;
mod matrix_command;

use std::process::ExitCode;

fn main() -> ExitCode {
    // As the init of a microvm lab guest there is no command line to parse.
    if tcplab::agent::guest_init::is_guest_init() {
        tcplab::agent::guest_init::run();
    }
    let cli = cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "tcplab: error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
