//! The Vagrant lab: the c1 and c2 VMs of this repository's Vagrantfile,
//! reached through the ssh lab with the config `vagrant ssh-config c1 c2`
//! prints (held in memory, never written to disk).
//!
//! Running `vagrant` runs the Vagrantfile (Ruby) and then ssh with what it
//! prints, as the user of tcplab, often root. So tcplab trusts exactly one
//! project: `$VAGRANT_CWD` when set, else this repository's own directory
//! (the one tcplab was built from); `--lab vagrant` also accepts the current
//! directory. Never one found by walking up from the current directory, and
//! never one another user could write (see [`trusted_project`]).
//!
//! Finding out whether the VMs run costs a `vagrant ssh-config`, which takes a
//! second or two (Ruby). So the default lab asks only when `vagrant up` has
//! left its marks (`.vagrant/machines/c1/<provider>/id`); a machine that
//! never had VMs pays nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::LabError;
use super::hosts::MACHINES;

/// The repository tcplab was built from, where its Vagrantfile is.
const OWN_REPOSITORY: &str = env!("CARGO_MANIFEST_DIR");

/// How a lab choice asks for the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectSearch {
    /// `--lab vagrant`: also the current directory.
    Explicit,
    /// The default lab: `$VAGRANT_CWD` or this repository only.
    Automatic,
}

/// The Vagrant project to use, if any, checked to be safe to run.
pub fn trusted_project(search: ProjectSearch) -> Result<Option<PathBuf>, LabError> {
    let candidates: Vec<PathBuf> = match std::env::var_os("VAGRANT_CWD") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let mut dirs = Vec::new();
            if search == ProjectSearch::Explicit
                && let Ok(here) = std::env::current_dir()
            {
                dirs.push(here);
            }
            dirs.push(PathBuf::from(OWN_REPOSITORY));
            dirs
        }
    };
    let Some(project) = candidates
        .into_iter()
        .find(|dir| dir.join("Vagrantfile").is_file())
    else {
        return Ok(None);
    };
    check_not_writable_by_others(&project)?;
    Ok(Some(project))
}

/// Refuses a project that a user other than this one (or root) could
/// change: its directory and the directories above it, the Vagrantfile,
/// and everything under `.vagrant`.
fn check_not_writable_by_others(project: &Path) -> Result<(), LabError> {
    let mut paths = vec![project.join("Vagrantfile")];
    paths.extend(project.ancestors().map(Path::to_path_buf));
    let mut pending = vec![project.join(".vagrant")];
    while let Some(path) = pending.pop() {
        if let Ok(entries) = std::fs::read_dir(&path) {
            pending.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
        if path.exists() {
            paths.push(path);
        }
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let others_write = mode & 0o022 != 0;
        // A sticky directory (/tmp) lets others add entries, not replace ours.
        let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
        let owner_ok = meta.uid() == me || meta.uid() == 0;
        if !owner_ok || (others_write && !sticky_dir && !meta.file_type().is_symlink()) {
            return Err(LabError::Environment {
                host: "this machine".to_string(),
                message: format!(
                    "refusing the Vagrant project {}: {} is owned by uid {} with mode {:o}, \
                     so another user could change what `vagrant` runs; make it yours and not \
                     writable by others (chmod go-w), or set VAGRANT_CWD to a safe project",
                    project.display(),
                    path.display(),
                    meta.uid(),
                    mode & 0o7777
                ),
            });
        }
    }
    Ok(())
}

/// Has `vagrant up` created both machines (whatever their state now)?
pub fn machines_created(project: &Path) -> bool {
    MACHINES.iter().all(|machine| {
        std::fs::read_dir(project.join(".vagrant/machines").join(machine))
            .map(|providers| {
                providers
                    .filter_map(|p| p.ok())
                    .any(|p| p.path().join("id").is_file())
            })
            .unwrap_or(false)
    })
}

/// The ssh config for c1 and c2, as `vagrant ssh-config` prints it, when
/// both machines are up: one call of Vagrant (it refuses machines that are
/// not ready for ssh), where asking `vagrant status` first would cost a
/// second start of Ruby. `Ok(Err(what vagrant said))` when they are not up;
/// `Err` when vagrant cannot run at all.
pub fn ssh_config_if_running(project: &Path) -> Result<Result<String, String>, LabError> {
    if let Some(remembered) = super::vagrant_ssh_cache::load(project) {
        return Ok(Ok(remembered));
    }
    let output = Command::new("vagrant")
        .args(["ssh-config", "c1", "c2"])
        .current_dir(project)
        .output()
        .map_err(|e| cannot_run(&e))?;
    if output.status.success() {
        let config = String::from_utf8_lossy(&output.stdout).into_owned();
        super::vagrant_ssh_cache::store(project, &config);
        return Ok(Ok(config));
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Err(if said.is_empty() {
        format!("`vagrant ssh-config c1 c2` exited with {}", output.status)
    } else {
        said
    }))
}

fn cannot_run(error: &std::io::Error) -> LabError {
    LabError::Environment {
        host: "this machine".to_string(),
        message: format!(
            "cannot run vagrant ({error}); install Vagrant and a provider (libvirt or VirtualBox), \
             then `vagrant up`"
        ),
    }
}
