//! Reading an experiment file and checking it: [`Experiment::parse`]. The
//! types of `spec` refuse bad values field by field; what needs more than
//! one field (a scenario's own sections, a Java server's limits, firewall
//! rules that stay on the experiment's ports) is checked here, and every
//! error names the file, the line and, where it can, the key.

use super::spec::{
    CaseSpec, Experiment, ExperimentSpec, LiveState, MAX_CASES, Probe, Recording, Scenario,
    default_greeting,
};
use super::spec_values::SpecError;
use crate::protocol::{ClientClose, ServerProgram};

impl Experiment {
    /// Parses and validates `text`; `source` names it in errors.
    pub fn parse(name: &str, source: &str, text: &str) -> Result<Experiment, SpecError> {
        let spec: ExperimentSpec = toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            let (line, column) = line_and_column(text, offset);
            let key = key_at(text, offset)
                .map(|key| format!("key `{key}`: "))
                .unwrap_or_default();
            SpecError {
                file: source.to_string(),
                line,
                column,
                message: format!("{key}{}", error.message().trim_end()),
            }
        })?;
        check_fields_together(&spec).map_err(|problem| problem.located(source, text))?;
        check_rules_stay_on_the_port(&spec, text, source)?;
        if spec.cases.len() > MAX_CASES {
            let message = format!(
                "{} `[[case]]` entries; at most {MAX_CASES} are allowed",
                spec.cases.len()
            );
            return Err(Problem::whole_file(message).located(source, text));
        }
        let sysctl_line = text
            .lines()
            .position(|line| {
                let line = line.trim_start();
                line.starts_with("[c1.sysctl]")
                    || line.starts_with("[c2.sysctl]")
                    || line.starts_with("c1_sysctl")
            })
            .map(|n| n + 1);
        Ok(Experiment {
            name: name.to_string(),
            source: source.to_string(),
            spec,
            recording: Recording::Nothing,
            time_wait_guard: true,
            sysctl_line,
        })
    }
}

/// What is wrong with a file that parses: in one case (from 0), or in the
/// file as a whole.
struct Problem {
    case: Option<usize>,
    message: String,
}

impl Problem {
    fn whole_file(message: impl Into<String>) -> Problem {
        Problem {
            case: None,
            message: message.into(),
        }
    }

    /// A problem of case `n`, which the message names counting from 1.
    fn in_case(n: usize, message: impl std::fmt::Display) -> Problem {
        Problem {
            case: Some(n),
            message: format!("case {}: {message}", n + 1),
        }
    }

    /// The error, at the case's `[[case]]` header or the file's first line.
    fn located(self, source: &str, text: &str) -> SpecError {
        SpecError {
            file: source.to_string(),
            line: self.case.map_or(1, |n| case_header_line(text, n)),
            column: 1,
            message: self.message,
        }
    }
}

/// The first of the checks that need more than one field, in the order a
/// reader of the file meets them.
fn check_fields_together(spec: &ExperimentSpec) -> Result<(), Problem> {
    if spec.cases.is_empty() {
        return Err(Problem::whole_file(
            "no `[[case]]`: give at least one case (old_reuseaddr, new_reuseaddr, bind)",
        ));
    }
    check_server_program(spec)?;
    if spec.scenario == Scenario::LiveSocket {
        check_live_socket(spec)?;
    } else {
        check_connecting_scenario(spec)?;
    }
    check_client_and_probes(spec)
}

/// The article's Java server runs as it is; `old_jvm_default` needs it.
fn check_server_program(spec: &ExperimentSpec) -> Result<(), Problem> {
    if spec.server.program == ServerProgram::Java {
        let unsupported = spec.server.linger_zero
            || spec.server.greeting != default_greeting()
            || spec.cases.iter().any(|c| c.old_reuseport);
        if unsupported {
            return Err(Problem::whole_file(
                "[server] program = \"java\" runs the article's ReuseAddress.java as it is: \
                 no linger_zero, greeting or old_reuseport",
            ));
        }
    } else if spec.cases.iter().any(|c| c.old_jvm_default) {
        return Err(Problem::whole_file(
            "old_jvm_default needs [server] program = \"java\"",
        ));
    }
    Ok(())
}

