//! The real `kci` binary against a real `kernelci up` running the fake-kernel pipeline:
//! `config`, `checkout --watch --test` (a passing and a broken commit, with their exit
//! codes), `maestro results` (page, fields, count, one node), `testretry`, `watch`, and
//! the errors (unknown node, unreachable instance, refused request, no settings).
//!
//! `kci` is a binary of another package: it is found next to `kernelci` (a workspace test
//! run builds both). When it is missing the test skips with a message, or fails under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_tree::git;
use kernelci_tests::TestDb;
use serde_json::Value;

fn kci_bin() -> Option<PathBuf> {
    let path = common::bin().with_file_name("kci");
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "kci not found at {} (cargo build -p kci)",
        path.display()
    );
    eprintln!(
        "skipping: kci not found at {} (cargo build -p kci)",
        path.display()
    );
    None
}

/// Runs kci with `args`; returns (exit code, stdout, stderr).
fn kci(bin: &Path, home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env_remove("KCI_TOKEN")
        .current_dir(home)
        .output()
        .expect("run kci");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON lines of a `--watch --json` run.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn head(tree: &Path) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn kci_drives_the_pipeline_and_reads_maestro() {
    let Some(bin) = kci_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (tree, cfg) = common::fake_tree::setup(dir.path());
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let db = TestDb::new().await;
    let data = dir.path().join("data");
    // No trigger polling of the tree: checkouts come from kci only.
    let mut extra = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--trees",
        "!fake",
        "--holdoff",
        "1",
        "--timeout-poll",
        "1",
        "--kcidb-triage-interval",
        "0",
        "--patchset-poll",
        "1",
    ];
    let pg = db.url.starts_with("postgres");
    if pg {
        extra.extend(["--database-url", db.url.as_str()]);
    }
    let server = common::start(
        "up",
        &data,
        &extra,
        &[("KCI_INITIAL_PASSWORD", "s3cret-pw")],
    );
    let token = common::pipeline_token(&data, pg.then_some(db.url.as_str()));
    let token = token.as_str();

    // Settings: none yet, then `kci config` writes kci-dev's format for this server.
    let settings = home.join("kci.toml");
    let s = settings.to_str().unwrap();
    let (code, _, err) = kci(&bin, &home, &["maestro", "results", "--nodes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no instance"), "{err}");
    let (code, _, err) = kci(
        &bin,
        &home,
        &[
            "config",
            "--file-path",
            s,
            "--url",
            &server.base,
            "--token",
            token,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(&settings).unwrap();
    assert!(written.contains(&format!("pipeline = \"{}/pipeline/\"", server.base)));
    let (code, _, err) = kci(&bin, &home, &["--settings", s, "config", "--file-path", s]);
    assert_eq!(code, 2, "an existing file is not overwritten: {err}");
    assert!(err.contains("already present"), "{err}");
    // The real kci-dev reads the same file (when it is installed: KCI_DEV or PATH).
    let kci_dev = std::env::var_os("KCI_DEV").map(PathBuf::from).or_else(|| {
        Command::new("kci-dev")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            .then(|| PathBuf::from("kci-dev"))
    });
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        kci_dev.is_some() || !ci,
        "kci-dev is needed under CI (KCI_DEV)"
    );
    if let Some(kci_dev) = &kci_dev {
        for args in [
            &[
                "--settings",
                s,
                "maestro",
                "results",
                "--nodes",
                "--limit",
                "3",
            ][..],
            &["--settings", s, "results", "trees", "--json"][..],
        ] {
            let out = Command::new(kci_dev)
                .args(args)
                .env("HOME", &home)
                .current_dir(&home)
                .output()
                .unwrap();
            assert!(out.status.success(), "kci-dev {args:?}: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(json.is_array(), "{text}");
        }
    }
    let with = |args: &[&str]| {
        let mut all = vec!["--settings", s];
        all.extend_from_slice(args);
        kci(&bin, &home, &all)
    };
    let jobs = [
        "--job-filter",
        "kbuild-gcc-x86_64",
        "--job-filter",
        "baseline-x86_64",
    ];
    let giturl = tree.to_str().unwrap();

    // 1. The branch head: built and booted, the boot test passes: exit 0.
    let mut args = vec![
        "checkout",
        "--giturl",
        giturl,
        "--branch",
        "master",
        "--tipoftree",
    ];
    args.extend(jobs);
    args.extend([
        "--watch",
        "--test",
        "baseline-x86_64",
        "--interval",
        "0.3",
        "--json",
    ]);
    let (code, out, err) = with(&args);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let lines = json_lines(&out);
    let reply = serde_json::from_str::<Value>(out.split("\n{\"event\"").next().unwrap())
        .unwrap_or(Value::Null);
    let checkout_id = reply["node"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        reply["node"]["data"]["kernel_revision"]["commit"],
        head(&tree)
    );
    let names: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "node")
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"kbuild-gcc-x86_64") && names.contains(&"baseline-x86_64"),
        "{names:?}"
    );
    let end = lines.last().unwrap();
    assert_eq!(
        (end["event"].as_str(), end["exit_code"].as_i64()),
        (Some("end"), Some(0))
    );

    // 1b. A patch on that checkout: a patchset tree, built and booted: exit 0.
    let patched = common::fake_tree::MAKEFILE.replace("fake kernel image", "patched kernel image");
    std::fs::write(tree.join("Makefile"), &patched).unwrap();
    let diff = Command::new("git")
        .arg("-C")
        .arg(&tree)
        .arg("diff")
        .output()
        .unwrap()
        .stdout;
    git(&tree, &["checkout", "Makefile"]);
    let patch = home.join("0001-patch.diff");
    std::fs::write(&patch, diff).unwrap();
    let mut args = vec![
        "patchset",
        "--nodeid",
        &checkout_id,
        "--patch",
        patch.to_str().unwrap(),
    ];
    args.extend(jobs);
    args.extend(["--watch", "--test", "baseline-x86_64", "--interval", "0.3"]);
    let (code, out, err) = with(&args);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("patchset_nodeid: "), "{out}");
    assert!(out.contains("PASS job: baseline-x86_64"), "{out}");
    let empty = home.join("empty.diff");
    std::fs::write(&empty, "\n").unwrap();
    let (code, _, err) = with(&[
        "patchset",
        "--nodeid",
        &checkout_id,
        "--patch",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the patch file is empty"), "{err}");

    // 2. A commit that breaks the build: the test cannot run: exit 2.
    std::fs::write(tree.join("BREAK"), "").unwrap();
    git(&tree, &["add", "BREAK"]);
    git(&tree, &["commit", "-q", "-m", "break the build"]);
    let broken = head(&tree);
    let mut args = vec![
        "checkout", "--giturl", giturl, "--branch", "master", "--commit", &broken,
    ];
    args.extend(jobs);
    args.extend(["--watch", "--test", "baseline-x86_64", "--interval", "0.3"]);
    let (code, out, err) = with(&args);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("job kbuild-gcc-x86_64 failed"), "{err}");
    assert!(out.contains("FAIL kbuild: kbuild-gcc-x86_64"), "{out}");
    let broken_checkout = out
        .lines()
        .find_map(|l| l.strip_prefix("checkout_nodeid: "))
        .unwrap()
        .to_string();

    // 3. maestro results: a page projected on fields, the count, one node.
    let (code, out, err) = with(&[
        "maestro",
        "results",
        "--nodes",
        "--filter",
        "kind=kbuild",
        "--field",
        "id",
        "--field",
        "result",
        "--field",
        "data.kernel_revision.commit",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let kbuilds: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(kbuilds.len(), 3, "head, patchset, broken: {out}");
    let failed = kbuilds
        .iter()
        .find(|k| k["data.kernel_revision.commit"] == broken.as_str())
        .unwrap();
    assert_eq!(failed["result"], "fail");
    assert_eq!(failed.as_object().unwrap().len(), 3);
    let (code, out, _) = with(&[
        "maestro",
        "results",
        "--nodes",
        "--filter",
        "kind=kbuild",
        "--count",
        "--json",
    ]);
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&out).unwrap()["count"].as_u64()
        ),
        (0, Some(3))
    );
    let (code, out, _) = with(&[
        "maestro",
        "results",
        "--nodes",
        "--filter",
        "kind=checkout",
        "--filter",
        "name=checkout",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("id") && out.lines().count() == 3,
        "a header and two rows:\n{out}"
    );
    let (code, out, _) = with(&["maestro", "results", "--nodeid", &checkout_id, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["id"],
        checkout_id.as_str()
    );

    // 4. testretry: only jobs (a kbuild is refused, exit 64); the boot job runs again and
    //    `kci watch` follows its tree until the retry has passed too.
    let failed_id = failed["id"].as_str().unwrap();
    let (code, _, err) = with(&["testretry", "--nodeid", failed_id]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("Only job nodes can be retried"), "{err}");
    let (code, out, err) = with(&[
        "maestro",
        "results",
        "--nodes",
        "--filter",
        "kind=job",
        "--filter",
        "name=baseline-x86_64",
        "--filter",
        &format!("treeid={}", reply["node"]["treeid"].as_str().unwrap()),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let boot: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(boot.len(), 1, "{out}");
    let boot_id = boot[0]["id"].as_str().unwrap();
    let (code, out, err) = with(&["testretry", "--nodeid", boot_id, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["message"],
        "OK"
    );
    // The retry is scheduled from an event: wait for its node.
    let tree_filter = format!("treeid={}", reply["node"]["treeid"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, out, _) = with(&[
            "maestro",
            "results",
            "--nodes",
            "--filter",
            "name=baseline-x86_64",
            "--filter",
            &tree_filter,
            "--count",
        ]);
        if out.trim() == "2" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no retry node: {out}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, out, err) = with(&[
        "watch",
        "--nodeid",
        &checkout_id,
        "--job-filter",
        "baseline-x86_64",
        "--test",
        "baseline-x86_64",
        "--interval",
        "0.3",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("PASS job: baseline-x86_64").count(), 2, "{out}");

    // Without --test, a finished tree is exit 0 even when a job failed: it is reported.
    let (code, out, err) = with(&[
        "watch",
        "--nodeid",
        &broken_checkout,
        "--job-filter",
        "kbuild-gcc-x86_64",
        "--interval",
        "0.3",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("FAIL kbuild: kbuild-gcc-x86_64"), "{out}");

    // 5. Errors: an unknown node (2), a job the configuration lacks (64), nobody listening (3).
    let (code, _, err) = with(&["maestro", "results", "--nodeid", "0123456789abcdef01234567"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = with(&[
        "checkout",
        "--giturl",
        giturl,
        "--branch",
        "master",
        "--commit",
        &broken,
        "--job-filter",
        "nope",
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("Job nope not found"), "{err}");
    let dead = home.join("dead.toml");
    std::fs::write(
        &dead,
        "default_instance = \"dead\"\n[dead]\napi = \"http://127.0.0.1:9/\"\npipeline = \"http://127.0.0.1:9/pipeline/\"\ntoken = \"t\"\n",
    )
    .unwrap();
    let (code, _, err) = kci(
        &bin,
        &home,
        &[
            "--settings",
            dead.to_str().unwrap(),
            "maestro",
            "results",
            "--nodes",
        ],
    );
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = with(&["--instance", "nope", "testretry", "--nodeid", boot_id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("instance \"nope\" not found"), "{err}");

    // 6. admin over the Maestro API with the administrator's token; open; regressions.
    let admin_settings = home.join("admin.toml");
    let admin_token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    std::fs::write(
        &admin_settings,
        format!(
            "default_instance = \"local\"\n[local]\napi = \"{}/\"\ntoken = \"{}\"\n\
             dashboard_api = \"{}/api/\"\n",
            server.base,
            admin_token.trim(),
            server.base
        ),
    )
    .unwrap();
    let a = admin_settings.to_str().unwrap();
    let (code, out, err) = kci(&bin, &home, &["--settings", a, "admin", "whoami"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"username\": \"admin\""), "{out}");
    let (code, out, err) = kci(
        &bin,
        &home,
        &[
            "--settings",
            a,
            "admin",
            "invite",
            "bob",
            "--email",
            "bob@example.org",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("invited bob; accept link: http"), "{out}");
    let (code, out, _) = kci(&bin, &home, &["--settings", a, "admin", "users"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("USERNAME") && out.contains("bob@example.org"),
        "{out}"
    );
    let (code, _, err) = kci(
        &bin,
        &home,
        &[
            "--settings",
            a,
            "admin",
            "invite",
            "bob",
            "--email",
            "bob@example.org",
        ],
    );
    assert_eq!(code, 1, "a second bob is refused: {err}");
    let login = Command::new(&bin)
        .args(["--settings", a, "admin", "token", "admin"])
        .env("HOME", &home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"s3cret-pw\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(login.status.success(), "{login:?}");
    let fresh = String::from_utf8(login.stdout).unwrap();
    assert_eq!(fresh.trim().split('.').count(), 3, "a JWT: {fresh}");
    let (code, out, _) = with(&["open", "build", "maestro:b1"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("{}/build/maestro:b1", server.base));
    let (code, out, _) = with(&["open", "node", &checkout_id]);
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("{}/latest/node/{checkout_id}", server.base).as_str()
        )
    );
    // The pipeline's results reached KCIDB; the stored regressions (none need to be
    // open: no test regressed between these commits) and lab health are lists.
    let (code, out, err) = with(&["regressions", "--state", "all", "--json"]);
    assert_eq!(code, 0, "{err}");
    let stored: Value = serde_json::from_str(&out).unwrap();
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].is_string() && r["first_fail"]["commit"].is_string()),
        "{out}"
    );
    let (code, out, err) = with(&["health", "--json"]);
    let rows: Value = serde_json::from_str(&out).unwrap();
    let above = rows
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["above_threshold"] == true);
    assert_eq!(code, i32::from(above), "{err}");
    drop(server);
}
