//! When each connection was first seen in each TCP state: the clock that a
//! rebind time is read against.
//!
//! How long an orphaned connection keeps its port is a kernel timer armed
//! when the connection enters its state (FIN_WAIT2 on c1's ACK, TIME_WAIT on
//! c1's FIN), not when the orchestrator gets round to killing the server.
//! Between those two moments lie round trips from the orchestrator to both
//! hosts, which a busy machine stretches by a second or more; a time "after
//! the kill" therefore shrinks under load. The agent sees the state change
//! itself (it polls sock_diag every millisecond while it waits), so the time
//! since it first saw the connection in the state the kill left it in is the
//! timer's own time, give or take a poll.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::tcp_state::SocketState;

/// CLOCK_MONOTONIC now: the clock of the agent and of its `tcplab serve`
/// child alike, so times from both can be subtracted.
pub fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// What a rebind time is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The state the kill left the connection in.
    pub state: SocketState,
    pub at: Duration,
    /// `at` is the server's own close() (FIN_WAIT2: the timer starts on
    /// the ACK of that FIN, a round trip later), not a sighting.
    pub from_close: bool,
}

/// First sightings, per (local port, peer, state), for one session.
#[derive(Debug, Default)]
pub struct StateClock {
    first_seen: HashMap<(u16, SocketAddr, SocketState), Duration>,
    /// When `tcplab serve` closed the connection from each peer.
    closed: HashMap<SocketAddr, Duration>,
    reference: Option<Reference>,
}

impl StateClock {
    /// Notes that a dump showed the connection in `state`.
    pub fn saw(&mut self, local_port: u16, peer: SocketAddr, state: SocketState) {
        self.first_seen
            .entry((local_port, peer, state))
            .or_insert_with(monotonic_now);
    }

    /// Notes that the server closed the connection from `peer` at `at`.
    pub fn server_closed(&mut self, peer: SocketAddr, at: Duration) {
        self.closed.insert(peer, at);
    }

    /// A wait for `state` succeeded: rebind times count from the start of
    /// the timer that state runs on, as well as this agent can tell.
    pub fn reached(&mut self, local_port: u16, peer: SocketAddr, state: SocketState) {
        let closed = self.closed.get(&peer).copied();
        self.reference = match (state, closed) {
            // The server's connection is orphaned at close(); FIN_WAIT2's
            // timer starts when c1 ACKs that FIN.
            (SocketState::FinWait2, Some(at)) => Some(Reference {
                state,
                at,
                from_close: true,
            }),
            _ => self
                .first_seen
                .get(&(local_port, peer, state))
                .map(|at| Reference {
                    state,
                    at: *at,
                    from_close: false,
                }),
        };
    }

    /// What rebind times count from, if a wait reached a state.
    pub fn reference(&self) -> Option<Reference> {
        self.reference
    }

    /// Time since the reference.
    pub fn since_reference(&self) -> Option<Duration> {
        self.reference.map(|r| monotonic_now().saturating_sub(r.at))
    }

    /// Forgets everything: the next case starts afresh.
    pub fn clear(&mut self) {
        self.first_seen.clear();
        self.closed.clear();
        self.reference = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_the_servers_close_or_the_first_sighting() {
        let peer: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let mut clock = StateClock::default();
        clock.saw(8080, peer, SocketState::FinWait2);
        let first = clock.first_seen[&(8080, peer, SocketState::FinWait2)];
        std::thread::sleep(Duration::from_millis(5));
        clock.saw(8080, peer, SocketState::FinWait2);
        clock.reached(8080, peer, SocketState::FinWait2);
        let sighted = clock.reference().unwrap();
        assert_eq!((sighted.at, sighted.from_close), (first, false));
        // The server's own word beats a sighting, for FIN_WAIT2 only.
        let closed = first.saturating_sub(Duration::from_millis(300));
        clock.server_closed(peer, closed);
        clock.reached(8080, peer, SocketState::FinWait2);
        assert_eq!(clock.reference().unwrap().at, closed);
        assert!(clock.since_reference().unwrap() >= Duration::from_millis(305));
        clock.saw(8080, peer, SocketState::TimeWait);
        clock.reached(8080, peer, SocketState::TimeWait);
        assert!(!clock.reference().unwrap().from_close);
        clock.reached(8080, peer, SocketState::Established);
        assert_eq!(clock.reference(), None, "never seen ESTABLISHED");
        clock.clear();
        assert!(clock.first_seen.is_empty() && clock.reference().is_none());
    }
}
