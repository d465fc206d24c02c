//! What a kept lab's keeper writes about it, and where: one directory per
//! lab under `/run/tcplab/labs` (root) or `$XDG_RUNTIME_DIR/tcplab/labs`
//! (anyone else), holding `lab.json` (the [`KeptLab`]) and `hosts` (c1 and
//! c2 by name, bind-mounted over /etc/hosts for commands run inside).
//!
//! Root runs commands from these files, so the directory must be this
//! user's alone ([`crate::lab::cache::check_private`]), and a record is
//! believed only while its keeper is the process it names (pid and start
//! time).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lab::cache::{check_private, write_atomically};
use crate::lab::error::LabError;
use crate::pidfd;

/// One process, named so that a recycled pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Since boot, in clock ticks, as /proc/PID/stat says it.
    pub start_time: u64,
}

impl ProcessRecord {
    /// This process now, if it runs.
    pub fn of(pid: u32) -> Option<ProcessRecord> {
        pidfd::start_time_of(pid).map(|start_time| ProcessRecord { pid, start_time })
    }

    pub fn is_running(&self) -> bool {
        pidfd::is_running(self.pid, self.start_time)
    }
}

/// c1 or c2 of a kept lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    /// What holds the host: the agent in its network namespace (netns),
    /// or its qemu (microvm).
    pub agent: ProcessRecord,
    pub address: IpAddr,
}

/// A lab that is up, as `lab status --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptLab {
    pub name: String,
    /// `netns` or `microvm`.
    pub kind: String,
    pub owner_uid: u32,
    /// When it came up, in seconds since 1970.
    pub since_unix: u64,
    pub keeper: ProcessRecord,
    pub hosts: Vec<HostRecord>,
    pub prefix_len: u8,
    /// The SHA-256 of the tcplab that brought a microvm lab up: its guests
    /// run that build, and only that build's agent protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcplab_sha256: Option<String>,
    /// The hosts' kernel release.
    pub kernel: Option<String>,
}

/// Whether a recorded lab is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LabState {
    Up,
    /// Its keeper died (`kill -9`, a reboot): `lab clean` removes it.
    Dead,
}

impl KeptLab {
    pub fn host(&self, name: &str) -> Option<&HostRecord> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn state(&self) -> LabState {
        if self.keeper.is_running() && self.hosts.iter().all(|h| h.agent.is_running()) {
            LabState::Up
        } else {
            LabState::Dead
        }
    }

    /// The `hosts` file commands inside the lab see as /etc/hosts.
    pub fn hosts_file(&self) -> String {
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
        for host in &self.hosts {
            text.push_str(&format!("{}\t{}\n", host.address, host.name));
        }
        text
    }
}

/// The directory of every kept lab of this user, created (0700) if need be
/// and checked to be this user's alone.
pub fn labs_dir() -> Result<PathBuf, LabError> {
    let dir = base_dir()?.join("labs");
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| LabError::Setup(format!("creating {}: {e}", dir.display())))?;
    check_private(&dir)?;
    Ok(dir)
}

fn base_dir() -> Result<PathBuf, LabError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/run/tcplab"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("tcplab"))
        .ok_or_else(|| LabError::Environment {
            host: "this machine".into(),
            message: "XDG_RUNTIME_DIR is not set: a lab that is up keeps its state in this \
                      user's runtime directory (log in through a session that sets it, or \
                      run as root)"
                .into(),
        })
}

/// A lab's name: what `--name` may be, so it can be a directory's name.
pub fn check_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(LabError::Usage(format!(
            "--name {name:?}: a lab's name is 1 to 32 lowercase letters, digits and dashes"
        )))
    }
}

/// Writes the record and the hosts file into `dir`.
pub fn save(dir: &Path, lab: &KeptLab) -> Result<(), LabError> {
    let json = serde_json::to_vec_pretty(lab)
        .map_err(|e| LabError::Setup(format!("encoding the lab's record: {e}")))?;
    write_atomically(&dir.join("hosts"), lab.hosts_file().as_bytes())?;
    write_atomically(&dir.join("lab.json"), &json)
}

/// Every lab this user has a directory for: its name, and its record if
/// the keeper got as far as writing one.
pub fn all() -> Result<Vec<(String, Option<KeptLab>)>, LabError> {
    let dir = labs_dir()?;
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| LabError::Setup(format!("reading {}: {e}", dir.display())))?;
    let mut labs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if check_name(&name).is_err() {
            continue;
        }
        let record = std::fs::read(entry.path().join("lab.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<KeptLab>(&bytes).ok());
        labs.push((name, record));
    }
    labs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(labs)
}

/// The lab `--name` names, or without it the only one that is up.
pub fn find(name: Option<&str>) -> Result<KeptLab, LabError> {
    let labs: Vec<KeptLab> = all()?.into_iter().filter_map(|(_, r)| r).collect();
    let lab = match name {
        Some(name) => {
            check_name(name)?;
            labs.into_iter()
                .find(|lab| lab.name == name)
                .ok_or_else(|| {
                    LabError::Usage(format!(
                        "no lab named {name:?} is up; `tcplab lab status` lists them"
                    ))
                })?
        }
        None => the_only_one_up(labs)?,
    };
    if lab.state() == LabState::Dead {
        return Err(LabError::Environment {
            host: "this machine".into(),
            message: format!(
                "lab {} is gone (its keeper, pid {}, ended); `tcplab lab clean` removes it",
                lab.name, lab.keeper.pid
            ),
        });
    }
    Ok(lab)
}

/// Of `labs`, the one that is up; a usage error naming them when there
/// are several, or saying how to start one when there is none.
fn the_only_one_up(labs: Vec<KeptLab>) -> Result<KeptLab, LabError> {
    let mut up: Vec<KeptLab> = labs
        .into_iter()
        .filter(|lab| lab.state() == LabState::Up)
        .collect();
    match up.len() {
        0 => Err(LabError::Usage(
            "no lab is up; start one with `tcplab lab up`".into(),
        )),
        1 => Ok(up.remove(0)),
        _ => {
            let names: Vec<&str> = up.iter().map(|lab| lab.name.as_str()).collect();
            Err(LabError::Usage(format!(
                "several labs are up ({}): say which with --name",
                names.join(", ")
            )))
        }
    }
}

/// The first name `lab1`, `lab2`, … that no lab of this user has.
pub fn free_name() -> Result<String, LabError> {
    let taken: Vec<String> = all()?.into_iter().map(|(name, _)| name).collect();
    Ok((1..)
        .map(|n| format!("lab{n}"))
        .find(|name| !taken.contains(name))
        .unwrap_or_else(|| "lab".into()))
}
