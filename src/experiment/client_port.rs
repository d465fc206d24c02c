//! The `client_port` scenario (the article's 0x04): a client with a fixed
//! local port closes first and is left in TIME_WAIT on c1; can a new socket
//! use that port?
//!
//! One function per step, in the order they run; [`drive`] reads like the
//! scenario.

use std::net::SocketAddr;
use std::time::Duration;

use super::result::{Observation, describe_bind};
use super::spec::{CaseSpec, Experiment, ExperimentSpec, Probe};
use super::steps::{Transcript, pause_before, prepare_hosts, unspecified_like};
use crate::agent::protocol::{
    BindOutcome, ClientClose, ServerOptions, ServerProgram, SocketOptions,
};
use crate::lab::LabHostPair;
use crate::lab::agent_connection::Connection;
use crate::lab::error::LabError;

/// One case of the scenario on `hosts`, the server on `port`.
pub(super) async fn drive(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Observation, LabError> {
    let spec = &experiment.spec;
    let within = spec.expect().within_ms.as_duration();
    let mut transcript = Transcript::default();
    // The file's client port, or on hosts where an earlier case's TIME_WAIT
    // holds it (real hosts, VMs that run the cases in turn) the next free
    // one; the case's pinned port range and socket range move with it.
    let wanted = spec.client().local_port.map_or(40000, |p| p.get());
    let client_port = hosts
        .c1
        .free_ports(wanted, 1)
        .await?
        .first()
        .copied()
        .unwrap_or(wanted);
    let case = &case.with_client_ports_moved(client_port.saturating_sub(wanted));
    prepare_hosts(experiment, case, port, hosts, &mut transcript).await?;
    start_server(spec, port, hosts, &mut transcript).await?;
    pause_before("connect", hosts).await;
    let server = SocketAddr::new(hosts.link.c2, port);
    let connection =
        connect_and_close_first(spec, case, server, client_port, hosts, &mut transcript).await?;
    let local_port = connection.local.port();

    let after = hosts
        .c1
        .wait_for_state(local_port, server, case.expected_state(spec).0, within)
        .await?;
    match &after.connection {
        Some(socket) => transcript.say("c1", socket.compact_line()),
        None => transcript.say("c1", "the kernel has no socket left for the connection"),
    }
    if let Some(wait) = case.probe_after_ms {
        tokio::time::sleep(Duration::from_millis(u64::from(wait.0))).await;
        transcript.say("c1", format!("wait {} ms", wait.0));
    }
    let bind = probe(spec, case, server, local_port, hosts, &mut transcript).await?;

    Ok(Observation {
        // c1 opened this connection itself and read from it: its own local
        // port and the server's address name it exactly, seen or not.
        connection_identified: true,
        connection: after.connection,
        sockets: after.sockets,
        state_waited_ms: after.waited_ms,
        bind,
        old_reuseaddr_reported: None,
        rebind: None,
        transcript: transcript.0,
        capture: None,
        timings: None,
    })
}

/// A server on c2 that waits for the client to close first.
async fn start_server(
    spec: &ExperimentSpec,
    port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<(), LabError> {
    let listen_on = SocketAddr::new(unspecified_like(hosts.link.c2), port);
    let (server_pid, _) = hosts
        .c2
        .serve(ServerOptions {
            program: ServerProgram::Tcplab,
            bind: listen_on,
            reuse: SocketOptions::default(),
            linger_zero: false,
            greeting: spec.server.greeting.as_str().to_string(),
            close_after_client: true,
            jvm_default_reuse: false,
            linger2_s: None,
        })
        .await?;
    transcript.say(
        "c2",
        format!(
            "tcplab serve listens on {listen_on}, waits for the client to close (pid {server_pid})"
        ),
    );
    Ok(())
}

/// c1 connects from its port (fixed or picked by connect()), reads the
/// greeting and closes first, so that c1 is the side left in TIME_WAIT.
async fn connect_and_close_first(
    spec: &ExperimentSpec,
    case: &CaseSpec,
    server: SocketAddr,
    local_port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<Connection, LabError> {
    // A port bound by hand is one connect() never picks for others; a port
    // connect() picked itself is one tcp_tw_reuse may hand out again.
    let bind_first = case.client_bind.then_some(local_port);
    let old = case.old_socket(spec.protocol);
    let connection = hosts
        .c1
        .connect(server, ClientClose::First, bind_first, old)
        .await?;
    let how = if case.client_bind {
        format!("bound by hand, {}", old.describe())
    } else {
        "picked by connect()".to_string()
    };
    transcript.say(
        "c1",
        format!(
            "connect {server} from {} ({how}), read {:?}, close first",
            connection.local, connection.greeting
        ),
    );
    Ok(connection)
}

/// The case's probe of the port left in TIME_WAIT: bind it, connect from
/// it again, or connect from a port the kernel picks.
async fn probe(
    spec: &ExperimentSpec,
    case: &CaseSpec,
    server: SocketAddr,
    local_port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<BindOutcome, LabError> {
    let same_port = SocketAddr::new(unspecified_like(hosts.link.c2), local_port);
    let new = case.new_socket(spec.protocol);
    let (outcome, said) = match case.probe {
        Probe::Bind => {
            let outcome = hosts.c1.try_bind(same_port, new).await?;
            let said = format!("bind {same_port} with {}", new.describe());
            (outcome, said)
        }
        Probe::Connect => {
            let (outcome, _) = hosts.c1.try_connect(Some(same_port), server, new).await?;
            let said = format!(
                "connect {server} again from port {local_port} with {}",
                new.describe()
            );
            (outcome, said)
        }
        Probe::ConnectEphemeral => {
            // A plain client socket; only the port range is the case's.
            let plain = SocketOptions {
                local_port_range: new.local_port_range,
                ..SocketOptions::default()
            };
            let (outcome, used) = hosts.c1.try_connect(None, server, plain).await?;
            let from = used.map_or("?".to_string(), |a| a.port().to_string());
            let said = format!(
                "connect {server} again from a port the kernel picks ({from}) with {}",
                plain.describe()
            );
            (outcome, said)
        }
    };
    transcript.say("c1", format!("{said}: {}", describe_bind(&outcome)));
    Ok(outcome)
}
