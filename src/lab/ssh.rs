//! The ssh lab: c1 and c2 are real machines (the article's own, or Vagrant
//! VMs), reached with the system `ssh` and an ssh config naming them `c1`
//! and `c2`.
//!
//! Per host, one ssh session carries everything: a probe first (architecture,
//! root or sudo, is this very tcplab already installed?), then the agent. When
//! the host lacks this exact executable (compared by SHA-256), the same
//! session uploads it into `mktemp -d /tmp/tcplab-upload.XXXXXX` and runs it
//! from there; the agent removes that directory when it exits. Closing the
//! session (or losing it) ends the agent, which removes its firewall rules.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use crate::agent::recovery::reap::UPLOAD_DIR_PREFIX;
use crate::interrupt::Interrupt;

/// How long the probe may take, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks a host what tcplab needs to know. A fixed script: nothing in it comes
/// from a user or a file.
///
/// An installed tcplab is reported only if root could run it safely: the
/// file (symlinks resolved) and every directory above it are owned by root
/// and writable by nobody else. Otherwise whoever can write there could
/// swap the file between this check and the agent's start, and get root.
const PROBE_SCRIPT: &str = r#"uname -m; id -u; if [ "$(id -u)" = 0 ]; then echo root; elif sudo -n true 2>/dev/null; then echo sudo; else echo none; fi; p=$(command -v tcplab 2>/dev/null || true); case "$p" in /*) p=$(readlink -f -- "$p") ;; *) p= ;; esac; f=$p; while [ -n "$p" ]; do s=$(stat -Lc '%u %a' -- "$f") || { p=; break; }; set -- $s; if [ "$1" != 0 ] || [ $(( 0$2 & 022 )) -ne 0 ]; then p=; break; fi; [ "$f" = / ] && break; f=$(dirname -- "$f"); done; if [ -n "$p" ]; then sha256sum -- "$p" | cut -d' ' -f1; echo "$p"; else echo none; echo none; fi"#;

/// Where the Vagrant lab keeps agents on its VMs between runs, by SHA-256:
/// a directory only root can enter, so nobody can swap a file in it.
pub const AGENT_CACHE_DIR: &str = "/var/cache/tcplab/agents";

/// Appended to the probe when agents may be kept: is this very build there?
/// (Asked through sudo: only root can look into the cache.)
fn cached_agent_probe(sha256: &str) -> String {
    format!(
        r#"; s=; [ "$(id -u)" = 0 ] || s="sudo -n"; c={AGENT_CACHE_DIR}/{sha256}; if [ "$($s stat -c '%u %a' {AGENT_CACHE_DIR} 2>/dev/null)" = "0 700" ] && [ "$($s stat -c '%u %a' "$c" 2>/dev/null)" = "0 700" ]; then echo cached; else echo none; fi"#
    )
}

/// One ssh session for a VM that may keep its agent: the probe (with the
/// cache check), then a word from the orchestrator on stdin: `go` starts the
/// kept agent; `upload` receives `size` bytes into the cache (a partial file,
/// renamed when complete) and starts that. One session, not two: under
/// software emulation each ssh handshake costs the VM seconds.
fn kept_agent_session(size: usize, sha256: &str) -> String {
    let cache = AGENT_CACHE_DIR;
    let run = format!("exec $s {cache}/{sha256} agent --expect-sha256 {sha256}");
    format!(
        "{PROBE_SCRIPT}{}; read -r what; case \"$what\" in \
         go) echo started; {run};; \
         upload) $s sh -c 'umask 077; mkdir -p {cache}; chmod 700 {cache}; \
           t=$(mktemp {cache}/.partial.XXXXXX); head -c {size} > \"$t\"; \
           if [ \"$(wc -c < \"$t\")\" -ne {size} ]; then rm -f \"$t\"; exit 1; fi; \
           chmod 700 \"$t\"; mv \"$t\" {cache}/{sha256}' && echo uploaded && {run};; \
         esac; exit 1",
        cached_agent_probe(sha256)
    )
}

/// The command that starts an installed agent: the path quoted for the
/// shell, and the hash the probe saw, which the agent checks against the
/// executable it really runs from.
fn installed_agent_script(sudo: &str, path: &str, sha256: &str) -> Option<String> {
    let quoted = shlex::try_quote(path).ok()?;
    Some(format!(
        "exec {sudo}{quoted} agent --expect-sha256 {sha256}"
    ))
}

/// The ssh config to use, as a path `ssh -F` accepts.
pub struct SshConfig {
    path: PathBuf,
    /// Keeps an in-memory config (Vagrant's) alive; its path is /proc/<pid>/fd/N.
    _memory: Option<std::os::fd::OwnedFd>,
}

