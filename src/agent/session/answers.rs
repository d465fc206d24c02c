//! How a session answers each request: one method per request type, each
//! taking its request and returning the reply the protocol ties to it.
//! [`AgentSession::handle`] is the only way in; it turns an error of any of
//! them into [`Reply::Error`].

use std::time::{Duration, Instant};

use super::{AgentError, AgentSession, MAX_WAIT, bad_request};
use crate::agent::kernel::bind_probe::{try_bind, try_bind_beside};
use crate::agent::kernel::capture::Capture;
use crate::agent::kernel::link::LinkConfigurator;
use crate::agent::kernel::{freshen, socket_options, young_time_wait};
use crate::agent::programs::client;
use crate::agent::programs::server_child::ServerProcess;
use crate::agent::recovery::journal::ProcessId;
use crate::agent::recovery::reap::reap_host;
use crate::protocol::*;

impl AgentSession {
    /// Answers one request.
    pub async fn handle(&mut self, request: Request) -> Reply {
        if let Some(error) = &self.setup_error {
            return error.clone().into();
        }
        self.dispatch(request).await.unwrap_or_else(Reply::from)
    }

    /// One line per request: the method that answers it.
    async fn dispatch(&mut self, request: Request) -> Result<Reply, AgentError> {
        Ok(match request {
            Request::Hello(_) => self.hello().into(),
            Request::CreateVeth(veth) => self.create_veth(veth).await?.into(),
            Request::ConfigureLink(link) => self.configure_link(link).await?.into(),
            Request::AddFirewallRule(add) => self.add_firewall_rule(add)?.into(),
            Request::Serve(serve) => self.serve(serve).await?.into(),
            Request::Connect(connect) => self.connect(connect).await?.into(),
            Request::TryConnect(probe) => try_connect(probe).await.into(),
            Request::TryConnectYoungTimeWait(probe) => self.young_reuse(probe).await?.into(),
            Request::Freshen(fresh) => freshen_guest(fresh)?.into(),
            Request::CloseClient(_) => self.close_client()?.into(),
            Request::KillServer(kill) => self.kill_server(kill).await?.into(),
            Request::WaitForState(wait) => self.wait_for_state(wait).await?.into(),
            Request::Sockets(list) => self.socket_list(list)?.into(),
            Request::TryBind(probe) => BindResult {
                outcome: try_bind(probe.address, probe.reuse),
            }
            .into(),
            Request::TryBindBeside(probe) => self.try_bind_beside(probe)?.into(),
            Request::StartCapture(start) => self.start_capture(start)?.into(),
            Request::StopCapture(_) => self.stop_capture().await?.into(),
            Request::SetSysctl(set) => self.set_sysctl_done(set)?.into(),
            Request::ProbeRebind(probe) => self.probe_rebind(probe).await.into(),
            Request::Mptcp(_) => MptcpSupport {
                missing: socket_options::mptcp_missing(),
            }
            .into(),
            Request::Interfaces(_) => interfaces().await?.into(),
            Request::FreePorts(free) => self.free_port_list(free)?.into(),
            Request::EndCase(_) => self.end_case().await?.into(),
            Request::Reap(_) => reap_host()?.into(),
            Request::Shutdown(_) => self.shut_down().await?.into(),
        })
    }

    /// Closes c1's open client connection.
    fn close_client(&mut self) -> Result<Done, AgentError> {
        self.client
            .take()
            .ok_or_else(|| bad_request("no open client connection"))?;
        Ok(Done {})
    }

    fn socket_list(&mut self, list: Sockets) -> Result<SocketList, AgentError> {
        Ok(SocketList {
            sockets: self.sockets_on(list.port)?,
        })
    }

    fn free_port_list(&mut self, free: FreePorts) -> Result<PortList, AgentError> {
        Ok(PortList {
            ports: self.free_ports(free.from, free.count)?,
        })
    }

    fn set_sysctl_done(&mut self, set: SetSysctl) -> Result<Done, AgentError> {
        self.set_sysctl(set.setting, set.value)?;
        Ok(Done {})
    }

    /// Undoes the case, and keeps a spare server ready for the next one.
    async fn end_case(&mut self) -> Result<Done, AgentError> {
        self.finish().await?;
        self.keep_a_spare();
        Ok(Done {})
    }

    /// Undoes everything, the spare included.
    async fn shut_down(&mut self) -> Result<Done, AgentError> {
        self.spare = None;
        self.finish().await?;
        Ok(Done {})
    }

