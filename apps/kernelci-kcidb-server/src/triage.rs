//! Triage: failed builds and tests → logspec → KCIDB issues and incidents (the job of
//! upstream's `logspec-worker`, specs/kcidb.md §6), filed through the normal ingest path.
//!
//! One round ([`triage_once`], or [`spawn`] every [`TriageConfig::interval`]):
//!
//! 1. **Select** builds and tests with status `FAIL` or `ERROR` and a `log_url` that are not
//!    yet in the `triage_state` table (or that failed to fetch fewer than
//!    [`TriageConfig::max_attempts`] times), oldest `_timestamp` first, at most
//!    [`TriageConfig::limit`] of each.
//! 2. **Fetch** the log ([`crate::logfetch`]: `file://`, `http(s)://`, bounded, cached). A
//!    failure is counted and recorded as an attempt; it is retried next round until the
//!    attempts run out.
//! 3. **Parse**. The parser rule: builds → `kbuild`; tests whose `path` has a dot-separated
//!    component starting with `baseline` (`baseline.login`, `baseline-nfs.dmesg.crit`) →
//!    `test_baseline`; one starting with `kselftest` → `test_kselftest`; any other test →
//!    `generic_linux_boot`. (Upstream parses every test with `generic_linux_boot`.)
//! 4. **Findings** as upstream (§6.3): errors without a signature and
//!    `linux.kernel.error_return_code` are skipped; for `generic_linux_boot` one synthetic
//!    `linux.kernel.boot` error is prepended when the prompt was reached ("Unclean boot") or
//!    the bootloader/kernel did not get going.
//! 5. **Issues and incidents** with upstream's ids (§6.4): issue `<origin>:<signature>`,
//!    version 1, comment, `misc.logspec`, culprit code. For a build, an issue of the same
//!    origin stored in the last 25 days (or filed earlier in the round) whose
//!    `misc.logspec.error.signature_loc` equals this error's `signature_loc` (else its
//!    signature) is reused instead: gcc and clang wording of one error share an issue.
//!    A reused issue is referenced, not resubmitted (upstream resubmits it with the new
//!    error's comment and misc). Incident
//!    `<origin>:sha1(json.dumps([object_id, issue_id, issue_version]))`, `present: true`.
//!    Here `<origin>` is [`TriageConfig::origin`] (default `logspec`), not the analysed
//!    object's origin as upstream does, so that our findings are told apart from the CI
//!    system's own and one token-less writer owns them.
//! 6. **File**: one v5.3 submission per round, validated with [`kernelci_kcidb::load`], is
//!    written to the spool exactly as `/submit` writes one (temp file, fsync, rename, sync
//!    of the directory) and the ingester is woken. Only then are the analysed objects
//!    marked done in `triage_state`, so a second round files nothing new; a crash in
//!    between files the same ids again, which the merge makes a no-op.
//!
//! Dry run: steps 1-5 run and the [`Report`] lists what would be filed; nothing is written
//! and nothing is marked. Counters are on the role's `/metrics` (`kcidb_triage_*`).
//!
//! Not done (yet): logs in our own artifact storage by a non-URL reference.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kernelci_kcidb::{Culprit, Incident, Issue, Misc, Submission};
use kernelci_logspec::{LOGSPEC_VERSION, LogError, Options, ParseResult, Parser};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::AssertSqlSafe;

use crate::KcidbState;
use crate::db::{DbError, KcidbDb};
use crate::logfetch::{FetchLimits, LogFetcher};
use crate::spool;

/// Configuration of the triage role.
#[derive(Debug, Clone)]
pub struct TriageConfig {
    /// The origin of the issues and incidents filed (`[a-z0-9_]+`).
    pub origin: String,
    /// Report only; file and mark nothing.
    pub dry_run: bool,
    /// Builds, and separately tests, looked at per round.
    pub limit: usize,
    /// Fetch attempts before an object is given up on.
    pub max_attempts: u32,
    /// Log fetching bounds and cache.
    pub fetch: FetchLimits,
    /// Pause between rounds of [`spawn`].
    pub interval: Duration,
    /// Only builds and tests of these origins (empty: every origin). Upstream's
    /// logspec-worker is configured with such a list.
    pub origins: Vec<String>,
    /// Only builds and tests written (loaded or last changed) within this time. Upstream's
    /// worker looks one day back; `None` (our default) looks at everything not yet triaged.
    pub max_age: Option<Duration>,
}

