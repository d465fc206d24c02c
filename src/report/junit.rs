//! `--junit FILE`: the runs as JUnit XML, one `<testsuite>` per experiment and
//! one `<testcase>` per case, for CI systems that draw test results. The XML
//! itself (escaping, counts, the document's shape) is the `quick-junit`
//! crate's business; this file says what goes in it.
//!
//! A failed expectation is a `<failure>` whose message says what was expected
//! and what the kernel showed; the transcript of the case goes in its body.
//! An experiment that could not run here (no JDK, no MPTCP) is one
//! `<testcase>` marked `<skipped>` with the reason, so a CI page shows why.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::experiment::result::{CaseResult, ExperimentResult};

/// The JUnit document for `results`: several experiments (`tcplab all`) in
/// one file, which is why JUnit is not an [`super::Exporter`] of one result.
pub fn render(results: &[ExperimentResult]) -> String {
    let mut report = Report::new("tcplab");
    for result in results {
        report.add_test_suite(suite(result));
    }
    report.set_time(results.iter().map(|r| millis(r.duration_ms)).sum());
    // Serialising into memory fails only on an I/O error, which a String has not.
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit: {e} -->\n"))
}

fn suite(result: &ExperimentResult) -> TestSuite {
    let mut suite = TestSuite::new(result.experiment.as_str());
    suite.set_time(millis(result.duration_ms));
    suite.add_property(Property::new(
        "lab",
        format!("{} {}", result.lab.kind, result.lab.family.name()),
    ));
    if let Some(kernel) = &result.lab.kernel {
        suite.add_property(Property::new("kernel", kernel.as_str()));
    }
    if let Some(reason) = &result.skipped {
        let mut status = TestCaseStatus::skipped();
        status.set_message(reason.as_str());
        let mut case = TestCase::new("skipped", status);
        case.set_classname(format!("tcplab.{}", result.experiment));
        suite.add_test_case(case);
    }
    for case in &result.cases {
        suite.add_test_case(test_case(&result.experiment, case));
    }
    suite
}

fn test_case(experiment: &str, case: &CaseResult) -> TestCase {
    let status = if case.passed {
        TestCaseStatus::success()
    } else {
        let transcript: Vec<String> = case
            .transcript
            .iter()
            .map(|line| format!("{}  {}", line.host, line.text))
            .collect();
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_message(case.failures.join("; "))
            .set_description(transcript.join("\n"));
        status
    };
    let mut test_case = TestCase::new(case.label(), status);
    test_case
        .set_classname(format!("tcplab.{experiment}"))
        .set_time(millis(case.duration_ms));
    test_case
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
