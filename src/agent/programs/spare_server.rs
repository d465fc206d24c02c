//! A `tcplab serve` started ahead of time, waiting on its stdin for the
//! options of the server it is to become.
//!
//! Why: an experiment kills its server, so every case starts a new process.
//! Under emulation (the microvm lab without KVM) exec'ing the tcplab
//! executable and getting it to `main` takes about half a second, which was
//! most of a warm microvm run. A spare started between cases (and, in a
//! restored guest, already there in the snapshot) turns that into one write
//! to a pipe when the case asks for its server. The server is still its own
//! process, so killing it orphans its sockets exactly as before.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};

use crate::agent::error::{AgentError, failed};
use crate::agent::programs::server_program::ServeOptions;
use crate::process::spawn_tied_child;

/// The `tcplab serve` flag that makes it wait for its options on stdin.
pub const OPTIONS_FROM_STDIN: &str = "--options-from-stdin";

/// A started `tcplab serve --options-from-stdin`, not yet told what to serve.
pub struct SpareServer {
    child: Child,
    stdin: ChildStdin,
}

impl SpareServer {
    /// Starts one. Returns without waiting for it to get anywhere: the new
    /// process starts up while the agent goes on answering requests.
    pub fn start() -> Result<SpareServer, AgentError> {
        let exe = std::env::current_exe()
            .map_err(|e| failed(format!("cannot find the tcplab executable: {e}")))?;
        let mut command = std::process::Command::new(exe);
        command
            .args(["serve", OPTIONS_FROM_STDIN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_tied_child(command)
            .map_err(|e| failed(format!("cannot start tcplab serve: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("tcplab serve was started without a stdin pipe"))?;
        Ok(SpareServer { child, stdin })
    }

    /// Tells the spare what to serve and hands over its process, whose
    /// first line of output says whether it listens.
    ///
    /// The options are one JSON line, then end of input. A spare that died
    /// meanwhile (its pipe is closed) is an error, and the caller starts
    /// another one.
    pub async fn become_server(mut self, options: &ServeOptions) -> Result<Child, AgentError> {
        let mut line = serde_json::to_vec(options)
            .map_err(|e| failed(format!("cannot encode the server's options: {e}")))?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .map_err(|e| failed(format!("the spare tcplab serve is gone: {e}")))?;
        // Closing stdin tells it nothing more is coming.
        drop(self.stdin);
        Ok(self.child)
    }
}
