//! One reader of the events table per process, many listeners.
//!
//! A background task follows the events table (woken by the store's wake-up: local commits
//! and, on PostgreSQL, `NOTIFY` from other processes; and every second regardless) and keeps
//! the most recent events in memory. `/listen` looks for its next event there instead of
//! querying the database, so an event costs one read however many listeners wait. A
//! listener whose cursor is older than the window falls back to the database.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kernelci_store::{Store, StoredEvent};
use tokio::sync::watch;

/// Events kept in memory.
const WINDOW: usize = 4096;
/// Events read per database round trip.
const BATCH: i64 = 1000;

/// The in-memory window: every event with `first < seq <= last` is in `events`.
#[derive(Default)]
struct Window {
    events: VecDeque<Arc<StoredEvent>>,
    first: i64,
    last: i64,
}

/// What a listener learns from the window.
pub(crate) enum Lookup {
    /// The next qualifying event.
    Found(Arc<StoredEvent>),
    /// Nothing qualifies up to this sequence id (the cursor may move there).
    NothingUpTo(i64),
    /// The cursor is older than the window: ask the database.
    Miss,
}

/// The shared follower of the events table.
pub struct Fanout {
    window: RwLock<Window>,
    changed: watch::Sender<i64>,
}

impl Fanout {
    /// Start following `store` from its current last event; the task ends when the last
    /// `Arc<Fanout>` is dropped.
    pub async fn start(store: Arc<dyn Store>) -> kernelci_store::Result<Arc<Fanout>> {
        let last = store.last_event_seq().await?;
        let (changed, _) = watch::channel(last);
        let fanout = Arc::new(Fanout {
            window: RwLock::new(Window {
                events: VecDeque::new(),
                first: last,
                last,
            }),
            changed,
        });
        tokio::spawn(follow(Arc::downgrade(&fanout), store));
        Ok(fanout)
    }

    /// A receiver that changes whenever new events arrived in the window.
    pub(crate) fn subscribe(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }

    /// The first event after `cursor` on `channel` visible to `owner` (None = all).
    pub(crate) fn next(&self, channel: &str, cursor: i64, owner: Option<&str>) -> Lookup {
        let Ok(w) = self.window.read() else {
            return Lookup::Miss;
        };
        if cursor < w.first {
            return Lookup::Miss;
        }
        let start = w.events.partition_point(|e| e.seq <= cursor);
        let found = w.events.iter().skip(start).find(|e| {
            e.channel == channel
                && match owner {
                    None => true,
                    Some(o) => e.owner.as_deref().is_none_or(|eo| eo == o),
                }
        });
        match found {
            Some(e) => Lookup::Found(e.clone()),
            None => Lookup::NothingUpTo(w.last),
        }
    }

    fn append(&self, batch: Vec<StoredEvent>) {
        let Ok(mut w) = self.window.write() else {
            return;
        };
        for e in batch {
            if e.seq <= w.last {
                continue;
            }
            w.last = e.seq;
            w.events.push_back(Arc::new(e));
        }
        while w.events.len() > WINDOW {
            if let Some(old) = w.events.pop_front() {
                w.first = old.seq;
            }
        }
        let last = w.last;
        drop(w);
        self.changed.send_replace(last);
    }

    fn last(&self) -> i64 {
        self.window.read().map(|w| w.last).unwrap_or(i64::MAX)
    }
}

async fn follow(fanout: std::sync::Weak<Fanout>, store: Arc<dyn Store>) {
    let mut wake = store.wakeup().subscribe();
    loop {
        let Some(f) = fanout.upgrade() else { return };
        let after = f.last();
        match store.events_after(after, BATCH).await {
            Ok(batch) => {
                let full = batch.len() as i64 == BATCH;
                if !batch.is_empty() {
                    f.append(batch);
                }
                drop(f);
                if full {
                    continue; // more are waiting
                }
            }
            Err(e) => {
                tracing::warn!("reading new events failed: {e}");
                drop(f);
            }
        }
        wake.borrow_and_update();
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.changed()).await;
    }
}
