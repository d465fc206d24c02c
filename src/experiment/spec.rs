//! Experiment files: what an experiment does and what it expects, as data.
//!
//! An experiment is a TOML file (see `experiments/`). Parsing is also
//! validation: every field has a type that refuses bad values (ports 0 and
//! 65536, unknown states, firewall rules for other tables or chains, unknown
//! keys), so the TOML parser can point at the offending line and key. A file
//! that parses is safe to run: nothing in it reaches a shell.

use std::fmt;
use std::num::NonZeroU16;

use serde::Deserialize;

pub use super::bind_choice::BindChoice;
use crate::agent::firewall::FirewallRule;
use crate::agent::protocol::{ClientClose, KillSignal, ServerProgram, SocketOptions, Sysctl};
use crate::tcp_state::SocketState;

/// Most cases one file may hold; each case starts two namespaces.
const MAX_CASES: usize = 64;

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
    within_ms: WaitMs(2000),
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

/// `[c2.sysctl]`: the kernel settings an experiment may change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlSetup {
    /// `net.ipv4.tcp_fin_timeout` in seconds (1 to 600).
    pub tcp_fin_timeout: Option<Bounded<1, 600>>,
    /// `net.ipv4.tcp_tw_reuse` (0, 1 or 2).
    pub tcp_tw_reuse: Option<Bounded<0, 2>>,
    /// Pin `net.ipv4.ip_local_port_range` to this one port.
    pub ip_local_port: Option<Bounded<1024, 65535>>,
    /// `net.ipv4.tcp_rfc1337` (0 or 1). Unset, tcplab sets 1 on both hosts:
    /// see [`TIME_WAIT_GUARD`].
    pub tcp_rfc1337: Option<Bounded<0, 1>>,
}

/// The setting every case gets on both hosts unless the experiment sets
/// `tcp_rfc1337` itself: with the kernel's default (0) an RST ends a
/// TIME_WAIT at once, and under load one comes by itself. A host's last ACK
/// that is late by more than the peer's retransmission timeout (200 ms)
/// crosses a retransmitted FIN; the peer closes on the first ACK and answers
/// the late one with RST, because only its listener (or nothing) is left.
/// The TIME_WAIT the case is about is then gone before it is looked at, and
/// a bind that must fail succeeds. With 1 the kernel ignores that RST, as
/// RFC 1337 advises; nothing else about TIME_WAIT or bind changes.
pub const TIME_WAIT_GUARD: (Sysctl, u32) = (Sysctl::TcpRfc1337, 1);

impl SysctlSetup {
    /// The settings to apply, in a fixed order.
    pub fn settings(&self) -> Vec<(Sysctl, u32)> {
        let mut settings = Vec::new();
        if let Some(value) = self.tcp_fin_timeout {
            settings.push((Sysctl::TcpFinTimeout, value.0));
        }
        if let Some(value) = self.tcp_tw_reuse {
            settings.push((Sysctl::TcpTwReuse, value.0));
        }
        if let Some(value) = self.ip_local_port {
            settings.push((Sysctl::IpLocalPortRange, value.0));
        }
        if let Some(value) = self.tcp_rfc1337 {
            settings.push((Sysctl::TcpRfc1337, value.0));
        }
        settings
    }
}

/// A whole number in `MIN..=MAX`, refused with its line otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .ok()
            .filter(|v| (MIN..=MAX).contains(v))
            .map(Bounded)
            .ok_or_else(|| format!("{value} is out of range: give {MIN} to {MAX}"))
    }
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

fn default_greeting() -> Greeting {
    Greeting("Hello\n".to_string())
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

/// The transport protocol of an experiment's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    /// Multipath TCP (`IPPROTO_MPTCP`); the run is skipped on a kernel
    /// without it.
    Mptcp,
}

/// TCP_LINGER2 in seconds: how long an orphaned FIN_WAIT2 connection of this
/// socket lives, instead of `tcp_fin_timeout`; -1 resets it at once. The
/// kernel caps it at 120 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Linger2(pub i32);

impl TryFrom<i64> for Linger2 {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        i32::try_from(value)
            .ok()
            .filter(|v| (-1..=600).contains(v))
            .map(Linger2)
            .ok_or_else(|| format!("{value} is out of range: give -1 to 600 (seconds)"))
    }
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

