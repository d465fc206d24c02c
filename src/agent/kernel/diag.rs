//! Reads the TCP sockets of the current network namespace from the kernel over
//! netlink `sock_diag` (INET_DIAG), the interface `ss` uses.
//!
//! This is how tcplab *observes* instead of assuming: the state an experiment
//! reports is whatever this dump returned. Two details matter for the article:
//! - a connection orphaned by a killed server becomes a "timewait" minisocket,
//!   and the kernel reports its *sub-state* (FIN_WAIT2 or TIME_WAIT) in
//!   `idiag_state`, so the request asks for every state bit;
//! - its remaining lifetime is in `idiag_expires` with timer kind 3. The
//!   `netlink-packet-sock-diag` crate drops `idiag_expires` for that timer kind,
//!   which is exactly the number we want to show, so the two fixed-layout structs
//!   (`inet_diag_req_v2`, `inet_diag_msg`) are encoded and decoded here by hand.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};

use crate::protocol::{SocketEntry, SocketTimer, TimerKind};
use crate::tcp_state::SocketState;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HEADER_LEN: usize = 16;
const INET_DIAG_REQ_LEN: usize = 56;
const INET_DIAG_MSG_LEN: usize = 72;
/// Every TCP state bit, TCP_NEW_SYN_RECV (12) included.
const ALL_STATES: u32 = 0x1ffe;

/// Which sockets a dump keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketFilter {
    /// Keep sockets whose local or remote port is this one.
    pub port: Option<u16>,
    pub state: Option<SocketState>,
}

impl SocketFilter {
    fn keeps(&self, entry: &SocketEntry) -> bool {
        let port_ok = self
            .port
            .is_none_or(|p| entry.local.port() == p || entry.remote.port() == p);
        let state_ok = self.state.is_none_or(|s| entry.state == s);
        port_ok && state_ok
    }
}

/// Two open `NETLINK_SOCK_DIAG` sockets, one per address family, in the
/// namespace they were created in.
///
/// Why two: the kernel walks its whole TCP hash table once per family, inside
/// the `send` of the request, and on a host with 100,000 sockets each walk
/// costs milliseconds. With a socket per family both walks run at once, on
/// two cores, where `ss` runs them one after the other.
pub struct SockDiag {
    v4: FamilyDump,
    v6: FamilyDump,
}

/// One netlink socket and its receive buffer: dumps one family at a time.
struct FamilyDump {
    family: u8,
    socket: Socket,
    buffer: Vec<u8>,
    sequence: u32,
}

impl SockDiag {
    /// Opens the netlink sockets. They stay bound to the network namespace of
    /// the calling thread at this moment, whatever happens to the process later.
    pub fn open() -> io::Result<SockDiag> {
        Ok(SockDiag {
            v4: FamilyDump::open(libc::AF_INET as u8)?,
            v6: FamilyDump::open(libc::AF_INET6 as u8)?,
        })
    }

    /// The TCP sockets of one address family (`AF_INET`/`AF_INET6`) that
    /// `filter` keeps: half the work of [`SockDiag::tcp_sockets`].
    pub fn tcp_sockets_of(
        &mut self,
        family: u8,
        filter: SocketFilter,
    ) -> io::Result<Vec<SocketEntry>> {
        if family == libc::AF_INET6 as u8 {
            self.v6.collect(filter)
        } else {
            self.v4.collect(filter)
        }
    }

    /// All TCP sockets (IPv4 then IPv6) that `filter` keeps. The IPv6 dump
    /// runs on a second thread while this one does IPv4.
    pub fn tcp_sockets(&mut self, filter: SocketFilter) -> io::Result<Vec<SocketEntry>> {
        let SockDiag { v4, v6 } = self;
        let (v4_sockets, v6_sockets) = std::thread::scope(|scope| {
            let v6_dump = scope.spawn(|| v6.collect(filter));
            let v4_sockets = v4.collect(filter);
            // A panic in the dump is a bug in this file; surface it as an error
            // rather than tearing down the agent.
            let v6_sockets = v6_dump
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("sock_diag: the IPv6 dump panicked")));
            (v4_sockets, v6_sockets)
        });
        let mut sockets = v4_sockets?;
        sockets.extend(v6_sockets?);
        Ok(sockets)
    }
}

