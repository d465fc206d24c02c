//! The ssh config that names the hosts `c1` and `c2`: a file of the
//! user's, or one held in memory (Vagrant's `ssh-config` output), and the
//! `ssh` command lines built on it.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use super::error::LabError;
/// The ssh config to use, as a path `ssh -F` accepts.
pub struct SshConfig {
    path: PathBuf,
    /// Keeps an in-memory config (Vagrant's) alive; its path is /proc/<pid>/fd/N.
    _memory: Option<std::os::fd::OwnedFd>,
}

impl SshConfig {
    pub fn file(path: &Path) -> SshConfig {
        SshConfig {
            path: path.to_path_buf(),
            _memory: None,
        }
    }

    /// A config held in memory (a memfd), so no temporary file can be left
    /// behind, even by `kill -9`.
    pub fn in_memory(text: &str) -> Result<SshConfig, LabError> {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let setup = |e: std::io::Error| LabError::Setup(format!("cannot hold the ssh config: {e}"));
        let fd = nix::sys::memfd::memfd_create(
            "tcplab-ssh-config",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(|e| setup(e.into()))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes()).map_err(setup)?;
        // ssh refuses a config that others may write.
        nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| setup(e.into()))?;
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            file.as_raw_fd()
        ));
        Ok(SshConfig {
            path,
            _memory: Some(file.into()),
        })
    }

    fn base_command(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.arg("-F").arg(&self.path).args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]);
        command
    }

    /// `ssh … HOST -- SCRIPT`.
    pub(super) fn command(&self, host: &str, script: &str) -> std::process::Command {
        let mut command = self.base_command("ssh");
        command.arg("-T").arg(host).arg("--").arg(script);
        command
    }

    /// The address ssh connects to for `host` (`ssh -G`), if it is one.
    pub fn target_address(&self, host: &str) -> Option<IpAddr> {
        let mut command = self.base_command("ssh");
        let output = command.arg("-G").arg(host).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let hostname = text.lines().find_map(|l| l.strip_prefix("hostname "))?;
        hostname.parse().ok().or_else(|| {
            (hostname, 22)
                .to_socket_addrs()
                .ok()?
                .next()
                .map(|a| a.ip())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_reads_a_config_held_in_memory() {
        if std::process::Command::new("ssh")
            .arg("-V")
            .output()
            .is_err()
        {
            // CI installs every tool: a skip there would hide a failure.
            assert!(std::env::var_os("CI").is_none(), "no ssh client in CI");
            eprintln!("skipped: no ssh client");
            return;
        }
        let config =
            SshConfig::in_memory("Host c1\n  HostName 10.211.55.5\n  User vagrant\n").unwrap();
        assert_eq!(
            config.target_address("c1"),
            Some("10.211.55.5".parse().unwrap())
        );
    }
}
