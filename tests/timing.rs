//! Verdicts that must not depend on timing: the bad timing a loaded machine
//! makes now and then, made on purpose.
//!
//! The race: c1 closes first and sits in TIME_WAIT; its last ACK is late by
//! more than c2's retransmission timeout (200 ms), so c2 sends its FIN
//! again, c1 acknowledges that one, and c2 closes. When the late ACK arrives
//! c2 has only its listener left, which answers with RST. With the kernel's
//! default `tcp_rfc1337=0` that RST ends c1's TIME_WAIT, and a bind that
//! must fail succeeds. Here c1's last ACK is held for 600 ms by a netfilter
//! queue inside c1's namespace (tests/fixtures/hold_first_packet.py); the
//! capture proves the RST came, and the verdict must still be right.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{
    HostSnapshot, KillOnPanic, TempExperiment, assert_nothing_left, fixture, json_of, new_marker,
    processes_with_marker, tcplab_process,
};

const CASE: &str = r#"
title = "client-port's case 3, probed a second after the close"
teaches = "A TIME_WAIT survives an RST that a late ACK provokes."
port = 8080
scenario = "client_port"

[client]
close = "first"
local_port = 40000

[expect]
state_after_kill = "TIME_WAIT"
within_ms = 2000

[[case]]
old_reuseaddr = false
new_reuseaddr = true
probe_after_ms = 1000
bind = "EADDRINUSE"
"#;

/// The agent whose namespace has c1's address.
fn c1_agent(marker: &str) -> u32 {
    processes_with_marker(marker)
        .into_iter()
        .find(|pid| {
            let agent = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("agent"));
            agent && in_namespace(*pid, "ip", &["-o", "addr"]).contains("10.211.55.5/")
        })
        .expect("c1's agent")
}

fn in_namespace(pid: u32, program: &str, args: &[&str]) -> String {
    let output = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{program} {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn first_line_with(lines: &mut impl Iterator<Item = String>, text: &str) {
    lines
        .find(|line| line.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?}"));
}

#[test]
fn a_late_last_ack_and_the_rst_it_provokes_leave_the_time_wait_verdict_right() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip_unless_ci(
            "needs root: an iptables rule and a netfilter queue in c1's namespace",
        );
        return;
    }
    let before = HostSnapshot::take();
    let marker = new_marker();
    let experiment = TempExperiment::new("late-ack.toml", CASE);
    let captures = experiment.path.with_file_name("captures");
    let mut run = tcplab_process(&marker)
        .arg("run")
        .arg(&experiment.path)
        .args(["--json", "-q", "--pcap"])
        .arg(&captures)
        .env("TCPLAB_PAUSE_BEFORE", "connect")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnPanic(run.id());
    let mut stderr = BufReader::new(run.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    first_line_with(&mut stderr, "paused before connect");

    // c1's pure ACKs from the 4th packet on go to queue 7: the first is the
    // last ACK of the close, held; the rest (ACKs of c2's FIN again) pass.
    let c1 = c1_agent(&marker);
    in_namespace(
        c1,
        "iptables",
        &[
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "--sport",
            "40000",
            "--tcp-flags",
            "FIN,SYN,RST,PSH,ACK",
            "ACK",
            "-m",
            "connbytes",
            "--connbytes",
            "4",
            "--connbytes-dir",
            "original",
            "--connbytes-mode",
            "packets",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "7",
        ],
    );
    let mut holder = Command::new("nsenter")
        .arg(format!("--net=/proc/{c1}/ns/net"))
        .arg("python3")
        .arg(fixture("hold_first_packet.py"))
        .args(["7", "600", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _holder_guard = KillOnPanic(holder.id());
    let mut said = BufReader::new(holder.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    first_line_with(&mut said, "ready");
    // SAFETY: kill(2) on the run this test started.
    unsafe { libc::kill(run.id() as i32, libc::SIGUSR1) };
    let rest: Vec<String> = stderr.collect();
    let output = run.wait_with_output().unwrap();

    // SAFETY: kill(2) on the holder this test started.
    unsafe { libc::kill(holder.id() as i32, libc::SIGTERM) };
    let tally = said.next().unwrap_or_default();
    holder.wait().unwrap();
    assert!(tally.starts_with("held 1, passed "), "{tally}");
    assert_ne!(tally, "held 1, passed 0", "c2 never sent its FIN again");

    assert_eq!(output.status.code(), Some(0), "{output:?} {rest:#?}");
    let document = json_of(&output);
    let case = &document["cases"][0];
    assert_eq!(case["state_after_kill"], "TIME_WAIT", "{case:#}");
    assert_eq!(case["bind"], "EADDRINUSE", "{case:#}");
    assert_eq!(case["passed"], true, "{case:#}");

    // The RST really came: c2 answered the late ACK with it.
    let capture = captures.join("late-ack-case1-c1.pcapng");
    let resets = Command::new("tshark")
        .arg("-r")
        .arg(&capture)
        .args(["-Y", "tcp.flags.reset == 1 && tcp.srcport == 8080"])
        .output()
        .unwrap();
    assert!(resets.status.success(), "{resets:?}");
    assert!(
        !String::from_utf8_lossy(&resets.stdout).trim().is_empty(),
        "no RST from c2 in {}: the race was not forced",
        capture.display()
    );
    assert_nothing_left(&marker, &before);
}

/// CPU-bound processes, ended by pid when dropped.
struct Hogs(Vec<std::process::Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

#[test]
fn fin_wait1_holds_while_busier_processes_take_every_core() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip_unless_ci("needs root: processes above normal priority");
        return;
    }
    // The client must close within c1's delayed-ACK time (40 ms) of the
    // server's FIN. Two spinning processes at nice -5 and tcplab at nice 10
    // made the client late in 3 of 10 runs before it ran at real-time
    // priority from connect() to close().
    let _hogs = Hogs(
        (0..2)
            .map(|_| {
                Command::new("nice")
                    .args(["-n", "-5", "python3", "-c", "while True: pass"])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let before = HostSnapshot::take();
    for run in 1..=5 {
        let marker = new_marker();
        let output = Command::new("nice")
            .args(["-n", "10"])
            .arg(common::tcplab_path())
            .args(["fin-wait1", "-q", "--json"])
            .env(common::MARKER_VAR, &marker)
            .output()
            .unwrap();
        let document = json_of(&output);
        for case in document["cases"].as_array().unwrap() {
            assert_eq!(case["state_after_kill"], "FIN_WAIT1", "run {run}: {case:#}");
        }
        assert_eq!(output.status.code(), Some(0), "run {run}");
        assert_nothing_left(&marker, &before);
    }
}
