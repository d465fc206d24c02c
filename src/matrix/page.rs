//! `tcplab matrix --report FILE.html`: the matrix as a standalone page. The
//! same rows and cells as the terminal table ([`super::render`]), with the
//! rows where kernels differ and the cells that broke an expectation
//! standing out, and the skipped experiments and failures listed below.

use std::fmt::Write;

use super::MatrixResult;
use super::render::{failures, missing, rows, seen, skipped};
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
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #bbb; padding: 4px 8px; text-align: left; vertical-align: top; }}
th small {{ font-weight: normal; color: #555; }}
tr.differs td {{ background: #fff4cc; }}
td.fail {{ background: #f8d0d0 !important; font-weight: bold; }}
td.skipped {{ color: #777; font-style: italic; }}
</style></head><body>
<h1>tcplab matrix</h1>
<p>{verdict}; {seconds:.1} s, {jobs} kernel(s) at a time. A row per experiment
case, a column per kernel: the state seen after the kill, the bind result and the
verdict. <span style="background:#fff4cc">Highlighted rows</span>: the kernels
disagree.</p>
<table>
<tr><th>experiment</th><th>case</th>"#,
        seconds = matrix.duration_ms as f64 / 1000.0,
        jobs = matrix.concurrency,
    )?;
    for kernel in &matrix.kernels {
        write!(
            out,
            "<th>{}<br><small>{} · {} · {:.1} s</small></th>",
            escape(&kernel.name),
            escape(kernel.uname.as_deref().unwrap_or("")),
            kernel.lab,
            kernel.duration_ms as f64 / 1000.0
        )?;
    }
    writeln!(out, "</tr>")?;
    for row in rows(&matrix.kernels) {
        write!(
            out,
            "<tr{}><td>{}</td><td>{}</td>",
            if row.differs(matrix) {
                " class=\"differs\""
            } else {
                ""
            },
            escape(&row.experiment),
            escape(&row.label)
        )?;
        for (kernel, cell) in matrix.kernels.iter().zip(&row.cells) {
            match cell {
                Some(case) if case.passed => write!(out, "<td>{} pass</td>", escape(&seen(case)))?,
                Some(case) => write!(
                    out,
                    "<td class=\"fail\" title=\"{}\">{} FAIL</td>",
                    escape(&case.failures.join("; ")),
                    escape(&seen(case))
                )?,
                None => write!(
                    out,
                    "<td class=\"skipped\">{}</td>",
                    escape(&missing(kernel, &row.experiment))
                )?,
            }
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</table>")?;
    write_notes(out, matrix)?;
    writeln!(out, "</body></html>")
}

/// Under the table: what differed, what was skipped, what failed.
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
