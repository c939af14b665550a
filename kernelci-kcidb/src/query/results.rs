//! Builds and tests (boots included) with their build and checkout fields, selected by a
//! [`Scope`] and narrowed by [`Filter`]s.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::sql::{Bind, Sql, fetch_all};
use super::{
    BOOT_CONDITION, Filter, QueryError, ResultKind, checkouts_by_id, parse_object, status_of,
};
use crate::db::KcidbDb;
use crate::{Build, Checkout, Status, Test};

/// Which checkouts a commit stands for: every checkout of `commit_hash`, narrowed by the
/// optional origin, repository URL, branch and tree name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutSelector {
    /// `git_commit_hash`.
    pub commit_hash: String,
    /// The checkout origin.
    pub origin: Option<String>,
    /// `git_repository_url`.
    pub git_url: Option<String>,
    /// `git_repository_branch`.
    pub git_branch: Option<String>,
    /// `tree_name`.
    pub tree_name: Option<String>,
}

/// Which results to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// The results of these checkouts.
    Checkouts(Vec<String>),
    /// The tests of one build (for builds: that build).
    Build(String),
    /// These builds or tests by id.
    Ids(Vec<String>),
    /// The builds or tests with an incident of this issue version.
    Issue {
        /// Issue id.
        id: String,
        /// Issue version.
        version: u32,
    },
    /// The tests on a platform (its name or one of its compatibles) that started within
    /// the window; for builds, the builds of those tests.
    Hardware {
        /// Platform name or compatible string.
        name: String,
        /// Window start.
        since: DateTime<Utc>,
        /// Window end.
        until: DateTime<Utc>,
    },
}

/// The build fields a test row carries (the `builds` columns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildInfo {
    /// Build id.
    pub id: String,
    /// Build origin.
    pub origin: Option<String>,
    /// Its checkout.
    pub checkout_id: Option<String>,
    /// `architecture`.
    pub architecture: Option<String>,
    /// `config_name`.
    pub config_name: Option<String>,
    /// `compiler`.
    pub compiler: Option<String>,
    /// The build status.
    pub status: Option<Status>,
}

/// A build with its checkout (absent when the checkout was never submitted).
#[derive(Debug, Clone)]
pub struct BuildRow {
    /// The build (`timestamp` = `_timestamp`).
    pub build: Build,
    /// Its checkout.
    pub checkout: Option<Arc<Checkout>>,
}

/// A test with its build and checkout fields.
#[derive(Debug, Clone)]
pub struct TestRow {
    /// The test (`timestamp` = `_timestamp`).
    pub test: Test,
    /// Its build's fields (absent when the build was never submitted).
    pub build: Option<BuildInfo>,
    /// Its checkout.
    pub checkout: Option<Arc<Checkout>>,
}

impl TestRow {
    /// Whether it is a boot.
    pub fn is_boot(&self) -> bool {
        super::is_boot_path(self.test.path.as_deref())
    }

    /// The test's identity across commits (what the compare and the regressions pair):
    /// `path|config|architecture|platform`.
    pub fn identity(&self) -> String {
        let build = self.build.as_ref();
        format!(
            "{}|{}|{}|{}",
            self.test.path.as_deref().unwrap_or(""),
            build.and_then(|b| b.config_name.as_deref()).unwrap_or(""),
            build.and_then(|b| b.architecture.as_deref()).unwrap_or(""),
            self.platform().unwrap_or("")
        )
    }

    /// `environment.misc.platform`.
    pub fn platform(&self) -> Option<&str> {
        self.test
            .environment
            .as_ref()
            .and_then(|e| e.misc.as_ref())
            .and_then(|m| m.get("platform"))
            .and_then(|v| v.as_str())
    }
}

