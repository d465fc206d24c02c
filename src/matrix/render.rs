//! The matrix laid out: a row per experiment case, a column per kernel,
//! drawn with comfy-table to fit the width it is given (the terminal's, or 80
//! columns in a pipe); the rows where kernels disagree
//! marked and listed under the table; JUnit with a testsuite per kernel and
//! experiment.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::MatrixResult;
use super::rows::{missing, rows, seen};
use crate::experiment::result::ExperimentResult;
use crate::report::wrap::wrap;

/// The table's words: each kernel's (name, uname) for the header, then a
/// row per case: experiment (marked ≠ where kernels differ), label, a cell
/// per kernel. Laid out by [`words_table`] and [`markdown`].
struct Grid {
    kernels: Vec<(String, String)>,
    rows: Vec<Vec<String>>,
}

fn grid(matrix: &MatrixResult) -> Grid {
    let kernels = matrix
        .kernels
        .iter()
        .map(|kernel| {
            let name = match &kernel.build {
                Some(build) if *build != kernel.name => format!("{} ({build})", kernel.name),
                _ => kernel.name.clone(),
            };
            (name, kernel.uname.clone().unwrap_or_default())
        })
        .collect();
    let rows = rows(&matrix.kernels)
        .into_iter()
        .map(|row| {
            let mark = if row.differs(&matrix.differences) {
                " ≠"
            } else {
                ""
            };
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
            line
        })
        .collect();
    Grid { kernels, rows }
}

/// The table with a cell's words in each cell, at most `width` columns
/// wide (`super::terminal` picks it for a few kernels).
pub(super) fn words_table(matrix: &MatrixResult, width: u16) -> String {
    let grid = grid(matrix);
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    let mut header = vec!["experiment".to_string(), "case".to_string()];
    header.extend(
        grid.kernels
            .iter()
            .map(|(name, uname)| format!("{name}\n{uname}")),
    );
    table.set_header(header);
    for row in grid.rows {
        table.add_row(row);
    }
    format!("{table}\n")
}

/// The whole matrix as Markdown (a CI run's summary page): the table, a
/// column per kernel however many, then the notes and the verdict.
pub fn markdown(matrix: &MatrixResult) -> String {
    let grid = grid(matrix);
    let cell = |text: &str| text.replace('|', "\\|");
    let mut header = vec!["experiment".to_string(), "case".to_string()];
    header.extend(
        grid.kernels
            .iter()
            .map(|(name, uname)| match uname.is_empty() {
                true => name.clone(),
                false => format!("{name} ({uname})"),
            }),
    );
    let mut text = format!("| {} |\n", header.join(" | "));
    text.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in grid.rows {
        let row: Vec<String> = row.iter().map(|c| cell(c)).collect();
        text.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    text.push('\n');
    let bullets =
        |lines: Vec<String>| -> String { lines.iter().map(|line| format!("- {line}\n")).collect() };
    if matrix.differences.is_empty() {
        text.push_str("The kernels agree on every case they ran.\n\n");
    } else {
        text.push_str("Where the kernels differ (≠):\n\n");
        text.push_str(&bullets(
            matrix.differences.iter().map(|d| d.describe()).collect(),
        ));
        text.push('\n');
    }
    let skipped = skipped(matrix);
    if !skipped.is_empty() {
        text.push_str(&bullets(skipped));
        text.push('\n');
    }
    let failed = failures(matrix);
    if failed.is_empty() {
        text.push_str("PASS: every expectation held on every kernel.\n");
    } else {
        text.push_str("FAIL: an expectation failed:\n\n");
        text.push_str(&bullets(failed));
    }
    text
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
