//! Automatic bisection through the real pipeline: a fake kernel tree whose boot panics
//! from a planted commit on, `kernelci up` building and booting it, a bisection started
//! from the failing boot job over the pipeline API. The culprit must be found in at most
//! log2(n) + 2 tested commits, each run `repeat` times, verified (it fails every run, its
//! parent passes every run), with a reproduce command; bisection runs must not reach
//! KCIDB.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_tree::git;
use kernelci_tests::TestDb;
use serde_json::{Value, json};

/// The fake kbuild, plus: a tree with a `PANIC` file makes a kernel that panics.
const MAKEFILE: &str = r##"tinyconfig defconfig:
	@echo "# fake config" > .config
olddefconfig:
	@true
bzImage:
	@echo "  CC      init/main.o"
	@mkdir -p arch/x86/boot
	@echo "fake kernel image" > arch/x86/boot/bzImage
	@if [ -f PANIC ]; then echo "PANIC-ON-BOOT" >> arch/x86/boot/bzImage; fi
	@echo "  Kernel: arch/x86/boot/bzImage is ready  (#1)"
.PHONY: tinyconfig defconfig olddefconfig bzImage
"##;

/// The QEMU stand-in: boots to the marker, or panics when the kernel says so.
const QEMU: &str = r#"#!/bin/sh
kernel=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-kernel" ]; then kernel="$2"; fi
  shift
done
echo "[    0.000000] Linux version 6.1.0-fake (ci@example) (gcc 12.2.0) #1 SMP"
if grep -q PANIC-ON-BOOT "$kernel"; then
  echo "[    0.512000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
  echo "[    0.513000] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---"
  exit 0
fi
echo "[    0.605670] Run /init as init process"
echo "BOOT-MARKER: init reached, kernel 6.1.0-fake x86_64, uptime ?"
exit 0
"#;

fn rev(tree: &Path, what: &str) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["rev-parse", what])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The fake tree whose kernel panics from commit `panic_from` (1-based) of `n` commits on
/// top of the base; (tree, config, base commit, the n commits).
fn panicking_tree(
    dir: &Path,
    n: usize,
    panic_from: usize,
) -> (std::path::PathBuf, std::path::PathBuf, String, Vec<String>) {
    let (tree, cfg) = common::fake_tree::setup(dir);
    std::fs::write(tree.join("Makefile"), MAKEFILE).unwrap();
    std::fs::write(dir.join("fake-qemu"), QEMU).unwrap();
    git(
        &tree,
        &["commit", "-q", "-am", "fake kbuild that can panic"],
    );
    let base = rev(&tree, "HEAD");
    let mut commits = Vec::new();
    for i in 1..=n {
        std::fs::write(tree.join(format!("file{i}")), format!("{i}\n")).unwrap();
        if i == panic_from {
            std::fs::write(tree.join("PANIC"), "boot panics from here on\n").unwrap();
        }
        git(&tree, &["add", "-A"]);
        git(&tree, &["commit", "-q", "-m", &format!("change {i}")]);
        commits.push(rev(&tree, "HEAD"));
    }
    (tree, cfg, base, commits)
}

struct Pipeline {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Pipeline {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/pipeline/api/{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn nodes(&self, query: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/latest/nodes/fast?{query}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }

