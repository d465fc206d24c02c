//! The article's scenario: the server answers and closes, the client ends its
//! side as the file says, the server is killed, its orphaned connection is
//! watched on c2, and a new socket tries to bind the port.
//!
//! One function per step, in the order they run; [`drive`] reads like the
//! scenario. Each step talks to the hosts through their agents and writes
//! what it did into the case's transcript.

use std::net::SocketAddr;
use std::time::Duration;

use super::result::{Mark, Observation, RebindTiming, describe_bind};
use super::spec::{CaseSpec, Experiment, ExperimentSpec, Transport};
use super::steps::{Transcript, pause_before, prepare_hosts, unspecified_like};
use crate::lab::LabHostPair;
use crate::lab::error::LabError;
use crate::protocol::{
    BindOutcome, ClientClose, CloseClient, Connect, Connected, KillServer, ProbeRebind, Rebound,
    Serve, ServerOptions, ServerProgram, Serving, SocketOptions, StateObservation, TryBind,
    WaitForState,
};
use crate::tcp_state::SocketState;

/// How often a rebind timeline probes the port.
const REBIND_PROBE_EVERY: Duration = Duration::from_millis(20);

/// One case being driven: what it needs from the experiment, and what it
/// has seen so far.
struct CaseRun<'a> {
    spec: &'a ExperimentSpec,
    case: &'a CaseSpec,
    port: u16,
    within: Duration,
    transcript: Transcript,
}

/// One case of the scenario on `hosts`, the server on `port`.
pub(super) async fn drive(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
) -> Result<Observation, LabError> {
    let spec = &experiment.spec;
    let mut run = CaseRun {
        spec,
        case,
        port,
        within: spec.expect().within_ms.as_duration(),
        transcript: Transcript::default(),
    };
    pause_before("firewall", hosts.c1.interrupt()).await;
    let c1_has_rules = prepare_hosts(experiment, case, port, hosts, &mut run.transcript).await?;
    pause_before("serve", hosts.c1.interrupt()).await;
    let (listen_on, old_reuseaddr_reported) = run.start_server(hosts).await?;
    pause_before("connect", hosts.c1.interrupt()).await;
    let connection = run.connect_client(hosts).await?;
    run.end_client_side(hosts, &connection, c1_has_rules)
        .await?;
    pause_before("kill", hosts.c1.interrupt()).await;
    let after = run.kill_and_watch(hosts, &connection).await?;
    pause_before("probe", hosts.c1.interrupt()).await;
    let (bind, rebind) = run.probe(hosts, listen_on).await?;
    Ok(Observation {
        // c1 reading the server's RST is evidence enough that the
        // connection existed and was torn down.
        connection_identified: after.identified || connection.reset,
        connection: after.connection,
        sockets: after.sockets,
        state_waited_ms: after.waited_ms,
        probe_age_ms: None,
        bind,
        old_reuseaddr_reported,
        rebind,
        transcript: run.transcript.0,
        capture: None,
        timings: None,
    })
}

