//! The regression tracker (feature `db`): results that changed since the last round ->
//! `regress_results` (one row per result: identity, checkout, status, class) -> each
//! touched identity re-evaluated over its window -> `regress_identities` (flips, flaky)
//! and `regressions` (the lifecycle).
//!
//! **Incremental.** A round reads only what changed since its cursor (the newest
//! `_timestamp` it has seen), minus [`TrackerConfig::overlap`]; it pages through with
//! keyset order `(_timestamp, id)`. The batch load stamps rows under its lock (SQLite's
//! single writer, PostgreSQL's advisory lock with `clock_timestamp()`), so `_timestamp`s
//! follow commit order and the overlap only has to cover clock steps. It reads
//! tests and builds that changed, the builds and tests of checkouts and builds that
//! changed (a result whose build or checkout arrives late), and the results of incidents
//! that changed (their issue's culprit changes the class). A result already recorded with
//! the same values is skipped, so the overlap costs a read, not a write.
//!
//! **Crash-safe without transactions.** An identity is marked `dirty` before its results
//! are written and cleared after it is evaluated; every round first evaluates identities
//! left dirty by an interrupted one. Run one tracker per database (as with triage): two
//! would do the same work twice, harmlessly but for the cost.
//!
//! **Not done:** a rebased branch is compared by checkout time, not against the merge
//! base (the KCIDB data has no commit graph); a result whose build or checkout never
//! arrives is not tracked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::classify::{ClassInput, Classifier, FailureClass};
use super::identity::{Identity, ResultKind, hex};
use super::lifecycle::{
    self, CheckoutOutcome, LifecycleSettings, Outcome, RegressionState, ResultVerdict,
};
use crate::Status;
use crate::db::KcidbDb;
use crate::query::QueryError;
use crate::query::sql::{Bind, Sql, fetch_all};

/// The tracker's tables (idempotent DDL; times are sortable RFC 3339 text on both
/// backends).
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS regress_results (identity TEXT NOT NULL, \
     object_id TEXT NOT NULL, checkout_id TEXT NOT NULL, git_commit_hash TEXT NOT NULL, \
     checkout_time TEXT NOT NULL, status TEXT NOT NULL, class TEXT NOT NULL, \
     origin TEXT NOT NULL, lab TEXT NOT NULL, platform TEXT NOT NULL, \
     PRIMARY KEY (identity, object_id))",
    "CREATE INDEX IF NOT EXISTS regress_results_window ON regress_results \
     (identity, checkout_time)",
    "CREATE INDEX IF NOT EXISTS regress_results_object ON regress_results (object_id)",
    "CREATE INDEX IF NOT EXISTS regress_results_time ON regress_results (checkout_time)",
    "CREATE TABLE IF NOT EXISTS regress_identities (identity TEXT PRIMARY KEY, \
     origin TEXT NOT NULL, tree_name TEXT NOT NULL, git_repository_url TEXT NOT NULL, \
     git_repository_branch TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL, \
     config_name TEXT NOT NULL, architecture TEXT NOT NULL, compiler TEXT NOT NULL, \
     platform TEXT NOT NULL, flips BIGINT NOT NULL, flaky BOOLEAN NOT NULL, \
     last_outcome TEXT NOT NULL, dirty BOOLEAN NOT NULL, updated TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS regress_identities_dirty ON regress_identities (dirty)",
    "CREATE TABLE IF NOT EXISTS regressions (id TEXT PRIMARY KEY, identity TEXT NOT NULL, \
     state TEXT NOT NULL, class TEXT NOT NULL, fail_count BIGINT NOT NULL, \
     last_pass_checkout TEXT NOT NULL, last_pass_commit TEXT NOT NULL, \
     first_fail_checkout TEXT NOT NULL, first_fail_commit TEXT NOT NULL, \
     first_fail_object TEXT NOT NULL, first_fail_time TEXT NOT NULL, \
     last_fail_checkout TEXT NOT NULL, last_fail_commit TEXT NOT NULL, \
     last_fail_object TEXT NOT NULL, last_fail_time TEXT NOT NULL, \
     fixed_checkout TEXT, fixed_commit TEXT, opened TEXT NOT NULL, updated TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS regressions_identity ON regressions (identity)",
    "CREATE INDEX IF NOT EXISTS regressions_state ON regressions (state, updated)",
    "CREATE TABLE IF NOT EXISTS regress_cursor (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
];

/// How the tracker runs.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Window and flakiness threshold.
    pub settings: LifecycleSettings,
    /// The failure classifier (operator rules first).
    pub classifier: Classifier,
    /// Rows read per page.
    pub page: usize,
    /// How far before the cursor each round starts again.
    pub overlap: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            settings: LifecycleSettings::default(),
            classifier: Classifier::default(),
            page: 2_000,
            overlap: Duration::from_secs(5),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackReport {
    /// Results read (builds and tests, overlap included).
    pub read: usize,
    /// Results recorded or changed.
    pub recorded: usize,
    /// Identities evaluated.
    pub evaluated: usize,
    /// Regressions opened.
    pub opened: usize,
    /// Regressions fixed.
    pub fixed: usize,
    /// Regressions that became flaky.
    pub became_flaky: usize,
}

/// One recorded result (a `regress_results` row plus its identity).
#[derive(Debug, Clone)]
struct Recorded {
    identity: Identity,
    object_id: String,
    checkout_id: String,
    commit: String,
    checkout_time: String,
    status: String,
    class: String,
    lab: String,
}

/// A stored regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    /// Stable id: hex SHA-1 of the identity key and the first failing checkout.
    pub id: String,
    /// Lifecycle state.
    pub state: RegressionState,
    /// The first failure's class.
    pub class: FailureClass,
    /// What regressed.
    pub identity: Identity,
    /// The identity's key.
    pub identity_key: String,
    /// Failing checkouts since the first failure.
    pub fail_count: i64,
    /// The last checkout it passed on before failing.
    pub last_pass: Seen,
    /// The first failing checkout.
    pub first_fail: Seen,
    /// The newest failing checkout.
    pub last_fail: Seen,
    /// The checkout it passed on again (state `fixed`).
    pub fixed: Option<Seen>,
    /// When the tracker opened it.
    pub opened: String,
    /// When the tracker last changed it.
    pub updated: String,
    /// The bisection of this regression, once one named a culprit: the `misc.bisection`
    /// of a KCIDB issue linked to the first failing result (the pipeline's bisect role
    /// files it), e.g. `{culprit, parent, subject, reproduce, node}`.
    pub bisection: Option<serde_json::Value>,
}

