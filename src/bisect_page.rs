//! `tcplab bisect --report FILE.html`: the search drawn as the matrix page
//! draws kernels ([`crate::report::cell_grid`]): the candidate builds in
//! version order, one square each, coloured by what the case showed on the
//! builds that booted and pale on the ones the search skipped; the answer
//! is where the colour changes. Hovering over a square tells which step
//! booted it and what the search knew then.

use std::fmt::Write;

use crate::bisect::BisectResult;
use crate::report::cell_grid::{Cell, CellGrid, Row};
use crate::report::markup::escape;

/// The whole page.
pub fn html(result: &BisectResult) -> String {
    let grid = CellGrid {
        columns: result.candidates.clone(),
        rows: vec![Row {
            label: format!("{} case {}", result.experiment, result.case),
            marked: false,
            cells: result
                .candidates
                .iter()
                .map(|build| cell(result, build))
                .collect(),
        }],
    };
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>tcplab bisect</title>
<style>body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}</style>
</head><body>
<h1>tcplab bisect: {} case {}</h1>
<p>{} candidate builds from {} (good) to {} (bad), one square each, coloured by
what the case showed where a step booted it; pale squares were never booted.
The first build with another outcome: <b>{}</b> (the last with the good one:
{}), after {} boots.</p>
{}
</body></html>
"#,
        escape(&result.experiment),
        result.case,
        result.candidates.len(),
        escape(&result.good),
        escape(&result.bad),
        escape(&result.first_bad),
        escape(&result.last_good),
        result.boots,
        grid.svg()
    );
    out
}

fn cell(result: &BisectResult, build: &str) -> Cell {
    let answer = if build == result.first_bad {
        " (the answer: the first with another outcome)"
    } else if build == result.last_good {
        " (the last with the good outcome)"
    } else {
        ""
    };
    match result.steps.iter().position(|s| s.build == build) {
        Some(n) => {
            let step = &result.steps[n];
            Cell {
                outcome: Some(step.outcome.clone()),
                failed: false,
                title: format!(
                    "{build}{answer}\nstep {}: {}, {}; {} left in question",
                    n + 1,
                    step.outcome,
                    step.verdict,
                    step.remaining
                ),
            }
        }
        None => Cell {
            outcome: None,
            failed: false,
            title: format!("{build}{answer}\nnot booted: the search did not need it"),
        },
    }
}
