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
    // The regression tracker's objects are pages too.
    kernelci_kcidb::regress::track::track_once(
        &server.db,
        &kernelci_kcidb::regress::track::TrackerConfig::default(),
    )
    .await
    .unwrap();
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
    queue.push_back(format!("/hardware?origin=maestro&interval_in_days={days}"));
    queue.push_back("/regressions?state=all".into());
    queue.push_back(format!("/health?interval_in_days={days}"));
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
        for k in ["/tree/", "/build/", "/test/", "/issue/", "/hardware/"] {
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
            // The log viewer fetches the fixtures' (internet) log URLs: tested on its own.
            let internal = href.starts_with('/') && !href.starts_with("/log/");
            if internal && pages + queue.len() < 400 && seen.insert(href.clone()) {
                queue.push_back(href);
            }
        }
    }
    assert_eq!(
        kinds.len(),
        6,
        "checkout, compare, build, test, issue and hardware pages reached: {kinds:?}"
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
    for path in [
        "/",
        "/tree",
        "/issues",
        "/hardware",
        "/regressions",
        "/health",
    ] {
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

/// Four checkouts of one branch loaded one by one, the regression tracker run after each
/// (as the KCIDB role does): the stored regressions over HTTP on the page and the API,
/// by state (a still-failing boot, a fixed and a flaky test; nothing for a test that
/// always passed, always failed or failed on the infrastructure), the flaky list, a
/// failure's class on its test page, lab health against a threshold, and the errors.
#[tokio::test]
async fn regressions_are_the_stored_lifecycle_objects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(TestDb::new().await, dir.path()).await;
    let now = chrono::Utc::now();
    let commit = |i: usize| format!("{i:040x}");
    // (path, statuses on the four commits, oldest first)
    let cases = [
        ("boot", ["PASS", "PASS", "FAIL", "FAIL"]),
        ("kselftest.net", ["PASS", "PASS", "PASS", "PASS"]),
        ("ltp.syscalls", ["FAIL", "FAIL", "FAIL", "FAIL"]),
        ("ltp.fs", ["PASS", "FAIL", "PASS", "PASS"]),
        ("kselftest.flip", ["PASS", "FAIL", "PASS", "FAIL"]),
        ("baseline.infra", ["PASS", "PASS", "PASS", "FAIL"]),
    ];
    let cfg = kernelci_kcidb::regress::track::TrackerConfig::default();
    for i in 0..4 {
        let start = (now - chrono::Duration::hours(4 - i as i64)).to_rfc3339();
        let tests: Vec<serde_json::Value> = cases
            .iter()
            .map(|(path, statuses)| {
                let mut misc = serde_json::json!({"lab": "lab-a"});
                if *path == "baseline.infra" {
                    misc["error_code"] = "Infrastructure".into();
                }
                serde_json::json!({"id": format!("lab:t{i}-{path}"), "origin": "lab",
                    "build_id": format!("lab:b{i}"), "path": path, "status": statuses[i],
                    "misc": misc, "environment": {"misc": {"platform": "qemu-x86"}}})
            })
            .collect();
        let doc = serde_json::json!({"version": {"major": 5, "minor": 3},
            "checkouts": [{"id": format!("lab:c{i}"), "origin": "lab",
                "tree_name": "mainline", "git_repository_branch": "master",
                "git_repository_url": "https://git.example/linux.git",
                "git_commit_hash": commit(i), "start_time": start}],
            "builds": [{"id": format!("lab:b{i}"), "origin": "lab",
                "checkout_id": format!("lab:c{i}"), "status": "PASS",
                "config_name": "defconfig", "architecture": "x86_64"}],
            "tests": tests});
        server
            .db
            .load(kernelci_kcidb::load(doc.to_string().as_bytes()).unwrap())
            .await
            .unwrap();
        kernelci_kcidb::regress::track::track_once(&server.db, &cfg)
            .await
            .unwrap();
    }

    // The API: open (the default) is the still-failing boot and the flaky test.
    let by_path = |list: &serde_json::Value| -> BTreeSet<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r["path"].as_str().unwrap(),
                    r["state"].as_str().unwrap()
                )
            })
            .collect()
    };
    let open = server.ok("regressions/?origin=lab").await;
    assert_eq!(
        by_path(&open),
        BTreeSet::from(["boot=still_failing".into(), "kselftest.flip=flaky".into()]),
        "{open}"
    );
    let boot = open
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "boot")
        .unwrap()
        .clone();
    assert_eq!(boot["class"], "kernel");
    assert_eq!(boot["kind"], "test");
    assert_eq!(
        (
            &boot["tree_name"],
            &boot["git_repository_branch"],
            &boot["platform"]
        ),
        (&"mainline".into(), &"master".into(), &"qemu-x86".into())
    );
    assert_eq!(
        (&boot["config_name"], &boot["architecture"]),
        (&"defconfig".into(), &"x86_64".into())
    );
    assert_eq!(boot["fail_count"], 2);
    assert_eq!(boot["last_pass"]["checkout_id"], "lab:c1");
    assert_eq!(boot["last_pass"]["commit"], commit(1));
    assert_eq!(boot["first_fail"]["checkout_id"], "lab:c2");
    assert_eq!(boot["first_fail"]["object_id"], "lab:t2-boot");
    assert_eq!(boot["last_fail"]["object_id"], "lab:t3-boot");
    assert_eq!(boot["last_fail"]["commit"], commit(3));
    assert!(boot["fixed"].is_null(), "{boot}");
    assert!(boot["opened"].as_str().unwrap() <= boot["updated"].as_str().unwrap());
    // Newest change first.
    let updated: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["updated"].as_str().unwrap())
        .collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "{updated:?}");
    let fixed = server.ok("regressions/?state=fixed").await;
    assert_eq!(
        by_path(&fixed),
        BTreeSet::from(["ltp.fs=fixed".into()]),
        "{fixed}"
    );
    assert_eq!(fixed[0]["fixed"]["checkout_id"], "lab:c2");
    assert_eq!(fixed[0]["fixed"]["commit"], commit(2));
    let all = server
        .ok("regressions/?state=all&tree_name=mainline&git_branch=master")
        .await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert_eq!(
        server
            .ok("regressions/?state=new,fixed&limit=1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server.ok("regressions/?state=all&origin=other").await,
        serde_json::json!([])
    );
    assert_eq!(
        server.ok("regressions/?state=all&git_branch=next").await,
        serde_json::json!([])
    );
    // One by id; errors.
    let id = boot["id"].as_str().unwrap();
    assert_eq!(server.ok(&format!("regressions/{id}")).await, boot);
    let (code, body) = server.get("regressions/0123abcd").await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("0123abcd"),
        "{body}"
    );
    for (query, param) in [
        ("state=bogus", "state: "),
        ("state=open,fixd", "state: "),
        ("limit=0", "limit: "),
        ("limit=1001", "limit: "),
    ] {
        let (code, body) = server.get(&format!("regressions/?{query}")).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with(param),
            "{query}: {body}"
        );
    }
    // Flaky identities.
    let flaky = server.ok("flaky/?origin=lab").await;
    assert_eq!(flaky.as_array().unwrap().len(), 1, "{flaky}");
    assert_eq!(flaky[0]["path"], "kselftest.flip");
    assert_eq!(flaky[0]["flips"], 3);
    assert_eq!(flaky[0]["last_outcome"], "fail");
    assert_eq!(
        server.ok("flaky/?origin=other").await,
        serde_json::json!([])
    );
    // Health: 24 test results on lab-a/qemu-x86, one an infrastructure failure.
    let row = |list: &serde_json::Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|h| h["platform"] == "qemu-x86")
            .unwrap()
            .clone()
    };
    let health = server.ok("health/?threshold=0.04").await;
    let h = row(&health);
    assert_eq!(
        (&h["origin"], &h["lab"]),
        (&"lab".into(), &"lab-a".into()),
        "{health}"
    );
    assert_eq!(
        (&h["total"], &h["infrastructure"]),
        (&24.into(), &1.into()),
        "{health}"
    );
    // Failures: boot x2, ltp.syscalls x4, ltp.fs x1, kselftest.flip x2.
    assert_eq!(h["failures"], 9, "{health}");
    assert!((h["infrastructure_rate"].as_f64().unwrap() - 1.0 / 24.0).abs() < 1e-9);
    assert_eq!(h["above_threshold"], true);
    assert_eq!(row(&server.ok("health/").await)["above_threshold"], false);
    for query in [
        "threshold=1.5",
        "threshold=-0.1",
        "threshold=x",
        "interval_in_days=0",
    ] {
        let (code, body) = server.get(&format!("health/?{query}")).await;
        assert_eq!(code, 400, "{query}: {body}");
        let name = query.split('=').next().unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{name}: ")),
            "{body}"
        );
    }

    // The page: open regressions by default, with their commits and latest failure.
    let (code, _, html) = get(&server.base, "/regressions?origin=lab").await;
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("href=\"/test/lab%3At3-boot\""), "{html}");
    assert!(
        html.contains(&format!(
            "href=\"/tree/{}?origin=lab&amp;git_url=https%3A%2F%2Fgit.example%2Flinux.git&amp;git_branch=master\"",
            commit(2)
        )),
        "first failing commit: {html}"
    );
    assert!(
        html.contains("<td>still_failing</td><td>kernel</td>"),
        "{html}"
    );
    assert!(
        !html.contains("ltp.syscalls") && !html.contains("kselftest.net"),
        "{html}"
    );
    assert!(
        !html.contains("<td>ltp.fs</td>"),
        "fixed is not open: {html}"
    );
    assert!(html.contains("<h2>Flaky (1)</h2>"), "{html}");
    assert!(
        html.contains("kci regressions --state open --origin lab"),
        "{html}"
    );
    let links = hrefs(&html);
    assert!(
        links.contains(&"/regressions?state=fixed&origin=lab".to_string()),
        "{links:?}"
    );
    let (code, _, html) = get(&server.base, "/regressions?state=fixed&origin=lab").await;
    assert_eq!(code, 200);
    assert!(
        html.contains("<td>fixed</td>") && html.contains("<td>ltp.fs</td>"),
        "{html}"
    );
    assert!(!html.contains("lab%3At3-boot"), "{html}");
    assert_eq!(get(&server.base, "/regressions?state=bogus").await.0, 400);
    // Every link of the page answers.
    let (_, _, html) = get(&server.base, "/regressions?state=all").await;
    for href in hrefs(&html).into_iter().filter(|h| h.starts_with('/')) {
        let (code, _, page) = get(&server.base, &href).await;
        assert_eq!(code, 200, "{href}: {page}");
    }
    // A failure's class beside its status; none for a pass.
    let (_, _, html) = get(&server.base, "/test/lab%3At3-boot").await;
    assert!(
        html.contains("title=\"failure class\">kernel</span>"),
        "{html}"
    );
    let (_, _, html) = get(&server.base, "/test/lab%3At3-baseline.infra").await;
    assert!(
        html.contains("title=\"failure class\">infrastructure</span>"),
        "{html}"
    );
    let (_, _, html) = get(&server.base, "/test/lab%3At3-kselftest.net").await;
    assert!(!html.contains("failure class"), "{html}");
    // Health: the row above the threshold highlighted.
    let (code, _, html) = get(&server.base, "/health?threshold=0.04").await;
    assert_eq!(code, 200, "{html}");
    let warn = html.split("<tr class=\"warn\">").nth(1).unwrap();
    assert!(
        warn.starts_with("<td>lab</td><td>lab-a</td><td>qemu-x86</td>"),
        "{html}"
    );
    assert!(
        html.contains("kci health --days 7 --threshold 0.04"),
        "{html}"
    );
    let (_, _, html) = get(&server.base, "/health").await;
    assert!(
        !html.contains("class=\"warn\"") && html.contains("qemu-x86"),
        "{html}"
    );
    assert_eq!(get(&server.base, "/health?threshold=2").await.0, 400);

    // The hardware filter of the checkout page narrows the boots shown.
    let boots = format!("/tree/{}?origin=lab&tab=boots", commit(3));
    let (_, _, html) = get(&server.base, &format!("{boots}&filter_hardware=qemu-x86")).await;
    assert!(html.contains("href=\"/test/lab%3At3-boot\""), "{html}");
    let (_, _, html) = get(&server.base, &format!("{boots}&filter_hardware=rpi4")).await;
    assert!(
        html.contains("Nothing here.") && html.contains("value=\"rpi4\""),
        "{html}"
    );
    // The compare page (computed on request, apart from the tracker) shows the boot.
    let (_, _, html) = get(&server.base, &format!("/tree/{}?origin=lab", commit(2))).await;
    let compare = hrefs(&html)
        .into_iter()
        .find(|h| h.contains("/compare?"))
        .unwrap();
    let (code, _, html) = get(&server.base, &compare).await;
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains("<td>regression</td><td>boot|defconfig|x86_64|qemu-x86</td>"),
        "{html}"
    );
}

