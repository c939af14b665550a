//! Retention: old nodes, events and telemetry removed in bounded batches, each batch its
//! own short transaction with a pause after it, so API writers never wait long.
//!
//! Nodes go by age leaves first (a node is removed only once it has no child left;
//! checkouts are kept): a young test keeps its old ancestors and a purge never leaves a
//! node without its parent. Events go by age, except those after the lowest subscription
//! cursor, so a live subscriber never misses one.

use std::time::Duration;

use kernelci_model::Timestamp;
use kernelci_store::{Result, Store};
use serde::Serialize;

/// How long each kind is kept and how purges are paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Nodes older than this are purged (upstream: 180 days); None keeps them forever.
    pub nodes: Option<Duration>,
    /// Events older than this are purged (upstream: 7 days); None keeps them forever.
    pub events: Option<Duration>,
    /// Telemetry older than this is purged (upstream: 14 days); None keeps it forever.
    pub telemetry: Option<Duration>,
    /// Rows deleted per batch (at least 1).
    pub batch: u32,
    /// Pause after each batch that removed something.
    pub pause: Duration,
}

/// One day.
const DAY: u64 = 86_400;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            nodes: Some(Duration::from_secs(180 * DAY)),
            events: Some(Duration::from_secs(7 * DAY)),
            telemetry: Some(Duration::from_secs(
                u64::try_from(kernelci_model::telemetry::RETENTION_DAYS).unwrap_or(14) * DAY,
            )),
            batch: 1000,
            pause: Duration::from_millis(50),
        }
    }
}

/// `days` as an age; 0 means keep forever (None).
pub fn days(days: u64) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(days.saturating_mul(DAY)))
}

/// What a purge of one kind removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Rows (or files) removed.
    pub removed: u64,
    /// Batches that removed something (0 in a dry run).
    pub batches: u64,
}

impl Purged {
    /// Adds another round's counts.
    pub fn add(&mut self, other: Purged) {
        self.removed += other.removed;
        self.batches += other.batches;
    }
}

/// The kinds of the Maestro store that retention applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nodes (leaves first, checkouts kept).
    Nodes,
    /// Events (never after the lowest subscription cursor).
    Events,
    /// Pipeline telemetry events.
    Telemetry,
}

impl Kind {
    /// Every kind, in the order a round purges them.
    pub const ALL: [Kind; 3] = [Kind::Events, Kind::Telemetry, Kind::Nodes];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nodes => "nodes",
            Kind::Events => "events",
            Kind::Telemetry => "telemetry",
        }
    }

    fn age(self, r: &Retention) -> Option<Duration> {
        match self {
            Kind::Nodes => r.nodes,
            Kind::Events => r.events,
            Kind::Telemetry => r.telemetry,
        }
    }
}

/// Runs `batch` (given the batch size, returning rows removed) until it removes nothing,
/// sleeping `pause` after each batch that removed something.
pub async fn in_batches<F, Fut, E>(size: u32, pause: Duration, mut batch: F) -> Result<Purged, E>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
{
    let size = size.max(1);
    let mut out = Purged::default();
    loop {
        let n = batch(size).await?;
        if n == 0 {
            return Ok(out);
        }
        out.removed += n;
        out.batches += 1;
        tokio::time::sleep(pause).await;
    }
}

/// Purges one kind older than its configured age at `now` (nothing if kept forever); with
/// `dry_run`, counts what would go and removes nothing.
pub async fn purge(
    store: &dyn Store,
    kind: Kind,
    r: &Retention,
    now: Timestamp,
    dry_run: bool,
) -> Result<Purged> {
    let Some(age) = kind.age(r) else {
        return Ok(Purged::default());
    };
    // An age too large to subtract keeps everything.
    let Some(before) = chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
    else {
        return Ok(Purged::default());
    };
    if dry_run {
        let removed = match kind {
            Kind::Nodes => store.count_purgeable_nodes(before).await?,
            Kind::Events => store.count_purgeable_events(before).await?,
            Kind::Telemetry => store.count_purgeable_telemetry(before).await?,
        };
        return Ok(Purged {
            removed,
            batches: 0,
        });
    }
    in_batches(r.batch, r.pause, |size| async move {
        let limit = i64::from(size);
        match kind {
            Kind::Nodes => store.purge_nodes(before, limit).await,
            Kind::Events => store.purge_events(before, limit).await,
            Kind::Telemetry => store.purge_telemetry(before, limit).await,
        }
    })
    .await
}
