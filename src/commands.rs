//! What each subcommand does, at the CLI edge: errors become `anyhow` with
//! context, and each failure carries the exit code it stands for.

use std::ffi::OsString;

use anyhow::{Context, anyhow};
use clap::{CommandFactory, FromArgMatches};
use tcplab::agent::diag::{SockDiag, SocketFilter};
use tcplab::agent::serve::{self, ServeOptions};
use tcplab::agent::socket_options::SocketOptions;
use tcplab::agent::{self, AgentOptions};
use tcplab::experiment::catalogue;
use tcplab::experiment::result::ExperimentResult;
use tcplab::experiment::runner::{self, Event};
use tcplab::experiment::spec::{Experiment, Recording};
use tcplab::interrupt::Interrupt;
use tcplab::lab::Lab;
use tcplab::lab::hosts::Family;
use tcplab::report;
use tcplab::report::wrap::wrap;

use crate::cli::{Cli, Command, ExperimentCommand, LabAction, LabArgs, RunOptions};
use crate::outcome::{Failure, emit, environment, load_file, open_junit, runtime, usage};
use crate::progress_view::ProgressView;

/// Runs the parsed command; `Ok` carries the exit code (0, or 1 when an
/// expectation failed).
pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run { file, options } => {
            let experiment = load_file(&file)?;
            run_experiments(vec![experiment], &options, Output::Single)
        }
        Command::Experiment(args) => {
            let (experiment, options) = builtin_experiment(args)?;
            run_experiments(vec![experiment], &options, Output::Single)
        }
        Command::All { options, slow } => {
            let experiments: Vec<Experiment> = catalogue::all()
                .map_err(|e| usage(e.into()))?
                .into_iter()
                .filter(|e| slow || !e.spec.slow)
                .collect();
            run_experiments(experiments, &options, Output::Summary)
        }
        Command::List { json } => list(json),
        Command::Completions { shell } => {
            let mut command = crate::cli::command_with_experiments();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "tcplab", &mut script);
            emit(&String::from_utf8_lossy(&script));
            Ok(0)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(crate::cli::command_with_experiments())
                .render(&mut page)
                .context("rendering the manual page")
                .map_err(environment)?;
            emit(&String::from_utf8_lossy(&page));
            Ok(0)
        }
        Command::Matrix(matrix) => crate::matrix_command::run(&matrix),
        Command::Lab {
            action: LabAction::Clean { lab },
        } => clean(&lab),
        Command::Lab {
            action: LabAction::Kernels,
        } => {
            emit(&(tcplab::lab::microvm::kernel_listing().join("\n") + "\n"));
            Ok(0)
        }
        Command::Sockets { port, state, json } => sockets(SocketFilter { port, state }, json),
        Command::Serve {
            bind,
            reuseaddr,
            reuseport,
            linger_zero,
            close_after_client,
            greeting,
            mptcp,
            v6only,
            linger2,
        } => serve::run(&ServeOptions {
            bind,
            reuse: SocketOptions {
                reuseaddr,
                reuseport,
                v6only,
                mptcp,
            },
            linger_zero,
            linger2_s: linger2,
            close_after_client,
            greeting,
        })
        .map(|()| 0)
        .map_err(|e| environment(anyhow!(e))),
        Command::Agent {
            unshare_net,
            remove_on_exit,
            expect_sha256,
        } => agent::run(AgentOptions {
            expect_sha256,
            unshare_net,
            remove_on_exit,
        })
        .map(|()| 0)
        .map_err(environment),
    }
}

/// `tcplab <name> [options]`: finds the built-in experiment and parses its options.
fn builtin_experiment(args: Vec<OsString>) -> Result<(Experiment, RunOptions), Failure> {
    let name = args
        .first()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let experiment = match catalogue::find(&name) {
        Some(parsed) => parsed.map_err(|e| usage(e.into()))?,
        None => {
            let known: Vec<_> = catalogue::names().collect();
            return Err(usage(anyhow!(
                "unknown command or experiment '{name}'; experiments: {}; see `tcplab --help` and `tcplab list`",
                known.join(", ")
            )));
        }
    };
    let command = ExperimentCommand::command()
        .name(name.clone())
        .bin_name(format!("tcplab {name}"))
        .about(experiment.spec.title.to_string())
        .long_about(experiment.spec.teaches.to_string());
    let matches = command
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| e.exit());
    let parsed = ExperimentCommand::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((experiment, parsed.options))
}

/// How the results of a run are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// One experiment in full (table or the `--json` contract).
    Single,
    /// A line per experiment (`tcplab all`).
    Summary,
}

