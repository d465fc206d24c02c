//! The error of a failed agent request: its kind (which becomes the
//! orchestrator's exit code) and a message for the user. Every module of the
//! agent returns it; the session answers it as [`Reply::Error`].
//!
//! [`Reply::Error`]: super::protocol::Reply::Error

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

/// A failed request, answered as [`Reply::Error`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    pub kind: AgentErrorKind,
    pub message: String,
}

impl AgentError {
    pub fn new(kind: AgentErrorKind, message: impl Into<String>) -> AgentError {
        AgentError {
            kind,
            message: message.into(),
        }
    }
}

/// The error of an operation that was tried and failed: the kind most of
/// the agent's modules return.
pub fn failed(message: impl Into<String>) -> AgentError {
    AgentError::new(AgentErrorKind::Failed, message)
}
