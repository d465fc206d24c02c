//! Stepping into a guest of a kept microvm lab: `tcplab lab exec` as the
//! client of one of the guest's command ports (`crate::protocol::exec_channel`).
//!
//! The client takes a free port (a lock file beside each socket says which
//! are in use), sends the command, then copies stdin to the guest and the
//! guest's stdout and stderr here until the command exits; its exit code
//! becomes ours. On a terminal, the command gets a terminal of its own in
//! the guest and this one is put in raw mode meanwhile, so keys such as
//! Ctrl-C reach the guest's command. A client that dies hangs the command up.

use std::ffi::OsString;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use super::record::KeptLab;
use crate::lab::error::LabError;
use crate::lab::microvm::kept_guest::{exec_lock, exec_socket};
use crate::protocol::exec_channel::{EXEC_PORTS, ExecExit, ExecStart, Frame, WindowSize};

/// Runs `command` on `host` of the kept microvm `lab`, whose directory is
/// `dir`; returns its exit code (128 + the signal that ended it).
pub fn run_in_guest(
    lab: &KeptLab,
    host: &str,
    dir: &Path,
    command: &[OsString],
) -> Result<u8, LabError> {
    let argv = command
        .iter()
        .map(|arg| {
            arg.to_str().map(String::from).ok_or_else(|| {
                LabError::Usage(format!("{}: not UTF-8 text", arg.to_string_lossy()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if argv.is_empty() {
        return Err(LabError::Usage("which command? give it after --".into()));
    }
    let (_lock, stream) = claim_port(lab, host, dir)?;
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let start = ExecStart {
        nonce: nonce(),
        argv,
        tty: terminal.then(window_size),
        term: std::env::var("TERM").ok(),
    };
    let lost = |e: std::io::Error| gone(lab, host, &e.to_string());
    let mut writer = stream.try_clone().map_err(lost)?;
    Frame::Start(start.clone())
        .write_to(&mut writer)
        .map_err(lost)?;
    let _raw = terminal.then(RawMode::enter).flatten();
    std::thread::spawn(move || copy_stdin(&mut writer));
    let exit = relay_output(&mut &stream, start.nonce).map_err(lost)?;
    exit.ok_or_else(|| gone(lab, host, "its VM closed the command's channel"))
        .map(|exit| exit_code(&exit))
}

/// A free command port of `host`: its lock, held for the session, and the
/// connection.
fn claim_port(
    lab: &KeptLab,
    host: &str,
    dir: &Path,
) -> Result<(Flock<File>, UnixStream), LabError> {
    for index in 0..EXEC_PORTS {
        let path = exec_lock(dir, host, index);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| LabError::Setup(format!("{}: {e}", path.display())))?;
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        let stream = UnixStream::connect(exec_socket(dir, host, index))
            .map_err(|e| gone(lab, host, &e.to_string()))?;
        return Ok((lock, stream));
    }
    Err(LabError::Environment {
        host: host.to_string(),
        message: format!(
            "all {EXEC_PORTS} command channels of {host} in lab {} are in use; \
             end one of its `tcplab lab exec` first",
            lab.name
        ),
    })
}

/// Copies frames to stdout and stderr until this session's Exit; `None`
/// when the channel ends first.
fn relay_output(stream: &mut impl Read, nonce: u64) -> std::io::Result<Option<ExecExit>> {
    let mut ours = false;
    while let Some(frame) = Frame::read_from(stream)? {
        match frame {
            Frame::Started(started) => ours = started == nonce,
            Frame::Stdout(bytes) if ours => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()?;
            }
            Frame::Stderr(bytes) if ours => std::io::stderr().write_all(&bytes)?,
            Frame::Exit(exit) if ours => return Ok(Some(exit)),
            // Output of a session before ours, whose client left.
            _ => {}
        }
    }
    Ok(None)
}

fn copy_stdin(writer: &mut UnixStream) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut stdin = std::io::stdin();
    while let Ok(read @ 1..) = stdin.read(&mut buffer) {
        if Frame::Stdin(buffer[..read].to_vec())
            .write_to(writer)
            .is_err()
        {
            return;
        }
    }
    let _ = Frame::StdinEnd.write_to(writer);
}

fn exit_code(exit: &ExecExit) -> u8 {
    if let Some(error) = &exit.error {
        eprintln!("tcplab: {error}");
    }
    match (exit.code, exit.signal) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 127,
    }
}

fn gone(lab: &KeptLab, host: &str, why: &str) -> LabError {
    LabError::Environment {
        host: host.to_string(),
        message: format!(
            "{host} of lab {} does not answer ({why}); `tcplab lab status` shows whether \
             the lab is still up",
            lab.name
        ),
    }
}

/// Tells this session's frames from those of one before it.
fn nonce() -> u64 {
    let mut bytes = [0u8; 8];
    let read = File::open("/dev/urandom").and_then(|mut random| random.read_exact(&mut bytes));
    match read {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as u64),
    }
}

fn window_size() -> WindowSize {
    let mut size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into memory we own.
    unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    WindowSize {
        rows: size.ws_row,
        cols: size.ws_col,
    }
}

/// This terminal in raw mode until dropped.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}
