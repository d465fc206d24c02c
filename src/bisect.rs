//! `tcplab bisect`: the first Debian kernel build whose outcome for one
//! case differs from a good build's, booting as few builds as a binary
//! search allows.
//!
//! The candidates are the archive's bootable builds from the good one to
//! the bad one, in version order, across lines or within one (see
//! `lab::microvm::kernel_archive`). Each step boots one build in the
//! microvm lab and runs the one case, exactly as `tcplab EXPERIMENT --lab
//! microvm --kernel BUILD` would; its outcome is the state the kernel
//! showed and what the probe gave. The good and the bad build are run
//! first, so that a range whose ends agree is refused rather than bisected.
//! Like `git bisect`, it assumes one change in the range: a result that
//! flips back and forth inside it is found at one of its edges only.

use serde::Serialize;

use crate::experiment::result::CaseResult;
use crate::experiment::runner;
use crate::experiment::spec::Experiment;
use crate::interrupt::Interrupt;
use crate::lab::error::LabError;
use crate::lab::microvm::kernel_archive::{ArchiveIndex, KernelBuild};
use crate::lab::{Lab, LabChoice, LabRequest};

/// One boot of the search.
#[derive(Debug, Clone, Serialize)]
pub struct BisectStep {
    pub build: String,
    /// `TIME_WAIT, EADDRNOTAVAIL`: what the case showed on that build.
    pub outcome: String,
    /// `good` (the good build's outcome) or `bad` (another).
    pub verdict: &'static str,
    /// How many candidates are still in question after this step.
    pub remaining: usize,
}

/// The answer, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct BisectResult {
    pub experiment: String,
    /// The case, counted from 1 as reports count them.
    pub case: usize,
    pub good: String,
    pub bad: String,
    /// Builds from good to bad, both included.
    pub candidates: Vec<String>,
    pub steps: Vec<BisectStep>,
    /// The last build with the good outcome, and the first without.
    pub last_good: String,
    pub first_bad: String,
    pub boots: usize,
}

/// What a case showed, as bisect compares it.
pub fn outcome_of(case: &CaseResult) -> String {
    if case.old_state.is_some() {
        // A live old socket: nothing was killed, the bind is the outcome.
        return case.bind.clone();
    }
    let state = case
        .state_after_kill
        .map_or("no socket".to_string(), |s| s.to_string());
    format!("{state}, {}", case.bind)
}

/// The bootable builds from `good` to `bad` (both must be builds the
/// archive lists), in version order.
pub fn candidates(
    index: &ArchiveIndex,
    good: &str,
    bad: &str,
) -> Result<Vec<KernelBuild>, LabError> {
    let position = |wanted: &str| {
        index
            .builds
            .iter()
            .position(|b| b.version == wanted)
            .ok_or_else(|| {
                LabError::Usage(format!(
                    "{wanted}: bisect takes exact builds (`tcplab lab kernels --json` lists them)"
                ))
            })
    };
    let (from, to) = (position(good)?, position(bad)?);
    if from >= to {
        return Err(LabError::Usage(format!(
            "--good {good} must be an older build than --bad {bad}"
        )));
    }
    let chosen: Vec<KernelBuild> = index.builds[from..=to]
        .iter()
        .filter(|b| b.missing.is_none() || b.version == good || b.version == bad)
        .cloned()
        .collect();
    Ok(chosen)
}

/// Bisects `experiment`'s only case over `builds` (good first, bad last).
pub async fn bisect(
    experiment: &Experiment,
    case: usize,
    builds: &[KernelBuild],
    base: &LabRequest,
    interrupt: &Interrupt,
    on_step: &(dyn Fn(&BisectStep) + Sync),
) -> Result<BisectResult, LabError> {
    let mut steps = Vec::new();
    // Boots builds[index]; `remaining` is what is still in question after.
    let mut step = async |index: usize, good: Option<&str>, remaining: &dyn Fn(bool) -> usize| {
        let outcome = run_on(experiment, &builds[index], base, interrupt).await?;
        let is_good = good.is_none_or(|good| good == outcome);
        let step = BisectStep {
            build: builds[index].version.clone(),
            outcome,
            verdict: if is_good { "good" } else { "bad" },
            remaining: remaining(is_good),
        };
        on_step(&step);
        steps.push(step.clone());
        Ok::<_, LabError>(step)
    };
    let last = builds.len() - 1;
    // After the two ends, the builds between them are in question.
    let good_outcome = step(0, None, &|_| last).await?.outcome;
    let bad = step(last, Some(&good_outcome), &|_| last - 1).await?;
    if bad.verdict == "good" {
        return Err(LabError::Usage(format!(
            "case {case} gives \"{good_outcome}\" on both {} and {}: nothing to bisect",
            builds[0].version, builds[last].version
        )));
    }
    // Invariant: builds[low] has the good outcome, builds[high] another.
    let (mut low, mut high) = (0, last);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        // Either the builds above the middle or those below remain.
        let after = |good: bool| {
            if good {
                high - middle - 1
            } else {
                middle - low - 1
            }
        };
        if step(middle, Some(&good_outcome), &after).await?.verdict == "good" {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok(found(experiment, case, builds, steps, (low, high)))
}

/// The result once `builds[low]` and `builds[high]` are next to each other.
fn found(
    experiment: &Experiment,
    case: usize,
    builds: &[KernelBuild],
    steps: Vec<BisectStep>,
    (low, high): (usize, usize),
) -> BisectResult {
    BisectResult {
        experiment: experiment.name.clone(),
        case,
        good: builds[0].version.clone(),
        bad: builds[builds.len() - 1].version.clone(),
        candidates: builds.iter().map(|b| b.version.clone()).collect(),
        boots: steps.len(),
        steps,
        last_good: builds[low].version.clone(),
        first_bad: builds[high].version.clone(),
    }
}

/// Boots `build` and runs the experiment's one case on it.
async fn run_on(
    experiment: &Experiment,
    build: &KernelBuild,
    base: &LabRequest,
    interrupt: &Interrupt,
) -> Result<String, LabError> {
    let request = LabRequest {
        choice: LabChoice::Microvm,
        kernel: Some(build.version.clone()),
        ..base.clone()
    };
    let lab = Lab::resolve(&request)?;
    let result = runner::run(experiment, &lab, interrupt, &|_| {}).await?;
    if let Some(why) = result.skipped {
        return Err(LabError::Unsupported(format!(
            "on {}: {why}",
            build.version
        )));
    }
    result
        .cases
        .first()
        .map(outcome_of)
        .ok_or_else(|| LabError::Setup(format!("no case ran on {}", build.version)))
}
