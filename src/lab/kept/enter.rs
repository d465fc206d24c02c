//! Stepping into a host of a kept lab: this process joins the host's
//! network namespace (and, for a lab started without root, the user
//! namespace that owns it), gets a mount namespace of its own in which the
//! lab's `hosts` file is /etc/hosts (so `nc c2 8080` finds c2, as
//! `ip netns exec` does with /etc/netns), and a hostname of the host's
//! name, then becomes the command. Its stdin, stdout, stderr, terminal and
//! exit code are then the command's own.
//!
//! It must run before any thread is started: setns(CLONE_NEWUSER) and
//! unshare(CLONE_NEWNS) refuse a multi-threaded caller.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use super::record::{HostRecord, KeptLab};
use crate::lab::error::LabError;
use crate::namespaces::{JoinError, join_namespaces_of};

/// Becomes `command` inside `host` of `lab`, whose directory is `dir`.
/// Returns only on failure.
pub fn exec_in(lab: &KeptLab, host: &HostRecord, dir: &Path, command: &[OsString]) -> LabError {
    match enter(lab, host, dir).and_then(|()| exec(command)) {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

fn enter(lab: &KeptLab, host: &HostRecord, dir: &Path) -> Result<(), LabError> {
    join_namespaces_of(host.agent.pid, host.agent.start_time).map_err(|error| match error {
        JoinError::Gone { why, .. } => gone(lab, host, &why),
        JoinError::Refused { what, errno } => refused(what, errno),
    })?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .map_err(|e| refused("making a mount namespace for /etc/hosts", e))?;
    // Nothing mounted here reaches the machine's own mount table.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| refused("making / private in the new mount namespace", e))?;
    mount(
        Some(&dir.join("hosts")),
        "/etc/hosts",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| refused("putting the lab's hosts file on /etc/hosts", e))?;
    nix::unistd::sethostname(&host.name).map_err(|e| refused("naming the host", e))
}

fn exec(command: &[OsString]) -> Result<std::convert::Infallible, LabError> {
    let argv: Vec<CString> = command
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| LabError::Usage("a command argument holds a NUL byte".into()))?;
    let program = argv
        .first()
        .ok_or_else(|| LabError::Usage("which command? give it after --".into()))?;
    nix::unistd::execvp(program, &argv).map_err(|errno| {
        let name = String::from_utf8_lossy(program.as_bytes()).into_owned();
        if errno == nix::errno::Errno::ENOENT {
            LabError::Usage(format!("{name}: no such command in PATH"))
        } else {
            LabError::Environment {
                host: "this machine".into(),
                message: format!("cannot run {name}: {errno}"),
            }
        }
    })
}

fn gone(lab: &KeptLab, host: &HostRecord, why: &str) -> LabError {
    LabError::Environment {
        host: host.name.clone(),
        message: format!(
            "{} of lab {} is gone ({why}); `tcplab lab clean` removes the lab",
            host.name, lab.name
        ),
    }
}

fn refused(what: &str, errno: nix::errno::Errno) -> LabError {
    LabError::Environment {
        host: "this machine".into(),
        message: format!("{what}: {errno} (run as the user who started the lab, or as root)"),
    }
}
