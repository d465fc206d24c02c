//! `tcplab lab clean` on one host: remove what crashed runs left behind.
//!
//! A run that ends normally leaves nothing: its agents remove their rules and
//! their uploaded executable. A crash of the agent itself (SIGKILL, a host
//! reboot mid-run) can leave tagged firewall rules, a server child, or an
//! uploaded binary in /tmp. Reaping removes exactly those, recognised by name:
//! rules whose comment starts with [`RULE_TAG_PREFIX`], processes whose command
//! line is `tcplab agent …` or `tcplab serve …` in the host's network
//! namespace, and directories named
//! [`UPLOAD_DIR_PREFIX`]`*`. It must not run while another tcplab run uses the
//! host: it would end that run's agents too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::firewall::{RULE_TAG_PREFIX, Tool};
use super::session::AgentError;

/// Where the ssh lab uploads the tcplab executable on a host: `mktemp -d` with
/// this prefix, e.g. `/tmp/tcplab-upload.x1Y2z3`.
pub const UPLOAD_DIR_PREFIX: &str = "/tmp/tcplab-upload.";

/// What was removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reaped {
    pub rules: usize,
    pub processes: usize,
    pub uploads: usize,
}

/// Ends stray agents and servers, then removes tagged rules and uploads,
/// sparing this process and the upload it runs from.
pub fn reap_host() -> Result<Reaped, AgentError> {
    let processes = end_stray_processes();
    let rules = remove_tagged_rules()?;
    let uploads = remove_uploads();
    Ok(Reaped {
        rules,
        processes,
        uploads,
    })
}

/// Is `dir` an upload directory made by the ssh lab (and nothing else)?
pub fn is_upload_dir(dir: &Path) -> bool {
    let text = dir.to_string_lossy();
    text.starts_with(UPLOAD_DIR_PREFIX)
        && !text[UPLOAD_DIR_PREFIX.len()..].contains('/')
        && text.len() > UPLOAD_DIR_PREFIX.len()
}

fn end_stray_processes() -> usize {
    let me = std::process::id();
    let strays: Vec<u32> = tcplab_processes()
        .into_iter()
        .filter(|pid| *pid != me)
        .collect();
    if strays.is_empty() {
        return 0;
    }
    // SIGTERM first: an agent removes its own rules; then make sure.
    for pid in &strays {
        // SAFETY: kill(2) with a pid read from /proc; at worst ESRCH.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGTERM) };
    }
    std::thread::sleep(Duration::from_millis(500));
    for pid in &strays {
        // SAFETY: as above.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    strays.len()
}

/// Pids of `tcplab agent` and `tcplab serve` processes of this host, that
/// is, in this network namespace: agents of the netns lab live in namespaces
/// of their own and belong to runs on this machine, not to this host.
fn tcplab_processes() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own_net = network_namespace("self");
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| own_net.is_some() && network_namespace(&pid.to_string()) == own_net)
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = cmdline.split(|b| *b == 0);
            let program = args.next().unwrap_or_default();
            let role = args.next().unwrap_or_default();
            Path::new(std::str::from_utf8(program).unwrap_or_default())
                .file_name()
                .is_some_and(|name| name == "tcplab")
                && (role == b"agent" || role == b"serve")
        })
        .collect()
}

/// The inode of a process's network namespace.
fn network_namespace(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

fn remove_tagged_rules() -> Result<usize, AgentError> {
    let mut removed = 0;
    for tool in Tool::BOTH {
        // A host without ip6tables has no IPv6 rules of ours either.
        if tool == Tool::Ip6tables && !tool.is_installed() {
            continue;
        }
        let listing = tool.list_rules()?;
        for line in listing.lines() {
            if !line.starts_with("-A ") || !line.contains(RULE_TAG_PREFIX) {
                continue;
            }
            let mut args = split_rule(line);
            args[0] = "-D".to_string();
            tool.run(&args)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Splits an `iptables -S` line into arguments, honouring double quotes
/// (`--comment "tcplab agent 42"`).
fn split_rule(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

fn remove_uploads() -> usize {
    let own = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return 0;
    };
    let uploads: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|path| is_upload_dir(path) && Some(path) != own.as_ref())
        .collect();
    uploads
        .iter()
        .filter(|dir| std::fs::remove_dir_all(dir).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_tagged_rule() {
        let line = r#"-A OUTPUT -p tcp -m tcp --dport 8080 --tcp-flags FIN FIN -m comment --comment "tcplab agent 42" -j DROP"#;
        let args = split_rule(line);
        assert_eq!(args[0], "-A");
        assert!(args.contains(&"tcplab agent 42".to_string()));
        assert_eq!(args.last().map(String::as_str), Some("DROP"));
    }

    #[test]
    fn only_upload_dirs_are_upload_dirs() {
        assert!(is_upload_dir(Path::new("/tmp/tcplab-upload.abc123")));
        assert!(!is_upload_dir(Path::new("/tmp/tcplab-upload.")));
        assert!(!is_upload_dir(Path::new("/tmp/tcplab-upload.a/../../etc")));
        assert!(!is_upload_dir(Path::new("/home/tcplab-upload.abc")));
    }
}
