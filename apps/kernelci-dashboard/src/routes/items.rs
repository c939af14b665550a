//! `build/{id}`, `build/{id}/tests`, `build/{id}/issues`, `test/{id}`, `test/{id}/issues`.
//!
//! Ids may contain `/` (kci-dev does not encode them), so the id is the path after the
//! prefix, minus a trailing `/tests` or `/issues`.

use axum::extract::{RawQuery, State};
use axum::http::Uri;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{self, IssueLink, Scope};
use serde_json::{Value, json};

use super::{decode_segment, ok};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::{build_details, test_details, test_item};

/// The id and the sub-resource (`""`, `tests` or `issues`) of a path after `prefix`.
fn id_and_part<'a>(path: &str, prefix: &str, parts: &[&'a str]) -> (String, &'a str) {
    let rest = path
        .strip_prefix(prefix)
        .unwrap_or(path)
        .trim_end_matches('/');
    for part in parts {
        if let Some(id) = rest.strip_suffix(&format!("/{part}")) {
            return (decode_segment(id, false), part);
        }
    }
    (decode_segment(rest, false), "")
}

/// The issues of a build or test, as upstream lists them.
fn issues_json(links: &[IssueLink]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    let mut last: Option<(&str, u32)> = None;
    for l in links {
        if last == Some((l.issue_id.as_str(), l.issue_version)) {
            continue;
        }
        last = Some((l.issue_id.as_str(), l.issue_version));
        let n = links
            .iter()
            .filter(|x| x.issue_id == l.issue_id && x.issue_version == l.issue_version)
            .count();
        out.push(json!({
            "id": l.issue_id, "version": l.issue_version, "comment": l.comment,
            "report_url": l.report_url, "incidents_info": {"incidentsCount": n},
        }));
    }
    Value::Array(out)
}

/// `GET build/{id}[/tests|/issues]`.
pub async fn build(State(db): State<KcidbDb>, uri: Uri, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let (id, part) = id_and_part(uri.path(), "/api/build/", &["tests", "issues"]);
    let Some(row) = query::results::build(&db, &id).await? else {
        return Err(ApiError::NotFound("Build not found".into()));
    };
    match part {
        "tests" => {
            let rows = query::results::tests(&db, &Scope::Build(id), None, &[]).await?;
            let list: Vec<Value> = rows.iter().map(test_item).collect();
            super::ok_list(list, &p, Value::Array)
        }
        "issues" => {
            let links = query::issues::links(&db, true, &[id]).await?;
            if links.is_empty() {
                // Upstream's reply, which kci-dev matches on.
                return Ok(ok(json!({"error": "No issues were found for this build"})));
            }
            Ok(ok(issues_json(&links)))
        }
        _ => Ok(ok(build_details(&row))),
    }
}

/// `GET test/{id}[/issues]`.
pub async fn test(State(db): State<KcidbDb>, uri: Uri) -> ApiResult {
    let (id, part) = id_and_part(uri.path(), "/api/test/", &["issues"]);
    let Some(row) = query::results::test(&db, &id).await? else {
        return Err(ApiError::NotFound("Test not found".into()));
    };
    if part == "issues" {
        let links = query::issues::links(&db, false, &[id]).await?;
        if links.is_empty() {
            return Ok(ok(json!({"error": "No issues were found for this test"})));
        }
        return Ok(ok(issues_json(&links)));
    }
    Ok(ok(test_details(&row)))
}
