//! A guest's serial console, always read: its last lines are what a guest
//! that dies while booting leaves behind.
//!
//! Each qemu writes its guest's `ttyS0` into a pipe (`-serial
//! file:/dev/fd/N`, the write end inherited); a thread here reads the other
//! end and keeps the last [`KEPT_LINES`] lines. The guest's init prints why
//! it gave up there, and the kernel prints a panic there, so an error about
//! a guest that went away can say what the guest said last. Nothing is
//! written to disk, and the thread ends when qemu does.
//! `TCPLAB_MICROVM_CONSOLE=1` also copies every line to stderr, with the
//! host's name in front.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, PipeWriter};
use std::sync::{Arc, Mutex};

use super::super::error::LabError;

/// How many of the console's last lines are kept.
const KEPT_LINES: usize = 20;
/// A longer line is cut: the console is for reading, not for storing.
const MAX_LINE_CHARS: usize = 300;

/// The reading end of one guest's console.
pub struct GuestConsole {
    last: Arc<Mutex<VecDeque<String>>>,
}

impl GuestConsole {
    /// A pipe whose write end goes to qemu (hand it to [`super::qemu::command`]
    /// and drop it once qemu has started) and a thread reading the other end.
    pub fn open(host: &str, echo: bool) -> Result<(GuestConsole, PipeWriter), LabError> {
        let (reader, writer) = std::io::pipe()
            .map_err(|e| LabError::Setup(format!("a pipe for {host}'s console: {e}")))?;
        let last = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_LINES)));
        let (kept, name) = (last.clone(), host.to_string());
        std::thread::Builder::new()
            .name(format!("{host}-console"))
            .spawn(move || {
                for line in BufReader::new(reader).split(b'\n').map_while(Result::ok) {
                    let text: String = String::from_utf8_lossy(&line)
                        .trim_end()
                        .chars()
                        .take(MAX_LINE_CHARS)
                        .collect();
                    if echo {
                        eprintln!(
                            "[{name} console] {}",
                            crate::terminal_text::escape_controls(&text)
                        );
                    }
                    if let Ok(mut lines) = kept.lock() {
                        if lines.len() == KEPT_LINES {
                            lines.pop_front();
                        }
                        lines.push_back(text);
                    }
                }
            })
            .map_err(|e| LabError::Setup(format!("a thread for {host}'s console: {e}")))?;
        Ok((GuestConsole { last }, writer))
    }

    /// The last lines the guest printed, oldest first, without empty ones.
    pub fn last_lines(&self) -> Vec<String> {
        self.last
            .lock()
            .map(|lines| lines.iter().filter(|l| !l.is_empty()).cloned().collect())
            .unwrap_or_default()
    }

    /// `error`, with what the guest printed last when it is about a guest
    /// that went away or did not answer in time.
    pub fn explain(&self, error: LabError) -> LabError {
        let lines = self.last_lines();
        if lines.is_empty() {
            return error;
        }
        let said = format!("; its console's last lines:\n    {}", lines.join("\n    "));
        match error {
            LabError::AgentLost {
                host,
                step,
                message,
            } => LabError::AgentLost {
                host,
                step,
                message: message + &said,
            },
            LabError::Timeout { host, step, after } => LabError::Setup(format!(
                "{host}: no answer to '{step}' within {} s{said}",
                after.as_secs()
            )),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn keeps_the_last_lines_a_guest_printed_and_adds_them_to_its_error() {
        let (console, mut writer) = GuestConsole::open("c2", false).unwrap();
        for n in 0..30 {
            writeln!(writer, "line {n}").unwrap();
        }
        writeln!(writer, "tcplab init: the virtio port never appeared\r").unwrap();
        drop(writer);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while console.last_lines().last().map(String::as_str)
            != Some("tcplab init: the virtio port never appeared")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the reader never caught up"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let lines = console.last_lines();
        assert_eq!(lines.len(), KEPT_LINES);
        assert_eq!(lines[0], "line 11");
        let error = console.explain(LabError::AgentLost {
            host: "c2".into(),
            step: "hello".into(),
            message: "its process or connection ended".into(),
        });
        let text = error.to_string();
        assert!(
            text.starts_with("c2: the agent went away during 'hello'"),
            "{text}"
        );
        assert!(
            text.ends_with("    tcplab init: the virtio port never appeared"),
            "{text}"
        );
    }
}
