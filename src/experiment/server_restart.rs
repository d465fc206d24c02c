//! The article's scenario: the server answers and closes, the client ends its
//! side as the file says, the server is killed, its orphaned connection is
//! watched on c2, and a new socket tries to bind the port.

use std::net::SocketAddr;
use std::time::Duration;

use super::result::{Mark, Observation, describe_bind};
use super::spec::{CaseSpec, Experiment};
use super::steps::{Transcript, pause_before, prepare_hosts, unspecified_like};
use crate::agent::protocol::{ClientClose, ReuseOptions, ServerOptions, ServerProgram};
use crate::lab::LabHostPair;
use crate::lab::error::LabError;
use crate::tcp_state::SocketState;

/// How often a rebind timeline probes the port.
const REBIND_PROBE_EVERY: Duration = Duration::from_millis(20);

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
    pause_before("firewall", hosts).await;
    let c1_has_rules = prepare_hosts(spec, case, port, hosts, &mut transcript).await?;

    // The article's server binds the wildcard address, as Java's
    // `new InetSocketAddress(8080)` does.
    let listen_on = SocketAddr::new(unspecified_like(hosts.link.c2), port);
    pause_before("serve", hosts).await;
    let (server_pid, banner) = hosts
        .c2
        .serve(ServerOptions {
            program: spec.server.program,
            bind: listen_on,
            reuse: case.old_socket(),
            linger_zero: spec.server.linger_zero,
            greeting: spec.server.greeting.as_str().to_string(),
            close_after_client: false,
            jvm_default_reuse: case.old_jvm_default,
        })
        .await?;
    let old_reuseaddr_reported = reported_reuse_address(&banner);
    match spec.server.program {
        ServerProgram::Tcplab => {
            let linger = if spec.server.linger_zero {
                ", SO_LINGER 0"
            } else {
                ""
            };
            transcript.say(
                "c2",
                format!(
                    "tcplab serve listens on {listen_on} with {}{linger} (pid {server_pid})",
                    case.old_socket().describe()
                ),
            );
        }
        ServerProgram::Java => {
            let call = if case.old_jvm_default {
                "no setReuseAddress call".to_string()
            } else {
                format!("setReuseAddress({})", case.old_reuseaddr)
            };
            transcript.say(
                "c2",
                format!("java ReuseAddress, {call}: \"{banner}\" (pid {server_pid})"),
            );
        }
    }

    let server = SocketAddr::new(hosts.link.c2, port);
    pause_before("connect", hosts).await;
    let connection = hosts
        .c1
        .connect(server, spec.client.close, None, ReuseOptions::default())
        .await?;
    let ending = if connection.reset { "RST" } else { "FIN" };
    transcript.say(
        "c1",
        format!(
            "connect {server} from {}, read {:?} and {ending}",
            connection.local, connection.greeting
        ),
    );

    match spec.client.close {
        // A reset connection is gone on both sides: nothing to close.
        _ if connection.reset => {}
        ClientClose::AfterAck => {
            // Close only once c2 has the ACK of its FIN: observed, not slept for.
            let acked = hosts
                .c2
                .wait_for_state(port, connection.local, Some(SocketState::FinWait2), within)
                .await?;
            let seen = acked
                .connection
                .as_ref()
                .map_or("no socket".to_string(), |c| c.state.to_string());
            if acked.reached {
                transcript.say(
                    "c2",
                    format!(
                        "FIN_WAIT2 after {} ms: c1 ACKed the server's FIN",
                        acked.waited_ms
                    ),
                );
            } else {
                transcript.say(
                    "c2",
                    format!(
                        "never reached FIN_WAIT2 within {} ms (saw {seen})",
                        acked.waited_ms
                    ),
                );
            }
            hosts.c1.close_client().await?;
            let fate = if !c1_has_rules {
                "close(): c1 sends its FIN"
            } else {
                "close(): c1 sends its FIN, into the firewall rule above"
            };
            let mark = if c1_has_rules {
                Mark::FinDropped
            } else {
                Mark::Close
            };
            transcript.mark("c1", mark, fate);
        }
        ClientClose::Immediately | ClientClose::First => {
            transcript.say("c1", "closed at once on EOF: the ACK rides on c1's FIN");
        }
        ClientClose::Never => transcript.say("c1", "keeps the connection open"),
    }

    pause_before("kill", hosts).await;
    let killed = hosts.c2.kill_server(spec.server.kill).await?;
    transcript.mark(
        "c2",
        Mark::Kill,
        format!("kill -{} {killed}", spec.server.kill.name()),
    );

    let after = hosts
        .c2
        .wait_for_state(port, connection.local, case.expected_state(spec).0, within)
        .await?;
    match &after.connection {
        Some(socket) => transcript.say("c2", socket.compact_line()),
        None => transcript.say("c2", "the kernel has no socket left for the connection"),
    }

    pause_before("probe", hosts).await;
    let (bind, rebind_after_ms) = match case.rebind_within_s {
        None => (hosts.c2.try_bind(listen_on, case.new_socket()).await?, None),
        Some(window) => {
            // Probe until a little past the window, to tell "late" from "never".
            let deadline = Duration::from_secs_f64(window.to_s + 5.0);
            let rebound = hosts
                .c2
                .probe_rebind(listen_on, case.new_socket(), REBIND_PROBE_EVERY, deadline)
                .await?;
            let when = rebound.after_kill_ms.map_or(
                format!("still busy after {} tries", rebound.attempts),
                |ms| format!("free again {:.2} s after the kill", ms as f64 / 1000.0),
            );
            transcript.say(
                "c2",
                format!(
                    "bind {listen_on} every {} ms: {when}",
                    REBIND_PROBE_EVERY.as_millis()
                ),
            );
            (rebound.last, rebound.after_kill_ms)
        }
    };
    transcript.mark(
        "c2",
        Mark::Probe,
        format!(
            "bind {listen_on} with {}: {}",
            case.new_socket().describe(),
            describe_bind(&bind)
        ),
    );

    Ok(Observation {
        // c1 reading the server's RST is evidence enough that the
        // connection existed and was torn down.
        connection_identified: after.identified || connection.reset,
        connection: after.connection,
        sockets: after.sockets,
        state_waited_ms: after.waited_ms,
        bind,
        old_reuseaddr_reported,
        rebind_after_ms,
        transcript: transcript.0,
        capture: None,
        timings: None,
    })
}

/// `true` from the Java server's `listening 8080 reuse address: true`.
fn reported_reuse_address(banner: &str) -> Option<bool> {
    banner
        .rsplit_once("reuse address: ")
        .and_then(|(_, value)| value.trim().parse().ok())
}
