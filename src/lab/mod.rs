//! Labs bring the two hosts up and hand back an agent on each.
//!
//! A lab answers one question: "start c1 and c2 and give me a connection to
//! each one's agent". Everything an experiment does goes through those
//! connections ([`agent_connection`]), so experiments never know which lab
//! runs them:
//! - [`netns`]: two network namespaces on this machine, fresh for every case;
//! - [`ssh`]: two real machines named `c1` and `c2` in an ssh config;
//! - [`vagrant`]: this repository's VMs, through the ssh lab;
//! - [`microvm`]: two qemu VMs with their own kernels, booted by tcplab.

pub mod addressing;
pub mod agent_connection;
pub mod cache;
pub mod debian_sources;
pub mod error;
pub mod hosts;
pub mod microvm;
pub mod netns;
pub mod remote;
pub mod ssh;
pub mod userns;
pub mod vagrant;
pub mod vagrant_ssh_cache;

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use addressing::ExperimentLink;
use agent_connection::{AgentConnection, LossWatch};
use error::LabError;
use hosts::{Family, LabHosts};
pub use remote::RemoteLab;
use ssh::{LocalExecutable, SshConfig};
use userns::Privilege;

use crate::interrupt::Interrupt;

/// Which lab the user asked for (`--lab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LabChoice {
    /// Vagrant's c1 and c2 when both run, otherwise netns (or ssh with --ssh-config)
    #[default]
    Auto,
    /// Two network namespaces on this machine joined by a veth pair
    Netns,
    /// The VMs of this repository's Vagrantfile (`vagrant up` first)
    Vagrant,
    /// Two machines named c1 and c2 in the ssh config given with --ssh-config
    Ssh,
    /// Two qemu VMs with a kernel of their own (--kernel), booted by tcplab; no KVM needed
    Microvm,
}

/// What the user asked for, from the command line.
#[derive(Debug, Clone, Default)]
pub struct LabRequest {
    pub choice: LabChoice,
    pub ssh_config: Option<PathBuf>,
    /// c2's address for the experiment, instead of finding it.
    pub server_addr: Option<IpAddr>,
    /// IPv4 or IPv6.
    pub family: Family,
    /// The microvm lab's kernel: a Debian version or a vmlinuz file.
    pub kernel: Option<String>,
    /// The modules directory of a vmlinuz file.
    pub modules: Option<PathBuf>,
    /// KVM or software emulation for the microvm lab.
    pub accel: microvm::qemu::AccelChoice,
    /// The microvm lab boots its guests, never restoring them from a
    /// snapshot or saving one.
    pub cold: bool,
}

/// How cases share hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseIsolation {
    /// Every case gets its own fresh hosts, so cases run at once.
    FreshHosts,
    /// All cases share one pair of real hosts: they run in turn, each on a
    /// port no earlier case's orphaned socket still holds.
    SharedHosts,
}

/// A lab ready to start host pairs.
pub enum Lab {
    Netns {
        hosts: LabHosts,
        privilege: Privilege,
        why: String,
        family: Family,
    },
    Remote(RemoteLab),
    Microvm(microvm::MicrovmLab),
}

/// c1 and c2, running, with the addresses of their experiment link.
pub struct LabHostPair {
    pub c1: AgentConnection,
    pub c2: AgentConnection,
    pub link: ExperimentLink,
    /// What the report says about this lab.
    pub info: LabInfo,
}

/// The netns lab's hosts, as reports name them, for most experiments ...
const NETNS_FRESH: &str = "two network namespaces joined by a veth pair, fresh for every case";
/// ... and for live sockets, whose cases share them.
const NETNS_IN_TURN: &str =
    "two network namespaces joined by a veth pair, one pair for all cases in turn";

