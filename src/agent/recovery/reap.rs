//! `tcplab lab clean` on one host: undo what dead sessions left behind.
//!
//! A run that ends normally leaves nothing: its agent undoes its own changes.
//! An agent killed outright (SIGKILL, a lost VM console) cannot, but it wrote
//! every change to its journal before making it (see [`crate::agent::recovery::journal`]).
//! Reaping reads the journals of this network namespace whose agent is gone
//! and undoes exactly what they list: rules by their exact arguments and tag,
//! sysctls back to the value recorded before the first change, server
//! processes by pidfd (only if that very process still runs), and the upload
//! directory the agent ran from. Nothing is recognised by name: a rule whose
//! comment merely mentions tcplab, another user's `tcplab serve` or another
//! upload directory is not ours and stays. Live sessions are left alone.

use std::path::Path;

use crate::agent::error::AgentError;
use crate::agent::kernel::firewall::AppliedRule;
use crate::agent::recovery::journal::{self, JournalEntry, SysctlLock};
use crate::pidfd::ProcessHandle;
use crate::protocol::AgentErrorKind;
use crate::protocol::Reaped;

/// Where the ssh lab uploads the tcplab executable on a host: `mktemp -d` with
/// this prefix, e.g. `/tmp/tcplab-upload.x1Y2z3`.
pub const UPLOAD_DIR_PREFIX: &str = "/tmp/tcplab-upload.";

/// Undoes every dead session's journal in this network namespace. Keeps
/// going past a failure; what could not be undone stays in its journal for
/// the next try, and the error names it.
pub fn reap_host() -> Result<Reaped, AgentError> {
    let mut reaped = Reaped::default();
    let mut errors = Vec::new();
    // Sysctls are restored only under the host-wide lock. If a live session
    // holds it, that session restored dead sessions' values when it took it.
    let lock = SysctlLock::acquire(std::time::Duration::ZERO).ok();
    for (path, mut entry) in journal::dead_sessions() {
        reap_session(&mut entry, &mut reaped, &mut errors);
        if lock.is_some() {
            reaped.sysctls += restore_sysctls(&mut entry, &mut errors);
        }
        let undone = entry.rules.is_empty() && entry.sysctls.is_empty();
        let saved = if undone {
            std::fs::remove_file(&path).map_err(|e| e.to_string())
        } else {
            journal::rewrite(&path, &entry).map_err(|e| e.message)
        };
        if let Err(message) = saved {
            errors.push(format!("{}: {message}", path.display()));
        }
    }
    if errors.is_empty() {
        Ok(reaped)
    } else {
        Err(AgentError::new(
            AgentErrorKind::Failed,
            format!(
                "lab clean undid {} rules, {} sysctls, {} processes, {} uploads, but: {}",
                reaped.rules,
                reaped.sysctls,
                reaped.processes,
                reaped.uploads,
                errors.join("; ")
            ),
        ))
    }
}

/// Ends one dead session's servers (those still the same processes), and
/// removes its firewall rules and its upload directory. A rule that could
/// not be removed stays in `entry` for the next try.
fn reap_session(entry: &mut JournalEntry, reaped: &mut Reaped, errors: &mut Vec<String>) {
    for server in entry.servers.drain(..) {
        if let Some(handle) = ProcessHandle::open_if_started_at(server.pid, server.start_time)
            && handle.signal(libc::SIGKILL).unwrap_or(false)
        {
            reaped.processes += 1;
        }
    }
    let tag = format!(
        "{} {}",
        crate::agent::kernel::firewall::RULE_TAG_PREFIX,
        entry.agent.pid
    );
    let mut kept = Vec::new();
    for rule in std::mem::take(&mut entry.rules) {
        match remove_rule(&rule, &tag) {
            Ok(true) => reaped.rules += 1,
            Ok(false) => {}
            Err(error) => {
                errors.push(error.message);
                kept.push(rule);
            }
        }
    }
    entry.rules = kept;
    if let Some(upload) = entry.upload.take()
        && is_upload_dir(&upload)
        && upload.exists()
    {
        match std::fs::remove_dir_all(&upload) {
            Ok(()) => reaped.uploads += 1,
            Err(e) => errors.push(format!("removing {}: {e}", upload.display())),
        }
    }
}

