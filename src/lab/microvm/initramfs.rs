//! The initramfs of a microvm guest, built from this machine's own files: no
//! distribution inside the VM.
//!
//! It holds this tcplab executable as `/init` (see `agent::guest_init`), the
//! shared libraries it and iptables need (as the dynamic loader itself lists
//! them: `ld.so --list`), iptables' nf_tables flavour (`xtables-nft-multi`)
//! with its extensions, `/etc/protocols`, and the kernel modules the agent
//! needs with their dependencies, in load order. The archive (newc cpio,
//! written with the `cpio` crate) is cached next to the kernel, keyed by the
//! kernel release and tcplab's SHA-256: a second run builds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio_archive::Archive;
use super::guest_modules::modules_in_load_order;
use super::kept_guest::{TOOLS, find_tool};
use super::kernel::Kernel;
use crate::agent::guest_init::LOAD_ORDER;
use crate::lab::error::LabError;

/// Where extensions of iptables live on Debian-like and other systems.
const XTABLES_DIRS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/xtables",
    "/usr/lib64/xtables",
    "/usr/lib/xtables",
];

/// The cached initramfs for `kernel` and this tcplab, built if missing.
pub fn obtain(
    kernel: &Kernel,
    tcplab_sha256: &str,
    cache: &Path,
    tools: bool,
) -> Result<PathBuf, LabError> {
    let dir = cache.join("initramfs");
    let flavour = if tools { "-tools" } else { "" };
    let path = dir.join(format!(
        "{}-{}{flavour}.cpio",
        kernel.release,
        &tcplab_sha256[..16]
    ));
    // Reused only when it is still the file this process's kind built: its
    // SHA-256 was recorded beside it when it was written.
    let recorded = path.with_extension("cpio.sha256");
    if still_as_built(&path, &recorded) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| setup(format!("creating {}: {e}", dir.display())))?;
    let mut archive = Archive::default();
    add_init(&mut archive, &dir)?;
    add_iptables(&mut archive)?;
    if tools {
        add_tools(&mut archive)?;
    }
    for file in ["/etc/protocols", "/etc/services"] {
        if let Ok(bytes) = std::fs::read(file) {
            archive.file(file, bytes, 0o644);
        }
    }
    let mut order = String::new();
    for (name, bytes) in modules_in_load_order(&kernel.modules)? {
        let target = format!("/lib/modules/{name}.ko");
        order.push_str(&target);
        order.push('\n');
        archive.file(&target, bytes, 0o644);
    }
    archive.file(LOAD_ORDER, order.into_bytes(), 0o644);
    for dir in ["/dev", "/proc", "/sys", "/run", "/tmp"] {
        archive.dir(dir);
    }
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    archive.write(&partial)?;
    let hash = super::kernel_fetch::sha256_of(&partial)?;
    std::fs::rename(&partial, &path).map_err(|e| setup(format!("{}: {e}", path.display())))?;
    crate::lab::cache::write_atomically(&recorded, hash.as_bytes())?;
    crate::lab::cache::keep_newest(&dir, "cpio", KEEP_IMAGES);
    Ok(path)
}

/// Whether the image at `path` is still the one whose SHA-256 `recorded`
/// holds.
fn still_as_built(path: &Path, recorded: &Path) -> bool {
    path.is_file()
        && match (
            std::fs::read_to_string(recorded),
            super::kernel_fetch::sha256_of(path),
        ) {
            (Ok(want), Ok(have)) => want.trim() == have,
            _ => false,
        }
}

/// This tcplab as `/init`, without its debug information (a debug build is
/// 80 MB, 13 MB stripped): the guest holds the archive and its unpacked
/// copy in RAM.
fn add_init(archive: &mut Archive, dir: &Path) -> Result<(), LabError> {
    let exe = std::env::current_exe().map_err(|e| setup(format!("finding tcplab: {e}")))?;
    let stripped = dir.join(format!("init-{}.partial", std::process::id()));
    let init = match Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
    {
        Ok(status) if status.success() => stripped.clone(),
        _ => exe,
    };
    let added = archive.add_program(&init, "/init");
    let _ = std::fs::remove_file(&stripped);
    added
}

/// iptables' nf_tables flavour, under both of its names, with its
/// extensions.
fn add_iptables(archive: &mut Archive) -> Result<(), LabError> {
    let iptables = find_xtables_nft()?;
    archive.add_program(&iptables, "/usr/sbin/xtables-nft-multi")?;
    archive.symlink("/usr/sbin/iptables", "xtables-nft-multi");
    archive.symlink("/usr/sbin/ip6tables", "xtables-nft-multi");
    let Some(extensions) = XTABLES_DIRS.iter().map(Path::new).find(|d| d.is_dir()) else {
        return Ok(());
    };
    for entry in std::fs::read_dir(extensions).map_err(|e| setup(e.to_string()))? {
        let path = entry.map_err(|e| setup(e.to_string()))?.path();
        if path.extension().is_some_and(|x| x == "so") {
            archive.add_program(&path, &path.to_string_lossy())?;
        }
    }
    Ok(())
}

/// A person's tools, for a guest of a lab kept up ([`TOOLS`]), under
/// /usr/bin with /bin/sh beside; and tcplab by its own name, for `tcplab
/// serve` in the guest.
fn add_tools(archive: &mut Archive) -> Result<(), LabError> {
    for tool in TOOLS {
        if let Some(path) = find_tool(tool) {
            archive.add_program(&path, &format!("/usr/bin/{tool}"))?;
        }
    }
    archive.symlink("/bin/sh", "/usr/bin/sh");
    archive.symlink("/usr/bin/tcplab", "/init");
    // tcpdump gives up root for its own user, and fails without one.
    let passwd = "root:x:0:0:root:/root:/bin/sh\ntcpdump:x:100:100::/nonexistent:/bin/false\n";
    archive.file("/etc/passwd", passwd.as_bytes().to_vec(), 0o644);
    archive.file("/etc/group", b"root:x:0:\ntcpdump:x:100:\n".to_vec(), 0o644);
    archive.dir("/root");
    Ok(())
}

/// The tools of [`TOOLS`] this machine lacks: a kept guest goes without them.
pub fn missing_tools() -> Vec<&'static str> {
    TOOLS
        .into_iter()
        .filter(|tool| find_tool(tool).is_none())
        .collect()
}

/// How many initramfs images the cache keeps (each tcplab build makes its
/// own; a debug and a release build both stay warm).
const KEEP_IMAGES: usize = 4;

fn find_xtables_nft() -> Result<PathBuf, LabError> {
    [
        "/usr/sbin/xtables-nft-multi",
        "/sbin/xtables-nft-multi",
        "/usr/bin/xtables-nft-multi",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or_else(|| LabError::Environment {
        host: "this machine".to_string(),
        message: "the microvm lab copies this machine's iptables (nf_tables flavour, \
                      xtables-nft-multi) into its VMs: apt-get install iptables"
            .to_string(),
    })
}

fn setup(message: String) -> LabError {
    LabError::Setup(message)
}
