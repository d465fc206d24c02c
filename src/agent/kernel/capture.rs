//! A packet capture and a socket-state timeline on one host, for the report's
//! pictures.
//!
//! Packets are read from an AF_PACKET socket bound to the experiment's
//! interface, so they are exactly what crossed the wire of this host: a FIN
//! that the host's own firewall dropped in OUTPUT never shows up, which is
//! the point the ladder diagram makes. At the same time the TCP states of the
//! connection on the experiment's port are sampled over sock_diag every
//! millisecond and kept when they change. Times are CLOCK_MONOTONIC in
//! microseconds, shared by all processes of one machine (the netns lab), so
//! c1's and c2's records line up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::agent::error::{AgentError, failed};
use crate::agent::kernel::diag::{SockDiag, SocketFilter};
use crate::agent::kernel::segment::parse;
use crate::clock::monotonic_us;
use crate::protocol::AgentErrorKind;
use crate::protocol::{
    CaptureRecord, CapturedPacket, MAX_RECORDS, RawPacket, SNAPLEN, StateSample,
};
use crate::tcp_state::SocketState;

/// How often the connection's state is sampled. A sock_diag dump walks the
/// kernel's whole connection hash table, shared by every namespace (262,144
/// buckets here): a few milliseconds of kernel time, on a thread of its own.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// A capture running in the background of the agent.
pub struct Capture {
    stop: oneshot::Sender<()>,
    packets: JoinHandle<Vec<CapturedPacket>>,
    sampling: Arc<AtomicBool>,
    states: std::thread::JoinHandle<(Vec<StateSample>, u32)>,
}

impl Capture {
    /// Starts capturing TCP on `port` on the interface that holds `address`.
    pub fn start(address: IpAddr, port: u16) -> Result<Capture, AgentError> {
        let ifindex = interface_holding(address)?;
        let socket = packet_socket(ifindex)?;
        let diag = SockDiag::open().map_err(|e| failed(format!("cannot open sock_diag: {e}")))?;
        let (stop, stopped) = oneshot::channel();
        let packets = tokio::spawn(record_packets(socket, port, stopped));
        // Sampling runs on a thread of its own: each sock_diag dump blocks
        // for milliseconds, which must not hold up the agent's requests.
        let sampling = Arc::new(AtomicBool::new(true));
        let running = sampling.clone();
        let family = if address.is_ipv6() {
            libc::AF_INET6 as u8
        } else {
            libc::AF_INET as u8
        };
        let states = std::thread::spawn(move || sample_states(diag, family, port, &running));
        Ok(Capture {
            stop,
            packets,
            sampling,
            states,
        })
    }

    /// Stops and returns what was recorded.
    pub async fn finish(self) -> CaptureRecord {
        let _ = self.stop.send(());
        let mut errors = Vec::new();
        let packets = self.packets.await.unwrap_or_else(|e| {
            errors.push(format!("the packet capture failed: {e}"));
            Vec::new()
        });
        self.sampling.store(false, Ordering::SeqCst);
        let thread = self.states;
        let (states, failed_dumps) =
            tokio::task::spawn_blocking(move || thread.join().unwrap_or_default())
                .await
                .unwrap_or_default();
        if failed_dumps > 0 {
            errors.push(format!("{failed_dumps} socket state sample(s) failed"));
        }
        CaptureRecord {
            packets,
            states,
            errors,
        }
    }
}

async fn record_packets(
    socket: AsyncFd<OwnedFd>,
    port: u16,
    mut stopped: oneshot::Receiver<()>,
) -> Vec<CapturedPacket> {
    let mut packets = Vec::new();
    let mut buffer = vec![0u8; 65536];
    // Segments of `port` only, each with its bytes and kernel timestamp.
    let keep = |received: Received, buffer: &[u8], packets: &mut Vec<CapturedPacket>| {
        let bytes = &buffer[..received.length];
        if let Some(mut packet) = parse(bytes, received.outgoing, port, received.t_us)
            && packets.len() < MAX_RECORDS
        {
            packet.raw = Some(RawPacket {
                unix_ns: received.unix_ns,
                length: received.length as u32,
                bytes: bytes[..bytes.len().min(SNAPLEN)].to_vec(),
            });
            packets.push(packet);
        }
    };
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            ready = socket.readable() => {
                let Ok(mut guard) = ready else { break };
                // Drain what is queued; the kernel keeps the packets' order.
                while let Some(received) = receive(socket.get_ref(), &mut buffer) {
                    keep(received, &buffer, &mut packets);
                }
                guard.clear_ready();
            }
        }
    }
    // What arrived between the last wake-up and the stop.
    while let Some(received) = receive(socket.get_ref(), &mut buffer) {
        keep(received, &buffer, &mut packets);
    }
    packets
}

