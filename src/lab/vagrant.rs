//! The Vagrant lab: the c1 and c2 VMs of this repository's Vagrantfile,
//! reached through the ssh lab with the config `vagrant ssh-config c1 c2`
//! prints (held in memory, never written to disk).
//!
//! Finding out whether the VMs run costs a `vagrant status`, which takes a
//! second or two (Ruby). So the default lab asks only when `vagrant up` has
//! left its marks (`.vagrant/machines/c1/<provider>/id`); a machine that
//! never had VMs pays nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::LabError;

/// The VM names, as the Vagrantfile defines them.
pub const MACHINES: [&str; 2] = ["c1", "c2"];

/// Where the Vagrantfile is: `$VAGRANT_CWD`, or the current directory or one
/// of its parents (as `vagrant` itself looks).
pub fn find_project() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VAGRANT_CWD") {
        let dir = PathBuf::from(dir);
        return dir.join("Vagrantfile").is_file().then_some(dir);
    }
    let mut dir = std::env::current_dir().ok()?;
    loop {
        if dir.join("Vagrantfile").is_file() {
            return Some(dir);
        }
        if !dir.pop() {
            return None;
        }
    }
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

/// Are c1 and c2 both running? Asks `vagrant status`.
pub fn running(project: &Path) -> Result<bool, LabError> {
    let output = vagrant(project, &["status", "--machine-readable", "c1", "c2"])?;
    let running = |machine: &str| {
        output.lines().any(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            fields.len() >= 4
                && fields[1] == machine
                && fields[2] == "state"
                && fields[3] == "running"
        })
    };
    Ok(MACHINES.iter().all(|m| running(m)))
}

/// The ssh config for c1 and c2, as `vagrant ssh-config` prints it.
pub fn ssh_config(project: &Path) -> Result<String, LabError> {
    vagrant(project, &["ssh-config", "c1", "c2"])
}

fn vagrant(project: &Path, args: &[&str]) -> Result<String, LabError> {
    let output = Command::new("vagrant")
        .args(args)
        .current_dir(project)
        .output()
        .map_err(|e| LabError::Environment {
            host: "this machine".to_string(),
            message: format!(
                "cannot run vagrant ({e}); install Vagrant and a provider (libvirt or VirtualBox), \
                 then `vagrant up`"
            ),
        })?;
    if !output.status.success() {
        return Err(LabError::Environment {
            host: "this machine".to_string(),
            message: format!(
                "`vagrant {}` failed: {}; are the VMs up (`vagrant up`)?",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
