//! What one kernel's column of the matrix holds: [`KernelRun`].

use serde::{Deserialize, Serialize};

use crate::experiment::result::ExperimentResult;

/// What one kernel did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelRun {
    pub name: String,
    /// The Debian build it booted (`6.1.192`), when it is one.
    pub build: Option<String>,
    /// `uname -r` of the hosts that ran it.
    pub uname: Option<String>,
    /// `netns` or `microvm`.
    pub lab: String,
    pub duration_ms: u64,
    pub results: Vec<ExperimentResult>,
}
