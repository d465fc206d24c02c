//! `tcplab lab up | status | exec | shell | down` at the CLI edge: a lab
//! kept up between commands ([`tcplab::lab::kept`]), and the keeper
//! process (`lab hold`) that `up` starts in a session of its own.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tcplab::interrupt::Interrupt;
use tcplab::lab::Lab;
use tcplab::lab::kept::record::{self, KeptLab, LabState};
use tcplab::lab::kept::{enter, guest_session, keeper};
use tcplab::pidfd::ProcessHandle;

use crate::cli::{KeptKind, KeptLabArgs};
use crate::outcome::{Failure, emit, environment, runtime, usage};

/// How long `lab up` waits for its keeper to have both hosts up (a
/// microvm lab may first fetch its kernel).
const UP_PATIENCE: Duration = Duration::from_secs(300);
/// How long `lab down` waits for the keeper to undo the lab.
const DOWN_PATIENCE: Duration = Duration::from_secs(20);

/// `tcplab lab up`: starts the keeper and waits until it is ready.
pub fn up(name: Option<String>, kind: &KeptLabArgs) -> Result<u8, Failure> {
    // Bad choices are said here, not in the keeper's log.
    kind.check().map_err(|why| usage(anyhow!(why)))?;
    if kind.kind == KeptKind::Microvm {
        let missing = tcplab::lab::microvm::initramfs::missing_tools();
        if !missing.is_empty() {
            eprintln!(
                "tcplab: this machine has no {}: the guests go without",
                missing.join(", ")
            );
        }
    }
    let (lab, keeper) = bring_up(name, kind, Keeping::Detached)?;
    // Reaped by init once `up` exits: it is in a session of its own.
    drop(keeper);
    emit(&how_to_step_in(&lab));
    Ok(0)
}

/// How long a keeper holds its lab.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Keeping {
    /// Until `lab down` (`lab up`).
    Detached,
    /// While its stdin is open, or after a line `keep` until `lab down`
    /// (`--keep-on-failure`).
    UntilKept,
}

/// A new lab named `name` (or the first free name) in its own directory,
/// held by a keeper that is ready: its record, and the keeper.
pub fn bring_up(
    name: Option<String>,
    kind: &KeptLabArgs,
    keeping: Keeping,
) -> Result<(KeptLab, std::process::Child), Failure> {
    let name = match name {
        Some(name) => name,
        None => record::free_name()?,
    };
    record::check_name(&name)?;
    let dir = record::labs_dir()?.join(&name);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => usage(anyhow!(
                    "a lab named {name} exists already; `tcplab lab status` shows it \
                     (`tcplab lab clean` removes one whose keeper died)"
                )),
                _ => environment(anyhow!("creating {}: {e}", dir.display())),
            })?;
    }
    start_keeper(&name, kind, &dir, keeping).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&dir);
    })
}

/// Starts `tcplab lab hold` in a session of its own (so that the terminal's
/// Ctrl-C and hang-up do not reach it) and reads its first line.
fn start_keeper(
    name: &str,
    kind: &KeptLabArgs,
    dir: &Path,
    keeping: Keeping,
) -> Result<(KeptLab, std::process::Child), Failure> {
    let exe = std::env::current_exe()
        .context("cannot find the tcplab executable")
        .map_err(environment)?;
    let log = std::fs::File::create(dir.join("keeper.log"))
        .context("creating the keeper's log")
        .map_err(environment)?;
    let mut command = Command::new(exe);
    command
        .args(["lab", "hold", "--name", name])
        .args(kind.to_args())
        .stdout(Stdio::piped())
        .stderr(log);
    if keeping == Keeping::UntilKept {
        command.arg("--until-kept").stdin(Stdio::piped());
    } else {
        command.stdin(Stdio::null());
    }
    // SAFETY: setsid is async-signal-safe and touches only this child.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
    }
    let mut child = command
        .spawn()
        .context("cannot start the lab's keeper")
        .map_err(environment)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| environment(anyhow!("no pipe")))?;
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = send.send(line);
    });
    let line = receive.recv_timeout(UP_PATIENCE).unwrap_or_default();
    if line.trim() == "ready" {
        return Ok((record::find(Some(name))?, child));
    }
    let _ = child.kill();
    let _ = child.wait();
    let said = std::fs::read_to_string(dir.join("keeper.log")).unwrap_or_default();
    let said = said
        .trim()
        .lines()
        .last()
        .unwrap_or("it exited without a word");
    Err(environment(anyhow!("the lab did not come up: {said}")))
}

