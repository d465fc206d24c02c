//! `tcplab agent`: the process that runs ON a host and does what the
//! orchestrator asks, one JSON line at a time (see [`protocol`]).
//!
//! In the netns lab the agent first moves itself into a new, anonymous network
//! namespace (`--unshare-net`): the namespace then lives exactly as long as the
//! agent and its server child, with no name under /run/netns to leak. The agent
//! exits when its stdin closes, undoing what it did (see [`session`]).

pub mod error;
pub mod guest_exec;
pub mod guest_init;
pub mod kernel;
pub mod programs;
pub mod recovery;
pub mod session;

use std::path::PathBuf;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};

use crate::bounded_lines::{BoundedLines, Line};
use crate::protocol::{AgentErrorKind, Reply, Request};
use session::{AgentError, AgentRole, AgentSession};

/// Longest request line the agent reads; anything longer is malformed.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How the agent starts.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Enter a new network namespace before anything else (netns lab).
    pub unshare_net: bool,
    /// The upload directory this agent runs from (ssh lab), removed when the
    /// agent exits. Only a directory named like an upload is ever removed.
    pub remove_on_exit: Option<PathBuf>,
    /// The SHA-256 the orchestrator hashed: the agent refuses to serve if the
    /// executable it runs from is anything else.
    pub expect_sha256: Option<String>,
    /// Join the namespaces of this process (pid, start time) instead of
    /// making new ones: a host of a lab that is up (`tcplab lab up`).
    pub join: Option<(u32, u64)>,
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
    } else if let Some((pid, start_time)) = options.join {
        crate::namespaces::join_namespaces_of(pid, start_time)
            .err()
            .map(|error| AgentError::new(AgentErrorKind::Privilege, error.to_string()))
    } else {
        None
    };
    let setup_error = setup_error.or_else(|| check_own_hash(options.expect_sha256.as_deref()));
    let role = if options.unshare_net || options.join.is_some() {
        AgentRole::OwnNamespace
    } else {
        AgentRole::Host {
            upload: options.remove_on_exit.clone(),
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the agent's runtime")?;
    let mut session = AgentSession::new(setup_error, role);
    let served = runtime.block_on(serve_requests(&mut session));
    // Stdin is read on a blocking thread that only returns at the next line
    // or EOF; an agent leaving for another reason (a reply it could not
    // write) must not wait for that.
    runtime.shutdown_background();
    if let Some(dir) = options
        .remove_on_exit
        .filter(|dir| recovery::reap::is_upload_dir(dir))
    {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the uploaded executable in {}", dir.display()))?;
    }
    session.close_journal();
    served
}

/// The executable this process runs (the kernel keeps it from being written
/// while it runs), hashed and compared with what the orchestrator expects.
fn check_own_hash(expected: Option<&str>) -> Option<AgentError> {
    use sha2::{Digest, Sha256};
    let expected = expected?;
    let actual: Option<String> = std::fs::read("/proc/self/exe").ok().map(|bytes| {
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    (actual.as_deref() != Some(expected)).then(|| {
        AgentError::new(
            AgentErrorKind::Failed,
            format!("this agent's executable is not the one the orchestrator checked (SHA-256 {expected}); refusing to serve"),
        )
    })
}

/// Answers requests until the input ends, a signal comes or a reply cannot be
/// written; then undoes the session, whichever way the loop ended.
async fn serve_requests(session: &mut AgentSession) -> anyhow::Result<()> {
    let answered = answer_requests(session).await;
    if matches!(answered, Ok(Ending::Shutdown)) {
        return Ok(());
    }
    // Input ended, a signal came or the orchestrator stopped reading: it is
    // gone or gave up; leave the host clean.
    let finished = session
        .finish()
        .await
        .map_err(|e| anyhow::anyhow!("cleaning up after the orchestrator left: {e}"));
    answered.and(finished)
}

/// How the request loop ended.
enum Ending {
    /// A `shutdown` request was answered: the session is already undone.
    Shutdown,
    /// The input ended or a signal came.
    Left,
}

async fn answer_requests(session: &mut AgentSession) -> anyhow::Result<Ending> {
    let mut stdout = tokio::io::stdout();
    let mut input = read_lines(tokio::io::stdin());
    // SIGTERM (the orchestrator giving up on a request in flight) and SIGHUP
    // both mean: stop what you are doing, clean up.
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    // The first case's server starts up while the orchestrator says hello
    // (and, in a guest about to be saved, is part of the snapshot).
    session.keep_a_spare();
    // Lines that arrived while a request was being handled.
    let mut queued = std::collections::VecDeque::new();
    loop {
        let line = match queued.pop_front() {
            Some(line) => Some(line),
            None => tokio::select! {
                line = input.recv() => line,
                _ = terminate.recv() => None,
                _ = hangup.recv() => None,
            },
        };
        let Some(line) = line else { break };
        let request = match line.and_then(|line| parse_request(&line)) {
            Ok(request) => request,
            Err(error) => {
                write_reply(&mut stdout, &error.into()).await?;
                continue;
            }
        };
        let last = matches!(request, Request::Shutdown(_));
        // A request in flight (a long state wait, say) gives way to a signal
        // or to the end of input: an ssh session that drops closes our stdin
        // and nothing else. Every operation is safe to drop at an await
        // point: firewall changes have none, children and sockets close on drop.
        let reply = {
            let handling = session.handle(request);
            tokio::pin!(handling);
            loop {
                tokio::select! {
                    reply = &mut handling => break Some(reply),
                    _ = terminate.recv() => break None,
                    _ = hangup.recv() => break None,
                    line = input.recv() => match line {
                        Some(line) => queued.push_back(line),
                        None => break None,
                    },
                }
            }
        };
        let Some(reply) = reply else { break };
        write_reply(&mut stdout, &reply).await?;
        if last {
            return Ok(Ending::Shutdown);
        }
    }
    Ok(Ending::Left)
}

/// Reads request lines in a task of their own, so that the end of input is
/// noticed even while a request is being handled. The channel closes at EOF.
/// A line too long or not text arrives as the error it is answered with.
fn read_lines(stdin: tokio::io::Stdin) -> tokio::sync::mpsc::Receiver<Result<String, AgentError>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut lines = BoundedLines::new(stdin, MAX_REQUEST_BYTES);
        while let Ok(Some(line)) = lines.next_line().await {
            let line = match line {
                Line::Text(text) => Ok(text),
                Line::TooLong => Err(bad_request(format!(
                    "request longer than {MAX_REQUEST_BYTES} bytes"
                ))),
                Line::NotText => Err(bad_request("malformed request: not UTF-8 text".into())),
            };
            if sender.send(line).await.is_err() {
                break;
            }
        }
    });
    receiver
}

