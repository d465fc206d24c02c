//! The root agent does what the experiment needs and nothing else, and
//! `lab clean` undoes exactly what dead sessions did. Each test reproduces one
//! way this used to go wrong. Agents run as on a real host (no namespace of
//! their own) inside a namespace the test made, so the machine's own
//! firewall and sysctls are never touched; other users are `nobody` through
//! setpriv, as in the rootless test.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::host_agent::{ADD_FIN_DROP, TestHost};
use common::is_root;

macro_rules! root_or_skip {
    () => {
        if !is_root() {
            common::skip_unless_ci("needs root to make network namespaces");
            return;
        }
    };
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn lab_clean_undoes_a_killed_agents_changes_and_spares_what_is_not_its_own() {
    root_or_skip!();
    let host = TestHost::new();
    // An administrator's rule that mentions tcplab, and one whose comment
    // holds an escaped quote (which split the old parser's arguments).
    host.run(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "22",
            "-m",
            "comment",
            "--comment",
            "keep ssh open for the tcplab agent hosts",
            "-j",
            "ACCEPT",
        ],
    );
    host.run(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "23",
            "-m",
            "comment",
            "--comment",
            "tcplab agent 1 said \"hi\"",
            "-j",
            "ACCEPT",
        ],
    );
    // Another user's tcplab server, and another user's upload directory.
    let mut foreign_server = host
        .command("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(common::tcplab_path())
        .args(["serve", "--bind", "127.0.0.1:9999"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let foreign_upload = std::path::PathBuf::from(format!("/tmp/tcplab-upload.nobody{}", host.ns));
    std::fs::create_dir(&foreign_upload).unwrap();
    nix::unistd::chown(
        &foreign_upload,
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();

    let original = host.sysctl("net.ipv4.tcp_fin_timeout");
    let mut crashed = host.agent();
    assert_eq!(
        crashed.request(ADD_FIN_DROP)["reply"],
        "firewall_rule_added",
        ""
    );
    let set = crashed.request(r#"{"op":"set_sysctl","setting":"tcp_fin_timeout","value":3}"#);
    assert_eq!(set["reply"], "done", "{set}");
    crashed.kill_9();
    assert!(
        host.firewall()
            .contains(&format!("tcplab agent {}", crashed.pid()))
    );
    assert_eq!(host.sysctl("net.ipv4.tcp_fin_timeout"), "3");

    let mut cleaner = host.agent();
    let reaped = cleaner.request(r#"{"op":"reap"}"#);
    assert_eq!(reaped["reply"], "reaped", "{reaped}");
    assert_eq!(reaped["rules"], 1, "{reaped}");
    assert_eq!(reaped["sysctls"], 1, "{reaped}");
    let firewall = host.firewall();
    assert!(
        !firewall.contains(&format!("tcplab agent {}", crashed.pid())),
        "{firewall}"
    );
    assert!(
        firewall.contains("keep ssh open for the tcplab agent hosts"),
        "{firewall}"
    );
    assert!(firewall.contains("--dport 23"), "{firewall}");
    assert_eq!(host.sysctl("net.ipv4.tcp_fin_timeout"), original);
    assert!(
        alive(foreign_server.id()),
        "lab clean ended another user's tcplab serve"
    );
    assert!(
        foreign_upload.exists(),
        "lab clean removed another user's upload"
    );
    assert!(cleaner.finish().success());
    assert!(common::host_agent::journals_of(&host).is_empty());

    foreign_server.kill().unwrap();
    foreign_server.wait().unwrap();
    std::fs::remove_dir(&foreign_upload).unwrap();
}

#[test]
fn overlapping_sessions_never_save_each_others_values() {
    root_or_skip!();
    let host = TestHost::new();
    let original = host.sysctl("net.ipv4.ip_local_port_range");
    let mut first = host.agent();
    let mut second = host.agent();
    let pin = |port: u32| {
        format!(r#"{{"op":"set_sysctl","setting":"ip_local_port_range","value":{port}}}"#)
    };
    assert_eq!(first.request(&pin(40000))["reply"], "done");
    let refused = second.request(&pin(40001));
    assert_eq!(refused["reply"], "error", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("another tcplab session"),
        "{refused}"
    );
    assert_eq!(first.request(r#"{"op":"shutdown"}"#)["reply"], "done");
    assert!(first.finish().success());
    assert_eq!(host.sysctl("net.ipv4.ip_local_port_range"), original);

    assert_eq!(second.request(&pin(40001))["reply"], "done");
    assert!(second.finish().success());
    assert_eq!(host.sysctl("net.ipv4.ip_local_port_range"), original);
}

#[test]
fn a_session_after_a_crash_restores_the_crashed_value_first() {
    root_or_skip!();
    let host = TestHost::new();
    let original = host.sysctl("net.ipv4.tcp_fin_timeout");
    let mut crashed = host.agent();
    let set = |value: u32| {
        format!(r#"{{"op":"set_sysctl","setting":"tcp_fin_timeout","value":{value}}}"#)
    };
    assert_eq!(crashed.request(&set(7))["reply"], "done");
    crashed.kill_9();
    let mut next = host.agent();
    assert_eq!(next.request(&set(9))["reply"], "done");
    assert!(next.finish().success());
    assert_eq!(
        host.sysctl("net.ipv4.tcp_fin_timeout"),
        original,
        "7 was saved as the original"
    );
    assert!(
        common::host_agent::journals_of(&host).is_empty(),
        "the crashed session's journal is left though everything in it was undone"
    );
}

#[test]
fn an_agent_on_a_host_refuses_to_touch_links() {
    root_or_skip!();
    let host = TestHost::new();
    let links_before = host.run("ip", &["-o", "link"]);
    let mut agent = host.agent();
    for request in [
        r#"{"op":"create_veth","name":"evil0","peer_name":"evil1","peer_pid":1}"#,
        r#"{"op":"configure_link","name":"lo","address":"10.9.9.9","prefix_len":8}"#,
    ] {
        let reply = agent.request(request);
        assert_eq!(reply["reply"], "error", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains("real host"),
            "{reply}"
        );
    }
    assert!(agent.finish().success());
    assert_eq!(host.run("ip", &["-o", "link"]), links_before);
    assert!(!host.run("ip", &["-o", "addr"]).contains("10.9.9.9"));
}

#[test]
fn an_agent_connects_held_sockets_only_to_a_listener_the_same_request_holds() {
    root_or_skip!();
    let host = TestHost::new();
    let mut agent = host.agent();
    let options = r#"{"reuseaddr":false}"#;
    // A connect to anything but the request's own listener is refused
    // before any socket opens: the probe's target, or a held socket's.
    for (held, connect) in [
        (String::new(), r#","connect":"192.0.2.1:80""#),
        (
            format!(
                r#"{{"address":"127.1.1.1:0","reuse":{options},"listen":false,"connect":"192.0.2.1:80"}}"#
            ),
            "",
        ),
    ] {
        let request = format!(
            r#"{{"op":"try_bind_beside","held":[{held}],"address":"127.0.0.1:0","reuse":{options}{connect}}}"#
        );
        let reply = agent.request(&request);
        assert_eq!(reply["reply"], "error", "{reply}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("not a listener this request holds"),
            "{reply}"
        );
    }
    // To its own listener, it connects.
    let listener = r#"{"address":"127.0.0.1:8099","reuse":{"reuseaddr":true},"listen":true}"#;
    let reply = agent.request(&format!(
        r#"{{"op":"try_bind_beside","held":[{listener}],"address":"127.2.2.2:0","reuse":{options},"connect":"127.0.0.1:8099"}}"#
    ));
    assert_eq!(reply["reply"], "bind_beside", "{reply}");
    assert_eq!(reply["outcome"]["result"], "ok", "{reply}");
    assert!(agent.finish().success());
}

#[test]
fn an_agent_that_cannot_write_its_reply_still_cleans_up() {
    root_or_skip!();
    let host = TestHost::new();
    let mut agent = host.agent();
    assert_eq!(agent.request(ADD_FIN_DROP)["reply"], "firewall_rule_added");
    let tag = format!("tcplab agent {}", agent.pid());
    assert!(host.firewall().contains(&tag));
    // The orchestrator stops reading: the next reply cannot be written.
    // (Asked again until the agent leaves: a child another test thread
    // forks at that instant briefly holds a copy of the pipe's read end,
    // and a reply written then still fits in the pipe.)
    agent.stdout = None;
    let started = Instant::now();
    while alive(agent.pid()) && started.elapsed() < Duration::from_secs(10) {
        if let Some(stdin) = agent.stdin.as_mut() {
            let _ = std::io::Write::write_all(stdin, b"{\"op\":\"hello\"}\n");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(agent.pid()),
        "the agent did not leave when its replies could not be written"
    );
    agent.child.wait().unwrap();
    assert!(
        !host.firewall().contains(&tag),
        "the rule stayed after a failed reply"
    );
}

#[test]
fn any_bytes_a_peer_sends_get_an_error_reply_in_bounded_memory() {
    root_or_skip!();
    let host = TestHost::new();
    let mut agent = host.agent();
    // 64 MiB without a newline, then the newline.
    let junk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        agent.send_bytes(&junk);
    }
    agent.send_bytes(b"\n");
    let reply = agent.reply();
    assert_eq!(reply["kind"], "bad_request", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("longer than"),
        "{reply}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        peak_kib < 48 * 1024,
        "the agent buffered the junk: peak {peak_kib} KiB"
    );

    agent.send_bytes(b"\xff\xfe{\"op\":\"hello\"}\n");
    let reply = agent.reply();
    assert_eq!(reply["kind"], "bad_request", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("UTF-8"),
        "{reply}"
    );
    assert_eq!(agent.request(r#"{"op":"hello"}"#)["reply"], "hello");
    assert!(agent.finish().success());
}

#[test]
fn a_connection_never_seen_is_not_reported_as_gone() {
    root_or_skip!();
    let host = TestHost::new();
    let mut agent = host.agent();
    let reply = agent.request(
        r#"{"op":"wait_for_state","local_port":8080,"peer":"10.1.2.3:4567","state":null,"deadline_ms":50}"#,
    );
    assert_eq!(reply["reply"], "state", "{reply}");
    assert_eq!(reply["identified"], false, "{reply}");
    assert!(agent.finish().success());
}

/// A planted Vagrant project: a Vagrantfile, the marks of `vagrant up`, and a
/// `vagrant` on PATH that records being run.
struct PlantedProject {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PlantedProject {
    fn new(name: &str) -> PlantedProject {
        let dir = std::env::temp_dir().join(format!("{name}-{}", common::new_marker()));
        for machine in ["c1", "c2"] {
            let machine = dir.join(".vagrant/machines").join(machine).join("libvirt");
            std::fs::create_dir_all(&machine).unwrap();
            std::fs::write(machine.join("id"), "x").unwrap();
        }
        std::fs::write(dir.join("Vagrantfile"), "# planted\n").unwrap();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("vagrant");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\ntouch '{}/ran'\nexit 1\n", dir.display()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        PlantedProject { dir, bin }
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap())
    }

    fn vagrant_ran(&self) -> bool {
        self.dir.join("ran").exists()
    }
}

impl Drop for PlantedProject {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_vagrantfile_in_a_parent_directory_is_never_run() {
    root_or_skip!();
    let planted = PlantedProject::new("tcplab-planted");
    let output = common::tcplab(&common::new_marker())
        .args(["fin-wait2", "--json", "-q"])
        .current_dir(planted.dir.join("sub"))
        .env("PATH", planted.path_env())
        .env_remove("VAGRANT_CWD")
        .output()
        .unwrap();
    assert!(
        !planted.vagrant_ran(),
        "tcplab ran vagrant in a planted project"
    );
    let json = common::json_of(&output);
    assert_eq!(json["lab"]["kind"], "netns", "{json}");
}

#[test]
fn a_vagrant_project_others_can_write_is_refused() {
    root_or_skip!();
    let planted = PlantedProject::new("tcplab-writable");
    std::fs::set_permissions(
        &planted.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&planted.dir).unwrap().mode() & 0o777,
        0o777
    );
    let output = common::tcplab(&common::new_marker())
        .args(["fin-wait2", "-q", "--lab", "vagrant"])
        .env("PATH", planted.path_env())
        .env("VAGRANT_CWD", &planted.dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing the Vagrant project"), "{stderr}");
    assert!(
        !planted.vagrant_ran(),
        "tcplab ran vagrant in a project others can write"
    );
    // The default lab ignores it, and says why.
    let output = common::tcplab(&common::new_marker())
        .args(["fin-wait2", "--json", "-q"])
        .env("PATH", planted.path_env())
        .env("VAGRANT_CWD", &planted.dir)
        .output()
        .unwrap();
    let json = common::json_of(&output);
    assert_eq!(json["lab"]["kind"], "netns", "{json}");
    assert!(!planted.vagrant_ran());
    let _ = Command::new("true").status();
}

#[test]
fn a_tcplab_that_is_pid_1_of_a_pid_namespace_stays_a_plain_command() {
    root_or_skip!();
    // `unshare -pf` (or `docker run … tcplab`): PID 1, but not a guest's
    // /init under a tcplab kernel command line.
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(common::tcplab_path())
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("fin-wait2"),
        "{output:?}"
    );
}

#[test]
fn root_keeps_its_own_cache_whatever_home_a_user_left_it() {
    root_or_skip!();
    // `sudo -E` as a user whose home holds a planted cache.
    let planted = std::env::temp_dir().join(format!("planted-{}", std::process::id()));
    std::fs::create_dir_all(planted.join(".cache/tcplab")).unwrap();
    let output = Command::new(common::tcplab_path())
        .args(["lab", "kernels", "--json"])
        .env("HOME", &planted)
        .env("XDG_CACHE_HOME", planted.join(".cache"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&planted);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let root_home = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("root:")?
                .split(':')
                .nth(4)
                .map(str::to_string)
        })
        .unwrap();
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        listing["cache"],
        format!("{root_home}/.cache/tcplab"),
        "{stdout}"
    );
}

#[test]
fn output_files_never_follow_a_planted_link_nor_land_where_others_write() {
    root_or_skip!();
    use std::os::unix::fs::PermissionsExt;
    let scratch = common::TempExperiment::new("placeholder", "");
    let dir = scratch.path.parent().unwrap().to_path_buf();
    // A link planted at the report's name: replaced, the victim untouched.
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let report = dir.join("report.html");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let output = Command::new(common::tcplab_path())
        .args(["fin-wait2", "-q", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::read_to_string(&report).unwrap().contains("<svg"));
    // A directory anyone may write (and not sticky): refused before the run.
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for flag in ["--junit", "--pcap"] {
        let target = if flag == "--pcap" {
            open.clone()
        } else {
            open.join("j.xml")
        };
        let output = Command::new(common::tcplab_path())
            .args(["fin-wait2", "-q", flag])
            .arg(&target)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("may be written by others"),
            "{flag}: {output:?}"
        );
    }
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}
