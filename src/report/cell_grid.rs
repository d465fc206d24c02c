//! A picture of outcomes: one coloured square per case and kernel (the
//! matrix page) or per candidate build (the bisect page), so that where
//! columns disagree is seen at a glance rather than read.
//!
//! Each distinct outcome on the page gets its own colour, the same one in
//! every row and in the legend; a cell that broke its expectation gets a
//! red frame and a cross; a cell with nothing in it (an experiment skipped
//! on that kernel, a build bisect never booted) stays pale. Hovering over a
//! cell shows its whole story: where, what was seen, what was expected and
//! why.

use std::fmt::Write;

use super::markup::escape;

/// Colours for outcomes, in the order outcomes first appear; picked to be
/// told apart, also by most colour-blind readers (Okabe and Ito's palette).
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#999999",
];
/// Past the palette, outcomes share this one (the legend still names each).
const MORE: &str = "#444444";
const CELL: i64 = 20;
const GAP: i64 = 3;
const LABEL_WIDTH: i64 = 260;
const HEADER_HEIGHT: i64 = 110;

/// One square.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// What was seen (`FIN_WAIT2 EADDRINUSE`); `None` leaves the cell pale.
    pub outcome: Option<String>,
    /// The cell broke its expectation.
    pub failed: bool,
    /// The hover text: everything about this cell, in a few lines.
    pub title: String,
}

/// One row: a label on the left, a cell per column.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    /// Drawn with a band behind its label: its cells disagree.
    pub marked: bool,
    pub cells: Vec<Cell>,
}

/// A grid of cells under column names.
#[derive(Debug, Clone, Default)]
pub struct CellGrid {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

impl CellGrid {
    /// The grid as one `<svg>` element, legend below it.
    pub fn svg(&self) -> String {
        let colours = self.colours();
        let width = LABEL_WIDTH + self.columns.len() as i64 * (CELL + GAP) + 20;
        let rows_height = self.rows.len() as i64 * (CELL + GAP);
        let legend_height = (colours.len() as i64 + 2) * (CELL + GAP);
        let height = HEADER_HEIGHT + rows_height + legend_height + 10;
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write(&mut out, &colours, width, height);
        out
    }

    /// Every outcome on the page with its colour, in order of appearance.
    fn colours(&self) -> Vec<(String, &'static str)> {
        let mut seen: Vec<(String, &'static str)> = Vec::new();
        for outcome in self
            .rows
            .iter()
            .flat_map(|r| &r.cells)
            .filter_map(|c| c.outcome.as_ref())
        {
            if !seen.iter().any(|(o, _)| o == outcome) {
                let colour = PALETTE.get(seen.len()).copied().unwrap_or(MORE);
                seen.push((outcome.clone(), colour));
            }
        }
        seen
    }

    fn write(
        &self,
        out: &mut String,
        colours: &[(String, &'static str)],
        width: i64,
        height: i64,
    ) -> std::fmt::Result {
        writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
        )?;
        for (n, column) in self.columns.iter().enumerate() {
            let x = LABEL_WIDTH + n as i64 * (CELL + GAP) + CELL / 2;
            writeln!(
                out,
                r#"<text transform="translate({x},{y}) rotate(-60)">{}</text>"#,
                escape(column),
                y = HEADER_HEIGHT - 6
            )?;
        }
        for (n, row) in self.rows.iter().enumerate() {
            let y = HEADER_HEIGHT + n as i64 * (CELL + GAP);
            write_row(out, row, y, colours)?;
        }
        let y = HEADER_HEIGHT + self.rows.len() as i64 * (CELL + GAP) + CELL;
        write_legend(out, colours, y)?;
        writeln!(out, "</svg>")
    }
}

fn write_row(
    out: &mut String,
    row: &Row,
    y: i64,
    colours: &[(String, &'static str)],
) -> std::fmt::Result {
    if row.marked {
        writeln!(
            out,
            r##"<rect x="0" y="{y}" width="{w}" height="{CELL}" fill="#fff4cc"/>"##,
            w = LABEL_WIDTH - 6
        )?;
    }
    writeln!(
        out,
        r#"<text x="4" y="{}">{}</text>"#,
        y + CELL - 6,
        escape(&row.label)
    )?;
    for (n, cell) in row.cells.iter().enumerate() {
        let x = LABEL_WIDTH + n as i64 * (CELL + GAP);
        let fill = cell
            .outcome
            .as_ref()
            .and_then(|o| colours.iter().find(|(seen, _)| seen == o))
            .map_or("#f2f2f2", |(_, colour)| *colour);
        let frame = if cell.failed {
            r##"stroke="#d00" stroke-width="3""##
        } else {
            r##"stroke="#fff" stroke-width="1""##
        };
        write!(
            out,
            r#"<g><title>{}</title><rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" {frame}/>"#,
            escape(&cell.title)
        )?;
        if cell.failed {
            write!(
                out,
                r##"<text x="{}" y="{}" fill="#fff" font-weight="bold">✗</text>"##,
                x + 5,
                y + CELL - 5
            )?;
        }
        writeln!(out, "</g>")?;
    }
    Ok(())
}

fn write_legend(out: &mut String, colours: &[(String, &'static str)], y: i64) -> std::fmt::Result {
    let mut y = y;
    for (outcome, colour) in colours {
        writeln!(
            out,
            r#"<rect x="4" y="{y}" width="{CELL}" height="{CELL}" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            CELL + 10,
            y + CELL - 6,
            escape(outcome)
        )?;
        y += CELL + GAP;
    }
    writeln!(
        out,
        r##"<rect x="4" y="{y}" width="{CELL}" height="{CELL}" fill="#f2f2f2" stroke="#d00" stroke-width="3"/><text x="{}" y="{}">red frame: not as expected · pale: not run there</text>"##,
        CELL + 10,
        y + CELL - 6
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(outcome: &str, failed: bool) -> Cell {
        Cell {
            outcome: Some(outcome.to_string()),
            failed,
            title: format!("saw {outcome}"),
        }
    }

    #[test]
    fn one_outcome_one_colour_and_failures_framed() {
        let grid = CellGrid {
            columns: vec!["5.10".into(), "6.1".into()],
            rows: vec![
                Row {
                    label: "a 1".into(),
                    marked: true,
                    cells: vec![cell("EADDRINUSE", false), cell("ok", true)],
                },
                Row {
                    label: "a 2".into(),
                    marked: false,
                    cells: vec![cell("ok", false), cell("ok", false)],
                },
            ],
        };
        let svg = grid.svg();
        assert_eq!(
            svg.matches(r##"fill="#0072b2""##).count(),
            2,
            "EADDRINUSE: cell and legend"
        );
        assert_eq!(
            svg.matches(r##"fill="#e69f00""##).count(),
            4,
            "ok: three cells and legend"
        );
        assert_eq!(svg.matches("✗").count(), 1);
        assert!(svg.contains("<title>saw ok</title>"));
        assert_eq!(svg.matches("#fff4cc").count(), 1);
    }
}
