//! `tcplab matrix merge`: the `matrix --json` documents of several runs
//! (one kernel per CI job, or kernels run on different machines) as one
//! matrix, so the same table, differences, JUnit and page come out as if
//! one run had booted every kernel.
//!
//! Only what a matrix is made of is kept: the kernels, in the order the
//! documents are given. Where the kernels differ is worked out again over
//! all of them; a single-kernel document has no differences of its own.

use std::path::{Path, PathBuf};

use super::{KernelRun, MatrixResult, rows};
use crate::report::document::SCHEMA_VERSION;

/// Why documents cannot be merged; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// serde_json's message names the line and column.
    #[error("{path}: not JSON: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: not a `tcplab matrix --json` document ({why})")]
    NotAMatrix { path: PathBuf, why: String },
    #[error(
        "{path}: schema version {found}, this tcplab reads version {SCHEMA_VERSION} (docs/json.md)"
    )]
    SchemaVersion { path: PathBuf, found: String },
    #[error("kernel {kernel} is in both {first} and {second}: give each kernel once")]
    SameKernel {
        kernel: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{path} ran {theirs}, {first} ran {ours}: only runs of the same experiments can be merged"
    )]
    OtherExperiments {
        path: PathBuf,
        first: PathBuf,
        theirs: String,
        ours: String,
    },
}

/// One `tcplab matrix --json` document, read from `path`.
pub fn read(path: &Path) -> Result<MatrixResult, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = |e: serde_json::Error| MergeError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(parse_error)?;
    if value.get("kernels").is_none() {
        return Err(MergeError::NotAMatrix {
            path: path.to_path_buf(),
            why: "it has no `kernels`".into(),
        });
    }
    match value.get("schema_version") {
        Some(found) if *found == serde_json::json!(SCHEMA_VERSION) => {}
        found => {
            return Err(MergeError::SchemaVersion {
                path: path.to_path_buf(),
                found: found.map_or("none".into(), |v| v.to_string()),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| MergeError::NotAMatrix {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// The runs as one matrix: their kernels side by side, the differences
/// over all of them. `duration_ms` is the longest run's (CI jobs run side
/// by side) and `concurrency` the sum of theirs.
pub fn merge(runs: Vec<(PathBuf, MatrixResult)>) -> Result<MatrixResult, MergeError> {
    let mut kernels: Vec<(PathBuf, KernelRun)> = Vec::new();
    let (mut duration_ms, mut concurrency) = (0, 0);
    for (path, run) in runs {
        duration_ms = duration_ms.max(run.duration_ms);
        concurrency += run.concurrency;
        for kernel in run.kernels {
            check_fits(&kernels, &path, &kernel)?;
            kernels.push((path.clone(), kernel));
        }
    }
    let kernels: Vec<KernelRun> = kernels.into_iter().map(|(_, k)| k).collect();
    Ok(MatrixResult {
        passed: kernels.iter().all(|k| k.results.iter().all(|r| r.passed)),
        duration_ms,
        concurrency,
        differences: rows::differences(&kernels),
        kernels,
    })
}

/// Refuses a kernel already merged, or one that ran other experiments
/// than the first: the rows line kernels up case by case.
fn check_fits(
    merged: &[(PathBuf, KernelRun)],
    path: &Path,
    kernel: &KernelRun,
) -> Result<(), MergeError> {
    if let Some((first, _)) = merged.iter().find(|(_, k)| k.name == kernel.name) {
        return Err(MergeError::SameKernel {
            kernel: kernel.name.clone(),
            first: first.clone(),
            second: path.to_path_buf(),
        });
    }
    let names = |k: &KernelRun| {
        let names: Vec<&str> = k.results.iter().map(|r| r.experiment.as_str()).collect();
        names.join(", ")
    };
    match merged.first() {
        Some((first, k)) if names(k) != names(kernel) => Err(MergeError::OtherExperiments {
            path: path.to_path_buf(),
            first: first.clone(),
            theirs: names(kernel),
            ours: names(k),
        }),
        _ => Ok(()),
    }
}
