//! Read queries over the KCIDB tables for the dashboard and the CLI (feature `db`).
//!
//! Backend-neutral: every function runs the same statements on SQLite and PostgreSQL
//! (values always bound, `?` numbered `$n` for PostgreSQL), reads the stored objects
//! (`data`) back as the typed v5.3 structs ([`crate::Build`], [`crate::Test`]...) with
//! `_timestamp` in their `timestamp`, and sorts in Rust (byte order) so that both
//! backends answer identically whatever their collation.
//!
//! * [`results`]: a checkout's (or commit's) builds, boots and tests with filters
//!   ([`Filter`], upstream's `filter_<field>[_<op>]`), a build's tests, one build or test
//!   by id with its checkout, a hardware platform's results in a time window;
//! * [`trees`]: tree heads (the latest checkout per tree/branch/URL of an origin within a
//!   window, with build/boot/test status counts), a branch's commit history with counts,
//!   the hardware listing and the origins;
//! * [`issues`]: the issue listing (a `_timestamp` window), an issue by id and version,
//!   the issues linked to builds or tests, the first incident of issues.
//!
//! Boots are tests whose path is `boot` or starts with `boot.` (specs/dashboard-cli-peers.md
//! §1.1).

mod filter;
pub mod issues;
pub mod results;
pub(crate) mod sql;
pub mod trees;

use std::collections::HashMap;
use std::sync::Arc;

pub use filter::{Field, Filter, Op, ResultKind, STATUSES};
pub use issues::{FirstIncident, IssueLink};
pub use results::{BuildInfo, BuildRow, CheckoutSelector, Scope, TestRow};
pub use trees::{
    BranchSelector, CheckoutCounts, CommitHistoryEntry, HardwareEntry, Origins, TreeHead,
};

use crate::{Checkout, Status};
use sql::{Sql, fetch_all};

/// Query errors.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// From the driver.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A filter parameter that cannot be applied.
    #[error("{param}: {reason}")]
    Filter {
        /// The query parameter, e.g. `filter_test.status`.
        param: String,
        /// Why.
        reason: String,
    },
    /// A stored object that does not read back.
    #[error("stored {table} object {id:?} is unreadable: {reason}")]
    Stored {
        /// The table.
        table: &'static str,
        /// Its id (or the start of its text).
        id: String,
        /// Why.
        reason: String,
    },
}

/// Ids per `IN (...)` list.
const CHUNK: usize = 500;

/// How many results have each status (`null`: no status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// PASS.
    pub pass: u64,
    /// FAIL.
    pub fail: u64,
    /// ERROR.
    pub error: u64,
    /// MISS.
    pub miss: u64,
    /// SKIP.
    pub skip: u64,
    /// DONE.
    pub done: u64,
    /// No status.
    pub null: u64,
}

impl StatusCounts {
    /// Counts `n` results of `status`.
    pub fn add(&mut self, status: Option<Status>, n: u64) {
        let slot = match status {
            Some(Status::Pass) => &mut self.pass,
            Some(Status::Fail) => &mut self.fail,
            Some(Status::Error) => &mut self.error,
            Some(Status::Miss) => &mut self.miss,
            Some(Status::Skip) => &mut self.skip,
            Some(Status::Done) => &mut self.done,
            None => &mut self.null,
        };
        *slot += n;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &StatusCounts) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.error += other.error;
        self.miss += other.miss;
        self.skip += other.skip;
        self.done += other.done;
        self.null += other.null;
    }

    /// Everything that is neither PASS nor FAIL (the dashboard's "inconclusive").
    pub fn inconclusive(&self) -> u64 {
        self.error + self.miss + self.skip + self.done + self.null
    }

    /// The sum.
    pub fn total(&self) -> u64 {
        self.pass + self.fail + self.inconclusive()
    }

    /// `(upstream status name, count)` pairs: PASS, FAIL, ERROR, MISS, SKIP, DONE, NULL.
    pub fn pairs(&self) -> [(&'static str, u64); 7] {
        [
            ("PASS", self.pass),
            ("FAIL", self.fail),
            ("ERROR", self.error),
            ("MISS", self.miss),
            ("SKIP", self.skip),
            ("DONE", self.done),
            ("NULL", self.null),
        ]
    }
}

/// A status column's text as a [`Status`] (`None` for NULL or an unknown value).
pub(crate) fn status_of(text: Option<&str>) -> Option<Status> {
    text.and_then(|s| serde_json::from_value(serde_json::Value::String(s.to_string())).ok())
}

/// Whether a test path is a boot (`boot` or `boot.*`).
pub fn is_boot_path(path: Option<&str>) -> bool {
    path.is_some_and(|p| p == "boot" || p.starts_with("boot."))
}

/// The SQL condition "test `t` is a boot".
pub(crate) const BOOT_CONDITION: &str = "(t.path = 'boot' OR substr(t.path, 1, 5) = 'boot.')";

/// Reads a stored object, with `_timestamp` as its `timestamp`.
pub(crate) fn parse_object<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, QueryError> {
    serde_json::from_str(text).map_err(|e| QueryError::Stored {
        table,
        id: text.chars().take(80).collect(),
        reason: e.to_string(),
    })
}

/// The checkouts with these ids, by id (`_timestamp` in `timestamp`).
pub async fn checkouts_by_id(
    db: &crate::db::KcidbDb,
    ids: &[String],
) -> Result<HashMap<String, Arc<Checkout>>, QueryError> {
    let mut unique: Vec<String> = ids.to_vec();
    unique.sort();
    unique.dedup();
    let mut out = HashMap::new();
    for chunk in unique.chunks(CHUNK) {
        let mut sql = Sql::new(db);
        let ts = sql.time_col("_timestamp");
        sql.push(&format!(
            "SELECT {}, {ts} FROM checkouts WHERE id IN ",
            sql.json_col("data")
        ))
        .list(chunk);
        let rows = fetch_all!(db, sql, (String, String));
        for (data, ts) in rows {
            let mut c: Checkout = parse_object("checkouts", &data)?;
            c.timestamp = Some(ts);
            out.insert(c.id.clone(), Arc::new(c));
        }
    }
    Ok(out)
}
