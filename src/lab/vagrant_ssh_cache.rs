//! The ssh config `vagrant ssh-config` printed, remembered for the same
//! machines, so that a run on running VMs needs no Vagrant (Ruby) at all.
//!
//! The key is the project's path and the ids `vagrant up` gave the machines
//! (`.vagrant/machines/<name>/<provider>/id`): a `vagrant destroy` and `up`
//! makes new ids and so a new key. A remembered config is used only while
//! both machines answer on the ssh address it names (a short TCP connect);
//! halted or re-addressed VMs send tcplab back to Vagrant. The cache lives in
//! `~/.cache/tcplab/vagrant`, private to the user (it says which key opens
//! the VMs), and is ignored if anyone else could write it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::hosts::MACHINES;

/// How long a machine may take to accept a TCP connection on its ssh port.
const REACHABLE_WITHIN: Duration = Duration::from_millis(500);

fn cache_dir() -> PathBuf {
    super::cache::cache_dir().join("vagrant")
}

/// The remembered config's file for the machines `project` has now.
fn entry(project: &Path) -> Option<PathBuf> {
    let mut hasher = Sha256::new();
    hasher.update(project.as_os_str().as_encoded_bytes());
    for machine in MACHINES {
        let providers = std::fs::read_dir(project.join(".vagrant/machines").join(machine)).ok()?;
        let mut ids: Vec<Vec<u8>> = providers
            .filter_map(|p| std::fs::read(p.ok()?.path().join("id")).ok())
            .collect();
        if ids.is_empty() {
            return None;
        }
        ids.sort();
        hasher.update(machine.as_bytes());
        ids.iter().for_each(|id| hasher.update(id));
    }
    let key: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(cache_dir().join(format!("{}.ssh_config", &key[..32])))
}

/// Only this user may write the directory and the file.
fn private(path: &Path) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.uid() == me && m.permissions().mode() & 0o077 == 0)
}

/// The remembered config, if both machines answer where it says.
pub fn load(project: &Path) -> Option<String> {
    let path = entry(project)?;
    if !private(&cache_dir()) || !private(&path) {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let targets = ssh_targets(&text);
    let reachable = targets.len() == MACHINES.len()
        && targets
            .iter()
            .all(|target| TcpStream::connect_timeout(target, REACHABLE_WITHIN).is_ok());
    if reachable {
        Some(text)
    } else {
        let _ = std::fs::remove_file(&path);
        None
    }
}

/// Remembers `text` for the machines `project` has now. Best effort: a run
/// works the same without it.
pub fn store(project: &Path, text: &str) {
    let Some(path) = entry(project) else { return };
    let dir = cache_dir();
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    if !private(&dir) {
        return;
    }
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&partial, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    super::cache::keep_newest(&dir, "ssh_config", KEEP_ENTRIES);
}

/// How many remembered configs stay (each `vagrant up` of new machines
/// makes a new one).
const KEEP_ENTRIES: usize = 8;

/// The `HostName`:`Port` of each Host block of an ssh config.
fn ssh_targets(text: &str) -> Vec<SocketAddr> {
    let mut targets = Vec::new();
    let mut host: Option<(String, u16)> = None;
    let mut finish = |host: &mut Option<(String, u16)>| {
        if let Some((name, port)) = host.take()
            && let Some(address) = (name.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
        {
            targets.push(address);
        }
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Host"), Some(_)) => {
                finish(&mut host);
                host = Some((String::new(), 22));
            }
            (Some("HostName"), Some(name)) => {
                if let Some(host) = host.as_mut() {
                    host.0 = name.to_string();
                }
            }
            (Some("Port"), Some(port)) => {
                if let (Some(host), Ok(port)) = (host.as_mut(), port.parse()) {
                    host.1 = port;
                }
            }
            _ => {}
        }
    }
    finish(&mut host);
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_hosts_ssh_address() {
        let config = "Host c1\n  HostName 192.168.121.5\n  User vagrant\n  Port 22\n\
                      Host c2\n  HostName 127.0.0.1\n  Port 2222\n";
        assert_eq!(
            ssh_targets(config),
            vec![
                "192.168.121.5:22".parse().unwrap(),
                "127.0.0.1:2222".parse().unwrap()
            ]
        );
    }
}
