//! The dashboard API over real HTTP on a real port, with `small/` loaded into SQLite or
//! (with `KERNELCI_TEST_DATABASE_URL`) PostgreSQL. Expected answers are computed from the
//! fixture files with serde_json, independently of the server.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{Fixture, Server, days_covering, enc, is_boot, small_fixtures};
use kernelci_tests::TestDb;
use serde_json::Value;

fn upper(v: &Value, status: &str) -> u64 {
    v[status]
        .as_u64()
        .unwrap_or_else(|| panic!("no {status} in {v}"))
}

fn assert_counts(got: &Value, want: &HashMap<String, u64>, lower: bool, what: &str) {
    for s in ["PASS", "FAIL", "ERROR", "MISS", "SKIP", "DONE", "NULL"] {
        let key = if lower {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        };
        assert_eq!(
            upper(got, &key),
            want.get(s).copied().unwrap_or(0),
            "{what}: {s} in {got}"
        );
    }
}

#[tokio::test]
async fn dashboard_api_answers_match_the_fixtures() {
    let Some(dir) = small_fixtures() else { return };
    let f = Fixture::read(&dir);
    let server = Server::start(TestDb::new().await, &dir).await;
    let days = days_covering(&f);

    // Tree listing: the latest checkout per tree/url/branch of each origin.
    let origins: BTreeSet<&str> = f
        .checkouts
        .values()
        .map(|c| c["origin"].as_str().unwrap())
        .collect();
    for origin in origins {
        let mut heads: HashMap<(String, String, String), (&str, &str)> = HashMap::new();
        for (id, c) in f.checkouts.iter().filter(|(_, c)| c["origin"] == origin) {
            let key = (
                c["tree_name"].to_string(),
                c["git_repository_url"].to_string(),
                c["git_repository_branch"].to_string(),
            );
            let start = c["start_time"].as_str().unwrap();
            let e = heads.entry(key).or_insert((id, start));
            if start > e.1 {
                *e = (id, start);
            }
        }
        let list = server
            .ok(&format!("tree/?origin={origin}&interval_in_days={days}"))
            .await;
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), heads.len(), "{origin}: {list:?}");
        for item in list {
            let id = item["id"].as_str().unwrap();
            assert!(heads.values().any(|h| h.0 == id), "{id} is not a head");
            assert_counts(&item["build_status"], &f.build_counts(id), false, id);
            assert_counts(&item["boot_status"], &f.test_counts(id, true), true, id);
            assert_counts(&item["test_status"], &f.test_counts(id, false), true, id);
        }
    }
    // A window that excludes all of it.
    assert_eq!(
        server.ok("tree/?interval_in_days=1").await,
        Value::Array(vec![])
    );
    // kci-dev asks for `tree` without the slash.
    assert!(
        server
            .ok(&format!("tree?interval_in_days={days}"))
            .await
            .is_array()
    );

    // Every checkout's builds, boots, tests and summary, commit-keyed and direct.
    for (id, c) in &f.checkouts {
        let hash = c["git_commit_hash"].as_str().unwrap();
        let q = format!(
            "origin={}&git_url={}&git_branch={}",
            enc(c["origin"].as_str().unwrap()),
            enc(c["git_repository_url"].as_str().unwrap()),
            enc(c["git_repository_branch"].as_str().unwrap())
        );
        let builds = server.ok(&format!("tree/{hash}/builds?{q}")).await;
        let want_builds: usize = f.build_counts(id).values().sum::<u64>() as usize;
        assert_eq!(
            builds["builds"].as_array().unwrap().len(),
            want_builds,
            "{id}"
        );
        let boots = server.ok(&format!("tree/{hash}/boots?{q}")).await;
        let want_boots = f.test_counts(id, true).values().sum::<u64>() as usize;
        assert_eq!(boots["boots"].as_array().unwrap().len(), want_boots, "{id}");
        for b in boots["boots"].as_array().unwrap() {
            let p = b["path"].as_str().unwrap();
            assert!(p == "boot" || p.starts_with("boot."), "{p}");
            assert!(b["environment_misc"].get("platform").is_some());
        }
        let tests = server.ok(&format!("tree/{hash}/tests?{q}")).await;
        let want_tests = f.test_counts(id, false).values().sum::<u64>() as usize;
        assert_eq!(tests["tests"].as_array().unwrap().len(), want_tests, "{id}");
        let summary = server.ok(&format!("tree/{hash}/summary?{q}")).await;
        assert_counts(
            &summary["summary"]["builds"]["status"],
            &f.build_counts(id),
            false,
            id,
        );
        assert_counts(
            &summary["summary"]["boots"]["status"],
            &f.test_counts(id, true),
            false,
            id,
        );
        assert_counts(
            &summary["summary"]["tests"]["status"],
            &f.test_counts(id, false),
            false,
            id,
        );
        assert_eq!(summary["common"]["tree_url"], c["git_repository_url"]);
        // The tree/branch/commit form answers the same.
        let direct = server
            .ok(&format!(
                "tree/{}/{}/{hash}/summary?origin={}",
                enc(c["tree_name"].as_str().unwrap()),
                enc(c["git_repository_branch"].as_str().unwrap()),
                enc(c["origin"].as_str().unwrap())
            ))
            .await;
        assert_eq!(direct["summary"], summary["summary"]);

        // Server-side filters.
        let arch = "arm64";
        let want_arm = f
            .builds
            .values()
            .filter(|b| b["checkout_id"] == id.as_str() && b["architecture"] == arch)
            .count();
        let got = server
            .ok(&format!(
                "tree/{hash}/builds?{q}&filter_architecture={arch}"
            ))
            .await;
        assert_eq!(
            got["builds"].as_array().unwrap().len(),
            want_arm,
            "{id} arm64"
        );
        let want_fail = f
            .tests
            .values()
            .filter(|t| {
                f.checkout_of_test(t).as_deref() == Some(id.as_str())
                    && !is_boot(t)
                    && t.get("status").and_then(Value::as_str) == Some("FAIL")
            })
            .count();
        let got = server
            .ok(&format!("tree/{hash}/tests?{q}&filter_test.status=FAIL"))
            .await;
        assert_eq!(
            got["tests"].as_array().unwrap().len(),
            want_fail,
            "{id} FAIL"
        );
        let got = server
            .ok(&format!("tree/{hash}/tests?{q}&limit=2&offset=1"))
            .await;
        assert_eq!(
            got["tests"].as_array().unwrap().len(),
            want_tests.saturating_sub(1).min(2)
        );
    }

    // Errors.
    let (code, body) = server.get("tree/0000/builds?origin=maestro").await;
    assert_eq!(code, 404);
    assert!(
        body["error"].as_str().unwrap().contains("No results"),
        "{body}"
    );
    let (code, body) = server.get("tree/?interval_in_days=abc").await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("interval_in_days"),
        "{body}"
    );
    let any = f.checkouts.values().next().unwrap();
    let hash = any["git_commit_hash"].as_str().unwrap();
    let origin = any["origin"].as_str().unwrap();
    let (code, body) = server
        .get(&format!(
            "tree/{hash}/tests?origin={origin}&filter_test.status=PASSED"
        ))
        .await;
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("filter_test.status"),
        "{body}"
    );
    let (code, _) = server
        .get(&format!(
            "tree/{hash}/builds?origin={origin}&filter_duration_gt=x"
        ))
        .await;
    assert_eq!(code, 400);

    // One build, one test, their issues.
    let (bid, b) = f.builds.iter().next().unwrap();
    let build = server.ok(&format!("build/{bid}")).await;
    assert_eq!(build["id"], bid.as_str());
    assert_eq!(build["config_name"], b["config_name"]);
    let checkout = &f.checkouts[b["checkout_id"].as_str().unwrap()];
    assert_eq!(build["git_commit_hash"], checkout["git_commit_hash"]);
    let want = f
        .tests
        .values()
        .filter(|t| t["build_id"] == bid.as_str())
        .count();
    assert_eq!(
        server
            .ok(&format!("build/{bid}/tests"))
            .await
            .as_array()
            .unwrap()
            .len(),
        want
    );
    let (code, body) = server.get("build/nobody:nothing").await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("Build not found"))
    );
    let (tid, t) = f.tests.iter().next().unwrap();
    let test = server.ok(&format!("test/{tid}")).await;
    assert_eq!(test["path"], t["path"]);
    assert_eq!(
        test["environment_misc"]["platform"],
        t["environment"]["misc"]["platform"]
    );
    let (code, _) = server.get("test/nobody:nothing").await;
    assert_eq!(code, 404);

    let present =
        |i: &&serde_json::Map<String, Value>| i.get("present") != Some(&Value::Bool(false));
    let with_issue: BTreeSet<&str> = f
        .incidents
        .values()
        .filter(present)
        .filter_map(|i| i.get("build_id").and_then(Value::as_str))
        .collect();
    let linked = with_issue.iter().next().expect("a build incident");
    let issues = server.ok(&format!("build/{linked}/issues")).await;
    let want: BTreeSet<(String, u64)> = f
        .incidents
        .values()
        .filter(present)
        .filter(|i| i.get("build_id").and_then(Value::as_str) == Some(*linked))
        .map(|i| {
            (
                i["issue_id"].as_str().unwrap().to_string(),
                i["issue_version"].as_u64().unwrap(),
            )
        })
        .collect();
    let got: BTreeSet<(String, u64)> = issues
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let unlinked = f
        .builds
        .keys()
        .find(|b| !with_issue.contains(b.as_str()))
        .unwrap();
    let body = server.ok(&format!("build/{unlinked}/issues")).await;
    assert_eq!(body["error"], "No issues were found for this build");

    // Issues: listing (ingested just now), details with the highest version, incidents.
    let now = chrono::Utc::now().timestamp();
    let listing = server
        .ok(&format!(
            "issue/?startTimestampInSeconds={}&endTimestampInSeconds={}",
            now - 3600,
            now + 3600
        ))
        .await;
    let ids: BTreeSet<&str> = f.issues.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(listing["issues"].as_array().unwrap().len(), ids.len());
    let filtered = server
        .ok(&format!(
            "issue/?startTimestampInSeconds={}&endTimestampInSeconds={}&filter_origin=maestro",
            now - 3600,
            now + 3600
        ))
        .await;
    let want = f
        .issues
        .keys()
        .filter(|k| f.issues[*k]["origin"] == "maestro")
        .map(|k| k.0.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(filtered["issues"].as_array().unwrap().len(), want);
    let old = server
        .ok("issue/?startTimestampInSeconds=0&endTimestampInSeconds=1")
        .await;
    assert_eq!(old["issues"], Value::Array(vec![]));
    let (code, _) = server
        .get("issue/?startTimestampInSeconds=5&endTimestampInSeconds=1")
        .await;
    assert_eq!(code, 400);
    for id in &ids {
        let latest = f
            .issues
            .keys()
            .filter(|k| k.0 == *id)
            .map(|k| k.1)
            .max()
            .unwrap();
        let issue = server.ok(&format!("issue/{id}")).await;
        assert_eq!(issue["version"].as_u64(), Some(latest), "{id}");
        for (part, col) in [("builds", "build_id"), ("tests", "test_id")] {
            let want = f
                .incidents
                .values()
                .filter(present)
                .filter(|i| i["issue_id"] == *id && i["issue_version"].as_u64() == Some(latest))
                .filter_map(|i| i.get(col).and_then(Value::as_str))
                .filter(|r| {
                    if col == "build_id" {
                        f.builds.contains_key(*r)
                    } else {
                        f.tests.contains_key(*r)
                    }
                })
                .collect::<BTreeSet<_>>()
                .len();
            let got = server.ok(&format!("issue/{id}/{part}")).await;
            assert_eq!(got.as_array().unwrap().len(), want, "{id} {part}");
        }
    }
    let (code, _) = server.get("issue/nobody:nothing").await;
    assert_eq!(code, 404);

    // Hardware: the platforms of maestro's tests.
    let platforms: BTreeSet<&str> = f
        .tests
        .values()
        .filter(|t| t["origin"] == "maestro")
        .filter_map(|t| t.get("environment")?.get("misc")?.get("platform")?.as_str())
        .collect();
    let hw = server
        .ok(&format!(
            "hardware/?origin=maestro&startTimestampInSeconds=0&endTimestampInSeconds={}",
            now + 3600
        ))
        .await;
    let got: BTreeSet<&str> = hw["hardware"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["platform"].as_str().unwrap())
        .collect();
    assert_eq!(got, platforms);

    let origins = server
        .ok(&format!("origins/?interval_in_days={days}"))
        .await;
    let want: BTreeSet<&str> = f
        .checkouts
        .values()
        .map(|c| c["origin"].as_str().unwrap())
        .collect();
    let got: BTreeSet<&str> = origins["checkout_origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    let schema = server.ok("schema/").await;
    assert!(schema["paths"]["/api/tree/"].is_object());
    for path in [
        "/api/regressions/",
        "/api/regressions/{id}",
        "/api/flaky/",
        "/api/health/",
    ] {
        assert!(schema["paths"][path]["get"].is_object(), "{path}: {schema}");
    }

    // The regression tracker over the fixtures: every stored regression is one of the
    // fixtures' builds or tests, answers by id, and its first failure is a failure.
    kernelci_kcidb::regress::track::track_once(
        &server.db,
        &kernelci_kcidb::regress::track::TrackerConfig::default(),
    )
    .await
    .unwrap();
    let all = server.ok("regressions/?state=all&limit=1000").await;
    eprintln!("{} stored regression(s)", all.as_array().unwrap().len());
    for r in all.as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        assert_eq!(&server.ok(&format!("regressions/{id}")).await, r);
        let object = r["first_fail"]["object_id"].as_str().unwrap();
        let stored = if r["kind"] == "build" {
            &f.builds[object]
        } else {
            &f.tests[object]
        };
        assert!(
            matches!(stored["status"].as_str(), Some("FAIL" | "ERROR")),
            "{r}: {stored:?}"
        );
        assert_eq!(stored["origin"], r["origin"]);
    }
    let open = server.ok("regressions/").await;
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] != "fixed"),
        "{open}"
    );
    let health = server
        .ok("health/?interval_in_days=36500&threshold=0")
        .await;
    for h in health.as_array().unwrap() {
        let (total, infra) = (
            h["total"].as_i64().unwrap(),
            h["infrastructure"].as_i64().unwrap(),
        );
        assert!(total > 0 && infra <= total, "{h}");
        assert_eq!(h["above_threshold"], infra > 0, "{h}");
    }
}

