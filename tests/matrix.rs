//! `tcplab matrix`: one table of experiments over several kernels (two VMs
//! of the microvm lab with Debian's 6.1 kernel, and this machine's kernel on
//! the netns lab), kernel-range overrides in experiment files, and what a
//! difference nobody declared does.

mod common;

use std::sync::Mutex;

use common::{HostSnapshot, TempExperiment, assert_nothing_left, json_of, new_marker, tcplab};

/// VMs on a 2-core machine: one matrix at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The fixture with its kernel range set to `range`.
fn override_file(range: &str) -> TempExperiment {
    let text = std::fs::read_to_string(common::fixture("kernel-override.toml"))
        .unwrap()
        .replace("RANGE", range);
    TempExperiment::new("kernel-override.toml", &text)
}

#[test]
fn a_two_kernel_matrix_passes_names_each_kernel_and_shows_where_they_differ() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !common::qemu_available() {
        return;
    }
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker)
        .args([
            "matrix",
            "fin-wait2",
            "bind-wildcard",
            "port-share",
            "--kernel",
            "6.1",
            "--kernel",
            "host",
            "--json",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let matrix = json_of(&output);
    assert_eq!(matrix["passed"], true, "{matrix:#}");
    let kernels = matrix["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 2);
    assert_eq!(kernels[0]["name"], "6.1");
    assert_eq!(kernels[0]["lab"], "microvm");
    assert!(kernels[0]["uname"].as_str().unwrap().starts_with("6.1."));
    // The line's newest build, named: the column says which 6.1 it is.
    assert!(kernels[0]["build"].as_str().unwrap().starts_with("6.1."));
    assert_eq!(kernels[1]["build"], serde_json::Value::Null);
    assert_eq!(kernels[1]["lab"], "netns");
    assert_ne!(kernels[0]["uname"], kernels[1]["uname"]);
    for kernel in kernels {
        let cases = kernel["results"][0]["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        assert!(cases.iter().all(|c| c["state_after_kill"] == "FIN_WAIT2"));
    }
    // Where 6.1 and this machine's kernel really differ, declared in the
    // files: the pair of addresses 6.1 lets bind, and the port 6.1 keeps
    // from connect() after a socket bound by hand closed. Seen, listed,
    // and passing.
    let differences = matrix["differences"].as_array().unwrap();
    let found: Vec<(String, u64, serde_json::Value)> = differences
        .iter()
        .map(|d| {
            let name = d["experiment"].as_str().unwrap().to_string();
            (name, d["case"].as_u64().unwrap(), d["seen"].clone())
        })
        .collect();
    let expected = [
        (
            "bind-wildcard".to_string(),
            42,
            serde_json::json!([["6.1", "ok"], ["host", "EADDRINUSE"]]),
        ),
        (
            "port-share".to_string(),
            3,
            serde_json::json!([["6.1", "EADDRNOTAVAIL"], ["host", "ok"]]),
        ),
    ];
    assert_eq!(found, expected, "{differences:#?}");
    assert_nothing_left(&marker, &before);

    // The CI workflow's last job: one document per kernel, as one job per
    // kernel prints them, merged into one Markdown table that finds the
    // same differences as the run over both.
    let whole = json_of(&output);
    let parts: Vec<TempExperiment> = (0..2)
        .map(|k| {
            let mut part = whole.clone();
            part["kernels"] = serde_json::json!([whole["kernels"][k].clone()]);
            part["differences"] = serde_json::json!([]);
            TempExperiment::new(&format!("matrix-{k}.json"), &part.to_string())
        })
        .collect();
    let merge = |format: &str| {
        let output = tcplab(&new_marker())
            .args(["matrix", "merge", format])
            .args(parts.iter().map(|p| &p.path))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let merged = merge("--markdown");
    assert!(merged.contains("| 6.1 (6.1."), "{merged}");
    assert!(merged.contains(" | host ("), "{merged}");
    assert_eq!(merged.matches("| fin-wait2 |").count(), 4, "{merged}");
    assert!(
        merged.contains("- bind-wildcard case 42 (old 0 on ::ffff:0.0.0.0 new 0 on ::ffff:127.0.0.1 (bound)): 6.1: ok; host: EADDRINUSE"),
        "{merged}"
    );
    let merged: serde_json::Value = serde_json::from_str(&merge("--json")).unwrap();
    common::schema::assert_valid("matrix", &merged);
    assert_eq!(merged["differences"], whole["differences"], "{merged:#}");
    assert_eq!(merged["kernels"], whole["kernels"]);

    // The table, as a person reads it: a column per kernel, within 80 columns.
    let output = tcplab(&new_marker())
        .args(["matrix", "fin-wait2", "--kernel", "host", "-q"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("FIN_WAIT2 EADDRINUSE"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(text.contains("PASS"), "{text}");
}

#[test]
fn a_kernel_range_override_is_honoured_and_an_undeclared_difference_fails() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !common::qemu_available() {
        return;
    }
    // Declared for every kernel from 6.0 on: 6.1 and this machine's.
    let declared = override_file(">=6.0");
    let output = tcplab(&new_marker())
        .args(["matrix", declared.path.to_str().unwrap()])
        .args(["--kernel", "6.1", "--kernel", "host", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    // Declared for 6.1 only: this machine's kernel gives "ok" where the
    // case says EADDRINUSE, a difference nobody declared.
    let only_61 = override_file("=6.1");
    let page = TempExperiment::new("matrix.html", "");
    let output = tcplab(&new_marker())
        .args(["matrix", only_61.path.to_str().unwrap()])
        .args(["--kernel", "6.1", "--kernel", "host", "-q"])
        .arg("--report")
        .arg(&page.path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("case 1 on host"), "{text}");
    assert!(text.contains("expected bind to give EADDRINUSE"), "{text}");
    // The page: the cell that broke the expectation stands out, and it is
    // the host's (both kernels saw the same; only 6.1 was declared).
    let html = std::fs::read_to_string(&page.path).unwrap();
    let cells = picture_cells(&html);
    assert_eq!(cells.len(), 2, "a square per kernel: {html}");
    let (on_61, on_host) = (&cells[0], &cells[1]);
    assert!(on_61.0.starts_with("6.1 (6.1.0-"), "{on_61:?}");
    assert!(!on_61.1, "6.1 held: {on_61:?}");
    assert!(
        on_61.0.contains("expected for =6.1: a test fixture"),
        "the hover says why 6.1 expects ok: {on_61:?}"
    );
    assert!(on_host.0.starts_with("host ("), "{on_host:?}");
    assert!(on_host.1, "the host's broke: {on_host:?}");
    assert!(on_host.0.contains("NOT as expected"), "{on_host:?}");
    assert!(html.contains("case 1 on host"), "{html}");
}

/// The page's squares, in order: each one's hover text, and whether it
/// wears the red frame of a broken expectation.
fn picture_cells(html: &str) -> Vec<(String, bool)> {
    let start = html.find("<svg").expect("the page draws a picture");
    let end = html.find("</svg>").unwrap() + "</svg>".len();
    let svg = roxmltree::Document::parse(&html[start..end]).unwrap();
    svg.descendants()
        .filter(|n| n.has_tag_name("g"))
        .map(|g| {
            let title = g
                .children()
                .find(|c| c.has_tag_name("title"))
                .and_then(|t| t.text())
                .unwrap_or_default()
                .to_string();
            let framed = g
                .children()
                .any(|c| c.has_tag_name("rect") && c.attribute("stroke") == Some("#d00"));
            (title, framed)
        })
        .collect()
}

#[test]
fn a_malformed_kernel_range_is_a_usage_error_naming_the_line() {
    let bad = override_file(">=6.x");
    let output = tcplab(&new_marker())
        .args([
            "matrix",
            bad.path.to_str().unwrap(),
            "--kernel",
            "host",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kernel-override.toml:20"), "{stderr}");
    assert!(
        stderr.contains("not a kernel version comparison"),
        "{stderr}"
    );
}

/// `tcplab matrix merge` on this machine's kernel (no VMs): a second
/// machine's run, a failed case on it, and every document it must refuse,
/// each named.
#[test]
fn merge_joins_runs_of_other_machines_and_names_a_file_it_cannot_use() {
    let output = tcplab(&new_marker())
        .args(["matrix", "fin-wait2", "--kernel", "host", "--json", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let host = json_of(&output);
    let file =
        |name: &str, document: &serde_json::Value| TempExperiment::new(name, &document.to_string());
    let merge = |files: &[&TempExperiment], extra: &[&str]| {
        tcplab(&new_marker())
            .args(["matrix", "merge"])
            .args(extra)
            .args(files.iter().map(|f| &f.path))
            .output()
            .unwrap()
    };
    // Another machine, whose kernel left no socket in case 4 and let the
    // bind through: a difference, and a broken expectation there.
    let mut other = host.clone();
    other["kernels"][0]["name"] = "other".into();
    let case = &mut other["kernels"][0]["results"][0]["cases"][3];
    case["state_after_kill"] = serde_json::Value::Null;
    case["passed"] = false.into();
    case["failures"] = serde_json::json!(["expected FIN_WAIT2, no socket was left"]);
    other["kernels"][0]["results"][0]["passed"] = false.into();
    let (host_file, other_file) = (file("a.json", &host), file("b.json", &other));
    let junit = TempExperiment::new("merged.xml", "");
    let junit_path = junit.path.to_str().unwrap();
    let output = merge(&[&host_file, &other_file], &["--junit", junit_path]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("fin-wait2 ≠"), "{text}");
    assert!(
        text.contains("host: FIN_WAIT2 ok; other: no socket ok"),
        "{text}"
    );
    assert!(
        text.contains("fin-wait2 case 4 on other: expected FIN_WAIT2"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit.path).unwrap();
    assert!(xml.contains("fin-wait2 on host") && xml.contains("fin-wait2 on other"));

    // What it refuses, exit 2, naming the file.
    let refused = |files: &[&TempExperiment], wanted: &str| {
        let output = merge(files, &[]);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(wanted), "{stderr}");
    };
    refused(&[&host_file, &host_file], "kernel host is in both");
    let mut old = host.clone();
    old["schema_version"] = 1.into();
    let old = file("old.json", &old);
    refused(
        &[&old],
        "old.json: schema version 1, this tcplab reads version 2",
    );
    let list = file("list.json", &serde_json::json!({"experiments": []}));
    refused(&[&list], "list.json: not a `tcplab matrix --json` document");
    let broken = TempExperiment::new("broken.json", "{\"kernels\": [");
    refused(
        &[&broken],
        "broken.json: not JSON: EOF while parsing a list at line 1",
    );
    let mut fewer = other.clone();
    fewer["kernels"][0]["results"][0]["experiment"] = "time-wait".into();
    let fewer = file("fewer.json", &fewer);
    refused(&[&host_file, &fewer], "fewer.json ran time-wait");
}