/// What `lab up` prints: the hosts, and how to get in.
pub fn how_to_step_in(lab: &KeptLab) -> String {
    let addresses: Vec<String> = lab
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.name, h.address))
        .collect();
    let kernel = lab.kernel.as_deref().unwrap_or("unknown");
    let named = format!(" --name {}", lab.name);
    format!(
        "lab {} is up ({}, kernel {kernel}): {}\n\
         \x20 tcplab lab exec{named} c1 -- nc c2 8080\n\
         \x20 tcplab lab shell{named} c2\n\
         \x20 tcplab lab down{named}\n",
        lab.name,
        lab.kind,
        addresses.join(", ")
    )
}

/// `tcplab lab hold`: the keeper itself. `until_kept`: the lab goes when
/// stdin closes, unless a line `keep` came first.
pub fn hold(name: &str, kind: &KeptLabArgs, until_kept: bool) -> Result<u8, Failure> {
    record::check_name(name)?;
    let dir = record::labs_dir()?.join(name);
    let request = kind.request();
    let holding = keeper::Holding {
        name,
        dir: &dir,
        owner_uid: nix::unistd::geteuid().as_raw(),
    };
    // Before the runtime: a rootless netns lab enters a user namespace.
    let mut lab = Lab::resolve(&request)?;
    if let Lab::Microvm(microvm) = &mut lab {
        microvm.kept_in = Some(dir.clone());
    }
    let held = runtime()?.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        let until = async {
            if until_kept {
                tokio::select! {
                    _ = interrupt.cancelled() => return,
                    kept = asked_to_keep() => if !kept { return },
                }
            }
            interrupt.cancelled().await;
        };
        keeper::hold(&lab, &holding, &interrupt, |_| emit("ready\n"), until)
            .await
            .map_err(Failure::from)
    });
    let removed = std::fs::remove_dir_all(&dir);
    held?;
    removed
        .with_context(|| format!("removing {}", dir.display()))
        .map_err(environment)?;
    Ok(0)
}

/// Reads stdin until a line `keep` (true) or its end (false). On a thread
/// of its own: a read tokio's stdin left blocked would hold the runtime's
/// shutdown until the run at the other end went.
async fn asked_to_keep() -> bool {
    let (send, receive) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let kept = std::io::stdin()
            .lines()
            .map_while(Result::ok)
            .any(|line| line.trim() == "keep");
        let _ = send.send(kept);
    });
    receive.await.unwrap_or(false)
}

/// `tcplab lab exec`: becomes `command` on `host`.
pub fn exec(name: Option<&str>, host: &str, command: &[OsString]) -> Result<u8, Failure> {
    let lab = record::find(name)?;
    let record = lab
        .host(host)
        .ok_or_else(|| usage(anyhow!("lab {} has no host {host}", lab.name)))?;
    let dir = record::labs_dir()?.join(&lab.name);
    if lab.kind == "microvm" {
        return Ok(guest_session::run_in_guest(&lab, host, &dir, command)?);
    }
    Err(enter::exec_in(&lab, record, &dir, command).into())
}

/// `tcplab lab shell`: the user's shell on `host`.
pub fn shell(name: Option<&str>, host: &str) -> Result<u8, Failure> {
    // A guest has sh and nothing else: this machine's $SHELL is not there.
    let guest = record::find(name)?.kind == "microvm";
    let shell = std::env::var_os("SHELL")
        .filter(|s| !s.is_empty() && !guest)
        .unwrap_or_else(|| "/bin/sh".into());
    exec(name, host, &[shell])
}

/// `tcplab lab down`: asks the keeper to stop and waits until it has.
pub fn down(name: Option<&str>) -> Result<u8, Failure> {
    let lab = record::find(name)?;
    take_down(&lab)?;
    emit(&format!("lab {} is down\n", lab.name));
    Ok(0)
}

