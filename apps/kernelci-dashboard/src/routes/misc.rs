//! `origins/` and `schema/` (a small OpenAPI document listing the routes).

use axum::extract::{RawQuery, State};
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query;
use serde_json::{Map, Value, json};

use super::ok;
use crate::error::ApiResult;
use crate::params::Params;

/// `GET origins/?interval_in_days=N` (default 7): checkout and test origins.
pub async fn origins(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let o = query::trees::origins(&db, p.since_days(7)?).await?;
    Ok(ok(
        json!({"checkout_origins": o.checkout_origins, "test_origins": o.test_origins}),
    ))
}

/// The routes: (method, path, summary).
pub const ROUTES: &[(&str, &str, &str)] = &[
    (
        "get",
        "/api/regressions/",
        "Stored regressions, newest change first: origin, state, tree_name, git_branch, \
         limit (ours)",
    ),
    (
        "get",
        "/api/regressions/{id}",
        "One stored regression (ours)",
    ),
    (
        "get",
        "/api/flaky/",
        "Tests and builds flaky now: origin, limit (ours)",
    ),
    (
        "get",
        "/api/health/",
        "Infrastructure failure rates per origin, lab and platform: interval_in_days, \
         threshold, origin (ours)",
    ),
    (
        "get",
        "/api/tree/",
        "Latest checkout per tree/branch with status counts",
    ),
    (
        "get",
        "/api/tree/{commit_hash}/summary",
        "Summary of a commit's results",
    ),
    (
        "get",
        "/api/tree/{commit_hash}/full",
        "Summary, builds, boots and tests",
    ),
    (
        "get",
        "/api/tree/{commit_hash}/builds",
        "Builds of a commit",
    ),
    ("get", "/api/tree/{commit_hash}/boots", "Boots of a commit"),
    ("get", "/api/tree/{commit_hash}/tests", "Tests of a commit"),
    (
        "get",
        "/api/tree/{commit_hash}/commits",
        "Commit history up to a commit",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}",
        "Latest checkout of a branch",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/commits",
        "Commit history of a branch",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/compare",
        "Compare two revisions",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/{commit_hash}/summary",
        "Summary",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/{commit_hash}/full",
        "Everything",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/{commit_hash}/builds",
        "Builds",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/{commit_hash}/boots",
        "Boots",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/{commit_hash}/tests",
        "Tests",
    ),
    (
        "get",
        "/api/tree/{tree_name}/{git_branch}/{commit_hash}/commits",
        "Commit history",
    ),
    (
        "get",
        "/api/tree-report/",
        "Tree report: summaries, regressions, issues",
    ),
    (
        "get",
        "/api/build/{build_id}",
        "A build with its checkout fields",
    ),
    ("get", "/api/build/{build_id}/tests", "The tests of a build"),
    (
        "get",
        "/api/build/{build_id}/issues",
        "The issues of a build",
    ),
    (
        "get",
        "/api/test/{test_id}",
        "A test with its build and checkout fields",
    ),
    ("get", "/api/test/{test_id}/issues", "The issues of a test"),
    ("get", "/api/issue/", "Issues in a time window"),
    ("post", "/api/issue/extras/", "First incidents of issues"),
    ("get", "/api/issue/{issue_id}", "An issue"),
    (
        "get",
        "/api/issue/{issue_id}/builds",
        "The builds of an issue",
    ),
    (
        "get",
        "/api/issue/{issue_id}/tests",
        "The tests of an issue",
    ),
    (
        "get",
        "/api/hardware/",
        "Platforms with tests in a time window",
    ),
    (
        "post",
        "/api/hardware/{name}/summary",
        "Summary of a platform's results",
    ),
    (
        "post",
        "/api/hardware/{name}/builds",
        "Builds tested on a platform",
    ),
    ("post", "/api/hardware/{name}/boots", "Boots on a platform"),
    ("post", "/api/hardware/{name}/tests", "Tests on a platform"),
    ("get", "/api/origins/", "Checkout and test origins"),
    ("get", "/api/schema/", "This document"),
];

/// `GET schema/`: an OpenAPI 3 document listing the routes.
pub async fn schema() -> ApiResult {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths
            .entry((*path).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(
                (*method).to_string(),
                json!({"summary": summary, "responses": {
                    "200": {"description": "JSON as the KernelCI dashboard API returns it"},
                    "400": {"description": "{\"error\": \"...\"}: a bad parameter"},
                    "404": {"description": "{\"error\": \"...\"}: unknown id"}}}),
            );
        }
    }
    Ok(ok(json!({
        "openapi": "3.0.3",
        "info": {"title": "kernelci-rs dashboard API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
    })))
}
