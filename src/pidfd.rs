//! Signalling a process without the pid-reuse race: a pidfd.
//!
//! A plain `kill(pid)` hits whatever process has that number *now*: if ours
//! exited and was reaped, the number may already belong to someone else.
//! A pidfd (Linux 5.3+) names one process for as long as the descriptor is
//! open; signalling a process that has gone fails with ESRCH instead of
//! reaching a stranger. Opening one is only safe while the process cannot
//! have been reaped yet (our own unreaped child), or when its start time is
//! checked after opening (see [`ProcessHandle::open_if_started_at`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One process, held by a pidfd.
#[derive(Debug)]
pub struct ProcessHandle {
    fd: OwnedFd,
    pid: u32,
}

impl ProcessHandle {
    /// Opens a pidfd for `pid`. Only correct for a child this process has not
    /// reaped (its pid cannot have been reused).
    pub fn open_child(pid: u32) -> io::Result<ProcessHandle> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ProcessHandle {
            // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
            pid,
        })
    }

    /// Opens a pidfd for `pid` if it is the process that started at
    /// `start_time` (clock ticks since boot, /proc/PID/stat field 22): the
    /// check after opening proves the descriptor holds that very process.
    pub fn open_if_started_at(pid: u32, start_time: u64) -> Option<ProcessHandle> {
        let handle = ProcessHandle::open_child(pid).ok()?;
        (start_time_of(pid) == Some(start_time)).then_some(handle)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal`; `Ok(false)` when the process has already exited.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<bool> {
        // SAFETY: pidfd_send_signal with our open pidfd and no siginfo.
        let result = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if result == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ESRCH) {
            return Ok(false);
        }
        Err(error)
    }

    /// Has the process exited? (A pidfd polls readable once it has.)
    pub fn exited(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own, without waiting.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0
    }
}

/// When `pid` started, in clock ticks since boot: with the pid, this names
/// one process for good (a reused pid has a later start time).
pub fn start_time_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the fields
    // after it start after the last ')'. starttime is field 22 overall, the
    // 20th after the name.
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Is `pid` the process that started at `start_time`, and still running? A
/// zombie (dead, not yet reaped: an orphan under an init that does not
/// reap, say) is not running.
pub fn is_running(pid: u32, start_time: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = after_name.split_whitespace();
    let state = fields.next().unwrap_or("X");
    let started = fields.nth(18).and_then(|t| t.parse::<u64>().ok());
    !matches!(state, "Z" | "X" | "x") && started == Some(start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_signalled_until_it_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let handle = ProcessHandle::open_child(child.id()).unwrap();
        assert!(!handle.exited());
        assert!(handle.signal(libc::SIGKILL).unwrap());
        child.wait().unwrap();
        assert!(handle.exited());
        // Reaped: the pid may be anyone's now, but the pidfd still names ours.
        assert!(!handle.signal(libc::SIGKILL).unwrap());
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_time_of(pid).unwrap();
        // Exited but not reaped: a zombie until wait().
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(start_time_of(pid), Some(started));
        assert!(!is_running(pid, started));
        child.wait().unwrap();
        assert!(is_running(
            std::process::id(),
            start_time_of(std::process::id()).unwrap()
        ));
    }

    #[test]
    fn start_time_tells_a_reused_pid_apart() {
        let me = std::process::id();
        let started = start_time_of(me).unwrap();
        assert!(ProcessHandle::open_if_started_at(me, started).is_some());
        assert!(ProcessHandle::open_if_started_at(me, started + 1).is_none());
    }
}
