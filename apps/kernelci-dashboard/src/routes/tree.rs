//! `tree/`: the tree listing, a checkout's summary, builds, boots, tests and commit
//! history (commit-keyed `tree/{commit}/...` and `tree/{tree_name}/{branch}/{commit}/...`),
//! a branch's latest checkout and the A/B compare.

use axum::extract::{RawQuery, State};
use axum::http::Uri;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{
    self, BranchSelector, CheckoutSelector, Filter, ResultKind, Scope, StatusCounts,
};
use serde_json::{Value, json};

use super::{ok, ok_list, ok_rows, segments};
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, paginate};
use crate::shapes::{ListedTest, build_item, checkout, counts_lower, counts_upper, test_item};
use crate::summary;

/// Commits in a history reply.
const HISTORY_LENGTH: usize = 10;

/// `GET tree/`: the latest checkout of each tree/branch of `origin` within
/// `interval_in_days` (default 7), with build (`PASS`...) and boot/test (`pass`...) counts;
/// paged by `limit`/`offset` or `page_size`/`cursor` (the checkout `id`).
pub async fn listing(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let since = p.since_days(7)?;
    let heads = query::trees::tree_heads(&db, p.origin(), since).await?;
    let list: Vec<Value> = heads
        .iter()
        .map(|h| {
            let mut v = checkout(&h.checkout);
            if let Value::Object(m) = &mut v {
                m.insert("build_status".into(), counts_upper(&h.builds));
                m.insert("boot_status".into(), counts_lower(&h.boots));
                m.insert("test_status".into(), counts_lower(&h.tests));
            }
            v
        })
        .collect();
    ok_list(list, &p, Value::Array)
}

/// What a `tree/...` path asks for.
enum Detail {
    Summary,
    Full,
    Builds,
    Boots,
    Tests,
    Commits,
}

impl Detail {
    fn from_name(s: &str) -> Option<Detail> {
        Some(match s {
            "summary" => Detail::Summary,
            "full" => Detail::Full,
            "builds" => Detail::Builds,
            "boots" => Detail::Boots,
            "tests" => Detail::Tests,
            "commits" => Detail::Commits,
            _ => return None,
        })
    }
}

/// `GET tree/{...}`: dispatches on the path's segments.
pub async fn dispatch(State(db): State<KcidbDb>, uri: Uri, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let segs = segments(uri.path(), "/api/tree/", false);
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    match seg.as_slice() {
        [] => listing(State(db), RawQuery(q)).await,
        [commit, what] if Detail::from_name(what).is_some() => {
            let selector = CheckoutSelector {
                commit_hash: (*commit).to_string(),
                origin: Some(p.origin().to_string()),
                git_url: p.get("git_url").map(String::from),
                git_branch: p.get("git_branch").map(String::from),
                tree_name: None,
            };
            let what = Detail::from_name(what).ok_or_else(unknown)?;
            details(&db, &p, selector, what).await
        }
        [tree, branch] => latest(&db, &p, tree, branch).await,
        [tree, branch, "compare"] => compare(&db, &p, tree, branch).await,
        [tree, branch, "commits"] => {
            let branch = BranchSelector {
                origin: p.origin().to_string(),
                tree_name: Some((*tree).to_string()),
                git_url: p.get("git_url").map(String::from),
                git_branch: Some((*branch).to_string()),
            };
            history(&db, &p, &branch, None).await
        }
        [tree, branch, commit, what] => {
            let what = Detail::from_name(what).ok_or_else(unknown)?;
            let selector = CheckoutSelector {
                commit_hash: (*commit).to_string(),
                origin: Some(p.origin().to_string()),
                git_url: p.get("git_url").map(String::from),
                git_branch: Some((*branch).to_string()),
                tree_name: Some((*tree).to_string()),
            };
            details(&db, &p, selector, what).await
        }
        _ => Err(unknown()),
    }
}

fn unknown() -> ApiError {
    ApiError::NotFound("unknown endpoint".into())
}