impl LabInfo {
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
#[derive(Debug, Clone, Serialize)]
pub struct LabInfo {
    /// `netns`, `vagrant` or `ssh`.
    pub kind: &'static str,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// `kvm` or `tcg` (microvm lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<&'static str>,
    /// From starting the VMs to both agents answering (microvm lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_ms: Option<u64>,
    /// `cold` (booted) or `restored` (from a snapshot) (microvm lab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<&'static str>,
}

fn builtin_hosts() -> Result<LabHosts, LabError> {
    LabHosts::builtin().map_err(|e| LabError::Setup(format!("lab/hosts.json is malformed: {e}")))
}

impl Lab {
    /// Picks the lab and gets what it needs. Must run before any thread is
    /// started: the netns lab may enter a user namespace.
    pub fn resolve(request: &LabRequest) -> Result<Lab, LabError> {
        let hosts = builtin_hosts()?;
        let remote = |kind, why: String, config| {
            Ok(Lab::Remote(RemoteLab {
                kind,
                why,
                config,
                server_addr: request.server_addr,
                preferred_server: hosts.addresses(request.family).1,
                family: request.family,
            }))
        };
        let netns = |why: String| {
            Ok(Lab::Netns {
                privilege: userns::acquire()?,
                hosts: hosts.clone(),
                why,
                family: request.family,
            })
        };
        if request.choice != LabChoice::Microvm
            && (request.kernel.is_some() || request.modules.is_some())
        {
            return Err(LabError::Usage(
                "--kernel and --modules choose the microvm lab's kernel: add --lab microvm".into(),
            ));
        }
        match (request.choice, &request.ssh_config) {
            (LabChoice::Netns, _) => netns("--lab netns".to_string()),
            (LabChoice::Microvm, _) => {
                if request.family == Family::V6 {
                    return Err(LabError::Usage(
                        "the microvm lab runs IPv4 only: drop --family v6".into(),
                    ));
                }
                Ok(Lab::Microvm(microvm::MicrovmLab {
                    kernel: microvm::kernel::KernelChoice::parse(
                        request.kernel.as_deref(),
                        request.modules.as_deref(),
                    )?,
                    accel: request.accel,
                    cold: request.cold,
                    why: "--lab microvm".into(),
                    hosts,
                }))
            }
            (LabChoice::Ssh | LabChoice::Auto, Some(path)) => {
                if !path.is_file() {
                    return Err(LabError::Usage(format!(
                        "--ssh-config {}: no such file, or not a regular file",
                        path.display()
                    )));
                }
                remote(
                    "ssh",
                    format!("--ssh-config {}", path.display()),
                    SshConfig::file(path),
                )
            }
            (LabChoice::Ssh, None) => Err(LabError::Usage(
                "--lab ssh needs --ssh-config FILE, an ssh config with Host entries c1 and c2"
                    .into(),
            )),
            (LabChoice::Vagrant, _) => {
                let project = vagrant::trusted_project(vagrant::ProjectSearch::Explicit)?
                    .ok_or_else(|| LabError::Environment {
                        host: "this machine".to_string(),
                        message: "no Vagrantfile in $VAGRANT_CWD, the current directory or the tcplab repository; run from the tcplab repository or set VAGRANT_CWD".into(),
                    })?;
                match vagrant::ssh_config_if_running(&project)? {
                    Ok(config) => remote(
                        "vagrant",
                        "--lab vagrant".to_string(),
                        SshConfig::in_memory(&config)?,
                    ),
                    Err(said) => Err(LabError::Environment {
                        host: "this machine".to_string(),
                        message: format!(
                            "the Vagrant machines c1 and c2 are not both running ({said}); \
                             start them with `vagrant up`"
                        ),
                    }),
                }
            }
            (LabChoice::Auto, None) => {
                let project = match vagrant::trusted_project(vagrant::ProjectSearch::Automatic) {
                    Ok(project) => project.filter(|p| vagrant::machines_created(p)),
                    Err(refused) => return netns(format!("ignoring Vagrant: {refused}")),
                };
                let Some(project) = project else {
                    return netns("no Vagrant machines are up".into());
                };
                match vagrant::ssh_config_if_running(&project) {
                    Ok(Ok(config)) => remote(
                        "vagrant",
                        "the Vagrant machines c1 and c2 are running".into(),
                        SshConfig::in_memory(&config)?,
                    ),
                    Ok(Err(said)) => netns(format!(
                        "the Vagrant machines exist but are not both running ({said})"
                    )),
                    Err(error) => netns(format!("the Vagrant machines exist, but {error}")),
                }
            }
        }
    }

