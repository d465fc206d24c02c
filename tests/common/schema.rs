//! The JSON schemas of `docs/schema/` (draft 2020-12) as validators, for
//! the tests that check real output against them.

use serde_json::Value;

fn read_schema(name: &str) -> Value {
    let path = format!(
        "{}/docs/schema/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `docs/schema/<name>.schema.json` with the shared definitions of
/// `defs.schema.json` inlined beside its own, so the validator needs no registry.
fn validator(name: &str) -> jsonschema::Validator {
    let defs = read_schema("defs");
    let text = read_schema(name)
        .to_string()
        .replace("\"defs.schema.json#/$defs/", "\"#/$defs/");
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    // A schema's own definitions (labs' `process`) stay beside the shared ones.
    let own = schema["$defs"].as_object().cloned().unwrap_or_default();
    let mut all = defs["$defs"].as_object().unwrap().clone();
    all.extend(own);
    schema["$defs"] = Value::Object(all);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}.schema.json is not a valid schema: {e}"))
}

/// Every way `document` breaks `name`'s schema, as readable lines.
pub fn violations(name: &str, document: &Value) -> Vec<String> {
    validator(name)
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

pub fn assert_valid(name: &str, document: &Value) {
    let found = violations(name, document);
    assert!(found.is_empty(), "{name}: {found:#?}");
}
