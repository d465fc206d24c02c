//! The matrix laid out: a row per experiment case, a column per kernel,
//! drawn with comfy-table to fit 80 columns; the rows where kernels disagree
//! marked and listed under the table; JUnit with a testsuite per kernel and
//! experiment.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::{KernelRun, MatrixResult};
use crate::experiment::result::{CaseResult, ExperimentResult};
use crate::report::wrap::wrap;

/// A row whose kernels did not all see the same thing.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub experiment: String,
    /// 1-based, as the experiment's own report numbers it.
    pub case: usize,
    pub label: String,
    /// Each kernel with what it saw (`FIN_WAIT2 EADDRINUSE`).
    pub seen: Vec<(String, String)>,
}

/// `old 0 new 1`, the case's SO_REUSEADDR pair (and SO_REUSEPORT, the
/// addresses, IPV6_V6ONLY and TCP_LINGER2 where the case sets them).
pub(super) fn case_label(case: &CaseResult) -> String {
    let on = |bind: &Option<String>| bind.as_ref().map_or(String::new(), |b| format!(" on {b}"));
    let mut label = format!(
        "old {}{} new {}{}",
        u8::from(case.old_reuseaddr),
        on(&case.old_bind),
        u8::from(case.new_reuseaddr),
        on(&case.new_bind)
    );
    if let Some(v6only) = case.old_v6only {
        label.push_str(&format!(" old v6only={}", u8::from(v6only)));
    }
    if let Some(v6only) = case.new_v6only {
        label.push_str(&format!(" v6only={}", u8::from(v6only)));
    }
    if let Some(state) = case.old_state {
        label.push_str(&format!(" ({state}"));
        if !case.also_held.is_empty() {
            label.push_str(&format!(", {} more held", case.also_held.len()));
        }
        label.push(')');
    }
    if case.old_reuseport || case.new_reuseport {
        label.push_str(&format!(
            " (reuseport {}/{})",
            u8::from(case.old_reuseport),
            u8::from(case.new_reuseport)
        ));
    }
    if let Some(seconds) = case.linger2_s {
        label.push_str(&format!(" linger2 {seconds} s"));
    }
    label
}

/// What a kernel saw in one case: the state after the kill and the bind.
pub(super) fn seen(case: &CaseResult) -> String {
    if case.old_state.is_some() {
        // Nothing was killed: the bind is all there is to see.
        return case.bind.clone();
    }
    let state = case
        .state_after_kill
        .map_or("no socket".to_string(), |s| s.to_string());
    format!("{state} {}", case.bind)
}

/// A cell where a kernel has no case: the experiment was skipped there
/// (MPTCP on a kernel without it) or did not get that far.
pub(super) fn missing(kernel: &KernelRun, experiment: &str) -> String {
    let skipped = kernel
        .results
        .iter()
        .any(|r| r.experiment == experiment && r.skipped.is_some());
    if skipped { "skipped" } else { "not run" }.to_string()
}

/// One row of the matrix: an experiment's case, and each kernel's result
/// of it where that kernel ran it.
pub(super) struct Row<'a> {
    pub experiment: String,
    /// 1-based, as the experiment's own report numbers it.
    pub case: usize,
    pub label: String,
    pub cells: Vec<Option<&'a CaseResult>>,
}

impl Row<'_> {
    /// Is this one of the rows where the kernels disagree?
    pub(super) fn differs(&self, matrix: &MatrixResult) -> bool {
        matrix
            .differences
            .iter()
            .any(|d| d.experiment == self.experiment && d.case == self.case)
    }
}

/// Every (experiment, case) row, with each kernel's case where it ran.
pub(super) fn rows(kernels: &[KernelRun]) -> Vec<Row<'_>> {
    let Some(first) = kernels.first() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (e, experiment) in first.results.iter().enumerate() {
        let count = kernels
            .iter()
            .map(|k| k.results.get(e).map_or(0, |r| r.cases.len()))
            .max()
            .unwrap_or(0);
        for c in 0..count {
            let cells: Vec<Option<&CaseResult>> = kernels
                .iter()
                .map(|k| k.results.get(e).and_then(|r| r.cases.get(c)))
                .collect();
            let label = cells
                .iter()
                .flatten()
                .next()
                .map(|case| case_label(case))
                .unwrap_or_default();
            rows.push(Row {
                experiment: experiment.experiment.clone(),
                case: c + 1,
                label,
                cells,
            });
        }
    }
    rows
}

/// The rows where the kernels' observations differ.
pub fn differences(kernels: &[KernelRun]) -> Vec<Difference> {
    rows(kernels)
        .into_iter()
        .filter_map(|row| {
            let seen_by: Vec<(String, String)> = kernels
                .iter()
                .zip(&row.cells)
                .map(|(k, cell)| {
                    let text = cell.map_or_else(|| missing(k, &row.experiment), seen);
                    (k.name.clone(), text)
                })
                .collect();
            // A kernel that skipped the experiment is listed once, under
            // the table, not as a difference in every row.
            let mut ran = seen_by.iter().filter(|(_, s)| s != "skipped");
            let first = &ran.next()?.1;
            ran.any(|(_, s)| s != first).then_some(Difference {
                experiment: row.experiment,
                case: row.case,
                label: row.label,
                seen: seen_by,
            })
        })
        .collect()
}

