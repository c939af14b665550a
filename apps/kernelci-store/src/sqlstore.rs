//! The SQL implementation of [`Store`], written once and instantiated for SQLite and
//! PostgreSQL by the `sql_store!` macro. Dialect differences live in SQL text only: the
//! `?`/`{json}`/`{text}` markers rewritten by [`adapt`], and the few statements chosen with
//! `Self::DIALECT`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use kernelci_model::filter::{ColumnType, Op, Value};
use kernelci_model::telemetry::{TelemetryEvent, TelemetryKind};
use kernelci_model::{Node, NodeFilter, ObjectId, Timestamp, User, UserGroup, time};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};

use crate::sql::filter::{Target, render, render_node_conditions};
use crate::sql::{Arg, Args, Dialect, adapt, schema};
use crate::{
    EventDraft, EventField, EventQuery, NodeWrite, Page, Result, Store, StoreError, StoredEvent,
    SubscribeRequest, Subscription, TelemetryFilter, TelemetryQuery, Wakeup, redact,
};

/// The PostgreSQL channel used to wake listeners in other processes.
const NOTIFY_CHANNEL: &str = "kernelci_events";
/// Advisory lock serializing event writers so sequence ids are visible in commit order.
const EVENT_LOCK: i64 = 0x6b63_6965_7674;
/// The purge condition keeping every event after the lowest subscription cursor (events at
/// or below every cursor were delivered to everyone listening).
const EVENTS_BEHIND_CURSORS: &str = "seq <= COALESCE((SELECT MIN(cursor) FROM subscriptions), seq)";
/// Advisory lock serializing migrations across processes.
const MIGRATION_LOCK: i64 = 0x6b63_696d_6967;

/// The embedded store: one SQLite file (WAL mode).
pub struct SqliteStore {
    pool: SqlitePool,
    wake: Wakeup,
    /// SQLite has one writer at a time; queueing writers here instead of in SQLite's busy
    /// handler (which sleeps and retries) keeps write latency flat under concurrency.
    write_gate: Option<tokio::sync::Mutex<()>>,
}

/// The scale-out store: PostgreSQL, with `LISTEN/NOTIFY` wake-ups across processes.
pub struct PgStore {
    pool: PgPool,
    wake: Wakeup,
    listener: tokio::task::AbortHandle,
    /// Unused: PostgreSQL has row-level concurrency.
    write_gate: Option<tokio::sync::Mutex<()>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn open_error(url: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        url: redact(url),
        reason: e.to_string(),
    }
}

impl SqliteStore {
    /// Open (creating the file if needed) and migrate.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_error(url, e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .with_regexp();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(|e| open_error(url, e))?;
        let store = SqliteStore {
            pool,
            wake: Wakeup::default(),
            write_gate: Some(tokio::sync::Mutex::new(())),
        };
        store.migrate().await.map_err(|e| open_error(url, e))?;
        // Give the planner statistics (bounded work: at most ~400 rows sampled per index) so
        // that it picks the selective index among several. In the background: on a large
        // database this takes most of a second, and start-up must not wait for it.
        let pool = store.pool.clone();
        tokio::spawn(async move {
            // Both pragmas on one connection: `analysis_limit` is per connection.
            let Ok(mut conn) = pool.acquire().await else {
                return;
            };
            for pragma in ["PRAGMA analysis_limit = 400", "PRAGMA optimize = 0x10002"] {
                if let Err(e) = sqlx::query(pragma).execute(&mut *conn).await {
                    tracing::warn!("{pragma}: {e}");
                }
            }
        });
        Ok(store)
    }
}

impl PgStore {
    /// Connect, migrate, and start the `LISTEN` task.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| open_error(url, e))?;
        let wake = Wakeup::default();
        let task = tokio::spawn(listen_forever(pool.clone(), wake.clone()));
        let store = PgStore {
            pool,
            wake,
            listener: task.abort_handle(),
            write_gate: None,
        };
        store.migrate().await.map_err(|e| open_error(url, e))?;
        Ok(store)
    }
}

/// Relay `NOTIFY` to the local wake-up, reconnecting with backoff. A notification lost
/// during a reconnect only delays listeners until their next periodic re-check.
async fn listen_forever(pool: PgPool, wake: Wakeup) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if listener.listen(NOTIFY_CHANNEL).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    wake.notify();
                    while listener.recv().await.is_ok() {
                        wake.notify();
                    }
                }
            }
            Err(e) => tracing::warn!("LISTEN connection failed: {e}"),
        }
        wake.notify();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn q(sql: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql)
}

fn map_unique(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let msg = format!("{} {}", db.message(), db.constraint().unwrap_or(""));
        let field = ["schedule_key", "email", "username", "name", "id"]
            .into_iter()
            .find(|f| msg.contains(f))
            .unwrap_or("value");
        return StoreError::Conflict(field.to_string());
    }
    StoreError::Db(e)
}