impl Default for TriageConfig {
    fn default() -> Self {
        TriageConfig {
            origin: "logspec".into(),
            dry_run: false,
            limit: 500,
            max_attempts: 3,
            fetch: FetchLimits::default(),
            interval: Duration::from_secs(60),
            origins: Vec::new(),
            max_age: None,
        }
    }
}

/// Triage errors (a failed fetch is not one: it is counted).
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configured origin is not `[a-z0-9_]+`.
    #[error("invalid triage origin {0:?} (must match ^[a-z0-9_]+$)")]
    Origin(String),
    /// Building or writing the submission.
    #[error("cannot file the submission: {0}")]
    File(String),
}

impl From<sqlx::Error> for TriageError {
    fn from(e: sqlx::Error) -> Self {
        TriageError::Db(DbError::Sql(e))
    }
}

/// Triage counters (since start), shown on `/metrics`.
#[derive(Debug, Default)]
pub struct TriageMetrics {
    runs: AtomicU64,
    run_errors: AtomicU64,
    candidates: AtomicU64,
    logs_fetched: AtomicU64,
    cache_hits: AtomicU64,
    fetch_failures: AtomicU64,
    errors_found: AtomicU64,
    issues_filed: AtomicU64,
    incidents_filed: AtomicU64,
    submissions: AtomicU64,
}

impl TriageMetrics {
    /// Prometheus text of the counters.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, help, a) in [
            ("runs", "Triage rounds run", &self.runs),
            ("run_errors", "Triage rounds that failed", &self.run_errors),
            (
                "candidates",
                "Failed builds and tests looked at",
                &self.candidates,
            ),
            ("logs_fetched", "Logs fetched", &self.logs_fetched),
            ("cache_hits", "Logs served by the cache", &self.cache_hits),
            (
                "fetch_failures",
                "Logs that could not be fetched",
                &self.fetch_failures,
            ),
            ("errors_found", "Errors found in logs", &self.errors_found),
            ("issues_filed", "Issues submitted", &self.issues_filed),
            (
                "incidents_filed",
                "Incidents submitted",
                &self.incidents_filed,
            ),
            (
                "submissions",
                "Submissions written to the spool",
                &self.submissions,
            ),
        ] {
            let name = format!("kcidb_triage_{name}_total");
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                a.load(Ordering::Relaxed)
            ));
        }
        text
    }
}

fn bump(a: &AtomicU64, n: usize) {
    a.fetch_add(n as u64, Ordering::Relaxed);
}

/// What one round did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Builds and tests looked at.
    pub candidates: usize,
    /// Logs fetched (cache hits included).
    pub logs_fetched: usize,
    /// Logs that could not be fetched.
    pub fetch_failures: usize,
    /// Errors found (after the skips).
    pub errors_found: usize,
    /// The issues filed (or to file).
    pub issues: Vec<Issue>,
    /// The incidents filed (or to file).
    pub incidents: Vec<Incident>,
    /// The spool submission id, when something was filed.
    pub submission: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Build or test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A build.
    Build,
    /// A test.
    Test,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Test => "test",
        }
    }
}

/// The parser for a build, or for a test with this `path` (see the module doc).
pub fn parser_for(kind: Kind, path: Option<&str>) -> Parser {
    if kind == Kind::Build {
        return Parser::Kbuild;
    }
    let parts = || path.unwrap_or("").split('.');
    if parts().any(|c| c.starts_with("baseline")) {
        Parser::TestBaseline
    } else if parts().any(|c| c.starts_with("kselftest")) {
        Parser::TestKselftest
    } else {
        Parser::GenericLinuxBoot
    }
}

/// One finding ready to become an issue.
#[derive(Debug, Clone)]
struct Finding {
    signature: String,
    /// `signature_loc`, else the signature (compiler errors' location key, §6.4).
    location_key: Option<String>,
    error_type: String,
    comment: String,
    error: Map<String, Value>,
}

/// Longest `log_excerpt` kept in an issue's `misc` (characters; upstream has no cap).
const MAX_EXCERPT: usize = 64 << 10;

