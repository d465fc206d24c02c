//! One agent session: the state a host keeps between requests, and what undoes it.
//!
//! The session owns everything the agent changed on its host (firewall rules,
//! the server child, the client socket). [`AgentSession::finish`] undoes all of
//! it; the agent calls it on `shutdown`, on end of input and on SIGTERM, so a
//! host is left as it was found however the orchestrator goes away.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::bind_probe::try_bind;
use super::capture::Capture;
use super::client;
use super::diag::{SockDiag, SocketEntry, SocketFilter};
use super::firewall::FirewallSession;
use super::link::LinkConfigurator;
use super::protocol::{AgentErrorKind, Reply, Request, ReuseOptions};
use super::reap::reap_host;
use super::server::ServerProcess;
use super::sysctl::SysctlSession;
use crate::tcp_state::SocketState;

/// How often [`Request::WaitForState`] reads sock_diag. A dump of a lab
/// namespace costs microseconds, so polling tightly keeps runs fast.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Most ports one `FreePorts` request returns.
const MAX_FREE_PORTS: u16 = 256;
/// The longest wait a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// A failed request, answered as [`Reply::Error`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    pub kind: AgentErrorKind,
    pub message: String,
}

impl AgentError {
    pub fn new(kind: AgentErrorKind, message: impl Into<String>) -> AgentError {
        AgentError {
            kind,
            message: message.into(),
        }
    }
}

/// The state of one agent between requests.
pub struct AgentSession {
    pid: u32,
    /// Set when the agent could not enter its own network namespace: every
    /// request is answered with it, so the orchestrator learns why.
    setup_error: Option<AgentError>,
    firewall: FirewallSession,
    server: Option<ServerProcess>,
    /// When the server was killed: rebind times are measured from here.
    killed_at: Option<Instant>,
    client: Option<TcpStream>,
    diag: Option<SockDiag>,
    sysctls: SysctlSession,
    capture: Option<Capture>,
}

impl AgentSession {
    pub fn new(setup_error: Option<AgentError>) -> AgentSession {
        let pid = std::process::id();
        AgentSession {
            pid,
            setup_error,
            firewall: FirewallSession::new(pid),
            server: None,
            killed_at: None,
            client: None,
            diag: None,
            sysctls: SysctlSession::default(),
            capture: None,
        }
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
            }),
            Request::CreateVeth {
                name,
                peer_name,
                peer_pid,
            } => {
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
                LinkConfigurator::open()?
                    .configure(&name, address, prefix_len)
                    .await?;
                Ok(Reply::Done)
            }
            Request::AddFirewallRule { rule, ipv6 } => {
                let display = self.firewall.add(&rule, ipv6)?;
                Ok(Reply::FirewallRuleAdded { display })
            }
            Request::Serve { server } => {
                if self.server.is_some() {
                    return Err(bad_request("a server is already running"));
                }
                let process = ServerProcess::start(&server).await?;
                let pid = process.pid();
                let banner = process.banner().to_string();
                self.server = Some(process);
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
                let pid = server.kill(signal).await?;
                self.killed_at = Some(Instant::now());
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
                self.sysctls.set(setting, value)?;
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
            Request::Interfaces {} => Ok(Reply::Interfaces {
                addresses: LinkConfigurator::open()?.addresses().await?,
            }),
            Request::FreePorts { from, count } => Ok(Reply::FreePorts {
                ports: self.free_ports(from, count)?,
            }),
            Request::EndCase {} => {
                self.finish().await?;
                Ok(Reply::Done)
            }
            Request::Reap {} => {
                let reaped = reap_host()?;
                Ok(Reply::Reaped {
                    rules: reaped.rules,
                    processes: reaped.processes,
                    uploads: reaped.uploads,
                })
            }
            Request::Shutdown {} => {
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
        reuse: ReuseOptions,
        every: Duration,
        deadline: Duration,
    ) -> Reply {
        let started = Instant::now();
        let since = self.killed_at.unwrap_or(started);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = try_bind(address, reuse);
            if last.is_ok() {
                return Reply::Rebound {
                    after_kill_ms: Some(since.elapsed().as_millis() as u64),
                    attempts,
                    last,
                };
            }
            if started.elapsed() >= deadline {
                return Reply::Rebound {
                    after_kill_ms: None,
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
                family = Some(if found.local.is_ipv6() {
                    libc::AF_INET6 as u8
                } else {
                    libc::AF_INET as u8
                });
            }
            let reached = connection.as_ref().map(|c| c.state) == state;
            if reached || started.elapsed() >= deadline {
                return Ok(Reply::State {
                    reached,
                    connection,
                    sockets,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Undoes everything this session did on the host: closes the client,
    /// kills the server, removes the firewall rules.
    pub async fn finish(&mut self) -> Result<(), AgentError> {
        self.client = None;
        if let Some(capture) = self.capture.take() {
            capture.finish().await;
        }
        if let Some(server) = self.server.take() {
            server.kill(super::protocol::KillSignal::Kill).await?;
        }
        self.killed_at = None;
        let restored = self.sysctls.restore_all();
        self.firewall.remove_all().and(restored)
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
