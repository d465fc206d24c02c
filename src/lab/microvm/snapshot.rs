//! Warm starts: each guest saved once its agent is ready, restored instead
//! of booted.
//!
//! Under TCG a cold boot of a Debian cloud kernel to tcplab's agent takes 3
//! to 6 s, most of it the kernel's own start-up; restoring a guest that has
//! already booted takes a few tenths of a second. The first cold boot of a
//! kernel with a given initramfs saves each guest with qemu's own migration
//! (`migrate exec:cat > FILE`, the guest running on afterwards); later runs
//! start qemu with `-incoming exec:cat FILE`.
//!
//! A snapshot is valid only for exactly what made it, so its file name
//! carries a hash of all of it ([`SnapshotKey`]): the vmlinuz and the
//! initramfs (by content), qemu's version, the machine options and the
//! kernel command line with the guest's address. Anything else gets no
//! snapshot and boots cold. Snapshots live in the cache directory, which
//! only its owner can write (`lab::cache`), and are renamed into place
//! once complete, so a reader never sees half of one.
//!
//! A restored guest wakes up with the memory of the moment it was saved:
//! the same random pool and a stale wall clock. Before any case the
//! orchestrator sends it fresh entropy and the time (`Request::Freshen`).
//! Nothing was on the network yet when it was saved, so the kernel's
//! secrets for ephemeral ports and sequence numbers, drawn on first use,
//! are drawn from the fresh pool.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::super::error::LabError;

/// Raised whenever what a guest is made of changes in a way the key's
/// other parts do not see (the devices `qemu::command` adds).
const FORMAT: &str = "tcplab-snapshot-1";
/// Snapshots kept: the pairs of a dozen kernels, enough for a matrix over
/// every line Debian ships. Each is the guest's touched memory, 100 to 150
/// MiB, so the directory stays under about 3.5 GiB.
const KEEP: usize = 24;
/// The file ending of a snapshot.
pub const EXTENSION: &str = "vmstate";

/// Everything a saved guest depends on, hashed into its file name.
pub struct SnapshotKey {
    pub release: String,
    pub host: &'static str,
    pub digest: String,
}

impl SnapshotKey {
    /// The key of guest `host` booting the kernel and initramfs whose
    /// content hashes these are, with these machine options.
    pub fn new(
        release: &str,
        host: &'static str,
        vmlinuz_sha256: &str,
        initramfs_sha256: &str,
        machine: &[String],
    ) -> Result<SnapshotKey, LabError> {
        let mut hasher = Sha256::new();
        for part in [FORMAT, qemu_version()?, vmlinuz_sha256, initramfs_sha256] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for option in machine {
            hasher.update(option.as_bytes());
            hasher.update([0]);
        }
        Ok(SnapshotKey {
            release: release.to_string(),
            host,
            digest: hex::encode(hasher.finalize())[..20].to_string(),
        })
    }

    /// Where this guest's snapshot is (or will be).
    pub fn path(&self, cache: &Path) -> PathBuf {
        directory(cache).join(format!(
            "{}-{}-{}.{EXTENSION}",
            self.release, self.host, self.digest
        ))
    }
}

/// The snapshots' directory in the cache.
pub fn directory(cache: &Path) -> PathBuf {
    cache.join("snapshots")
}

/// A fresh name beside `path` to save into before renaming it there.
pub fn partial_path(path: &Path) -> PathBuf {
    path.with_extension(format!("{EXTENSION}.partial-{}", std::process::id()))
}

/// Renames a complete snapshot into place and keeps the directory bounded.
pub fn keep(partial: &Path, path: &Path) -> Result<(), LabError> {
    std::fs::rename(partial, path).map_err(|e| {
        let _ = std::fs::remove_file(partial);
        LabError::Setup(format!("keeping the snapshot {}: {e}", path.display()))
    })?;
    if let Some(dir) = path.parent() {
        crate::lab::cache::keep_newest(dir, EXTENSION, KEEP);
    }
    Ok(())
}

/// Removes what saves that never finished left (their tcplab was killed):
/// partial files whose process is gone.
pub fn remove_abandoned(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(directory(cache)) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .rsplit_once(".partial-")
            .and_then(|(_, pid)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The kernel releases that have snapshots in `cache`, with their size.
pub fn listed(cache: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(directory(cache)) else {
        return Vec::new();
    };
    let mut found: Vec<(String, u64)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let release = name.rsplitn(3, '-').nth(2)?.to_string();
            Some((release, e.metadata().ok()?.len()))
        })
        .collect();
    found.sort();
    found
}

/// `qemu-system-x86_64 --version`'s first line, read once per process.
fn qemu_version() -> Result<&'static str, LabError> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    let version = VERSION.get_or_init(|| {
        let qemu = super::qemu::qemu_binary().map_err(|e| e.to_string())?;
        let output = std::process::Command::new(&qemu)
            .arg("--version")
            .output()
            .map_err(|e| format!("{} --version: {e}", qemu.display()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text.lines().next().unwrap_or_default().to_string())
    });
    version
        .as_deref()
        .map_err(|why| LabError::Setup(why.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_names_the_release_and_the_guest() {
        let key = SnapshotKey {
            release: "6.1.0-55-cloud-amd64".into(),
            host: "c2",
            digest: "0123456789abcdef0123".into(),
        };
        let path = key.path(Path::new("/cache"));
        assert_eq!(
            path,
            Path::new("/cache/snapshots/6.1.0-55-cloud-amd64-c2-0123456789abcdef0123.vmstate")
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name.rsplitn(3, '-').nth(2), Some("6.1.0-55-cloud-amd64"));
        assert!(
            partial_path(&path)
                .to_string_lossy()
                .contains(".vmstate.partial-")
        );
    }
}
