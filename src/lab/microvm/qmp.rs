//! The few QMP (qemu's machine protocol) commands the microvm lab sends:
//! enough to save a running guest to a file and make sure it runs on.
//!
//! Each guest's monitor is one end of an unnamed `socketpair(AF_UNIX,
//! SOCK_STREAM)`, the other end inherited by qemu (`-chardev socket,fd=N`):
//! like the guests' link, it has no address that another process could
//! connect to. Written by hand rather than with the `qapi` crate: six
//! commands, sent one at a time, need a line of JSON each way, not qemu's
//! whole generated schema.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::error::LabError;

/// How long one command may take to be answered.
const ANSWER_PATIENCE: Duration = Duration::from_secs(30);
/// The longest line qemu may send (its greeting and replies are short).
const MAX_LINE: usize = 64 * 1024;

/// A guest's monitor, in command mode.
pub struct Monitor {
    host: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Monitor {
    /// The monitor on `stream`: reads qemu's greeting and leaves
    /// capabilities negotiation, as QMP requires before any command.
    pub fn open(host: &str, stream: UnixStream) -> Result<Monitor, LabError> {
        let fail = |e: std::io::Error| LabError::Setup(format!("{host}'s qemu monitor: {e}"));
        stream
            .set_read_timeout(Some(ANSWER_PATIENCE))
            .map_err(fail)?;
        let writer = stream.try_clone().map_err(fail)?;
        let mut monitor = Monitor {
            host: host.to_string(),
            reader: BufReader::new(stream),
            writer,
        };
        monitor.read_message()?;
        monitor.execute("qmp_capabilities", json!({}))?;
        Ok(monitor)
    }

    /// Saves the running guest to `file` through qemu's migration (the
    /// guest pauses at the end) and lets it run on, whether the save
    /// worked or not. The path is quoted for the shell qemu's `exec:`
    /// migration starts.
    ///
    /// The outer error is a guest that could not be made to run again: it
    /// would look like a hung agent at the run's next request, so it ends
    /// the boot. The inner one is a save that failed, which costs only the
    /// next run its warm start.
    pub fn save_to(
        &mut self,
        file: &std::path::Path,
        within: Duration,
    ) -> Result<Result<(), LabError>, LabError> {
        let saved = self.migrate_to(file, within);
        if saved.is_err() {
            // A migration still going on would pause the guest when it
            // ends, after the `cont` below: stop it first.
            self.cancel_migration(within)?;
        }
        self.resume(within)?;
        self.ensure_running(within)?;
        Ok(saved)
    }

    fn migrate_to(&mut self, file: &std::path::Path, within: Duration) -> Result<(), LabError> {
        let path = shlex::try_quote(&file.to_string_lossy())
            .map_err(|e| LabError::Setup(format!("snapshot path {}: {e}", file.display())))?
            .into_owned();
        self.execute("migrate", json!({ "uri": format!("exec:cat > {path}") }))?;
        let started = Instant::now();
        loop {
            let status = self.execute("query-migrate", json!({}))?;
            match status["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => {
                    let why = status["error-desc"].as_str().unwrap_or("no reason given");
                    return Err(self.failed(format!("saving the guest failed: {why}")));
                }
                _ if started.elapsed() > within => {
                    return Err(
                        self.failed(format!("saving the guest took over {} s", within.as_secs()))
                    );
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Cancels a migration that may still run, and waits until qemu says
    /// it is over, however it ended.
    fn cancel_migration(&mut self, within: Duration) -> Result<(), LabError> {
        self.execute("migrate_cancel", json!({}))?;
        let started = Instant::now();
        loop {
            let status = self.execute("query-migrate", json!({}))?;
            match status["status"].as_str() {
                Some("active" | "setup" | "cancelling" | "device" | "pre-switchover")
                    if started.elapsed() < within =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some("active" | "setup" | "cancelling" | "device" | "pre-switchover") => {
                    return Err(self.failed(format!(
                        "a migration qemu was told to cancel still ran after {} s",
                        within.as_secs()
                    )));
                }
                _ => return Ok(()),
            }
        }
    }

    /// `cont`, again while qemu says the migration is still being wound
    /// up: `query-migrate` reports "completed" before qemu's clean-up of
    /// the migration has run, and `cont` in between is refused ("Migration
    /// is not finalized yet"; seen on a busy machine).
    fn resume(&mut self, within: Duration) -> Result<(), LabError> {
        let started = Instant::now();
        loop {
            match self.execute("cont", json!({})) {
                Err(LabError::Step { message, .. })
                    if message.contains("not finalized") && started.elapsed() < within =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Checks that the guest runs, as `query-status` tells, and resumes it
    /// again while it does not (a migration that ended after the `cont`
    /// pauses it once more).
    fn ensure_running(&mut self, within: Duration) -> Result<(), LabError> {
        let started = Instant::now();
        loop {
            let status = self.execute("query-status", json!({}))?;
            let state = status["status"].as_str().unwrap_or("unknown").to_string();
            if state == "running" {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(self.failed(format!(
                    "the guest stays {state} after saving it; qemu would not resume it"
                )));
            }
            tracing::warn!(host = %self.host, state, "the guest does not run after `cont`; resuming it again");
            std::thread::sleep(Duration::from_millis(20));
            self.resume(within)?;
        }
    }

    /// Sends one command and returns its `return` value.
    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, LabError> {
        let mut line = json!({ "execute": command, "arguments": arguments }).to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| self.failed(format!("sending {command}: {e}")))?;
        loop {
            let message = self.read_message()?;
            // Events (STOP, RESUME, MIGRATION…) come between replies.
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let why = error["desc"].as_str().unwrap_or("no description");
                return Err(self.failed(format!("{command}: {why}")));
            }
        }
    }

    fn read_message(&mut self) -> Result<Value, LabError> {
        let mut line = String::new();
        let read = Read::take(&mut self.reader, MAX_LINE as u64)
            .read_line(&mut line)
            .map_err(|e| self.failed(format!("reading: {e}")))?;
        if read == 0 {
            return Err(self.failed("qemu closed its monitor".to_string()));
        }
        serde_json::from_str(&line).map_err(|e| self.failed(format!("not QMP JSON ({e})")))
    }

    fn failed(&self, message: String) -> LabError {
        LabError::Step {
            host: self.host.clone(),
            step: "qemu monitor".into(),
            message,
        }
    }
}
