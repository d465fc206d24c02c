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
