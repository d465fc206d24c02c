//! One `[[case]]` of an experiment file: the two sockets, what the case
//! tries after the kill (its [`Probe`]), the sockets a `live_socket` case
//! holds beside the old one, and what it expects, per kernel where kernels
//! differ.

use serde::Deserialize;

use super::bind_choice::BindChoice;
use super::spec_values::{
    Bounded, ExpectedBind, ExpectedState, Linger2, OneLine, PortRange, RebindWindow,
};
use crate::protocol::{SocketOptions, Sysctl};

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
        let disconnected = if self.disconnected {
            ", disconnected and bound to its port by hand"
        } else {
            ""
        };
        format!(
            "{}{port} ({}), {}{disconnected}{closed}",
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
    /// With `state = "connected"`: disconnected again (connect() with
    /// AF_UNSPEC) and bound by hand to the port connect() had picked.
    #[serde(default)]
    pub disconnected: bool,
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
    /// As `ConnectEphemeral`, at the moment that tells the kernels'
    /// tcp_tw_reuse rules apart: after the clock's whole second has turned
    /// since the TIME_WAIT began, while it is still under a second old.
    ConnectYoungTimeWait,
}

impl Probe {
    /// As files spell it, for any probe but the default bind.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Probe::Bind => None,
            Probe::Connect => Some("connect"),
            Probe::ConnectEphemeral => Some("connect_ephemeral"),
            Probe::ConnectYoungTimeWait => Some("connect_young_time_wait"),
        }
    }
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

impl CaseSpec {
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
