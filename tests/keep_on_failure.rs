//! `--keep-on-failure`: a run whose case fails leaves its hosts up as a lab
//! to step into, with the sockets as the run left them; a run that passes,
//! one refused, and one killed outright leave nothing. Real namespaces,
//! real iptables, real `ss`.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::kept_lab::{exec, labs_listed};
use common::{HostSnapshot, assert_nothing_left, fixture, is_root, new_marker, tcplab};

/// `lab status` lists every lab of this user: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    if !is_root() {
        common::skip_unless_ci("a kept netns lab here runs as root");
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

#[test]
fn a_failed_case_keeps_its_hosts_with_the_socket_it_left() {
    let Some(_turn) = ready() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    // It expects FIN_WAIT2 where the kernel shows FIN_WAIT1: a failure.
    let output = tcplab(&marker)
        .args(["run", fixture("fin-wait1-trap.toml").to_str().unwrap()])
        .args(["-q", "--keep-on-failure"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let labs = labs_listed(&marker);
    assert_eq!(labs.len(), 1, "{labs:?}");
    let name = labs[0]["name"].as_str().unwrap().to_string();
    assert_eq!(labs[0]["state"], "up");
    assert!(
        stderr.contains("a case failed, so its hosts stay up"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("tcplab lab exec --name {name} c1 -- nc c2 8080")),
        "{stderr}"
    );
    // The killed server's connection is still on c2, where the case left it.
    let ss = exec(
        &marker,
        &name,
        "c2",
        &["ss", "-tanH", "sport", "=", ":8080"],
    );
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(ss.contains("10.211.55.10:8080 10.211.55.5:"), "{ss}");
    tcplab(&marker)
        .args(["lab", "down", "--name", &name])
        .assert()
        .success();
    assert_nothing_left(&marker, &before);
}

#[test]
fn a_run_that_passes_or_is_refused_keeps_nothing() {
    let Some(_turn) = ready() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker)
        .args(["fin-wait2", "--json", "-q", "--keep-on-failure"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(common::json_of(&output)["passed"], true);
    assert!(labs_listed(&marker).is_empty());
    let refused = tcplab(&marker)
        .args(["fin-wait2", "--keep-on-failure", "--lab", "microvm"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--lab microvm cannot be kept"), "{said}");
    assert!(labs_listed(&marker).is_empty());
    assert_nothing_left(&marker, &before);
}

#[test]
fn kill_9_of_the_run_takes_its_lab_down() {
    let Some(_turn) = ready() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    let mut run = common::tcplab_process(&marker)
        .args(["run", fixture("waits-forever.toml").to_str().unwrap()])
        .args(["-q", "--keep-on-failure"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until its lab is up and its case is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while labs_listed(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the run's lab never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    // The keeper sees its stdin close and takes the lab down by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !labs_listed(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the lab outlived its run");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_nothing_left(&marker, &before);
}
