//! Opening a socket as its [`SocketOptions`] say: the server that gets
//! killed, the client and the bind probe all open their sockets here, so
//! "old" and "new" sockets get their options the same way. (The options
//! themselves are protocol data: they travel in requests.)

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::protocol::SocketOptions;

/// `IP_LOCAL_PORT_RANGE` from `include/uapi/linux/in.h`; the libc crate
/// does not name it.
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

impl SocketOptions {
    /// A stream socket of `address`'s family and this protocol, with every
    /// option set: not yet bound.
    pub fn open(&self, address: SocketAddr) -> std::io::Result<Socket> {
        let protocol = if self.mptcp {
            Protocol::MPTCP
        } else {
            Protocol::TCP
        };
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(protocol))?;
        self.apply(&socket)?;
        Ok(socket)
    }

    /// Sets the options on `socket`, to true or false: never left to a default
    /// (IPV6_V6ONLY only when asked for, and only on IPv6 sockets).
    pub fn apply(&self, socket: &Socket) -> std::io::Result<()> {
        socket.set_reuse_address(self.reuseaddr)?;
        socket.set_reuse_port(self.reuseport)?;
        if let Some(v6only) = self.v6only
            && socket.domain()? == Domain::IPV6
        {
            socket.set_only_v6(v6only)?;
        }
        if let Some([low, high]) = self.local_port_range {
            set_local_port_range(socket, low, high)?;
        }
        if self.bind_address_no_port {
            let one: libc::c_int = 1;
            set_raw_option(socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, one)?;
        }
        Ok(())
    }
}

/// The option's value is one u32: the low port in its lower 16 bits, the
/// high one in the upper.
fn set_local_port_range(socket: &Socket, low: u16, high: u16) -> std::io::Result<()> {
    let value: u32 = (u32::from(high) << 16) | u32::from(low);
    set_raw_option(socket, libc::IPPROTO_IP, IP_LOCAL_PORT_RANGE, value)
}

/// setsockopt(2) with a plain integer value, for the options socket2 and
/// nix have no setter for (IP_LOCAL_PORT_RANGE, IP_BIND_ADDRESS_NO_PORT,
/// TCP_LINGER2).
pub fn set_raw_option<T: Copy>(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor, a value of the option's type and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Why this host cannot open MPTCP sockets, if it cannot: a kernel built
/// without it (Debian's 5.10 cloud kernel) or `net.mptcp.enabled=0`.
pub fn mptcp_missing() -> Option<String> {
    let probe = SocketOptions {
        mptcp: true,
        ..SocketOptions::default()
    };
    match probe.open(SocketAddr::from(([127, 0, 0, 1], 0))) {
        Ok(_) => None,
        Err(error) => Some(format!(
            "socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP) failed: {} ({error}); \
             the kernel lacks CONFIG_MPTCP or net.mptcp.enabled is 0",
            crate::agent::kernel::bind_probe::errno_name(&error)
        )),
    }
}