/// The checkouts a selector stands for, oldest first.
pub async fn checkouts(
    db: &KcidbDb,
    selector: &CheckoutSelector,
) -> Result<Vec<Arc<Checkout>>, QueryError> {
    let mut sql = Sql::new(db);
    let start = sql.time_col("start_time");
    sql.push(&format!(
        "SELECT id, {start} FROM checkouts WHERE git_commit_hash = "
    ))
    .text(&selector.commit_hash);
    for (col, value) in [
        ("origin", &selector.origin),
        ("git_repository_url", &selector.git_url),
        ("git_repository_branch", &selector.git_branch),
        ("tree_name", &selector.tree_name),
    ] {
        if let Some(v) = value {
            sql.push(&format!(" AND {col} = ")).text(v);
        }
    }
    let mut rows = fetch_all!(db, sql, (String, Option<String>));
    rows.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let by_id = checkouts_by_id(db, &ids).await?;
    Ok(ids.iter().filter_map(|id| by_id.get(id).cloned()).collect())
}

/// Appends the scope's condition (`builds`: for the builds query, else for tests).
fn push_scope(sql: &mut Sql, scope: &Scope, builds: bool) {
    match scope {
        Scope::Checkouts(ids) => {
            sql.push(" AND b.checkout_id IN ").list(ids);
        }
        Scope::Build(id) => {
            sql.push(if builds {
                " AND b.id = "
            } else {
                " AND t.build_id = "
            })
            .text(id);
        }
        Scope::Ids(ids) => {
            sql.push(if builds {
                " AND b.id IN "
            } else {
                " AND t.id IN "
            })
            .list(ids);
        }
        Scope::Issue { id, version } => {
            let (own, col) = if builds {
                ("b", "build_id")
            } else {
                ("t", "test_id")
            };
            sql.push(&format!(
                " AND {own}.id IN (SELECT i.{col} FROM incidents i WHERE i.issue_id = "
            ))
            .text(id)
            .push(" AND i.issue_version = ")
            .bind(Bind::Int(i64::from(*version)))
            .push(" AND (i.present IS NULL OR i.present))");
        }
        Scope::Hardware { name, since, until } => {
            if builds {
                sql.push(" AND b.id IN (SELECT t.build_id FROM tests t WHERE 1 = 1");
            }
            let platform = sql.json_field("t.environment_misc", "platform");
            sql.push(&format!(" AND ({platform} = "))
                .text(name)
                .push(" OR ");
            sql.list_contains("t.environment_compatible", name);
            sql.push(") AND t.start_time >= ")
                .time(since)
                .push(" AND t.start_time <= ")
                .time(until);
            if builds {
                sql.push(")");
            }
        }
    }
}

fn scope_is_empty(scope: &Scope) -> bool {
    matches!(scope, Scope::Checkouts(ids) | Scope::Ids(ids) if ids.is_empty())
}

