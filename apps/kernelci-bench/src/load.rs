//! Bulk-load synthetic nodes straight into a migrated database (the server stopped) with
//! multi-row INSERTs in big transactions, binding the columns exactly like the store's
//! `node_args`; and create/drop the throw-away PostgreSQL databases.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kernelci_model::{Node, ObjectId, time};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::synth::{Generator, Samples};

/// Rows per INSERT statement (17 binds each: 8,500 binds, under both backends' limits).
const ROWS_PER_INSERT: usize = 500;
/// INSERT statements per transaction.
const INSERTS_PER_TX: usize = 40;

const INSERT_HEAD: &str = "INSERT INTO nodes (id, kind, name, grp, parent, state, result, owner, \
     submitter, treeid, created, updated, timeout, holdoff, retry_counter, kcidb_flag, doc) ";

/// Where to load.
#[derive(Debug, Clone)]
pub enum Target {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Nodes inserted.
    pub nodes: u64,
    /// Wall time, including `ANALYZE` on PostgreSQL.
    pub elapsed: Duration,
    /// Values for the queries.
    pub samples: Samples,
}

/// One `nodes` row, bound like the store's `node_args`.
struct Row {
    id: String,
    kind: &'static str,
    name: String,
    grp: Option<String>,
    parent: Option<String>,
    state: &'static str,
    result: Option<&'static str>,
    owner: Option<String>,
    submitter: Option<String>,
    treeid: Option<String>,
    created: i64,
    updated: i64,
    timeout: i64,
    holdoff: Option<i64>,
    retry_counter: i64,
    kcidb_flag: bool,
    doc: String,
}

impl Row {
    fn of(n: Node) -> Result<Row> {
        let doc = serde_json::to_string(&n).context("serializing a node")?;
        Ok(Row {
            id: n.id.to_string(),
            kind: n.kind.as_str(),
            grp: n.group,
            parent: n.parent.map(|p| p.to_string()),
            state: n.state.as_str(),
            result: n.result.map(|r| r.as_str()),
            owner: n.owner,
            submitter: n.submitter,
            treeid: n.treeid,
            created: time::to_micros(&n.created),
            updated: time::to_micros(&n.updated),
            timeout: time::to_micros(&n.timeout),
            holdoff: n.holdoff.as_ref().map(time::to_micros),
            retry_counter: n.retry_counter,
            kcidb_flag: n.processed_by_kcidb_bridge,
            name: n.name,
            doc,
        })
    }
}

/// Execute one multi-row INSERT of `$rows` on `$conn` for database `$db`; `$cast` follows
/// the doc placeholder (`::jsonb` on PostgreSQL).
macro_rules! insert_rows {
    ($db:ty, $conn:expr, $rows:expr, $cast:expr) => {{
        let mut qb = sqlx::QueryBuilder::<$db>::new(INSERT_HEAD);
        qb.push_values($rows, |mut b, r: Row| {
            b.push_bind(r.id)
                .push_bind(r.kind)
                .push_bind(r.name)
                .push_bind(r.grp)
                .push_bind(r.parent)
                .push_bind(r.state)
                .push_bind(r.result)
                .push_bind(r.owner)
                .push_bind(r.submitter)
                .push_bind(r.treeid)
                .push_bind(r.created)
                .push_bind(r.updated)
                .push_bind(r.timeout)
                .push_bind(r.holdoff)
                .push_bind(r.retry_counter)
                .push_bind(r.kcidb_flag)
                .push_bind(r.doc)
                .push_unseparated($cast);
        });
        qb.build()
            .execute(&mut *$conn)
            .await
            .context("inserting nodes")?;
    }};
}