    async fn node(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/latest/node/{id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Checks out `commit` of `tree` for the fake build and boot jobs; the checkout id.
    async fn checkout(&self, tree: &Path, commit: &str) -> String {
        let (code, body) = self
            .post(
                "checkout",
                &json!({"url": tree.to_str().unwrap(), "branch": "master", "commit": commit,
                    "jobfilter": ["kbuild-gcc-x86_64", "baseline-x86_64"]}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        body["node"]["id"].as_str().unwrap().to_string()
    }

    /// The boot job of `commit` once done (within 120 s).
    async fn booted(&self, commit: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let found = self
                .nodes(&format!(
                    "name=baseline-x86_64&data.kernel_revision.commit={commit}"
                ))
                .await;
            if let Some(b) = found.into_iter().find(|n| n["state"] == "done") {
                return b;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{commit} never booted"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits until `pred` holds for the node, within `limit`.
    async fn wait_node(&self, id: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t0 = Instant::now();
        loop {
            let n = self.node(id).await;
            if pred(&n) {
                return n;
            }
            assert!(
                t0.elapsed() < limit,
                "node {id} not there in {limit:?}: {n}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bisection_finds_the_planted_culprit_and_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    // Eight commits; the fifth plants the panic.
    let (tree, cfg, good, commits) = panicking_tree(dir.path(), 8, 5);
    let culprit = commits[4].clone();

    let db = TestDb::new().await;
    let data = dir.path().join("data");
    let pg = db.url.starts_with("postgres");
    let (server, token) = common::start_fake_pipeline(
        &cfg,
        &data,
        &db.url,
        &["--job-retries", "0", "--kcidb-sweep", "2"],
    );
    let p = Pipeline {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        token,
    };

    // The branch head fails to boot.
    let head_checkout = p.checkout(&tree, &commits[7]).await;
    let boot = p.booted(&commits[7]).await;
    assert_eq!(boot["result"], "fail", "{boot}");

    // Bad requests are refused with the reason.
    let boot_id = boot["id"].as_str().unwrap().to_string();
    let (code, body) = p.post("bisect", &json!({"nodeid": boot_id})).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = p
        .post(
            "bisect",
            &json!({"nodeid": boot_id, "good": "not-a-commit"}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = p
        .post(
            "bisect",
            &json!({"nodeid": "0123456789abcdef01234567", "good": good}),
        )
        .await;
    assert_eq!(code, 404);

    let (code, body) = p
        .post(
            "bisect",
            &json!({"nodeid": boot_id, "good": good, "repeat": 2}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let id = body["node"]["id"].as_str().unwrap().to_string();
    let done = p
        .wait_node(&id, Duration::from_secs(400), |n| n["state"] == "done")
        .await;
    let b = &done["data"]["bisection"];
    assert_eq!(done["result"], "pass", "{done}");
    assert_eq!(b["outcome"]["kind"], "culprit", "{b}");
    assert_eq!(b["outcome"]["commit"], culprit.as_str(), "{b}");
    assert_eq!(b["outcome"]["parent"], commits[3].as_str(), "{b}");
    assert_eq!(b["culprit_subject"], "change 5");
    let steps = b["steps"].as_object().unwrap();
    assert!(
        steps.len() <= kernelci_sched::bisect::Bisection::max_tests(8),
        "{} commits tested: {steps:?}",
        steps.len()
    );
    // Verified: the culprit failed both runs, its parent passed both.
    assert_eq!(steps[&culprit]["verdict"], "bad");
    assert_eq!(steps[&culprit]["runs"], json!([false, false]));
    assert_eq!(steps[&commits[3]]["verdict"], "good");
    assert_eq!(steps[&commits[3]]["runs"], json!([true, true]));
    let reproduce = b["reproduce"].as_str().unwrap();
    assert!(
        reproduce.starts_with("kci checkout --giturl "),
        "{reproduce}"
    );
    assert!(
        reproduce.contains(&format!("--commit {culprit}")),
        "{reproduce}"
    );
    assert!(
        reproduce.contains("--job-filter baseline-x86_64"),
        "{reproduce}"
    );
    // Every tested checkout hangs below the bisection node.
    for step in steps.values() {
        let c = p.node(step["checkout"].as_str().unwrap()).await;
        assert_eq!(c["parent"].as_str(), Some(id.as_str()));
    }

    // `kci bisect show` prints it (exit 0: a culprit); a node that is no bisection: 2.
    let kci = common::bin().with_file_name("kci");
    if kci.exists() {
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let settings = home.join("kci.toml");
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&kci)
                .args(args)
                .env("HOME", &home)
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let s = settings.to_str().unwrap();
        let (code, _, err) = run(&[
            "config",
            "--file-path",
            s,
            "--url",
            &p.base,
            "--token",
            &p.token,
        ]);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = run(&["--settings", s, "bisect", "show", &id]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("culprit: {culprit} change 5")),
            "{out}"
        );
        assert!(out.contains("reproduce: kci checkout"), "{out}");
        let (code, _, err) = run(&["--settings", s, "bisect", "show", &boot_id]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("not a bisection"), "{err}");
        let (code, _, err) = run(&[
            "--settings",
            s,
            "bisect",
            "start",
            "--node",
            &boot_id,
            "--good",
            "xyz",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("not a commit id"), "{err}");
    } else {
        assert!(
            std::env::var("CI").is_err(),
            "kci not found next to kernelci"
        );
        eprintln!("skipping the kci part: kci not built (cargo build -p kci)");
    }

    // KCIDB has the head's checkout but none of the bisection's.
    let kcidb_url = if pg {
        db.url.clone()
    } else {
        format!("sqlite://{}", data.join("kcidb.db").display())
    };
    let kcidb = kernelci_kcidb_server::db::KcidbDb::open(&kcidb_url)
        .await
        .unwrap();
    let t0 = Instant::now();
    while kcidb
        .object("checkouts", &format!("maestro:{head_checkout}"))
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the head never reached KCIDB"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for step in steps.values() {
        let c = step["checkout"].as_str().unwrap();
        assert!(
            kcidb
                .object("checkouts", &format!("maestro:{c}"))
                .await
                .unwrap()
                .is_none(),
            "bisection checkout {c} reached KCIDB"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_regression_of_an_opted_in_tree_is_bisected_and_the_culprit_attached() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, cfg, _, commits) = panicking_tree(dir.path(), 6, 4);
    // Opt the tree in: one run per commit.
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    let url_line = format!("    url: \"{}\"\n", tree.display());
    assert!(yaml.contains(&url_line), "{yaml}");
    std::fs::write(
        &cfg,
        yaml.replace(&url_line, &format!("{url_line}    bisect: {{repeat: 1}}\n")),
    )
    .unwrap();

    let db = TestDb::new().await;
    let data = dir.path().join("data");
    let (server, token) = common::start_fake_pipeline(
        &cfg,
        &data,
        &db.url,
        &[
            "--job-retries",
            "0",
            "--kcidb-sweep",
            "1",
            "--regress-interval",
            "1",
        ],
    );
    let p = Pipeline {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        token,
    };
    // A passing checkout (change 2), then a failing one (change 6): a regression.
    for (commit, want) in [(&commits[1], "pass"), (&commits[5], "fail")] {
        p.checkout(&tree, commit).await;
        let boot = p.booted(commit).await;
        assert_eq!(boot["result"], want, "{boot}");
    }

    // The tracker opens the regression, the bisect role bisects it on its own, and the
    // culprit shows on the regression.
    let t0 = Instant::now();
    let regression = loop {
        let list: Value = p
            .http
            .get(format!("{}/api/regressions/?state=all", p.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == "boot" && !r["bisection"].is_null())
            .cloned();
        if let Some(r) = done {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no bisected regression: {list}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(regression["first_fail"]["commit"], commits[5].as_str());
    assert_eq!(regression["last_pass"]["commit"], commits[1].as_str());
    let b = &regression["bisection"];
    assert_eq!(b["culprit"], commits[3].as_str(), "{regression}");
    assert_eq!(b["parent"], commits[2].as_str(), "{regression}");
    assert_eq!(b["subject"], "change 4");
    assert!(
        b["reproduce"]
            .as_str()
            .unwrap()
            .contains(&format!("--commit {}", commits[3])),
        "{b}"
    );
    // The regressions page names the culprit.
    let page = p
        .http
        .get(format!("{}/regressions?state=all", p.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&commits[3][..12]), "{page}");
    // One bisection per regression, however often the role looked.
    let bisections = p.nodes("name=bisection").await;
    let for_this: Vec<&Value> = bisections
        .iter()
        .filter(|n| n["data"]["bisection"]["regression"] == regression["id"])
        .collect();
    assert_eq!(for_this.len(), 1, "{bisections:?}");
    assert_eq!(for_this[0]["result"], "pass");
}
