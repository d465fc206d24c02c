//! The command line, declared with clap. Parsing only: `commands` does the work.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::colour::ColorChoice;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tcplab::experiment::catalogue;
use tcplab::lab::hosts::Family;
use tcplab::lab::microvm::qemu::AccelChoice;
use tcplab::lab::{LabChoice, LabRequest};
use tcplab::tcp_state::SocketState;

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
    /// any kernel exits 1.
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
        /// Print a JSON array instead of text
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
        /// Print a JSON array instead of a table
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

#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Start c1 and c2 and keep them up, to step into by hand (`lab exec`,
    /// `lab shell`) until `lab down`. Returns once both are ready. The netns
    /// lab only, for now
    Up {
        /// The lab's name (default: lab1, lab2, …, the first free)
        #[arg(long)]
        name: Option<String>,
        /// IPv4 or IPv6 between c1 and c2
        #[arg(long, value_enum, default_value_t = Family::V4)]
        family: Family,
    },
    /// The labs of this user that are up: name, kind, kernel, addresses,
    /// since when, and whether their keeper still runs
    Status {
        /// Print one JSON document
        #[arg(long)]
        json: bool,
    },
    /// Run a command on c1 or c2 of a lab that is up, with stdin, stdout,
    /// stderr, the terminal and the exit code passed through; c1 and c2
    /// reach each other by name: `tcplab lab exec c1 -- nc c2 8080`
    Exec {
        /// The lab (needed only when several are up)
        #[arg(long)]
        name: Option<String>,
        /// The host
        #[arg(value_parser = ["c1", "c2"])]
        host: String,
        /// The command and its arguments, after --
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// An interactive shell ($SHELL, or /bin/sh) on c1 or c2 of a lab that is up
    Shell {
        /// The lab (needed only when several are up)
        #[arg(long)]
        name: Option<String>,
        /// The host
        #[arg(value_parser = ["c1", "c2"])]
        host: String,
    },
    /// Take a lab down: its hosts undo what they did, and nothing is left
    Down {
        /// The lab (needed only when several are up)
        #[arg(long)]
        name: Option<String>,
    },
    /// The keeper of a lab that is up (started by `lab up`)
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = Family::V4)]
        family: Family,
    },
    /// Undo what killed agents left on the hosts, exactly as their journals
    /// (/run/tcplab/sessions) list it: their firewall rules, sysctls, server
    /// and upload; and remove this user's labs whose keeper died (`lab up`).
    /// Live runs, other users' processes and rules that are not tcplab's are
    /// never touched (docs/security.md).
    Clean {
        #[command(flatten)]
        lab: CleanArgs,
    },
    /// The Debian kernel lines and builds the microvm lab can boot
    /// (--kernel), read from the signed indexes of every suite this
    /// machine's mirror carries, and which are cached
    Kernels {
        /// Print one JSON document: every line with every build
        #[arg(long)]
        json: bool,
        /// Read the archive's indexes again now (they are kept for a day)
        #[arg(long)]
        refresh: bool,
        /// Empty the kernel cache: kernels, indexes and initramfs images
        #[arg(long, conflicts_with_all = ["json", "refresh"])]
        prune: bool,
    },
    /// The Debian mirror tcplab fetches kernels and the box from: the first
    /// Debian archive in this machine's apt sources, or TCPLAB_DEBIAN_MIRROR
    Mirror,
    /// Boot one VM of the microvm lab and connect this terminal's stdin and
    /// stdout to its agent: type one JSON request per line
    /// (`{"op":"hello"}`, `{"op":"sockets","port":22}`), read one reply per
    /// line. Closing stdin (Ctrl-D) powers the VM off.
    Boot {
        /// A Debian kernel version (5.10, 6.1, 6.12) or a vmlinuz file
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// The lib/modules/<release> directory of a kernel given as a file
        #[arg(long, value_name = "DIR")]
        modules: Option<PathBuf>,
        /// auto (KVM when a trial boot shows that it really runs guests,
        /// software emulation otherwise), kvm, or tcg (software emulation)
        #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
        accel: AccelChoice,
    },
}

