//! Bad input gets exit code 2 and a message naming the file, line, key or flag.

mod common;

use common::{TempExperiment, new_marker, tcplab};

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = tcplab(&new_marker()).args(args).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const GOOD: &str = r#"title = "mine"
teaches = "mine"
port = 8080
[client]
close = "after_ack"
[expect]
state_after_kill = "TIME_WAIT"
[[case]]
old_reuseaddr = true
new_reuseaddr = true
bind = "ok"
"#;

/// Runs a copy of GOOD with `from` replaced by `to`; returns (code, stderr, path).
fn run_broken(from: &str, to: &str) -> (Option<i32>, String, String) {
    assert!(GOOD.contains(from));
    let file = TempExperiment::new("broken.toml", &GOOD.replacen(from, to, 1));
    let path = file.path.to_str().unwrap().to_string();
    let (code, _, stderr) = run(&["run", &path, "-q"]);
    (code, stderr, path)
}

#[test]
fn unknown_experiment_is_a_usage_error() {
    let (code, _, stderr) = run(&["fin-wait3"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("fin-wait3") && stderr.contains("fin-wait2"),
        "{stderr}"
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (code, _, stderr) = run(&["fin-wait2", "--bogus"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[test]
fn unknown_lab_is_a_usage_error() {
    let (code, _, stderr) = run(&["fin-wait2", "--lab", "mars"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("mars") && stderr.contains("netns"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let (code, _, stderr) = run(&["run", "/nonexistent/exp.toml"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/exp.toml"), "{stderr}");
}

#[test]
fn port_zero_names_file_line_and_key() {
    let (code, stderr, path) = run_broken("port = 8080", "port = 0");
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("{path}:3:")), "{stderr}");
    assert!(stderr.contains("port"), "{stderr}");
}

#[test]
fn port_65536_is_refused() {
    let (code, stderr, path) = run_broken("port = 8080", "port = 65536");
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("{path}:3:")), "{stderr}");
}

#[test]
fn an_unknown_key_is_named() {
    let (code, stderr, path) = run_broken("[client]", "[client]\ncommand = \"rm -rf /\"");
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("{path}:5:")), "{stderr}");
    assert!(stderr.contains("command"), "{stderr}");
}

#[test]
fn an_unknown_state_is_named() {
    let (code, stderr, path) = run_broken("\"TIME_WAIT\"", "\"TIME_WAITING\"");
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("{path}:7:")), "{stderr}");
    assert!(stderr.contains("TIME_WAITING"), "{stderr}");
}

#[test]
fn a_rule_for_another_chain_is_refused() {
    let rule = "[[c1.firewall]]\nchain = \"PREROUTING\"\ntarget = \"DROP\"\n[client]";
    let (code, stderr, path) = run_broken("[client]", rule);
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("{path}:5:")), "{stderr}");
    assert!(stderr.contains("PREROUTING"), "{stderr}");
}

#[test]
fn a_wrong_type_is_named() {
    let (code, stderr, path) = run_broken("old_reuseaddr = true", "old_reuseaddr = \"yes\"");
    assert_eq!(code, Some(2));
    assert!(stderr.contains(&format!("{path}:9:")), "{stderr}");
    assert!(stderr.contains("old_reuseaddr"), "{stderr}");
}

#[test]
fn list_names_every_experiment_with_what_it_teaches() {
    let (code, stdout, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("fin-wait2") && stdout.contains("time-wait"),
        "{stdout}"
    );
    assert!(stdout.contains("SO_REUSEADDR"), "{stdout}");
    let (code, stdout, _) = run(&["list", "--json"]);
    assert_eq!(code, Some(0));
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, ["fin-wait2", "time-wait"]);
}

#[test]
fn help_teaches_experiments_and_exit_codes() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for expected in [
        "fin-wait2",
        "time-wait",
        "Exit codes",
        "user namespace",
        "sockets",
    ] {
        assert!(stdout.contains(expected), "missing {expected}:\n{stdout}");
    }
    let (code, stdout, _) = run(&["fin-wait2", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("--json") && stdout.contains("FIN_WAIT2"),
        "{stdout}"
    );
}
