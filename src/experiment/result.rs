//! What a run found, and the verdict on it.
//!
//! These types are the `--json` contract (field names are relied
//! on by other tools: add fields, never rename), and every report renders them.
//! A verdict always carries both sides: what was expected and what was seen.

use serde::{Deserialize, Serialize};

use super::spec::{CaseSpec, ExpectedBind, ExpectedState, Transport};
use crate::lab::LabInfo;
use crate::protocol::CaptureRecord;
use crate::protocol::SocketEntry;
use crate::protocol::{BindOutcome, BindStep, SocketOptions};
use crate::tcp_state::SocketState;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentResult {
    pub experiment: String,
    pub title: String,
    pub article: Option<String>,
    pub lab: LabInfo,
    /// Where the socket under watch lives: `c2` (the killed server's,
    /// the article's case) or `c1` (a client's, `client-port`).
    pub watched_host: String,
    /// Why the experiment did not run (no JDK for `java`), `null` when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub passed: bool,
    pub duration_ms: u64,
    pub cases: Vec<CaseResult>,
}

/// One line of what happened, by host (`c1`, `c2`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub host: String,
    pub text: String,
    /// When the orchestrator saw it: CLOCK_MONOTONIC, microseconds (the
    /// clock captures use too).
    pub t_us: u64,
    /// What the report's picture marks here, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

/// Moments the report's ladder diagram draws on a host's lifeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// The client closed; its FIN went into its own firewall rule.
    FinDropped,
    /// The client closed.
    Close,
    /// The server process was killed.
    Kill,
    /// The new socket tried the port.
    Probe,
}

/// Both hosts' captures of one case, for the report's pictures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseCapture {
    pub c1: CaptureRecord,
    pub c2: CaptureRecord,
}

/// What one case observed, before judging.
#[derive(Debug, Clone)]
pub struct Observation {
    pub connection: Option<SocketEntry>,
    /// Was the connection ever seen, by the host that watched it or (for a
    /// reset) by its peer? "No socket left" means nothing without it.
    pub connection_identified: bool,
    pub sockets: Vec<SocketEntry>,
    pub state_waited_ms: u64,
    /// How old the TIME_WAIT was when a young-TIME_WAIT probe was tried.
    pub probe_age_ms: Option<u64>,
    pub bind: BindOutcome,
    /// What the killed server itself reported about SO_REUSEADDR (Java's
    /// `getReuseAddress()`), when it did.
    pub old_reuseaddr_reported: Option<bool>,
    /// With a rebind window: when the first bind after the kill worked.
    pub rebind: Option<RebindTiming>,
    pub transcript: Vec<TranscriptLine>,
    pub capture: Option<CaseCapture>,
    pub timings: Option<PhaseTimings>,
}

/// When the port was free again, counted two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebindTiming {
    /// From the moment c2's agent first saw the old connection in the state
    /// the kill left it in: the start of the kernel timer that holds the
    /// port, and what a rebind window is judged against (a time from the
    /// kill would include the orchestrator's round trips, which load
    /// stretches). `None` when the bind never worked in time.
    pub after_state_ms: Option<u64>,
    /// From the kill, for information.
    pub after_kill_ms: Option<u64>,
}

/// Where a case's time went, on labs that start hosts per case (netns).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PhaseTimings {
    /// Starting both agents, their namespaces, the veth pair and addresses.
    pub lab_up_us: u64,
    /// The experiment itself: rules, server, client, kill, observation, probe.
    pub experiment_us: u64,
    /// Shutting both agents down (rules removed, processes gone).
    pub teardown_us: u64,
}

impl PhaseTimings {
    /// From the elapsed times at the end of each phase.
    pub fn measure(
        up: std::time::Duration,
        driven: std::time::Duration,
        done: std::time::Duration,
    ) -> PhaseTimings {
        PhaseTimings {
            lab_up_us: up.as_micros() as u64,
            experiment_us: driven.saturating_sub(up).as_micros() as u64,
            teardown_us: done.saturating_sub(driven).as_micros() as u64,
        }
    }
}

