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

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::kernel::Kernel;
use crate::agent::guest_init::LOAD_ORDER;
use crate::lab::error::LabError;

/// Modules the agent needs, by name; their dependencies come along. One the
/// kernel has built in, or does not have, is skipped.
const MODULES: [&str; 16] = [
    "virtio_pci",
    "virtio_net",
    "virtio_console",
    "nf_tables",
    // Separate modules before 5.13-ish kernels; iptables-nft counts every rule.
    "nft_counter",
    "nft_reject_ipv4",
    "nft_reject_ipv6",
    "nft_reject_inet",
    "nft_compat",
    "xt_tcpudp",
    "xt_comment",
    "ipt_REJECT",
    "ip6t_REJECT",
    "inet_diag",
    "tcp_diag",
    "af_packet",
];

/// Where extensions of iptables live on Debian-like and other systems.
const XTABLES_DIRS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/xtables",
    "/usr/lib64/xtables",
    "/usr/lib/xtables",
];

/// The cached initramfs for `kernel` and this tcplab, built if missing.
pub fn obtain(kernel: &Kernel, tcplab_sha256: &str, cache: &Path) -> Result<PathBuf, LabError> {
    let dir = cache.join("initramfs");
    let path = dir.join(format!("{}-{}.cpio", kernel.release, &tcplab_sha256[..16]));
    // Reused only when it is still the file this process's kind built: its
    // SHA-256 was recorded beside it when it was written.
    let recorded = path.with_extension("cpio.sha256");
    if path.is_file()
        && let (Ok(want), Ok(have)) = (
            std::fs::read_to_string(&recorded),
            super::kernel_fetch::sha256_of(&path),
        )
        && want.trim() == have
    {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| setup(format!("creating {}: {e}", dir.display())))?;
    let mut archive = Archive::default();
    let exe = std::env::current_exe().map_err(|e| setup(format!("finding tcplab: {e}")))?;
    // Without its debug information (a debug build is 80 MB, 13 MB
    // stripped): the guest holds the archive and its unpacked copy in RAM.
    let stripped = dir.join(format!("init-{}.partial", std::process::id()));
    let init = match Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
    {
        Ok(status) if status.success() => stripped.clone(),
        _ => exe.clone(),
    };
    let added = archive.add_program(&init, "/init");
    let _ = std::fs::remove_file(&stripped);
    added?;
    let iptables = find_xtables_nft()?;
    archive.add_program(&iptables, "/usr/sbin/xtables-nft-multi")?;
    archive.symlink("/usr/sbin/iptables", "xtables-nft-multi");
    archive.symlink("/usr/sbin/ip6tables", "xtables-nft-multi");
    if let Some(extensions) = XTABLES_DIRS.iter().map(Path::new).find(|d| d.is_dir()) {
        for entry in std::fs::read_dir(extensions).map_err(|e| setup(e.to_string()))? {
            let path = entry.map_err(|e| setup(e.to_string()))?.path();
            if path.extension().is_some_and(|x| x == "so") {
                archive.add_program(&path, &path.to_string_lossy())?;
            }
        }
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

/// Files of the archive, by their path in the guest.
#[derive(Default)]
struct Archive {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir,
    File(Vec<u8>, u32),
    Symlink(String),
}

impl Archive {
    fn dir(&mut self, path: &str) {
        self.entries.insert(path.to_string(), Entry::Dir);
    }

    fn file(&mut self, path: &str, bytes: Vec<u8>, mode: u32) {
        self.entries
            .insert(path.to_string(), Entry::File(bytes, mode));
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.entries
            .insert(path.to_string(), Entry::Symlink(target.to_string()));
    }

    /// A program (or library) and every shared library it needs, each at
    /// the path the loader would find it under on this machine.
    fn add_program(&mut self, source: &Path, target: &str) -> Result<(), LabError> {
        if self.entries.contains_key(target) {
            return Ok(());
        }
        let bytes = std::fs::read(source)
            .map_err(|e| setup(format!("reading {}: {e}", source.display())))?;
        let libraries = shared_libraries(source)?;
        self.file(target, bytes, 0o755);
        for library in libraries {
            let name = library.to_string_lossy().into_owned();
            if !self.entries.contains_key(&name) {
                let bytes =
                    std::fs::read(&library).map_err(|e| setup(format!("reading {name}: {e}")))?;
                self.file(&name, bytes, 0o755);
            }
        }
        Ok(())
    }

    /// Writes the newc archive, parent directories first.
    fn write(&self, path: &Path) -> Result<(), LabError> {
        let mut dirs = BTreeSet::new();
        for name in self.entries.keys() {
            let mut parent = Path::new(name).parent();
            while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
                dirs.insert(dir.to_string_lossy().into_owned());
                parent = dir.parent();
            }
        }
        // A new file (O_EXCL): never one planted under this name, never a link.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| setup(format!("creating {}: {e}", path.display())))?;
        let mut out = std::io::BufWriter::new(file);
        let mut inode = 1u32;
        let mut entry =
            |out: std::io::BufWriter<std::fs::File>, name: &str, mode: u32, data: &[u8]| {
                inode += 1;
                let mut writer = cpio::NewcBuilder::new(name.trim_start_matches('/'))
                    .ino(inode)
                    .mode(mode)
                    .nlink(1)
                    .write(out, data.len() as u32);
                writer.write_all(data)?;
                writer.finish()
            };
        let io = |e: std::io::Error| setup(format!("writing {}: {e}", path.display()));
        for dir in &dirs {
            out = entry(out, dir, 0o040755, &[]).map_err(io)?;
        }
        for (name, content) in &self.entries {
            out = match content {
                Entry::Dir if dirs.contains(name) => continue,
                Entry::Dir => entry(out, name, 0o040755, &[]),
                Entry::File(bytes, mode) => entry(out, name, 0o100000 | mode, bytes),
                Entry::Symlink(target) => entry(out, name, 0o120777, target.as_bytes()),
            }
            .map_err(io)?;
        }
        // Last: a guest that finds it knows the kernel unpacked everything.
        out = entry(out, crate::agent::guest_init::UNPACKED_WHOLE, 0o100644, &[]).map_err(io)?;
        let mut out = cpio::newc::trailer(out).map_err(io)?;
        out.flush().map_err(io)
    }
}

/// The shared libraries `program` loads, the dynamic loader included, as
/// the loader itself resolves them on this machine.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>, LabError> {
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| setup("no dynamic loader found (/lib64/ld-linux-x86-64.so.2)".into()))?;
    let output = Command::new(&loader)
        .arg("--list")
        .arg(program)
        .output()
        .map_err(|e| setup(format!("{} --list: {e}", loader.display())))?;
    // A static program: the loader says so and lists nothing.
    let text = String::from_utf8_lossy(&output.stdout);
    let mut libraries = vec![loader];
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            let path = PathBuf::from(path);
            if !libraries.contains(&path) {
                libraries.push(path);
            }
        }
    }
    Ok(libraries)
}

