//! The ssh and Vagrant labs at run time: an agent on each real host over
//! ssh (uploaded if need be), and the experiment link found from the
//! addresses the agents report.

use std::net::IpAddr;

use super::addressing::{self, ExperimentLink};
use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use super::hosts::Family;
use super::ssh::{self, AgentSource, LocalExecutable, SshConfig};
use super::{LabHostPair, LabInfo};
use crate::interrupt::Interrupt;

/// The ssh or Vagrant lab.
pub struct RemoteLab {
    pub(super) kind: &'static str,
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
        if self.kind == "vagrant" {
            ssh::AgentKeeping::Keep
        } else {
            ssh::AgentKeeping::RemoveAfterRun
        }
    }

    pub(super) async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
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
                let info = LabInfo {
                    kind: self.kind,
                    family: Family::of(link.c2),
                    why: self.why.clone(),
                    rootless: false,
                    c1: link.c1,
                    c2: link.c2,
                    prefix_len: link.prefix_len,
                    hosts: format!(
                        "real hosts over ssh; agent on c1: {}, on c2: {}",
                        describe(&sources.0),
                        describe(&sources.1)
                    ),
                    kernel: Some(kernel),
                    accelerator: None,
                    boot_ms: None,
                    boot: None,
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

    /// The addresses the experiment uses: `--server-addr`, or the subnet both
    /// hosts share that ssh does not come in on.
    async fn find_link(
        &self,
        c1: &mut AgentConnection,
        c2: &mut AgentConnection,
    ) -> Result<(ExperimentLink, String), LabError> {
        c1.hello().await?;
        let kernel = c2.hello().await?;
        let c1_addresses = c1.interfaces().await?;
        if let Some(server) = self.server_addr {
            return Ok((addressing::link_to(server, &c1_addresses), kernel));
        }
        let c2_addresses = c2.interfaces().await?;
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
