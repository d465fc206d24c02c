//! A microvm lab kept up, as a person uses it: `lab up --lab microvm`, the
//! article's own commands typed through `lab exec` into two qemu VMs that
//! boot Debian's 6.1 kernel, what `ss` shows in c2, `lab down`; and
//! `kill -9` of the keeper, then `lab clean`. Real VMs, real iptables, and
//! the `nc`, `ss` and `sh` of this machine, carried into the guests.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::kept_lab::{LabUp, down, exec, exec_running, labs_listed, ss_until};
use common::{HostSnapshot, assert_nothing_left, is_root, new_marker, skip_unless_ci, tcplab};

/// Two VMs at a time on a 2-core machine, and `lab exec` without `--name`
/// means the only lab up: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn vm_turn() -> Option<MutexGuard<'static, ()>> {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        skip_unless_ci("a kept lab's tests here run as root");
        return None;
    }
    common::qemu_available().then_some(turn)
}

fn up(marker: &str, name: &str) -> (LabUp, String) {
    common::kept_lab::up(marker, name, &["--lab", "microvm", "--kernel", "6.1"])
}

#[test]
fn the_articles_commands_in_two_vms_leave_fin_wait2_on_c2() {
    let Some(_turn) = vm_turn() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let (_lab, said) = up(&marker, "t-vm-article");
    assert!(said.contains("microvm, kernel 6.1."), "{said}");
    let listed = labs_listed(&marker);
    assert_eq!(listed[0]["kind"], "microvm", "{listed:?}");
    // c1 drops its own FINs to port 8080, with this machine's iptables.
    let rule = "iptables --append OUTPUT --match tcp --protocol tcp --dport 8080 \
                --tcp-flags FIN FIN --jump DROP";
    let rule: Vec<&str> = rule.split_whitespace().collect();
    let added = exec(&marker, "t-vm-article", "c1", &rule);
    assert!(added.status.success(), "{added:?}");
    // The server on c2 is tcplab's, in the guest; `nc c2 8080` finds c2 by name.
    let serve = ["tcplab", "serve", "--bind", "0.0.0.0:8080"];
    let mut server = exec_running(&marker, "t-vm-article", "c2", &serve);
    ss_until(&marker, "t-vm-article", "c2", "LISTEN");
    let mut client = exec_running(&marker, "t-vm-article", "c1", &["nc", "c2", "8080"]);
    let seen = ss_until(&marker, "t-vm-article", "c2", "FIN-WAIT-2");
    assert!(seen.contains("FIN-WAIT-2"), "{seen}");
    // Killing `lab exec` hangs the server up in the guest: its orphaned
    // connection stays in FIN_WAIT2 and holds the port.
    server.kill().unwrap();
    server.wait().unwrap();
    let orphan = ss_until(&marker, "t-vm-article", "c2", "timer:(timewait");
    assert!(
        orphan.contains("FIN-WAIT-2") && !orphan.contains("LISTEN"),
        "{orphan}"
    );
    let again = exec(&marker, "t-vm-article", "c2", &serve);
    assert!(!again.status.success());
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("Address already in use"), "{why}");
    client.kill().unwrap();
    client.wait().unwrap();
    down(&marker, "t-vm-article");
    assert_nothing_left(&marker, &before);
}

#[test]
fn exec_in_a_vm_passes_stdin_output_and_exit_codes_through() {
    let Some(_turn) = vm_turn() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let (_lab, _) = up(&marker, "t-vm-exec");
    let mut cat = exec_running(&marker, "t-vm-exec", "c2", &["cat"]);
    use std::io::Write;
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"through c2\n")
        .unwrap();
    let output = cat.wait_with_output().unwrap();
    assert_eq!(output.stdout, b"through c2\n");
    let script = "cat /etc/hosts; echo to-stderr >&2; exit 7";
    let hosts = exec(&marker, "t-vm-exec", "c1", &["sh", "-c", script]);
    assert_eq!(hosts.status.code(), Some(7));
    let text = String::from_utf8_lossy(&hosts.stdout);
    assert!(text.contains("10.211.55.10 c2"), "{text}");
    assert_eq!(String::from_utf8_lossy(&hosts.stderr), "to-stderr\n");
    let missing = exec(&marker, "t-vm-exec", "c1", &["no-such-tool"]);
    assert_eq!(missing.status.code(), Some(127));
    down(&marker, "t-vm-exec");
    assert_nothing_left(&marker, &before);
}

#[test]
fn an_experiment_runs_in_the_vms_of_a_kept_lab_and_leaves_them_as_they_were() {
    let Some(_turn) = vm_turn() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let (_lab, _) = up(&marker, "t-vm-on");
    let rules_before = exec(&marker, "t-vm-on", "c1", &["iptables", "-S"]);
    let run = tcplab(&marker)
        .args(["fin-wait2", "--on", "t-vm-on", "--json", "--quiet"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["lab"]["kind"], "microvm");
    assert!(
        report["lab"]["kernel"]
            .as_str()
            .unwrap()
            .starts_with("6.1.")
    );
    assert_eq!(report["cases"].as_array().unwrap().len(), 4);
    // The run's agents undid their rules in the guests; the lab is still up,
    // with the orphans the cases left to look at.
    let rules_after = exec(&marker, "t-vm-on", "c1", &["iptables", "-S"]);
    assert_eq!(rules_after.stdout, rules_before.stdout);
    let left = exec(&marker, "t-vm-on", "c2", &["ss", "-tan"]);
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        left.contains("FIN-WAIT-2") || left.contains("TIME-WAIT"),
        "{left}"
    );
    down(&marker, "t-vm-on");
    assert_nothing_left(&marker, &before);
}

#[test]
fn kill_9_of_a_vm_labs_keeper_then_lab_clean_leaves_nothing() {
    let Some(_turn) = vm_turn() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let (_lab, _) = up(&marker, "t-vm-kill");
    let keeper = labs_listed(&marker)[0]["keeper"]["pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Its qemu processes die with it; the directory waits for `lab clean`.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !common::processes_with_marker(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let cleaned = tcplab(&marker).args(["lab", "clean"]).output().unwrap();
    let said = String::from_utf8_lossy(&cleaned.stdout);
    assert!(said.contains("lab t-vm-kill: removed"), "{said}");
    assert!(labs_listed(&marker).is_empty());
    assert_nothing_left(&marker, &before);
}
