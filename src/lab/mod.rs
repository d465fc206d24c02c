//! Labs bring the two hosts up and hand back an agent on each.
//!
//! A lab answers one question: "start c1 and c2 and give me a connection to
//! each one's agent". Everything an experiment does goes through those
//! connections ([`agent_connection`]), so experiments never know which lab runs
//! them. Today there is the namespace lab ([`netns`]); Vagrant and ssh labs
//! plug in here the same way.

pub mod agent_connection;
pub mod error;
pub mod hosts;
pub mod netns;
pub mod userns;

use std::net::IpAddr;

use serde::Serialize;

use agent_connection::AgentConnection;
use error::LabError;
use hosts::LabHosts;
use userns::Privilege;

use crate::interrupt::Interrupt;

/// Which lab runs an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabKind {
    /// Two network namespaces on this machine joined by a veth pair.
    Netns,
}

/// A lab ready to start host pairs.
pub struct Lab {
    kind: LabKind,
    hosts: LabHosts,
    privilege: Privilege,
}

/// c1 and c2, running, with the addresses of their experiment link.
pub struct LabHostPair {
    pub c1: AgentConnection,
    pub c2: AgentConnection,
    pub c1_addr: IpAddr,
    pub c2_addr: IpAddr,
}

/// What a report says about the lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabInfo {
    pub kind: &'static str,
    /// True when an unprivileged user ran it inside its own user namespace.
    pub rootless: bool,
    pub c1: IpAddr,
    pub c2: IpAddr,
    pub prefix_len: u8,
    /// What the hosts are, in words.
    pub hosts: &'static str,
}

impl Lab {
    pub fn new(kind: LabKind, privilege: Privilege) -> Result<Lab, LabError> {
        let hosts = LabHosts::builtin()
            .map_err(|e| LabError::Setup(format!("lab/hosts.json is malformed: {e}")))?;
        Ok(Lab {
            kind,
            hosts,
            privilege,
        })
    }

    /// Starts a fresh c1 and c2.
    pub async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        match self.kind {
            LabKind::Netns => netns::start(&self.hosts, interrupt).await,
        }
    }

    pub fn info(&self) -> LabInfo {
        match self.kind {
            LabKind::Netns => LabInfo {
                kind: "netns",
                rootless: self.privilege == Privilege::Rootless,
                c1: IpAddr::V4(self.hosts.c1.ipv4),
                c2: IpAddr::V4(self.hosts.c2.ipv4),
                prefix_len: self.hosts.prefix_len,
                hosts: "two network namespaces joined by a veth pair, fresh for every case",
            },
        }
    }
}

impl LabHostPair {
    /// Shuts both agents down (each undoes what it did) and waits for them.
    pub async fn shutdown(self) -> Result<(), LabError> {
        let (c1, c2) = tokio::join!(self.c1.shutdown(), self.c2.shutdown());
        c1.and(c2)
    }
}
