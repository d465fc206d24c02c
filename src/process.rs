//! Child processes that cannot outlive their parent.
//!
//! The orchestrator's agents and an agent's server hold network namespaces
//! alive just by existing. If the parent is killed with SIGKILL it gets no
//! chance to clean up, so the kernel must do it: `PR_SET_PDEATHSIG` makes the
//! child receive a signal the moment its parent dies. Our runtimes are
//! single-threaded, so "the thread that spawned the child" (which is what the
//! kernel actually watches) lives as long as the process.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Where the program `name` is: the first match in PATH, then in
/// `extra_dirs` (unprivileged users often lack /usr/sbin in PATH).
pub fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Arranges for the child of `command` to get `signal` when this process dies,
/// including the race where this process dies before the child is set up.
pub fn die_with_parent(command: &mut std::process::Command, signal: libc::c_int) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe system calls (prctl, getppid, kill on itself).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The parent died between fork and prctl: nobody will signal us.
                libc::kill(libc::getpid(), signal);
            }
            Ok(())
        });
    }
}

/// Starts `command` as a tokio child that gets SIGKILL when this process
/// dies and when its handle is dropped: an agent's server programs.
pub fn spawn_tied_child(
    mut command: std::process::Command,
) -> std::io::Result<tokio::process::Child> {
    die_with_parent(&mut command, libc::SIGKILL);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    command.spawn()
}
