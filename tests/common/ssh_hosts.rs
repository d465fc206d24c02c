//! Two real hosts reachable over real ssh, built from network namespaces, for
//! testing the ssh lab where no VMs can run.
//!
//! The shape is Vagrant's: a management namespace (where the orchestrator
//! runs) bridges a management network to c1 and c2, each of which runs its
//! own `sshd`; c1 and c2 are also joined by the experiment link. tcplab must
//! find that link itself, upload its executable, and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::new_marker;

pub const MGMT_C1: &str = "192.168.121.11";
pub const MGMT_C2: &str = "192.168.121.12";

pub struct SshHosts {
    pub mgmt: String,
    pub c1: String,
    pub c2: String,
    dir: PathBuf,
    sshd: Vec<Child>,
    made_privsep_dir: bool,
}

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ip(args: &[&str]) {
    run("ip", args);
}

impl SshHosts {
    /// Is this machine able to build the hosts (root, sshd installed)?
    pub fn available() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to create namespaces and run sshd".into());
        }
        if !Path::new("/usr/sbin/sshd").is_file() {
            return Err("needs sshd (apt-get install openssh-server)".into());
        }
        Ok(())
    }

    pub fn up() -> SshHosts {
        let id = new_marker().replace("tcplab-test-", "");
        let dir = std::env::temp_dir().join(format!("sshhosts-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let privsep = Path::new("/run/sshd");
        let made_privsep_dir = !privsep.exists();
        if made_privsep_dir {
            std::fs::create_dir_all(privsep).unwrap();
        }
        let mut hosts = SshHosts {
            mgmt: format!("tl{id}-m"),
            c1: format!("tl{id}-c1"),
            c2: format!("tl{id}-c2"),
            dir,
            sshd: Vec::new(),
            made_privsep_dir,
        };
        hosts.build_networks();
        hosts.start_sshd();
        hosts
    }

    fn build_networks(&self) {
        let (m, c1, c2) = (&self.mgmt, &self.c1, &self.c2);
        for ns in [m, c1, c2] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // Management network: a bridge in mgmt, one veth to each host.
        ip(&["-n", m, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", m, "addr", "add", "192.168.121.1/24", "dev", "br0"]);
        ip(&["-n", m, "link", "set", "br0", "up"]);
        for (host, address, port) in [(c1, MGMT_C1, "m-c1"), (c2, MGMT_C2, "m-c2")] {
            ip(&[
                "-n", m, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host,
            ]);
            ip(&["-n", m, "link", "set", port, "master", "br0", "up"]);
            ip(&[
                "-n",
                host,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", host, "link", "set", "eth0", "up"]);
        }
        // The experiment link, as in lab/hosts.json.
        ip(&[
            "-n", c1, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", c2,
        ]);
        ip(&["-n", c1, "addr", "add", "10.211.55.5/24", "dev", "eth1"]);
        ip(&["-n", c2, "addr", "add", "10.211.55.10/24", "dev", "eth1"]);
        ip(&["-n", c1, "link", "set", "eth1", "up"]);
        ip(&["-n", c2, "link", "set", "eth1", "up"]);
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn start_sshd(&mut self) {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                &self.path("id_ed25519"),
            ],
        );
        std::fs::copy(self.path("id_ed25519.pub"), self.path("authorized_keys")).unwrap();
        let mut client = String::new();
        for (name, ns, address) in [
            ("c1", self.c1.clone(), MGMT_C1),
            ("c2", self.c2.clone(), MGMT_C2),
        ] {
            let key = self.path(&format!("host_{name}"));
            run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", &key]);
            let config = self.path(&format!("sshd_{name}"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {address}\nHostKey {key}\nPermitRootLogin prohibit-password\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPidFile none\nLogLevel ERROR\n",
                    self.path("authorized_keys")
                ),
            )
            .unwrap();
            let sshd = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "/usr/sbin/sshd",
                    "-D",
                    "-e",
                    "-f",
                    &config,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.sshd.push(sshd);
            // What `vagrant ssh-config` prints, give or take.
            client.push_str(&format!(
                "Host {name}\n  HostName {address}\n  User root\n  Port 22\n  UserKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                 LogLevel FATAL\n\n",
                self.path("id_ed25519")
            ));
        }
        std::fs::write(self.ssh_config(), client).unwrap();
        for host in ["c1", "c2"] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let probe = self
                    .in_mgmt("ssh")
                    .args([
                        "-F",
                        &self.ssh_config(),
                        "-o",
                        "BatchMode=yes",
                        host,
                        "true",
                    ])
                    .output()
                    .unwrap();
                if probe.status.success() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sshd on {host} never answered: {}",
                    String::from_utf8_lossy(&probe.stderr)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn ssh_config(&self) -> String {
        self.path("ssh_config")
    }

    /// `program` run inside the management namespace.
    pub fn in_mgmt(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.mgmt, program]);
        command
    }

    /// The filter table of a host, as `iptables -S` prints it.
    pub fn firewall(&self, ns: &str) -> String {
        String::from_utf8_lossy(&run("ip", &["netns", "exec", ns, "iptables", "-S"]).stdout)
            .into_owned()
    }

    /// Command lines of the tcplab processes living in a host's namespace.
    pub fn tcplab_processes(&self, ns: &str) -> Vec<String> {
        let target = std::fs::metadata(format!("/run/netns/{ns}"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m) == target)
                    .unwrap_or(false)
            })
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                text.contains("tcplab").then_some(format!("{pid}: {text}"))
            })
            .collect()
    }

    /// Upload directories left in /tmp (the hosts share this machine's files).
    pub fn uploads_left() -> Vec<String> {
        std::fs::read_dir("/tmp")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("tcplab-upload."))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until neither host has a tcplab process or rule, then checks
    /// that no upload is left.
    pub fn assert_hosts_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let processes: Vec<_> = [&self.c1, &self.c2]
                .iter()
                .flat_map(|ns| self.tcplab_processes(ns))
                .collect();
            let rules: Vec<_> = [&self.c1, &self.c2]
                .iter()
                .map(|ns| self.firewall(ns))
                .filter(|rules| rules.contains("tcplab"))
                .collect();
            if processes.is_empty() && rules.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "left on the hosts: processes {processes:#?}, rules {rules:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            SshHosts::uploads_left(),
            Vec::<String>::new(),
            "uploads left in /tmp"
        );
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for sshd in &mut self.sshd {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        // Whatever still lives in the hosts (after a failed assertion, say)
        // would keep them alive after their names are gone.
        for ns in [&self.c1, &self.c2, &self.mgmt] {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            for pid in pids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
            {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) on a pid the kernel listed in our test namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for ns in [&self.c1, &self.c2, &self.mgmt] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_privsep_dir {
            let _ = std::fs::remove_dir("/run/sshd");
        }
    }
}
