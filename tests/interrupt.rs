//! Ctrl-C, SIGTERM and kill -9 of the orchestrator in the middle of a run:
//! the hosts, the firewall rule and the server are all up when the signal
//! lands, and afterwards nothing is left.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    HostSnapshot, KillOnPanic, assert_nothing_left, fixture, new_marker, processes_with_marker,
    signal, tcplab, tcplab_process,
};

/// Starts the run that waits a minute for a state that never comes, and
/// returns once both of its cases have their agents and servers running.
fn start_waiting_run(marker: &str) -> Child {
    let file = fixture("waits-forever.toml");
    let child = tcplab_process(marker)
        .args(["run", file.to_str().unwrap(), "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Orchestrator + 2 cases × (2 agents + 1 server). Servers are killed by
    // the run itself; wait until the agents are all there and the run has
    // had time to reach its long wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    let _guard = KillOnPanic(child.id());
    while processes_with_marker(marker).len() < 5 {
        assert!(Instant::now() < deadline, "the run never got its hosts up");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn interrupted_by(number: i32, exit_code: i32) {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let child = start_waiting_run(&marker);
    signal(child.id(), number);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(exit_code), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    // Clean-up happens before the exit, not after: check at once.
    assert!(processes_with_marker(&marker).is_empty());
    assert_nothing_left(&marker, &before);
}

#[test]
fn ctrl_c_cleans_up_and_exits_130() {
    interrupted_by(libc::SIGINT, 130);
}

#[test]
fn sigterm_cleans_up_and_exits_143() {
    interrupted_by(libc::SIGTERM, 143);
}

#[test]
fn kill_9_of_the_orchestrator_leaves_nothing_and_the_next_run_passes() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let mut child = start_waiting_run(&marker);
    signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    assert_nothing_left(&marker, &before);

    let marker = new_marker();
    tcplab(&marker).args(["fin-wait2", "-q"]).assert().code(0);
    assert_nothing_left(&marker, &before);
}