/// One cell of the rebind matrix, judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// SO_REUSEADDR of the killed server's socket (as the JVM reported it,
    /// when `old_jvm_default` left it to the JVM).
    pub old_reuseaddr: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub old_jvm_default: bool,
    pub new_reuseaddr: bool,
    pub old_reuseport: bool,
    pub new_reuseport: bool,
    /// Where the killed server listened and the new socket bound, as the
    /// experiment file names them (`"0.0.0.0"`, `"::"`, `"c2"`…), when a case
    /// chose them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_bind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_bind: Option<String>,
    /// IPV6_V6ONLY of the old socket, when the case set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_v6only: Option<bool>,
    /// IPV6_V6ONLY of the new socket, when the case set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_v6only: Option<bool>,
    /// `live_socket`: the old socket was alive, `"bound"` or `"listening"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_state: Option<String>,
    /// `live_socket`: the other sockets held beside the old one, in order,
    /// each as `ADDRESS (OPTIONS), STATE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_held: Vec<String>,
    /// IP_BIND_ADDRESS_NO_PORT of the new socket, when set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_bind_address_no_port: bool,
    /// What the new socket tried when not bind and listen: `connect`
    /// (from the old port) or `connect_ephemeral` (a port connect() picks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// IP_LOCAL_PORT_RANGE of the new socket, `[low, high]`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_local_port_range: Option<[u16; 2]>,
    /// TCP_LINGER2 of the killed server's connection, in seconds, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger2_s: Option<i32>,
    /// Every socket was MPTCP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mptcp: bool,
    /// State of the server's side of the connection after the kill; `null`
    /// when the kernel had no socket left for it.
    pub state_after_kill: Option<SocketState>,
    /// `null` when no socket should be left.
    pub expected_state: Option<SocketState>,
    /// The connection as sock_diag showed it.
    pub connection: Option<SocketEntry>,
    /// Every socket on the port that sock_diag returned after the kill.
    pub sockets: Vec<SocketEntry>,
    /// `"ok"` or the errno name.
    pub bind: String,
    /// Which call failed (`bind` or `listen`), `null` when none did.
    pub bind_step: Option<BindStep>,
    pub expected_bind: String,
    /// Why this kernel's expectation is not the case's own: the range of a
    /// `[[case.on_kernel]]` that held the kernel, and its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_because: Option<String>,
    /// With a rebind window: milliseconds from the moment c2 first saw the
    /// old connection in its state after the kill (its timer's start) to the
    /// first bind that worked (`null`: it never did in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebind_after_ms: Option<u64>,
    /// The same bind, in milliseconds from the server's kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebind_after_kill_ms: Option<u64>,
    /// The window, in seconds, the rebind was expected in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_rebind_s: Option<[f64; 2]>,
    pub passed: bool,
    /// Why it failed, in words; empty when it passed.
    pub failures: Vec<String>,
    pub state_waited_ms: u64,
    /// With `probe = "connect_young_time_wait"`: the TIME_WAIT's age, by
    /// the kernel's timer, when connect() was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_age_ms: Option<u64>,
    pub duration_ms: u64,
    pub transcript: Vec<TranscriptLine>,
    /// Packets and states of this case, when a report was asked for (the
    /// first case only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaseCapture>,
    /// Where the case's time went (netns lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<PhaseTimings>,
}

impl CaseResult {
    /// Compares what was seen with what the case expects.
    pub fn judge(
        case: &CaseSpec,
        transport: Transport,
        expected_state: ExpectedState,
        observation: Observation,
        duration_ms: u64,
    ) -> CaseResult {
        let state_after_kill = observation.connection.as_ref().map(|c| c.state);
        let expected_bind = case.bind;
        let failures = failures(case, expected_state, &observation);
        CaseResult {
            old_reuseaddr: observation
                .old_reuseaddr_reported
                .unwrap_or(case.old_reuseaddr),
            old_jvm_default: case.old_jvm_default,
            new_reuseaddr: case.new_reuseaddr,
            old_reuseport: case.old_reuseport,
            new_reuseport: case.new_reuseport,
            old_bind: case.old_bind.map(|b| b.to_string()),
            new_bind: case.new_bind.map(|b| b.to_string()),
            old_v6only: case.old_v6only,
            new_v6only: case.new_v6only,
            old_state: case.old_state.map(|s| s.name().to_string()),
            also_held: case.also_held.iter().map(|h| h.describe()).collect(),
            new_bind_address_no_port: case.new_bind_address_no_port,
            probe: case.probe.name().map(str::to_string),
            new_local_port_range: case.new_local_port_range.map(|r| [r.low, r.high]),
            linger2_s: case.linger2_s.map(|l| l.0),
            mptcp: transport == Transport::Mptcp,
            state_after_kill,
            expected_state: expected_state.0,
            connection: observation.connection,
            sockets: observation.sockets,
            bind: observation.bind.result.clone(),
            bind_step: observation.bind.failed_step,
            expected_bind: ExpectedBind::name(expected_bind).to_string(),
            expected_because: case.expected_because(),
            rebind_after_ms: observation.rebind.and_then(|r| r.after_state_ms),
            rebind_after_kill_ms: observation.rebind.and_then(|r| r.after_kill_ms),
            expected_rebind_s: case.rebind_within_s.map(|w| [w.from_s, w.to_s]),
            passed: failures.is_empty(),
            failures,
            state_waited_ms: observation.state_waited_ms,
            probe_age_ms: observation.probe_age_ms,
            duration_ms,
            transcript: observation.transcript,
            capture: observation.capture,
            timings: observation.timings,
        }
    }
}

