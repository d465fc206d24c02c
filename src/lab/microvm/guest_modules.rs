//! The kernel modules a guest loads at boot: the ones the agent needs, with
//! their dependencies (read from each module's modinfo), dependencies first,
//! decompressed as `finit_module` takes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab::error::LabError;

/// Modules the agent needs, by name; their dependencies come along. One the
/// kernel has built in, or does not have, is skipped.
pub const MODULES: [&str; 16] = [
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

/// The wanted modules and their dependencies, dependencies first, each as
/// the uncompressed bytes `finit_module` takes.
pub fn modules_in_load_order(modules_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, LabError> {
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
}
