//! `tcplab lab kernels`: the kernel lines and builds Debian's archive
//! offers, which of them are cached, and emptying that cache.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::super::error::LabError;
use super::kernel::{self, archive_index, unpacked};
use super::kernel_archive::{KernelBuild, build_dir};

/// The whole listing, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct KernelListing {
    pub cache: PathBuf,
    /// When the archive's indexes were read (seconds since 1970).
    pub index_read_at: u64,
    /// Every line, oldest first.
    pub lines: Vec<LineListing>,
    pub initramfs_images: usize,
}

/// One kernel line: `6.12` and its builds, oldest first.
#[derive(Debug, Serialize)]
pub struct LineListing {
    pub line: String,
    /// The newest build that can boot; `null` when none can.
    pub newest: Option<String>,
    pub builds: Vec<BuildListing>,
}

#[derive(Debug, Serialize)]
pub struct BuildListing {
    #[serde(flatten)]
    pub build: KernelBuild,
    /// Set when the build is in the cache, unpacked and unchanged.
    pub cached: Option<CachedKernel>,
}

#[derive(Debug, Serialize)]
pub struct CachedKernel {
    /// `uname -r` of the build.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// Saved guests of this release (`--cold` aside, runs restore them
    /// instead of booting), and the disk they take.
    pub snapshots: usize,
    pub snapshot_bytes: u64,
}

/// Reads the archive's index (again, with `refresh`) and the cache.
pub fn listing(refresh: bool) -> Result<KernelListing, LabError> {
    let index = archive_index(refresh)?;
    let cache = kernel::cache_dir();
    let kernels = cache.join("kernels");
    let saved = super::snapshot::listed(&cache);
    let lines = index
        .lines()
        .into_iter()
        .map(|line| {
            let builds: Vec<BuildListing> = index
                .builds
                .iter()
                .filter(|b| b.line == line)
                .map(|build| BuildListing {
                    cached: unpacked(&build_dir(&kernels, build)).map(|k| {
                        let ours = saved.iter().filter(|(release, _)| *release == k.release);
                        CachedKernel {
                            snapshots: ours.clone().count(),
                            snapshot_bytes: ours.map(|(_, bytes)| bytes).sum(),
                            release: k.release,
                            vmlinuz: k.vmlinuz,
                        }
                    }),
                    build: build.clone(),
                })
                .collect();
            let newest = index.newest(&line).map(|b| b.version.clone());
            LineListing {
                line,
                newest,
                builds,
            }
        })
        .collect();
    Ok(KernelListing {
        initramfs_images: initramfs_images(&cache.join("initramfs")),
        cache,
        index_read_at: index
            .read_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        lines,
    })
}

fn initramfs_images(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cpio"))
            .count()
    })
}

impl KernelListing {
    /// The table a person reads.
    pub fn human(&self) -> String {
        let age = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(self.index_read_at);
        let mut out = format!(
            "Debian's cloud kernels: {} lines, {} builds (the archive read {} min ago; \
             --refresh reads it again)\n\n  {:<6} {:<10} {:>6}  {:<20} cached\n",
            self.lines.len(),
            self.lines.iter().map(|l| l.builds.len()).sum::<usize>(),
            age / 60,
            "line",
            "newest",
            "builds",
            "newest from"
        );
        for line in &self.lines {
            out.push_str(&line.row());
        }
        for line in self.lines.iter().filter(|l| l.newest.is_none()) {
            if let Some(why) = line.builds.last().and_then(|b| b.build.missing.as_ref()) {
                out.push_str(&format!("\n  {} cannot boot: {why}", line.line));
            }
        }
        out.push_str(&format!(
            "\n--kernel LINE boots a line's newest build, --kernel BUILD one build, \
             --kernel all (tcplab matrix) every line; --json lists every build.\n\
             cache: {} ({} initramfs images); --prune empties it. A run restores a \
             kernel's saved guests instead of booting them (--cold boots).\n",
            self.cache.display(),
            self.initramfs_images
        ));
        out
    }
}

/// Empties the kernel cache (kernels, their indexes, initramfs images,
/// saved guests);
/// returns how many bytes it held.
pub fn prune() -> Result<u64, LabError> {
    use std::os::fd::AsRawFd;
    let cache = crate::lab::cache::trusted_cache_dir()?;
    let lock = crate::lab::cache::open_lock(&cache.join(".lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let mut freed = 0;
    for dir in ["kernels", "initramfs", "snapshots"].map(|d| cache.join(d)) {
        freed += size_of_tree(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LabError::Setup(format!("removing {}: {e}", dir.display()))),
        }
    }
    Ok(freed)
}

/// Bytes under `path`, links not followed.
fn size_of_tree(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| size_of_tree(&e.path()))
            .sum()
    })
}

impl LineListing {
    /// The line's row of the table: newest build, how many, from which
    /// suite, and what of it is cached.
    fn row(&self) -> String {
        let cached: Vec<String> = self
            .builds
            .iter()
            .filter_map(|b| {
                let kernel = b.cached.as_ref()?;
                let warm = match kernel.snapshots {
                    0 => String::new(),
                    n => format!(", {n} saved guests of {} MiB", kernel.snapshot_bytes >> 20),
                };
                Some(format!(
                    "{} ({}{warm})",
                    b.build.version,
                    kernel.vmlinuz.display()
                ))
            })
            .collect();
        let newest = self
            .builds
            .iter()
            .rev()
            .find(|b| Some(&b.build.version) == self.newest.as_ref());
        let suite = newest.map_or("", |b| b.build.suite.as_str());
        let cached = if cached.is_empty() {
            "-".to_string()
        } else {
            cached.join(", ")
        };
        format!(
            "  {:<6} {:<10} {:>6}  {:<20} {cached}\n",
            self.line,
            self.newest.as_deref().unwrap_or("none"),
            self.builds.len(),
            suite,
        )
    }
}
