//! The initramfs as an archive being assembled: files, directories and
//! symlinks by their path in the guest, programs with the shared libraries
//! the dynamic loader says they load, written out as a newc cpio (with the
//! `cpio` crate).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab::error::LabError;

/// Files of the archive, by their path in the guest.
#[derive(Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir,
    File(Vec<u8>, u32),
    Symlink(String),
}

impl Archive {
    pub fn dir(&mut self, path: &str) {
        self.entries.insert(path.to_string(), Entry::Dir);
    }

    pub fn file(&mut self, path: &str, bytes: Vec<u8>, mode: u32) {
        self.entries
            .insert(path.to_string(), Entry::File(bytes, mode));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entries
            .insert(path.to_string(), Entry::Symlink(target.to_string()));
    }

    /// A program (or library) and every shared library it needs, each at
    /// the path the loader would find it under on this machine.
    pub fn add_program(&mut self, source: &Path, target: &str) -> Result<(), LabError> {
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
    pub fn write(&self, path: &Path) -> Result<(), LabError> {
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

fn setup(message: String) -> LabError {
    LabError::Setup(message)
}

#[cfg(test)]
mod tests {
    use super::*;

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
