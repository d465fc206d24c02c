//! Rootless runs: an unprivileged user enters a user namespace of its own.
//!
//! Inside it the user is root, with the capabilities it needs over the
//! network namespaces its agents then create, and over nothing else on the
//! machine. The agents inherit the user namespace when they are started, so
//! this must happen once, in the orchestrator, before any thread exists
//! (unshare(CLONE_NEWUSER) refuses multi-threaded callers).

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getegid, geteuid};

use super::error::LabError;

/// How the lab gets its privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Already root: namespaces are created directly.
    Root,
    /// An unprivileged user, now root of its own user namespace.
    Rootless,
}

/// Makes sure the lab can create network namespaces, entering a user namespace
/// when not root. Call it before starting any thread.
pub fn acquire() -> Result<Privilege, LabError> {
    if geteuid().is_root() {
        return Ok(Privilege::Root);
    }
    let uid = geteuid();
    let gid = getegid();
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|errno| LabError::Environment {
        host: "this machine".to_string(),
        message: refusal(errno),
    })?;
    let write = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| {
            LabError::Setup(format!("cannot write {path} for the user namespace: {e}"))
        })
    };
    write("/proc/self/setgroups", "deny".to_string())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(Privilege::Rootless)
}

fn refusal(errno: Errno) -> String {
    format!(
        "not root, and the kernel refused an unprivileged user namespace ({errno}). \
         Either run as root (sudo tcplab …), or allow unprivileged user namespaces: \
         `sysctl -w kernel.unprivileged_userns_clone=1` (Debian kernels), \
         `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 23.10+), \
         or raise `user.max_user_namespaces` above 0"
    )
}
