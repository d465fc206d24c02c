//! `tcplab all`: one line per experiment and the overall verdict, or one JSON
//! document holding every experiment's full result.

use std::fmt::Write;

use serde::Serialize;

use super::ReportError;
use crate::experiment::result::ExperimentResult;
use crate::experiment::spec::ExpectedState;

/// Several runs, as `tcplab all --json` prints them.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub passed: bool,
    pub duration_ms: u64,
    pub experiments: &'a [ExperimentResult],
}

pub fn json(summary: &Summary<'_>) -> Result<String, ReportError> {
    Ok(super::document::to_json(summary)?)
}

/// The summary table, 80 columns wide.
pub fn table(summary: &Summary<'_>) -> String {
    let mut out = String::new();
    let cases: usize = summary.experiments.iter().map(|r| r.cases.len()).sum();
    let passed: usize = summary
        .experiments
        .iter()
        .map(|r| r.cases.iter().filter(|c| c.passed).count())
        .sum();
    if let Some(first) = summary.experiments.first() {
        let _ = writeln!(
            out,
            "lab: {} ({}), because {}",
            first.lab.kind,
            first.lab.family.name(),
            first.lab.why
        );
    }
    let _ = writeln!(
        out,
        "  {:<15} {:>5} {:>6}  {:<17} {:>8}  verdict",
        "experiment", "cases", "passed", "state after kill", "time"
    );
    for result in summary.experiments {
        write_row(&mut out, result);
    }
    let _ = writeln!(
        out,
        "\n{}: {passed} of {cases} cases as expected in {} experiments ({} ms)",
        if summary.passed { "PASS" } else { "FAIL" },
        summary.experiments.len(),
        summary.duration_ms
    );
    out
}

/// One experiment's line, and its failed cases' reasons under it.
fn write_row(out: &mut String, result: &ExperimentResult) {
    if let Some(reason) = &result.skipped {
        let _ = writeln!(out, "  {:<15} skipped: {reason}", result.experiment);
        return;
    }
    let ok = result.cases.iter().filter(|c| c.passed).count();
    let state = result
        .cases
        .first()
        .map(|c| match c.old_state {
            Some(_) => "(live socket)".to_string(),
            None => ExpectedState(c.state_after_kill).to_string(),
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {:<15} {:>5} {:>6}  {:<17} {:>5} ms  {}",
        result.experiment,
        result.cases.len(),
        ok,
        state,
        result.duration_ms,
        if result.passed { "pass" } else { "FAIL" }
    );
    for (index, case) in result.cases.iter().enumerate() {
        for failure in &case.failures {
            let _ = writeln!(out, "    case {}: {failure}", index + 1);
        }
    }
}
