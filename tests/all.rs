//! `tcplab all` and `--junit`: every built-in experiment in one run, and a
//! JUnit file a CI system can read.

mod common;

use common::{
    HostSnapshot, TempExperiment, assert_nothing_left, fixture, json_of, new_marker, tcplab,
};

#[test]
fn all_runs_every_fast_experiment_and_writes_junit() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let junit = TempExperiment::new("results.xml", "");
    let output = tcplab(&marker)
        .args(["all", "--json", "-q", "--junit"])
        .arg(&junit.path)
        .output()
        .unwrap();
    assert_nothing_left(&marker, &before);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let document = json_of(&output);
    assert_eq!(document["passed"], true);
    let names: Vec<&str> = document["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["experiment"].as_str().unwrap())
        .collect();
    // Every experiment `list` calls fast, each with all its cases; the java
    // one runs where a JDK is and says why not elsewhere.
    let listed = tcplab(&new_marker())
        .args(["list", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let fast: Vec<&serde_json::Value> = listed["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["slow"] == false)
        .collect();
    let fast_names: Vec<&str> = fast.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, fast_names);
    assert!(names.contains(&"client-port") && !names.contains(&"rebind-timeline"));
    let jdk = common::java_installed();
    let cases_expected: u64 = fast
        .iter()
        .filter(|e| jdk || e["name"] != "java")
        .map(|e| e["cases"].as_u64().unwrap())
        .sum();
    let java = document["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["experiment"] == "java")
        .unwrap();
    if jdk {
        assert!(java["skipped"].is_null(), "{java:#}");
    } else {
        assert!(
            java["skipped"].as_str().unwrap().contains("JDK"),
            "{java:#}"
        );
    }

    let xml = std::fs::read_to_string(&junit.path).unwrap();
    let parsed = roxmltree::Document::parse(&xml).unwrap();
    let root = parsed.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    // An experiment skipped here (java without a JDK) is one testcase
    // marked <skipped>, saying why; the others are one testcase per case.
    let count = |name: &str| {
        root.attribute(name)
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    assert_eq!(count("tests") - count("skipped"), cases_expected);
    assert_eq!(count("skipped"), u64::from(!jdk));
    assert_eq!(root.attribute("failures"), Some("0"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), fast.len());
    let cases = parsed
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter(|n| !n.children().any(|c| c.has_tag_name("skipped")))
        .count();
    assert_eq!(cases as u64, cases_expected, "one testcase per case");
}

#[test]
fn the_summary_table_has_a_line_per_experiment() {
    let output = tcplab(&new_marker()).args(["all", "-q"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for name in [
        "fin-wait2",
        "time-wait",
        "fin-wait1",
        "reuseport",
        "linger-rst",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(name) && l.ends_with("pass")),
            "{name} in:\n{text}"
        );
    }
    assert!(text.contains("PASS: "), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn a_failed_case_is_a_junit_failure_saying_expected_and_seen() {
    let junit = TempExperiment::new("results.xml", "");
    let output = tcplab(&new_marker())
        .args([
            "run",
            fixture("fin-wait1-trap.toml").to_str().unwrap(),
            "-q",
            "--junit",
        ])
        .arg(&junit.path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit.path).unwrap();
    let parsed = roxmltree::Document::parse(&xml).unwrap();
    let failure = parsed
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a <failure> element");
    let message = failure.attribute("message").unwrap();
    assert!(
        message.contains("FIN_WAIT2") && message.contains("FIN_WAIT1"),
        "{message}"
    );
    assert!(failure.text().unwrap_or("").contains("kill -KILL"));
}

#[test]
fn an_unwritable_junit_path_is_a_usage_error_before_the_run() {
    let output = tcplab(&new_marker())
        .args(["fin-wait2", "--junit", "/nonexistent/dir/results.xml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/dir/results.xml"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing ran");
}

#[test]
fn without_a_jdk_java_is_skipped_in_all_and_refused_by_name() {
    // An empty PATH hides the JDK; tcplab finds iptables in the sbin
    // directories and its agents by absolute path.
    let output = tcplab(&new_marker())
        .args(["all", "-q"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("java") && l.contains("skipped: no JDK")),
        "{text}"
    );

    let output = tcplab(&new_marker())
        .args(["java", "-q"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("apt-get install default-jdk-headless"),
        "{stderr}"
    );
}
