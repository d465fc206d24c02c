//! The matrix on a terminal when it has many kernels: a letter per cell
//! instead of words, so that nine or twelve columns still fit 80 characters
//! and a row where the letters change is a row where the kernels differ.
//!
//! ```text
//! case                                   5.10 6.1  6.12 7.3  host
//! client-port 8 old 0 new 0 range… ≠     C    B    B    B    B
//! A  TIME_WAIT ok    B  TIME_WAIT EADDRNOTAVAIL    C  TIME_WAIT ENOPROTOOPT
//! ```
//!
//! Each distinct outcome gets a letter, in order of appearance; `!` after
//! it marks a broken expectation, `-` a kernel that skipped the experiment
//! (the reasons follow the table), `.` one that did not get that far.

use super::rows::{Row, rows, seen};
use super::{KernelRun, MatrixResult};
use crate::report::wrap::wrap;

/// Each kernel's column: its name and a space.
const COLUMN: usize = 5;

/// The table, legend and kernel names, `width` columns wide at most.
pub fn table(matrix: &MatrixResult, width: usize) -> String {
    let rows = rows(&matrix.kernels);
    let outcomes = outcomes(&rows);
    let kernels = matrix.kernels.len();
    let label_width = width.saturating_sub(COLUMN * kernels + 1).max(12);
    let mut text = format!("{:<label_width$} ", "case");
    for kernel in &matrix.kernels {
        text.push_str(&format!("{:<COLUMN$}", short(&kernel.name)));
    }
    text = text.trim_end().to_string() + "\n";
    for row in &rows {
        let mark = if row.differs(&matrix.differences) {
            " ≠"
        } else {
            ""
        };
        let label = format!("{} {} {}", row.experiment, row.case, row.label);
        text.push_str(&fit(&label, mark, label_width));
        text.push(' ');
        let cells: Vec<String> = matrix
            .kernels
            .iter()
            .zip(&row.cells)
            .map(|(kernel, cell)| letter_of(kernel, row, *cell, &outcomes))
            .collect();
        for cell in &cells {
            text.push_str(&format!("{cell:<COLUMN$}"));
        }
        text = text.trim_end().to_string() + "\n";
    }
    text.push_str(&legend(&outcomes));
    text.push_str(&kernel_names(&matrix.kernels));
    text
}

/// Every outcome in the table, in order of appearance.
fn outcomes(rows: &[Row<'_>]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for case in rows.iter().flat_map(|r| r.cells.iter().flatten()) {
        let outcome = seen(case);
        if !found.contains(&outcome) {
            found.push(outcome);
        }
    }
    found
}

/// `A`, …, `Z`, then `AA`, `AB`: a name for the `n`th outcome.
fn letter(n: usize) -> String {
    let alphabet = |i: usize| char::from(b'A' + (i % 26) as u8);
    if n < 26 {
        alphabet(n).to_string()
    } else {
        format!("{}{}", alphabet(n / 26 - 1), alphabet(n))
    }
}

fn letter_of(
    kernel: &KernelRun,
    row: &Row<'_>,
    cell: Option<&crate::experiment::result::CaseResult>,
    outcomes: &[String],
) -> String {
    match cell {
        Some(case) => {
            let n = outcomes.iter().position(|o| *o == seen(case)).unwrap_or(0);
            let broken = if case.passed { "" } else { "!" };
            format!("{}{broken}", letter(n))
        }
        None if super::rows::missing(kernel, &row.experiment) == "skipped" => "-".into(),
        None => ".".into(),
    }
}

/// `label` cut to `width` with `…`, keeping `mark` at its end.
fn fit(label: &str, mark: &str, width: usize) -> String {
    let room = width.saturating_sub(mark.chars().count());
    let mut text: String = if label.chars().count() > room {
        let kept: String = label.chars().take(room.saturating_sub(1)).collect();
        kept + "…"
    } else {
        label.to_string()
    };
    text.push_str(mark);
    format!("{text:<width$}")
}

/// `6.1.192` stays, a file path's last part is kept: a column is 5 wide.
fn short(name: &str) -> String {
    let name = name.rsplit('/').next().unwrap_or(name);
    name.chars().take(COLUMN - 1).collect()
}

fn legend(outcomes: &[String]) -> String {
    let items: Vec<String> = outcomes
        .iter()
        .enumerate()
        .map(|(n, outcome)| format!("{}  {outcome}", letter(n)))
        .collect();
    let mut text = String::from("\n");
    for item in items {
        text.push_str(&wrap(&item, "  ", "     "));
    }
    text.push_str("  !  not as expected   -  skipped (below)   .  not run\n");
    text
}

fn kernel_names(kernels: &[KernelRun]) -> String {
    let names: Vec<String> = kernels
        .iter()
        .map(|k| {
            let build = k.build.as_deref().filter(|b| *b != k.name);
            let uname = k.uname.as_deref().unwrap_or("?");
            match build {
                Some(build) => format!("{} = {build} ({uname})", short(&k.name)),
                None => format!("{} = {uname}", short(&k.name)),
            }
        })
        .collect();
    wrap(&format!("kernels: {}", names.join(", ")), "", "  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_run_past_z() {
        assert_eq!(letter(0), "A");
        assert_eq!(letter(25), "Z");
        assert_eq!(letter(26), "AA");
        assert_eq!(letter(27), "AB");
    }

    #[test]
    fn a_long_label_is_cut_and_keeps_its_mark() {
        let cut = fit("client-port 8 old 0 new 0 range 40000-40000", " ≠", 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with("… ≠"), "{cut}");
        assert_eq!(fit("a 1", "", 6), "a 1   ");
    }
}