/// What the old socket of a `live_socket` case does while the new one binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// bind() only, as a client that bound its port before connecting.
    Bound,
    /// bind() and listen(), as a running server.
    Listening,
    /// `also_held` only: bind(), then connect() to the old socket, which
    /// listens: a client of it.
    Connected,
}

impl HeldSpec {
    /// `:: (SO_REUSEADDR=1 IPV6_V6ONLY=1), bound`.
    pub fn describe(&self) -> String {
        let options = SocketOptions {
            reuseaddr: self.reuseaddr,
            reuseport: self.reuseport,
            v6only: self.v6only,
            bind_address_no_port: self.bind_address_no_port,
            ..SocketOptions::default()
        };
        let port = self.port.map_or(String::new(), |p| format!(":{p}"));
        let closed = if self.closed { ", then closed" } else { "" };
        format!(
            "{}{port} ({}), {}{closed}",
            self.bind,
            options.describe(),
            self.state.name()
        )
    }
}

impl LiveState {
    pub fn name(self) -> &'static str {
        match self {
            LiveState::Bound => "bound",
            LiveState::Listening => "listening",
            LiveState::Connected => "connected",
        }
    }
}

/// One more socket a `live_socket` case holds, after the old one and before
/// the new one binds (`[[case.also_held]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldSpec {
    pub bind: BindChoice,
    /// The port it binds: the case's (unset), 0 for the kernel's choice, or
    /// this one.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub reuseaddr: bool,
    #[serde(default)]
    pub reuseport: bool,
    #[serde(default)]
    pub v6only: Option<bool>,
    #[serde(default)]
    pub bind_address_no_port: bool,
    pub state: LiveState,
    /// Closed again before the new socket tries: what it left behind in
    /// the kernel's bookkeeping is what the case is about.
    #[serde(default)]
    pub closed: bool,
}

/// What a case tries after the kill (or the client's close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// bind + listen on the port.
    #[default]
    Bind,
    /// connect() to the same server from the same fixed port.
    Connect,
    /// connect() to the same server from a port the kernel picks.
    ConnectEphemeral,
}

impl Probe {
    /// As files spell it, for any probe but the default bind.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Probe::Bind => None,
            Probe::Connect => Some("connect"),
            Probe::ConnectEphemeral => Some("connect_ephemeral"),
        }
    }
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

/// One cell of the rebind matrix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// SO_REUSEADDR of the killed server's socket.
    pub old_reuseaddr: bool,
    /// SO_REUSEADDR of the socket that tries to bind afterwards.
    pub new_reuseaddr: bool,
    /// SO_REUSEPORT of the killed server's socket.
    #[serde(default)]
    pub old_reuseport: bool,
    /// SO_REUSEPORT of the socket that tries to bind afterwards.
    #[serde(default)]
    pub new_reuseport: bool,
    /// Java server only: leave SO_REUSEADDR to the JVM's default (the
    /// article's code without its setReuseAddress call).
    #[serde(default)]
    pub old_jvm_default: bool,
    /// What to try: bind (default), or for `client_port` a new connect().
    #[serde(default)]
    pub probe: Probe,
    /// `client_port` only: the first client binds its local port itself
    /// (true), or leaves the choice to connect() (false; pin the port with
    /// `c1_sysctl.ip_local_port`).
    #[serde(default = "yes")]
    pub client_bind: bool,
    /// c1's kernel settings for this case, on top of the file's.
    #[serde(default)]
    pub c1_sysctl: SysctlSetup,
    /// Wait this long before the probe (tcp_tw_reuse wants the TIME_WAIT to
    /// be over a second old).
    #[serde(default)]
    pub probe_after_ms: Option<Bounded<0, 10000>>,
    /// Apply the hosts' firewall rules in this case (true unless said).
    #[serde(default = "yes")]
    pub firewall: bool,
    /// This case's expected state after the kill, when not the file's.
    #[serde(default)]
    pub state_after_kill: Option<ExpectedState>,
    /// Probe bind again and again after the kill, and expect the first
    /// success within this window, in seconds: `[2.5, 4.5]`, counted from
    /// the start of the timer holding the port (FIN_WAIT2: the server's
    /// close(); otherwise c2's first sighting of the state after the kill).
    #[serde(default)]
    pub rebind_within_s: Option<RebindWindow>,
    /// Where the killed server listens (default: the wildcard of the lab's
    /// family, as the article's Java server does), or the live old socket
    /// binds.
    #[serde(default)]
    pub old_bind: Option<BindChoice>,
    /// IPV6_V6ONLY of the old socket (on `::`); unset leaves the kernel's default.
    #[serde(default)]
    pub old_v6only: Option<bool>,
    /// `live_socket` only: the old socket is alive, `bound` or `listening`.
    #[serde(default)]
    pub old_state: Option<LiveState>,
    /// `live_socket` only: more live sockets, held in this order after the
    /// old one.
    #[serde(default)]
    pub also_held: Vec<HeldSpec>,
    /// Where the new socket binds (default: where the old one listened).
    #[serde(default)]
    pub new_bind: Option<BindChoice>,
    /// IPV6_V6ONLY of the new socket (on `::`); unset leaves the kernel's default.
    #[serde(default)]
    pub new_v6only: Option<bool>,
    /// IP_BIND_ADDRESS_NO_PORT of the new socket (`live_socket`'s
    /// `connect_ephemeral` probe: its port is chosen at connect()).
    #[serde(default)]
    pub new_bind_address_no_port: bool,
    /// IP_LOCAL_PORT_RANGE of the new socket, `[low, high]`: the ports its
    /// connect() may pick (Linux 6.3 on; older kernels refuse the option).
    #[serde(default)]
    pub new_local_port_range: Option<PortRange>,
    /// TCP_LINGER2 of the killed server's connection, in seconds.
    #[serde(default)]
    pub linger2_s: Option<Linger2>,
    /// What bind/listen should give.
    pub bind: ExpectedBind,
    /// Other expectations for ranges of kernels (see `kernel_range`).
    #[serde(default)]
    pub on_kernel: Vec<KernelOverride>,
}