impl FamilyDump {
    fn open(family: u8) -> io::Result<FamilyDump> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        // Unfiltered dumps of a busy host arrive faster than small reads
        // drain them; a large socket buffer keeps the kernel from waiting.
        let _ = socket.set_rx_buf_sz(4 * 1024 * 1024);
        socket.bind_auto()?;
        socket.connect(&NetlinkAddr::new(0, 0))?;
        Ok(FamilyDump {
            family,
            socket,
            buffer: vec![0; 256 * 1024],
            sequence: 0,
        })
    }

    /// This family's TCP sockets that `filter` keeps.
    fn collect(&mut self, filter: SocketFilter) -> io::Result<Vec<SocketEntry>> {
        let mut sockets = Vec::new();
        self.dump(filter.port, &mut |entry| {
            if filter.keeps(&entry) {
                sockets.push(entry);
            }
        })?;
        Ok(sockets)
    }

    /// Dumps one family, with the kernel filtering by `port` when given.
    fn dump(&mut self, port: Option<u16>, on_entry: &mut dyn FnMut(SocketEntry)) -> io::Result<()> {
        self.sequence = self.sequence.wrapping_add(1);
        let (request, length) = encode_request(self.family, self.sequence, port);
        self.socket.send(&request[..length], 0)?;
        loop {
            let size = self.socket.recv(&mut &mut self.buffer[..], 0)?;
            let mut rest = &self.buffer[..size];
            while rest.len() >= NLMSG_HEADER_LEN {
                let length = read_u32_ne(rest, 0) as usize;
                let kind = read_u16_ne(rest, 4);
                if length < NLMSG_HEADER_LEN || length > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("sock_diag: truncated netlink message ({length} bytes)"),
                    ));
                }
                let payload = &rest[NLMSG_HEADER_LEN..length];
                match kind {
                    // A dump that failed part-way ends with NLMSG_DONE
                    // carrying a negative errno: that is an error, not an
                    // empty table.
                    NLMSG_DONE => return done_status(payload),
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        return Ok(());
                    }
                    SOCK_DIAG_BY_FAMILY => {
                        if let Some(entry) = decode_message(payload) {
                            on_entry(entry);
                        }
                    }
                    _ => {}
                }
                // Messages are 4-byte aligned inside one datagram.
                let advance = (length + 3) & !3;
                rest = rest.get(advance..).unwrap_or(&[]);
            }
        }
    }
}

/// The status an NLMSG_DONE carries: 0, or a negative errno.
fn done_status(payload: &[u8]) -> io::Result<()> {
    let status = payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    if status < 0 {
        return Err(io::Error::from_raw_os_error(-status));
    }
    Ok(())
}

/// `INET_DIAG_REQ_BYTECODE`: the request attribute carrying a filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Bytecode: an unconditional jump (always takes `no`), and "local port
/// equals" / "remote port equals" (the port is in the `no` field of the op
/// that follows).
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;
const INET_DIAG_BC_D_EQ: u8 = 12;
/// Two 8-byte port tests and a 4-byte jump.
const PORT_FILTER_LEN: usize = 20;
/// The attribute: a 4-byte header, then the bytecode.
const PORT_ATTRIBUTE_LEN: usize = 4 + PORT_FILTER_LEN;

/// The longest request: header, `inet_diag_req_v2` and a port filter.
const MAX_REQUEST_LEN: usize = NLMSG_HEADER_LEN + INET_DIAG_REQ_LEN + PORT_ATTRIBUTE_LEN;