/// The builds in `scope` that pass `filters`, by start time then id.
pub async fn builds(
    db: &KcidbDb,
    scope: &Scope,
    filters: &[Filter],
) -> Result<Vec<BuildRow>, QueryError> {
    if scope_is_empty(scope) {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(db);
    let ts = sql.time_col("b._timestamp");
    sql.push(&format!(
        "SELECT {}, {ts} FROM builds b LEFT JOIN checkouts c ON c.id = b.checkout_id \
         WHERE 1 = 1",
        sql.json_col("b.data")
    ));
    push_scope(&mut sql, scope, true);
    for f in filters {
        f.push_condition(&mut sql, ResultKind::Build);
    }
    let rows = fetch_all!(db, sql, (String, String));
    let mut builds = Vec::with_capacity(rows.len());
    for (data, ts) in rows {
        let mut b: Build = parse_object("builds", &data)?;
        b.timestamp = Some(ts);
        builds.push(b);
    }
    let ids: Vec<String> = builds.iter().map(|b| b.checkout_id.clone()).collect();
    let checkouts = checkouts_by_id(db, &ids).await?;
    let mut out: Vec<BuildRow> = builds
        .into_iter()
        .map(|build| BuildRow {
            checkout: checkouts.get(&build.checkout_id).cloned(),
            build,
        })
        .collect();
    out.sort_by(|a, b| (&a.build.start_time, &a.build.id).cmp(&(&b.build.start_time, &b.build.id)));
    Ok(out)
}

/// A test's build columns: id, origin, checkout id, architecture, config, compiler, status.
type BuildTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// [`BuildTuple`], then the stored test and its `_timestamp`.
type FullTuple = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

/// [`BuildTuple`] of a build that exists.
type BuildTuple0 = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The tests in `scope` (only boots or only other tests when `kind` says so; filters
/// apply for that kind, or as for tests when `kind` is `None`), by path then id.
pub async fn tests(
    db: &KcidbDb,
    scope: &Scope,
    kind: Option<ResultKind>,
    filters: &[Filter],
) -> Result<Vec<TestRow>, QueryError> {
    tests_in(db, scope, kind, filters, None, true).await
}

/// [`tests`] with only the fields a list shows: `id`, `origin`, `build_id`, `path`,
/// `status`, `start_time`, `duration`, `log_url`, `environment.compatible`,
/// `environment.misc` and `misc`, read from the columns (`start_time` from the stored
/// object, as submitted) instead of parsing each stored object; the other fields and
/// `timestamp` are `None`.
pub async fn tests_listed(
    db: &KcidbDb,
    scope: &Scope,
    kind: Option<ResultKind>,
    filters: &[Filter],
) -> Result<Vec<TestRow>, QueryError> {
    tests_in(db, scope, kind, filters, None, false).await
}

/// [`tests_listed`], only the `limit` rows from `offset` of that order (by path, then id; a
/// test without a path first), cut in SQL: a page of a large checkout reads only its rows.
pub async fn tests_page(
    db: &KcidbDb,
    scope: &Scope,
    kind: Option<ResultKind>,
    filters: &[Filter],
    offset: usize,
    limit: usize,
) -> Result<Vec<TestRow>, QueryError> {
    tests_in(db, scope, kind, filters, Some((offset, limit)), false).await
}

/// A test's list fields as read by [`tests_listed`]: `id`, `origin`, `build_id`, `path`,
/// `status`, `start_time` (as submitted), `duration`, `log_url`, `environment_compatible`
/// (JSON text), `environment_misc` (JSON text) and `misc` (JSON text).
type ListedTest = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A JSON column of test `id`, parsed.
fn column<T: serde::de::DeserializeOwned>(
    id: &str,
    text: Option<String>,
    what: &str,
) -> Result<Option<T>, QueryError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| QueryError::Stored {
            table: "tests",
            id: id.to_string(),
            reason: format!("{what}: {e}"),
        })
    })
    .transpose()
}

/// The list fields of a test as a [`Test`].
fn listed_test(row: ListedTest) -> Result<Test, QueryError> {
    let (id, origin, build_id, path, status, start_time, duration, log_url, compat, env, misc) =
        row;
    let compatible: Option<Vec<String>> = column(&id, compat, "environment_compatible")?;
    let env_misc: Option<crate::Misc> = column(&id, env, "environment_misc")?;
    let misc: Option<crate::Misc> = column(&id, misc, "misc")?;
    let environment = (compatible.is_some() || env_misc.is_some()).then_some(crate::Environment {
        comment: None,
        compatible,
        misc: env_misc,
    });
    Ok(Test {
        status: status.as_deref().and_then(|s| status_of(Some(s))),
        id,
        origin,
        build_id,
        path,
        start_time,
        duration,
        log_url,
        environment,
        misc,
        ..Test::default()
    })
}

