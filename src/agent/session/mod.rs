//! One agent session: the state a host keeps between requests, and what undoes it.
//!
//! The session owns everything the agent changed on its host (firewall rules,
//! sysctls, the server child, the client socket). [`AgentSession::finish`]
//! undoes all of it; the agent calls it on every way out (`shutdown`, end of
//! input, a signal, a reply it cannot write), so a host is left as it was
//! found however the orchestrator goes away. On a real host every change is
//! journaled before it is made (see [`crate::agent::recovery::journal`]), so that even a
//! killed agent's changes can be undone by `tcplab lab clean`.
//!
//! What an agent will do depends on its [`AgentRole`]: only an agent in a
//! network namespace of its own may create and configure links.

mod answers;
pub mod state_clock;
mod waits;

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

pub use crate::agent::error::AgentError;
use crate::agent::kernel::capture::Capture;
use crate::agent::kernel::diag::SockDiag;
use crate::agent::kernel::firewall::FirewallSession;
use crate::agent::kernel::sysctl::SysctlSession;
use crate::agent::programs::server_child::ServerProcess;
use crate::agent::programs::spare_server::SpareServer;
use crate::agent::recovery::journal::{Journal, SysctlLock};
use crate::agent::recovery::reap::restore_dead_sysctls;
use crate::protocol::{AgentErrorKind, FirewallRule, KillSignal, Sysctl};

/// The longest wait a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How long a session waits for another one's sysctl changes to end.
const SYSCTL_LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Where an agent runs, which decides what it may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRole {
    /// In a network namespace of its own (netns lab): links, rules and
    /// sysctls there die with the namespace.
    OwnNamespace,
    /// On a real host: no link changes; every change is journaled. `upload`
    /// is the directory the agent runs from, if it was uploaded.
    Host { upload: Option<std::path::PathBuf> },
}

/// The state of one agent between requests.
pub struct AgentSession {
    pid: u32,
    /// Set when the agent could not enter its own network namespace: every
    /// request is answered with it, so the orchestrator learns why.
    setup_error: Option<AgentError>,
    firewall: FirewallSession,
    server: Option<ServerProcess>,
    /// The next case's `tcplab serve`, started ahead of time.
    spare: Option<SpareServer>,
    /// When the server was killed: rebind times are measured from here.
    killed_at: Option<Instant>,
    client: Option<TcpStream>,
    diag: Option<SockDiag>,
    sysctls: SysctlSession,
    /// Held while this session has changed sysctls on a real host.
    sysctl_lock: Option<SysctlLock>,
    capture: Option<Capture>,
    role: AgentRole,
    journal: Journal,
    /// Connections (local port, peer) that some dump of this session saw.
    seen: std::collections::HashSet<(u16, std::net::SocketAddr)>,
    /// When each connection was first seen in each state.
    clock: crate::agent::session::state_clock::StateClock,
}

impl AgentSession {
    pub fn new(setup_error: Option<AgentError>, role: AgentRole) -> AgentSession {
        let pid = std::process::id();
        let journal = match &role {
            AgentRole::OwnNamespace => Journal::disabled(),
            AgentRole::Host { upload } => Journal::for_host(upload.clone()),
        };
        AgentSession {
            pid,
            setup_error,
            firewall: FirewallSession::new(pid),
            server: None,
            spare: None,
            killed_at: None,
            client: None,
            diag: None,
            sysctls: SysctlSession::default(),
            sysctl_lock: None,
            capture: None,
            role,
            journal,
            seen: std::collections::HashSet::new(),
            clock: Default::default(),
        }
    }

    /// Starts a spare `tcplab serve` for the next server unless one waits
    /// already: it starts up between cases instead of inside one. If it
    /// cannot start, the next server starts the slow way and says why.
    pub fn keep_a_spare(&mut self) {
        if self.spare.is_none() && self.setup_error.is_none() {
            self.spare = SpareServer::start().ok();
        }
    }

    /// Link set-up is for the netns lab only: on a real host it would change
    /// the host's own interfaces, and nothing would undo it.
    fn links_allowed(&self) -> Result<(), AgentError> {
        match self.role {
            AgentRole::OwnNamespace => Ok(()),
            AgentRole::Host { .. } => Err(AgentError::new(
                AgentErrorKind::BadRequest,
                "this agent runs on a real host: it does not create or configure links \
                 (only an agent in a network namespace of its own does)",
            )),
        }
    }

    /// Adds a firewall rule, journaled before it is added.
    fn add_rule(&mut self, rule: &FirewallRule, ipv6: bool) -> Result<String, AgentError> {
        let planned = self.firewall.plan(rule, ipv6);
        self.journal.record_rule(planned.clone())?;
        if let Err(error) = self.firewall.apply(planned.clone()) {
            self.journal.forget_rule(&planned)?;
            return Err(error);
        }
        Ok(rule.command_line(planned.tool.name()))
    }

    /// Sets a sysctl. On a real host the session first takes the host-wide
    /// lock (and puts back what dead sessions left), then journals the
    /// original value.
    fn set_sysctl(&mut self, setting: Sysctl, value: u32) -> Result<(), AgentError> {
        if matches!(self.role, AgentRole::Host { .. }) && self.sysctl_lock.is_none() {
            let lock = SysctlLock::acquire(SYSCTL_LOCK_PATIENCE)?;
            restore_dead_sysctls(&lock)?;
            self.sysctl_lock = Some(lock);
        }
        let original = setting.read_raw()?;
        self.journal.record_sysctl(setting, original.clone())?;
        self.sysctls.set(setting, value, original)
    }

    /// Undoes everything this session did on the host: closes the client,
    /// kills the server, puts sysctls back, removes the firewall rules, and
    /// strikes each from the journal once it is undone. Keeps going past a
    /// failure; the first one is returned.
    pub async fn finish(&mut self) -> Result<(), AgentError> {
        self.client = None;
        if let Some(capture) = self.capture.take() {
            capture.finish().await;
        }
        let mut result = Ok(());
        if let Some(server) = self.server.take() {
            result = server.kill(KillSignal::Kill).await.map(|_| ());
        }
        if result.is_ok() {
            result = self.journal.forget_servers();
        }
        self.killed_at = None;
        self.clock.clear();
        let restored = self.sysctls.restore_all();
        if restored.is_ok() && self.sysctls.is_empty() {
            let forgotten = self.journal.forget_sysctls();
            // Only now may another session change the same settings.
            self.sysctl_lock = None;
            result = result.and(forgotten);
        }
        let journal = &mut self.journal;
        let mut forgotten = Ok(());
        let removed = self.firewall.remove_all(|rule| {
            if let Err(error) = journal.forget_rule(rule) {
                forgotten = Err(error);
            }
        });
        result.and(restored).and(removed).and(forgotten)
    }

    /// Called once as the agent exits: the journal goes if nothing is left
    /// to undo; otherwise it stays for `lab clean`.
    pub fn close_journal(&mut self) {
        self.journal.close();
    }
}

fn bad_request(message: &str) -> AgentError {
    AgentError::new(AgentErrorKind::BadRequest, message)
}
