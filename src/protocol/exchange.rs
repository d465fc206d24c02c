//! What ties a request to its reply: [`Exchange`].

use std::time::Duration;

use super::{Reply, Request};

/// A request, the one reply type that answers it, and how it is named.
///
/// Implemented for every request by the table in `protocol/mod.rs`; the
/// orchestrator's typed call is written once over it.
pub trait Exchange: Into<Request> {
    /// What a successful answer carries.
    type Reply: TryFrom<Reply, Error = Reply>;
    /// The step this request is, as errors and logs name it.
    const STEP: &'static str;
}

/// The most a clean-up of dead sessions may add to an ordinary request's
/// time: it may remove many rules and processes.
const REAP_TIME: Duration = Duration::from_secs(20);

impl Request {
    /// The time the request itself asks the agent to take, beyond what an
    /// ordinary request takes: a wait's own deadline.
    pub fn waits_for(&self) -> Duration {
        match self {
            Request::WaitForState(wait) => Duration::from_millis(wait.deadline_ms),
            Request::ProbeRebind(probe) => Duration::from_millis(probe.deadline_ms),
            Request::Reap(_) => REAP_TIME,
            _ => Duration::ZERO,
        }
    }
}
