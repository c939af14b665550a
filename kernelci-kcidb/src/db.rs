//! The KCIDB tables on SQLite or PostgreSQL (specs/kcidb.md §4, adapted), the batch load and
//! the queries the dashboard and CLI need (feature `db`).
//!
//! Tables `checkouts`, `builds`, `tests`, `issues`, `incidents`: the v5.3 columns of §4.2
//! (nested fields flattened with `_`), plus `data`, the whole object as submitted and merged
//! (JSON), which is what a later submission of the same object is merged with. Differences
//! from upstream: statuses and unit prefixes are `TEXT` (no enum blocks a new value); times
//! are normalized to UTC (`TIMESTAMPTZ` on PostgreSQL, RFC 3339 text with microseconds on
//! SQLite, which sorts); lists are `TEXT[]` with GIN indexes on PostgreSQL and JSON text on
//! SQLite; `log_excerpt` is `TEXT` (the schema already limits it).
//!
//! Loading a batch is one transaction: within each table the objects of the batch are first
//! merged in arrival order ([`crate::dedup`]), then merged into the stored copy
//! ([`crate::merge`]: later present value wins, `misc` key-wise), sorted by key, and
//! written only if the result differs from what is stored. Loading the same data again
//! therefore changes nothing (not even `_timestamp`). Rows are written with multi-row
//! statements: on PostgreSQL one `INSERT ... SELECT FROM UNNEST` of an array per column
//! for up to 2,000 rows, on SQLite `VALUES` lists of up to 500 rows. On PostgreSQL a transaction-scoped
//! advisory lock serializes batches, so two ingesters on one database cannot interleave
//! their read-merge-write; on SQLite `BEGIN IMMEDIATE` does the same.
//!
//! The same transaction keeps the roll-up [`TEST_ROLLUP`] (tests per build, boot or test,
//! and status): each written test moves its count from its stored key to its merged one,
//! so the dashboard's checkout counts read a few rows per build instead of every test. The
//! migration fills it once for a database made before it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use crate::{KcidbObject, Submission};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};

/// The `triage_state` table of the triage role (kernelci-kcidb-server): one row per build
/// or test looked at, created with the KCIDB tables by [`KcidbDb::open`].
pub const TRIAGE_STATE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS triage_state (kind TEXT \
    NOT NULL, id TEXT NOT NULL, done BIGINT NOT NULL, attempts BIGINT NOT NULL, outcome TEXT, \
    updated TEXT NOT NULL, PRIMARY KEY (kind, id))";

/// Advisory lock serializing KCIDB batch loads (and migrations) on PostgreSQL.
const LOAD_LOCK: i64 = 0x6b63_6964_626c;
/// Ids per `IN (...)` lookup.
const LOOKUP_CHUNK: usize = 500;

/// Database errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// From the driver.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A URL that is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL (use sqlite://PATH or postgres://...)")]
    Url,
    /// A stored object that no longer reads back.
    #[error("stored {table} object {id:?} is unreadable: {reason}")]
    Stored {
        /// The table.
        table: &'static str,
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Json,
    TextList,
    Time,
    Float,
    Bool,
    Int,
}

struct Col {
    name: &'static str,
    path: &'static [&'static str],
    kind: Kind,
}

const fn c(name: &'static str, path: &'static [&'static str], kind: Kind) -> Col {
    Col { name, path, kind }
}

struct Table {
    name: &'static str,
    key: &'static [&'static str],
    cols: &'static [Col],
    indexes: &'static [&'static str],
    gin: &'static [&'static str],
}

use Kind::{Bool, Float, Int, Json, Text, TextList, Time};

const CHECKOUTS: Table = Table {
    name: "checkouts",
    key: &["id"],
    cols: &[
        c("id", &["id"], Text),
        c("origin", &["origin"], Text),
        c("tree_name", &["tree_name"], Text),
        c("git_repository_url", &["git_repository_url"], Text),
        c("git_commit_hash", &["git_commit_hash"], Text),
        c("git_commit_name", &["git_commit_name"], Text),
        c("git_repository_branch", &["git_repository_branch"], Text),
        c("patchset_files", &["patchset_files"], Json),
        c("patchset_hash", &["patchset_hash"], Text),
        c("message_id", &["message_id"], Text),
        c("comment", &["comment"], Text),
        c("start_time", &["start_time"], Time),
        c("log_url", &["log_url"], Text),
        c("log_excerpt", &["log_excerpt"], Text),
        c("valid", &["valid"], Bool),
        c("misc", &["misc"], Json),
        c("git_commit_tags", &["git_commit_tags"], TextList),
        c("git_commit_message", &["git_commit_message"], Text),
        c(
            "git_repository_branch_tip",
            &["git_repository_branch_tip"],
            Bool,
        ),
        c(
            "origin_builds_finish_time",
            &["origin_builds_finish_time"],
            Time,
        ),
        c(
            "origin_tests_finish_time",
            &["origin_tests_finish_time"],
            Time,
        ),
    ],
    indexes: &[
        "git_commit_hash, patchset_hash",
        "origin",
        "start_time",
        "git_repository_url",
        "git_repository_branch",
        "tree_name",
        "git_commit_name",
        "origin_builds_finish_time",
        "origin_tests_finish_time",
    ],
    gin: &["git_commit_tags"],
};

