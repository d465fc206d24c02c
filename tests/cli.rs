//! Bad input gets exit code 2 and a message naming the file, line, key or flag;
//! `list` and `--help` teach what there is.

mod common;

use common::{TempExperiment, new_marker, tcplab};
use predicates::prelude::*;
use predicates::str::contains;

/// A valid experiment; each test breaks one line of it.
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

/// Runs a copy of GOOD with `from` replaced by `to`; expects exit code 2 and a
/// message that starts with `file:line:` and contains `mentions`.
fn assert_refused(from: &str, to: &str, line: usize, mentions: &str) {
    assert!(GOOD.contains(from));
    let file = TempExperiment::new("broken.toml", &GOOD.replacen(from, to, 1));
    let path = file.path.to_str().unwrap().to_string();
    tcplab(&new_marker())
        .args(["run", &path, "-q"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains(format!("{path}:{line}:")).and(contains(mentions)));
}

#[test]
fn unknown_experiment_is_a_usage_error() {
    tcplab(&new_marker())
        .arg("fin-wait3")
        .assert()
        .code(2)
        .stderr(contains("fin-wait3").and(contains("fin-wait2")));
}

#[test]
fn a_slip_of_the_keyboard_gets_a_suggestion() {
    for (typed, meant) in [
        ("fin-wiat2", "fin-wait2"),
        ("prot-share", "port-share"),
        ("matirx", "matrix"),
    ] {
        tcplab(&new_marker())
            .arg(typed)
            .assert()
            .code(2)
            .stdout("")
            .stderr(contains(format!("did you mean '{meant}'?")));
    }
    // Nothing near: no guess, only the list.
    tcplab(&new_marker()).arg("xyzzy").assert().code(2).stderr(
        contains("did you mean")
            .not()
            .and(contains("experiments: fin-wait2")),
    );
}

#[test]
fn help_names_an_experiment_and_tells_only_its_own_options() {
    for args in [&["help", "fin-wait2"][..], &["fin-wait2", "--help"]] {
        tcplab(&new_marker())
            .args(args)
            .assert()
            .success()
            .stdout(contains("Usage: tcplab fin-wait2 [OPTIONS]"))
            .stdout(contains("both set SO_REUSEADDR"))
            .stdout(contains("--report"))
            .stdout(contains("--options-from-stdin").not());
    }
    // A flag the experiment does not take is refused with its own usage.
    tcplab(&new_marker())
        .args(["fin-wait2", "--bogus"])
        .assert()
        .code(2)
        .stderr(contains("unexpected argument '--bogus'"))
        .stderr(contains("Usage: tcplab fin-wait2"));
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let out = tcplab(&new_marker()).arg("--version").output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let expected = format!("tcplab {} (commit {head}", env!("CARGO_PKG_VERSION"));
    assert!(
        said.starts_with(&expected),
        "{said:?} does not start with {expected:?}"
    );
}

#[test]
fn run_takes_a_built_in_name_or_a_file() {
    let output = tcplab(&new_marker())
        .args(["run", "time-wait", "--json", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["experiment"], "time-wait");
    tcplab(&new_marker())
        .args(["run", "time-wiat"])
        .assert()
        .code(2)
        .stderr(contains("did you mean 'time-wait'?"));
}

/// Every `TCPLAB_*` variable the source names (one set at build time,
/// read with `env!`, aside).
fn variables_read() -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (at, _) in text.match_indices("\"TCPLAB_") {
                if text[..at].ends_with("env!(") {
                    continue;
                }
                let name: String = text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn man_writes_a_page_per_subcommand_with_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    tcplab(&new_marker())
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
    for page in [
        "tcplab.1",
        "tcplab-run.1",
        "tcplab-lab-up.1",
        "tcplab-fin-wait2.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".SH ENVIRONMENT"), "{page}");
    }
    let main = std::fs::read_to_string(dir.path().join("tcplab.1")).unwrap();
    let variables = variables_read();
    assert!(variables.len() >= 8, "{variables:?}");
    for variable in variables {
        assert!(
            main.contains(&variable),
            "the manual does not name {variable}"
        );
    }
    tcplab(&new_marker())
        .args(["man", "--dir", "/no/such/dir"])
        .assert()
        .code(2);
}

#[test]
fn verdicts_are_coloured_only_when_asked_or_on_a_terminal() {
    let run = |args: &[&str], no_color: bool| {
        let mut command = tcplab(&new_marker());
        command.args(["time-wait", "--quiet"]).args(args);
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A pipe is no terminal: plain text, and NO_COLOR changes nothing.
    assert!(!run(&[], false).contains('\x1b'));
    assert!(!run(&["--color", "auto"], true).contains('\x1b'));
    let coloured = run(&["--color", "always"], false);
    assert!(
        coloured.contains("\x1b[32mPASS:\x1b[0m 4 of 4"),
        "{coloured}"
    );
    assert!(
        coloured.contains("EADDRINUSE    \x1b[32mpass\x1b[0m"),
        "{coloured}"
    );
    let json = tcplab(&new_marker())
        .args(["time-wait", "--quiet", "--json", "--color", "always"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&json.stdout).contains('\x1b'));
}

#[test]
fn serve_takes_a_socket_option_as_0_or_1_only() {
    tcplab(&new_marker())
        .args(["serve", "--reuseaddr", "true"])
        .assert()
        .code(2)
        .stderr(contains("[possible values: 0, 1]"));
}

#[test]
fn lab_clean_offers_only_what_it_uses() {
    tcplab(&new_marker())
        .args(["lab", "clean", "--help"])
        .assert()
        .success()
        .stdout(contains("--ssh-config"))
        .stdout(contains("--family").not())
        .stdout(contains("--accel").not());
}

#[test]
fn unknown_flag_is_a_usage_error() {
    tcplab(&new_marker())
        .args(["fin-wait2", "--bogus"])
        .assert()
        .code(2)
        .stderr(contains("--bogus"));
}

#[test]
fn unknown_lab_is_a_usage_error() {
    tcplab(&new_marker())
        .args(["fin-wait2", "--lab", "mars"])
        .assert()
        .code(2)
        .stderr(contains("mars").and(contains("netns")));
}

#[test]
fn a_missing_file_is_named() {
    tcplab(&new_marker())
        .args(["run", "/nonexistent/exp.toml"])
        .assert()
        .code(2)
        .stderr(contains("/nonexistent/exp.toml"));
}

#[test]
fn port_zero_names_file_line_and_key() {
    assert_refused("port = 8080", "port = 0", 3, "key `port`");
}

#[test]
fn port_65536_is_refused() {
    assert_refused("port = 8080", "port = 65536", 3, "key `port`");
}

#[test]
fn an_unknown_key_is_named() {
    assert_refused("[client]", "[client]\ncommand = \"rm -rf /\"", 5, "command");
}

#[test]
fn an_unknown_state_is_named() {
    assert_refused("\"TIME_WAIT\"", "\"TIME_WAITING\"", 7, "TIME_WAITING");
}

#[test]
fn a_rule_for_another_chain_is_refused() {
    let rule = "[[c1.firewall]]\nchain = \"PREROUTING\"\ntarget = \"DROP\"\n[client]";
    assert_refused("[client]", rule, 5, "PREROUTING");
}

#[test]
fn a_rule_that_reaches_past_the_experiments_port_is_refused() {
    // INPUT DROP of all TCP would cut an ssh host off.
    let rule = "[[c2.firewall]]\nchain = \"INPUT\"\ntarget = \"DROP\"\n[client]";
    assert_refused("[client]", rule, 4, "must match the experiment's port 8080");
    let other = "[[c1.firewall]]\nchain = \"OUTPUT\"\ndport = 22\ntarget = \"DROP\"\n[client]";
    assert_refused(
        "[client]",
        other,
        4,
        "must match the experiment's port 8080",
    );
}

#[test]
fn a_wrong_type_is_named() {
    assert_refused(
        "old_reuseaddr = true",
        "old_reuseaddr = \"yes\"",
        9,
        "old_reuseaddr",
    );
}

#[test]
fn a_file_without_cases_is_refused() {
    let file = TempExperiment::new("empty.toml", GOOD.split("[[case]]").next().unwrap());
    tcplab(&new_marker())
        .args(["run", file.path.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("[[case]]"));
}

#[test]
fn list_names_every_experiment_with_what_it_teaches() {
    tcplab(&new_marker()).arg("list").assert().code(0).stdout(
        contains("fin-wait2")
            .and(contains("time-wait"))
            .and(contains("SO_REUSEADDR")),
    );
    let output = tcplab(&new_marker())
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<_> = list["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            "fin-wait2",
            "time-wait",
            "fin-wait1",
            "reuseport",
            "linger-rst",
            "client-port",
            "java",
            "mptcp",
            "linger2",
            "bind-conflict",
            "rebind-timeline",
            "bind-wildcard",
            "reuseaddr-conflict",
            "port-share"
        ]
    );
}

#[test]
fn help_teaches_experiments_and_exit_codes() {
    tcplab(&new_marker()).arg("--help").assert().code(0).stdout(
        contains("fin-wait2")
            .and(contains("time-wait"))
            .and(contains("Exit codes"))
            .and(contains("user namespace"))
            .and(contains("sockets")),
    );
    tcplab(&new_marker())
        .args(["fin-wait2", "--help"])
        .assert()
        .code(0)
        .stdout(contains("--json").and(contains("FIN_WAIT2")));
}

#[test]
fn an_experiment_file_that_is_not_a_regular_file_or_too_large_is_refused_at_once() {
    let output = common::tcplab(&common::new_marker())
        .args(["run", "/dev/zero"])
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("/dev/zero: not a regular file"));

    // A FIFO with no writer: open() alone would block forever.
    let scratch = common::TempExperiment::new("placeholder", "");
    let fifo = scratch.path.with_file_name("fifo.toml");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path in this test's own directory.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    for command in [
        ["run", fifo.to_str().unwrap()],
        ["matrix", fifo.to_str().unwrap()],
    ] {
        let output = common::tcplab(&common::new_marker())
            .args(command)
            .args(if command[0] == "matrix" {
                &["--kernel", "host"][..]
            } else {
                &[]
            })
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{command:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("fifo.toml: not a regular file"),
            "{output:?}"
        );
    }

    let huge = common::TempExperiment::new("huge.toml", &"# padding\n".repeat(200_000));
    let output = common::tcplab(&common::new_marker())
        .args(["run", huge.path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("at most 1048576 bytes"));
}

#[test]
fn bash_completes_the_built_in_experiments() {
    let script = common::tcplab(&common::new_marker())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(script.status.code(), Some(0));
    let dir = TempExperiment::new("tcplab.bash", &String::from_utf8_lossy(&script.stdout));
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(tcplab fin-); COMP_CWORD=1; _tcplab tcplab fin- tcplab; \
             echo \"${{COMPREPLY[@]}}\"",
            dir.path.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&completed.stdout);
    assert!(
        words.contains("fin-wait2") && words.contains("fin-wait1"),
        "{words:?}"
    );
    assert!(!words.contains("time-wait"), "{words:?}");

    let man = tcplab(&new_marker()).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") && page.contains("fin\\-wait2"),
        "{page}"
    );
}

