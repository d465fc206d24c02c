//! Network links of a host in the netns lab, set up over rtnetlink.
//!
//! The netns lab joins c1 and c2 with a veth pair. The agent on c1 creates the
//! pair inside its own namespace and has the kernel create the peer directly in
//! c2's namespace (IFLA_NET_NS_PID on the peer), so the host's own namespace is
//! never touched, not even for a moment, and both ends vanish with the agents.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::protocol::AgentErrorKind;
use super::session::AgentError;

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
        self.handle
            .address()
            .add(index, address, prefix_len)
            .execute()
            .await
            .map_err(|e| netlink_error(format!("adding {address}/{prefix_len} to {name}"), e))?;
        self.set_up(index, name).await
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

fn failed(message: String) -> AgentError {
    AgentError::new(AgentErrorKind::Failed, message)
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
