//! Runs an experiment: every case of the rebind matrix, each step observed
//! on the kernel.
//!
//! On the netns lab every case gets fresh hosts and all run at once; on real
//! hosts (ssh, Vagrant) the cases share one pair and run in turn.
//!
//! One case, in the article's order: firewall rules on the hosts, the server on
//! c2, the client on c1 reads the greeting and ends its side as the file says,
//! the server is killed, c2's sock_diag is polled until the connection shows
//! the expected state (or the wait runs out and the state seen is reported),
//! and a new socket tries to bind the port.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::result::{
    CaseCapture, CaseResult, ExperimentResult, Mark, Observation, PhaseTimings, TranscriptLine,
    describe_bind,
};
use super::spec::{CaseSpec, Experiment, ExperimentSpec, Probe, Scenario};
use crate::agent::capture::{CaptureRecord, monotonic_us};
use crate::agent::protocol::{ClientClose, ReuseOptions, ServerOptions, ServerProgram};
use crate::agent::server::java_available;
use crate::interrupt::Interrupt;
use crate::lab::error::LabError;
use crate::lab::{CaseIsolation, Lab, LabHostPair, LabInfo};
use crate::tcp_state::SocketState;

/// How often a rebind timeline probes the port.
const REBIND_PROBE_EVERY: Duration = Duration::from_millis(20);

/// Where progress lines go (stderr, or nowhere with `--quiet`).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Runs several experiments: at once on the netns lab (every case has hosts
/// of its own anyway), one after the other on shared real hosts. Each
/// experiment's progress lines carry its name.
pub async fn run_many(
    experiments: &[Experiment],
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<Vec<ExperimentResult>, LabError> {
    let named = |experiment: &Experiment| {
        let name = experiment.name.clone();
        move |line: &str| {
            if experiments.len() > 1 {
                progress(&format!("{name} {line}"));
            } else {
                progress(line);
            }
        }
    };
    match lab.isolation() {
        CaseIsolation::FreshHosts => {
            let runs = experiments.iter().map(|experiment| async move {
                let progress = named(experiment);
                run(experiment, lab, interrupt, &progress).await
            });
            all_or_cause(futures::future::join_all(runs).await)
        }
        CaseIsolation::SharedHosts => {
            let mut results = Vec::with_capacity(experiments.len());
            for experiment in experiments {
                let progress = named(experiment);
                results.push(run(experiment, lab, interrupt, &progress).await?);
            }
            Ok(results)
        }
    }
}

/// Runs every case of `experiment` on `lab`.
pub async fn run(
    experiment: &Experiment,
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<ExperimentResult, LabError> {
    let started = Instant::now();
    if let Some(reason) = missing_requirement(experiment, lab) {
        return Ok(ExperimentResult {
            experiment: experiment.name.clone(),
            title: experiment.spec.title.to_string(),
            article: experiment.spec.article.as_ref().map(ToString::to_string),
            lab: lab.describe(),
            watched_host: watched_host(experiment),
            skipped: Some(reason),
            passed: true,
            duration_ms: 0,
            cases: Vec::new(),
        });
    }
    let outcome = match lab.isolation() {
        CaseIsolation::FreshHosts => run_cases_at_once(experiment, lab, interrupt, progress).await,
        CaseIsolation::SharedHosts => run_cases_in_turn(experiment, lab, interrupt, progress).await,
    };
    if let Some(signal) = interrupt.signal() {
        return Err(LabError::Interrupted(signal));
    }
    let (info, cases) = outcome?;
    Ok(ExperimentResult {
        experiment: experiment.name.clone(),
        title: experiment.spec.title.to_string(),
        article: experiment.spec.article.as_ref().map(ToString::to_string),
        lab: info,
        watched_host: watched_host(experiment),
        skipped: None,
        passed: cases.iter().all(|c| c.passed),
        duration_ms: started.elapsed().as_millis() as u64,
        cases,
    })
}

fn watched_host(experiment: &Experiment) -> &'static str {
    match experiment.spec.scenario {
        Scenario::ServerRestart => "c2",
        Scenario::ClientPort => "c1",
    }
}

/// Every result, or the error that ended the run: a case that failed makes
/// the others stop with `Interrupted(0)`, which is not what to report.
fn all_or_cause<T>(results: Vec<Result<T, LabError>>) -> Result<Vec<T>, LabError> {
    let mut values = Vec::with_capacity(results.len());
    let mut stopped = None;
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(LabError::Interrupted(0)) => {
                stopped.get_or_insert(LabError::Interrupted(0));
            }
            Err(error) => return Err(error),
        }
    }
    stopped.map_or(Ok(values), Err)
}

