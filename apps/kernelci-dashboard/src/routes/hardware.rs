//! `GET hardware/` (listing) and `POST hardware/{name}/{summary,builds,boots,tests}`
//! (body `{"origin", "startTimestampInSeconds", "endTimestampInSeconds", ...}`).

use axum::extract::{RawQuery, State};
use axum::http::Uri;
use chrono::{DateTime, Utc};
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{self, ResultKind, Scope};
use serde_json::{Value, json};

use super::{ok, ok_list_by, segments};
use crate::error::{ApiError, ApiResult};
use crate::params::{DEFAULT_ORIGIN, Params};
use crate::shapes::{build_item, counts_v2, test_item};

/// The window: the two timestamps, or the last 7 days.
fn window(p: &Params) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let until = p
        .timestamp("endTimestampInSeconds")?
        .unwrap_or_else(Utc::now);
    let since = p
        .timestamp("startTimestampInSeconds")?
        .unwrap_or(until - chrono::Duration::days(7));
    Ok((since, until))
}

/// `GET hardware/`: the platforms with tests in the window, with `PASS`/`FAIL`/
/// `INCONCLUSIVE` counts (`hardware`: their compatibles, `platform`: the name); paged by
/// `limit`/`offset` or `page_size`/`cursor` (the `hardware_name`).
pub async fn listing(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let (since, until) = window(&p)?;
    let list = query::trees::hardware(&db, p.origin(), since, until).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|h| {
            json!({
                "hardware_name": h.platform,
                "platform": h.platform,
                "hardware": h.compatibles,
                "build_status_summary": counts_v2(&h.builds),
                "boot_status_summary": counts_v2(&h.boots),
                "test_status_summary": counts_v2(&h.tests),
            })
        })
        .collect();
    ok_list_by(items, "hardware_name", &p, |l| json!({ "hardware": l }))
}

/// The body's string (or number) members as query parameters.
fn body_params(body: &[u8]) -> Result<Params, ApiError> {
    if body.is_empty() {
        return Ok(Params::default());
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body: not JSON ({e})")))?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(m) = doc.as_object() {
        for (k, v) in m {
            match v {
                Value::String(s) => {
                    query.append_pair(k, s);
                }
                Value::Number(n) => {
                    query.append_pair(k, &n.to_string());
                }
                _ => {}
            }
        }
        if let Some(filter) = m.get("filter").and_then(Value::as_object) {
            for (k, v) in filter {
                for value in v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]) {
                    if let Some(s) = value.as_str() {
                        query.append_pair(&format!("filter_{k}"), s);
                    }
                }
            }
        }
    }
    Ok(Params::parse(Some(&query.finish())))
}

/// `POST hardware/{name}/{summary,builds,boots,tests}`.
pub async fn details(State(db): State<KcidbDb>, uri: Uri, body: axum::body::Bytes) -> ApiResult {
    let segs = segments(uri.path(), "/api/hardware/", true);
    let [name, what] = segs.as_slice() else {
        return Err(ApiError::NotFound("unknown endpoint".into()));
    };
    let p = body_params(&body)?;
    let (since, until) = window(&p)?;
    let origin = p.get("origin").unwrap_or(DEFAULT_ORIGIN).to_string();
    let mut filters = p.filters()?;
    filters.extend(kernelci_kcidb::query::Filter::from_param(
        "origin",
        &[origin],
    )?);
    let scope = Scope::Hardware {
        name: name.clone(),
        since,
        until,
    };
    match what.as_str() {
        "builds" => {
            let rows = query::results::builds(&db, &scope, &filters).await?;
            let list: Vec<Value> = rows.iter().map(build_item).collect();
            Ok(ok(json!({ "builds": list })))
        }
        "boots" | "tests" => {
            let kind = if what == "boots" {
                ResultKind::Boot
            } else {
                ResultKind::Test
            };
            let rows = query::results::tests_listed(&db, &scope, Some(kind), &filters).await?;
            let list: Vec<Value> = rows.iter().map(test_item).collect();
            Ok(ok(json!({ what.as_str(): list })))
        }
        "summary" => {
            let builds = query::results::builds(&db, &scope, &filters).await?;
            let boots =
                query::results::tests_listed(&db, &scope, Some(ResultKind::Boot), &filters).await?;
            let tests =
                query::results::tests_listed(&db, &scope, Some(ResultKind::Test), &filters).await?;
            let r = super::tree::Results {
                builds,
                boots,
                tests,
            };
            let mut v = super::tree::summary_of(&db, &r, None, Vec::new()).await?;
            if let Some(common) = v.get_mut("common").and_then(Value::as_object_mut) {
                let mut compatibles: Vec<String> = r
                    .boots
                    .iter()
                    .chain(&r.tests)
                    .flat_map(|t| {
                        t.test
                            .environment
                            .as_ref()
                            .and_then(|e| e.compatible.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                compatibles.sort();
                compatibles.dedup();
                let mut trees: Vec<Value> = r
                    .builds
                    .iter()
                    .filter_map(|b| b.checkout.as_deref())
                    .map(|c| json!({"tree_name": c.tree_name, "git_repository_branch": c.git_repository_branch,
                        "git_repository_url": c.git_repository_url, "head_git_commit_hash": c.git_commit_hash}))
                    .collect();
                trees.dedup();
                common.insert("compatibles".into(), json!(compatibles));
                common.insert("trees".into(), Value::Array(trees));
            }
            Ok(ok(v))
        }
        _ => Err(ApiError::NotFound("unknown endpoint".into())),
    }
}