fn finding_of(e: &LogError, parser: Parser) -> Finding {
    let full = e.to_json(true);
    let mut error = match e.to_json(false) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    error.remove("signature");
    if let Some(loc) = &e.signature_loc {
        error.insert("signature_loc".into(), json!(loc));
    }
    error.insert(
        "log_excerpt".into(),
        json!(e.report.chars().take(MAX_EXCERPT).collect::<String>()),
    );
    let fields: Map<String, Value> = e
        .signature_fields
        .iter()
        .map(|f| (f.clone(), full.get(f).cloned().unwrap_or(Value::Null)))
        .collect();
    error.insert("signature_fields".into(), Value::Object(fields));
    let mut comment = format!(" {}", e.error_summary);
    if let Some(t) = e.attribute_str("target").filter(|s| !s.is_empty()) {
        comment.push_str(&format!(" in {t}"));
    }
    if let Some(s) = e.attribute_str("src_file").filter(|s| !s.is_empty()) {
        comment.push_str(&format!(" ({s})"));
    } else if let Some(s) = e.attribute_str("script").filter(|s| !s.is_empty()) {
        comment.push_str(&format!(" ({s})"));
    }
    comment.push_str(&format!(" [logspec:{},{}]", parser.name(), e.error_type));
    Finding {
        signature: e.signature.clone(),
        location_key: Some(
            e.signature_loc
                .clone()
                .unwrap_or_else(|| e.signature.clone()),
        ),
        error_type: e.error_type.clone(),
        comment,
        error,
    }
}

/// The findings of a parse, as upstream's worker selects them (§6.3).
fn findings(result: &ParseResult) -> Vec<Finding> {
    let parser = result.parser;
    let mut out = Vec::new();
    if parser == Parser::GenericLinuxBoot
        && let Some(signature) = &result.signature
    {
        let summary = if result.state("linux.boot.prompt") == Some(true) {
            Some("WARNING: Unclean boot. Reached prompt but marked as failed.")
        } else if result.state("bootloader.done") == Some(false)
            || result.state("linux.boot.kernel_started") == Some(false)
        {
            Some("Bootloader did not finish or kernel did not start.")
        } else {
            None
        };
        if let Some(summary) = summary {
            let fields: Map<String, Value> = result
                .signature_fields
                .iter()
                .map(|f| (f.clone(), result.state(f).map_or(Value::Null, Value::Bool)))
                .collect();
            let mut error = Map::new();
            error.insert("error_type".into(), json!("linux.kernel.boot"));
            error.insert("error_summary".into(), json!(summary));
            error.insert("log_excerpt".into(), json!(""));
            error.insert("signature_fields".into(), Value::Object(fields));
            out.push(Finding {
                signature: signature.clone(),
                location_key: None,
                error_type: "linux.kernel.boot".into(),
                comment: format!(" {summary} [logspec:{},linux.kernel.boot]", parser.name()),
                error,
            });
        }
    }
    for e in &result.errors {
        if e.signature.is_empty() || e.error_type == "linux.kernel.error_return_code" {
            continue;
        }
        out.push(finding_of(e, parser));
    }
    out
}

fn issue_of(origin: &str, parser: Parser, f: &Finding) -> Issue {
    let mut misc = Misc::new();
    misc.insert(
        "logspec".into(),
        json!({
            "version": LOGSPEC_VERSION,
            "parser": parser.name(),
            "error": Value::Object(f.error.clone()),
        }),
    );
    Issue {
        id: format!("{origin}:{}", f.signature),
        version: 1,
        origin: origin.to_string(),
        timestamp: None,
        categories: None,
        report_url: None,
        report_subject: None,
        culprit: Some(Culprit {
            code: Some(true),
            tool: Some(false),
            harness: Some(false),
        }),
        comment: Some(f.comment.clone()),
        misc: Some(misc),
    }
}

/// Upstream's incident id: `<origin>:sha1(json.dumps([object_id, issue_id, version]))`.
pub fn incident_id(origin: &str, object_id: &str, issue_id: &str, issue_version: u32) -> String {
    let hash = kernelci_logspec::signature(&json!([object_id, issue_id, issue_version]));
    format!("{origin}:{hash}")
}

fn incident_of(
    origin: &str,
    kind: Kind,
    object_id: &str,
    issue_id: &str,
    issue_version: u32,
) -> Incident {
    Incident {
        id: incident_id(origin, object_id, issue_id, issue_version),
        origin: origin.to_string(),
        issue_id: issue_id.to_string(),
        issue_version,
        timestamp: None,
        build_id: (kind == Kind::Build).then(|| object_id.to_string()),
        test_id: (kind == Kind::Test).then(|| object_id.to_string()),
        present: Some(true),
        comment: Some("test incident, automatically generated".into()),
        misc: None,
    }
}

// ---- SQL --------------------------------------------------------------------------------

