//! A lab kept up between commands, as a person uses it: `lab up`, the
//! article's own commands typed through `lab exec`, what `ss` shows on c2,
//! `lab down`; two labs at once; and `kill -9` of the keeper, then
//! `lab clean`. Real namespaces, real iptables, real `nc` and `ss`.

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::kept_lab::{down, exec, exec_running, labs_listed, ss_until, up};
use common::{HostSnapshot, assert_nothing_left, is_root, new_marker, skip_unless_ci, tcplab};

/// The tests take turns: `lab exec` without `--name` means "the only lab
/// that is up", which a lab of a test beside it would make ambiguous.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ready() -> Option<std::sync::MutexGuard<'static, ()>> {
    if !is_root() {
        skip_unless_ci("a kept netns lab here runs as root");
        return None;
    }
    if Command::new("nc").arg("-h").output().is_err() {
        skip_unless_ci("no nc (apt-get install netcat-openbsd)");
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

#[test]
fn the_articles_commands_through_lab_exec_leave_fin_wait2_on_c2() {
    let Some(_turn) = ready() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let (_lab, said) = up(&marker, "t-article", &[]);
    assert!(said.contains("c1 10.211.55.5, c2 10.211.55.10"), "{said}");
    // 0x01 of the article: c1 drops its own FINs to port 8080.
    let rule = [
        "iptables",
        "--append",
        "OUTPUT",
        "--match",
        "tcp",
        "--protocol",
        "tcp",
        "--dport",
        "8080",
        "--tcp-flags",
        "FIN",
        "FIN",
        "--jump",
        "DROP",
    ];
    assert!(exec(&marker, "t-article", "c1", &rule).status.success());
    // The server on c2 (tcplab's, in the Java server's place), and
    // `nc c2 8080` on c1, by name, left running as in the article.
    let tcplab_path = common::tcplab_path();
    let tcplab_path = tcplab_path.to_str().unwrap();
    let serve = [tcplab_path, "serve", "--bind", "0.0.0.0:8080"];
    let mut server = exec_running(&marker, "t-article", "c2", &serve);
    ss_until(&marker, "t-article", "c2", "LISTEN");
    let mut client = exec_running(&marker, "t-article", "c1", &["nc", "c2", "8080"]);
    let seen = ss_until(&marker, "t-article", "c2", "FIN-WAIT-2");
    assert!(seen.contains("FIN-WAIT-2"), "{seen}");
    // 0x02: kill the server; its orphaned connection stays in FIN_WAIT2.
    server.kill().unwrap();
    server.wait().unwrap();
    let orphan = ss_until(&marker, "t-article", "c2", "FIN-WAIT-2");
    assert!(
        orphan.contains("FIN-WAIT-2") && !orphan.contains("LISTEN"),
        "{orphan}"
    );
    // ... and a new server cannot bind the port.
    let again = exec(&marker, "t-article", "c2", &serve);
    assert!(!again.status.success());
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("Address already in use"), "{why}");
    client.kill().unwrap();
    client.wait().unwrap();
    down(&marker, "t-article");
    assert_nothing_left(&marker, &before);
}

#[test]
fn exec_passes_stdin_stdout_and_the_exit_code_through() {
    let Some(_turn) = ready() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let _lab = up(&marker, "t-pipes", &[]);
    let mut cat = exec_running(&marker, "t-pipes", "c1", &["cat"]);
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"from the host\n")
        .unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the host\n");
    let code = exec(&marker, "t-pipes", "c2", &["sh", "-c", "hostname; exit 7"]);
    assert_eq!(code.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&code.stdout), "c2\n");
    // Without --name, the only lab that is up; beside a lab of someone
    // working on this machine, a refusal that names both.
    let up_now = labs_listed(&marker)
        .iter()
        .filter(|l| l["state"] == "up")
        .count();
    let unnamed = tcplab(&marker)
        .args(["lab", "exec", "c1", "--", "true"])
        .output()
        .unwrap();
    if up_now == 1 {
        assert!(unnamed.status.success(), "{unnamed:?}");
    } else {
        assert_eq!(unnamed.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&unnamed.stderr).contains("t-pipes"));
    }
    let missing = exec(&marker, "t-pipes", "c1", &["no-such-program-here"]);
    assert_eq!(missing.status.code(), Some(2));
    down(&marker, "t-pipes");
    assert_nothing_left(&marker, &before);
}