const KBUILD_LOG: &str = "\
+ make ARCH=x86_64 -j4 bzImage
  CC      init/main.o
  CC      drivers/foo.o
drivers/foo.c: In function \u{2018}foo_probe\u{2019}:
drivers/foo.c:12:5: error: \u{2018}x\u{2019} undeclared (first use in this function)
   12 |     x = 1;
      |     ^
  CC      kernel/exit.o
make[2]: *** [scripts/Makefile.build:244: drivers/foo.o] Error 1
";

/// The log viewer fetches a build's http log, shows the logspec finding and highlights its
/// line; it refuses file:// logs and reports logs it cannot fetch.
#[tokio::test]
async fn log_viewer_highlights_the_findings() {
    let app = axum::Router::new().route("/build.log", axum::routing::get(|| async { KBUILD_LOG }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let logs = format!("http://{}", listener.local_addr().unwrap());
    let log_task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(TestDb::new().await, dir.path()).await;
    let build = |id: &str, url: &str| {
        serde_json::json!({"id": id, "origin": "lab", "checkout_id": "lab:c1", "status": "FAIL",
                           "log_url": url})
    };
    let doc = serde_json::json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "lab:c1", "origin": "lab"}],
        "builds": [build("lab:b1", &format!("{logs}/build.log")),
                   build("lab:b2", "file:///etc/passwd"),
                   build("lab:b3", &format!("{logs}/missing.log")),
                   {"id": "lab:b4", "origin": "lab", "checkout_id": "lab:c1"}],
    });
    server
        .db
        .load(kernelci_kcidb::load(doc.to_string().as_bytes()).unwrap())
        .await
        .unwrap();
    let (code, _, html) = get(&server.base, "/build/lab%3Ab1").await;
    assert_eq!(code, 200);
    assert!(html.contains("href=\"/log/build/lab%3Ab1\""), "{html}");
    let (code, _, html) = get(&server.base, "/log/build/lab%3Ab1").await;
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains("Findings (1)") && html.contains("kbuild.compiler.error"),
        "{html}"
    );
    // The finding's line (the compiler error, line 5 of the log) is the highlighted one.
    let hit = html.split("class=\"hit\"").nth(1).unwrap();
    assert!(hit.contains("error: \u{2018}x\u{2019} undeclared"), "{hit}");
    assert!(html.contains("<span id=\"L5\" class=\"hit\""), "{html}");
    assert!(html.contains("href=\"#L5\""));
    let (code, _, html) = get(&server.base, "/log/build/lab%3Ab2").await;
    assert_eq!(code, 400, "{html}");
    assert!(!html.contains("root:"), "never reads local files");
    let (code, _, html) = get(&server.base, "/log/build/lab%3Ab3").await;
    assert_eq!(code, 200);
    assert!(html.contains("could not be fetched"), "{html}");
    assert_eq!(get(&server.base, "/log/build/lab%3Ab4").await.0, 404);
    assert_eq!(get(&server.base, "/log/test/nope").await.0, 404);
    log_task.abort();
}

