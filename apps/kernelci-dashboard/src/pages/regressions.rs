//! `/regressions` (the stored regressions the KCIDB role's tracker keeps, by state, and the
//! tests and builds flaky now) and `/health` (infrastructure failure rates per lab and
//! platform, rows above the threshold highlighted). Parameters are the API's
//! (`regressions/`, `flaky/`, `health/`).

use axum::extract::{RawQuery, State};
use axum::response::Html;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::regress::track::{self, Regression};
use kernelci_kcidb::regress::{Identity, ResultKind};

use super::PageResult;
use super::html::{enc, esc, link, marked_table, page, table};
use crate::params::Params;
use crate::routes::regress::{filter, health_rows};

/// The state selector's entries: (value, label).
const STATES: [(&str, &str); 4] = [
    ("open", "Open"),
    ("fixed", "Fixed"),
    ("flaky", "Flaky"),
    ("all", "All"),
];

/// `/tree/{commit}` of a commit on the identity's branch (text only without a commit).
fn commit_link(i: &Identity, commit: &str) -> String {
    if commit.is_empty() {
        return String::new();
    }
    let mut href = format!("/tree/{}?origin={}", enc(commit), enc(&i.origin));
    for (key, v) in [
        ("git_url", &i.git_repository_url),
        ("git_branch", &i.git_repository_branch),
    ] {
        if !v.is_empty() {
            href.push_str(&format!("&{key}={}", enc(v)));
        }
    }
    link(&href, &commit.chars().take(12).collect::<String>())
}

/// What regressed: the test path, or the build's config and compiler.
fn what(i: &Identity) -> String {
    match i.kind {
        ResultKind::Test => i.path.clone(),
        ResultKind::Build => format!("build {} {}", i.config_name, i.compiler)
            .trim_end()
            .to_string(),
    }
}

/// The page of a result (`/test/{id}` or `/build/{id}`).
fn result_link(kind: ResultKind, id: &str, text: &str) -> String {
    if id.is_empty() {
        return String::new();
    }
    link(&format!("/{}/{}", kind.as_str(), enc(id)), text)
}

fn row(r: &Regression) -> Vec<String> {
    let i = &r.identity;
    vec![
        esc(r.state.as_str()),
        esc(r.class.as_str()),
        esc(&format!("{} {}", i.tree_name, i.git_repository_branch)),
        esc(&what(i)),
        esc(&i.platform),
        esc(&format!("{} {}", i.config_name, i.architecture)),
        r.fail_count.to_string(),
        commit_link(i, &r.first_fail.commit),
        commit_link(i, &r.last_pass.commit),
        result_link(i.kind, &r.last_fail.object_id, &r.last_fail.object_id),
        bisection_cell(r.bisection.as_ref()),
    ]
}

/// The culprit a bisection found (its subject and the reproduce command on hover), or
/// nothing.
fn bisection_cell(b: Option<&serde_json::Value>) -> String {
    let Some(b) = b else {
        return String::new();
    };
    let text = |k: &str| b[k].as_str().unwrap_or_default();
    format!(
        "<span title=\"{}\"><code>{}</code> {}</span>",
        esc(text("reproduce")),
        esc(&text("culprit").chars().take(12).collect::<String>()),
        esc(text("subject"))
    )
}