/// A checkout a regression refers to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seen {
    /// Checkout id.
    pub checkout_id: String,
    /// Commit.
    pub commit: String,
    /// The result there (empty where not recorded).
    pub object_id: String,
    /// The checkout's time (empty where not recorded).
    pub time: String,
}

fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

async fn exec(db: &KcidbDb, sql: &Sql) -> Result<u64, sqlx::Error> {
    let text = sql.render();
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for b in sql.binds() {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Float(f) => q.bind(*f),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            Ok(q.execute($pool).await?.rows_affected())
        }};
    }
    match db {
        KcidbDb::Sqlite(pool) => run!(pool),
        KcidbDb::Postgres(pool) => run!(pool),
    }
}

/// `value` as a bool on both backends (SQLite has no boolean type).
fn boolean(db: &KcidbDb, value: bool) -> &'static str {
    match (db, value) {
        (KcidbDb::Postgres(_), true) => "TRUE",
        (KcidbDb::Postgres(_), false) => "FALSE",
        (KcidbDb::Sqlite(_), true) => "1",
        (KcidbDb::Sqlite(_), false) => "0",
    }
}

/// One round: evaluates identities an interrupted round left dirty, then everything that
/// changed since the cursor, page by page, then moves the cursor.
pub async fn track_once(db: &KcidbDb, cfg: &TrackerConfig) -> Result<TrackReport, QueryError> {
    let mut report = TrackReport::default();
    evaluate_dirty(db, cfg, &mut report).await?;
    let cursor = read_cursor(db).await?;
    let since = cursor
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                - chrono::Duration::from_std(cfg.overlap).unwrap_or_default()
        });
    let mut newest = cursor.clone().unwrap_or_default();
    for source in Source::ALL {
        let mut after: Option<(String, String)> = None;
        loop {
            let page = changed_page(db, source, since.as_ref(), after.as_ref(), cfg.page).await?;
            let full = page.len() >= cfg.page;
            let Some(last) = page.last().cloned() else {
                break;
            };
            if last.1 > newest {
                newest.clone_from(&last.1);
            }
            let (tests, builds) = objects_of(db, source, &page).await?;
            process(db, cfg, &tests, &builds, &mut report).await?;
            if !full {
                break;
            }
            after = Some((last.1, last.0));
        }
    }
    if Some(&newest) != cursor.as_ref() && !newest.is_empty() {
        let mut sql = Sql::new(db);
        sql.push("INSERT INTO regress_cursor (name, value) VALUES ('results', ")
            .text(&newest)
            .push(") ON CONFLICT (name) DO UPDATE SET value = excluded.value");
        exec(db, &sql).await?;
    }
    Ok(report)
}

async fn read_cursor(db: &KcidbDb) -> Result<Option<String>, QueryError> {
    let sql = {
        let mut s = Sql::new(db);
        s.push("SELECT value FROM regress_cursor WHERE name = 'results'");
        s
    };
    let rows = fetch_all!(db, sql, (String,));
    Ok(rows.into_iter().next().map(|r| r.0))
}

/// Where changed results are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Tests,
    Builds,
    Checkouts,
    Incidents,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::Tests,
        Source::Builds,
        Source::Checkouts,
        Source::Incidents,
    ];

    fn table(self) -> &'static str {
        match self {
            Source::Tests => "tests",
            Source::Builds => "builds",
            Source::Checkouts => "checkouts",
            Source::Incidents => "incidents",
        }
    }
}

/// One page of `(id, _timestamp)` of `source` changed since `since`, after `after`
/// (keyset `(_timestamp, id)`).
async fn changed_page(
    db: &KcidbDb,
    source: Source,
    since: Option<&chrono::DateTime<chrono::Utc>>,
    after: Option<&(String, String)>,
    limit: usize,
) -> Result<Vec<(String, String)>, QueryError> {
    let mut sql = Sql::new(db);
    let ts = sql.time_col("_timestamp");
    sql.push(&format!(
        "SELECT id, {ts} FROM {} WHERE 1 = 1",
        source.table()
    ));
    if let Some(since) = since {
        sql.push(" AND _timestamp >= ").time(since);
    }
    if let Some((t, id)) = after {
        let t = chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| QueryError::Stored {
                table: "regress_cursor",
                id: t.clone(),
                reason: e.to_string(),
            })?;
        sql.push(" AND (_timestamp > ")
            .time(&t)
            .push(" OR (_timestamp = ")
            .time(&t)
            .push(" AND id > ")
            .text(id)
            .push("))");
    }
    sql.push(&format!(
        " ORDER BY _timestamp, {} LIMIT {limit}",
        sql.bytes_order("id")
    ));
    Ok(fetch_all!(db, sql, (String, String)))
}

/// The test and build ids a page of changed `source` rows stands for.
async fn objects_of(
    db: &KcidbDb,
    source: Source,
    page: &[(String, String)],
) -> Result<(BTreeSet<String>, BTreeSet<String>), QueryError> {
    let ids: Vec<String> = page.iter().map(|r| r.0.clone()).collect();
    let mut tests = BTreeSet::new();
    let mut builds = BTreeSet::new();
    match source {
        Source::Tests => tests.extend(ids),
        Source::Builds => {
            builds.extend(ids.iter().cloned());
            tests.extend(child_ids(db, "tests", "build_id", &ids).await?);
        }
        Source::Checkouts => {
            let b = child_ids(db, "builds", "checkout_id", &ids).await?;
            tests.extend(child_ids(db, "tests", "build_id", &b).await?);
            builds.extend(b);
        }
        Source::Incidents => {
            for chunk in ids.chunks(500) {
                let mut sql = Sql::new(db);
                sql.push("SELECT test_id, build_id FROM incidents WHERE id IN ")
                    .list(chunk);
                for (t, b) in fetch_all!(db, sql, (Option<String>, Option<String>)) {
                    tests.extend(t);
                    builds.extend(b);
                }
            }
        }
    }
    Ok((tests, builds))
}

async fn child_ids(
    db: &KcidbDb,
    table: &str,
    parent_col: &str,
    parents: &[String],
) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::new();
    for chunk in parents.chunks(500) {
        let mut sql = Sql::new(db);
        sql.push(&format!("SELECT id FROM {table} WHERE {parent_col} IN "))
            .list(chunk);
        out.extend(fetch_all!(db, sql, (String,)).into_iter().map(|r| r.0));
    }
    Ok(out)
}

type TestCols = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