/// An open loader connection.
enum Conn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl Conn {
    async fn open(target: &Target) -> Result<Conn> {
        Ok(match target {
            Target::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let conn = SqliteConnectOptions::from_str(&url)
                    .with_context(|| format!("bad SQLite path {}", path.display()))?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("cache_size", "-262144")
                    .busy_timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Conn::Sqlite(conn)
            }
            Target::Postgres(url) => {
                let mut conn = PgConnection::connect(url)
                    .await
                    .context("cannot connect to PostgreSQL")?;
                sqlx::query("SET synchronous_commit = off")
                    .execute(&mut conn)
                    .await
                    .context("SET synchronous_commit")?;
                Conn::Pg(conn)
            }
        })
    }

    /// Insert the rows in one transaction, `ROWS_PER_INSERT` per statement.
    async fn insert_tx(&mut self, rows: Vec<Row>) -> Result<()> {
        let mut rows = rows.into_iter().peekable();
        match self {
            Conn::Sqlite(c) => {
                let mut tx = c.begin().await.context("BEGIN")?;
                while rows.peek().is_some() {
                    let chunk: Vec<Row> = rows.by_ref().take(ROWS_PER_INSERT).collect();
                    insert_rows!(sqlx::Sqlite, tx, chunk, "");
                }
                tx.commit().await.context("COMMIT")?;
            }
            Conn::Pg(c) => {
                let mut tx = c.begin().await.context("BEGIN")?;
                while rows.peek().is_some() {
                    let chunk: Vec<Row> = rows.by_ref().take(ROWS_PER_INSERT).collect();
                    insert_rows!(sqlx::Postgres, tx, chunk, "::jsonb");
                }
                tx.commit().await.context("COMMIT")?;
            }
        }
        Ok(())
    }

    async fn finish(self) -> Result<()> {
        match self {
            Conn::Sqlite(mut c) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut c)
                    .await
                    .context("WAL checkpoint")?;
                c.close().await.context("closing SQLite")?;
            }
            Conn::Pg(mut c) => {
                sqlx::query("ANALYZE")
                    .execute(&mut c)
                    .await
                    .context("ANALYZE")?;
                c.close().await.context("closing PostgreSQL")?;
            }
        }
        Ok(())
    }
}

/// Generate `total` nodes on a blocking thread and insert them, with a progress line on
/// stderr when `progress`; ends with `ANALYZE` on PostgreSQL.
pub async fn load(target: &Target, total: u64, seed: u64, progress: bool) -> Result<Loaded> {
    let started = Instant::now();
    let mut conn = Conn::open(target).await?;
    let batch = ROWS_PER_INSERT * INSERTS_PER_TX;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Row>>>(4);
    let now = time::now();
    let producer = tokio::task::spawn_blocking(move || {
        let mut generator = Generator::new(total, seed, now);
        loop {
            let rows: Result<Vec<Row>> = generator.by_ref().take(batch).map(Row::of).collect();
            let done = rows.as_ref().map_or(true, |r| r.len() < batch);
            if tx.blocking_send(rows).is_err() || done {
                break;
            }
        }
        generator.samples
    });
    let label = match target {
        Target::Sqlite(_) => "sqlite",
        Target::Postgres(_) => "postgres",
    };
    let mut inserted = 0u64;
    let mut last_print = Instant::now();
    while let Some(rows) = rx.recv().await {
        let rows = rows?;
        if rows.is_empty() {
            break;
        }
        inserted += rows.len() as u64;
        conn.insert_tx(rows).await?;
        if progress && (last_print.elapsed() >= Duration::from_secs(1) || inserted == total) {
            last_print = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            eprint!(
                "\r  [{label}] loading nodes: {inserted}/{total} ({:.0}%), {:.0} nodes/s   ",
                inserted as f64 * 100.0 / total.max(1) as f64,
                inserted as f64 / secs
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
        if matches!(target, Target::Postgres(_)) {
            eprintln!("  [{label}] ANALYZE...");
        }
    }
    let samples = producer.await.context("the node generator panicked")?;
    conn.finish().await?;
    Ok(Loaded {
        nodes: inserted,
        elapsed: started.elapsed(),
        samples,
    })
}

/// A database created for this run on a PostgreSQL server, dropped by [`PgDb::drop_db`].
#[derive(Debug)]
pub struct PgDb {
    admin_url: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl PgDb {
    /// `CREATE DATABASE kci_bench_<random>` on the server of `base`.
    pub async fn create(base: &str) -> Result<PgDb> {
        let name = format!("kci_bench_{}", ObjectId::generate());
        let mut conn = PgConnection::connect(base)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(base)))?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let _ = conn.close().await;
        Ok(PgDb {
            url: with_database(base, &name),
            admin_url: base.to_string(),
            name,
        })
    }

    /// `DROP DATABASE ... WITH (FORCE)`.
    pub async fn drop_db(self) -> Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| format!("cannot connect to {}", redact(&self.admin_url)))?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .with_context(|| format!("DROP DATABASE {}", self.name))?;
        let _ = conn.close().await;
        Ok(())
    }
}

/// The SQLite file of a data directory (what `kernelci api --data-dir` uses).
pub fn sqlite_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("kernelci.db")
}

/// `base` with its database name replaced by `name` (query string kept).
fn with_database(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (base, String::new()),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let host_end = main[authority_start..]
        .find('/')
        .map_or(main.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &main[..host_end])
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://u:***@h/db");
    }
}
