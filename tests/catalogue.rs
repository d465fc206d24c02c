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

#[test]
fn a_fin_wait2_timeline_follows_tcp_fin_timeout_in_the_lab_only() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let file = common::fixture("fin-wait2-timeline.toml");
    let output = tcplab(&marker)
        .args(["run", file.to_str().unwrap(), "--json", "-q"])
        .output()
        .unwrap();
    // The host's own tcp_fin_timeout is part of the snapshot.
    assert_nothing_left(&marker, &before);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let case = &json_of(&output)["cases"][0];
    let after = case["rebind_after_ms"].as_u64().unwrap();
    assert!((1500..=3500).contains(&after), "rebind after {after} ms");
    assert_eq!(case["expected_rebind_s"], serde_json::json!([1.5, 3.5]));
    let said_sysctl = case["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["text"] == "sysctl -w net.ipv4.tcp_fin_timeout=2");
    assert!(said_sysctl, "{case:#}");
}

/// The whole rebind-timeline, TIME_WAIT's fixed minute included: slow, so it
/// runs only when asked (`cargo test -- --ignored`), like `tcplab all --slow`.
#[test]
#[ignore = "takes a minute: TIME_WAIT lasts 60 s"]
fn rebind_timeline_fin_wait2_follows_the_sysctl_time_wait_does_not() {
    let document = run("rebind-timeline", "v4");
    let cases = cases(&document);
    assert_eq!(cases[0]["state_after_kill"], "FIN_WAIT2");
    assert_eq!(cases[1]["state_after_kill"], "TIME_WAIT");
    let fin_wait2 = cases[0]["rebind_after_ms"].as_u64().unwrap();
    let time_wait = cases[1]["rebind_after_ms"].as_u64().unwrap();
    assert!((2500..=4500).contains(&fin_wait2), "{fin_wait2}");
    assert!((55_000..=65_000).contains(&time_wait), "{time_wait}");
}

