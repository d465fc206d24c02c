//! What can go wrong while a lab runs an experiment, and what it means for the
//! exit code (3 when the environment can't run it, 130/143 when
//! interrupted).

use std::time::Duration;

use crate::protocol::AgentErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The host lacks a tool or a privilege; the message says how to fix it.
    #[error("{host}: {message}")]
    Environment { host: String, message: String },

    /// The agent tried and failed.
    #[error("{host}: {step} failed: {message}")]
    Step {
        host: String,
        step: String,
        message: String,
    },

    /// The agent did not answer in time: it hangs, or the host is unreachable.
    #[error("{host}: no answer to '{step}' within {} s; the agent hangs or the host is unreachable", .after.as_secs())]
    Timeout {
        host: String,
        step: String,
        after: Duration,
    },

    /// The agent's stream ended or carried something that is not a reply.
    #[error("{host}: the agent went away during '{step}': {message}")]
    AgentLost {
        host: String,
        step: String,
        message: String,
    },

    /// The orchestrator could not enter a user namespace or start an agent.
    #[error("{0}")]
    Setup(String),

    /// The hosts lack what the experiment needs (MPTCP in their kernel): the
    /// experiment is reported as skipped, with this reason.
    #[error("{0}")]
    Unsupported(String),

    /// The command line asks for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// SIGINT or SIGTERM arrived (or, with 0, another case failed and the
    /// run was aborted); the run stopped and cleaned up.
    #[error("interrupted by {}", signal_name(*.0))]
    Interrupted(i32),
}

impl LabError {
    /// Maps an agent's error reply to the matching lab error.
    pub fn from_agent(host: &str, step: &str, kind: AgentErrorKind, message: String) -> LabError {
        match kind {
            AgentErrorKind::MissingTool | AgentErrorKind::Privilege => LabError::Environment {
                host: host.to_string(),
                message,
            },
            AgentErrorKind::BadRequest | AgentErrorKind::Failed => LabError::Step {
                host: host.to_string(),
                step: step.to_string(),
                message,
            },
        }
    }

    /// The process exit code this error stands for.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::Interrupted(signal) => 128 + *signal as u8,
            LabError::Usage(_) => 2,
            _ => 3,
        }
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        0 => "the failure of another case",
        _ => "a signal",
    }
}
