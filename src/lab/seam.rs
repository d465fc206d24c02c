//! The one shape every lab has: [`LabKind`].

use std::future::Future;

use super::error::LabError;
use super::host_pair::{CaseIsolation, LabHostPair, LabInfo};
use crate::interrupt::Interrupt;

/// What a lab does, whichever it is: say what it is, start c1 and c2 with
/// an agent on each, and clean up after crashed runs. A new lab is a module
/// that implements this, a variant of [`super::Lab`] and its arm in
/// [`super::choice`].
pub(crate) trait LabKind {
    /// What a report says about the lab before any host is started (real
    /// hosts' addresses are only known once their agents answered).
    fn describe(&self) -> LabInfo;

    /// Whether every case gets hosts of its own, or all share one pair.
    fn isolation(&self) -> CaseIsolation;

    /// Starts c1 and c2 and returns once both agents answer.
    fn start(&self, interrupt: &Interrupt) -> impl Future<Output = Result<LabHostPair, LabError>>;

    /// Removes what crashed runs left on the hosts; a line per host.
    fn clean(&self, interrupt: &Interrupt) -> impl Future<Output = Result<Vec<String>, LabError>>;
}
