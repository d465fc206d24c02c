//! The command line, declared with clap. Parsing only: `commands` does the work.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::colour::ColorChoice;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tcplab::experiment::catalogue;
use tcplab::tcp_state::SocketState;

mod lab_args;
mod run_args;
mod serve_args;

pub use lab_args::{CleanArgs, KeptKind, KeptLabArgs, LabAction};
pub use run_args::{
    BisectArgs, ExperimentCommand, MatrixAction, MatrixArgs, MatrixFiles, MergeArgs, RunOptions,
};
pub use serve_args::ServeArgs;

const ABOUT: &str = "Reproduce TCP socket-state experiments between two hosts and check what the kernel really does";

const LONG_ABOUT: &str = "\
Reproduce TCP socket-state experiments between two hosts, c1 (client) and c2
(server), and check what the kernel really does.

The first experiments reproduce the article on SO_REUSEADDR: a server killed
while its connection sits in TIME_WAIT or FIN_WAIT2 cannot bind its port again
unless SO_REUSEADDR is set, on the old socket and on the new one.

Without VMs, c1 and c2 are two network namespaces on this machine, joined by a
veth pair (10.211.55.5 and 10.211.55.10, the article's addresses). As root
tcplab creates them directly; as a normal user it first enters a user namespace
of its own. Nothing outside those namespaces is changed.";

/// `0.1.0 (commit 86f2894a1b2c)`: the crate's version and the commit it
/// was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TCPLAB_COMMIT"),
    ")"
);

const EXIT_CODES: &str = "\
Exit codes:
  0  every expectation held
  1  an expectation failed (the report says what was expected and what was seen)
  2  bad usage or a bad experiment file
  3  this environment can't run it (privileges, missing iptables, …)
  130/143  interrupted by SIGINT/SIGTERM, after cleaning up";