type BuildCols = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn json_str(text: Option<&str>, key: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text?).ok()?;
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A result's failure class (empty when it did not fail) and lab (`misc.lab`, else
/// `misc.runtime`), `misc` (JSON text) also giving the classifier its `error_code` and
/// `error_msg`.
fn class_and_lab(
    cfg: &TrackerConfig,
    input: ClassInput<'_>,
    misc: Option<&str>,
) -> (String, String) {
    let misc: Option<Value> = misc.and_then(|m| serde_json::from_str(m).ok());
    let field = |key: &str| match misc.as_ref()?.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let (error_code, error_msg) = (field("error_code"), field("error_msg"));
    let class = cfg.classifier.classify(&ClassInput {
        error_code: error_code.as_deref(),
        error_msg: error_msg.as_deref(),
        ..input
    });
    let lab = field("lab")
        .or_else(|| field("runtime"))
        .unwrap_or_default();
    (class.map_or("", FailureClass::as_str).to_string(), lab)
}

fn status_of(text: Option<&str>) -> Option<Status> {
    Status::ALL.into_iter().find(|s| Some(s.as_str()) == text)
}

/// Culprits of the present incidents of each object: id -> [(code, tool, harness)].
async fn culprits(
    db: &KcidbDb,
    col: &str,
    ids: &[String],
) -> Result<HashMap<String, Vec<(bool, bool, bool)>>, QueryError> {
    let mut out: HashMap<String, Vec<(bool, bool, bool)>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "SELECT i.{col}, s.culprit_code, s.culprit_tool, s.culprit_harness \
             FROM incidents i JOIN issues s ON s.id = i.issue_id AND s.version = i.issue_version \
             WHERE (i.present IS NULL OR i.present = {}) AND i.{col} IN ",
            boolean(db, true)
        ))
        .list(chunk);
        for (id, code, tool, harness) in
            fetch_all!(db, sql, (String, Option<bool>, Option<bool>, Option<bool>))
        {
            out.entry(id).or_default().push((
                code.unwrap_or(false),
                tool.unwrap_or(false),
                harness.unwrap_or(false),
            ));
        }
    }
    Ok(out)
}

/// The results behind test and build ids, with identity, status and class (results whose
/// build or checkout is not stored yet are left out: they come back when it arrives).
async fn results_of(
    db: &KcidbDb,
    cfg: &TrackerConfig,
    tests: &[String],
    builds: &[String],
) -> Result<Vec<Recorded>, QueryError> {
    let mut out = Vec::new();
    let test_culprits = culprits(db, "test_id", tests).await?;
    for chunk in tests.chunks(500) {
        let mut sql = Sql::new(db);
        let time = sql.time_col("COALESCE(c.start_time, c._timestamp)");
        sql.push(&format!(
            "SELECT t.id, t.origin, t.path, t.status, CAST(t.misc AS TEXT), \
             CAST(t.environment_misc AS TEXT), b.config_name, b.architecture, c.id, \
             c.tree_name, c.git_repository_url, c.git_repository_branch, c.git_commit_hash, \
             {time} FROM tests t JOIN builds b ON b.id = t.build_id \
             JOIN checkouts c ON c.id = b.checkout_id WHERE t.id IN "
        ))
        .list(chunk);
        for row in fetch_all!(db, sql, TestCols) {
            let (id, origin, path, status, misc, env_misc, config, arch) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            let platform = json_str(env_misc.as_deref(), "platform").unwrap_or_default();
            let path = path.unwrap_or_default();
            let (class, lab) = class_and_lab(
                cfg,
                ClassInput {
                    kind: Some(ResultKind::Test),
                    status: status_of(status.as_deref()),
                    origin: &origin,
                    path: &path,
                    platform: &platform,
                    culprits: test_culprits.get(&id).cloned().unwrap_or_default(),
                    ..ClassInput::default()
                },
                misc.as_deref(),
            );
            out.push(Recorded {
                identity: Identity {
                    origin: origin.clone(),
                    tree_name: row.9.unwrap_or_default(),
                    git_repository_url: row.10.unwrap_or_default(),
                    git_repository_branch: row.11.unwrap_or_default(),
                    kind: ResultKind::Test,
                    path,
                    config_name: config.unwrap_or_default(),
                    architecture: arch.unwrap_or_default(),
                    compiler: String::new(),
                    platform,
                },
                object_id: id,
                checkout_id: row.8,
                commit: row.12.unwrap_or_default(),
                checkout_time: row.13,
                status: status.unwrap_or_default(),
                class,
                lab,
            });
        }
    }
    let build_culprits = culprits(db, "build_id", builds).await?;
    for chunk in builds.chunks(500) {
        let mut sql = Sql::new(db);
        let time = sql.time_col("COALESCE(c.start_time, c._timestamp)");
        sql.push(&format!(
            "SELECT b.id, b.origin, b.status, CAST(b.misc AS TEXT), b.config_name, \
             b.architecture, b.compiler, c.id, c.tree_name, c.git_repository_url, \
             c.git_repository_branch, c.git_commit_hash, {time} \
             FROM builds b JOIN checkouts c ON c.id = b.checkout_id WHERE b.id IN "
        ))
        .list(chunk);
        for row in fetch_all!(db, sql, BuildCols) {
            let (id, origin, status, misc) = (row.0, row.1, row.2, row.3);
            let (class, lab) = class_and_lab(
                cfg,
                ClassInput {
                    kind: Some(ResultKind::Build),
                    status: status_of(status.as_deref()),
                    origin: &origin,
                    culprits: build_culprits.get(&id).cloned().unwrap_or_default(),
                    ..ClassInput::default()
                },
                misc.as_deref(),
            );
            out.push(Recorded {
                identity: Identity {
                    origin: origin.clone(),
                    tree_name: row.8.unwrap_or_default(),
                    git_repository_url: row.9.unwrap_or_default(),
                    git_repository_branch: row.10.unwrap_or_default(),
                    kind: ResultKind::Build,
                    path: String::new(),
                    config_name: row.4.unwrap_or_default(),
                    architecture: row.5.unwrap_or_default(),
                    compiler: row.6.unwrap_or_default(),
                    platform: String::new(),
                },
                object_id: id,
                checkout_id: row.7,
                commit: row.11.unwrap_or_default(),
                checkout_time: row.12,
                status: status.unwrap_or_default(),
                class,
                lab,
            });
        }
    }
    Ok(out)
}

