//! Firewall rules an experiment puts on a host, applied with the real `iptables`.
//!
//! A rule is typed data, never a command line: an experiment file can pick the
//! chain (INPUT or OUTPUT of the filter table), ports, TCP flags and the target,
//! and this module turns that into an argument vector (no shell). Every rule
//! carries a comment tag (`tcplab agent <pid>`) so a rule a crashed run left on a
//! real host can be recognised and reaped, and the agent deletes every rule it
//! added when its session ends.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::agent::error::AgentError;
use crate::process::find_program;
use crate::protocol::{AgentErrorKind, FirewallRule};

/// The comment every tcplab rule carries, followed by the agent's pid.
pub const RULE_TAG_PREFIX: &str = "tcplab agent";

/// A rule as it went onto the host: the tool and its exact `--append`
/// arguments, tag included. The same arguments with `--delete` remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    pub tool: Tool,
    pub arguments: Vec<String>,
}

/// The rules one agent session added, so that it can remove them all.
pub struct FirewallSession {
    tag: String,
    applied: Vec<AppliedRule>,
}

impl FirewallSession {
    pub fn new(agent_pid: u32) -> FirewallSession {
        FirewallSession {
            tag: format!("{RULE_TAG_PREFIX} {agent_pid}"),
            applied: Vec::new(),
        }
    }

    /// What adding `rule` (with ip6tables when `ipv6`) will run, so that it
    /// can be journaled before it runs.
    pub fn plan(&self, rule: &FirewallRule, ipv6: bool) -> AppliedRule {
        let tool = if ipv6 {
            Tool::Ip6tables
        } else {
            Tool::Iptables
        };
        AppliedRule {
            tool,
            arguments: rule.command_arguments("--append", &self.tag),
        }
    }

    /// Adds a planned rule.
    pub fn apply(&mut self, planned: AppliedRule) -> Result<(), AgentError> {
        planned.tool.run(&planned.arguments)?;
        self.applied.push(planned);
        Ok(())
    }

    /// Deletes every rule this session added, newest first, telling
    /// `removed` about each. Keeps going past a failure so one stuck rule
    /// does not keep the others in place.
    pub fn remove_all(&mut self, mut removed: impl FnMut(&AppliedRule)) -> Result<(), AgentError> {
        let mut first_error = None;
        let mut stuck = Vec::new();
        while let Some(rule) = self.applied.pop() {
            let mut delete = rule.arguments.clone();
            delete[0] = "--delete".to_string();
            match rule.tool.run(&delete) {
                Ok(()) => removed(&rule),
                Err(error) => {
                    first_error.get_or_insert(error);
                    stuck.push(rule);
                }
            }
        }
        self.applied = stuck;
        first_error.map_or(Ok(()), Err)
    }
}

/// The two front ends of the same firewall: one per address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Iptables,
    Ip6tables,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Iptables => "iptables",
            Tool::Ip6tables => "ip6tables",
        }
    }

    /// The variable that names this tool's binary instead of searching for it.
    pub fn override_variable(self) -> &'static str {
        match self {
            Tool::Iptables => "TCPLAB_IPTABLES",
            Tool::Ip6tables => "TCPLAB_IP6TABLES",
        }
    }

    /// Where the binary is: the override if set, else the first in PATH or an
    /// sbin directory (unprivileged users often lack `/usr/sbin` in PATH).
    fn find(self) -> Option<PathBuf> {
        if let Some(chosen) = std::env::var_os(self.override_variable()) {
            let chosen = PathBuf::from(chosen);
            return chosen.is_file().then_some(chosen);
        }
        find_program(self.name(), &["/usr/sbin", "/sbin", "/usr/local/sbin"])
    }

    /// Runs the tool to completion. Deliberately blocking: it takes
    /// milliseconds, and an add that cannot be interrupted halfway is one the
    /// session always knows about, so clean-up after SIGTERM never misses a rule.
    pub fn run(self, args: &[String]) -> Result<(), AgentError> {
        self.output(args).map(|_| ())
    }

    /// `--check`: is the rule there? Exit status 1 means no; any other
    /// failure is an error.
    pub fn check(self, args: &[String]) -> Result<bool, AgentError> {
        match self.output(args) {
            Ok(_) => Ok(true),
            Err(error) if error.message.contains("does a matching rule exist") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Is the tool installed?
    pub fn is_installed(self) -> bool {
        self.find().is_some()
    }

    fn output(self, args: &[String]) -> Result<String, AgentError> {
        let name = self.name();
        let binary = self.find().ok_or_else(|| {
            AgentError::new(
                AgentErrorKind::MissingTool,
                format!(
                    "{name} is not installed on this host (or ${} names no file); \
                     install it: apt-get install iptables (Debian/Ubuntu), dnf install iptables-nft (Fedora)",
                    self.override_variable()
                ),
            )
        })?;
        tracing::debug!(program = %binary.display(), ?args, "running");
        // --wait: another program holding the xtables lock (a firewall
        // daemon, a parallel tcplab case) makes the call wait its turn
        // instead of failing with "Another app is currently holding the
        // xtables lock".
        let output = std::process::Command::new(&binary)
            .arg("--wait")
            .args(args)
            .output()
            .map_err(|e| {
                AgentError::new(
                    AgentErrorKind::Failed,
                    format!("cannot run {}: {e}", binary.display()),
                )
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let kind =
            if stderr.contains("Permission denied") || stderr.contains("Operation not permitted") {
                AgentErrorKind::Privilege
            } else {
                AgentErrorKind::Failed
            };
        // iptables-legacy takes a lock under /run, which a rootless run cannot
        // write; the nf_tables flavour needs no lock.
        let hint = if stderr.contains("xtables.lock") {
            format!(
                " ({name}-legacy needs root for its lock file: run as root, or use the nf_tables \
                 flavour, e.g. {}=/usr/sbin/{name}-nft)",
                self.override_variable()
            )
        } else {
            String::new()
        };
        Err(AgentError::new(
            kind,
            format!(
                "{} {} failed: {stderr}{hint}",
                binary.display(),
                args.join(" ")
            ),
        ))
    }
}