fn no_results() -> ApiError {
    ApiError::NotFound("No results available for this tree/branch/commit".into())
}

/// The builds, boots and tests of a scope, read once.
pub(crate) struct Results {
    pub(crate) builds: Vec<query::BuildRow>,
    pub(crate) boots: Vec<query::TestRow>,
    pub(crate) tests: Vec<query::TestRow>,
}

async fn read_results(
    db: &KcidbDb,
    scope: &Scope,
    filters: &[Filter],
) -> Result<Results, ApiError> {
    Ok(Results {
        builds: query::results::builds(db, scope, filters).await?,
        boots: query::results::tests_listed(db, scope, Some(ResultKind::Boot), filters).await?,
        tests: query::results::tests_listed(db, scope, Some(ResultKind::Test), filters).await?,
    })
}

/// The `summary`, `common` and `filters` members of a summary reply.
pub(crate) async fn summary_of(
    db: &KcidbDb,
    r: &Results,
    tree_url: Option<String>,
    tags: Vec<String>,
) -> Result<Value, ApiError> {
    let build_ids: Vec<String> = r.builds.iter().map(|b| b.build.id.clone()).collect();
    let boot_ids: Vec<String> = r.boots.iter().map(|t| t.test.id.clone()).collect();
    let test_ids: Vec<String> = r.tests.iter().map(|t| t.test.id.clone()).collect();
    let build_links = query::issues::links(db, true, &build_ids).await?;
    let boot_links = query::issues::links(db, false, &boot_ids).await?;
    let test_links = query::issues::links(db, false, &test_ids).await?;
    let (builds, build_filters) = summary::builds(&r.builds, &build_links);
    let (boots, boot_filters) = summary::tests(&r.boots, &boot_links);
    let (tests, test_filters) = summary::tests(&r.tests, &test_links);
    let mut hardware: Vec<String> = r
        .boots
        .iter()
        .chain(&r.tests)
        .filter_map(|t| t.platform().map(String::from))
        .collect();
    hardware.sort();
    hardware.dedup();
    Ok(json!({
        "common": {"hardware": hardware, "tree_url": tree_url, "git_commit_tags": tags},
        "summary": {"builds": builds, "boots": boots, "tests": tests},
        "filters": {
            "all": summary::global_filters(&r.builds),
            "builds": build_filters,
            "boots": boot_filters,
            "tests": test_filters,
        },
    }))
}

async fn details(db: &KcidbDb, p: &Params, selector: CheckoutSelector, what: Detail) -> ApiResult {
    let filters = p.filters()?;
    let checkouts = query::results::checkouts(db, &selector).await?;
    if checkouts.is_empty() {
        return Err(no_results());
    }
    let scope = Scope::Checkouts(checkouts.iter().map(|c| c.id.clone()).collect());
    let tree_url = checkouts.iter().find_map(|c| c.git_repository_url.clone());
    let mut tags: Vec<String> = checkouts
        .iter()
        .flat_map(|c| c.git_commit_tags.clone().unwrap_or_default())
        .collect();
    tags.dedup();
    match what {
        Detail::Builds => {
            let rows = query::results::builds(db, &scope, &filters).await?;
            let list: Vec<Value> = rows.iter().map(build_item).collect();
            ok_list(list, p, |l| json!({ "builds": l }))
        }
        Detail::Boots | Detail::Tests => {
            let (kind, key) = match what {
                Detail::Boots => (ResultKind::Boot, "boots"),
                _ => (ResultKind::Test, "tests"),
            };
            let rows = query::results::tests_listed(db, &scope, Some(kind), &filters).await?;
            let rows: Vec<ListedTest> = rows.into_iter().map(ListedTest).collect();
            ok_rows(rows, p, key, |r| &r.0.test.id)
        }
        Detail::Summary => {
            let r = read_results(db, &scope, &filters).await?;
            Ok(ok(summary_of(db, &r, tree_url, tags).await?))
        }
        Detail::Full => {
            let r = read_results(db, &scope, &filters).await?;
            let mut v = summary_of(db, &r, tree_url, tags).await?;
            if let Value::Object(m) = &mut v {
                m.insert("builds".into(), r.builds.iter().map(build_item).collect());
                m.insert("boots".into(), r.boots.iter().map(test_item).collect());
                m.insert("tests".into(), r.tests.iter().map(test_item).collect());
            }
            Ok(ok(v))
        }
        Detail::Commits => {
            let first = &checkouts[0];
            let branch = BranchSelector {
                origin: first.origin.clone(),
                tree_name: selector.tree_name.clone(),
                git_url: selector
                    .git_url
                    .clone()
                    .or_else(|| first.git_repository_url.clone()),
                git_branch: selector
                    .git_branch
                    .clone()
                    .or_else(|| first.git_repository_branch.clone()),
            };
            history(db, p, &branch, Some(&selector.commit_hash)).await
        }
    }
}

