//! Labs kept up (`tcplab lab up`, `--keep-on-failure`), as their tests
//! use them: `lab up` with a guard that takes the lab down, what `lab
//! status --json` lists, commands through `lab exec`, and `ss` polled until
//! a state shows.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{tcplab, tcplab_process};

/// Takes the lab down when the test ends, passed or not: a failed
/// assertion must not leave a lab up.
pub struct LabUp(pub String);

impl Drop for LabUp {
    fn drop(&mut self) {
        let _ = tcplab_process("cleanup")
            .args(["lab", "down", "--name", &self.0])
            .output();
    }
}

/// `tcplab lab up --name NAME ARGS…`, which must succeed: the guard, and
/// what it printed.
pub fn up(marker: &str, name: &str, args: &[&str]) -> (LabUp, String) {
    let output = tcplab(marker)
        .args(["lab", "up", "--name", name])
        .args(args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (LabUp(name.to_string()), said)
}

/// `lab exec`, left running (a server, or `nc` waiting on its stdin).
pub fn exec_running(marker: &str, name: &str, host: &str, args: &[&str]) -> Child {
    tcplab_process(marker)
        .args(["lab", "exec", "--name", name, host, "--"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What `ss` prints on `host` for port 8080, once `wanted` shows in it
/// (polled: the state is observed, not slept for; the minute is a guard
/// against a test that would hang, not a deadline the state must meet).
pub fn ss_until(marker: &str, name: &str, host: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = exec(marker, name, host, &["ss", "-tano", "sport = :8080"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(wanted) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The labs `lab status --json` lists, checked against their schema.
pub fn labs_listed(marker: &str) -> Vec<serde_json::Value> {
    let status = tcplab(marker)
        .args(["lab", "status", "--json"])
        .output()
        .unwrap();
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    super::schema::assert_valid("labs", &document);
    document["labs"].as_array().unwrap().clone()
}

/// `tcplab lab exec --name NAME HOST -- ARGS…`, run to its end.
pub fn exec(marker: &str, name: &str, host: &str, args: &[&str]) -> std::process::Output {
    tcplab(marker)
        .args(["lab", "exec", "--name", name, host, "--"])
        .args(args)
        .output()
        .unwrap()
}

/// `tcplab lab down --name NAME`, which must succeed and say so.
pub fn down(marker: &str, name: &str) {
    tcplab(marker)
        .args(["lab", "down", "--name", name])
        .assert()
        .success()
        .stdout(format!("lab {name} is down\n"));
}
