//! Which address a case's sockets bind, as an experiment file names it:
//! `"0.0.0.0"`, `"::"`, `"127.0.0.1"`, `"::1"`, the IPv4-mapped
//! `"::ffff:0.0.0.0"` and `"::ffff:127.0.0.1"`, or `"c2"` (the address c2 has
//! on the experiment's link, whatever the lab gave it).
//!
//! The kernel decides a bind by comparing addresses (a wildcard covers every
//! address of its family; `[::]` covers IPv4 too unless IPV6_V6ONLY; an
//! IPv4-mapped address is IPv4 in an IPv6 socket), so `bind-conflict` and
//! `bind-wildcard` name them. Only these: a case never binds, or makes
//! traffic to, an address that is not c2's own.

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
    /// `::ffff:0.0.0.0`: IPv4's wildcard in an IPv6 socket.
    MappedAny,
    /// `::ffff:127.0.0.1`.
    MappedLoopback,
    /// c2's own address on the link.
    Host,
    /// Another address of IPv4's loopback network, `127.1.1.1`: every one
    /// of 127.0.0.0/8 is on `lo`, so sockets may come from many addresses.
    OtherLoopback(Ipv4Addr),
}

/// Every name a file may give, in the order errors list them.
const NAMES: [(&str, BindChoice); 7] = [
    ("0.0.0.0", BindChoice::Ipv4Any),
    ("::", BindChoice::Ipv6Any),
    ("127.0.0.1", BindChoice::Ipv4Loopback),
    ("::1", BindChoice::Ipv6Loopback),
    ("::ffff:0.0.0.0", BindChoice::MappedAny),
    ("::ffff:127.0.0.1", BindChoice::MappedLoopback),
    ("c2", BindChoice::Host),
];

impl BindChoice {
    /// The address to bind, given c2's address on the link.
    pub fn resolve(self, c2: IpAddr) -> IpAddr {
        match self {
            BindChoice::Ipv4Any => Ipv4Addr::UNSPECIFIED.into(),
            BindChoice::Ipv6Any => Ipv6Addr::UNSPECIFIED.into(),
            BindChoice::Ipv4Loopback => Ipv4Addr::LOCALHOST.into(),
            BindChoice::Ipv6Loopback => Ipv6Addr::LOCALHOST.into(),
            BindChoice::MappedAny => Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().into(),
            BindChoice::MappedLoopback => Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
            BindChoice::Host => c2,
            BindChoice::OtherLoopback(address) => address.into(),
        }
    }

    /// A loopback address: c1 cannot reach a server there.
    pub fn is_loopback(self) -> bool {
        matches!(
            self,
            BindChoice::Ipv4Loopback
                | BindChoice::Ipv6Loopback
                | BindChoice::MappedLoopback
                | BindChoice::OtherLoopback(_)
        )
    }

    /// An IPv4 address, plain (not IPv4-mapped in an IPv6 socket).
    pub fn is_plain_ipv4(self) -> bool {
        matches!(
            self,
            BindChoice::Ipv4Any | BindChoice::Ipv4Loopback | BindChoice::OtherLoopback(_)
        )
    }
}

impl TryFrom<String> for BindChoice {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if let Some((_, choice)) = NAMES.iter().find(|(name, _)| *name == text) {
            return Ok(*choice);
        }
        if let Ok(address) = text.parse::<Ipv4Addr>()
            && address.is_loopback()
        {
            return Ok(BindChoice::OtherLoopback(address));
        }
        let names: Vec<String> = NAMES.iter().map(|(name, _)| format!("{name:?}")).collect();
        Err(format!(
            "{text:?} is not an address a case binds: give {} (c2's address on the link) \
             or another address of 127.0.0.0/8",
            names.join(", ")
        ))
    }
}

impl fmt::Display for BindChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let BindChoice::OtherLoopback(address) = self {
            return write!(f, "{address}");
        }
        let name = NAMES
            .iter()
            .find(|(_, choice)| choice == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
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
        assert_eq!(resolve("::ffff:127.0.0.1").to_string(), "::ffff:127.0.0.1");
        let refused = BindChoice::try_from("10.0.0.1".to_string()).unwrap_err();
        assert!(refused.contains("\"::ffff:0.0.0.0\""), "{refused}");
        assert_eq!(resolve("127.1.1.1").to_string(), "127.1.1.1");
        assert_eq!(
            BindChoice::try_from("127.3.3.3".to_string())
                .unwrap()
                .to_string(),
            "127.3.3.3"
        );
    }

    #[test]
    fn every_name_prints_as_written() {
        for (name, choice) in NAMES {
            assert_eq!(choice.to_string(), name);
        }
    }
}
