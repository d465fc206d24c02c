//! `--json`: one JSON document, the documented contract (README, `--json`: `experiment`,
//! `lab.kind`, `passed`, `duration_ms`, `cases[]` with `old_reuseaddr`,
//! `new_reuseaddr`, `state_after_kill`, `sockets`, `bind`, `expected_bind`,
//! `passed`). The field names come from the serde types in
//! `experiment::result`; a test pins them.

use super::{Exporter, ReportError};
use crate::experiment::result::ExperimentResult;

pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn render(&self, result: &ExperimentResult) -> Result<String, ReportError> {
        let mut text = serde_json::to_string_pretty(result)?;
        text.push('\n');
        Ok(text)
    }
}
