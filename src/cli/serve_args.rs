//! `tcplab serve`'s flags: the server an agent starts on c2, also usable
//! by hand inside a lab.

use std::net::SocketAddr;

/// The flags of `tcplab serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,
    /// SO_REUSEADDR on the listening socket: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub reuseaddr: bool,
    /// SO_REUSEPORT on the listening socket: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub reuseport: bool,
    /// Close connections with RST (SO_LINGER 0) instead of FIN: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub linger_zero: bool,
    /// Read until the client closes, then close: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub close_after_client: bool,
    /// What to write before closing each connection
    #[arg(long, default_value = "Hello\n")]
    pub greeting: String,
    /// An MPTCP socket (IPPROTO_MPTCP) instead of TCP: 0 or 1
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one(), default_value = "0")]
    pub mptcp: bool,
    /// IPV6_V6ONLY on an IPv6 listening socket: 0 or 1 (unset: the kernel's default)
    #[arg(long, action = clap::ArgAction::Set, value_parser = zero_or_one())]
    pub v6only: Option<bool>,
    /// TCP_LINGER2 on accepted connections, in seconds: how long an
    /// orphaned FIN_WAIT2 lives instead of tcp_fin_timeout (-1: reset at once)
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(tcplab::agent::programs::server_program::LINGER2_S))]
    pub linger2: Option<i32>,
    /// Take every option from one JSON line on stdin instead of the flags
    /// (how an agent tells a server it started ahead of time what to serve)
    #[arg(long, conflicts_with_all = ["bind", "reuseaddr", "reuseport", "linger_zero",
        "close_after_client", "greeting", "mptcp", "v6only", "linger2"])]
    pub options_from_stdin: bool,
}

/// `0` or `1`, as the flags of `tcplab serve` take a socket option.
fn zero_or_one() -> impl clap::builder::TypedValueParser<Value = bool> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["0", "1"]).map(|value| value == "1")
}
