//! Ctrl-C and SIGTERM for the orchestrator.
//!
//! A signal does not end the process on the spot: it cancels the run, every
//! case stops at its next agent request and shuts its hosts down, and only then
//! does tcplab exit with 130 (SIGINT) or 143 (SIGTERM). The agents run in their
//! own process group, so the terminal's Ctrl-C reaches only the orchestrator,
//! which keeps the clean-up in one place.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Shared by every task of a run; cloned freely.
#[derive(Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    /// Starts listening for SIGINT and SIGTERM on the current runtime.
    pub fn listen() -> std::io::Result<Interrupt> {
        let interrupt = Interrupt::default();
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let notifier = interrupt.clone();
        tokio::spawn(async move {
            let number = tokio::select! {
                _ = sigint.recv() => libc::SIGINT,
                _ = sigterm.recv() => libc::SIGTERM,
            };
            notifier.signal.store(number, Ordering::SeqCst);
            let _ = writeln!(
                std::io::stderr(),
                "tcplab: interrupted, cleaning up the lab…"
            );
            notifier.token.cancel();
        });
        Ok(interrupt)
    }

    /// Stops the run without a signal: one case failed in a way that ends
    /// the run anyway (a lost or hung agent), so the others stop waiting.
    /// `cancelled` then resolves with 0.
    pub fn abort(&self) {
        self.token.cancel();
    }

    /// Resolves once a signal arrived (with its number) or the run was
    /// aborted (with 0).
    pub async fn cancelled(&self) -> i32 {
        self.token.cancelled().await;
        self.signal.load(Ordering::SeqCst)
    }

    /// The signal that interrupted the run, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            number => Some(number),
        }
    }
}
