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
use tcplab::lab::Lab;
use tcplab::lab::hosts::Family;
use tcplab::report;

use crate::cli::RunOptions;
use crate::outcome::{Failure, emit, emit_human, environment, open_junit, runtime, usage};
use crate::progress_view::ProgressView;
use tcplab::output_file::OutputFile;

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
    let picture = picture_kind(options, output)?;
    let pcap_dir = options.pcap.as_deref().map(prepare_pcap_dir).transpose()?;
    let junit = options.junit.as_deref().map(open_junit).transpose()?;
    let recording = match (&picture, &pcap_dir) {
        (_, Some(_)) => Recording::EveryCase,
        (Some(_), None) => Recording::FirstCase,
        (None, None) => Recording::Nothing,
    };
    for experiment in &mut experiments {
        experiment.recording = recording;
    }
    // Must come first: entering a user namespace needs a single-threaded process.
    let lab = Lab::resolve(&options.lab.request())?;
    refuse_ipv4_cases_on_ipv6(&experiments, output, &lab)?;
    settle_host_sysctls(&mut experiments, &lab, options.allow_host_sysctl)?;
    let started = std::time::Instant::now();
    let mut results = run_with_progress(&experiments, &lab, options.quiet)?;
    if let Some(dir) = pcap_dir {
        for result in &results {
            report::pcap::write_result(dir, result).map_err(|e| usage(e.into()))?;
        }
    }
    // The packets' bytes were only on their way to the pcapng files.
    report::pcap::strip_bytes(&mut results);
    // One experiment asked for by name that cannot run here is an
    // environment problem (exit 3); within `all` it is a line in the summary.
    if let (Output::Single, [result]) = (output, results.as_slice())
        && let Some(reason) = &result.skipped
    {
        return Err(environment(anyhow!("{}: {reason}", result.experiment)));
    }
    let text = render(&results, options, output, started.elapsed())?;
    if let (Some((file, kind)), [result]) = (picture, results.as_slice()) {
        write_picture(file, kind, result)?;
    }
    if let Some((path, file)) = junit {
        file.write_and_commit(report::junit::render(&results).as_bytes())
            .with_context(|| format!("cannot write --junit {}", path.display()))
            .map_err(usage)?;
    }
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
    if !matches!(kind, "ssh" | "vagrant") || allowed {
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

/// `--pcap DIR`, created before the run: a directory that cannot be made is
/// a usage error at once, not after the run.
fn prepare_pcap_dir(dir: &Path) -> Result<&Path, Failure> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create --pcap {}", dir.display()))
        .map_err(usage)?;
    tcplab::output_file::check_output_dir(dir)
        .with_context(|| format!("--pcap {}", dir.display()))
        .map_err(usage)?;
    Ok(dir)
}

/// The picture `--report` asks for: its path and whether it is HTML.
fn picture_kind(
    options: &RunOptions,
    output: Output,
) -> Result<Option<(OutputFile, bool)>, Failure> {
    let Some(path) = &options.report else {
        return Ok(None);
    };
    if output == Output::Summary {
        return Err(usage(anyhow!(
            "--report draws one experiment; run it by name (tcplab fin-wait2 --report …)"
        )));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let html = match extension.as_deref() {
        Some("html" | "htm") => true,
        Some("svg") => false,
        _ => {
            return Err(usage(anyhow!(
                "--report {}: give a file ending in .html or .svg",
                path.display()
            )));
        }
    };
    // A file that cannot be written is found before the run, not after it.
    let file = OutputFile::create(path, tcplab::output_file::SHARED)
        .with_context(|| format!("cannot write --report {}", path.display()))
        .map_err(usage)?;
    Ok(Some((file, html)))
}

fn write_picture(file: OutputFile, html: bool, result: &ExperimentResult) -> Result<(), Failure> {
    let text = report::picture_exporter(html)
        .render(result)
        .map_err(|e| environment(e.into()))?;
    let path = file.target().to_path_buf();
    file.write_and_commit(text.as_bytes())
        .with_context(|| format!("cannot write --report {}", path.display()))
        .map_err(usage)
}
