//! Wake-ups for long-polling listeners.

use std::sync::Arc;

use tokio::sync::watch;

/// A counter bumped whenever something a listener may wait for was committed (an event or a
/// list item). Listeners re-check the database when it changes; they also re-check on a
/// timer, so a lost wake-up costs latency, never an event.
#[derive(Clone, Debug)]
pub struct Wakeup {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for Wakeup {
    fn default() -> Self {
        let (tx, _rx) = watch::channel(0);
        Wakeup { tx: Arc::new(tx) }
    }
}

impl Wakeup {
    /// Wake every waiter.
    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver to wait on with `changed()`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
