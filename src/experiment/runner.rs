//! Runs experiments: schedules their cases on a lab and turns what each case
//! observed into a verdict.
//!
//! On the netns lab every case gets fresh hosts and all run at once; on real
//! hosts (ssh, Vagrant) the cases share one pair and run in turn, each on a
//! free port. What one case does is its scenario's business
//! (`server_restart`, `client_port`); a case that fails ends the run for all.

use crate::protocol::FreePorts;
use std::time::Instant;

use super::case::{hosts_support, run_case};
use super::result::{CaseResult, ExperimentResult, PhaseTimings};
use super::spec::{Experiment, Scenario};
use super::whole_result::{finished, skipped_here, start_or_skip, without_a_jdk};
use crate::interrupt::Interrupt;
use crate::lab::error::LabError;
use crate::lab::{CaseIsolation, Lab, LabHostPair, LabInfo};

use super::run_event::case_line;
pub use super::run_event::{Event, Progress};

/// Runs several experiments: at once on the netns lab (every case has hosts
/// of its own anyway), one after the other on one shared pair of real hosts
/// or VMs. Each experiment's progress lines carry its name.
pub async fn run_many(
    experiments: &[Experiment],
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<Vec<ExperimentResult>, LabError> {
    // With several experiments, each line says which one it is about.
    let named = |experiment: &Experiment| {
        let name = experiment.name.clone();
        move |event: Event<'_>| match event {
            Event::Line {
                text, case_done, ..
            } if experiments.len() > 1 => progress(Event::Line {
                key: event.key(),
                text: &format!("{name} {text}"),
                case_done,
            }),
            event => progress(event),
        }
    };
    match lab.isolation() {
        CaseIsolation::FreshHosts => {
            let runs = experiments.iter().map(|experiment| async move {
                let progress = named(experiment);
                run(experiment, lab, interrupt, &progress).await
            });
            all_or_cause(futures::future::join_all(runs).await)
        }
        CaseIsolation::SharedHosts => {
            // One pair for the whole run: a microvm column boots its two
            // VMs once, not once per experiment; real hosts get one agent
            // session each. Every case ends as it does between a single
            // experiment's cases (end_case puts the hosts back), and each
            // experiment finds its own free ports.
            let mut hosts = None;
            let mut results = Vec::with_capacity(experiments.len());
            let mut outcome = Ok(());
            for experiment in experiments {
                let progress = named(experiment);
                match run_on_shared(experiment, lab, &mut hosts, interrupt, &progress).await {
                    Ok(result) => results.push(result),
                    Err(error) => {
                        outcome = Err(error);
                        break;
                    }
                }
            }
            let shutdown = match hosts {
                Some(hosts) => hosts.shutdown().await,
                None => Ok(()),
            };
            outcome?;
            shutdown?;
            Ok(results)
        }
    }
}

/// One experiment on the run's shared pair of hosts, started by the first
/// experiment that needs it.
async fn run_on_shared(
    experiment: &Experiment,
    lab: &Lab,
    hosts: &mut Option<LabHostPair>,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<ExperimentResult, LabError> {
    let started = Instant::now();
    if let Some(result) = start_or_skip(experiment, lab, progress) {
        return Ok(result);
    }
    let pair = match hosts {
        Some(pair) => pair,
        None => hosts.insert(lab.start(interrupt).await?),
    };
    let cases = run_in_turn_on(experiment, pair, progress).await;
    if let Some(signal) = interrupt.signal() {
        return Err(LabError::Interrupted(signal));
    }
    match cases.map_err(|error| without_a_jdk(experiment, error)) {
        Err(LabError::Unsupported(reason)) => {
            // What the hosts cannot do ends this experiment only.
            pair.end_case().await?;
            Ok(skipped_here(experiment, lab, reason, progress))
        }
        cases => Ok(finished(experiment, pair.info.clone(), cases?, started)),
    }
}

/// Runs every case of `experiment` on `lab`.
pub async fn run(
    experiment: &Experiment,
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<ExperimentResult, LabError> {
    let started = Instant::now();
    if let Some(result) = start_or_skip(experiment, lab, progress) {
        return Ok(result);
    }
    // A live_socket case kills nothing and leaves no orphan on its port,
    // so its cases take turns on one pair of hosts even where others get
    // fresh ones: fresh namespaces would cost far more than the case
    // (bind-wildcard has 62), and the ports still move from case to case.
    let live = experiment.spec.scenario == Scenario::LiveSocket;
    let outcome = match lab.isolation() {
        CaseIsolation::FreshHosts if live => {
            run_cases_in_turn(experiment, lab, interrupt, progress)
                .await
                .map(|(info, cases)| (info.taken_in_turn(), cases))
        }
        CaseIsolation::FreshHosts => run_cases_at_once(experiment, lab, interrupt, progress).await,
        CaseIsolation::SharedHosts => run_cases_in_turn(experiment, lab, interrupt, progress).await,
    };
    if let Some(signal) = interrupt.signal() {
        return Err(LabError::Interrupted(signal));
    }
    let (info, cases) = match outcome {
        Err(LabError::Unsupported(reason)) => {
            return Ok(skipped_here(experiment, lab, reason, progress));
        }
        outcome => outcome?,
    };
    Ok(finished(experiment, info, cases, started))
}

/// Every result, or the error that ended the run: a case that failed makes
/// the others stop with `Interrupted(0)`, which is not what to report.
fn all_or_cause<T>(results: Vec<Result<T, LabError>>) -> Result<Vec<T>, LabError> {
    let mut values = Vec::with_capacity(results.len());
    let mut stopped = None;
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(LabError::Interrupted(0)) => {
                stopped.get_or_insert(LabError::Interrupted(0));
            }
            Err(error) => return Err(error),
        }
    }
    stopped.map_or(Ok(values), Err)
}

