//! `tcplab matrix`: the same experiments on several kernels, side by side.
//!
//! A thin layer over the runner and the labs: each kernel is a lab (`host`
//! is the netns lab on this machine's kernel, a version or file is the
//! microvm lab booting that kernel), each lab runs the experiments through
//! [`runner::run_many`] exactly as `tcplab <experiment>` would, and the
//! results are laid side by side ([`render`]). Kernels run concurrently, at
//! most [`concurrency`] at a time (`--jobs` decides instead).
//!
//! Every kernel is judged against the experiment's expectations. A row
//! whose kernels disagree is listed under the table; a disagreement that
//! breaks an expectation fails the run (exit 1), naming the case and the
//! kernels.

mod compact;
mod kernel_run;
pub mod merge;
pub mod page;
pub mod render;
mod rows;
pub mod terminal;

use serde::{Deserialize, Serialize};

pub use kernel_run::KernelRun;
pub use rows::Difference;

use crate::experiment::runner::{self, Event, Progress};
use crate::experiment::spec::Experiment;
use crate::interrupt::Interrupt;
use crate::lab::error::LabError;
use crate::lab::{Lab, LabChoice, LabRequest};

/// One column of the matrix: a kernel and the lab that runs it.
pub struct KernelColumn {
    /// As the user named it: `host`, `6.1`, `./vmlinuz`.
    pub name: String,
    pub lab: Lab,
}

impl KernelColumn {
    /// `host` or a `--kernel` value; resolved before any thread starts.
    pub fn resolve(name: &str, base: &LabRequest) -> Result<KernelColumn, LabError> {
        let request = if name == "host" {
            LabRequest {
                choice: LabChoice::Netns,
                kernel: None,
                modules: None,
                ..base.clone()
            }
        } else {
            LabRequest {
                choice: LabChoice::Microvm,
                kernel: Some(name.to_string()),
                ..base.clone()
            }
        };
        Ok(KernelColumn {
            name: name.to_string(),
            lab: Lab::resolve(&request)?,
        })
    }

    /// As [`KernelColumn::resolve`], and `all`: one column per kernel line
    /// in Debian's archive, oldest first, each its line's newest build.
    pub fn resolve_all(name: &str, base: &LabRequest) -> Result<Vec<KernelColumn>, LabError> {
        if name != "all" {
            return Ok(vec![KernelColumn::resolve(name, base)?]);
        }
        let index = crate::lab::microvm::kernel::archive_index(false)?;
        for (line, why) in index.unbootable_lines() {
            eprintln!("tcplab: --kernel all leaves out {line}: {why}");
        }
        index
            .resolve("all")?
            .into_iter()
            .map(|build| {
                let column = KernelColumn::resolve(&build.version, base)?;
                Ok(KernelColumn {
                    name: build.line,
                    ..column
                })
            })
            .collect()
    }

    /// The Debian build this column boots (`6.1.192`), if it is one.
    pub fn build(&self) -> Option<String> {
        match &self.lab {
            Lab::Microvm(lab) => match &lab.kernel {
                crate::lab::microvm::kernel::KernelChoice::Debian { build } => {
                    Some(build.version.clone())
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// The whole matrix, as `--json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixResult {
    pub passed: bool,
    pub duration_ms: u64,
    /// How many kernels ran at once.
    pub concurrency: usize,
    pub kernels: Vec<KernelRun>,
    /// Rows where the kernels disagree.
    pub differences: Vec<Difference>,
}

/// Every experiment on one kernel's lab, its lines tagged with the kernel.
async fn run_column(
    experiments: &[Experiment],
    column: &KernelColumn,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<KernelRun, LabError> {
    let kernel_started = std::time::Instant::now();
    // Each kernel's lines and bars are tagged with its name.
    let tagged = |event: Event<'_>| {
        let key = format!("[{}] {}", column.name, event.key());
        match event {
            Event::Start { cases, .. } => progress(Event::Start { key: &key, cases }),
            Event::Line {
                text, case_done, ..
            } => progress(Event::Line {
                key: &key,
                text: &format!("[{}] {text}", column.name),
                case_done,
            }),
        }
    };
    let results = runner::run_many(experiments, &column.lab, interrupt, &tagged).await?;
    // A skipped experiment never booted anything: its lab says less.
    let lab = results
        .iter()
        .find(|r| r.skipped.is_none())
        .or(results.first())
        .map_or(column.lab.describe(), |r| r.lab.clone());
    let uname = lab.kernel.clone().or_else(|| {
        (lab.kind == "netns").then(|| {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|r| r.trim().to_string())
                .unwrap_or_default()
        })
    });
    Ok(KernelRun {
        name: column.name.clone(),
        build: column.build(),
        uname,
        lab: lab.kind,
        duration_ms: kernel_started.elapsed().as_millis() as u64,
        results,
    })
}

/// How many kernels run at once: one per core, and no more than memory
/// allows (a kernel's two VMs peak at about 220 MiB each; 512 MiB is kept
/// per kernel). Measured on 2 cores without KVM, fin-wait2 on 5.10, 6.1 and
/// 6.12: 14.7 s one at a time, 13.0 s two at a time, 13.2 s three.
pub fn concurrency() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(cores, |kib| kib / (512 * 1024));
    cores.min(by_memory).max(1)
}

/// Runs every experiment on every kernel, `jobs` kernels at a time (by
/// default [`concurrency`]).
pub async fn run(
    experiments: &[Experiment],
    columns: &[KernelColumn],
    jobs: Option<usize>,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<MatrixResult, LabError> {
    use futures::StreamExt;
    let started = std::time::Instant::now();
    let bound = jobs.unwrap_or_else(concurrency).max(1);
    let runs = futures::stream::iter(
        columns
            .iter()
            .map(|column| run_column(experiments, column, interrupt, progress)),
    )
    .buffered(bound)
    .collect::<Vec<_>>()
    .await;
    let kernels = runs.into_iter().collect::<Result<Vec<_>, _>>()?;
    let passed = kernels.iter().all(|k| k.results.iter().all(|r| r.passed));
    let differences = rows::differences(&kernels);
    Ok(MatrixResult {
        passed,
        duration_ms: started.elapsed().as_millis() as u64,
        concurrency: bound,
        kernels,
        differences,
    })
}
