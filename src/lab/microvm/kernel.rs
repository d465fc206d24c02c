//! The kernel a microvm boots: a Debian cloud kernel by version, or a
//! vmlinuz and modules directory of the user's own.
//!
//! Debian kernels are fetched with this machine's own apt configuration (the
//! mirror its sources already name, its archive keyring), into a private apt
//! state under the cache, with `apt-get download`, and unpacked with
//! `dpkg-deb -x`: never installed. The cache (`$XDG_CACHE_HOME/tcplab`, or
//! `~/.cache/tcplab`) keeps them, so a second run fetches nothing.

use std::path::{Path, PathBuf};

use super::super::error::LabError;
use super::kernel_archive::{ArchiveIndex, KernelBuild, build_dir};
use super::kernel_fetch::{self, Manifest, PrivateApt, run};

/// The kernel line `--kernel` means when none is given.
pub const DEFAULT_LINE: &str = "6.1";

/// What `--kernel` (and `--modules`) asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoice {
    /// A Debian cloud kernel build, as the archive lists it.
    Debian { build: KernelBuild },
    /// A kernel image and its `lib/modules/<release>` directory.
    Files { vmlinuz: PathBuf, modules: PathBuf },
}

impl KernelChoice {
    /// `--kernel 6.1` (the default line: its newest build), `--kernel
    /// 6.12.43` (one build), `--kernel ./vmlinuz --modules DIR`.
    pub fn parse(kernel: Option<&str>, modules: Option<&Path>) -> Result<KernelChoice, LabError> {
        let kernel = kernel.unwrap_or(DEFAULT_LINE);
        let vmlinuz = PathBuf::from(kernel);
        if kernel.starts_with(|c: char| c.is_ascii_digit()) && !vmlinuz.exists() {
            if modules.is_some() {
                return Err(LabError::Usage(format!(
                    "--modules goes with a kernel file, not with the Debian kernel --kernel {kernel}"
                )));
            }
            let index = archive_index(false)?;
            let [build] = <[KernelBuild; 1]>::try_from(index.resolve(kernel)?)
                .map_err(|_| LabError::Usage(format!("--kernel {kernel}: one kernel, please")))?;
            return Ok(KernelChoice::Debian { build });
        }
        if kernel == "all" {
            return Err(LabError::Usage(
                "--kernel all names every kernel line: it is for `tcplab matrix`".into(),
            ));
        }
        if !vmlinuz.is_file() {
            return Err(LabError::Usage(format!(
                "--kernel {kernel}: neither a Debian kernel line or build (6.1, 6.12.43; \
                 `tcplab lab kernels` lists them) nor a kernel file"
            )));
        }
        let modules = modules.ok_or_else(|| {
            LabError::Usage(format!(
                "--kernel {kernel} needs --modules DIR, its lib/modules/<release> directory"
            ))
        })?;
        if !modules.is_dir() {
            return Err(LabError::Usage(format!(
                "--modules {}: no such directory",
                modules.display()
            )));
        }
        Ok(KernelChoice::Files {
            vmlinuz,
            modules: modules.to_path_buf(),
        })
    }

    /// How a report names it: `6.1.192` or the file.
    pub fn label(&self) -> String {
        match self {
            KernelChoice::Debian { build } => build.version.clone(),
            KernelChoice::Files { vmlinuz, .. } => vmlinuz.display().to_string(),
        }
    }
}

