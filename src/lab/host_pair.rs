//! What a lab hands back: c1 and c2 running ([`LabHostPair`]), what a
//! report says about them ([`LabInfo`]), and how cases share them.

use std::net::IpAddr;

use serde::Serialize;

use super::addressing::ExperimentLink;
use super::agent_connection::AgentConnection;
use super::error::LabError;
use super::hosts::Family;
use crate::protocol::EndCase;

/// How cases share hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseIsolation {
    /// Every case gets its own fresh hosts, so cases run at once.
    FreshHosts,
    /// All cases share one pair of real hosts: they run in turn, each on a
    /// port no earlier case's orphaned socket still holds.
    SharedHosts,
}

/// c1 and c2, running, with the addresses of their experiment link.
pub struct LabHostPair {
    pub c1: AgentConnection,
    pub c2: AgentConnection,
    pub link: ExperimentLink,
    /// What the report says about this lab.
    pub info: LabInfo,
}

impl LabHostPair {
    /// Shuts both agents down (each undoes what it did) and waits for them.
    pub async fn shutdown(self) -> Result<(), LabError> {
        let (c1, c2) = tokio::join!(self.c1.shutdown(), self.c2.shutdown());
        c1.and(c2)
    }

    /// Undoes the current case on both hosts, keeping the agents.
    pub async fn end_case(&mut self) -> Result<(), LabError> {
        let (c1, c2) = tokio::join!(self.c1.call(EndCase {}), self.c2.call(EndCase {}));
        c1.and(c2).map(|_| ())
    }
}

/// The netns lab's hosts, as reports name them, for most experiments ...
pub(super) const NETNS_FRESH: &str =
    "two network namespaces joined by a veth pair, fresh for every case";
/// ... and for live sockets, whose cases share them.
pub(super) const NETNS_IN_TURN: &str =
    "two network namespaces joined by a veth pair, one pair for all cases in turn";

impl LabInfo {
    /// What a report says about hosts on `link`: kind, why, what they are;
    /// nothing about VMs or user namespaces (struct update adds those).
    pub fn of_link(
        kind: &'static str,
        why: String,
        link: &ExperimentLink,
        hosts: String,
    ) -> LabInfo {
        LabInfo {
            kind: kind.to_string(),
            family: Family::of(link.c2),
            why,
            rootless: false,
            c1: link.c1,
            c2: link.c2,
            prefix_len: link.prefix_len,
            hosts,
            kernel: None,
            accelerator: None,
            boot_ms: None,
            boot: None,
        }
    }

    /// This lab's description when the cases took turns on one pair of
    /// hosts, where they would otherwise each get their own.
    pub fn taken_in_turn(mut self) -> LabInfo {
        if self.hosts == NETNS_FRESH {
            self.hosts = NETNS_IN_TURN.into();
        }
        self
    }
}

/// What a report says about the lab.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LabInfo {
    /// `netns`, `vagrant` or `ssh`.
    pub kind: String,
    /// `v4` or `v6`.
    pub family: Family,
    /// Why this lab was used (the default picks one).
    pub why: String,
    /// True when an unprivileged user ran it inside its own user namespace.
    pub rootless: bool,
    /// c1's address on the experiment link (`null` when unknown).
    pub c1: Option<IpAddr>,
    pub c2: IpAddr,
    pub prefix_len: u8,
    /// What the hosts are, in words.
    pub hosts: String,
    /// The guests' `uname -r` (microvm lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// `kvm` or `tcg` (microvm lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// From starting the VMs to both agents answering (microvm lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_ms: Option<u64>,
    /// `cold` (booted) or `restored` (from a snapshot) (microvm lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
}
