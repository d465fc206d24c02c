//! How an agent says a request failed: [`AgentFailure`], and the kind that
//! becomes the orchestrator's exit code.

use serde::{Deserialize, Serialize};

/// Why a request failed; decides the orchestrator's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentErrorKind {
    /// A tool the host lacks (iptables): the environment can't run the experiment.
    MissingTool,
    /// The agent lacks a privilege it needs.
    Privilege,
    /// The request could not be parsed or does not fit the session's state.
    BadRequest,
    /// The operation was tried and failed.
    Failed,
}

/// The answer to any request that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFailure {
    pub kind: AgentErrorKind,
    pub message: String,
}
