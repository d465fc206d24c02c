//! A `tcplab agent` as it runs on a real host (no `--unshare-net`), placed in
//! a network namespace this test made, spoken to in JSON lines. Its rules and
//! sysctls land in that namespace only, never on the machine running the
//! tests.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

use super::{new_marker, tcplab_path};

/// A network namespace standing in for a real host; deleted on drop.
pub struct TestHost {
    pub ns: String,
}

impl TestHost {
    pub fn new() -> TestHost {
        let ns = format!("tlh{}", new_marker().replace("tcplab-test-", ""));
        assert!(
            Command::new("ip")
                .args(["netns", "add", &ns])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new("ip")
                .args(["-n", &ns, "link", "set", "lo", "up"])
                .status()
                .unwrap()
                .success()
        );
        TestHost { ns }
    }

    /// `ip netns exec NS program …`
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command
    }

    /// Runs `program args` in the host and returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let output = self.command(program).args(args).output().unwrap();
        assert!(output.status.success(), "{program} {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The filter table as `iptables -S` prints it.
    pub fn firewall(&self) -> String {
        self.run("iptables", &["-S"])
    }

    pub fn sysctl(&self, name: &str) -> String {
        self.run("sysctl", &["-n", name]).trim().to_string()
    }

    pub fn agent(&self) -> HostAgent {
        let mut child = self
            .command(tcplab_path().to_str().unwrap())
            .arg("agent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        HostAgent {
            child,
            stdin,
            stdout,
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// One agent in a [`TestHost`].
pub struct HostAgent {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl HostAgent {
    /// The agent itself: `ip netns exec` execs it, so the pid is the same.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn reply(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.as_mut().unwrap().read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Sends one request and reads its reply.
    pub fn request(&mut self, request: &str) -> Value {
        self.send_bytes(format!("{request}\n").as_bytes());
        self.reply()
    }

    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Closes its input and waits for it to exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        self.stdin = None;
        self.child.wait().unwrap()
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The article's FIN drop, as a request.
pub const ADD_FIN_DROP: &str = r#"{"op":"add_firewall_rule","rule":{"chain":"OUTPUT","dport":8080,"tcp_flags":{"mask":["FIN"],"set":["FIN"]},"target":"DROP"}}"#;

/// The journals of sessions that ran in `host` (the journal directory is
/// shared by every namespace; each journal names its own).
pub fn journals_of(host: &TestHost) -> Vec<String> {
    let netns = std::fs::metadata(format!("/run/netns/{}", host.ns))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let Ok(files) = std::fs::read_dir("/run/tcplab/sessions") else {
        return Vec::new();
    };
    files
        .filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
        .filter(|text| serde_json::from_str::<Value>(text).is_ok_and(|j| j["netns"] == netns))
        .collect()
}
