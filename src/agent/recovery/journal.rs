//! The journal of what an agent changed on a real host, so that it can always
//! be undone: by the agent on every way out, or by `tcplab lab clean` after
//! the agent was killed outright.
//!
//! Every change is written here *before* it is made: a firewall rule (its
//! exact arguments, tag included), a sysctl (its original value), a server
//! process (pid and start time). One file per agent session,
//! `/run/tcplab/sessions/<pid>-<start time>.json`, replaced atomically. A
//! session whose agent no longer runs is dead; `lab clean` undoes exactly
//! what its journal lists and nothing else (see [`crate::agent::recovery::reap`]).
//!
//! Agents of the netns lab keep no journal: their changes live in a network
//! namespace that dies with them.
//!
//! The journal directory is trusted only when it belongs to this user and
//! nobody else can write it: a planted journal would otherwise tell a root
//! `lab clean` which rules to delete and which processes to kill.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::agent::error::AgentError;
use crate::agent::kernel::firewall::AppliedRule;
use crate::pidfd::start_time_of;
use crate::protocol::AgentErrorKind;
use crate::protocol::Sysctl;

/// Where journals live. /run is a tmpfs: journals never outlive a reboot,
/// and neither does anything they describe.
pub const RUN_DIR: &str = "/run/tcplab";

/// One process, named for good: a pid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    pub fn of(pid: u32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            start_time: start_time_of(pid)?,
        })
    }

    /// Is that very process still running (a zombie is not)?
    pub fn is_alive(&self) -> bool {
        crate::pidfd::is_running(self.pid, self.start_time)
    }
}

/// A setting and the value it had before any tcplab session changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournaledSysctl {
    pub setting: Sysctl,
    pub original: String,
}

/// What one session has changed and not yet undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub agent: ProcessId,
    /// The network namespace (inode) the changes were made in.
    pub netns: u64,
    /// The upload directory the agent runs from, if any.
    pub upload: Option<PathBuf>,
    pub rules: Vec<AppliedRule>,
    pub sysctls: Vec<JournaledSysctl>,
    pub servers: Vec<ProcessId>,
}

/// This session's journal. Disabled in a namespace of the agent's own.
pub struct Journal {
    /// False in a namespace of the agent's own: nothing is recorded.
    enabled: bool,
    path: Option<PathBuf>,
    entry: Option<JournalEntry>,
    upload: Option<PathBuf>,
}

impl Journal {
    /// A journal that records nothing (netns lab: the namespace undoes all).
    pub fn disabled() -> Journal {
        Journal {
            enabled: false,
            path: None,
            entry: None,
            upload: None,
        }
    }

    /// A journal for an agent on a real host; the file is created with the
    /// first change.
    pub fn for_host(upload: Option<PathBuf>) -> Journal {
        Journal {
            enabled: true,
            path: None,
            entry: None,
            upload,
        }
    }

    /// Runs `change` on the entry and writes it out, creating the file first.
    fn update(&mut self, change: impl FnOnce(&mut JournalEntry)) -> Result<(), AgentError> {
        if !self.enabled {
            return Ok(());
        }
        if self.entry.is_none() {
            let me = std::process::id();
            let agent =
                ProcessId::of(me).ok_or_else(|| journal_error("reading /proc/self/stat"))?;
            let dir = sessions_dir()?;
            self.path = Some(dir.join(format!("{}-{}.json", agent.pid, agent.start_time)));
            self.entry = Some(JournalEntry {
                agent,
                netns: own_netns().ok_or_else(|| journal_error("reading /proc/self/ns/net"))?,
                upload: self.upload.clone(),
                rules: Vec::new(),
                sysctls: Vec::new(),
                servers: Vec::new(),
            });
        }
        if let (Some(path), Some(entry)) = (&self.path, &mut self.entry) {
            change(entry);
            write_entry(path, entry)?;
        }
        Ok(())
    }

    pub fn record_rule(&mut self, rule: AppliedRule) -> Result<(), AgentError> {
        self.update(|entry| entry.rules.push(rule))
    }

    pub fn forget_rule(&mut self, rule: &AppliedRule) -> Result<(), AgentError> {
        self.update(|entry| entry.rules.retain(|r| r != rule))
    }

    /// Records `setting`'s original value, unless an older one is recorded.
    pub fn record_sysctl(&mut self, setting: Sysctl, original: String) -> Result<(), AgentError> {
        self.update(|entry| {
            if !entry.sysctls.iter().any(|s| s.setting == setting) {
                entry.sysctls.push(JournaledSysctl { setting, original });
            }
        })
    }

    pub fn forget_sysctls(&mut self) -> Result<(), AgentError> {
        self.update(|entry| entry.sysctls.clear())
    }

    pub fn record_server(&mut self, server: ProcessId) -> Result<(), AgentError> {
        self.update(|entry| entry.servers.push(server))
    }

