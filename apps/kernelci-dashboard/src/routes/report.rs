//! `GET tree-report/`: a branch's latest checkout within an age window, its status
//! summaries, the tests whose recent history looks like a regression, a fix or
//! instability, and the issues of its builds.
//!
//! History of a test = its results, newest first, on the last `group_size` commits of the
//! branch, keyed by platform, config, `arch/compiler` and path. Classification (PASS and
//! FAIL only; other statuses make a history unstable only when both occur): FAIL...PASS...
//! (newest first) is a possible regression, PASS...FAIL... a fixed regression, any other
//! mix of PASS and FAIL unstable.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use chrono::Utc;
use kernelci_kcidb::Status;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{self, BranchSelector, Scope};
use serde_json::{Map, Value, json};

use super::ok;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::{counts_suffixed, counts_upper, status};

/// SQL `LIKE` matching (`%` any run, `_` one character), case-sensitive.
pub fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer wildcard matching with backtracking to the last `%`.
    let (mut i, mut j, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while j < t.len() {
        if i < p.len() && (p[i] == '_' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '%' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '%' {
        i += 1;
    }
    i == p.len()
}

/// `regression`, `fixed`, `unstable` or `None` for a newest-first history.
fn classify(history: &[Option<Status>]) -> Option<&'static str> {
    let pf: Vec<Status> = history
        .iter()
        .flatten()
        .copied()
        .filter(|s| matches!(s, Status::Pass | Status::Fail))
        .collect();
    let has = |s: Status| pf.contains(&s);
    if history.len() < 2 || !(has(Status::Pass) && has(Status::Fail)) {
        return None;
    }
    let changes = history.windows(2).filter(|w| w[0] != w[1]).count();
    match (
        history.first().copied().flatten(),
        history.last().copied().flatten(),
        changes,
    ) {
        (Some(Status::Fail), Some(Status::Pass), 1) => Some("regression"),
        (Some(Status::Pass), Some(Status::Fail), 1) => Some("fixed"),
        _ => Some("unstable"),
    }
}

/// `GET tree-report/?git_url=&git_branch=&origin=&path=...&group_size=&min_age_in_hours=
/// &max_age_in_hours=`.
pub async fn report(
    State(db): State<KcidbDb>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let git_url = p
        .get("git_url")
        .ok_or_else(|| ApiError::BadRequest("git_url: required".into()))?;
    let git_branch = p
        .get("git_branch")
        .ok_or_else(|| ApiError::BadRequest("git_branch: required".into()))?;
    let group_size = p.int("group_size", 2, 100)?.unwrap_or(3);
    let min_age = p.int("min_age_in_hours", 0, 720)?.unwrap_or(0);
    let max_age = p.int("max_age_in_hours", 1, 720)?.unwrap_or(24);
    let mut paths = p.all("path");
    paths.retain(|s| !s.is_empty());
    if paths.is_empty() {
        paths.push("%".into());
    }
    let branch = BranchSelector {
        origin: p.origin().to_string(),
        tree_name: None,
        git_url: Some(git_url.to_string()),
        git_branch: Some(git_branch.to_string()),
    };
    let history = query::trees::commit_history(&db, &branch, None, usize::MAX).await?;
    let now = Utc::now();
    let fmt = |h: i64| {
        (now - chrono::Duration::hours(h))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let (oldest, newest) = (fmt(max_age), fmt(min_age));
    let Some(pos) = history.iter().position(|e| {
        e.earliest_start_time
            .as_deref()
            .is_some_and(|t| t >= oldest.as_str() && t <= newest.as_str())
    }) else {
        return Err(ApiError::NotFound(
            "Tree checkout not found in the given age window".into(),
        ));
    };
    let commits = &history[pos..history.len().min(pos + group_size as usize)];
    let head = &commits[0];
    // Results of each commit, newest first.
    let mut histories: BTreeMap<(String, String, String, String), Vec<Value>> = BTreeMap::new();
    let mut statuses: BTreeMap<(String, String, String, String), Vec<Option<Status>>> =
        BTreeMap::new();
    for (n, commit) in commits.iter().enumerate() {
        let rows = query::results::tests(
            &db,
            &Scope::Checkouts(commit.checkout_ids.clone()),
            None,
            &[],
        )
        .await?;
        for r in rows {
            let path = r.test.path.clone().unwrap_or_default();
            if !paths.iter().any(|pat| like(pat, &path)) {
                continue;
            }
            let b = r.build.clone().unwrap_or_default();
            let key = (
                r.platform().unwrap_or("unknown").to_string(),
                b.config_name.unwrap_or_default(),
                format!(
                    "{}/{}",
                    b.architecture.unwrap_or_default(),
                    b.compiler.unwrap_or_default()
                ),
                path,
            );
            if n > 0 && !histories.contains_key(&key) {
                continue;
            }
            histories.entry(key.clone()).or_default().push(json!({
                "id": r.test.id, "start_time": r.test.start_time, "status": status(r.test.status),
            }));
            statuses.entry(key).or_default().push(r.test.status);
        }
    }
    let mut groups: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for (key, hist) in &histories {
        let Some(class) = statuses.get(key).and_then(|s| classify(s)) else {
            continue;
        };
        let (platform, config, arch, path) = key;
        let root = groups.entry(class).or_default();
        let level = |m: &mut Map<String, Value>, k: &str| -> Map<String, Value> {
            m.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let mut by_config = level(root, platform);
        let mut by_arch = level(&mut by_config, config);
        let mut by_path = level(&mut by_arch, arch);
        by_path.insert(path.clone(), Value::Array(hist.clone()));
        by_arch.insert(arch.clone(), Value::Object(by_path));
        by_config.insert(config.clone(), Value::Object(by_arch));
        root.insert(platform.clone(), Value::Object(by_config));
    }
    let mut take = |k: &str| Value::Object(groups.remove(k).unwrap_or_default());
    let (regressions, fixed, unstable) = (take("regression"), take("fixed"), take("unstable"));
    // Issues of the head's builds.
    let builds =
        query::results::builds(&db, &Scope::Checkouts(head.checkout_ids.clone()), &[]).await?;
    let ids: Vec<String> = builds.iter().map(|b| b.build.id.clone()).collect();
    let links = query::issues::links(&db, true, &ids).await?;
    let issue_ids: Vec<String> = links.iter().map(|l| l.issue_id.clone()).collect();
    let firsts = query::issues::first_incidents(&db, &issue_ids).await?;
    let mut build_issues = Vec::new();
    for l in &links {
        let issue = query::issues::get(&db, &l.issue_id, Some(l.issue_version)).await?;
        let culprit = issue.as_ref().and_then(|i| i.culprit).unwrap_or_default();
        let first = firsts.get(&l.issue_id);
        build_issues.push(json!({
            "issue_id": l.issue_id, "version": l.issue_version, "comment": l.comment,
            "report_url": l.report_url, "build_id": l.result_id,
            "culprit_code": culprit.code, "culprit_tool": culprit.tool,
            "culprit_harness": culprit.harness,
            "first_seen": first.and_then(|f| f.first_seen.clone()),
            "is_new_issue": first.is_some_and(|f| f.git_commit_hash.as_deref() == Some(head.git_commit_hash.as_str())),
        }));
    }
    let checkouts = query::checkouts_by_id(&db, &head.checkout_ids).await?;
    let tree_name = checkouts
        .values()
        .find_map(|c| c.tree_name.clone())
        .unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(ok(json!({
        "dashboard_url": format!("http://{host}/tree/{tree_name}/{git_branch}/{}", head.git_commit_hash),
        "git_url": git_url,
        "git_branch": git_branch,
        "commit_hash": head.git_commit_hash,
        "origin": branch.origin,
        "checkout_start_time": head.earliest_start_time,
        "build_status_summary": counts_upper(&head.counts.builds),
        "boot_status_summary": counts_suffixed(&head.counts.boots),
        "test_status_summary": counts_suffixed(&head.counts.tests),
        "possible_regressions": regressions,
        "fixed_regressions": fixed,
        "unstable_tests": unstable,
        "issues": {"builds": build_issues},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches() {
        assert!(like("%", "anything"));
        assert!(like("boot%", "boot.nfs"));
        assert!(like("b_ot", "boot"));
        assert!(!like("boot", "boot.nfs"));
        assert!(like("%.dmesg.%", "baseline.dmesg.crit"));
    }

    #[test]
    fn classifies() {
        use Status::{Fail, Pass};
        assert_eq!(
            classify(&[Some(Fail), Some(Pass), Some(Pass)]),
            Some("regression")
        );
        assert_eq!(classify(&[Some(Pass), Some(Fail)]), Some("fixed"));
        assert_eq!(
            classify(&[Some(Pass), Some(Fail), Some(Pass)]),
            Some("unstable")
        );
        assert_eq!(classify(&[Some(Pass), Some(Pass)]), None);
    }
}
