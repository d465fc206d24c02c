//! The human report: the lab, what happened step by step in the first case
//! (every case runs the same steps with its own SO_REUSEADDR pair), the rebind
//! table with a verdict per row, and the overall verdict.

use std::fmt::Write;

use super::{Exporter, ReportError};
use crate::experiment::result::{CaseResult, ExperimentResult, step_name};

pub struct TableExporter;

impl Exporter for TableExporter {
    fn render(&self, result: &ExperimentResult) -> Result<String, ReportError> {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = render_into(&mut out, result);
        Ok(out)
    }
}

fn render_into(out: &mut String, result: &ExperimentResult) -> std::fmt::Result {
    let article = result
        .article
        .as_ref()
        .map(|a| format!(" (article {a})"))
        .unwrap_or_default();
    writeln!(out, "{}: {}{article}", result.experiment, result.title)?;
    let lab = &result.lab;
    let c1 = lab.c1.map_or("(routed)".to_string(), |a| {
        format!("{a}/{}", lab.prefix_len)
    });
    writeln!(
        out,
        "lab: {}{} ({}): c1 {c1} and c2 {}/{}, {}",
        lab.kind,
        if lab.rootless { ", rootless" } else { "" },
        lab.why,
        lab.c2,
        lab.prefix_len,
        lab.hosts,
    )?;

    if let Some(first) = result.cases.first() {
        writeln!(out)?;
        writeln!(
            out,
            "case 1, old SO_REUSEADDR={} new SO_REUSEADDR={}, step by step:",
            first.old_reuseaddr as u8, first.new_reuseaddr as u8
        )?;
        for line in &first.transcript {
            writeln!(out, "  {}  {}", line.host, line.text)?;
        }
    }

    writeln!(out)?;
    if let Some(first) = result.cases.first() {
        writeln!(
            out,
            "rebind on c2 right after the kill (expected state: {}):",
            first.expected_state
        )?;
    }
    writeln!(
        out,
        "  {:<4} {:<4} {:<17} {:<20} {:<12} verdict",
        "old", "new", "state after kill", "bind", "expected"
    )?;
    for case in &result.cases {
        writeln!(
            out,
            "  {:<4} {:<4} {:<17} {:<20} {:<12} {}",
            case.old_reuseaddr as u8,
            case.new_reuseaddr as u8,
            case.state_after_kill
                .map_or("(none)".to_string(), |s| s.to_string()),
            bind_cell(case),
            case.expected_bind,
            if case.passed { "pass" } else { "FAIL" }
        )?;
    }
    for (index, case) in result.cases.iter().enumerate() {
        for failure in &case.failures {
            writeln!(out, "  case {}: {failure}", index + 1)?;
        }
    }

    let passed = result.cases.iter().filter(|c| c.passed).count();
    writeln!(out)?;
    writeln!(
        out,
        "{}: {passed} of {} cases as expected ({} ms)",
        if result.passed { "PASS" } else { "FAIL" },
        result.cases.len(),
        result.duration_ms
    )
}

fn bind_cell(case: &CaseResult) -> String {
    match case.bind_step {
        Some(step) => format!("{} ({})", case.bind, step_name(step)),
        None => case.bind.clone(),
    }
}
