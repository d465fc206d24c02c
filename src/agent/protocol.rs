//! The agent protocol: the seam between the orchestrator and a host.
//!
//! The orchestrator writes one JSON [`Request`] per line to an agent's stdin and
//! reads one JSON [`Reply`] per line from its stdout, strictly in turn. Every lab
//! (namespaces, Vagrant, ssh) only has to deliver that byte stream; experiments
//! only speak these types. Requests are a closed set of typed operations: no
//! request carries a command line, so an agent never runs anything a caller
//! could choose freely.

use std::net::{IpAddr, SocketAddr};

pub use super::error::AgentErrorKind;
use serde::{Deserialize, Serialize};

use super::capture::CaptureRecord;
use super::diag::SocketEntry;
use super::firewall::FirewallRule;
pub use super::socket_options::SocketOptions;
pub use super::sysctl::Sysctl;
use crate::tcp_state::SocketState;

/// What the orchestrator asks an agent to do.
///
/// Operations without arguments are empty struct variants (`Hello {}`), not
/// unit variants: serde ignores extra fields on unit variants even with
/// `deny_unknown_fields`, and the agent must refuse anything it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Who are you? Answered with [`Reply::Hello`].
    Hello {},
    /// Create a veth pair `name` here and `peer_name` in the network namespace
    /// of process `peer_pid` (netns lab only).
    CreateVeth {
        name: String,
        peer_name: String,
        peer_pid: u32,
    },
    /// Bring `lo` and `name` up and give `name` this address.
    ConfigureLink {
        name: String,
        address: IpAddr,
        prefix_len: u8,
    },
    /// Add a firewall rule; it is removed again when the session ends.
    AddFirewallRule {
        rule: FirewallRule,
        /// Use ip6tables: the experiment runs over IPv6.
        #[serde(default)]
        ipv6: bool,
    },
    /// Start the server (`tcplab serve`) as a child process.
    Serve { server: ServerOptions },
    /// Connect to a server, read its greeting until it closes, then act as `close` says.
    Connect {
        server: SocketAddr,
        close: ClientClose,
        /// Bind this local port first (a client with a fixed port), with
        /// `reuse`; an ephemeral port otherwise.
        #[serde(default)]
        local_port: Option<u16>,
        #[serde(default)]
        reuse: SocketOptions,
    },
    /// Open a new connection from `local` (an ephemeral port when `null`)
    /// to `server` and close it again: can a client reuse a port that its
    /// last connection left in TIME_WAIT?
    TryConnect {
        local: Option<SocketAddr>,
        server: SocketAddr,
        reuse: SocketOptions,
    },
    /// Once the TIME_WAIT of `local_port` ⇄ `server` has seen the clock's
    /// whole second turn and is still under a second old, open a plain
    /// connection to `server` (connect() picks the port) with `reuse`
    /// (see `agent::young_time_wait`). Answered with [`Reply::YoungReuse`].
    TryConnectYoungTimeWait {
        local_port: u16,
        server: SocketAddr,
        reuse: SocketOptions,
    },
    /// A guest restored from a snapshot: mix `entropy` into the kernel's
    /// random pool, reseed, and set the wall clock to `realtime_ns` since
    /// the epoch (`agent::freshen`; a guest's init only).
    Freshen {
        #[serde(with = "hex")]
        entropy: Vec<u8>,
        realtime_ns: u64,
    },
    /// Close the client socket opened by `Connect`.
    CloseClient {},
    /// Send a signal to the server child and reap it.
    KillServer { signal: KillSignal },
    /// Poll sock_diag until the connection `local_port` ⇄ `peer` is in `state`,
    /// or `deadline_ms` passes. Answered with [`Reply::State`] either way.
    WaitForState {
        local_port: u16,
        peer: SocketAddr,
        /// `null`: wait until the kernel has no socket left for it.
        state: Option<SocketState>,
        deadline_ms: u64,
    },
    /// The TCP sockets on this port, as sock_diag reports them.
    Sockets { port: u16 },
    /// Try to bind (then listen on) `address` with these reuse options.
    TryBind {
        address: SocketAddr,
        reuse: SocketOptions,
    },
    /// Open `held` in turn (each bound, then listening or connected when it
    /// says so, and closed again when it says so), then try `address`
    /// beside them: bind and listen, or with `connect`, bind and connect
    /// there; close them all. Answered with [`Reply::BindBeside`].
    TryBindBeside {
        held: Vec<HeldSocket>,
        address: SocketAddr,
        reuse: SocketOptions,
        #[serde(default)]
        connect: Option<SocketAddr>,
    },
    /// Start capturing the packets of `port` on the interface holding
    /// `address`, and sampling the connection's TCP states.
    StartCapture { address: IpAddr, port: u16 },
    /// Stop the capture; answered with [`Reply::Captured`].
    StopCapture {},
    /// Set a TCP setting of this host (its network namespace), restored when
    /// the session ends.
    SetSysctl { setting: Sysctl, value: u32 },
    /// Try to bind (then listen) every `every_ms` until it works or
    /// `deadline_ms` passes: how long the port stays busy after the kill.
    ProbeRebind {
        address: SocketAddr,
        reuse: SocketOptions,
        every_ms: u64,
        deadline_ms: u64,
    },
    /// The addresses of this host's interfaces (loopback excluded), so the
    /// orchestrator can find the subnet c1 and c2 share.
    Interfaces {},
    /// Can this host open MPTCP sockets? Answered with [`Reply::Mptcp`].
    Mptcp {},
    /// Up to `count` ports from `from` upwards that no TCP socket uses, so
    /// cases on a real host do not collide with an earlier case's orphans.
    FreePorts { from: u16, count: u16 },
    /// Undo what the current case did (server, client, firewall rules) and
    /// stay, for the next case on the same host.
    EndCase {},
    /// Remove what crashed runs left on this host: tagged firewall rules,
    /// stray agents and servers, uploaded executables.
    Reap {},
    /// Undo everything and exit. Closing stdin does the same.
    Shutdown {},
}