/// Records a page's results and evaluates the identities whose history changed.
async fn process(
    db: &KcidbDb,
    cfg: &TrackerConfig,
    tests: &BTreeSet<String>,
    builds: &BTreeSet<String>,
    report: &mut TrackReport,
) -> Result<(), QueryError> {
    let tests: Vec<String> = tests.iter().cloned().collect();
    let builds: Vec<String> = builds.iter().cloned().collect();
    let results = results_of(db, cfg, &tests, &builds).await?;
    report.read += results.len();
    // What is recorded for these objects now: object id -> (identity, row values).
    let ids: Vec<String> = results.iter().map(|r| r.object_id.clone()).collect();
    let mut stored: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(db);
        sql.push(
            "SELECT object_id, identity, checkout_id || '|' || git_commit_hash || '|' || \
             checkout_time || '|' || status || '|' || class || '|' || lab \
             FROM regress_results WHERE object_id IN ",
        )
        .list(chunk);
        for (object, identity, values) in fetch_all!(db, sql, (String, String, String)) {
            stored.entry(object).or_default().push((identity, values));
        }
    }
    let mut touched: BTreeMap<String, Identity> = BTreeMap::new();
    let mut writes: Vec<(String, Recorded)> = Vec::new();
    for r in results {
        let key = r.identity.key();
        let values = format!(
            "{}|{}|{}|{}|{}|{}",
            r.checkout_id, r.commit, r.checkout_time, r.status, r.class, r.lab
        );
        let previous = stored.remove(&r.object_id).unwrap_or_default();
        if previous.len() == 1 && previous[0] == (key.clone(), values) {
            continue;
        }
        // A result that moved to another identity leaves its old one.
        for (old, _) in previous.iter().filter(|(old, _)| *old != key) {
            let mut sql = Sql::new(db);
            sql.push("UPDATE regress_identities SET dirty = ")
                .push(boolean(db, true))
                .push(" WHERE identity = ")
                .text(old);
            exec(db, &sql).await?;
            let mut sql = Sql::new(db);
            sql.push("DELETE FROM regress_results WHERE identity = ")
                .text(old)
                .push(" AND object_id = ")
                .text(&r.object_id);
            exec(db, &sql).await?;
            touched.insert(old.clone(), r.identity.clone());
        }
        touched.insert(key.clone(), r.identity.clone());
        writes.push((key, r));
    }
    // Dirty first, so that a crash between here and the evaluation leaves a trace.
    let now = now_text();
    let touched: Vec<(String, Identity)> = touched.into_iter().collect();
    mark_dirty(db, &touched, &now).await?;
    write_results(db, &writes).await?;
    report.recorded += writes.len();
    let keys: Vec<String> = touched.into_iter().map(|(k, _)| k).collect();
    evaluate_many(db, cfg, &keys, report).await
}

/// Rows per multi-row statement (SQLite allows 32,766 parameters; 16 per row at most).
const ROWS_PER_STATEMENT: usize = 500;

/// Marks identities dirty, creating their rows (one statement per 500).
async fn mark_dirty(
    db: &KcidbDb,
    identities: &[(String, Identity)],
    now: &str,
) -> Result<(), QueryError> {
    for chunk in identities.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(db);
        sql.push(
            "INSERT INTO regress_identities (identity, origin, tree_name, git_repository_url, \
             git_repository_branch, kind, path, config_name, architecture, compiler, platform, \
             flips, flaky, last_outcome, dirty, updated) VALUES ",
        );
        for (i, (key, identity)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" }).text(key);
            for v in [
                &identity.origin,
                &identity.tree_name,
                &identity.git_repository_url,
                &identity.git_repository_branch,
                identity.kind.as_str(),
                &identity.path,
                &identity.config_name,
                &identity.architecture,
                &identity.compiler,
                &identity.platform,
            ] {
                sql.push(", ").text(v);
            }
            sql.push(&format!(
                ", 0, {f}, '', {t}, ",
                f = boolean(db, false),
                t = boolean(db, true)
            ))
            .text(now)
            .push(")");
        }
        sql.push(&format!(
            " ON CONFLICT (identity) DO UPDATE SET dirty = {}",
            boolean(db, true)
        ));
        exec(db, &sql).await?;
    }
    Ok(())
}

/// Records results (one statement per 500).
async fn write_results(db: &KcidbDb, writes: &[(String, Recorded)]) -> Result<(), QueryError> {
    for chunk in writes.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(db);
        sql.push(
            "INSERT INTO regress_results (identity, object_id, checkout_id, git_commit_hash, \
             checkout_time, status, class, origin, lab, platform) VALUES ",
        );
        for (i, (key, r)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" }).text(key);
            for v in [
                &r.object_id,
                &r.checkout_id,
                &r.commit,
                &r.checkout_time,
                &r.status,
                &r.class,
                &r.identity.origin,
                &r.lab,
                &r.identity.platform,
            ] {
                sql.push(", ").text(v);
            }
            sql.push(")");
        }
        sql.push(
            " ON CONFLICT (identity, object_id) DO UPDATE SET checkout_id = excluded.checkout_id, \
             git_commit_hash = excluded.git_commit_hash, checkout_time = excluded.checkout_time, \
             status = excluded.status, class = excluded.class, lab = excluded.lab",
        );
        exec(db, &sql).await?;
    }
    Ok(())
}

async fn evaluate_dirty(
    db: &KcidbDb,
    cfg: &TrackerConfig,
    report: &mut TrackReport,
) -> Result<(), QueryError> {
    loop {
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "SELECT identity FROM regress_identities WHERE dirty = {} LIMIT {}",
            boolean(db, true),
            cfg.page
        ));
        let keys: Vec<String> = fetch_all!(db, sql, (String,))
            .into_iter()
            .map(|k| k.0)
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        evaluate_many(db, cfg, &keys, report).await?;
    }
}

/// Identities evaluated per batch of reads.
const EVALUATE_CHUNK: usize = 200;

/// What an identity's row holds before its evaluation: (flips, flaky, last outcome).
type CurrentIdentity = (i64, bool, String);

