//! `tcplab matrix` at the CLI edge: which experiments and kernels, then the
//! table, JSON or JUnit of [`tcplab::matrix`]; and `matrix merge`, the same
//! outputs for documents of earlier runs.

use anyhow::{Context, anyhow};
use tcplab::experiment::catalogue;
use tcplab::experiment::runner::Event;
use tcplab::experiment::spec::Experiment;
use tcplab::interrupt::Interrupt;
use tcplab::lab::LabRequest;
use tcplab::matrix::{self, KernelColumn, render, terminal};

use crate::cli::{MatrixAction, MatrixArgs, MatrixFiles, MergeArgs};
use crate::outcome::{
    Failure, emit, emit_human, environment, experiment_by_name_or_file, refuse_unless_page,
    runtime, usage,
};
use crate::progress_view::ProgressView;
use crate::run_command::export_failure;
use tcplab::matrix::MatrixResult;
use tcplab::report::exports::{Exports, Renderer};

/// Runs the matrix; exit 1 when an expectation failed on any kernel.
pub fn run(args: &MatrixArgs) -> Result<u8, Failure> {
    if let Some(MatrixAction::Merge(merge)) = &args.action {
        return run_merge(merge);
    }
    let experiments = chosen_experiments(args)?;
    let exports = open_exports(&args.outputs)?;
    let base = LabRequest {
        modules: args.modules.clone(),
        accel: args.accel,
        cold: args.cold,
        ..LabRequest::default()
    };
    // Before the runtime: a rootless netns lab enters a user namespace.
    let columns = args
        .kernels
        .iter()
        .map(|name| KernelColumn::resolve_all(name, &base))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let view = ProgressView::for_stderr(args.quiet);
    let progress = |event: Event<'_>| view.show(event);
    let result = runtime()?.block_on(async {
        let interrupt = Interrupt::listen()
            .context("cannot install signal handlers")
            .map_err(environment)?;
        matrix::run(
            &experiments,
            &columns,
            args.jobs.map(usize::from),
            &interrupt,
            &progress,
        )
        .await
        .map_err(Failure::from)
    });
    view.finish();
    let result = result?;
    let format = if args.json {
        Format::Json
    } else {
        Format::Table
    };
    finish(&result, exports, format)
}

/// `tcplab matrix merge FILE…`: the documents' kernels as one matrix.
fn run_merge(args: &MergeArgs) -> Result<u8, Failure> {
    let exports = open_exports(&args.outputs)?;
    let runs = args
        .files
        .iter()
        .map(|path| Ok((path.clone(), matrix::merge::read(path)?)))
        .collect::<Result<Vec<_>, matrix::merge::MergeError>>()
        .map_err(|e| usage(e.into()))?;
    let result = matrix::merge::merge(runs).map_err(|e| usage(e.into()))?;
    let format = match (args.json, args.markdown) {
        (true, _) => Format::Json,
        (_, true) => Format::Markdown,
        _ => Format::Table,
    };
    finish(&result, exports, format)
}

/// How the matrix is printed on stdout.
enum Format {
    Table,
    Json,
    Markdown,
}

/// Writes the export files, prints the matrix; exit 1 when an expectation
/// failed on any kernel.
fn finish(
    result: &MatrixResult,
    exports: Exports<MatrixResult>,
    format: Format,
) -> Result<u8, Failure> {
    exports.write_all(result).map_err(export_failure)?;
    match format {
        Format::Json => {
            let json =
                tcplab::report::document::to_json(result).map_err(|e| environment(e.into()))?;
            emit(&json);
        }
        Format::Markdown => emit(&render::markdown(result)),
        Format::Table => emit_human(&terminal::table(
            result,
            crate::terminal_width::stdout_columns(),
        )),
    }
    Ok(if result.passed { 0 } else { 1 })
}

/// `--junit` and the `--report` page, opened before any kernel boots.
fn open_exports(outputs: &MatrixFiles) -> Result<Exports<MatrixResult>, Failure> {
    let mut exports = Exports::default();
    if let Some(path) = &outputs.junit {
        let junit: Renderer<MatrixResult> = Box::new(|result| Ok(render::junit(result)));
        exports
            .file("--junit", path, junit)
            .map_err(export_failure)?;
    }
    if let Some(path) = &outputs.report {
        refuse_unless_page(path, "the matrix")?;
        let page: Renderer<MatrixResult> = Box::new(|result| Ok(matrix::page::html(result)));
        exports
            .file("--report", path, page)
            .map_err(export_failure)?;
    }
    Ok(exports)
}

fn chosen_experiments(args: &MatrixArgs) -> Result<Vec<Experiment>, Failure> {
    if args.all {
        if !args.experiments.is_empty() {
            return Err(usage(anyhow!(
                "give experiments by name or --all, not both"
            )));
        }
        return Ok(catalogue::all()
            .map_err(|e| usage(e.into()))?
            .into_iter()
            .filter(|e| args.slow || !e.spec.slow)
            .collect());
    }
    if args.experiments.is_empty() {
        return Err(usage(anyhow!(
            "which experiments? name them (tcplab matrix fin-wait2 --kernel 6.1 …) or give --all"
        )));
    }
    args.experiments
        .iter()
        .map(|name| experiment_by_name_or_file(name))
        .collect()
}
