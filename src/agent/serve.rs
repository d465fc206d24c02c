//! `tcplab serve`: the server process an experiment kills.
//!
//! It is the article's `ReuseAddress.java` in Rust: one listening socket with
//! SO_REUSEADDR set *explicitly* (std's and tokio's `TcpListener::bind` turn it
//! on silently, which would hide the very effect we measure), and for every
//! client: write the greeting, close. Closing first makes this side the one
//! that goes through FIN_WAIT1 → FIN_WAIT2 → TIME_WAIT. The process runs as a
//! child of an agent, so killing it orphans its sockets exactly as a crash does.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::Socket;

use super::socket_options::SocketOptions;

/// The line `tcplab serve` prints on stdout once it listens; the agent waits for it.
pub const READY_PREFIX: &str = "listening ";
/// The line it prints just before it closes a connection: `closed PEER NS`,
/// NS being CLOCK_MONOTONIC in nanoseconds, the clock the agent reads too
/// (see `agent::state_clock`).
pub const CLOSED_PREFIX: &str = "closed ";

/// Options of one server process.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: SocketAddr,
    pub reuse: SocketOptions,
    /// Close accepted connections with RST (SO_LINGER 0) instead of FIN.
    pub linger_zero: bool,
    /// TCP_LINGER2 on accepted connections, in seconds.
    pub linger2_s: Option<i32>,
    /// Read until the client closes, then close: the client closes first.
    pub close_after_client: bool,
    pub greeting: String,
}

/// Listens and serves until killed. Returns only on error.
pub fn run(options: &ServeOptions) -> std::io::Result<()> {
    let socket = listen(options)?;
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "{READY_PREFIX}{} {}",
        options.bind,
        options.reuse.describe()
    )?;
    stdout.flush()?;
    loop {
        let (connection, peer) = socket.accept()?;
        // A client that resets early must not end the server: the experiment
        // kills it deliberately, nothing else should.
        let _ = (&connection).write_all(options.greeting.as_bytes());
        if options.close_after_client {
            let _ = std::io::copy(&mut &connection, &mut std::io::sink());
        }
        if let Some(seconds) = options.linger2_s {
            // Set on the connection, the socket that is orphaned in FIN_WAIT2.
            set_linger2(&connection, seconds)?;
        }
        if options.linger_zero {
            // Abortive close: the kernel sends RST and keeps no state at all.
            let _ = connection.set_linger(Some(Duration::ZERO));
        }
        // Before the close, so the time is never later than the FIN.
        if let Some(peer) = peer.as_socket() {
            let now = super::state_clock::monotonic_now().as_nanos();
            let _ = writeln!(stdout, "{CLOSED_PREFIX}{peer} {now}").and_then(|()| stdout.flush());
        }
        drop(connection);
    }
}

fn listen(options: &ServeOptions) -> std::io::Result<Socket> {
    let socket = options.reuse.open(options.bind)?;
    socket
        .bind(&options.bind.into())
        .map_err(|e| with_context(e, format!("bind {}", options.bind)))?;
    socket
        .listen(128)
        .map_err(|e| with_context(e, format!("listen on {}", options.bind)))?;
    Ok(socket)
}

/// TCP_LINGER2: socket2 and nix have no setter for it, so setsockopt(2) directly.
fn set_linger2(socket: &Socket, seconds: i32) -> std::io::Result<()> {
    super::socket_options::set_raw_option(socket, libc::IPPROTO_TCP, libc::TCP_LINGER2, seconds)
}

fn with_context(error: std::io::Error, what: String) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{what}: {error}"))
}