fn node_args(n: &Node) -> Result<Vec<Arg>> {
    let doc = serde_json::to_string(n).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(vec![
        Arg::Str(n.id.to_string()),
        Arg::Str(n.kind.as_str().into()),
        Arg::Str(n.name.clone()),
        Arg::OptStr(n.group.clone()),
        Arg::OptStr(n.parent.map(|p| p.to_string())),
        Arg::Str(n.state.as_str().into()),
        Arg::OptStr(n.result.map(|r| r.as_str().to_string())),
        Arg::OptStr(n.owner.clone()),
        Arg::OptStr(n.submitter.clone()),
        Arg::OptStr(n.treeid.clone()),
        Arg::I64(time::to_micros(&n.created)),
        Arg::I64(time::to_micros(&n.updated)),
        Arg::I64(time::to_micros(&n.timeout)),
        Arg::OptI64(n.holdoff.as_ref().map(time::to_micros)),
        Arg::I64(n.retry_counter),
        Arg::Bool(n.processed_by_kcidb_bridge),
        Arg::Str(doc),
    ])
}

const NODE_COLUMNS: &str = "id, kind, name, grp, parent, state, result, owner, submitter, treeid, \
     created, updated, timeout, holdoff, retry_counter, kcidb_flag, doc";
const INSERT_NODE: &str = "INSERT INTO nodes (id, kind, name, grp, parent, state, result, owner, \
     submitter, treeid, created, updated, timeout, holdoff, retry_counter, kcidb_flag, doc) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{json})";
const UPDATE_NODE: &str = "UPDATE nodes SET id = ?, kind = ?, name = ?, grp = ?, parent = ?, \
     state = ?, result = ?, owner = ?, submitter = ?, treeid = ?, created = ?, updated = ?, \
     timeout = ?, holdoff = ?, retry_counter = ?, kcidb_flag = ?, doc = ?{json} WHERE id = ?";
const EVENT_COLUMNS: &str = "seq, id, ts, channel, owner, envelope";
const SUB_COLUMNS: &str =
    "id, channel, username, promiscuous, subscriber_id, cursor, pending, created, last_poll";
const USER_COLUMNS: &str =
    "id, username, email, hashed_password, is_active, is_superuser, is_verified, groups";

fn parse_node(doc: &str) -> Result<Node> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("node document: {e}")))
}

fn parse_id(s: &str) -> Result<ObjectId> {
    ObjectId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn user_args(u: &User) -> Result<Vec<Arg>> {
    let groups =
        serde_json::to_string(&u.groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(vec![
        Arg::Str(u.id.to_string()),
        Arg::Str(u.username.clone()),
        Arg::Str(u.email.clone()),
        Arg::Str(u.hashed_password.clone()),
        Arg::Bool(u.is_active),
        Arg::Bool(u.is_superuser),
        Arg::Bool(u.is_verified),
        Arg::Str(groups),
    ])
}

fn event_target(field: &EventField) -> Option<Target<'_>> {
    Some(match field {
        EventField::Id => Target::Col("id", ColumnType::Text),
        EventField::Channel => Target::Col("channel", ColumnType::Text),
        EventField::Owner => Target::Col("owner", ColumnType::Text),
        EventField::Timestamp => Target::Col("ts", ColumnType::Time),
        EventField::Seq => Target::Col("seq", ColumnType::Int),
        EventField::Data(path) => Target::Doc("data", path),
        EventField::Missing => return None,
    })
}

fn paging(d: Dialect, page: Page, args: &mut Args) -> String {
    let mut s = String::new();
    match page.limit {
        Some(l) => s.push_str(&format!(" LIMIT {}", args.push(Arg::I64(l)))),
        None if d == Dialect::Sqlite => s.push_str(" LIMIT -1"),
        None => {}
    }
    s.push_str(&format!(" OFFSET {}", args.push(Arg::I64(page.offset))));
    s
}

const TELEMETRY_COLUMNS: &str = "id, ts, kind, runtime, device_type, device_id, job_name, \
     test_name, job_id, node_id, tree, branch, arch, result, is_infra_error, error_type, \
     error_msg, retry, extra";
/// The telemetry columns to read, `extra` as text.
const TELEMETRY_SELECT: &str = "id, ts, kind, runtime, device_type, device_id, job_name, \
     test_name, job_id, node_id, tree, branch, arch, result, is_infra_error, error_type, \
     error_msg, retry, extra{text} AS extra";
/// Telemetry rows per `INSERT` (19 binds each: far below SQLite's and PostgreSQL's limits).
const TELEMETRY_CHUNK: usize = 500;

fn telemetry_args(e: &TelemetryEvent) -> Result<Vec<Arg>> {
    let extra = serde_json::to_string(&e.extra).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(vec![
        Arg::Str(e.id.to_string()),
        Arg::I64(time::to_micros(&e.ts)),
        Arg::Str(e.kind.as_str().into()),
        Arg::Str(e.runtime.clone()),
        Arg::OptStr(e.device_type.clone()),
        Arg::OptStr(e.device_id.clone()),
        Arg::OptStr(e.job_name.clone()),
        Arg::OptStr(e.test_name.clone()),
        Arg::OptStr(e.job_id.clone()),
        Arg::OptStr(e.node_id.clone()),
        Arg::OptStr(e.tree.clone()),
        Arg::OptStr(e.branch.clone()),
        Arg::OptStr(e.arch.clone()),
        Arg::OptStr(e.result.clone()),
        Arg::Bool(e.is_infra_error),
        Arg::OptStr(e.error_type.clone()),
        Arg::OptStr(e.error_msg.clone()),
        Arg::I64(e.retry),
        Arg::Str(extra),
    ])
}

/// One multi-row `INSERT` for `events`, its values pushed to `args`.
fn telemetry_insert(events: &[TelemetryEvent], args: &mut Args) -> Result<String> {
    let json_cast = if args.dialect == Dialect::Postgres {
        "::jsonb"
    } else {
        ""
    };
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        let placeholders: Vec<String> = telemetry_args(e)?
            .into_iter()
            .map(|a| args.push(a))
            .collect();
        rows.push(format!("({}{json_cast})", placeholders.join(", ")));
    }
    Ok(format!(
        "INSERT INTO telemetry ({TELEMETRY_COLUMNS}) VALUES {}",
        rows.join(", ")
    ))
}

