//! The listing pages: trees (`/tree`), issues (`/issues`) and hardware (`/hardware`).

use axum::extract::{RawQuery, State};
use axum::response::Html;
use chrono::Utc;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{issues, trees};

use super::PageResult;
use super::html::{count_pills, culprits, enc, esc, link, opt, page, table};
use crate::params::Params;

/// The origin / interval form shared by the listings.
fn window_form(action: &str, origin: &str, days: i64) -> String {
    format!(
        "<form class=\"filters\" method=\"get\" action=\"{action}\">Origin \
         <input name=\"origin\" value=\"{}\" size=\"10\"> last \
         <input name=\"interval_in_days\" value=\"{days}\" size=\"4\"> days \
         <button>Show</button></form>",
        esc(origin)
    )
}

/// `/tree`: the latest checkout of each tree and branch, with status counts.
pub async fn trees(State(db): State<KcidbDb>, RawQuery(raw): RawQuery) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let origin = params.origin().to_string();
    let days = params.int("interval_in_days", 1, 36_500)?.unwrap_or(30);
    let since = params.since_days(30)?;
    let heads = trees::tree_heads(&db, &origin, since).await?;
    let rows: Vec<Vec<String>> = heads
        .iter()
        .map(|h| {
            let c = &h.checkout;
            let commit = c.git_commit_hash.clone().unwrap_or_default();
            let mut href = format!("/tree/{}?origin={}", enc(&commit), enc(&c.origin));
            for (key, v) in [
                ("git_url", &c.git_repository_url),
                ("git_branch", &c.git_repository_branch),
            ] {
                if let Some(v) = v {
                    href.push_str(&format!("&{key}={}", enc(v)));
                }
            }
            let name = c
                .git_commit_name
                .clone()
                .unwrap_or_else(|| commit.chars().take(12).collect());
            vec![
                opt(&c.tree_name),
                opt(&c.git_repository_branch),
                link(&href, &name),
                opt(&c.start_time),
                count_pills(&h.builds),
                count_pills(&h.boots),
                count_pills(&h.tests),
            ]
        })
        .collect();
    let body = format!(
        "{}{}",
        window_form("/tree", &origin, days),
        table(
            &[
                "Tree", "Branch", "Commit", "Started", "Builds", "Boots", "Tests"
            ],
            &rows
        )
    );
    let kci = format!("kci results trees --origin {origin} --days {days}");
    Ok(Html(page("Trees", "/tree", &body, Some(&kci))))
}

/// `/issues`: the latest version of each issue seen within the window.
pub async fn issues(State(db): State<KcidbDb>, RawQuery(raw): RawQuery) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let origin = params.get("origin").map(str::to_string);
    let days = params.int("interval_in_days", 1, 36_500)?.unwrap_or(30);
    let since = params.since_days(30)?;
    let list = issues::list(&db, since, Utc::now(), origin.as_deref()).await?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            let href = format!("/issue/{}?version={}", enc(&i.id), i.version);
            let culprit = culprits(&i.culprit);
            vec![
                link(&href, &i.id),
                i.version.to_string(),
                esc(&i.origin),
                opt(&i.comment),
                culprit,
                opt(&i.timestamp),
            ]
        })
        .collect();
    let body = format!(
        "{}{}",
        window_form("/issues", origin.as_deref().unwrap_or(""), days),
        table(
            &[
                "Issue",
                "Version",
                "Origin",
                "Comment",
                "Culprit",
                "Last seen"
            ],
            &rows
        )
    );
    let kci = format!(
        "kci results issues --days {days}{}",
        origin.map(|o| format!(" --origin {o}")).unwrap_or_default()
    );
    Ok(Html(page("Issues", "/issues", &body, Some(&kci))))
}