#[test]
fn java_shows_the_jvm_default_or_says_why_it_cannot() {
    if !common::java_installed() {
        let output = tcplab(&new_marker()).args(["java", "-q"]).output().unwrap();
        assert_eq!(output.status.code(), Some(3), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("no JDK"));
        return;
    }
    let document = run("java", "v4");
    let cases = cases(&document);
    // No setReuseAddress call: the JVM on Linux turns SO_REUSEADDR on.
    assert_eq!(cases[0]["old_jvm_default"], true);
    assert_eq!(cases[0]["old_reuseaddr"], true, "{:#}", cases[0]);
    assert_eq!(cases[0]["bind"], "ok");
    // The article's setReuseAddress(false): the restart fails.
    assert_eq!(cases[1]["old_reuseaddr"], false);
    assert_eq!(cases[1]["bind"], "EADDRINUSE");
    let said = cases[0]["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["text"].as_str().unwrap().contains("reuse address: true"));
    assert!(said, "the JVM's own line is in the transcript");
    for case in cases {
        assert_eq!(case["state_after_kill"], "FIN_WAIT2");
    }
}

#[test]
fn client_port_a_fixed_port_in_time_wait_and_what_can_use_it() {
    // IP_LOCAL_PORT_RANGE is 6.3's, backported to 6.1.32; 5.10 refuses it.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let numbers: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    // Linux 6.14 counts a TIME_WAIT's age for tcp_tw_reuse in milliseconds;
    // before, the clock's whole second turning was enough.
    let young_time_wait = if numbers < vec![6, 14] {
        ("ok", "-")
    } else {
        ("EADDRNOTAVAIL", "connect")
    };
    let ip_local_port_range = if numbers < vec![6, 1] {
        (("ENOPROTOOPT", "socket"), ("ENOPROTOOPT", "socket"))
    } else {
        (("EADDRNOTAVAIL", "connect"), ("ok", "-"))
    };
    for family in ["v4", "v6"] {
        let document = run("client-port", family);
        assert_eq!(document["watched_host"], "c1");
        let cases = cases(&document);
        let results: Vec<(&str, &str)> = cases
            .iter()
            .map(|c| {
                (
                    c["bind"].as_str().unwrap(),
                    c["bind_step"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            results,
            [
                ("ok", "-"),                  // a fresh ephemeral port
                ("EADDRINUSE", "bind"),       // fixed port, no SO_REUSEADDR
                ("EADDRINUSE", "bind"),       // only the new socket sets it
                ("ok", "-"),                  // both set it
                ("EADDRNOTAVAIL", "connect"), // tcp_tw_reuse=0, only port left
                ("ok", "-"),                  // tcp_tw_reuse=1 takes it over
                ("ok", "-"),                  // bound by hand: no sysctl asked
                ip_local_port_range.0,        // IP_LOCAL_PORT_RANGE: the held port only
                ip_local_port_range.1,        // IP_LOCAL_PORT_RANGE beside it
                young_time_wait,              // tcp_tw_reuse=1, under a second old
            ],
            "{family}"
        );
        for case in cases {
            assert_eq!(case["state_after_kill"], "TIME_WAIT", "{case:#}");
            // A young-TIME_WAIT case that missed its moment made a fresh
            // TIME_WAIT on the next port, once per miss.
            let misses = case["transcript"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|line| line["text"].as_str().unwrap().contains("too late"))
                .count();
            let local = case["connection"]["local"].as_str().unwrap();
            let port = format!(":{}", 40000 + misses);
            assert!(
                local.ends_with(&port),
                "c1's own socket: {local}, {misses} misses"
            );
        }
        let young = &cases[9];
        assert_eq!(young["probe"], "connect_young_time_wait");
        let age = young["probe_age_ms"].as_u64().unwrap();
        assert!(
            age < 1000,
            "tried at a TIME_WAIT age of {age} ms: {young:#}"
        );
    }
}

/// The case of `document` whose label fields match.
fn case_on<'a>(
    document: &'a Value,
    old_bind: &str,
    new_bind: &str,
    v6only: Option<bool>,
) -> &'a Value {
    cases(document)
        .iter()
        .find(|c| {
            c["old_bind"] == old_bind
                && c["new_bind"] == new_bind
                && c["new_v6only"].as_bool() == v6only
                && c["old_reuseaddr"] == false
                && c["new_reuseaddr"] == false
                && c["state_after_kill"] == "FIN_WAIT2"
        })
        .unwrap_or_else(|| panic!("no case {old_bind} → {new_bind}: {document:#}"))
}

#[test]
fn bind_conflict_the_orphan_holds_c2s_address_not_the_wildcard() {
    let document = run("bind-conflict", "v4");
    // Without any option: another address binds at once, a wildcard does not.
    assert_eq!(
        case_on(&document, "0.0.0.0", "127.0.0.1", None)["bind"],
        "ok"
    );
    assert_eq!(
        case_on(&document, "0.0.0.0", "0.0.0.0", None)["bind"],
        "EADDRINUSE"
    );
    assert_eq!(
        case_on(&document, "0.0.0.0", "c2", None)["bind"],
        "EADDRINUSE"
    );
    // A dual-stack orphan: [::] overlaps it unless IPV6_V6ONLY.
    assert_eq!(case_on(&document, "::", "::", None)["bind"], "EADDRINUSE");
    assert_eq!(case_on(&document, "::", "::", Some(true))["bind"], "ok");
    // The orphan of a [::] listener holds c2's IPv4 address, v4-mapped.
    let mapped = &case_on(&document, "::", "0.0.0.0", None)["connection"]["local"];
    assert!(
        mapped
            .as_str()
            .unwrap()
            .starts_with("[::ffff:10.211.55.10]"),
        "{mapped}"
    );
    // Between IPv6-only hosts the IPv4 cases mean nothing: a usage error
    // naming the flag.
    let output = tcplab(&new_marker())
        .args(["bind-conflict", "--family", "v6", "--json", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--family v6"), "{stderr}");
}

#[test]
fn linger2_a_socket_sets_its_own_fin_wait2_lifetime() {
    let document = run("linger2", "v4");
    let freed = |case: &Value| case["rebind_after_ms"].as_u64().unwrap();
    let by_linger2 = |seconds: Option<i64>| {
        cases(&document)
            .iter()
            .find(|c| c["linger2_s"].as_i64() == seconds)
            .unwrap_or_else(|| panic!("no case with linger2 {seconds:?}"))
    };
    // tcp_fin_timeout is 6 s in c2's namespace; the sockets say 2 s and 9 s.
    let (default, short, long) = (
        freed(by_linger2(None)),
        freed(by_linger2(Some(2))),
        freed(by_linger2(Some(9))),
    );
    assert!(
        short < default && default < long,
        "{short} {default} {long}"
    );
    assert!((1_000..3_000).contains(&short), "{short}");
}

#[test]
fn mptcp_the_subflow_is_left_in_fin_wait1_and_rebinds_like_tcp() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker)
        .args(["mptcp", "--json", "-q"])
        .output()
        .unwrap();
    assert_nothing_left(&marker, &before);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let document = json_of(&output);
    if let Some(why) = document["skipped"].as_str() {
        // A kernel without MPTCP: the reason names the socket call.
        assert!(why.contains("IPPROTO_MPTCP"), "{why}");
        return;
    }
    for case in cases(&document) {
        assert_eq!(case["mptcp"], true);
        let both = case["old_reuseaddr"] == true && case["new_reuseaddr"] == true;
        assert_eq!(
            case["bind"],
            if both { "ok" } else { "EADDRINUSE" },
            "{case:#}"
        );
        let state = case["state_after_kill"].as_str().unwrap();
        assert!(state == "FIN_WAIT1" || state == "TIME_WAIT", "{case:#}");
    }
    let first = document["cases"][0]["transcript"].to_string();
    assert!(first.contains("(MPTCP)"), "{first}");
}
