//! The human report: the lab, what happened step by step in the first case
//! (every case runs the same steps with its own reuse options), the rebind
//! table with a verdict per row, and the overall verdict.
//!
//! It is meant for an 80-column terminal: prose is wrapped, and the only lines
//! that may run longer are commands quoted exactly (the article's iptables rule).

use std::fmt::Write;

use super::wrap::wrap;
use super::{Exporter, ReportError};
use crate::experiment::result::{CaseResult, ExperimentResult, step_name};
use crate::experiment::spec::ExpectedState;

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
    write_heading(out, result)?;
    if let Some(first) = result.cases.first() {
        write_first_case(out, result, first)?;
    }
    write_rebind_table(out, result)?;
    for (index, case) in result.cases.iter().enumerate() {
        for failure in &case.failures {
            out.push_str(&wrap(
                &format!("case {}: {failure}", index + 1),
                "  ",
                "    ",
            ));
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

/// The experiment, and the lab that ran it.
fn write_heading(out: &mut String, result: &ExperimentResult) -> std::fmt::Result {
    let article = result
        .article
        .as_ref()
        .map(|a| format!(" (article {a})"))
        .unwrap_or_default();
    let heading = format!("{}: {}{article}", result.experiment, result.title);
    out.push_str(&wrap(&heading, "", "    "));
    let lab = &result.lab;
    let rootless = if lab.rootless { ", rootless" } else { "" };
    out.push_str(&wrap(
        &format!("lab: {}{rootless}, because {}", lab.kind, lab.why),
        "",
        "     ",
    ));
    let c1 = lab.c1.map_or("(routed)".to_string(), |a| {
        format!("{a}/{}", lab.prefix_len)
    });
    writeln!(out, "     c1 {c1}, c2 {}/{}", lab.c2, lab.prefix_len)?;
    out.push_str(&wrap(&lab.hosts, "     ", "     "));
    Ok(())
}

/// Case 1 step by step (every case runs the same steps), and what the
/// table below expects.
fn write_first_case(
    out: &mut String,
    result: &ExperimentResult,
    first: &CaseResult,
) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "case 1 ({}), step by step:", first.label())?;
    for line in &first.transcript {
        writeln!(out, "  {}  {}", line.host, line.text)?;
    }
    writeln!(out)?;
    let mut expected: Vec<String> = Vec::new();
    for case in &result.cases {
        let state = ExpectedState(case.expected_state).to_string();
        if !expected.contains(&state) {
            expected.push(state);
        }
    }
    if first.old_state.is_some() {
        return writeln!(out, "on c2, beside the live old socket:");
    }
    let after = if result.watched_host == "c1" {
        "the client closed first"
    } else {
        "the kill"
    };
    writeln!(
        out,
        "on {} after {after} (expected: {}):",
        result.watched_host,
        expected.join(", then ")
    )
}

/// The state column: what the kill left, or what the live old socket did.
pub(super) fn state_cell(case: &CaseResult) -> String {
    match (case.old_state.as_deref(), case.state_after_kill) {
        (Some(live), _) => format!("(old {live})"),
        (None, Some(state)) => state.to_string(),
        (None, None) => "(none)".to_string(),
    }
}

/// The old×new table with a verdict per row, and its legend. Cases that
/// differ in more than the reuse options (addresses, TCP_LINGER2) are
/// numbered, and their full labels listed below.
fn write_rebind_table(out: &mut String, result: &ExperimentResult) -> std::fmt::Result {
    let show_port = result
        .cases
        .iter()
        .any(|c| c.old_reuseport || c.new_reuseport);
    let numbered = result.cases.iter().any(CaseResult::has_more_than_reuse);
    let number = |n: usize| {
        if numbered {
            format!("{n:<3}")
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "  {}{:<5} {:<5} {:<16} {:<23} {:<13} verdict",
        if numbered { "#  " } else { "" },
        "old",
        "new",
        "state seen",
        "bind",
        "expected"
    )?;
    for (index, case) in result.cases.iter().enumerate() {
        writeln!(
            out,
            "  {}{:<5} {:<5} {:<16} {:<23} {:<13} {}",
            number(index + 1),
            reuse_cell(case.old_reuseaddr, case.old_reuseport, show_port),
            reuse_cell(case.new_reuseaddr, case.new_reuseport, show_port),
            state_cell(case),
            bind_cell(case),
            case.expected_bind,
            if case.passed { "pass" } else { "FAIL" }
        )?;
    }
    write_reuse_legend(out, result, show_port)?;
    if numbered {
        for (index, case) in result.cases.iter().enumerate() {
            out.push_str(&wrap(
                &format!("{}  {}", index + 1, case.label()),
                "  ",
                "     ",
            ));
        }
    }
    Ok(())
}

/// What the old and new columns mean.
fn write_reuse_legend(
    out: &mut String,
    result: &ExperimentResult,
    show_port: bool,
) -> std::fmt::Result {
    if show_port {
        return writeln!(
            out,
            "  (addr = SO_REUSEADDR, port = SO_REUSEPORT, both, or - for neither)"
        );
    }
    let old = if result.watched_host == "c1" {
        "first client's"
    } else {
        "killed server's"
    };
    writeln!(
        out,
        "  (old, new: SO_REUSEADDR of the {old} socket and of the new one)"
    )
}

/// `1`/`0` for SO_REUSEADDR alone; `addr`, `port`, `both` or `-` when an
/// experiment also varies SO_REUSEPORT.
pub(super) fn reuse_cell(reuseaddr: bool, reuseport: bool, show_port: bool) -> &'static str {
    match (show_port, reuseaddr, reuseport) {
        (false, true, _) => "1",
        (false, false, _) => "0",
        (true, true, true) => "both",
        (true, true, false) => "addr",
        (true, false, true) => "port",
        (true, false, false) => "-",
    }
}

pub(super) fn bind_cell(case: &CaseResult) -> String {
    match (case.bind_step, case.rebind_after_ms) {
        (Some(step), _) => format!("{} ({})", case.bind, step_name(step)),
        (None, Some(ms)) => format!("{} after {:.1} s", case.bind, ms as f64 / 1000.0),
        (None, None) => case.bind.clone(),
    }
}