/// Cursor pages (`page_size`, then each reply's `X-Next-Cursor`) walk the same list as the
/// whole reply, in order, without repeats; a bad cursor is a 400.
#[tokio::test]
async fn cursor_pages_cover_the_list() {
    let Some(dir) = small_fixtures() else { return };
    let fixture = Fixture::read(&dir);
    let server = Server::start(TestDb::new().await, &dir).await;
    // The checkout with the most tests.
    let (checkout, _) = fixture
        .checkouts
        .iter()
        .max_by_key(|(id, _)| fixture.test_counts(id, false).values().sum::<u64>())
        .unwrap();
    let c = &fixture.checkouts[checkout];
    let base = format!(
        "tree/{}/tests?origin={}&git_url={}&git_branch={}",
        c["git_commit_hash"].as_str().unwrap(),
        c["origin"].as_str().unwrap(),
        enc(c["git_repository_url"].as_str().unwrap()),
        enc(c["git_repository_branch"].as_str().unwrap())
    );
    let whole = server.ok(&base).await;
    let all: Vec<&str> = whole["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(all.len() > 20, "{} tests", all.len());
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{}/api/{base}&page_size=7", server.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        cursor = resp
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let page: serde_json::Value = resp.json().await.unwrap();
        let items = page["tests"].as_array().unwrap();
        assert!(items.len() <= 7 && !items.is_empty());
        seen.extend(items.iter().map(|t| t["id"].as_str().unwrap().to_string()));
        pages += 1;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, all, "the pages, joined, are the list");
    assert_eq!(pages, all.len().div_ceil(7));
    let (code, body) = server.get(&format!("{base}&page_size=7&cursor=zz")).await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = server.get(&format!("{base}&cursor=6162")).await;
    assert_eq!(code, 400, "a cursor needs page_size");
}

