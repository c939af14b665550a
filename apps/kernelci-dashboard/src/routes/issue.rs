//! `issue/` (listing), `issue/{id}`, `issue/{id}/builds`, `issue/{id}/tests` and
//! `POST issue/extras/`.

use std::collections::BTreeSet;

use axum::extract::{RawQuery, State};
use axum::http::Uri;
use chrono::Utc;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{self, FirstIncident, Scope};
use serde_json::{Value, json};

use super::{decode_segment, ok};
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, paginate};
use crate::shapes::{self, status};

/// A first incident as upstream's `FirstIncident`.
fn first_incident(f: &FirstIncident) -> Value {
    json!({
        "first_seen": f.first_seen,
        "git_commit_hash": f.git_commit_hash,
        "git_repository_url": f.git_repository_url,
        "git_repository_branch": f.git_repository_branch,
        "git_commit_name": f.git_commit_name,
        "tree_name": f.tree_name,
        "issue_version": f.issue_version,
    })
}

/// `GET issue/`: the latest version of the issues whose `_timestamp` is within
/// `startTimestampInSeconds`..`endTimestampInSeconds` (or the last `interval_in_days`,
/// default 7), with `filter_origin`; `extras` holds each issue's first incident.
pub async fn listing(State(db): State<KcidbDb>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let start = p.timestamp("startTimestampInSeconds")?;
    let end = p.timestamp("endTimestampInSeconds")?;
    let (since, until) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (None, None) => (p.since_days(7)?, Utc::now()),
        _ => {
            return Err(ApiError::BadRequest(
                "startTimestampInSeconds and endTimestampInSeconds go together".into(),
            ));
        }
    };
    if since > until {
        return Err(ApiError::BadRequest(
            "startTimestampInSeconds is after endTimestampInSeconds".into(),
        ));
    }
    let origins = p.all("filter_origin");
    let issues = query::issues::list(&db, since, until, None).await?;
    let issues: Vec<_> = issues
        .into_iter()
        .filter(|i| origins.is_empty() || origins.contains(&i.origin))
        .collect();
    let ids: Vec<String> = issues.iter().map(|i| i.id.clone()).collect();
    let firsts = query::issues::first_incidents(&db, &ids).await?;
    let mut culprits = BTreeSet::new();
    let mut categories = BTreeSet::new();
    let mut all_origins = BTreeSet::new();
    let list: Vec<Value> = issues
        .iter()
        .map(|i| {
            if let Some(c) = &i.culprit {
                for (name, set) in [("code", c.code), ("tool", c.tool), ("harness", c.harness)] {
                    if set == Some(true) {
                        culprits.insert(name);
                    }
                }
            }
            categories.extend(i.categories.clone().unwrap_or_default());
            all_origins.insert(i.origin.clone());
            let mut v = shapes::issue(i);
            if let Value::Object(m) = &mut v {
                m.remove("misc");
                m.remove("report_subject");
                m.remove("report_url");
            }
            v
        })
        .collect();
    let extras: serde_json::Map<String, Value> = firsts
        .iter()
        .map(|(id, f)| (id.clone(), first_incident(f)))
        .collect();
    let filters = json!({"origins": all_origins, "culprits": culprits, "categories": categories});
    super::ok_list(
        list,
        &p,
        |l| json!({"issues": l, "extras": extras, "filters": filters}),
    )
}

/// `GET issue/{id}[/builds|/tests]` (`version`: default the latest).
pub async fn item(State(db): State<KcidbDb>, uri: Uri, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let rest = uri
        .path()
        .strip_prefix("/api/issue/")
        .unwrap_or("")
        .trim_end_matches('/');
    let (raw_id, part) = match rest.rsplit_once('/') {
        Some((id, part @ ("builds" | "tests"))) => (id, part),
        _ => (rest, ""),
    };
    let id = decode_segment(raw_id, false);
    let version = p
        .int("version", 0, i64::from(u32::MAX))?
        .and_then(|v| u32::try_from(v).ok());
    let Some(issue) = query::issues::get(&db, &id, version).await? else {
        return Err(ApiError::NotFound("Issue not found".into()));
    };
    let scope = Scope::Issue {
        id: issue.id.clone(),
        version: issue.version,
    };
    let filters = p.filters()?;
    match part {
        "builds" => {
            let rows = query::results::builds(&db, &scope, &filters).await?;
            let list: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let b = &r.build;
                    let c = r.checkout.as_deref();
                    json!({
                        "id": b.id, "architecture": b.architecture, "config_name": b.config_name,
                        "status": status(b.status), "start_time": b.start_time,
                        "duration": b.duration, "compiler": b.compiler, "log_url": b.log_url,
                        "origin": b.origin,
                        "tree_name": c.and_then(|c| c.tree_name.clone()),
                        "git_repository_branch": c.and_then(|c| c.git_repository_branch.clone()),
                    })
                })
                .collect();
            Ok(ok(Value::Array(paginate(list, p.page()?))))
        }
        "tests" => {
            let rows = query::results::tests(&db, &scope, None, &filters).await?;
            let list: Vec<Value> = rows.iter().map(shapes::test_item).collect();
            Ok(ok(Value::Array(paginate(list, p.page()?))))
        }
        _ => {
            let firsts =
                query::issues::first_incidents(&db, std::slice::from_ref(&issue.id)).await?;
            let mut v = shapes::issue(&issue);
            if let Value::Object(m) = &mut v {
                let extra = firsts
                    .get(&issue.id)
                    .map(|f| json!({ issue.id.clone(): {"first_incident": first_incident(f)} }));
                m.insert("extra".into(), extra.unwrap_or(Value::Null));
            }
            Ok(ok(v))
        }
    }
}

/// `POST issue/extras/` with `{"issues": [[id, version], ...]}`: each issue's first
/// incident and, per version asked for, the trees of that first incident.
pub async fn extras(State(db): State<KcidbDb>, body: axum::body::Bytes) -> ApiResult {
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body: not JSON ({e})")))?;
    let Some(pairs) = doc.get("issues").and_then(Value::as_array) else {
        return Err(ApiError::BadRequest(
            "body: expected {\"issues\": [[id, version], ...]}".into(),
        ));
    };
    let mut asked: Vec<(String, i64)> = Vec::new();
    for p in pairs {
        match (
            p.get(0).and_then(Value::as_str),
            p.get(1).and_then(Value::as_i64),
        ) {
            (Some(id), Some(v)) => asked.push((id.to_string(), v)),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "body: {p} is not an [id, version] pair"
                )));
            }
        }
    }
    let ids: Vec<String> = asked.iter().map(|a| a.0.clone()).collect();
    let firsts = query::issues::first_incidents(&db, &ids).await?;
    let mut out = serde_json::Map::new();
    for (id, version) in &asked {
        let Some(f) = firsts.get(id) else { continue };
        let entry = out
            .entry(id.clone())
            .or_insert_with(|| json!({"first_incident": first_incident(f), "versions": {}}));
        if i64::from(f.issue_version) == *version
            && let Some(versions) = entry.get_mut("versions").and_then(Value::as_object_mut)
        {
            versions.insert(
                version.to_string(),
                json!({"trees": [{"tree_name": f.tree_name,
                    "git_repository_branch": f.git_repository_branch,
                    "git_repository_url": f.git_repository_url}]}),
            );
        }
    }
    Ok(ok(json!({"issues": out})))
}
