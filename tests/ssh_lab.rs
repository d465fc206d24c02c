//! The ssh lab end to end, on real sshd and ssh between namespaces built to
//! look like two Vagrant VMs (see common/ssh_hosts.rs): same verdicts as the
//! namespace lab, the executable uploaded, the experiment link found by
//! itself, and nothing left on the hosts, also when the ssh connection drops
//! in the middle of a run.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ssh_hosts::SshHosts;
use common::{MARKER_VAR, fixture, json_of, new_marker, tcplab_path};

/// The hosts share this machine's /tmp: one ssh test at a time keeps the
/// upload checks exact.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn hosts_or_skip() -> Option<SshHosts> {
    match SshHosts::available() {
        Ok(()) => Some(SshHosts::up()),
        Err(why) => {
            common::skip_unless_ci(&why);
            None
        }
    }
}

fn run_in_mgmt(hosts: &SshHosts, args: &[&str]) -> std::process::Output {
    hosts
        .in_mgmt(tcplab_path().to_str().unwrap())
        .args(args)
        .args(["--ssh-config", &hosts.ssh_config()])
        .env(MARKER_VAR, new_marker())
        .output()
        .unwrap()
}

#[test]
fn fin_wait2_over_ssh_uploads_finds_the_link_and_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(hosts) = hosts_or_skip() else { return };

    // Twice: the second run must not trip over the first one's orphaned
    // FIN_WAIT2 sockets, which hold their ports on c2 for a minute.
    for run in 1..=2 {
        // The second run names c2's address itself, as a user may.
        let mut args = vec!["fin-wait2", "--json", "-q"];
        if run == 2 {
            args.extend(["--server-addr", "10.211.55.10"]);
        }
        let output = run_in_mgmt(&hosts, &args);
        assert_eq!(output.status.code(), Some(0), "run {run}: {output:?}");
        let document = json_of(&output);
        assert_eq!(document["passed"], true, "{document:#}");
        assert_eq!(document["lab"]["kind"], "ssh");
        // Found by itself: not the management network ssh came in on.
        assert_eq!(document["lab"]["c1"], "10.211.55.5");
        assert_eq!(document["lab"]["c2"], "10.211.55.10");
        let described = document["lab"]["hosts"].as_str().unwrap();
        assert!(described.contains("uploaded"), "{described}");
        let cases = document["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        let mut ports = Vec::new();
        for case in cases {
            assert_eq!(case["state_after_kill"], "FIN_WAIT2", "{case:#}");
            let both = case["old_reuseaddr"] == true && case["new_reuseaddr"] == true;
            assert_eq!(case["bind"], if both { "ok" } else { "EADDRINUSE" });
            ports.push(case["connection"]["local"].as_str().unwrap().to_string());
        }
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 4, "each case on its own port: {ports:?}");
        hosts.assert_hosts_clean();
    }
}

#[test]
fn a_dropped_ssh_connection_takes_the_rule_on_c1_with_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(hosts) = hosts_or_skip() else { return };
    let file = fixture("waits-forever.toml");
    let run = hosts
        .in_mgmt(tcplab_path().to_str().unwrap())
        .args(["run", file.to_str().unwrap(), "-q"])
        .args(["--ssh-config", &hosts.ssh_config()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the FIN-drop rule is in place on c1.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !hosts.firewall(&hosts.c1).contains("tcplab agent") {
        assert!(Instant::now() < deadline, "the rule never appeared on c1");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Cut c1's ssh connection: kill the ssh client that carries its agent.
    let killed = std::process::Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("ssh -F {} .* -T c1 ", hosts.ssh_config()),
        ])
        .status()
        .unwrap();
    assert!(killed.success(), "no ssh client for c1 was running");

    let output = run.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("c1"), "the error names the host: {stderr}");
    hosts.assert_hosts_clean();
}