/// `nlmsghdr` + `inet_diag_req_v2` asking for the TCP sockets of one family,
/// and, with `port`, the bytecode that makes the kernel itself keep only
/// sockets whose local or remote port is `port`. On a host with 100,000
/// sockets that is the difference between 100,000 messages and a handful.
fn encode_request(family: u8, sequence: u32, port: Option<u16>) -> ([u8; MAX_REQUEST_LEN], usize) {
    let mut buf = [0u8; MAX_REQUEST_LEN];
    let total = NLMSG_HEADER_LEN + INET_DIAG_REQ_LEN + port.map_or(0, |_| PORT_ATTRIBUTE_LEN);
    buf[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf[8..12].copy_from_slice(&sequence.to_ne_bytes());
    let req = &mut buf[NLMSG_HEADER_LEN..NLMSG_HEADER_LEN + INET_DIAG_REQ_LEN];
    req[0] = family;
    req[1] = libc::IPPROTO_TCP as u8;
    // req[2] idiag_ext = 0: no extensions, the fixed header has all we print.
    req[4..8].copy_from_slice(&ALL_STATES.to_ne_bytes());
    if let Some(port) = port {
        let attribute = &mut buf[NLMSG_HEADER_LEN + INET_DIAG_REQ_LEN..total];
        attribute[0..2].copy_from_slice(&(PORT_ATTRIBUTE_LEN as u16).to_ne_bytes());
        attribute[2..4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        attribute[4..].copy_from_slice(&port_filter(port));
    }
    (buf, total)
}

/// "sport == port OR dport == port" in inet_diag bytecode, laid out as `ss`
/// lays out an OR. Each op is `{code, yes, no}`: byte offsets to jump by
/// when the test holds or not; landing exactly on the end accepts the
/// socket, landing 4 bytes past it rejects it. The kernel's audit requires
/// every `no` target to be reachable through `yes` jumps, hence the JMP.
fn port_filter(port: u16) -> [u8; PORT_FILTER_LEN] {
    let op = |code: u8, yes: u8, no: u16| {
        let no = no.to_ne_bytes();
        [code, yes, no[0], no[1]]
    };
    let mut program = [0u8; PORT_FILTER_LEN];
    // @0: local port == port? yes: on to the JMP; no: to the second test.
    program[0..4].copy_from_slice(&op(INET_DIAG_BC_S_EQ, 8, 12));
    program[4..8].copy_from_slice(&op(0, 0, port));
    // @8: JMP over the second test to the end: accept.
    program[8..12].copy_from_slice(&op(INET_DIAG_BC_JMP, 4, 12));
    // @12: remote port == port? yes: to the end, accept; no: past it, reject.
    program[12..16].copy_from_slice(&op(INET_DIAG_BC_D_EQ, 8, 12));
    program[16..20].copy_from_slice(&op(0, 0, port));
    program
}

/// Decodes one `inet_diag_msg`; `None` for a message we do not understand.
fn decode_message(payload: &[u8]) -> Option<SocketEntry> {
    if payload.len() < INET_DIAG_MSG_LEN {
        return None;
    }
    let family = payload[0];
    let state = SocketState::from_kernel(payload[1])?;
    let timer_code = payload[2];
    let retransmits = payload[3];
    let id = &payload[4..52];
    let local_port = u16::from_be_bytes([id[0], id[1]]);
    let remote_port = u16::from_be_bytes([id[2], id[3]]);
    let local_ip = decode_ip(family, &id[4..20])?;
    let remote_ip = decode_ip(family, &id[20..36])?;
    let expires_ms = read_u32_ne(payload, 52);
    let recv_q = read_u32_ne(payload, 56);
    let send_q = read_u32_ne(payload, 60);
    let kind = match timer_code {
        1 => Some(TimerKind::On),
        2 => Some(TimerKind::Keepalive),
        3 => Some(TimerKind::Timewait),
        4 => Some(TimerKind::Persist),
        _ => None,
    };
    let timer = kind.map(|kind| SocketTimer {
        kind,
        expires_ms,
        retransmits,
    });
    Some(SocketEntry {
        state,
        local: SocketAddr::new(local_ip, local_port),
        remote: SocketAddr::new(remote_ip, remote_port),
        timer_ms: timer.map(|t| t.expires_ms),
        timer,
        recv_q,
        send_q,
    })
}

/// An address as netstat shows it: an IPv4-mapped IPv6 address (a dual-stack
/// socket's IPv4 peer) in its IPv4 form, the socket still counted as tcp6.
fn decode_ip(family: u8, raw: &[u8]) -> Option<IpAddr> {
    if family == libc::AF_INET as u8 {
        Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])))
    } else if family == libc::AF_INET6 as u8 {
        let bytes: [u8; 16] = raw.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    } else {
        None
    }
}

fn read_u32_ne(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_u16_ne(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn sees_a_listening_socket_of_this_process() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut diag = SockDiag::open().unwrap();
        let found = diag
            .tcp_sockets(SocketFilter {
                port: Some(port),
                state: None,
            })
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].state, SocketState::Listen);
        assert_eq!(found[0].local, listener.local_addr().unwrap());
        assert!(found[0].netstat_line().contains("LISTEN"));
    }

    #[test]
    fn both_families_come_back_ipv4_first() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        // Same port on ::1; skip quietly where the host has no IPv6 loopback.
        let Ok(v6) = TcpListener::bind(("::1", port)) else {
            return;
        };
        let mut diag = SockDiag::open().unwrap();
        let found = diag
            .tcp_sockets(SocketFilter {
                port: Some(port),
                state: None,
            })
            .unwrap();
        let locals: Vec<SocketAddr> = found.iter().map(|s| s.local).collect();
        assert_eq!(
            locals,
            vec![v4.local_addr().unwrap(), v6.local_addr().unwrap()]
        );
    }

    #[test]
    fn the_kernel_filters_by_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut diag = SockDiag::open().unwrap();
        let mut seen = Vec::new();
        diag.v4
            .dump(Some(port), &mut |entry| seen.push(entry))
            .unwrap();
        // Unfiltered in user space here: only the kernel's filter applied.
        assert!(
            seen.iter()
                .all(|s| s.local.port() == port || s.remote.port() == port)
        );
        assert!(
            seen.iter()
                .any(|s| s.local == listener.local_addr().unwrap())
        );
        assert!(!seen.iter().any(|s| s.local == other.local_addr().unwrap()));
    }

    #[test]
    fn timer_notation_matches_ss() {
        let timer = SocketTimer {
            kind: TimerKind::Timewait,
            expires_ms: 59_400,
            retransmits: 0,
        };
        assert_eq!(timer.ss_notation(), "timer:(timewait,59sec,0)");
    }

    #[test]
    fn a_dump_ending_in_an_errno_is_an_error_not_an_empty_table() {
        assert!(done_status(&0i32.to_ne_bytes()).is_ok());
        assert!(done_status(&[]).is_ok());
        let error = done_status(&(-libc::EINTR).to_ne_bytes()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EINTR));
    }
}
