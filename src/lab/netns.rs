//! The default lab: c1 and c2 as two anonymous network namespaces on this
//! machine, joined by a veth pair.
//!
//! Each host is an agent started with `--unshare-net`; the namespace is held by
//! that process (and its server child) and by nothing else, so it disappears
//! when they exit, even after `kill -9` of everything. The host's own
//! namespace, links and firewall are never touched. Every case gets a fresh
//! pair, so no case sees another's sockets and cases can run at once.

use crate::protocol::{ConfigureLink, CreateVeth};
use std::net::IpAddr;

use super::addressing::ExperimentLink;
use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use super::host_pair::{CaseIsolation, LabHostPair, LabInfo, NETNS_FRESH};
use super::hosts::{Family, LabHosts};
use super::seam::LabKind;
use super::userns::Privilege;
use crate::interrupt::Interrupt;

/// The interface name of the link between c1 and c2, in both namespaces.
pub const LINK_NAME: &str = "eth0";

/// The netns lab: where its hosts' addresses come from, and whether it
/// runs as root or in a user namespace of its own.
pub struct NetnsLab {
    pub(super) hosts: LabHosts,
    pub(super) privilege: Privilege,
    pub(super) why: String,
    pub(super) family: Family,
}

impl NetnsLab {
    /// The built-in addresses of c1 and c2 in the lab's family.
    fn link(&self) -> ExperimentLink {
        let (c1, c2, prefix_len) = self.hosts.addresses(self.family);
        ExperimentLink {
            c1: Some(c1),
            c2,
            prefix_len,
        }
    }
}

impl LabKind for NetnsLab {
    fn describe(&self) -> LabInfo {
        LabInfo {
            rootless: self.privilege == Privilege::Rootless,
            // Namespaces share this machine's kernel.
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|r| r.trim().to_string()),
            ..LabInfo::of_link("netns", self.why.clone(), &self.link(), NETNS_FRESH.into())
        }
    }

    fn isolation(&self) -> CaseIsolation {
        CaseIsolation::FreshHosts
    }

    async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        start(self.link(), self.describe(), interrupt).await
    }

    async fn clean(&self, _: &Interrupt) -> Result<Vec<String>, LabError> {
        Ok(vec![
            "netns: nothing to clean; its namespaces, links and rules vanish with its processes"
                .into(),
        ])
    }
}

/// Starts c1 and c2 in fresh namespaces and links them.
async fn start(
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
    let (c1, c2) = tokio::join!(pair.c1.hello_started(), pair.c2.hello_started());
    c1?;
    c2?;
    let peer_pid = pair.c2.pid();
    let veth = CreateVeth {
        name: LINK_NAME.to_string(),
        peer_name: LINK_NAME.to_string(),
        peer_pid,
    };
    pair.c1.call(veth).await?;
    let prefix_len = pair.link.prefix_len;
    let c2_addr = pair.link.c2;
    let link = |address| ConfigureLink {
        name: LINK_NAME.to_string(),
        address,
        prefix_len,
    };
    let (c1, c2) = tokio::join!(pair.c1.call(link(c1_addr)), pair.c2.call(link(c2_addr)));
    c1.and(c2).map(|_| ())
}
