//! Fault injection: tcplab killed at every step, agents that die or hang,
//! runs side by side, and hostile experiment files and protocol lines. After
//! each fault: the right exit code and message, and nothing left anywhere.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::child_stderr::{rest_of, stderr_lines, wait_for_line};
use common::{
    HostSnapshot, KillOnPanic, assert_nothing_left, fixture, json_of, new_marker,
    processes_with_marker, signal, tcplab, tcplab_process,
};

/// How long a netns run may take to reach a line a test waits for.
const LINE_PATIENCE: Duration = Duration::from_secs(20);

/// Waits until every one of `cases` cases has printed a line with `text`.
fn wait_for_every_case(lines: &mpsc::Receiver<String>, text: &str, cases: usize) {
    for _ in 0..cases {
        wait_for_line(lines, text, LINE_PATIENCE);
    }
}

/// Starts `tcplab ARGS` with `env`, stderr piped.
fn start(
    marker: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>, KillOnPanic) {
    let mut command = tcplab_process(marker);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let lines = stderr_lines(child.stderr.take().unwrap());
    let guard = KillOnPanic(child.id());
    (child, lines, guard)
}

/// The agents of a run, with the c1 agent (the one whose namespace holds
/// the FIN-drop rule) first.
fn agents(marker: &str) -> Vec<u32> {
    let mut agents = processes_running(marker, "agent");
    agents.sort_by_key(|pid| {
        let rules = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["iptables", "-S"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("tcplab agent"))
            .unwrap_or(false);
        !rules
    });
    agents
}

#[test]
fn kill_9_at_every_step_leaves_nothing_and_the_next_run_passes() {
    let before = HostSnapshot::take();
    for step in ["firewall", "serve", "connect", "kill", "probe"] {
        let marker = new_marker();
        let (mut child, lines, _guard) = start(
            &marker,
            &["fin-wait2", "-q"],
            &[("TCPLAB_PAUSE_BEFORE", step)],
        );
        wait_for_line(&lines, &format!("paused before {step}"), LINE_PATIENCE);
        assert!(!processes_with_marker(&marker).is_empty());
        signal(child.id(), libc::SIGKILL);
        child.wait().unwrap();
        assert_nothing_left(&marker, &before);
    }
    let marker = new_marker();
    tcplab(&marker).args(["fin-wait2", "-q"]).assert().code(0);
    assert_nothing_left(&marker, &before);
}

/// The processes of a run whose command line contains `text`.
fn processes_running(marker: &str, text: &str) -> Vec<u32> {
    processes_with_marker(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(text))
                .unwrap_or(false)
        })
        .collect()
}

/// The parent of `pid`, from /proc/PID/stat (the field after the
/// parenthesised name, which may itself hold spaces).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

#[test]
fn every_agent_holds_one_spare_server_and_kill_9_takes_them_all() {
    // A case's server is a `tcplab serve` its agent started ahead of time:
    // one waits in each agent before the first server is asked for, and
    // killing the orchestrator leaves none of them behind.
    let before = HostSnapshot::take();
    let marker = new_marker();
    let (mut child, lines, _guard) = start(
        &marker,
        &["fin-wait2", "-q"],
        &[("TCPLAB_PAUSE_BEFORE", "serve")],
    );
    // fin-wait2's four cases, each with its own two agents, all held there.
    wait_for_every_case(&lines, "paused before serve", 4);
    // `tcplab agent …` itself, not a program whose arguments mention it
    // (iptables' rule comment does).
    let mut agents: Vec<u32> = processes_with_marker(&marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(&b"agent"[..]))
        })
        .collect();
    let spares = processes_running(&marker, "--options-from-stdin");
    assert!(!agents.is_empty());
    let mut parents: Vec<u32> = spares.iter().filter_map(|pid| parent_of(*pid)).collect();
    parents.sort();
    agents.sort();
    assert_eq!(parents, agents, "one spare per agent: spares {spares:?}");
    signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    assert_nothing_left(&marker, &before);
}

#[test]
fn kill_9_during_the_rebind_probe_leaves_nothing() {
    // The timeline fixture probes bind for about two seconds after the kill.
    let before = HostSnapshot::take();
    let marker = new_marker();
    let file = fixture("fin-wait2-timeline.toml");
    let (mut child, lines, _guard) = start(
        &marker,
        &["run", file.to_str().unwrap(), "-q"],
        &[("TCPLAB_PAUSE_BEFORE", "probe")],
    );
    wait_for_line(&lines, "paused before probe", LINE_PATIENCE);
    signal(child.id(), libc::SIGUSR1); // go on: the probe starts
    std::thread::sleep(Duration::from_millis(700));
    assert!(child.try_wait().unwrap().is_none(), "still probing");
    signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    assert_nothing_left(&marker, &before);
}

#[test]
fn an_agent_that_dies_is_named_at_once_and_the_other_host_is_cleaned() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let file = fixture("waits-forever.toml");
    let (child, lines, _guard) = start(
        &marker,
        &["run", file.to_str().unwrap(), "-q"],
        &[("TCPLAB_PAUSE_BEFORE", "kill")],
    );
    // Both cases hold there, their rules in place: c1 agents are told apart
    // from c2 agents by those rules.
    wait_for_every_case(&lines, "paused before kill", 2);
    let agents = agents(&marker);
    assert_eq!(agents.len(), 4, "two cases, two agents each");
    let started = Instant::now();
    signal(agents[0], libc::SIGKILL); // a c1 agent
    signal(child.id(), libc::SIGUSR1);
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited for the 60 s wait"
    );
    assert_eq!(output.status.code(), Some(3));
    let said = rest_of(&lines);
    assert!(said.contains("c1: the agent went away"), "{said}");
    assert_nothing_left(&marker, &before);
}

