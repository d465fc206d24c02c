//! `tcplab bisect` against the linear matrix over the same Debian builds:
//! client-port's IP_LOCAL_PORT_RANGE case gives ENOPROTOOPT on 5.10 and
//! EADDRNOTAVAIL on 6.1 (the option was backported to 6.1.32), so between
//! 5.10.262 and 6.1.176 the first differing build is the oldest 6.1 the
//! archive holds. Bisect must name the same build as booting every one, with
//! fewer boots, and leave nothing behind.

mod common;

use common::{HostSnapshot, TempExperiment, assert_nothing_left, json_of, new_marker, tcplab};

const GOOD: &str = "5.10.262";
const BAD: &str = "6.1.176";
/// client-port's case with IP_LOCAL_PORT_RANGE pinned to the held port.
const CASE: usize = 8;

/// client-port with only case `CASE`, for the linear matrix.
fn only_the_case() -> TempExperiment {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/client-port.toml"
    ))
    .unwrap();
    let (head, cases) = text.split_once("\n[[case]]").unwrap();
    let case = cases.split("\n[[case]]").nth(CASE - 1).unwrap();
    TempExperiment::new("client-port-case.toml", &format!("{head}\n[[case]]{case}"))
}

#[test]
fn bisect_names_the_build_the_linear_matrix_finds_with_fewer_boots() {
    if !common::qemu_available() {
        return;
    }
    let before = HostSnapshot::take();
    let marker = new_marker();
    let page = TempExperiment::new("bisect.html", "");
    let output = tcplab(&marker)
        .args(["bisect", "client-port", "--case", &CASE.to_string()])
        .args(["--good", GOOD, "--bad", BAD, "--json", "--report"])
        .arg(&page.path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let bisect = json_of(&output);
    assert_nothing_left(&marker, &before);
    common::schema::assert_valid("bisect", &bisect);
    // The page draws every candidate, coloured where a step booted it.
    let html = std::fs::read_to_string(&page.path).unwrap();
    let squares = html.matches("<g><title>").count();
    let pale = html
        .matches("not booted: the search did not need it")
        .count();
    let steps = bisect["steps"].as_array().unwrap().len();
    assert_eq!(
        squares,
        bisect["candidates"].as_array().unwrap().len(),
        "{html}"
    );
    assert_eq!(squares - pale, steps, "{html}");
    assert!(
        html.contains("(the answer: the first with another outcome)"),
        "{html}"
    );
    let candidates: Vec<String> = bisect["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(candidates.first().map(String::as_str), Some(GOOD));
    assert_eq!(candidates.last().map(String::as_str), Some(BAD));
    assert!(candidates.len() >= 4, "{candidates:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("left in question"),
        "each step is shown: {stderr}"
    );

    // Every candidate booted, the same case on each.
    let file = only_the_case();
    let marker = new_marker();
    let mut matrix = tcplab(&marker);
    matrix.args(["matrix", file.path.to_str().unwrap(), "--json", "-q"]);
    for build in &candidates {
        matrix.args(["--kernel", build]);
    }
    let output = matrix.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let linear = json_of(&output);
    assert_nothing_left(&marker, &before);
    let outcome = |kernel: &serde_json::Value| {
        let case = &kernel["results"][0]["cases"][0];
        format!(
            "{}, {}",
            case["state_after_kill"].as_str().unwrap(),
            case["bind"].as_str().unwrap()
        )
    };
    let outcomes: Vec<String> = linear["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(outcomes[0], "TIME_WAIT, ENOPROTOOPT", "{outcomes:?}");
    let first_bad = outcomes.iter().position(|o| *o != outcomes[0]).unwrap();
    assert_eq!(
        bisect["first_bad"], candidates[first_bad],
        "{bisect:#} {outcomes:?}"
    );
    assert_eq!(bisect["last_good"], candidates[first_bad - 1]);
    // Each step's outcome is the one booting that build gives.
    for step in bisect["steps"].as_array().unwrap() {
        let at = candidates.iter().position(|c| step["build"] == *c).unwrap();
        assert_eq!(step["outcome"], outcomes[at], "{step}");
    }
    let boots = bisect["boots"].as_u64().unwrap() as usize;
    assert!(
        boots < candidates.len(),
        "{boots} boots for {} builds",
        candidates.len()
    );
}