/// `tcplab bisect`.
#[derive(Debug, Clone, Args)]
pub struct BisectArgs {
    /// A built-in experiment or an experiment file
    #[arg(value_name = "EXPERIMENT|FILE")]
    pub experiment: String,
    /// The case to bisect, counted from 1 as reports count them
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub case: u16,
    /// A build with the old outcome (6.1.170; `tcplab lab kernels --json`)
    #[arg(long, value_name = "BUILD")]
    pub good: String,
    /// A newer build with another outcome
    #[arg(long, value_name = "BUILD")]
    pub bad: String,
    /// KVM or software emulation for the VMs (as for --lab microvm)
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Print one JSON document instead of the steps
    #[arg(long)]
    pub json: bool,
    /// Also draw the search as a page: the candidates in version order, one
    /// square each, coloured by what the case showed where a step booted it
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// No step lines on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

/// `tcplab matrix`.
#[derive(Debug, Clone, Args)]
pub struct MatrixArgs {
    /// Built-in experiments (or experiment files) to run, or --all
    #[arg(value_name = "EXPERIMENT|FILE")]
    pub experiments: Vec<String>,
    /// Every built-in experiment (slow ones only with --slow)
    #[arg(long)]
    pub all: bool,
    /// With --all: include the slow experiments
    #[arg(long)]
    pub slow: bool,
    /// A kernel column (repeat it): host (this machine's kernel), a Debian
    /// kernel line (6.12: its newest build), one build (6.12.43), all (every
    /// line, oldest first; `tcplab lab kernels` lists them) or a vmlinuz file
    #[arg(
        long = "kernel",
        value_name = "host|LINE|BUILD|all|FILE",
        required = true
    )]
    pub kernels: Vec<String>,
    /// The lib/modules/<release> directory of a kernel given as a file
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// KVM or software emulation for the VMs (as for --lab microvm)
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Boot the VMs even where snapshots of them exist, and save none
    /// (microvm lab: by default a kernel's first boot saves both guests
    /// once their agents are ready and later runs restore them)
    #[arg(long)]
    pub cold: bool,
    /// How many kernels run at once (default: one per core, and no more
    /// than memory allows at 512 MiB per kernel)
    #[arg(long, short, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: Option<u16>,
    /// Print one JSON document instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also write JUnit XML to FILE: a testsuite per experiment and kernel
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also draw the matrix as a page: one coloured square per case and
    /// kernel, rows where kernels differ marked, each square's story on hover
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// No progress lines on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

/// Which lab, and how to reach its hosts.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// Which lab runs the experiment. By default: the Vagrant VMs c1 and c2 of
    /// this repository when both run, two hosts over ssh with --ssh-config,
    /// otherwise two network namespaces on this machine. The report says which.
    #[arg(long, value_enum, default_value_t = LabChoice::Auto)]
    pub lab: LabChoice,
    /// An ssh config with Host entries c1 and c2 (implies --lab ssh). Vagrant
    /// writes one with `vagrant ssh-config c1 c2`
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// c2's address for the experiment on real hosts, instead of the subnet
    /// c1 and c2 are found to share besides the one ssh uses
    #[arg(long, value_name = "ADDR")]
    pub server_addr: Option<IpAddr>,
    /// Run over IPv4 or IPv6 (netns lab: fd00::5 and fd00::10; real hosts: a
    /// shared IPv6 subnet)
    #[arg(long, value_enum, default_value_t = Family::V4)]
    pub family: Family,
    /// The microvm lab's kernel: a Debian cloud kernel by version (5.10, 6.1,
    /// 6.12; fetched once with this machine's apt sources and cached), or a
    /// vmlinuz file (with --modules). Default: 6.1
    #[arg(long, value_name = "VERSION|FILE")]
    pub kernel: Option<String>,
    /// The lib/modules/<release> directory of a --kernel FILE
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// The microvm lab's accelerator: KVM when a trial boot shows that it
    /// really runs guests (auto), or always kvm, or tcg (software emulation)
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Boot the VMs even where snapshots of them exist, and save none
    /// (microvm lab: by default a kernel's first boot saves both guests
    /// once their agents are ready and later runs restore them)
    #[arg(long)]
    pub cold: bool,
    /// Run on the hosts of a lab that is up (`tcplab lab up --name NAME`),
    /// to watch the cases there with `tcplab lab exec`; the lab stays up
    #[arg(long, value_name = "NAME")]
    pub on: Option<String>,
}

