//! The lab's hosts, c1 (client) and c2 (server), and their addresses.
//!
//! They come from `lab/hosts.json`, the one place they are written down: tcplab
//! embeds it at build time and the Vagrantfile reads it (JSON, because Ruby
//! reads it without a gem). The addresses are the article's own.

use std::net::Ipv4Addr;

use serde::Deserialize;

const HOSTS_JSON: &str = include_str!("../../lab/hosts.json");

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
}

/// Both hosts of the lab.
#[derive(Debug, Clone)]
pub struct LabHosts {
    pub prefix_len: u8,
    pub c1: HostDef,
    pub c2: HostDef,
}

#[derive(Deserialize)]
struct HostsFile {
    prefix_len: u8,
    hosts: Hosts,
}

#[derive(Deserialize)]
struct Hosts {
    c1: HostDef,
    c2: HostDef,
}

impl LabHosts {
    /// The hosts as `lab/hosts.json` defines them.
    /// The file is part of the source tree and a unit test parses it, so an
    /// error here means a broken build rather than bad user input.
    pub fn builtin() -> Result<LabHosts, serde_json::Error> {
        let file: HostsFile = serde_json::from_str(HOSTS_JSON)?;
        Ok(LabHosts {
            prefix_len: file.prefix_len,
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
    }
}