/// The `WHERE` condition of a telemetry filter; column names come from fixed lists only.
fn telemetry_where(f: &TelemetryFilter, args: &mut Args) -> String {
    let mut parts = Vec::new();
    for (column, value) in &f.equals {
        parts.push(format!(
            "{} = {}",
            column.name(),
            args.push(Arg::Str(value.clone()))
        ));
    }
    if !f.kinds.is_empty() {
        let kinds: Vec<String> = f
            .kinds
            .iter()
            .map(|k| args.push(Arg::Str(k.as_str().into())))
            .collect();
        parts.push(format!("kind IN ({})", kinds.join(", ")));
    }
    if let Some(retry) = f.retry {
        parts.push(format!("retry = {}", args.push(Arg::I64(retry))));
    }
    if let Some(infra) = f.is_infra_error {
        parts.push(format!("is_infra_error = {}", args.push(Arg::Bool(infra))));
    }
    if let Some(since) = &f.since {
        parts.push(format!(
            "ts >= {}",
            args.push(Arg::I64(time::to_micros(since)))
        ));
    }
    if let Some(until) = &f.until {
        parts.push(format!(
            "ts <= {}",
            args.push(Arg::I64(time::to_micros(until)))
        ));
    }
    if parts.is_empty() {
        "1=1".to_string()
    } else {
        parts.join(" AND ")
    }
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for a in $args {
            query = match a {
                Arg::Str(s) => query.bind(s),
                Arg::OptStr(s) => query.bind(s),
                Arg::I64(n) => query.bind(n),
                Arg::OptI64(n) => query.bind(n),
                Arg::Bool(b) => query.bind(b),
            };
        }
        query
    }};
}