/// `/regressions?state=open|fixed|flaky|all&origin=&tree_name=&git_branch=&limit=`.
pub async fn regressions(State(db): State<KcidbDb>, RawQuery(raw): RawQuery) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let f = filter(&params)?;
    let state = params.get("state").unwrap_or("open").to_string();
    let list = track::list(&db, &f).await?;
    let origin = f.origin.clone();
    // The selector keeps the other parameters.
    let mut keep = String::new();
    for (key, v) in [
        ("origin", &f.origin),
        ("tree_name", &f.tree_name),
        ("git_branch", &f.branch),
    ] {
        if let Some(v) = v {
            keep.push_str(&format!("&{key}={}", enc(v)));
        }
    }
    let selector: Vec<String> = STATES
        .iter()
        .map(|(value, label)| {
            let class = if *value == state { " class=\"on\"" } else { "" };
            format!(
                "<a href=\"/regressions?state={value}{}\"{class}>{label}</a>",
                esc(&keep)
            )
        })
        .collect();
    let rows: Vec<Vec<String>> = list.iter().map(row).collect();
    let flaky = track::flaky(&db, origin.as_deref(), 100).await?;
    let flaky_rows: Vec<Vec<String>> = flaky
        .iter()
        .map(|x| {
            let i = &x.identity;
            vec![
                esc(&format!("{} {}", i.tree_name, i.git_repository_branch)),
                esc(&what(i)),
                esc(&i.platform),
                esc(&format!("{} {}", i.config_name, i.architecture)),
                x.flips.to_string(),
                esc(&x.last_outcome),
                esc(&x.updated),
            ]
        })
        .collect();
    let body = format!(
        "<p class=\"muted\">Tests and builds that passed and now fail on their branch, as the \
         regression tracker records them: <b>new</b> (one failing checkout), \
         <b>still_failing</b>, <b>fixed</b> (passed again), <b>flaky</b> (flips between pass \
         and fail). The class says who failed: kernel, test or infrastructure.</p>\
         <p class=\"tabs\">{}</p>{}<h2>Flaky ({})</h2>{}",
        selector.join(""),
        table(
            &[
                "State",
                "Class",
                "Tree",
                "Test",
                "Platform",
                "Config",
                "Fails",
                "First failing commit",
                "Last pass commit",
                "Latest failure",
                "Bisected to",
            ],
            &rows
        ),
        flaky.len(),
        table(
            &[
                "Tree", "Test", "Platform", "Config", "Flips", "Last", "Updated"
            ],
            &flaky_rows
        )
    );
    let kci = format!(
        "kci regressions --state {state}{}",
        origin.map(|o| format!(" --origin {o}")).unwrap_or_default()
    );
    Ok(Html(page("Regressions", "/regressions", &body, Some(&kci))))
}

/// `/health?interval_in_days=7&threshold=0.2&origin=`.
pub async fn health(State(db): State<KcidbDb>, RawQuery(raw): RawQuery) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let (rows, days, threshold) = health_rows(&db, &params).await?;
    let marked: Vec<bool> = rows
        .iter()
        .map(|h| h.infrastructure_rate > threshold)
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|h| {
            vec![
                esc(&h.origin),
                esc(&h.lab),
                if h.platform.is_empty() {
                    "<span class=\"muted\">(builds)</span>".into()
                } else {
                    esc(&h.platform)
                },
                h.total.to_string(),
                h.infrastructure.to_string(),
                h.failures.to_string(),
                format!("{:.1} %", h.infrastructure_rate * 100.0),
            ]
        })
        .collect();
    let origin = params.get("origin").unwrap_or("");
    let body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/health\">Origin \
         <input name=\"origin\" value=\"{}\" size=\"10\"> last \
         <input name=\"interval_in_days\" value=\"{days}\" size=\"4\"> days, threshold \
         <input name=\"threshold\" value=\"{threshold}\" size=\"4\"> \
         <button>Show</button></form>\
         <p class=\"muted\">Results of checkouts in the last {days} days per lab and platform; \
         rows whose infrastructure failure rate is above {:.1} % are highlighted.</p>{}",
        esc(origin),
        threshold * 100.0,
        marked_table(
            &[
                "Origin",
                "Lab",
                "Platform",
                "Results",
                "Infrastructure",
                "Kernel/test failures",
                "Infrastructure rate",
            ],
            &cells,
            &marked
        )
    );
    let kci = format!(
        "kci health --days {days} --threshold {threshold}{}",
        if origin.is_empty() {
            String::new()
        } else {
            format!(" --origin {origin}")
        }
    );
    Ok(Html(page("Lab health", "/health", &body, Some(&kci))))
}