#[derive(Debug, Parser)]
#[command(name = "tcplab", version = VERSION, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log to stderr: -v every agent request and reply (host, step,
    /// duration), -vv also the processes started (ssh, qemu, iptables…).
    /// RUST_LOG=tcplab=debug does the same
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour the verdicts on a terminal: auto (not with NO_COLOR set),
    /// always or never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a built-in experiment by name, or an experiment file of your own
    /// (docs/experiments.md has the format)
    Run {
        /// A built-in experiment's name, or an experiment file (TOML)
        #[arg(value_name = "NAME|FILE")]
        experiment: String,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Run every built-in experiment (slow ones only with --slow) and print
    /// one summary; netns runs them all at once
    All {
        #[command(flatten)]
        options: RunOptions,
        /// Include the slow experiments (rebind timelines)
        #[arg(long)]
        slow: bool,
    },
    /// One table of experiments on several kernels, side by side
    ///
    /// Each --kernel is a column: `host` is this machine's kernel (the netns
    /// lab); a Debian kernel line (6.12), build (6.12.43), `all` (every
    /// line) or a vmlinuz file boots two VMs of the microvm lab. Rows where
    /// kernels disagree are marked and listed; any failed expectation on
    /// any kernel exits 1. `tcplab matrix merge FILE…` puts the --json
    /// documents of several runs (one kernel per CI job) into one matrix.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Matrix(MatrixArgs),
    /// The first Debian kernel build whose outcome for one case differs
    ///
    /// Among the archive's builds from --good to --bad (in version order,
    /// across lines or within one), boots the fewest to name the first build
    /// whose outcome (the state the kernel showed and what the probe gave)
    /// for that case is not the good build's. Prints each step and the
    /// answer with the number of boots; exit 0 when it found one.
    Bisect(BisectArgs),
    /// List the built-in experiments and what each one teaches
    List {
        /// Print JSON instead of text (docs/json.md)
        #[arg(long)]
        json: bool,
    },
    /// Show the TCP sockets of this network namespace, like `netstat -tan`
    ///
    /// Read from the kernel over sock_diag, TIME_WAIT and orphaned FIN_WAIT2
    /// connections included, with the time left on their timers.
    Sockets {
        /// Only sockets with this local or remote port
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// Only sockets in this state (FIN_WAIT2, time-wait, …)
        #[arg(long)]
        state: Option<SocketState>,
        /// Print JSON instead of a table (docs/json.md)
        #[arg(long)]
        json: bool,
    },
    /// The server an experiment kills: listen, answer every client with a
    /// greeting and close (the article's ReuseAddress.java)
    Serve(ServeArgs),
    /// Print a shell completion script: `source <(tcplab completions bash)`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `tcplab man | man -l -`; with --dir,
    /// write a page per subcommand there (`tcplab.1`, `tcplab-run.1`, …)
    Man {
        /// Write the pages into this directory instead of one page to stdout
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Manage the lab's hosts
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// The agent that runs on each host, speaking JSON lines on stdin/stdout
    #[command(hide = true)]
    Agent {
        /// Enter a new network namespace first (netns lab)
        #[arg(long)]
        unshare_net: bool,
        /// Remove this upload directory on exit (ssh lab)
        #[arg(long)]
        remove_on_exit: Option<PathBuf>,
        /// Refuse to serve unless this executable has this SHA-256 (ssh lab)
        #[arg(long)]
        expect_sha256: Option<String>,
        /// Join the namespaces of process PID started at START (a host of a
        /// lab that is up) instead of making new ones
        #[arg(long, value_name = "PID:START", value_parser = pid_and_start, conflicts_with = "unshare_net")]
        join: Option<(u32, u64)>,
    },
    /// A name that is no command and no built-in experiment: answered with
    /// a did-you-mean
    #[command(external_subcommand)]
    Experiment(Vec<OsString>),
    /// A built-in experiment, by name, with its options (parsed as a
    /// subcommand of its own: see [`command_with_experiments`])
    #[command(skip)]
    Builtin {
        name: String,
        run: Box<ExperimentCommand>,
    },
}

impl Cli {
    /// -v given anywhere: before the command, or after a built-in
    /// experiment's name (whose options are parsed later).
    pub fn verbosity(&self) -> u8 {
        let after_experiment = match &self.command {
            Command::Builtin { run, .. } => run.verbose,
            Command::Experiment(args) => args
                .iter()
                .take_while(|a| *a != "--")
                .filter_map(|a| a.to_str())
                .map(|a| match a {
                    "--verbose" => 1,
                    short
                        if short.len() > 1
                            && short.starts_with('-')
                            && short[1..].chars().all(|c| c == 'v') =>
                    {
                        short.len() as u8 - 1
                    }
                    _ => 0,
                })
                .sum(),
            _ => 0,
        };
        self.verbose.saturating_add(after_experiment)
    }
}

/// The whole command line with the built-in experiments as subcommands of
/// their own, for completions and the manual page.
pub fn command_with_experiments() -> clap::Command {
    let mut command = Cli::command();
    for name in catalogue::names() {
        let title = catalogue::find(name)
            .and_then(Result::ok)
            .map(|e| e.spec.title.to_string())
            .unwrap_or_default();
        let teaches = catalogue::find(name)
            .and_then(Result::ok)
            .map(|e| e.spec.teaches.to_string())
            .unwrap_or_default();
        command = command.subcommand(
            ExperimentCommand::command()
                .name(name)
                .about(title)
                .long_about(teaches),
        );
    }
    command
}

/// Parses the process arguments; the built-in experiments are subcommands
/// (`--help` lists them beside the commands).
/// Usage errors exit with 2 (clap's convention, and tcplab's).
pub fn parse() -> Cli {
    // The experiments are subcommands of their own, so `tcplab help NAME`
    // and `tcplab NAME --help` both tell the truth about their options.
    let matches = command_with_experiments()
        .after_help(EXIT_CODES)
        .get_matches();
    if let Some((name, run)) = matches.subcommand()
        && catalogue::names().any(|known| known == name)
    {
        let run = ExperimentCommand::from_arg_matches(run).unwrap_or_else(|e| e.exit());
        return Cli {
            command: Command::Builtin {
                name: name.to_string(),
                run: Box::new(run),
            },
            verbose: matches.get_count("verbose"),
            color: matches
                .get_one::<ColorChoice>("color")
                .copied()
                .unwrap_or_default(),
        };
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `PID:START`: a process named by its pid and its start time.
fn pid_and_start(text: &str) -> Result<(u32, u64), String> {
    let (pid, start) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: give PID:START"))?;
    let pid = pid.parse().map_err(|e| format!("pid {pid:?}: {e}"))?;
    let start = start
        .parse()
        .map_err(|e| format!("start time {start:?}: {e}"))?;
    Ok((pid, start))
}