const BUILDS: Table = Table {
    name: "builds",
    key: &["id"],
    cols: &[
        c("id", &["id"], Text),
        c("checkout_id", &["checkout_id"], Text),
        c("origin", &["origin"], Text),
        c("comment", &["comment"], Text),
        c("start_time", &["start_time"], Time),
        c("duration", &["duration"], Float),
        c("architecture", &["architecture"], Text),
        c("command", &["command"], Text),
        c("compiler", &["compiler"], Text),
        c("input_files", &["input_files"], Json),
        c("output_files", &["output_files"], Json),
        c("config_name", &["config_name"], Text),
        c("config_url", &["config_url"], Text),
        c("log_url", &["log_url"], Text),
        c("log_excerpt", &["log_excerpt"], Text),
        c("misc", &["misc"], Json),
        c("status", &["status"], Text),
    ],
    indexes: &[
        "checkout_id",
        "origin",
        "start_time",
        "architecture",
        "config_name",
        "compiler",
        "status",
    ],
    gin: &[],
};

const TESTS: Table = Table {
    name: "tests",
    key: &["id"],
    cols: &[
        c("id", &["id"], Text),
        c("build_id", &["build_id"], Text),
        c("origin", &["origin"], Text),
        c("environment_comment", &["environment", "comment"], Text),
        c("environment_misc", &["environment", "misc"], Json),
        c("path", &["path"], Text),
        c("comment", &["comment"], Text),
        c("log_url", &["log_url"], Text),
        c("log_excerpt", &["log_excerpt"], Text),
        c("status", &["status"], Text),
        c("start_time", &["start_time"], Time),
        c("duration", &["duration"], Float),
        c("output_files", &["output_files"], Json),
        c("misc", &["misc"], Json),
        c(
            "environment_compatible",
            &["environment", "compatible"],
            TextList,
        ),
        c("number_value", &["number", "value"], Float),
        c("number_unit", &["number", "unit"], Text),
        c("number_prefix", &["number", "prefix"], Text),
        c("input_files", &["input_files"], Json),
    ],
    indexes: &[
        "build_id",
        // Covers the dashboard's status counts per checkout (no table reads).
        "build_id, path, status",
        "origin",
        "start_time",
        "path",
        "status",
        "number_value",
        "number_unit",
        "origin, start_time",
    ],
    gin: &["environment_compatible"],
};

const ISSUES: Table = Table {
    name: "issues",
    key: &["id", "version"],
    cols: &[
        c("id", &["id"], Text),
        c("version", &["version"], Int),
        c("origin", &["origin"], Text),
        c("report_url", &["report_url"], Text),
        c("report_subject", &["report_subject"], Text),
        c("culprit_code", &["culprit", "code"], Bool),
        c("culprit_tool", &["culprit", "tool"], Bool),
        c("culprit_harness", &["culprit", "harness"], Bool),
        c("comment", &["comment"], Text),
        c("misc", &["misc"], Json),
        c("categories", &["categories"], TextList),
    ],
    indexes: &[
        "origin",
        "report_url",
        "culprit_code",
        "culprit_tool",
        "culprit_harness",
    ],
    gin: &["categories"],
};

const INCIDENTS: Table = Table {
    name: "incidents",
    key: &["id"],
    cols: &[
        c("id", &["id"], Text),
        c("origin", &["origin"], Text),
        c("issue_id", &["issue_id"], Text),
        c("issue_version", &["issue_version"], Int),
        c("build_id", &["build_id"], Text),
        c("test_id", &["test_id"], Text),
        c("present", &["present"], Bool),
        c("comment", &["comment"], Text),
        c("misc", &["misc"], Json),
    ],
    indexes: &[
        "build_id",
        "test_id",
        "issue_id, issue_version",
        "origin",
        "present",
    ],
    gin: &[],
};

const TABLES: [&Table; 5] = [&CHECKOUTS, &BUILDS, &TESTS, &ISSUES, &INCIDENTS];

