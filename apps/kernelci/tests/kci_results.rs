//! The real `kci results` commands against a real `kernelci up` with the KCIDB fixtures
//! `small/` submitted through `/kcidb/submit`: every command's `--json` answer checked
//! against what the fixture files say (read here with serde_json), tables (a header and
//! one row per item), `--count`, status filters, pagination, `hardware builds|boots|tests`,
//! `--filter FILE` and `--git-branch`, `issues --new` and `--missing`, `--download-logs`
//! (logs served by the test over HTTP, named by a small extra submission), `kci
//! regressions` and `kci health` over what the regression tracker stored, and the errors
//! (an unknown build, an unreachable dashboard, no dashboard API configured).
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
    kernelci_tests::fixture_dir("kcidb/small")
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
    incidents: BTreeMap<String, Obj>,
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
                ("incidents", &mut f.incidents),
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

impl Fixture {
    /// The checkout a build or test belongs to.
    fn checkout_of(&self, o: &Obj) -> Option<&Obj> {
        let build = match o.get("checkout_id") {
            Some(_) => o,
            None => self.builds.get(s(o, "build_id"))?,
        };
        self.checkouts.get(s(build, "checkout_id"))
    }

    /// The present incidents with the checkout of their build or test.
    fn incidents_with_checkout(&self) -> Vec<(&Obj, &Obj)> {
        self.incidents
            .values()
            .filter(|i| i.get("present") != Some(&Value::Bool(false)))
            .filter_map(|i| {
                let result = match i.get("build_id").and_then(Value::as_str) {
                    Some(b) => self.builds.get(b)?,
                    None => self.tests.get(s(i, "test_id"))?,
                };
                Some((i, self.checkout_of(result)?))
            })
            .collect()
    }

    /// The (issue, version) pairs first seen in `checkout` among those reported on it: the
    /// issue's earliest incident (by checkout start time, then commit) is there, of that
    /// version (`issues --new`).
    fn new_issues(&self, checkout: &str) -> BTreeSet<(String, u64)> {
        let incidents = self.incidents_with_checkout();
        let mut first: BTreeMap<&str, (&str, &str, &str, u64)> = BTreeMap::new();
        for (i, c) in &incidents {
            let cand = (
                s(c, "start_time"),
                s(c, "git_commit_hash"),
                s(c, "id"),
                i["issue_version"].as_u64().unwrap(),
            );
            let e = first.entry(s(i, "issue_id")).or_insert(cand);
            if (cand.0, cand.1) < (e.0, e.1) {
                *e = cand;
            }
        }
        incidents
            .iter()
            .filter(|(_, c)| s(c, "id") == checkout)
            .map(|(i, _)| (s(i, "issue_id"), i["issue_version"].as_u64().unwrap()))
            .filter(|(id, v)| first.get(id).is_some_and(|f| f.2 == checkout && f.3 == *v))
            .map(|(id, v)| (id.to_string(), v))
            .collect()
    }

    /// The ids of the builds (or boots) of `checkout` that did not pass and have no
    /// present incident (`issues --missing`).
    fn missing(&self, checkout: &str, boots: bool) -> BTreeSet<String> {
        let explained: BTreeSet<&str> = self
            .incidents
            .values()
            .filter(|i| i.get("present") != Some(&Value::Bool(false)))
            .filter_map(|i| {
                let key = if boots { "test_id" } else { "build_id" };
                i.get(key).and_then(Value::as_str)
            })
            .collect();
        let items = if boots {
            self.tests_of(checkout, true)
        } else {
            self.builds_of(checkout)
        };
        items
            .into_iter()
            .filter(|o| s(o, "status") != "PASS" && !explained.contains(s(o, "id")))
            .map(|o| s(o, "id").to_string())
            .collect()
    }