/// Why `experiment` cannot run here, if it cannot: the `java` experiment
/// needs a JDK on c2, which for the netns lab is this machine. (On real hosts
/// the agent reports a missing JDK itself.)
fn missing_requirement(experiment: &Experiment, lab: &Lab) -> Option<String> {
    let needs_java = experiment.spec.server.program == ServerProgram::Java;
    (needs_java && lab.isolation() == CaseIsolation::FreshHosts && !java_available()).then(|| {
        "no JDK on this machine (`java` is not in PATH); install one, e.g. \
         apt-get install default-jdk-headless"
            .to_string()
    })
}

/// Every case on its own fresh hosts, all at once (netns lab).
async fn run_cases_at_once(
    experiment: &Experiment,
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<(LabInfo, Vec<CaseResult>), LabError> {
    let total = experiment.spec.cases.len();
    let port = experiment.spec.port.get();
    let runs = experiment
        .spec
        .cases
        .iter()
        .enumerate()
        .map(|(index, case)| async move {
            let started = Instant::now();
            let mut hosts = lab.start(interrupt).await?;
            let up = started.elapsed();
            let record = experiment.record_first_case && index == 0;
            let observed = drive_case(experiment, case, port, &mut hosts, record).await;
            let driven = started.elapsed();
            let info = hosts.info.clone();
            let shutdown = hosts.shutdown().await;
            if let Err(error) = observed
                .as_ref()
                .map(|_| ())
                .and(shutdown.as_ref().map(|_| ()))
            {
                // This case cannot finish, so the run will end with its error:
                // the other cases need not wait out their steps.
                if !matches!(error, LabError::Interrupted(_)) {
                    interrupt.abort();
                }
            }
            let mut observation = observed?;
            shutdown?;
            observation.timings = Some(PhaseTimings::measure(up, driven, started.elapsed()));
            let result = judge(experiment, case, observation, started);
            progress(&progress_line(index + 1, total, &result));
            Ok::<_, LabError>((info, result))
        });
    let results = all_or_cause(futures::future::join_all(runs).await)?;
    let mut info = None;
    let mut cases = Vec::with_capacity(total);
    for (case_info, case) in results {
        info.get_or_insert(case_info);
        cases.push(case);
    }
    let info = info.ok_or_else(|| LabError::Setup("the experiment has no cases".into()))?;
    Ok((info, cases))
}

/// All cases on one pair of real hosts, one after the other, each on a port
/// that no socket on c2 uses (ssh and Vagrant labs). A port still held by an
/// earlier case's (or run's) orphaned connection would decide the bind
/// before the experiment does.
async fn run_cases_in_turn(
    experiment: &Experiment,
    lab: &Lab,
    interrupt: &Interrupt,
    progress: Progress<'_>,
) -> Result<(LabInfo, Vec<CaseResult>), LabError> {
    let mut hosts = lab.start(interrupt).await?;
    let cases = run_in_turn_on(experiment, &mut hosts, progress).await;
    let info = hosts.info.clone();
    let shutdown = hosts.shutdown().await;
    let cases = cases?;
    shutdown?;
    Ok((info, cases))
}

async fn run_in_turn_on(
    experiment: &Experiment,
    hosts: &mut LabHostPair,
    progress: Progress<'_>,
) -> Result<Vec<CaseResult>, LabError> {
    let total = experiment.spec.cases.len();
    let wanted = u16::try_from(total).unwrap_or(u16::MAX);
    let ports = hosts
        .c2
        .free_ports(experiment.spec.port.get(), wanted)
        .await?;
    if ports.len() < total {
        return Err(LabError::Step {
            host: "c2".to_string(),
            step: "find free ports".to_string(),
            message: format!(
                "only {} free ports from {} up",
                ports.len(),
                experiment.spec.port
            ),
        });
    }
    let mut cases = Vec::with_capacity(total);
    for (index, (case, port)) in experiment.spec.cases.iter().zip(ports).enumerate() {
        let started = Instant::now();
        let record = experiment.record_first_case && index == 0;
        let observed = drive_case(experiment, case, port, hosts, record).await;
        let ended = hosts.end_case().await;
        let observation = observed?;
        ended?;
        let result = judge(experiment, case, observation, started);
        progress(&progress_line(index + 1, total, &result));
        cases.push(result);
    }
    Ok(cases)
}

fn judge(
    experiment: &Experiment,
    case: &CaseSpec,
    observation: Observation,
    started: Instant,
) -> CaseResult {
    CaseResult::judge(
        case,
        case.expected_state(&experiment.spec),
        observation,
        started.elapsed().as_millis() as u64,
    )
}

fn progress_line(number: usize, total: usize, case: &CaseResult) -> String {
    let state = case
        .state_after_kill
        .map_or("no socket".to_string(), |s| s.to_string());
    format!(
        "[{number}/{total}] {}: {state}, bind {} ({}, {} ms)",
        case.label(),
        case.bind,
        if case.passed {
            "as expected"
        } else {
            "NOT as expected"
        },
        case.duration_ms
    )
}

/// Collects what one case does and sees, host by host.
#[derive(Default)]
struct Transcript(Vec<TranscriptLine>);

impl Transcript {
    fn say(&mut self, host: &str, text: impl Into<String>) {
        self.push(host, text.into(), None);
    }

    /// A line the report's picture marks on the host's lifeline.
    fn mark(&mut self, host: &str, mark: Mark, text: impl Into<String>) {
        self.push(host, text.into(), Some(mark));
    }

    fn push(&mut self, host: &str, text: String, mark: Option<Mark>) {
        self.0.push(TranscriptLine {
            host: host.to_string(),
            text,
            t_us: monotonic_us(),
            mark,
        });
    }
}

/// One case on `hosts`, with the server on `port` (the experiment's own port,
/// or a free one on shared hosts: rules naming the experiment's port follow).
/// With `record`, both hosts capture packets and sample states meanwhile.
async fn drive_case(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
    record: bool,
) -> Result<Observation, LabError> {
    let c1_address = hosts.link.c1;
    if record {
        if let Some(address) = c1_address {
            hosts.c1.start_capture(address, port).await?;
        }
        let c2_address = hosts.link.c2;
        hosts.c2.start_capture(c2_address, port).await?;
    }
    let mut observation = match experiment.spec.scenario {
        Scenario::ServerRestart => drive_server_restart(experiment, case, port, hosts).await?,
        Scenario::ClientPort => drive_client_port(experiment, case, port, hosts).await?,
    };
    if record {
        let c1 = match c1_address {
            Some(_) => hosts.c1.stop_capture().await?,
            None => CaptureRecord::default(),
        };
        let c2 = hosts.c2.stop_capture().await?;
        observation.capture = Some(CaseCapture { c1, c2 });
    }
    Ok(observation)
}

/// Kernel settings and firewall rules of the case, on both hosts. Returns
/// whether c1 got any rule.
async fn prepare_hosts(
    spec: &ExperimentSpec,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<bool, LabError> {
    let ipv6 = hosts.link.c2.is_ipv6();
    let mut c1_settings = spec.c1.sysctl.settings();
    c1_settings.extend(case.c1_sysctl.settings());
    for (host, settings) in [
        (&mut hosts.c1, c1_settings),
        (&mut hosts.c2, spec.c2.sysctl.settings()),
    ] {
        for (setting, value) in settings {
            host.set_sysctl(setting, value).await?;
            let name = host.host().to_string();
            let text = setting.text_for(value);
            let shown = if text.contains(' ') {
                format!("\"{text}\"")
            } else {
                text
            };
            transcript.say(&name, format!("sysctl -w {}={shown}", setting.name()));
        }
    }
    let no_rules = Vec::new();
    let (c1_rules, c2_rules) = if case.firewall {
        (&spec.c1.firewall, &spec.c2.firewall)
    } else {
        (&no_rules, &no_rules)
    };
    for rule in c1_rules {
        let shown = hosts
            .c1
            .add_firewall_rule(&rule.moved_to(spec.port, port), ipv6)
            .await?;
        transcript.say("c1", shown);
    }
    for rule in c2_rules {
        let shown = hosts
            .c2
            .add_firewall_rule(&rule.moved_to(spec.port, port), ipv6)
            .await?;
        transcript.say("c2", shown);
    }
    Ok(!c1_rules.is_empty())
}

/// The article's 0x04: a client with a fixed local port closes first and
/// is left in TIME_WAIT on c1; can a new socket use that port?
async fn drive_client_port(
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

/// The article's experiment: kill the server, watch its connection on c2,
/// bind its port again.
async fn drive_server_restart(
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

/// A seam for fault-injection tests: with `TCPLAB_PAUSE_BEFORE=STEP`
/// (firewall, serve, connect, kill or probe) every case holds just before
/// that step until SIGUSR1 (go on) or an interrupt, so a test can kill tcplab
/// or one of its agents at that very moment and prove nothing is left.
async fn pause_before(step: &str, hosts: &LabHostPair) {
    if !std::env::var("TCPLAB_PAUSE_BEFORE").is_ok_and(|wanted| wanted == step) {
        return;
    }
    // The handler exists before the line that invites SIGUSR1 is printed.
    let resume = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1());
    let _ = writeln!(
        std::io::stderr(),
        "tcplab: paused before {step} (TCPLAB_PAUSE_BEFORE; SIGUSR1 resumes)"
    );
    match resume {
        Ok(mut resume) => {
            tokio::select! {
                _ = resume.recv() => {}
                _ = hosts.c1.interrupt().cancelled() => {}
            }
        }
        Err(_) => {
            hosts.c1.interrupt().cancelled().await;
        }
    }
}

fn unspecified_like(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}