macro_rules! sql_store {
    ($store:ident, $dialect:expr, $backend:literal, $begin:literal) => {
        impl $store {
            const DIALECT: Dialect = $dialect;

            /// Queue behind other writers of this process (SQLite only).
            async fn gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
                match &self.write_gate {
                    Some(m) => Some(m.lock().await),
                    None => None,
                }
            }

            fn sql(&self, s: &str) -> AssertSqlSafe<String> {
                q(adapt(Self::DIALECT, s))
            }

            /// One purge batch: `statement` (integer binds) in its own short write
            /// transaction, behind the write gate like every other writer.
            async fn purge_batch(&self, statement: &str, binds: &[i64]) -> Result<u64> {
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                let mut query = sqlx::query(self.sql(statement));
                for b in binds {
                    query = query.bind(*b);
                }
                let done = query.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            /// A `COUNT(*)` query with integer binds.
            async fn count_rows(&self, statement: &str, binds: &[i64]) -> Result<u64> {
                let mut query = sqlx::query_scalar::<_, i64>(self.sql(statement));
                for b in binds {
                    query = query.bind(*b);
                }
                let n = query.fetch_one(&self.pool).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn migrate(&self) -> Result<()> {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations \
                     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .execute(&self.pool)
                .await?;
                for (version, statements) in schema::migrations(Self::DIALECT) {
                    let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                    if Self::DIALECT == Dialect::Postgres {
                        sqlx::query(q(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")))
                            .execute(&mut *tx)
                            .await?;
                    }
                    let done: Option<i64> = sqlx::query_scalar(
                        self.sql("SELECT version FROM schema_migrations WHERE version = ?"),
                    )
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if done.is_some() {
                        continue;
                    }
                    for stmt in *statements {
                        sqlx::query(q(stmt.to_string())).execute(&mut *tx).await?;
                    }
                    sqlx::query(self.sql(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    ))
                    .bind(*version)
                    .bind(time::to_micros(&time::now()))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                }
                Ok(())
            }

            async fn write_event(
                &self,
                tx: &mut sqlx::Transaction<'static, <Self as BackendDb>::Db>,
                ev: &EventDraft,
            ) -> Result<i64> {
                if Self::DIALECT == Dialect::Postgres {
                    sqlx::query(q(format!("SELECT pg_advisory_xact_lock({EVENT_LOCK})")))
                        .execute(&mut **tx)
                        .await?;
                }
                let mut envelope = ev.cloud_event.clone();
                envelope.sequence_id = None;
                let envelope = serde_json::to_string(&envelope.to_value())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let data = serde_json::to_string(&ev.cloud_event.data)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let seq: i64 = sqlx::query_scalar(self.sql(
                    "INSERT INTO events (id, ts, channel, owner, data, envelope) \
                     VALUES (?, ?, ?, ?, ?{json}, ?) RETURNING seq",
                ))
                .bind(ObjectId::generate().to_string())
                .bind(time::to_micros(&ev.cloud_event.time))
                .bind(ev.channel.clone())
                .bind(ev.owner.clone())
                .bind(data)
                .bind(envelope)
                .fetch_one(&mut **tx)
                .await?;
                self.notify_others(tx).await?;
                Ok(seq)
            }

            async fn notify_others(
                &self,
                tx: &mut sqlx::Transaction<'static, <Self as BackendDb>::Db>,
            ) -> Result<()> {
                if Self::DIALECT == Dialect::Postgres {
                    sqlx::query(q(format!("SELECT pg_notify('{NOTIFY_CHANNEL}', '')")))
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            fn event_from_row(row: &<<Self as BackendDb>::Db as sqlx::Database>::Row) -> Result<StoredEvent> {
                // The payload is served from the envelope text, which keeps the key order
                // it was published with (the `data` column is JSONB on PostgreSQL and only
                // serves filters).
                let envelope: String = row.try_get("envelope")?;
                let envelope = match serde_json::from_str(&envelope) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => return Err(StoreError::Corrupt("event envelope".into())),
                };
                let data = envelope.get("data").cloned().unwrap_or(serde_json::Value::Null);
                Ok(StoredEvent {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    timestamp: time::from_micros(row.try_get("ts")?),
                    channel: row.try_get("channel")?,
                    owner: row.try_get("owner")?,
                    data,
                    envelope,
                })
            }

            fn sub_from_row(row: &<<Self as BackendDb>::Db as sqlx::Database>::Row) -> Result<Subscription> {
                Ok(Subscription {
                    id: row.try_get("id")?,
                    channel: row.try_get("channel")?,
                    username: row.try_get("username")?,
                    promiscuous: row.try_get("promiscuous")?,
                    subscriber_id: row.try_get("subscriber_id")?,
                    cursor: row.try_get("cursor")?,
                    pending: row.try_get("pending")?,
                    created: time::from_micros(row.try_get("created")?),
                    last_poll: row.try_get::<Option<i64>, _>("last_poll")?.map(time::from_micros),
                })
            }

            fn user_from_row(row: &<<Self as BackendDb>::Db as sqlx::Database>::Row) -> Result<User> {
                let id: String = row.try_get("id")?;
                let groups: String = row.try_get("groups")?;
                Ok(User {
                    id: parse_id(&id)?,
                    username: row.try_get("username")?,
                    email: row.try_get("email")?,
                    hashed_password: row.try_get("hashed_password")?,
                    is_active: row.try_get("is_active")?,
                    is_superuser: row.try_get("is_superuser")?,
                    is_verified: row.try_get("is_verified")?,
                    groups: serde_json::from_str(&groups)
                        .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?,
                })
            }

            fn telemetry_from_row(row: &<<Self as BackendDb>::Db as sqlx::Database>::Row) -> Result<TelemetryEvent> {
                let id: String = row.try_get("id")?;
                let kind: String = row.try_get("kind")?;
                let extra: String = row.try_get("extra")?;
                let extra = match serde_json::from_str(&extra) {
                    Ok(serde_json::Value::Object(m)) => m,
                    _ => return Err(StoreError::Corrupt("telemetry extra".into())),
                };
                Ok(TelemetryEvent {
                    id: parse_id(&id)?,
                    ts: time::from_micros(row.try_get("ts")?),
                    kind: TelemetryKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("telemetry kind {kind}")))?,
                    runtime: row.try_get("runtime")?,
                    device_type: row.try_get("device_type")?,
                    device_id: row.try_get("device_id")?,
                    job_name: row.try_get("job_name")?,
                    test_name: row.try_get("test_name")?,
                    job_id: row.try_get("job_id")?,
                    node_id: row.try_get("node_id")?,
                    tree: row.try_get("tree")?,
                    branch: row.try_get("branch")?,
                    arch: row.try_get("arch")?,
                    result: row.try_get("result")?,
                    is_infra_error: row.try_get("is_infra_error")?,
                    error_type: row.try_get("error_type")?,
                    error_msg: row.try_get("error_msg")?,
                    retry: row.try_get("retry")?,
                    extra,
                })
            }

            async fn telemetry_rows(&self, filter: &TelemetryFilter, page: Option<Page>) -> Result<Vec<TelemetryEvent>> {
                let mut args = Args::new(Self::DIALECT);
                let wh = telemetry_where(filter, &mut args);
                let paging = page.map(|p| paging(Self::DIALECT, p, &mut args)).unwrap_or_default();
                let cols = adapt(Self::DIALECT, TELEMETRY_SELECT);
                let sql = format!("SELECT {cols} FROM telemetry WHERE {wh} ORDER BY seq{paging}");
                let rows = bind_all!(sqlx::query(q(sql)), args.values).fetch_all(&self.pool).await?;
                rows.iter().map(Self::telemetry_from_row).collect()
            }

            async fn user_where(&self, column: &str, value: String) -> Result<Option<User>> {
                let row = sqlx::query(self.sql(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE {column} = ?"
                )))
                .bind(value)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn wakeup(&self) -> &Wakeup {
                &self.wake
            }

            async fn insert_node(&self, node: &Node, event: Option<&EventDraft>) -> Result<()> {
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                bind_all!(sqlx::query(self.sql(INSERT_NODE)), node_args(node)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_unique)?;
                if let Some(ev) = event {
                    self.write_event(&mut tx, ev).await?;
                }
                tx.commit().await?;
                if event.is_some() {
                    self.wake.notify();
                }
                Ok(())
            }

            async fn update_node(&self, node: &Node, event: Option<&EventDraft>) -> Result<()> {
                self.write_nodes(&[NodeWrite::Replace(node.clone())], event).await
            }

            async fn write_nodes(&self, writes: &[NodeWrite], event: Option<&EventDraft>) -> Result<()> {
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                for w in writes {
                    match w {
                        NodeWrite::Insert(n) => {
                            bind_all!(sqlx::query(self.sql(INSERT_NODE)), node_args(n)?)
                                .execute(&mut *tx)
                                .await
                                .map_err(map_unique)?;
                        }
                        NodeWrite::Replace(n) => {
                            let mut args = node_args(n)?;
                            args.push(Arg::Str(n.id.to_string()));
                            let done = bind_all!(sqlx::query(self.sql(UPDATE_NODE)), args)
                                .execute(&mut *tx)
                                .await?;
                            if done.rows_affected() == 0 {
                                return Err(StoreError::NotFound);
                            }
                        }
                    }
                }
                if let Some(ev) = event {
                    self.write_event(&mut tx, ev).await?;
                }
                tx.commit().await?;
                if event.is_some() {
                    self.wake.notify();
                }
                Ok(())
            }

            async fn get_node(&self, id: &ObjectId) -> Result<Option<Node>> {
                let doc: Option<String> =
                    sqlx::query_scalar(self.sql("SELECT doc{text} FROM nodes WHERE id = ?"))
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                doc.as_deref().map(parse_node).transpose()
            }

            async fn find_nodes(&self, filter: &NodeFilter, page: Page) -> Result<Vec<Node>> {
                let mut args = Args::new(Self::DIALECT);
                let wh = render_node_conditions(&filter.conditions, &mut args);
                let paging = paging(Self::DIALECT, page, &mut args);
                let sql = format!(
                    "SELECT doc{} FROM nodes WHERE {wh} ORDER BY seq{paging}",
                    if Self::DIALECT == Dialect::Postgres { "::text" } else { "" }
                );
                let docs: Vec<String> =
                    bind_all!(sqlx::query_scalar(q(sql)), args.values).fetch_all(&self.pool).await?;
                docs.iter().map(|d| parse_node(d)).collect()
            }

            async fn count_nodes(&self, filter: &NodeFilter) -> Result<i64> {
                let mut args = Args::new(Self::DIALECT);
                let wh = render_node_conditions(&filter.conditions, &mut args);
                let sql = format!("SELECT COUNT(*) FROM nodes WHERE {wh}");
                Ok(bind_all!(sqlx::query_scalar(q(sql)), args.values).fetch_one(&self.pool).await?)
            }

            async fn purge_nodes(&self, before: Timestamp, limit: i64) -> Result<u64> {
                // Leaves first: a node goes only once no child is left, so a young test
                // keeps its old ancestors and nothing is ever orphaned.
                self.purge_batch(
                    "DELETE FROM nodes WHERE seq IN (SELECT n.seq FROM nodes n \
                     WHERE n.created < ? AND n.kind <> 'checkout' \
                     AND NOT EXISTS (SELECT 1 FROM nodes c WHERE c.parent = n.id) \
                     ORDER BY n.created, n.seq LIMIT ?)",
                    &[time::to_micros(&before), limit],
                )
                .await
            }

            async fn count_purgeable_nodes(&self, before: Timestamp) -> Result<u64> {
                // Every old non-checkout node except the ancestors of a node that stays.
                let cutoff = time::to_micros(&before);
                self.count_rows(
                    "WITH RECURSIVE pinned(id) AS (\
                     SELECT parent FROM nodes WHERE parent IS NOT NULL \
                     AND (created >= ? OR kind = 'checkout') \
                     UNION SELECT n.parent FROM nodes n JOIN pinned p ON n.id = p.id \
                     WHERE n.parent IS NOT NULL) \
                     SELECT COUNT(*) FROM nodes WHERE created < ? AND kind <> 'checkout' \
                     AND id NOT IN (SELECT id FROM pinned)",
                    &[cutoff, cutoff],
                )
                .await
            }

            async fn publish(&self, event: &EventDraft) -> Result<StoredEvent> {
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                let seq = self.write_event(&mut tx, event).await?;
                let row = sqlx::query(self.sql(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?"
                )))
                .bind(seq)
                .fetch_one(&mut *tx)
                .await?;
                let stored = Self::event_from_row(&row)?;
                tx.commit().await?;
                self.wake.notify();
                Ok(stored)
            }

            async fn next_event(&self, channel: &str, after: i64, owner: Option<&str>) -> Result<Option<StoredEvent>> {
                let owner_clause = if owner.is_some() { " AND (owner IS NULL OR owner = ?)" } else { "" };
                let mut query = sqlx::query(self.sql(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE channel = ? AND seq > ?{owner_clause} \
                     ORDER BY seq LIMIT 1"
                )))
                .bind(channel.to_string())
                .bind(after);
                if let Some(o) = owner {
                    query = query.bind(o.to_string());
                }
                let row = query.fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::event_from_row).transpose()
            }

            async fn last_event_seq(&self) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn query_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
                let mut args = Args::new(Self::DIALECT);
                let mut parts = Vec::new();
                for c in &query.conditions {
                    match event_target(&c.field) {
                        Some(t) => parts.push(render(t, c.op, &c.value, &mut args)),
                        None => {
                            let null = matches!(c.value, Value::Null);
                            let holds = match c.op { Op::Eq | Op::Lte | Op::Gte => null, Op::Ne => !null, _ => false };
                            parts.push(if holds { "1=1".into() } else { "1=0".into() });
                        }
                    }
                }
                let wh = if parts.is_empty() { "1=1".to_string() } else { parts.join(" AND ") };
                let paging = paging(Self::DIALECT, query.page, &mut args);
                let cols = adapt(Self::DIALECT, EVENT_COLUMNS);
                let sql = format!("SELECT {cols} FROM events WHERE {wh} ORDER BY seq{paging}");
                let rows = bind_all!(sqlx::query(q(sql)), args.values).fetch_all(&self.pool).await?;
                rows.iter().map(Self::event_from_row).collect()
            }

            async fn purge_events(&self, before: Timestamp, limit: i64) -> Result<u64> {
                self.purge_batch(
                    &format!(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events \
                         WHERE ts < ? AND {EVENTS_BEHIND_CURSORS} ORDER BY seq LIMIT ?)"
                    ),
                    &[time::to_micros(&before), limit],
                )
                .await
            }

            async fn count_purgeable_events(&self, before: Timestamp) -> Result<u64> {
                self.count_rows(
                    &format!(
                        "SELECT COUNT(*) FROM events WHERE ts < ? AND {EVENTS_BEHIND_CURSORS}"
                    ),
                    &[time::to_micros(&before)],
                )
                .await
            }

            async fn subscribe(&self, req: &SubscribeRequest) -> Result<Subscription> {
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                    .fetch_one(&mut *tx)
                    .await?;
                let now = time::to_micros(&req.now);
                let mut cursor = last;
                if let Some(sid) = &req.subscriber_id {
                    let row = sqlx::query(self.sql(
                        "SELECT username, last_event_id FROM subscriber_state WHERE subscriber_id = ?",
                    ))
                    .bind(sid.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        Some(row) => {
                            let user: String = row.try_get("username")?;
                            if user != req.username {
                                return Err(StoreError::SubscriberOwned { id: sid.clone() });
                            }
                            cursor = row.try_get("last_event_id")?;
                            sqlx::query(self.sql(
                                "UPDATE subscriber_state SET last_poll = ? WHERE subscriber_id = ?",
                            ))
                            .bind(now)
                            .bind(sid.clone())
                            .execute(&mut *tx)
                            .await?;
                        }
                        None => {
                            sqlx::query(self.sql(
                                "INSERT INTO subscriber_state (subscriber_id, channel, username, \
                                 promiscuous, last_event_id, created_at, last_poll) \
                                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ))
                            .bind(sid.clone())
                            .bind(req.channel.clone())
                            .bind(req.username.clone())
                            .bind(req.promiscuous)
                            .bind(last)
                            .bind(now)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                let row = sqlx::query(self.sql(&format!(
                    "INSERT INTO subscriptions (channel, username, promiscuous, subscriber_id, \
                     cursor, pending, created, last_poll) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL) \
                     RETURNING {SUB_COLUMNS}"
                )))
                .bind(req.channel.clone())
                .bind(req.username.clone())
                .bind(req.promiscuous)
                .bind(req.subscriber_id.clone())
                .bind(cursor)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let sub = Self::sub_from_row(&row)?;
                tx.commit().await?;
                Ok(sub)
            }

            async fn get_subscription(&self, id: i64) -> Result<Option<Subscription>> {
                let row = sqlx::query(self.sql(&format!(
                    "SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::sub_from_row).transpose()
            }

            async fn advance_subscription(&self, id: i64, cursor: i64, pending: Option<i64>, now: Timestamp) -> Result<()> {
                // Two autocommit statements: cursors only move forward, so no transaction is
                // needed, and plain subscriptions (the common case) cost one write.
                let now = time::to_micros(&now);
                let _gate = self.gate().await;
                let durable: Option<Option<String>> = sqlx::query_scalar(self.sql(
                    "UPDATE subscriptions SET cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END, \
                     pending = ?, last_poll = ? WHERE id = ? RETURNING subscriber_id",
                ))
                .bind(cursor)
                .bind(cursor)
                .bind(pending)
                .bind(now)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(Some(subscriber_id)) = durable {
                    sqlx::query(self.sql(
                        "UPDATE subscriber_state SET last_event_id = CASE WHEN last_event_id < ? \
                         THEN ? ELSE last_event_id END, last_poll = ? WHERE subscriber_id = ?",
                    ))
                    .bind(cursor)
                    .bind(cursor)
                    .bind(now)
                    .bind(subscriber_id)
                    .execute(&self.pool)
                    .await?;
                }
                Ok(())
            }

            async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>> {
                let rows = sqlx::query(self.sql(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
                )))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::event_from_row).collect()
            }

            async fn unsubscribe(&self, id: i64) -> Result<bool> {
                let done = sqlx::query(self.sql("DELETE FROM subscriptions WHERE id = ?"))
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_subscriptions(&self) -> Result<Vec<Subscription>> {
                let rows = sqlx::query(q(format!("SELECT {SUB_COLUMNS} FROM subscriptions ORDER BY id")))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::sub_from_row).collect()
            }

            async fn drop_stale_subscriptions(&self, before: Timestamp) -> Result<u64> {
                let done = sqlx::query(self.sql(
                    "DELETE FROM subscriptions WHERE last_poll IS NOT NULL AND last_poll < ?",
                ))
                .bind(time::to_micros(&before))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn push(&self, list: &str, payload: &str) -> Result<()> {
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(self.sql("INSERT INTO queue_items (list, payload) VALUES (?, ?)"))
                    .bind(list.to_string())
                    .bind(payload.to_string())
                    .execute(&mut *tx)
                    .await?;
                self.notify_others(&mut tx).await?;
                tx.commit().await?;
                self.wake.notify();
                Ok(())
            }

            async fn pop(&self, list: &str) -> Result<Option<String>> {
                let lock = if Self::DIALECT == Dialect::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
                let sql = format!(
                    "DELETE FROM queue_items WHERE seq = (SELECT seq FROM queue_items WHERE list = ? \
                     ORDER BY seq LIMIT 1{lock}) RETURNING payload"
                );
                Ok(sqlx::query_scalar(self.sql(&sql))
                    .bind(list.to_string())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(self.sql("SELECT value FROM kv WHERE namespace = ? AND key = ?"))
                    .bind(namespace.to_string())
                    .bind(key.to_string())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn kv_set(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
                sqlx::query(self.sql(
                    "INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) \
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                ))
                .bind(namespace.to_string())
                .bind(key.to_string())
                .bind(value.to_string())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn kv_delete(&self, namespace: &str, key: &str) -> Result<()> {
                sqlx::query(self.sql("DELETE FROM kv WHERE namespace = ? AND key = ?"))
                    .bind(namespace.to_string())
                    .bind(key.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_user(&self, user: &User) -> Result<()> {
                bind_all!(
                    sqlx::query(self.sql(&format!(
                        "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    ))),
                    user_args(user)?
                )
                .execute(&self.pool)
                .await
                .map_err(map_unique)?;
                Ok(())
            }

            async fn update_user(&self, user: &User) -> Result<()> {
                let mut args = user_args(user)?;
                args.push(Arg::Str(user.id.to_string()));
                let done = bind_all!(
                    sqlx::query(self.sql(
                        "UPDATE users SET id = ?, username = ?, email = ?, hashed_password = ?, \
                         is_active = ?, is_superuser = ?, is_verified = ?, groups = ? WHERE id = ?"
                    )),
                    args
                )
                .execute(&self.pool)
                .await
                .map_err(map_unique)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_user(&self, id: &ObjectId) -> Result<bool> {
                let done = sqlx::query(self.sql("DELETE FROM users WHERE id = ?"))
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn get_user(&self, id: &ObjectId) -> Result<Option<User>> {
                self.user_where("id", id.to_string()).await
            }

            async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
                self.user_where("username", username.to_string()).await
            }

            async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
                self.user_where("email", email.to_string()).await
            }

            async fn list_users(&self) -> Result<Vec<User>> {
                let rows = sqlx::query(q(format!("SELECT {USER_COLUMNS} FROM users ORDER BY id")))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::user_from_row).collect()
            }

            async fn insert_group(&self, group: &UserGroup) -> Result<()> {
                sqlx::query(self.sql("INSERT INTO user_groups (id, name) VALUES (?, ?)"))
                    .bind(group.id.to_string())
                    .bind(group.name.clone())
                    .execute(&self.pool)
                    .await
                    .map_err(map_unique)?;
                Ok(())
            }

            async fn get_group(&self, id: &ObjectId) -> Result<Option<UserGroup>> {
                let name: Option<String> =
                    sqlx::query_scalar(self.sql("SELECT name FROM user_groups WHERE id = ?"))
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(name.map(|name| UserGroup { id: *id, name }))
            }

            async fn get_group_by_name(&self, name: &str) -> Result<Option<UserGroup>> {
                let id: Option<String> =
                    sqlx::query_scalar(self.sql("SELECT id FROM user_groups WHERE name = ?"))
                        .bind(name.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                id.map(|id| Ok(UserGroup { id: parse_id(&id)?, name: name.to_string() })).transpose()
            }

            async fn list_groups(&self) -> Result<Vec<UserGroup>> {
                let rows = sqlx::query("SELECT id, name FROM user_groups ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get("id")?;
                        Ok(UserGroup { id: parse_id(&id)?, name: r.try_get("name")? })
                    })
                    .collect()
            }

            async fn delete_group(&self, id: &ObjectId) -> Result<bool> {
                let done = sqlx::query(self.sql("DELETE FROM user_groups WHERE id = ?"))
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_telemetry(&self, events: &[TelemetryEvent]) -> Result<u64> {
                if events.is_empty() {
                    return Ok(0);
                }
                let _gate = self.gate().await;
                let mut tx = self.pool.begin_with($begin).await?;
                let mut inserted = 0;
                for chunk in events.chunks(TELEMETRY_CHUNK) {
                    let mut args = Args::new(Self::DIALECT);
                    let sql = telemetry_insert(chunk, &mut args)?;
                    let done = bind_all!(sqlx::query(q(sql)), args.values).execute(&mut *tx).await?;
                    inserted += done.rows_affected();
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn find_telemetry(&self, query: &TelemetryQuery) -> Result<(Vec<TelemetryEvent>, i64)> {
                let items = self.telemetry_rows(&query.filter, Some(query.page)).await?;
                let mut args = Args::new(Self::DIALECT);
                let wh = telemetry_where(&query.filter, &mut args);
                let sql = format!("SELECT COUNT(*) FROM telemetry WHERE {wh}");
                let total: i64 =
                    bind_all!(sqlx::query_scalar(q(sql)), args.values).fetch_one(&self.pool).await?;
                Ok((items, total))
            }

            async fn scan_telemetry(&self, filter: &TelemetryFilter) -> Result<Vec<TelemetryEvent>> {
                self.telemetry_rows(filter, None).await
            }

            async fn purge_telemetry(&self, before: Timestamp, limit: i64) -> Result<u64> {
                self.purge_batch(
                    "DELETE FROM telemetry WHERE seq IN (SELECT seq FROM telemetry \
                     WHERE ts < ? ORDER BY ts, seq LIMIT ?)",
                    &[time::to_micros(&before), limit],
                )
                .await
            }

            async fn count_purgeable_telemetry(&self, before: Timestamp) -> Result<u64> {
                self.count_rows(
                    "SELECT COUNT(*) FROM telemetry WHERE ts < ?",
                    &[time::to_micros(&before)],
                )
                .await
            }

            async fn meta_get(&self, key: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(self.sql("SELECT value FROM meta WHERE key = ?"))
                    .bind(key.to_string())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn meta_init(&self, key: &str, value: &str) -> Result<String> {
                sqlx::query(self.sql(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                ))
                .bind(key.to_string())
                .bind(value.to_string())
                .execute(&self.pool)
                .await?;
                self.meta_get(key)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("setting {key} vanished")))
            }
        }
    };
}

/// Maps each store to its sqlx database type (used in helper signatures inside the macro).
trait BackendDb {
    type Db: sqlx::Database;
}
impl BackendDb for SqliteStore {
    type Db = sqlx::Sqlite;
}
impl BackendDb for PgStore {
    type Db = sqlx::Postgres;
}

sql_store!(SqliteStore, Dialect::Sqlite, "sqlite", "BEGIN IMMEDIATE");
sql_store!(PgStore, Dialect::Postgres, "postgres", "BEGIN");

#[allow(dead_code)]
const _: &str = NODE_COLUMNS;
