//! The qemu command line of one microvm guest, and the choice between KVM
//! and software emulation (TCG).
//!
//! Each guest is a `q35` machine with one CPU, the Debian kernel, the
//! initramfs, and two devices: a virtio serial port named
//! `tcplab.agent` wired to qemu's own stdin and stdout (so the guest's agent
//! is spoken to exactly like a local agent process), and a virtio NIC whose
//! frames travel as UDP datagrams between the two qemu processes on
//! 127.0.0.1. Nothing touches the host's network stack beyond loopback: no
//! tap, bridge or firewall change, and no root needed. (`q35` rather than
//! qemu's `microvm` machine: the latter hangs at boot under CPU contention
//! without a timer to calibrate against, and is no faster under TCG.)

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use super::super::error::LabError;
use crate::agent::guest_init::AGENT_PORT;

/// Guest memory. The guest needs the kernel, the initramfs (the archive
/// and its unpacked copy, ~30 MiB each with a debug build of tcplab) and the
/// agent; 128 MiB leaves room for the experiments' sockets.
pub const GUEST_MEMORY_MIB: u32 = 128;
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
    /// This guest's and the other guest's UDP port on 127.0.0.1.
    pub local_port: u16,
    pub peer_port: u16,
    /// The last byte of the NIC's MAC address.
    pub mac_suffix: u8,
    pub accelerator: &'a Accelerator,
    /// Show the guest's console on stderr (`TCPLAB_MICROVM_CONSOLE=1`).
    pub console: bool,
}

/// The qemu command for one guest.
pub fn command(qemu: &Path, guest: &GuestSpec) -> Command {
    let mut command = Command::new(qemu);
    let (accel, cpu) = if guest.accelerator.kvm {
        ("kvm".to_string(), "host")
    } else {
        (format!("tcg,tb-size={TCG_BUFFER_MIB}"), "max")
    };
    let quiet = if guest.console {
        ""
    } else {
        " quiet loglevel=1"
    };
    command
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-machine", "q35"])
        .args(["-accel", &accel])
        .args(["-cpu", cpu, "-smp", "1"])
        .args(["-m", &GUEST_MEMORY_MIB.to_string()])
        .arg("-kernel")
        .arg(guest.vmlinuz)
        .arg("-initrd")
        .arg(guest.initramfs)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 tcplab.addr={}/{}{quiet}",
            guest.address, guest.prefix_len
        ))
        .args(["-device", "virtio-serial-pci"])
        .args(["-chardev", "stdio,id=agent,signal=off"])
        .args([
            "-device",
            &format!("virtserialport,chardev=agent,name={AGENT_PORT}"),
        ])
        .args([
            "-netdev",
            &format!(
                "socket,id=link,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
                guest.peer_port, guest.local_port
            ),
        ])
        .args([
            "-device",
            &format!(
                "virtio-net-pci,netdev=link,mac=52:54:00:74:6c:{:02x}",
                guest.mac_suffix
            ),
        ]);
    if guest.console {
        command.args(["-serial", "file:/dev/stderr"]);
    } else {
        command.args(["-serial", "none"]);
    }
    command
}

/// Two UDP ports on 127.0.0.1 that are free right now, for the link.
pub fn free_udp_ports() -> Result<(u16, u16), LabError> {
    let bind = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| LabError::Setup(format!("finding a free UDP port on 127.0.0.1: {e}")))
    };
    let port = |socket: &std::net::UdpSocket| {
        socket
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| LabError::Setup(format!("reading a UDP port: {e}")))
    };
    // Both held at once, so they differ.
    let (first, second) = (bind()?, bind()?);
    Ok((port(&first)?, port(&second)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_stays_on_loopback_and_the_agent_on_stdio() {
        let accelerator = Accelerator::tcg("no KVM on this machine");
        let guest = GuestSpec {
            vmlinuz: Path::new("/k"),
            initramfs: Path::new("/i"),
            address: "10.211.55.5".parse().unwrap(),
            prefix_len: 24,
            local_port: 40001,
            peer_port: 40002,
            mac_suffix: 5,
            accelerator: &accelerator,
            console: false,
        };
        let command = command(Path::new("qemu-system-x86_64"), &guest);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(
            line.contains("udp=127.0.0.1:40002,localaddr=127.0.0.1:40001"),
            "{line}"
        );
        assert!(line.contains("-accel tcg,tb-size="), "{line}");
        assert!(line.contains("tcplab.addr=10.211.55.5/24"), "{line}");
        assert!(line.contains("stdio,id=agent"), "{line}");
        assert!(!line.contains("tap") && !line.contains("bridge"), "{line}");
        assert_eq!(accelerator.describe(), "qemu TCG: no KVM on this machine");
        let (a, b) = free_udp_ports().unwrap();
        assert_ne!(a, b);
    }
}