/// `?` placeholders as the backend wants them.
fn sql(db: &KcidbDb, text: &str) -> String {
    match db {
        KcidbDb::Sqlite(_) => text.to_string(),
        KcidbDb::Postgres(_) => {
            let mut out = String::with_capacity(text.len() + 8);
            let mut n = 0;
            for ch in text.chars() {
                if ch == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(ch);
                }
            }
            out
        }
    }
}

macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            KcidbDb::Sqlite($pool) => $body,
            KcidbDb::Postgres($pool) => $body,
        }
    };
}

/// A build or test to triage.
#[derive(Debug, Clone)]
struct Candidate {
    kind: Kind,
    id: String,
    log_url: String,
    path: Option<String>,
}

async fn candidates(
    db: &KcidbDb,
    kind: Kind,
    config: &TriageConfig,
) -> Result<Vec<Candidate>, TriageError> {
    let (table, path) = match kind {
        Kind::Build => ("builds", "CAST(NULL AS TEXT)"),
        Kind::Test => ("tests", "o.path"),
    };
    // Optional filters, bound as parameters: origins, then the oldest `_timestamp`.
    let mut filters = String::new();
    let mut binds: Vec<String> = Vec::new();
    if !config.origins.is_empty() {
        let marks = vec!["?"; config.origins.len()].join(", ");
        filters.push_str(&format!(" AND o.origin IN ({marks})"));
        binds.extend(config.origins.iter().cloned());
    }
    if let Some(age) = config.max_age {
        let since =
            chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        // SQLite stores `_timestamp` as this sortable text; PostgreSQL as TIMESTAMPTZ.
        let since = since.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        filters.push_str(match db {
            KcidbDb::Sqlite(_) => " AND o._timestamp >= ?",
            KcidbDb::Postgres(_) => " AND o._timestamp >= CAST(? AS TIMESTAMPTZ)",
        });
        binds.push(since);
    }
    let text = sql(
        db,
        &format!(
            "SELECT o.id, o.log_url, {path} FROM {table} o \
             WHERE o.status IN ('FAIL', 'ERROR') AND o.log_url IS NOT NULL \
             AND o.log_url <> ''{filters} \
             AND NOT EXISTS (SELECT 1 FROM triage_state t WHERE t.kind = '{kind}' \
             AND t.id = o.id AND (t.done = 1 OR t.attempts >= {max})) \
             ORDER BY o._timestamp, o.id LIMIT {limit}",
            kind = kind.as_str(),
            max = i64::from(config.max_attempts),
            limit = config.limit,
        ),
    );
    let rows: Vec<(String, String, Option<String>)> = on_pool!(db, |pool| {
        let mut query = sqlx::query_as(AssertSqlSafe(text.clone()));
        for value in &binds {
            query = query.bind(value);
        }
        query.fetch_all(pool).await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, log_url, path)| Candidate {
            kind,
            id,
            log_url,
            path,
        })
        .collect())
}

