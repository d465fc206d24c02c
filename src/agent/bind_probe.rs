//! The rebind check: can a new server bind the port the killed one held?
//!
//! `bind` and `listen` are separate steps because Linux can refuse either:
//! bind checks the port's owners (the orphaned connection among them), listen
//! checks again for listeners. The outcome names the step and the errno, so a
//! report can say "EADDRINUSE at bind" rather than "it failed".

use std::net::SocketAddr;

use nix::errno::Errno;
use socket2::Socket;

use super::protocol::{BindOutcome, BindStep, SocketOptions};

/// Opens a socket with the options `reuse`, binds `address`,
/// listens, and closes it again.
pub fn try_bind(address: SocketAddr, reuse: SocketOptions) -> BindOutcome {
    match bind_and_listen(address, reuse) {
        Ok(_socket) => BindOutcome {
            result: BindOutcome::OK.to_string(),
            failed_step: None,
        },
        Err((step, error)) => BindOutcome {
            result: errno_name(&error),
            failed_step: Some(step),
        },
    }
}

fn bind_and_listen(
    address: SocketAddr,
    reuse: SocketOptions,
) -> Result<Socket, (BindStep, std::io::Error)> {
    let socket = reuse.open(address).map_err(|e| (BindStep::Socket, e))?;
    socket
        .bind(&address.into())
        .map_err(|e| (BindStep::Bind, e))?;
    socket.listen(1).map_err(|e| (BindStep::Listen, e))?;
    Ok(socket)
}

/// `EADDRINUSE` for errno 98, as the C headers name it.
pub fn errno_name(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => format!("{:?}", Errno::from_raw(code)),
        None => format!("{:?}", error.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_free_port_binds() {
        let outcome = try_bind("127.0.0.1:0".parse().unwrap(), SocketOptions::default());
        assert_eq!(outcome.result, "ok");
        assert_eq!(outcome.failed_step, None);
    }

    #[test]
    fn a_listening_port_is_in_use_at_bind() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let reuse = SocketOptions::reuse(true, false);
        let outcome = try_bind(listener.local_addr().unwrap(), reuse);
        assert_eq!(outcome.result, "EADDRINUSE");
        assert_eq!(outcome.failed_step, Some(BindStep::Bind));
    }
}
