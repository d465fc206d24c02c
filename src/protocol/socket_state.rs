//! The requests that read the kernel's TCP sockets: wait for a connection
//! to reach a state, list a port's sockets, find ports no socket uses.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SocketEntry;
use crate::tcp_state::SocketState;

/// Poll sock_diag until the connection `local_port` ⇄ `peer` is in `state`,
/// or `deadline_ms` passes. Answered with [`StateObservation`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForState {
    pub local_port: u16,
    pub peer: SocketAddr,
    /// `null`: wait until the kernel has no socket left for it.
    pub state: Option<SocketState>,
    pub deadline_ms: u64,
}

impl WaitForState {
    /// A wait of at most `deadline`.
    pub fn within(
        local_port: u16,
        peer: SocketAddr,
        state: Option<SocketState>,
        deadline: Duration,
    ) -> WaitForState {
        WaitForState {
            local_port,
            peer,
            state,
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// What a [`WaitForState`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateObservation {
    pub reached: bool,
    /// Was the connection ever seen by this session? A connection that
    /// never was cannot be said to be gone.
    #[serde(default)]
    pub identified: bool,
    /// The watched connection, `None` when the kernel no longer has it.
    pub connection: Option<SocketEntry>,
    /// Every socket on the port at the last poll.
    pub sockets: Vec<SocketEntry>,
    pub waited_ms: u64,
}

/// The TCP sockets on this port, as sock_diag reports them. Answered with
/// [`SocketList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sockets {
    pub port: u16,
}

/// What a [`Sockets`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketList {
    pub sockets: Vec<SocketEntry>,
}

/// Up to `count` ports from `from` upwards that no TCP socket uses, so
/// cases on a real host do not collide with an earlier case's orphans.
/// Answered with [`PortList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreePorts {
    pub from: u16,
    pub count: u16,
}

/// What a [`FreePorts`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortList {
    pub ports: Vec<u16>,
}
