//! What a guest restored from a snapshot needs before it serves a case: new
//! randomness and the right time (see `lab::microvm::snapshot`).
//!
//! Every restore of one snapshot wakes with the same random pool, so
//! without this two runs would draw the same TCP secrets, and the guest's
//! wall clock would stand at the moment it was saved. Only the agent that
//! is a guest's init (PID 1) does this: on a real host it would be changing
//! the machine's clock.

use std::time::Duration;

use crate::agent::error::{AgentError, failed};
use crate::protocol::AgentErrorKind;

/// The most entropy one request may carry, in bytes.
pub const MAX_ENTROPY: usize = 512;

/// `RNDADDENTROPY` (`_IOW('R', 0x03, int[2])`): add bytes to the input pool
/// and credit them.
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `RNDRESEEDCRNG` (`_IO('R', 0x07)`): reseed the CRNG from the pool now.
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Mixes `entropy` into the kernel's pool, reseeds its CRNG from it, and
/// sets the wall clock to `realtime` (since the epoch).
pub fn freshen(entropy: &[u8], realtime: Duration) -> Result<(), AgentError> {
    if std::process::id() != 1 {
        return Err(AgentError::new(
            AgentErrorKind::BadRequest,
            "freshen is for a restored guest's init only: this agent is not PID 1",
        ));
    }
    if entropy.is_empty() || entropy.len() > MAX_ENTROPY {
        return Err(AgentError::new(
            AgentErrorKind::BadRequest,
            format!("entropy must be 1 to {MAX_ENTROPY} bytes"),
        ));
    }
    reseed(entropy)?;
    let time = nix::sys::time::TimeSpec::from_duration(realtime);
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, time)
        .map_err(|e| failed(format!("setting the clock: {e}")))
}

fn reseed(entropy: &[u8]) -> Result<(), AgentError> {
    use std::os::fd::AsRawFd;
    let random = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/random")
        .map_err(|e| failed(format!("opening /dev/random: {e}")))?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let mut info = Vec::with_capacity(8 + entropy.len());
    let bits = i32::try_from(entropy.len() * 8).unwrap_or(i32::MAX);
    let size = i32::try_from(entropy.len()).unwrap_or(i32::MAX);
    info.extend_from_slice(&bits.to_ne_bytes());
    info.extend_from_slice(&size.to_ne_bytes());
    info.extend_from_slice(entropy);
    info.resize(info.len().next_multiple_of(4), 0);
    // SAFETY: both ioctls read only the buffer we own (sized as its header
    // says) or nothing, on a descriptor we own.
    let added = unsafe { libc::ioctl(random.as_raw_fd(), RNDADDENTROPY as _, info.as_ptr()) };
    if added != 0 {
        return Err(failed(format!(
            "RNDADDENTROPY: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: as above; RNDRESEEDCRNG takes no argument.
    let reseeded = unsafe { libc::ioctl(random.as_raw_fd(), RNDRESEEDCRNG as _) };
    if reseeded != 0 {
        return Err(failed(format!(
            "RNDRESEEDCRNG: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
