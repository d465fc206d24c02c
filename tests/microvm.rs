//! The microvm lab end to end: two qemu VMs with Debian's 6.1 cloud kernel,
//! booted by tcplab (software emulation where KVM does not run guests), the
//! article's experiments on them, the same verdicts as on the netns lab, and
//! no qemu left after any way of ending a run. The first test fetches the
//! kernel into the cache with this machine's apt sources.

mod common;

use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::child_stderr::{stderr_lines, wait_for_line};
use common::{
    HostSnapshot, KillOnPanic, assert_nothing_left, json_of, new_marker, processes_with_marker,
    tcplab, tcplab_process,
};

/// Two VMs at a time on a 2-core machine: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This test's turn at the VMs, or `None` where qemu is missing (outside
/// CI; in CI a missing qemu fails the test).
fn vm_turn() -> Option<MutexGuard<'static, ()>> {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::qemu_available().then_some(turn)
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

/// (old, new, state after the kill, bind) of every case.
fn verdicts(document: &serde_json::Value) -> Vec<String> {
    document["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c["old_reuseaddr"], c["new_reuseaddr"], c["state_after_kill"], c["bind"]
            )
        })
        .collect()
}

#[test]
fn the_articles_experiments_on_two_vms_with_their_own_kernel() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    for experiment in ["fin-wait2", "time-wait"] {
        let marker = new_marker();
        let output = tcplab(&marker)
            .args([
                experiment, "--lab", "microvm", "--kernel", "6.1", "--json", "-q",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let vms = json_of(&output);
        assert_eq!(vms["lab"]["kind"], "microvm", "{vms:#}");
        let kernel = vms["lab"]["kernel"].as_str().unwrap();
        assert!(kernel.starts_with("6.1."), "{kernel}");
        assert_ne!(kernel, host_release(), "the VMs ran this machine's kernel");
        assert!(["kvm", "tcg"].contains(&vms["lab"]["accelerator"].as_str().unwrap()));
        assert_eq!(vms["passed"], true, "{vms:#}");
        assert_nothing_left(&marker, &before);

        let netns = json_of(
            &tcplab(&new_marker())
                .args([experiment, "--lab", "netns", "--json", "-q"])
                .output()
                .unwrap(),
        );
        assert_eq!(verdicts(&vms), verdicts(&netns), "the labs disagree");
    }
}

/// Starts a microvm run; returns it with its stderr lines.
fn start_run(
    marker: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = tcplab_process(marker)
        .args(["fin-wait2", "--lab", "microvm", "--accel", "tcg"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(child.stderr.take().unwrap());
    (child, lines)
}

/// How long a microvm run may take to reach a line, boots included.
const LINE_PATIENCE: Duration = Duration::from_secs(240);

fn qemus(marker: &str) -> usize {
    processes_with_marker(marker)
        .iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("qemu-system"))
        })
        .count()
}

/// Waits until `count` qemu processes of this run exist.
fn wait_for_qemus(marker: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while qemus(marker) < count {
        assert!(Instant::now() < deadline, "the VMs never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_during_boot_or_at_any_step_leaves_no_vm() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    // During boot: as soon as both qemu processes exist.
    let marker = new_marker();
    let (mut run, _lines) = start_run(&marker, &[]);
    let _guard = KillOnPanic(run.id());
    wait_for_qemus(&marker, 2);
    run.kill().unwrap();
    run.wait().unwrap();
    assert_nothing_left(&marker, &before);

    // At every step of a case, as on the netns lab.
    for step in ["firewall", "serve", "connect", "kill", "probe"] {
        let marker = new_marker();
        let (mut run, lines) = start_run(&marker, &[("TCPLAB_PAUSE_BEFORE", step)]);
        let _guard = KillOnPanic(run.id());
        wait_for_line(&lines, &format!("paused before {step}"), LINE_PATIENCE);
        assert_eq!(qemus(&marker), 2, "before {step}");
        run.kill().unwrap();
        run.wait().unwrap();
        assert_nothing_left(&marker, &before);
    }
}

#[test]
fn a_vm_that_dies_is_named_and_the_other_is_stopped() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    let (mut run, lines) = start_run(&marker, &[("TCPLAB_PAUSE_BEFORE", "kill")]);
    let _guard = KillOnPanic(run.id());
    wait_for_line(&lines, "paused before kill", LINE_PATIENCE);
    // End c1's qemu as a crash would.
    // SAFETY: kill(2) on a qemu this test's run started.
    unsafe { libc::kill(qemu_of(&marker, "10.211.55.5") as i32, libc::SIGKILL) };
    // SAFETY: as above, on the run itself: go on past the pause.
    unsafe { libc::kill(run.id() as i32, libc::SIGUSR1) };
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let mut said = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        said.push_str(&line);
    }
    assert!(said.contains("c1"), "the error names the host: {said}");
    assert_nothing_left(&marker, &before);
}

