//! From what the user asked for (`--lab`, `--ssh-config`, `--kernel`, …)
//! to a [`Lab`]: which one, and why. `auto` prefers running Vagrant
//! machines, then the netns lab.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::error::LabError;
use super::hosts::{Family, LabHosts};
use super::kept::record;
use super::kept::run::KeptRun;
use super::microvm::{self, MicrovmLab};
use super::netns::NetnsLab;
use super::remote::{RemoteKind, RemoteLab};
use super::ssh_config::SshConfig;
use super::{Lab, userns, vagrant};

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
    /// Run on the hosts of this lab that is up (`tcplab lab up`).
    pub on: Option<String>,
}

impl Lab {
    /// Picks the lab and gets what it needs. Must run before any thread is
    /// started: the netns lab may enter a user namespace.
    pub fn resolve(request: &LabRequest) -> Result<Lab, LabError> {
        let hosts = LabHosts::builtin()
            .map_err(|e| LabError::Setup(format!("lab/hosts.json is malformed: {e}")))?;
        if request.choice != LabChoice::Microvm
            && (request.kernel.is_some() || request.modules.is_some())
        {
            return Err(LabError::Usage(
                "--kernel and --modules choose the microvm lab's kernel: add --lab microvm".into(),
            ));
        }
        if let Some(name) = &request.on {
            return kept_lab(request, name);
        }
        let resolver = Resolver { request, hosts };
        match (request.choice, &request.ssh_config) {
            (LabChoice::Netns, _) => resolver.netns("--lab netns".to_string()),
            (LabChoice::Microvm, _) => resolver.microvm(),
            (LabChoice::Ssh | LabChoice::Auto, Some(path)) => resolver.ssh(path),
            (LabChoice::Ssh, None) => Err(LabError::Usage(
                "--lab ssh needs --ssh-config FILE, an ssh config with Host entries c1 and c2"
                    .into(),
            )),
            (LabChoice::Vagrant, _) => resolver.vagrant(),
            (LabChoice::Auto, None) => resolver.automatic(),
        }
    }
}

/// `--on NAME`: a lab that is up, and nothing that would choose another.
fn kept_lab(request: &LabRequest, name: &str) -> Result<Lab, LabError> {
    if !matches!(request.choice, LabChoice::Auto | LabChoice::Netns)
        || request.ssh_config.is_some()
        || request.kernel.is_some()
    {
        return Err(LabError::Usage(format!(
            "--on {name} runs on a lab that is up; drop --lab, --ssh-config and --kernel"
        )));
    }
    Ok(Lab::Kept(KeptRun {
        lab: record::find(Some(name))?,
    }))
}

/// What every lab is built from: the request and the built-in addresses.
struct Resolver<'a> {
    request: &'a LabRequest,
    hosts: LabHosts,
}

impl Resolver<'_> {
    fn netns(&self, why: String) -> Result<Lab, LabError> {
        Ok(Lab::Netns(NetnsLab {
            privilege: userns::acquire()?,
            hosts: self.hosts.clone(),
            why,
            family: self.request.family,
        }))
    }

    fn remote(&self, kind: RemoteKind, why: String, config: SshConfig) -> Result<Lab, LabError> {
        Ok(Lab::Remote(RemoteLab {
            kind,
            why,
            config,
            server_addr: self.request.server_addr,
            preferred_server: self.hosts.addresses(self.request.family).1,
            family: self.request.family,
        }))
    }

    fn microvm(&self) -> Result<Lab, LabError> {
        let request = self.request;
        if request.family == Family::V6 {
            return Err(LabError::Usage(
                "the microvm lab runs IPv4 only: drop --family v6".into(),
            ));
        }
        Ok(Lab::Microvm(MicrovmLab {
            kept_in: None,
            kernel: microvm::kernel::KernelChoice::parse(
                request.kernel.as_deref(),
                request.modules.as_deref(),
            )?,
            accel: request.accel,
            cold: request.cold,
            why: "--lab microvm".into(),
            hosts: self.hosts.clone(),
        }))
    }

    fn ssh(&self, path: &Path) -> Result<Lab, LabError> {
        if !path.is_file() {
            return Err(LabError::Usage(format!(
                "--ssh-config {}: no such file, or not a regular file",
                path.display()
            )));
        }
        let why = format!("--ssh-config {}", path.display());
        self.remote(RemoteKind::Ssh, why, SshConfig::file(path))
    }

    /// `--lab vagrant`: the machines must be running.
    fn vagrant(&self) -> Result<Lab, LabError> {
        let project = vagrant::trusted_project(vagrant::ProjectSearch::Explicit)?
            .ok_or_else(|| LabError::Environment {
                host: "this machine".to_string(),
                message: "no Vagrantfile in $VAGRANT_CWD, the current directory or the tcplab repository; run from the tcplab repository or set VAGRANT_CWD".into(),
            })?;
        match vagrant::ssh_config_if_running(&project)? {
            Ok(config) => self.remote(
                RemoteKind::Vagrant,
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

    /// `--lab auto`: running Vagrant machines, else the netns lab, saying why.
    fn automatic(&self) -> Result<Lab, LabError> {
        let project = match vagrant::trusted_project(vagrant::ProjectSearch::Automatic) {
            Ok(project) => project.filter(|p| vagrant::machines_created(p)),
            Err(refused) => return self.netns(format!("ignoring Vagrant: {refused}")),
        };
        let Some(project) = project else {
            return self.netns("no Vagrant machines are up".into());
        };
        match vagrant::ssh_config_if_running(&project) {
            Ok(Ok(config)) => self.remote(
                RemoteKind::Vagrant,
                "the Vagrant machines c1 and c2 are running".into(),
                SshConfig::in_memory(&config)?,
            ),
            Ok(Err(said)) => self.netns(format!(
                "the Vagrant machines exist but are not both running ({said})"
            )),
            Err(error) => self.netns(format!("the Vagrant machines exist, but {error}")),
        }
    }
}
