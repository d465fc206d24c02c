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

use serde::{Deserialize, Serialize};
use socket2::Socket;

use crate::protocol::SocketOptions;

/// The line `tcplab serve` prints on stdout once it listens; the agent waits for it.
pub const READY_PREFIX: &str = "listening ";
/// The line it prints just before it closes a connection: `closed PEER NS`,
/// NS being CLOCK_MONOTONIC in nanoseconds, the clock the agent reads too
/// (see `agent::state_clock`).
pub const CLOSED_PREFIX: &str = "closed ";

/// Options of one server process: from the command line, or as one JSON
/// line on stdin (see `agent::spare_server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// The TCP_LINGER2 seconds `tcplab serve` takes, by flag or options line
/// (-1: reset at once; the kernel caps larger values anyway).
pub const LINGER2_S: std::ops::RangeInclusive<i64> = -1..=600;

/// Longest options line a spare server reads.
const MAX_OPTIONS_BYTES: u64 = 64 * 1024;

/// Reads the options an agent writes to a spare server: one JSON line.
/// `Ok(None)` when the input ends first (the agent had no use for the spare).
pub fn read_options(input: impl std::io::BufRead) -> Result<Option<ServeOptions>, String> {
    use std::io::BufRead;
    let mut line = String::new();
    let mut bounded = input.take(MAX_OPTIONS_BYTES);
    bounded
        .read_line(&mut line)
        .map_err(|e| format!("reading the options on stdin: {e}"))?;
    if line.is_empty() {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(format!(
            "the options on stdin are not one line of at most {MAX_OPTIONS_BYTES} bytes"
        ));
    }
    let options: ServeOptions =
        serde_json::from_str(&line).map_err(|e| format!("the options on stdin, line 1: {e}"))?;
    match options.linger2_s {
        Some(seconds) if !LINGER2_S.contains(&i64::from(seconds)) => Err(format!(
            "the options on stdin, line 1: linger2_s {seconds} is not in {LINGER2_S:?}"
        )),
        _ => Ok(Some(options)),
    }
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
            let now = crate::agent::session::state_clock::monotonic_now().as_nanos();
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
    crate::agent::kernel::socket_options::set_raw_option(
        socket,
        libc::IPPROTO_TCP,
        libc::TCP_LINGER2,
        seconds,
    )
}

fn with_context(error: std::io::Error, what: String) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"bind":"127.0.0.1:8080","reuse":{"reuseaddr":true},"linger_zero":false,"linger2_s":5,"close_after_client":false,"greeting":"Hello\n"}"#;

    #[test]
    fn a_spare_reads_the_options_the_agent_writes() {
        let options = read_options(format!("{LINE}\n").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(options.bind, "127.0.0.1:8080".parse().unwrap());
        assert!(options.reuse.reuseaddr && !options.reuse.reuseport);
        assert_eq!(options.linger2_s, Some(5));
        assert_eq!(options.greeting, "Hello\n");
        let encoded = serde_json::to_string(&options).unwrap();
        assert_eq!(
            read_options(format!("{encoded}\n").as_bytes()).unwrap(),
            Some(options)
        );
    }

    #[test]
    fn input_that_ends_first_means_the_spare_was_not_needed() {
        assert_eq!(read_options(&b""[..]).unwrap(), None);
    }

    #[test]
    fn bad_options_are_refused_with_where_they_were() {
        let unknown = LINE.replace("\"linger_zero\"", "\"linger_zeroo\"");
        let error = read_options(format!("{unknown}\n").as_bytes()).unwrap_err();
        assert!(
            error.contains("line 1") && error.contains("linger_zeroo"),
            "{error}"
        );
        let far = LINE.replace("\"linger2_s\":5", "\"linger2_s\":601");
        let error = read_options(format!("{far}\n").as_bytes()).unwrap_err();
        assert!(error.contains("601"), "{error}");
        let endless = vec![b' '; 70 * 1024];
        let error = read_options(&endless[..]).unwrap_err();
        assert!(error.contains("one line"), "{error}");
    }
}