/// Every case on its own fresh hosts, all at once (netns lab).
async fn run_cases_at_once(
    experiment: &Experiment,
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<(LabInfo, Vec<CaseResult>), LabError> {
    let total = experiment.spec.cases.len();
    let port = experiment.spec.port.get();
    let runs = experiment
        .spec
        .cases
        .iter()
        .enumerate()
        .map(|(index, _)| async move {
            let started = Instant::now();
            let mut hosts = lab.start(interrupt).await?;
            let up = started.elapsed();
            let observed = match hosts_support(experiment, &mut hosts).await {
                Ok(()) => run_case(experiment, index, port, &mut hosts).await,
                Err(error) => Err(error),
            };
            let driven = started.elapsed();
            let info = hosts.info.clone();
            let shutdown = hosts.shutdown().await;
            if let Err(error) = observed
                .as_ref()
                .map(|_| ())
                .and(shutdown.as_ref().map(|_| ()))
            {
                // This case cannot finish, so the run will end with its error:
                // the other cases need not wait out their steps.
                if !matches!(error, LabError::Interrupted(_) | LabError::Unsupported(_)) {
                    interrupt.abort();
                }
            }
            let mut result = observed?;
            shutdown?;
            result.timings = Some(PhaseTimings::measure(up, driven, started.elapsed()));
            result.duration_ms = started.elapsed().as_millis() as u64;
            case_done(progress, experiment, index, &result);
            Ok::<_, LabError>((info, result))
        });
    let results = all_or_cause(futures::future::join_all(runs).await)?;
    let mut info = None;
    let mut cases = Vec::with_capacity(total);
    for (case_info, case) in results {
        info.get_or_insert(case_info);
        cases.push(case);
    }
    let info = info.ok_or_else(|| LabError::Setup("the experiment has no cases".into()))?;
    Ok((info, cases))
}

/// All cases on one pair of real hosts, one after the other, each on a port
/// that no socket on c2 uses (ssh and Vagrant labs). A port still held by an
/// earlier case's (or run's) orphaned connection would decide the bind
/// before the experiment does.
async fn run_cases_in_turn(
    experiment: &Experiment,
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<(LabInfo, Vec<CaseResult>), LabError> {
    let mut hosts = lab.start(interrupt).await?;
    let cases = run_in_turn_on(experiment, &mut hosts, progress).await;
    let info = hosts.info.clone();
    let shutdown = hosts.shutdown().await;
    let cases = cases?;
    shutdown?;
    Ok((info, cases))
}

async fn run_in_turn_on(
    experiment: &Experiment,
    hosts: &mut LabHostPair,
    progress: Progress<'_>,
) -> Result<Vec<CaseResult>, LabError> {
    hosts_support(experiment, hosts).await?;
    let total = experiment.spec.cases.len();
    let wanted = u16::try_from(total).unwrap_or(u16::MAX);
    let free = FreePorts {
        from: experiment.spec.port.get(),
        count: wanted,
    };
    let ports = hosts.c2.call(free).await?.ports;
    if ports.len() < total {
        return Err(LabError::Step {
            host: "c2".to_string(),
            step: "find free ports".to_string(),
            message: format!(
                "only {} free ports from {} up",
                ports.len(),
                experiment.spec.port
            ),
        });
    }
    let mut cases = Vec::with_capacity(total);
    for (index, port) in ports.into_iter().take(total).enumerate() {
        let started = Instant::now();
        let judged = run_case(experiment, index, port, hosts).await;
        let ended = hosts.end_case().await;
        let mut result = judged?;
        ended?;
        result.duration_ms = started.elapsed().as_millis() as u64;
        case_done(progress, experiment, index, &result);
        cases.push(result);
    }
    Ok(cases)
}

/// Tells `progress` that case `index` (0-based) of `experiment` ended.
fn case_done(progress: Progress<'_>, experiment: &Experiment, index: usize, case: &CaseResult) {
    let total = experiment.spec.cases.len();
    progress(Event::Line {
        key: &experiment.name,
        text: &case_line(index + 1, total, case),
        case_done: true,
    });
}