/// `/hardware`: the platforms tests ran on within the window, with status counts.
pub async fn hardware(State(db): State<KcidbDb>, RawQuery(raw): RawQuery) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let origin = params.origin().to_string();
    let days = params.int("interval_in_days", 1, 36_500)?.unwrap_or(7);
    let since = params.since_days(7)?;
    let list = trees::hardware(&db, &origin, since, Utc::now()).await?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|h| {
            vec![
                link(
                    &format!(
                        "/hardware/{}?origin={}&interval_in_days={days}",
                        enc(&h.platform),
                        enc(&origin)
                    ),
                    &h.platform,
                ),
                esc(&h.compatibles.iter().cloned().collect::<Vec<_>>().join(", ")),
                count_pills(&h.builds),
                count_pills(&h.boots),
                count_pills(&h.tests),
            ]
        })
        .collect();
    let body = format!(
        "{}{}",
        window_form("/hardware", &origin, days),
        table(
            &["Platform", "Compatibles", "Builds", "Boots", "Tests"],
            &rows
        )
    );
    let kci = format!("kci results hardware list --origin {origin}");
    Ok(Html(page("Hardware", "/hardware", &body, Some(&kci))))
}

/// `/hardware/{name}`: a platform's (or compatible's) builds, boots and tests in the window,
/// with summary cards and the table of the selected tab.
pub async fn hardware_detail(
    State(db): State<KcidbDb>,
    axum::extract::Path(name): axum::extract::Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    use kernelci_kcidb::query::results::{self, Scope};
    use kernelci_kcidb::query::{Filter, ResultKind, StatusCounts};
    let params = Params::parse(raw.as_deref());
    let origin = params.origin().to_string();
    let days = params.int("interval_in_days", 1, 36_500)?.unwrap_or(7);
    let since = params.since_days(7)?;
    let scope = Scope::Hardware {
        name: name.clone(),
        since,
        until: Utc::now(),
    };
    let mut filters = params.filters()?;
    filters.extend(Filter::from_param("origin", std::slice::from_ref(&origin))?);
    let builds = results::builds(&db, &scope, &filters).await?;
    let boots = results::tests(&db, &scope, Some(ResultKind::Boot), &filters).await?;
    let tests = results::tests(&db, &scope, Some(ResultKind::Test), &filters).await?;
    let mut counts = [StatusCounts::default(); 3];
    builds.iter().for_each(|b| counts[0].add(b.build.status, 1));
    boots.iter().for_each(|t| counts[1].add(t.test.status, 1));
    tests.iter().for_each(|t| counts[2].add(t.test.status, 1));
    let tab = match params.get("tab") {
        Some("builds") => 0,
        Some("tests") => 2,
        _ => 1,
    };
    let mut out = String::from("<div class=\"cards\">");
    for (i, label) in ["Builds", "Boots", "Tests"].iter().enumerate() {
        out.push_str(&format!(
            "<div class=\"card\"><h3>{label} ({})</h3>{}</div>",
            counts[i].total(),
            super::html::status_bar(&counts[i])
        ));
    }
    out.push_str("</div><p class=\"tabs\">");
    for (i, tab_name) in ["builds", "boots", "tests"].iter().enumerate() {
        let class = if i == tab { " class=\"on\"" } else { "" };
        out.push_str(&format!(
            "<a{class} href=\"/hardware/{}?origin={}&amp;interval_in_days={days}&amp;tab={tab_name}\">{tab_name}</a>",
            enc(&name),
            enc(&origin)
        ));
    }
    out.push_str("</p>");
    out.push_str(&match tab {
        0 => super::tree::builds_table(&builds),
        1 => super::tree::tests_table(&boots),
        _ => super::tree::tests_table(&tests),
    });
    let kci = format!(
        "kci results hardware {} --name {name} --origin {origin} --days {days}",
        ["builds", "boots", "tests"][tab]
    );
    Ok(Html(page(
        &format!("Hardware {name}"),
        "/hardware",
        &out,
        Some(&kci),
    )))
}
