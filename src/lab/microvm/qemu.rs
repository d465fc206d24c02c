//! The qemu command line of one microvm guest, and the choice between KVM
//! and software emulation (TCG).
//!
//! Each guest is a `q35` machine with one CPU, the Debian kernel, the
//! initramfs, and two devices: a virtio serial port named
//! `tcplab.agent` wired to qemu's own stdin and stdout (so the guest's agent
//! is spoken to exactly like a local agent process), and a virtio NIC whose
//! frames travel between the two qemu processes over an unnamed
//! `socketpair(AF_UNIX, SOCK_DGRAM)` ([`GuestLink`]): one end inherited by each
//! qemu as a file descriptor (`-netdev dgram,local.type=fd`). The pair has no
//! address, so no other process, of this user or another, can send a frame
//! into the link or read one from it; and there is no port to pick, so no
//! race for one. Nothing touches the host's network stack: no tap, bridge,
//! port or firewall change, and no root needed. (`q35` rather than
//! qemu's `microvm` machine: the latter hangs at boot under CPU contention
//! without a timer to calibrate against, and is no faster under TCG.)

use std::io::PipeWriter;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::super::error::LabError;
use super::kept_guest::KeptGuestSpec;
use crate::agent::guest_init::AGENT_PORT;

/// Guest memory. The guest needs the kernel, the initramfs (the archive
/// and its unpacked copy, 26 to 30 MiB each with a debug build of tcplab,
/// depending on the kernel's modules) and the agent. 128 MiB was too
/// little for 6.1.192's modules: the kernel gave up unpacking the
/// initramfs. qemu allocates guest memory as the guest touches it, so the
/// headroom costs nothing until used.
pub const GUEST_MEMORY_MIB: u32 = 192;
/// TCG's translated-code buffer, MiB. qemu would reserve up to 1 GiB and
/// fill it as the guest runs; 32 MiB holds what a boot and an experiment
/// translate (a smaller buffer is just retranslated more often), and keeps each qemu's memory bounded.
const TCG_BUFFER_MIB: u32 = 32;

/// `--accel`: how qemu runs the guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM if a trial boot shows that it really runs guests, TCG otherwise
    #[default]
    Auto,
    /// KVM (fails if it cannot run a guest)
    Kvm,
    /// qemu's software emulation: slower, works anywhere
    Tcg,
}

/// The accelerator used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerator {
    pub kvm: bool,
    pub why: String,
}

impl Accelerator {
    pub fn kvm(why: impl Into<String>) -> Accelerator {
        Accelerator {
            kvm: true,
            why: why.into(),
        }
    }

    pub fn tcg(why: impl Into<String>) -> Accelerator {
        Accelerator {
            kvm: false,
            why: why.into(),
        }
    }

    /// `qemu TCG: no KVM on this machine`.
    pub fn describe(&self) -> String {
        let name = if self.kvm { "KVM" } else { "TCG" };
        format!("qemu {name}: {}", self.why)
    }
}

/// Can this user open /dev/kvm? (Necessary, not sufficient: a nested KVM
/// may open and still not run a guest.)
pub fn kvm_opens() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The qemu binary, or exit 3 saying what to install.
pub fn qemu_binary() -> Result<std::path::PathBuf, LabError> {
    crate::process::find_program("qemu-system-x86_64", &["/usr/bin", "/usr/local/bin"]).ok_or_else(
        || LabError::Environment {
            host: "this machine".to_string(),
            message: "the microvm lab needs qemu-system-x86_64: apt-get install qemu-system-x86"
                .to_string(),
        },
    )
}

/// What one guest needs to know.
pub struct GuestSpec<'a> {
    pub vmlinuz: &'a Path,
    pub initramfs: &'a Path,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// This guest's end of the link.
    pub link: &'a UnixDatagram,
    /// The last byte of the NIC's MAC address.
    pub mac_suffix: u8,
    pub accelerator: &'a Accelerator,
    /// The write end of the guest's console ([`super::console`]).
    pub console: &'a PipeWriter,
    /// The kernel's boot messages too, not only emergencies and init's
    /// own (`TCPLAB_MICROVM_CONSOLE=1`).
    pub verbose: bool,
    /// qemu's end of the guest's monitor ([`super::qmp`]).
    pub monitor: &'a UnixStream,
    /// Restore this snapshot instead of booting ([`super::snapshot`]).
    pub incoming: Option<&'a Path>,
    /// A guest of a lab kept up: its name, the lab's hosts, command ports.
    pub kept: Option<&'a KeptGuestSpec>,
}

