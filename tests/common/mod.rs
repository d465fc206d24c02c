//! Shared by the end-to-end tests: run the real `tcplab` binary, and prove
//! that a run left the machine as it found it.
//!
//! Every run gets a unique marker in its environment. Agents and servers
//! inherit it, so "no process of this run is left" is a precise question
//! (other tests run in parallel), answered from /proc. The host's firewall,
//! links and named namespaces are compared before and after.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod child_stderr;
pub mod host_agent;
pub mod kept_lab;
pub mod schema;
pub mod ssh_hosts;

pub const MARKER_VAR: &str = "TCPLAB_TEST_MARKER";

/// A unique value for [`MARKER_VAR`].
pub fn new_marker() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "tcplab-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn tcplab_path() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("tcplab").to_path_buf()
}

/// `tcplab` (assert_cmd) with `marker` in its environment.
pub fn tcplab(marker: &str) -> assert_cmd::Command {
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("tcplab");
    command.env(MARKER_VAR, marker);
    command
}

/// `tcplab` as a plain process, for tests that signal it while it runs.
pub fn tcplab_process(marker: &str) -> Command {
    let mut command = Command::new(tcplab_path());
    command.env(MARKER_VAR, marker);
    command
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Kills a started tcplab with SIGKILL if the test panics while it runs, so a
/// failed assertion cannot leave a paused or waiting run (and its agents and
/// namespaces) behind. Keep it alive for the test's scope.
pub struct KillOnPanic(pub u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: kill(2) on the pid of a child this test started.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

/// Is a JDK on this machine (the `java` experiment needs one)?
pub fn java_installed() -> bool {
    Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Pids of live processes whose environment carries `marker`.
pub fn processes_with_marker(marker: &str) -> Vec<u32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        .filter(|pid| !is_zombie_reaped_soon(*pid))
        .collect()
}

/// A zombie holds no namespace or socket; it only waits for its parent.
fn is_zombie_reaped_soon(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// What the host looks like from the outside: its own firewall, links and
/// named network namespaces, and tcplab files in the temp directory.
#[derive(Debug, PartialEq, Eq)]
pub struct HostSnapshot {
    iptables: String,
    ip6tables: String,
    nft: String,
    links: Vec<String>,
    named_netns: String,
    temp_files: Vec<String>,
    /// The host's own TCP settings (experiments set them in lab namespaces).
    tcp_settings: Vec<String>,
}

impl HostSnapshot {
    pub fn take() -> HostSnapshot {
        // Link names and flags, without counters that change on their own.
        let links = command_output("ip", &["-o", "link", "show"])
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect();
        let temp_files = std::fs::read_dir(std::env::temp_dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("tcplab"))
                    .collect()
            })
            .unwrap_or_default();
        HostSnapshot {
            iptables: without_comments(command_output("iptables-save", &[])),
            ip6tables: without_comments(command_output("ip6tables-save", &[])),
            nft: command_output("nft", &["list", "ruleset"]),
            links,
            named_netns: command_output("ip", &["netns", "list"]),
            temp_files,
            tcp_settings: ["tcp_fin_timeout", "tcp_tw_reuse"]
                .iter()
                .map(|name| {
                    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
                        .unwrap_or_default()
                })
                .collect(),
        }
    }
}

/// iptables-save prints a timestamp in its comment lines.
fn without_comments(text: String) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (briefly: the kernel delivers PDEATHSIG at once) until no process of
/// the run is left, then checks the host is as `before`.
pub fn assert_nothing_left(marker: &str, before: &HostSnapshot) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = processes_with_marker(marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_with_marker(marker);
    }
    let described: Vec<String> = left
        .iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            )
        })
        .collect();
    assert!(
        described.is_empty(),
        "processes left behind: {described:#?}"
    );
    assert_eq!(&HostSnapshot::take(), before, "the host changed");
}

/// Writes `text` as an experiment file in a fresh directory; removed on drop.
pub struct TempExperiment {
    dir: PathBuf,
    pub path: PathBuf,
}

impl TempExperiment {
    pub fn new(file_name: &str, text: &str) -> TempExperiment {
        // No "tcplab" in the name: snapshots look for tcplab temp files.
        let dir =
            std::env::temp_dir().join(format!("fixture-{}", new_marker().replace("tcplab-", "")));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name);
        std::fs::write(&path, text).unwrap();
        TempExperiment { dir, path }
    }
}

impl Drop for TempExperiment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses stdout as the `--json` document.
pub fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A tool or privilege the calling test needs is missing. Outside CI the
/// test says so and returns (skips). Under CI (`CI=true`) this panics: `.ci/run`
/// installs every tool, so a missing one there is a broken CI, not a skip.
pub fn skip_unless_ci(why: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{why}; CI=true, where .ci/run installs every tool: this is a failure, not a skip");
    }
    eprintln!("skipped: {why}");
}

/// Can this machine run the VM labs' tests? Says so when it cannot (and
/// fails under CI).
pub fn qemu_available() -> bool {
    let found = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_unless_ci("no qemu-system-x86_64 (apt-get install qemu-system-x86)");
    }
    found
}

/// Agent protocol lines that must each get an error reply, the agent staying
/// up: not JSON, unknown or extra fields, out-of-range values, operations
/// that do not exist, control bytes, a line of 100 kB.
pub fn hostile_protocol_lines() -> Vec<String> {
    let huge = format!("{{\"op\":\"hello\",\"pad\":\"{}\"}}", "x".repeat(100_000));
    [
        "not json",
        "{}",
        "[]",
        "{\"op\":\"exec\",\"command\":\"rm -rf /\"}",
        "{\"op\":\"try_bind\",\"address\":\"0.0.0.0:99999\",\"reuse\":{\"reuseaddr\":true}}",
        "{\"op\":\"set_sysctl\",\"setting\":\"kernel.core_pattern\",\"value\":1}",
        "{\"op\":\"set_sysctl\",\"setting\":\"tcp_fin_timeout\",\"value\":0}",
        "{\"op\":\"kill_server\",\"signal\":\"SIGKILL\"}",
        "{\"op\":\"hello\",\"extra\":true}",
        "\u{0}\u{1}\u{2}",
        huge.as_str(),
    ]
    .map(String::from)
    .to_vec()
}

/// Is this test running as root?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `number` to `pid`: a process this test started, or found by its
/// run's marker.
pub fn signal(pid: u32, number: i32) {
    // SAFETY: kill(2) has no memory preconditions; the pid is the test's own.
    unsafe { libc::kill(pid as i32, number) };
}
