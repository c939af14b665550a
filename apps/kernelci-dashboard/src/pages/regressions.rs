//! `/regressions`: every test (boots included) that passed on the previous commit of its
//! tree/branch and fails on the latest one, with its status over the branch's recent
//! commits. Tests are the same test when path, config, architecture and platform match.
//! Computed on request from the stored results (issue 11 makes regressions stored objects
//! with a lifecycle).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Html;
use kernelci_kcidb::Status;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::results::{self, Scope};
use kernelci_kcidb::query::trees::{self, BranchSelector};

use super::PageResult;
use super::html::{enc, esc, link, page, status_pill, table};
use crate::params::Params;

/// Commits of each branch looked at (newest first).
const DEPTH: usize = 6;

/// One regression: where, which test, and (status, test id) per commit, oldest first.
pub struct Regression {
    /// Tree name.
    pub tree: String,
    /// Branch.
    pub branch: String,
    /// `path|config|arch|platform`.
    pub key: String,
    /// Per commit, oldest first: the test's status and id there, if it ran.
    pub history: Vec<Option<(Option<Status>, String)>>,
}

/// The regressions of `origin`'s branches with a checkout since `since`.
pub async fn compute(
    db: &KcidbDb,
    origin: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Regression>, kernelci_kcidb::query::QueryError> {
    let heads = trees::tree_heads(db, origin, since).await?;
    let mut found: Vec<Regression> = Vec::new();
    for head in heads {
        let c = &head.checkout;
        let selector = BranchSelector {
            origin: origin.to_string(),
            tree_name: c.tree_name.clone(),
            git_url: c.git_repository_url.clone(),
            git_branch: c.git_repository_branch.clone(),
        };
        let history = trees::commit_history(db, &selector, None, DEPTH).await?;
        if history.len() < 2 {
            continue;
        }
        // Oldest first: per commit, key -> (status, id).
        let mut per_commit: Vec<BTreeMap<String, (Option<Status>, String)>> = Vec::new();
        for entry in history.iter().rev() {
            let rows = results::tests(db, &Scope::Checkouts(entry.checkout_ids.clone()), None, &[])
                .await?;
            per_commit.push(
                rows.iter()
                    .map(|t| (t.identity(), (t.test.status, t.test.id.clone())))
                    .collect(),
            );
        }
        let n = per_commit.len();
        let (latest, previous) = (&per_commit[n - 1], &per_commit[n - 2]);
        for (k, (status, _)) in latest {
            let was = previous.get(k).map(|p| p.0);
            if *status == Some(Status::Fail) && was == Some(Some(Status::Pass)) {
                found.push(Regression {
                    tree: c.tree_name.clone().unwrap_or_default(),
                    branch: c.git_repository_branch.clone().unwrap_or_default(),
                    key: k.clone(),
                    history: per_commit.iter().map(|m| m.get(k).cloned()).collect(),
                });
            }
        }
    }
    Ok(found)
}

/// The JSON of [`compute`] (`GET /api/regressions/`).
pub fn to_json(list: &[Regression]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = list
        .iter()
        .map(|r| {
            let mut parts = r.key.split('|');
            let mut next = || parts.next().unwrap_or("").to_string();
            let (path, config, arch, platform) = (next(), next(), next(), next());
            let history: Vec<serde_json::Value> = r
                .history
                .iter()
                .map(|h| match h {
                    Some((status, id)) => serde_json::json!({
                        "status": status.map_or("NULL", Status::as_str), "test_id": id}),
                    None => serde_json::Value::Null,
                })
                .collect();
            serde_json::json!({"tree_name": r.tree, "git_repository_branch": r.branch,
                "path": path, "config_name": config, "architecture": arch,
                "platform": platform, "history": history})
        })
        .collect();
    serde_json::Value::Array(items)
}

/// Renders the page.
pub async fn regressions(State(db): State<KcidbDb>, RawQuery(raw): RawQuery) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let origin = params.origin().to_string();
    let days = params.int("interval_in_days", 1, 36_500)?.unwrap_or(30);
    let since = params.since_days(30)?;
    let found = compute(&db, &origin, since).await?;
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|r| {
            let mut parts = r.key.split('|');
            let path = parts.next().unwrap_or("");
            let (config, arch, platform) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let latest_id = r
                .history
                .last()
                .and_then(|h| h.as_ref())
                .map(|h| h.1.clone())
                .unwrap_or_default();
            let over_time: String = r
                .history
                .iter()
                .map(|h| match h {
                    Some((status, id)) => {
                        format!("<a href=\"/test/{}\">{}</a>", enc(id), status_pill(*status))
                    }
                    None => "<span class=\"pill\">–</span>".into(),
                })
                .collect();
            vec![
                esc(&format!("{} {}", r.tree, r.branch)),
                link(&format!("/test/{}", enc(&latest_id)), path),
                esc(platform),
                esc(&format!("{config} {arch}")),
                over_time,
            ]
        })
        .collect();
    let body = format!(
        "<p class=\"muted\">Tests that passed on the previous commit of their branch and fail \
         on the latest (branches with a checkout in the last {days} days); statuses over the \
         last {DEPTH} commits, oldest first.</p>{}",
        table(
            &["Tree", "Test", "Platform", "Config", "Status over time"],
            &rows
        )
    );
    let kci = format!("kci regressions --origin {origin} --days {days}");
    Ok(Html(page("Regressions", "/regressions", &body, Some(&kci))))
}