/// A live socket that a [`Request::TryBindBeside`] holds while it probes.
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

/// The most sockets one [`Request::TryBindBeside`] may hold.
pub const MAX_HELD: usize = 8;

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
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

/// What a [`Request::TryConnectYoungTimeWait`] saw.
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
    /// there: the TIME_WAIT was `age_ms` old. Nothing was tried.
    TooLate { age_ms: u64 },
}

/// What an agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Hello {
        version: String,
        pid: u32,
        arch: String,
        /// The host's kernel release, as `uname -r` says it.
        #[serde(default)]
        kernel: String,
    },
    Done,
    FirewallRuleAdded {
        /// The rule as the article writes it (`iptables --append OUTPUT …`).
        display: String,
    },
    Serving {
        pid: u32,
        /// What the server printed once it listened.
        #[serde(default)]
        banner: String,
    },
    Connected {
        local: SocketAddr,
        greeting: String,
        closed: bool,
        /// The server reset the connection instead of closing it.
        #[serde(default)]
        reset: bool,
    },
    Killed {
        pid: u32,
    },
    State {
        reached: bool,
        /// Was the connection ever seen by this session? A connection that
        /// never was cannot be said to be gone.
        #[serde(default)]
        identified: bool,
        /// The watched connection, `None` when the kernel no longer has it.
        connection: Option<SocketEntry>,
        /// Every socket on the port at the last poll.
        sockets: Vec<SocketEntry>,
        waited_ms: u64,
    },
    Sockets {
        sockets: Vec<SocketEntry>,
    },
    Bind {
        outcome: BindOutcome,
    },
    /// What a [`Request::TryBindBeside`] saw: each held socket's own
    /// outcome, in order, up to the first that failed (the probe is then
    /// not tried, and `outcome` is that failure).
    BindBeside {
        held: Vec<BindOutcome>,
        outcome: BindOutcome,
    },
    Interfaces {
        addresses: Vec<InterfaceAddress>,
    },
    /// Why MPTCP sockets cannot be opened here, `null` when they can.
    Mptcp {
        missing: Option<String>,
    },
    FreePorts {
        ports: Vec<u16>,
    },
    Captured {
        record: CaptureRecord,
    },
    /// What a [`Request::TryConnect`] saw: `outcome` names the failed step
    /// (bind or connect); `local` is the port the connection used.
    ConnectProbe {
        outcome: BindOutcome,
        local: Option<SocketAddr>,
    },
    /// What a [`Request::TryConnectYoungTimeWait`] saw.
    YoungReuse {
        attempt: YoungReuse,
    },
    Rebound {
        /// Milliseconds from the server's kill to the first bind that worked;
        /// `null` when it never did before the deadline.
        after_kill_ms: Option<u64>,
        /// Milliseconds from the moment this agent first saw the old
        /// connection in `state` (the state its last wait reached: the
        /// kernel arms the port's timer on entering it) to that bind.
        #[serde(default)]
        after_state_ms: Option<u64>,
        #[serde(default)]
        state: Option<crate::tcp_state::SocketState>,
        /// `after_state_ms` counts from the server's close() rather than
        /// from a sighting (see `agent::state_clock`).
        #[serde(default)]
        from_close: bool,
        attempts: u32,
        /// The last attempt's outcome.
        last: BindOutcome,
    },
    Reaped {
        rules: usize,
        processes: usize,
        uploads: usize,
        #[serde(default)]
        sysctls: usize,
    },
    Error {
        kind: AgentErrorKind,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_json_line() {
        let request = Request::TryBind {
            address: "0.0.0.0:8080".parse().unwrap(),
            reuse: SocketOptions::reuse(true, false),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(
            line,
            r#"{"op":"try_bind","address":"0.0.0.0:8080","reuse":{"reuseaddr":true,"reuseport":false}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
    }

    #[test]
    fn unknown_operations_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"exec","cmd":"rm -rf /"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"close_client","extra":1}"#).is_err());
    }
}