/// Evaluates identities in batches: their windows, open regressions and current rows are
/// read with one query each per batch; an identity's row is rewritten only when its
/// values change, and the batch's dirty marks are cleared together.
async fn evaluate_many(
    db: &KcidbDb,
    cfg: &TrackerConfig,
    keys: &[String],
    report: &mut TrackReport,
) -> Result<(), QueryError> {
    for chunk in keys.chunks(EVALUATE_CHUNK) {
        let mut windows = windows_of(db, chunk, cfg.settings.window).await?;
        let mut open: HashMap<String, RegressionCols> = HashMap::new();
        let mut sql = Sql::new(db);
        sql.push(
            "SELECT id, state, first_fail_time, last_fail_time, first_fail_checkout, \
             last_fail_checkout, class, fail_count, identity FROM regressions \
             WHERE state <> 'fixed' AND identity IN ",
        )
        .list(chunk);
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            i64,
            String,
        );
        for r in fetch_all!(db, sql, Row) {
            open.insert(r.8.clone(), (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7));
        }
        let mut current: HashMap<String, CurrentIdentity> = HashMap::new();
        let mut sql = Sql::new(db);
        sql.push("SELECT identity, flips, flaky, last_outcome FROM regress_identities WHERE identity IN ")
            .list(chunk);
        for (key, flips, flaky, last) in fetch_all!(db, sql, (String, i64, bool, String)) {
            current.insert(key, (flips, flaky, last));
        }
        let now = now_text();
        for key in chunk {
            let window = windows.remove(key).unwrap_or_default();
            let input = Evaluation {
                key,
                window: &window,
                open: open.get(key),
                current: current.get(key),
                now: &now,
            };
            evaluate_identity(db, cfg, &input, report).await?;
        }
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "UPDATE regress_identities SET dirty = {} WHERE identity IN ",
            boolean(db, false)
        ))
        .list(chunk);
        exec(db, &sql).await?;
    }
    Ok(())
}

/// One identity's evaluation inputs.
struct Evaluation<'a> {
    key: &'a str,
    window: &'a [CheckoutOutcome],
    open: Option<&'a RegressionCols>,
    current: Option<&'a CurrentIdentity>,
    now: &'a str,
}

type RegressionCols = (String, String, String, String, String, String, String, i64);

/// Re-evaluates one identity over its window and writes what changed (its regression,
/// its row; the caller clears its dirty mark).
async fn evaluate_identity(
    db: &KcidbDb,
    cfg: &TrackerConfig,
    e: &Evaluation<'_>,
    report: &mut TrackReport,
) -> Result<(), QueryError> {
    report.evaluated += 1;
    let (key, window, now) = (e.key, e.window, e.now);
    let verdict = lifecycle::evaluate(window, &cfg.settings);
    let last_outcome = verdict
        .latest
        .map(|i| match window[i].outcome {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Mixed => "mixed",
            Outcome::Other => "",
        })
        .unwrap_or("");
    // The open regression of this identity, if any: (id, state, first_fail_time,
    // last_fail_time, ...).
    let was_flaky = e.current.is_some_and(|c| c.1);
    let latest = verdict.latest.map(|i| &window[i]);
    match (e.open, latest.map(|c| c.outcome)) {
        (Some(o), _) if verdict.flaky => {
            let flaky = RegressionState::Flaky;
            if o.1 != flaky.as_str() {
                set_state(db, &o.0, flaky, now).await?;
                report.became_flaky += 1;
            }
        }
        (Some(o), Some(Outcome::Fail(_))) => {
            let last = latest.map(|c| {
                (
                    c.checkout_id.clone(),
                    c.commit.clone(),
                    c.object_id.clone(),
                    c.time.clone(),
                )
            });
            let count = fail_count_since(db, key, &o.2).await?;
            let state = RegressionState::for_count(usize::try_from(count).unwrap_or(0));
            if let Some((checkout, commit, object, time)) = last {
                let mut sql = Sql::new(db);
                sql.push("UPDATE regressions SET state = ")
                    .text(state.as_str())
                    .push(", fail_count = ")
                    .bind(Bind::Int(count))
                    .push(", last_fail_checkout = ")
                    .text(&checkout)
                    .push(", last_fail_commit = ")
                    .text(&commit)
                    .push(", last_fail_object = ")
                    .text(&object)
                    .push(", last_fail_time = ")
                    .text(&time)
                    .push(", updated = ")
                    .text(now)
                    .push(" WHERE id = ")
                    .text(&o.0)
                    .push(" AND (state <> ")
                    .text(state.as_str())
                    .push(" OR fail_count <> ")
                    .bind(Bind::Int(count))
                    .push(" OR last_fail_checkout <> ")
                    .text(&checkout)
                    .push(")");
                exec(db, &sql).await?;
            }
        }
        (Some(o), Some(Outcome::Pass)) => {
            // Fixed on the first pass after its newest failure.
            if let Some(i) = lifecycle::first_pass_after(window, &o.3) {
                let fixed = &window[i];
                let mut sql = Sql::new(db);
                sql.push("UPDATE regressions SET state = 'fixed', fixed_checkout = ")
                    .text(&fixed.checkout_id)
                    .push(", fixed_commit = ")
                    .text(&fixed.commit)
                    .push(", updated = ")
                    .text(now)
                    .push(" WHERE id = ")
                    .text(&o.0);
                exec(db, &sql).await?;
                report.fixed += 1;
            }
        }
        (None, _) if verdict.flaky => {
            // A regression fixed within the window was this flakiness, not a regression
            // (looked at when the identity becomes flaky).
            if let Some(oldest) = window.first().filter(|_| !was_flaky) {
                let mut sql = Sql::new(db);
                sql.push("UPDATE regressions SET state = 'flaky', updated = ")
                    .text(now)
                    .push(" WHERE identity = ")
                    .text(key)
                    .push(" AND state = 'fixed' AND first_fail_time >= ")
                    .text(&oldest.time);
                let n = exec(db, &sql).await?;
                report.became_flaky += usize::try_from(n).unwrap_or(0);
            }
        }
        (None, _) => {
            if let Some(f) = verdict.failing {
                open_regression(db, key, window, &f, now).await?;
                report.opened += 1;
            }
        }
        _ => {}
    }

    let flips = i64::try_from(verdict.flips).unwrap_or(i64::MAX);
    let unchanged = e
        .current
        .is_some_and(|c| c.0 == flips && c.1 == verdict.flaky && c.2 == last_outcome);
    if !unchanged {
        let mut sql = Sql::new(db);
        sql.push("UPDATE regress_identities SET flips = ")
            .bind(Bind::Int(flips))
            .push(&format!(
                ", flaky = {}, last_outcome = ",
                boolean(db, verdict.flaky)
            ))
            .text(last_outcome)
            .push(", updated = ")
            .text(now)
            .push(" WHERE identity = ")
            .text(key);
        exec(db, &sql).await?;
    }
    Ok(())
}

