//! The stored regressions the KCIDB role's tracker keeps (ours; upstream has no such
//! routes): `regressions/` (a filtered list), `regressions/{id}`, `flaky/` (flaky tests and
//! builds) and `health/` (infrastructure failure rates per lab and platform).

use axum::extract::{Path, RawQuery, State};
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::regress::track::{self, FlakyIdentity, Health, Regression, RegressionFilter};
use kernelci_kcidb::regress::{Identity, RegressionState};
use serde_json::{Value, json};

use super::ok;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

/// The states `open` stands for (everything not fixed).
const OPEN: [RegressionState; 3] = [
    RegressionState::New,
    RegressionState::StillFailing,
    RegressionState::Flaky,
];

/// `state`: a comma list of `new`, `still_failing`, `fixed`, `flaky`, `open` (new,
/// still_failing, flaky) or `all`; absent means `open`. Empty result: every state.
pub fn states(p: &Params) -> Result<Vec<RegressionState>, ApiError> {
    let raw = p.get("state").unwrap_or("open");
    let mut out: Vec<RegressionState> = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let add: Vec<RegressionState> = match part {
            "open" => OPEN.to_vec(),
            "all" => return Ok(Vec::new()),
            other => vec![RegressionState::parse(other).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "state: unknown state {other:?} (expected new, still_failing, fixed, \
                     flaky, open or all, comma-separated)"
                ))
            })?],
        };
        for s in add {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The list filter from `origin`, `state`, `tree_name`, `git_branch` and `limit`
/// (default 100, at most 1000).
pub fn filter(p: &Params) -> Result<RegressionFilter, ApiError> {
    let limit = p.int("limit", 1, 1000)?.unwrap_or(100);
    Ok(RegressionFilter {
        states: states(p)?,
        origin: p.get("origin").map(String::from),
        tree_name: p.get("tree_name").map(String::from),
        branch: p.get("git_branch").map(String::from),
        id: None,
        limit: usize::try_from(limit).unwrap_or(100),
    })
}

/// `head`'s fields, then the identity's (`kind`, `origin`, tree, branch, path, config,
/// architecture, compiler, platform), then `tail`'s: one object.
fn with_identity(head: Value, i: &Identity, tail: Value) -> Value {
    let identity = json!({
        "kind": i.kind.as_str(),
        "origin": i.origin,
        "tree_name": i.tree_name,
        "git_repository_url": i.git_repository_url,
        "git_repository_branch": i.git_repository_branch,
        "path": i.path,
        "config_name": i.config_name,
        "architecture": i.architecture,
        "compiler": i.compiler,
        "platform": i.platform,
    });
    let mut out = serde_json::Map::new();
    for part in [head, identity, tail] {
        if let Value::Object(m) = part {
            out.extend(m);
        }
    }
    Value::Object(out)
}

/// A regression as the API shows it.
pub fn regression_json(r: &Regression) -> Value {
    with_identity(
        json!({"id": r.id, "state": r.state.as_str(), "class": r.class.as_str()}),
        &r.identity,
        json!({
            "identity": r.identity_key,
            "fail_count": r.fail_count,
            "last_pass": {"checkout_id": r.last_pass.checkout_id, "commit": r.last_pass.commit},
            "first_fail": {"checkout_id": r.first_fail.checkout_id,
                           "commit": r.first_fail.commit,
                           "object_id": r.first_fail.object_id, "time": r.first_fail.time},
            "last_fail": {"checkout_id": r.last_fail.checkout_id, "commit": r.last_fail.commit,
                          "object_id": r.last_fail.object_id, "time": r.last_fail.time},
            "fixed": r.fixed.as_ref().map(|f| json!({"checkout_id": f.checkout_id,
                                                      "commit": f.commit})),
            "opened": r.opened,
            "updated": r.updated,
            "bisection": r.bisection,
        }),
    )
}

/// A flaky identity as the API shows it.
pub fn flaky_json(f: &FlakyIdentity) -> Value {
    with_identity(
        json!({"identity": f.identity_key}),
        &f.identity,
        json!({"flips": f.flips, "last_outcome": f.last_outcome, "updated": f.updated}),
    )
}

/// A health row as the API shows it, with whether its rate is above `threshold`.
pub fn health_json(h: &Health, threshold: f64) -> Value {
    json!({
        "origin": h.origin,
        "lab": h.lab,
        "platform": h.platform,
        "total": h.total,
        "infrastructure": h.infrastructure,
        "failures": h.failures,
        "infrastructure_rate": h.infrastructure_rate,
        "above_threshold": h.infrastructure_rate > threshold,
    })
}

/// The health rows of `health/` and `/health`: `interval_in_days` (default 7),
/// `threshold` (0 to 1, default 0.2), `origin` (optional); with the days and threshold.
pub async fn health_rows(db: &KcidbDb, p: &Params) -> Result<(Vec<Health>, i64, f64), ApiError> {
    let days = p.int("interval_in_days", 1, 36_500)?.unwrap_or(7);
    let threshold = p.float("threshold", 0.0, 1.0)?.unwrap_or(0.2);
    let since = chrono::Utc::now() - chrono::Duration::days(days);
    let mut rows = track::health(db, &since).await?;
    if let Some(origin) = p.get("origin") {
        rows.retain(|h| h.origin == origin);
    }
    Ok((rows, days, threshold))
}

/// `GET regressions/?origin=&state=&tree_name=&git_branch=&limit=`: stored regressions,
/// newest change first.
pub async fn regressions(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let list = track::list(&db, &filter(&p)?).await?;
    Ok(ok(Value::Array(list.iter().map(regression_json).collect())))
}

/// `GET regressions/{id}`: one stored regression (404 when unknown).
pub async fn regression(State(db): State<KcidbDb>, Path(id): Path<String>) -> ApiResult {
    let found = track::list(
        &db,
        &RegressionFilter {
            id: Some(id.clone()),
            limit: 1,
            ..RegressionFilter::default()
        },
    )
    .await?;
    match found.first() {
        Some(r) => Ok(ok(regression_json(r))),
        None => Err(ApiError::NotFound(format!("regression {id} not found"))),
    }
}

/// `GET flaky/?origin=&limit=`: tests and builds flaky now, newest first.
pub async fn flaky(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.int("limit", 1, 1000)?.unwrap_or(100);
    let list = track::flaky(&db, p.get("origin"), usize::try_from(limit).unwrap_or(100)).await?;
    Ok(ok(Value::Array(list.iter().map(flaky_json).collect())))
}

/// `GET health/?interval_in_days=7&threshold=0.2&origin=`: results, infrastructure and
/// kernel/test failures per origin, lab and platform, worst infrastructure rate first.
pub async fn health(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let (rows, _, threshold) = health_rows(&db, &p).await?;
    Ok(ok(Value::Array(
        rows.iter().map(|h| health_json(h, threshold)).collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lists() {
        let s = |q: &str| states(&Params::parse(Some(q)));
        assert_eq!(s("").unwrap(), OPEN.to_vec());
        assert_eq!(s("state=all").unwrap(), Vec::new());
        assert_eq!(
            s("state=fixed,new,fixed").unwrap(),
            vec![RegressionState::Fixed, RegressionState::New]
        );
        let e = s("state=new,bogus").unwrap_err().to_string();
        assert!(e.starts_with("state: unknown state \"bogus\""), "{e}");
    }
}
