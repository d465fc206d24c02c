//! One TCP socket as the kernel reports it over sock_diag, and how it is
//! written for people (`netstat`'s columns, `ss`'s timer notation).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::tcp_state::SocketState;

/// Which timer the kernel has armed on a socket (`idiag_timer`), named as `ss` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerKind {
    /// Retransmission timer (`ss`: "on").
    On,
    Keepalive,
    /// The lifetime of a timewait minisocket (TIME_WAIT or orphaned FIN_WAIT2).
    Timewait,
    /// Zero-window probe timer.
    Persist,
}

/// A timer armed on a socket and the time left on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketTimer {
    pub kind: TimerKind,
    pub expires_ms: u32,
    pub retransmits: u8,
}

/// One TCP socket as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketEntry {
    pub state: SocketState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Time left on the armed timer in milliseconds, `null` when none is armed.
    pub timer_ms: Option<u32>,
    pub timer: Option<SocketTimer>,
    pub recv_q: u32,
    pub send_q: u32,
}

impl SocketEntry {
    /// A line in the style of `netstat -tano`, with `ss`'s timer notation:
    /// `tcp  0  0 10.211.55.10:8080  10.211.55.5:39664  FIN_WAIT2  timer:(timewait,59sec,0)`.
    pub fn netstat_line(&self) -> String {
        let proto = if self.local.is_ipv6() { "tcp6" } else { "tcp" };
        let mut line = format!(
            "{proto:<5} {:>6} {:>6} {:<23} {:<23} {:<11}",
            self.recv_q,
            self.send_q,
            shown(self.local),
            shown(self.remote),
            self.state.name()
        );
        if let Some(timer) = self.timer {
            line.push(' ');
            line.push_str(&timer.ss_notation());
        }
        line.trim_end().to_string()
    }
}

impl SocketEntry {
    /// The heart of [`SocketEntry::netstat_line`], for prose:
    /// `10.211.55.10:8080 10.211.55.5:39664 FIN_WAIT2 timer:(timewait,59sec,0)`.
    pub fn compact_line(&self) -> String {
        let mut line = format!(
            "{} {} {}",
            shown(self.local),
            shown(self.remote),
            self.state
        );
        if let Some(timer) = self.timer {
            line.push(' ');
            line.push_str(&timer.ss_notation());
        }
        line
    }
}

impl SocketTimer {
    /// `timer:(timewait,59sec,0)`, as `ss -o` prints it.
    pub fn ss_notation(&self) -> String {
        let kind = match self.kind {
            TimerKind::On => "on",
            TimerKind::Keepalive => "keepalive",
            TimerKind::Timewait => "timewait",
            TimerKind::Persist => "persist",
        };
        let left = if self.expires_ms >= 1000 {
            format!("{}sec", self.expires_ms / 1000)
        } else {
            format!("{}ms", self.expires_ms)
        };
        format!("timer:({kind},{left},{})", self.retransmits)
    }
}

/// An address as people read it: an IPv4 peer of a dual-stack socket
/// without its `::ffff:` prefix.
pub(crate) fn shown(address: SocketAddr) -> String {
    SocketAddr::new(address.ip().to_canonical(), address.port()).to_string()
}
