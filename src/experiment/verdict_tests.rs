//! The verdict on its own: what [`CaseResult::judge`] makes of an
//! observation, with the shipped experiments' cases and no host at all.

use super::*;
use crate::experiment::catalogue;
use crate::experiment::spec::Experiment;

fn experiment(name: &str) -> Experiment {
    catalogue::find(name).unwrap().unwrap()
}

fn entry(state: SocketState) -> SocketEntry {
    SocketEntry {
        state,
        local: "10.211.55.10:8080".parse().unwrap(),
        remote: "10.211.55.5:40000".parse().unwrap(),
        timer_ms: Some(59_000),
        timer: None,
        recv_q: 0,
        send_q: 0,
    }
}

/// What a host reports: the connection in `state` (or gone but seen),
/// and bind's result.
pub(crate) fn seen(
    state: Option<SocketState>,
    result: &str,
    failed_step: Option<BindStep>,
) -> Observation {
    Observation {
        connection: state.map(entry),
        connection_identified: true,
        sockets: state.map(entry).into_iter().collect(),
        state_waited_ms: 40,
        probe_age_ms: None,
        bind: BindOutcome {
            result: result.to_string(),
            failed_step,
        },
        old_reuseaddr_reported: None,
        rebind: None,
        transcript: Vec::new(),
        capture: None,
        timings: None,
    }
}

fn judge(experiment: &Experiment, case: usize, observation: Observation) -> CaseResult {
    let spec = &experiment.spec;
    let case = &spec.cases[case];
    CaseResult::judge(
        case,
        spec.protocol,
        case.expected_state(spec),
        observation,
        5,
    )
}

#[test]
fn what_the_article_measured_passes() {
    let fin_wait2 = experiment("fin-wait2");
    let busy = seen(
        Some(SocketState::FinWait2),
        "EADDRINUSE",
        Some(BindStep::Bind),
    );
    let result = judge(&fin_wait2, 0, busy);
    assert!(result.passed, "{:?}", result.failures);
    assert_eq!(result.expected_bind, "EADDRINUSE");
    let both = seen(Some(SocketState::FinWait2), "ok", None);
    assert!(judge(&fin_wait2, 3, both).passed);
}

#[test]
fn each_miss_is_named_in_words() {
    let fin_wait2 = experiment("fin-wait2");
    let wrong = seen(Some(SocketState::TimeWait), "ok", None);
    let result = judge(&fin_wait2, 0, wrong);
    assert!(!result.passed);
    assert_eq!(result.failures.len(), 2, "{:?}", result.failures);
    assert!(result.failures[0].contains("expected FIN_WAIT2 after the kill"));
    assert!(result.failures[0].contains("TIME_WAIT"));
    assert_eq!(
        result.failures[1],
        "expected bind to give EADDRINUSE, it gave ok"
    );
    let at_listen = seen(
        Some(SocketState::FinWait2),
        "EADDRINUSE",
        Some(BindStep::Listen),
    );
    let result = judge(&fin_wait2, 3, at_listen);
    assert_eq!(
        result.failures,
        ["expected bind to give ok, it gave EADDRINUSE at listen"]
    );
}

#[test]
fn no_socket_left_proves_nothing_unless_the_connection_was_seen() {
    let fin_wait2 = experiment("fin-wait2");
    let mut never = seen(None, "EADDRINUSE", Some(BindStep::Bind));
    never.connection_identified = false;
    let result = judge(&fin_wait2, 0, never);
    assert!(!result.passed);
    assert!(
        result.failures[0].contains("never seen"),
        "{:?}",
        result.failures
    );
}

#[test]
fn a_rebind_window_is_judged_from_the_state_not_the_kill() {
    let linger2 = experiment("linger2");
    let case = linger2.spec.cases[0].rebind_within_s.unwrap();
    let inside = ((case.from_s + case.to_s) / 2.0 * 1000.0) as u64;
    let mut observation = seen(Some(SocketState::FinWait2), "ok", None);
    // Late from the kill (a loaded orchestrator), in time from the state.
    observation.rebind = Some(RebindTiming {
        after_state_ms: Some(inside),
        after_kill_ms: Some(inside + 60_000),
    });
    let result = judge(&linger2, 0, observation.clone());
    assert!(result.passed, "{:?}", result.failures);
    observation.rebind = Some(RebindTiming {
        after_state_ms: Some((case.to_s * 1000.0) as u64 + 1000),
        after_kill_ms: None,
    });
    let late = judge(&linger2, 0, observation.clone());
    assert!(
        late.failures[0].contains("it was after"),
        "{:?}",
        late.failures
    );
    observation.rebind = None;
    let busy = judge(&linger2, 0, observation);
    assert!(
        busy.failures[0].contains("still busy"),
        "{:?}",
        busy.failures
    );
}
