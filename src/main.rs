//! The `tcplab` command: parse the command line, run the command, turn the
//! outcome into an exit code (0 passed, 1 failed expectation,
//! 2 bad usage or file, 3 environment, 130/143 interrupted).

use std::io::Write;
mod bisect_command;
mod cli;
mod colour;
mod commands;
mod did_you_mean;
mod kept_on_failure;
mod lab_command;
mod man_pages;
mod matrix_command;
mod outcome;
mod progress_view;
mod run_command;
mod terminal_width;

use std::process::ExitCode;

/// Logs go to stderr, never stdout (which may carry --json). RUST_LOG, when
/// set, decides; otherwise -v is info and -vv debug for tcplab's own code.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "off",
        1 => "tcplab=info",
        _ => "tcplab=debug",
    };
    if verbose >= 2 && std::env::var_os("RUST_LOG").is_none() {
        // Agents started on this machine inherit it, so their own processes
        // (iptables, the server) are logged too.
        // SAFETY: called first thing in main, before any thread exists.
        unsafe { std::env::set_var("RUST_LOG", default) };
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    // As the init of a microvm lab guest there is no command line to parse.
    if tcplab::agent::guest_init::is_guest_init() {
        tcplab::agent::guest_init::run();
    }
    let cli = cli::parse();
    init_logging(cli.verbosity());
    colour::choose(cli.color);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            // Errors quote agents and files: no raw controls to the terminal.
            let message = format!("{:#}", failure.error);
            let message = tcplab::terminal_text::escape_controls(&message);
            let _ = writeln!(std::io::stderr(), "tcplab: error: {message}");
            ExitCode::from(failure.code)
        }
    }
}