async fn mark(
    db: &KcidbDb,
    kind: Kind,
    id: &str,
    done: bool,
    outcome: &str,
) -> Result<(), TriageError> {
    let text = sql(
        db,
        "INSERT INTO triage_state (kind, id, done, attempts, outcome, updated) \
         VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET done = excluded.done, \
         attempts = triage_state.attempts + 1, outcome = excluded.outcome, \
         updated = excluded.updated",
    );
    let now = chrono::Utc::now().to_rfc3339();
    on_pool!(db, |pool| sqlx::query(AssertSqlSafe(text.clone()))
        .bind(kind.as_str())
        .bind(id)
        .bind(i64::from(done))
        .bind(outcome)
        .bind(&now)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// How long an issue stays reusable by location (upstream: 25 days).
const REUSE_DAYS: i64 = 25;

/// The newest issue of `origin` whose `misc.logspec.error.signature_loc` is `key`, stored
/// within [`REUSE_DAYS`]: its id and version.
async fn recent_issue_by_loc(
    db: &KcidbDb,
    origin: &str,
    key: &str,
) -> Result<Option<(String, u32)>, TriageError> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(REUSE_DAYS);
    let row: Option<(String, i64)> = match db {
        KcidbDb::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT id, version FROM issues WHERE origin = ? \
                 AND json_extract(data, '$.misc.logspec.error.signature_loc') = ? \
                 AND _timestamp >= ? ORDER BY _timestamp DESC, version DESC LIMIT 1",
            )
            .bind(origin)
            .bind(key)
            .bind(cutoff.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            .fetch_optional(pool)
            .await?
        }
        KcidbDb::Postgres(pool) => {
            sqlx::query_as(
                "SELECT id, version FROM issues WHERE origin = $1 \
                 AND data->'misc'->'logspec'->'error'->>'signature_loc' = $2 \
                 AND _timestamp >= CAST($3 AS TIMESTAMPTZ) \
                 ORDER BY _timestamp DESC, version DESC LIMIT 1",
            )
            .bind(origin)
            .bind(key)
            .bind(cutoff.to_rfc3339())
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(row.map(|(id, v)| (id, u32::try_from(v).unwrap_or(0))))
}

// ---- the round --------------------------------------------------------------------------

/// Writes `sub` into the spool as `/submit` does (temp, fsync, rename, directory sync) and
/// wakes the ingester. Returns the submission id.
async fn file(state: &KcidbState, sub: &Submission) -> Result<String, TriageError> {
    let bytes = sub.to_json().into_bytes();
    // What we write must load (else it would end in failed/).
    kernelci_kcidb::load(&bytes).map_err(|e| TriageError::File(e.to_string()))?;
    let spool = state.spool().clone();
    let id = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Write;
        let id = spool::new_id()?;
        let temp = spool.temp_path(&id);
        let result = (|| {
            let mut f = std::fs::File::create(&temp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&temp, spool.ready_path(&id))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        if let Err(e) = spool::sync_dir(spool.dir()) {
            tracing::warn!("kcidb triage: cannot sync the spool directory: {e}");
        }
        Ok(id)
    })
    .await
    .map_err(|e| TriageError::File(e.to_string()))?
    .map_err(|e| TriageError::File(e.to_string()))?;
    state.inner.wake.notify_one();
    Ok(id)
}

/// A triage worker: the configuration and the log fetcher (whose cache lives across rounds).
#[derive(Debug, Clone)]
pub struct Triage {
    config: TriageConfig,
    fetcher: LogFetcher,
}

impl Triage {
    /// A worker with this configuration.
    pub fn new(config: TriageConfig) -> Result<Triage, TriageError> {
        if !crate::auth::valid_origin(&config.origin) {
            return Err(TriageError::Origin(config.origin));
        }
        let fetcher = LogFetcher::new(config.fetch);
        Ok(Triage { config, fetcher })
    }

    /// One round (see the module documentation).
    pub async fn run_once(&self, state: &KcidbState, db: &KcidbDb) -> Result<Report, TriageError> {
        let metrics = &state.inner.metrics.triage;
        bump(&metrics.runs, 1);
        let result = self.round(state, db).await;
        if result.is_err() {
            bump(&metrics.run_errors, 1);
        }
        result
    }

    async fn round(&self, state: &KcidbState, db: &KcidbDb) -> Result<Report, TriageError> {
        let config = &self.config;
        let metrics = &state.inner.metrics.triage;
        let origin = config.origin.as_str();
        let mut todo = candidates(db, Kind::Build, config).await?;
        todo.extend(candidates(db, Kind::Test, config).await?);
        let mut report = Report {
            candidates: todo.len(),
            dry_run: config.dry_run,
            ..Report::default()
        };
        bump(&metrics.candidates, todo.len());
        let mut issues: BTreeMap<String, Issue> = BTreeMap::new();
        let mut incidents: BTreeMap<String, Incident> = BTreeMap::new();
        let mut analysed: Vec<(Kind, String, String)> = Vec::new();
        let mut by_loc: HashMap<String, (String, u32)> = HashMap::new();
        for c in todo {
            let (log, hit) = match self.fetcher.fetch(&c.log_url).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("kcidb triage: {} {}: {e}", c.kind.as_str(), c.id);
                    report.fetch_failures += 1;
                    bump(&metrics.fetch_failures, 1);
                    if !config.dry_run {
                        mark(db, c.kind, &c.id, false, &format!("fetch: {e}")).await?;
                    }
                    continue;
                }
            };
            report.logs_fetched += 1;
            bump(&metrics.logs_fetched, 1);
            if hit {
                bump(&metrics.cache_hits, 1);
            }
            let parser = parser_for(c.kind, c.path.as_deref());
            let parsed = tokio::task::spawn_blocking(move || {
                kernelci_logspec::parse_reader(&log[..], parser, &Options::default())
            })
            .await
            .map_err(|e| TriageError::File(format!("parse task: {e}")))?;
            let parsed = match parsed {
                Ok(p) => p,
                Err(e) => {
                    // Reading from memory does not fail; keep going if it ever does.
                    tracing::warn!("kcidb triage: {} {}: {e}", c.kind.as_str(), c.id);
                    analysed.push((c.kind, c.id, format!("parse: {e}")));
                    continue;
                }
            };
            let found = findings(&parsed);
            report.errors_found += found.len();
            bump(&metrics.errors_found, found.len());
            for f in &found {
                let issue = issue_of(origin, parser, f);
                // Builds: an issue filed recently for the same source location (gcc and
                // clang wording of one error) is reused, as upstream does.
                let reused = match (c.kind, &f.location_key) {
                    (Kind::Build, Some(key)) => match by_loc.get(key) {
                        Some(known) => Some(known.clone()),
                        None => {
                            let found = recent_issue_by_loc(db, origin, key).await?;
                            if let Some(known) = &found {
                                by_loc.insert(key.clone(), known.clone());
                            }
                            found
                        }
                    },
                    _ => None,
                };
                let (issue_id, version) = match reused {
                    Some(known) => known,
                    None => {
                        if let (Kind::Build, Some(key)) = (c.kind, &f.location_key) {
                            by_loc.insert(key.clone(), (issue.id.clone(), issue.version));
                        }
                        let known = (issue.id.clone(), issue.version);
                        // Duplicate ids collapse, the last one wins (as upstream).
                        issues.insert(issue.id.clone(), issue);
                        known
                    }
                };
                let incident = incident_of(origin, c.kind, &c.id, &issue_id, version);
                tracing::info!(
                    "kcidb triage{}: {} {}: {} {issue_id}",
                    if config.dry_run { " (dry run)" } else { "" },
                    c.kind.as_str(),
                    c.id,
                    f.error_type,
                );
                incidents.insert(incident.id.clone(), incident);
            }
            analysed.push((c.kind, c.id, format!("{} error(s)", found.len())));
        }
        report.issues = issues.into_values().collect();
        report.incidents = incidents.into_values().collect();
        if config.dry_run {
            return Ok(report);
        }
        if !report.incidents.is_empty() {
            let mut sub = Submission::new();
            sub.issues = report.issues.clone();
            sub.incidents = report.incidents.clone();
            report.submission = Some(file(state, &sub).await?);
            bump(&metrics.submissions, 1);
            bump(&metrics.issues_filed, report.issues.len());
            bump(&metrics.incidents_filed, report.incidents.len());
        }
        for (kind, id, outcome) in &analysed {
            mark(db, *kind, id, true, outcome).await?;
        }
        Ok(report)
    }
}

