//! Labs bring the two hosts up and hand back an agent on each.
//!
//! A lab answers one question: "start c1 and c2 and give me a connection to
//! each one's agent". Everything an experiment does goes through those
//! connections ([`agent_connection`]), so experiments never know which lab
//! runs them. Every lab has the one shape of [`seam::LabKind`]:
//! - [`netns`]: two network namespaces on this machine, fresh for every case;
//! - [`remote`]: two real machines named `c1` and `c2` over ssh, from an ssh
//!   config ([`ssh`]) or this repository's Vagrant VMs ([`vagrant`]);
//! - [`microvm`]: two qemu VMs with their own kernels, booted by tcplab.
//!
//! [`choice`] picks one from the command line.

pub mod addressing;
pub mod agent_connection;
pub mod cache;
pub mod choice;
pub mod debian_sources;
pub mod error;
pub mod host_pair;
pub mod host_probe;
pub mod hosts;
pub mod kept;
pub mod local_executable;
mod loss_watch;
pub mod microvm;
pub mod netns;
pub mod remote;
mod seam;
pub mod ssh;
pub mod ssh_config;
pub mod userns;
pub mod vagrant;
pub mod vagrant_ssh_cache;

pub use choice::{LabChoice, LabRequest};
pub use host_pair::{CaseIsolation, LabHostPair, LabInfo};
pub use remote::RemoteLab;

use error::LabError;
use seam::LabKind;

use crate::interrupt::Interrupt;

/// A lab ready to start host pairs.
pub enum Lab {
    Netns(netns::NetnsLab),
    Remote(RemoteLab),
    Microvm(microvm::MicrovmLab),
    /// The hosts of a lab that is up (`--on NAME`).
    Kept(kept::run::KeptRun),
}

/// Runs `$call` on whichever lab `$lab` is: the one place that lists them.
macro_rules! on_each_lab {
    ($lab:expr, $kind:ident => $call:expr) => {
        match $lab {
            Lab::Netns($kind) => $call,
            Lab::Remote($kind) => $call,
            Lab::Microvm($kind) => $call,
            Lab::Kept($kind) => $call,
        }
    };
}

impl Lab {
    /// Whether every case gets hosts of its own, or all share one pair.
    pub fn isolation(&self) -> CaseIsolation {
        on_each_lab!(self, lab => lab.isolation())
    }

    /// Starts c1 and c2: fresh namespaces, or agents on the real hosts.
    pub async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        on_each_lab!(self, lab => lab.start(interrupt).await)
    }

    /// What a report says about this lab before any host is started (real
    /// hosts' addresses are only known once their agents answered).
    pub fn describe(&self) -> LabInfo {
        on_each_lab!(self, lab => lab.describe())
    }

    /// Starts an agent on each host only to remove what crashed runs left
    /// there; returns a line per host.
    pub async fn clean(&self, interrupt: &Interrupt) -> Result<Vec<String>, LabError> {
        on_each_lab!(self, lab => lab.clean(interrupt).await)
    }
}
