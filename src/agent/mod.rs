//! `tcplab agent`: the process that runs ON a host and does what the
//! orchestrator asks, one JSON line at a time (see [`protocol`]).
//!
//! In the netns lab the agent first moves itself into a new, anonymous network
//! namespace (`--unshare-net`): the namespace then lives exactly as long as the
//! agent and its server child, with no name under /run/netns to leak. The agent
//! exits when its stdin closes, undoing what it did (see [`session`]).

pub mod bind_probe;
pub mod client;
pub mod diag;
pub mod firewall;
pub mod link;
pub mod protocol;
pub mod serve;
pub mod server;
pub mod session;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::signal::unix::{SignalKind, signal};

use protocol::{AgentErrorKind, Reply, Request};
use session::{AgentError, AgentSession};

/// Longest request line the agent reads; anything longer is malformed.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How the agent starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentOptions {
    /// Enter a new network namespace before anything else (netns lab).
    pub unshare_net: bool,
}

/// Runs the agent until its input ends. Must be called before any thread is
/// started: entering a namespace affects only the calling thread.
pub fn run(options: AgentOptions) -> anyhow::Result<()> {
    let setup_error = if options.unshare_net {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .err()
            .map(|errno| {
                AgentError::new(
                    AgentErrorKind::Privilege,
                    format!(
                        "cannot create a network namespace ({errno}): run tcplab as root, \
                         or as a user where unprivileged user namespaces are allowed"
                    ),
                )
            })
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the agent's runtime")?;
    runtime.block_on(serve_requests(AgentSession::new(setup_error)))
}

async fn serve_requests(mut session: AgentSession) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    // SIGTERM (the orchestrator giving up on a request in flight) and SIGHUP
    // (an ssh session torn down) both mean: stop what you are doing, clean up.
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line.context("reading a request from stdin")?,
            _ = terminate.recv() => None,
            _ = hangup.recv() => None,
        };
        let Some(line) = line else { break };
        let (request, last) = match parse_request(&line) {
            Ok(request) => {
                let last = matches!(request, Request::Shutdown {});
                (request, last)
            }
            Err(reply) => {
                write_reply(&mut stdout, &reply).await?;
                continue;
            }
        };
        // A request in flight (a long state wait, say) gives way to a signal.
        // Every operation is safe to drop at an await point: firewall changes
        // have none, and child processes and sockets close on drop.
        let reply = tokio::select! {
            reply = session.handle(request) => reply,
            _ = terminate.recv() => break,
            _ = hangup.recv() => break,
        };
        let mut text = serde_json::to_string(&reply).context("encoding a reply")?;
        text.push('\n');
        stdout
            .write_all(text.as_bytes())
            .await
            .context("writing a reply")?;
        stdout.flush().await.context("flushing a reply")?;
        if last {
            return Ok(());
        }
    }
    // Input ended or a signal came: the orchestrator is gone or gave up;
    // leave the host clean.
    session
        .finish()
        .await
        .map_err(|e| anyhow::anyhow!("cleaning up after the orchestrator left: {e}"))
}

async fn write_reply(stdout: &mut tokio::io::Stdout, reply: &Reply) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(reply).context("encoding a reply")?;
    text.push('\n');
    stdout
        .write_all(text.as_bytes())
        .await
        .context("writing a reply")?;
    stdout.flush().await.context("flushing a reply")
}

fn parse_request(line: &str) -> Result<Request, Reply> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(Reply::Error {
            kind: AgentErrorKind::BadRequest,
            message: format!("request longer than {MAX_REQUEST_BYTES} bytes"),
        });
    }
    serde_json::from_str(line).map_err(|e| Reply::Error {
        kind: AgentErrorKind::BadRequest,
        message: format!("malformed request: {e}"),
    })
}
