//! What tcplab asks a remote host before it starts an agent there: its
//! architecture, whether it has root (or sudo), and whether this very
//! tcplab is already installed where root could run it safely.

use std::time::Duration;

use super::error::LabError;
use super::ssh_config::SshConfig;
/// How long the probe may take, connection included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks a host what tcplab needs to know. A fixed script: nothing in it comes
/// from a user or a file.
///
/// An installed tcplab is reported only if root could run it safely: the
/// file (symlinks resolved) and every directory above it are owned by root
/// and writable by nobody else. Otherwise whoever can write there could
/// swap the file between this check and the agent's start, and get root.
pub const PROBE_SCRIPT: &str = concat!(
    r#"uname -m; id -u; if [ "$(id -u)" = 0 ]; then echo root; elif sudo -n true 2>/dev/null; then echo sudo; else echo none; fi; "#,
    installed_probe!()
);

/// The part of [`PROBE_SCRIPT`] that looks for an installed tcplab root
/// could run: its SHA-256 and path, or `none` twice. (A macro, so that
/// the scripts built on it stay constants.)
#[macro_export]
#[doc(hidden)]
macro_rules! installed_probe {
    () => {
        r#"p=$(command -v tcplab 2>/dev/null || true); case "$p" in /*) p=$(readlink -f -- "$p") ;; *) p= ;; esac; f=$p; while [ -n "$p" ]; do s=$(stat -Lc '%u %a' -- "$f") || { p=; break; }; set -- $s; if [ "$1" != 0 ] || [ $(( 0$2 & 022 )) -ne 0 ]; then p=; break; fi; [ "$f" = / ] && break; f=$(dirname -- "$f"); done; if [ -n "$p" ]; then sha256sum -- "$p" | cut -d' ' -f1; echo "$p"; else echo none; echo none; fi"#
    };
}
pub use installed_probe;

/// What the probe found on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProbe {
    pub arch: String,
    pub privilege: RemotePrivilege,
    /// SHA-256 and path of a `tcplab` in the host's PATH.
    pub installed: Option<(String, String)>,
    /// This very build is in the host's agent cache.
    pub cached: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemotePrivilege {
    Root,
    Sudo,
    None,
}

impl HostProbe {
    pub(super) fn parse(text: &str) -> Option<HostProbe> {
        let mut lines = text.lines().map(str::trim);
        let arch = normalise_arch(lines.next()?);
        let _uid = lines.next()?;
        let privilege = match lines.next()? {
            "root" => RemotePrivilege::Root,
            "sudo" => RemotePrivilege::Sudo,
            _ => RemotePrivilege::None,
        };
        let sha = lines.next()?;
        let path = lines.next()?;
        let installed = (sha != "none").then(|| (sha.to_string(), path.to_string()));
        let cached = lines.next() == Some("cached");
        Some(HostProbe {
            arch,
            privilege,
            installed,
            cached,
        })
    }
}

/// `uname -m` and Rust's `ARCH` spell some architectures differently.
fn normalise_arch(uname: &str) -> String {
    match uname {
        "arm64" => "aarch64".to_string(),
        "amd64" => "x86_64".to_string(),
        "i686" | "i586" | "i386" => "x86".to_string(),
        other => other.to_string(),
    }
}

pub async fn probe(config: &SshConfig, host: &str) -> Result<HostProbe, LabError> {
    let mut command = tokio::process::Command::from(config.command(host, PROBE_SCRIPT));
    command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PROBE_TIMEOUT, command.output())
        .await
        .map_err(|_| environment(host, format!("ssh to {host} did not answer within {PROBE_TIMEOUT:?}")))?
        .map_err(|e| {
            environment(
                host,
                format!("cannot run ssh ({e}); install the OpenSSH client (apt-get install openssh-client)"),
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(environment(
            host,
            format!(
                "ssh to {host} failed ({}): {}; check that the host is up and the ssh config names it",
                output.status,
                stderr.trim()
            ),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    HostProbe::parse(&text).ok_or_else(|| {
        environment(
            host,
            format!("unexpected answer to the probe on {host}: {text:?}"),
        )
    })
}

/// A host that cannot serve as a lab host, and why.
pub(super) fn environment(host: &str, message: String) -> LabError {
    LabError::Environment {
        host: host.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::ssh::installed_agent_script;
    use std::path::{Path, PathBuf};

    #[test]
    fn parses_a_probe() {
        let probe =
            HostProbe::parse("x86_64\n1000\nsudo\nabc123\n/usr/local/bin/tcplab\n").unwrap();
        assert_eq!(probe.arch, "x86_64");
        assert_eq!(probe.privilege, RemotePrivilege::Sudo);
        assert_eq!(
            probe.installed,
            Some(("abc123".to_string(), "/usr/local/bin/tcplab".to_string()))
        );
        let probe = HostProbe::parse("arm64\n0\nroot\nnone\nnone\n").unwrap();
        assert_eq!(probe.arch, "aarch64");
        assert_eq!(probe.installed, None);
        assert!(HostProbe::parse("x86_64\n").is_none());
    }

    /// Runs the probe in a local shell with `dir` first in PATH.
    fn probe_with_path(dir: &Path) -> HostProbe {
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        let output = std::process::Command::new("sh")
            .args(["-c", PROBE_SCRIPT])
            .env("PATH", path)
            .output()
            .unwrap();
        HostProbe::parse(&String::from_utf8_lossy(&output.stdout)).unwrap()
    }

    fn fake_tcplab(dir: &Path, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("tcplab");
        std::fs::write(
            &file,
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/ran-with\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn an_installed_tcplab_others_could_write_is_not_offered_to_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: ownership checks need root-owned files");
            return;
        }
        // Under /run (root's, 0755), not the checkout, which may itself lie
        // under /tmp: /tmp is writable by everyone, so nothing under it is safe.
        let base = Path::new("/run").join(format!("tcplab-probe-{}", std::process::id()));
        let writable = base.join("shared bin");
        fake_tcplab(&writable, 0o777);
        assert_eq!(probe_with_path(&writable).installed, None);
        let under_tmp = std::env::temp_dir().join(format!("tcplab-probe-{}", std::process::id()));
        fake_tcplab(&under_tmp, 0o755);
        assert_eq!(
            probe_with_path(&under_tmp).installed,
            None,
            "/tmp is everyone's"
        );
        std::fs::remove_dir_all(&under_tmp).unwrap();

        // Root's own directory, with a space and a `;` in its name.
        let private = base.join("root's bin; touch injected");
        let file = fake_tcplab(&private, 0o755);
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let probe = probe_with_path(&private);
        let (sha, path) = probe.installed.expect("a safe install is offered");
        assert_eq!(Path::new(&path), file.canonicalize().unwrap());

        // The start command runs exactly that file, with the hash, and
        // nothing else.
        let script = installed_agent_script("", &path, &sha).unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", &script])
            .current_dir(&base)
            .status()
            .unwrap();
        assert!(status.success());
        let args = std::fs::read_to_string(private.join("ran-with")).unwrap();
        assert_eq!(args, format!("agent\n--expect-sha256\n{sha}\n"));
        assert!(
            !base.join("injected").exists(),
            "the path was run as a command"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