/// The DDL of the KCIDB tables for a dialect (idempotent statements).
fn schema(dialect: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let mut cols = vec![match dialect {
            Dialect::Sqlite => "_timestamp TEXT NOT NULL".to_string(),
            Dialect::Postgres => {
                "_timestamp TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP".to_string()
            }
        }];
        cols.push(match dialect {
            Dialect::Sqlite => "data TEXT NOT NULL".to_string(),
            Dialect::Postgres => "data JSONB NOT NULL".to_string(),
        });
        for col in t.cols {
            let ty = match (dialect, col.kind) {
                (_, Text) => "TEXT",
                (Dialect::Sqlite, Json | TextList | Time) => "TEXT",
                (Dialect::Postgres, Json) => "JSONB",
                (Dialect::Postgres, TextList) => "TEXT[]",
                (Dialect::Postgres, Time) => "TIMESTAMPTZ",
                (Dialect::Sqlite, Float) => "REAL",
                (Dialect::Postgres, Float) => "DOUBLE PRECISION",
                (_, Bool) => "BOOLEAN",
                (_, Int) => "BIGINT",
            };
            let not_null = if t.key.contains(&col.name)
                || matches!(
                    (t.name, col.name),
                    (_, "origin")
                        | ("builds", "checkout_id")
                        | ("tests", "build_id")
                        | ("incidents", "issue_id" | "issue_version")
                ) {
                " NOT NULL"
            } else {
                ""
            };
            cols.push(format!("{} {ty}{not_null}", col.name));
        }
        cols.push(format!("PRIMARY KEY ({})", t.key.join(", ")));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            t.name,
            cols.join(", ")
        ));
        let mut indexes: Vec<&str> = vec!["_timestamp"];
        indexes.extend(t.indexes);
        for cols in indexes {
            let suffix = cols.replace(", ", "_");
            out.push(format!(
                "CREATE INDEX IF NOT EXISTS {t}_{suffix} ON {t} ({cols})",
                t = t.name
            ));
        }
        if dialect == Dialect::Postgres {
            for col in t.gin {
                out.push(format!(
                    "CREATE INDEX IF NOT EXISTS {t}_{col} ON {t} USING GIN ({col})",
                    t = t.name
                ));
            }
        }
    }
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {TEST_ROLLUP} (build_id TEXT NOT NULL, kind TEXT NOT NULL, \
         status TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (build_id, kind, status))"
    ));
    // Triage's bookkeeping, created under the same migration lock.
    out.push(TRIAGE_STATE_SCHEMA.to_string());
    // The regression tracker's tables.
    out.extend(
        crate::regress::track::SCHEMA
            .iter()
            .map(|s| (*s).to_string()),
    );
    out
}

/// The roll-up of the `tests` table: how many tests of each build are boots or other tests
/// of each status (`status` `""`: none), kept by the batch load in the transaction that
/// writes the tests, so a checkout's counts read a few rows per build instead of its tests.
/// Equal, at every commit, to `SELECT build_id, kind, COALESCE(status, ''), COUNT(*) FROM
/// tests GROUP BY 1, 2, 3` (rows whose count falls to 0 are deleted).
pub const TEST_ROLLUP: &str = "test_rollup";

/// Fills [`TEST_ROLLUP`] from the `tests` table (the migration of a database made before it).
const ROLLUP_FILL_SQL: &str = "INSERT INTO test_rollup (build_id, kind, status, n) \
    SELECT build_id, CASE WHEN path = 'boot' OR substr(path, 1, 5) = 'boot.' THEN 'boot' \
    ELSE 'test' END, COALESCE(status, ''), COUNT(*) FROM tests GROUP BY 1, 2, 3";

/// The roll-up changes of a batch as sorted rows, without the ones that cancel out.
fn rollup_rows(deltas: RollupDeltas) -> Vec<(RollupKey, i64)> {
    let mut rows: Vec<(RollupKey, i64)> = deltas.into_iter().filter(|(_, n)| *n != 0).collect();
    rows.sort();
    rows
}

/// The build ids of the roll-up rows a batch decremented (where a count may have reached 0).
fn decremented(rows: &[(RollupKey, i64)]) -> Vec<String> {
    let mut ids: Vec<String> = rows
        .iter()
        .filter(|(_, n)| *n < 0)
        .map(|((b, _, _), _)| b.clone())
        .collect();
    ids.dedup();
    ids
}

