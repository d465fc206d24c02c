//! `--json`: one JSON document, the documented contract (docs/json.md, and its
//! JSON Schema docs/schema/experiment.schema.json). The field names come from
//! the serde types in `experiment::result`; tests/json_schema.rs validates
//! real output against the schema, so a renamed field fails the suite.

use super::{Exporter, ReportError};
use crate::experiment::result::ExperimentResult;

pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn render(&self, result: &ExperimentResult) -> Result<String, ReportError> {
        Ok(super::document::to_json(result)?)
    }
}