/// Other expectations for a range of kernels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelOverride {
    pub kernels: super::kernel_range::KernelRange,
    #[serde(default)]
    pub bind: Option<ExpectedBind>,
    #[serde(default)]
    pub state_after_kill: Option<ExpectedState>,
    /// Why these kernels differ: required, so that no difference is declared
    /// without one.
    pub reason: OneLine,
}

impl CaseSpec {
    /// This case as a kernel `release` should see it: the first override
    /// whose range holds the release replaces the expectations it names,
    /// and is the only one left in `on_kernel` (so a result can say why it
    /// expected what it did). Without a known release, the case as written,
    /// with no override.
    pub fn for_kernel(&self, release: Option<&str>) -> CaseSpec {
        let mut case = self.clone();
        let found = release.and_then(|r| self.on_kernel.iter().find(|o| o.kernels.contains(r)));
        case.on_kernel = found.cloned().into_iter().collect();
        if let Some(found) = found {
            if let Some(bind) = found.bind {
                case.bind = bind;
            }
            if let Some(state) = found.state_after_kill {
                case.state_after_kill = Some(state);
            }
        }
        case
    }

    /// Why this kernel's expectation differs from the case's own, once
    /// [`CaseSpec::for_kernel`] chose it.
    pub fn expected_because(&self) -> Option<String> {
        match self.on_kernel.as_slice() {
            [applied] => Some(format!("{}: {}", applied.kernels, applied.reason)),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

/// When the port should be free again, in seconds from the start of the
/// old connection's timer (see [`CaseSpec::rebind_within_s`]).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Vec<f64>")]
pub struct RebindWindow {
    pub from_s: f64,
    pub to_s: f64,
}

impl TryFrom<Vec<f64>> for RebindWindow {
    type Error = String;
    fn try_from(bounds: Vec<f64>) -> Result<Self, Self::Error> {
        match bounds[..] {
            [from_s, to_s] if 0.0 <= from_s && from_s <= to_s && to_s <= 600.0 => {
                Ok(RebindWindow { from_s, to_s })
            }
            _ => Err("give [from, to] in seconds, 0 <= from <= to <= 600".to_string()),
        }
    }
}

impl RebindWindow {
    pub fn contains_ms(&self, ms: u64) -> bool {
        let seconds = ms as f64 / 1000.0;
        (self.from_s..=self.to_s).contains(&seconds)
    }
}

impl CaseSpec {
    /// The state this case expects after the kill.
    pub fn expected_state(&self, spec: &ExperimentSpec) -> ExpectedState {
        self.state_after_kill
            .unwrap_or(spec.expect().state_after_kill)
    }

    /// Does the case bind an IPv4 address by name (`0.0.0.0`, `127.0.0.1`)?
    pub fn names_ipv4_address(&self) -> bool {
        let ipv4 =
            |choice: BindChoice| matches!(choice, BindChoice::Ipv4Any | BindChoice::Ipv4Loopback);
        self.old_bind.is_some_and(ipv4) || self.new_bind.is_some_and(ipv4)
    }

    /// This case with its client-side ports (`c1_sysctl.ip_local_port`,
    /// `new_local_port_range`) `by` higher: for a client whose port moved up
    /// because an earlier socket holds the file's.
    pub fn with_client_ports_moved(&self, by: u16) -> CaseSpec {
        let mut case = self.clone();
        let up = |port: u16| port.saturating_add(by);
        if let Some(pinned) = case.c1_sysctl.ip_local_port.as_mut() {
            pinned.0 = pinned.0.saturating_add(u32::from(by)).min(65535);
        }
        if let Some(range) = case.new_local_port_range.as_mut() {
            (range.low, range.high) = (up(range.low), up(range.high));
        }
        case
    }

    /// The killed server's reuse options.
    pub fn old_socket(&self, transport: Transport) -> SocketOptions {
        SocketOptions {
            reuseaddr: self.old_reuseaddr,
            reuseport: self.old_reuseport,
            v6only: self.old_v6only,
            mptcp: transport == Transport::Mptcp,
            local_port_range: None,
            bind_address_no_port: false,
        }
    }

    /// The new socket's reuse options.
    pub fn new_socket(&self, transport: Transport) -> SocketOptions {
        SocketOptions {
            reuseaddr: self.new_reuseaddr,
            reuseport: self.new_reuseport,
            v6only: self.new_v6only,
            mptcp: transport == Transport::Mptcp,
            local_port_range: self.new_local_port_range.map(|r| [r.low, r.high]),
            bind_address_no_port: self.new_bind_address_no_port,
        }
    }
}

/// `[low, high]` ports, 1 ≤ low ≤ high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<u16>")]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl TryFrom<Vec<u16>> for PortRange {
    type Error = String;
    fn try_from(ports: Vec<u16>) -> Result<Self, Self::Error> {
        match ports.as_slice() {
            [low, high] if (1..=*high).contains(low) => Ok(PortRange {
                low: *low,
                high: *high,
            }),
            _ => Err(format!(
                "{ports:?} is not a port range: give [low, high] with 1 <= low <= high"
            )),
        }
    }
}

/// The state expected after the kill: a TCP state, or no socket at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ExpectedState(pub Option<SocketState>);

impl TryFrom<String> for ExpectedState {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.eq_ignore_ascii_case("none") {
            return Ok(ExpectedState(None));
        }
        text.parse::<SocketState>()
            .map(|state| ExpectedState(Some(state)))
            .map_err(|e| format!("{e}, or NONE"))
    }
}

impl fmt::Display for ExpectedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(state) => write!(f, "{state}"),
            None => f.write_str("no socket"),
        }
    }
}