impl SshConfig {
    pub fn file(path: &Path) -> SshConfig {
        SshConfig {
            path: path.to_path_buf(),
            _memory: None,
        }
    }

    /// A config held in memory (a memfd), so no temporary file can be left
    /// behind, even by `kill -9`.
    pub fn in_memory(text: &str) -> Result<SshConfig, LabError> {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let setup = |e: std::io::Error| LabError::Setup(format!("cannot hold the ssh config: {e}"));
        let fd = nix::sys::memfd::memfd_create(
            "tcplab-ssh-config",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(|e| setup(e.into()))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes()).map_err(setup)?;
        // ssh refuses a config that others may write.
        nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| setup(e.into()))?;
        let path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            file.as_raw_fd()
        ));
        Ok(SshConfig {
            path,
            _memory: Some(file.into()),
        })
    }

    fn base_command(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.arg("-F").arg(&self.path).args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]);
        command
    }

    /// `ssh … HOST -- SCRIPT`.
    fn command(&self, host: &str, script: &str) -> std::process::Command {
        let mut command = self.base_command("ssh");
        command.arg("-T").arg(host).arg("--").arg(script);
        command
    }

    /// The address ssh connects to for `host` (`ssh -G`), if it is one.
    pub fn target_address(&self, host: &str) -> Option<IpAddr> {
        let mut command = self.base_command("ssh");
        let output = command.arg("-G").arg(host).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let hostname = text.lines().find_map(|l| l.strip_prefix("hostname "))?;
        hostname.parse().ok().or_else(|| {
            (hostname, 22)
                .to_socket_addrs()
                .ok()?
                .next()
                .map(|a| a.ip())
        })
    }
}

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
    fn parse(text: &str) -> Option<HostProbe> {
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

/// This tcplab executable, as uploaded to hosts that lack it.
pub struct LocalExecutable {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl LocalExecutable {
    pub fn load() -> Result<LocalExecutable, LabError> {
        let path = std::env::current_exe()
            .map_err(|e| LabError::Setup(format!("cannot find the tcplab executable: {e}")))?;
        let bytes = std::fs::read(&path)
            .map_err(|e| LabError::Setup(format!("cannot read {}: {e}", path.display())))?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(LocalExecutable { bytes, sha256 })
    }
}

/// How the agent got onto a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// The host had this exact executable in its PATH.
    Installed(String),
    /// This executable was uploaded for the run.
    Uploaded,
    /// An earlier run left this very build in the host's agent cache.
    Cached,
    /// This executable was uploaded into the host's agent cache.
    UploadedAndKept,
}

/// Whether agents are kept on the hosts between runs (the Vagrant lab's own
/// VMs: yes; somebody's real hosts over ssh: no, nothing stays behind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKeeping {
    Keep,
    RemoveAfterRun,
}

/// Probes `host` and starts its agent over ssh, uploading tcplab if needed.
pub async fn start_agent(
    config: &SshConfig,
    host: &str,
    executable: &LocalExecutable,
    keeping: AgentKeeping,
    interrupt: &Interrupt,
    loss: &LossWatch,
) -> Result<(AgentConnection, AgentSource), LabError> {
    if keeping == AgentKeeping::Keep {
        return start_kept_agent(config, host, executable, interrupt, loss).await;
    }
    let probe = probe(config, host).await?;
    let sudo = privilege_prefix(&probe, host)?;
    let installed = probe
        .installed
        .filter(|(sha, path)| *sha == executable.sha256 && path.starts_with('/'));
    if let Some(script) = installed
        .and_then(|(sha, path)| installed_agent_script(sudo, &path, &sha).map(|s| (s, path)))
    {
        let (script, path) = script;
        let agent = AgentConnection::spawn(host, config.command(host, &script), interrupt, loss)?;
        return Ok((agent, AgentSource::Installed(path)));
    }
    let size = executable.bytes.len();
    // One session: receive exactly `size` bytes, check them, say so, and
    // become the agent. The trap removes a partial upload if anything fails
    // before the exec; afterwards the agent removes the directory itself.
    let script = format!(
        "set -e; d=$(mktemp -d {UPLOAD_DIR_PREFIX}XXXXXX); trap 'rm -rf \"$d\"' EXIT; \
         head -c {size} > \"$d/tcplab\"; [ \"$(wc -c < \"$d/tcplab\")\" -eq {size} ]; \
         chmod 700 \"$d/tcplab\"; echo uploaded; \
         exec {sudo}\"$d/tcplab\" agent --remove-on-exit \"$d\" --expect-sha256 {}",
        executable.sha256
    );
    let mut agent = AgentConnection::spawn(host, config.command(host, &script), interrupt, loss)?;
    let answer = agent.send_raw("upload", &executable.bytes).await?;
    if answer.trim() != "uploaded" {
        return Err(LabError::Step {
            host: host.to_string(),
            step: "upload".to_string(),
            message: format!("unexpected answer {answer:?}"),
        });
    }
    Ok((agent, AgentSource::Uploaded))
}

