//! The orchestrator's end of one agent: a child process (the agent, or an ssh
//! session) spoken to in JSON lines, one request and one reply at a time.
//!
//! Like rtnetlink's `Handle`, it offers one small typed method per request
//! (`serve`, `connect`, `try_bind`, …) over a single [`AgentConnection::call`],
//! which adds what every request needs: a deadline, the host and step named in
//! errors, and cancellation on Ctrl-C.

use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use super::error::LabError;
pub use super::loss_watch::LossWatch;
use crate::bounded_lines::{BoundedLines, Line};
use crate::interrupt::Interrupt;
use crate::pidfd::ProcessHandle;
use crate::process::die_with_parent;
use crate::protocol::{AgentFailure, AgentInfo, Exchange, Hello, Reply, Request, Shutdown};

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
/// How long an agent started on this machine may take to answer its first
/// hello: its process has to start first, and a machine starting dozens of
/// agents at once under load takes seconds for that, not the ordinary
/// request time. An agent that dies meanwhile is seen at once.
const LOCAL_START_PATIENCE: Duration = Duration::from_secs(60);
/// How long an agent may take to undo its session and exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Sends `request` and returns the reply its type is tied to. The
    /// request may take the ordinary time, plus whatever wait it asks the
    /// agent for; an error reply, or any reply of another type, becomes a
    /// [`LabError`] naming the host and the step.
    pub async fn call<Q: Exchange>(&mut self, request: Q) -> Result<Q::Reply, LabError> {
        let request: Request = request.into();
        let timeout = request_timeout() + request.waits_for();
        self.call_within(Q::STEP, &request, timeout).await
    }

    /// The first words with an agent that may still be starting (a booting
    /// VM): waits up to `deadline`; returns the host's kernel release.
    pub async fn hello_within(&mut self, deadline: Duration) -> Result<String, LabError> {
        let request = Request::from(Hello {});
        let info: AgentInfo = self.call_within(Hello::STEP, &request, deadline).await?;
        Ok(info.kernel)
    }

    /// The first words with an agent; returns the host's kernel release.
    pub async fn hello(&mut self) -> Result<String, LabError> {
        Ok(self.call(Hello {}).await?.kernel)
    }

    /// The first words with an agent just started on this machine (see
    /// [`LOCAL_START_PATIENCE`]); returns the host's kernel release.
    pub async fn hello_started(&mut self) -> Result<String, LabError> {
        self.hello_within(LOCAL_START_PATIENCE).await
    }

    async fn call_within<R: TryFrom<Reply, Error = Reply>>(
        &mut self,
        step: &'static str,
        request: &Request,
        timeout: Duration,
    ) -> Result<R, LabError> {
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
        R::try_from(reply).map_err(|other| self.refused(step, other))
    }

    /// The error of a reply that is not the one asked for: the agent's own
    /// error, or a reply of another request (an agent out of step).
    fn refused(&self, step: &str, reply: Reply) -> LabError {
        match reply {
            Reply::Error(AgentFailure { kind, message }) => {
                LabError::from_agent(&self.host, step, kind, message)
            }
            other => LabError::AgentLost {
                host: self.host.clone(),
                step: step.to_string(),
                message: format!("unexpected reply {other:?}"),
            },
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
        let shutdown = Request::from(Shutdown {});
        let asked = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.exchange(step, &shutdown)).await;
        self.stdin = None;
        let exited = self.wait_for_exit().await;
        match asked {
            Ok(Ok(reply @ Reply::Error(_))) => Err(self.refused(step, reply)),
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
