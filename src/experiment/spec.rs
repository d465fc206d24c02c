//! Experiment files: what an experiment does and what it expects, as data.
//!
//! An experiment is a TOML file (see `experiments/`). Parsing is also
//! validation: every field has a type that refuses bad values (ports 0 and
//! 65536, unknown states, firewall rules for other tables or chains, unknown
//! keys), so the TOML parser can point at the offending line and key. A file
//! that parses is safe to run: nothing in it reaches a shell.

use std::num::NonZeroU16;

use serde::Deserialize;

pub use super::bind_choice::BindChoice;
pub use super::case_spec::{
    CaseSpec, HeldSpec, KernelOverride, LiveState, Probe, SysctlSetup, TIME_WAIT_GUARD, Transport,
};
pub use super::spec_values::{
    Bounded, ExpectedBind, ExpectedState, Greeting, Linger2, OneLine, PortRange, RebindWindow,
    SpecError, WaitMs,
};
use crate::protocol::FirewallRule;
use crate::protocol::{ClientClose, KillSignal, ServerProgram};

/// Most cases one file may hold; each case starts two namespaces.
pub(super) const MAX_CASES: usize = 64;

/// A parsed, validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The file's stem: `fin-wait2`.
    pub name: String,
    /// Where it came from, for messages: `experiments/fin-wait2.toml`.
    pub source: String,
    pub spec: ExperimentSpec,
    /// Which cases capture packets and states (`--report`: the first,
    /// `--pcap`: every one); set by the command line, not by the file.
    pub recording: Recording,
    /// Set [`TIME_WAIT_GUARD`] on hosts whose settings are the lab's own
    /// (namespaces, microvm guests), or where `--allow-host-sysctl` said so.
    pub time_wait_guard: bool,
    /// The line of the file's first kernel setting, for a refusal.
    pub sysctl_line: Option<usize>,
}

/// Which cases of a run capture their packets and states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Recording {
    #[default]
    Nothing,
    /// The first case, for `--report`'s picture.
    FirstCase,
    /// Every case, for `--pcap`'s files.
    EveryCase,
}

impl Recording {
    /// Does case `index` (0-based) record?
    pub fn records(self, index: usize) -> bool {
        match self {
            Recording::Nothing => false,
            Recording::FirstCase => index == 0,
            Recording::EveryCase => true,
        }
    }
}

/// The contents of an experiment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// One line: what the experiment shows.
    pub title: OneLine,
    /// The sentence `tcplab list` prints: what a reader learns.
    pub teaches: OneLine,
    /// The article section it reproduces, if any (`0x03`).
    #[serde(default)]
    pub article: Option<OneLine>,
    /// Slow experiments run only when asked for by name (not in `tcplab all`).
    #[serde(default)]
    pub slow: bool,
    /// Whose socket is watched and probed: the killed server's (default) or
    /// a client's with a fixed port.
    #[serde(default)]
    pub scenario: Scenario,
    /// The server's port.
    pub port: NonZeroU16,
    /// `tcp` (default) or `mptcp`: the protocol of every socket of the
    /// experiment (server, client and the bind probe).
    #[serde(default)]
    pub protocol: Transport,
    #[serde(default)]
    pub c1: HostSetup,
    #[serde(default)]
    pub c2: HostSetup,
    #[serde(default)]
    pub server: ServerSetup,
    /// Required, except in `live_socket` (which has no connection).
    #[serde(default)]
    pub client: Option<ClientSetup>,
    /// Required, except in `live_socket` (nothing is killed).
    #[serde(default)]
    pub expect: Option<Expectations>,
    /// The rebind matrix: one run per entry, each in fresh namespaces.
    #[serde(rename = "case", default)]
    pub cases: Vec<CaseSpec>,
}

/// A `live_socket` experiment's stand-ins for `[client]` and `[expect]`:
/// no client, no socket left by a kill.
const NO_CLIENT: ClientSetup = ClientSetup {
    close: ClientClose::Never,
    local_port: None,
};
const NO_KILL: Expectations = Expectations {
    state_after_kill: ExpectedState(None),
    within_ms: WaitMs::DEFAULT,
};

impl ExperimentSpec {
    /// `[client]` (present in every scenario with a connection: `parse`
    /// checks it).
    pub fn client(&self) -> &ClientSetup {
        self.client.as_ref().unwrap_or(&NO_CLIENT)
    }

    /// `[expect]` (present in every scenario with a kill: `parse` checks it).
    pub fn expect(&self) -> &Expectations {
        self.expect.as_ref().unwrap_or(&NO_KILL)
    }
}

