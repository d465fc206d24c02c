//! The rebind check: can a new server bind the port the killed one held?
//!
//! `bind` and `listen` are separate steps because Linux can refuse either:
//! bind checks the port's owners (the orphaned connection among them), listen
//! checks again for listeners. The outcome names the step and the errno, so a
//! report can say "EADDRINUSE at bind" rather than "it failed".
//!
//! [`try_bind_beside`] asks the same of a port that live sockets hold (the
//! kernel's bind selftests): the old sockets stay open until the new one
//! has tried, and close with it.

use std::net::SocketAddr;

use nix::errno::Errno;
use socket2::Socket;

use super::protocol::{BindOutcome, BindStep, HeldSocket, SocketOptions};

/// Opens a socket with the options `reuse`, binds `address`,
/// listens, and closes it again.
pub fn try_bind(address: SocketAddr, reuse: SocketOptions) -> BindOutcome {
    outcome_of(&bind_and_listen(address, reuse))
}

/// Opens `held` in turn, then tries `address` with `reuse` beside them.
/// Returns each held socket's outcome up to the first failure, and the
/// probe's (or that failure, when a held socket could not be opened).
pub fn try_bind_beside(
    held: &[HeldSocket],
    address: SocketAddr,
    reuse: SocketOptions,
) -> (Vec<BindOutcome>, BindOutcome) {
    let mut open = Vec::with_capacity(held.len());
    let mut outcomes = Vec::with_capacity(held.len());
    for socket in held {
        let opened = bind_then(socket.address, socket.reuse, socket.listen);
        let outcome = outcome_of(&opened);
        outcomes.push(outcome.clone());
        match opened {
            Ok(socket) => open.push(socket),
            Err(_) => return (outcomes, outcome),
        }
    }
    let probe = try_bind(address, reuse);
    drop(open);
    (outcomes, probe)
}

fn outcome_of(opened: &Result<Socket, (BindStep, std::io::Error)>) -> BindOutcome {
    match opened {
        Ok(_) => BindOutcome {
            result: BindOutcome::OK.to_string(),
            failed_step: None,
        },
        Err((step, error)) => BindOutcome {
            result: errno_name(error),
            failed_step: Some(*step),
        },
    }
}

fn bind_and_listen(
    address: SocketAddr,
    reuse: SocketOptions,
) -> Result<Socket, (BindStep, std::io::Error)> {
    bind_then(address, reuse, true)
}

fn bind_then(
    address: SocketAddr,
    reuse: SocketOptions,
    listen: bool,
) -> Result<Socket, (BindStep, std::io::Error)> {
    let socket = reuse.open(address).map_err(|e| (BindStep::Socket, e))?;
    socket
        .bind(&address.into())
        .map_err(|e| (BindStep::Bind, e))?;
    if listen {
        socket.listen(1).map_err(|e| (BindStep::Listen, e))?;
    }
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

    #[test]
    fn a_port_held_beside_is_free_again_afterwards() {
        let reuse = SocketOptions::reuse(false, false);
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = free.local_addr().unwrap();
        drop(free);
        let held = [HeldSocket {
            address,
            reuse,
            listen: false,
        }];
        let (outcomes, probe) = try_bind_beside(&held, address, reuse);
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        assert_eq!(probe.result, "EADDRINUSE");
        assert!(
            try_bind(address, reuse).is_ok(),
            "the held socket was closed"
        );
    }
}