async fn set_state(
    db: &KcidbDb,
    id: &str,
    state: RegressionState,
    now: &str,
) -> Result<(), QueryError> {
    let mut sql = Sql::new(db);
    sql.push("UPDATE regressions SET state = ")
        .text(state.as_str())
        .push(", updated = ")
        .text(now)
        .push(" WHERE id = ")
        .text(id);
    exec(db, &sql).await?;
    Ok(())
}

async fn fail_count_since(db: &KcidbDb, key: &str, since: &str) -> Result<i64, QueryError> {
    let mut sql = Sql::new(db);
    sql.push("SELECT COUNT(DISTINCT checkout_id) FROM regress_results WHERE identity = ")
        .text(key)
        .push(" AND checkout_time >= ")
        .text(since)
        .push(" AND status IN ('FAIL', 'ERROR') AND class IN ('kernel', 'test')");
    Ok(fetch_all!(db, sql, (i64,))
        .into_iter()
        .next()
        .map_or(0, |r| r.0))
}

async fn open_regression(
    db: &KcidbDb,
    key: &str,
    window: &[CheckoutOutcome],
    f: &lifecycle::Failing,
    now: &str,
) -> Result<(), QueryError> {
    let (pass, first, last) = (
        &window[f.last_pass],
        &window[f.first_fail],
        &window[f.last_fail],
    );
    let id = {
        use sha1::{Digest, Sha1};
        let mut h = Sha1::new();
        h.update(key.as_bytes());
        h.update(b"|");
        h.update(first.checkout_id.as_bytes());
        hex(&h.finalize())
    };
    let state = RegressionState::for_count(f.fail_count);
    let mut sql = Sql::new(db);
    sql.push(
        "INSERT INTO regressions (id, identity, state, class, fail_count, last_pass_checkout, \
         last_pass_commit, first_fail_checkout, first_fail_commit, first_fail_object, \
         first_fail_time, last_fail_checkout, last_fail_commit, last_fail_object, \
         last_fail_time, opened, updated) VALUES (",
    )
    .text(&id)
    .push(", ")
    .text(key)
    .push(", ")
    .text(state.as_str())
    .push(", ")
    .text(f.class.as_str())
    .push(", ")
    .bind(Bind::Int(i64::try_from(f.fail_count).unwrap_or(i64::MAX)));
    for v in [
        &pass.checkout_id,
        &pass.commit,
        &first.checkout_id,
        &first.commit,
        &first.object_id,
        &first.time,
        &last.checkout_id,
        &last.commit,
        &last.object_id,
        &last.time,
    ] {
        sql.push(", ").text(v);
    }
    sql.push(", ").text(now).push(", ").text(now).push(
        ") ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
             fail_count = excluded.fail_count, last_fail_checkout = excluded.last_fail_checkout, \
             last_fail_commit = excluded.last_fail_commit, \
             last_fail_object = excluded.last_fail_object, \
             last_fail_time = excluded.last_fail_time, fixed_checkout = NULL, \
             fixed_commit = NULL, updated = excluded.updated",
    );
    exec(db, &sql).await?;
    Ok(())
}

/// Each identity's newest `window` checkouts, oldest first, each folded into one outcome
/// (at most `8 * window` results per identity are read).
async fn windows_of(
    db: &KcidbDb,
    keys: &[String],
    window: usize,
) -> Result<HashMap<String, Vec<CheckoutOutcome>>, QueryError> {
    let mut sql = Sql::new(db);
    let limit = window.max(1).saturating_mul(8);
    let order = format!(
        "{} DESC, {} DESC, {}",
        sql.bytes_order("checkout_time"),
        sql.bytes_order("checkout_id"),
        sql.bytes_order("object_id")
    );
    sql.push(&format!(
        "SELECT identity, checkout_id, git_commit_hash, checkout_time, object_id, status, class \
         FROM (SELECT identity, checkout_id, git_commit_hash, checkout_time, object_id, status, \
         class, ROW_NUMBER() OVER (PARTITION BY identity ORDER BY {order}) AS rn \
         FROM regress_results WHERE identity IN "
    ))
    .list(keys)
    .push(&format!(
        ") w WHERE rn <= {limit} ORDER BY identity, {order}"
    ));
    type Row = (String, String, String, String, String, String, String);
    let mut by_key: HashMap<String, Vec<Row>> = HashMap::new();
    for row in fetch_all!(db, sql, Row) {
        by_key.entry(row.0.clone()).or_default().push(row);
    }
    Ok(by_key
        .into_iter()
        .map(|(k, rows)| (k, fold_window(rows, window)))
        .collect())
}

/// One identity's results, newest first, grouped per checkout into at most `window`
/// outcomes, returned oldest first.
fn fold_window(
    rows: Vec<(String, String, String, String, String, String, String)>,
    window: usize,
) -> Vec<CheckoutOutcome> {
    let mut groups: Vec<(CheckoutOutcome, Vec<(ResultVerdict, String)>)> = Vec::new();
    for (_, checkout, commit, time, object, status, class) in rows {
        let verdict = match (status.as_str(), FailureClass::parse(&class)) {
            ("PASS", _) => ResultVerdict::Pass,
            ("FAIL" | "ERROR", Some(c)) => ResultVerdict::Fail(c),
            _ => ResultVerdict::None,
        };
        match groups.last_mut() {
            Some((g, v)) if g.checkout_id == checkout => v.push((verdict, object)),
            _ => {
                if groups.len() == window.max(1) {
                    break;
                }
                groups.push((
                    CheckoutOutcome {
                        checkout_id: checkout,
                        commit,
                        time,
                        object_id: String::new(),
                        outcome: Outcome::Other,
                    },
                    vec![(verdict, object)],
                ));
            }
        }
    }
    let mut out: Vec<CheckoutOutcome> = groups
        .into_iter()
        .map(|(mut c, results)| {
            c.outcome = Outcome::fold(results.iter().map(|r| r.0));
            // The first failing result stands for the checkout when it failed.
            c.object_id = results
                .iter()
                .find(|r| matches!(r.0, ResultVerdict::Fail(_)))
                .or(results.first())
                .map(|r| r.1.clone())
                .unwrap_or_default();
            c
        })
        .collect();
    out.reverse();
    out
}

/// Which regressions [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct RegressionFilter {
    /// Only these states (empty: all).
    pub states: Vec<RegressionState>,
    /// Only this origin.
    pub origin: Option<String>,
    /// Only this tree.
    pub tree_name: Option<String>,
    /// Only this branch.
    pub branch: Option<String>,
    /// Only this regression.
    pub id: Option<String>,
    /// At most this many (newest change first).
    pub limit: usize,
}

