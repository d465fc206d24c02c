//! The orchestrator's end of one agent: a child process (the agent, or an ssh
//! session) spoken to in JSON lines, one request and one reply at a time.
//!
//! Like rtnetlink's `Handle`, it offers one small typed method per request
//! (`serve`, `connect`, `try_bind`, …) over a single [`AgentConnection::call`],
//! which adds what every request needs: a deadline, the host and step named in
//! errors, and cancellation on Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::LabError;
use crate::agent::capture::CaptureRecord;
use crate::agent::diag::SocketEntry;
use crate::agent::firewall::FirewallRule;
use crate::agent::protocol::{
    BindOutcome, ClientClose, HeldSocket, InterfaceAddress, KillSignal, Reply, Request,
    ServerOptions, SocketOptions, Sysctl, YoungReuse,
};
use crate::bounded_lines::{BoundedLines, Line};
use crate::interrupt::Interrupt;
use crate::pidfd::ProcessHandle;
use crate::process::die_with_parent;
use crate::tcp_state::SocketState;

/// A message as JSON, cut to a length a log line can hold.
fn short_json(message: &impl serde::Serialize) -> String {
    let mut text = serde_json::to_string(message).unwrap_or_default();
    if text.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The longest reply line read from an agent: a capture of 10,000 packets
/// and state samples fits many times over.
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// How long an ordinary request may take before the agent counts as hung:
/// 10 s, or `$TCPLAB_AGENT_TIMEOUT_MS` (slow real hosts want more, tests of
/// a hung agent less).
fn request_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("TCPLAB_AGENT_TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .filter(|ms| *ms > 0)
            .map_or(Duration::from_secs(10), Duration::from_millis)
    })
}
/// How long an agent may take to undo its session and exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What `WaitForState` saw.
#[derive(Debug, Clone)]
pub struct StateObservation {
    pub reached: bool,
    /// The agent saw the connection at some point (see [`Reply::State`]).
    pub identified: bool,
    pub connection: Option<SocketEntry>,
    pub sockets: Vec<SocketEntry>,
    pub waited_ms: u64,
}

/// What `ProbeRebind` saw.
#[derive(Debug, Clone)]
pub struct Rebound {
    pub after_kill_ms: Option<u64>,
    /// From the first sighting of the old connection in `state` (see
    /// `agent::state_clock`).
    pub after_state_ms: Option<u64>,
    pub state: Option<crate::tcp_state::SocketState>,
    pub from_close: bool,
    pub attempts: u32,
    pub last: BindOutcome,
}

/// What `Connect` saw.
#[derive(Debug, Clone)]
pub struct Connection {
    pub local: SocketAddr,
    pub greeting: String,
    /// The server reset the connection (RST) instead of closing it.
    pub reset: bool,
}

/// Tells every agent of a host pair when one of them is gone, so a case
/// waiting on c2 hears at once that c1's process (or ssh session) died,
/// instead of at its next request to c1.
#[derive(Clone, Default)]
pub struct LossWatch {
    token: CancellationToken,
    lost_host: Arc<Mutex<Option<String>>>,
}

impl LossWatch {
    fn report(&self, host: &str) {
        if let Ok(mut slot) = self.lost_host.lock() {
            slot.get_or_insert_with(|| host.to_string());
        }
        self.token.cancel();
    }

    /// Resolves with the name of the first host lost.
    async fn lost(&self) -> String {
        self.token.cancelled().await;
        self.lost_host
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
            .unwrap_or_default()
    }
}

/// A live agent on one host.
pub struct AgentConnection {
    host: String,
    /// Becomes `Some` when the process exits (a task reaps it).
    exit: watch::Receiver<Option<ExitStatus>>,
    /// Set before a deliberate shutdown, so its exit is not reported as a loss.
    leaving: Arc<AtomicBool>,
    loss: LossWatch,
    stdin: Option<ChildStdin>,
    replies: BoundedLines<ChildStdout>,
    pid: u32,
    /// The agent process by pidfd: the reaper task may have reaped it, and a
    /// plain kill(pid) could then reach another process with the same pid.
    process: Option<ProcessHandle>,
    interrupt: Interrupt,
    /// A request was sent whose reply has not been read (it was cancelled or
    /// timed out): the stream is out of step, so shutdown uses a signal.
    in_flight: bool,
}

