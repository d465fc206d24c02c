//! One agent session: the state a host keeps between requests, and what undoes it.
//!
//! The session owns everything the agent changed on its host (firewall rules,
//! sysctls, the server child, the client socket). [`AgentSession::finish`]
//! undoes all of it; the agent calls it on every way out (`shutdown`, end of
//! input, a signal, a reply it cannot write), so a host is left as it was
//! found however the orchestrator goes away. On a real host every change is
//! journaled before it is made (see [`super::journal`]), so that even a
//! killed agent's changes can be undone by `tcplab lab clean`.
//!
//! What an agent will do depends on its [`AgentRole`]: only an agent in a
//! network namespace of its own may create and configure links.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::bind_probe::{try_bind, try_bind_beside};
use super::capture::Capture;
use super::client;
use super::diag::{SockDiag, SocketEntry, SocketFilter};
pub use super::error::AgentError;
use super::firewall::FirewallSession;
use super::freshen;
use super::journal::{Journal, ProcessId, SysctlLock};
use super::link::LinkConfigurator;
use super::protocol::{AgentErrorKind, MAX_HELD, Reply, Request, SocketOptions};
use super::reap::{reap_host, restore_dead_sysctls};
use super::server::ServerProcess;
use super::spare_server::SpareServer;
use super::sysctl::SysctlSession;
use super::young_time_wait;
use crate::tcp_state::SocketState;

/// How often [`Request::WaitForState`] reads sock_diag. A dump of a lab
/// namespace costs microseconds, so polling tightly keeps runs fast.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Most ports one `FreePorts` request returns.
const MAX_FREE_PORTS: u16 = 256;
/// The longest wait a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How long a session waits for another one's sysctl changes to end.
const SYSCTL_LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Where an agent runs, which decides what it may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRole {
    /// In a network namespace of its own (netns lab): links, rules and
    /// sysctls there die with the namespace.
    OwnNamespace,
    /// On a real host: no link changes; every change is journaled. `upload`
    /// is the directory the agent runs from, if it was uploaded.
    Host { upload: Option<std::path::PathBuf> },
}

/// The state of one agent between requests.
pub struct AgentSession {
    pid: u32,
    /// Set when the agent could not enter its own network namespace: every
    /// request is answered with it, so the orchestrator learns why.
    setup_error: Option<AgentError>,
    firewall: FirewallSession,
    server: Option<ServerProcess>,
    /// The next case's `tcplab serve`, started ahead of time.
    spare: Option<SpareServer>,
    /// When the server was killed: rebind times are measured from here.
    killed_at: Option<Instant>,
    client: Option<TcpStream>,
    diag: Option<SockDiag>,
    sysctls: SysctlSession,
    /// Held while this session has changed sysctls on a real host.
    sysctl_lock: Option<SysctlLock>,
    capture: Option<Capture>,
    role: AgentRole,
    journal: Journal,
    /// Connections (local port, peer) that some dump of this session saw.
    seen: std::collections::HashSet<(u16, std::net::SocketAddr)>,
    /// When each connection was first seen in each state.
    clock: super::state_clock::StateClock,
}

impl AgentSession {
    pub fn new(setup_error: Option<AgentError>, role: AgentRole) -> AgentSession {
        let pid = std::process::id();
        let journal = match &role {
            AgentRole::OwnNamespace => Journal::disabled(),
            AgentRole::Host { upload } => Journal::for_host(upload.clone()),
        };
        AgentSession {
            pid,
            setup_error,
            firewall: FirewallSession::new(pid),
            server: None,
            spare: None,
            killed_at: None,
            client: None,
            diag: None,
            sysctls: SysctlSession::default(),
            sysctl_lock: None,
            capture: None,
            role,
            journal,
            seen: std::collections::HashSet::new(),
            clock: Default::default(),
        }
    }

    /// Starts a spare `tcplab serve` for the next server unless one waits
    /// already: it starts up between cases instead of inside one. If it
    /// cannot start, the next server starts the slow way and says why.
    pub fn keep_a_spare(&mut self) {
        if self.spare.is_none() && self.setup_error.is_none() {
            self.spare = SpareServer::start().ok();
        }
    }

    /// Link set-up is for the netns lab only: on a real host it would change
    /// the host's own interfaces, and nothing would undo it.
    fn links_allowed(&self) -> Result<(), AgentError> {
        match self.role {
            AgentRole::OwnNamespace => Ok(()),
            AgentRole::Host { .. } => Err(AgentError::new(
                AgentErrorKind::BadRequest,
                "this agent runs on a real host: it does not create or configure links \
                 (only an agent in a network namespace of its own does)",
            )),
        }
    }