/// Stored regressions, newest change first.
pub async fn list(db: &KcidbDb, filter: &RegressionFilter) -> Result<Vec<Regression>, QueryError> {
    let mut sql = Sql::new(db);
    sql.push(
        "SELECT i.origin, i.tree_name, i.git_repository_url, i.git_repository_branch, i.kind, \
         i.path, i.config_name, i.architecture, i.compiler, i.platform, \
         r.id, r.identity, r.state, r.class, r.fail_count, r.last_pass_checkout, \
         r.last_pass_commit, r.first_fail_checkout, r.first_fail_commit, r.first_fail_object, \
         r.first_fail_time, r.last_fail_checkout, r.last_fail_commit, r.last_fail_object, \
         r.last_fail_time, r.fixed_checkout, r.fixed_commit, r.opened, r.updated \
         FROM regressions r JOIN regress_identities i ON i.identity = r.identity WHERE 1 = 1",
    );
    if !filter.states.is_empty() {
        let states: Vec<String> = filter
            .states
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        sql.push(" AND r.state IN ").list(&states);
    }
    for (col, v) in [
        ("i.origin", &filter.origin),
        ("i.tree_name", &filter.tree_name),
        ("i.git_repository_branch", &filter.branch),
        ("r.id", &filter.id),
    ] {
        if let Some(v) = v {
            sql.push(&format!(" AND {col} = ")).text(v);
        }
    }
    sql.push(&format!(
        " ORDER BY {} DESC, {} LIMIT {}",
        sql.bytes_order("r.updated"),
        sql.bytes_order("r.id"),
        filter.limit.max(1)
    ));
    let rows = fetch_all!(db, sql, ListRow);
    let mut out: Vec<Regression> = rows
        .into_iter()
        .filter_map(ListRow::into_regression)
        .collect();
    let objects: Vec<String> = out.iter().map(|r| r.first_fail.object_id.clone()).collect();
    let found = bisections(db, &objects).await?;
    for r in &mut out {
        r.bisection = found.get(&r.first_fail.object_id).cloned();
    }
    Ok(out)
}

/// `misc.bisection` of the issues linked to these results by present incidents, by result.
async fn bisections(
    db: &KcidbDb,
    objects: &[String],
) -> Result<HashMap<String, serde_json::Value>, QueryError> {
    let mut out = HashMap::new();
    for chunk in objects.chunks(250) {
        let mut sql = Sql::new(db);
        sql.push(
            "SELECT COALESCE(i.test_id, i.build_id), CAST(s.misc AS TEXT) FROM incidents i \
             JOIN issues s ON s.id = i.issue_id AND s.version = i.issue_version \
             WHERE i.test_id IN ",
        )
        .list(chunk)
        .push(" OR i.build_id IN ")
        .list(chunk);
        for (object, misc) in fetch_all!(db, sql, (Option<String>, Option<String>)) {
            let bisection = misc
                .as_deref()
                .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                .and_then(|m| m.get("bisection").cloned());
            if let (Some(object), Some(b)) = (object, bisection) {
                out.insert(object, b);
            }
        }
    }
    Ok(out)
}

/// One row of [`list`]'s query (sqlx decodes tuples of at most 16 columns, so the row is
/// read by name).
struct ListRow {
    origin: String,
    tree_name: String,
    git_repository_url: String,
    git_repository_branch: String,
    kind: String,
    path: String,
    config_name: String,
    architecture: String,
    compiler: String,
    platform: String,
    id: String,
    identity: String,
    state: String,
    class: String,
    fail_count: i64,
    last_pass_checkout: String,
    last_pass_commit: String,
    first_fail_checkout: String,
    first_fail_commit: String,
    first_fail_object: String,
    first_fail_time: String,
    last_fail_checkout: String,
    last_fail_commit: String,
    last_fail_object: String,
    last_fail_time: String,
    fixed_checkout: Option<String>,
    fixed_commit: Option<String>,
    opened: String,
    updated: String,
}

macro_rules! list_row_from {
    ($row:ty) => {
        impl<'r> sqlx::FromRow<'r, $row> for ListRow {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok(ListRow {
                    origin: row.try_get("origin")?,
                    tree_name: row.try_get("tree_name")?,
                    git_repository_url: row.try_get("git_repository_url")?,
                    git_repository_branch: row.try_get("git_repository_branch")?,
                    kind: row.try_get("kind")?,
                    path: row.try_get("path")?,
                    config_name: row.try_get("config_name")?,
                    architecture: row.try_get("architecture")?,
                    compiler: row.try_get("compiler")?,
                    platform: row.try_get("platform")?,
                    id: row.try_get("id")?,
                    identity: row.try_get("identity")?,
                    state: row.try_get("state")?,
                    class: row.try_get("class")?,
                    fail_count: row.try_get("fail_count")?,
                    last_pass_checkout: row.try_get("last_pass_checkout")?,
                    last_pass_commit: row.try_get("last_pass_commit")?,
                    first_fail_checkout: row.try_get("first_fail_checkout")?,
                    first_fail_commit: row.try_get("first_fail_commit")?,
                    first_fail_object: row.try_get("first_fail_object")?,
                    first_fail_time: row.try_get("first_fail_time")?,
                    last_fail_checkout: row.try_get("last_fail_checkout")?,
                    last_fail_commit: row.try_get("last_fail_commit")?,
                    last_fail_object: row.try_get("last_fail_object")?,
                    last_fail_time: row.try_get("last_fail_time")?,
                    fixed_checkout: row.try_get("fixed_checkout")?,
                    fixed_commit: row.try_get("fixed_commit")?,
                    opened: row.try_get("opened")?,
                    updated: row.try_get("updated")?,
                })
            }
        }
    };
}
list_row_from!(sqlx::sqlite::SqliteRow);
list_row_from!(sqlx::postgres::PgRow);

