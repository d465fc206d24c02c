//! Progress as a person sees it: live bars on a terminal (a pseudo-terminal
//! here, made by util-linux's `script`), cleared before the summary; one line
//! per case when stderr is not a terminal, and with `-v`.

mod common;

use std::process::Command;

use common::{new_marker, tcplab, tcplab_path};

/// Runs `tcplab ARGS` on a pseudo-terminal of 100 columns; all it drew.
fn on_a_terminal(args: &str) -> String {
    let command = format!(
        "stty cols 100 rows 40; exec {} {args}",
        tcplab_path().display()
    );
    let output = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env(common::MARKER_VAR, new_marker())
        .output()
        .expect("script(1) from util-linux");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_bar_per_experiment_cleared_before_the_summary() {
    let screen = on_a_terminal("all");
    // A bar per experiment, counting its cases.
    for bar in ["fin-wait2", "time-wait", "client-port"] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(bar) && l.contains(" cases")),
            "no bar for {bar}: {screen}"
        );
    }
    assert!(screen.contains("4/4 cases"), "{screen}");
    // No line per case, and the bars are erased (cursor up, erase line)
    // before the summary, which comes last.
    assert!(!screen.contains("[1/4] old SO_REUSEADDR"), "{screen}");
    let cleared = screen.rfind("\u{1b}[2K").expect("the bars were cleared");
    // A terminal gets the verdict in colour (`--color auto`).
    let summary = screen
        .rfind("\x1b[32mPASS:\x1b[0m ")
        .expect("the summary, its verdict in green");
    assert!(cleared < summary, "{screen}");
}

#[test]
fn a_pipe_or_a_log_gets_one_line_per_case() {
    let output = tcplab(&new_marker()).arg("fin-wait2").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for n in 1..=4 {
        assert!(
            stderr.contains(&format!("[{n}/4] old SO_REUSEADDR")),
            "{stderr}"
        );
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal codes in a pipe: {stderr}"
    );

    // -v on a terminal: the log and the case lines, no bars between them.
    let screen = on_a_terminal("fin-wait2 -v");
    assert!(screen.contains("[4/4] old SO_REUSEADDR"), "{screen}");
    assert!(!screen.contains("/4 cases"), "no bar: {screen}");
}
