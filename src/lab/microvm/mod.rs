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
pub mod cpio_archive;
pub mod guest;
pub mod guest_modules;
pub mod initramfs;
pub mod kept_guest;
pub mod kernel;
pub mod kernel_archive;
pub mod kernel_fetch;
pub mod kernel_listing;
pub mod kvm_verdict;
pub mod qemu;
pub mod qmp;
pub mod snapshot;
pub mod warm_start;

use std::time::Duration;

use super::addressing::ExperimentLink;
use super::agent_connection::LossWatch;
use super::error::LabError;
use super::host_pair::{CaseIsolation, LabHostPair, LabInfo};
use super::hosts::{Family, LabHosts};
use super::local_executable::LocalExecutable;
use super::seam::LabKind;
use crate::interrupt::Interrupt;
use guest::{GuestBase, GuestPair, GuestPlan, GuestWiring, ReadyPair};
use kept_guest::KeptGuestSpec;
use kernel::{Kernel, KernelChoice};
use kvm_verdict::{KVM_TRIAL, KvmVerdict};
use qemu::{AccelChoice, Accelerator};
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
    /// A lab kept up (`tcplab lab up`): its directory, for the guests'
    /// command ports; the guests carry a person's tools and are never
    /// saved or restored.
    pub kept_in: Option<std::path::PathBuf>,
}

impl LabKind for MicrovmLab {
    fn describe(&self) -> LabInfo {
        let hosts = format!(
            "two qemu VMs booted by tcplab, kernel {}",
            self.kernel.label()
        );
        LabInfo::of_link("microvm", self.why.clone(), &self.link(), hosts)
    }

    fn isolation(&self) -> CaseIsolation {
        CaseIsolation::SharedHosts
    }

    /// Boots c1 and c2 and waits for both agents.
    async fn start(&self, interrupt: &Interrupt) -> Result<LabHostPair, LabError> {
        let qemu = qemu::qemu_binary()?;
        let choice = self.kernel.clone();
        let tools = self.kept_in.is_some();
        let (kernel, initramfs) = tokio::task::spawn_blocking(move || prepare(&choice, tools))
            .await
            .map_err(|e| LabError::Setup(format!("preparing the kernel: {e}")))??;
        let snapshots = if self.cold || self.kept_in.is_some() {
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
        let accelerator = self.accelerator();
        if !(accelerator.kvm && self.accel == AccelChoice::Auto) {
            return boot(accelerator, boot_timeout(), snapshots).await;
        }
        // "Opens" is not "works": a nested KVM may abort or hang. Try it,
        // briefly, and fall back to software emulation. The verdict holds
        // until this machine reboots.
        match boot(accelerator, KVM_TRIAL, Snapshots::Off).await {
            Ok(pair) => {
                KvmVerdict::Works.remember();
                Ok(pair)
            }
            Err(LabError::Interrupted(signal)) => Err(LabError::Interrupted(signal)),
            Err(error) => {
                let why = format!(
                    "/dev/kvm opens but a KVM guest did not boot within {} s ({error}; \
                     --accel kvm to insist)",
                    KVM_TRIAL.as_secs()
                );
                KvmVerdict::Fails(why.clone()).remember();
                boot(Accelerator::tcg(why), boot_timeout(), snapshots).await
            }
        }
    }

    async fn clean(&self, _: &Interrupt) -> Result<Vec<String>, LabError> {
        Ok(vec![
            "microvm: nothing to clean; its VMs end with the run that booted them".into(),
        ])
    }
}

impl MicrovmLab {
    /// What `--accel` asks for; with `auto`, KVM where /dev/kvm opens and
    /// no trial since this machine booted found it broken.
    fn accelerator(&self) -> Accelerator {
        match self.accel {
            AccelChoice::Tcg => Accelerator::tcg("--accel tcg"),
            AccelChoice::Kvm => Accelerator::kvm("--accel kvm"),
            AccelChoice::Auto => match (qemu::kvm_opens(), KvmVerdict::remembered()) {
                (Err(why), _) => Accelerator::tcg(format!("no KVM on this machine ({why})")),
                (Ok(()), Some(KvmVerdict::Fails(why))) => Accelerator::tcg(why),
                (Ok(()), _) => Accelerator::kvm("/dev/kvm runs guests"),
            },
        }
    }

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
        let link = qemu::GuestLink::new()?;
        let verbose = console_wanted();
        let base = GuestBase {
            vmlinuz: &files.kernel.vmlinuz,
            initramfs: files.initramfs,
            prefix_len: self.link().prefix_len,
            accelerator: &accelerator,
            verbose,
        };
        let mut plans = self.plans(base, &link, verbose)?;
        let saved = GuestSnapshots::find(
            snapshots,
            &files.kernel.release,
            files.initramfs,
            [&plans[0].spec(), &plans[1].spec()],
        );
        let restoring = saved.as_ref().filter(|s| s.restore);
        if let Some(saved) = restoring {
            plans[0].incoming = Some(&saved.paths[0]);
            plans[1].incoming = Some(&saved.paths[1]);
        }
        let booting = std::time::Instant::now();
        let guests = GuestPair::spawn(plans, files.qemu, interrupt, &LossWatch::default()).await?;
        let ready = match guests.ready(patience).await {
            Ok(ready) => ready,
            Err(error) if restoring.is_some() => {
                eprintln!(
                    "tcplab: restoring the saved guests of {} failed ({error}); booting cold",
                    files.kernel.release
                );
                if let Some(saved) = restoring {
                    saved.discard();
                }
                let retry =
                    self.boot_pair(files, accelerator, patience, Snapshots::SaveOnly, interrupt);
                return Box::pin(retry).await;
            }
            Err(error) => return Err(error),
        };
        let boot_ms = booting.elapsed().as_millis() as u64;
        self.settle(ready, saved.as_ref(), &accelerator, boot_ms)
            .await
    }

