//! Running experiments at the CLI edge (`tcplab <experiment>`, `tcplab run
//! FILE`, `tcplab all`): the files asked for beside the report (`--report`,
//! `--pcap`, `--junit`) checked before the run, the run itself with its
//! progress, then the report on stdout and the files written.

use std::path::Path;

use anyhow::{Context, anyhow};
use tcplab::experiment::result::ExperimentResult;
use tcplab::experiment::runner::{self, Event};
use tcplab::experiment::spec::{Experiment, Recording};
use tcplab::interrupt::Interrupt;
use tcplab::lab::hosts::Family;
use tcplab::lab::{Lab, LabRequest};
use tcplab::report;

use crate::cli::RunOptions;
use crate::kept_on_failure::ProvisionalLab;
use crate::outcome::{Failure, emit, emit_human, environment, runtime, usage};
use crate::progress_view::ProgressView;
use tcplab::report::ReportError;
use tcplab::report::exports::{DirectoryWriter, ExportError, Exports, Renderer};

/// How the results of a run are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One experiment in full (table or the `--json` contract).
    Single,
    /// A line per experiment (`tcplab all`).
    Summary,
}

/// Runs `experiments`; `Ok` carries the exit code (0, or 1 when an
/// expectation failed).
pub fn run(
    mut experiments: Vec<Experiment>,
    options: &RunOptions,
    output: Output,
) -> Result<u8, Failure> {
    // Files that cannot be written are usage errors, found before the run.
    let exports = open_exports(options, output)?;
    let recording = if exports.has("--pcap") {
        Recording::EveryCase
    } else if exports.has("--report") {
        Recording::FirstCase
    } else {
        Recording::Nothing
    };
    for experiment in &mut experiments {
        experiment.recording = recording;
    }
    let (kept, lab) = resolve_lab(options)?;
    refuse_ipv4_cases_on_ipv6(&experiments, output, &lab)?;
    settle_host_sysctls(&mut experiments, &lab, options.allow_host_sysctl)?;
    let started = std::time::Instant::now();
    let mut results = run_with_progress(&experiments, &lab, options.quiet)?;
    if let Some(kept) = kept {
        kept.settle(results.iter().any(|r| !r.passed))?;
    }
    // One experiment asked for by name that cannot run here is an
    // environment problem (exit 3); within `all` it is a line in the summary.
    if let (Output::Single, [result]) = (output, results.as_slice())
        && let Some(reason) = &result.skipped
    {
        return Err(environment(anyhow!("{}: {reason}", result.experiment)));
    }
    exports.write_all(&results).map_err(export_failure)?;
    // The packets' bytes were only on their way to the pcapng files: the
    // report documents the packets, not their bytes.
    report::pcap::strip_bytes(&mut results);
    let text = render(&results, options, output, started.elapsed())?;
    if options.json {
        emit(&text);
    } else {
        emit_human(&text);
    }
    Ok(if results.iter().all(|r| r.passed) {
        0
    } else {
        1
    })
}

/// The run's lab; with --keep-on-failure, on a lab that is up that stays
/// when a case fails (dropped on any early return, it goes).
fn resolve_lab(options: &RunOptions) -> Result<(Option<ProvisionalLab>, Lab), Failure> {
    let kept = if options.keep_on_failure {
        Some(ProvisionalLab::start(options)?)
    } else {
        None
    };
    let request = LabRequest {
        on: kept
            .as_ref()
            .map(|k| k.name().to_string())
            .or(options.lab.on.clone()),
        ..options.lab.request()
    };
    // Must come first: entering a user namespace needs a single-threaded process.
    let lab = Lab::resolve(&request)?;
    Ok((kept, lab))
}

/// Asked for by name, an experiment whose cases bind IPv4 addresses cannot
/// run between IPv6 hosts: the flag is wrong (within `all` it is skipped,
/// with the reason).
fn refuse_ipv4_cases_on_ipv6(
    experiments: &[Experiment],
    output: Output,
    lab: &Lab,
) -> Result<(), Failure> {
    if let (Output::Single, [experiment]) = (output, experiments) {
        let names_ipv4 = experiment.spec.cases.iter().any(|c| c.names_ipv4_address());
        if names_ipv4 && lab.describe().family == Family::V6 {
            return Err(usage(anyhow!(
                "{}: its cases bind IPv4 addresses ({}); --family v6 cannot run it, \
                 leave --family at v4",
                experiment.name,
                experiment.source
            )));
        }
    }
    Ok(())
}