#[test]
fn two_labs_up_at_once_do_not_see_each_other() {
    let Some(_turn) = ready() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let _one = up(&marker, "t-one", &[]);
    let _two = up(&marker, "t-two", &[]);
    let tcplab_path = common::tcplab_path();
    let serve = [
        tcplab_path.to_str().unwrap(),
        "serve",
        "--bind",
        "0.0.0.0:8080",
    ];
    let mut server = exec_running(&marker, "t-two", "c2", &serve);
    ss_until(&marker, "t-two", "c2", "LISTEN");
    let probe = ["nc", "-z", "-w", "2", "c2", "8080"];
    assert!(exec(&marker, "t-two", "c1", &probe).status.success());
    assert!(!exec(&marker, "t-one", "c1", &probe).status.success());
    // Two are up: a command that does not say which is refused.
    let ambiguous = tcplab(&marker)
        .args(["lab", "exec", "c1", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(ambiguous.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("several labs are up"));
    server.kill().unwrap();
    server.wait().unwrap();
    down(&marker, "t-one");
    down(&marker, "t-two");
    assert_nothing_left(&marker, &before);
}

#[test]
fn kill_9_of_the_keeper_then_lab_clean_leaves_nothing() {
    let Some(_turn) = ready() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let _lab = up(&marker, "t-killed", &[]);
    let lab = labs_listed(&marker)
        .into_iter()
        .find(|l| l["name"] == "t-killed")
        .unwrap();
    assert_eq!(lab["state"], "up");
    assert_eq!(lab["kind"], "netns");
    let keeper = lab["keeper"]["pid"].as_u64().unwrap() as u32;
    common::signal(keeper, libc::SIGKILL);
    // Its agents, and so the lab's namespaces, go with it.
    let agents: Vec<u32> = lab["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["agent"]["pid"].as_u64().unwrap() as u32)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while agents
        .iter()
        .any(|pid| std::path::Path::new(&format!("/proc/{pid}/ns")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = exec(&marker, "t-killed", "c1", &["true"]);
    assert_eq!(gone.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("lab clean"));
    tcplab(&marker)
        .args(["lab", "clean", "--lab", "netns"])
        .assert()
        .success()
        .stdout(predicates::str::contains("lab t-killed: removed"));
    assert!(!std::path::Path::new("/run/tcplab/labs/t-killed").exists());
    assert_nothing_left(&marker, &before);
}

#[test]
fn bad_names_and_missing_labs_are_usage_errors() {
    let Some(_turn) = ready() else { return };
    let marker = new_marker();
    for name in ["Big", "../x", "-x", ""] {
        let out = tcplab(&marker)
            .args(["lab", "up", "--name", name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--name {name:?}");
    }
    let out = exec(&marker, "t-not-up", "c1", &["true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lab named \"t-not-up\" is up"));
    let _lab = up(&marker, "t-twice", &[]);
    let twice = tcplab(&marker)
        .args(["lab", "up", "--name", "t-twice"])
        .output()
        .unwrap();
    assert_eq!(twice.status.code(), Some(2));
    down(&marker, "t-twice");
}

#[test]
fn an_experiment_runs_on_a_lab_that_is_up_and_leaves_it_as_it_was() {
    let Some(_turn) = ready() else { return };
    let (marker, before) = (new_marker(), HostSnapshot::take());
    let _lab = up(&marker, "t-on", &[]);
    let rules_before = exec(&marker, "t-on", "c1", &["iptables", "-S"]);
    let run = tcplab(&marker)
        .args(["fin-wait2", "--on", "t-on", "--json", "--quiet"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["lab"]["why"], "--on t-on");
    assert_eq!(report["cases"].as_array().unwrap().len(), 4);
    // The run's rules went with its agents; the lab is still up.
    let rules_after = exec(&marker, "t-on", "c1", &["iptables", "-S"]);
    assert_eq!(rules_after.stdout, rules_before.stdout);
    assert!(exec(&marker, "t-on", "c2", &["true"]).status.success());
    let elsewhere = tcplab(&marker)
        .args(["fin-wait2", "--on", "t-on", "--lab", "microvm"])
        .output()
        .unwrap();
    assert_eq!(elsewhere.status.code(), Some(2));
    down(&marker, "t-on");
    assert_nothing_left(&marker, &before);
}
