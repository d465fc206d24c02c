//! The error of a failed agent request: its kind (which becomes the
//! orchestrator's exit code) and a message for the user. Every module of the
//! agent returns it; the session answers it as [`Reply::Error`].
//!
//! [`Reply::Error`]: crate::protocol::Reply::Error

use crate::protocol::{AgentErrorKind, AgentFailure, Reply};

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

impl From<AgentError> for Reply {
    fn from(error: AgentError) -> Reply {
        Reply::Error(AgentFailure {
            kind: error.kind,
            message: error.message,
        })
    }
}
