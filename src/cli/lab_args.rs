//! `tcplab lab …` and the flags that choose a lab: which lab, which
//! hosts, kernels and accelerator, and where `lab clean` looks.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use tcplab::lab::hosts::Family;
use tcplab::lab::microvm::qemu::AccelChoice;
use tcplab::lab::{LabChoice, LabRequest};

/// Which lab `lab up` keeps.
#[derive(Debug, Clone, Args)]
pub struct KeptLabArgs {
    /// netns (namespaces on this machine's kernel) or microvm (two qemu VMs)
    #[arg(long = "lab", value_enum, default_value_t = KeptKind::Netns)]
    pub kind: KeptKind,
    /// IPv4 or IPv6 between c1 and c2 (the microvm lab: IPv4 only)
    #[arg(long, value_enum, default_value_t = Family::V4)]
    pub family: Family,
    /// The microvm lab's kernel: a Debian version (5.10, 6.1, …, 7.3, or
    /// a build such as 6.1.192; `tcplab lab kernels` lists them). Default: 6.1
    #[arg(long)]
    pub kernel: Option<String>,
    /// The microvm lab's accelerator
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
}

/// The labs `lab up` can keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeptKind {
    Netns,
    Microvm,
}

impl KeptLabArgs {
    /// The same choice as `lab hold`'s arguments, for the keeper.
    pub fn to_args(&self) -> Vec<String> {
        let kind = match self.kind {
            KeptKind::Netns => "netns",
            KeptKind::Microvm => "microvm",
        };
        let accel = match self.accel {
            AccelChoice::Auto => "auto",
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        };
        let mut args = vec![
            "--lab".to_string(),
            kind.to_string(),
            "--family".to_string(),
            self.family.name().to_string(),
            "--accel".to_string(),
            accel.to_string(),
        ];
        if let Some(kernel) = &self.kernel {
            args.extend(["--kernel".to_string(), kernel.clone()]);
        }
        args
    }

    /// What `lab up` refuses before it starts a keeper.
    pub fn check(&self) -> Result<(), &'static str> {
        match self.kind {
            KeptKind::Microvm if self.family == Family::V6 => {
                Err("the microvm lab runs IPv4 only: drop --family v6")
            }
            KeptKind::Netns if self.kernel.is_some() => {
                Err("--kernel chooses the microvm lab's kernel: add --lab microvm")
            }
            _ => Ok(()),
        }
    }

    /// The lab to resolve.
    pub fn request(&self) -> LabRequest {
        LabRequest {
            choice: match self.kind {
                KeptKind::Netns => LabChoice::Netns,
                KeptKind::Microvm => LabChoice::Microvm,
            },
            family: self.family,
            kernel: self.kernel.clone(),
            accel: self.accel,
            ..LabRequest::default()
        }
    }
}

