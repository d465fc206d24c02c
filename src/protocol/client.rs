//! The requests of the client on c1: the connection that the server's kill
//! orphans, and the probes that open new connections beside old ones.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{BindOutcome, SocketOptions};

/// Connect to a server, read its greeting until it closes, then act as
/// `close` says. Answered with [`Connected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub server: SocketAddr,
    pub close: ClientClose,
    /// Bind this local port first (a client with a fixed port), with
    /// `reuse`; an ephemeral port otherwise.
    #[serde(default)]
    pub local_port: Option<u16>,
    #[serde(default)]
    pub reuse: SocketOptions,
}

/// What a [`Connect`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connected {
    pub local: SocketAddr,
    pub greeting: String,
    pub closed: bool,
    /// The server reset the connection instead of closing it.
    #[serde(default)]
    pub reset: bool,
}

/// How the client ends its side after it has read the server's greeting and FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientClose {
    /// ACK the server's FIN first, then close (what `nc` does, and what the
    /// FIN_WAIT2 experiment needs). The orchestrator closes the client only
    /// after it has seen the server side reach FIN_WAIT2.
    AfterAck,
    /// Close as soon as the FIN is read: the ACK rides on the client's FIN|ACK
    /// (if that FIN is dropped, the server stays in FIN_WAIT1).
    Immediately,
    /// Keep the connection open (`nc` left running).
    Never,
    /// Close first, right after the greeting arrives, before the server
    /// closes (the client then goes through TIME_WAIT; needs a server with
    /// `close_after_client`).
    First,
}

/// Close the client socket opened by [`Connect`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseClient {}

/// Open a new connection from `local` (an ephemeral port when `null`) to
/// `server` and close it again: can a client reuse a port that its last
/// connection left in TIME_WAIT? Answered with [`ConnectProbe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryConnect {
    pub local: Option<SocketAddr>,
    pub server: SocketAddr,
    pub reuse: SocketOptions,
}

/// What a [`TryConnect`] saw: `outcome` names the failed step (bind or
/// connect); `local` is the address the connection used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectProbe {
    pub outcome: BindOutcome,
    pub local: Option<SocketAddr>,
}

/// Once the TIME_WAIT of `local_port` ⇄ `server` has seen the clock's whole
/// second turn and is still under a second old, open a plain connection to
/// `server` (connect() picks the port) with `reuse` (see
/// `agent::kernel::young_time_wait`). Answered with [`YoungReuseSeen`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryConnectYoungTimeWait {
    pub local_port: u16,
    pub server: SocketAddr,
    pub reuse: SocketOptions,
}

/// What a [`TryConnectYoungTimeWait`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YoungReuseSeen {
    pub attempt: YoungReuse,
}

/// One try at a young TIME_WAIT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum YoungReuse {
    /// connect() was tried when the TIME_WAIT was `age_ms` old, after the
    /// clock's second had turned.
    Tried {
        age_ms: u64,
        outcome: BindOutcome,
        local: Option<SocketAddr>,
    },
    /// The window had passed (or was too short to hit) when the agent got
    /// there, and nothing was tried; or the attempt may have come after it
    /// (a busy machine): the TIME_WAIT was at most `age_ms` old then, and
    /// its outcome is not to be judged.
    TooLate { age_ms: u64 },
}
