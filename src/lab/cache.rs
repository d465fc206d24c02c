//! Where tcplab keeps what it fetched or built and may reuse: Debian
//! kernels, initramfs images, the KVM verdict, Vagrant's ssh config.
//! `$XDG_CACHE_HOME/tcplab`, or `~/.cache/tcplab`.

use std::path::PathBuf;

/// tcplab's cache directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("tcplab")
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
        let _ = std::fs::remove_file(path);
    }
}
