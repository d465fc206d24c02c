//! One microvm guest, owned in one place from its plan to a ready agent:
//! what it is (a [`GuestSpec`]), the wiring qemu inherits (console and
//! monitor), the qemu process (behind an [`AgentConnection`]) and the first
//! words with its agent.
//!
//! A boot goes plan → command → spawn → ready, and nothing else in the lab
//! opens a console, a monitor or a qemu: [`GuestPair`] does the same for c1
//! and c2 side by side, and says on failure which guest printed what.

use std::io::PipeWriter;
use std::net::IpAddr;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::super::agent_connection::{AgentConnection, LossWatch};
use super::super::error::LabError;
use super::console::GuestConsole;
use super::kept_guest::KeptGuestSpec;
use super::qemu::{self, Accelerator, GuestSpec};
use crate::interrupt::Interrupt;

/// What both guests of a boot share: the kernel, the initramfs, the
/// accelerator and how much of the console to show.
#[derive(Clone, Copy)]
pub struct GuestBase<'a> {
    pub vmlinuz: &'a Path,
    pub initramfs: &'a Path,
    pub prefix_len: u8,
    pub accelerator: &'a Accelerator,
    /// Boot messages too (`TCPLAB_MICROVM_CONSOLE=1`).
    pub verbose: bool,
}

/// One guest before qemu starts: its options and the ends of its console
/// and monitor that qemu will inherit.
pub struct GuestPlan<'a> {
    name: &'static str,
    base: GuestBase<'a>,
    address: IpAddr,
    link: &'a UnixDatagram,
    mac_suffix: u8,
    /// Restore this snapshot instead of booting.
    pub incoming: Option<&'a Path>,
    /// A guest of a lab kept up.
    pub kept: Option<KeptGuestSpec>,
    wiring: GuestWiring,
}

/// The guest's console and monitor: our ends, and the ends qemu inherits.
pub struct GuestWiring {
    console: GuestConsole,
    console_writer: PipeWriter,
    monitor: UnixStream,
    monitor_qemu: UnixStream,
}

impl<'a> GuestPlan<'a> {
    /// Opens the guest's console (echoed on stderr with `echo`) and monitor.
    pub fn new(
        name: &'static str,
        base: GuestBase<'a>,
        address: IpAddr,
        link: &'a UnixDatagram,
        mac_suffix: u8,
        echo: bool,
    ) -> Result<GuestPlan<'a>, LabError> {
        let (console, console_writer) = GuestConsole::open(name, echo)?;
        let (monitor, monitor_qemu) = qemu::monitor_pair()?;
        Ok(GuestPlan {
            name,
            base,
            address,
            link,
            mac_suffix,
            incoming: None,
            kept: None,
            wiring: GuestWiring {
                console,
                console_writer,
                monitor,
                monitor_qemu,
            },
        })
    }

    /// What the guest is, as qemu and the snapshot key see it.
    pub fn spec(&self) -> GuestSpec<'_> {
        GuestSpec {
            vmlinuz: self.base.vmlinuz,
            initramfs: self.base.initramfs,
            address: self.address,
            prefix_len: self.base.prefix_len,
            link: self.link,
            mac_suffix: self.mac_suffix,
            accelerator: self.base.accelerator,
            console: &self.wiring.console_writer,
            verbose: self.base.verbose,
            monitor: &self.wiring.monitor_qemu,
            incoming: self.incoming,
            kept: self.kept.as_ref(),
        }
    }

    /// The qemu command line; the plan must outlive the spawn (qemu
    /// inherits its descriptors).
    pub fn command(&self, qemu_binary: &Path) -> Command {
        qemu::command(qemu_binary, &self.spec())
    }

    /// Starts qemu. Its copies of the console and the monitor are closed
    /// here, so a console reaches its end when its qemu exits.
    pub fn spawn(
        self,
        qemu_binary: &Path,
        interrupt: &Interrupt,
        loss: &LossWatch,
    ) -> Result<Guest, LabError> {
        let agent = AgentConnection::spawn(self.name, self.command(qemu_binary), interrupt, loss)?;
        Ok(Guest {
            agent,
            console: self.wiring.console,
            monitor: self.wiring.monitor,
        })
    }

    /// The wiring alone, for a qemu started by someone else (`lab boot`):
    /// keep it until that qemu is gone.
    pub fn into_wiring(self) -> GuestWiring {
        self.wiring
    }
}

/// One running guest: its agent, what its console said, its monitor.
pub struct Guest {
    pub agent: AgentConnection,
    pub console: GuestConsole,
    pub monitor: UnixStream,
}

/// c1 and c2 started side by side.
pub struct GuestPair {
    pub c1: Guest,
    pub c2: Guest,
}

/// Both agents answered: the connections, the monitors (for saving the
/// guests) and the Linux release both run.
pub struct ReadyPair {
    pub c1: AgentConnection,
    pub c2: AgentConnection,
    pub monitors: [UnixStream; 2],
    pub release: String,
}

impl GuestPair {
    /// Starts both guests; if c2 cannot start, c1 is shut down again.
    pub async fn spawn(
        plans: [GuestPlan<'_>; 2],
        qemu_binary: &Path,
        interrupt: &Interrupt,
        loss: &LossWatch,
    ) -> Result<GuestPair, LabError> {
        let [c1, c2] = plans;
        let c1 = c1.spawn(qemu_binary, interrupt, loss)?;
        match c2.spawn(qemu_binary, interrupt, loss) {
            Ok(c2) => Ok(GuestPair { c1, c2 }),
            Err(error) => {
                let _ = c1.agent.shutdown().await;
                Err(error)
            }
        }
    }

    /// Waits up to `patience` for both agents. On failure both guests are
    /// shut down and the error carries the failed guest's last console
    /// lines (read after its qemu ended, so they are all there).
    pub async fn ready(self, patience: Duration) -> Result<ReadyPair, LabError> {
        let GuestPair { mut c1, mut c2 } = self;
        let (c1_hello, c2_hello) = tokio::join!(
            c1.agent.hello_within(patience),
            c2.agent.hello_within(patience)
        );
        let release = match (c1_hello, c2_hello) {
            (Ok(a), Ok(b)) if a == b => a,
            (Ok(a), Ok(b)) => format!("{a} on c1, {b} on c2"),
            (Err(error), _) | (_, Err(error)) => {
                let _ = tokio::join!(c1.agent.shutdown(), c2.agent.shutdown());
                let console = match &error {
                    LabError::AgentLost { host, .. } | LabError::Timeout { host, .. }
                        if host == "c1" =>
                    {
                        &c1.console
                    }
                    _ => &c2.console,
                };
                return Err(console.explain(error));
            }
        };
        Ok(ReadyPair {
            c1: c1.agent,
            c2: c2.agent,
            monitors: [c1.monitor, c2.monitor],
            release,
        })
    }
}
