//! Joining the namespaces of a process that holds a lab's host: its user
//! namespace (when it is not this process's own, as in a lab started
//! without root) and its network namespace. Used by `tcplab lab exec` and
//! by an agent started on a lab that is up (`--on NAME`).
//!
//! The process is named by pid and start time: the namespace files are
//! opened first and the process checked after, so a pid recycled in
//! between is found out rather than joined. Call it before any thread is
//! started: setns(CLONE_NEWUSER) refuses a multi-threaded caller.

use std::fs::File;

use nix::sched::{CloneFlags, setns};

/// Why the namespaces could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("process {pid} is gone ({why})")]
    Gone { pid: u32, why: String },
    #[error("{what}: {errno} (run as the user who started the lab, or as root)")]
    Refused {
        what: &'static str,
        errno: nix::errno::Errno,
    },
}

/// Joins the user and network namespaces of `pid`, which must still be the
/// process that started at `start_time`.
pub fn join_namespaces_of(pid: u32, start_time: u64) -> Result<(), JoinError> {
    let open = |kind: &str| {
        File::open(format!("/proc/{pid}/ns/{kind}")).map_err(|e| JoinError::Gone {
            pid,
            why: format!("cannot open its {kind} namespace: {e}"),
        })
    };
    let (user, net) = (open("user")?, open("net")?);
    if !crate::pidfd::is_running(pid, start_time) {
        return Err(JoinError::Gone {
            pid,
            why: "it is another process now".into(),
        });
    }
    if !same_namespace(&user, "/proc/self/ns/user") {
        setns(&user, CloneFlags::CLONE_NEWUSER).map_err(|errno| JoinError::Refused {
            what: "entering the lab's user namespace",
            errno,
        })?;
    }
    setns(&net, CloneFlags::CLONE_NEWNET).map_err(|errno| JoinError::Refused {
        what: "entering the host's network namespace",
        errno,
    })
}

/// Whether the namespace `open` is the one at `path`.
fn same_namespace(open: &File, path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (open.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}