impl ListRow {
    fn into_regression(self) -> Option<Regression> {
        Some(Regression {
            id: self.id,
            state: RegressionState::parse(&self.state)?,
            class: FailureClass::parse(&self.class)?,
            identity: Identity {
                origin: self.origin,
                tree_name: self.tree_name,
                git_repository_url: self.git_repository_url,
                git_repository_branch: self.git_repository_branch,
                kind: ResultKind::parse(&self.kind)?,
                path: self.path,
                config_name: self.config_name,
                architecture: self.architecture,
                compiler: self.compiler,
                platform: self.platform,
            },
            identity_key: self.identity,
            fail_count: self.fail_count,
            last_pass: Seen {
                checkout_id: self.last_pass_checkout,
                commit: self.last_pass_commit,
                object_id: String::new(),
                time: String::new(),
            },
            first_fail: Seen {
                checkout_id: self.first_fail_checkout,
                commit: self.first_fail_commit,
                object_id: self.first_fail_object,
                time: self.first_fail_time,
            },
            last_fail: Seen {
                checkout_id: self.last_fail_checkout,
                commit: self.last_fail_commit,
                object_id: self.last_fail_object,
                time: self.last_fail_time,
            },
            fixed: self.fixed_checkout.map(|checkout_id| Seen {
                checkout_id,
                commit: self.fixed_commit.unwrap_or_default(),
                object_id: String::new(),
                time: String::new(),
            }),
            opened: self.opened,
            updated: self.updated,
            bisection: None,
        })
    }
}

/// An identity the tracker found flaky.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyIdentity {
    /// What flips.
    pub identity: Identity,
    /// Its key.
    pub identity_key: String,
    /// Flips within the window.
    pub flips: i64,
    /// `pass`, `fail` or `mixed`: the newest decisive outcome.
    pub last_outcome: String,
    /// When the tracker last evaluated it.
    pub updated: String,
}

/// Identities that are flaky now, newest first.
pub async fn flaky(
    db: &KcidbDb,
    origin: Option<&str>,
    limit: usize,
) -> Result<Vec<FlakyIdentity>, QueryError> {
    let mut sql = Sql::new(db);
    sql.push(&format!(
        "SELECT identity, origin, tree_name, git_repository_url, git_repository_branch, kind, \
         path, config_name, architecture, compiler, platform, flips, last_outcome, updated \
         FROM regress_identities WHERE flaky = {}",
        boolean(db, true)
    ));
    if let Some(o) = origin {
        sql.push(" AND origin = ").text(o);
    }
    sql.push(&format!(
        " ORDER BY {} DESC LIMIT {}",
        sql.bytes_order("updated"),
        limit.max(1)
    ));
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        String,
        String,
    );
    let rows = fetch_all!(db, sql, Row);
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(FlakyIdentity {
                identity: Identity {
                    origin: r.1,
                    tree_name: r.2,
                    git_repository_url: r.3,
                    git_repository_branch: r.4,
                    kind: ResultKind::parse(&r.5)?,
                    path: r.6,
                    config_name: r.7,
                    architecture: r.8,
                    compiler: r.9,
                    platform: r.10,
                },
                identity_key: r.0,
                flips: r.11,
                last_outcome: r.12,
                updated: r.13,
            })
        })
        .collect())
}

/// Failure counts of one lab and platform over a time window (lab and device health).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The origin.
    pub origin: String,
    /// The lab (`misc.lab`, else `misc.runtime`).
    pub lab: String,
    /// The platform (device type); empty for builds.
    pub platform: String,
    /// Results with a status.
    pub total: i64,
    /// Infrastructure failures among them.
    pub infrastructure: i64,
    /// Kernel and test failures among them.
    pub failures: i64,
    /// `infrastructure / total`.
    pub infrastructure_rate: f64,
}

/// Health per (origin, lab, platform) over the results of checkouts since `since`, worst
/// infrastructure rate first.
pub async fn health(
    db: &KcidbDb,
    since: &chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Health>, QueryError> {
    let mut sql = Sql::new(db);
    sql.push(
        "SELECT origin, lab, platform, COUNT(*), \
         SUM(CASE WHEN class = 'infrastructure' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN class IN ('kernel', 'test') THEN 1 ELSE 0 END) \
         FROM regress_results WHERE status <> '' AND checkout_time >= ",
    )
    .text(&since.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    .push(" GROUP BY origin, lab, platform");
    let rows = fetch_all!(db, sql, (String, String, String, i64, i64, i64));
    let mut out: Vec<Health> = rows
        .into_iter()
        .map(
            |(origin, lab, platform, total, infrastructure, failures)| Health {
                origin,
                lab,
                platform,
                total,
                infrastructure,
                failures,
                #[allow(clippy::cast_precision_loss)]
                infrastructure_rate: if total > 0 {
                    infrastructure as f64 / total as f64
                } else {
                    0.0
                },
            },
        )
        .collect();
    out.sort_by(|a, b| {
        b.infrastructure_rate
            .total_cmp(&a.infrastructure_rate)
            .then_with(|| (&a.origin, &a.lab, &a.platform).cmp(&(&b.origin, &b.lab, &b.platform)))
    });
    Ok(out)
}

/// The recorded failure class of each of `ids` (tests or builds) that has one; results
/// the tracker has not recorded yet, and results without a failure, are left out.
pub async fn classes(
    db: &KcidbDb,
    ids: &[String],
) -> Result<HashMap<String, FailureClass>, QueryError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(db);
        sql.push(
            "SELECT object_id, class FROM regress_results WHERE class <> '' AND object_id IN ",
        )
        .list(chunk);
        for (id, class) in fetch_all!(db, sql, (String, String)) {
            if let Some(c) = FailureClass::parse(&class) {
                out.insert(id, c);
            }
        }
    }
    Ok(out)
}

/// Retention: deletes at most `limit` `regress_results` rows whose checkout is older than
/// `before`, oldest first, in one statement (its own short transaction); returns how many.
/// With `dry_run`, deletes nothing and returns how many rows are that old. Rows without a
/// checkout time, regressions and identities stay.
pub async fn purge(
    db: &KcidbDb,
    before: &chrono::DateTime<chrono::Utc>,
    limit: u32,
    dry_run: bool,
) -> Result<u64, QueryError> {
    let before = before.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut sql = Sql::new(db);
    if dry_run {
        sql.push(
            "SELECT COUNT(*) FROM regress_results WHERE checkout_time <> '' AND checkout_time < ",
        )
        .text(&before);
        let rows = fetch_all!(db, sql, (i64,));
        return Ok(rows.first().map_or(0, |r| u64::try_from(r.0).unwrap_or(0)));
    }
    sql.push(
        "DELETE FROM regress_results WHERE (identity, object_id) IN \
         (SELECT identity, object_id FROM regress_results \
         WHERE checkout_time <> '' AND checkout_time < ",
    )
    .text(&before)
    .push(" ORDER BY checkout_time LIMIT ")
    .bind(Bind::Int(i64::from(limit)))
    .push(")");
    Ok(exec(db, &sql).await?)
}
