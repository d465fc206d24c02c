//! The JSON documents tcplab prints, validated against the schemas in
//! `docs/schema/` (draft 2020-12) with the `jsonschema` crate: real output of
//! every command, so the documentation cannot drift from the code. A broken
//! field name must fail the check, or the check proves nothing.

mod common;

use std::net::TcpListener;

use common::{json_of, new_marker, tcplab};
use serde_json::Value;

fn read_schema(name: &str) -> Value {
    let path = format!(
        "{}/docs/schema/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `docs/schema/<name>.schema.json` with the shared definitions of
/// `defs.schema.json` inlined, so the validator needs no registry.
fn validator(name: &str) -> jsonschema::Validator {
    let defs = read_schema("defs");
    let text = read_schema(name)
        .to_string()
        .replace("\"defs.schema.json#/$defs/", "\"#/$defs/");
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    schema["$defs"] = defs["$defs"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}.schema.json is not a valid schema: {e}"))
}

/// Every way `document` breaks `name`'s schema, as readable lines.
fn violations(name: &str, document: &Value) -> Vec<String> {
    validator(name)
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(name: &str, document: &Value) {
    let found = violations(name, document);
    assert!(found.is_empty(), "{name}: {found:#?}");
}

fn output_of(args: &[&str]) -> Value {
    let output = tcplab(&new_marker()).args(args).output().unwrap();
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(1),
        "{args:?}: {output:?}"
    );
    json_of(&output)
}

#[test]
fn an_experiment_with_its_capture_matches_its_schema() {
    let page = common::TempExperiment::new("report.html", "");
    let report = page.path.to_str().unwrap();
    let document = output_of(&["fin-wait2", "--json", "-q", "--report", report]);
    assert!(document["cases"][0]["capture"].is_object());
    assert_valid("experiment", &document);
    // The keys only some experiments print: addresses, IPV6_V6ONLY, TCP_LINGER2.
    assert_valid("experiment", &output_of(&["bind-conflict", "--json", "-q"]));
}

#[test]
fn all_list_sockets_and_matrix_match_their_schemas() {
    assert_valid("all", &output_of(&["all", "--json", "-q"]));
    let list = output_of(&["list", "--json"]);
    assert!(list.as_array().unwrap().len() >= 8);
    assert_valid("list", &list);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sockets = output_of(&["sockets", "--port", &port, "--json"]);
    assert_eq!(sockets.as_array().unwrap().len(), 1, "{sockets:#}");
    assert_valid("sockets", &sockets);

    let matrix = output_of(&["matrix", "fin-wait2", "--kernel", "host", "--json", "-q"]);
    assert_valid("matrix", &matrix);
}

#[test]
fn a_renamed_or_mistyped_field_fails_the_schema() {
    let document = output_of(&["fin-wait2", "--json", "-q"]);
    assert_valid("experiment", &document);

    let mut renamed = document.clone();
    let case = renamed["cases"][0].as_object_mut().unwrap();
    let state = case.remove("state_after_kill").unwrap();
    case.insert("state_after_kil".to_string(), state);
    let found = violations("experiment", &renamed);
    assert!(
        found.iter().any(|v| v.contains("state_after_kil")),
        "{found:#?}"
    );

    let mut mistyped = document;
    mistyped["lab"]["kind"] = Value::from("docker");
    mistyped["cases"][1]["bind"] = Value::from(98);
    assert_eq!(violations("experiment", &mistyped).len(), 2);
}
