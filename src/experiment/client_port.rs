//! The `client_port` scenario (the article's 0x04): a client with a fixed
//! local port closes first and is left in TIME_WAIT on c1; can a new socket
//! use that port?
//!
//! One function per step, in the order they run; [`drive`] reads like the
//! scenario.

use std::net::SocketAddr;
use std::time::Duration;

use super::result::{Observation, TranscriptLine, describe_bind};
use super::spec::{CaseSpec, Experiment, ExperimentSpec, Probe};
use super::steps::{Transcript, pause_before, prepare_hosts, unspecified_like};
use crate::lab::LabHostPair;
use crate::lab::agent_connection::AgentConnection;
use crate::lab::error::LabError;
use crate::protocol::{
    BindOutcome, ClientClose, Connect, ConnectProbe, Connected, FreePorts, Serve, ServerOptions,
    ServerProgram, SocketOptions, TryBind, TryConnect, TryConnectYoungTimeWait, WaitForState,
    YoungReuse,
};

/// How many fresh TIME_WAITs a `connect_young_time_wait` case builds
/// before it gives up: each try misses the window only when the agent got
/// there after the TIME_WAIT's first second (or the second turned too late
/// in it to aim at), which is load, not the kernel.
const YOUNG_TRIES: u32 = 5;

/// One case of the scenario on `hosts`, the server on `port`.
pub(super) async fn drive(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Observation, LabError> {
    // Every try's lines are kept, in order: the report shows the misses.
    let mut missed: Vec<TranscriptLine> = Vec::new();
    let mut why = Vec::new();
    for _ in 0..YOUNG_TRIES {
        match drive_once(experiment, case, port, hosts).await? {
            Ok(mut observation) => {
                observation.transcript.splice(0..0, missed);
                return Ok(observation);
            }
            Err(lines) => {
                why.extend(lines.last().map(|line| line.text.clone()));
                missed.extend(lines);
                // The next try starts clean: its own server, rules and
                // sysctls (the old TIME_WAIT keeps its port; the next try
                // moves to a free one).
                hosts.end_case().await?;
            }
        }
    }
    Err(LabError::Step {
        host: "c1".into(),
        step: "connect into a young TIME_WAIT".into(),
        message: format!(
            "{YOUNG_TRIES} fresh TIME_WAITs were all too old by the time the agent could \
             try (this machine is too busy to aim inside a second): {}",
            why.join("; ")
        ),
    })
}

/// One try of the case: `Err` with the try's transcript when the probe
/// could not be made in its window (a young TIME_WAIT only); its last line
/// says why.
async fn drive_once(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Result<Observation, Vec<TranscriptLine>>, LabError> {
    let spec = &experiment.spec;
    let within = spec.expect().within_ms.as_duration();
    let mut transcript = Transcript::default();
    // The file's client port, or on hosts where an earlier case's TIME_WAIT
    // holds it (real hosts, VMs that run the cases in turn) the next free
    // one; the case's pinned port range and socket range move with it.
    let wanted = spec.client().local_port.map_or(40000, |p| p.get());
    let client_port = free_port_from(wanted, hosts).await?;
    let case = &case.with_client_ports_moved(client_port.saturating_sub(wanted));
    prepare_hosts(experiment, case, port, hosts, &mut transcript).await?;
    start_server(spec, port, hosts, &mut transcript).await?;
    pause_before("connect", hosts.c1.interrupt()).await;
    let server = SocketAddr::new(hosts.link.c2, port);
    let connection =
        connect_and_close_first(spec, case, server, client_port, hosts, &mut transcript).await?;
    let local_port = connection.local.port();

    let after = hosts
        .c1
        .call(WaitForState::within(
            local_port,
            server,
            case.expected_state(spec).0,
            within,
        ))
        .await?;
    match &after.connection {
        Some(socket) => transcript.say("c1", socket.compact_line()),
        None => transcript.say("c1", "the kernel has no socket left for the connection"),
    }
    if let Some(wait) = case.probe_after_ms {
        tokio::time::sleep(Duration::from_millis(u64::from(wait.0))).await;
        transcript.say("c1", format!("wait {} ms", wait.0));
    }
    let probed = probe(spec, case, server, local_port, hosts, &mut transcript).await?;
    let Some(Probed { bind, age_ms }) = probed else {
        return Ok(Err(transcript.0));
    };

    Ok(Ok(observed(after, Probed { bind, age_ms }, transcript)))
}

/// What the case saw: the connection after its close, and the probe.
fn observed(
    after: crate::protocol::StateObservation,
    probed: Probed,
    transcript: Transcript,
) -> Observation {
    Observation {
        // c1 opened this connection itself and read from it: its own local
        // port and the server's address name it exactly, seen or not.
        connection_identified: true,
        connection: after.connection,
        sockets: after.sockets,
        state_waited_ms: after.waited_ms,
        probe_age_ms: probed.age_ms,
        bind: probed.bind,
        old_reuseaddr_reported: None,
        rebind: None,
        transcript: transcript.0,
        capture: None,
        timings: None,
    }
}

/// `wanted`, or the first free port above it on c1.
async fn free_port_from(wanted: u16, hosts: &mut LabHostPair) -> Result<u16, LabError> {
    let free = hosts
        .c1
        .call(FreePorts {
            from: wanted,
            count: 1,
        })
        .await?;
    Ok(free.ports.first().copied().unwrap_or(wanted))
}

/// A server on c2 that waits for the client to close first.
async fn start_server(
    spec: &ExperimentSpec,
    port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<(), LabError> {
    let listen_on = SocketAddr::new(unspecified_like(hosts.link.c2), port);
    let serving = hosts
        .c2
        .call(Serve {
            server: ServerOptions {
                program: ServerProgram::Tcplab,
                bind: listen_on,
                reuse: SocketOptions::default(),
                linger_zero: false,
                greeting: spec.server.greeting.as_str().to_string(),
                close_after_client: true,
                jvm_default_reuse: false,
                linger2_s: None,
            },
        })
        .await?;
    let server_pid = serving.pid;
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
) -> Result<Connected, LabError> {
    // A port bound by hand is one connect() never picks for others; a port
    // connect() picked itself is one tcp_tw_reuse may hand out again.
    let bind_first = case.client_bind.then_some(local_port);
    let old = case.old_socket(spec.protocol);
    let connection = hosts
        .c1
        .call(Connect {
            server,
            close: ClientClose::First,
            local_port: bind_first,
            reuse: old,
        })
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

/// What a probe saw: its outcome, and for a young TIME_WAIT the age it was
/// tried at.
struct Probed {
    bind: BindOutcome,
    age_ms: Option<u64>,
}

/// The case's probe of the port left in TIME_WAIT: bind it, connect from
/// it again, or connect from a port the kernel picks (at once, or aimed at
/// the TIME_WAIT's young moment). `None` when that moment was missed; the
/// transcript's last line then says how.
async fn probe(
    spec: &ExperimentSpec,
    case: &CaseSpec,
    server: SocketAddr,
    local_port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<Option<Probed>, LabError> {
    let same_port = SocketAddr::new(unspecified_like(hosts.link.c2), local_port);
    let new = case.new_socket(spec.protocol);
    // The kernel-picked probes use a plain client socket; only the port
    // range is the case's.
    let plain = SocketOptions {
        local_port_range: new.local_port_range,
        ..SocketOptions::default()
    };
    let c1 = &mut hosts.c1;
    let (outcome, said, age_ms) = match case.probe {
        Probe::Bind | Probe::Connect => {
            let (outcome, said) = probe_same_port(c1, case.probe, same_port, server, new).await?;
            (outcome, said, None)
        }
        Probe::ConnectEphemeral => {
            let (outcome, said) = connect_from_a_picked_port(c1, server, plain).await?;
            (outcome, said, None)
        }
        Probe::ConnectYoungTimeWait => {
            let tried = TryConnectYoungTimeWait {
                local_port,
                server,
                reuse: plain,
            };
            let attempt = c1.call(tried).await?.attempt;
            match describe_young(attempt, server, plain, transcript) {
                Some((outcome, said, age_ms)) => (outcome, said, Some(age_ms)),
                None => return Ok(None),
            }
        }
    };
    transcript.say("c1", format!("{said}: {}", describe_bind(&outcome)));
    Ok(Some(Probed {
        bind: outcome,
        age_ms,
    }))
}

/// bind() the TIME_WAIT's own port, or connect() from it again: the
/// outcome, and what was tried.
async fn probe_same_port(
    c1: &mut AgentConnection,
    probe: Probe,
    same_port: SocketAddr,
    server: SocketAddr,
    new: SocketOptions,
) -> Result<(BindOutcome, String), LabError> {
    if probe == Probe::Bind {
        let tried = TryBind {
            address: same_port,
            reuse: new,
        };
        let said = format!("bind {same_port} with {}", new.describe());
        return Ok((c1.call(tried).await?.outcome, said));
    }
    let tried = TryConnect {
        local: Some(same_port),
        server,
        reuse: new,
    };
    let said = format!(
        "connect {server} again from port {} with {}",
        same_port.port(),
        new.describe()
    );
    Ok((c1.call(tried).await?.outcome, said))
}

/// connect() from a port the kernel picks: the outcome, and what was tried.
async fn connect_from_a_picked_port(
    c1: &mut AgentConnection,
    server: SocketAddr,
    plain: SocketOptions,
) -> Result<(BindOutcome, String), LabError> {
    let tried = TryConnect {
        local: None,
        server,
        reuse: plain,
    };
    let ConnectProbe { outcome, local } = c1.call(tried).await?;
    let from = local.map_or("?".to_string(), |a| a.port().to_string());
    let said = format!(
        "connect {server} again from a port the kernel picks ({from}) with {}",
        plain.describe()
    );
    Ok((outcome, said))
}

/// A young-TIME_WAIT attempt in words: its outcome, what was tried and the
/// TIME_WAIT's age then; `None` (said in the transcript) when it came too late.
fn describe_young(
    attempt: YoungReuse,
    server: SocketAddr,
    plain: SocketOptions,
    transcript: &mut Transcript,
) -> Option<(BindOutcome, String, u64)> {
    match attempt {
        YoungReuse::Tried {
            age_ms,
            outcome,
            local,
        } => {
            let from = local
                .filter(|a| a.port() != 0)
                .map_or(String::new(), |a| format!(" ({})", a.port()));
            let said = format!(
                "the clock's second turned: connect {server} again from a port the kernel \
                 picks{from} with {}, the TIME_WAIT {age_ms} ms old",
                plain.describe()
            );
            Some((outcome, said, age_ms))
        }
        YoungReuse::TooLate { age_ms } => {
            transcript.say(
                "c1",
                format!(
                    "the TIME_WAIT would be, or was, {age_ms} ms old at the attempt after the \
                     clock's second turned: too late to tell the rules apart, a fresh one is made"
                ),
            );
            None
        }
    }
}