impl CaseRun<'_> {
    /// Starts the server on c2; returns where it listens and, for Java, the
    /// SO_REUSEADDR it reported.
    async fn start_server(
        &mut self,
        hosts: &mut LabHostPair,
    ) -> Result<(SocketAddr, Option<bool>), LabError> {
        let (spec, case) = (self.spec, self.case);
        // The article's server binds the wildcard address, as Java's
        // `new InetSocketAddress(8080)` does, unless the case says otherwise.
        let address = case.old_bind.map_or(unspecified_like(hosts.link.c2), |b| {
            b.resolve(hosts.link.c2)
        });
        let listen_on = SocketAddr::new(address, self.port);
        let old = case.old_socket(spec.protocol);
        let server = ServerOptions {
            program: spec.server.program,
            bind: listen_on,
            reuse: old,
            linger_zero: spec.server.linger_zero,
            greeting: spec.server.greeting.as_str().to_string(),
            close_after_client: false,
            jvm_default_reuse: case.old_jvm_default,
            linger2_s: case.linger2_s.map(|l| l.0),
        };
        let Serving { pid, banner } = hosts.c2.call(Serve { server }).await?;
        let said = match spec.server.program {
            ServerProgram::Tcplab => {
                let linger = if spec.server.linger_zero {
                    ", SO_LINGER 0"
                } else {
                    ""
                };
                let linger2 = case
                    .linger2_s
                    .map_or(String::new(), |l| format!(", TCP_LINGER2 {} s", l.0));
                let describe = old.describe();
                format!(
                    "tcplab serve listens on {listen_on} with {describe}{linger}{linger2} (pid {pid})"
                )
            }
            ServerProgram::Java => {
                let call = if case.old_jvm_default {
                    "no setReuseAddress call".to_string()
                } else {
                    format!("setReuseAddress({})", case.old_reuseaddr)
                };
                format!("java ReuseAddress, {call}: \"{banner}\" (pid {pid})")
            }
        };
        self.transcript.say("c2", said);
        Ok((listen_on, reported_reuse_address(&banner)))
    }

    /// c1 connects to the server and reads its greeting and FIN (or RST).
    async fn connect_client(&mut self, hosts: &mut LabHostPair) -> Result<Connected, LabError> {
        let server = SocketAddr::new(hosts.link.c2, self.port);
        // A plain client, of the experiment's protocol.
        let client = SocketOptions {
            mptcp: self.spec.protocol == Transport::Mptcp,
            ..SocketOptions::default()
        };
        let connection = hosts
            .c1
            .call(Connect {
                server,
                close: self.spec.client().close,
                local_port: None,
                reuse: client,
            })
            .await?;
        let ending = if connection.reset { "RST" } else { "FIN" };
        self.transcript.say(
            "c1",
            format!(
                "connect {server} from {}, read {:?} and {ending}",
                connection.local, connection.greeting
            ),
        );
        Ok(connection)
    }

    /// c1 ends its side as the file says.
    async fn end_client_side(
        &mut self,
        hosts: &mut LabHostPair,
        connection: &Connected,
        c1_has_rules: bool,
    ) -> Result<(), LabError> {
        match self.spec.client().close {
            // A reset connection is gone on both sides: nothing to close.
            _ if connection.reset => {}
            ClientClose::AfterAck => {
                self.close_after_ack(hosts, connection, c1_has_rules)
                    .await?
            }
            ClientClose::Immediately | ClientClose::First => {
                self.transcript
                    .say("c1", "closed at once on EOF: the ACK rides on c1's FIN");
            }
            ClientClose::Never => self.transcript.say("c1", "keeps the connection open"),
        }
        Ok(())
    }

    /// Closes the client only once c2 has the ACK of its FIN: observed, not
    /// slept for.
    async fn close_after_ack(
        &mut self,
        hosts: &mut LabHostPair,
        connection: &Connected,
        c1_has_rules: bool,
    ) -> Result<(), LabError> {
        let acked = hosts
            .c2
            .call(WaitForState::within(
                self.port,
                connection.local,
                Some(SocketState::FinWait2),
                self.within,
            ))
            .await?;
        let said = if acked.reached {
            format!(
                "FIN_WAIT2 after {} ms: c1 ACKed the server's FIN",
                acked.waited_ms
            )
        } else {
            let seen = acked
                .connection
                .as_ref()
                .map_or("no socket".to_string(), |c| c.state.to_string());
            format!(
                "never reached FIN_WAIT2 within {} ms (saw {seen})",
                acked.waited_ms
            )
        };
        self.transcript.say("c2", said);
        hosts.c1.call(CloseClient {}).await?;
        if c1_has_rules {
            self.transcript.mark(
                "c1",
                Mark::FinDropped,
                "close(): c1 sends its FIN, into the firewall rule above",
            );
        } else {
            self.transcript
                .mark("c1", Mark::Close, "close(): c1 sends its FIN");
        }
        Ok(())
    }

    /// Kills the server and waits for its orphaned connection's state on c2.
    async fn kill_and_watch(
        &mut self,
        hosts: &mut LabHostPair,
        connection: &Connected,
    ) -> Result<StateObservation, LabError> {
        let kill = self.spec.server.kill;
        let killed = hosts.c2.call(KillServer { signal: kill }).await?.pid;
        self.transcript
            .mark("c2", Mark::Kill, format!("kill -{} {killed}", kill.name()));
        let expected = self.case.expected_state(self.spec).0;
        let after = hosts
            .c2
            .call(WaitForState::within(
                self.port,
                connection.local,
                expected,
                self.within,
            ))
            .await?;
        match &after.connection {
            Some(socket) => self.transcript.say("c2", socket.compact_line()),
            None => self
                .transcript
                .say("c2", "the kernel has no socket left for the connection"),
        }
        Ok(after)
    }

    /// A new socket tries the port: once, or (with a rebind window) again
    /// and again until it works.
    async fn probe(
        &mut self,
        hosts: &mut LabHostPair,
        listen_on: SocketAddr,
    ) -> Result<(BindOutcome, Option<RebindTiming>), LabError> {
        let new = self.case.new_socket(self.spec.protocol);
        let address = self.case.new_bind.map_or(listen_on, |b| {
            SocketAddr::new(b.resolve(hosts.link.c2), self.port)
        });
        let (bind, rebind) = match self.case.rebind_within_s {
            None => {
                let probe = TryBind {
                    address,
                    reuse: new,
                };
                (hosts.c2.call(probe).await?.outcome, None)
            }
            Some(window) => {
                // Probe until a little past the window, to tell "late" from "never".
                let deadline = Duration::from_secs_f64(window.to_s + 5.0);
                let rebound = hosts
                    .c2
                    .call(ProbeRebind::every(
                        address,
                        new,
                        REBIND_PROBE_EVERY,
                        deadline,
                    ))
                    .await?;
                let every = REBIND_PROBE_EVERY.as_millis();
                self.transcript.say(
                    "c2",
                    format!(
                        "bind {address} every {every} ms: {}",
                        describe_rebound(&rebound)
                    ),
                );
                let timing = RebindTiming {
                    after_state_ms: rebound.after_state_ms,
                    after_kill_ms: rebound.after_kill_ms,
                };
                (rebound.last, Some(timing))
            }
        };
        self.transcript.mark(
            "c2",
            Mark::Probe,
            format!(
                "bind {address} with {}: {}",
                new.describe(),
                describe_bind(&bind)
            ),
        );
        Ok((bind, rebind))
    }
}

/// `free again 6.02 s after c2 first saw it in FIN_WAIT2 (5.61 s after the kill)`.
fn describe_rebound(rebound: &Rebound) -> String {
    let seconds = |ms: u64| format!("{:.2} s", ms as f64 / 1000.0);
    match (rebound.after_state_ms, rebound.state, rebound.after_kill_ms) {
        (Some(state_ms), Some(_), Some(kill_ms)) if rebound.from_close => format!(
            "free again {} after the server's close() ({} after the kill)",
            seconds(state_ms),
            seconds(kill_ms)
        ),
        (Some(state_ms), Some(state), Some(kill_ms)) => format!(
            "free again {} after c2 first saw it in {state} ({} after the kill)",
            seconds(state_ms),
            seconds(kill_ms)
        ),
        (_, _, Some(kill_ms)) => format!("free again {} after the kill", seconds(kill_ms)),
        _ => format!("still busy after {} tries", rebound.attempts),
    }
}

/// `true` from the Java server's `listening 8080 reuse address: true`.
fn reported_reuse_address(banner: &str) -> Option<bool> {
    banner
        .rsplit_once("reuse address: ")
        .and_then(|(_, value)| value.trim().parse().ok())
}