    pub fn isolation(&self) -> CaseIsolation {
        match self {
            Lab::Netns { .. } => CaseIsolation::FreshHosts,
            Lab::Remote(_) | Lab::Microvm(_) => CaseIsolation::SharedHosts,
        }
    }

    /// Starts c1 and c2: fresh namespaces, or agents on the real hosts.
    pub async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        match self {
            Lab::Netns { hosts, family, .. } => {
                let (c1, c2, prefix_len) = hosts.addresses(*family);
                let link = ExperimentLink {
                    c1: Some(c1),
                    c2,
                    prefix_len,
                };
                netns::start(link, self.describe(), interrupt).await
            }
            Lab::Remote(remote) => remote.start(interrupt).await,
            Lab::Microvm(microvm) => microvm.start(interrupt).await,
        }
    }

    /// What a report says about this lab before any host is started (real
    /// hosts' addresses are only known once their agents answered).
    pub fn describe(&self) -> LabInfo {
        match self {
            Lab::Netns {
                hosts,
                privilege,
                why,
                family,
            } => {
                let (c1, c2, prefix_len) = hosts.addresses(*family);
                LabInfo {
                    kind: "netns",
                    family: *family,
                    why: why.clone(),
                    rootless: *privilege == Privilege::Rootless,
                    c1: Some(c1),
                    c2,
                    prefix_len,
                    hosts: NETNS_FRESH.into(),
                    // Namespaces share this machine's kernel.
                    kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                        .ok()
                        .map(|r| r.trim().to_string()),
                    accelerator: None,
                    boot_ms: None,
                    boot: None,
                }
            }
            Lab::Remote(remote) => LabInfo {
                kind: remote.kind,
                family: remote.family,
                why: remote.why.clone(),
                rootless: false,
                c1: None,
                c2: remote.server_addr.unwrap_or(remote.preferred_server),
                prefix_len: 0,
                hosts: "real hosts over ssh".into(),
                kernel: None,
                accelerator: None,
                boot_ms: None,
                boot: None,
            },
            Lab::Microvm(microvm) => microvm.describe(),
        }
    }

    /// Starts an agent on each host only to remove what crashed runs left
    /// there; returns a line per host.
    pub async fn clean(&self, interrupt: &Interrupt) -> Result<Vec<String>, LabError> {
        let remote = match self {
            Lab::Remote(remote) => remote,
            Lab::Netns { .. } => {
                return Ok(vec![
                    "netns: nothing to clean; its namespaces, links and rules vanish with its processes".into(),
                ]);
            }
            Lab::Microvm(_) => {
                return Ok(vec![
                    "microvm: nothing to clean; its VMs end with the run that booted them".into(),
                ]);
            }
        };
        let executable = LocalExecutable::load()?;
        let mut lines = Vec::new();
        for host in hosts::MACHINES {
            let loss = LossWatch::default();
            let (mut agent, _) = ssh::start_agent(
                &remote.config,
                host,
                &executable,
                remote.keeping(),
                interrupt,
                &loss,
            )
            .await?;
            let reaped = agent.reap().await;
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

impl LabHostPair {
    /// Shuts both agents down (each undoes what it did) and waits for them.
    pub async fn shutdown(self) -> Result<(), LabError> {
        let (c1, c2) = tokio::join!(self.c1.shutdown(), self.c2.shutdown());
        c1.and(c2)
    }

    /// Undoes the current case on both hosts, keeping the agents.
    pub async fn end_case(&mut self) -> Result<(), LabError> {
        let (c1, c2) = tokio::join!(self.c1.end_case(), self.c2.end_case());
        c1.and(c2)
    }
}
