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

use crate::protocol::{BindOutcome, BindStep, HeldSocket, SocketOptions};

/// Opens a socket with the options `reuse`, binds `address`,
/// listens, and closes it again.
pub fn try_bind(address: SocketAddr, reuse: SocketOptions) -> BindOutcome {
    outcome_of(&bind_and_listen(address, reuse))
}

/// Opens `held` in turn, then tries `address` with `reuse` beside them:
/// bind and listen, or bind and connect to `connect`. Returns each held
/// socket's outcome up to the first failure, and the probe's (or that
/// failure, when a held socket could not be opened).
pub fn try_bind_beside(
    held: &[HeldSocket],
    address: SocketAddr,
    reuse: SocketOptions,
    connect: Option<SocketAddr>,
) -> (Vec<BindOutcome>, BindOutcome) {
    let mut open = Vec::with_capacity(held.len());
    let mut outcomes = Vec::with_capacity(held.len());
    for socket in held {
        let after = match socket.connect {
            Some(peer) if socket.rebound => AfterBind::ConnectThenRebind(peer),
            Some(peer) => AfterBind::Connect(peer),
            None if socket.listen => AfterBind::Listen,
            None => AfterBind::Nothing,
        };
        let opened = bind_then(socket.address, socket.reuse, after);
        let outcome = outcome_of(&opened);
        outcomes.push(outcome.clone());
        match opened {
            // A closed one goes at once: what it leaves behind is the point.
            Ok(opened) if !socket.closed => open.push(opened),
            Ok(_) => {}
            Err(_) => return (outcomes, outcome),
        }
    }
    let probe = match connect {
        Some(peer) => outcome_of(&bind_then(address, reuse, AfterBind::Connect(peer))),
        None => try_bind(address, reuse),
    };
    drop(open);
    (outcomes, probe)
}

/// What a socket does once bound.
#[derive(Clone, Copy)]
enum AfterBind {
    Nothing,
    Listen,
    Connect(SocketAddr),
    /// Connect, disconnect again and bind by hand to the port connect()
    /// picked (tcp_port_share.c's second test).
    ConnectThenRebind(SocketAddr),
}

/// A connect() to this host's own listener completes at once; this only
/// bounds a kernel that does not answer.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
    bind_then(address, reuse, AfterBind::Listen)
}

fn bind_then(
    address: SocketAddr,
    reuse: SocketOptions,
    after: AfterBind,
) -> Result<Socket, (BindStep, std::io::Error)> {
    let socket = reuse.open(address).map_err(|e| (BindStep::Socket, e))?;
    socket
        .bind(&address.into())
        .map_err(|e| (BindStep::Bind, e))?;
    match after {
        AfterBind::Nothing => {}
        // Room for the held clients' connections as well as the probe's.
        AfterBind::Listen => socket.listen(8).map_err(|e| (BindStep::Listen, e))?,
        AfterBind::Connect(peer) => socket
            .connect_timeout(&peer.into(), CONNECT_TIMEOUT)
            .map_err(|e| (BindStep::Connect, e))?,
        AfterBind::ConnectThenRebind(peer) => {
            socket
                .connect_timeout(&peer.into(), CONNECT_TIMEOUT)
                .map_err(|e| (BindStep::Connect, e))?;
            let local = socket.local_addr().map_err(|e| (BindStep::Connect, e))?;
            disconnect(&socket).map_err(|e| (BindStep::Connect, e))?;
            socket.bind(&local).map_err(|e| (BindStep::Bind, e))?;
        }
    }
    Ok(socket)
}

/// connect() with an AF_UNSPEC address: the kernel drops the connection
/// and, for a port connect() picked, releases the port.
fn disconnect(socket: &Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr_storage is a valid AF_UNSPEC (0) address
    // of its full size; connect() only reads it.
    let result = unsafe {
        let unspecified: libc::sockaddr_storage = std::mem::zeroed();
        libc::connect(
            socket.as_raw_fd(),
            std::ptr::from_ref(&unspecified).cast(),
            std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
            connect: None,
            closed: false,
            rebound: false,
        }];
        let (outcomes, probe) = try_bind_beside(&held, address, reuse, None);
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        assert_eq!(probe.result, "EADDRINUSE");
        assert!(
            try_bind(address, reuse).is_ok(),
            "the held socket was closed"
        );
    }
}
