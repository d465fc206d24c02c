//! Where tcplab keeps what it fetched or built and may reuse: Debian
//! kernels, initramfs images, the KVM verdict, Vagrant's ssh config.
//! `$XDG_CACHE_HOME/tcplab` (an absolute one), or `~/.cache/tcplab`.
//!
//! What root runs from the cache (a kernel handed to qemu, a lock file it
//! opens) must be root's alone. So root's cache is always under root's own
//! home from the password database, never a `HOME` or `XDG_CACHE_HOME` kept
//! from a user (`sudo -E`), and [`trusted_cache_dir`] refuses a cache whose
//! directory or any parent another user owns or can write, or that is
//! reached through someone else's symlink (checked with lstat, component by
//! component). Files in it are written with [`write_atomically`]: a fresh
//! file (O_EXCL, never through a link) renamed into place.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::LabError;

/// tcplab's cache directory (not created, not checked: see
/// [`trusted_cache_dir`] before reading or writing in it).
pub fn cache_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let home_of_uid = || {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(euid))
            .ok()
            .flatten()
            .map(|user| user.dir)
    };
    let base = if euid == 0 {
        home_of_uid().map(|home| home.join(".cache"))
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute()) // the XDG spec: ignore a relative one
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|home| home.is_absolute())
                    .or_else(home_of_uid)
                    .map(|home| home.join(".cache"))
            })
    };
    base.unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("tcplab")
}

/// The cache directory, created (mode 0700) if needed, after checking that
/// no other user can change what is in it.
pub fn trusted_cache_dir() -> Result<PathBuf, LabError> {
    let dir = cache_dir();
    create_private_dir(&dir)?;
    check_private(&dir)?;
    Ok(dir)
}

/// `dir` and the missing parents, each 0700.
fn create_private_dir(dir: &Path) -> Result<(), LabError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| LabError::Setup(format!("creating the cache {}: {e}", dir.display())))
}

/// Refuses `path` when it, or a directory above it, is owned by another
/// user than this one or root, is writable by group or others (a sticky
/// directory owned by root, like /tmp, aside), or is someone else's symlink.
pub fn check_private(path: &Path) -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut walked = PathBuf::new();
    for component in path.components() {
        walked.push(component);
        let meta = std::fs::symlink_metadata(&walked)
            .map_err(|e| LabError::Setup(format!("checking {}: {e}", walked.display())))?;
        let owner_ok = meta.uid() == euid || meta.uid() == 0;
        let sticky_root = meta.uid() == 0 && meta.mode() & 0o1000 != 0;
        let shared = meta.mode() & 0o022 != 0 && !meta.file_type().is_symlink();
        if !owner_ok || (shared && !sticky_root) {
            return Err(untrusted(&walked, meta.uid(), meta.mode()));
        }
    }
    Ok(())
}

fn untrusted(path: &Path, uid: u32, mode: u32) -> LabError {
    LabError::Environment {
        host: "this machine".to_string(),
        message: format!(
            "the cache {} is not this user's alone ({} is owned by uid {uid}, mode {:o}): \
             remove it, or make it yours and writable only by you",
            cache_dir().display(),
            path.display(),
            mode & 0o7777
        ),
    }
}

/// Writes `bytes` to `path` as a new file (mode 0600, never through a link)
/// renamed over the old one: no reader sees half a file, and a symlink
/// planted at `path` is replaced, not followed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".partial.")
        .tempfile_in(dir)
        .map_err(|e| LabError::Setup(format!("writing {}: {e}", path.display())))?;
    file.write_all(bytes)
        .map_err(|e| LabError::Setup(format!("writing {}: {e}", path.display())))?;
    file.persist(path)
        .map_err(|e| LabError::Setup(format!("writing {}: {}", path.display(), e.error)))?;
    Ok(())
}

/// Opens (creating it) the lock file `path` without following a link, and
/// checks it is a regular file of this user.
pub fn open_lock(path: &Path) -> Result<std::fs::File, LabError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| LabError::Setup(format!("opening the lock {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| LabError::Setup(format!("checking the lock {}: {e}", path.display())))?;
    // SAFETY: geteuid has no preconditions.
    if !meta.is_file() || meta.uid() != unsafe { libc::geteuid() } {
        return Err(untrusted(path, meta.uid(), meta.mode()));
    }
    Ok(file)
}

/// Removes all but the `keep` newest files ending in `.extension` in `dir`:
/// caches that grow with every build or every new VM stay bounded.
pub fn keep_newest(dir: &std::path::Path, extension: &str, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == extension))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for (_, path) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(&path);
        // And the hash recorded beside it, if any.
        let _ = std::fs::remove_file(path.with_extension(format!("{extension}.sha256")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_can_write_is_refused_and_a_private_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        create_private_dir(&private).unwrap();
        check_private(&private).unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let error = check_private(&shared.join("..").join("shared")).unwrap_err();
        assert!(error.to_string().contains("mode 777"), "{error}");
    }

    #[test]
    fn an_atomic_write_replaces_a_planted_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let planted = dir.path().join("kvm-verdict");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomically(&planted, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "new");
        assert!(
            !std::fs::symlink_metadata(&planted)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let lock = dir.path().join(".lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        assert!(open_lock(&lock).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
