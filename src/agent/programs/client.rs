//! The client side of an experiment, behaving like the article's `nc c2 8080`,
//! and the client-side probes of `client-port` (article 0x04).
//!
//! The client reads the greeting until the server's FIN, then ends its side as
//! the experiment asks. The difference matters: the kernel delays the ACK of a
//! FIN, so a client that closes at once sends ACK and FIN in one segment; if a
//! firewall drops that FIN, the server never sees the ACK and stays in
//! FIN_WAIT1 instead of FIN_WAIT2. To ACK first, the client sets TCP_QUICKACK,
//! which makes the kernel send the pending ACK right away.
//!
//! A client may also bind a fixed local port and close first: then it is the
//! one left in TIME_WAIT, and [`try_connect`] asks whether a new connection
//! can use that port again.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::agent::error::{AgentError, failed};
use crate::agent::kernel::bind_probe::errno_name;
use crate::protocol::{BindOutcome, BindStep, ClientClose, SocketOptions, unspecified_like};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest greeting we keep; the server closes after it anyway.
const GREETING_LIMIT: u64 = 4096;

/// What a connection saw.
pub struct ClientOutcome {
    /// The socket, unless the client closed it already.
    pub stream: Option<TcpStream>,
    pub local: SocketAddr,
    pub greeting: String,
    /// The server answered with RST: the connection is gone already.
    pub reset: bool,
}

/// Connects to `server` (from `local_port` with `reuse` when given), reads
/// the greeting and applies `close`.
pub async fn connect(
    server: SocketAddr,
    close: ClientClose,
    local_port: Option<u16>,
    reuse: SocketOptions,
) -> Result<ClientOutcome, AgentError> {
    // A client that closes at once must beat c1's delayed ACK, under load
    // too: real-time priority from connect() to close() (prompt_close).
    let _realtime = (close == ClientClose::Immediately)
        .then(crate::agent::programs::prompt_close::Realtime::raise);
    let mut stream = match open_connection(server, local_port, reuse).await? {
        Ok(stream) => stream,
        Err(bound) => return Ok(ClientOutcome::reset(bound, String::new())),
    };
    let local = stream
        .local_addr()
        .map_err(|e| failed(format!("local address of the client socket: {e}")))?;
    let (greeting, read) = read_greeting(&mut stream, server, close).await?;
    match read {
        Ok(()) => {}
        // A server that closes with RST (SO_LINGER 0) ends the read with
        // ECONNRESET: an outcome to report, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Ok(ClientOutcome::reset(local, greeting));
        }
        Err(e) => return Err(failed(format!("reading from {server}: {e}"))),
    }
    Ok(ClientOutcome {
        stream: end_as_asked(stream, close)?,
        local,
        greeting,
        reset: false,
    })
}

impl ClientOutcome {
    /// The server answered with RST: nothing left to end.
    fn reset(local: SocketAddr, greeting: String) -> ClientOutcome {
        ClientOutcome {
            stream: None,
            local,
            greeting,
            reset: true,
        }
    }
}

/// The connected stream, or (`Err`) the address it was bound to when the
/// server's RST ended the connection before it was established.
async fn open_connection(
    server: SocketAddr,
    local_port: Option<u16>,
    reuse: SocketOptions,
) -> Result<Result<TcpStream, SocketAddr>, AgentError> {
    // Like a plain client, the socket stays unbound unless a port is asked
    // for: connect() then picks the port (bind(0) would pick it by other
    // rules, and mark it as bound by hand, which tcp_tw_reuse respects).
    let socket = match local_port {
        Some(port) => bound_socket(SocketAddr::new(unspecified_like(server.ip()), port), reuse),
        None => unbound_socket(server, reuse),
    }
    .map_err(|(step, e)| failed(format!("client socket ({step:?}): {e}")))?;
    // Known before connect() only when bound; a fast server's RST can end
    // an unbound connection before its port is known (it matters little:
    // such a connection leaves no socket to watch).
    let bound = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(unspecified_like(server.ip()), 0));
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(server))
        .await
        .map_err(|_| {
            failed(format!(
                "connect {server}: no answer within {CONNECT_TIMEOUT:?}"
            ))
        })?;
    match connected {
        Ok(stream) => Ok(Ok(stream)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(Err(bound)),
        Err(e) => Err(failed(format!("connect {server}: {e}"))),
    }
}

