//! The one clock that captures, state samples and transcripts share, so
//! that c1's and c2's records of one machine line up.

/// CLOCK_MONOTONIC in microseconds: the clock of captures and transcripts.
pub fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}