/// What the guest is: every option but the descriptors it is wired to.
/// A snapshot is only restored into a guest of exactly these options.
pub fn machine_options(guest: &GuestSpec) -> Vec<String> {
    let (accel, cpu) = if guest.accelerator.kvm {
        ("kvm".to_string(), "host")
    } else {
        (format!("tcg,tb-size={TCG_BUFFER_MIB}"), "max")
    };
    let quiet = if guest.verbose {
        ""
    } else {
        " quiet loglevel=1"
    };
    let mut options: Vec<String> = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "q35",
        "-accel",
        &accel,
        "-cpu",
        cpu,
        "-smp",
        "1",
        "-m",
        &GUEST_MEMORY_MIB.to_string(),
        "-append",
        &format!(
            "console=ttyS0 panic=-1 tcplab.addr={}/{}{quiet}{}",
            guest.address,
            guest.prefix_len,
            guest
                .kept
                .map_or_else(String::new, |kept| kept.kernel_arguments())
        ),
        "-device",
        "virtio-serial-pci",
        "-chardev",
        "stdio,id=agent,signal=off",
        "-device",
        &format!("virtserialport,chardev=agent,name={AGENT_PORT}"),
        "-device",
        &format!(
            "virtio-net-pci,netdev=link,mac=52:54:00:74:6c:{:02x}",
            guest.mac_suffix
        ),
        "-mon",
        "chardev=monitor,mode=control",
    ]
    .map(String::from)
    .into();
    // The files by path; the snapshot's key hashes what is in them.
    options.push("-kernel".into());
    options.push(guest.vmlinuz.to_string_lossy().into_owned());
    options.push("-initrd".into());
    options.push(guest.initramfs.to_string_lossy().into_owned());
    options
}

/// The qemu command for one guest.
pub fn command(qemu: &Path, guest: &GuestSpec) -> Command {
    let mut command = Command::new(qemu);
    command.args(machine_options(guest));
    let link = guest.link.as_raw_fd();
    let monitor = guest.monitor.as_raw_fd();
    let console = guest.console.as_raw_fd();
    command
        .args([
            "-netdev",
            &format!("dgram,id=link,local.type=fd,local.str={link}"),
        ])
        .args(["-chardev", &format!("socket,id=monitor,fd={monitor}")])
        // The console's pipe, reopened by qemu through /dev/fd like a file.
        .args(["-serial", &format!("file:/dev/fd/{console}")]);
    if let Some(kept) = guest.kept {
        command.args(kept.qemu_options());
    }
    if let Some(snapshot) = guest.incoming {
        // The path is the cache's own (no quote or space in it); qemu
        // hands it to a shell, so it is quoted all the same.
        let quoted = shlex::try_quote(&snapshot.to_string_lossy())
            .map_or_else(|_| String::from("/dev/null"), |q| q.into_owned());
        command.args(["-incoming", &format!("exec:cat {quoted}")]);
    }
    for fd in [link, monitor, console] {
        inherit(&mut command, fd);
    }
    command
}

/// Both ends of a guest's monitor: tcplab's and qemu's.
pub fn monitor_pair() -> Result<(UnixStream, UnixStream), LabError> {
    UnixStream::pair().map_err(|e| LabError::Setup(format!("socketpair for a qemu monitor: {e}")))
}

/// The link between two guests: the two ends of one unnamed datagram
/// socketpair, each frame one datagram. Held until both qemu processes have
/// started (each keeps its own copy of its end).
pub struct GuestLink {
    pub c1: UnixDatagram,
    pub c2: UnixDatagram,
}

impl GuestLink {
    pub fn new() -> Result<GuestLink, LabError> {
        let (c1, c2) = UnixDatagram::pair()
            .map_err(|e| LabError::Setup(format!("socketpair for the guests' link: {e}")))?;
        Ok(GuestLink { c1, c2 })
    }
}

/// Lets the child of `command` keep `fd` across exec (std opens every
/// descriptor close-on-exec): the number stays the same, so the command
/// line can name it.
fn inherit(command: &mut Command, fd: RawFd) {
    // SAFETY: fcntl(2) is async-signal-safe and touches only this child's
    // copy of a descriptor the parent keeps open until the child has started.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_stays_on_loopback_and_the_agent_on_stdio() {
        let accelerator = Accelerator::tcg("no KVM on this machine");
        let link = GuestLink::new().unwrap();
        let (_console, writer) = std::io::pipe().unwrap();
        let monitor = monitor_pair().unwrap();
        let guest = GuestSpec {
            vmlinuz: Path::new("/k"),
            initramfs: Path::new("/i"),
            address: "10.211.55.5".parse().unwrap(),
            prefix_len: 24,
            link: &link.c1,
            mac_suffix: 5,
            accelerator: &accelerator,
            console: &writer,
            verbose: false,
            monitor: &monitor.1,
            incoming: None,
            kept: None,
        };
        let command = command(Path::new("qemu-system-x86_64"), &guest);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        let fd = link.c1.as_raw_fd();
        assert!(
            line.contains(&format!("dgram,id=link,local.type=fd,local.str={fd}")),
            "{line}"
        );
        assert!(
            !line.contains("udp=") && !line.contains("127.0.0.1"),
            "{line}"
        );
        assert!(line.contains("-accel tcg,tb-size="), "{line}");
        assert!(line.contains("tcplab.addr=10.211.55.5/24"), "{line}");
        assert!(line.contains("stdio,id=agent"), "{line}");
        let console = format!("-serial file:/dev/fd/{}", writer.as_raw_fd());
        assert!(line.contains(&console), "{line}");
        assert!(!line.contains("tap") && !line.contains("bridge"), "{line}");
        let monitor = format!("socket,id=monitor,fd={}", monitor.1.as_raw_fd());
        assert!(
            line.contains(&monitor) && !line.contains("-incoming"),
            "{line}"
        );
        assert_eq!(accelerator.describe(), "qemu TCG: no KVM on this machine");
    }
}