/// Applies a batch's roll-up changes on SQLite.
async fn rollup_sqlite(
    conn: &mut sqlx::SqliteConnection,
    deltas: RollupDeltas,
) -> Result<(), DbError> {
    let rows = rollup_rows(deltas);
    let gone = decremented(&rows);
    for chunk in rows.chunks(LOOKUP_CHUNK) {
        let sql = format!(
            "INSERT INTO {TEST_ROLLUP} (build_id, kind, status, n) VALUES {} \
             ON CONFLICT (build_id, kind, status) DO UPDATE SET n = {TEST_ROLLUP}.n + excluded.n",
            vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == LOOKUP_CHUNK);
        for ((build, kind, status), n) in chunk {
            query = query.bind(build).bind(*kind).bind(status).bind(*n);
        }
        query.execute(&mut *conn).await?;
    }
    for chunk in gone.chunks(LOOKUP_CHUNK) {
        let sql = format!(
            "DELETE FROM {TEST_ROLLUP} WHERE n = 0 AND build_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Applies a batch's roll-up changes on PostgreSQL.
async fn rollup_postgres(
    conn: &mut sqlx::PgConnection,
    deltas: RollupDeltas,
) -> Result<(), DbError> {
    let rows = rollup_rows(deltas);
    let gone = decremented(&rows);
    for chunk in rows.chunks(PG_ROWS) {
        let mut builds = Vec::with_capacity(chunk.len());
        let mut kinds = Vec::with_capacity(chunk.len());
        let mut statuses = Vec::with_capacity(chunk.len());
        let mut ns = Vec::with_capacity(chunk.len());
        for ((build, kind, status), n) in chunk {
            builds.push(build.as_str());
            kinds.push(*kind);
            statuses.push(status.as_str());
            ns.push(*n);
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {TEST_ROLLUP} (build_id, kind, status, n) SELECT * FROM \
             UNNEST(CAST($1 AS TEXT[]), CAST($2 AS TEXT[]), CAST($3 AS TEXT[]), \
             CAST($4 AS BIGINT[])) ON CONFLICT (build_id, kind, status) \
             DO UPDATE SET n = {TEST_ROLLUP}.n + excluded.n"
        )))
        .bind(builds)
        .bind(kinds)
        .bind(statuses)
        .bind(ns)
        .execute(&mut *conn)
        .await?;
    }
    if !gone.is_empty() {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {TEST_ROLLUP} WHERE n = 0 AND build_id = ANY(CAST($1 AS TEXT[]))"
        )))
        .bind(gone)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Text(Option<String>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Int(Option<i64>),
}

/// Normalizes a KCIDB date-time to UTC with microseconds (sortable text).
fn normalize_time(s: &str) -> Option<String> {
    crate::formats::parse_date_time(s).map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    })
}

fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn args_of(table: &Table, object: &Value) -> Vec<Arg> {
    table
        .cols
        .iter()
        .map(|col| {
            let mut v = Some(object);
            for key in col.path {
                v = v.and_then(|x| x.get(*key));
            }
            let v = v.filter(|x| !x.is_null());
            match col.kind {
                Text => Arg::Text(v.map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })),
                Json | TextList => Arg::Text(v.map(Value::to_string)),
                Time => Arg::Text(v.and_then(Value::as_str).and_then(normalize_time)),
                Float => Arg::Float(v.and_then(Value::as_f64)),
                Bool => Arg::Bool(v.and_then(Value::as_bool)),
                Int => Arg::Int(v.and_then(Value::as_i64)),
            }
        })
        .collect()
}

/// A column's value on PostgreSQL from `src` (a parameter or an `UNNEST` column of type
/// `TEXT`, `DOUBLE PRECISION`, `BOOLEAN` or `BIGINT` by kind).
fn pg_value(kind: Kind, src: &str) -> String {
    match kind {
        Json => format!("CAST({src} AS JSONB)"),
        Time => format!("CAST({src} AS TIMESTAMPTZ)"),
        TextList => format!(
            "CASE WHEN {src} IS NULL THEN NULL \
             ELSE ARRAY(SELECT jsonb_array_elements_text(CAST({src} AS JSONB))) END"
        ),
        Text | Float | Bool | Int => src.to_string(),
    }
}

/// The PostgreSQL array type a column is sent as.
fn pg_array_type(kind: Kind) -> &'static str {
    match kind {
        Text | Json | TextList | Time => "TEXT[]",
        Float => "DOUBLE PRECISION[]",
        Bool => "BOOLEAN[]",
        Int => "BIGINT[]",
    }
}

/// The column names written (`_timestamp`, `data`, then the table's columns) and the
/// `ON CONFLICT` clause that updates every one but the key.
fn upsert_names_and_conflict(t: &Table) -> (Vec<&'static str>, String) {
    let mut names = vec!["_timestamp", "data"];
    names.extend(t.cols.iter().map(|c| c.name));
    let updates: Vec<String> = names
        .iter()
        .filter(|n| !t.key.contains(n))
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let conflict = format!(
        "ON CONFLICT ({}) DO UPDATE SET {}",
        t.key.join(", "),
        updates.join(", ")
    );
    (names, conflict)
}