#[test]
fn sigint_and_sigterm_stop_the_vms_and_exit_130_and_143() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let marker = new_marker();
        let (mut run, lines) = start_run(&marker, &[("TCPLAB_PAUSE_BEFORE", "connect")]);
        let _guard = KillOnPanic(run.id());
        wait_for_line(&lines, "paused before connect", LINE_PATIENCE);
        // SAFETY: kill(2) on the run this test started.
        unsafe { libc::kill(run.id() as i32, signal) };
        let status = run.wait().unwrap();
        assert_eq!(status.code(), Some(code), "signal {signal}");
        assert_nothing_left(&marker, &before);
    }
}

#[test]
fn bad_kernel_choices_are_usage_errors() {
    for (args, says) in [
        (
            vec!["--lab", "microvm", "--kernel", "4.4"],
            "no such kernel line or build; nearest: 5.10",
        ),
        (
            vec!["--lab", "microvm", "--kernel", "/etc/hostname"],
            "needs --modules",
        ),
        (vec!["--kernel", "6.1"], "add --lab microvm"),
        (vec!["--lab", "microvm", "--family", "v6"], "IPv4 only"),
    ] {
        let output = tcplab(&new_marker())
            .arg("fin-wait2")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The qemu process of the host whose address is `address` (c1: 10.211.55.5).
fn qemu_of(marker: &str, address: &str) -> u32 {
    let vms: Vec<u32> = processes_with_marker(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&format!("tcplab.addr={address}/"))
            })
        })
        .collect();
    assert_eq!(vms.len(), 1, "one qemu with {address}: {vms:?}");
    vms[0]
}

#[test]
fn a_hung_vm_is_named_within_the_deadline_and_both_vms_are_stopped() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    let (mut run, lines) = start_run(
        &marker,
        &[
            ("TCPLAB_PAUSE_BEFORE", "connect"),
            ("TCPLAB_AGENT_TIMEOUT_MS", "3000"),
        ],
    );
    let _guard = KillOnPanic(run.id());
    wait_for_line(&lines, "paused before connect", LINE_PATIENCE);
    // A VM that stops answering, as a wedged guest or a host under swap would.
    // SAFETY: kill(2) on a qemu this test's run started.
    unsafe { libc::kill(qemu_of(&marker, "10.211.55.5") as i32, libc::SIGSTOP) };
    let started = Instant::now();
    // SAFETY: as above, on the run itself: go on past the pause.
    unsafe { libc::kill(run.id() as i32, libc::SIGUSR1) };
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Every line up to the end of stderr (the reader may lag the exit).
    let mut said = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        said.push_str(&line);
        said.push('\n');
    }
    assert!(
        said.contains("c1: no answer to 'connect' within 3 s"),
        "{said}"
    );
    // The stopped qemu was killed too (SIGKILL ends a stopped process).
    assert_nothing_left(&marker, &before);
}

