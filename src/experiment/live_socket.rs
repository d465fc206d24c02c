//! The `live_socket` scenario: no connection and no kill. c2 holds a live
//! socket on the port (only bound, or listening), maybe more beside it, and
//! a new socket tries to bind and listen there too.
//!
//! This is where the kernel's bind rules show without any timer in the way:
//! which addresses overlap (a wildcard, `[::]` with or without
//! IPV6_V6ONLY, IPv4-mapped addresses) and what SO_REUSEADDR and
//! SO_REUSEPORT allow beside a bound socket or a listener. The kernel's own
//! selftests (`bind_wildcard.c`, `reuseaddr_conflict.c`) pin these down, and
//! its bind-bucket rewrites (Linux 6.1's second bind hash) are where they
//! have changed.

use std::net::SocketAddr;

use super::result::{Observation, describe_bind};
use super::spec::{BindChoice, CaseSpec, Experiment, HeldSpec, LiveState};
use super::steps::{Transcript, prepare_hosts};
use crate::agent::protocol::{BindOutcome, HeldSocket, SocketOptions};
use crate::lab::LabHostPair;
use crate::lab::error::LabError;

/// One case on `hosts`' c2, on `port`.
pub(super) async fn drive(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Observation, LabError> {
    let spec = &experiment.spec;
    let mut transcript = Transcript::default();
    prepare_hosts(experiment, case, port, hosts, &mut transcript).await?;
    let c2 = hosts.link.c2;
    let at = |choice: Option<BindChoice>| {
        SocketAddr::new(choice.unwrap_or(BindChoice::Ipv4Any).resolve(c2), port)
    };
    let old = HeldSpec {
        bind: case.old_bind.unwrap_or(BindChoice::Ipv4Any),
        reuseaddr: case.old_reuseaddr,
        reuseport: case.old_reuseport,
        v6only: case.old_v6only,
        state: case.old_state.unwrap_or(LiveState::Listening),
    };
    let held: Vec<HeldSocket> = std::iter::once(&old)
        .chain(&case.also_held)
        .map(|h| held_socket(h, at(Some(h.bind)), spec.protocol))
        .collect();
    // The new socket binds where the old one did unless the case says.
    let address = at(case.new_bind.or(case.old_bind));
    let new = case.new_socket(spec.protocol);
    let (outcomes, probe) = hosts.c2.try_bind_beside(held.clone(), address, new).await?;
    for (socket, outcome) in held.iter().zip(&outcomes) {
        transcript.say("c2", describe_held(socket, outcome));
    }
    let bind = if outcomes.len() == held.len() && outcomes.iter().all(BindOutcome::is_ok) {
        transcript.say(
            "c2",
            format!(
                "bind and listen {address} with {}: {}",
                new.describe(),
                describe_bind(&probe)
            ),
        );
        probe
    } else {
        transcript.say("c2", "a held socket failed: the new socket was not tried");
        held_failure(&probe)
    };
    Ok(Observation {
        // Nothing is killed, so no connection is watched: "no socket left"
        // is what the scenario expects and all it can see.
        connection: None,
        connection_identified: true,
        sockets: Vec::new(),
        state_waited_ms: 0,
        bind,
        old_reuseaddr_reported: None,
        rebind: None,
        transcript: transcript.0,
        capture: None,
        timings: None,
    })
}

fn held_socket(
    spec: &HeldSpec,
    address: SocketAddr,
    transport: super::spec::Transport,
) -> HeldSocket {
    HeldSocket {
        address,
        reuse: SocketOptions {
            reuseaddr: spec.reuseaddr,
            reuseport: spec.reuseport,
            v6only: spec.v6only,
            mptcp: transport == super::spec::Transport::Mptcp,
            local_port_range: None,
        },
        listen: spec.state == LiveState::Listening,
    }
}

/// `hold 0.0.0.0:8080 (SO_REUSEADDR=0), listening: ok`.
fn describe_held(socket: &HeldSocket, outcome: &BindOutcome) -> String {
    let state = if socket.listen { "listening" } else { "bound" };
    format!(
        "hold {} ({}), {state}: {}",
        socket.address,
        socket.reuse.describe(),
        describe_bind(outcome)
    )
}

/// A held socket that could not be opened is the case's own mistake, not
/// the kernel's answer: it shows as its own result, which no expectation
/// names, so the case fails and says why.
fn held_failure(outcome: &BindOutcome) -> BindOutcome {
    BindOutcome {
        result: format!("held socket: {}", describe_bind(outcome)),
        failed_step: None,
    }
}