    /// The tests on a platform (its name or a compatible), whatever their origin.
    fn tests_on(&self, platform: &str) -> Vec<&Obj> {
        self.tests
            .values()
            .filter(|t| {
                let env = t.get("environment");
                let p = env.and_then(|e| e["misc"]["platform"].as_str());
                let compatible = env
                    .and_then(|e| e["compatible"].as_array())
                    .is_some_and(|l| l.iter().any(|c| c == platform));
                p == Some(platform) || compatible
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

/// `data` as a gzip file of one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    let crc = !crc;
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1];
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    out.extend(crc.to_le_bytes());
    out.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
    out
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
    for path in json_files(dir) {
        let what = path.display().to_string();
        submit(base, token, std::fs::read(&path).unwrap(), &what).await;
    }
}

/// Submits one KCIDB document and waits until it is processed.
async fn submit(base: &str, token: &str, body: Vec<u8>, what: &str) {
    let client = reqwest::Client::new();
    {
        let resp = client
            .post(format!("{base}/kcidb/submit"))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{what}");
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
        assert_eq!(status, "processed", "{what}");
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
    // A tracker round every second: `kci regressions` reads what it stored.
    let mut extra = vec!["--kcidb-triage-interval", "0", "--regress-interval", "1"];
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

    // hardware builds|boots|tests: a platform with maestro and tuxsuite results.
    let board = "beaglebone-black";
    let on_board = f.tests_on(board);
    assert!(on_board.iter().any(|t| t["origin"] == "tuxsuite"));
    for (cmd, boots) in [("boots", true), ("tests", false)] {
        let want: Vec<&Obj> = on_board
            .iter()
            .copied()
            .filter(|t| t["origin"] == "maestro" && is_boot(t) == boots)
            .collect();
        let got = kci.json(&["hardware", cmd, "--name", board, "--days", &days, "--json"]);
        assert_eq!(ids(&got), want_ids(&want), "hardware {cmd}");
        let n = kci.json(&[
            "hardware", cmd, "--name", board, "--days", &days, "--status", "fail", "--count",
            "--json",
        ]);
        let fails = want.iter().filter(|t| s(t, "status") == "FAIL").count();
        assert_eq!(n["count"], fails, "hardware {cmd} --status fail");
        let table = kci.ok(&["hardware", cmd, "--name", board, "--days", &days]);
        assert!(table.starts_with("LINK "), "{table}");
        assert_eq!(table.lines().count(), want.len() + 1, "{table}");
    }
    let board_builds: BTreeSet<&str> = on_board.iter().map(|t| s(t, "build_id")).collect();
    let want: Vec<&Obj> = board_builds
        .iter()
        .filter_map(|b| f.builds.get(*b))
        .filter(|b| b["origin"] == "maestro")
        .collect();
    let got = kci.json(&[
        "hardware", "builds", "--name", board, "--days", &days, "--json",
    ]);
    assert_eq!(ids(&got), want_ids(&want), "hardware builds");
    let (code, _, err) = kci.run(&["hardware", "builds", "--name", board, "--hardware", "x"]);
    assert_eq!(code, 2, "{err}");

    // --filter FILE (kci-dev's YAML: `.` literal, `*` any text) and --git-branch.
    let filter = home.join("filter.yaml");
    std::fs::write(
        &filter,
        "hardware:\n  - beaglebone-*\n  - qemu-x86_64\ntest:\n  - baseline.*\n",
    )
    .unwrap();
    let filter = filter.to_str().unwrap();
    let baseline = |t: &&Obj| s(t, "path").starts_with("baseline.");
    let want: Vec<&Obj> = on_board
        .iter()
        .copied()
        .filter(|t| t["origin"] == "maestro" && !is_boot(t))
        .filter(baseline)
        .collect();
    assert!(!want.is_empty());
    let got = kci.json(&[
        "hardware", "tests", "--name", board, "--days", &days, "--filter", filter, "--json",
    ]);
    assert_eq!(ids(&got), want_ids(&want), "hardware tests --filter");
    let branch_of = |t: &Obj| {
        f.checkout_of(t)
            .map(|c| s(c, "git_repository_branch").to_string())
    };
    let masters = on_board
        .iter()
        .filter(|t| t["origin"] == "maestro" && !is_boot(t))
        .filter(|t| branch_of(t).as_deref() == Some("master"))
        .count();
    let n = kci.json(&[
        "hardware",
        "tests",
        "--name",
        board,
        "--days",
        &days,
        "--git-branch",
        "mas?er",
        "--count",
        "--json",
    ]);
    assert_eq!(n["count"], masters, "hardware tests --git-branch");
    let (cid, c) = maestro
        .iter()
        .max_by_key(|(id, _)| f.tests_of(id, false).len())
        .unwrap();
    let at = [
        "--giturl",
        s(c, "git_repository_url"),
        "--branch",
        s(c, "git_repository_branch"),
        "--commit",
        s(c, "git_commit_hash"),
    ];
    let on = |more: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = at.iter().map(|x| x.to_string()).collect();
        v.extend(more.iter().map(|x| x.to_string()));
        v
    };
    let args = on(&["--filter", filter, "--json"]);
    let mut argv = vec!["tests"];
    argv.extend(args.iter().map(String::as_str));
    let got = kci.json(&argv);
    let want: Vec<&Obj> = f
        .tests_of(cid, false)
        .into_iter()
        .filter(baseline)
        .filter(|t| {
            let env = &t["environment"];
            let p = env["misc"]["platform"].as_str().unwrap_or("");
            let compat = env["compatible"].as_array().cloned().unwrap_or_default();
            let hw = |x: &str| x.starts_with("beaglebone-") || x == "qemu-x86_64";
            hw(p) || compat.iter().any(|c| c.as_str().is_some_and(hw))
        })
        .collect();
    assert_eq!(ids(&got), want_ids(&want), "tests --filter");
    let branch_glob = format!("{}*", &s(c, "git_repository_branch")[..3]);
    for (glob, n) in [
        (branch_glob.as_str(), f.tests_of(cid, false).len()),
        ("nomatch", 0),
    ] {
        let args = on(&["--git-branch", glob, "--count", "--json"]);
        let mut argv = vec!["tests"];
        argv.extend(args.iter().map(String::as_str));
        assert_eq!(kci.json(&argv)["count"], n, "tests --git-branch {glob}");
    }

    // issues --new (first seen in the checkout) and --missing (no issue) per checkout.
    let key_set = |v: &Value| -> BTreeSet<(String, u64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["version"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let mut any_new = false;
    for (id, c) in &maestro {
        let at = [
            "--giturl",
            s(c, "git_repository_url"),
            "--branch",
            s(c, "git_repository_branch"),
            "--commit",
            s(c, "git_commit_hash"),
        ];
        let mut argv = vec!["issues", "--new", "--json"];
        argv.extend(at);
        let want = f.new_issues(id);
        any_new |= !want.is_empty();
        assert_eq!(key_set(&kci.json(&argv)), want, "{id} issues --new");
        let mut argv = vec!["issues", "--missing", "--json"];
        argv.extend(at);
        let got = kci.json(&argv);
        for (key, boots) in [("builds", false), ("boots", true)] {
            assert_eq!(ids(&got[key]), f.missing(id, boots), "{id} --missing {key}");
        }
        let mut argv = vec!["issues", "--missing", "--boots", "--json"];
        argv.extend(at);
        let got = kci.json(&argv);
        assert!(got.get("builds").is_none(), "{got}");
        assert_eq!(ids(&got["boots"]), f.missing(id, true));
        let mut argv = vec!["issues", "--missing", "--builds"];
        argv.extend(at);
        let table = kci.ok(&argv);
        let n = f.missing(id, false).len();
        assert!(
            table.starts_with(&format!("builds without an issue: {n}")),
            "{table}"
        );
    }
    assert!(any_new, "no checkout has a new issue");
    // Without a checkout: the latest checkout of every tree in the window.
    let mut want = BTreeSet::new();
    for (url, branch) in &branches {
        let (id, _) = maestro
            .iter()
            .filter(|(_, c)| s(c, "git_repository_url") == *url)
            .filter(|(_, c)| s(c, "git_repository_branch") == *branch)
            .max_by_key(|(_, c)| s(c, "start_time"))
            .unwrap();
        want.extend(f.new_issues(id));
    }
    let got = kci.json(&["issues", "--new", "--days", &days, "--json"]);
    assert_eq!(key_set(&got), want, "issues --new (all trees)");

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

    // --download-logs: logs served here over HTTP (one gzip, one plain, one missing, one
    // not http), named by a small extra submission.
    let log_text = "build log line 1\nbuild log line 2\n";
    let test_text = "boot log\n";
    let gz = gzip_stored(log_text.as_bytes());
    let app = axum::Router::new()
        .route(
            "/logs/build.log.gz",
            axum::routing::get(move || {
                let gz = gz.clone();
                async move { gz }
            }),
        )
        .route(
            "/logs/boot.log",
            axum::routing::get(move || async move { test_text }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let logs = format!("http://{}/logs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let commit = "1234567890abcdef1234567890abcdef12345678";
    let (giturl, branch) = ("https://example.org/logs.git", "main");
    let build = |id: &str, config: &str, log: &str| {
        serde_json::json!({"id": id, "origin": "logs", "checkout_id": "logs:checkout",
            "architecture": "x86_64", "compiler": "gcc-14", "config_name": config,
            "status": "FAIL", "start_time": "2025-03-05T10:00:00+00:00", "log_url": log})
    };
    let doc = serde_json::json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "logs:checkout", "origin": "logs", "tree_name": "logs",
            "git_repository_url": giturl, "git_repository_branch": branch,
            "git_commit_hash": commit, "start_time": "2025-03-05T09:00:00+00:00",
            "valid": true}],
        "builds": [
            build("logs:build1", "defconfig", &format!("{logs}/build.log.gz")),
            build("logs:build2", "tinyconfig", &format!("{logs}/missing.log.gz")),
            build("logs:build3", "allnoconfig", "ftp://127.0.0.1/build.log"),
        ],
        "tests": [{"id": "logs:boot1", "origin": "logs", "build_id": "logs:build1",
            "path": "boot", "status": "PASS", "start_time": "2025-03-05T11:00:00+00:00",
            "log_url": format!("{logs}/boot.log"),
            "environment": {"misc": {"platform": "logs-board"}}}],
    });
    submit(
        &server.base,
        token.trim(),
        serde_json::to_vec(&doc).unwrap(),
        "logs document",
    )
    .await;
    let cwd = home.canonicalize().unwrap();
    let at = [
        "--origin", "logs", "--giturl", giturl, "--branch", branch, "--commit", commit,
    ];
    let with = |cmd: &str, more: &[&str]| -> Vec<String> {
        let mut v = vec![cmd.to_string()];
        v.extend(at.iter().chain(more).map(|x| x.to_string()));
        v
    };
    let argv = with(
        "builds",
        &["--config", "defconfig", "--download-logs", "--json"],
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (code, out, err) = kci.run(&argv);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("log 1/1"), "{err}");
    let file = format!("defconfig-x86_64-gcc-14-{commit}.log");
    assert_eq!(std::fs::read_to_string(cwd.join(&file)).unwrap(), log_text);
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    let path = format!("file://{}", cwd.join(&file).display());
    assert_eq!(got[0]["log"], path.as_str());
    // One build, one boot: kci-dev's names (the id, `:` dropped).
    kci.ok(&["build", "--id", "logs:build1", "--download-logs"]);
    let file = format!("defconfig-x86_64-gcc-14-{commit}-logsbuild1.log");
    assert_eq!(std::fs::read_to_string(cwd.join(file)).unwrap(), log_text);
    let one = kci.json(&["boot", "--id", "logs:boot1", "--download-logs", "--json"]);
    let file = "logs-board__boot__defconfig-x86_64-gcc-14-logsboot1.log";
    assert_eq!(std::fs::read_to_string(cwd.join(file)).unwrap(), test_text);
    assert_eq!(
        one["log"],
        format!("file://{}", cwd.join(file).display()).as_str()
    );
    let argv = with("boots", &["--download-logs"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let table = kci.ok(&argv);
    let file = format!("logs-board__boot__defconfig-x86_64-gcc-14-{commit}.log");
    assert_eq!(std::fs::read_to_string(cwd.join(&file)).unwrap(), test_text);
    assert!(table.lines().next().unwrap().ends_with("LOG"), "{table}");
    // A missing log and a non-http one: reported, the rest saved, exit 1 at the end.
    std::fs::remove_file(cwd.join(format!("defconfig-x86_64-gcc-14-{commit}.log"))).unwrap();
    let argv = with("builds", &["--download-logs", "--json"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (code, out, err) = kci.run(&argv);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("HTTP 404") && err.contains("not an http(s) URL"),
        "{err}"
    );
    assert!(err.contains("2 of 3 logs could not be downloaded"), "{err}");
    let got: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(got.as_array().unwrap().len(), 3, "{got}");
    let file = format!("defconfig-x86_64-gcc-14-{commit}.log");
    assert_eq!(std::fs::read_to_string(cwd.join(file)).unwrap(), log_text);

    // regressions and health: the tracker's objects (the fixtures have one regression).
    let top = |args: &[&str]| {
        let out = Command::new(&kci.bin)
            .arg("--settings")
            .arg(&kci.settings)
            .args(args)
            .env("HOME", &kci.home)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kci");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let (code, out, err) = top(&["regressions", "--state", "all", "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        if !v.as_array().unwrap().is_empty() {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tracker stored nothing"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for r in stored.as_array().unwrap() {
        let object = r["last_fail"]["object_id"].as_str().unwrap();
        let o = if r["kind"] == "build" {
            &f.builds[object]
        } else {
            &f.tests[object]
        };
        assert!(
            matches!(o["status"].as_str(), Some("FAIL" | "ERROR")),
            "{r}"
        );
        assert!(
            ["new", "still_failing", "fixed", "flaky"].contains(&r["state"].as_str().unwrap()),
            "{r}"
        );
    }
    let (code, out, err) = top(&["regressions", "--state", "all"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("STATE  "), "{out}");
    assert!(
        lines[0].contains("FIRST FAIL") && lines[0].ends_with("LATEST"),
        "{out}"
    );
    assert_eq!(lines.len(), stored.as_array().unwrap().len() + 1, "{out}");
    let first = &stored[0];
    let kind = if first["kind"] == "build" {
        "build"
    } else {
        "test"
    };
    assert!(
        out.contains(&format!("{}/{kind}/", server.base)),
        "a link to the latest failure: {out}"
    );
    let commit: String = first["first_fail"]["commit"]
        .as_str()
        .unwrap()
        .chars()
        .take(12)
        .collect();
    assert!(out.contains(&format!(" {commit} ")), "{out}");
    let (code, _, err) = top(&["regressions", "--state", "bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("state: unknown state"), "{err}");
    let (code, out, err) = top(&["regressions", "--flaky", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        serde_json::from_str::<Value>(&out).unwrap().is_array(),
        "{out}"
    );
    let (code, out, err) = top(&["health", "--days", "36500", "--threshold", "1", "--json"]);
    assert_eq!(code, 0, "nothing is above 100 %: {err}");
    let health: Value = serde_json::from_str(out.trim()).unwrap();
    let rows = health.as_array().unwrap();
    assert!(!rows.is_empty(), "{health}");
    let infra = rows
        .iter()
        .any(|h| h["infrastructure"].as_i64().unwrap() > 0);
    let (code, out, err) = top(&["health", "--days", "36500", "--threshold", "0"]);
    assert_eq!(
        code,
        i32::from(infra),
        "exit 1 when a row is above: {err}\n{out}"
    );
    assert!(out.starts_with("ORIGIN "), "{out}");
    assert_eq!(out.lines().count(), rows.len() + 1, "{out}");
    let (code, _, err) = top(&["health", "--threshold", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--threshold"), "{err}");

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