fn run_experiments(
    mut experiments: Vec<Experiment>,
    options: &RunOptions,
    output: Output,
) -> Result<u8, Failure> {
    let picture = picture_kind(options, output)?;
    let pcap_dir = options.pcap.as_deref().map(prepare_pcap_dir).transpose()?;
    let recording = match (&picture, &pcap_dir) {
        (_, Some(_)) => Recording::EveryCase,
        (Some(_), None) => Recording::FirstCase,
        (None, None) => Recording::Nothing,
    };
    for experiment in &mut experiments {
        experiment.recording = recording;
    }
    let experiments = experiments.as_slice();
    // A JUnit file that cannot be written is a usage error, found before the run.
    let junit = options.junit.as_deref().map(open_junit).transpose()?;
    // Must come first: entering a user namespace needs a single-threaded process.
    let lab = Lab::resolve(&options.lab.request())?;
    // Asked for by name, an experiment whose cases bind IPv4 addresses
    // cannot run between IPv6 hosts: the flag is wrong (within `all` it is
    // skipped, with the reason).
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
    let runtime = runtime()?;
    let view = ProgressView::for_stderr(options.quiet);
    let progress = |event: Event<'_>| view.show(event);
    let started = std::time::Instant::now();
    let results = runtime.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        runner::run_many(experiments, &lab, &interrupt, &progress)
            .await
            .map_err(Failure::from)
    });
    view.finish();
    let results = results?;
    let mut results = results;
    if let Some(dir) = &pcap_dir {
        for result in &results {
            report::pcap::write_result(dir, result).map_err(|e| usage(e.into()))?;
        }
    }
    // The packets' bytes were only on their way to the pcapng files.
    report::pcap::strip_bytes(&mut results);
    let passed = results.iter().all(|r| r.passed);
    // One experiment asked for by name that cannot run here is an
    // environment problem (exit 3); within `all` it is a line in the summary.
    if let (Output::Single, [result]) = (output, results.as_slice())
        && let Some(reason) = &result.skipped
    {
        return Err(environment(anyhow!("{}: {reason}", result.experiment)));
    }
    let text = match (output, results.as_slice()) {
        (Output::Single, [result]) => report::exporter(options.json).render(result),
        _ => {
            let summary = report::summary::Summary {
                passed,
                duration_ms: started.elapsed().as_millis() as u64,
                experiments: &results,
            };
            if options.json {
                report::summary::json(&summary)
            } else {
                Ok(report::summary::table(&summary))
            }
        }
    }
    .map_err(|e| environment(e.into()))?;
    if let (Some((path, kind)), [result]) = (&picture, results.as_slice()) {
        write_picture(path, *kind, result)?;
    }
    if let Some((path, mut file)) = junit {
        use std::io::Write as _;
        file.write_all(report::junit::render(&results).as_bytes())
            .with_context(|| format!("cannot write --junit {}", path.display()))
            .map_err(usage)?;
    }
    emit(&text);
    Ok(if passed { 0 } else { 1 })
}

/// `--pcap DIR`, created before the run: a directory that cannot be made is
/// a usage error at once, not after the run.
fn prepare_pcap_dir(dir: &std::path::Path) -> Result<&std::path::Path, Failure> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create --pcap {}", dir.display()))
        .map_err(usage)?;
    Ok(dir)
}

/// The picture `--report` asks for: its path and whether it is HTML.
fn picture_kind(
    options: &RunOptions,
    output: Output,
) -> Result<Option<(std::path::PathBuf, bool)>, Failure> {
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
    std::fs::File::create(path)
        .with_context(|| format!("cannot write --report {}", path.display()))
        .map_err(usage)?;
    Ok(Some((path.clone(), html)))
}

fn write_picture(
    path: &std::path::Path,
    html: bool,
    result: &ExperimentResult,
) -> Result<(), Failure> {
    let text = report::picture_exporter(html)
        .render(result)
        .map_err(|e| environment(e.into()))?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write --report {}", path.display()))
        .map_err(usage)
}

fn clean(lab: &LabArgs) -> Result<u8, Failure> {
    let lab = Lab::resolve(&lab.request())?;
    let lines = runtime()?.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        lab.clean(&interrupt).await.map_err(Failure::from)
    })?;
    emit(&(lines.join("\n") + "\n"));
    Ok(0)
}

fn list(json: bool) -> Result<u8, Failure> {
    let experiments = catalogue::all().map_err(|e| usage(e.into()))?;
    if json {
        let entries: Vec<_> = experiments
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "title": e.spec.title.to_string(),
                    "teaches": e.spec.teaches.to_string(),
                    "article": e.spec.article.as_ref().map(ToString::to_string),
                    "cases": e.spec.cases.len(),
                    "slow": e.spec.slow,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&entries)
            .context("encoding the list")
            .map_err(environment)?;
        emit(&(text + "\n"));
        return Ok(0);
    }
    let mut text = String::new();
    for experiment in &experiments {
        let slow = if experiment.spec.slow { " (slow)" } else { "" };
        text.push_str(&format!(
            "{:<16} {}{slow}\n",
            experiment.name, experiment.spec.title
        ));
        let indent = " ".repeat(17);
        text.push_str(&wrap(
            &experiment.spec.teaches.to_string(),
            &indent,
            &indent,
        ));
    }
    text.push_str("\nRun one with `tcplab <NAME>`, or your own file with `tcplab run FILE`.\n");
    emit(&text);
    Ok(0)
}

fn sockets(filter: SocketFilter, json: bool) -> Result<u8, Failure> {
    let mut diag = SockDiag::open()
        .context("cannot open a sock_diag netlink socket")
        .map_err(environment)?;
    let sockets = diag
        .tcp_sockets(filter)
        .context("reading TCP sockets over sock_diag")
        .map_err(environment)?;
    let text = if json {
        report::sockets::json(&sockets).map_err(|e| environment(e.into()))?
    } else {
        report::sockets::table(&sockets)
    };
    emit(&text);
    Ok(0)
}
