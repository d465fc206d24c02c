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

use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use super::host_probe::{HostProbe, PROBE_TIMEOUT, RemotePrivilege, environment, probe};
use super::local_executable::LocalExecutable;
use super::ssh_config::SshConfig;
use crate::agent::recovery::reap::UPLOAD_DIR_PREFIX;
use crate::interrupt::Interrupt;

/// Where the Vagrant lab keeps agents on its VMs between runs, by SHA-256:
/// a directory only root can enter, so nobody can swap a file in it.
pub const AGENT_CACHE_DIR: &str = "/var/cache/tcplab/agents";

/// The kept session's part that runs as root (`sh -c` for root, one
/// `sudo -n sh -c` otherwise; `$1` says which): it prints `root` or `sudo`,
/// whether this very build is in the cache, then waits for a word from the
/// orchestrator on stdin: `go` starts the kept agent; `upload` receives
/// `size` bytes into the cache (a partial file, renamed when complete) and
/// starts that. No single quote in it: the session quotes it whole.
fn kept_agent_as_root(size: usize, sha256: &str) -> String {
    let cache = AGENT_CACHE_DIR;
    let run = format!("exec \"$c\" agent --expect-sha256 {sha256}");
    format!(
        "echo \"$1\"; c={cache}/{sha256}; \
         if [ \"$(stat -c \"%u %a\" {cache} 2>/dev/null)\" = \"0 700\" ] \
           && [ \"$(stat -c \"%u %a\" \"$c\" 2>/dev/null)\" = \"0 700\" ]; \
         then echo cached; else echo none; fi; \
         read -r what; case \"$what\" in \
         go) echo started; {run};; \
         upload) umask 077; mkdir -p {cache}; chmod 700 {cache}; \
           t=$(mktemp {cache}/.partial.XXXXXX); head -c {size} > \"$t\"; \
           if [ \"$(wc -c < \"$t\")\" -ne {size} ]; then rm -f \"$t\"; exit 1; fi; \
           chmod 700 \"$t\"; mv \"$t\" \"$c\"; echo uploaded; {run};; \
         esac; exit 1"
    )
}

/// One ssh session for a VM that may keep its agent, with one `sudo` in
/// it: who and what the host is, an installed tcplab (as the probe looks
/// for it), then [`kept_agent_as_root`]. Its lines come in another order
/// than the probe's (see [`kept_session_probe`]). One session and one sudo,
/// not several: under software emulation an ssh handshake costs the VM
/// 0.75 s and each sudo 0.16 s.
fn kept_agent_session(size: usize, sha256: &str) -> String {
    let root = kept_agent_as_root(size, sha256);
    format!(
        "uname -m; id -u; {}; \
         if [ \"$(id -u)\" = 0 ]; then exec sh -c '{root}' sh root; fi; \
         exec sudo -n sh -c '{root}' sh sudo",
        super::host_probe::installed_probe!()
    )
}

/// The kept session's first lines (arch, uid, installed SHA-256 and path,
/// then from root: privilege, cached) in the probe's order. Only four lines
/// mean sudo refused: no privilege, nothing cached.
fn kept_session_probe(lines: &[String]) -> String {
    let line = |i: usize| lines.get(i).map_or("none", |l| l.trim());
    [line(0), line(1), line(4), line(2), line(3), line(5)].join("\n") + "\n"
}

/// The command that starts an installed agent: the path quoted for the
/// shell, and the hash the probe saw, which the agent checks against the
/// executable it really runs from.
pub(super) fn installed_agent_script(sudo: &str, path: &str, sha256: &str) -> Option<String> {
    let quoted = shlex::try_quote(path).ok()?;
    Some(format!(
        "exec {sudo}{quoted} agent --expect-sha256 {sha256}"
    ))
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
        let mut lines = Vec::new();
        while lines.len() < 6 {
            match agent.send_raw("probe", b"").await {
                Ok(line) => lines.push(line),
                // sudo refused: the session ended after the unprivileged part.
                Err(LabError::AgentLost { .. }) if lines.len() == 4 => break,
                Err(error) => return Err(error),
            }
        }
        let text = kept_session_probe(&lines);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_that_keep_an_agent_are_valid_shell() {
        let sha = "ab".repeat(32);
        assert!(!kept_agent_as_root(1234, &sha).contains('\''));
        for script in [
            kept_agent_session(1234, &sha),
            kept_agent_as_root(1234, &sha),
        ] {
            let checked = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(checked.success(), "{script}");
        }
        let probe = HostProbe::parse("x86_64\n0\nroot\nnone\nnone\ncached\n").unwrap();
        assert!(probe.cached);
        let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
        let kept = kept_session_probe(&lines("x86_64\n1000\nnone\nnone\nsudo\ncached\n"));
        let probe = HostProbe::parse(&kept).unwrap();
        assert_eq!(probe.privilege, RemotePrivilege::Sudo);
        assert!(probe.cached);
        // sudo refused: four lines, then the end of the session.
        let refused = kept_session_probe(&lines("x86_64\n1000\nnone\nnone\n"));
        let probe = HostProbe::parse(&refused).unwrap();
        assert_eq!(probe.privilege, RemotePrivilege::None);
        assert!(!probe.cached);
    }
}
