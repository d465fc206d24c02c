//! The capture requests, and what a capture records: the packets of the
//! experiment's port on one host's interface, and its TCP states over time.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use super::bounded_list::MAX_RECORDS;
use crate::tcp_state::SocketState;

/// Start capturing the packets of `port` on the interface holding
/// `address`, and sampling the connection's TCP states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartCapture {
    pub address: IpAddr,
    pub port: u16,
}

/// Stop the capture. Answered with [`Captured`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopCapture {}

/// What a [`StopCapture`] hands back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    pub record: CaptureRecord,
}

/// The state of the connection(s) on the port changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSample {
    pub t_us: u64,
    /// The states of the non-listening sockets on the port, `[]` when none.
    pub states: Vec<SocketState>,
}

/// What a capture recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRecord {
    #[serde(deserialize_with = "super::bounded_list::at_most_max_records")]
    pub packets: Vec<CapturedPacket>,
    #[serde(deserialize_with = "super::bounded_list::at_most_max_records")]
    pub states: Vec<StateSample>,
    /// What went wrong while recording: a failed sock_diag dump or a lost
    /// packet task. Empty when the record is whole; a report must not read
    /// a gap as "no packets" or "no sockets".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A TCP segment seen on the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacket {
    /// CLOCK_MONOTONIC, microseconds.
    pub t_us: u64,
    /// Sent by this host (true) or received (false).
    pub outgoing: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// `SYN`, `SYN|ACK`, `FIN|ACK`, … in the order tcpdump prints them.
    pub flags: String,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
    /// The packet itself and its kernel timestamp, for `--pcap`: they travel
    /// from the agent to the orchestrator, which writes them to pcapng files
    /// and leaves them out of `--json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawPacket>,
}

/// The most bytes of a packet kept for `--pcap`: every header and more than
/// any greeting an experiment sends.
pub const SNAPLEN: usize = 2048;

/// A packet as the AF_PACKET socket handed it over: the IP packet (no
/// link-layer header: the socket is SOCK_DGRAM), up to [`SNAPLEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawPacket {
    /// When the kernel saw it: CLOCK_REALTIME, nanoseconds since 1970.
    pub unix_ns: u64,
    /// Its length on the wire.
    pub length: u32,
    #[serde(with = "hex")]
    pub bytes: Vec<u8>,
}
