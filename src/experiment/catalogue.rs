//! The experiments built into the binary, so `tcplab fin-wait2` works from any
//! directory and on hosts that only received the executable.
//!
//! Adding an experiment is adding a file to `experiments/` and a line here; a
//! unit test parses every entry.

use super::spec::{Experiment, SpecError};

/// (name, file contents) of every built-in experiment, in the order `list` shows them.
const BUILTIN: &[(&str, &str)] = &[
    (
        "fin-wait2",
        include_str!("../../experiments/fin-wait2.toml"),
    ),
    (
        "time-wait",
        include_str!("../../experiments/time-wait.toml"),
    ),
    (
        "fin-wait1",
        include_str!("../../experiments/fin-wait1.toml"),
    ),
    (
        "reuseport",
        include_str!("../../experiments/reuseport.toml"),
    ),
    (
        "linger-rst",
        include_str!("../../experiments/linger-rst.toml"),
    ),
    (
        "client-port",
        include_str!("../../experiments/client-port.toml"),
    ),
    ("java", include_str!("../../experiments/java.toml")),
    ("mptcp", include_str!("../../experiments/mptcp.toml")),
    ("linger2", include_str!("../../experiments/linger2.toml")),
    (
        "bind-conflict",
        include_str!("../../experiments/bind-conflict.toml"),
    ),
    (
        "rebind-timeline",
        include_str!("../../experiments/rebind-timeline.toml"),
    ),
    (
        "bind-wildcard",
        include_str!("../../experiments/bind-wildcard.toml"),
    ),
    (
        "reuseaddr-conflict",
        include_str!("../../experiments/reuseaddr-conflict.toml"),
    ),
    (
        "port-share",
        include_str!("../../experiments/port-share.toml"),
    ),
];

/// The names of the built-in experiments.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// The built-in experiment `name`, parsed; `None` when there is none.
pub fn find(name: &str) -> Option<Result<Experiment, SpecError>> {
    BUILTIN
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(name, text)| Experiment::parse(name, &format!("experiments/{name}.toml"), text))
}

/// Every built-in experiment, parsed.
pub fn all() -> Result<Vec<Experiment>, SpecError> {
    names().filter_map(find).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_experiment_parses() {
        let experiments = all().unwrap();
        assert_eq!(experiments.len(), BUILTIN.len());
        assert!(find("fin-wait2").is_some());
        assert!(find("no-such").is_none());
    }
}
