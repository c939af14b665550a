//! A branch over time: the history chart of its recent commits (on the checkout page) and
//! the compare page (`/tree/{tree}/{branch}/compare?hash_a=&hash_b=`: what changed between
//! two revisions, PASS→FAIL and back).

use std::fmt::Write;

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use kernelci_kcidb::Checkout;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::trees::{self, BranchSelector, CommitHistoryEntry};
use serde_json::Value;

use super::PageResult;
use super::html::{enc, esc, link, page, table};
use crate::params::Params;

/// Commits shown in the history chart.
const HISTORY: usize = 15;

/// The branch's recent commits (newest first) around the checkout `c`.
pub async fn recent(
    db: &KcidbDb,
    c: &Checkout,
) -> Result<Vec<CommitHistoryEntry>, kernelci_kcidb::query::QueryError> {
    let selector = BranchSelector {
        origin: c.origin.clone(),
        tree_name: c.tree_name.clone(),
        git_url: c.git_repository_url.clone(),
        git_branch: c.git_repository_branch.clone(),
    };
    trees::commit_history(db, &selector, None, HISTORY).await
}

/// The chart: one stacked bar (boots and tests: pass, fail, inconclusive) per commit, oldest
/// on the left, each a link to its checkout; the current one outlined.
pub fn chart(history: &[CommitHistoryEntry], current: &str, origin: &str) -> String {
    if history.len() < 2 {
        return String::new();
    }
    let max = history
        .iter()
        .map(|e| e.counts.boots.total() + e.counts.tests.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h) = (28.0_f64, 80.0_f64);
    let mut svg = String::new();
    for (i, e) in history.iter().rev().enumerate() {
        let mut c = e.counts.boots;
        c.merge(&e.counts.tests);
        let x = i as f64 * (w + 6.0);
        let mut y = h;
        let name = e
            .git_commit_name
            .clone()
            .unwrap_or_else(|| e.git_commit_hash.chars().take(12).collect());
        let _ = write!(
            svg,
            "<a href=\"/tree/{}?origin={}\"><title>{}: {} pass, {} fail, {} inconclusive</title>",
            enc(&e.git_commit_hash),
            enc(origin),
            esc(&name),
            c.pass,
            c.fail,
            c.inconclusive()
        );
        for (n, color) in [
            (c.pass, "#2e9e4f"),
            (c.fail, "#d64545"),
            (c.inconclusive(), "#e0b400"),
        ] {
            let bh = h * n as f64 / max as f64;
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.0}\" y=\"{y:.1}\" width=\"{w:.0}\" height=\"{bh:.1}\" fill=\"{color}\"/>"
            );
        }
        if e.git_commit_hash == current {
            let _ = write!(
                svg,
                "<rect x=\"{:.0}\" y=\"0\" width=\"{:.0}\" height=\"{h:.0}\" fill=\"none\" \
                 stroke=\"#1d3557\" stroke-width=\"2\"/>",
                x - 2.0,
                w + 4.0
            );
        }
        svg.push_str("</a>");
    }
    format!(
        "<h2>Recent commits of the branch</h2><svg width=\"{:.0}\" height=\"{h:.0}\" \
         role=\"img\" aria-label=\"boot and test results of the last {} commits\">{svg}</svg>",
        history.len() as f64 * (w + 6.0),
        history.len()
    )
}

/// `/tree/{tree}/{branch}/compare?hash_a=&hash_b=`.
pub async fn compare(
    State(db): State<KcidbDb>,
    Path((tree, branch)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let doc = crate::routes::tree::compare_json(&db, &params, &tree, &branch).await?;
    let side = |v: &Value, s: &str, k: &str| v[s][k].as_u64().unwrap_or(0).to_string();
    let mut summary = Vec::new();
    for kind in ["builds", "boots", "tests"] {
        let v = &doc[kind];
        let changes = v["changes"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        summary.push(vec![
            kind.to_string(),
            format!(
                "{} / {} / {}",
                side(v, "sideA", "pass"),
                side(v, "sideA", "fail"),
                side(v, "sideA", "inconclusive")
            ),
            format!(
                "{} / {} / {}",
                side(v, "sideB", "pass"),
                side(v, "sideB", "fail"),
                side(v, "sideB", "inconclusive")
            ),
            esc(&changes),
        ]);
    }
    let mut body = table(
        &["", "A: pass / fail / inconclusive", "B", "Changes"],
        &summary,
    );
    for kind in ["builds", "boots", "tests"] {
        let rows: Vec<Vec<String>> = doc[kind]["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter(|r| r["change"] != "stillFailing")
                    .map(|r| {
                        let item = |id: &Value, status: &Value| match id.as_str() {
                            Some(id) => {
                                let page = if kind == "builds" { "build" } else { "test" };
                                link(
                                    &format!("/{page}/{}", enc(id)),
                                    status.as_str().unwrap_or("NULL"),
                                )
                            }
                            None => "–".into(),
                        };
                        vec![
                            esc(r["change"].as_str().unwrap_or("")),
                            esc(r["key"].as_str().unwrap_or("")),
                            item(&r["id_a"], &r["status_a"]),
                            item(&r["id_b"], &r["status_b"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            body,
            "<h2>Changed {kind}</h2>{}",
            table(&["Change", "Identity", "A", "B"], &rows)
        );
    }
    let a = params.get("hash_a").unwrap_or("");
    let b = params.get("hash_b").unwrap_or("");
    let title = format!("{tree} {branch}: compare");
    let kci = format!(
        "kci results compare {a} {b} --branch {branch} --origin {}",
        params.origin()
    );
    Ok(Html(page(&title, "/tree", &body, Some(&kci))))
}
