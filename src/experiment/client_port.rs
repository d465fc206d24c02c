//! The `client_port` scenario (the article's 0x04): a client with a fixed
//! local port closes first and is left in TIME_WAIT on c1; can a new socket
//! use that port?

use std::net::SocketAddr;
use std::time::Duration;

use super::result::{Observation, describe_bind};
use super::spec::{CaseSpec, Experiment, Probe};
use super::steps::{Transcript, prepare_hosts, unspecified_like};
use crate::agent::protocol::{ClientClose, ReuseOptions, ServerOptions, ServerProgram};
use crate::lab::LabHostPair;
use crate::lab::error::LabError;

/// One case of the scenario on `hosts`, the server on `port`.
pub(super) async fn drive(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Observation, LabError> {
    let spec = &experiment.spec;
    let within = spec.expect.within_ms.as_duration();
    let mut transcript = Transcript::default();
    prepare_hosts(spec, case, port, hosts, &mut transcript).await?;

    let listen_on = SocketAddr::new(unspecified_like(hosts.link.c2), port);
    let (server_pid, _) = hosts
        .c2
        .serve(ServerOptions {
            program: ServerProgram::Tcplab,
            bind: listen_on,
            reuse: ReuseOptions::default(),
            linger_zero: false,
            greeting: spec.server.greeting.as_str().to_string(),
            close_after_client: true,
            jvm_default_reuse: false,
        })
        .await?;
    transcript.say(
        "c2",
        format!(
            "tcplab serve listens on {listen_on}, waits for the client to close (pid {server_pid})"
        ),
    );

    // The wanted port, or the next one no socket on c1 uses (real hosts keep
    // earlier runs' TIME_WAIT for a minute).
    let wanted = spec.client.local_port.map_or(40000, |p| p.get());
    let local_port = hosts
        .c1
        .free_ports(wanted, 1)
        .await?
        .first()
        .copied()
        .unwrap_or(wanted);
    let server = SocketAddr::new(hosts.link.c2, port);
    // A port bound by hand is one connect() never picks for others; a port
    // connect() picked itself is one tcp_tw_reuse may hand out again.
    let bind_first = case.client_bind.then_some(local_port);
    let connection = hosts
        .c1
        .connect(server, ClientClose::First, bind_first, case.old_socket())
        .await?;
    let local_port = connection.local.port();
    let how = if case.client_bind {
        format!("bound by hand, {}", case.old_socket().describe())
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

    let same_port = SocketAddr::new(unspecified_like(hosts.link.c2), local_port);
    let bind = match case.probe {
        Probe::Bind => {
            let outcome = hosts.c1.try_bind(same_port, case.new_socket()).await?;
            transcript.say(
                "c1",
                format!(
                    "bind {same_port} with {}: {}",
                    case.new_socket().describe(),
                    describe_bind(&outcome)
                ),
            );
            outcome
        }
        Probe::Connect => {
            let (outcome, _) = hosts
                .c1
                .try_connect(Some(same_port), server, case.new_socket())
                .await?;
            transcript.say(
                "c1",
                format!(
                    "connect {server} again from port {local_port} with {}: {}",
                    case.new_socket().describe(),
                    describe_bind(&outcome)
                ),
            );
            outcome
        }
        Probe::ConnectEphemeral => {
            let (outcome, used) = hosts
                .c1
                .try_connect(None, server, ReuseOptions::default())
                .await?;
            let from = used.map_or("?".to_string(), |a| a.port().to_string());
            transcript.say(
                "c1",
                format!(
                    "connect {server} again from a port the kernel picks ({from}): {}",
                    describe_bind(&outcome)
                ),
            );
            outcome
        }
    };

    Ok(Observation {
        // c1 opened this connection itself and read from it: its own local
        // port and the server's address name it exactly, seen or not.
        connection_identified: true,
        connection: after.connection,
        sockets: after.sockets,
        state_waited_ms: after.waited_ms,
        bind,
        old_reuseaddr_reported: None,
        rebind_after_ms: None,
        transcript: transcript.0,
        capture: None,
        timings: None,
    })
}
