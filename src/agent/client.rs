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
use tokio::net::TcpStream;

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
}

/// Connects to `server`, reads until EOF and applies `close`.
pub async fn connect(server: SocketAddr, close: ClientClose) -> Result<ClientOutcome, AgentError> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| {
            failed(format!(
                "connect {server}: no answer within {CONNECT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| failed(format!("connect {server}: {e}")))?;
    let local = stream
        .local_addr()
        .map_err(|e| failed(format!("local address of the client socket: {e}")))?;
    let mut greeting = Vec::new();
    tokio::time::timeout(
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
    })?
    .map_err(|e| failed(format!("reading from {server}: {e}")))?;
    let greeting = String::from_utf8_lossy(&greeting).into_owned();
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
    })
}

fn failed(message: String) -> AgentError {
    AgentError::new(AgentErrorKind::Failed, message)
}
