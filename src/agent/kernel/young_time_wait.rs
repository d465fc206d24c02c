//! connect() into a TIME_WAIT that is less than a second old, just after the
//! clock's whole second has turned: the one moment that tells apart the two
//! rules kernels use for `net.ipv4.tcp_tw_reuse`.
//!
//! With tcp_tw_reuse=1, connect() may take over a TIME_WAIT four-tuple once
//! the TIME_WAIT is old enough for the peer's timestamps to protect the new
//! connection. Up to Linux 6.13 "old enough" is counted in whole seconds of
//! the monotonic clock: the second must have turned since the last
//! timestamped segment arrived, which is anything from a few milliseconds to
//! a second. From 6.14 (Jakub Sitnicki's "tcp: Measure TIME-WAIT reuse delay
//! with millisecond precision" and the `tcp_tw_reuse_delay` sysctl) it is the
//! TIME_WAIT's own age in milliseconds, 1000 by default. An attempt made after
//! the second turned but before the age reaches a second is allowed by the
//! first rule and refused by the second.
//!
//! The age is the kernel's: sock_diag's time left on the 60 s TIME_WAIT
//! timer, armed on entering the state. So a busy machine can only make the
//! attempt late, never make it look early. An attempt that cannot be made
//! inside the window is not made, and one that may have come after it (the
//! time from the age's reading to connect()'s return says when it came at
//! the latest) is not judged: the reply says it came too late, and the
//! orchestrator builds a fresh TIME_WAIT rather than read a verdict from it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::agent::error::AgentError;
use crate::agent::kernel::diag::{SockDiag, SocketFilter};
use crate::agent::programs::client;
use crate::agent::session::state_clock::monotonic_now;
use crate::protocol::{AgentErrorKind, SocketEntry};
use crate::protocol::{SocketOptions, YoungReuse};
use crate::tcp_state::SocketState;

/// How long a TIME_WAIT lasts (`TCP_TIMEWAIT_LEN`), in milliseconds.
const TIME_WAIT_MS: u64 = 60_000;
/// Room on both sides of the window for the timer's jiffy rounding and for
/// the few microseconds between the segment's arrival and the timer.
const MARGIN: Duration = Duration::from_millis(20);
const ONE_SECOND: Duration = Duration::from_secs(1);

/// Tries connect() to `server` with `options` (an unbound socket: the
/// kernel picks the port), once the TIME_WAIT of `local_port` ⇄ `server` is
/// past its first whole-second turn and still under a second old.
pub async fn connect_after_second_turns(
    diag: &mut SockDiag,
    local_port: u16,
    server: SocketAddr,
    options: SocketOptions,
) -> Result<YoungReuse, AgentError> {
    let age = time_wait_age(diag, local_port, server)?;
    let now = monotonic_now();
    let turned = match moment_to_try(now.saturating_sub(age)) {
        Ok(turned) => turned,
        Err(age_then) => {
            return Ok(YoungReuse::TooLate {
                age_ms: millis(age_then),
            });
        }
    };
    tokio::time::sleep(turned.saturating_sub(now)).await;
    let before = monotonic_now();
    let age = time_wait_age(diag, local_port, server)?;
    if age >= ONE_SECOND - MARGIN {
        return Ok(YoungReuse::TooLate {
            age_ms: millis(age),
        });
    }
    let (outcome, local) = client::try_connect(None, server, options).await;
    // The attempt came somewhere between `before` and now: at most this old.
    // On a busy machine the dump or the connect() itself may take long
    // enough to push it past the window; such an attempt is not judged.
    let age = age + monotonic_now().saturating_sub(before);
    if age >= ONE_SECOND - MARGIN {
        return Ok(YoungReuse::TooLate {
            age_ms: millis(age),
        });
    }
    Ok(YoungReuse::Tried {
        age_ms: millis(age),
        outcome,
        local,
    })
}

/// When to try, for a TIME_WAIT that began at `entered` (monotonic): the
/// first moment the clock's whole second is surely past the one it began in,
/// if the TIME_WAIT is still surely under a second old then; otherwise
/// `Err` with the age it would have.
fn moment_to_try(entered: Duration) -> Result<Duration, Duration> {
    let turned = Duration::from_secs((entered + MARGIN).as_secs()) + ONE_SECOND + MARGIN;
    let age_then = turned.saturating_sub(entered);
    if age_then < ONE_SECOND - MARGIN {
        Ok(turned)
    } else {
        Err(age_then)
    }
}

/// How long the connection `local_port` ⇄ `server` has been in TIME_WAIT.
fn time_wait_age(
    diag: &mut SockDiag,
    local_port: u16,
    server: SocketAddr,
) -> Result<Duration, AgentError> {
    let filter = SocketFilter {
        port: Some(local_port),
        state: Some(SocketState::TimeWait),
    };
    let sockets = diag
        .tcp_sockets(filter)
        .map_err(|e| AgentError::new(AgentErrorKind::Failed, format!("sock_diag dump: {e}")))?;
    let found = sockets
        .iter()
        .find(|s| s.local.port() == local_port && s.remote == server);
    age_of(found).ok_or_else(|| {
        AgentError::new(
            AgentErrorKind::Failed,
            format!("no TIME_WAIT from port {local_port} to {server} with its timer armed"),
        )
    })
}

/// A TIME_WAIT's age from the time left on its timer.
fn age_of(entry: Option<&SocketEntry>) -> Option<Duration> {
    let left = u64::from(entry?.timer?.expires_ms);
    Some(Duration::from_millis(TIME_WAIT_MS.saturating_sub(left)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{SocketTimer, TimerKind};

    fn time_wait(expires_ms: Option<u32>) -> SocketEntry {
        SocketEntry {
            state: SocketState::TimeWait,
            local: "10.211.55.5:40000".parse().unwrap(),
            remote: "10.211.55.10:8080".parse().unwrap(),
            timer_ms: expires_ms,
            timer: expires_ms.map(|expires_ms| SocketTimer {
                kind: TimerKind::Timewait,
                expires_ms,
                retransmits: 0,
            }),
            recv_q: 0,
            send_q: 0,
        }
    }

    #[test]
    fn the_age_is_what_the_sixty_second_timer_has_used() {
        let entry = time_wait(Some(59_650));
        assert_eq!(age_of(Some(&entry)), Some(Duration::from_millis(350)));
        assert_eq!(age_of(Some(&time_wait(None))), None);
        assert_eq!(age_of(None), None);
    }

    #[test]
    fn the_attempt_comes_just_after_the_second_turns() {
        let at = |ms| Duration::from_millis(ms);
        // Began at 10.300 s: the second turns at 11.000, tried at 11.020.
        assert_eq!(moment_to_try(at(10_300)), Ok(at(11_020)));
        // Began at 10.970: tried at 11.020, 50 ms old.
        assert_eq!(moment_to_try(at(10_970)), Ok(at(11_020)));
        // Began at 10.005: the second turns when it is almost a second old.
        assert_eq!(moment_to_try(at(10_005)), Err(at(1_015)));
        // Began at 10.995, too near the turn to be sure which second it is
        // in: the next turn is the sure one, and too late.
        assert_eq!(moment_to_try(at(10_995)), Err(at(1_025)));
    }

    #[test]
    fn replies_name_their_result() {
        let late = serde_json::to_string(&YoungReuse::TooLate { age_ms: 990 }).unwrap();
        assert_eq!(late, r#"{"result":"too_late","age_ms":990}"#);
    }
}
