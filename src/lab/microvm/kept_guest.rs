//! A microvm guest of a lab kept up (`tcplab lab up --lab microvm`): what
//! it has beyond an experiment's guest.
//!
//! - Its name and the lab's hosts on its kernel command line, so that its
//!   init writes /etc/hosts and the hostname (`nc c2 8080` works).
//! - [`EXEC_PORTS`] command ports (`crate::protocol::exec_channel`), each a
//!   virtio serial port that qemu serves as a Unix socket in the lab's
//!   directory: `c2.exec0` … `c2.exec3`. The directory is the owner's alone
//!   (0700), so nobody else can connect.
//! - The tools a person types, copied from this machine with their
//!   libraries into an initramfs of its own ([`TOOLS`]); an experiment's
//!   guests stay without them, and boot as fast as before.

use std::path::{Path, PathBuf};

use crate::protocol::exec_channel::{EXEC_PORTS, exec_port_name};

/// The commands a kept guest carries, as found on this machine's PATH
/// (besides iptables and tcplab, which every guest has). A tool this
/// machine lacks is left out, and `lab up` says so.
pub const TOOLS: [&str; 8] = ["sh", "ip", "ss", "nc", "tcpdump", "kill", "cat", "sleep"];

/// The guest's part in a kept lab.
#[derive(Debug, Clone)]
pub struct KeptGuestSpec {
    /// `c1` or `c2`.
    pub name: &'static str,
    /// The lab's hosts, `c1=ADDRESS,c2=ADDRESS`.
    pub hosts: String,
    /// The lab's directory, where the command ports' sockets go.
    pub dir: PathBuf,
}

impl KeptGuestSpec {
    /// What the kernel command line says to the guest's init.
    pub fn kernel_arguments(&self) -> String {
        format!(
            " tcplab.host={} tcplab.hosts={} tcplab.exec={EXEC_PORTS}",
            self.name, self.hosts
        )
    }

    /// qemu's options for the command ports.
    pub fn qemu_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        for index in 0..EXEC_PORTS {
            let socket = exec_socket(&self.dir, self.name, index);
            options.extend([
                "-chardev".to_string(),
                format!(
                    "socket,id=exec{index},path={},server=on,wait=off",
                    socket.display()
                ),
                "-device".to_string(),
                format!(
                    "virtserialport,chardev=exec{index},name={}",
                    exec_port_name(index)
                ),
            ]);
        }
        options
    }
}

/// The socket of `host`'s command port `index` in the lab's directory.
pub fn exec_socket(dir: &Path, host: &str, index: usize) -> PathBuf {
    dir.join(format!("{host}.exec{index}"))
}

/// The lock a client holds while it uses that port.
pub fn exec_lock(dir: &Path, host: &str, index: usize) -> PathBuf {
    dir.join(format!("{host}.exec{index}.lock"))
}

/// A tool's path on this machine: the first directory of PATH (or the
/// usual ones) that has it, symlinks followed.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
        .and_then(|found| found.canonicalize().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_guest_has_four_command_ports_in_the_labs_directory() {
        let spec = KeptGuestSpec {
            name: "c2",
            hosts: "c1=10.211.55.5,c2=10.211.55.10".into(),
            dir: "/run/tcplab/labs/lab1".into(),
        };
        assert_eq!(
            spec.kernel_arguments(),
            " tcplab.host=c2 tcplab.hosts=c1=10.211.55.5,c2=10.211.55.10 tcplab.exec=4"
        );
        let options = spec.qemu_options();
        assert_eq!(options.len(), 4 * EXEC_PORTS);
        assert_eq!(
            options[1],
            "socket,id=exec0,path=/run/tcplab/labs/lab1/c2.exec0,server=on,wait=off"
        );
        assert_eq!(
            options[3],
            "virtserialport,chardev=exec0,name=tcplab.exec.0"
        );
    }

    #[test]
    fn tools_are_found_on_this_machine() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("no-such-tool-here").is_none());
    }
}