/// The table with a cell's words in each cell, at most `width` columns
/// wide (`super::terminal` picks it for a few kernels).
pub(super) fn words_table(matrix: &MatrixResult, width: u16) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    let mut header = vec!["experiment".to_string(), "case".to_string()];
    for kernel in &matrix.kernels {
        let uname = kernel.uname.clone().unwrap_or_default();
        let name = match &kernel.build {
            Some(build) if *build != kernel.name => format!("{} ({build})", kernel.name),
            _ => kernel.name.clone(),
        };
        header.push(format!("{name}\n{uname}"));
    }
    table.set_header(header);
    for row in rows(&matrix.kernels) {
        let mark = if row.differs(matrix) { " ≠" } else { "" };
        let mut line = vec![format!("{}{mark}", row.experiment), row.label.clone()];
        for (kernel, cell) in matrix.kernels.iter().zip(&row.cells) {
            line.push(cell.map_or_else(
                || missing(kernel, &row.experiment),
                |case| {
                    let verdict = if case.passed { "pass" } else { "FAIL" };
                    format!("{} {verdict}", seen(case))
                },
            ));
        }
        table.add_row(line);
    }
    format!("{table}\n")
}

/// Under the table: where the kernels differ, and which skipped what. Prose,
/// wrapped to 80 columns.
pub(super) fn notes(matrix: &MatrixResult) -> String {
    let mut text = String::new();
    if matrix.differences.is_empty() {
        text.push_str("The kernels agree on every case they ran.\n");
    } else {
        text.push_str("Where the kernels differ (≠):\n");
        for difference in &matrix.differences {
            text.push_str(&wrap(&difference.describe(), "  ", "    "));
        }
    }
    for line in skipped(matrix) {
        text.push_str(&wrap(&line, "  ", "    "));
    }
    text
}

impl Difference {
    /// `fin-wait2 case 1 (old 0 new 0): 6.1: FIN_WAIT2 EADDRINUSE; host: …`
    pub fn describe(&self) -> String {
        let seen: Vec<String> = self
            .seen
            .iter()
            .map(|(kernel, seen)| format!("{kernel}: {seen}"))
            .collect();
        format!(
            "{} case {} ({}): {}",
            self.experiment,
            self.case,
            self.label,
            seen.join("; ")
        )
    }
}

/// `mptcp skipped on 5.10: <why>`, for every experiment a kernel skipped.
pub(super) fn skipped(matrix: &MatrixResult) -> Vec<String> {
    let mut lines = Vec::new();
    for kernel in &matrix.kernels {
        for result in &kernel.results {
            if let Some(reason) = &result.skipped {
                lines.push(format!(
                    "{} skipped on {}: {reason}",
                    result.experiment, kernel.name
                ));
            }
        }
    }
    lines
}

/// `fin-wait2 case 1 on host: <failures>`, for every case that broke an
/// expectation.
pub(super) fn failures(matrix: &MatrixResult) -> Vec<String> {
    let mut lines = Vec::new();
    for kernel in &matrix.kernels {
        for result in &kernel.results {
            for (index, case) in result.cases.iter().enumerate().filter(|(_, c)| !c.passed) {
                lines.push(format!(
                    "{} case {} on {}: {}",
                    result.experiment,
                    index + 1,
                    kernel.name,
                    case.failures.join("; ")
                ));
            }
        }
    }
    lines
}

/// The last lines: PASS with the times, or FAIL with every case that broke
/// an expectation, naming the kernel.
pub(super) fn verdict(matrix: &MatrixResult) -> String {
    let failed = failures(matrix);
    if !failed.is_empty() {
        let mut text = "FAIL: an expectation failed:\n".to_string();
        for line in failed {
            text.push_str(&wrap(&line, "  ", "    "));
        }
        return text;
    }
    let kernels: Vec<String> = matrix
        .kernels
        .iter()
        .map(|k| format!("{} {:.1} s", k.name, k.duration_ms as f64 / 1000.0))
        .collect();
    wrap(
        &format!(
            "PASS: every expectation held on every kernel ({:.1} s; {}; {} at a time)",
            matrix.duration_ms as f64 / 1000.0,
            kernels.join(", "),
            matrix.concurrency
        ),
        "",
        "  ",
    )
}

/// JUnit: the experiments of each kernel, each testsuite named
/// `<experiment> on <kernel>`.
pub fn junit(matrix: &MatrixResult) -> String {
    let results: Vec<ExperimentResult> = matrix
        .kernels
        .iter()
        .flat_map(|k| {
            k.results.iter().map(move |r| ExperimentResult {
                experiment: format!("{} on {}", r.experiment, k.name),
                ..r.clone()
            })
        })
        .collect();
    crate::report::junit::render(&results)
}
