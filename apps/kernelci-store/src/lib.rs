//! Storage for the kernelci-rs roles.
//!
//! One [`Store`] trait, two implementations generated from the same code: SQLite (the
//! embedded default, a file in the data directory) and PostgreSQL (scale-out). Handlers hold
//! an `Arc<dyn Store>` and never know which one they talk to.
//!
//! Events use an outbox: every node change writes its event row in the same transaction,
//! with a sequence id that only grows in commit order (PostgreSQL serializes event writers
//! with a transaction-scoped advisory lock). Subscribers keep a cursor in the database, so an
//! event is never lost across restarts or replicas. A [`Wakeup`] tells waiting listeners to
//! look again: in-process after each commit, and across processes through PostgreSQL
//! `LISTEN/NOTIFY` (only a wake-up; the table stays the source of truth).

pub mod sql;
mod sqlstore;
mod types;
mod wake;

use std::sync::Arc;

use async_trait::async_trait;
use kernelci_model::telemetry::TelemetryEvent;
use kernelci_model::{Node, NodeFilter, ObjectId, Timestamp, User, UserGroup};

pub use sqlstore::{PgStore, SqliteStore};
pub use types::*;
pub use wake::Wakeup;

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// A unique value is already taken (the field name is given).
    #[error("{0} already exists")]
    Conflict(String),
    /// A durable subscriber id belongs to another user.
    #[error("Subscriber id {id} is owned by another user")]
    SubscriberOwned {
        /// The subscriber id.
        id: String,
    },
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database could not be opened or migrated.
    #[error("cannot open database {url}: {reason}")]
    Open {
        /// The URL (without password).
        url: String,
        /// Why.
        reason: String,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the roles persist. Implemented by [`SqliteStore`] and [`PgStore`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// The wake-up shared by this store's writers and listeners.
    fn wakeup(&self) -> &Wakeup;

    // --- nodes ---
    /// Insert a node and, if given, its event, in one transaction.
    async fn insert_node(&self, node: &Node, event: Option<&EventDraft>) -> Result<()>;
    /// Replace a stored node (by id) and write its event, in one transaction.
    async fn update_node(&self, node: &Node, event: Option<&EventDraft>) -> Result<()>;
    /// Insert or replace many nodes and write one event, in one transaction.
    async fn write_nodes(&self, writes: &[NodeWrite], event: Option<&EventDraft>) -> Result<()>;
    /// One node.
    async fn get_node(&self, id: &ObjectId) -> Result<Option<Node>>;
    /// Nodes matching a filter, oldest first.
    async fn find_nodes(&self, filter: &NodeFilter, page: Page) -> Result<Vec<Node>>;
    /// How many nodes match.
    async fn count_nodes(&self, filter: &NodeFilter) -> Result<i64>;
    /// Delete at most `limit` nodes created before `before` that have no child left,
    /// oldest first, in one short transaction; returns how many. Checkouts are kept (the
    /// trigger's per-commit dedup reads them). Repeated, it removes old trees leaves first,
    /// so no kept node ever loses its parent.
    async fn purge_nodes(&self, before: Timestamp, limit: i64) -> Result<u64>;
    /// How many nodes repeated [`Store::purge_nodes`] calls would remove (dry run).
    async fn count_purgeable_nodes(&self, before: Timestamp) -> Result<u64>;

    // --- events ---
    /// Store a published event (not tied to a node change).
    async fn publish(&self, event: &EventDraft) -> Result<StoredEvent>;
    /// The first event on `channel` after `after`, visible to `owner` (None = promiscuous).
    async fn next_event(
        &self,
        channel: &str,
        after: i64,
        owner: Option<&str>,
    ) -> Result<Option<StoredEvent>>;
    /// Events on every channel after `after`, oldest first, at most `limit`.
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>>;
    /// The highest sequence id so far (0 when empty).
    async fn last_event_seq(&self) -> Result<i64>;
    /// Event history query (`GET /events`).
    async fn query_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>>;
    /// Delete at most `limit` events older than `before`, oldest first, in one short
    /// transaction; returns how many. Events after the lowest subscription cursor are kept,
    /// so a live subscriber never misses one.
    async fn purge_events(&self, before: Timestamp, limit: i64) -> Result<u64>;
    /// How many events repeated [`Store::purge_events`] calls would remove (dry run).
    async fn count_purgeable_events(&self, before: Timestamp) -> Result<u64>;

    // --- subscriptions ---
    /// Create a subscription; with a `subscriber_id`, resume that subscriber's cursor.
    async fn subscribe(&self, req: &SubscribeRequest) -> Result<Subscription>;
    /// One subscription.
    async fn get_subscription(&self, id: i64) -> Result<Option<Subscription>>;
    /// Move the cursor forward (never back), set or clear the pending delivery, touch `last_poll`.
    async fn advance_subscription(
        &self,
        id: i64,
        cursor: i64,
        pending: Option<i64>,
        now: Timestamp,
    ) -> Result<()>;
    /// Drop a subscription (true if it existed).
    async fn unsubscribe(&self, id: i64) -> Result<bool>;
    /// All subscriptions.
    async fn list_subscriptions(&self) -> Result<Vec<Subscription>>;
    /// Drop subscriptions last polled before `before`; returns how many.
    async fn drop_stale_subscriptions(&self, before: Timestamp) -> Result<u64>;

    // --- lists (push/pop) and key/value ---
    /// Append to a named list.
    async fn push(&self, list: &str, payload: &str) -> Result<()>;
    /// Take the oldest item of a list.
    async fn pop(&self, list: &str) -> Result<Option<String>>;
    /// Read a value.
    async fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>>;
    /// Write a value.
    async fn kv_set(&self, namespace: &str, key: &str, value: &str) -> Result<()>;
    /// Delete a value.
    async fn kv_delete(&self, namespace: &str, key: &str) -> Result<()>;

    // --- users and groups ---
    /// Insert a user (Conflict on a taken username or e-mail).
    async fn insert_user(&self, user: &User) -> Result<()>;
    /// Replace a user (by id).
    async fn update_user(&self, user: &User) -> Result<()>;
    /// Delete a user (true if it existed).
    async fn delete_user(&self, id: &ObjectId) -> Result<bool>;
    /// One user by id.
    async fn get_user(&self, id: &ObjectId) -> Result<Option<User>>;
    /// One user by username.
    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// One user by e-mail.
    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Insert a group (Conflict on a taken name).
    async fn insert_group(&self, group: &UserGroup) -> Result<()>;
    /// One group by id.
    async fn get_group(&self, id: &ObjectId) -> Result<Option<UserGroup>>;
    /// One group by name.
    async fn get_group_by_name(&self, name: &str) -> Result<Option<UserGroup>>;
    /// Every group.
    async fn list_groups(&self) -> Result<Vec<UserGroup>>;
    /// Delete a group (true if it existed).
    async fn delete_group(&self, id: &ObjectId) -> Result<bool>;

    // --- telemetry ---
    /// Store telemetry events, all or none (one transaction); returns how many.
    async fn insert_telemetry(&self, events: &[TelemetryEvent]) -> Result<u64>;
    /// One page of the matching telemetry events, oldest first, and how many match in all.
    async fn find_telemetry(&self, query: &TelemetryQuery) -> Result<(Vec<TelemetryEvent>, i64)>;
    /// Every matching telemetry event, oldest first (input of the in-memory aggregations).
    async fn scan_telemetry(&self, filter: &TelemetryFilter) -> Result<Vec<TelemetryEvent>>;
    /// Delete at most `limit` telemetry events with `ts` before `before`, oldest first, in
    /// one short transaction; returns how many.
    async fn purge_telemetry(&self, before: Timestamp, limit: i64) -> Result<u64>;
    /// How many telemetry events repeated [`Store::purge_telemetry`] calls would remove.
    async fn count_purgeable_telemetry(&self, before: Timestamp) -> Result<u64>;

    // --- settings ---
    /// Read a setting.
    async fn meta_get(&self, key: &str) -> Result<Option<String>>;
    /// Set a setting unless it exists; returns the stored value either way.
    async fn meta_init(&self, key: &str, value: &str) -> Result<String>;
}

/// Open a store from a URL: `sqlite://PATH` (created if missing) or `postgres://...`.
/// Runs the migrations. On PostgreSQL also starts the `LISTEN` task for cross-process wake-ups.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Open {
            url: redact(url),
            reason: "unsupported URL scheme (use sqlite://PATH or postgres://...)".into(),
        })
    }
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