/// A branch's commits with build (`PASS`...) and boot/test (`pass`...) counts.
async fn history(
    db: &KcidbDb,
    p: &Params,
    branch: &BranchSelector,
    up_to: Option<&str>,
) -> ApiResult {
    let list = query::trees::commit_history(db, branch, up_to, HISTORY_LENGTH).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|e| {
            json!({
                "git_commit_hash": e.git_commit_hash,
                "git_commit_name": e.git_commit_name,
                "git_commit_tags": e.git_commit_tags,
                "earliest_start_time": e.earliest_start_time,
                "builds": counts_upper(&e.counts.builds),
                "boots": counts_lower(&e.counts.boots),
                "tests": counts_lower(&e.counts.tests),
            })
        })
        .collect();
    Ok(ok(Value::Array(paginate(out, p.page()?))))
}

/// `GET tree/{tree_name}/{branch}`: the branch's latest checkout (or `commit_hash`'s).
async fn latest(db: &KcidbDb, p: &Params, tree: &str, branch: &str) -> ApiResult {
    let selector = BranchSelector {
        origin: p.origin().to_string(),
        tree_name: Some(tree.to_string()),
        git_url: None,
        git_branch: Some(branch.to_string()),
    };
    let list = query::trees::commit_history(db, &selector, p.get("commit_hash"), 1).await?;
    let Some(head) = list.first() else {
        return Err(ApiError::NotFound("Tree checkout not found".into()));
    };
    let checkouts = query::checkouts_by_id(db, &head.checkout_ids).await?;
    let url = checkouts
        .values()
        .find_map(|c| c.git_repository_url.clone());
    let api = format!("/api/tree/{tree}/{branch}/{}", head.git_commit_hash);
    Ok(ok(json!({
        "git_repository_url": url,
        "git_commit_hash": head.git_commit_hash,
        "git_commit_name": head.git_commit_name,
        "origin": selector.origin,
        "tree_name": tree,
        "git_repository_branch": branch,
        "api_url": api,
        "old_api_url": format!("/api/tree/{}", head.git_commit_hash),
    })))
}

fn triple(c: &StatusCounts) -> Value {
    json!({"pass": c.pass, "fail": c.fail, "inconclusive": c.inconclusive()})
}

/// A result's pairing key and status, for the compare.
type Keyed = Vec<(String, Option<kernelci_kcidb::Status>, String)>;

fn keyed_builds(rows: &[query::BuildRow]) -> Keyed {
    rows.iter()
        .map(|r| {
            let b = &r.build;
            let key = format!(
                "{}|{}|{}",
                b.config_name.as_deref().unwrap_or(""),
                b.architecture.as_deref().unwrap_or(""),
                b.compiler.as_deref().unwrap_or("")
            );
            (key, b.status, b.id.clone())
        })
        .collect()
}

fn keyed_tests(rows: &[query::TestRow]) -> Keyed {
    rows.iter()
        .map(|r| (r.identity(), r.test.status, r.test.id.clone()))
        .collect()
}

