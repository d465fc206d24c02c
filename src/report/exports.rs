//! The export manager: every file a run writes beside stdout (`--junit`,
//! `--report`, `--pcap`), opened and checked before the run starts, and
//! written from all of the run's results once it ends. Experiment runs and
//! the matrix both use it, over their own kind of result.
//!
//! Opening first is the point: a path that cannot be written is a usage
//! error before minutes of VMs, not after them; and a run that fails before
//! the end leaves no file behind (an [`OutputFile`] is only committed by
//! [`Exports::write_all`]).

use std::path::{Path, PathBuf};

use super::ReportError;
use crate::output_file::{self, OutputFile};

/// Why a file could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file cannot be written where the user said: a usage error.
    #[error("cannot write {flag} {path}: {source}")]
    Write {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The results could not be turned into the file's format.
    #[error("{flag} {path}: {source}")]
    Render {
        flag: &'static str,
        path: PathBuf,
        source: ReportError,
    },
}

/// A file's contents, made from the results of a run of kind `R`.
pub type Renderer<R> = Box<dyn Fn(&R) -> Result<String, ReportError>>;
/// A directory's files, written from the results of a run of kind `R`.
pub type DirectoryWriter<R> = Box<dyn Fn(&Path, &R) -> std::io::Result<()>>;

enum Target<R: ?Sized> {
    File {
        flag: &'static str,
        file: OutputFile,
        render: Renderer<R>,
    },
    Directory {
        flag: &'static str,
        dir: PathBuf,
        write: DirectoryWriter<R>,
    },
}

/// The files one run writes, opened before it.
pub struct Exports<R: ?Sized> {
    targets: Vec<Target<R>>,
}

impl<R: ?Sized> Default for Exports<R> {
    fn default() -> Self {
        Exports {
            targets: Vec::new(),
        }
    }
}

impl<R: ?Sized> Exports<R> {
    /// Opens `path` for `flag` now (readable by all, as reports are meant
    /// to be shared); it is written by `render` when the run ends.
    pub fn file(
        &mut self,
        flag: &'static str,
        path: &Path,
        render: Renderer<R>,
    ) -> Result<(), ExportError> {
        let file =
            OutputFile::create(path, output_file::SHARED).map_err(|source| ExportError::Write {
                flag,
                path: path.to_path_buf(),
                source,
            })?;
        self.targets.push(Target::File { flag, file, render });
        Ok(())
    }

    /// Creates `dir` for `flag` now (private: captures hold traffic), and
    /// checks that no other user controls it; `write` fills it at the end.
    pub fn directory(
        &mut self,
        flag: &'static str,
        dir: &Path,
        write: DirectoryWriter<R>,
    ) -> Result<(), ExportError> {
        use std::os::unix::fs::DirBuilderExt;
        let refused = |source| ExportError::Write {
            flag,
            path: dir.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(refused)?;
        output_file::check_output_dir(dir).map_err(refused)?;
        self.targets.push(Target::Directory {
            flag,
            dir: dir.to_path_buf(),
            write,
        });
        Ok(())
    }

    /// Whether a flag was given, e.g. to decide what the run records.
    pub fn has(&self, flag: &str) -> bool {
        self.targets.iter().any(|target| match target {
            Target::File { flag: f, .. } | Target::Directory { flag: f, .. } => *f == flag,
        })
    }

    /// Writes every file from the run's results, in the order they were
    /// given; stops at the first that fails.
    pub fn write_all(self, results: &R) -> Result<(), ExportError> {
        for target in self.targets {
            match target {
                Target::File { flag, file, render } => {
                    let path = file.target().to_path_buf();
                    let text = render(results).map_err(|source| ExportError::Render {
                        flag,
                        path: path.clone(),
                        source,
                    })?;
                    file.write_and_commit(text.as_bytes())
                        .map_err(|source| ExportError::Write { flag, path, source })?;
                }
                Target::Directory { flag, dir, write } => {
                    write(&dir, results).map_err(|source| ExportError::Write {
                        flag,
                        path: dir.clone(),
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Renderer<[String]> {
        Box::new(|results: &[String]| Ok(results.join(" ")))
    }

    #[test]
    fn every_file_is_written_from_all_results_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        let mut exports = Exports::<[String]>::default();
        exports.file("--a", &a, words()).unwrap();
        exports
            .file("--b", &b, Box::new(|r: &[String]| Ok(r.len().to_string())))
            .unwrap();
        assert!(!a.exists(), "nothing is written before the run ends");
        exports
            .write_all(&["one".to_string(), "two".to_string()])
            .unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one two");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "2");
    }

    #[test]
    fn a_file_that_cannot_be_written_is_refused_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("out.xml");
        let mut exports = Exports::<[String]>::default();
        let error = exports.file("--junit", &missing, words()).unwrap_err();
        assert!(
            error.to_string().starts_with("cannot write --junit "),
            "{error}"
        );
    }

    #[test]
    fn a_run_that_ends_early_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut exports = Exports::<[String]>::default();
        exports
            .file("--junit", &dir.path().join("out.xml"), words())
            .unwrap();
        drop(exports);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_is_made_private_and_filled_at_the_end() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("pcap");
        let mut exports = Exports::<[String]>::default();
        let write: DirectoryWriter<[String]> = Box::new(|dir: &Path, results: &[String]| {
            std::fs::write(dir.join("n"), results.len().to_string())
        });
        exports.directory("--pcap", &pcap, write).unwrap();
        let mode = std::fs::metadata(&pcap).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(exports.has("--pcap") && !exports.has("--junit"));
        exports.write_all(&["x".to_string()]).unwrap();
        assert_eq!(std::fs::read_to_string(pcap.join("n")).unwrap(), "1");
    }
}