/// Asks `lab`'s keeper to stop, waits until it has (or ends it), and
/// removes what is left of its directory.
pub fn take_down(lab: &KeptLab) -> Result<(), Failure> {
    let dir = record::labs_dir()?.join(&lab.name);
    if let Some(keeper) = ProcessHandle::open_if_started_at(lab.keeper.pid, lab.keeper.start_time) {
        let _ = keeper.signal(libc::SIGTERM);
        let deadline = std::time::Instant::now() + DOWN_PATIENCE;
        while !keeper.exited() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !keeper.exited() {
            // It did not finish in time: its agents go with it.
            let _ = keeper.signal(libc::SIGKILL);
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing {}", dir.display()))
            .map_err(environment)?;
    }
    Ok(())
}

/// `tcplab lab status`.
pub fn status(json: bool) -> Result<u8, Failure> {
    let labs = record::all()?;
    if json {
        let entries: Vec<serde_json::Value> = labs
            .iter()
            .filter_map(|(_, lab)| lab.as_ref())
            .map(|lab| {
                let mut entry = serde_json::to_value(lab).unwrap_or_default();
                entry["state"] = serde_json::to_value(lab.state()).unwrap_or_default();
                entry
            })
            .collect();
        let document = serde_json::json!({ "labs": entries });
        let text = tcplab::report::document::to_json(&document)
            .context("encoding the labs")
            .map_err(environment)?;
        emit(&text);
        return Ok(0);
    }
    if labs.is_empty() {
        emit("no lab is up; start one with `tcplab lab up`\n");
        return Ok(0);
    }
    let mut text = format!(
        "{:<10} {:<7} {:<5} {:<16} {:<16} {:<22} since\n",
        "name", "kind", "state", "c1", "c2", "kernel"
    );
    for (name, lab) in &labs {
        let Some(lab) = lab else {
            text.push_str(&format!(
                "{name:<10} (starting, or its keeper died early)\n"
            ));
            continue;
        };
        let address = |host: &str| lab.host(host).map_or("-".into(), |h| h.address.to_string());
        let state = match lab.state() {
            LabState::Up => "up",
            LabState::Dead => "dead",
        };
        text.push_str(&format!(
            "{:<10} {:<7} {state:<5} {:<16} {:<16} {:<22} {}\n",
            lab.name,
            lab.kind,
            address("c1"),
            address("c2"),
            lab.kernel.as_deref().unwrap_or("-"),
            since(lab.since_unix)
        ));
    }
    emit(&text);
    Ok(0)
}

/// `2026-12-02 17:59:01 UTC`, by the C library's calendar (gmtime_r).
fn since(unix: u64) -> String {
    let Ok(seconds) = libc::time_t::try_from(unix) else {
        return unix.to_string();
    };
    // SAFETY: an all-zero tm is a valid value for gmtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to values we own, alive for the call.
    if unsafe { libc::gmtime_r(&seconds, &mut tm) }.is_null() {
        return unix.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The part of `lab clean` that is about kept labs: removes this user's
/// labs whose keeper died, and says so. A lab that is up is left alone.
pub fn clean_kept() -> Result<Vec<String>, Failure> {
    let mut lines = Vec::new();
    let labs_dir = record::labs_dir()?;
    for (name, lab) in record::all()? {
        let dir = labs_dir.join(&name);
        match lab {
            Some(lab) if lab.state() == LabState::Up => continue,
            Some(lab) => {
                // Its agents die with their keeper; one that somehow did
                // not is ended by pidfd (pid and start time both match).
                for host in &lab.hosts {
                    if let Some(agent) =
                        ProcessHandle::open_if_started_at(host.agent.pid, host.agent.start_time)
                    {
                        let _ = agent.signal(libc::SIGKILL);
                    }
                }
                if let Some(keeper) =
                    ProcessHandle::open_if_started_at(lab.keeper.pid, lab.keeper.start_time)
                {
                    let _ = keeper.signal(libc::SIGKILL);
                }
            }
            // No record: a keeper that died before writing one, or one
            // starting right now; a young directory is left alone.
            None if young(&dir) => continue,
            None => {}
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing {}", dir.display()))
            .map_err(environment)?;
        lines.push(format!("lab {name}: removed (its keeper had ended)"));
    }
    Ok(lines)
}

fn young(dir: &Path) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < UP_PATIENCE)
}