/// What runs the agent as root on `host` ("" or "sudo -n "), after checking
/// that this build can run there at all.
fn privilege_prefix(probe: &HostProbe, host: &str) -> Result<&'static str, LabError> {
    let local_arch = std::env::consts::ARCH;
    if probe.arch != local_arch {
        return Err(environment(
            host,
            format!(
                "{host} is {} but this tcplab is built for {local_arch}, so it cannot be \
                 uploaded; install tcplab on {host} (cargo install --path . there, or let \
                 the provisioning build it)",
                probe.arch
            ),
        ));
    }
    match probe.privilege {
        RemotePrivilege::Root => Ok(""),
        RemotePrivilege::Sudo => Ok("sudo -n "),
        RemotePrivilege::None => Err(environment(
            host,
            format!(
                "the ssh user on {host} is not root and has no passwordless sudo; \
                 the agent needs root for firewall rules (add a sudoers rule, or log in as root)"
            ),
        )),
    }
}

/// Starts the agent of a host that keeps it between runs (the Vagrant
/// lab's VMs), in one ssh session: see [`kept_agent_session`].
async fn start_kept_agent(
    config: &SshConfig,
    host: &str,
    executable: &LocalExecutable,
    interrupt: &Interrupt,
    loss: &LossWatch,
) -> Result<(AgentConnection, AgentSource), LabError> {
    let script = kept_agent_session(executable.bytes.len(), &executable.sha256);
    let mut agent = AgentConnection::spawn(host, config.command(host, &script), interrupt, loss)?;
    let started = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut text = String::new();
        for _ in 0..6 {
            text.push_str(&agent.send_raw("probe", b"").await?);
            text.push('\n');
        }
        let probe = HostProbe::parse(&text).ok_or_else(|| {
            environment(
                host,
                format!("unexpected answer to the probe on {host}: {text:?}"),
            )
        })?;
        privilege_prefix(&probe, host)?;
        if probe.cached {
            expect_line(&agent.send_raw("start", b"go\n").await?, "started", host)?;
            return Ok(AgentSource::Cached);
        }
        let mut upload = b"upload\n".to_vec();
        upload.extend_from_slice(&executable.bytes);
        expect_line(&agent.send_raw("upload", &upload).await?, "uploaded", host)?;
        Ok(AgentSource::UploadedAndKept)
    })
    .await
    .unwrap_or_else(|_| {
        Err(environment(
            host,
            format!("ssh to {host} did not answer within {PROBE_TIMEOUT:?}"),
        ))
    });
    match started {
        Ok(source) => Ok((agent, source)),
        Err(error) => {
            let _ = agent.shutdown().await;
            Err(error)
        }
    }
}

fn expect_line(answer: &str, expected: &str, host: &str) -> Result<(), LabError> {
    if answer.trim() == expected {
        return Ok(());
    }
    Err(LabError::Step {
        host: host.to_string(),
        step: "start the agent".to_string(),
        message: format!("expected {expected:?}, the host said {answer:?}"),
    })
}

async fn probe(config: &SshConfig, host: &str) -> Result<HostProbe, LabError> {
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

fn environment(host: &str, message: String) -> LabError {
    LabError::Environment {
        host: host.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_reads_a_config_held_in_memory() {
        if std::process::Command::new("ssh")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("skipped: no ssh client");
            return;
        }
        let config =
            SshConfig::in_memory("Host c1\n  HostName 10.211.55.5\n  User vagrant\n").unwrap();
        assert_eq!(
            config.target_address("c1"),
            Some("10.211.55.5".parse().unwrap())
        );
    }

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

    #[test]
    fn the_scripts_that_keep_an_agent_are_valid_shell() {
        let sha = "ab".repeat(32);
        for script in [
            kept_agent_session(1234, &sha),
            format!("{PROBE_SCRIPT}{}", cached_agent_probe(&sha)),
        ] {
            let checked = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(checked.success(), "{script}");
        }
        let probe = HostProbe::parse("x86_64\n0\nroot\nnone\nnone\ncached\n").unwrap();
        assert!(probe.cached);
    }
}
