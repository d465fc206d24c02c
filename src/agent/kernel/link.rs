//! Network links of a host in the netns lab, set up over rtnetlink.
//!
//! The netns lab joins c1 and c2 with a veth pair. The agent on c1 creates the
//! pair inside its own namespace and has the kernel create the peer directly in
//! c2's namespace (IFLA_NET_NS_PID on the peer), so the host's own namespace is
//! never touched, not even for a moment, and both ends vanish with the agents.
//! On real hosts the same handle lists the interfaces' addresses, from which
//! the orchestrator picks the subnet that c1 and c2 share.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::agent::error::{AgentError, failed};
use crate::protocol::{AgentErrorKind, InterfaceAddress};

/// A rtnetlink handle bound to this agent's network namespace.
pub struct LinkConfigurator {
    handle: Handle,
}

impl LinkConfigurator {
    /// Opens the netlink connection and drives it on the current runtime.
    pub fn open() -> Result<LinkConfigurator, AgentError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| failed(format!("cannot open a rtnetlink socket: {e}")))?;
        tokio::spawn(connection);
        Ok(LinkConfigurator { handle })
    }

    /// Creates veth `name` here with its peer `peer_name` in the namespace of `peer_pid`.
    pub async fn create_veth(
        &self,
        name: &str,
        peer_name: &str,
        peer_pid: u32,
    ) -> Result<(), AgentError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .setns_by_pid(peer_pid)
            .build();
        let message = LinkVeth::new(name, peer_name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| {
                netlink_error(
                    format!("creating veth {name} ⇄ {peer_name} (pid {peer_pid})"),
                    e,
                )
            })
    }

    /// Brings `lo` and `name` up and adds `address/prefix_len` to `name`.
    pub async fn configure(
        &self,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), AgentError> {
        let loopback = self.index_of("lo").await?;
        self.set_up(loopback, "lo").await?;
        let index = self.index_of(name).await?;
        if address.is_ipv6() {
            skip_duplicate_address_detection(name)?;
        }
        self.set_up(index, name).await?;
        let mut request = self.handle.address().add(index, address, prefix_len);
        if address.is_ipv6() {
            // No duplicate address detection: the link has two ends we made
            // ourselves, and a tentative address could not be bound for ~1 s.
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(|e| netlink_error(format!("adding {address}/{prefix_len} to {name}"), e))
    }

    /// Every address of every interface but loopback.
    pub async fn addresses(&self) -> Result<Vec<InterfaceAddress>, AgentError> {
        let mut names = std::collections::HashMap::new();
        let mut links = self.handle.link().get().execute();
        while let Some(link) = links
            .try_next()
            .await
            .map_err(|e| netlink_error("listing links".to_string(), e))?
        {
            let name = link
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                });
            if let Some(name) = name {
                names.insert(link.header.index, name);
            }
        }
        let mut found = Vec::new();
        let mut addresses = self.handle.address().get().execute();
        while let Some(message) = addresses
            .try_next()
            .await
            .map_err(|e| netlink_error("listing addresses".to_string(), e))?
        {
            let address = message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Address(address) => Some(*address),
                    _ => None,
                });
            let (Some(address), Some(interface)) = (address, names.get(&message.header.index))
            else {
                continue;
            };
            if address.is_loopback() {
                continue;
            }
            found.push(InterfaceAddress {
                interface: interface.clone(),
                address,
                prefix_len: message.header.prefix_len,
            });
        }
        Ok(found)
    }

    async fn set_up(&self, index: u32, name: &str) -> Result<(), AgentError> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| netlink_error(format!("setting {name} up"), e))
    }

    async fn index_of(&self, name: &str) -> Result<u32, AgentError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(failed(format!("no link named {name}"))),
            Err(e) => Err(netlink_error(format!("looking up link {name}"), e)),
        }
    }
}

/// Turns off IPv6 duplicate address detection on `name` in this namespace
/// (the netns lab's own link). While DAD runs, the interface's link-local
/// address is tentative and the first neighbour solicitation can fail, which
/// costs the first SYN a one-second retransmission.
fn skip_duplicate_address_detection(name: &str) -> Result<(), AgentError> {
    for scope in ["all", "default", name] {
        let path = format!("/proc/sys/net/ipv6/conf/{scope}/accept_dad");
        std::fs::write(&path, "0").map_err(|e| failed(format!("writing 0 to {path}: {e}")))?;
    }
    Ok(())
}

/// EPERM from rtnetlink means we lack CAP_NET_ADMIN here: a privilege problem.
fn netlink_error(what: String, error: rtnetlink::Error) -> AgentError {
    let text = error.to_string();
    let kind = if text.contains("Operation not permitted") || text.contains("EPERM") {
        AgentErrorKind::Privilege
    } else {
        AgentErrorKind::Failed
    };
    AgentError::new(kind, format!("{what}: {text}"))
}