/// The result a bind probe is expected to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ExpectedBind {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "EADDRINUSE")]
    AddrInUse,
    #[serde(rename = "EADDRNOTAVAIL")]
    AddrNotAvail,
    #[serde(rename = "EACCES")]
    Access,
    #[serde(rename = "EINVAL")]
    Invalid,
    /// The kernel does not know a socket option the case sets.
    #[serde(rename = "ENOPROTOOPT")]
    NoProtocolOption,
}

impl ExpectedBind {
    /// The spelling used in files, reports and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            ExpectedBind::Ok => "ok",
            ExpectedBind::AddrInUse => "EADDRINUSE",
            ExpectedBind::AddrNotAvail => "EADDRNOTAVAIL",
            ExpectedBind::Access => "EACCES",
            ExpectedBind::Invalid => "EINVAL",
            ExpectedBind::NoProtocolOption => "ENOPROTOOPT",
        }
    }
}

/// Text on one line, at most 300 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OneLine(String);

impl TryFrom<String> for OneLine {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.chars().count() > 300 {
            return Err("must be at most 300 characters".to_string());
        }
        if text.chars().any(char::is_control) {
            return Err("must be one line without control characters".to_string());
        }
        Ok(OneLine(text))
    }
}

impl fmt::Display for OneLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the server writes before it closes: at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Greeting(String);

impl Greeting {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Greeting {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() || text.len() > 1024 {
            return Err("greeting must be 1 to 1024 bytes".to_string());
        }
        if text.contains('\0') {
            return Err("greeting must not contain NUL".to_string());
        }
        Ok(Greeting(text))
    }
}