/// Samples the states on `port` until `running` turns false, keeping changes.
fn sample_states(
    mut diag: SockDiag,
    family: u8,
    port: u16,
    running: &AtomicBool,
) -> (Vec<StateSample>, u32) {
    let mut samples: Vec<StateSample> = Vec::new();
    let mut failed_dumps = 0;
    while running.load(Ordering::SeqCst) {
        let Some(states) = connection_states(&mut diag, family, port) else {
            failed_dumps += 1;
            std::thread::sleep(SAMPLE_EVERY);
            continue;
        };
        let changed = samples.last().is_none_or(|last| last.states != states);
        if changed && samples.len() < MAX_RECORDS {
            samples.push(StateSample {
                t_us: monotonic_us(),
                states,
            });
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    (samples, failed_dumps)
}

/// The states on the port; `None` when the dump failed (which is not the
/// same as "no sockets").
fn connection_states(diag: &mut SockDiag, family: u8, port: u16) -> Option<Vec<SocketState>> {
    let filter = SocketFilter {
        port: Some(port),
        state: None,
    };
    let mut states: Vec<SocketState> = diag
        .tcp_sockets_of(family, filter)
        .ok()?
        .into_iter()
        .filter(|s| s.state != SocketState::Listen)
        .map(|s| s.state)
        .collect();
    states.sort_by_key(|s| s.kernel_number());
    Some(states)
}

/// The index of the interface that has `address`.
fn interface_holding(address: IpAddr) -> Result<u32, AgentError> {
    let mut addresses: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut addresses) } != 0 {
        return Err(failed(format!(
            "getifaddrs: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut found = None;
    let mut cursor = addresses;
    while !cursor.is_null() {
        // SAFETY: cursor walks the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() && sockaddr_ip(entry.ifa_addr) == Some(address) {
            // SAFETY: ifa_name is a NUL-terminated name in the same list.
            found = Some(unsafe { libc::if_nametoindex(entry.ifa_name) });
            break;
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: the list came from getifaddrs.
    unsafe { libc::freeifaddrs(addresses) };
    found
        .filter(|index| *index != 0)
        .ok_or_else(|| failed(format!("no interface here has {address}")))
}

fn sockaddr_ip(address: *const libc::sockaddr) -> Option<IpAddr> {
    // SAFETY: the family field tells which sockaddr this is.
    unsafe {
        match i32::from((*address).sa_family) {
            libc::AF_INET => {
                let v4 = &*(address as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let v6 = &*(address as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// An AF_PACKET socket (cooked: no link header) on interface `ifindex`.
fn packet_socket(ifindex: u32) -> Result<AsyncFd<OwnedFd>, AgentError> {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(protocol),
        )
    };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        let kind = if error.kind() == std::io::ErrorKind::PermissionDenied {
            AgentErrorKind::Privilege
        } else {
            AgentErrorKind::Failed
        };
        return Err(AgentError::new(kind, format!("packet socket: {error}")));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_ll is valid; the fields are set below.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = ifindex as i32;
    // SAFETY: bind(2) with a sockaddr_ll of the right size.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            &address as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if bound != 0 {
        return Err(failed(format!(
            "binding the packet socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) with an int flag.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    // SAFETY: the OwnedFd is a valid descriptor that AsyncFd now owns; it is
    // neither replaced nor closed while registered.
    unsafe { AsyncFd::register(socket) }.map_err(|e| failed(format!("packet socket: {e}")))
}

/// One packet, if one is queued: (sent by this host, length, when the
/// kernel saw it as CLOCK_MONOTONIC microseconds).
///
/// The time comes from the kernel (SO_TIMESTAMPNS, CLOCK_REALTIME) rather
/// than from when this task got round to reading: c1's and c2's agents read
/// at their own pace, and only the kernel's times put their packets in order.
fn receive(socket: &OwnedFd, buffer: &mut [u8]) -> Option<Received> {
    // SAFETY: zeroed sockaddr_ll and msghdr are valid for recvmsg to fill.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr() as *mut libc::c_void,
        iov_len: buffer.len(),
    };
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = &mut from as *mut libc::sockaddr_ll as *mut libc::c_void;
    message.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    message.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg(2) into buffers we own, described by `message`.
    let length = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, 0) };
    if length <= 0 {
        return None;
    }
    let mut when = monotonic_us();
    let mut unix_ns = realtime_ns();
    // SAFETY: walking the control messages recvmsg wrote, with the libc macros.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let stamp =
                    std::ptr::read_unaligned(libc::CMSG_DATA(header) as *const libc::timespec);
                when = realtime_to_monotonic_us(stamp);
                unix_ns = stamp.tv_sec as u64 * 1_000_000_000 + stamp.tv_nsec as u64;
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    Some(Received {
        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        length: length as usize,
        t_us: when,
        unix_ns,
    })
}

/// A CLOCK_REALTIME stamp on the CLOCK_MONOTONIC scale, in microseconds.
/// One packet `receive` read into the buffer.
struct Received {
    /// Sent by this host (true) or received.
    outgoing: bool,
    /// Bytes in the buffer.
    length: usize,
    /// The kernel's timestamp, on CLOCK_MONOTONIC in microseconds.
    t_us: u64,
    /// The same moment on CLOCK_REALTIME, nanoseconds since 1970.
    unix_ns: u64,
}

fn realtime_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn realtime_to_monotonic_us(stamp: libc::timespec) -> u64 {
    let mut real = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut real) };
    let micros = |t: libc::timespec| t.tv_sec as i128 * 1_000_000 + t.tv_nsec as i128 / 1000;
    let age = micros(real) - micros(stamp);
    (monotonic_us() as i128 - age).max(0) as u64
}