/// The archive's kernel builds (see [`ArchiveIndex::load`]), read under
/// the cache's lock: runs at once share one apt state.
pub fn archive_index(refresh: bool) -> Result<ArchiveIndex, LabError> {
    use std::os::fd::AsRawFd;
    let cache = crate::lab::cache::trusted_cache_dir()?;
    let kernels = cache.join("kernels");
    std::fs::create_dir_all(&kernels)
        .map_err(|e| LabError::Setup(format!("creating {}: {e}", kernels.display())))?;
    check_fetch_tools()?;
    let lock = crate::lab::cache::open_lock(&cache.join(".lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    ArchiveIndex::load(&kernels, refresh)
}

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: PathBuf,
    /// The release, as `uname -r` will say it.
    pub release: String,
}

/// tcplab's cache directory (see [`crate::lab::cache`]).
pub use crate::lab::cache::cache_dir;

/// The kernel of `choice`, fetched and unpacked into the cache if needed.
/// Called with the cache's lock held.
pub fn obtain(choice: &KernelChoice) -> Result<Kernel, LabError> {
    match choice {
        KernelChoice::Files { vmlinuz, modules } => Ok(Kernel {
            vmlinuz: vmlinuz.clone(),
            modules: modules.clone(),
            release: modules
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }),
        KernelChoice::Debian { build } => {
            let kernels = crate::lab::cache::trusted_cache_dir()?.join("kernels");
            let root = build_dir(&kernels, build);
            if let Some(kernel) = unpacked(&root) {
                return Ok(kernel);
            }
            fetch_build(build, &kernels, &root)?;
            unpacked(&root).ok_or_else(|| {
                LabError::Setup(format!(
                    "the Debian kernel {} ({}) held no vmlinuz and modules",
                    build.version, build.package
                ))
            })
        }
    }
}

/// The kernel unpacked under `root`, if it is complete and its vmlinuz is
/// still the one unpacked from the checked packages.
pub fn unpacked(root: &Path) -> Option<Kernel> {
    let release = std::fs::read_to_string(root.join("release")).ok()?;
    let release = release.trim().to_string();
    let (vmlinuz, modules) = layout(&root.join("files"), &release)?;
    let manifest = Manifest::read(root)?;
    manifest.verify(&vmlinuz).then_some(Kernel {
        vmlinuz,
        modules,
        release,
    })
}

/// Where a release's vmlinuz and modules are in unpacked packages: under
/// /lib or (merged /usr, from trixie on) /usr/lib; the vmlinuz in /boot, or
/// (from 7.2 on) beside the modules.
fn layout(files: &Path, release: &str) -> Option<(PathBuf, PathBuf)> {
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|dir| files.join(dir).join(release))
        .find(|dir| dir.is_dir())?;
    let vmlinuz = [
        files.join("boot").join(format!("vmlinuz-{release}")),
        modules.join("vmlinuz"),
    ]
    .into_iter()
    .find(|file| file.is_file())?;
    Some((vmlinuz, modules))
}

/// The release an unpacked kernel's modules are named by.
fn release_in(files: &Path) -> Option<String> {
    ["lib/modules", "usr/lib/modules"].iter().find_map(|dir| {
        let entries = std::fs::read_dir(files.join(dir)).ok()?;
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|name| layout(files, name).is_some())
    })
}

/// Downloads the build's packages (from 6.19 on, the image pulls in its
/// `linux-binary-` and `linux-modules-` packages), checks and unpacks them.
fn fetch_build(build: &KernelBuild, kernels: &Path, root: &Path) -> Result<(), LabError> {
    check_fetch_tools()?;
    let apt = PrivateApt::new(
        &kernels.join("archive-apt"),
        &super::kernel_archive::sources_list()?,
    )?;
    let spec = build.apt_spec();
    let show = || {
        run(
            apt.command("apt-cache").args(["show", &spec]),
            &format!("apt-cache show {spec}"),
        )
    };
    // The indexes may have been pruned since the archive was read.
    let shown = match show() {
        Ok(text) => text,
        Err(_) => {
            run(apt.command("apt-get").arg("update"), "apt-get update").ok();
            show()?
        }
    };
    let mut specs = vec![spec.clone()];
    specs.extend(split_packages(&shown, &build.package_version));
    let files = root.join("files");
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(&files)
        .map_err(|e| LabError::Setup(format!("creating {}: {e}", files.display())))?;
    // Downloads take a while: say so, on stderr, one line each way.
    let started = std::time::Instant::now();
    eprintln!(
        "tcplab: fetching Debian kernel {} ({}, {})",
        build.version, build.package, build.suite
    );
    let mut hashes = Vec::new();
    for spec in &specs {
        hashes.push(apt.unpack(spec, &files)?);
    }
    eprintln!(
        "tcplab: fetched and checked kernel {} in {:.1} s",
        build.version,
        started.elapsed().as_secs_f64()
    );
    let release = release_in(&files).ok_or_else(|| {
        LabError::Setup(format!("{} holds no vmlinuz and modules", specs.join(" ")))
    })?;
    let (vmlinuz, _) = layout(&files, &release)
        .ok_or_else(|| LabError::Setup(format!("no vmlinuz for {release}")))?;
    kernel_fetch::record(root, &spec, hashes.join(","), &vmlinuz)?;
    write(&root.join("release"), &release)
}

