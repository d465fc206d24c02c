//! The renderers on their own: a result made from the shipped fin-wait2
//! experiment's cases, judged against what a host might report, and what
//! each format makes of it. No host runs.

use super::Exporter;
use crate::experiment::catalogue;
use crate::experiment::result::{CaseResult, ExperimentResult, Observation};
use crate::lab::LabInfo;
use crate::lab::hosts::Family;
use crate::protocol::{BindOutcome, BindStep};
use crate::tcp_state::SocketState;

/// What a host reports: the connection in `state`, and bind's result.
fn observed(state: SocketState, bind: &str) -> Observation {
    let failed_step = (bind != BindOutcome::OK).then_some(BindStep::Bind);
    crate::experiment::result::tests::seen(Some(state), bind, failed_step)
}

/// fin-wait2 as the article measured it, except that case 1's bind
/// worked where it should have failed when `break_case_1`.
fn fin_wait2(break_case_1: bool) -> ExperimentResult {
    let experiment = catalogue::find("fin-wait2").unwrap().unwrap();
    let spec = &experiment.spec;
    let cases: Vec<CaseResult> = spec
        .cases
        .iter()
        .enumerate()
        .map(|(index, case)| {
            let judge = |bind: &str| {
                let seen = observed(SocketState::FinWait2, bind);
                CaseResult::judge(case, spec.protocol, case.expected_state(spec), seen, 7)
            };
            // What the case expects, read from its own verdict.
            let expected_bind = judge("EADDRINUSE").expected_bind;
            if index == 0 && break_case_1 {
                judge(BindOutcome::OK)
            } else {
                judge(&expected_bind)
            }
        })
        .collect();
    ExperimentResult {
        experiment: experiment.name.clone(),
        title: spec.title.to_string(),
        article: None,
        lab: LabInfo {
            kind: "netns".into(),
            family: Family::V4,
            why: "--lab netns".into(),
            rootless: false,
            c1: "10.211.55.5".parse().ok(),
            c2: "10.211.55.10".parse().unwrap(),
            prefix_len: 24,
            hosts: "two network namespaces".into(),
            kernel: Some("6.1.0-test".into()),
            accelerator: None,
            boot_ms: None,
            boot: None,
        },
        watched_host: "c2".into(),
        skipped: None,
        passed: cases.iter().all(|c| c.passed),
        duration_ms: 321,
        cases,
    }
}

#[test]
fn the_table_gives_the_verdict_and_names_each_miss() {
    let good = super::table::TableExporter
        .render(&fin_wait2(false))
        .unwrap();
    assert!(
        good.contains("PASS: 4 of 4 cases as expected (321 ms)"),
        "{good}"
    );
    assert!(
        good.lines()
            .all(|l| l.chars().count() <= 80 || l.contains("iptables"))
    );
    let bad = super::table::TableExporter
        .render(&fin_wait2(true))
        .unwrap();
    assert!(bad.contains("FAIL: 3 of 4 cases as expected"), "{bad}");
    assert!(
        bad.contains("case 1: expected bind to give EADDRINUSE, it gave ok"),
        "{bad}"
    );
}

#[test]
fn json_carries_every_case_and_the_verdict() {
    let text = super::json::JsonExporter.render(&fin_wait2(true)).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["experiment"], "fin-wait2");
    assert_eq!(document["passed"], false);
    assert_eq!(document["cases"].as_array().unwrap().len(), 4);
    assert_eq!(document["cases"][0]["passed"], false);
    assert_eq!(document["lab"]["kernel"], "6.1.0-test");
}

#[test]
fn junit_has_a_suite_per_experiment_and_a_failure_per_miss() {
    let xml = super::junit::render(&[fin_wait2(true), fin_wait2(false)]);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 8, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(
        xml.contains("expected bind to give EADDRINUSE, it gave ok"),
        "{xml}"
    );
    assert!(xml.contains(r#"name="kernel" value="6.1.0-test""#), "{xml}");
}

#[test]
fn the_summary_has_a_line_per_experiment_and_the_total() {
    let results = [fin_wait2(false), fin_wait2(true)];
    let summary = super::summary::Summary {
        passed: false,
        duration_ms: 900,
        experiments: &results,
    };
    let table = super::summary::table(&summary);
    let lines: Vec<&str> = table.lines().filter(|l| l.contains("fin-wait2")).collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].ends_with("pass") && lines[1].ends_with("FAIL"),
        "{table}"
    );
    assert!(
        table.contains("FAIL: 7 of 8 cases as expected in 2 experiments (900 ms)"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&super::summary::json(&summary).unwrap()).unwrap();
    assert_eq!(json["passed"], false);
}

#[test]
fn a_picture_needs_a_capture() {
    let exporter = super::picture_exporter(true);
    assert!(matches!(
        exporter.render(&fin_wait2(false)),
        Err(super::ReportError::NoCapture)
    ));
}
