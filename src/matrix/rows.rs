//! The matrix as rows: one per experiment case, with each kernel's result
//! of it, and the rows where the kernels did not all see the same thing.
//! The renderers (`render`, `compact`, `page`) lay these out.

use serde::{Deserialize, Serialize};

use super::kernel_run::KernelRun;
use crate::experiment::result::CaseResult;

/// A row whose kernels did not all see the same thing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Difference {
    pub experiment: String,
    /// 1-based, as the experiment's own report numbers it.
    pub case: usize,
    pub label: String,
    /// Each kernel with what it saw (`FIN_WAIT2 EADDRINUSE`).
    pub seen: Vec<(String, String)>,
}

/// `old 0 new 1`, the case's SO_REUSEADDR pair (and SO_REUSEPORT, the
/// addresses, IPV6_V6ONLY and TCP_LINGER2 where the case sets them).
pub(super) fn case_label(case: &CaseResult) -> String {
    let on = |bind: &Option<String>| bind.as_ref().map_or(String::new(), |b| format!(" on {b}"));
    let mut label = format!(
        "old {}{} new {}{}",
        u8::from(case.old_reuseaddr),
        on(&case.old_bind),
        u8::from(case.new_reuseaddr),
        on(&case.new_bind)
    );
    if let Some(v6only) = case.old_v6only {
        label.push_str(&format!(" old v6only={}", u8::from(v6only)));
    }
    if let Some(v6only) = case.new_v6only {
        label.push_str(&format!(" v6only={}", u8::from(v6only)));
    }
    if let Some(state) = &case.old_state {
        label.push_str(&format!(" ({state}"));
        if !case.also_held.is_empty() {
            label.push_str(&format!(", {} more held", case.also_held.len()));
        }
        label.push(')');
    }
    if case.old_reuseport || case.new_reuseport {
        label.push_str(&format!(
            " (reuseport {}/{})",
            u8::from(case.old_reuseport),
            u8::from(case.new_reuseport)
        ));
    }
    if let Some(seconds) = case.linger2_s {
        label.push_str(&format!(" linger2 {seconds} s"));
    }
    label
}

/// What a kernel saw in one case: the state after the kill and the bind.
pub(super) fn seen(case: &CaseResult) -> String {
    if case.old_state.is_some() {
        // Nothing was killed: the bind is all there is to see.
        return case.bind.clone();
    }
    let state = case
        .state_after_kill
        .map_or("no socket".to_string(), |s| s.to_string());
    format!("{state} {}", case.bind)
}

/// A cell where a kernel has no case: the experiment was skipped there
/// (MPTCP on a kernel without it) or did not get that far.
pub(super) fn missing(kernel: &KernelRun, experiment: &str) -> String {
    let skipped = kernel
        .results
        .iter()
        .any(|r| r.experiment == experiment && r.skipped.is_some());
    if skipped { "skipped" } else { "not run" }.to_string()
}

/// One row of the matrix: an experiment's case, and each kernel's result
/// of it where that kernel ran it.
pub(super) struct Row<'a> {
    pub experiment: String,
    /// 1-based, as the experiment's own report numbers it.
    pub case: usize,
    pub label: String,
    pub cells: Vec<Option<&'a CaseResult>>,
}

impl Row<'_> {
    /// Is this one of the rows where the kernels disagree?
    pub(super) fn differs(&self, differences: &[Difference]) -> bool {
        differences
            .iter()
            .any(|d| d.experiment == self.experiment && d.case == self.case)
    }
}

/// Every (experiment, case) row, with each kernel's case where it ran.
pub(super) fn rows(kernels: &[KernelRun]) -> Vec<Row<'_>> {
    let Some(first) = kernels.first() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (e, experiment) in first.results.iter().enumerate() {
        let count = kernels
            .iter()
            .map(|k| k.results.get(e).map_or(0, |r| r.cases.len()))
            .max()
            .unwrap_or(0);
        for c in 0..count {
            let cells: Vec<Option<&CaseResult>> = kernels
                .iter()
                .map(|k| k.results.get(e).and_then(|r| r.cases.get(c)))
                .collect();
            let label = cells
                .iter()
                .flatten()
                .next()
                .map(|case| case_label(case))
                .unwrap_or_default();
            rows.push(Row {
                experiment: experiment.experiment.clone(),
                case: c + 1,
                label,
                cells,
            });
        }
    }
    rows
}

/// The rows where the kernels' observations differ.
pub fn differences(kernels: &[KernelRun]) -> Vec<Difference> {
    rows(kernels)
        .into_iter()
        .filter_map(|row| {
            let seen_by: Vec<(String, String)> = kernels
                .iter()
                .zip(&row.cells)
                .map(|(k, cell)| {
                    let text = cell.map_or_else(|| missing(k, &row.experiment), seen);
                    (k.name.clone(), text)
                })
                .collect();
            // A kernel that skipped the experiment is listed once, under
            // the table, not as a difference in every row.
            let mut ran = seen_by.iter().filter(|(_, s)| s != "skipped");
            let first = &ran.next()?.1;
            ran.any(|(_, s)| s != first).then_some(Difference {
                experiment: row.experiment,
                case: row.case,
                label: row.label,
                seen: seen_by,
            })
        })
        .collect()
}

impl Difference {
    /// `fin-wait2 case 1 (old 0 new 0): 6.1: FIN_WAIT2 EADDRINUSE; host: …`
    pub fn describe(&self) -> String {
        let seen: Vec<String> = self
            .seen
            .iter()
            .map(|(kernel, seen)| format!("{kernel}: {seen}"))
            .collect();
        format!(
            "{} case {} ({}): {}",
            self.experiment,
            self.case,
            self.label,
            seen.join("; ")
        )
    }
}