/// Puts back the sysctls of every dead session; the lock proves no live
/// session is changing them. Returns how many were restored.
pub fn restore_dead_sysctls(_held: &SysctlLock) -> Result<usize, AgentError> {
    let mut errors = Vec::new();
    let mut restored = 0;
    for (path, mut entry) in journal::dead_sessions() {
        if entry.sysctls.is_empty() {
            continue;
        }
        restored += restore_sysctls(&mut entry, &mut errors);
        let saved = if entry.rules.is_empty() && entry.sysctls.is_empty() && entry.upload.is_none()
        {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))
        } else {
            journal::rewrite(&path, &entry).map_err(|e| e.message)
        };
        if let Err(message) = saved {
            errors.push(message);
        }
    }
    if errors.is_empty() {
        Ok(restored)
    } else {
        Err(AgentError::new(AgentErrorKind::Failed, errors.join("; ")))
    }
}

fn restore_sysctls(entry: &mut JournalEntry, errors: &mut Vec<String>) -> usize {
    let mut restored = 0;
    let mut kept = Vec::new();
    for sysctl in std::mem::take(&mut entry.sysctls) {
        match sysctl.setting.write_original(&sysctl.original) {
            Ok(()) => restored += 1,
            Err(error) => {
                errors.push(error.message);
                kept.push(sysctl);
            }
        }
    }
    entry.sysctls = kept;
    restored
}

/// Deletes one journaled rule if it is still there: `Ok(false)` when it was
/// already gone. Only a rule carrying the dead agent's own tag is touched.
fn remove_rule(rule: &AppliedRule, tag: &str) -> Result<bool, AgentError> {
    let tagged = rule
        .arguments
        .windows(2)
        .any(|w| w[0] == "--comment" && w[1] == tag);
    if !tagged || rule.arguments.first().map(String::as_str) != Some("--append") {
        return Err(AgentError::new(
            AgentErrorKind::Failed,
            format!("a journal lists a rule that is not tagged {tag:?}; left alone"),
        ));
    }
    let with_verb = |verb: &str| {
        let mut args = rule.arguments.clone();
        args[0] = verb.to_string();
        args
    };
    if !rule.tool.check(&with_verb("--check"))? {
        return Ok(false);
    }
    rule.tool.run(&with_verb("--delete"))?;
    Ok(true)
}

/// Is `dir` an upload directory made by the ssh lab (and nothing else)?
pub fn is_upload_dir(dir: &Path) -> bool {
    let text = dir.to_string_lossy();
    text.starts_with(UPLOAD_DIR_PREFIX)
        && !text[UPLOAD_DIR_PREFIX.len()..].contains('/')
        && text.len() > UPLOAD_DIR_PREFIX.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_upload_dirs_are_upload_dirs() {
        assert!(is_upload_dir(Path::new("/tmp/tcplab-upload.abc123")));
        assert!(!is_upload_dir(Path::new("/tmp/tcplab-upload.")));
        assert!(!is_upload_dir(Path::new("/tmp/tcplab-upload.a/../../etc")));
        assert!(!is_upload_dir(Path::new("/home/tcplab-upload.abc")));
    }

    #[test]
    fn a_rule_without_the_agents_tag_is_never_deleted() {
        let foreign = AppliedRule {
            tool: crate::agent::kernel::firewall::Tool::Iptables,
            arguments: [
                "--append",
                "INPUT",
                "--match",
                "comment",
                "--comment",
                "keep ssh for the tcplab agent hosts",
                "--jump",
                "ACCEPT",
            ]
            .map(String::from)
            .to_vec(),
        };
        let error = remove_rule(&foreign, "tcplab agent 42").unwrap_err();
        assert!(error.message.contains("left alone"), "{error}");
    }
}
