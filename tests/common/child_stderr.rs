//! Reading a running tcplab's stderr line by line, as a test waits for the
//! moment it needs (`paused before kill`) while the run goes on.

use std::io::{BufRead, BufReader};
use std::process::ChildStderr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines of a child's stderr, as they come.
pub fn stderr_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits up to `within` for a line containing `text`; returns every line
/// read up to it, and panics with them if it never comes.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            let found = line.contains(text);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }
    panic!("no line with {text:?} within {within:?} in {seen:#?}");
}

/// Every line until the child's stderr ends (the reader thread may lag the
/// child's exit by a moment).
pub fn rest_of(lines: &mpsc::Receiver<String>) -> String {
    let mut said = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        said.push(line);
    }
    said.join("\n")
}
