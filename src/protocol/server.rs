//! The requests about the server that gets killed: starting it, and killing it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::SocketOptions;

/// Start the server (`tcplab serve`, or the article's Java server) as a
/// child process. Answered with [`Serving`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    pub server: ServerOptions,
}

/// The server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    pub pid: u32,
    /// What the server printed once it listened.
    #[serde(default)]
    pub banner: String,
}

/// Options of the server process that the experiment kills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Which server program runs.
    #[serde(default)]
    pub program: ServerProgram,
    /// Where it listens; the article's Java server binds the wildcard address.
    pub bind: SocketAddr,
    /// SO_REUSEADDR/SO_REUSEPORT on the listening socket (accepted sockets
    /// inherit them).
    pub reuse: SocketOptions,
    /// SO_LINGER with timeout 0 on accepted sockets: close sends RST, not FIN.
    #[serde(default)]
    pub linger_zero: bool,
    /// Written to every client before the server closes the connection.
    pub greeting: String,
    /// Wait for the client to close before closing (the client closes first).
    #[serde(default)]
    pub close_after_client: bool,
    /// Java only: do not call setReuseAddress, so the JVM's default shows.
    #[serde(default)]
    pub jvm_default_reuse: bool,
    /// TCP_LINGER2 on accepted connections, in seconds (-1: reset at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger2_s: Option<i32>,
}

/// The program that serves and gets killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerProgram {
    /// `tcplab serve` (socket2, every option explicit).
    #[default]
    Tcplab,
    /// The article's own `ReuseAddress.java`, run by the host's JDK.
    Java,
}

impl ServerProgram {
    pub fn name(self) -> &'static str {
        match self {
            ServerProgram::Tcplab => "tcplab serve",
            ServerProgram::Java => "java ReuseAddress",
        }
    }
}

/// Send a signal to the server child and reap it. Answered with [`Killed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillServer {
    pub signal: KillSignal,
}

/// The server is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Killed {
    pub pid: u32,
}

/// The signal that ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillSignal {
    #[serde(rename = "SIGKILL")]
    Kill,
    #[serde(rename = "SIGTERM")]
    Term,
}

impl KillSignal {
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Kill => "KILL",
            KillSignal::Term => "TERM",
        }
    }
}
