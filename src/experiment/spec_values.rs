//! The values an experiment file may hold, each a type that refuses what is
//! out of range when the file is read (so the TOML parser can name the line
//! and key): bounded numbers, port ranges, windows in seconds, expected
//! states and errno names, one-line texts, the server's greeting, waits;
//! and the error a file gets when it holds something else.

use std::fmt;

use serde::Deserialize;

use crate::tcp_state::SocketState;

/// A whole number in `MIN..=MAX`, refused with its line otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .ok()
            .filter(|v| (MIN..=MAX).contains(v))
            .map(Bounded)
            .ok_or_else(|| format!("{value} is out of range: give {MIN} to {MAX}"))
    }
}

/// TCP_LINGER2 in seconds: how long an orphaned FIN_WAIT2 connection of this
/// socket lives, instead of `tcp_fin_timeout`; -1 resets it at once. The
/// kernel caps it at 120 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Linger2(pub i32);

impl TryFrom<i64> for Linger2 {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        i32::try_from(value)
            .ok()
            .filter(|v| (-1..=600).contains(v))
            .map(Linger2)
            .ok_or_else(|| format!("{value} is out of range: give -1 to 600 (seconds)"))
    }
}

/// When the port should be free again, in seconds from the start of the
/// old connection's timer (see [`CaseSpec::rebind_within_s`]).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Vec<f64>")]
pub struct RebindWindow {
    pub from_s: f64,
    pub to_s: f64,
}

impl TryFrom<Vec<f64>> for RebindWindow {
    type Error = String;
    fn try_from(bounds: Vec<f64>) -> Result<Self, Self::Error> {
        match bounds[..] {
            [from_s, to_s] if 0.0 <= from_s && from_s <= to_s && to_s <= 600.0 => {
                Ok(RebindWindow { from_s, to_s })
            }
            _ => Err("give [from, to] in seconds, 0 <= from <= to <= 600".to_string()),
        }
    }
}

impl RebindWindow {
    pub fn contains_ms(&self, ms: u64) -> bool {
        let seconds = ms as f64 / 1000.0;
        (self.from_s..=self.to_s).contains(&seconds)
    }
}

/// `[low, high]` ports, 1 ≤ low ≤ high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<u16>")]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl TryFrom<Vec<u16>> for PortRange {
    type Error = String;
    fn try_from(ports: Vec<u16>) -> Result<Self, Self::Error> {
        match ports.as_slice() {
            [low, high] if (1..=*high).contains(low) => Ok(PortRange {
                low: *low,
                high: *high,
            }),
            _ => Err(format!(
                "{ports:?} is not a port range: give [low, high] with 1 <= low <= high"
            )),
        }
    }
}

/// The state expected after the kill: a TCP state, or no socket at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ExpectedState(pub Option<SocketState>);

impl TryFrom<String> for ExpectedState {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.eq_ignore_ascii_case("none") {
            return Ok(ExpectedState(None));
        }
        text.parse::<SocketState>()
            .map(|state| ExpectedState(Some(state)))
            .map_err(|e| format!("{e}, or NONE"))
    }
}

impl fmt::Display for ExpectedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(state) => write!(f, "{state}"),
            None => f.write_str("no socket"),
        }
    }
}

/// The result a bind probe is expected to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ExpectedBind {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "EADDRINUSE")]
    AddrInUse,
    #[serde(rename = "EADDRNOTAVAIL")]
    AddrNotAvail,
    #[serde(rename = "EACCES")]
    Access,
    #[serde(rename = "EINVAL")]
    Invalid,
    /// The kernel does not know a socket option the case sets.
    #[serde(rename = "ENOPROTOOPT")]
    NoProtocolOption,
}

impl ExpectedBind {
    /// The spelling used in files, reports and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            ExpectedBind::Ok => "ok",
            ExpectedBind::AddrInUse => "EADDRINUSE",
            ExpectedBind::AddrNotAvail => "EADDRNOTAVAIL",
            ExpectedBind::Access => "EACCES",
            ExpectedBind::Invalid => "EINVAL",
            ExpectedBind::NoProtocolOption => "ENOPROTOOPT",
        }
    }
}

/// Text on one line, at most 300 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OneLine(String);

impl TryFrom<String> for OneLine {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.chars().count() > 300 {
            return Err("must be at most 300 characters".to_string());
        }
        if text.chars().any(char::is_control) {
            return Err("must be one line without control characters".to_string());
        }
        Ok(OneLine(text))
    }
}

impl fmt::Display for OneLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the server writes before it closes: at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Greeting(String);

impl Greeting {
    /// `tcplab serve`'s greeting unless a file gives one.
    pub fn hello() -> Greeting {
        Greeting("Hello\n".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Greeting {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() || text.len() > 1024 {
            return Err("greeting must be 1 to 1024 bytes".to_string());
        }
        if text.contains('\0') {
            return Err("greeting must not contain NUL".to_string());
        }
        Ok(Greeting(text))
    }
}

/// A wait in milliseconds, 1 ms to 10 minutes; 2 s by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct WaitMs(u64);

impl WaitMs {
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl WaitMs {
    /// 2 s: what a wait is unless a file says.
    pub const DEFAULT: WaitMs = WaitMs(2000);
}

impl Default for WaitMs {
    fn default() -> Self {
        WaitMs::DEFAULT
    }
}

impl TryFrom<u64> for WaitMs {
    type Error = String;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        if ms == 0 || ms > 600_000 {
            return Err(format!("{ms} ms is out of range: give 1 to 600000"));
        }
        Ok(WaitMs(ms))
    }
}

/// A file that is not a valid experiment: where, and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}
