//! `tcplab matrix --report FILE.html`: the matrix as a picture to look at,
//! one coloured square per case and kernel ([`crate::report::cell_grid`]),
//! so that the rows where kernels differ and the cells that broke an
//! expectation are seen at once; hovering over a square tells its story,
//! with the reason a file gave when it expected something else of that
//! kernel. What differed, was skipped or failed is listed below.

use std::fmt::Write;

use super::render::{failures, skipped};
use super::rows::{Row as MatrixRow, missing, rows, seen};
use super::{KernelRun, MatrixResult};
use crate::experiment::result::CaseResult;
use crate::experiment::spec::ExpectedState;
use crate::report::cell_grid::{Cell, CellGrid, Row};
use crate::report::markup::escape;

/// The whole page.
pub fn html(matrix: &MatrixResult) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_page(&mut out, matrix);
    out
}

fn write_page(out: &mut String, matrix: &MatrixResult) -> std::fmt::Result {
    let verdict = if matrix.passed {
        "every expectation held on every kernel"
    } else {
        "an expectation failed"
    };
    write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>tcplab matrix</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
li {{ margin: 0.2em 0; }}
</style></head><body>
<h1>tcplab matrix</h1>
<p>{verdict}; {seconds:.1} s, {jobs} kernel(s) at a time. A row per experiment
case, a column per kernel, a colour per outcome: a row of one colour is a case
every kernel agrees on. <span style="background:#fff4cc">Highlighted labels</span>:
the kernels disagree. Hover over a square for what that kernel saw, expected
and why.</p>
"#,
        seconds = matrix.duration_ms as f64 / 1000.0,
        jobs = matrix.concurrency,
    )?;
    writeln!(out, "{}", grid(matrix).svg())?;
    write_notes(out, matrix)?;
    writeln!(out, "</body></html>")
}

/// The matrix as cells: kernels across, cases down.
fn grid(matrix: &MatrixResult) -> CellGrid {
    let columns = matrix.kernels.iter().map(column_name).collect();
    let rows = rows(&matrix.kernels)
        .iter()
        .map(|row| Row {
            label: format!("{} {}", row.experiment, row.case),
            marked: row.differs(&matrix.differences),
            cells: matrix
                .kernels
                .iter()
                .zip(&row.cells)
                .map(|(kernel, case)| cell(kernel, row, *case))
                .collect(),
        })
        .collect();
    CellGrid { columns, rows }
}

/// `6.1 (6.1.192)`, or the name alone when it is the build or the host.
fn column_name(kernel: &KernelRun) -> String {
    match &kernel.build {
        Some(build) if *build != kernel.name => format!("{} ({build})", kernel.name),
        _ => kernel.name.clone(),
    }
}

fn cell(kernel: &KernelRun, row: &MatrixRow<'_>, case: Option<&CaseResult>) -> Cell {
    let place = format!(
        "{} ({}) · {} case {}: {}",
        kernel.name,
        kernel.uname.as_deref().unwrap_or("?"),
        row.experiment,
        row.case,
        row.label
    );
    let Some(case) = case else {
        let why = missing(kernel, &row.experiment);
        return Cell {
            outcome: None,
            failed: false,
            title: format!("{place}\n{why}"),
        };
    };
    let mut title = format!("{place}\nsaw {}; expected {}", seen(case), expected(case));
    for failure in &case.failures {
        title.push_str(&format!("\nNOT as expected: {failure}"));
    }
    if let Some(because) = &case.expected_because {
        title.push_str(&format!("\nexpected for {because}"));
    }
    Cell {
        outcome: Some(seen(case)),
        failed: !case.passed,
        title,
    }
}

/// What the case expected of this kernel, in the cell's own words.
fn expected(case: &CaseResult) -> String {
    if case.old_state.is_some() {
        return case.expected_bind.to_string();
    }
    format!(
        "{} {}",
        ExpectedState(case.expected_state),
        case.expected_bind
    )
}

/// Under the picture: what differed, what was skipped, what failed.
fn write_notes(out: &mut String, matrix: &MatrixResult) -> std::fmt::Result {
    let mut notes: Vec<String> = matrix.differences.iter().map(|d| d.describe()).collect();
    notes.extend(skipped(matrix));
    notes.extend(failures(matrix));
    if notes.is_empty() {
        return writeln!(out, "<p>The kernels agree on every case they ran.</p>");
    }
    writeln!(out, "<ul>")?;
    for note in notes {
        writeln!(out, "<li>{}</li>", escape(&note))?;
    }
    writeln!(out, "</ul>")
}
