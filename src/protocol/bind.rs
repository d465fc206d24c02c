//! The bind probes: may a new socket take this address now, beside what the
//! kernel holds? Once, beside live sockets, and again and again after a kill.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SocketOptions;
use crate::tcp_state::SocketState;

/// Try to bind (then listen on) `address` with these options. Answered
/// with [`BindResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryBind {
    pub address: SocketAddr,
    pub reuse: SocketOptions,
}

/// What a [`TryBind`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindResult {
    pub outcome: BindOutcome,
}

/// Open `held` in turn (each bound, then listening or connected when it
/// says so, and closed again when it says so), then try `address` beside
/// them: bind and listen, or with `connect`, bind and connect there; close
/// them all. Answered with [`BindBeside`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryBindBeside {
    pub held: Vec<HeldSocket>,
    pub address: SocketAddr,
    pub reuse: SocketOptions,
    #[serde(default)]
    pub connect: Option<SocketAddr>,
}

/// What a [`TryBindBeside`] saw: each held socket's own outcome, in order,
/// up to the first that failed (the probe is then not tried, and `outcome`
/// is that failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindBeside {
    pub held: Vec<BindOutcome>,
    pub outcome: BindOutcome,
}

/// A live socket that a [`TryBindBeside`] holds while it probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldSocket {
    pub address: SocketAddr,
    pub reuse: SocketOptions,
    /// listen() after bind(), as a server does.
    pub listen: bool,
    /// connect() here after bind(), as a client does (only to an address
    /// of the same host: the orchestrator names an earlier held listener).
    #[serde(default)]
    pub connect: Option<SocketAddr>,
    /// Closed again before the probe.
    #[serde(default)]
    pub closed: bool,
    /// Once connected: disconnected (connect() with AF_UNSPEC) and bound
    /// again, by hand, to the port connect() had picked.
    #[serde(default)]
    pub rebound: bool,
}

/// The most sockets one [`TryBindBeside`] may hold.
pub const MAX_HELD: usize = 8;

/// Try to bind (then listen) every `every_ms` until it works or
/// `deadline_ms` passes: how long the port stays busy after the kill.
/// Answered with [`Rebound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRebind {
    pub address: SocketAddr,
    pub reuse: SocketOptions,
    pub every_ms: u64,
    pub deadline_ms: u64,
}

impl ProbeRebind {
    /// A bind of `address` every `every`, for at most `deadline`.
    pub fn every(
        address: SocketAddr,
        reuse: SocketOptions,
        every: Duration,
        deadline: Duration,
    ) -> ProbeRebind {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        ProbeRebind {
            address,
            reuse,
            every_ms: ms(every),
            deadline_ms: ms(deadline),
        }
    }
}

/// What a [`ProbeRebind`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebound {
    /// Milliseconds from the server's kill to the first bind that worked;
    /// `null` when it never did before the deadline.
    pub after_kill_ms: Option<u64>,
    /// Milliseconds from the moment this agent first saw the old
    /// connection in `state` (the state its last wait reached: the kernel
    /// arms the port's timer on entering it) to that bind.
    #[serde(default)]
    pub after_state_ms: Option<u64>,
    #[serde(default)]
    pub state: Option<SocketState>,
    /// `after_state_ms` counts from the server's close() rather than from a
    /// sighting (see `agent::session::state_clock`).
    #[serde(default)]
    pub from_close: bool,
    pub attempts: u32,
    /// The last attempt's outcome.
    pub last: BindOutcome,
}

/// Which system call of a bind probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindStep {
    Socket,
    Bind,
    Listen,
    Connect,
}

/// What a bind probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindOutcome {
    /// `"ok"`, or the errno name of the failed step (`"EADDRINUSE"`).
    pub result: String,
    /// The step that failed; `None` when bind and listen both worked.
    pub failed_step: Option<BindStep>,
}

impl BindOutcome {
    pub const OK: &'static str = "ok";

    pub fn is_ok(&self) -> bool {
        self.result == Self::OK
    }
}