/// One triage round with a fresh worker (no cache carried over).
pub async fn triage_once(
    state: &KcidbState,
    db: &KcidbDb,
    config: TriageConfig,
) -> Result<Report, TriageError> {
    Triage::new(config)?.run_once(state, db).await
}

/// Runs rounds forever, one every `config.interval` (the first after one interval).
pub fn spawn(
    state: KcidbState,
    db: KcidbDb,
    config: TriageConfig,
) -> Result<tokio::task::JoinHandle<()>, TriageError> {
    let triage = Triage::new(config)?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::time::sleep(triage.config.interval).await;
            match triage.run_once(&state, &db).await {
                Ok(r) if r.candidates > 0 => tracing::info!(
                    "kcidb triage: {} candidate(s), {} error(s), {} issue(s), {} incident(s), \
                     {} fetch failure(s)",
                    r.candidates,
                    r.errors_found,
                    r.issues.len(),
                    r.incidents.len(),
                    r.fetch_failures
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("kcidb triage: round failed: {e}"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_rule() {
        assert_eq!(parser_for(Kind::Build, None), Parser::Kbuild);
        assert_eq!(
            parser_for(Kind::Test, Some("baseline.login")),
            Parser::TestBaseline
        );
        assert_eq!(
            parser_for(Kind::Test, Some("baseline-nfs.dmesg.crit")),
            Parser::TestBaseline
        );
        assert_eq!(
            parser_for(Kind::Test, Some("kselftest.dt.x")),
            Parser::TestKselftest
        );
        assert_eq!(
            parser_for(Kind::Test, Some("boot")),
            Parser::GenericLinuxBoot
        );
        assert_eq!(parser_for(Kind::Test, None), Parser::GenericLinuxBoot);
    }

    #[test]
    fn ids() {
        let id = incident_id("logspec", "maestro:b1", "logspec:abc", 1);
        let expected = kernelci_logspec::signature(&json!(["maestro:b1", "logspec:abc", 1]));
        assert_eq!(id, format!("logspec:{expected}"));
        assert_eq!(id.len(), "logspec:".len() + 40);
    }
}