/// The SQLite upsert of `rows` rows: `VALUES (?, ...), ...` (`_timestamp`, `data`, the
/// columns, per row).
fn upsert_values_sql(t: &Table, rows: usize) -> String {
    let (names, conflict) = upsert_names_and_conflict(t);
    let one = format!("({})", vec!["?"; names.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {} {conflict}",
        t.name,
        names.join(", "),
        vec![one.as_str(); rows].join(", ")
    )
}

/// The PostgreSQL upsert of any number of rows: one array parameter per column (`data`
/// first), `UNNEST`ed into rows. One statement, prepared once, whatever the row count.
fn upsert_unnest_sql(t: &Table) -> String {
    let (names, conflict) = upsert_names_and_conflict(t);
    let mut arrays = vec!["CAST($1 AS TEXT[])".to_string()];
    let mut aliases = vec!["d".to_string()];
    // clock_timestamp(), not the transaction's start time: rows are written under the
    // load lock, so their `_timestamp`s follow commit order and a reader's cursor on them
    // never skips a batch that began earlier but committed later (the regression tracker).
    let mut values = vec![
        "clock_timestamp()".to_string(),
        "CAST(u.d AS JSONB)".to_string(),
    ];
    for (i, col) in t.cols.iter().enumerate() {
        arrays.push(format!("CAST(${} AS {})", i + 2, pg_array_type(col.kind)));
        aliases.push(format!("c{i}"));
        values.push(pg_value(col.kind, &format!("u.c{i}")));
    }
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS u({}) {conflict}",
        t.name,
        names.join(", "),
        values.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    )
}

/// The stored JSON of `n` ids on SQLite (`IN` uses the key's index).
fn lookup_sqlite_sql(t: &Table, n: usize) -> String {
    format!(
        "SELECT CAST(data AS TEXT) FROM {} WHERE id IN ({})",
        t.name,
        vec!["?"; n].join(", ")
    )
}

/// The stored JSON of an array of ids on PostgreSQL (one parameter, whatever the count).
fn lookup_postgres_sql(t: &Table) -> String {
    format!(
        "SELECT CAST(t.data AS TEXT) FROM UNNEST(CAST($1 AS TEXT[])) AS k(id) \
         JOIN {} AS t ON t.id = k.id",
        t.name
    )
}

/// The stored JSON of these (distinct) ids, on SQLite.
async fn stored_sqlite(
    conn: &mut sqlx::SqliteConnection,
    table: &'static Table,
    ids: &[String],
) -> Result<Vec<String>, DbError> {
    let mut stored = Vec::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut query =
            sqlx::query_scalar::<_, String>(AssertSqlSafe(lookup_sqlite_sql(table, chunk.len())));
        for id in chunk {
            query = query.bind(id);
        }
        stored.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(stored)
}

