//! Experiments on a lab that is up (`tcplab fin-wait2 --on NAME`): a fresh
//! agent on each host joins that host's namespaces (`tcplab agent --join`),
//! or on a microvm lab runs in the guest through one of its command ports
//! (`tcplab lab exec … -- tcplab agent`), so the run's cases happen where a
//! person can watch them with `lab exec`.
//! The hosts are the lab's: cases take turns on them, each on a port no
//! earlier case's orphaned socket holds, and every agent undoes its rules
//! and sysctls when the run ends; the lab stays up.

use super::record::KeptLab;
use crate::interrupt::Interrupt;
use crate::lab::addressing::ExperimentLink;
use crate::lab::agent_connection::{AgentConnection, LossWatch};
use crate::lab::error::LabError;
use crate::lab::host_pair::{CaseIsolation, LabHostPair, LabInfo};
use crate::lab::seam::LabKind;

/// A run on the hosts of a lab that is up.
pub struct KeptRun {
    pub(crate) lab: KeptLab,
}

impl KeptRun {
    fn link(&self) -> Result<ExperimentLink, LabError> {
        let address = |host: &str| {
            self.lab
                .host(host)
                .map(|h| h.address)
                .ok_or_else(|| LabError::Setup(format!("lab {} has no {host}", self.lab.name)))
        };
        Ok(ExperimentLink {
            c1: Some(address("c1")?),
            c2: address("c2")?,
            prefix_len: self.lab.prefix_len,
        })
    }

    /// `tcplab agent --join PID:START` for `host`; in a microvm guest,
    /// `tcplab agent` through `lab exec`, whose stdin and stdout are the
    /// agent's as a local agent's would be.
    fn agent(
        &self,
        host: &str,
        interrupt: &Interrupt,
        loss: &LossWatch,
    ) -> Result<AgentConnection, LabError> {
        let record = self
            .lab
            .host(host)
            .ok_or_else(|| LabError::Setup(format!("lab {} has no {host}", self.lab.name)))?;
        let exe = std::env::current_exe()
            .map_err(|e| LabError::Setup(format!("cannot find the tcplab executable: {e}")))?;
        let mut command = std::process::Command::new(exe);
        if self.lab.kind == "microvm" {
            command.args(["lab", "exec", "--name", &self.lab.name, host, "--"]);
            command.args(["tcplab", "agent"]);
        } else {
            command.args([
                "agent",
                "--join",
                &format!("{}:{}", record.agent.pid, record.agent.start_time),
            ]);
        }
        AgentConnection::spawn(host, command, interrupt, loss)
    }

    /// The guests run the build that brought the lab up; this one must be it.
    fn same_build(&self) -> Result<(), LabError> {
        let this = crate::lab::local_executable::LocalExecutable::load()?.sha256;
        if self.lab.tcplab_sha256.as_deref() == Some(this.as_str()) {
            return Ok(());
        }
        Err(LabError::Usage(format!(
            "lab {} was brought up by another build of tcplab, whose agent its guests run: \
             `tcplab lab down --name {}` and bring it up again with this one",
            self.lab.name, self.lab.name
        )))
    }
}

impl LabKind for KeptRun {
    fn describe(&self) -> LabInfo {
        let link = self.link().unwrap_or(ExperimentLink {
            c1: None,
            c2: std::net::Ipv4Addr::UNSPECIFIED.into(),
            prefix_len: 0,
        });
        LabInfo {
            kernel: self.lab.kernel.clone(),
            ..LabInfo::of_link(
                if self.lab.kind == "microvm" {
                    "microvm"
                } else {
                    "netns"
                },
                format!("--on {}", self.lab.name),
                &link,
                format!(
                    "the lab {} kept up by `tcplab lab up`: its cases in turn",
                    self.lab.name
                ),
            )
        }
    }

    fn isolation(&self) -> CaseIsolation {
        CaseIsolation::SharedHosts
    }

    async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        let loss = LossWatch::default();
        let link = self.link()?;
        // Once per run, not per agent: it hashes this whole executable.
        if self.lab.kind == "microvm" {
            self.same_build()?;
        }
        let mut c1 = self.agent("c1", interrupt, &loss)?;
        let mut c2 = match self.agent("c2", interrupt, &loss) {
            Ok(c2) => c2,
            Err(error) => {
                let _ = c1.shutdown().await;
                return Err(error);
            }
        };
        let (said1, said2) = tokio::join!(c1.hello_started(), c2.hello_started());
        if let Err(error) = said1.and(said2) {
            let _ = tokio::join!(c1.shutdown(), c2.shutdown());
            return Err(error);
        }
        Ok(LabHostPair {
            c1,
            c2,
            link,
            info: self.describe(),
        })
    }

    async fn clean(&self, _: &Interrupt) -> Result<Vec<String>, LabError> {
        Ok(vec![format!(
            "lab {}: up, nothing to clean (`tcplab lab down` takes it down)",
            self.lab.name
        )])
    }
}
