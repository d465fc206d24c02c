//! Every built-in experiment beyond the article's two, on the namespace lab
//! and over both address families, checked against what Linux does.

mod common;

use common::{HostSnapshot, assert_nothing_left, json_of, new_marker, tcplab};
use serde_json::Value;

fn run(experiment: &str, family: &str) -> Value {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker)
        .args([experiment, "--json", "-q", "--family", family])
        .output()
        .unwrap();
    assert_nothing_left(&marker, &before);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{experiment} {family}: {output:?}"
    );
    let document = json_of(&output);
    assert_eq!(document["passed"], true, "{document:#}");
    assert_eq!(document["lab"]["family"], family);
    document
}

fn cases(document: &Value) -> &Vec<Value> {
    document["cases"].as_array().unwrap()
}

#[test]
fn fin_wait1_the_ack_rode_on_the_dropped_fin() {
    for family in ["v4", "v6"] {
        let document = run("fin-wait1", family);
        for case in cases(&document) {
            assert_eq!(case["state_after_kill"], "FIN_WAIT1", "{case:#}");
            let both = case["old_reuseaddr"] == true && case["new_reuseaddr"] == true;
            assert_eq!(case["bind"], if both { "ok" } else { "EADDRINUSE" });
        }
    }
}

#[test]
fn linger_rst_leaves_no_socket_and_rebinds_without_options() {
    for family in ["v4", "v6"] {
        let document = run("linger-rst", family);
        for case in cases(&document) {
            assert!(case["state_after_kill"].is_null(), "{case:#}");
            assert!(case["sockets"].as_array().unwrap().is_empty(), "{case:#}");
            assert_eq!(case["bind"], "ok");
        }
        let reset = document["cases"][0]["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line["text"].as_str().unwrap().contains("and RST"));
        assert!(reset, "the client saw the RST: {document:#}");
    }
}

#[test]
fn reuseport_on_both_sockets_gets_past_fin_wait2() {
    for family in ["v4", "v6"] {
        let document = run("reuseport", family);
        for case in cases(&document) {
            assert_eq!(case["state_after_kill"], "FIN_WAIT2", "{case:#}");
            let both_port = case["old_reuseport"] == true && case["new_reuseport"] == true;
            assert_eq!(case["bind"], if both_port { "ok" } else { "EADDRINUSE" });
        }
    }
}

#[test]
fn the_article_experiments_hold_over_ipv6_like_the_articles_tcp6_line() {
    for (experiment, state) in [("fin-wait2", "FIN_WAIT2"), ("time-wait", "TIME_WAIT")] {
        let document = run(experiment, "v6");
        assert_eq!(document["lab"]["c2"], "fd00::10");
        for case in cases(&document) {
            assert_eq!(case["state_after_kill"], state);
            assert_eq!(case["connection"]["local"], "[fd00::10]:8080");
        }
    }
}
