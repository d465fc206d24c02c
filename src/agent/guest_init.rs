//! tcplab as the init (PID 1) of a microvm lab guest: the whole userland of
//! a VM that exists to run one agent.
//!
//! The microvm lab boots a Debian kernel with an initramfs holding this very
//! executable as `/init`, its libraries, iptables and the kernel modules the
//! agent needs (see `lab::microvm::initramfs`). Being init ourselves, rather
//! than a shell script under busybox, means no second userland to build or
//! trust: the same code mounts the pseudo file systems, loads the modules in
//! dependency order (`finit_module`, the order comes from the host in
//! `/lib/modules/load-order`), brings the link up over rtnetlink (the
//! agent's own link code) and then becomes the agent, reading requests on
//! the virtio serial port named [`AGENT_PORT`]. When the agent leaves, the
//! guest powers off and qemu exits.
//!
//! The kernel command line carries the link's address: `tcplab.addr=IP/LEN`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use super::AgentOptions;
use crate::agent::kernel::link::LinkConfigurator;

/// The name of the virtio serial port the agent speaks on.
pub const AGENT_PORT: &str = "tcplab.agent";
/// The file listing the modules to load, one path per line, dependencies first.
pub const LOAD_ORDER: &str = "/lib/modules/load-order";
/// The initramfs's last file. The kernel goes on booting when it runs out
/// of memory while unpacking the initramfs (it says "Initramfs unpacking
/// failed" and keeps what it had), so init checks for it rather than fail
/// later for a missing iptables or module.
pub const UNPACKED_WHOLE: &str = "/.tcplab-initramfs-unpacked-whole";

/// Are we the init of a microvm guest? Only as PID 1 started as `/init`
/// (the initramfs's name for us) under a kernel command line that says
/// `tcplab.addr=`; a container's or `unshare -pf`'s PID 1 is a plain tcplab.
pub fn is_guest_init() -> bool {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    // Before init mounts it, a guest has no /proc: then the other two decide.
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok();
    guest_init_wanted(std::process::id(), &argv0, cmdline.as_deref())
}

fn guest_init_wanted(pid: u32, argv0: &std::ffi::OsStr, cmdline: Option<&str>) -> bool {
    pid == 1
        && argv0 == "/init"
        && cmdline.is_none_or(|line| {
            line.split_whitespace()
                .any(|w| w.starts_with("tcplab.addr="))
        })
}

/// Runs the guest and never returns: init must not exit.
pub fn run() -> ! {
    if let Err(error) = boot_and_serve() {
        let _ = writeln!(std::io::stderr(), "tcplab init: {error:#}");
    }
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn boot_and_serve() -> anyhow::Result<()> {
    mount_pseudo_filesystems()?;
    if !Path::new(UNPACKED_WHOLE).exists() {
        return Err(anyhow!(
            "the kernel did not unpack the whole initramfs (its last file {UNPACKED_WHOLE} \
             is missing): the guest's memory is too small for it"
        ));
    }
    // SAFETY: setting variables before any thread exists.
    unsafe { std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin") };
    load_modules()?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    let (address, prefix_len) = link_address(&cmdline)?;
    configure_link(address, prefix_len)?;
    if let Some(kept) = KeptGuest::from_cmdline(&cmdline) {
        kept.set_up()?;
    }
    let port = wait_for_port(AGENT_PORT);
    let channel = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&port)
        .with_context(|| format!("opening {}", port.display()))?;
    // One descriptor for both directions: a virtio port opens once.
    nix::unistd::dup2_stdin(&channel).context("dup2 to stdin")?;
    nix::unistd::dup2_stdout(&channel).context("dup2 to stdout")?;
    drop(channel);
    super::run(AgentOptions::default())
}

fn mount_pseudo_filesystems() -> anyhow::Result<()> {
    use nix::mount::{MsFlags, mount};
    for (source, target, kind) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/run", "tmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ] {
        std::fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
        mount(
            Some(source),
            target,
            Some(kind),
            MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting {kind} on {target}"))?;
    }
    Ok(())
}

/// Loads each module of the load order; one the kernel already has (built in
/// or loaded) is fine.
fn load_modules() -> anyhow::Result<()> {
    let Ok(order) = std::fs::read_to_string(LOAD_ORDER) else {
        return Ok(());
    };
    for path in order.lines().filter(|l| !l.is_empty()) {
        let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
        match nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(errno) => return Err(anyhow!("loading {path}: {errno}")),
        }
    }
    Ok(())
}

/// `tcplab.addr=10.211.55.5/24` from the kernel command line.
pub fn link_address(cmdline: &str) -> anyhow::Result<(std::net::IpAddr, u8)> {
    let value = cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("tcplab.addr="))
        .ok_or_else(|| anyhow!("no tcplab.addr= on the kernel command line"))?;
    let (address, prefix) = value
        .split_once('/')
        .ok_or_else(|| anyhow!("tcplab.addr={value}: expected ADDRESS/PREFIX"))?;
    Ok((
        address
            .parse()
            .with_context(|| format!("tcplab.addr={value}"))?,
        prefix
            .parse()
            .with_context(|| format!("tcplab.addr={value}"))?,
    ))
}

/// The first network interface besides `lo`, with the link's address.
fn configure_link(address: std::net::IpAddr, prefix_len: u8) -> anyhow::Result<()> {
    let (started, mut slow) = (Instant::now(), SlowBootNote::default());
    let name = loop {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .context("reading /sys/class/net")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name != "lo")
            .collect();
        names.sort();
        if let Some(name) = names.into_iter().next() {
            break name;
        }
        slow.note(started, "no network interface has appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for rtnetlink")?;
    runtime
        .block_on(async {
            LinkConfigurator::open()?
                .configure(&name, address, prefix_len)
                .await
        })
        .map_err(|e| anyhow!("configuring {name}: {e}"))
}