async fn tests_in(
    db: &KcidbDb,
    scope: &Scope,
    kind: Option<ResultKind>,
    filters: &[Filter],
    window: Option<(usize, usize)>,
    full: bool,
) -> Result<Vec<TestRow>, QueryError> {
    if scope_is_empty(scope) {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(db);
    if full {
        let ts = sql.time_col("t._timestamp");
        sql.push(&format!(
            "SELECT b.id, b.origin, b.checkout_id, b.architecture, b.config_name, b.compiler, \
             b.status, {}, {ts}",
            sql.json_col("t.data")
        ));
    } else {
        // The build fields are read once per build below.
        sql.push(&format!(
            "SELECT t.id, t.origin, t.build_id, t.path, t.status, {}, t.duration, t.log_url, \
             {}, {}, {}",
            sql.json_field("t.data", "start_time"),
            sql.list_col("t.environment_compatible"),
            sql.json_col("t.environment_misc"),
            sql.json_col("t.misc"),
        ));
    }
    sql.push(
        " FROM tests t LEFT JOIN builds b ON b.id = t.build_id \
         LEFT JOIN checkouts c ON c.id = b.checkout_id WHERE 1 = 1",
    );
    match kind {
        Some(ResultKind::Boot) => {
            sql.push(&format!(" AND {BOOT_CONDITION}"));
        }
        Some(ResultKind::Test) => {
            sql.push(&format!(" AND (t.path IS NULL OR NOT {BOOT_CONDITION})"));
        }
        _ => {}
    }
    push_scope(&mut sql, scope, false);
    for f in filters {
        f.push_condition(&mut sql, kind.unwrap_or(ResultKind::Test));
    }
    if let Some((offset, limit)) = window {
        // The order of the sort below, in SQL: NULL paths first, then bytes.
        let (path, id) = (sql.bytes_order("t.path"), sql.bytes_order("t.id"));
        sql.push(&format!(
            " ORDER BY (CASE WHEN t.path IS NULL THEN 0 ELSE 1 END), {path}, {id} LIMIT "
        ))
        .bind(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)))
        .push(" OFFSET ")
        .bind(Bind::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
    }
    let build_info = |b: BuildTuple| {
        let (bid, origin, checkout_id, arch, config, compiler, status) = b;
        bid.map(|id| BuildInfo {
            id,
            origin,
            checkout_id,
            architecture: arch,
            config_name: config,
            compiler,
            status: status_of(status.as_deref()),
        })
    };
    let mut out = Vec::new();
    if full {
        for (b0, b1, b2, b3, b4, b5, b6, data, ts) in fetch_all!(db, sql, FullTuple) {
            let mut test: Test = parse_object("tests", &data)?;
            test.timestamp = Some(ts);
            out.push(TestRow {
                test,
                build: build_info((b0, b1, b2, b3, b4, b5, b6)),
                checkout: None,
            });
        }
    } else {
        let rows = fetch_all!(db, sql, ListedTest);
        let mut build_ids: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        build_ids.sort();
        build_ids.dedup();
        let mut builds: HashMap<String, BuildInfo> = HashMap::new();
        for chunk in build_ids.chunks(super::CHUNK) {
            let mut sql = Sql::new(db);
            sql.push(
                "SELECT id, origin, checkout_id, architecture, config_name, compiler, status \
                 FROM builds WHERE id IN ",
            )
            .list(chunk);
            for (id, b1, b2, b3, b4, b5, b6) in fetch_all!(db, sql, BuildTuple0) {
                if let Some(info) = build_info((Some(id.clone()), b1, b2, b3, b4, b5, b6)) {
                    builds.insert(id, info);
                }
            }
        }
        out.reserve(rows.len());
        for row in rows {
            let build = builds.get(&row.2).cloned();
            out.push(TestRow {
                test: listed_test(row)?,
                build,
                checkout: None,
            });
        }
    }
    let ids: Vec<String> = out
        .iter()
        .filter_map(|r| r.build.as_ref().and_then(|b| b.checkout_id.clone()))
        .collect();
    let checkouts = checkouts_by_id(db, &ids).await?;
    for row in &mut out {
        row.checkout = row
            .build
            .as_ref()
            .and_then(|b| b.checkout_id.as_ref())
            .and_then(|id| checkouts.get(id).cloned());
    }
    out.sort_by(|a, b| (&a.test.path, &a.test.id).cmp(&(&b.test.path, &b.test.id)));
    Ok(out)
}

/// One build by id, with its checkout.
pub async fn build(db: &KcidbDb, id: &str) -> Result<Option<BuildRow>, QueryError> {
    Ok(builds(db, &Scope::Ids(vec![id.to_string()]), &[])
        .await?
        .into_iter()
        .next())
}

/// One test (or boot) by id, with its build and checkout fields.
pub async fn test(db: &KcidbDb, id: &str) -> Result<Option<TestRow>, QueryError> {
    Ok(tests(db, &Scope::Ids(vec![id.to_string()]), None, &[])
        .await?
        .into_iter()
        .next())
}
