//! Fetching one Debian cloud kernel package into the cache, as root may:
//! with this machine's apt (the mirror from its sources, Debian's archive
//! keyring), into a private apt state under the cache, never installed.
//!
//! Nothing in the result is taken on trust: the package is downloaded into
//! a fresh private directory and exactly apt's file is unpacked; its SHA-256
//! must be the one the signed index names; it is unpacked without the
//! package's owners and modes (no setuid file can come out of it); and the
//! vmlinuz's own SHA-256 goes into a manifest that [`Manifest::verify`]
//! checks every time the cached kernel is used.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::super::cache::write_atomically;
use super::super::error::LabError;

/// What a cached kernel was unpacked from, and the hash of its vmlinuz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub package: String,
    pub deb_sha256: String,
    pub vmlinuz_sha256: String,
}

impl Manifest {
    const FILE: &'static str = "manifest";

    pub fn read(root: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(root.join(Self::FILE)).ok()?;
        let mut fields = text.split_whitespace();
        Some(Manifest {
            package: fields.next()?.to_string(),
            deb_sha256: fields.next()?.to_string(),
            vmlinuz_sha256: fields.next()?.to_string(),
        })
    }

    fn write(&self, root: &Path) -> Result<(), LabError> {
        let text = format!(
            "{} {} {}\n",
            self.package, self.deb_sha256, self.vmlinuz_sha256
        );
        write_atomically(&root.join(Self::FILE), text.as_bytes())
    }

    /// Is `vmlinuz` still the file this manifest was written for?
    pub fn verify(&self, vmlinuz: &Path) -> bool {
        sha256_of(vmlinuz).is_ok_and(|hash| hash == self.vmlinuz_sha256)
    }
}

/// An apt with its own state under `apt_dir` and the sources line given.
pub struct PrivateApt {
    dir: PathBuf,
    sources: PathBuf,
}

impl PrivateApt {
    pub fn new(apt_dir: &Path, sources_line: &str) -> Result<PrivateApt, LabError> {
        for dir in ["state/lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(apt_dir.join(dir))
                .map_err(|e| setup(format!("creating {}: {e}", apt_dir.join(dir).display())))?;
        }
        let sources = apt_dir.join("sources.list");
        write_atomically(&sources, sources_line.as_bytes())?;
        write_atomically(&apt_dir.join("state/status"), b"")?;
        Ok(PrivateApt {
            dir: apt_dir.to_path_buf(),
            sources,
        })
    }

    /// `apt-get` or `apt-cache` with this state.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for (key, value) in [
            ("Dir::State", self.dir.join("state")),
            ("Dir::State::status", self.dir.join("state/status")),
            ("Dir::Cache", self.dir.join("cache")),
            ("Dir::Etc::SourceList", self.sources.clone()),
            ("Dir::Etc::SourceParts", PathBuf::from("/nonexistent")),
        ] {
            command.arg("-o").arg(format!("{key}={}", value.display()));
        }
        command.args(["-o", "Debug::NoLocking=1", "-q"]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // apt would hand the download to user _apt, who cannot write our cache.
            command.args(["-o", "APT::Sandbox::User=root"]);
        }
        command
    }

    /// The SHA-256 the signed index gives for `package`.
    fn indexed_sha256(&self, package: &str) -> Result<String, LabError> {
        let text = run(
            self.command("apt-cache")
                .args(["show", "--no-all-versions"])
                .arg(package),
            &format!("apt-cache show {package}"),
        )?;
        text.lines()
            .find_map(|line| line.strip_prefix("SHA256:"))
            .map(|hash| hash.trim().to_string())
            .ok_or_else(|| setup(format!("the index names no SHA256 for {package}")))
    }

    /// Downloads `spec` (`package=version`, or a package's candidate)
    /// into a fresh private directory, checks it against the index and
    /// unpacks it into `files`; returns its SHA-256.
    pub fn unpack(&self, spec: &str, files: &Path) -> Result<String, LabError> {
        let package = spec.split_once('=').map_or(spec, |(name, _)| name);
        let expected = self.indexed_sha256(spec)?;
        let download = tempfile::Builder::new()
            .prefix("download.")
            .tempdir_in(&self.dir)
            .map_err(|e| {
                setup(format!(
                    "a download directory in {}: {e}",
                    self.dir.display()
                ))
            })?;
        run(
            self.command("apt-get")
                .arg("download")
                .arg(spec)
                .current_dir(download.path()),
            &format!("apt-get download {spec}"),
        )?;
        // The directory is new and ours: apt's file is the one named so.
        let prefix = format!("{package}_");
        let debs: Vec<PathBuf> = std::fs::read_dir(download.path())
            .map_err(|e| setup(format!("reading the download: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .collect();
        let [deb] = debs.as_slice() else {
            return Err(setup(format!(
                "apt-get download {package} left {} files",
                debs.len()
            )));
        };
        let actual = sha256_of(deb)?;
        if actual != expected {
            return Err(setup(format!(
                "{}: SHA-256 {actual}, but the signed index says {expected}",
                deb.display()
            )));
        }
        std::fs::create_dir_all(files)
            .map_err(|e| setup(format!("creating {}: {e}", files.display())))?;
        extract_without_owners(deb, files)?;
        Ok(actual)
    }
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x`, as this user, with the umask's
/// modes, then no setuid, setgid or sticky bit anywhere.
fn extract_without_owners(deb: &Path, files: &Path) -> Result<(), LabError> {
    let mut tarfile = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| setup(format!("dpkg-deb --fsys-tarfile: {e}")))?;
    let stdout = tarfile
        .stdout
        .take()
        .ok_or_else(|| setup("dpkg-deb: no pipe".into()))?;
    let tar = Command::new("tar")
        .args(["-x", "--no-same-owner", "--no-same-permissions", "-C"])
        .arg(files)
        .stdin(stdout)
        .status()
        .map_err(|e| setup(format!("tar -x: {e}")))?;
    let dpkg = tarfile
        .wait()
        .map_err(|e| setup(format!("dpkg-deb: {e}")))?;
    if !tar.success() || !dpkg.success() {
        return Err(setup(format!("unpacking {} failed", deb.display())));
    }
    clear_special_bits(files)
}

fn clear_special_bits(dir: &Path) -> Result<(), LabError> {
    let entries = std::fs::read_dir(dir).map_err(|e| setup(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| setup(e.to_string()))?;
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(|e| setup(e.to_string()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o7022 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & 0o755))
                .map_err(|e| setup(format!("{}: {e}", entry.path().display())))?;
        }
        if meta.is_dir() {
            clear_special_bits(&entry.path())?;
        }
    }
    Ok(())
}

/// Records what `root/files` holds: its package and vmlinuz's hash.
pub fn record(
    root: &Path,
    package: &str,
    deb_sha256: String,
    vmlinuz: &Path,
) -> Result<(), LabError> {
    Manifest {
        package: package.to_string(),
        deb_sha256,
        vmlinuz_sha256: sha256_of(vmlinuz)?,
    }
    .write(root)
}

pub fn sha256_of(path: &Path) -> Result<String, LabError> {
    let mut file =
        std::fs::File::open(path).map_err(|e| setup(format!("reading {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| setup(format!("reading {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub fn run(command: &mut Command, what: &str) -> Result<String, LabError> {
    let output = command.output().map_err(|e| LabError::Environment {
        host: "this machine".to_string(),
        message: format!("{what}: {e}"),
    })?;
    if !output.status.success() {
        return Err(setup(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn setup(message: String) -> LabError {
    LabError::Setup(message)
}
