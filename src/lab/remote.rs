//! The ssh and Vagrant labs at run time: an agent on each real host over
//! ssh (uploaded if need be), and the experiment link found from the
//! addresses the agents report.

use crate::protocol::Interfaces;
use std::net::IpAddr;

use super::addressing::{self, ExperimentLink};
use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use super::host_pair::{CaseIsolation, LabHostPair, LabInfo};
use super::hosts;
use super::hosts::Family;
use super::local_executable::LocalExecutable;
use super::seam::LabKind;
use super::ssh::{self, AgentSource};
use super::ssh_config::SshConfig;
use crate::interrupt::Interrupt;
use crate::protocol::Reap;

/// Which of the two labs over ssh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// Two machines from the user's ssh config: somebody's hosts.
    Ssh,
    /// This repository's Vagrant VMs: the lab's own.
    Vagrant,
}

impl RemoteKind {
    pub fn name(self) -> &'static str {
        match self {
            RemoteKind::Ssh => "ssh",
            RemoteKind::Vagrant => "vagrant",
        }
    }
}

/// The ssh or Vagrant lab.
pub struct RemoteLab {
    pub(super) kind: RemoteKind,
    pub(super) why: String,
    pub(super) config: SshConfig,
    pub(super) server_addr: Option<IpAddr>,
    pub(super) preferred_server: IpAddr,
    pub(super) family: Family,
}

impl RemoteLab {
    /// The Vagrant lab's VMs are the lab's own: they keep the agent between
    /// runs. Other hosts are somebody's: nothing stays.
    pub(super) fn keeping(&self) -> ssh::AgentKeeping {
        match self.kind {
            RemoteKind::Vagrant => ssh::AgentKeeping::Keep,
            RemoteKind::Ssh => ssh::AgentKeeping::RemoveAfterRun,
        }
    }
}

impl LabKind for RemoteLab {
    fn describe(&self) -> LabInfo {
        LabInfo {
            // Family of the addresses yet to be found, not of a guess.
            family: self.family,
            ..LabInfo::of_link(
                self.kind.name(),
                self.why.clone(),
                &ExperimentLink {
                    c1: None,
                    c2: self.server_addr.unwrap_or(self.preferred_server),
                    prefix_len: 0,
                },
                "real hosts over ssh".into(),
            )
        }
    }

    fn isolation(&self) -> CaseIsolation {
        CaseIsolation::SharedHosts
    }

    async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        let executable = LocalExecutable::load()?;
        let loss = LossWatch::default();
        let (c1, c2) = tokio::join!(
            ssh::start_agent(
                &self.config,
                "c1",
                &executable,
                self.keeping(),
                interrupt,
                &loss
            ),
            ssh::start_agent(
                &self.config,
                "c2",
                &executable,
                self.keeping(),
                interrupt,
                &loss
            ),
        );
        let (c1, c2) = match (c1, c2) {
            (Ok(c1), Ok(c2)) => (c1, c2),
            (Ok((agent, _)), Err(error)) | (Err(error), Ok((agent, _))) => {
                let _ = agent.shutdown().await;
                return Err(error);
            }
            (Err(error), Err(_)) => return Err(error),
        };
        let sources = (c1.1, c2.1);
        let mut pair = (c1.0, c2.0);
        match self.find_link(&mut pair.0, &mut pair.1).await {
            Ok((link, kernel)) => {
                let hosts = format!(
                    "real hosts over ssh; agent on c1: {}, on c2: {}",
                    describe(&sources.0),
                    describe(&sources.1)
                );
                let info = LabInfo {
                    kernel: Some(kernel),
                    ..LabInfo::of_link(self.kind.name(), self.why.clone(), &link, hosts)
                };
                Ok(LabHostPair {
                    c1: pair.0,
                    c2: pair.1,
                    link,
                    info,
                })
            }
            Err(error) => {
                let _ = tokio::join!(pair.0.shutdown(), pair.1.shutdown());
                Err(error)
            }
        }
    }

    /// Starts an agent on each host only to remove what crashed runs left
    /// there.
    async fn clean(&self, interrupt: &Interrupt) -> Result<Vec<String>, LabError> {
        let executable = LocalExecutable::load()?;
        let mut lines = Vec::new();
        for host in hosts::MACHINES {
            let loss = LossWatch::default();
            let (mut agent, _) = ssh::start_agent(
                &self.config,
                host,
                &executable,
                self.keeping(),
                interrupt,
                &loss,
            )
            .await?;
            let reaped = agent.call(Reap {}).await;
            let shutdown = agent.shutdown().await;
            let reaped = reaped?;
            shutdown?;
            lines.push(format!(
                "{host}: removed {} firewall rule(s), restored {} sysctl(s), ended {} server(s), \
                 deleted {} upload(s) of dead tcplab sessions",
                reaped.rules, reaped.sysctls, reaped.processes, reaped.uploads
            ));
        }
        Ok(lines)
    }
}

impl RemoteLab {
    /// The addresses the experiment uses: `--server-addr`, or the subnet both
    /// hosts share that ssh does not come in on.
    async fn find_link(
        &self,
        c1: &mut AgentConnection,
        c2: &mut AgentConnection,
    ) -> Result<(ExperimentLink, String), LabError> {
        c1.hello().await?;
        let kernel = c2.hello().await?;
        let c1_addresses = c1.call(Interfaces {}).await?.addresses;
        if let Some(server) = self.server_addr {
            return Ok((addressing::link_to(server, &c1_addresses), kernel));
        }
        let c2_addresses = c2.call(Interfaces {}).await?.addresses;
        let ssh_targets: Vec<IpAddr> = ["c1", "c2"]
            .iter()
            .filter_map(|host| self.config.target_address(host))
            .collect();
        addressing::choose_link(
            &c1_addresses,
            &c2_addresses,
            &ssh_targets,
            self.preferred_server,
            self.family,
        )
        .map(|link| (link, kernel))
        .ok_or_else(|| LabError::Environment {
            host: "c1, c2".to_string(),
            message: "c1 and c2 share no subnet besides the one ssh uses; \
                          give c2's experiment address with --server-addr"
                .to_string(),
        })
    }
}

fn describe(source: &AgentSource) -> String {
    match source {
        AgentSource::Installed(path) => format!("installed {path}"),
        AgentSource::Uploaded => "uploaded for this run".to_string(),
        AgentSource::Cached => "kept from an earlier run".to_string(),
        AgentSource::UploadedAndKept => "uploaded and kept for the next run".to_string(),
    }
}