fn bad_request(message: String) -> AgentError {
    AgentError::new(AgentErrorKind::BadRequest, message)
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

/// Parses one request line; anything that is not a known request becomes the
/// error it is answered with (never a panic: `fuzz/` feeds it arbitrary bytes).
pub fn parse_request(line: &str) -> Result<Request, AgentError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(bad_request(format!(
            "request longer than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    serde_json::from_str(line).map_err(|e| bad_request(format!("malformed request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's property on a fixed, seeded sample that needs no
    /// nightly toolchain: valid requests cut, spliced and bit-flipped, and
    /// random bytes, always parse to a request or an error reply.
    #[test]
    fn mangled_requests_never_panic() {
        let valid = [
            r#"{"op":"hello"}"#,
            r#"{"op":"try_bind","address":"0.0.0.0:8080","reuse":{"reuseaddr":true}}"#,
            r#"{"op":"add_firewall_rule","rule":{"chain":"OUTPUT","dport":8080,"target":"DROP"}}"#,
            r#"{"op":"wait_for_state","local_port":8080,"peer":"10.211.55.5:1","state":"FIN_WAIT2","deadline_ms":5}"#,
            r#"{"op":"set_sysctl","setting":"tcp_fin_timeout","value":3}"#,
        ];
        let mut seed: u64 = 0x7cb1_ab00;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let base = valid[round % valid.len()].as_bytes();
            let mut bytes = base.to_vec();
            match next() % 4 {
                0 => bytes.truncate((next() as usize) % (base.len() + 1)),
                1 => {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                }
                2 => {
                    let other = valid[(next() as usize) % valid.len()].as_bytes();
                    let cut = (next() as usize) % other.len();
                    bytes.extend_from_slice(&other[cut..]);
                }
                _ => bytes = (0..(next() % 64)).map(|_| next() as u8).collect(),
            }
            if let Ok(line) = std::str::from_utf8(&bytes) {
                match parse_request(line) {
                    Ok(request) => {
                        let again = serde_json::to_string(&request).unwrap();
                        assert!(parse_request(&again).is_ok(), "{line}");
                    }
                    Err(error) => assert_eq!(error.kind, AgentErrorKind::BadRequest),
                }
            }
        }
    }
}