/// Walks a listing by cursor pages of `size`: the ids (`key` of each item of `member`, or
/// of the array itself when `member` is empty), joined, are the whole list's.
async fn walk_cursor_pages(server: &Server, path: &str, member: &str, key: &str, size: usize) {
    let items = |v: &serde_json::Value| -> Vec<String> {
        let list = if member.is_empty() { v } else { &v[member] };
        list.as_array()
            .expect("a list")
            .iter()
            .map(|t| t[key].as_str().expect("an id").to_string())
            .collect()
    };
    let all = items(&server.ok(path).await);
    assert!(all.len() > size, "{path}: {} items", all.len());
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/api/{path}&page_size={size}", server.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = reqwest::get(&url).await.expect("request");
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        cursor = resp
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().expect("ASCII").to_string());
        let page = items(&resp.json().await.expect("JSON"));
        assert!(page.len() <= size && !page.is_empty(), "{url}");
        seen.extend(page);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, all, "{path}: the pages, joined, are the list");
    let (code, body) = server.get(&format!("{path}&page_size=1&cursor=zz")).await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn listings_have_cursor_pages() {
    let Some(dir) = small_fixtures() else { return };
    let fixture = Fixture::read(&dir);
    let server = Server::start(TestDb::new().await, &dir).await;
    let days = days_covering(&fixture);
    // The origin with the most trees.
    let mut trees_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for c in fixture.checkouts.values() {
        let key = format!(
            "{}|{}|{}",
            c["tree_name"], c["git_repository_url"], c["git_repository_branch"]
        );
        let origin = c["origin"].as_str().expect("origin");
        trees_of.entry(origin).or_default().insert(key);
    }
    let origin = trees_of
        .iter()
        .max_by_key(|(o, t)| (t.len(), *o))
        .map(|(o, _)| *o)
        .expect("a checkout");
    let trees = format!("tree/?origin={origin}&interval_in_days={days}");
    walk_cursor_pages(&server, &trees, "", "id", 1).await;
    let now = chrono::Utc::now().timestamp();
    let hardware = format!(
        "hardware/?origin=maestro&startTimestampInSeconds=0&endTimestampInSeconds={}",
        now + 3600
    );
    walk_cursor_pages(&server, &hardware, "hardware", "hardware_name", 1).await;
}