impl Default for KeptLabArgs {
    fn default() -> Self {
        KeptLabArgs {
            kind: KeptKind::Netns,
            family: Family::V4,
            kernel: None,
            accel: AccelChoice::Auto,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Start c1 and c2 and keep them up, to step into by hand (`lab exec`,
    /// `lab shell`) until `lab down`. Returns once both are ready: network
    /// namespaces on this machine's kernel, or (`--lab microvm`) two qemu
    /// VMs booting a Debian kernel, with a shell, ip, ss, iptables, nc and
    /// tcpdump copied from this machine
    Up {
        /// The lab's name (default: lab1, lab2, …, the first free)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        kind: KeptLabArgs,
    },
    /// The labs of this user that are up: name, kind, kernel, addresses,
    /// since when, and whether their keeper still runs
    Status {
        /// Print one JSON document
        #[arg(long)]
        json: bool,
    },
    /// Run a command on c1 or c2 of a lab that is up, with stdin, stdout,
    /// stderr, the terminal and the exit code passed through; c1 and c2
    /// reach each other by name: `tcplab lab exec c1 -- nc c2 8080`
    Exec {
        /// The lab (needed only when several are up)
        #[arg(long)]
        name: Option<String>,
        /// The host
        #[arg(value_parser = ["c1", "c2"])]
        host: String,
        /// The command and its arguments, after --
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// An interactive shell ($SHELL, or /bin/sh) on c1 or c2 of a lab that is up
    Shell {
        /// The lab (needed only when several are up)
        #[arg(long)]
        name: Option<String>,
        /// The host
        #[arg(value_parser = ["c1", "c2"])]
        host: String,
    },
    /// Take a lab down: its hosts undo what they did, and nothing is left
    Down {
        /// The lab (needed only when several are up)
        #[arg(long)]
        name: Option<String>,
    },
    /// The keeper of a lab that is up (started by `lab up`)
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        kind: KeptLabArgs,
        /// Hold the lab only while stdin is open, until a line `keep` comes
        /// (`--keep-on-failure`: a run that dies takes its lab with it)
        #[arg(long)]
        until_kept: bool,
    },
    /// Undo what killed agents left on the hosts, exactly as their journals
    /// (/run/tcplab/sessions) list it: their firewall rules, sysctls, server
    /// and upload; and remove this user's labs whose keeper died (`lab up`).
    /// Live runs, other users' processes and rules that are not tcplab's are
    /// never touched (docs/security.md).
    Clean {
        #[command(flatten)]
        lab: CleanArgs,
    },
    /// The Debian kernel lines and builds the microvm lab can boot
    /// (--kernel), read from the signed indexes of every suite this
    /// machine's mirror carries, and which are cached
    Kernels {
        /// Print one JSON document: every line with every build
        #[arg(long)]
        json: bool,
        /// Read the archive's indexes again now (they are kept for a day)
        #[arg(long)]
        refresh: bool,
        /// Empty the kernel cache: kernels, indexes and initramfs images
        #[arg(long, conflicts_with_all = ["json", "refresh"])]
        prune: bool,
    },
    /// The Debian mirror tcplab fetches kernels and the box from: the first
    /// Debian archive in this machine's apt sources, or TCPLAB_DEBIAN_MIRROR
    Mirror,
    /// Boot one VM of the microvm lab and connect this terminal's stdin and
    /// stdout to its agent: type one JSON request per line
    /// (`{"op":"hello"}`, `{"op":"sockets","port":22}`), read one reply per
    /// line. Closing stdin (Ctrl-D) powers the VM off.
    Boot {
        /// A Debian kernel version (5.10, 6.1, 6.12) or a vmlinuz file
        #[arg(long, default_value = "6.1")]
        kernel: String,
        /// The lib/modules/<release> directory of a kernel given as a file
        #[arg(long, value_name = "DIR")]
        modules: Option<PathBuf>,
        /// auto (KVM when a trial boot shows that it really runs guests,
        /// software emulation otherwise), kvm, or tcg (software emulation)
        #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
        accel: AccelChoice,
    },
}

/// Which lab, and how to reach its hosts.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// Which lab runs the experiment. By default: the Vagrant VMs c1 and c2 of
    /// this repository when both run, two hosts over ssh with --ssh-config,
    /// otherwise two network namespaces on this machine. The report says which.
    #[arg(long, value_enum, default_value_t = LabChoice::Auto)]
    pub lab: LabChoice,
    /// An ssh config with Host entries c1 and c2 (implies --lab ssh). Vagrant
    /// writes one with `vagrant ssh-config c1 c2`
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// c2's address for the experiment on real hosts, instead of the subnet
    /// c1 and c2 are found to share besides the one ssh uses
    #[arg(long, value_name = "ADDR")]
    pub server_addr: Option<IpAddr>,
    /// Run over IPv4 or IPv6 (netns lab: fd00::5 and fd00::10; real hosts: a
    /// shared IPv6 subnet)
    #[arg(long, value_enum, default_value_t = Family::V4)]
    pub family: Family,
    /// The microvm lab's kernel: a Debian cloud kernel by version (5.10, 6.1,
    /// 6.12; fetched once with this machine's apt sources and cached), or a
    /// vmlinuz file (with --modules). Default: 6.1
    #[arg(long, value_name = "VERSION|FILE")]
    pub kernel: Option<String>,
    /// The lib/modules/<release> directory of a --kernel FILE
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// The microvm lab's accelerator: KVM when a trial boot shows that it
    /// really runs guests (auto), or always kvm, or tcg (software emulation)
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Boot the VMs even where snapshots of them exist, and save none
    /// (microvm lab: by default a kernel's first boot saves both guests
    /// once their agents are ready and later runs restore them)
    #[arg(long)]
    pub cold: bool,
    /// Run on the hosts of a lab that is up (`tcplab lab up --name NAME`),
    /// to watch the cases there with `tcplab lab exec`; the lab stays up
    #[arg(long, value_name = "NAME")]
    pub on: Option<String>,
}

impl LabArgs {
    pub fn request(&self) -> LabRequest {
        LabRequest {
            choice: self.lab,
            ssh_config: self.ssh_config.clone(),
            server_addr: self.server_addr,
            family: self.family,
            kernel: self.kernel.clone(),
            modules: self.modules.clone(),
            accel: self.accel,
            cold: self.cold,
            on: self.on.clone(),
        }
    }
}
/// Where `tcplab lab clean` looks: the labs whose hosts keep journals.
#[derive(Debug, Clone, Args)]
pub struct CleanArgs {
    /// The hosts to clean: the Vagrant VMs, the hosts of --ssh-config, or
    /// (auto) whichever of those is there; netns and microvm labs leave
    /// nothing on a host to clean
    #[arg(long, value_enum, default_value_t = LabChoice::Auto)]
    pub lab: LabChoice,
    /// An ssh config with Host entries c1 and c2 (implies --lab ssh)
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

impl CleanArgs {
    pub fn request(&self) -> LabRequest {
        LabRequest {
            choice: self.lab,
            ssh_config: self.ssh_config.clone(),
            ..LabRequest::default()
        }
    }
}