/// Compares two sides: counts, and the changed pairs with their change type.
fn compare_side(a: &Keyed, b: &Keyed) -> Value {
    use kernelci_kcidb::Status::{Fail, Pass};
    let mut ca = StatusCounts::default();
    let mut cb = StatusCounts::default();
    a.iter().for_each(|x| ca.add(x.1, 1));
    b.iter().for_each(|x| cb.add(x.1, 1));
    let by_key_a: std::collections::BTreeMap<
        &str,
        &(String, Option<kernelci_kcidb::Status>, String),
    > = a.iter().map(|x| (x.0.as_str(), x)).collect();
    let by_key_b: std::collections::BTreeMap<
        &str,
        &(String, Option<kernelci_kcidb::Status>, String),
    > = b.iter().map(|x| (x.0.as_str(), x)).collect();
    let mut changes = Vec::new();
    let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    let keys: std::collections::BTreeSet<&str> =
        by_key_a.keys().chain(by_key_b.keys()).copied().collect();
    for key in keys {
        let sa = by_key_a.get(key).map(|x| x.1);
        let sb = by_key_b.get(key).map(|x| x.1);
        let change = match (sa, sb) {
            (None, Some(_)) => "appeared",
            (Some(_), None) => "disappeared",
            (Some(Some(Pass)), Some(s)) if s != Some(Pass) => "regression",
            (Some(Some(Fail)), Some(Some(Pass))) => "fixed",
            (Some(Some(Fail)), Some(Some(Fail))) => "stillFailing",
            (Some(x), Some(Some(Fail))) if x != Some(Fail) => "newFailure",
            (Some(x), Some(Some(Pass))) if x != Some(Pass) => "newPass",
            _ => continue,
        };
        *counts.entry(change).or_default() += 1;
        changes.push(json!({
            "key": key,
            "status_a": sa.flatten().map(crate::shapes::status_name),
            "status_b": sb.flatten().map(crate::shapes::status_name),
            "id_a": by_key_a.get(key).map(|x| x.2.clone()),
            "id_b": by_key_b.get(key).map(|x| x.2.clone()),
            "change": change,
        }));
    }
    json!({"sideA": triple(&ca), "sideB": triple(&cb), "changes": counts, "rows": changes})
}

/// `GET tree/{tree_name}/{branch}/compare?hash_a=&hash_b=`: both revisions' counts and
/// what changed (builds paired by config/arch/compiler, boots and tests by
/// path/config/arch/platform).
async fn compare(db: &KcidbDb, p: &Params, tree: &str, branch: &str) -> ApiResult {
    Ok(ok(compare_json(db, p, tree, branch).await?))
}

/// The compare document (also rendered by the compare page).
pub(crate) async fn compare_json(
    db: &KcidbDb,
    p: &Params,
    tree: &str,
    branch: &str,
) -> Result<Value, ApiError> {
    let filters = p.filters()?;
    let mut sides = Vec::new();
    for name in ["hash_a", "hash_b"] {
        let hash = p
            .get(name)
            .ok_or_else(|| ApiError::BadRequest(format!("{name}: required")))?;
        let selector = CheckoutSelector {
            commit_hash: hash.to_string(),
            origin: Some(p.origin().to_string()),
            git_url: p.get("git_url").map(String::from),
            git_branch: Some(branch.to_string()),
            tree_name: Some(tree.to_string()),
        };
        let checkouts = query::results::checkouts(db, &selector).await?;
        if checkouts.is_empty() {
            return Err(ApiError::NotFound(format!("{name}: no checkout of {hash}")));
        }
        let scope = Scope::Checkouts(checkouts.iter().map(|c| c.id.clone()).collect());
        sides.push(read_results(db, &scope, &filters).await?);
    }
    let (a, b) = (&sides[0], &sides[1]);
    Ok(json!({
        "hash_a": p.get("hash_a"),
        "hash_b": p.get("hash_b"),
        "builds": compare_side(&keyed_builds(&a.builds), &keyed_builds(&b.builds)),
        "boots": compare_side(&keyed_tests(&a.boots), &keyed_tests(&b.boots)),
        "tests": compare_side(&keyed_tests(&a.tests), &keyed_tests(&b.tests)),
    }))
}