/// `live_socket` has no connection and no kill: no `[client]`, `[expect]`
/// or rules, and every case says how its old socket is alive.
fn check_live_socket(spec: &ExperimentSpec) -> Result<(), Problem> {
    let rules = !spec.c1.firewall.is_empty() || !spec.c2.firewall.is_empty();
    if spec.client.is_some() || spec.expect.is_some() || rules {
        return Err(Problem::whole_file(
            "scenario = \"live_socket\" has no connection: no [client], [expect] \
             or firewall rules",
        ));
    }
    let connects = |c: &CaseSpec| {
        c.probe == Probe::ConnectEphemeral
            || c.also_held.iter().any(|h| h.state == LiveState::Connected)
    };
    let disconnects_unconnected = |c: &CaseSpec| {
        c.also_held
            .iter()
            .any(|h| h.disconnected && h.state != LiveState::Connected)
    };
    let most = crate::protocol::MAX_HELD - 1;
    for (n, case) in spec.cases.iter().enumerate() {
        let problem = if case.old_state.is_none() {
            "scenario = \"live_socket\" needs old_state = \"bound\" or \"listening\"".into()
        } else if connects(case) && case.old_state != Some(LiveState::Listening) {
            "a socket that connects connects to the old one: give old_state = \"listening\"".into()
        } else if disconnects_unconnected(case) {
            "only a socket with state = \"connected\" can be disconnected".into()
        } else if case.old_state == Some(LiveState::Connected) {
            "old_state is \"bound\" or \"listening\"; \"connected\" is for also_held".into()
        } else if case.also_held.len() > most {
            format!("also_held holds at most {most} sockets")
        } else {
            continue;
        };
        return Err(Problem::in_case(n, problem));
    }
    Ok(())
}

/// The scenarios with a connection and a kill need `[client]` and
/// `[expect]`, have no live-socket fields, and never put the killed server
/// on loopback, where c1 cannot reach it.
fn check_connecting_scenario(spec: &ExperimentSpec) -> Result<(), Problem> {
    if spec.client.is_none() || spec.expect.is_none() {
        return Err(Problem::whole_file(
            "missing [client] or [expect]: every scenario but \"live_socket\" connects, \
             and expects a state after the kill",
        ));
    }
    for (n, case) in spec.cases.iter().enumerate() {
        if case.old_state.is_some() || !case.also_held.is_empty() {
            return Err(Problem::in_case(
                n,
                "old_state and also_held need scenario = \"live_socket\"",
            ));
        }
        if let Some(bind) = case.old_bind.filter(|b| b.is_loopback()) {
            return Err(Problem::in_case(
                n,
                format!(
                    "key `old_bind`: c1 cannot reach a server on {bind}: the killed \
                     server binds \"0.0.0.0\", \"::\", \"::ffff:0.0.0.0\" or \"c2\""
                ),
            ));
        }
    }
    Ok(())
}

/// `client_port` and the client that closes first go together; connect
/// probes belong to the scenarios that can make them.
fn check_client_and_probes(spec: &ExperimentSpec) -> Result<(), Problem> {
    let client_port = spec.scenario == Scenario::ClientPort;
    let closes_first = spec.client().close == ClientClose::First;
    if client_port && (spec.client().local_port.is_none() || !closes_first) {
        return Err(Problem::whole_file(
            "scenario = \"client_port\" needs [client] local_port and close = \"first\"",
        ));
    }
    if !client_port && closes_first {
        return Err(Problem::whole_file(
            "close = \"first\" needs scenario = \"client_port\" (the server closes first otherwise)",
        ));
    }
    let live = spec.scenario == Scenario::LiveSocket;
    let probe_allowed = |c: &CaseSpec| {
        c.probe == Probe::Bind || client_port || (live && c.probe == Probe::ConnectEphemeral)
    };
    if !spec.cases.iter().all(probe_allowed) {
        return Err(Problem::whole_file(
            "connect probes need scenario = \"client_port\" (or, for \
             connect_ephemeral, \"live_socket\")",
        ));
    }
    let aimed_and_waited =
        |c: &CaseSpec| c.probe == Probe::ConnectYoungTimeWait && c.probe_after_ms.is_some();
    match spec.cases.iter().position(aimed_and_waited) {
        Some(n) => Err(Problem::in_case(
            n,
            "probe = \"connect_young_time_wait\" picks its own moment; drop probe_after_ms",
        )),
        None => Ok(()),
    }
}

