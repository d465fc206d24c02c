//! The old×new table of a run, drawn in SVG under the report's ladder, so the
//! picture answers the article's question on its own: for every case, the
//! SO_REUSEADDR of the killed server's socket and of the new one, the state
//! the kernel showed after the kill, the bind result in full, and the
//! verdict. The ladder above it is case 1; this is every case.

use std::fmt::Write;

use super::markup::escape;
use super::table::{bind_cell, reuse_cell, state_cell};
use crate::experiment::result::ExperimentResult;

/// Height of one table row, in pixels.
const LINE: i64 = 20;
/// Column x positions: #, old, new, state seen, bind, expected, verdict.
const COLUMNS: [i64; 7] = [40, 80, 140, 200, 340, 560, 680];

/// How tall the table for `result` is.
pub(super) fn height(result: &ExperimentResult) -> i64 {
    LINE * (result.cases.len() as i64 + 3)
}

/// Draws the table with its top at `y`.
pub(super) fn draw(out: &mut String, result: &ExperimentResult, y: i64) {
    let watched = if result.watched_host == "c1" {
        "c1, after the client closed first"
    } else {
        "c2, after the kill"
    };
    let _ = writeln!(
        out,
        r#"<g class="rebind-table"><text x="{}" y="{y}" font-weight="bold">Every case of this run, on {watched} (the ladder above is case 1)</text>"#,
        COLUMNS[0]
    );
    let header = [
        "#",
        "old",
        "new",
        "state seen",
        "bind",
        "expected",
        "verdict",
    ];
    row(out, y + LINE, &header.map(String::from), "#333", true, None);
    let show_port = result
        .cases
        .iter()
        .any(|c| c.old_reuseport || c.new_reuseport);
    for (index, case) in result.cases.iter().enumerate() {
        let cells = [
            (index + 1).to_string(),
            reuse_cell(case.old_reuseaddr, case.old_reuseport, show_port).to_string(),
            reuse_cell(case.new_reuseaddr, case.new_reuseport, show_port).to_string(),
            state_cell(case),
            bind_cell(case),
            case.expected_bind.to_string(),
            if case.passed { "pass" } else { "FAIL" }.to_string(),
        ];
        let colour = if case.passed { "#262" } else { "#c00" };
        let y = y + LINE * (index as i64 + 2);
        row(out, y, &cells, colour, false, Some(&case.label()));
    }
    let legend = if show_port {
        "old, new: addr = SO_REUSEADDR, port = SO_REUSEPORT, both, or - for neither"
    } else {
        "old, new: SO_REUSEADDR of the killed (or first) socket and of the new one"
    };
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" fill="#666">{legend}</text></g>"##,
        COLUMNS[0],
        y + LINE * (result.cases.len() as i64 + 2)
    );
}

/// One line of the table; the verdict column in `colour`, the whole row
/// titled with the case's full label.
fn row(
    out: &mut String,
    y: i64,
    cells: &[String; 7],
    colour: &str,
    bold: bool,
    title: Option<&str>,
) {
    let weight = if bold { r#" font-weight="bold""# } else { "" };
    let _ = write!(out, "<g{weight}>");
    if let Some(title) = title {
        let _ = write!(out, "<title>{}</title>", escape(title));
    }
    for (index, (x, cell)) in COLUMNS.iter().zip(cells).enumerate() {
        let fill = if index == 6 { colour } else { "#222" };
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y}" fill="{fill}">{}</text>"#,
            escape(cell)
        );
    }
    let _ = writeln!(out, "</g>");
}