    /// Adds a firewall rule, journaled before it is added.
    fn add_rule(
        &mut self,
        rule: &super::firewall::FirewallRule,
        ipv6: bool,
    ) -> Result<String, AgentError> {
        let planned = self.firewall.plan(rule, ipv6);
        self.journal.record_rule(planned.clone())?;
        if let Err(error) = self.firewall.apply(planned.clone()) {
            self.journal.forget_rule(&planned)?;
            return Err(error);
        }
        Ok(rule.command_line(planned.tool))
    }

    /// Sets a sysctl. On a real host the session first takes the host-wide
    /// lock (and puts back what dead sessions left), then journals the
    /// original value.
    fn set_sysctl(&mut self, setting: super::sysctl::Sysctl, value: u32) -> Result<(), AgentError> {
        if matches!(self.role, AgentRole::Host { .. }) && self.sysctl_lock.is_none() {
            let lock = SysctlLock::acquire(SYSCTL_LOCK_PATIENCE)?;
            restore_dead_sysctls(&lock)?;
            self.sysctl_lock = Some(lock);
        }
        let original = setting.read_raw()?;
        self.journal.record_sysctl(setting, original.clone())?;
        self.sysctls.set(setting, value, original)
    }

    /// Answers one request.
    pub async fn handle(&mut self, request: Request) -> Reply {
        if let Some(error) = &self.setup_error {
            return error_reply(error.clone());
        }
        match self.dispatch(request).await {
            Ok(reply) => reply,
            Err(error) => error_reply(error),
        }
    }