/// What is set up on one host before the connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSetup {
    #[serde(default)]
    pub firewall: Vec<FirewallRule>,
    /// TCP settings of the host's network namespace for the run.
    #[serde(default)]
    pub sysctl: SysctlSetup,
}

/// The server that gets killed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSetup {
    /// `tcplab` (default) or `java`: the article's ReuseAddress.java.
    #[serde(default)]
    pub program: ServerProgram,
    #[serde(default = "default_greeting")]
    pub greeting: Greeting,
    #[serde(default = "default_kill")]
    pub kill: KillSignal,
    /// Close connections with RST (SO_LINGER with timeout 0) instead of FIN.
    #[serde(default)]
    pub linger_zero: bool,
}

impl Default for ServerSetup {
    fn default() -> Self {
        ServerSetup {
            program: ServerProgram::default(),
            greeting: default_greeting(),
            kill: default_kill(),
            linger_zero: false,
        }
    }
}

pub(super) fn default_greeting() -> Greeting {
    Greeting::hello()
}

fn default_kill() -> KillSignal {
    KillSignal::Kill
}

/// How the client ends the connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSetup {
    pub close: ClientClose,
    /// Bind this local port before connecting (scenario `client_port`).
    #[serde(default)]
    pub local_port: Option<NonZeroU16>,
}

/// What an experiment is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// The article's: kill the server, watch its orphaned connection on c2,
    /// try to bind its port again.
    #[default]
    ServerRestart,
    /// The article's 0x04: a client with a fixed local port closes first,
    /// watch its TIME_WAIT on c1, try to use the port again.
    ClientPort,
    /// No connection and no kill: c2 holds a live socket on the port (only
    /// bound, or listening), and a new one tries to bind beside it. What the
    /// kernel's own bind selftests pin down.
    LiveSocket,
}

/// What the kernel should show after the kill.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The state of the server's side of the connection after the kill, or
    /// `"NONE"` when the kernel should keep no socket for it.
    pub state_after_kill: ExpectedState,
    /// How long to wait for that state before reporting what was seen instead.
    #[serde(default)]
    pub within_ms: WaitMs,
}

impl CaseSpec {
    /// The state this case expects after the kill.
    pub fn expected_state(&self, spec: &ExperimentSpec) -> ExpectedState {
        self.state_after_kill
            .unwrap_or(spec.expect().state_after_kill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
title = "t"
teaches = "t"
port = 8080
[client]
close = "after_ack"
[expect]
state_after_kill = "FIN_WAIT2"
[[case]]
old_reuseaddr = false
new_reuseaddr = false
bind = "EADDRINUSE"
"#;

    fn parse(text: &str) -> Result<Experiment, SpecError> {
        Experiment::parse("x", "x.toml", text)
    }

    #[test]
    fn a_minimal_file_parses_with_defaults() {
        let experiment = parse(MINIMAL).unwrap();
        assert_eq!(experiment.spec.server.greeting.as_str(), "Hello\n");
        assert_eq!(experiment.spec.expect().within_ms, WaitMs::DEFAULT);
        assert!(experiment.spec.c1.firewall.is_empty());
    }

    #[test]
    fn port_zero_names_line_and_key() {
        let error = parse(&MINIMAL.replace("port = 8080", "port = 0")).unwrap_err();
        assert_eq!((error.file.as_str(), error.line), ("x.toml", 4));
        assert!(error.message.contains("key `port`"), "{error}");
    }

    #[test]
    fn port_65536_is_refused() {
        let error = parse(&MINIMAL.replace("port = 8080", "port = 65536")).unwrap_err();
        assert_eq!(error.line, 4, "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error =
            parse(&MINIMAL.replace("[client]", "[client]\nshell = \"rm -rf /\"")).unwrap_err();
        assert!(error.message.contains("shell"), "{error}");
        assert_eq!(error.line, 6);
    }

    #[test]
    fn unknown_states_are_refused() {
        let error = parse(&MINIMAL.replace("\"FIN_WAIT2\"", "\"FIN_WAIT3\"")).unwrap_err();
        assert!(error.message.contains("FIN_WAIT3"), "{error}");
    }

    #[test]
    fn no_cases_is_refused() {
        let text = MINIMAL.split("[[case]]").next().unwrap();
        let error = parse(text).unwrap_err();
        assert!(error.message.contains("[[case]]"), "{error}");
    }
}
