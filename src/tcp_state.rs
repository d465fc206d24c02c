//! TCP socket states with the kernel's numbering and netstat's names.
//!
//! One type serves the whole tool: sock_diag replies carry the kernel's number,
//! experiment files and `--state` flags carry the name, and reports print the name.
//! Names are the kernel's with underscores (`FIN_WAIT2`), as `netstat` prints them,
//! because that is what the article shows and what `--json` promises.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A TCP state as `include/net/tcp_states.h` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SocketState {
    Established,
    SynSent,
    SynRecv,
    #[serde(rename = "FIN_WAIT1")]
    FinWait1,
    #[serde(rename = "FIN_WAIT2")]
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
}

impl SocketState {
    /// Every state, in kernel order.
    pub const ALL: [SocketState; 11] = [
        SocketState::Established,
        SocketState::SynSent,
        SocketState::SynRecv,
        SocketState::FinWait1,
        SocketState::FinWait2,
        SocketState::TimeWait,
        SocketState::Close,
        SocketState::CloseWait,
        SocketState::LastAck,
        SocketState::Listen,
        SocketState::Closing,
    ];

    /// The kernel's number for this state (TCP_ESTABLISHED = 1, …).
    pub fn kernel_number(self) -> u8 {
        match self {
            SocketState::Established => 1,
            SocketState::SynSent => 2,
            SocketState::SynRecv => 3,
            SocketState::FinWait1 => 4,
            SocketState::FinWait2 => 5,
            SocketState::TimeWait => 6,
            SocketState::Close => 7,
            SocketState::CloseWait => 8,
            SocketState::LastAck => 9,
            SocketState::Listen => 10,
            SocketState::Closing => 11,
        }
    }

    /// The state for a kernel number. TCP_NEW_SYN_RECV (12) is a request socket
    /// that `netstat` shows as SYN_RECV, so it maps there.
    pub fn from_kernel(number: u8) -> Option<SocketState> {
        if number == 12 {
            return Some(SocketState::SynRecv);
        }
        SocketState::ALL
            .into_iter()
            .find(|state| state.kernel_number() == number)
    }

    /// The name netstat prints: `FIN_WAIT2`, `TIME_WAIT`, …
    pub fn name(self) -> &'static str {
        match self {
            SocketState::Established => "ESTABLISHED",
            SocketState::SynSent => "SYN_SENT",
            SocketState::SynRecv => "SYN_RECV",
            SocketState::FinWait1 => "FIN_WAIT1",
            SocketState::FinWait2 => "FIN_WAIT2",
            SocketState::TimeWait => "TIME_WAIT",
            SocketState::Close => "CLOSE",
            SocketState::CloseWait => "CLOSE_WAIT",
            SocketState::LastAck => "LAST_ACK",
            SocketState::Listen => "LISTEN",
            SocketState::Closing => "CLOSING",
        }
    }
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse error naming the accepted spellings, for `--state` and friends.
#[derive(Debug, thiserror::Error)]
#[error("unknown TCP state '{given}'; expected one of: {}", names())]
pub struct UnknownState {
    given: String,
}

fn names() -> String {
    SocketState::ALL.map(SocketState::name).join(", ")
}

impl FromStr for SocketState {
    type Err = UnknownState;

    /// Accepts netstat's names and ss's spellings (`fin-wait-2`), any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let canonical: String = text
            .trim()
            .to_ascii_uppercase()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect();
        SocketState::ALL
            .into_iter()
            .find(|state| state.name().replace('_', "") == canonical)
            .ok_or_else(|| UnknownState {
                given: text.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_round_trip() {
        for state in SocketState::ALL {
            assert_eq!(SocketState::from_kernel(state.kernel_number()), Some(state));
        }
        assert_eq!(SocketState::from_kernel(12), Some(SocketState::SynRecv));
        assert_eq!(SocketState::from_kernel(0), None);
    }

    #[test]
    fn parses_netstat_and_ss_spellings() {
        assert_eq!(
            "FIN_WAIT2".parse::<SocketState>().unwrap(),
            SocketState::FinWait2
        );
        assert_eq!(
            "fin-wait-2".parse::<SocketState>().unwrap(),
            SocketState::FinWait2
        );
        assert_eq!(
            "time-wait".parse::<SocketState>().unwrap(),
            SocketState::TimeWait
        );
        let err = "FIN_WAIT3".parse::<SocketState>().unwrap_err().to_string();
        assert!(
            err.contains("FIN_WAIT3") && err.contains("FIN_WAIT2"),
            "{err}"
        );
    }

    #[test]
    fn serde_uses_kernel_names() {
        let json = serde_json::to_string(&SocketState::FinWait1).unwrap();
        assert_eq!(json, "\"FIN_WAIT1\"");
        let back: SocketState = serde_json::from_str("\"CLOSE_WAIT\"").unwrap();
        assert_eq!(back, SocketState::CloseWait);
    }
}
