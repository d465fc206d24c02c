//! End to end: the built-in experiments on the namespace lab, with real
//! namespaces, real iptables, real sockets. Each test also proves the run
//! left nothing behind.

mod common;

use common::{HostSnapshot, assert_nothing_left, fixture, json_of, new_marker, tcplab};
use serde_json::Value;

/// Runs `tcplab ARGS`, checks nothing is left afterwards, returns the output.
fn run_clean(args: &[&str]) -> std::process::Output {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker).args(args).output().unwrap();
    assert_nothing_left(&marker, &before);
    output
}

/// The rebind table of the article's README: ok only when both sockets set SO_REUSEADDR.
fn expected_bind(old: bool, new: bool) -> &'static str {
    if old && new { "ok" } else { "EADDRINUSE" }
}

fn check_article_matrix(document: &Value, experiment: &str, state: &str) {
    assert_eq!(document["experiment"], experiment);
    assert_eq!(document["lab"]["kind"], "netns");
    assert_eq!(document["passed"], true, "{document:#}");
    assert!(document["duration_ms"].is_u64());
    let cases = document["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let mut seen = Vec::new();
    for case in cases {
        let old = case["old_reuseaddr"].as_bool().unwrap();
        let new = case["new_reuseaddr"].as_bool().unwrap();
        seen.push((old, new));
        assert_eq!(case["state_after_kill"], state, "{case:#}");
        assert_eq!(case["bind"], expected_bind(old, new), "{case:#}");
        assert_eq!(case["expected_bind"], expected_bind(old, new));
        assert_eq!(case["passed"], true);
        if !(old && new) {
            assert_eq!(
                case["bind_step"], "bind",
                "Linux refuses at bind, not listen"
            );
        }
        // The connection as sock_diag returned it: c2's side, towards c1.
        let sockets = case["sockets"].as_array().unwrap();
        let connection = sockets
            .iter()
            .find(|s| s["state"] == state)
            .unwrap_or_else(|| panic!("no {state} socket in {sockets:#?}"));
        assert_eq!(connection["local"], "10.211.55.10:8080");
        assert!(
            connection["remote"]
                .as_str()
                .unwrap()
                .starts_with("10.211.55.5:"),
            "{connection}"
        );
        let timer = connection["timer_ms"].as_u64().unwrap();
        assert!(timer > 0 && timer <= 60_000, "timer {timer}");
    }
    seen.sort();
    assert_eq!(
        seen,
        [(false, false), (false, true), (true, false), (true, true)]
    );
}

#[test]
fn fin_wait2_reproduces_the_article_and_honours_the_json_contract() {
    let output = run_clean(&["fin-wait2", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    check_article_matrix(&json_of(&output), "fin-wait2", "FIN_WAIT2");
}

#[test]
fn time_wait_reproduces_the_article() {
    let output = run_clean(&["time-wait", "--json", "--quiet"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    check_article_matrix(&json_of(&output), "time-wait", "TIME_WAIT");
}

#[test]
fn the_human_report_shows_rule_connection_kill_state_and_verdicts() {
    let output = run_clean(&["fin-wait2"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "lab: netns",
        "10.211.55.5",
        "iptables --append OUTPUT --match tcp --protocol tcp --dport 8080 --tcp-flags FIN FIN --jump DROP",
        "connect 10.211.55.10:8080 from 10.211.55.5:",
        "kill -KILL",
        "10.211.55.10:8080",
        "FIN_WAIT2 timer:(timewait,",
        "PASS: 4 of 4 cases as expected",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let verdicts = text
        .lines()
        .filter(|l| l.trim_end().ends_with(" pass"))
        .count();
    assert_eq!(verdicts, 4, "{text}");
    // Readable in 80 columns; only the article's command is quoted whole.
    for line in text.lines().filter(|l| !l.contains("iptables --append")) {
        assert!(
            line.chars().count() <= 80,
            "longer than 80 columns: {line:?}"
        );
    }
    // Progress goes to stderr, one line per case.
    let progress = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        progress.lines().filter(|l| l.starts_with('[')).count(),
        4,
        "{progress}"
    );
}

#[test]
fn the_fin_wait1_trap_is_reported_as_seen_and_fails() {
    let file = fixture("fin-wait1-trap.toml");
    let output = run_clean(&["run", file.to_str().unwrap(), "--json", "-q"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let document = json_of(&output);
    assert_eq!(document["passed"], false);
    let case = &document["cases"][0];
    assert_eq!(case["state_after_kill"], "FIN_WAIT1", "{case:#}");
    assert_eq!(case["passed"], false);
    let failure = case["failures"][0].as_str().unwrap();
    assert!(
        failure.contains("FIN_WAIT2") && failure.contains("FIN_WAIT1"),
        "{failure}"
    );
}

#[test]
fn a_failed_expectation_says_expected_and_seen_in_the_table() {
    let file = fixture("fin-wait1-trap.toml");
    let output = run_clean(&["run", file.to_str().unwrap(), "-q"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("FAIL"), "{text}");
    assert!(
        text.contains("expected FIN_WAIT2 after the kill, the kernel showed FIN_WAIT1"),
        "{text}"
    );
}

#[test]
fn missing_iptables_exits_3_and_says_what_to_install() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker)
        .args(["fin-wait2", "-q"])
        .env("TCPLAB_IPTABLES", "/nonexistent/iptables")
        .output()
        .unwrap();
    assert_nothing_left(&marker, &before);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("apt-get install iptables"), "{stderr}");
    assert!(stderr.contains("c1"), "names the host: {stderr}");
    assert!(output.stdout.is_empty());
}