/// The stored JSON of these (distinct) ids, on PostgreSQL.
async fn stored_postgres(
    conn: &mut sqlx::PgConnection,
    table: &'static Table,
    ids: &[String],
) -> Result<Vec<String>, DbError> {
    let mut stored = Vec::new();
    for chunk in ids.chunks(PG_ROWS) {
        stored.extend(
            sqlx::query_scalar::<_, String>(AssertSqlSafe(lookup_postgres_sql(table)))
                // Planned for each call, with the ids and the table's size at hand. A plan
                // cached while the table was small (a sequential scan testing every row
                // against the ids) made each batch's lookup grow with the table: seconds
                // per batch after a few hundred thousand rows.
                .persistent(false)
                .bind(chunk)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(stored)
}

/// The object counts of a load or of the tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Checkouts.
    pub checkouts: u64,
    /// Builds.
    pub builds: u64,
    /// Tests.
    pub tests: u64,
    /// Issues.
    pub issues: u64,
    /// Incidents.
    pub incidents: u64,
}

impl Counts {
    /// The sum.
    pub fn total(&self) -> u64 {
        self.checkouts + self.builds + self.tests + self.issues + self.incidents
    }
}

/// What a KCIDB object needs to be loaded.
trait Loadable: KcidbObject + Serialize + DeserializeOwned + PartialEq + Clone + Send {
    fn id(&self) -> &str;
    fn clear_timestamp(&mut self);
    /// Where the object counts in [`TEST_ROLLUP`] (tests only).
    fn rollup_key(&self) -> Option<RollupKey> {
        None
    }
}

/// A row of [`TEST_ROLLUP`]: (build id, `boot` or `test`, status or `""` for none).
type RollupKey = (String, &'static str, String);

/// Count changes of [`TEST_ROLLUP`] rows made by a batch.
type RollupDeltas = HashMap<RollupKey, i64>;

impl Loadable for crate::Test {
    fn id(&self) -> &str {
        &self.id
    }
    fn clear_timestamp(&mut self) {
        self.timestamp = None;
    }
    fn rollup_key(&self) -> Option<RollupKey> {
        let kind = if crate::query::is_boot_path(self.path.as_deref()) {
            "boot"
        } else {
            "test"
        };
        let status = self.status.map_or("", crate::Status::as_str);
        Some((self.build_id.clone(), kind, status.to_string()))
    }
}

macro_rules! loadable {
    ($($t:ty),*) => {$(
        impl Loadable for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn clear_timestamp(&mut self) {
                self.timestamp = None;
            }
        }
    )*};
}
loadable!(crate::Checkout, crate::Build, crate::Issue, crate::Incident);

/// The rows to write for one table: the batch merged into what is stored, only those that
/// change, sorted by key. Returns (object JSON, row args) pairs, and adds the roll-up count
/// changes (a new object counts once, a changed one moves from its old key to its new one)
/// to `deltas`.
fn changed_rows<T: Loadable>(
    table: &'static Table,
    stored: Vec<String>,
    batch: Vec<T>,
    deltas: &mut RollupDeltas,
) -> Result<Vec<(String, Vec<Arg>)>, DbError>
where
    T::Key: Ord,
{
    let mut existing: HashMap<T::Key, T> = HashMap::new();
    for text in stored {
        let object: T = serde_json::from_str(&text).map_err(|e| DbError::Stored {
            table: table.name,
            id: text.chars().take(80).collect(),
            reason: e.to_string(),
        })?;
        existing.insert(object.key(), object);
    }
    let mut rows: Vec<(T::Key, String, Vec<Arg>)> = Vec::new();
    for mut object in crate::dedup(batch) {
        // `_timestamp` is the database's to set.
        object.clear_timestamp();
        let key = object.key();
        let merged = match existing.remove(&key) {
            Some(old) => {
                let merged = crate::merge(old.clone(), object).map_err(|e| DbError::Stored {
                    table: table.name,
                    id: format!("{key:?}"),
                    reason: e.to_string(),
                })?;
                if merged == old {
                    continue;
                }
                if let Some(k) = old.rollup_key() {
                    *deltas.entry(k).or_default() -= 1;
                }
                merged
            }
            None => object,
        };
        if let Some(k) = merged.rollup_key() {
            *deltas.entry(k).or_default() += 1;
        }
        let value = serde_json::to_value(&merged).unwrap_or(Value::Null);
        let args = args_of(table, &value);
        rows.push((key, value.to_string(), args));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rows.into_iter().map(|(_, d, a)| (d, a)).collect())
}

/// The KCIDB database.
#[derive(Clone, Debug)]
pub enum KcidbDb {
    /// An SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// Rows per SQLite upsert statement: at most this many, and at most [`SQLITE_PARAMS`]
/// parameters.
const SQLITE_ROWS: usize = 500;
/// Parameters per SQLite statement (the bundled SQLite allows 32,766).
const SQLITE_PARAMS: usize = 30_000;
/// Rows per PostgreSQL `UNNEST` upsert (bounds the size of one message).
const PG_ROWS: usize = 2_000;

/// A row to write: the object's JSON and its column values.
type Row = (String, Vec<Arg>);

/// Writes rows into an SQLite table with multi-row upserts.
async fn write_sqlite(
    conn: &mut sqlx::SqliteConnection,
    table: &'static Table,
    rows: Vec<Row>,
) -> Result<(), DbError> {
    let per_statement = (SQLITE_PARAMS / (table.cols.len() + 2)).clamp(1, SQLITE_ROWS);
    let full_sql = upsert_values_sql(table, per_statement);
    let now = now_text();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows.by_ref().take(per_statement).collect();
        // A short last chunk is a statement of its own, not worth caching.
        let full = chunk.len() == per_statement;
        let sql = if full {
            full_sql.clone()
        } else {
            upsert_values_sql(table, chunk.len())
        };
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(full);
        for (data, args) in chunk {
            query = query.bind(now.clone()).bind(data);
            for arg in args {
                query = match arg {
                    Arg::Text(v) => query.bind(v),
                    Arg::Float(v) => query.bind(v),
                    Arg::Bool(v) => query.bind(v),
                    Arg::Int(v) => query.bind(v),
                };
            }
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One column of rows, sent to PostgreSQL as an array.
enum ColumnValues {
    Text(Vec<Option<String>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
}

impl ColumnValues {
    fn new(kind: Kind, capacity: usize) -> ColumnValues {
        match kind {
            Text | Json | TextList | Time => ColumnValues::Text(Vec::with_capacity(capacity)),
            Float => ColumnValues::Float(Vec::with_capacity(capacity)),
            Bool => ColumnValues::Bool(Vec::with_capacity(capacity)),
            Int => ColumnValues::Int(Vec::with_capacity(capacity)),
        }
    }

    fn push(&mut self, arg: Arg) {
        // `args_of` gives each column the variant of its kind.
        match (self, arg) {
            (ColumnValues::Text(c), Arg::Text(v)) => c.push(v),
            (ColumnValues::Float(c), Arg::Float(v)) => c.push(v),
            (ColumnValues::Bool(c), Arg::Bool(v)) => c.push(v),
            (ColumnValues::Int(c), Arg::Int(v)) => c.push(v),
            _ => unreachable!("a column value of another kind"),
        }
    }
}

/// Writes rows into a PostgreSQL table with `UNNEST` upserts of up to [`PG_ROWS`] rows.
async fn write_postgres(
    conn: &mut sqlx::PgConnection,
    table: &'static Table,
    rows: Vec<Row>,
) -> Result<(), DbError> {
    let sql = upsert_unnest_sql(table);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows.by_ref().take(PG_ROWS).collect();
        let mut data = Vec::with_capacity(chunk.len());
        let mut columns: Vec<ColumnValues> = table
            .cols
            .iter()
            .map(|c| ColumnValues::new(c.kind, chunk.len()))
            .collect();
        for (json, args) in chunk {
            data.push(json);
            for (column, arg) in columns.iter_mut().zip(args) {
                column.push(arg);
            }
        }
        let mut query = sqlx::query(AssertSqlSafe(sql.clone())).bind(data);
        for column in columns {
            query = match column {
                ColumnValues::Text(v) => query.bind(v),
                ColumnValues::Float(v) => query.bind(v),
                ColumnValues::Bool(v) => query.bind(v),
                ColumnValues::Int(v) => query.bind(v),
            };
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

macro_rules! load_table {
    ($tx:expr, $stored:ident, $write:ident, $table:expr, $objects:expr, $deltas:expr) => {{
        let table: &'static Table = $table;
        let objects = $objects;
        let mut ids: Vec<String> = objects.iter().map(|o| o.id().to_string()).collect();
        ids.sort();
        ids.dedup();
        let stored = $stored(&mut *$tx, table, &ids).await?;
        let rows = changed_rows(table, stored, objects, $deltas)?;
        let written = rows.len() as u64;
        $write(&mut *$tx, table, rows).await?;
        written
    }};
}

macro_rules! load_all {
    (
        $pool:expr, $dialect:expr, $stored:ident, $write:ident, $rollup:ident, $begin:literal,
        $sub:expr
    ) => {{
        let sub: Submission = $sub;
        let mut tx = $pool.begin_with($begin).await?;
        if $dialect == Dialect::Postgres {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT pg_advisory_xact_lock({LOAD_LOCK})"
            )))
            .execute(&mut *tx)
            .await?;
        }
        let mut deltas = RollupDeltas::new();
        let d = &mut deltas;
        let counts = Counts {
            checkouts: load_table!(tx, $stored, $write, &CHECKOUTS, sub.checkouts, d),
            builds: load_table!(tx, $stored, $write, &BUILDS, sub.builds, d),
            tests: load_table!(tx, $stored, $write, &TESTS, sub.tests, d),
            issues: load_table!(tx, $stored, $write, &ISSUES, sub.issues, d),
            incidents: load_table!(tx, $stored, $write, &INCIDENTS, sub.incidents, d),
        };
        $rollup(&mut *tx, deltas).await?;
        tx.commit().await?;
        Ok(counts)
    }};
}

macro_rules! migrate {
    ($pool:expr, $dialect:expr, $begin:literal) => {{
        let mut tx = $pool.begin_with($begin).await?;
        if $dialect == Dialect::Postgres {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT pg_advisory_xact_lock({LOAD_LOCK})"
            )))
            .execute(&mut *tx)
            .await?;
        }
        let exists = if $dialect == Dialect::Postgres {
            format!("SELECT CAST(COUNT(*) AS BIGINT) FROM pg_tables WHERE tablename = '{TEST_ROLLUP}' AND schemaname = current_schema()")
        } else {
            format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{TEST_ROLLUP}'")
        };
        let had_rollup: i64 = sqlx::query_scalar(AssertSqlSafe(exists))
            .fetch_one(&mut *tx)
            .await?;
        for stmt in schema($dialect) {
            sqlx::query(AssertSqlSafe(stmt)).execute(&mut *tx).await?;
        }
        if had_rollup == 0 {
            // A database from before the roll-up: count what is there, once.
            sqlx::query(AssertSqlSafe(ROLLUP_FILL_SQL.to_string()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }};
}

impl KcidbDb {
    /// Opens (creating an SQLite file if needed) and creates the tables and indexes.
    pub async fn open(url: &str) -> Result<KcidbDb, DbError> {
        let db = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30));
            KcidbDb::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            KcidbDb::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(DbError::Url);
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        match self {
            KcidbDb::Sqlite(pool) => migrate!(pool, Dialect::Sqlite, "BEGIN IMMEDIATE"),
            KcidbDb::Postgres(pool) => migrate!(pool, Dialect::Postgres, "BEGIN"),
        }
    }

    /// `sqlite` or `postgresql`.
    pub fn backend(&self) -> &'static str {
        match self {
            KcidbDb::Sqlite(_) => "sqlite",
            KcidbDb::Postgres(_) => "postgresql",
        }
    }

    /// Loads a (merged) batch in one transaction; returns how many rows were written per
    /// table (objects already stored identically are not rewritten).
    pub async fn load(&self, batch: Submission) -> Result<Counts, DbError> {
        match self {
            KcidbDb::Sqlite(pool) => load_all!(
                pool,
                Dialect::Sqlite,
                stored_sqlite,
                write_sqlite,
                rollup_sqlite,
                "BEGIN IMMEDIATE",
                batch
            ),
            KcidbDb::Postgres(pool) => {
                load_all!(
                    pool,
                    Dialect::Postgres,
                    stored_postgres,
                    write_postgres,
                    rollup_postgres,
                    "BEGIN",
                    batch
                )
            }
        }
    }

    /// The number of rows in each table.
    pub async fn counts(&self) -> Result<Counts, DbError> {
        let mut n = [0u64; 5];
        for (i, t) in TABLES.iter().enumerate() {
            let sql = AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", t.name));
            let count: i64 = match self {
                KcidbDb::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
                KcidbDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            };
            n[i] = u64::try_from(count).unwrap_or(0);
        }
        Ok(Counts {
            checkouts: n[0],
            builds: n[1],
            tests: n[2],
            issues: n[3],
            incidents: n[4],
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match self {
            KcidbDb::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.is_ok(),
            KcidbDb::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.is_ok(),
        }
    }

    /// The stored JSON of an object (`version` selects an issue version; the highest
    /// otherwise), for tests and tools.
    pub async fn object(&self, table: &str, id: &str) -> Result<Option<Value>, DbError> {
        let Some(t) = TABLES.iter().find(|t| t.name == table) else {
            return Ok(None);
        };
        let order = if t.key.len() > 1 {
            " ORDER BY version DESC"
        } else {
            ""
        };
        let sql = match self {
            KcidbDb::Sqlite(_) => format!(
                "SELECT CAST(data AS TEXT) FROM {} WHERE id = ?{order} LIMIT 1",
                t.name
            ),
            KcidbDb::Postgres(_) => format!(
                "SELECT CAST(data AS TEXT) FROM {} WHERE id = $1{order} LIMIT 1",
                t.name
            ),
        };
        let text: Option<String> = match self {
            KcidbDb::Sqlite(pool) => {
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
            KcidbDb::Postgres(pool) => {
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Status counts of a table (`builds` or `tests`), `(none)` for no status.
    pub async fn status_counts(&self, table: &str) -> Result<Vec<(String, i64)>, DbError> {
        if table != "builds" && table != "tests" {
            return Ok(Vec::new());
        }
        let sql = AssertSqlSafe(format!(
            "SELECT COALESCE(status, '(none)'), COUNT(*) FROM {table} GROUP BY 1 ORDER BY 1"
        ));
        Ok(match self {
            KcidbDb::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            KcidbDb::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_shapes() {
        let s = upsert_unnest_sql(&ISSUES);
        assert!(s.contains("ON CONFLICT (id, version)"), "{s}");
        assert!(s.contains("categories = excluded.categories"));
        assert!(!s.contains("version = excluded.version"));
        assert!(s.contains(&format!("${}", ISSUES.cols.len() + 1)), "{s}");
        assert!(!s.contains(&format!("${}", ISSUES.cols.len() + 2)), "{s}");
        let l = upsert_values_sql(&TESTS, 3);
        assert_eq!(l.matches('?').count(), 3 * (TESTS.cols.len() + 2));
        assert!(l.contains("ON CONFLICT (id) DO UPDATE"), "{l}");
        assert!(
            schema(Dialect::Sqlite)
                .iter()
                .all(|s| !s.contains("USING GIN"))
        );
        assert_eq!(
            normalize_time("2024-01-01T02:00:00+02:00").as_deref(),
            Some("2024-01-01T00:00:00.000000Z")
        );
    }
}
