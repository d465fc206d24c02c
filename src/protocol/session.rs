//! The requests about the agent's session itself: meeting it, freshening a
//! restored guest, ending a case, cleaning up after dead sessions, leaving.

use serde::{Deserialize, Serialize};

/// Who are you? Answered with [`AgentInfo`].
///
/// Requests without arguments are empty structs (`Hello {}`), not unit
/// structs: the agent must refuse fields it does not know, and serde would
/// ignore them on a unit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {}

/// The agent introduces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub version: String,
    pub pid: u32,
    pub arch: String,
    /// The host's kernel release, as `uname -r` says it.
    #[serde(default)]
    pub kernel: String,
}

/// A guest restored from a snapshot: mix `entropy` into the kernel's random
/// pool, reseed, and set the wall clock to `realtime_ns` since the epoch
/// (`agent::kernel::freshen`; a guest's init only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshen {
    #[serde(with = "hex")]
    pub entropy: Vec<u8>,
    pub realtime_ns: u64,
}

/// Undo what the current case did (server, client, firewall rules) and
/// stay, for the next case on the same host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndCase {}

/// Remove what crashed runs left on this host: tagged firewall rules, stray
/// agents and servers, uploaded executables. Answered with [`Reaped`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reap {}

/// What a [`Reap`] undid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reaped {
    pub rules: usize,
    pub processes: usize,
    pub uploads: usize,
    #[serde(default)]
    pub sysctls: usize,
}

/// Undo everything and exit. Closing stdin does the same.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {}