    fn hello(&self) -> AgentInfo {
        AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: self.pid,
            arch: std::env::consts::ARCH.to_string(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|r| r.trim().to_string())
                .unwrap_or_default(),
        }
    }

    async fn create_veth(&mut self, veth: CreateVeth) -> Result<Done, AgentError> {
        self.links_allowed()?;
        LinkConfigurator::open()?
            .create_veth(&veth.name, &veth.peer_name, veth.peer_pid)
            .await?;
        Ok(Done {})
    }

    async fn configure_link(&mut self, link: ConfigureLink) -> Result<Done, AgentError> {
        self.links_allowed()?;
        LinkConfigurator::open()?
            .configure(&link.name, link.address, link.prefix_len)
            .await?;
        Ok(Done {})
    }

    fn add_firewall_rule(&mut self, add: AddFirewallRule) -> Result<FirewallRuleAdded, AgentError> {
        let display = self.add_rule(&add.rule, add.ipv6)?;
        Ok(FirewallRuleAdded { display })
    }

    async fn serve(&mut self, serve: Serve) -> Result<Serving, AgentError> {
        if self.server.is_some() {
            return Err(bad_request("a server is already running"));
        }
        let process = ServerProcess::start(&serve.server, self.spare.take()).await?;
        let pid = process.pid();
        let banner = process.banner().to_string();
        self.server = Some(process);
        if let Some(server) = ProcessId::of(pid) {
            self.journal.record_server(server)?;
        }
        Ok(Serving { pid, banner })
    }

    async fn connect(&mut self, connect: Connect) -> Result<Connected, AgentError> {
        let outcome = client::connect(
            connect.server,
            connect.close,
            connect.local_port,
            connect.reuse,
        )
        .await?;
        let closed = outcome.stream.is_none();
        self.client = outcome.stream;
        Ok(Connected {
            local: outcome.local,
            greeting: outcome.greeting,
            closed,
            reset: outcome.reset,
        })
    }

    async fn young_reuse(
        &mut self,
        probe: TryConnectYoungTimeWait,
    ) -> Result<YoungReuseSeen, AgentError> {
        let diag = self.diag()?;
        let attempt = young_time_wait::connect_after_second_turns(
            diag,
            probe.local_port,
            probe.server,
            probe.reuse,
        )
        .await?;
        Ok(YoungReuseSeen { attempt })
    }

    async fn kill_server(&mut self, kill: KillServer) -> Result<Killed, AgentError> {
        let server = self
            .server
            .take()
            .ok_or_else(|| bad_request("no server is running"))?;
        let (pid, closes) = server.kill(kill.signal).await?;
        self.killed_at = Some(Instant::now());
        for (peer, at) in closes {
            self.clock.server_closed(peer, at);
        }
        Ok(Killed { pid })
    }

    fn try_bind_beside(&mut self, probe: TryBindBeside) -> Result<BindBeside, AgentError> {
        let held = &probe.held;
        if held.len() > MAX_HELD {
            return Err(bad_request(&format!(
                "{} held sockets; at most {MAX_HELD}",
                held.len()
            )));
        }
        // Connections stay on this host: each goes to a listener the same
        // request holds.
        let listeners: Vec<std::net::SocketAddr> = held
            .iter()
            .filter(|h| h.listen)
            .map(|h| h.address)
            .collect();
        let targets = held.iter().filter_map(|h| h.connect).chain(probe.connect);
        if let Some(stray) = targets.into_iter().find(|t| !listeners.contains(t)) {
            return Err(bad_request(&format!(
                "connect to {stray}: not a listener this request holds"
            )));
        }
        let (held, outcome) = try_bind_beside(held, probe.address, probe.reuse, probe.connect);
        Ok(BindBeside { held, outcome })
    }

    fn start_capture(&mut self, start: StartCapture) -> Result<Done, AgentError> {
        if self.capture.is_some() {
            return Err(bad_request("a capture is already running"));
        }
        self.capture = Some(Capture::start(start.address, start.port)?);
        Ok(Done {})
    }

    async fn stop_capture(&mut self) -> Result<Captured, AgentError> {
        let capture = self
            .capture
            .take()
            .ok_or_else(|| bad_request("no capture is running"))?;
        Ok(Captured {
            record: capture.finish().await,
        })
    }
}

/// A request's own deadline, capped: no request keeps an agent forever.
pub(super) fn capped(deadline_ms: u64) -> Duration {
    Duration::from_millis(deadline_ms).min(MAX_WAIT)
}

/// connect() as a probe: its outcome and the local address it used.
async fn try_connect(probe: TryConnect) -> ConnectProbe {
    let (outcome, local) = client::try_connect(probe.local, probe.server, probe.reuse).await;
    ConnectProbe { outcome, local }
}

/// A restored guest's fresh randomness and clock.
fn freshen_guest(fresh: Freshen) -> Result<Done, AgentError> {
    freshen::freshen(&fresh.entropy, Duration::from_nanos(fresh.realtime_ns))?;
    Ok(Done {})
}

/// The addresses of this host's interfaces.
async fn interfaces() -> Result<InterfaceList, AgentError> {
    Ok(InterfaceList {
        addresses: LinkConfigurator::open()?.addresses().await?,
    })
}
