//! `tcplab man [--dir DIR]`: the manual, from the command tree itself
//! (clap_mangen), with the built-in experiments as subcommands and an
//! ENVIRONMENT section naming every variable tcplab reads. One page on
//! stdout, or with `--dir` a page per subcommand (`tcplab.1`,
//! `tcplab-run.1`, `tcplab-lab-up.1`, …), as the pages' SEE ALSO-style
//! references name them.

use std::path::Path;

use anyhow::{Context, anyhow};

use crate::outcome::{Failure, emit, environment, usage};
use tcplab::output_file::{OutputFile, SHARED};

/// Every environment variable tcplab reads, and what it does.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "TCPLAB_DEBIAN_MIRROR",
        "The Debian mirror kernels and the Vagrant box are fetched from, instead of the first Debian archive in this machine's apt sources.",
    ),
    (
        "TCPLAB_DEBIAN_SECURITY_MIRROR",
        "The Debian security archive, instead of the one in this machine's apt sources.",
    ),
    (
        "TCPLAB_IPTABLES",
        "The iptables binary the agents run, instead of the first in PATH or an sbin directory.",
    ),
    (
        "TCPLAB_IP6TABLES",
        "The ip6tables binary the agents run over IPv6, likewise.",
    ),
    (
        "TCPLAB_AGENT_TIMEOUT_MS",
        "How long an ordinary agent request may take before the agent counts as hung (default 10000).",
    ),
    (
        "TCPLAB_BOOT_TIMEOUT_S",
        "How long the microvm lab waits for a guest's agent to answer (default 180).",
    ),
    (
        "TCPLAB_MICROVM_CONSOLE",
        "1: copy every line of the guests' consoles to stderr, the kernel's boot messages included.",
    ),
    (
        "TCPLAB_PAUSE_BEFORE",
        "firewall, serve, connect, kill or probe: every case holds before that step until SIGUSR1 (for fault tests).",
    ),
    (
        "XDG_CACHE_HOME",
        "Where kernels, initramfs images and saved guests are kept (tcplab/ under it; root's is always ~root/.cache).",
    ),
    (
        "XDG_RUNTIME_DIR",
        "Where a user's labs that are up (tcplab lab up) keep their records; root's are in /run/tcplab/labs.",
    ),
    (
        "VAGRANT_CWD",
        "The Vagrant project of the vagrant lab, instead of the current directory or this repository.",
    ),
    (
        "NO_COLOR",
        "Set and not empty: no colour, where --color auto would colour a terminal's verdicts.",
    ),
    (
        "RUST_LOG",
        "Log filter, as -v sets it (tcplab=debug logs every agent request and every process started).",
    ),
];

/// The ENVIRONMENT section, in roff.
fn environment_section() -> String {
    let mut roff = String::from(".SH ENVIRONMENT\n");
    for (name, meaning) in ENVIRONMENT {
        roff.push_str(&format!(
            ".TP\n\\fB{name}\\fR\n{}\n",
            meaning.replace('-', "\\-")
        ));
    }
    roff
}

/// One page: clap_mangen's, then the ENVIRONMENT section.
fn page(command: clap::Command) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut bytes)
        .context("rendering the manual page")
        .map_err(environment)?;
    bytes.extend_from_slice(environment_section().as_bytes());
    Ok(bytes)
}

/// `tcplab man`: the whole tree's page on stdout, or a page per
/// subcommand in `dir`.
pub fn man(dir: Option<&Path>) -> Result<u8, Failure> {
    let mut tree = crate::cli::command_with_experiments().disable_help_subcommand(true);
    tree.build();
    let Some(dir) = dir else {
        emit(&String::from_utf8_lossy(&page(tree)?));
        return Ok(0);
    };
    if !dir.is_dir() {
        return Err(usage(anyhow!("--dir {}: no such directory", dir.display())));
    }
    let written = write_pages(tree, dir)?;
    emit(&format!("{written} pages in {}\n", dir.display()));
    Ok(0)
}

/// Writes `command`'s page and those of its visible subcommands; returns
/// how many.
fn write_pages(command: clap::Command, dir: &Path) -> Result<usize, Failure> {
    let mut written = 0;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub.clone(), dir)?;
    }
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let file = OutputFile::create(&path, SHARED)
        .with_context(|| format!("cannot write --dir {}", path.display()))
        .map_err(usage)?;
    file.write_and_commit(&page(command)?)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(usage)?;
    Ok(written + 1)
}