/// A wait in milliseconds, 1 ms to 10 minutes; 2 s by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct WaitMs(u64);

impl WaitMs {
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl Default for WaitMs {
    fn default() -> Self {
        WaitMs(2000)
    }
}

impl TryFrom<u64> for WaitMs {
    type Error = String;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        if ms == 0 || ms > 600_000 {
            return Err(format!("{ms} ms is out of range: give 1 to 600000"));
        }
        Ok(WaitMs(ms))
    }
}

/// A file that is not a valid experiment: where, and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Experiment {
    /// Parses and validates `text`; `source` names it in errors.
    pub fn parse(name: &str, source: &str, text: &str) -> Result<Experiment, SpecError> {
        let spec: ExperimentSpec = toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            let (line, column) = line_and_column(text, offset);
            let key = key_at(text, offset)
                .map(|key| format!("key `{key}`: "))
                .unwrap_or_default();
            SpecError {
                file: source.to_string(),
                line,
                column,
                message: format!("{key}{}", error.message().trim_end()),
            }
        })?;
        let whole_file = |message: String| SpecError {
            file: source.to_string(),
            line: 1,
            column: 1,
            message,
        };
        if spec.cases.is_empty() {
            return Err(whole_file(
                "no `[[case]]`: give at least one case (old_reuseaddr, new_reuseaddr, bind)".into(),
            ));
        }
        if spec.server.program == ServerProgram::Java {
            let unsupported = spec.server.linger_zero
                || spec.server.greeting != default_greeting()
                || spec.cases.iter().any(|c| c.old_reuseport);
            if unsupported {
                return Err(whole_file(
                    "[server] program = \"java\" runs the article's ReuseAddress.java as it is: \
                     no linger_zero, greeting or old_reuseport"
                        .into(),
                ));
            }
        } else if spec.cases.iter().any(|c| c.old_jvm_default) {
            return Err(whole_file(
                "old_jvm_default needs [server] program = \"java\"".into(),
            ));
        }
        check_scenario_sections(&spec).map_err(|(case, message)| SpecError {
            file: source.to_string(),
            line: case.map_or(1, |n| case_header_line(text, n)),
            column: 1,
            message,
        })?;
        let client_port = spec.scenario == Scenario::ClientPort;
        if client_port
            && (spec.client().local_port.is_none() || spec.client().close != ClientClose::First)
        {
            return Err(whole_file(
                "scenario = \"client_port\" needs [client] local_port and close = \"first\"".into(),
            ));
        }
        if !client_port && spec.client().close == ClientClose::First {
            return Err(whole_file(
                "close = \"first\" needs scenario = \"client_port\" (the server closes first otherwise)".into(),
            ));
        }
        let live = spec.scenario == Scenario::LiveSocket;
        let probe_allowed = |c: &CaseSpec| {
            c.probe == Probe::Bind || client_port || (live && c.probe == Probe::ConnectEphemeral)
        };
        if !spec.cases.iter().all(probe_allowed) {
            return Err(whole_file(
                "connect probes need scenario = \"client_port\" (or, for \
                 connect_ephemeral, \"live_socket\")"
                    .into(),
            ));
        }
        check_rules_stay_on_the_port(&spec, text, source)?;
        if spec.cases.len() > MAX_CASES {
            return Err(whole_file(format!(
                "{} `[[case]]` entries; at most {MAX_CASES} are allowed",
                spec.cases.len()
            )));
        }
        let sysctl_line = text
            .lines()
            .position(|line| {
                let line = line.trim_start();
                line.starts_with("[c1.sysctl]")
                    || line.starts_with("[c2.sysctl]")
                    || line.starts_with("c1_sysctl")
            })
            .map(|n| n + 1);
        Ok(Experiment {
            name: name.to_string(),
            source: source.to_string(),
            spec,
            recording: Recording::Nothing,
            time_wait_guard: true,
            sysctl_line,
        })
    }
}

