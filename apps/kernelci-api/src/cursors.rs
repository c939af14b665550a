//! Cursors of plain (non-durable) subscriptions, written behind.
//!
//! A plain subscription's cursor moves on every delivery; writing it to the database each
//! time would queue every listener behind the others' writes. Instead this process keeps
//! the newest cursor in memory and a background task writes the changed ones about twice a
//! second (which also refreshes `last_poll`). Durable subscriptions (`subscriber_id`) do not
//! use this: their acknowledgements are written at once.
//!
//! Trade-off, documented in README: if the polls of one plain subscription move between API
//! processes, the other process may deliver again an event delivered here in the last
//! flush interval (at-least-once, as for durable subscribers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernelci_model::time;
use kernelci_store::Store;

/// How often changed cursors are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Unwritten cursors by subscription id.
#[derive(Default)]
pub struct Cursors {
    dirty: Mutex<HashMap<i64, i64>>,
}

impl Cursors {
    /// The newest unwritten cursor of a subscription.
    pub fn get(&self, id: i64) -> Option<i64> {
        self.dirty.lock().ok()?.get(&id).copied()
    }

    /// Move a subscription's cursor (never back) and mark it for writing.
    pub fn advance(&self, id: i64, cursor: i64) {
        if let Ok(mut dirty) = self.dirty.lock() {
            let c = dirty.entry(id).or_insert(cursor);
            *c = (*c).max(cursor);
        }
    }

    /// Drop a subscription (unsubscribed).
    pub fn forget(&self, id: i64) {
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.remove(&id);
        }
    }

    fn snapshot(&self) -> Vec<(i64, i64)> {
        self.dirty
            .lock()
            .map(|d| d.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// Drop an entry once written, unless it moved meanwhile.
    fn written(&self, id: i64, cursor: i64) {
        if let Ok(mut dirty) = self.dirty.lock()
            && dirty.get(&id) == Some(&cursor)
        {
            dirty.remove(&id);
        }
    }

    /// Write the changed cursors now. An entry stays in memory until its write is done (so
    /// `/listen` never sees the older database value meanwhile); failed writes are retried on
    /// the next round.
    pub async fn flush(&self, store: &dyn Store) {
        let now = time::now();
        for (id, cursor) in self.snapshot() {
            match store.advance_subscription(id, cursor, None, now).await {
                Ok(()) => self.written(id, cursor),
                Err(e) => tracing::warn!("writing the cursor of subscription {id} failed: {e}"),
            }
        }
    }
}

/// Flush every [`FLUSH_EVERY`] until the last `Arc<Cursors>` is dropped.
pub async fn flush_forever(cursors: std::sync::Weak<Cursors>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tick.tick().await;
        let Some(c) = cursors.upgrade() else { return };
        c.flush(&*store).await;
    }
}
