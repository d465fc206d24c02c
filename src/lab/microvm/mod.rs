//! The microvm lab: c1 and c2 as two qemu VMs, each with its own Linux
//! kernel, booted by tcplab itself in seconds, with or without KVM.
//!
//! The other labs either share this machine's kernel (netns) or need VMs
//! someone else started (ssh, Vagrant). Here tcplab boots a Debian cloud
//! kernel (or one of the user's) with an initramfs in which tcplab itself is
//! init and then the agent ([`initramfs`], `agent::guest_init`). Each qemu
//! is an agent process as far as the rest of tcplab is concerned: its stdin
//! and stdout carry the agent protocol (a virtio serial port in the guest),
//! so [`AgentConnection`] drives it unchanged, and qemu dies with the
//! orchestrator (`PR_SET_PDEATHSIG`) like any agent. The guests' link is UDP
//! on 127.0.0.1 between the two qemu processes ([`qemu`]): no root, no
//! bridge, no firewall change on this machine. Cases run in turn on the two
//! long-lived VMs, each on ports no earlier case's orphaned socket holds, as
//! on real hosts.

pub mod console;
pub mod initramfs;
pub mod kernel;
pub mod kernel_archive;
pub mod kernel_fetch;
pub mod kernel_listing;
pub mod qemu;
pub mod qmp;
pub mod snapshot;
pub mod warm_start;

use std::time::Duration;

use super::addressing::ExperimentLink;
use super::agent_connection::{AgentConnection, LossWatch};
use super::error::LabError;
use super::host_pair::{CaseIsolation, LabHostPair, LabInfo};
use super::hosts::{Family, LabHosts};
use super::seam::LabKind;
use super::ssh::LocalExecutable;
use crate::interrupt::Interrupt;
use console::GuestConsole;
use kernel::{Kernel, KernelChoice};
use qemu::{AccelChoice, Accelerator, GuestSpec};
use warm_start::{GuestSnapshots, Snapshots};

/// How long a guest may take from qemu's start to a ready agent. Its own
/// deadline, not the 10 s of a request: under software emulation on a busy
/// machine a boot takes seconds to tens of seconds.
fn boot_timeout() -> Duration {
    std::env::var("TCPLAB_BOOT_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(180), Duration::from_secs)
}

/// How long a trial boot with KVM may take before KVM counts as broken (a
/// KVM guest is ready in about a second).
const KVM_TRIAL: Duration = Duration::from_secs(15);

/// What a trial boot found out about KVM on this machine, remembered in the
/// cache until the machine reboots (keyed by the kernel's boot id), so that
/// a broken KVM costs one trial, not one per run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KvmVerdict {
    Works,
    Fails(String),
}

impl KvmVerdict {
    fn path() -> std::path::PathBuf {
        kernel::cache_dir().join("kvm-verdict")
    }

    fn boot_id() -> String {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_string())
            .unwrap_or_default()
    }

    fn remembered() -> Option<KvmVerdict> {
        crate::lab::cache::trusted_cache_dir().ok()?;
        let text = std::fs::read_to_string(Self::path()).ok()?;
        let mut fields = text.splitn(3, '\t');
        let (boot, verdict, why) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
        if boot != Self::boot_id() {
            return None;
        }
        match verdict {
            "works" => Some(KvmVerdict::Works),
            "fails" => Some(KvmVerdict::Fails(why.trim().to_string())),
            _ => None,
        }
    }

    fn remember(&self) {
        let (verdict, why) = match self {
            KvmVerdict::Works => ("works", ""),
            KvmVerdict::Fails(why) => ("fails", why.as_str()),
        };
        if crate::lab::cache::trusted_cache_dir().is_ok() {
            let text = format!("{}\t{verdict}\t{why}\n", Self::boot_id());
            let _ = crate::lab::cache::write_atomically(&Self::path(), text.as_bytes());
        }
    }
}

/// What a boot starts qemu with.
#[derive(Clone, Copy)]
struct BootFiles<'a> {
    qemu: &'a std::path::Path,
    kernel: &'a Kernel,
    initramfs: &'a std::path::Path,
}

/// The lab as the user asked for it.
pub struct MicrovmLab {
    pub kernel: KernelChoice,
    pub accel: AccelChoice,
    /// `--cold`: boot, never restore or save a snapshot.
    pub cold: bool,
    pub why: String,
    pub hosts: LabHosts,
}

impl LabKind for MicrovmLab {
    fn describe(&self) -> LabInfo {
        let (c1, c2, prefix_len) = self.hosts.addresses(Family::V4);
        LabInfo::of_link(
            "microvm",
            self.why.clone(),
            &ExperimentLink {
                c1: Some(c1),
                c2,
                prefix_len,
            },
            format!(
                "two qemu VMs booted by tcplab, kernel {}",
                self.kernel.label()
            ),
        )
    }

    fn isolation(&self) -> CaseIsolation {
        CaseIsolation::SharedHosts
    }