impl CaseResult {
    /// Does the case set more than SO_REUSEADDR/SO_REUSEPORT (addresses,
    /// IPV6_V6ONLY, TCP_LINGER2)? Reports then show its whole label.
    pub fn has_more_than_reuse(&self) -> bool {
        self.old_bind.is_some()
            || self.new_bind.is_some()
            || self.old_v6only.is_some()
            || self.new_v6only.is_some()
            || self.old_state.is_some()
            || self.new_local_port_range.is_some()
            || self.linger2_s.is_some()
    }

    /// `old SO_REUSEADDR=0 new SO_REUSEADDR=1` (with SO_REUSEPORT where set):
    /// the name of the case in progress lines, reports and JUnit.
    pub fn label(&self) -> String {
        let old = SocketOptions {
            reuseaddr: self.old_reuseaddr,
            reuseport: self.old_reuseport,
            v6only: self.old_v6only,
            mptcp: false,
            local_port_range: None,
            bind_address_no_port: false,
        };
        let new = SocketOptions {
            reuseaddr: self.new_reuseaddr,
            reuseport: self.new_reuseport,
            v6only: self.new_v6only,
            mptcp: false,
            local_port_range: self.new_local_port_range,
            bind_address_no_port: self.new_bind_address_no_port,
        };
        let on =
            |bind: &Option<String>| bind.as_ref().map_or(String::new(), |b| format!(" on {b}"));
        let mut old = format!("{}{}", old.describe(), on(&self.old_bind));
        if self.old_jvm_default {
            old = format!("JVM default ({old})");
        }
        if let Some(seconds) = self.linger2_s {
            old.push_str(&format!(" TCP_LINGER2={seconds}"));
        }
        if let Some(state) = &self.old_state {
            old.push_str(&format!(" {state}"));
        }
        for held in &self.also_held {
            old.push_str(&format!(", then {held}"));
        }
        let probe = match self.probe.as_deref() {
            Some("connect_ephemeral") => " connects from a port connect() picks",
            Some("connect_young_time_wait") => {
                " connects from a port connect() picks once the second turns"
            }
            Some(_) => " connects",
            None => "",
        };
        format!(
            "old {old} new {}{}{probe}",
            new.describe(),
            on(&self.new_bind)
        )
    }
}

/// Every way `observation` misses what `case` expects, in words: the state
/// after the kill, the rebind window, the bind result.
fn failures(
    case: &CaseSpec,
    expected_state: ExpectedState,
    observation: &Observation,
) -> Vec<String> {
    let state_after_kill = observation.connection.as_ref().map(|c| c.state);
    let mut failures = Vec::new();
    if state_after_kill.is_none() && !observation.connection_identified {
        failures.push(
            "the connection was never seen, so \"no socket left\" proves nothing \
             (is the peer's address what the host sees?)"
                .to_string(),
        );
    } else if state_after_kill != expected_state.0 {
        let seen = ExpectedState(state_after_kill);
        failures.push(format!(
            "expected {expected_state} after the kill, the kernel showed {seen}"
        ));
    }
    if let Some(window) = case.rebind_within_s {
        let expected = format!(
            "expected the port free again {}–{} s after its connection entered {}",
            window.from_s, window.to_s, expected_state
        );
        match observation.rebind.and_then(|r| r.after_state_ms) {
            Some(ms) if window.contains_ms(ms) => {}
            Some(ms) => failures.push(format!(
                "{expected}, it was after {:.1} s",
                ms as f64 / 1000.0
            )),
            None => failures.push(format!("{expected}, it was still busy")),
        }
    }
    if observation.bind.result != case.bind.name() {
        failures.push(format!(
            "expected bind to give {}, it gave {}",
            case.bind.name(),
            describe_bind(&observation.bind)
        ));
    }
    failures
}

/// `ok`, or `EADDRINUSE at bind`.
pub fn describe_bind(outcome: &BindOutcome) -> String {
    match outcome.failed_step {
        None => outcome.result.clone(),
        Some(step) => format!("{} at {}", outcome.result, step_name(step)),
    }
}

pub fn step_name(step: BindStep) -> &'static str {
    match step {
        BindStep::Socket => "socket",
        BindStep::Bind => "bind",
        BindStep::Listen => "listen",
        BindStep::Connect => "connect",
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
pub(crate) mod tests;
