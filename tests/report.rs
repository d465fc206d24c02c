//! `--report FILE.html|.svg`: the first case drawn from real captures on both
//! hosts, checked in a real headless browser (Debian's chromium).

mod common;

use std::path::Path;
use std::process::Command;

use common::{HostSnapshot, TempExperiment, assert_nothing_left, json_of, new_marker, tcplab};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The page's DOM after the browser ran it.
fn rendered_dom(page: &Path) -> String {
    let profile = TempExperiment::new("profile-marker", "");
    let profile_dir = profile.path.parent().unwrap().join("profile");
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_ladder_shows_every_packet_captured_and_the_fin_that_never_left_c1() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let page = TempExperiment::new("fin-wait2.html", "");
    let output = tcplab(&marker)
        .args(["fin-wait2", "--json", "-q", "--report"])
        .arg(&page.path)
        .output()
        .unwrap();
    assert_nothing_left(&marker, &before);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let document = json_of(&output);
    let capture = &document["cases"][0]["capture"];
    let c1 = capture["c1"]["packets"].as_array().unwrap();
    let c2 = capture["c2"]["packets"].as_array().unwrap();
    // The handshake, the greeting and the server's FIN at least.
    assert!(c2.len() >= 6, "{capture:#}");
    // c1 closed, yet no FIN of c1's ever reached its own wire: the rule
    // dropped it in OUTPUT, before the capture point.
    let c1_fin = c1
        .iter()
        .any(|p| p["outgoing"] == true && p["flags"].as_str().unwrap().contains("FIN"));
    assert!(!c1_fin, "a FIN of c1 was on the wire: {capture:#}");
    // Only the first case is recorded.
    assert!(document["cases"][1].get("capture").is_none());

    let html = std::fs::read_to_string(&page.path).unwrap();
    // Every packet crossed the veth, so c2 saw each one: one arrow each.
    assert_eq!(html.matches(r#"<g class="packet">"#).count(), c2.len());
    assert!(html.contains("never on the wire"));
    assert!(html.contains(r#"class="state""#), "the state timeline");

    if !Path::new(CHROMIUM).exists() {
        common::skip_unless_ci(&format!(
            "no {CHROMIUM} for the browser check (apt-get install chromium)"
        ));
        return;
    }
    let dom = rendered_dom(&page.path);
    let drawn = format!(r#"<output id="rendered-arrows">{}</output>"#, c2.len());
    assert!(
        dom.contains(&drawn),
        "the browser drew another number of arrows:\n{dom}"
    );
}

#[test]
fn an_svg_report_is_the_bare_diagram() {
    let picture = TempExperiment::new("time-wait.svg", "");
    tcplab(&new_marker())
        .args(["time-wait", "-q", "--report"])
        .arg(&picture.path)
        .assert()
        .code(0);
    let svg = std::fs::read_to_string(&picture.path).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.matches(r#"<g class="packet">"#).count() >= 7);
    // No firewall in time-wait: nothing is drawn as dropped.
    assert!(!svg.contains("never on the wire"));
    // The answer in full, on a line of its own: case 1 is old 0 new 0.
    assert!(svg.contains("→ EADDRINUSE at bind"), "{svg}");
    // Under the ladder, the whole old×new table with each case's verdict.
    let table = svg.split(r#"<g class="rebind-table">"#).nth(1).unwrap();
    let rows: Vec<&str> = table.split("<title>").skip(1).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for (row, (old, new, bind)) in rows.iter().zip([
        ("0", "0", "EADDRINUSE (bind)"),
        ("0", "1", "EADDRINUSE (bind)"),
        ("1", "0", "EADDRINUSE (bind)"),
        ("1", "1", "ok"),
    ]) {
        let cells: Vec<&str> = row
            .split("\">")
            .skip(1)
            .map(|cell| cell.split('<').next().unwrap())
            .collect();
        assert_eq!(
            cells[1..7],
            [
                old,
                new,
                "TIME_WAIT",
                bind,
                bind.split(' ').next().unwrap(),
                "pass"
            ],
            "{row}"
        );
    }
}

#[test]
fn a_report_needs_an_html_or_svg_file_and_one_experiment() {
    tcplab(&new_marker())
        .args(["fin-wait2", "--report", "/tmp/report.pdf"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(".html or .svg"));
    tcplab(&new_marker())
        .args(["fin-wait2", "--report", "/nonexistent/dir/report.html"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicates::str::contains("/nonexistent/dir/report.html"));
    tcplab(&new_marker())
        .args(["all", "--report", "/tmp/report.html"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("one experiment"));
}