    /// Boots c1 and c2 and waits for both agents.
    async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        let qemu = qemu::qemu_binary()?;
        let choice = self.kernel.clone();
        let (kernel, initramfs) = tokio::task::spawn_blocking(move || prepare(&choice))
            .await
            .map_err(|e| LabError::Setup(format!("preparing the kernel: {e}")))??;
        let mut accelerator = match self.accel {
            AccelChoice::Tcg => Accelerator::tcg("--accel tcg"),
            AccelChoice::Kvm => Accelerator {
                kvm: true,
                why: "--accel kvm".into(),
            },
            AccelChoice::Auto => match (qemu::kvm_opens(), KvmVerdict::remembered()) {
                (Err(why), _) => Accelerator::tcg(format!("no KVM on this machine ({why})")),
                (Ok(()), Some(KvmVerdict::Fails(why))) => Accelerator::tcg(why),
                (Ok(()), _) => Accelerator {
                    kvm: true,
                    why: "/dev/kvm runs guests".into(),
                },
            },
        };
        let snapshots = if self.cold {
            Snapshots::Off
        } else {
            Snapshots::Use
        };
        let boot = |accelerator: Accelerator, patience: Duration, snapshots| {
            let files = BootFiles {
                qemu: &qemu,
                kernel: &kernel,
                initramfs: &initramfs,
            };
            self.boot_pair(files, accelerator, patience, snapshots, interrupt)
        };
        let pair = if accelerator.kvm && self.accel == AccelChoice::Auto {
            // "Opens" is not "works": a nested KVM may abort or hang. Try it,
            // briefly, and fall back to software emulation.
            // The verdict holds until this machine reboots.
            match boot(accelerator.clone(), KVM_TRIAL, Snapshots::Off).await {
                Ok(pair) => {
                    KvmVerdict::Works.remember();
                    pair
                }
                Err(LabError::Interrupted(signal)) => return Err(LabError::Interrupted(signal)),
                Err(error) => {
                    let why = format!(
                        "/dev/kvm opens but a KVM guest did not boot within {} s ({error}; \
                         --accel kvm to insist)",
                        KVM_TRIAL.as_secs()
                    );
                    KvmVerdict::Fails(why.clone()).remember();
                    accelerator = Accelerator::tcg(why);
                    boot(accelerator.clone(), boot_timeout(), snapshots).await?
                }
            }
        } else {
            boot(accelerator.clone(), boot_timeout(), snapshots).await?
        };
        Ok(pair)
    }

    async fn clean(&self, _: &Interrupt) -> Result<Vec<String>, LabError> {
        Ok(vec![
            "microvm: nothing to clean; its VMs end with the run that booted them".into(),
        ])
    }
}

impl MicrovmLab {
    /// Boots (or, with `snapshots`, restores) c1 and c2 and waits for both
    /// agents. A restore that fails boots cold instead, and says so.
    async fn boot_pair(
        &self,
        files: BootFiles<'_>,
        accelerator: Accelerator,
        patience: Duration,
        snapshots: Snapshots,
        interrupt: &Interrupt,
    ) -> Result<LabHostPair, LabError> {
        let BootFiles {
            qemu,
            kernel,
            initramfs,
        } = files;
        let (c1_addr, c2_addr, prefix_len) = self.hosts.addresses(Family::V4);
        let link = qemu::GuestLink::new()?;
        let verbose = console_wanted();
        let (c1_console, c1_writer) = GuestConsole::open("c1", verbose)?;
        let (c2_console, c2_writer) = GuestConsole::open("c2", verbose)?;
        let (c1_monitor, c1_monitor_qemu) = qemu::monitor_pair()?;
        let (c2_monitor, c2_monitor_qemu) = qemu::monitor_pair()?;
        let spec = |address, link, mac_suffix, console, monitor| GuestSpec {
            vmlinuz: &kernel.vmlinuz,
            initramfs,
            address,
            prefix_len,
            link,
            mac_suffix,
            accelerator: &accelerator,
            console,
            verbose,
            monitor,
            incoming: None,
        };
        let mut c1_spec = spec(c1_addr, &link.c1, 5, &c1_writer, &c1_monitor_qemu);
        let mut c2_spec = spec(c2_addr, &link.c2, 10, &c2_writer, &c2_monitor_qemu);
        let saved =
            GuestSnapshots::find(snapshots, &kernel.release, initramfs, [&c1_spec, &c2_spec]);
        let restoring = saved.as_ref().filter(|s| s.restore);
        if let Some(saved) = restoring {
            c1_spec.incoming = Some(&saved.paths[0]);
            c2_spec.incoming = Some(&saved.paths[1]);
        }
        let loss = LossWatch::default();
        let booting = std::time::Instant::now();
        let c1 = AgentConnection::spawn("c1", qemu::command(qemu, &c1_spec), interrupt, &loss)?;
        let c2 = match AgentConnection::spawn("c2", qemu::command(qemu, &c2_spec), interrupt, &loss)
        {
            Ok(c2) => c2,
            Err(error) => {
                let _ = c1.shutdown().await;
                return Err(error);
            }
        };
        // qemu has its copies: a console reaches its end when its qemu exits.
        drop((c1_writer, c2_writer, c1_monitor_qemu, c2_monitor_qemu));
        let mut info = self.describe();
        let mut pair = LabHostPair {
            c1,
            c2,
            link: ExperimentLink {
                c1: Some(c1_addr),
                c2: c2_addr,
                prefix_len,
            },
            info: info.clone(),
        };
        let (c1, c2) = tokio::join!(
            pair.c1.hello_within(patience),
            pair.c2.hello_within(patience)
        );
        let release = match (c1, c2) {
            (Ok(c1), Ok(c2)) if c1 == c2 => c1,
            (Ok(c1), Ok(c2)) => format!("{c1} on c1, {c2} on c2"),
            (Err(error), _) | (_, Err(error)) if restoring.is_some() => {
                let _ = pair.shutdown().await;
                eprintln!(
                    "tcplab: restoring the saved guests of {} failed ({error}); booting cold",
                    kernel.release
                );
                if let Some(saved) = restoring {
                    saved.discard();
                }
                let retry =
                    self.boot_pair(files, accelerator, patience, Snapshots::SaveOnly, interrupt);
                return Box::pin(retry).await;
            }
            (Err(error), _) | (_, Err(error)) => {
                let _ = pair.shutdown().await;
                // The guest that failed says why on its console, if anywhere.
                let console = match &error {
                    LabError::AgentLost { host, .. } | LabError::Timeout { host, .. }
                        if host == "c1" =>
                    {
                        &c1_console
                    }
                    _ => &c2_console,
                };
                return Err(console.explain(error));
            }
        };
        info.hosts = format!(
            "two qemu VMs booted by tcplab: Linux {release} on c1 and c2, {}",
            accelerator.describe()
        );
        info.kernel = Some(release);
        match &saved {
            Some(saved) if saved.restore => warm_start::freshen_both(&mut pair).await?,
            Some(saved) => warm_start::save_both(&saved.paths, [c1_monitor, c2_monitor]).await,
            None => {}
        }
        info.boot = Some(if restoring.is_some() {
            "restored"
        } else {
            "cold"
        });
        info.boot_ms = Some(booting.elapsed().as_millis() as u64);
        info.accelerator = Some(if accelerator.kvm { "kvm" } else { "tcg" });
        pair.info = info;
        Ok(pair)
    }
}

