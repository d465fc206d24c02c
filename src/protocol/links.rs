//! The requests that build and read a host's links: a veth pair and its
//! addresses (netns lab only), and the addresses a host has.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Create a veth pair `name` here and `peer_name` in the network namespace
/// of process `peer_pid` (netns lab only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVeth {
    pub name: String,
    pub peer_name: String,
    pub peer_pid: u32,
}

/// Bring `lo` and `name` up and give `name` this address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureLink {
    pub name: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// The addresses of this host's interfaces (loopback excluded), so the
/// orchestrator can find the subnet c1 and c2 share.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interfaces {}

/// What [`Interfaces`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceList {
    pub addresses: Vec<InterfaceAddress>,
}

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// The wildcard address of `address`'s family: `0.0.0.0` or `::`.
pub fn unspecified_like(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}
