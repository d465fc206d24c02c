//! The agent's handle on its `tcplab serve` child: start it, know when it
//! listens, kill it, reap it.
//!
//! The child dies with the agent (PR_SET_PDEATHSIG), so a server can never keep
//! a namespace or a port alive after its agent is gone.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::protocol::{AgentErrorKind, KillSignal, ServerOptions};
use super::serve::READY_PREFIX;
use super::session::AgentError;
use crate::process::die_with_parent;

/// How long a server may take to bind and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server child.
pub struct ServerProcess {
    child: Child,
    pid: u32,
}

impl ServerProcess {
    /// Starts `tcplab serve` and returns once it listens.
    pub async fn start(options: &ServerOptions) -> Result<ServerProcess, AgentError> {
        let exe = std::env::current_exe()
            .map_err(|e| failed(format!("cannot find the tcplab executable: {e}")))?;
        let mut command = std::process::Command::new(exe);
        command
            .arg("serve")
            .arg("--bind")
            .arg(options.bind.to_string())
            .arg("--reuseaddr")
            .arg(if options.reuse.reuseaddr { "1" } else { "0" })
            .arg("--reuseport")
            .arg(if options.reuse.reuseport { "1" } else { "0" })
            .arg("--linger-zero")
            .arg(if options.linger_zero { "1" } else { "0" })
            .arg("--greeting")
            .arg(&options.greeting)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command, libc::SIGKILL);
        let mut command = Command::from(command);
        command.kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("cannot start tcplab serve: {e}")))?;
        let pid = child.id().unwrap_or_default();
        let stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let ready = async {
            let mut line = String::new();
            if let Some(stdout) = stdout {
                BufReader::new(stdout).read_line(&mut line).await.ok();
            }
            line
        };
        let line = tokio::time::timeout(READY_TIMEOUT, ready)
            .await
            .unwrap_or_default();
        if line.starts_with(READY_PREFIX) {
            return Ok(ServerProcess { child, pid });
        }
        // It exited (bind failed, say) or hung: say what it printed.
        let _ = child.start_kill();
        let _ = child.wait().await;
        let mut message = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_string(&mut message).await;
        }
        Err(failed(format!(
            "tcplab serve on {} did not start: {}",
            options.bind,
            if message.trim().is_empty() {
                "no output"
            } else {
                message.trim()
            }
        )))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` and waits until the process is gone, so its sockets are
    /// orphaned by the time this returns.
    pub async fn kill(mut self, signal: KillSignal) -> Result<u32, AgentError> {
        let number = match signal {
            KillSignal::Kill => libc::SIGKILL,
            KillSignal::Term => libc::SIGTERM,
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, number) };
        if rc != 0 {
            return Err(failed(format!(
                "kill -{} {}: {}",
                signal.name(),
                self.pid,
                std::io::Error::last_os_error()
            )));
        }
        self.child
            .wait()
            .await
            .map_err(|e| failed(format!("waiting for server {}: {e}", self.pid)))?;
        Ok(self.pid)
    }
}

fn failed(message: String) -> AgentError {
    AgentError::new(AgentErrorKind::Failed, message)
}
