//! The guest's end of the exec channel (`crate::protocol::exec_channel`):
//! in a microvm guest of a lab kept up by `tcplab lab up`, one thread per
//! command port runs the commands its client sends, one session at a time.
//!
//! A session: read [`Frame::Start`], start the command (on a terminal of
//! its own when the client has one, else on pipes, in a process group of
//! its own), answer [`Frame::Started`], relay stdin one way and stdout and
//! stderr the other, then send [`Frame::Exit`]. A client that goes away
//! (its `tcplab lab exec` killed, say) hangs the command up: its process
//! group gets SIGTERM, as a server killed in the article does, and SIGKILL
//! if it is still there [`HANG_UP_GRACE`] later. (An agent run this way,
//! for `--on`, undoes its rules and sysctls on SIGTERM.)

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::exec_channel::{ExecExit, ExecStart, Frame};

/// How long output may still come once the command has exited (a child
/// it left behind may hold its stdout open for ever).
const OUTPUT_GRACE: Duration = Duration::from_millis(300);

/// How long a hung-up command may take to end after SIGTERM.
const HANG_UP_GRACE: Duration = Duration::from_secs(5);

/// Serves sessions on the port device at `path`, for ever.
pub fn serve_port(path: &Path) {
    loop {
        let Ok(port) = File::options().read(true).write(true).open(path) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        serve_sessions(port);
    }
}

/// Reads a Start, runs its session, again. While no client is connected a
/// read returns at once with nothing: then the thread waits a little.
fn serve_sessions(port: File) {
    let Ok(writer) = port.try_clone() else { return };
    let writer = Arc::new(Mutex::new(writer));
    let mut reader = port;
    loop {
        match Frame::read_from(&mut reader) {
            Ok(Some(Frame::Start(start))) => run_session(start, &mut reader, &writer),
            // Input of a session that is over, or an idle port.
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn send(writer: &Mutex<File>, frame: &Frame) -> bool {
    writer
        .lock()
        .map(|mut port| frame.write_to(&mut *port).is_ok())
        .unwrap_or(false)
}

fn run_session(start: ExecStart, reader: &mut File, writer: &Arc<Mutex<File>>) {
    let nonce = start.nonce;
    let spawned = spawn_command(&start);
    send(writer, &Frame::Started(nonce));
    let (mut child, stdin, outputs) = match spawned {
        Ok(started) => started,
        Err(error) => {
            let exit = ExecExit {
                code: Some(127),
                signal: None,
                error: Some(error),
            };
            send(writer, &Frame::Exit(exit));
            return;
        }
    };
    let over = Arc::new(AtomicBool::new(false));
    let pid = child.id();
    let relays: Vec<_> = outputs
        .into_iter()
        .map(|(output, is_stderr)| {
            let writer = writer.clone();
            std::thread::spawn(move || relay_output(output, is_stderr, &writer))
        })
        .collect();
    let input = {
        let (mut reader, over) = (reader.try_clone(), over.clone());
        std::thread::spawn(move || {
            if let Ok(reader) = reader.as_mut() {
                relay_input(reader, stdin, pid, &over);
            }
        })
    };
    let exit = exit_of(&mut child);
    over.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + OUTPUT_GRACE;
    while relays.iter().any(|r| !r.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    send(writer, &Frame::Exit(exit));
    // The client closes after Exit; the input relay then sees the end.
    let _ = input.join();
}

/// Stdin frames to the command until the client ends its input or goes.
fn relay_input(reader: &mut File, stdin: Option<File>, pid: u32, over: &AtomicBool) {
    let mut stdin = stdin;
    loop {
        match Frame::read_from(reader) {
            Ok(Some(Frame::Stdin(bytes))) => {
                if let Some(input) = stdin.as_mut() {
                    let _ = input.write_all(&bytes);
                }
            }
            Ok(Some(Frame::StdinEnd)) => stdin = None,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return hang_up(pid, over),
        }
    }
}

/// The client went: SIGTERM to the command's process group, then SIGKILL
/// if it has not ended in time; nothing once it is over (its process group
/// could be someone else's by then).
fn hang_up(pid: u32, over: &AtomicBool) {
    use nix::sys::signal::{Signal, kill};
    let group = nix::unistd::Pid::from_raw(-(pid as i32));
    if over.load(Ordering::SeqCst) {
        return;
    }
    let _ = kill(group, Signal::SIGTERM);
    let deadline = std::time::Instant::now() + HANG_UP_GRACE;
    while !over.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !over.load(Ordering::SeqCst) {
        let _ = kill(group, Signal::SIGKILL);
    }
}

fn relay_output(mut output: File, is_stderr: bool, writer: &Mutex<File>) {
    let mut buffer = vec![0u8; 16 * 1024];
    // A terminal's master reads EIO once the command is gone: an end too.
    while let Ok(read @ 1..) = output.read(&mut buffer) {
        let bytes = buffer[..read].to_vec();
        let frame = if is_stderr {
            Frame::Stderr(bytes)
        } else {
            Frame::Stdout(bytes)
        };
        if !send(writer, &frame) {
            return;
        }
    }
}

fn exit_of(child: &mut Child) -> ExecExit {
    match child.wait() {
        Ok(status) => ExecExit {
            code: status.code(),
            signal: status.signal(),
            error: None,
        },
        Err(error) => ExecExit {
            code: None,
            signal: None,
            error: Some(format!("waiting for the command: {error}")),
        },
    }
}

/// The command's stdin, and its outputs (`true` for stderr).
type Started = (Child, Option<File>, Vec<(File, bool)>);

fn spawn_command(start: &ExecStart) -> Result<Started, String> {
    let (program, args) = start
        .argv
        .split_first()
        .ok_or_else(|| "no command given".to_string())?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("TERM", start.term.as_deref().unwrap_or("dumb"))
        .current_dir("/");
    let not_run = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::NotFound => format!("{program}: no such command in the guest"),
        _ => format!("cannot run {program}: {error}"),
    };
    match start.tty {
        Some(size) => {
            let pty = open_terminal(size).map_err(|e| format!("no terminal in the guest: {e}"))?;
            spawn_on_terminal(command, pty).map_err(not_run)
        }
        None => spawn_on_pipes(command).map_err(not_run),
    }
}

fn spawn_on_pipes(mut command: Command) -> std::io::Result<Started> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdin = child.stdin.take().map(|s| File::from(OwnedFd::from(s)));
    let mut outputs = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push((File::from(OwnedFd::from(out)), false));
    }
    if let Some(err) = child.stderr.take() {
        outputs.push((File::from(OwnedFd::from(err)), true));
    }
    Ok((child, stdin, outputs))
}

fn open_terminal(
    size: crate::protocol::exec_channel::WindowSize,
) -> nix::Result<nix::pty::OpenptyResult> {
    let window = nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    nix::pty::openpty(Some(&window), None)
}

fn spawn_on_terminal(
    mut command: Command,
    pty: nix::pty::OpenptyResult,
) -> std::io::Result<Started> {
    let terminal = File::from(pty.slave);
    command
        .stdin(terminal.try_clone()?)
        .stdout(terminal.try_clone()?)
        .stderr(terminal);
    // SAFETY: setsid and ioctl are async-signal-safe; the new session's
    // controlling terminal is the pty on stdin.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let master = File::from(pty.master);
    let output = master.try_clone()?;
    Ok((child, Some(master), vec![(output, false)]))
}
