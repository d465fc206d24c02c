//! Reports: the renderers of results, and the export manager over them.
//!
//! What goes to stdout is the table (`table`) or the `--json` document
//! (`json`) of one experiment, or the `summary` of `tcplab all`. The files
//! beside it (`--junit`, `--report` pictures, `--pcap` captures) go through
//! one export manager ([`exports`], as hyperfine's `export/` does): opened
//! before the run, written from all of its results after it.

pub mod cell_grid;
pub mod document;
pub mod exports;
pub mod json;
pub mod junit;
pub mod markup;
pub mod pcap;
pub mod picture;
mod rebind_table;
pub mod sockets;
pub mod summary;
pub mod table;
pub mod wrap;

use crate::experiment::result::ExperimentResult;

/// Turns a finished run into text in one format.
pub trait Exporter {
    fn render(&self, result: &ExperimentResult) -> Result<String, ReportError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the run recorded no capture to draw")]
    NoCapture,
}

/// The exporter for stdout: the table, or the `--json` document.
pub fn exporter(json: bool) -> Box<dyn Exporter> {
    if json {
        Box::new(json::JsonExporter)
    } else {
        Box::new(table::TableExporter)
    }
}

/// The exporter for a `--report` file: HTML or bare SVG.
pub fn picture_exporter(html: bool) -> Box<dyn Exporter> {
    Box::new(picture::PictureExporter { html })
}

#[cfg(test)]
mod renderer_tests;