/// The `linux-binary-*` and `linux-modules-*` packages (at `version`) that
/// an image package's `Depends:` names.
fn split_packages(shown: &str, version: &str) -> Vec<String> {
    let Some(depends) = shown.lines().find_map(|l| l.strip_prefix("Depends:")) else {
        return Vec::new();
    };
    depends
        .split(',')
        .filter_map(|item| {
            let name = item.split_whitespace().next()?;
            (name.starts_with("linux-binary-") || name.starts_with("linux-modules-"))
                .then(|| format!("{name}={version}"))
        })
        .collect()
}

fn check_fetch_tools() -> Result<(), LabError> {
    for (tool, package) in [
        ("apt-get", "apt"),
        ("apt-cache", "apt"),
        ("dpkg-deb", "dpkg"),
        ("tar", "tar"),
    ] {
        if crate::process::find_program(tool, &["/usr/bin", "/usr/sbin"]).is_none() {
            return Err(environment(format!(
                "{tool} is needed to fetch Debian kernels: install {package} (or give --kernel FILE --modules DIR)"
            )));
        }
    }
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    if !Path::new(keyring).is_file() {
        return Err(environment(format!(
            "{keyring} is missing: apt-get install debian-archive-keyring"
        )));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    crate::lab::cache::write_atomically(path, text.as_bytes())
}

fn environment(message: String) -> LabError {
    LabError::Environment {
        host: "this machine".to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_need_their_modules_and_all_is_for_the_matrix() {
        assert!(matches!(
            KernelChoice::parse(Some("/proc/self/exe"), None),
            Err(LabError::Usage(m)) if m.contains("--modules")
        ));
        assert!(matches!(
            KernelChoice::parse(Some("all"), None),
            Err(LabError::Usage(m)) if m.contains("tcplab matrix")
        ));
        assert!(matches!(
            KernelChoice::parse(Some("./no-such-vmlinuz"), None),
            Err(LabError::Usage(m)) if m.contains("neither")
        ));
    }

    #[test]
    fn from_6_19_on_the_image_pulls_in_its_binary_and_modules() {
        let shown = "Package: linux-image-7.3.4+deb13-cloud-amd64\n\
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), \
linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), \
linux-modules-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)\n";
        assert_eq!(
            split_packages(shown, "7.3.4-1~bpo13+1"),
            [
                "linux-binary-7.3.4+deb13-cloud-amd64=7.3.4-1~bpo13+1",
                "linux-modules-7.3.4+deb13-cloud-amd64=7.3.4-1~bpo13+1"
            ]
        );
        assert!(split_packages("Depends: kmod, linux-base\n", "6.1.192-1").is_empty());
    }

    #[test]
    fn the_vmlinuz_is_in_boot_or_beside_the_modules() {
        let files = tempfile::tempdir().unwrap();
        let old = files.path().join("lib/modules/6.1.0-44-cloud-amd64");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(files.path().join("boot")).unwrap();
        std::fs::write(files.path().join("boot/vmlinuz-6.1.0-44-cloud-amd64"), b"k").unwrap();
        let new = files
            .path()
            .join("usr/lib/modules/7.2.13+deb14-cloud-amd64");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("vmlinuz"), b"k").unwrap();
        assert_eq!(
            layout(files.path(), "6.1.0-44-cloud-amd64").unwrap().0,
            files.path().join("boot/vmlinuz-6.1.0-44-cloud-amd64")
        );
        assert_eq!(
            layout(files.path(), "7.2.13+deb14-cloud-amd64").unwrap(),
            (new.join("vmlinuz"), new.clone())
        );
        assert!(release_in(files.path()).is_some());
    }
}
