//! What a run reports while it goes, for a person watching: an experiment
//! starts with so many cases, a case ends (with a line saying how), an
//! experiment is skipped. The runner emits these [`Event`]s; the command
//! line draws them as live bars on a terminal or as one line per case
//! elsewhere. Layers above the runner (several experiments, the matrix's
//! kernels) rename the `key` and prefix the `text` on the way up.

use super::result::CaseResult;

/// One thing worth telling while a run goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The experiment `key` starts `cases` cases.
    Start { key: &'a str, cases: usize },
    /// A line about `key`; `case_done` when a case has just ended.
    Line {
        key: &'a str,
        text: &'a str,
        case_done: bool,
    },
}

impl<'a> Event<'a> {
    pub fn key(&self) -> &'a str {
        match self {
            Event::Start { key, .. } | Event::Line { key, .. } => key,
        }
    }
}

/// Where events go.
pub type Progress<'a> = &'a (dyn Fn(Event<'_>) + Sync);

/// `[2/4] old SO_REUSEADDR=0 new SO_REUSEADDR=1: FIN_WAIT2, bind EADDRINUSE
/// (as expected, 123 ms)`.
pub fn case_line(number: usize, total: usize, case: &CaseResult) -> String {
    // A live old socket was never killed: there is no state after a kill.
    let state = match (case.old_state.as_deref(), case.state_after_kill) {
        (Some(_), _) => String::new(),
        (None, Some(state)) => format!("{state}, "),
        (None, None) => "no socket, ".to_string(),
    };
    format!(
        "[{number}/{total}] {}: {state}bind {} ({}, {} ms)",
        case.label(),
        case.bind,
        if case.passed {
            "as expected"
        } else {
            "NOT as expected"
        },
        case.duration_ms
    )
}
