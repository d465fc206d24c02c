//! Which address a case's sockets bind, as an experiment file names it:
//! `"0.0.0.0"`, `"::"`, `"127.0.0.1"`, `"::1"` or `"c2"` (the address c2 has
//! on the experiment's link, whatever the lab gave it).
//!
//! The `bind-conflict` experiment needs this: the kernel decides a bind
//! against an orphaned connection by comparing addresses (a wildcard covers
//! every address; `[::]` covers IPv4 too unless IPV6_V6ONLY), and the
//! connection's own address is c2's, not the wildcard its listener had.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// An address a socket on c2 binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum BindChoice {
    Ipv4Any,
    Ipv6Any,
    Ipv4Loopback,
    Ipv6Loopback,
    /// c2's own address on the link.
    Host,
}

impl BindChoice {
    /// The address to bind, given c2's address on the link.
    pub fn resolve(self, c2: IpAddr) -> IpAddr {
        match self {
            BindChoice::Ipv4Any => Ipv4Addr::UNSPECIFIED.into(),
            BindChoice::Ipv6Any => Ipv6Addr::UNSPECIFIED.into(),
            BindChoice::Ipv4Loopback => Ipv4Addr::LOCALHOST.into(),
            BindChoice::Ipv6Loopback => Ipv6Addr::LOCALHOST.into(),
            BindChoice::Host => c2,
        }
    }

    fn is_loopback(self) -> bool {
        matches!(self, BindChoice::Ipv4Loopback | BindChoice::Ipv6Loopback)
    }
}

impl TryFrom<String> for BindChoice {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "0.0.0.0" => Ok(BindChoice::Ipv4Any),
            "::" => Ok(BindChoice::Ipv6Any),
            "127.0.0.1" => Ok(BindChoice::Ipv4Loopback),
            "::1" => Ok(BindChoice::Ipv6Loopback),
            "c2" => Ok(BindChoice::Host),
            other => Err(format!(
                "{other:?} is not an address a case binds: give \"0.0.0.0\", \"::\", \
                 \"127.0.0.1\", \"::1\" or \"c2\" (c2's address on the link)"
            )),
        }
    }
}

impl fmt::Display for BindChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindChoice::Ipv4Any => "0.0.0.0",
            BindChoice::Ipv6Any => "::",
            BindChoice::Ipv4Loopback => "127.0.0.1",
            BindChoice::Ipv6Loopback => "::1",
            BindChoice::Host => "c2",
        })
    }
}

/// Where the killed server listens: a [`BindChoice`] that c1 can reach, so
/// not a loopback address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ServerBind(pub BindChoice);

impl TryFrom<String> for ServerBind {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let choice = BindChoice::try_from(text)?;
        if choice.is_loopback() {
            return Err(format!(
                "c1 cannot reach a server on {choice}: the killed server binds \
                 \"0.0.0.0\", \"::\" or \"c2\""
            ));
        }
        Ok(ServerBind(choice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_against_c2s_address() {
        let c2: IpAddr = "10.211.55.10".parse().unwrap();
        let resolve = |text: &str| BindChoice::try_from(text.to_string()).unwrap().resolve(c2);
        assert_eq!(resolve("c2"), c2);
        assert_eq!(resolve("::").to_string(), "::");
        assert_eq!(resolve("127.0.0.1").to_string(), "127.0.0.1");
        assert!(BindChoice::try_from("10.0.0.1".to_string()).is_err());
    }

    #[test]
    fn the_killed_server_cannot_listen_on_loopback() {
        let refused = ServerBind::try_from("127.0.0.1".to_string()).unwrap_err();
        assert!(refused.contains("c1 cannot reach"), "{refused}");
        assert!(ServerBind::try_from("::".to_string()).is_ok());
    }
}
