//! The options a socket sets before it binds: SO_REUSEADDR (the article's
//! subject), SO_REUSEPORT (its younger relative), IPV6_V6ONLY (whether `[::]`
//! also takes IPv4), the port range connect() picks from, and whether the
//! socket is TCP or MPTCP; and the request that asks whether MPTCP is there.
//!
//! The server that gets killed, the client and the bind probe all describe
//! their sockets with this one type, so "old" and "new" sockets read the same
//! in requests, experiment files and reports (the agent's
//! `socket_options` opens them).

use serde::{Deserialize, Serialize};

/// Which options a socket sets before `bind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketOptions {
    pub reuseaddr: bool,
    #[serde(default)]
    pub reuseport: bool,
    /// IPV6_V6ONLY on an IPv6 socket; `None` leaves the kernel's default
    /// (`net.ipv6.bindv6only`, 0 on every distribution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6only: Option<bool>,
    /// An MPTCP socket (`IPPROTO_MPTCP`) instead of a TCP one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mptcp: bool,
    /// IP_LOCAL_PORT_RANGE (Linux 6.3 on): the ports connect() or an
    /// unbound bind may pick for this socket, within ip_local_port_range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port_range: Option<[u16; 2]>,
    /// IP_BIND_ADDRESS_NO_PORT: bind() to `address:0` takes the address
    /// only; the port is chosen at connect(), so many connections to other
    /// destinations may share it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bind_address_no_port: bool,
}

impl SocketOptions {
    /// SO_REUSEADDR and SO_REUSEPORT only, as most experiments use them.
    pub fn reuse(reuseaddr: bool, reuseport: bool) -> SocketOptions {
        SocketOptions {
            reuseaddr,
            reuseport,
            ..SocketOptions::default()
        }
    }

    /// `SO_REUSEADDR=1`, with SO_REUSEPORT, IPV6_V6ONLY and MPTCP when set.
    pub fn describe(&self) -> String {
        let mut text = format!("SO_REUSEADDR={}", self.reuseaddr as u8);
        if self.reuseport {
            text.push_str(" SO_REUSEPORT=1");
        }
        if let Some(v6only) = self.v6only {
            text.push_str(&format!(" IPV6_V6ONLY={}", v6only as u8));
        }
        if self.mptcp {
            text.push_str(" (MPTCP)");
        }
        if let Some([low, high]) = self.local_port_range {
            text.push_str(&format!(" IP_LOCAL_PORT_RANGE={low}-{high}"));
        }
        if self.bind_address_no_port {
            text.push_str(" IP_BIND_ADDRESS_NO_PORT=1");
        }
        text
    }
}

/// Can this host open MPTCP sockets? Answered with [`MptcpSupport`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mptcp {}

/// What an [`Mptcp`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MptcpSupport {
    /// Why MPTCP sockets cannot be opened here, `null` when they can.
    pub missing: Option<String>,
}