impl LabArgs {
    pub fn request(&self) -> LabRequest {
        LabRequest {
            choice: self.lab,
            ssh_config: self.ssh_config.clone(),
            server_addr: self.server_addr,
            family: self.family,
            kernel: self.kernel.clone(),
            modules: self.modules.clone(),
            accel: self.accel,
            cold: self.cold,
            on: self.on.clone(),
        }
    }
}

/// Options of every experiment run.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// Print one JSON document instead of the table (every field: docs/json.md)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lab: LabArgs,
    /// No progress lines on stderr
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the results as JUnit XML to FILE (one testcase per case)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also draw the first case to FILE.html (or FILE.svg): a ladder diagram
    /// of the packets captured on both hosts, and c2's states over time
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also write every case's packets, as each host captured them, to
    /// pcapng files for Wireshark or tshark:
    /// DIR/<experiment>-case<N>-c1.pcapng and …-c2.pcapng (DIR is created)
    #[arg(long, value_name = "DIR")]
    pub pcap: Option<PathBuf>,
    /// On ssh and Vagrant hosts, let the experiment change kernel settings
    /// of the whole host (tcp_fin_timeout, the port range, …; put back
    /// afterwards, also after a crash with `tcplab lab clean`). Without it
    /// such an experiment is refused there, and tcplab's own TIME_WAIT guard
    /// (tcp_rfc1337) is left out. Namespaces and microvm guests need no such
    /// permission: their settings are the lab's own
    #[arg(long)]
    pub allow_host_sysctl: bool,
}

/// `tcplab <experiment> [options]`: the options after a built-in experiment's name.
#[derive(Debug, Parser)]
pub struct ExperimentCommand {
    #[command(flatten)]
    pub options: RunOptions,
    /// Log to stderr: -v agent requests and replies, -vv also the processes started
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
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

/// The flags of `tcplab serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,
    /// SO_REUSEADDR on the listening socket: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub reuseaddr: bool,
    /// SO_REUSEPORT on the listening socket: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub reuseport: bool,
    /// Close connections with RST (SO_LINGER 0) instead of FIN: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub linger_zero: bool,
    /// Read until the client closes, then close: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub close_after_client: bool,
    /// What to write before closing each connection
    #[arg(long, default_value = "Hello\n")]
    pub greeting: String,
    /// An MPTCP socket (IPPROTO_MPTCP) instead of TCP: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub mptcp: bool,
    /// IPV6_V6ONLY on an IPv6 listening socket: 0 or 1 (unset: the kernel's default)
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one())]
    pub v6only: Option<bool>,
    /// TCP_LINGER2 on accepted connections, in seconds: how long an
    /// orphaned FIN_WAIT2 lives instead of tcp_fin_timeout (-1: reset at once)
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(tcplab::agent::programs::serve::LINGER2_S))]
    pub linger2: Option<i32>,
    /// Take every option from one JSON line on stdin instead of the flags
    /// (how an agent tells a server it started ahead of time what to serve)
    #[arg(long, conflicts_with_all = ["bind", "reuseaddr", "reuseport", "linger_zero",
        "close_after_client", "greeting", "mptcp", "v6only", "linger2"])]
    pub options_from_stdin: bool,
}

/// `0` or `1`, as the flags of `tcplab serve` take a socket option.
fn zero_or_one() -> impl clap::builder::TypedValueParser<Value = bool> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["0", "1"]).map(|value| value == "1")
}

/// Where `tcplab lab clean` looks: the labs whose hosts keep journals.
#[derive(Debug, Clone, Args)]
pub struct CleanArgs {
    /// The hosts to clean: the Vagrant VMs, the hosts of --ssh-config, or
    /// (auto) whichever of those is there; netns and microvm labs leave
    /// nothing on a host to clean
    #[arg(long, value_enum, default_value_t = LabChoice::Auto)]
    pub lab: LabChoice,
    /// An ssh config with Host entries c1 and c2 (implies --lab ssh)
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

impl CleanArgs {
    pub fn request(&self) -> LabRequest {
        LabRequest {
            choice: self.lab,
            ssh_config: self.ssh_config.clone(),
            ..LabRequest::default()
        }
    }
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
