//! The requests that read the kernel's sockets, some of them until
//! something happens: wait for a connection's state, probe a port until it
//! binds, list sockets, find free ports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::answers::capped;
use super::{AgentError, AgentSession};
use crate::agent::error::failed;
use crate::agent::kernel::bind_probe::try_bind;
use crate::agent::kernel::diag::{SockDiag, SocketFilter};
use crate::protocol::{ProbeRebind, Rebound, SocketEntry, StateObservation, WaitForState};

/// How often a [`WaitForState`] reads sock_diag. A dump of a lab namespace
/// costs microseconds, so polling tightly keeps runs fast.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Most ports one `FreePorts` request returns.
const MAX_FREE_PORTS: u16 = 256;

impl AgentSession {
    /// Up to `count` ports from `from` up that no TCP socket uses locally.
    pub(super) fn free_ports(&mut self, from: u16, count: u16) -> Result<Vec<u16>, AgentError> {
        let used: std::collections::HashSet<u16> = self
            .sockets(SocketFilter::default())?
            .iter()
            .map(|s| s.local.port())
            .collect();
        Ok((from.max(1)..=u16::MAX)
            .filter(|port| !used.contains(port))
            .take(usize::from(count.min(MAX_FREE_PORTS)))
            .collect())
    }

    pub(super) fn sockets_on(&mut self, port: u16) -> Result<Vec<SocketEntry>, AgentError> {
        self.sockets(SocketFilter {
            port: Some(port),
            state: None,
        })
    }

    fn sockets(&mut self, filter: SocketFilter) -> Result<Vec<SocketEntry>, AgentError> {
        self.diag()?
            .tcp_sockets(filter)
            .map_err(|e| failed(format!("sock_diag dump: {e}")))
    }

    /// The session's sock_diag socket, opened on first use.
    pub(super) fn diag(&mut self) -> Result<&mut SockDiag, AgentError> {
        if self.diag.is_none() {
            let diag =
                SockDiag::open().map_err(|e| failed(format!("cannot open sock_diag: {e}")))?;
            self.diag = Some(diag);
        }
        self.diag
            .as_mut()
            .ok_or_else(|| failed("sock_diag is not open"))
    }

    /// Tries to bind until it works: the time from the kill is how long the
    /// orphaned connection kept the port.
    pub(super) async fn probe_rebind(&mut self, probe: ProbeRebind) -> Rebound {
        let every = Duration::from_millis(probe.every_ms.clamp(1, 10_000));
        let deadline = capped(probe.deadline_ms);
        let started = Instant::now();
        let since = self.killed_at.unwrap_or(started);
        let reference = self.clock.reference();
        let (state, from_close) = (
            reference.map(|r| r.state),
            reference.is_some_and(|r| r.from_close),
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = try_bind(probe.address, probe.reuse);
            let bound = last.is_ok();
            if bound || started.elapsed() >= deadline {
                return Rebound {
                    after_kill_ms: bound.then(|| since.elapsed().as_millis() as u64),
                    after_state_ms: self
                        .clock
                        .since_reference()
                        .filter(|_| bound)
                        .map(|d| d.as_millis() as u64),
                    state,
                    from_close,
                    attempts,
                    last,
                };
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Polls until the connection `local_port` ⇄ `peer` is in `state`.
    pub(super) async fn wait_for_state(
        &mut self,
        wait: WaitForState,
    ) -> Result<StateObservation, AgentError> {
        let WaitForState {
            local_port,
            peer,
            state,
            ..
        } = wait;
        let deadline = capped(wait.deadline_ms);
        let started = Instant::now();
        // Each dump walks the kernel's whole connection table, so once the
        // connection is found, only its family is dumped again. (Not simply
        // the peer's family: a dual-stack server holds IPv4 peers in IPv6
        // sockets.)
        let mut family = None;
        loop {
            let filter = SocketFilter {
                port: Some(local_port),
                state: None,
            };
            let sockets = match family {
                Some(family) => self.diag()?.tcp_sockets_of(family, filter),
                None => self.diag()?.tcp_sockets(filter),
            }
            .map_err(|e| failed(format!("sock_diag dump: {e}")))?;
            let connection = sockets
                .iter()
                .find(|s| s.local.port() == local_port && same_endpoint(s.remote, peer))
                .cloned();
            if let Some(found) = &connection {
                self.seen.insert((local_port, peer));
                self.clock.saw(local_port, peer, found.state);
                family = Some(if found.local.is_ipv6() {
                    libc::AF_INET6 as u8
                } else {
                    libc::AF_INET as u8
                });
            }
            let reached = connection.as_ref().map(|c| c.state) == state;
            if let (true, Some(state)) = (reached, state) {
                self.clock.reached(local_port, peer, state);
            }
            if reached || started.elapsed() >= deadline {
                return Ok(StateObservation {
                    reached,
                    identified: self.seen.contains(&(local_port, peer)),
                    connection,
                    sockets,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Compares endpoints across address families: a dual-stack server sees an
/// IPv4 client as `::ffff:a.b.c.d`. An unspecified `expected` address (a
/// client reset before it learnt its own address) matches by port alone.
fn same_endpoint(seen: SocketAddr, expected: SocketAddr) -> bool {
    seen.port() == expected.port()
        && (expected.ip().is_unspecified()
            || seen.ip().to_canonical() == expected.ip().to_canonical())
}
