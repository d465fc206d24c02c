//! The agent's handle on its `tcplab serve` child: start it, know when it
//! listens, kill it, reap it.
//!
//! The child dies with the agent (PR_SET_PDEATHSIG), so a server can never keep
//! a namespace or a port alive after its agent is gone.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;

use crate::agent::error::{AgentError, failed};
use crate::agent::programs::server_program::{CLOSED_PREFIX, READY_PREFIX, ServeOptions};
use crate::agent::programs::spare_server::SpareServer;
use crate::process::{find_program, spawn_tied_child};
use crate::protocol::SocketOptions;
use crate::protocol::{AgentErrorKind, KillSignal, ServerOptions, ServerProgram};

/// How long a server may take to bind and listen. The JVM compiles the
/// article's source in memory first, which takes about a second.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The article's server, run by the `java` experiment.
const REUSE_ADDRESS_JAVA: &str = include_str!("../../../lab/java/ReuseAddress.java");

/// A running server child.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    /// The first line it printed: `listening … reuse address: true` for Java.
    banner: String,
    /// The rest of its output: `tcplab serve` says when it closes each
    /// connection.
    output: Option<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>,
}

/// When the server closed the connection from `peer` (CLOCK_MONOTONIC).
pub type ServerClose = (std::net::SocketAddr, Duration);

impl ServerProcess {
    /// Starts the server and returns once it listens. A `tcplab serve` is
    /// the `spare`, if there is one that is still alive, or a new process.
    pub async fn start(
        options: &ServerOptions,
        spare: Option<SpareServer>,
    ) -> Result<ServerProcess, AgentError> {
        let name = options.program.name();
        // The Java source lives in a memfd for as long as the JVM needs to
        // read it: no file is written anywhere.
        let (mut child, _source) = match options.program {
            ServerProgram::Tcplab => (tcplab_serve(&serve_options(options), spare).await?, None),
            ServerProgram::Java => {
                let (command, source) = java_reuse_address(options)?;
                (spawn(command, name)?, Some(source))
            }
        };
        let pid = child.id().unwrap_or_default();
        let mut output = child.stdout.take().map(|out| BufReader::new(out).lines());
        let ready = async {
            match output.as_mut() {
                Some(lines) => lines.next_line().await.ok().flatten().unwrap_or_default(),
                None => String::new(),
            }
        };
        let line = tokio::time::timeout(READY_TIMEOUT, ready)
            .await
            .unwrap_or_default();
        if line.starts_with(READY_PREFIX) {
            return Ok(ServerProcess {
                child,
                pid,
                banner: line.trim().to_string(),
                output,
            });
        }
        // It exited (bind failed, say) or hung: say what it printed.
        let _ = child.start_kill();
        let _ = child.wait().await;
        let mut message = String::new();
        if let Some(stderr) = child.stderr.as_mut() {
            let _ = stderr.read_to_string(&mut message).await;
        }
        Err(failed(format!(
            "{name} on {} did not start: {}",
            options.bind,
            if message.trim().is_empty() {
                "no output"
            } else {
                message.trim()
            }
        )))
    }

    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` and waits until the process is gone, so its sockets are
    /// orphaned by the time this returns. Returns its pid and the closes it
    /// reported.
    pub async fn kill(mut self, signal: KillSignal) -> Result<(u32, Vec<ServerClose>), AgentError> {
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
        Ok((self.pid, self.reported_closes().await))
    }

    /// The `closed PEER NS` lines of a server that has exited: its output
    /// ends, so reading to the end does not wait (bounded all the same, in
    /// case a grandchild kept the pipe open).
    async fn reported_closes(&mut self) -> Vec<ServerClose> {
        let Some(lines) = self.output.as_mut() else {
            return Vec::new();
        };
        let mut closes = Vec::new();
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if closes.len() < 1024 {
                    closes.extend(parse_close(&line));
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
        closes
    }
}

/// `closed 10.211.55.5:40000 123456789` as (peer, time).
fn parse_close(line: &str) -> Option<ServerClose> {
    let (peer, nanos) = line.strip_prefix(CLOSED_PREFIX)?.split_once(' ')?;
    Some((
        peer.parse().ok()?,
        Duration::from_nanos(nanos.trim().parse().ok()?),
    ))
}

/// `tcplab serve` given `options`: the spare if it is still alive, else a
/// process started now.
async fn tcplab_serve(
    options: &ServeOptions,
    spare: Option<SpareServer>,
) -> Result<Child, AgentError> {
    if let Some(spare) = spare
        && let Ok(child) = spare.become_server(options).await
    {
        return Ok(child);
    }
    SpareServer::start()?.become_server(options).await
}

/// What `tcplab serve` needs of a server's options. Only the socket options
/// a listening socket uses are passed on, as `tcplab serve`'s flags did.
fn serve_options(options: &ServerOptions) -> ServeOptions {
    ServeOptions {
        bind: options.bind,
        reuse: SocketOptions {
            local_port_range: None,
            bind_address_no_port: false,
            ..options.reuse
        },
        linger_zero: options.linger_zero,
        linger2_s: options.linger2_s,
        close_after_client: options.close_after_client,
        greeting: options.greeting.clone(),
    }
}

/// Spawns a server program that dies with the agent, its output piped.
fn spawn(mut command: std::process::Command, name: &str) -> Result<Child, AgentError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn_tied_child(command).map_err(|e| failed(format!("cannot start {name}: {e}")))
}

/// `java --source 11 ReuseAddress.java PORT REUSE`, the source in a memfd.
fn java_reuse_address(
    options: &ServerOptions,
) -> Result<(std::process::Command, std::fs::File), AgentError> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let java = find_java().ok_or_else(|| {
        AgentError::new(
            AgentErrorKind::MissingTool,
            "no JDK on this host (`java` is not in PATH); install one, e.g. \
             apt-get install default-jdk-headless",
        )
    })?;
    let memfd =
        nix::sys::memfd::memfd_create("ReuseAddress.java", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| failed(format!("cannot hold the Java source: {e}")))?;
    let mut source = std::fs::File::from(memfd);
    source
        .write_all(REUSE_ADDRESS_JAVA.as_bytes())
        .map_err(|e| failed(format!("cannot hold the Java source: {e}")))?;
    let path = format!("/proc/{}/fd/{}", std::process::id(), source.as_raw_fd());
    let reuse = if options.jvm_default_reuse {
        "default".to_string()
    } else {
        options.reuse.reuseaddr.to_string()
    };
    let mut command = std::process::Command::new(java);
    command
        // No hsperfdata file in /tmp, which a SIGKILL would leave behind;
        // the quick JIT tier and the serial collector take the JVM's start
        // from about 650 ms to 420 ms here (the server runs for milliseconds).
        .args([
            "-XX:-UsePerfData",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xmx64m",
            "--source",
            "11",
        ])
        .arg(path)
        .arg(options.bind.port().to_string())
        .arg(reuse);
    Ok((command, source))
}

fn find_java() -> Option<std::path::PathBuf> {
    find_program("java", &[])
}

/// Is a JDK on this machine? (The netns lab's hosts are this machine.)
pub fn java_available() -> bool {
    find_java().is_some()
}
