//! The options of a run: an experiment's (`RunOptions`, shared by `run`
//! and every built-in experiment), the matrix's and bisect's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tcplab::lab::microvm::qemu::AccelChoice;

use super::lab_args::LabArgs;

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
    #[command(subcommand)]
    pub action: Option<MatrixAction>,
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
    #[command(flatten)]
    pub outputs: MatrixFiles,
    /// No progress lines on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

/// What `tcplab matrix` does besides running kernels.
#[derive(Debug, Clone, Subcommand)]
pub enum MatrixAction {
    /// Merge the `matrix --json` documents of several runs into one matrix
    ///
    /// One kernel per CI job, or kernels run on different machines: prints
    /// the table (or --json, --markdown) one run over all of them would
    /// print, where the kernels differ worked out again over all of them.
    /// The documents must be of the same experiments, each kernel in one of
    /// them. Exit 1 when an expectation failed on any kernel.
    Merge(MergeArgs),
}

/// `tcplab matrix merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// `tcplab matrix --json` documents; their kernels become the columns,
    /// in this order
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print the merged matrix as one JSON document (as `matrix --json`)
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print it as Markdown: the table, where the kernels differ, the
    /// verdict (for a CI run's summary page)
    #[arg(long)]
    pub markdown: bool,
    #[command(flatten)]
    pub outputs: MatrixFiles,
}

/// The files a matrix, run or merged, can also be written to.
#[derive(Debug, Clone, Args)]
pub struct MatrixFiles {
    /// Also write JUnit XML to FILE: a testsuite per experiment and kernel
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also draw the matrix as a page: one coloured square per case and
    /// kernel, rows where kernels differ marked, each square's story on hover
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
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
    /// Run on a netns lab that stays up when a case fails, to step into
    /// with `tcplab lab exec` (its sockets as the run left them; the run's
    /// firewall rules and servers are gone); taken down when every case
    /// passes, or when the run is interrupted or killed
    #[arg(long, conflicts_with_all = ["on", "ssh_config"])]
    pub keep_on_failure: bool,
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
