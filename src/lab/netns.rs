//! The default lab: c1 and c2 as two anonymous network namespaces on this
//! machine, joined by a veth pair.
//!
//! Each host is an agent started with `--unshare-net`; the namespace is held by
//! that process (and its server child) and by nothing else, so it disappears
//! when they exit, even after `kill -9` of everything. The host's own
//! namespace, links and firewall are never touched. Every case gets a fresh
//! pair, so no case sees another's sockets and cases can run at once.

use std::net::IpAddr;

use super::addressing::ExperimentLink;
use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use super::{LabHostPair, LabInfo};
use crate::interrupt::Interrupt;

/// The interface name of the link between c1 and c2, in both namespaces.
pub const LINK_NAME: &str = "eth0";

/// Starts c1 and c2 in fresh namespaces and links them.
pub async fn start(
    link: ExperimentLink,
    info: LabInfo,
    interrupt: &Interrupt,
) -> Result<LabHostPair, LabError> {
    let loss = LossWatch::default();
    let c2 = AgentConnection::spawn_local("c2", true, interrupt, &loss)?;
    let c1 = match AgentConnection::spawn_local("c1", true, interrupt, &loss) {
        Ok(c1) => c1,
        Err(error) => {
            let _ = c2.shutdown().await;
            return Err(error);
        }
    };
    let c1_addr = link.c1;
    let mut pair = LabHostPair { c1, c2, link, info };
    match connect_hosts(&mut pair, c1_addr).await {
        Ok(()) => Ok(pair),
        Err(error) => {
            let _ = pair.shutdown().await;
            Err(error)
        }
    }
}

async fn connect_hosts(pair: &mut LabHostPair, c1_addr: Option<IpAddr>) -> Result<(), LabError> {
    let c1_addr =
        c1_addr.ok_or_else(|| LabError::Setup("the netns lab needs c1's address".into()))?;
    let (c1, c2) = tokio::join!(pair.c1.hello(), pair.c2.hello());
    c1?;
    c2?;
    let peer_pid = pair.c2.pid();
    pair.c1.create_veth(LINK_NAME, LINK_NAME, peer_pid).await?;
    let prefix_len = pair.link.prefix_len;
    let c2_addr = pair.link.c2;
    let (c1, c2) = tokio::join!(
        pair.c1.configure_link(LINK_NAME, c1_addr, prefix_len),
        pair.c2.configure_link(LINK_NAME, c2_addr, prefix_len),
    );
    c1?;
    c2
}
