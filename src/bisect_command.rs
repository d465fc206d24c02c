//! `tcplab bisect` at the CLI edge: the experiment and its one case, the
//! builds from the archive, each step as it happens, then the answer.

use anyhow::{Context, anyhow};
use tcplab::bisect::{self, BisectResult, BisectStep};
use tcplab::experiment::catalogue;
use tcplab::experiment::spec::Experiment;
use tcplab::interrupt::Interrupt;
use tcplab::lab::LabRequest;
use tcplab::lab::microvm::kernel::archive_index;

use crate::cli::BisectArgs;
use crate::outcome::{
    Failure, emit, emit_human, environment, load_file, refuse_unless_page, runtime, usage,
};
use crate::run_command::export_failure;
use tcplab::report::exports::{Exports, Renderer};

/// Runs the bisection; exit 0 with the first differing build.
pub fn run(args: &BisectArgs) -> Result<u8, Failure> {
    let experiment = one_case(args)?;
    let mut exports = Exports::<BisectResult>::default();
    if let Some(path) = &args.report {
        refuse_unless_page(path, "the search")?;
        let page: Renderer<BisectResult> = Box::new(|result| Ok(tcplab::bisect_page::html(result)));
        exports
            .file("--report", path, page)
            .map_err(export_failure)?;
    }
    let index = archive_index(false)?;
    let builds = bisect::candidates(&index, &args.good, &args.bad)?;
    let base = LabRequest {
        accel: args.accel,
        // Each build is booted once: saving its guests would cost a second
        // a boot and push the kernels runs do reuse out of the cache.
        cold: true,
        ..LabRequest::default()
    };
    let case = usize::from(args.case);
    if !args.quiet {
        eprintln!(
            "bisect {} case {case} over {} builds, {} to {}",
            experiment.name,
            builds.len(),
            args.good,
            args.bad
        );
    }
    let quiet = args.quiet;
    let show = move |step: &BisectStep| {
        if !quiet {
            eprintln!("{}", step_line(step));
        }
    };
    let result = runtime()?.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        bisect::bisect(&experiment, case, &builds, &base, &interrupt, &show)
            .await
            .map_err(Failure::from)
    })?;
    exports.write_all(&result).map_err(export_failure)?;
    if args.json {
        let json = tcplab::report::document::to_json(&result).map_err(|e| environment(e.into()))?;
        emit(&json);
    } else {
        emit_human(&answer(&result));
    }
    Ok(0)
}

/// The experiment with only the case asked for.
fn one_case(args: &BisectArgs) -> Result<Experiment, Failure> {
    let name = args.experiment.as_str();
    let mut experiment = match catalogue::find(name) {
        Some(found) => found.map_err(|e| usage(e.into()))?,
        None if name.contains('/') || name.ends_with(".toml") => {
            load_file(std::path::Path::new(name))?
        }
        None => {
            return Err(usage(anyhow!(
                "no built-in experiment {name:?}; `tcplab list` shows them (or give a file)"
            )));
        }
    };
    let count = experiment.spec.cases.len();
    let index = usize::from(args.case) - 1;
    if index >= count {
        return Err(usage(anyhow!(
            "--case {}: {name} has {count} cases (1 to {count})",
            args.case
        )));
    }
    let case = experiment.spec.cases.swap_remove(index);
    experiment.spec.cases = vec![case];
    Ok(experiment)
}

fn step_line(step: &BisectStep) -> String {
    format!(
        "  {:<10} {:<34} {:<4}  ({} left in question)",
        step.build, step.outcome, step.verdict, step.remaining
    )
}

/// The steps, then the answer.
fn answer(result: &BisectResult) -> String {
    let mut out = format!(
        "{} case {}: {} candidate builds from {} (good) to {} (bad)\n",
        result.experiment,
        result.case,
        result.candidates.len(),
        result.good,
        result.bad
    );
    for step in &result.steps {
        out.push_str(&step_line(step));
        out.push('\n');
    }
    out.push_str(&format!(
        "first build with another outcome: {} (the last with the good one: {}), after {} boots\n",
        result.first_bad, result.last_good, result.boots
    ));
    out
}