/// Says once on the console that a boot step is slow, and never gives up:
/// how long a boot may take is the host's to decide (its boot deadline
/// holds whatever the load), and a guest that gave up on its own after a
/// fixed time would fail only on a busy machine.
#[derive(Default)]
struct SlowBootNote {
    said: bool,
}

impl SlowBootNote {
    const AFTER: Duration = Duration::from_secs(10);

    fn note(&mut self, started: Instant, what: &str) {
        if !self.said && started.elapsed() > Self::AFTER {
            self.said = true;
            let _ = writeln!(
                std::io::stderr(),
                "tcplab init: {what} after {} s; still waiting",
                Self::AFTER.as_secs()
            );
        }
    }
}

/// A guest of a lab kept up (`tcplab lab up --lab microvm`): its name, the
/// lab's hosts by name, and command ports to serve
/// (`tcplab.host=c2 tcplab.hosts=c1=10.211.55.5,c2=10.211.55.10 tcplab.exec=4`).
struct KeptGuest {
    name: String,
    hosts: Vec<(String, String)>,
    exec_ports: usize,
}

impl KeptGuest {
    fn from_cmdline(cmdline: &str) -> Option<KeptGuest> {
        let value = |key: &str| {
            cmdline
                .split_whitespace()
                .find_map(|word| word.strip_prefix(key))
        };
        let exec_ports = value("tcplab.exec=")?.parse().ok()?;
        let hosts = value("tcplab.hosts=")
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, address)| (name.to_string(), address.to_string()))
            .collect();
        Some(KeptGuest {
            name: value("tcplab.host=")?.to_string(),
            hosts,
            exec_ports,
        })
    }

    /// The hosts file and the hostname a person's commands expect (`nc c2
    /// 8080`), and a thread serving each command port.
    fn set_up(&self) -> anyhow::Result<()> {
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, address) in &self.hosts {
            hosts.push_str(&format!("{address} {name}\n"));
        }
        std::fs::create_dir_all("/etc").context("creating /etc")?;
        // Terminals for `lab shell` and commands run on one.
        std::fs::create_dir_all("/dev/pts").context("creating /dev/pts")?;
        nix::mount::mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            nix::mount::MsFlags::empty(),
            Some("ptmxmode=0666"),
        )
        .context("mounting devpts on /dev/pts")?;
        std::fs::write("/etc/hosts", hosts).context("writing /etc/hosts")?;
        nix::unistd::sethostname(&self.name).context("setting the hostname")?;
        for index in 0..self.exec_ports {
            let name = crate::protocol::exec_channel::exec_port_name(index);
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || super::guest_exec::serve_port(&wait_for_port(&name)))
                .context("starting a command port's thread")?;
        }
        Ok(())
    }
}

/// The device of the virtio serial port named `wanted`.
fn wait_for_port(wanted: &str) -> PathBuf {
    let (started, mut slow) = (Instant::now(), SlowBootNote::default());
    loop {
        if let Ok(ports) = std::fs::read_dir("/sys/class/virtio-ports") {
            for port in ports.filter_map(|p| p.ok()) {
                let name = std::fs::read_to_string(port.path().join("name")).unwrap_or_default();
                let device = Path::new("/dev").join(port.file_name());
                if name.trim() == wanted && device.exists() {
                    return device;
                }
            }
        }
        slow.note(
            started,
            &format!("the virtio port {wanted} has not appeared"),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_pid_1_as_init_under_a_tcplab_kernel_line_is_the_guest_init() {
        use std::ffi::OsStr;
        let line = "console=ttyS0 panic=-1 tcplab.addr=10.211.55.5/24 quiet";
        assert!(guest_init_wanted(1, OsStr::new("/init"), Some(line)));
        assert!(guest_init_wanted(1, OsStr::new("/init"), None));
        // docker run … tcplab all; unshare -pf tcplab …; a host's PID 1.
        assert!(!guest_init_wanted(1, OsStr::new("tcplab"), Some(line)));
        assert!(!guest_init_wanted(
            1,
            OsStr::new("/usr/local/bin/tcplab"),
            None
        ));
        assert!(!guest_init_wanted(
            1,
            OsStr::new("/init"),
            Some("root=/dev/vda1 quiet")
        ));
        assert!(!guest_init_wanted(7, OsStr::new("/init"), Some(line)));
    }
    use super::*;

    #[test]
    fn a_kept_guest_reads_its_name_hosts_and_ports_from_the_command_line() {
        let line = "quiet tcplab.addr=10.211.55.10/24 tcplab.host=c2 \
                    tcplab.hosts=c1=10.211.55.5,c2=10.211.55.10 tcplab.exec=4";
        let kept = KeptGuest::from_cmdline(line).unwrap();
        assert_eq!(kept.name, "c2");
        assert_eq!(kept.exec_ports, 4);
        assert_eq!(kept.hosts[0], ("c1".to_string(), "10.211.55.5".to_string()));
        assert!(KeptGuest::from_cmdline("quiet tcplab.addr=10.211.55.10/24").is_none());
    }

    #[test]
    fn reads_the_address_from_the_kernel_command_line() {
        let (address, prefix) =
            link_address("console=ttyS0 quiet tcplab.addr=10.211.55.5/24 panic=-1").unwrap();
        assert_eq!(address.to_string(), "10.211.55.5");
        assert_eq!(prefix, 24);
        assert!(link_address("quiet").is_err());
        assert!(link_address("tcplab.addr=10.0.0.1").is_err());
    }
}