    pub fn forget_servers(&mut self) -> Result<(), AgentError> {
        self.update(|entry| entry.servers.clear())
    }

    /// Removes the journal if everything in it has been undone; otherwise
    /// it stays for `tcplab lab clean`.
    pub fn close(&mut self) {
        let undone = self
            .entry
            .as_ref()
            .is_none_or(|e| e.rules.is_empty() && e.sysctls.is_empty() && e.servers.is_empty());
        if undone && let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
            self.entry = None;
        }
    }
}

/// The inode of this process's network namespace.
pub fn own_netns() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
}

/// `/run/tcplab/sessions`, created private to this user if missing, and
/// refused if anyone else could write it.
fn sessions_dir() -> Result<PathBuf, AgentError> {
    let sessions = Path::new(RUN_DIR).join("sessions");
    for dir in [Path::new(RUN_DIR), sessions.as_path()] {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(AgentError::new(
                    AgentErrorKind::Privilege,
                    format!(
                        "cannot create the journal directory {}: {e} (the agent needs root on a real host)",
                        dir.display()
                    ),
                ));
            }
        }
        check_private(dir)?;
    }
    Ok(sessions)
}

/// Refuses a directory that is not this user's or that others may write.
pub fn check_private(path: &Path) -> Result<(), AgentError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| journal_error(&format!("{}: {e}", path.display())))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() || meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(AgentError::new(
            AgentErrorKind::Failed,
            format!(
                "refusing {}: it must be a directory owned by uid {me} that nobody else can write",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn write_entry(path: &Path, entry: &JournalEntry) -> Result<(), AgentError> {
    let text = serde_json::to_vec(entry).map_err(|e| journal_error(&e.to_string()))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| journal_error(&format!("writing {}: {e}", path.display())))
}

/// Every journal in this network namespace whose agent is gone, with its path.
pub fn dead_sessions() -> Vec<(PathBuf, JournalEntry)> {
    let sessions = Path::new(RUN_DIR).join("sessions");
    if check_private(Path::new(RUN_DIR)).is_err() || check_private(&sessions).is_err() {
        return Vec::new();
    }
    let Some(netns) = own_netns() else {
        return Vec::new();
    };
    let Ok(files) = std::fs::read_dir(&sessions) else {
        return Vec::new();
    };
    files
        .filter_map(|file| file.ok().map(|f| f.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .filter_map(|path| {
            let text = std::fs::read(&path).ok()?;
            let entry: JournalEntry = serde_json::from_slice(&text).ok()?;
            (entry.netns == netns && !entry.agent.is_alive()).then_some((path, entry))
        })
        .collect()
}

/// Rewrites a dead session's journal after part of it was undone.
pub fn rewrite(path: &Path, entry: &JournalEntry) -> Result<(), AgentError> {
    write_entry(path, entry)
}

/// The lock a session holds while it has changed sysctls: two sessions
/// pinning the same setting would save each other's values. The settings
/// tcplab changes live under /proc/sys/net, one set per network namespace,
/// so the lock is one per namespace: an flock on
/// `sysctl-net-<namespace inode>.lock` in the sessions directory, which the
/// kernel drops when the holder's descriptor closes, also when the agent is
/// killed.
pub struct SysctlLock {
    _held: std::fs::File,
    path: std::path::PathBuf,
}

impl Drop for SysctlLock {
    /// The file goes with the lock (nothing is left in the sessions
    /// directory); a waiter that took the lock on the unlinked file sees
    /// that its path is gone and opens the name again.
    fn drop(&mut self) {
        // Unlinked while still locked: the descriptor closes after this.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl SysctlLock {
    /// Takes the lock, waiting up to `patience` for another session to end.
    pub fn acquire(patience: Duration) -> Result<SysctlLock, AgentError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let dir = sessions_dir()?;
        let netns = std::fs::metadata("/proc/self/ns/net")
            .map_err(|e| journal_error(&format!("reading /proc/self/ns/net: {e}")))?
            .ino();
        let path = dir.join(format!("sysctl-net-{netns}.lock"));
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| journal_error(&format!("opening {}: {e}", path.display())))
        };
        let started = Instant::now();
        loop {
            let file = open()?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                // Still the file at that name, not one its holder unlinked?
                let same = match (file.metadata(), std::fs::symlink_metadata(&path)) {
                    (Ok(held), Ok(named)) => held.ino() == named.ino(),
                    _ => false,
                };
                if same {
                    return Ok(SysctlLock { _held: file, path });
                }
                continue;
            }
            if started.elapsed() >= patience {
                return Err(AgentError::new(
                    AgentErrorKind::Failed,
                    "another tcplab session on this host has changed kernel settings \
                     (sysctls) and is still running; wait for it to finish",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn journal_error(message: &str) -> AgentError {
    AgentError::new(
        AgentErrorKind::Failed,
        format!("the journal of host changes ({RUN_DIR}): {message}"),
    )
}