#[test]
fn verbose_logs_go_to_stderr_and_json_stays_clean() {
    let output = common::tcplab(&common::new_marker())
        .args(["fin-wait2", "--json", "-vv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["passed"], true);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("request") && log.contains("step=\"hello\""),
        "{log}"
    );
    assert!(log.contains(" reply ") && log.contains("ms="), "{log}");
    // -vv: the processes started, the agents' iptables included.
    assert!(
        log.contains("starting the agent") && log.contains("iptables"),
        "{log}"
    );
}

#[test]
fn control_characters_in_a_message_reach_the_terminal_escaped() {
    // What a hostile agent's message or a crafted path would carry: clear
    // the screen, set the title, reverse the text.
    let output = common::tcplab(&common::new_marker())
        .args([
            "run",
            "/nonexistent/\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{202e}'),
        "{stderr:?}"
    );
    assert!(
        stderr.contains("\\x1b[2J\\x1b]0;owned\\x07\\u{202e}.toml"),
        "{stderr:?}"
    );
}

#[test]
fn a_killed_server_on_loopback_is_refused_at_its_case() {
    // Line 8 is the case's header: c1 could never reach that server.
    assert_refused(
        "old_reuseaddr = true",
        "old_bind = \"::ffff:127.0.0.1\"\nold_reuseaddr = true",
        8,
        "c1 cannot reach a server on ::ffff:127.0.0.1",
    );
}

#[test]
fn a_live_old_socket_needs_the_live_socket_scenario() {
    assert_refused(
        "old_reuseaddr = true",
        "old_state = \"bound\"\nold_reuseaddr = true",
        8,
        "old_state and also_held need scenario = \"live_socket\"",
    );
}

#[test]
fn a_live_socket_file_has_no_client_and_each_case_says_what_the_old_socket_does() {
    let with_client = GOOD.replace("port = 8080\n", "port = 8080\nscenario = \"live_socket\"\n");
    let file = TempExperiment::new("live.toml", &with_client);
    tcplab(&new_marker())
        .args(["run", file.path.to_str().unwrap(), "-q"])
        .assert()
        .code(2)
        .stderr(contains("has no connection: no [client], [expect]"));
    let without_state = "title = \"mine\"\nteaches = \"mine\"\nport = 8080\n\
                         scenario = \"live_socket\"\n[[case]]\nold_reuseaddr = true\n\
                         new_reuseaddr = true\nbind = \"ok\"\n";
    let file = TempExperiment::new("live.toml", without_state);
    let path = file.path.to_str().unwrap().to_string();
    tcplab(&new_marker())
        .args(["run", &path, "-q"])
        .assert()
        .code(2)
        .stderr(contains(format!("{path}:5:")).and(contains("needs old_state")));
}

#[test]
fn a_spare_server_refuses_bad_options_and_leaves_quietly_without_any() {
    // What an agent writes to a spare `tcplab serve`, broken.
    tcplab(&new_marker())
        .args(["serve", "--options-from-stdin"])
        .write_stdin("{\"bind\": 8080}\n")
        .assert()
        .code(2)
        .stderr(contains("the options on stdin, line 1").and(contains("socket address")));
    // Input that ends first: the agent had no use for it.
    tcplab(&new_marker())
        .args(["serve", "--options-from-stdin"])
        .write_stdin("")
        .assert()
        .code(0)
        .stdout("")
        .stderr("");
    // The flags and the JSON line are two ways, not one mixed.
    tcplab(&new_marker())
        .args(["serve", "--options-from-stdin", "--bind", "127.0.0.1:8080"])
        .assert()
        .code(2)
        .stderr(contains("--bind"));
}
