//! Files written where the user said (`--pcap DIR`, `--report`, `--junit`),
//! often as root: never through a link someone planted, never in a
//! directory another user controls, never half-written.
//!
//! [`OutputFile::create`] makes a fresh file with an unpredictable name
//! (O_EXCL) beside the target, in a directory [`check_output_dir`] accepts,
//! at the mode asked for; [`OutputFile::commit`] renames it over the target.
//! A run that fails before the commit leaves nothing: the fresh file goes
//! when it is dropped.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Captures hold other people's traffic: readable by the owner only.
pub const PRIVATE: u32 = 0o600;
/// Reports and JUnit files, meant to be shared.
pub const SHARED: u32 = 0o644;

/// A file on its way to `target`.
pub struct OutputFile {
    target: PathBuf,
    file: tempfile::NamedTempFile,
}

impl OutputFile {
    /// A fresh file beside `target` (which need not exist yet).
    pub fn create(target: &Path, mode: u32) -> std::io::Result<OutputFile> {
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        check_output_dir(dir)?;
        let file = tempfile::Builder::new()
            .prefix(".tcplab-partial.")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)?;
        Ok(OutputFile {
            target: target.to_path_buf(),
            file,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes `bytes` and renames the file over the target.
    pub fn write_and_commit(mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.commit()
    }

    /// The file to write to.
    pub fn writer(&mut self) -> &mut std::fs::File {
        self.file.as_file_mut()
    }

    /// Renames the written file over the target (a link there is replaced,
    /// not followed).
    pub fn commit(self) -> std::io::Result<()> {
        self.file.as_file().sync_all()?;
        self.file.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Refuses a directory that another user owns, or that group or others may
/// write without the sticky bit: there, someone else could swap what tcplab
/// writes. (In a sticky directory such as /tmp the fresh names are
/// unpredictable and others cannot rename what is ours.)
pub fn check_output_dir(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(refused(format!("{} is not a directory", dir.display())));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() != euid && !(meta.uid() == 0 && sticky) {
        return Err(refused(format!(
            "{} belongs to uid {}, not to this user (uid {euid})",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(refused(format!(
            "{} may be written by others (mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

fn refused(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_is_replaced_and_nothing_is_left_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let target = dir.path().join("report.html");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        OutputFile::create(&target, SHARED)
            .unwrap()
            .write_and_commit(b"<html>")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "<html>");
        let mode = std::fs::metadata(&target).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o644);

        drop(OutputFile::create(&dir.path().join("never.xml"), PRIVATE).unwrap());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = OutputFile::create(&dir.path().join("x.pcapng"), PRIVATE)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("may be written by others"),
            "{error}"
        );
    }
}