/// A checkout's tests tab shows 500 rows a page, cut in SQL in the same order as the full
/// list (paths in byte order on both backends, tests without a path first).
#[tokio::test]
async fn tests_tab_pages_follow_the_list_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(TestDb::new().await, dir.path()).await;
    const COMMIT: &str = "00000000000000000000000000000000000000aa";
    let names = [
        "Suite.a", "suite.B", "suite_b", "suite.10", "suite.9", "zeta", "alpha",
    ];
    let tests: Vec<serde_json::Value> = (0..1203)
        .map(|i| {
            let mut t = serde_json::json!({"id": format!("lab:t{i:04}"), "origin": "lab",
                "build_id": "lab:b1", "status": "PASS"});
            if i % 97 != 0 {
                t["path"] = serde_json::json!(format!("{}.case{}", names[i % names.len()], i % 13));
            }
            t
        })
        .collect();
    let doc = serde_json::json!({"version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "lab:c1", "origin": "lab", "git_commit_hash": COMMIT}],
        "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "status": "PASS"}],
        "tests": tests});
    server
        .db
        .load(kernelci_kcidb::load(doc.to_string().as_bytes()).unwrap())
        .await
        .unwrap();
    let (_, whole) = server.get(&format!("tree/{COMMIT}/tests?origin=lab")).await;
    let expected: Vec<String> = whole["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "/test/{}",
                common::enc(t["id"].as_str().unwrap()).replace('+', "%20")
            )
        })
        .collect();
    assert_eq!(expected.len(), 1203);
    let mut shown: Vec<String> = Vec::new();
    for page in 1..=3 {
        let (code, _, html) = get(
            &server.base,
            &format!("/tree/{COMMIT}?origin=lab&tab=tests&page={page}"),
        )
        .await;
        assert_eq!(code, 200);
        let first = (page - 1) * 500 + 1;
        let last = (page * 500).min(1203);
        assert!(
            html.contains(&format!("rows {first}–{last} of 1203")),
            "{html}"
        );
        assert_eq!(html.contains(">next</a>"), page < 3);
        assert_eq!(html.contains(">previous</a>"), page > 1);
        shown.extend(hrefs(&html).into_iter().filter(|h| h.starts_with("/test/")));
    }
    assert_eq!(
        shown, expected,
        "the pages, joined, are the list in its order"
    );
}