    async fn dispatch(&mut self, request: Request) -> Result<Reply, AgentError> {
        match request {
            Request::Hello {} => Ok(Reply::Hello {
                version: env!("CARGO_PKG_VERSION").to_string(),
                pid: self.pid,
                arch: std::env::consts::ARCH.to_string(),
                kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|r| r.trim().to_string())
                    .unwrap_or_default(),
            }),
            Request::CreateVeth {
                name,
                peer_name,
                peer_pid,
            } => {
                self.links_allowed()?;
                LinkConfigurator::open()?
                    .create_veth(&name, &peer_name, peer_pid)
                    .await?;
                Ok(Reply::Done)
            }
            Request::ConfigureLink {
                name,
                address,
                prefix_len,
            } => {
                self.links_allowed()?;
                LinkConfigurator::open()?
                    .configure(&name, address, prefix_len)
                    .await?;
                Ok(Reply::Done)
            }
            Request::AddFirewallRule { rule, ipv6 } => {
                let display = self.add_rule(&rule, ipv6)?;
                Ok(Reply::FirewallRuleAdded { display })
            }
            Request::Serve { server } => {
                if self.server.is_some() {
                    return Err(bad_request("a server is already running"));
                }
                let process = ServerProcess::start(&server, self.spare.take()).await?;
                let pid = process.pid();
                let banner = process.banner().to_string();
                self.server = Some(process);
                if let Some(server) = ProcessId::of(pid) {
                    self.journal.record_server(server)?;
                }
                Ok(Reply::Serving { pid, banner })
            }
            Request::Connect {
                server,
                close,
                local_port,
                reuse,
            } => {
                let outcome = client::connect(server, close, local_port, reuse).await?;
                let closed = outcome.stream.is_none();
                self.client = outcome.stream;
                Ok(Reply::Connected {
                    local: outcome.local,
                    greeting: outcome.greeting,
                    closed,
                    reset: outcome.reset,
                })
            }
            Request::TryConnect {
                local,
                server,
                reuse,
            } => {
                let (outcome, local) = client::try_connect(local, server, reuse).await;
                Ok(Reply::ConnectProbe { outcome, local })
            }
            Request::TryConnectYoungTimeWait {
                local_port,
                server,
                reuse,
            } => {
                let diag = self.diag()?;
                let attempt =
                    young_time_wait::connect_after_second_turns(diag, local_port, server, reuse)
                        .await?;
                Ok(Reply::YoungReuse { attempt })
            }
            Request::Freshen {
                entropy,
                realtime_ns,
            } => {
                freshen::freshen(&entropy, Duration::from_nanos(realtime_ns))?;
                Ok(Reply::Done)
            }
            Request::CloseClient {} => {
                self.client
                    .take()
                    .ok_or_else(|| bad_request("no open client connection"))?;
                Ok(Reply::Done)
            }
            Request::KillServer { signal } => {
                let server = self
                    .server
                    .take()
                    .ok_or_else(|| bad_request("no server is running"))?;
                let (pid, closes) = server.kill(signal).await?;
                self.killed_at = Some(Instant::now());
                for (peer, at) in closes {
                    self.clock.server_closed(peer, at);
                }
                Ok(Reply::Killed { pid })
            }
            Request::WaitForState {
                local_port,
                peer,
                state,
                deadline_ms,
            } => {
                let deadline = Duration::from_millis(deadline_ms).min(MAX_WAIT);
                self.wait_for_state(local_port, peer, state, deadline).await
            }
            Request::Sockets { port } => Ok(Reply::Sockets {
                sockets: self.sockets_on(port)?,
            }),
            Request::TryBind { address, reuse } => Ok(Reply::Bind {
                outcome: try_bind(address, reuse),
            }),
            Request::TryBindBeside {
                held,
                address,
                reuse,
                connect,
            } => {
                if held.len() > MAX_HELD {
                    return Err(bad_request(&format!(
                        "{} held sockets; at most {MAX_HELD}",
                        held.len()
                    )));
                }
                // Connections stay on this host: each goes to a listener
                // the same request holds.
                let listeners: Vec<std::net::SocketAddr> = held
                    .iter()
                    .filter(|h| h.listen)
                    .map(|h| h.address)
                    .collect();
                let targets = held.iter().filter_map(|h| h.connect).chain(connect);
                if let Some(stray) = targets.into_iter().find(|t| !listeners.contains(t)) {
                    return Err(bad_request(&format!(
                        "connect to {stray}: not a listener this request holds"
                    )));
                }
                let (held, outcome) = try_bind_beside(&held, address, reuse, connect);
                Ok(Reply::BindBeside { held, outcome })
            }
            Request::StartCapture { address, port } => {
                if self.capture.is_some() {
                    return Err(bad_request("a capture is already running"));
                }
                self.capture = Some(Capture::start(address, port)?);
                Ok(Reply::Done)
            }
            Request::StopCapture {} => {
                let capture = self
                    .capture
                    .take()
                    .ok_or_else(|| bad_request("no capture is running"))?;
                Ok(Reply::Captured {
                    record: capture.finish().await,
                })
            }
            Request::SetSysctl { setting, value } => {
                self.set_sysctl(setting, value)?;
                Ok(Reply::Done)
            }
            Request::ProbeRebind {
                address,
                reuse,
                every_ms,
                deadline_ms,
            } => {
                let every = Duration::from_millis(every_ms.clamp(1, 10_000));
                let deadline = Duration::from_millis(deadline_ms).min(MAX_WAIT);
                Ok(self.probe_rebind(address, reuse, every, deadline).await)
            }
            Request::Mptcp {} => Ok(Reply::Mptcp {
                missing: super::socket_options::mptcp_missing(),
            }),
            Request::Interfaces {} => Ok(Reply::Interfaces {
                addresses: LinkConfigurator::open()?.addresses().await?,
            }),
            Request::FreePorts { from, count } => Ok(Reply::FreePorts {
                ports: self.free_ports(from, count)?,
            }),
            Request::EndCase {} => {
                self.finish().await?;
                self.keep_a_spare();
                Ok(Reply::Done)
            }
            Request::Reap {} => {
                let reaped = reap_host()?;
                Ok(Reply::Reaped {
                    rules: reaped.rules,
                    processes: reaped.processes,
                    uploads: reaped.uploads,
                    sysctls: reaped.sysctls,
                })
            }
            Request::Shutdown {} => {
                self.spare = None;
                self.finish().await?;
                Ok(Reply::Done)
            }
        }
    }

    /// Up to `count` ports from `from` up that no TCP socket uses locally.
    fn free_ports(&mut self, from: u16, count: u16) -> Result<Vec<u16>, AgentError> {
        let used: std::collections::HashSet<u16> = self
            .sockets(SocketFilter::default())?
            .iter()
            .map(|s| s.local.port())
            .collect();
        Ok((from.max(1)..=u16::MAX)
            .filter(|port| !used.contains(port))
            .take(usize::from(count.min(MAX_FREE_PORTS)))
            .collect())
    }

    fn sockets_on(&mut self, port: u16) -> Result<Vec<SocketEntry>, AgentError> {
        self.sockets(SocketFilter {
            port: Some(port),
            state: None,
        })
    }

    fn sockets(&mut self, filter: SocketFilter) -> Result<Vec<SocketEntry>, AgentError> {
        self.diag()?
            .tcp_sockets(filter)
            .map_err(|e| AgentError::new(AgentErrorKind::Failed, format!("sock_diag dump: {e}")))
    }

    /// The session's sock_diag socket, opened on first use.
    fn diag(&mut self) -> Result<&mut SockDiag, AgentError> {
        if self.diag.is_none() {
            let diag = SockDiag::open().map_err(|e| {
                AgentError::new(
                    AgentErrorKind::Failed,
                    format!("cannot open sock_diag: {e}"),
                )
            })?;
            self.diag = Some(diag);
        }
        self.diag
            .as_mut()
            .ok_or_else(|| AgentError::new(AgentErrorKind::Failed, "sock_diag is not open"))
    }

    /// Tries to bind until it works: the time from the kill is how long the
    /// orphaned connection kept the port.
    async fn probe_rebind(
        &mut self,
        address: std::net::SocketAddr,
        reuse: SocketOptions,
        every: Duration,
        deadline: Duration,
    ) -> Reply {
        let started = Instant::now();
        let since = self.killed_at.unwrap_or(started);
        let reference = self.clock.reference();
        let (state, from_close) = (
            reference.map(|r| r.state),
            reference.is_some_and(|r| r.from_close),
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = try_bind(address, reuse);
            if last.is_ok() {
                return Reply::Rebound {
                    after_kill_ms: Some(since.elapsed().as_millis() as u64),
                    after_state_ms: self.clock.since_reference().map(|d| d.as_millis() as u64),
                    state,
                    from_close,
                    attempts,
                    last,
                };
            }
            if started.elapsed() >= deadline {
                return Reply::Rebound {
                    after_kill_ms: None,
                    after_state_ms: None,
                    state,
                    from_close,
                    attempts,
                    last,
                };
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Polls until the connection `local_port` ⇄ `peer` is in `state`.
    async fn wait_for_state(
        &mut self,
        local_port: u16,
        peer: std::net::SocketAddr,
        state: Option<SocketState>,
        deadline: Duration,
    ) -> Result<Reply, AgentError> {
        let started = Instant::now();
        // Each dump walks the kernel's whole connection table, so once the
        // connection is found, only its family is dumped again. (Not simply
        // the peer's family: a dual-stack server holds IPv4 peers in IPv6
        // sockets.)
        let mut family = None;
        loop {
            let filter = SocketFilter {
                port: Some(local_port),
                state: None,
            };
            let sockets = match family {
                Some(family) => self.diag()?.tcp_sockets_of(family, filter),
                None => self.diag()?.tcp_sockets(filter),
            }
            .map_err(|e| AgentError::new(AgentErrorKind::Failed, format!("sock_diag dump: {e}")))?;
            let connection = sockets
                .iter()
                .find(|s| s.local.port() == local_port && same_endpoint(s.remote, peer))
                .cloned();
            if let Some(found) = &connection {
                self.seen.insert((local_port, peer));
                self.clock.saw(local_port, peer, found.state);
                family = Some(if found.local.is_ipv6() {
                    libc::AF_INET6 as u8
                } else {
                    libc::AF_INET as u8
                });
            }
            let reached = connection.as_ref().map(|c| c.state) == state;
            if let (true, Some(state)) = (reached, state) {
                self.clock.reached(local_port, peer, state);
            }
            if reached || started.elapsed() >= deadline {
                return Ok(Reply::State {
                    reached,
                    identified: self.seen.contains(&(local_port, peer)),
                    connection,
                    sockets,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Undoes everything this session did on the host: closes the client,
    /// kills the server, puts sysctls back, removes the firewall rules, and
    /// strikes each from the journal once it is undone. Keeps going past a
    /// failure; the first one is returned.
    pub async fn finish(&mut self) -> Result<(), AgentError> {
        self.client = None;
        if let Some(capture) = self.capture.take() {
            capture.finish().await;
        }
        let mut result = Ok(());
        if let Some(server) = self.server.take() {
            result = server
                .kill(super::protocol::KillSignal::Kill)
                .await
                .map(|_| ());
        }
        if result.is_ok() {
            result = self.journal.forget_servers();
        }
        self.killed_at = None;
        self.clock.clear();
        let restored = self.sysctls.restore_all();
        if restored.is_ok() && self.sysctls.is_empty() {
            let forgotten = self.journal.forget_sysctls();
            // Only now may another session change the same settings.
            self.sysctl_lock = None;
            result = result.and(forgotten);
        }
        let journal = &mut self.journal;
        let mut forgotten = Ok(());
        let removed = self.firewall.remove_all(|rule| {
            if let Err(error) = journal.forget_rule(rule) {
                forgotten = Err(error);
            }
        });
        result.and(restored).and(removed).and(forgotten)
    }

    /// Called once as the agent exits: the journal goes if nothing is left
    /// to undo; otherwise it stays for `lab clean`.
    pub fn close_journal(&mut self) {
        self.journal.close();
    }
}

/// Compares endpoints across address families: a dual-stack server sees an
/// IPv4 client as `::ffff:a.b.c.d`. An unspecified `expected` address (a
/// client reset before it learnt its own address) matches by port alone.
fn same_endpoint(seen: std::net::SocketAddr, expected: std::net::SocketAddr) -> bool {
    seen.port() == expected.port()
        && (expected.ip().is_unspecified()
            || seen.ip().to_canonical() == expected.ip().to_canonical())
}

fn bad_request(message: &str) -> AgentError {
    AgentError::new(AgentErrorKind::BadRequest, message)
}

fn error_reply(error: AgentError) -> Reply {
    Reply::Error {
        kind: error.kind,
        message: error.message,
    }
}