#[test]
fn a_hung_agent_is_named_within_the_deadline_and_everything_is_cleaned() {
    let before = HostSnapshot::take();
    let marker = new_marker();
    let (child, lines, _guard) = start(
        &marker,
        &["fin-wait2", "-q"],
        &[
            ("TCPLAB_PAUSE_BEFORE", "connect"),
            ("TCPLAB_AGENT_TIMEOUT_MS", "1500"),
        ],
    );
    wait_for_every_case(&lines, "paused before connect", 4);
    for agent in agents(&marker).iter().take(1) {
        signal(*agent, libc::SIGSTOP); // one c1 agent hangs
    }
    let started = Instant::now();
    signal(child.id(), libc::SIGUSR1);
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(3));
    let said = rest_of(&lines);
    assert!(
        said.contains("c1: no answer to 'connect' within 1 s"),
        "{said}"
    );
    assert_nothing_left(&marker, &before);
}

#[test]
fn four_runs_at_once_all_pass_and_see_only_their_own_sockets() {
    let before = HostSnapshot::take();
    let markers: Vec<String> = (0..4).map(|_| new_marker()).collect();
    let runs: Vec<Child> = markers
        .iter()
        .map(|marker| {
            tcplab_process(marker)
                .args(["fin-wait2", "--json", "-q"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        for case in json_of(&output)["cases"].as_array().unwrap() {
            // The port's only socket is this case's own connection.
            let sockets = case["sockets"].as_array().unwrap();
            assert_eq!(sockets.len(), 1, "{case:#}");
            assert_eq!(sockets[0], case["connection"]);
        }
    }
    for marker in &markers {
        assert_nothing_left(marker, &before);
    }
}

#[test]
fn hostile_experiment_files_are_refused_with_file_line_and_key() {
    let corpus = [
        ("wrong-type.toml", 3, "port"),
        ("huge-number.toml", 3, "port"),
        ("port-zero.toml", 3, "port"),
        ("port-65536.toml", 3, "port"),
        ("port-negative.toml", 3, "port"),
        ("path-outside.toml", 4, "unknown field `include`"),
        ("other-table.toml", 5, "unknown field `table`"),
        ("other-chain.toml", 5, "POSTROUTING"),
        ("target-injection.toml", 6, "ACCEPT; iptables -F"),
        ("port-injection.toml", 6, "dport"),
        ("sysctl-range.toml", 5, "tcp_fin_timeout"),
        ("sysctl-unknown.toml", 5, "kernel_core_pattern"),
        ("empty-greeting.toml", 5, "greeting"),
        ("title-newline.toml", 1, "one line"),
        ("broken-syntax.toml", 1, "title"),
        ("bind-injection.toml", 11, "rm -rf"),
        ("close-injection.toml", 5, "$(reboot)"),
    ];
    let before = HostSnapshot::take();
    for (file, line, mentions) in corpus {
        let path = fixture(&format!("hostile/{file}"));
        let path = path.to_str().unwrap();
        let marker = new_marker();
        let output = tcplab(&marker).args(["run", path, "-q"]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{file}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("{path}:{line}:")),
            "{file}: {stderr}"
        );
        assert!(stderr.contains(mentions), "{file}: {stderr}");
        assert!(output.stdout.is_empty());
        // Refused before any host was started.
        assert_nothing_left(&marker, &before);
    }
}

#[test]
fn shell_metacharacters_travel_as_bytes_and_run_nowhere() {
    let file = fixture("hostile/metacharacters-are-data.toml");
    let output = tcplab(&new_marker())
        .args(["run", file.to_str().unwrap(), "--json", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    for name in ["title", "teaches", "greeting"] {
        let marker = format!("/tmp/pwned-by-{name}");
        assert!(
            !Path::new(&marker).exists(),
            "{marker} was created: a shell ran"
        );
    }
    let document = json_of(&output);
    let read = document["cases"][0]["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| {
            l["text"]
                .as_str()
                .unwrap()
                .contains("$(touch /tmp/pwned-by-greeting)")
        });
    assert!(
        read,
        "the client read the greeting byte for byte: {document:#}"
    );
}

#[test]
fn malformed_protocol_lines_get_error_replies_and_the_agent_stays_up() {
    let mut agent = Command::new(common::tcplab_path())
        .args(["agent", "--unshare-net"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = agent.stdin.take().unwrap();
    let mut replies = BufReader::new(agent.stdout.take().unwrap()).lines();
    let hostile = common::hostile_protocol_lines();
    for line in &hostile {
        writeln!(input, "{line}").unwrap();
        let reply = replies.next().unwrap().unwrap();
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["reply"], "error", "{line:.60}: {reply}");
    }
    writeln!(input, "{{\"op\":\"hello\"}}").unwrap();
    let reply: serde_json::Value = serde_json::from_str(&replies.next().unwrap().unwrap()).unwrap();
    assert_eq!(reply["reply"], "hello");
    drop(input);
    assert!(agent.wait().unwrap().success());
}

use std::path::Path;
