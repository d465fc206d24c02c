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
use super::kernel_fetch::{self, Manifest, PrivateApt, run};
use crate::lab::debian_sources::MirrorError;

/// The Debian releases tcplab knows, by the kernel version they ship.
const DEBIAN_KERNELS: [(&str, &str); 3] = [
    ("5.10", "bullseye"),
    ("6.1", "bookworm"),
    ("6.12", "trixie"),
];

/// What `--kernel` (and `--modules`) asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoice {
    /// A Debian cloud kernel: the version (`6.1`) and the suite shipping it.
    Debian { version: String, suite: String },
    /// A kernel image and its `lib/modules/<release>` directory.
    Files { vmlinuz: PathBuf, modules: PathBuf },
}

impl KernelChoice {
    /// `--kernel 6.1` (the default), `--kernel ./vmlinuz --modules DIR`.
    pub fn parse(kernel: Option<&str>, modules: Option<&Path>) -> Result<KernelChoice, LabError> {
        let kernel = kernel.unwrap_or("6.1");
        if let Some((version, suite)) = DEBIAN_KERNELS.iter().find(|(v, _)| *v == kernel) {
            if modules.is_some() {
                return Err(LabError::Usage(format!(
                    "--modules goes with a kernel file, not with the Debian kernel --kernel {kernel}"
                )));
            }
            return Ok(KernelChoice::Debian {
                version: version.to_string(),
                suite: suite.to_string(),
            });
        }
        let vmlinuz = PathBuf::from(kernel);
        if !vmlinuz.is_file() {
            let known: Vec<&str> = DEBIAN_KERNELS.iter().map(|(v, _)| *v).collect();
            return Err(LabError::Usage(format!(
                "--kernel {kernel}: neither a Debian kernel version ({}) nor a kernel file",
                known.join(", ")
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

    /// How a report names it: `6.1` or the file.
    pub fn label(&self) -> String {
        match self {
            KernelChoice::Debian { version, .. } => version.clone(),
            KernelChoice::Files { vmlinuz, .. } => vmlinuz.display().to_string(),
        }
    }
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
        KernelChoice::Debian { suite, .. } => {
            let root = crate::lab::cache::trusted_cache_dir()?
                .join("kernels")
                .join(suite);
            if let Some(kernel) = unpacked(&root) {
                return Ok(kernel);
            }
            fetch_debian_kernel(suite, &root)?;
            unpacked(&root).ok_or_else(|| {
                LabError::Setup(format!(
                    "the Debian {suite} kernel package held no vmlinuz and modules"
                ))
            })
        }
    }
}

/// The kernel unpacked under `root`, if it is complete.
fn unpacked(root: &Path) -> Option<Kernel> {
    let release = std::fs::read_to_string(root.join("release")).ok()?;
    let release = release.trim().to_string();
    let vmlinuz = root.join("files/boot").join(format!("vmlinuz-{release}"));
    // Since trixie, packages ship modules under /usr/lib (merged /usr).
    let modules = ["files/lib/modules", "files/usr/lib/modules"]
        .iter()
        .map(|dir| root.join(dir).join(&release))
        .find(|dir| dir.is_dir())?;
    // The vmlinuz must still be the one unpacked from the checked package.
    let manifest = Manifest::read(root)?;
    (vmlinuz.is_file() && modules.is_dir() && manifest.verify(&vmlinuz)).then_some(Kernel {
        vmlinuz,
        modules,
        release,
    })
}

/// Every Debian kernel tcplab can fetch, and whether it is in the cache.
pub fn listing() -> Vec<(String, String, Option<Kernel>)> {
    DEBIAN_KERNELS
        .iter()
        .map(|(version, suite)| {
            let cached = unpacked(&cache_dir().join("kernels").join(suite));
            (version.to_string(), suite.to_string(), cached)
        })
        .collect()
}

fn fetch_debian_kernel(suite: &str, root: &Path) -> Result<(), LabError> {
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
    let mirror = debian_mirror()?;
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    if !Path::new(keyring).is_file() {
        return Err(environment(format!(
            "{keyring} is missing: apt-get install debian-archive-keyring"
        )));
    }
    let apt = PrivateApt::new(
        &root.join("apt"),
        &format!("deb [signed-by={keyring}] {mirror} {suite} main\n"),
    )?;
    run(
        apt.command("apt-get").arg("update"),
        &format!("apt-get update for {suite}"),
    )?;
    let text = run(
        apt.command("apt-cache")
            .args(["depends", "linux-image-cloud-amd64"]),
        "apt-cache depends linux-image-cloud-amd64",
    )?;
    let package = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Depends: linux-image-"))
        .map(|rest| format!("linux-image-{}", rest.trim()))
        .ok_or_else(|| LabError::Setup(format!("no cloud kernel package in Debian {suite}")))?;
    let files = root.join("files");
    let deb_sha256 = apt.unpack(&package, &files)?;
    let release = package
        .strip_prefix("linux-image-")
        .unwrap_or(&package)
        .to_string();
    let vmlinuz = files.join("boot").join(format!("vmlinuz-{release}"));
    kernel_fetch::record(root, &package, deb_sha256, &vmlinuz)?;
    write(&root.join("release"), &release)
}

/// The Debian mirror this machine's apt sources name, or
/// `TCPLAB_DEBIAN_MIRROR` (never a built-in one).
pub fn debian_mirror() -> Result<String, LabError> {
    crate::lab::debian_sources::debian_mirror().map_err(|error| match error {
        MirrorError::BadVariable(_) => LabError::Usage(error.to_string()),
        MirrorError::NoneInSources(_) => {
            environment(format!("{error}, or give --kernel FILE --modules DIR"))
        }
    })
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
    fn kernels_by_version_or_file() {
        assert_eq!(
            KernelChoice::parse(None, None).unwrap(),
            KernelChoice::Debian {
                version: "6.1".into(),
                suite: "bookworm".into()
            }
        );
        assert!(matches!(
            KernelChoice::parse(Some("6.12"), None).unwrap(),
            KernelChoice::Debian { suite, .. } if suite == "trixie"
        ));
        assert!(matches!(
            KernelChoice::parse(Some("4.4"), None),
            Err(LabError::Usage(_))
        ));
        assert!(matches!(
            KernelChoice::parse(Some("/proc/self/exe"), None),
            Err(LabError::Usage(m)) if m.contains("--modules")
        ));
    }
}
