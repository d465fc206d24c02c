//! Whether KVM really runs guests on this machine, as a trial boot found
//! out: remembered in the cache until the machine reboots (keyed by the
//! kernel's boot id), so that a broken KVM costs one trial, not one per run.

use std::time::Duration;

use super::kernel;

/// How long a trial boot with KVM may take before KVM counts as broken (a
/// KVM guest is ready in about a second).
pub const KVM_TRIAL: Duration = Duration::from_secs(15);

/// What a trial boot found out about KVM on this machine, remembered in the
/// cache until the machine reboots (keyed by the kernel's boot id), so that
/// a broken KVM costs one trial, not one per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmVerdict {
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

    pub fn remembered() -> Option<KvmVerdict> {
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

    pub fn remember(&self) {
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