/// The line of the `n`th (from 0) `[[case]]` header in `text`.
fn case_header_line(text: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with("[[case]]"))
        .nth(n)
        .map_or(1, |(number, _)| number + 1)
}

/// "A file that parses is safe to run": a rule that matches no port of the
/// experiment would drop or reject a real host's other traffic (a bare
/// `INPUT DROP` cuts an ssh host off). Every rule must match the server's
/// port, or the client's own port in the client_port scenario, as its
/// source or destination.
fn check_rules_stay_on_the_port(
    spec: &ExperimentSpec,
    text: &str,
    source: &str,
) -> Result<(), SpecError> {
    let own = [Some(spec.port), spec.client().local_port];
    for (host, rules) in [("c1", &spec.c1.firewall), ("c2", &spec.c2.firewall)] {
        let header = format!("[[{host}.firewall]]");
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.trim_start().starts_with(&header))
            .map(|(n, _)| n + 1)
            .collect();
        for (n, rule) in rules.iter().enumerate() {
            let matches_own = [rule.sport, rule.dport]
                .iter()
                .any(|port| port.is_some() && own.contains(port));
            if !matches_own {
                return Err(SpecError {
                    file: source.to_string(),
                    line: lines.get(n).copied().unwrap_or(1),
                    column: 1,
                    message: format!(
                        "{header} number {}: a rule must match the experiment's port {} \
                         (sport or dport); one without it would reach the host's other traffic",
                        n + 1,
                        spec.port
                    ),
                });
            }
        }
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key assigned on the line holding `offset` (`port = 0` → `port`).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c));
    plain.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YOUNG: &str = r#"
title = "t"
teaches = "t"
port = 8080
scenario = "client_port"
[client]
close = "first"
local_port = 40000
[expect]
state_after_kill = "TIME_WAIT"
[[case]]
probe = "connect_young_time_wait"
client_bind = false
old_reuseaddr = false
new_reuseaddr = false
bind = "EADDRNOTAVAIL"
"#;

    #[test]
    fn a_young_time_wait_probe_picks_its_own_moment() {
        assert!(Experiment::parse("x", "x.toml", YOUNG).is_ok());
        let waited = YOUNG.replace(
            "client_bind = false",
            "client_bind = false\nprobe_after_ms = 1100",
        );
        let error = Experiment::parse("x", "x.toml", &waited).unwrap_err();
        assert_eq!(error.file, "x.toml");
        // The line of the case's `[[case]]` header, where the fix goes.
        let header = waited.lines().position(|l| l == "[[case]]").unwrap() + 1;
        assert_eq!(error.line, header, "{error}");
        assert!(
            error.message.contains("case 1") && error.message.contains("probe_after_ms"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod live_tests {
    use super::*;

    const LIVE: &str = r#"
title = "t"
teaches = "t"
port = 8084
scenario = "live_socket"
[[case]]
old_state = "listening"
old_bind = "127.0.0.1"
also_held = [{ bind = "127.1.1.1", port = 0, state = "connected", disconnected = true }]
probe = "connect_ephemeral"
new_bind = "127.2.2.2"
old_reuseaddr = false
new_reuseaddr = false
bind = "EADDRNOTAVAIL"
"#;

    #[test]
    fn only_a_connected_socket_can_be_disconnected() {
        assert!(Experiment::parse("x", "x.toml", LIVE).is_ok());
        let bound = LIVE.replace("state = \"connected\"", "state = \"bound\"");
        let error = Experiment::parse("x", "x.toml", &bound).unwrap_err();
        assert!(
            error.message.contains("case 1") && error.message.contains("disconnected"),
            "{error}"
        );
    }
}