impl AgentConnection {
    /// Starts `tcplab agent` on this machine for `host`. With `unshare_net` the
    /// agent moves into a network namespace of its own.
    pub fn spawn_local(
        host: &str,
        unshare_net: bool,
        interrupt: &Interrupt,
        loss: &LossWatch,
    ) -> Result<AgentConnection, LabError> {
        let exe = std::env::current_exe()
            .map_err(|e| LabError::Setup(format!("cannot find the tcplab executable: {e}")))?;
        let mut command = std::process::Command::new(exe);
        command.arg("agent");
        if unshare_net {
            command.arg("--unshare-net");
        }
        AgentConnection::spawn(host, command, interrupt, loss)
    }

    /// Starts `command`, whose stdin and stdout are an agent's (the agent
    /// itself, or an `ssh` running it on a remote host).
    pub fn spawn(
        host: &str,
        mut command: std::process::Command,
        interrupt: &Interrupt,
        loss: &LossWatch,
    ) -> Result<AgentConnection, LabError> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Own process group: the terminal's Ctrl-C goes to the orchestrator
            // alone, which then shuts the agents down in order.
            .process_group(0);
        // If the orchestrator is killed outright, its agents (and their
        // namespaces, or their ssh sessions) go with it.
        die_with_parent(&mut command, libc::SIGKILL);
        tracing::debug!(host, program = ?command.get_program(), args = ?command.get_args().collect::<Vec<_>>(), "starting the agent");
        let mut command = Command::from(command);
        command.kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| LabError::Setup(format!("cannot start the agent for {host}: {e}")))?;
        let pid = child.id().unwrap_or_default();
        // Opened before the reaper task exists: the child cannot have been
        // reaped yet, so the pid is still ours.
        let process = ProcessHandle::open_child(pid).ok();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(LabError::Setup(format!(
                "the agent for {host} has no pipes"
            )));
        };
        let (report_exit, exit) = watch::channel(None);
        let leaving = Arc::new(AtomicBool::new(false));
        let reaper = {
            let (host, leaving, loss) = (host.to_string(), leaving.clone(), loss.clone());
            async move {
                let status = child.wait().await.ok();
                if !leaving.load(Ordering::SeqCst) {
                    loss.report(&host);
                }
                let _ = report_exit.send(Some(status.unwrap_or_else(|| ExitStatus::from_raw(-1))));
            }
        };
        tokio::spawn(reaper);
        Ok(AgentConnection {
            host: host.to_string(),
            exit,
            leaving,
            loss: loss.clone(),
            stdin: Some(stdin),
            replies: BoundedLines::new(stdout, MAX_REPLY_BYTES),
            pid,
            process,
            interrupt: interrupt.clone(),
            in_flight: false,
        })
    }

    /// The run's interrupt, to wait on alongside this agent.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The agent's process id on this machine.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `request` and returns the reply; `step` names it in errors.
    /// An error reply becomes a [`LabError`].
    pub async fn call(
        &mut self,
        step: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Reply, LabError> {
        let interrupt = self.interrupt.clone();
        let loss = self.loss.clone();
        let host = self.host.clone();
        let asked = std::time::Instant::now();
        tracing::info!(host = %host, step, request = %short_json(request), "request");
        let exchange = self.exchange(step, request);
        let reply = tokio::select! {
            result = tokio::time::timeout(timeout, exchange) => match result {
                Ok(reply) => reply?,
                Err(_) => return Err(LabError::Timeout {
                    host,
                    step: step.to_string(),
                    after: timeout,
                }),
            },
            signal = interrupt.cancelled() => return Err(LabError::Interrupted(signal)),
            lost = loss.lost() => return Err(LabError::AgentLost {
                host: lost,
                step: step.to_string(),
                message: "its process or connection ended".to_string(),
            }),
        };
        tracing::info!(
            host = %self.host,
            step,
            ms = asked.elapsed().as_millis() as u64,
            reply = %short_json(&reply),
            "reply"
        );
        match reply {
            Reply::Error { kind, message } => {
                Err(LabError::from_agent(&self.host, step, kind, message))
            }
            reply => Ok(reply),
        }
    }

    async fn exchange(&mut self, step: &str, request: &Request) -> Result<Reply, LabError> {
        let lost = |message: String| LabError::AgentLost {
            host: self.host.clone(),
            step: step.to_string(),
            message,
        };
        let mut line = serde_json::to_string(request).map_err(|e| lost(e.to_string()))?;
        line.push('\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| lost("its input is closed".to_string()))?;
        self.in_flight = true;
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| lost(format!("writing the request: {e}")))?;
        stdin
            .flush()
            .await
            .map_err(|e| lost(format!("writing the request: {e}")))?;
        let reply = self
            .replies
            .next_line()
            .await
            .map_err(|e| lost(format!("reading the reply: {e}")))?
            .ok_or_else(|| lost("it exited without answering".to_string()))?;
        let reply = match reply {
            Line::Text(text) => text,
            Line::TooLong => {
                return Err(lost(format!("a reply longer than {MAX_REPLY_BYTES} bytes")));
            }
            Line::NotText => return Err(lost("a reply that is not UTF-8 text".to_string())),
        };
        self.in_flight = false;
        serde_json::from_str(&reply).map_err(|e| lost(format!("unreadable reply {reply:?}: {e}")))
    }

    /// Writes raw bytes (an executable being uploaded) and returns the next
    /// line the other side prints. Used before the agent speaks the protocol.
    pub async fn send_raw(&mut self, step: &str, bytes: &[u8]) -> Result<String, LabError> {
        let host = self.host.clone();
        let lost = |message: String| LabError::AgentLost {
            host: host.clone(),
            step: step.to_string(),
            message,
        };
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| lost("its input is closed".to_string()))?;
        let upload = async {
            stdin.write_all(bytes).await?;
            stdin.flush().await?;
            self.replies.next_line().await
        };
        let line = tokio::select! {
            line = upload => line.map_err(|e| lost(e.to_string()))?,
            signal = self.interrupt.cancelled() => return Err(LabError::Interrupted(signal)),
        };
        match line.ok_or_else(|| lost("the connection closed".to_string()))? {
            Line::Text(text) => Ok(text),
            Line::TooLong | Line::NotText => Err(lost("an unreadable answer".to_string())),
        }
    }

    fn unexpected(&self, step: &str, reply: Reply) -> LabError {
        LabError::AgentLost {
            host: self.host.clone(),
            step: step.to_string(),
            message: format!("unexpected reply {reply:?}"),
        }
    }

    /// Sends a request whose only good answer is `Done`.
    async fn expect_done(&mut self, step: &str, request: Request) -> Result<(), LabError> {
        match self.call(step, &request, request_timeout()).await? {
            Reply::Done => Ok(()),
            other => Err(self.unexpected(step, other)),
        }
    }

    /// The first words with an agent; returns the host's kernel release.
    pub async fn hello(&mut self) -> Result<String, LabError> {
        self.hello_within(request_timeout()).await
    }

    /// The first words with an agent that may still be starting (a booting
    /// VM): waits up to `deadline`; returns the host's kernel release.
    pub async fn hello_within(&mut self, deadline: Duration) -> Result<String, LabError> {
        match self.call("hello", &Request::Hello {}, deadline).await? {
            Reply::Hello { kernel, .. } => Ok(kernel),
            other => Err(self.unexpected("hello", other)),
        }
    }

    pub async fn create_veth(
        &mut self,
        name: &str,
        peer_name: &str,
        peer_pid: u32,
    ) -> Result<(), LabError> {
        let request = Request::CreateVeth {
            name: name.to_string(),
            peer_name: peer_name.to_string(),
            peer_pid,
        };
        self.expect_done("create veth", request).await
    }

    pub async fn configure_link(
        &mut self,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LabError> {
        let request = Request::ConfigureLink {
            name: name.to_string(),
            address,
            prefix_len,
        };
        self.expect_done("configure link", request).await
    }

    /// Adds a rule and returns it as the article writes it.
    pub async fn add_firewall_rule(
        &mut self,
        rule: &FirewallRule,
        ipv6: bool,
    ) -> Result<String, LabError> {
        let request = Request::AddFirewallRule {
            rule: rule.clone(),
            ipv6,
        };
        match self
            .call("firewall rule", &request, request_timeout())
            .await?
        {
            Reply::FirewallRuleAdded { display } => Ok(display),
            other => Err(self.unexpected("firewall rule", other)),
        }
    }

    /// Starts the server; returns its pid and the line it printed once it listened.
    pub async fn serve(&mut self, server: ServerOptions) -> Result<(u32, String), LabError> {
        match self
            .call("serve", &Request::Serve { server }, request_timeout())
            .await?
        {
            Reply::Serving { pid, banner } => Ok((pid, banner)),
            other => Err(self.unexpected("serve", other)),
        }
    }

    pub async fn connect(
        &mut self,
        server: SocketAddr,
        close: ClientClose,
        local_port: Option<u16>,
        reuse: SocketOptions,
    ) -> Result<Connection, LabError> {
        match self
            .call(
                "connect",
                &Request::Connect {
                    server,
                    close,
                    local_port,
                    reuse,
                },
                request_timeout(),
            )
            .await?
        {
            Reply::Connected {
                local,
                greeting,
                reset,
                ..
            } => Ok(Connection {
                local,
                greeting,
                reset,
            }),
            other => Err(self.unexpected("connect", other)),
        }
    }

    pub async fn close_client(&mut self) -> Result<(), LabError> {
        self.expect_done("close client", Request::CloseClient {})
            .await
    }

    /// Kills the server and waits until it is gone; returns its pid.
    pub async fn kill_server(&mut self, signal: KillSignal) -> Result<u32, LabError> {
        match self
            .call(
                "kill server",
                &Request::KillServer { signal },
                request_timeout(),
            )
            .await?
        {
            Reply::Killed { pid } => Ok(pid),
            other => Err(self.unexpected("kill server", other)),
        }
    }

    /// Waits until the connection `local_port` ⇄ `peer` is in `state` (or,
    /// for `None`, gone), at most `deadline`.
    pub async fn wait_for_state(
        &mut self,
        local_port: u16,
        peer: SocketAddr,
        state: Option<SocketState>,
        deadline: Duration,
    ) -> Result<StateObservation, LabError> {
        let request = Request::WaitForState {
            local_port,
            peer,
            state,
            deadline_ms: deadline.as_millis() as u64,
        };
        let step = "wait for state";
        match self
            .call(step, &request, deadline + request_timeout())
            .await?
        {
            Reply::State {
                reached,
                identified,
                connection,
                sockets,
                waited_ms,
            } => Ok(StateObservation {
                reached,
                identified,
                connection,
                sockets,
                waited_ms,
            }),
            other => Err(self.unexpected(step, other)),
        }
    }

    pub async fn try_bind(
        &mut self,
        address: SocketAddr,
        reuse: SocketOptions,
    ) -> Result<BindOutcome, LabError> {
        match self
            .call(
                "bind probe",
                &Request::TryBind { address, reuse },
                request_timeout(),
            )
            .await?
        {
            Reply::Bind { outcome } => Ok(outcome),
            other => Err(self.unexpected("bind probe", other)),
        }
    }

    /// Holds `held` on this host while a new socket tries `address` (bind and
    /// listen, or bind and connect to `connect`); returns
    /// the held sockets' outcomes (up to the first failure) and the probe's.
    pub async fn try_bind_beside(
        &mut self,
        held: Vec<HeldSocket>,
        address: SocketAddr,
        reuse: SocketOptions,
        connect: Option<SocketAddr>,
    ) -> Result<(Vec<BindOutcome>, BindOutcome), LabError> {
        let request = Request::TryBindBeside {
            held,
            address,
            reuse,
            connect,
        };
        match self
            .call("bind beside live sockets", &request, request_timeout())
            .await?
        {
            Reply::BindBeside { held, outcome } => Ok((held, outcome)),
            other => Err(self.unexpected("bind beside live sockets", other)),
        }
    }

    /// Tries a new connection from `local` (ephemeral when `None`); returns
    /// the outcome and the local address it used.
    pub async fn try_connect(
        &mut self,
        local: Option<SocketAddr>,
        server: SocketAddr,
        reuse: SocketOptions,
    ) -> Result<(BindOutcome, Option<SocketAddr>), LabError> {
        let request = Request::TryConnect {
            local,
            server,
            reuse,
        };
        let step = "connect probe";
        match self.call(step, &request, request_timeout()).await? {
            Reply::ConnectProbe { outcome, local } => Ok((outcome, local)),
            other => Err(self.unexpected(step, other)),
        }
    }

    /// Tries a plain connection to `server` once the TIME_WAIT of
    /// `local_port` ⇄ `server` has seen the clock's second turn and is still
    /// under a second old (`agent::young_time_wait`).
    pub async fn try_connect_young_time_wait(
        &mut self,
        local_port: u16,
        server: SocketAddr,
        reuse: SocketOptions,
    ) -> Result<YoungReuse, LabError> {
        let request = Request::TryConnectYoungTimeWait {
            local_port,
            server,
            reuse,
        };
        let step = "connect into a young TIME_WAIT";
        match self.call(step, &request, request_timeout()).await? {
            Reply::YoungReuse { attempt } => Ok(attempt),
            other => Err(self.unexpected(step, other)),
        }
    }

    /// Gives a guest restored from a snapshot this machine's fresh
    /// randomness and time ([`Request::Freshen`]).
    pub async fn freshen(&mut self) -> Result<(), LabError> {
        use std::io::Read;
        let mut entropy = vec![0u8; 64];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut entropy))
            .map_err(|e| LabError::Setup(format!("reading /dev/urandom: {e}")))?;
        let realtime_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        self.expect_done(
            "freshen",
            Request::Freshen {
                entropy,
                realtime_ns,
            },
        )
        .await
    }

    /// Starts a capture of `port` on the interface holding `address`.
    pub async fn start_capture(&mut self, address: IpAddr, port: u16) -> Result<(), LabError> {
        self.expect_done("start capture", Request::StartCapture { address, port })
            .await
    }

    /// Stops the capture and returns what it recorded.
    pub async fn stop_capture(&mut self) -> Result<CaptureRecord, LabError> {
        let step = "stop capture";
        match self
            .call(step, &Request::StopCapture {}, request_timeout())
            .await?
        {
            Reply::Captured { record } => Ok(record),
            other => Err(self.unexpected(step, other)),
        }
    }

    /// Sets a TCP setting on the host for the session.
    pub async fn set_sysctl(&mut self, setting: Sysctl, value: u32) -> Result<(), LabError> {
        self.expect_done("sysctl", Request::SetSysctl { setting, value })
            .await
    }

    /// Probes bind until it works; see [`Request::ProbeRebind`].
    pub async fn probe_rebind(
        &mut self,
        address: SocketAddr,
        reuse: SocketOptions,
        every: Duration,
        deadline: Duration,
    ) -> Result<Rebound, LabError> {
        let request = Request::ProbeRebind {
            address,
            reuse,
            every_ms: every.as_millis() as u64,
            deadline_ms: deadline.as_millis() as u64,
        };
        let step = "rebind probe";
        match self
            .call(step, &request, deadline + request_timeout())
            .await?
        {
            Reply::Rebound {
                after_kill_ms,
                after_state_ms,
                state,
                from_close,
                attempts,
                last,
            } => Ok(Rebound {
                after_kill_ms,
                after_state_ms,
                state,
                from_close,
                attempts,
                last,
            }),
            other => Err(self.unexpected(step, other)),
        }
    }

    /// The addresses of the host's interfaces.
    pub async fn interfaces(&mut self) -> Result<Vec<InterfaceAddress>, LabError> {
        match self
            .call(
                "list interfaces",
                &Request::Interfaces {},
                request_timeout(),
            )
            .await?
        {
            Reply::Interfaces { addresses } => Ok(addresses),
            other => Err(self.unexpected("list interfaces", other)),
        }
    }

    /// Why this host cannot open MPTCP sockets, `None` when it can.
    pub async fn mptcp_missing(&mut self) -> Result<Option<String>, LabError> {
        match self
            .call("check MPTCP", &Request::Mptcp {}, request_timeout())
            .await?
        {
            Reply::Mptcp { missing } => Ok(missing),
            other => Err(self.unexpected("check MPTCP", other)),
        }
    }

    /// `count` ports from `from` up that no socket on the host uses.
    pub async fn free_ports(&mut self, from: u16, count: u16) -> Result<Vec<u16>, LabError> {
        let request = Request::FreePorts { from, count };
        match self
            .call("find free ports", &request, request_timeout())
            .await?
        {
            Reply::FreePorts { ports } => Ok(ports),
            other => Err(self.unexpected("find free ports", other)),
        }
    }

    /// Undoes the current case on the host; the agent stays for the next one.
    pub async fn end_case(&mut self) -> Result<(), LabError> {
        self.expect_done("end case", Request::EndCase {}).await
    }

    /// Undoes what dead sessions left on the host; returns what was undone.
    pub async fn reap(&mut self) -> Result<crate::agent::reap::Reaped, LabError> {
        match self
            .call("clean", &Request::Reap {}, request_timeout() * 3)
            .await?
        {
            Reply::Reaped {
                rules,
                processes,
                uploads,
                sysctls,
            } => Ok(crate::agent::reap::Reaped {
                rules,
                processes,
                uploads,
                sysctls,
            }),
            other => Err(self.unexpected("clean", other)),
        }
    }

    /// Asks the agent to undo its session and exit, and waits until it has.
    /// Not cancellable: this is the clean-up that Ctrl-C is waiting for. An
    /// agent busy with an abandoned request gets SIGTERM instead, which makes
    /// it drop that request and clean up; one that does not comply in time is
    /// killed.
    pub async fn shutdown(mut self) -> Result<(), LabError> {
        let step = "shutdown";
        self.leaving.store(true, Ordering::SeqCst);
        if self.in_flight {
            self.stdin = None;
            self.signal(libc::SIGTERM);
            return self.wait_for_exit().await;
        }
        let asked =
            tokio::time::timeout(SHUTDOWN_TIMEOUT, self.exchange(step, &Request::Shutdown {}))
                .await;
        self.stdin = None;
        let exited = self.wait_for_exit().await;
        match asked {
            Ok(Ok(Reply::Error { kind, message })) => {
                Err(LabError::from_agent(&self.host, step, kind, message))
            }
            Ok(Ok(_)) => exited,
            Ok(Err(error)) => Err(error),
            Err(_) => Err(LabError::Timeout {
                host: self.host.clone(),
                step: step.to_string(),
                after: SHUTDOWN_TIMEOUT,
            }),
        }
    }

    /// Signals the agent through its pidfd; a process already gone is fine.
    fn signal(&self, signal: libc::c_int) {
        if let Some(process) = &self.process {
            let _ = process.signal(signal);
        }
    }

    /// Waits for the agent to exit; kills it if it takes too long.
    async fn wait_for_exit(&mut self) -> Result<(), LabError> {
        let waited = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.exit.wait_for(Option::is_some));
        // Copy the status out so the watch's lock is released at once.
        let status = match waited.await {
            Ok(Ok(status)) => *status,
            Ok(Err(_)) | Err(_) => None,
        };
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(LabError::AgentLost {
                host: self.host.clone(),
                step: "shutdown".to_string(),
                message: format!("the agent exited with {status}"),
            }),
            None => {
                self.signal(libc::SIGKILL);
                let _ = self.exit.wait_for(Option::is_some).await;
                Err(LabError::Timeout {
                    host: self.host.clone(),
                    step: "shutdown".to_string(),
                    after: SHUTDOWN_TIMEOUT,
                })
            }
        }
    }
}