impl MicrovmLab {
    /// The qemu command of one guest (c2's address, a link whose other end
    /// nobody reads) whose stdin and stdout are its agent: `tcplab lab boot`,
    /// for talking to a kernel's agent by hand. Software emulation unless
    /// `--accel kvm`: one VM needs no trial boot to decide. Keep the
    /// wiring until the VM is gone.
    pub fn single_guest(&self) -> Result<(std::process::Command, SingleGuestWiring), LabError> {
        let qemu = qemu::qemu_binary()?;
        let (kernel, initramfs) = prepare(&self.kernel)?;
        let accelerator = match self.accel {
            AccelChoice::Kvm => Accelerator {
                kvm: true,
                why: "--accel kvm".into(),
            },
            _ => Accelerator::tcg("one VM: software emulation unless --accel kvm"),
        };
        let (_, address, prefix_len) = self.hosts.addresses(Family::V4);
        let link = qemu::GuestLink::new()?;
        let verbose = console_wanted();
        // One VM by hand: its console goes to stderr as it comes.
        let (console, writer) = GuestConsole::open("c2", true)?;
        // Always booted: a VM typed at by hand is not saved or restored.
        let monitor = qemu::monitor_pair()?;
        let command = qemu::command(
            &qemu,
            &GuestSpec {
                vmlinuz: &kernel.vmlinuz,
                initramfs: &initramfs,
                address,
                prefix_len,
                link: &link.c2,
                mac_suffix: 10,
                accelerator: &accelerator,
                console: &writer,
                verbose,
                monitor: &monitor.1,
                incoming: None,
            },
        );
        Ok((
            command,
            SingleGuestWiring {
                _link: link,
                _console: console,
                _writer: writer,
                _monitor: monitor,
            },
        ))
    }
}

/// What `tcplab lab boot`'s one VM is wired to: its link and console.
pub struct SingleGuestWiring {
    _link: qemu::GuestLink,
    _console: GuestConsole,
    _writer: std::io::PipeWriter,
    _monitor: (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
}

/// `TCPLAB_MICROVM_CONSOLE=1`: every console line on stderr, boot messages
/// included.
fn console_wanted() -> bool {
    std::env::var_os("TCPLAB_MICROVM_CONSOLE").is_some_and(|v| v == "1")
}

/// The kernel (fetched if needed) and the initramfs for it and this tcplab.
fn prepare(choice: &KernelChoice) -> Result<(Kernel, std::path::PathBuf), LabError> {
    use std::os::fd::AsRawFd;
    // Runs at once share the cache: one fetches and builds, the others wait.
    let cache = crate::lab::cache::trusted_cache_dir()?;
    let lock = crate::lab::cache::open_lock(&cache.join(".lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let kernel = kernel::obtain(choice)?;
    let executable = LocalExecutable::load()?;
    let initramfs = initramfs::obtain(&kernel, &executable.sha256, &cache)?;
    Ok((kernel, initramfs))
}
