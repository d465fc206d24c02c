//! The matrix laid out: a row per experiment case, a column per kernel,
//! drawn with comfy-table to fit 80 columns; the rows where kernels disagree
//! marked and listed under the table; JUnit with a testsuite per kernel and
//! experiment.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::{KernelRun, MatrixResult};
use crate::experiment::result::{CaseResult, ExperimentResult};

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

/// `old 0 new 1`, the case's SO_REUSEADDR pair (and SO_REUSEPORT when set).
fn case_label(case: &CaseResult) -> String {
    let mut label = format!(
        "old {} new {}",
        u8::from(case.old_reuseaddr),
        u8::from(case.new_reuseaddr)
    );
    if case.old_reuseport || case.new_reuseport {
        label.push_str(&format!(
            " (reuseport {}/{})",
            u8::from(case.old_reuseport),
            u8::from(case.new_reuseport)
        ));
    }
    label
}

/// What a kernel saw in one case: the state after the kill and the bind.
fn seen(case: &CaseResult) -> String {
    let state = case
        .state_after_kill
        .map_or("no socket".to_string(), |s| s.to_string());
    format!("{state} {}", case.bind)
}

/// Every (experiment, case) row, with each kernel's case where it ran.
fn rows(kernels: &[KernelRun]) -> Vec<(String, usize, Vec<Option<&CaseResult>>)> {
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
            let cells = kernels
                .iter()
                .map(|k| k.results.get(e).and_then(|r| r.cases.get(c)))
                .collect();
            rows.push((experiment.experiment.clone(), c, cells));
        }
    }
    rows
}

/// The rows where the kernels' observations differ.
pub fn differences(kernels: &[KernelRun]) -> Vec<Difference> {
    rows(kernels)
        .into_iter()
        .filter_map(|(experiment, c, cells)| {
            let seen_by: Vec<(String, String)> = kernels
                .iter()
                .zip(&cells)
                .map(|(k, cell)| (k.name.clone(), cell.map_or("not run".into(), seen)))
                .collect();
            let first = &seen_by.first()?.1;
            let label = cells.iter().flatten().next().map(|c| case_label(c))?;
            seen_by
                .iter()
                .any(|(_, s)| s != first)
                .then_some(Difference {
                    experiment,
                    case: c + 1,
                    label,
                    seen: seen_by,
                })
        })
        .collect()
}

/// The terminal table, at most `width` columns wide.
pub fn table(matrix: &MatrixResult, width: u16) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    let mut header = vec!["experiment".to_string(), "case".to_string()];
    for kernel in &matrix.kernels {
        let uname = kernel.uname.clone().unwrap_or_default();
        header.push(format!("{}\n{uname}", kernel.name));
    }
    table.set_header(header);
    for (experiment, c, cells) in rows(&matrix.kernels) {
        let label = cells
            .iter()
            .flatten()
            .next()
            .map(|c| case_label(c))
            .unwrap_or_default();
        let differs = matrix
            .differences
            .iter()
            .any(|d| d.experiment == experiment && d.case == c + 1);
        let mark = if differs { " ≠" } else { "" };
        let mut row = vec![format!("{experiment}{mark}"), label];
        for cell in cells {
            row.push(cell.map_or("not run".to_string(), |case| {
                let verdict = if case.passed { "pass" } else { "FAIL" };
                format!("{} {verdict}", seen(case))
            }));
        }
        table.add_row(row);
    }
    let mut text = format!("{table}\n");
    if matrix.differences.is_empty() {
        text.push_str("The kernels agree on every case.\n");
    } else {
        text.push_str("Where the kernels differ (≠):\n");
        for difference in &matrix.differences {
            let seen: Vec<String> = difference
                .seen
                .iter()
                .map(|(kernel, seen)| format!("{kernel}: {seen}"))
                .collect();
            text.push_str(&format!(
                "  {} case {} ({}): {}\n",
                difference.experiment,
                difference.case,
                difference.label,
                seen.join("; ")
            ));
        }
    }
    let failed: Vec<String> = matrix
        .kernels
        .iter()
        .flat_map(|k| {
            k.results.iter().flat_map(move |r| {
                r.cases
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.passed)
                    .map(move |(i, c)| {
                        format!(
                            "  {} case {} on {}: {}",
                            r.experiment,
                            i + 1,
                            k.name,
                            c.failures.join("; ")
                        )
                    })
            })
        })
        .collect();
    let kernels: Vec<String> = matrix
        .kernels
        .iter()
        .map(|k| format!("{} {:.1} s", k.name, k.duration_ms as f64 / 1000.0))
        .collect();
    if failed.is_empty() {
        text.push_str(&format!(
            "PASS: every expectation held on every kernel ({:.1} s; {}; {} at a time)\n",
            matrix.duration_ms as f64 / 1000.0,
            kernels.join(", "),
            matrix.concurrency
        ));
    } else {
        text.push_str("FAIL: an expectation failed:\n");
        text.push_str(&(failed.join("\n") + "\n"));
    }
    text
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
