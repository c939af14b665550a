//! Issues: the listing, one issue, the issues linked to results, first incidents.
//!
//! Incidents with `present: false` (the issue is known to be absent) link nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::sql::{Bind, Sql, fetch_all};
use super::{CHUNK, QueryError, parse_object};
use crate::Issue;
use crate::db::KcidbDb;

/// The condition "incident `i` is present".
const PRESENT: &str = "(i.present IS NULL OR i.present)";

async fn read_issues(db: &KcidbDb, sql: Sql) -> Result<Vec<Issue>, QueryError> {
    let rows = fetch_all!(db, sql, (String, String));
    let mut out = Vec::with_capacity(rows.len());
    for (data, ts) in rows {
        let mut issue: Issue = parse_object("issues", &data)?;
        issue.timestamp = Some(ts);
        out.push(issue);
    }
    Ok(out)
}

fn select_issues(db: &KcidbDb) -> Sql {
    let mut sql = Sql::new(db);
    let ts = sql.time_col("_timestamp");
    sql.push(&format!(
        "SELECT {}, {ts} FROM issues WHERE 1 = 1",
        sql.json_col("data")
    ));
    sql
}

/// The latest version of each issue whose `_timestamp` is within `[since, until]`
/// (of `origin` when given), newest first.
pub async fn list(
    db: &KcidbDb,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    origin: Option<&str>,
) -> Result<Vec<Issue>, QueryError> {
    let mut sql = select_issues(db);
    sql.push(" AND _timestamp >= ")
        .time(&since)
        .push(" AND _timestamp <= ")
        .time(&until);
    if let Some(o) = origin {
        sql.push(" AND origin = ").text(o);
    }
    let mut latest: HashMap<String, Issue> = HashMap::new();
    for issue in read_issues(db, sql).await? {
        if latest
            .get(&issue.id)
            .is_none_or(|old| old.version < issue.version)
        {
            latest.insert(issue.id.clone(), issue);
        }
    }
    let mut out: Vec<Issue> = latest.into_values().collect();
    out.sort_by(|a, b| (&b.timestamp, &b.id).cmp(&(&a.timestamp, &a.id)));
    Ok(out)
}

/// An issue by id: the given version, or the highest.
pub async fn get(
    db: &KcidbDb,
    id: &str,
    version: Option<u32>,
) -> Result<Option<Issue>, QueryError> {
    let mut sql = select_issues(db);
    sql.push(" AND id = ").text(id);
    if let Some(v) = version {
        sql.push(" AND version = ").bind(Bind::Int(i64::from(v)));
    }
    Ok(read_issues(db, sql)
        .await?
        .into_iter()
        .max_by_key(|i| i.version))
}

/// An incident linking a build or test to an issue version, with the issue's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueLink {
    /// The build or test id.
    pub result_id: String,
    /// The issue id.
    pub issue_id: String,
    /// The issue version.
    pub issue_version: u32,
    /// The issue's comment (absent when the issue was not submitted).
    pub comment: Option<String>,
    /// The issue's report URL.
    pub report_url: Option<String>,
}

/// The present incidents of these builds (`builds`) or tests, with their issues, sorted.
pub async fn links(
    db: &KcidbDb,
    builds: bool,
    result_ids: &[String],
) -> Result<Vec<IssueLink>, QueryError> {
    let col = if builds { "build_id" } else { "test_id" };
    let mut out = Vec::new();
    for chunk in result_ids.chunks(CHUNK) {
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "SELECT i.{col}, i.issue_id, i.issue_version, s.comment, s.report_url \
             FROM incidents i LEFT JOIN issues s ON s.id = i.issue_id \
             AND s.version = i.issue_version WHERE {PRESENT} AND i.{col} IN "
        ))
        .list(chunk);
        type Row = (String, String, i64, Option<String>, Option<String>);
        for (result_id, issue_id, version, comment, report_url) in fetch_all!(db, sql, Row) {
            out.push(IssueLink {
                result_id,
                issue_id,
                issue_version: u32::try_from(version).unwrap_or(0),
                comment,
                report_url,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.issue_id, a.issue_version, &a.result_id).cmp(&(
            &b.issue_id,
            b.issue_version,
            &b.result_id,
        ))
    });
    out.dedup();
    Ok(out)
}

/// Where an issue was first seen: the earliest checkout among its incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstIncident {
    /// The issue version of that incident.
    pub issue_version: u32,
    /// The checkout start time (RFC 3339, UTC).
    pub first_seen: Option<String>,
    /// `git_commit_hash`.
    pub git_commit_hash: Option<String>,
    /// `git_repository_url`.
    pub git_repository_url: Option<String>,
    /// `git_repository_branch`.
    pub git_repository_branch: Option<String>,
    /// `git_commit_name`.
    pub git_commit_name: Option<String>,
    /// `tree_name`.
    pub tree_name: Option<String>,
}

/// The first incident of each of these issues (issues without incidents are absent).
pub async fn first_incidents(
    db: &KcidbDb,
    issue_ids: &[String],
) -> Result<HashMap<String, FirstIncident>, QueryError> {
    let mut out: HashMap<String, FirstIncident> = HashMap::new();
    for chunk in issue_ids.chunks(CHUNK) {
        let mut sql = Sql::new(db);
        let start = sql.time_col("c.start_time");
        sql.push(&format!(
            "SELECT i.issue_id, i.issue_version, {start}, c.git_commit_hash, \
             c.git_repository_url, c.git_repository_branch, c.git_commit_name, c.tree_name \
             FROM incidents i LEFT JOIN tests t ON t.id = i.test_id \
             JOIN builds b ON b.id = COALESCE(i.build_id, t.build_id) \
             JOIN checkouts c ON c.id = b.checkout_id WHERE {PRESENT} AND i.issue_id IN "
        ))
        .list(chunk);
        type Row = (
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        for (id, version, first_seen, hash, url, branch, name, tree) in fetch_all!(db, sql, Row) {
            let candidate = FirstIncident {
                issue_version: u32::try_from(version).unwrap_or(0),
                first_seen,
                git_commit_hash: hash,
                git_repository_url: url,
                git_repository_branch: branch,
                git_commit_name: name,
                tree_name: tree,
            };
            let earlier = out.get(&id).is_none_or(|old| {
                (&candidate.first_seen, &candidate.git_commit_hash)
                    < (&old.first_seen, &old.git_commit_hash)
            });
            if earlier {
                out.insert(id, candidate);
            }
        }
    }
    Ok(out)
}