#[test]
fn hostile_experiment_files_are_refused_before_any_vm_boots() {
    let before = HostSnapshot::take();
    for (file, line) in [
        ("target-injection.toml", 6),
        ("sysctl-unknown.toml", 5),
        ("bind-injection.toml", 11),
    ] {
        let path = common::fixture(&format!("hostile/{file}"));
        let path = path.to_str().unwrap();
        let marker = new_marker();
        let output = tcplab(&marker)
            .args(["run", path, "--lab", "microvm", "--accel", "tcg", "-q"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{file}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{path}:{line}:")), "{stderr}");
        assert_eq!(qemus(&marker), 0);
        assert_nothing_left(&marker, &before);
    }
}

#[test]
fn malformed_protocol_lines_get_error_replies_from_the_guests_agent() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    // `tcplab lab boot`: one VM, its agent on our stdin and stdout.
    let mut input: String = common::hostile_protocol_lines()
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    input.push_str("{\"op\":\"hello\"}\n");
    let output = tcplab(&marker)
        .args(["lab", "boot", "--kernel", "6.1"])
        .write_stdin(input)
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let replies: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let hostile = common::hostile_protocol_lines().len();
    assert_eq!(
        replies.len(),
        hostile + 1,
        "one reply per line: {replies:#?}"
    );
    for (line, reply) in common::hostile_protocol_lines().iter().zip(&replies) {
        assert_eq!(reply["reply"], "error", "{line:.60}: {reply}");
    }
    // Still up, and answering from the VM: its own kernel.
    let hello = &replies[hostile];
    assert_eq!(hello["reply"], "hello");
    assert_ne!(hello["kernel"].as_str().unwrap(), host_release());
    assert_nothing_left(&marker, &before);
}

#[test]
fn lab_boot_killed_with_sigkill_leaves_no_vm() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    let mut run = tcplab_process(&marker)
        .args(["lab", "boot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnPanic(run.id());
    wait_for_qemus(&marker, 1);
    run.kill().unwrap();
    run.wait().unwrap();
    assert_nothing_left(&marker, &before);
}

/// The inodes of the sockets `pid` holds.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect()
}

/// The inode column of a /proc/net table (`tcp`, `udp6`, `unix`, …) of
/// the host's namespace, with the whole line.
fn proc_net(table: &str) -> Vec<(String, String)> {
    let inode_column = if table == "unix" { 6 } else { 9 };
    std::fs::read_to_string(format!("/proc/net/{table}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let inode = line.split_whitespace().nth(inode_column)?.to_string();
            Some((inode, line.to_string()))
        })
        .collect()
}

#[test]
fn the_guests_link_is_a_socketpair_no_other_process_can_reach() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    let marker = new_marker();
    let (mut run, lines) = start_run(&marker, &[("TCPLAB_PAUSE_BEFORE", "kill")]);
    let _guard = KillOnPanic(run.id());
    wait_for_line(&lines, "paused before kill", LINE_PATIENCE);
    let inet: Vec<(String, String)> = ["tcp", "tcp6", "udp", "udp6", "raw", "raw6"]
        .iter()
        .flat_map(|table| proc_net(table))
        .collect();
    let unix = proc_net("unix");
    for address in ["10.211.55.5", "10.211.55.10"] {
        let qemu = qemu_of(&marker, address);
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(format!("/proc/{qemu}/cmdline")).unwrap())
                .replace('\0', " ");
        assert!(cmdline.contains("dgram,id=link,local.type=fd"), "{cmdline}");
        assert!(
            !cmdline.contains("udp=") && !cmdline.contains("127.0.0.1"),
            "{cmdline}"
        );
        let sockets = socket_inodes(qemu);
        // No address or port anyone could send a frame to: no inet socket
        // at all, and the link's unix socket has no name.
        for (inode, line) in &inet {
            assert!(
                !sockets.contains(inode),
                "qemu {qemu} holds an inet socket: {line}"
            );
        }
        let link: Vec<&String> = unix
            .iter()
            .filter(|(inode, _)| sockets.contains(inode))
            .map(|(_, line)| line)
            .filter(|line| line.split_whitespace().nth(4) == Some("0002"))
            .collect();
        assert_eq!(
            link.len(),
            1,
            "one datagram unix socket in qemu {qemu}: {link:?}"
        );
        assert_eq!(
            link[0].split_whitespace().count(),
            7,
            "the link's socket has a name: {}",
            link[0]
        );
    }
    // Every case pauses before its kill: let each go on.
    for case in 1..=4 {
        if case > 1 {
            wait_for_line(&lines, "paused before kill", LINE_PATIENCE);
        }
        // SAFETY: kill(2) on the run this test started: go on past the pause.
        unsafe { libc::kill(run.id() as i32, libc::SIGUSR1) };
    }
    assert_eq!(run.wait().unwrap().code(), Some(0));
    assert_nothing_left(&marker, &before);
}

