//! The JSON documents tcplab prints, validated against the schemas in
//! `docs/schema/` (draft 2020-12) with the `jsonschema` crate: real output of
//! every command, so the documentation cannot drift from the code. A broken
//! field name must fail the check, or the check proves nothing.

mod common;

use std::net::TcpListener;

use common::schema::{assert_valid, violations};
use common::{json_of, new_marker, tcplab};
use serde_json::Value;

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
    assert!(list["experiments"].as_array().unwrap().len() >= 8);
    assert_valid("list", &list);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sockets = output_of(&["sockets", "--port", &port, "--json"]);
    assert_eq!(
        sockets["sockets"].as_array().unwrap().len(),
        1,
        "{sockets:#}"
    );
    assert_valid("sockets", &sockets);

    let matrix = output_of(&["matrix", "fin-wait2", "--kernel", "host", "--json", "-q"]);
    assert_valid("matrix", &matrix);

    // The archive's kernels as this machine's mirror lists them (read once
    // a day), with what the cache holds.
    let kernels = output_of(&["lab", "kernels", "--json"]);
    assert!(
        kernels["lines"].as_array().unwrap().len() >= 3,
        "{kernels:#}"
    );
    assert_valid("kernels", &kernels);
}

#[test]
fn a_live_socket_experiment_matches_its_schema() {
    // old_state, old_v6only and also_held appear only in live_socket cases.
    let document = output_of(&["reuseaddr-conflict", "--json", "-q"]);
    assert_eq!(
        document["cases"][2]["also_held"].as_array().unwrap().len(),
        1
    );
    assert_valid("experiment", &document);
    let document = output_of(&["bind-wildcard", "--json", "-q"]);
    assert_eq!(document["cases"][21]["old_v6only"], true);
    assert_valid("experiment", &document);
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