/// The wanted modules and their dependencies, dependencies first, each as
/// the uncompressed bytes `finit_module` takes.
fn modules_in_load_order(modules_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, LabError> {
    let mut by_name = BTreeMap::new();
    let mut pending = vec![modules_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(name) = module_name(&path) {
                by_name.insert(name, path);
            }
        }
    }
    let mut loaded = Vec::new();
    let mut seen = BTreeSet::new();
    for wanted in MODULES {
        add_with_dependencies(&normalise(wanted), &by_name, &mut seen, &mut loaded)?;
    }
    Ok(loaded)
}

fn add_with_dependencies(
    name: &str,
    by_name: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    loaded: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), LabError> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    // Not a module of this kernel: built in, or absent (then the agent's
    // request that needs it fails with the kernel's own error).
    let Some(path) = by_name.get(name) else {
        return Ok(());
    };
    let bytes = decompressed(path)?;
    for dependency in dependencies(&bytes) {
        add_with_dependencies(&normalise(&dependency), by_name, seen, loaded)?;
    }
    loaded.push((name.to_string(), bytes));
    Ok(())
}

/// `xt_tcpudp` for `.../xt_tcpudp.ko`, `.ko.xz` or `.ko.zst`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".ko.xz"))
        .or_else(|| file.strip_suffix(".ko.zst"))?;
    Some(normalise(stem))
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// A module file's bytes, uncompressed with xz or zstd when it is.
fn decompressed(path: &Path) -> Result<Vec<u8>, LabError> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return std::fs::read(path).map_err(|e| setup(format!("reading {name}: {e}")));
    };
    let output = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .map_err(|e| {
            setup(format!(
                "{tool} -dc {name}: {e} (apt-get install {tool}-utils)"
            ))
        })?;
    if !output.status.success() {
        return Err(setup(format!("{tool} -dc {name} failed")));
    }
    Ok(output.stdout)
}

/// The `depends=` of a module's .modinfo section, found in its bytes.
fn dependencies(module: &[u8]) -> Vec<String> {
    let key = b"depends=";
    module
        .windows(key.len() + 1)
        .position(|w| w[0] == 0 && &w[1..] == key)
        .map(|at| {
            let start = at + 1 + key.len();
            let end = module[start..]
                .iter()
                .position(|b| *b == 0)
                .map_or(module.len(), |len| start + len);
            String::from_utf8_lossy(&module[start..end])
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn setup(message: String) -> LabError {
    LabError::Setup(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dependencies_from_modinfo() {
        let module = b"\x7fELF junk\0license=GPL\0depends=virtio,virtio_ring\0vermagic=6.1\0";
        assert_eq!(dependencies(module), vec!["virtio", "virtio_ring"]);
        assert!(dependencies(b"\0depends=\0").is_empty());
        assert!(dependencies(b"nothing").is_empty());
    }

    #[test]
    fn module_names_drop_the_suffix_and_dashes() {
        assert_eq!(
            module_name(Path::new("/x/nft-compat.ko.xz")).as_deref(),
            Some("nft_compat")
        );
        assert_eq!(
            module_name(Path::new("/x/tcp_diag.ko")).as_deref(),
            Some("tcp_diag")
        );
        assert_eq!(module_name(Path::new("/x/modules.dep")), None);
    }

    #[test]
    fn the_loader_lists_this_test_programs_libraries() {
        let exe = std::env::current_exe().unwrap();
        let libraries = shared_libraries(&exe).unwrap();
        assert!(
            libraries
                .iter()
                .any(|l| l.to_string_lossy().contains("libc.so")),
            "{libraries:?}"
        );
    }
}
