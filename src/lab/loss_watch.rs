//! [`LossWatch`]: how every agent of a host pair hears at once that one of
//! them is gone.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Tells every agent of a host pair when one of them is gone, so a case
/// waiting on c2 hears at once that c1's process (or ssh session) died,
/// instead of at its next request to c1.
#[derive(Clone, Default)]
pub struct LossWatch {
    token: CancellationToken,
    lost_host: Arc<Mutex<Option<String>>>,
}

impl LossWatch {
    pub(super) fn report(&self, host: &str) {
        if let Ok(mut slot) = self.lost_host.lock() {
            slot.get_or_insert_with(|| host.to_string());
        }
        self.token.cancel();
    }

    /// Resolves with the name of the first host lost.
    pub(super) async fn lost(&self) -> String {
        self.token.cancelled().await;
        self.lost_host
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
            .unwrap_or_default()
    }
}