#[test]
fn lab_clean_undoes_what_a_killed_agent_left_on_the_hosts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(hosts) = hosts_or_skip() else { return };
    // A run that holds its rule on c1; then its c1 agent is killed outright
    // (it cannot clean up) and so is the orchestrator.
    let mut run = hosts
        .in_mgmt(tcplab_path().to_str().unwrap())
        .arg("run")
        .arg(fixture("waits-forever.toml"))
        .args(["-q", "--ssh-config", &hosts.ssh_config()])
        .env(MARKER_VAR, new_marker())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = common::KillOnPanic(run.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hosts.firewall(&hosts.c1).contains("tcplab agent") {
        assert!(
            Instant::now() < deadline,
            "the run never added its rule on c1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let agent: u32 = hosts
        .tcplab_processes(&hosts.c1)
        .iter()
        .find(|line| line.contains(" agent"))
        .and_then(|line| line.split(':').next()?.parse().ok())
        .expect("the agent on c1");
    // SAFETY: kill(2) on the agent process found above.
    unsafe { libc::kill(agent as i32, libc::SIGKILL) };
    run.kill().unwrap();
    run.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        hosts.firewall(&hosts.c1).contains("tcplab agent"),
        "the crash left no rule"
    );
    assert!(
        !SshHosts::uploads_left().is_empty(),
        "the crash left no upload"
    );

    let output = run_in_mgmt(&hosts, &["lab", "clean"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("c1: removed 1 firewall rule(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("deleted 1 upload(s)"), "{stdout}");
    assert!(!hosts.firewall(&hosts.c1).contains("tcplab"));
    hosts.assert_hosts_clean();
}

#[test]
fn a_refused_ssh_connection_exits_3_naming_the_host() {
    // Nothing listens on port 1 of loopback: ssh is refused at once.
    let config = common::TempExperiment::new(
        "hosts.conf",
        "Host c1 c2\n  HostName 127.0.0.1\n  Port 1\n  User root\n",
    );
    let output = common::tcplab(&new_marker())
        .args(["fin-wait2", "-q", "--ssh-config"])
        .arg(&config.path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ssh to c") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn ssh_lab_without_a_config_is_a_usage_error() {
    let output = common::tcplab(&new_marker())
        .args(["fin-wait2", "--lab", "ssh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--ssh-config"));
}

#[test]
fn the_vagrant_lab_without_running_vms_exits_3_and_says_what_to_do() {
    // The repository's Vagrantfile, in a project of its own: `vagrant
    // status` writes .vagrant/ next to it, which must not land in the
    // checkout. Without Vagrant installed, or with VMs that are not up, the
    // message says what to do.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = std::env::temp_dir().join(format!("tcplab-vagrant-{}", new_marker()));
    std::fs::create_dir_all(project.join("lab")).unwrap();
    std::fs::copy(repo.join("Vagrantfile"), project.join("Vagrantfile")).unwrap();
    std::fs::copy(repo.join("lab/hosts.json"), project.join("lab/hosts.json")).unwrap();
    let output = common::tcplab(&new_marker())
        .args(["fin-wait2", "--lab", "vagrant", "-q"])
        .env("VAGRANT_CWD", &project)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&project).unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("vagrant up") || stderr.contains("install Vagrant"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_host_wide_setting_on_a_real_host_needs_allow_host_sysctl_and_is_put_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(hosts) = hosts_or_skip() else { return };
    let text = "title = \"t\"\nteaches = \"t\"\nport = 8080\n\n[c2.sysctl]\ntcp_fin_timeout = 7\n\n\
[client]\nclose = \"after_ack\"\n[expect]\nstate_after_kill = \"TIME_WAIT\"\n\
[[case]]\nold_reuseaddr = true\nnew_reuseaddr = true\nbind = \"ok\"\n";
    let file = common::TempExperiment::new("host-wide.toml", text);
    let path = file.path.to_str().unwrap();
    let fin_timeout = |ns: &str| {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "cat",
                "/proc/sys/net/ipv4/tcp_fin_timeout",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = fin_timeout(&hosts.c2);

    let refused = run_in_mgmt(&hosts, &["run", path, "-q"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("{path}:5:")), "{stderr}");
    assert!(stderr.contains("--allow-host-sysctl"), "{stderr}");
    assert_eq!(fin_timeout(&hosts.c2), before);

    let allowed = run_in_mgmt(
        &hosts,
        &["run", path, "-q", "--json", "--allow-host-sysctl"],
    );
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    let said = json_of(&allowed)["cases"][0]["transcript"].to_string();
    assert!(
        said.contains("sysctl -w net.ipv4.tcp_fin_timeout=7"),
        "{said}"
    );
    assert!(
        said.contains("tcp_rfc1337=1"),
        "the guard comes with the leave: {said}"
    );
    assert_eq!(fin_timeout(&hosts.c2), before, "put back afterwards");
    hosts.assert_hosts_clean();
}