/// Reads the server's greeting: until it closes, or for a client that
/// closes first, what it sent. Returns the text and how the read ended.
async fn read_greeting(
    stream: &mut TcpStream,
    server: SocketAddr,
    close: ClientClose,
) -> Result<(String, std::io::Result<()>), AgentError> {
    let mut greeting = Vec::new();
    let read = if close == ClientClose::First {
        // The server waits for us: read what it sent, not until EOF.
        let mut buffer = vec![0; GREETING_LIMIT as usize];
        tokio::time::timeout(CONNECT_TIMEOUT, stream.read(&mut buffer))
            .await
            .map(|read| read.map(|n| greeting.extend_from_slice(&buffer[..n])))
    } else {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            stream.take(GREETING_LIMIT).read_to_end(&mut greeting),
        )
        .await
        .map(|read| read.map(|_| ()))
    }
    .map_err(|_| {
        failed(format!(
            "{server} sent nothing or did not close within {CONNECT_TIMEOUT:?}"
        ))
    })?;
    Ok((String::from_utf8_lossy(&greeting).into_owned(), read))
}

/// The connection after the greeting, as `close` says: closed at once, or
/// kept (ACKing the server's FIN at once with `after_ack`).
fn end_as_asked(stream: TcpStream, close: ClientClose) -> Result<Option<TcpStream>, AgentError> {
    match close {
        ClientClose::Immediately | ClientClose::First => Ok(None),
        ClientClose::AfterAck => {
            match SockRef::from(&stream).set_tcp_quickack(true) {
                Ok(()) => {}
                // MPTCP sockets refuse TCP_QUICKACK: the delayed ACK still
                // leaves within the delayed-ACK timer (at most 200 ms), and the
                // orchestrator closes only once c2 shows FIN_WAIT2.
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
                Err(e) => return Err(failed(format!("TCP_QUICKACK: {e}"))),
            }
            Ok(Some(stream))
        }
        ClientClose::Never => Ok(Some(stream)),
    }
}

/// Opens a connection from `local` (ephemeral when `None`) with `reuse` to
/// `server`, and closes it at once. Says which step failed, with its errno.
pub async fn try_connect(
    local: Option<SocketAddr>,
    server: SocketAddr,
    reuse: SocketOptions,
) -> (BindOutcome, Option<SocketAddr>) {
    let failure = |step, error: &std::io::Error| BindOutcome {
        result: errno_name(error),
        failed_step: Some(step),
    };
    // Without a local address the socket stays unbound, as a plain client's
    // does: connect() then picks the port itself (inet_hash_connect), the
    // only path where net.ipv4.tcp_tw_reuse is consulted. Binding port 0
    // first would pick it at bind time, by other rules.
    let socket = match local {
        Some(local) => bound_socket(local, reuse),
        None => unbound_socket(server, reuse),
    };
    let socket = match socket {
        Ok(socket) => socket,
        Err((step, error)) => return (failure(step, &error), None),
    };
    let used = socket.local_addr().ok();
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(server)).await {
        Ok(Ok(stream)) => {
            let used = stream.local_addr().ok().or(used);
            drop(stream);
            (
                BindOutcome {
                    result: BindOutcome::OK.to_string(),
                    failed_step: None,
                },
                used,
            )
        }
        Ok(Err(error)) => (failure(BindStep::Connect, &error), used),
        Err(_) => (
            BindOutcome {
                result: "ETIMEDOUT".to_string(),
                failed_step: Some(BindStep::Connect),
            },
            used,
        ),
    }
}

/// A TCP socket with `reuse` set, bound to `local`.
fn bound_socket(
    local: SocketAddr,
    reuse: SocketOptions,
) -> Result<TcpSocket, (BindStep, std::io::Error)> {
    let socket = unbound_socket(local, reuse)?;
    socket.bind(local).map_err(|e| (BindStep::Bind, e))?;
    Ok(socket)
}

/// A TCP (or MPTCP) socket of `like`'s family with `reuse` set, not bound.
fn unbound_socket(
    like: SocketAddr,
    reuse: SocketOptions,
) -> Result<TcpSocket, (BindStep, std::io::Error)> {
    // Opened through socket2, which knows MPTCP; tokio then drives it.
    let socket = reuse
        .open(like)
        .and_then(|socket| {
            socket.set_nonblocking(true)?;
            Ok(TcpSocket::from_std_stream(socket.into()))
        })
        .map_err(|e| (BindStep::Socket, e))?;
    Ok(socket)
}
