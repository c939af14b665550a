//! `/tree/{commit}`: one checkout (every checkout of the commit, narrowed by `origin`,
//! `git_url`, `git_branch`): summary cards for builds, boots and tests, then the table of the
//! selected tab (`tab=builds|boots|tests`) with the API's `filter_*` parameters.

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::results::{self, CheckoutSelector, Scope};
use kernelci_kcidb::query::{ResultKind, StatusCounts, trees};

use super::html::{enc, esc, fields, link, opt, page, status_bar, status_pill, table, url_link};
use super::{PageError, PageResult};
use crate::ApiError;
use crate::params::Params;

/// The filters offered as inputs: (query parameter, label).
const FILTER_INPUTS: [(&str, &str); 10] = [
    ("filter_architecture", "arch"),
    ("filter_config_name", "config"),
    ("filter_compiler", "compiler"),
    ("filter_hardware", "hardware"),
    ("filter_lab", "lab"),
    ("filter_build.status", "build status"),
    ("filter_boot.status", "boot status"),
    ("filter_test.status", "test status"),
    ("filter_boot.path_like", "boot path (like)"),
    ("filter_test.path_like", "test path (like)"),
];

/// Renders the checkout page.
pub async fn checkout(
    State(db): State<KcidbDb>,
    Path(commit): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let selector = CheckoutSelector {
        commit_hash: commit.clone(),
        origin: Some(params.origin().to_string()),
        git_url: params.get("git_url").map(str::to_string),
        git_branch: params.get("git_branch").map(str::to_string),
        tree_name: None,
    };
    let checkouts = results::checkouts(&db, &selector).await?;
    let Some(first) = checkouts.first().cloned() else {
        return Err(PageError::from(ApiError::NotFound(format!(
            "no checkout of commit {commit} for origin {}",
            params.origin()
        ))));
    };
    let filters = params.filters()?;
    let ids: Vec<String> = checkouts.iter().map(|c| c.id.clone()).collect();
    let scope = Scope::Checkouts(ids.clone());
    let tab = match params.get("tab") {
        Some("boots") => 1,
        Some("tests") => 2,
        _ => 0,
    };
    // Rows only for the tab shown; the cards count in SQL unless filters narrow them.
    let kinds = [None, Some(ResultKind::Boot), Some(ResultKind::Test)];
    let builds = if tab == 0 {
        results::builds(&db, &scope, &filters).await?
    } else {
        Vec::new()
    };
    // Boots and tests are shown a page at a time (`page`, from 1): without filters only that
    // page is read (cut in SQL); with filters the whole filtered list is read (the cards
    // count it) and cut here.
    let page_no = usize::try_from(params.int("page", 1, 1_000_000)?.unwrap_or(1)).unwrap_or(1);
    let offset = (page_no - 1) * PAGE_ROWS;
    let shown_tests = match kinds[tab] {
        Some(kind) if filters.is_empty() => {
            results::tests_page(&db, &scope, Some(kind), &filters, offset, PAGE_ROWS).await?
        }
        Some(kind) => results::tests_listed(&db, &scope, Some(kind), &filters).await?,
        None => Vec::new(),
    };
    let mut counts = [StatusCounts::default(); 3];
    if filters.is_empty() {
        for c in trees::checkout_counts(&db, &ids).await?.values() {
            counts[0].merge(&c.builds);
            counts[1].merge(&c.boots);
            counts[2].merge(&c.tests);
        }
    } else {
        let other_builds = if tab == 0 {
            Vec::new()
        } else {
            results::builds(&db, &scope, &filters).await?
        };
        for b in builds.iter().chain(&other_builds) {
            counts[0].add(b.build.status, 1);
        }
        for (i, kind) in kinds.iter().enumerate().skip(1) {
            let other = match kind {
                Some(kind) if i != tab => {
                    results::tests_listed(&db, &scope, Some(*kind), &filters).await?
                }
                _ => Vec::new(),
            };
            let rows = if i == tab { &shown_tests } else { &other };
            for t in rows {
                counts[i].add(t.test.status, 1);
            }
        }
    }
    // The page's own query without `tab`, to build the tab links.
    let base_query: String = form_query(&params, "tab");
    let mut out = fields(&[
        ("Tree", opt(&first.tree_name)),
        ("Repository", url_link(&first.git_repository_url)),
        ("Branch", opt(&first.git_repository_branch)),
        ("Commit", esc(&commit)),
        ("Describe", opt(&first.git_commit_name)),
        ("Origin", esc(&first.origin)),
        ("Started", opt(&first.start_time)),
    ]);
    let history = super::history::recent(&db, &first).await?;
    out.push_str(&super::history::chart(&history, &commit, &first.origin));
    let previous = history
        .iter()
        .position(|e| e.git_commit_hash == commit)
        .and_then(|i| history.get(i + 1));
    if let (Some(t), Some(b), Some(prev)) =
        (&first.tree_name, &first.git_repository_branch, previous)
    {
        let href = format!(
            "/tree/{}/{}/compare?origin={}&hash_a={}&hash_b={}",
            enc(t),
            enc(b),
            enc(&first.origin),
            enc(&prev.git_commit_hash),
            enc(&commit)
        );
        out.push_str(&format!(
            "<p>{}</p>",
            link(&href, "Compare with the previous commit")
        ));
    }
    out.push_str("<div class=\"cards\">");
    for (i, name) in ["Builds", "Boots", "Tests"].iter().enumerate() {
        out.push_str(&format!(
            "<div class=\"card\"><h3>{name} ({})</h3>{}</div>",
            counts[i].total(),
            status_bar(&counts[i])
        ));
    }
    out.push_str("</div><p class=\"tabs\">");
    for (i, name) in ["builds", "boots", "tests"].iter().enumerate() {
        let class = if i == tab { " class=\"on\"" } else { "" };
        out.push_str(&format!(
            "<a{class} href=\"/tree/{}?{base_query}&amp;tab={name}\">{name}</a>",
            enc(&commit)
        ));
    }
    out.push_str("</p>");
    out.push_str(&filter_form(&commit, &params, tab));
    let (title_kind, table_html) = match tab {
        0 => ("builds", builds_table(&builds)),
        _ => {
            let rows: &[results::TestRow] = if filters.is_empty() {
                &shown_tests
            } else {
                let end = (offset + PAGE_ROWS).min(shown_tests.len());
                shown_tests.get(offset.min(end)..end).unwrap_or(&[])
            };
            let total = usize::try_from(counts[tab].total()).unwrap_or(usize::MAX);
            let nav = page_links(&commit, &base_query, tab, page_no, total);
            let kind = if tab == 1 { "boots" } else { "tests" };
            (kind, format!("{nav}{}{nav}", tests_table(rows)))
        }
    };
    out.push_str(&table_html);
    let mut kci = format!(
        "kci results {title_kind} --origin {} --commit {commit}",
        params.origin()
    );
    if let Some(u) = &first.git_repository_url {
        kci.push_str(&format!(" --giturl {u}"));
    }
    if let Some(b) = &first.git_repository_branch {
        kci.push_str(&format!(" --branch {b}"));
    }
    let title = format!(
        "{} {}",
        first.tree_name.as_deref().unwrap_or("checkout"),
        first
            .git_commit_name
            .clone()
            .unwrap_or_else(|| commit.chars().take(12).collect())
    );
    Ok(Html(page(&title, "/tree", &out, Some(&kci))))
}