/// Each scenario's own sections and case fields: `[client]` and `[expect]`
/// where there is a connection and a kill, `old_state` and `also_held` only
/// where the old socket is alive, and a killed server never on loopback.
fn check_scenario_sections(spec: &ExperimentSpec) -> Result<(), (Option<usize>, String)> {
    let live = spec.scenario == Scenario::LiveSocket;
    if live {
        let rules = !spec.c1.firewall.is_empty() || !spec.c2.firewall.is_empty();
        if spec.client.is_some() || spec.expect.is_some() || rules {
            return Err((
                None,
                "scenario = \"live_socket\" has no connection: no [client], [expect] \
                 or firewall rules"
                    .into(),
            ));
        }
        if let Some(n) = spec.cases.iter().position(|c| c.old_state.is_none()) {
            return Err((
                Some(n),
                format!(
                    "case {}: scenario = \"live_socket\" needs old_state = \"bound\" or \"listening\"",
                    n + 1
                ),
            ));
        }
        let connects = |c: &CaseSpec| {
            c.probe == Probe::ConnectEphemeral
                || c.also_held.iter().any(|h| h.state == LiveState::Connected)
        };
        let not_listening = |c: &CaseSpec| c.old_state != Some(LiveState::Listening);
        if let Some(n) = spec
            .cases
            .iter()
            .position(|c| connects(c) && not_listening(c))
        {
            let message = format!(
                "case {}: a socket that connects connects to the old one: give \
                 old_state = \"listening\"",
                n + 1
            );
            return Err((Some(n), message));
        }
        if let Some(n) = spec
            .cases
            .iter()
            .position(|c| c.old_state == Some(LiveState::Connected))
        {
            let message = format!(
                "case {}: old_state is \"bound\" or \"listening\"; \"connected\" is for \
                 also_held",
                n + 1
            );
            return Err((Some(n), message));
        }
        let most = crate::agent::protocol::MAX_HELD - 1;
        if let Some(n) = spec.cases.iter().position(|c| c.also_held.len() > most) {
            let message = format!("case {}: also_held holds at most {most} sockets", n + 1);
            return Err((Some(n), message));
        }
        return Ok(());
    }
    if spec.client.is_none() || spec.expect.is_none() {
        return Err((
            None,
            "missing [client] or [expect]: every scenario but \"live_socket\" connects, \
             and expects a state after the kill"
                .into(),
        ));
    }
    for (n, case) in spec.cases.iter().enumerate() {
        if case.old_state.is_some() || !case.also_held.is_empty() {
            let message = format!(
                "case {}: old_state and also_held need scenario = \"live_socket\"",
                n + 1
            );
            return Err((Some(n), message));
        }
        if let Some(bind) = case.old_bind.filter(|b| b.is_loopback()) {
            let message = format!(
                "case {}: key `old_bind`: c1 cannot reach a server on {bind}: the killed \
                 server binds \"0.0.0.0\", \"::\", \"::ffff:0.0.0.0\" or \"c2\"",
                n + 1
            );
            return Err((Some(n), message));
        }
    }
    Ok(())
}

/// The line of the `n`th (from 0) `[[case]]` header in `text`.
fn case_header_line(text: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with("[[case]]"))
        .nth(n)
        .map_or(1, |(number, _)| number + 1)
}

/// "A file that parses is safe to run": a rule that matches no port of the
/// experiment would drop or reject a real host's other traffic (a bare
/// `INPUT DROP` cuts an ssh host off). Every rule must match the server's
/// port, or the client's own port in the client_port scenario, as its
/// source or destination.
fn check_rules_stay_on_the_port(
    spec: &ExperimentSpec,
    text: &str,
    source: &str,
) -> Result<(), SpecError> {
    let own = [Some(spec.port), spec.client().local_port];
    for (host, rules) in [("c1", &spec.c1.firewall), ("c2", &spec.c2.firewall)] {
        let header = format!("[[{host}.firewall]]");
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.trim_start().starts_with(&header))
            .map(|(n, _)| n + 1)
            .collect();
        for (n, rule) in rules.iter().enumerate() {
            let matches_own = [rule.sport, rule.dport]
                .iter()
                .any(|port| port.is_some() && own.contains(port));
            if !matches_own {
                return Err(SpecError {
                    file: source.to_string(),
                    line: lines.get(n).copied().unwrap_or(1),
                    column: 1,
                    message: format!(
                        "{header} number {}: a rule must match the experiment's port {} \
                         (sport or dport); one without it would reach the host's other traffic",
                        n + 1,
                        spec.port
                    ),
                });
            }
        }
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key assigned on the line holding `offset` (`port = 0` → `port`).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c));
    plain.then(|| key.to_string())
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
        assert_eq!(experiment.spec.expect().within_ms, WaitMs(2000));
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
