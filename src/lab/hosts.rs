//! The lab's hosts, c1 (client) and c2 (server), and their addresses.
//!
//! They come from `lab/hosts.json`, the one place they are written down: tcplab
//! embeds it at build time and the Vagrantfile reads it (JSON, because Ruby
//! reads it without a gem). The addresses are the article's own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

const HOSTS_JSON: &str = include_str!("../../lab/hosts.json");

/// The two hosts' names: the VMs the Vagrantfile defines, the Host entries
/// an ssh config needs.
pub const MACHINES: [&str; 2] = ["c1", "c2"];

/// A host's place in the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Server,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HostDef {
    pub role: Role,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

/// The address family an experiment runs over (`--family`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    /// `v4` or `v6`, as `--family` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }

    pub fn of(address: IpAddr) -> Family {
        if address.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        }
    }
}

/// Both hosts of the lab.
#[derive(Debug, Clone)]
pub struct LabHosts {
    pub prefix_len: u8,
    pub prefix_len_v6: u8,
    pub c1: HostDef,
    pub c2: HostDef,
}

#[derive(Deserialize)]
struct HostsFile {
    prefix_len: u8,
    prefix_len_v6: u8,
    hosts: Hosts,
}

#[derive(Deserialize)]
struct Hosts {
    c1: HostDef,
    c2: HostDef,
}

impl LabHosts {
    /// c1's and c2's addresses and the prefix length in `family`.
    pub fn addresses(&self, family: Family) -> (IpAddr, IpAddr, u8) {
        match family {
            Family::V4 => (
                IpAddr::V4(self.c1.ipv4),
                IpAddr::V4(self.c2.ipv4),
                self.prefix_len,
            ),
            Family::V6 => (
                IpAddr::V6(self.c1.ipv6),
                IpAddr::V6(self.c2.ipv6),
                self.prefix_len_v6,
            ),
        }
    }

    /// The hosts as `lab/hosts.json` defines them.
    /// The file is part of the source tree and a unit test parses it, so an
    /// error here means a broken build rather than bad user input.
    pub fn builtin() -> Result<LabHosts, serde_json::Error> {
        let file: HostsFile = serde_json::from_str(HOSTS_JSON)?;
        Ok(LabHosts {
            prefix_len: file.prefix_len,
            prefix_len_v6: file.prefix_len_v6,
            c1: file.hosts.c1,
            c2: file.hosts.c2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_article_addresses() {
        let hosts = LabHosts::builtin().unwrap();
        assert_eq!(hosts.c1.ipv4, Ipv4Addr::new(10, 211, 55, 5));
        assert_eq!(hosts.c2.ipv4, Ipv4Addr::new(10, 211, 55, 10));
        assert_eq!(hosts.c1.role, Role::Client);
        assert_eq!(hosts.c2.role, Role::Server);
        assert_eq!(hosts.prefix_len, 24);
        assert_eq!(hosts.c2.ipv6, "fd00::10".parse::<Ipv6Addr>().unwrap());
    }
}