/// Boots or tests rows per page.
const PAGE_ROWS: usize = 500;

/// "rows a–b of n" with links to the previous and next pages (nothing when one page holds
/// them all).
fn page_links(commit: &str, base_query: &str, tab: usize, page: usize, total: usize) -> String {
    if total <= PAGE_ROWS {
        return String::new();
    }
    let pages = total.div_ceil(PAGE_ROWS);
    let tab_name = ["builds", "boots", "tests"][tab];
    let href = |p: usize| {
        format!(
            "/tree/{}?{base_query}&amp;tab={tab_name}&amp;page={p}",
            enc(commit)
        )
    };
    let first = (page - 1) * PAGE_ROWS + 1;
    let last = (page * PAGE_ROWS).min(total);
    let mut out = format!("<p class=\"muted\">rows {first}–{last} of {total} ");
    if page > 1 {
        out.push_str(&format!("<a href=\"{}\">previous</a> ", href(page - 1)));
    }
    if page < pages {
        out.push_str(&format!("<a href=\"{}\">next</a>", href(page + 1)));
    }
    out.push_str("</p>");
    out
}

/// The query string of `params` without `skip`, HTML-escaped for an `href`.
fn form_query(params: &Params, skip: &str) -> String {
    let mut pairs: Vec<String> = Vec::new();
    for key in ["origin", "git_url", "git_branch"] {
        if key != skip
            && let Some(v) = params.get(key)
        {
            pairs.push(format!("{key}={}", enc(v)));
        }
    }
    for (key, _) in FILTER_INPUTS {
        for v in params.all(key) {
            if !v.is_empty() {
                pairs.push(format!("{}={}", enc(key), enc(&v)));
            }
        }
    }
    pairs.join("&amp;")
}

