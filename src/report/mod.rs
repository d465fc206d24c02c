//! Reports: one exporter per output format behind one trait, as hyperfine's
//! `export/` does. The human table goes to a terminal, `--json` to tools,
//! `--junit` to CI systems; `summary` is the one-line-per-experiment view of
//! `tcplab all`.

pub mod cell_grid;
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
