//! An experiment's result as a whole: skipped, saying why, when this lab
//! cannot run it (no JDK for the Java server, IPv4 cases between IPv6-only
//! hosts, hosts without MPTCP); finished, with its judged cases, when it ran.

use std::time::Instant;

use super::result::{CaseResult, ExperimentResult};
use super::run_event::{Event, Progress};
use super::spec::{CaseSpec, Experiment, Scenario};
use crate::agent::programs::server_child::java_available;
use crate::lab::error::LabError;
use crate::lab::hosts::Family;
use crate::lab::{CaseIsolation, Lab, LabInfo};
use crate::protocol::ServerProgram;

/// The result of an experiment whose cases all ran.
pub(super) fn finished(
    experiment: &Experiment,
    lab: LabInfo,
    cases: Vec<CaseResult>,
    started: Instant,
) -> ExperimentResult {
    ExperimentResult {
        experiment: experiment.name.clone(),
        title: experiment.spec.title.to_string(),
        article: experiment.spec.article.as_ref().map(ToString::to_string),
        lab,
        watched_host: watched_host(experiment).to_string(),
        skipped: None,
        passed: cases.iter().all(|c| c.passed),
        duration_ms: started.elapsed().as_millis() as u64,
        cases,
    }
}

/// A Java experiment on hosts without a JDK is one the hosts cannot run
/// (as on the netns lab, where it is known before any case): with other
/// experiments beside it, it is skipped, not the end of the run.
pub(super) fn without_a_jdk(experiment: &Experiment, error: LabError) -> LabError {
    let needs_java = experiment.spec.server.program == ServerProgram::Java;
    match error {
        LabError::Environment { host, message } if needs_java && message.contains("no JDK") => {
            LabError::Unsupported(format!("{host}: {message}"))
        }
        error => error,
    }
}

/// The skipped result of an experiment this machine cannot run; `None`,
/// once its start is announced, when it can.
pub(super) fn start_or_skip(
    experiment: &Experiment,
    lab: &Lab,
    progress: Progress<'_>,
) -> Option<ExperimentResult> {
    if let Some(reason) = missing_requirement(experiment, lab) {
        return Some(skipped(experiment, lab, reason));
    }
    progress(Event::Start {
        key: &experiment.name,
        cases: experiment.spec.cases.len(),
    });
    None
}

/// An experiment the hosts turned out not to support, said as it happens.
pub(super) fn skipped_here(
    experiment: &Experiment,
    lab: &Lab,
    reason: String,
    progress: Progress<'_>,
) -> ExperimentResult {
    progress(Event::Line {
        key: &experiment.name,
        text: &format!("skipped: {reason}"),
        case_done: false,
    });
    skipped(experiment, lab, reason)
}

/// The result of an experiment that could not run here, saying why.
fn skipped(experiment: &Experiment, lab: &Lab, reason: String) -> ExperimentResult {
    ExperimentResult {
        experiment: experiment.name.clone(),
        title: experiment.spec.title.to_string(),
        article: experiment.spec.article.as_ref().map(ToString::to_string),
        lab: lab.describe(),
        watched_host: watched_host(experiment).to_string(),
        skipped: Some(reason),
        passed: true,
        duration_ms: 0,
        cases: Vec::new(),
    }
}

fn watched_host(experiment: &Experiment) -> &'static str {
    match experiment.spec.scenario {
        Scenario::ServerRestart | Scenario::LiveSocket => "c2",
        Scenario::ClientPort => "c1",
    }
}

/// Why `experiment` cannot run here, if it cannot: the `java` experiment
/// needs a JDK on c2, which for the netns lab is this machine. (On real hosts
/// the agent reports a missing JDK itself.)
fn missing_requirement(experiment: &Experiment, lab: &Lab) -> Option<String> {
    let needs_java = experiment.spec.server.program == ServerProgram::Java;
    if needs_java && lab.isolation() == CaseIsolation::FreshHosts && !java_available() {
        return Some(
            "no JDK on this machine (`java` is not in PATH); install one, e.g. \
             apt-get install default-jdk-headless"
                .to_string(),
        );
    }
    // A case that names an IPv4 address (bind-conflict's 0.0.0.0, 127.0.0.1)
    // means nothing between two IPv6-only hosts.
    let names_ipv4 = experiment
        .spec
        .cases
        .iter()
        .any(CaseSpec::names_ipv4_address);
    (names_ipv4 && lab.describe().family == Family::V6).then(|| {
        format!(
            "its cases bind IPv4 addresses; run it with --family v4 ({} names the \
             addresses each case binds)",
            experiment.source
        )
    })
}
