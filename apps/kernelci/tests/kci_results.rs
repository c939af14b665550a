//! The real `kci results` commands against a real `kernelci up` with the KCIDB fixtures
//! `small/` submitted through `/kcidb/submit`: every command's `--json` answer checked
//! against what the fixture files say (read here with serde_json), tables (a header and
//! one row per item), `--count`, status filters, pagination, and the errors (an unknown
//! build, an unreachable dashboard, no dashboard API configured).
//!
//! `kci` is found next to `kernelci` (a workspace test run builds both); the fixtures in
//! `KERNELCI_FIXTURES`, else `../shared/fixtures` beside the repository. Either missing
//! skips the test with a message, or fails it under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kernelci_tests::{TestDb, in_ci};
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

fn kci_bin() -> Option<PathBuf> {
    let path = common::bin().with_file_name("kci");
    if path.exists() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "kci not found at {} (cargo build -p kci)",
        path.display()
    );
    eprintln!(
        "skipping: kci not found at {} (cargo build -p kci)",
        path.display()
    );
    None
}

fn fixtures() -> Option<PathBuf> {
    let root = match std::env::var_os("KERNELCI_FIXTURES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    let dir = root.join("kcidb/small");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "KCIDB fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    eprintln!(
        "skipping: KCIDB fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    None
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The fixture objects merged by id, as the expected answers come from them.
#[derive(Default)]
struct Fixture {
    checkouts: BTreeMap<String, Obj>,
    builds: BTreeMap<String, Obj>,
    tests: BTreeMap<String, Obj>,
    issues: BTreeMap<(String, u64), Obj>,
}

impl Fixture {
    fn read(dir: &Path) -> Fixture {
        let mut f = Fixture::default();
        for path in json_files(dir) {
            let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let list = |name: &str| doc[name].as_array().cloned().unwrap_or_default();
            for (name, map) in [
                ("checkouts", &mut f.checkouts),
                ("builds", &mut f.builds),
                ("tests", &mut f.tests),
            ] {
                for o in list(name) {
                    let o = o.as_object().unwrap().clone();
                    map.entry(o["id"].as_str().unwrap().to_string())
                        .or_default()
                        .extend(o);
                }
            }
            for o in list("issues") {
                let o = o.as_object().unwrap().clone();
                let key = (
                    o["id"].as_str().unwrap().to_string(),
                    o["version"].as_u64().unwrap(),
                );
                f.issues.entry(key).or_default().extend(o);
            }
        }
        f
    }

    fn builds_of(&self, checkout: &str) -> Vec<&Obj> {
        self.builds
            .values()
            .filter(|b| b["checkout_id"] == checkout)
            .collect()
    }

    fn tests_of(&self, checkout: &str, boots: bool) -> Vec<&Obj> {
        self.tests
            .values()
            .filter(|t| {
                let b = self.builds.get(t["build_id"].as_str().unwrap_or(""));
                b.is_some_and(|b| b["checkout_id"] == checkout) && is_boot(t) == boots
            })
            .collect()
    }
}

fn is_boot(t: &Obj) -> bool {
    t.get("path")
        .and_then(Value::as_str)
        .is_some_and(|p| p == "boot" || p.starts_with("boot."))
}

fn s<'a>(o: &'a Obj, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

/// (pass, fail, inconclusive) as kci-dev counts them.
fn counts(objects: &[&Obj]) -> (u64, u64, u64) {
    let mut c = (0, 0, 0);
    for o in objects {
        match o.get("status").and_then(Value::as_str) {
            Some("PASS") => c.0 += 1,
            Some("FAIL") => c.1 += 1,
            _ => c.2 += 1,
        }
    }
    c
}

fn triple(v: &Value) -> (u64, u64, u64) {
    (
        v["pass"].as_u64().unwrap(),
        v["fail"].as_u64().unwrap(),
        v["inconclusive"].as_u64().unwrap(),
    )
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn want_ids(objects: &[&Obj]) -> BTreeSet<String> {
    objects.iter().map(|o| s(o, "id").to_string()).collect()
}

struct Kci {
    bin: PathBuf,
    home: PathBuf,
    settings: String,
}

impl Kci {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.bin)
            .arg("--settings")
            .arg(&self.settings)
            .arg("results")
            .args(args)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .current_dir(&self.home)
            .output()
            .expect("run kci");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "kci results {args:?}: {err}\n{out}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("kci results {args:?}: not JSON ({e}): {out}"))
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD...` time (the civil-from-days inverse).
fn epoch_days(t: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| t.get(r).and_then(|x| x.parse::<i64>().ok()).unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days back to the oldest fixture checkout, plus a margin.
fn days_covering(f: &Fixture) -> i64 {
    let oldest = f
        .checkouts
        .values()
        .map(|c| epoch_days(s(c, "start_time")))
        .min()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86_400;
    assert_eq!(epoch_days("2000-03-01"), 11_017);
    now - oldest + 2
}

async fn submit_fixtures(base: &str, token: &str, dir: &Path) {
    let client = reqwest::Client::new();
    for path in json_files(dir) {
        let resp = client
            .post(format!("{base}/kcidb/submit"))
            .bearer_auth(token)
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", path.display());
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut status = Value::Null;
        for _ in 0..600 {
            let reply: Value = client
                .get(format!("{base}/kcidb/status?id={id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            status = reply["status"].clone();
            if status == "processed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, "processed", "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kci_results_reads_the_dashboard_api() {
    let Some(bin) = kci_bin() else { return };
    let Some(dir) = fixtures() else { return };
    let f = Fixture::read(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let db = TestDb::new().await;
    let mut extra = vec!["--kcidb-triage-interval", "0"];
    if db.url.starts_with("postgres") {
        extra.extend(["--database-url", db.url.as_str()]);
    }
    let d = data.to_str().unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let (code, token, err) = common::run(
        &[
            "kcidb",
            "token",
            "--origin",
            "fixtures",
            "--admin",
            "--data-dir",
            d,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let server = common::start("up", &data, &extra, &[]);
    submit_fixtures(&server.base, token.trim(), &dir).await;

    let settings = home.join("kci.toml");
    std::fs::write(
        &settings,
        format!(
            "default_instance = \"local\"\n[local]\ndashboard_api = \"{0}/api/\"\n\
             dashboard = \"{0}/\"\n",
            server.base
        ),
    )
    .unwrap();
    let kci = Kci {
        bin: bin.clone(),
        home: home.clone(),
        settings: settings.to_str().unwrap().to_string(),
    };
    let days = days_covering(&f).to_string();
    let maestro: Vec<(&String, &Obj)> = f
        .checkouts
        .iter()
        .filter(|(_, c)| c["origin"] == "maestro")
        .collect();

    // trees: one per maestro tree/branch, its newest checkout.
    let trees = kci.json(&["trees", "--days", &days, "--json"]);
    let branches: BTreeSet<(&str, &str)> = maestro
        .iter()
        .map(|(_, c)| (s(c, "git_repository_url"), s(c, "git_repository_branch")))
        .collect();
    let trees = trees.as_array().unwrap();
    assert_eq!(trees.len(), branches.len(), "{trees:?}");
    for t in trees {
        let url = t["giturl"].as_str().unwrap();
        let newest = maestro
            .iter()
            .filter(|(_, c)| s(c, "git_repository_url") == url)
            .max_by_key(|(_, c)| s(c, "start_time"))
            .unwrap();
        assert_eq!(t["latest_commit_hash"], newest.1["git_commit_hash"]);
        let branch = s(newest.1, "git_repository_branch");
        assert_eq!(
            t["tree"],
            format!("{}/{branch}", s(newest.1, "tree_name")).as_str()
        );
    }
    let table = kci.ok(&["trees", "--days", &days]);
    assert!(table.starts_with("TREE "), "{table}");
    assert_eq!(table.lines().count(), branches.len() + 1, "{table}");

    // summary, builds, boots, tests of every maestro checkout.
    for (id, c) in &maestro {
        let common = [
            "--giturl",
            s(c, "git_repository_url"),
            "--branch",
            s(c, "git_repository_branch"),
            "--commit",
            s(c, "git_commit_hash"),
        ];
        let with = |cmd: &str, more: &[&str]| -> Vec<String> {
            let mut v = vec![cmd.to_string()];
            v.extend(common.iter().map(|x| x.to_string()));
            v.extend(more.iter().map(|x| x.to_string()));
            v
        };
        let run_json =
            |args: Vec<String>| kci.json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let builds = f.builds_of(id);
        let boots = f.tests_of(id, true);
        let tests = f.tests_of(id, false);

        let summary = run_json(with("summary", &["--json"]));
        assert_eq!(triple(&summary["builds"]), counts(&builds), "{id}");
        assert_eq!(triple(&summary["boots"]), counts(&boots), "{id}");
        assert_eq!(triple(&summary["tests"]), counts(&tests), "{id}");

        let got = run_json(with("builds", &["--json"]));
        assert_eq!(ids(&got), want_ids(&builds), "{id} builds");
        for b in got.as_array().unwrap() {
            let want = &f.builds[b["id"].as_str().unwrap()];
            assert_eq!(b["config"], want["config_name"]);
            assert_eq!(b["arch"], want["architecture"]);
            let link = format!("{}/build/{}", server.base, s(want, "id"));
            assert_eq!(b["dashboard"], link.as_str());
        }
        for (cmd, want) in [("boots", &boots), ("tests", &tests)] {
            let got = run_json(with(cmd, &["--json"]));
            assert_eq!(ids(&got), want_ids(want), "{id} {cmd}");
            for (status, key) in [("fail", "FAIL"), ("pass", "PASS")] {
                let n = run_json(with(cmd, &["--status", status, "--count", "--json"]));
                let expected = want.iter().filter(|t| s(t, "status") == key).count();
                assert_eq!(n["count"], expected, "{id} {cmd} --status {status}");
            }
            let n = run_json(with(
                cmd,
                &["--status", "inconclusive", "--count", "--json"],
            ));
            assert_eq!(n["count"].as_u64(), Some(counts(want).2), "{id} {cmd}");
            // Server-side status filter: every row FAILs.
            let failed = run_json(with(cmd, &["--status", "fail", "--json"]));
            assert!(
                failed
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["status"] == "FAIL"),
                "{failed}"
            );
        }
        // Tables: a header and one row per build; --count alone prints the number.
        let args = with("builds", &[]);
        let table = kci.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(table.starts_with("LINK "), "{table}");
        assert_eq!(table.lines().count(), builds.len() + 1, "{table}");
        let args = with("tests", &["--count"]);
        let n = kci.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(n.trim(), tests.len().to_string());
        // Pages on the server.
        if tests.len() > 3 {
            let page = run_json(with("tests", &["--limit", "2", "--offset", "1", "--json"]));
            assert_eq!(page.as_array().unwrap().len(), 2);
            let all = run_json(with("tests", &["--json"]));
            assert_eq!(page[0]["id"], all[1]["id"]);
        }
        // Filters sent to the server: --arch and --config.
        if let Some(b) = builds.first() {
            let arch = s(b, "architecture");
            let got = run_json(with("builds", &["--arch", arch, "--json"]));
            let expected = builds
                .iter()
                .filter(|x| s(x, "architecture") == arch)
                .count();
            assert_eq!(got.as_array().unwrap().len(), expected, "{id} --arch");
        }
    }

    // --latest: the newest maestro checkout of a branch.
    let (_, newest) = maestro
        .iter()
        .max_by_key(|(_, c)| s(c, "start_time"))
        .unwrap();
    let (url, branch) = (
        s(newest, "git_repository_url"),
        s(newest, "git_repository_branch"),
    );
    let latest = kci.json(&[
        "summary", "--giturl", url, "--branch", branch, "--latest", "--json",
    ]);
    let id = s(newest, "id");
    assert_eq!(triple(&latest["builds"]), counts(&f.builds_of(id)));

    // One build, one test; an unknown build.
    let (bid, b) = f.builds.iter().next().unwrap();
    let build = kci.json(&["build", "--id", bid, "--json"]);
    assert_eq!(build["id"], bid.as_str());
    assert_eq!(build["config"], b["config_name"]);
    assert_eq!(build["status"], b["status"]);
    let text = kci.ok(&["build", "--id", bid]);
    assert!(
        text.contains(&format!("{}/build/{bid}", server.base)),
        "{text}"
    );
    let (tid, t) = f.tests.iter().next().unwrap();
    let test = kci.json(&["test", "--id", tid, "--json"]);
    assert_eq!(test["test_path"], t["path"]);
    let (code, _, err) = kci.run(&["build", "--id", "nobody:nothing", "--json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("build \"nobody:nothing\" not found"), "{err}");

    // Issues ingested now (within the default 5 days), and one issue with two versions.
    let issues = kci.json(&["issues", "--json"]);
    let want: BTreeSet<String> = f
        .issues
        .iter()
        .filter(|(_, i)| i["origin"] == "maestro")
        .map(|(k, _)| k.0.clone())
        .collect();
    assert_eq!(ids(&issues), want);
    let table = kci.ok(&["issues"]);
    assert_eq!(table.lines().count(), want.len() + 1, "{table}");
    let two = f
        .issues
        .keys()
        .find(|k| k.1 == 2)
        .map(|k| k.0.clone())
        .expect("an issue with two versions");
    let issue = kci.json(&["issue", "--id", &two, "--json"]);
    assert_eq!(issue["issue"]["version"], 2);
    assert!(issue["builds"].is_array() && issue["tests"].is_array());
    let issue = kci.json(&["issue", "--id", &two, "--version", "1", "--json"]);
    assert_eq!(issue["issue"]["version"], 1);
    let (code, _, err) = kci.run(&["issue", "--id", "nobody:nothing"]);
    assert_eq!(code, 2, "{err}");

    // hardware list: the platforms of maestro's tests.
    let hw = kci.json(&["hardware", "list", "--days", &days, "--json"]);
    let want: BTreeSet<String> = f
        .tests
        .values()
        .filter(|t| t["origin"] == "maestro")
        .filter_map(|t| t.get("environment")?.get("misc")?.get("platform")?.as_str())
        .map(String::from)
        .collect();
    let got: BTreeSet<String> = hw
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);

    // compare: the two maestro checkouts of a branch, newest is HEAD.
    let mut by_branch: BTreeMap<(&str, &str), Vec<&Obj>> = BTreeMap::new();
    for (_, c) in &maestro {
        by_branch
            .entry((s(c, "git_repository_url"), s(c, "git_repository_branch")))
            .or_default()
            .push(c);
    }
    let ((url, branch), mut pair) = by_branch
        .into_iter()
        .find(|(_, v)| v.len() >= 2)
        .expect("a branch with two checkouts");
    pair.sort_by_key(|c| s(c, "start_time"));
    let (code, out, err) = kci.run(&["compare", "--giturl", url, "--branch", branch, "--json"]);
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["head"], pair[pair.len() - 1]["git_commit_hash"]);
    assert_eq!(report["base"], pair[pair.len() - 2]["git_commit_hash"]);
    let total: u64 = report["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, report["items"].as_array().unwrap().len());
    let regressions = report["counts"]["regression"].as_u64().unwrap();
    assert_eq!(code, if regressions > 0 { 1 } else { 0 }, "{err}");
    // Every base result is either paired or missing: base = paired + missing.
    let base_id = pair[pair.len() - 2]["id"].as_str().unwrap();
    let base_total = f.builds_of(base_id).len()
        + f.tests_of(base_id, true).len()
        + f.tests_of(base_id, false).len();
    let missing = report["counts"]["missing"].as_u64().unwrap() as usize;
    assert!(missing <= base_total);

    // tree-report: the fixtures are older than the report's age window (720 h at most).
    let (code, _, err) = kci.run(&["tree-report", "--giturl", url, "--branch", branch]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("age window"), "{err}");

    // The dashboard unreachable: exit 3.
    let port = common::free_port();
    let (code, _, err) = kci.run(&[
        "--dashboard-api",
        &format!("http://127.0.0.1:{port}/api/"),
        "trees",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unavailable"), "{err}");

    // No dashboard API configured: exit 2 with the hint.
    let bare = home.join("bare.toml");
    std::fs::write(
        &bare,
        "default_instance = \"local\"\n[local]\napi = \"http://x/\"\n",
    )
    .unwrap();
    let none = Kci {
        bin,
        home: home.clone(),
        settings: bare.to_str().unwrap().to_string(),
    };
    let (code, _, err) = none.run(&["trees"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no dashboard API configured") && err.contains("--dashboard-api"),
        "{err}"
    );
    drop(server);
}