    /// The two guests' plans: c1 and c2 on the two ends of `link`.
    fn plans<'a>(
        &self,
        base: GuestBase<'a>,
        link: &'a qemu::GuestLink,
        echo: bool,
    ) -> Result<[GuestPlan<'a>; 2], LabError> {
        let addresses = self.link();
        let c1_address = addresses.c1.unwrap_or(addresses.c2);
        let mut plans = [
            GuestPlan::new("c1", base, c1_address, &link.c1, 5, echo)?,
            GuestPlan::new("c2", base, addresses.c2, &link.c2, 10, echo)?,
        ];
        if let Some(dir) = &self.kept_in {
            let hosts = format!("c1={c1_address},c2={}", addresses.c2);
            for (plan, name) in plans.iter_mut().zip(["c1", "c2"]) {
                plan.kept = Some(KeptGuestSpec {
                    name,
                    hosts: hosts.clone(),
                    dir: dir.clone(),
                });
            }
        }
        Ok(plans)
    }

    /// The guests' link addresses.
    fn link(&self) -> ExperimentLink {
        let (c1, c2, prefix_len) = self.hosts.addresses(Family::V4);
        ExperimentLink {
            c1: Some(c1),
            c2,
            prefix_len,
        }
    }

    /// The ready guests as the run's pair: restored guests get fresh
    /// randomness and time, freshly booted ones are saved for the next run,
    /// and the report learns how the boot went.
    async fn settle(
        &self,
        ready: ReadyPair,
        saved: Option<&GuestSnapshots>,
        accelerator: &Accelerator,
        boot_ms: u64,
    ) -> Result<LabHostPair, LabError> {
        let ReadyPair {
            c1,
            c2,
            monitors,
            release,
        } = ready;
        let mut info = self.describe();
        info.hosts = format!(
            "two qemu VMs booted by tcplab: Linux {release} on c1 and c2, {}",
            accelerator.describe()
        );
        info.kernel = Some(release);
        let restored = saved.is_some_and(|s| s.restore);
        info.boot = Some(if restored { "restored" } else { "cold" }.into());
        info.boot_ms = Some(boot_ms);
        info.accelerator = Some(if accelerator.kvm { "kvm" } else { "tcg" }.into());
        let mut pair = LabHostPair {
            c1,
            c2,
            link: self.link(),
            info,
        };
        match saved {
            Some(saved) if saved.restore => warm_start::freshen_both(&mut pair).await?,
            Some(saved) => {
                if let Err(error) = warm_start::save_both(&saved.paths, monitors).await {
                    let _ = pair.shutdown().await;
                    return Err(error);
                }
            }
            None => {}
        }
        Ok(pair)
    }

    /// The qemu command of one guest (c2's address, a link whose other end
    /// nobody reads) whose stdin and stdout are its agent: `tcplab lab boot`,
    /// for talking to a kernel's agent by hand. Software emulation unless
    /// `--accel kvm`: one VM needs no trial boot to decide. Always booted:
    /// a VM typed at by hand is not saved or restored. Keep the wiring
    /// until the VM is gone.
    pub fn single_guest(&self) -> Result<(std::process::Command, SingleGuestWiring), LabError> {
        let qemu = qemu::qemu_binary()?;
        let (kernel, initramfs) = prepare(&self.kernel, false)?;
        let accelerator = match self.accel {
            AccelChoice::Kvm => Accelerator::kvm("--accel kvm"),
            _ => Accelerator::tcg("one VM: software emulation unless --accel kvm"),
        };
        let link = qemu::GuestLink::new()?;
        let base = GuestBase {
            vmlinuz: &kernel.vmlinuz,
            initramfs: &initramfs,
            prefix_len: self.link().prefix_len,
            accelerator: &accelerator,
            verbose: console_wanted(),
        };
        // One VM by hand: its console goes to stderr as it comes.
        let plan = GuestPlan::new("c2", base, self.link().c2, &link.c2, 10, true)?;
        let command = plan.command(&qemu);
        let wiring = SingleGuestWiring {
            _plan: plan.into_wiring(),
            _link: link,
        };
        Ok((command, wiring))
    }
}

/// What `tcplab lab boot`'s one VM is wired to: its link, console and
/// monitor.
pub struct SingleGuestWiring {
    _plan: GuestWiring,
    _link: qemu::GuestLink,
}

/// `TCPLAB_MICROVM_CONSOLE=1`: every console line on stderr, boot messages
/// included.
fn console_wanted() -> bool {
    std::env::var_os("TCPLAB_MICROVM_CONSOLE").is_some_and(|v| v == "1")
}

/// The kernel (fetched if needed) and the initramfs for it and this tcplab,
/// with a person's `tools` for a lab kept up.
fn prepare(choice: &KernelChoice, tools: bool) -> Result<(Kernel, std::path::PathBuf), LabError> {
    use std::os::fd::AsRawFd;
    // Runs at once share the cache: one fetches and builds, the others wait.
    let cache = crate::lab::cache::trusted_cache_dir()?;
    let lock = crate::lab::cache::open_lock(&cache.join(".lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let kernel = kernel::obtain(choice)?;
    let executable = LocalExecutable::load()?;
    let initramfs = initramfs::obtain(&kernel, &executable.sha256, &cache, tools)?;
    Ok((kernel, initramfs))
}
