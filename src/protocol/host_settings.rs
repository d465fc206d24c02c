//! The requests that change a host for one session: a firewall rule and a
//! TCP sysctl, both undone when the session ends.

use serde::{Deserialize, Serialize};

use super::FirewallRule;

/// Add a firewall rule; it is removed again when the session ends.
/// Answered with [`FirewallRuleAdded`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFirewallRule {
    pub rule: FirewallRule,
    /// Use ip6tables: the experiment runs over IPv6.
    #[serde(default)]
    pub ipv6: bool,
}

/// The rule is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRuleAdded {
    /// The rule as the article writes it (`iptables --append OUTPUT …`).
    pub display: String,
}

/// Set a TCP setting of this host (its network namespace), restored when
/// the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSysctl {
    pub setting: Sysctl,
    pub value: u32,
}

/// A setting an experiment may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sysctl {
    /// `net.ipv4.tcp_fin_timeout`: how long an orphaned FIN_WAIT2 lives (s).
    TcpFinTimeout,
    /// `net.ipv4.tcp_tw_reuse`: whether connect() may reuse a TIME_WAIT port.
    TcpTwReuse,
    /// `net.ipv4.ip_local_port_range`, pinned to the one port given: the
    /// kernel then has no other ephemeral port to pick.
    IpLocalPortRange,
    /// `net.ipv4.tcp_rfc1337`: whether an RST may end a TIME_WAIT early
    /// (0, the default: it may; 1: it is ignored, as RFC 1337 advises).
    TcpRfc1337,
}

impl Sysctl {
    pub fn name(self) -> &'static str {
        match self {
            Sysctl::TcpFinTimeout => "net.ipv4.tcp_fin_timeout",
            Sysctl::TcpTwReuse => "net.ipv4.tcp_tw_reuse",
            Sysctl::IpLocalPortRange => "net.ipv4.ip_local_port_range",
            Sysctl::TcpRfc1337 => "net.ipv4.tcp_rfc1337",
        }
    }

    /// The values the kernel accepts and an experiment may ask for.
    pub fn allowed(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Sysctl::TcpFinTimeout => 1..=600,
            Sysctl::TcpTwReuse => 0..=2,
            Sysctl::IpLocalPortRange => 1024..=65535,
            Sysctl::TcpRfc1337 => 0..=1,
        }
    }

    /// The text a value is written as: the port twice for a pinned range.
    pub fn text_for(self, value: u32) -> String {
        match self {
            Sysctl::IpLocalPortRange => format!("{value} {value}"),
            _ => value.to_string(),
        }
    }
}
