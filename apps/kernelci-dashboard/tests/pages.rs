//! The web pages over real HTTP with `small/` loaded: every page reachable from the tree
//! listing (following every internal link, breadth first) answers 200 with HTML, and the
//! pages show what the fixture files hold (computed here with serde_json).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeSet, VecDeque};

use common::{Fixture, Server, days_covering, small_fixtures};
use kernelci_tests::TestDb;

/// The `href="..."` values of a page (HTML-unescaped `&amp;`).
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

async fn get(base: &str, path: &str) -> (u16, String, String) {
    let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
    let code = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (code, ctype, resp.text().await.unwrap())
}

#[tokio::test]
async fn every_page_reachable_from_the_tree_listing_renders() {
    let Some(dir) = small_fixtures() else { return };
    let fixture = Fixture::read(&dir);
    let server = Server::start(TestDb::new().await, &dir).await;
    let days = days_covering(&fixture);
    let origins: BTreeSet<String> = fixture
        .checkouts
        .values()
        .filter_map(|c| c["origin"].as_str().map(String::from))
        .collect();

    let mut queue: VecDeque<String> = origins
        .iter()
        .map(|o| format!("/tree?origin={o}&interval_in_days={days}"))
        .collect();
    // Issues are windowed by when they were loaded (now).
    queue.push_back("/issues".into());
    queue.push_back("/hardware".into());
    let mut seen: BTreeSet<String> = queue.iter().cloned().collect();
    let mut pages = 0;
    let mut kinds: BTreeSet<&str> = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        let (code, ctype, html) = get(&server.base, &path).await;
        assert_eq!(code, 200, "GET {path}:\n{html}");
        assert!(ctype.starts_with("text/html"), "GET {path}: {ctype}");
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>"));
        assert!(
            html.contains("On a terminal: <code>kci "),
            "GET {path}: no kci command"
        );
        pages += 1;
        for k in ["/tree/", "/build/", "/test/", "/issue/"] {
            if path.starts_with(k) {
                kinds.insert(k);
            }
        }
        if path.contains("/compare?") {
            kinds.insert("compare");
            assert!(html.contains("Changed tests"), "{path}");
        }
        for href in hrefs(&html) {
            // Internal links only; a budget keeps the crawl short.
            if href.starts_with('/') && pages + queue.len() < 400 && seen.insert(href.clone()) {
                queue.push_back(href);
            }
        }
    }
    assert_eq!(
        kinds.len(),
        5,
        "checkout, compare, build, test and issue pages reached: {kinds:?}"
    );
    assert!(pages > 50, "only {pages} pages");
    eprintln!("crawled {pages} pages");

    // The tree listing names every maestro tree of the fixtures.
    let (_, _, html) = get(
        &server.base,
        &format!("/tree?origin=maestro&interval_in_days={days}"),
    )
    .await;
    for c in fixture
        .checkouts
        .values()
        .filter(|c| c["origin"] == "maestro")
    {
        if let Some(tree) = c["tree_name"].as_str() {
            assert!(html.contains(&format!("<td>{tree}</td>")), "{tree} missing");
        }
    }

    // A checkout page: its builds tab lists exactly its builds, the cards count them.
    let (id, checkout) = fixture
        .checkouts
        .iter()
        .find(|(id, _)| !fixture.build_counts(id).is_empty())
        .unwrap();
    let commit = checkout["git_commit_hash"].as_str().unwrap();
    let origin = checkout["origin"].as_str().unwrap();
    let mut path = format!("/tree/{commit}?origin={origin}");
    for (key, field) in [
        ("git_url", "git_repository_url"),
        ("git_branch", "git_repository_branch"),
    ] {
        if let Some(v) = checkout[field].as_str() {
            path.push_str(&format!("&{key}={}", common::enc(v)));
        }
    }
    let (code, _, html) = get(&server.base, &path).await;
    assert_eq!(code, 200);
    let builds: usize = fixture.build_counts(id).values().sum::<u64>() as usize;
    // The same commit may have several checkouts (selector narrows to this one's branch).
    let listed = hrefs(&html)
        .iter()
        .filter(|h| h.starts_with("/build/"))
        .count();
    assert!(listed >= builds, "{listed} build links, {builds} builds");
    assert!(
        html.contains(&format!("<h3>Builds ({listed})</h3>")),
        "{html}"
    );

    // Filters stay in the URL: a filter for a status nobody has empties the table.
    let (code, _, html) = get(
        &server.base,
        &format!("{path}&tab=tests&filter_test.status=MISS&filter_architecture=nonexistent"),
    )
    .await;
    assert_eq!(code, 200);
    assert!(html.contains("Nothing here."), "{html}");
    assert!(
        html.contains("value=\"nonexistent\""),
        "the filter is kept in the form"
    );

    // Unknown ids and bad parameters: HTML error pages with the right status.
    assert_eq!(get(&server.base, "/build/nope:nope").await.0, 404);
    assert_eq!(
        get(&server.base, "/tree/0000000000?origin=maestro").await.0,
        404
    );
    assert_eq!(get(&server.base, "/tree?interval_in_days=x").await.0, 400);
    let (code, _, html) = get(&server.base, "/issue/x?version=-1").await;
    assert_eq!(code, 400, "{html}");
    // Text from the data is escaped.
    assert!(!html.contains("<script"));
}

/// An empty database renders every listing; hostile strings in submitted names are escaped.
#[tokio::test]
async fn empty_database_and_hostile_strings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(TestDb::new().await, dir.path()).await;
    for path in ["/", "/tree", "/issues", "/hardware"] {
        let resp = reqwest::get(format!("{}{path}", server.base))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("Nothing here."), "{path}: {html}");
    }
    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    let evil = "<script>alert(1)</script>";
    let attr = "\"><img src=x onerror=alert(1)>";
    let doc = serde_json::json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "lab:c1", "origin": "lab", "tree_name": evil,
                       "git_repository_branch": attr, "git_commit_hash": COMMIT,
                       "start_time": chrono::Utc::now().to_rfc3339()}],
        "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "status": "FAIL",
                    "config_name": attr, "log_excerpt": evil, "comment": evil}],
        "tests": [{"id": "lab:t1", "origin": "lab", "build_id": "lab:b1", "path": "boot",
                   "status": "FAIL", "comment": evil,
                   "environment": {"misc": {"platform": attr}}}],
    });
    let sub = kernelci_kcidb::load(doc.to_string().as_bytes()).unwrap();
    server.db.load(sub).await.unwrap();
    for path in [
        "/tree?origin=lab",
        &format!("/tree/{COMMIT}?origin=lab"),
        &format!("/tree/{COMMIT}?origin=lab&tab=boots"),
        "/build/lab%3Ab1",
        "/test/lab%3At1",
    ] {
        let (code, _, html) = get(&server.base, path).await;
        assert_eq!(code, 200, "{path}: {html}");
        assert!(!html.contains("<script>"), "{path}: unescaped script");
        if path.starts_with("/build") {
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{html}"
            );
        }
        assert!(!html.contains("<img"), "{path}: unescaped attribute");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&quot;&gt;&lt;img"),
            "{path}: the text is shown escaped"
        );
    }
}