/// On ssh and Vagrant hosts a kernel setting is the whole host's: an
/// experiment that changes one runs only with `--allow-host-sysctl`, and
/// tcplab's own TIME_WAIT guard is set there only then.
fn settle_host_sysctls(
    experiments: &mut [Experiment],
    lab: &Lab,
    allowed: bool,
) -> Result<(), Failure> {
    let kind = lab.describe().kind;
    if !matches!(kind.as_str(), "ssh" | "vagrant") || allowed {
        return Ok(());
    }
    for experiment in experiments.iter_mut() {
        experiment.time_wait_guard = false;
        if let Some(line) = experiment.sysctl_line {
            return Err(usage(anyhow!(
                "{}:{line}: this experiment changes kernel settings, which on the {kind} \
                 lab are the whole host's; pass --allow-host-sysctl to let it (they are put \
                 back afterwards)",
                experiment.source
            )));
        }
    }
    Ok(())
}

/// The run, its progress drawn on stderr and cleared when it ends.
fn run_with_progress(
    experiments: &[Experiment],
    lab: &Lab,
    quiet: bool,
) -> Result<Vec<ExperimentResult>, Failure> {
    let runtime = runtime()?;
    let view = ProgressView::for_stderr(quiet);
    let progress = |event: Event<'_>| view.show(event);
    let results = runtime.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        runner::run_many(experiments, lab, &interrupt, &progress)
            .await
            .map_err(Failure::from)
    });
    view.finish();
    results
}

/// The report for stdout: one experiment in full, or the summary of several.
fn render(
    results: &[ExperimentResult],
    options: &RunOptions,
    output: Output,
    took: std::time::Duration,
) -> Result<String, Failure> {
    match (output, results) {
        (Output::Single, [result]) => report::exporter(options.json).render(result),
        _ => {
            let summary = report::summary::Summary {
                passed: results.iter().all(|r| r.passed),
                duration_ms: took.as_millis() as u64,
                experiments: results,
            };
            if options.json {
                report::summary::json(&summary)
            } else {
                Ok(report::summary::table(&summary))
            }
        }
    }
    .map_err(|e| environment(e.into()))
}

/// The files `--report`, `--pcap` and `--junit` ask for, opened now: one
/// that cannot be written is a usage error before the run, not after it.
fn open_exports(
    options: &RunOptions,
    output: Output,
) -> Result<Exports<[ExperimentResult]>, Failure> {
    let mut exports = Exports::default();
    if let Some(path) = &options.report {
        let html = picture_is_html(path, output)?;
        let draw: Renderer<[ExperimentResult]> = Box::new(move |results| match results {
            [result] => report::picture_exporter(html).render(result),
            _ => Err(ReportError::NoCapture),
        });
        exports
            .file("--report", path, draw)
            .map_err(export_failure)?;
    }
    if let Some(dir) = &options.pcap {
        let write: DirectoryWriter<[ExperimentResult]> = Box::new(|dir, results| {
            for result in results {
                report::pcap::write_result(dir, result).map_err(std::io::Error::other)?;
            }
            Ok(())
        });
        exports
            .directory("--pcap", dir, write)
            .map_err(export_failure)?;
    }
    if let Some(path) = &options.junit {
        let junit: Renderer<[ExperimentResult]> =
            Box::new(|results| Ok(report::junit::render(results)));
        exports
            .file("--junit", path, junit)
            .map_err(export_failure)?;
    }
    Ok(exports)
}

/// A file that cannot be written is the user's to fix (exit 2); results
/// that cannot be drawn are not.
pub(crate) fn export_failure(error: ExportError) -> Failure {
    match error {
        ExportError::Write { .. } => usage(error.into()),
        ExportError::Render { .. } => environment(error.into()),
    }
}

/// Whether `--report` draws a page (HTML) or a bare SVG, from its name.
fn picture_is_html(path: &Path, output: Output) -> Result<bool, Failure> {
    if output == Output::Summary {
        return Err(usage(anyhow!(
            "--report draws one experiment; run it by name (tcplab fin-wait2 --report …)"
        )));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => Ok(true),
        Some("svg") => Ok(false),
        _ => Err(usage(anyhow!(
            "--report {}: give a file ending in .html or .svg",
            path.display()
        ))),
    }
}
