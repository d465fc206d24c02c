//! The client side of an experiment, behaving like the article's `nc c2 8080`.
//!
//! The client reads the greeting until the server's FIN, then ends its side as
//! the experiment asks. The difference matters: the kernel delays the ACK of a
//! FIN, so a client that closes at once sends ACK and FIN in one segment; if a
//! firewall drops that FIN, the server never sees the ACK and stays in
//! FIN_WAIT1 instead of FIN_WAIT2. To ACK first, the client sets TCP_QUICKACK,
//! which makes the kernel send the pending ACK right away.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use super::protocol::{AgentErrorKind, ClientClose};
use super::session::AgentError;

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

/// Connects to `server`, reads until EOF and applies `close`.
pub async fn connect(server: SocketAddr, close: ClientClose) -> Result<ClientOutcome, AgentError> {
    // Bound before connecting, so the local port is known even when a fast
    // server's RST ends the connection before connect() reports success.
    let socket = if server.is_ipv6() {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(|e| failed(format!("client socket: {e}")))?;
    let any = SocketAddr::new(unspecified_like(server.ip()), 0);
    socket
        .bind(any)
        .map_err(|e| failed(format!("binding the client socket: {e}")))?;
    let bound = socket
        .local_addr()
        .map_err(|e| failed(format!("local address of the client socket: {e}")))?;
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(server))
        .await
        .map_err(|_| {
            failed(format!(
                "connect {server}: no answer within {CONNECT_TIMEOUT:?}"
            ))
        })?;
    let mut stream = match connected {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Ok(ClientOutcome {
                stream: None,
                local: bound,
                greeting: String::new(),
                reset: true,
            });
        }
        Err(e) => return Err(failed(format!("connect {server}: {e}"))),
    };
    let local = stream
        .local_addr()
        .map_err(|e| failed(format!("local address of the client socket: {e}")))?;
    let mut greeting = Vec::new();
    let read = tokio::time::timeout(
        CONNECT_TIMEOUT,
        (&mut stream)
            .take(GREETING_LIMIT)
            .read_to_end(&mut greeting),
    )
    .await
    .map_err(|_| {
        failed(format!(
            "{server} did not close the connection within {CONNECT_TIMEOUT:?}"
        ))
    })?;
    let greeting = String::from_utf8_lossy(&greeting).into_owned();
    match read {
        Ok(_) => {}
        // A server that closes with RST (SO_LINGER 0) ends the read with
        // ECONNRESET: an outcome to report, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Ok(ClientOutcome {
                stream: None,
                local,
                greeting,
                reset: true,
            });
        }
        Err(e) => return Err(failed(format!("reading from {server}: {e}"))),
    }
    let stream = match close {
        ClientClose::Immediately => {
            drop(stream);
            None
        }
        ClientClose::AfterAck => {
            SockRef::from(&stream)
                .set_tcp_quickack(true)
                .map_err(|e| failed(format!("TCP_QUICKACK: {e}")))?;
            Some(stream)
        }
        ClientClose::Never => Some(stream),
    };
    Ok(ClientOutcome {
        stream,
        local,
        greeting,
        reset: false,
    })
}

fn unspecified_like(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

fn failed(message: String) -> AgentError {
    AgentError::new(AgentErrorKind::Failed, message)
}