/// The vmlinuz of `line`'s newest build if it is cached, from `tcplab lab
/// kernels --json`.
fn cached_vmlinuz(line: &str) -> Option<String> {
    let output = tcplab(&new_marker())
        .args(["lab", "kernels", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let listing = json_of(&output);
    let entry = listing["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["line"] == line)
        .unwrap_or_else(|| panic!("no line {line}: {listing:#}"))
        .clone();
    let newest = entry["builds"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(newest["version"], entry["newest"]);
    newest["cached"]["vmlinuz"].as_str().map(str::to_string)
}

/// Boots `--kernel 6.1` once so that its newest build is cached.
fn cache_6_1() -> String {
    if let Some(vmlinuz) = cached_vmlinuz("6.1") {
        return vmlinuz;
    }
    let output = tcplab(&new_marker())
        .args(["fin-wait2", "--lab", "microvm", "--kernel", "6.1", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    cached_vmlinuz("6.1").expect("6.1 cached after a run")
}

#[test]
fn a_cached_kernel_that_changed_is_not_booted_but_fetched_again() {
    let Some(_turn) = vm_turn() else { return };
    // One byte more in the cached vmlinuz.
    let vmlinuz = cache_6_1();
    let mut bytes = std::fs::read(&vmlinuz).unwrap();
    bytes.push(0);
    std::fs::write(&vmlinuz, bytes).unwrap();
    assert_eq!(
        cached_vmlinuz("6.1"),
        None,
        "a changed vmlinuz still counts as cached"
    );
    let output = tcplab(&new_marker())
        .args(["fin-wait2", "--lab", "microvm", "--kernel", "6.1", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fetching Debian kernel 6.1."), "{stderr}");
    assert_eq!(cached_vmlinuz("6.1").as_deref(), Some(vmlinuz.as_str()));
}

#[test]
fn a_guest_that_dies_while_booting_says_why_in_the_error() {
    let Some(_turn) = vm_turn() else { return };
    // This boots 6.1's vmlinuz with a module that is not one (garbage where
    // virtio_pci.ko should be): the guest's init cannot load it, says so on
    // the console and powers off.
    let vmlinuz = cache_6_1();
    let modules = tempfile::tempdir().unwrap();
    let release = modules.path().join("6.1.0-test");
    std::fs::create_dir_all(release.join("kernel")).unwrap();
    std::fs::write(release.join("kernel/virtio_pci.ko"), b"not a module").unwrap();
    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = tcplab(&marker)
        .args([
            "fin-wait2",
            "--lab",
            "microvm",
            "--accel",
            "tcg",
            "--kernel",
            &vmlinuz,
        ])
        .arg("--modules")
        .arg(&release)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the agent went away during 'hello'"),
        "{stderr}"
    );
    assert!(stderr.contains("its console's last lines:"), "{stderr}");
    assert!(
        stderr.contains("tcplab init: loading /lib/modules/") && stderr.contains("virtio_pci.ko"),
        "the guest's own words reach the user: {stderr}"
    );
    assert_nothing_left(&marker, &before);
}

/// fin-wait2 on 6.1's VMs as JSON with the first case's capture; `extra`
/// flags after it.
fn fin_wait2_on_6_1(extra: &[&str]) -> serde_json::Value {
    let page = common::TempExperiment::new("page.html", "");
    let output = tcplab(&new_marker())
        .args(["fin-wait2", "--lab", "microvm", "--kernel", "6.1"])
        .args(["--json", "-q", "--report"])
        .arg(&page.path)
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    json_of(&output)
}

/// The first case's connection as c1 opened it: its port and the sequence
/// number of its SYN.
fn first_connection(document: &serde_json::Value) -> (String, u64) {
    let case = &document["cases"][0];
    let port = case["connection"]["remote"].as_str().unwrap().to_string();
    let syn = case["capture"]["c1"]["packets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["outgoing"] == true && p["flags"].as_str() == Some("SYN"))
        .unwrap_or_else(|| panic!("no SYN from c1: {case:#}"));
    (port, syn["seq"].as_u64().unwrap())
}

#[test]
fn restored_guests_draw_fresh_ports_and_sequence_numbers_and_judge_as_cold_ones() {
    let Some(_turn) = vm_turn() else { return };
    let before = HostSnapshot::take();
    let cold = fin_wait2_on_6_1(&["--cold"]);
    assert_eq!(cold["lab"]["boot"], "cold", "{:#}", cold["lab"]);
    // The first run without --cold saves the guests if nothing had.
    fin_wait2_on_6_1(&[]);
    let first = fin_wait2_on_6_1(&[]);
    let second = fin_wait2_on_6_1(&[]);
    for warm in [&first, &second] {
        assert_eq!(warm["lab"]["boot"], "restored", "{:#}", warm["lab"]);
        assert_eq!(
            verdicts(warm),
            verdicts(&cold),
            "a restored pair judged otherwise"
        );
        assert!(
            warm["lab"]["boot_ms"].as_u64().unwrap() < cold["lab"]["boot_ms"].as_u64().unwrap()
        );
    }
    let (first_port, first_isn) = first_connection(&first);
    let (second_port, second_isn) = first_connection(&second);
    assert_ne!(
        first_port, second_port,
        "two restores picked the same ephemeral port"
    );
    assert_ne!(first_isn, second_isn, "two restores picked the same ISN");
    assert_eq!(HostSnapshot::take(), before, "the host changed");
}

#[test]
fn a_snapshot_that_does_not_restore_is_replaced_by_a_cold_boot() {
    let Some(_turn) = vm_turn() else { return };
    fin_wait2_on_6_1(&[]);
    let snapshots =
        std::path::Path::new(&std::env::var("HOME").unwrap()).join(".cache/tcplab/snapshots");
    let release = fin_wait2_on_6_1(&[])["lab"]["kernel"]
        .as_str()
        .unwrap()
        .to_string();
    let ours: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(&format!("{release}-c")))
        .collect();
    assert!(
        ours.len() >= 2,
        "no snapshots of {release} in {}",
        snapshots.display()
    );
    for path in &ours {
        std::fs::write(path, b"not a qemu migration stream").unwrap();
    }
    let output = tcplab(&new_marker())
        .args([
            "fin-wait2",
            "--lab",
            "microvm",
            "--kernel",
            "6.1",
            "--json",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("restoring the saved guests") && stderr.contains("booting cold"),
        "{stderr}"
    );
    assert_eq!(json_of(&output)["lab"]["boot"], "cold");
    // And saved them again for the next run.
    assert_eq!(fin_wait2_on_6_1(&[])["lab"]["boot"], "restored");
}

/// Every experiment's expectations were written from cold boots: restored
/// guests must meet them all, so they judge as cold ones do. (And `all`
/// on VMs without a JDK skips the java experiment, as netns does.)
#[test]
fn every_experiment_passes_on_restored_guests() {
    let Some(_turn) = vm_turn() else { return };
    fin_wait2_on_6_1(&[]);
    let output = tcplab(&new_marker())
        .args(["all", "--lab", "microvm", "--kernel", "6.1", "--json", "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let document = json_of(&output);
    for experiment in document["experiments"].as_array().unwrap() {
        let name = experiment["experiment"].as_str().unwrap();
        match experiment["skipped"].as_str() {
            Some(why) => assert!(name == "java" && why.contains("no JDK"), "{name}: {why}"),
            None => {
                assert_eq!(experiment["lab"]["boot"], "restored", "{name}");
                assert_eq!(experiment["passed"], true, "{name}: {experiment:#}");
            }
        }
    }
}
