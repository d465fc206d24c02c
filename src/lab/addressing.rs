//! Which addresses the experiment uses on real hosts.
//!
//! Real hosts have several interfaces, and more than one subnet may join
//! them: Vagrant's management network (the one ssh comes in on), VirtualBox's
//! NAT (where every VM has the same 10.0.2.15), and the private network the
//! experiment is meant for. The experiment must cross the private one: a FIN
//! dropped on the management network would also cut the ssh session's
//! neighbours, and a NAT "subnet" joins nothing. So: a subnet both hosts have,
//! with different addresses, that does not hold the address ssh connected to.

use std::net::IpAddr;

use super::hosts::Family;
use crate::protocol::InterfaceAddress;

/// The addresses of the link the experiment crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExperimentLink {
    /// c1's address on the link, when known (not with `--server-addr`
    /// pointing at a routed address).
    pub c1: Option<IpAddr>,
    pub c2: IpAddr,
    pub prefix_len: u8,
}

/// Picks a subnet of `family` that c1 and c2 share and ssh does not use;
/// among several, the one holding `preferred` (c2's address in
/// `lab/hosts.json`), else the first.
pub fn choose_link(
    c1: &[InterfaceAddress],
    c2: &[InterfaceAddress],
    ssh_targets: &[IpAddr],
    preferred: IpAddr,
    family: Family,
) -> Option<ExperimentLink> {
    let mut candidates = Vec::new();
    for a in c1 {
        for b in c2 {
            let shared = Family::of(b.address) == family
                && a.prefix_len == b.prefix_len
                && same_network(a.address, b.address, a.prefix_len)
                && a.address != b.address
                && !is_link_local(a.address)
                && !ssh_targets
                    .iter()
                    .any(|target| same_network(*target, b.address, b.prefix_len));
            if shared {
                candidates.push(ExperimentLink {
                    c1: Some(a.address),
                    c2: b.address,
                    prefix_len: b.prefix_len,
                });
            }
        }
    }
    candidates
        .iter()
        .find(|link| link.c2 == preferred)
        .or_else(|| candidates.first())
        .copied()
}

/// The link when the user names c2's address (`--server-addr`): c1's
/// address is the one in the same subnet, if c1 has one.
pub fn link_to(server: IpAddr, c1: &[InterfaceAddress]) -> ExperimentLink {
    let own = c1
        .iter()
        .find(|a| same_network(a.address, server, a.prefix_len));
    ExperimentLink {
        c1: own.map(|a| a.address),
        c2: server,
        prefix_len: own.map_or(0, |a| a.prefix_len),
    }
}

fn same_network(a: IpAddr, b: IpAddr, prefix_len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn is_link_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(interface: &str, text: &str) -> InterfaceAddress {
        let (ip, prefix) = text.split_once('/').unwrap();
        InterfaceAddress {
            interface: interface.to_string(),
            address: ip.parse().unwrap(),
            prefix_len: prefix.parse().unwrap(),
        }
    }

    #[test]
    fn vagrant_libvirt_skips_the_management_network() {
        let c1 = [
            addr("eth0", "192.168.121.11/24"),
            addr("eth1", "10.211.55.5/24"),
        ];
        let c2 = [
            addr("eth0", "192.168.121.12/24"),
            addr("eth1", "10.211.55.10/24"),
        ];
        let ssh = [
            "192.168.121.11".parse().unwrap(),
            "192.168.121.12".parse().unwrap(),
        ];
        let link =
            choose_link(&c1, &c2, &ssh, "10.211.55.10".parse().unwrap(), Family::V4).unwrap();
        assert_eq!(link.c1, Some("10.211.55.5".parse().unwrap()));
        assert_eq!(link.c2, "10.211.55.10".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn virtualbox_nat_with_equal_addresses_joins_nothing() {
        let c1 = [addr("eth0", "10.0.2.15/24"), addr("eth1", "172.28.0.5/24")];
        let c2 = [addr("eth0", "10.0.2.15/24"), addr("eth1", "172.28.0.10/24")];
        let ssh = ["127.0.0.1".parse().unwrap()];
        let link =
            choose_link(&c1, &c2, &ssh, "10.211.55.10".parse().unwrap(), Family::V4).unwrap();
        assert_eq!(link.c2, "172.28.0.10".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn no_shared_subnet_but_the_ssh_one() {
        let c1 = [addr("eth0", "192.168.121.11/24")];
        let c2 = [addr("eth0", "192.168.121.12/24")];
        let ssh = ["192.168.121.12".parse().unwrap()];
        assert_eq!(
            choose_link(&c1, &c2, &ssh, "10.211.55.10".parse().unwrap(), Family::V4),
            None
        );
    }

    #[test]
    fn ipv6_picks_the_shared_ipv6_subnet() {
        let c1 = [addr("eth1", "10.211.55.5/24"), addr("eth1", "fd00::5/64")];
        let c2 = [addr("eth1", "10.211.55.10/24"), addr("eth1", "fd00::10/64")];
        let link = choose_link(&c1, &c2, &[], "fd00::10".parse().unwrap(), Family::V6).unwrap();
        assert_eq!(link.c1, Some("fd00::5".parse().unwrap()));
        assert_eq!(link.prefix_len, 64);
    }

    #[test]
    fn server_addr_finds_c1_on_the_same_subnet() {
        let c1 = [addr("eth1", "10.9.0.5/16")];
        let link = link_to("10.9.3.3".parse().unwrap(), &c1);
        assert_eq!(link.c1, Some("10.9.0.5".parse().unwrap()));
        assert_eq!(link_to("172.16.0.1".parse().unwrap(), &c1).c1, None);
    }
}