/// The filter inputs, kept in the URL (a GET form).
fn filter_form(commit: &str, params: &Params, tab: usize) -> String {
    let mut out = format!(
        "<form class=\"filters\" method=\"get\" action=\"/tree/{}\">",
        enc(commit)
    );
    for key in ["origin", "git_url", "git_branch"] {
        if let Some(v) = params.get(key) {
            out.push_str(&format!(
                "<input type=\"hidden\" name=\"{key}\" value=\"{}\">",
                esc(v)
            ));
        }
    }
    let tab_name = ["builds", "boots", "tests"][tab];
    out.push_str(&format!(
        "<input type=\"hidden\" name=\"tab\" value=\"{tab_name}\">"
    ));
    for (key, label) in FILTER_INPUTS {
        let value = params.get(key).unwrap_or("");
        out.push_str(&format!(
            "<label>{label} <input name=\"{key}\" value=\"{}\" size=\"10\"></label> ",
            esc(value)
        ));
    }
    out.push_str("<button>Filter</button></form>");
    out
}

/// The builds table (shared with the hardware page).
pub(super) fn builds_table(builds: &[results::BuildRow]) -> String {
    let rows: Vec<Vec<String>> = builds
        .iter()
        .map(|r| {
            let b = &r.build;
            vec![
                link(&format!("/build/{}", enc(&b.id)), &b.id),
                opt(&b.architecture),
                opt(&b.config_name),
                opt(&b.compiler),
                status_pill(b.status),
                b.duration.map(|d| format!("{d:.0} s")).unwrap_or_default(),
                opt(&b.start_time),
            ]
        })
        .collect();
    table(
        &[
            "Build", "Arch", "Config", "Compiler", "Status", "Duration", "Started",
        ],
        &rows,
    )
}

/// The boots or tests table, in the list's order (by path).
pub(super) fn tests_table(tests: &[results::TestRow]) -> String {
    let rows: Vec<Vec<String>> = tests
        .iter()
        .map(|t| {
            let arch = t
                .build
                .as_ref()
                .and_then(|b| b.architecture.clone())
                .unwrap_or_default();
            vec![
                link(
                    &format!("/test/{}", enc(&t.test.id)),
                    t.test.path.as_deref().unwrap_or(&t.test.id),
                ),
                status_pill(t.test.status),
                esc(t.platform().unwrap_or("")),
                esc(&arch),
                t.test
                    .duration
                    .map(|d| format!("{d:.1} s"))
                    .unwrap_or_default(),
                opt(&t.test.start_time),
            ]
        })
        .collect();
    table(
        &["Path", "Status", "Platform", "Arch", "Duration", "Started"],
        &rows,
    )
}
