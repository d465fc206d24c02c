//! The two guests' snapshots, as one boot uses them: which to restore,
//! saving them after a cold boot, and freshening restored guests (see
//! [`super::snapshot`] for what a snapshot is and when it is valid).

use crate::protocol::Freshen;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::LabHostPair;
use super::super::error::LabError;
use super::kernel_fetch::sha256_of;
use super::qemu::{GuestSpec, machine_options};
use super::qmp::Monitor;
use super::snapshot::{self, SnapshotKey};

/// How long saving one guest may take (about a second under TCG).
const SAVE_PATIENCE: Duration = Duration::from_secs(60);

/// Whether a boot may use snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshots {
    /// Neither restore nor save (`--cold`, a KVM trial boot).
    Off,
    /// Restore both guests if both are saved; boot cold and save otherwise.
    Use,
    /// Boot cold and save (a restore just failed).
    SaveOnly,
}

/// Where c1's and c2's snapshots are for this boot, and whether to
/// restore them.
pub struct GuestSnapshots {
    pub paths: [PathBuf; 2],
    pub restore: bool,
}

impl GuestSnapshots {
    /// The snapshots of these two guests, or `None` when `snapshots` is
    /// off or their key cannot be made (then the boot is simply cold).
    pub fn find(
        snapshots: Snapshots,
        release: &str,
        initramfs: &Path,
        guests: [&GuestSpec; 2],
    ) -> Option<GuestSnapshots> {
        if snapshots == Snapshots::Off {
            return None;
        }
        let cache = crate::lab::cache::trusted_cache_dir().ok()?;
        let initramfs_sha256 =
            std::fs::read_to_string(initramfs.with_extension("cpio.sha256")).ok()?;
        // Hashing a kernel takes tens of milliseconds under load: once per
        // file, and both guests boot the same one.
        let first = sha256_of(guests[0].vmlinuz).ok()?;
        let second = if guests[1].vmlinuz == guests[0].vmlinuz {
            first.clone()
        } else {
            sha256_of(guests[1].vmlinuz).ok()?
        };
        let key = |host, guest: &GuestSpec, vmlinuz_sha256: &str| {
            SnapshotKey::new(
                release,
                host,
                vmlinuz_sha256,
                initramfs_sha256.trim(),
                &machine_options(guest),
            )
            .map(|key| key.path(&cache))
        };
        let paths = [
            key("c1", guests[0], &first).ok()?,
            key("c2", guests[1], &second).ok()?,
        ];
        let restore = snapshots == Snapshots::Use && paths.iter().all(|p| p.is_file());
        Some(GuestSnapshots { paths, restore })
    }

    /// Removes both snapshots (a restore from them failed).
    pub fn discard(&self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Saves both freshly booted guests through their monitors, side by side.
/// A failed save costs the next run its warm start, not this run its
/// hosts: it is said on stderr and the run goes on. A guest that qemu
/// would not resume afterwards is an error: the run cannot use it.
pub async fn save_both(paths: &[PathBuf; 2], monitors: [UnixStream; 2]) -> Result<(), LabError> {
    let [c1, c2] = monitors;
    let save = |host: &'static str, path: PathBuf, stream: UnixStream| {
        tokio::task::spawn_blocking(move || save_one(host, &path, stream))
    };
    let (c1, c2) = tokio::join!(
        save("c1", paths[0].clone(), c1),
        save("c2", paths[1].clone(), c2)
    );
    let mut running = Ok(());
    for outcome in [c1, c2] {
        match outcome {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(save_failed))) => {
                eprintln!("tcplab: no snapshot for the next run: {save_failed}")
            }
            Ok(Err(not_running)) => running = running.and(Err(not_running)),
            Err(panicked) => {
                running = running.and(Err(LabError::Setup(format!("saving a guest: {panicked}"))))
            }
        }
    }
    running
}

/// Saves one guest; the outer error is a guest left not running (see
/// [`Monitor::save_to`]), the inner one a save that failed.
fn save_one(
    host: &'static str,
    path: &Path,
    stream: UnixStream,
) -> Result<Result<(), LabError>, LabError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // A monitor that does not open paused nothing: the guest runs on.
    let mut monitor = match Monitor::open(host, stream) {
        Ok(monitor) => monitor,
        Err(error) => return Ok(Err(error)),
    };
    if let Err(error) = std::fs::create_dir_all(dir) {
        return Ok(Err(LabError::Setup(format!(
            "creating {}: {error}",
            dir.display()
        ))));
    }
    if let Some(cache) = dir.parent() {
        snapshot::remove_abandoned(cache);
    }
    let partial = snapshot::partial_path(path);
    match monitor.save_to(&partial, SAVE_PATIENCE)? {
        Ok(()) => Ok(snapshot::keep(&partial, path)),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Ok(Err(error))
        }
    }
}

/// Gives both restored guests fresh randomness and the time.
pub async fn freshen_both(pair: &mut LabHostPair) -> Result<(), LabError> {
    let (c1, c2) = tokio::join!(
        pair.c1.call(this_machines_freshness()?),
        pair.c2.call(this_machines_freshness()?)
    );
    c1.and(c2).map(|_| ())
}

/// This machine's fresh randomness and time, for a restored guest
/// ([`Freshen`]): each guest gets its own.
fn this_machines_freshness() -> Result<Freshen, LabError> {
    use std::io::Read;
    let mut entropy = vec![0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut entropy))
        .map_err(|e| LabError::Setup(format!("reading /dev/urandom: {e}")))?;
    let realtime_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
    Ok(Freshen {
        entropy,
        realtime_ns,
    })
}
