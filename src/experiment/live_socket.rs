//! The `live_socket` scenario: no connection to c1 and no kill. c2 holds a
//! live socket on the port (only bound, or listening), maybe more beside it
//! (bound, listening, connected to it, or opened and closed again), and a
//! new socket tries the port too: bind and listen, or (`connect_ephemeral`)
//! bind an address and let connect() to the old socket pick the port.
//!
//! This is where the kernel's bind rules show without any timer in the way:
//! which addresses overlap (a wildcard, `[::]` with or without
//! IPV6_V6ONLY, IPv4-mapped addresses), what SO_REUSEADDR and SO_REUSEPORT
//! allow beside a bound socket or a listener, and when connect() may share
//! a port that others hold. The kernel's own selftests (`bind_wildcard.c`,
//! `reuseaddr_conflict.c`, `tcp_port_share.c`) pin these down, and its
//! bind-bucket rewrites are where they have changed.

use crate::protocol::{BindBeside, TryBindBeside};
use std::net::SocketAddr;

use super::result::{Observation, describe_bind};
use super::spec::{BindChoice, CaseSpec, Experiment, HeldSpec, LiveState, Probe, Transport};
use super::steps::{Transcript, prepare_hosts};
use crate::lab::LabHostPair;
use crate::lab::error::LabError;
use crate::protocol::{BindOutcome, HeldSocket, SocketOptions};

/// One case on `hosts`' c2, on `port`.
pub(super) async fn drive(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Observation, LabError> {
    let mut transcript = Transcript::default();
    prepare_hosts(experiment, case, port, hosts, &mut transcript).await?;
    let plan = Plan::of(case, experiment.spec.protocol, hosts.link.c2, port);
    let probe = TryBindBeside {
        held: plan.held.clone(),
        address: plan.address,
        reuse: plan.new,
        connect: plan.connect,
    };
    let BindBeside {
        held: outcomes,
        outcome: probe,
    } = hosts.c2.call(probe).await?;
    for (socket, outcome) in plan.held.iter().zip(&outcomes) {
        transcript.say("c2", describe_held(socket, outcome));
    }
    let all_held = outcomes.len() == plan.held.len() && outcomes.iter().all(BindOutcome::is_ok);
    let bind = if all_held {
        transcript.say(
            "c2",
            format!("{}: {}", plan.describe_probe(), describe_bind(&probe)),
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
        probe_age_ms: None,
        bind,
        old_reuseaddr_reported: None,
        rebind: None,
        transcript: transcript.0,
        capture: None,
        timings: None,
    })
}

/// A case's sockets with their addresses resolved on c2.
struct Plan {
    held: Vec<HeldSocket>,
    /// Where the new socket binds.
    address: SocketAddr,
    new: SocketOptions,
    /// The old socket's address, for a new socket that connects to it.
    connect: Option<SocketAddr>,
}

impl Plan {
    fn of(case: &CaseSpec, transport: Transport, c2: std::net::IpAddr, port: u16) -> Plan {
        let old = HeldSpec {
            bind: case.old_bind.unwrap_or(BindChoice::Ipv4Any),
            port: None,
            reuseaddr: case.old_reuseaddr,
            reuseport: case.old_reuseport,
            v6only: case.old_v6only,
            bind_address_no_port: false,
            state: case.old_state.unwrap_or(LiveState::Listening),
            closed: false,
            disconnected: false,
        };
        let old_address = SocketAddr::new(old.bind.resolve(c2), port);
        let held = std::iter::once(&old)
            .chain(&case.also_held)
            .map(|h| held_socket(h, c2, port, old_address, transport))
            .collect();
        let connects = case.probe == Probe::ConnectEphemeral;
        // The new socket binds where the old one did unless the case says;
        // one that connects leaves the port to connect().
        let choice = case
            .new_bind
            .or(case.old_bind)
            .unwrap_or(BindChoice::Ipv4Any);
        let new_port = if connects { 0 } else { port };
        Plan {
            held,
            address: SocketAddr::new(choice.resolve(c2), new_port),
            new: case.new_socket(transport),
            connect: connects.then_some(old_address),
        }
    }

    /// `bind and listen 0.0.0.0:8082 with SO_REUSEADDR=1`.
    fn describe_probe(&self) -> String {
        match self.connect {
            Some(peer) => format!(
                "bind {}, connect {peer} with {}",
                self.address,
                self.new.describe()
            ),
            None => format!(
                "bind and listen {} with {}",
                self.address,
                self.new.describe()
            ),
        }
    }
}

fn held_socket(
    spec: &HeldSpec,
    c2: std::net::IpAddr,
    port: u16,
    old: SocketAddr,
    transport: Transport,
) -> HeldSocket {
    HeldSocket {
        address: SocketAddr::new(spec.bind.resolve(c2), spec.port.unwrap_or(port)),
        reuse: SocketOptions {
            reuseaddr: spec.reuseaddr,
            reuseport: spec.reuseport,
            v6only: spec.v6only,
            mptcp: transport == Transport::Mptcp,
            local_port_range: None,
            bind_address_no_port: spec.bind_address_no_port,
        },
        listen: spec.state == LiveState::Listening,
        connect: (spec.state == LiveState::Connected).then_some(old),
        closed: spec.closed,
        rebound: spec.disconnected,
    }
}

/// `hold 0.0.0.0:8080 (SO_REUSEADDR=0), listening: ok`.
fn describe_held(socket: &HeldSocket, outcome: &BindOutcome) -> String {
    let state = match (socket.listen, socket.connect) {
        (true, _) => "listening".to_string(),
        (false, Some(peer)) => format!("connected to {peer}"),
        (false, None) => "bound".to_string(),
    };
    let closed = if socket.closed { ", then closed" } else { "" };
    let rebound = if socket.rebound {
        ", disconnected and bound to its port by hand"
    } else {
        ""
    };
    format!(
        "hold {} ({}), {state}{rebound}{closed}: {}",
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
