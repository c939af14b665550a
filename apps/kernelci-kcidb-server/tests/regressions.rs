//! The regression tracker over a real database (SQLite, or PostgreSQL with
//! `KERNELCI_TEST_DATABASE_URL`): checkouts of one branch are loaded one by one, as a lab
//! would submit them, and the tracker runs after each; regressions must open, keep
//! counting and close at the right checkouts, flaky tests must end flaky, infrastructure
//! failures must open nothing, and late builds must still be tracked.

use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::regress::track::{
    self, RegressionFilter, TrackReport, TrackerConfig, flaky, health, list, track_once,
};
use kernelci_kcidb::regress::{ClassRule, Classifier, FailureClass, RegressionState, ResultKind};
use kernelci_tests::TestDb;
use serde_json::{Value, json};

/// One test result to submit: path, status, extra `misc`.
struct T(&'static str, &'static str, Value);

fn t(path: &'static str, status: &'static str) -> T {
    T(path, status, json!({}))
}

/// A checkout (day `n` of November) with one build of `build_status` and `tests`.
fn checkout(n: u32, build_status: &str, tests: &[T]) -> Value {
    let c = format!("lab:c{n}");
    let b = format!("lab:b{n}");
    let tests: Vec<Value> = tests
        .iter()
        .enumerate()
        .map(|(i, T(path, status, misc))| {
            let mut misc = misc.clone();
            misc["lab"] = json!("lab-a");
            json!({"id": format!("lab:t{n}-{i}"), "origin": "lab", "build_id": b,
                "path": path, "status": status, "misc": misc,
                "environment": {"misc": {"platform": "qemu-x86"}}})
        })
        .collect();
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": c, "origin": "lab", "tree_name": "mainline",
            "git_repository_url": "https://git.example/linux.git",
            "git_repository_branch": "master", "git_commit_hash": format!("{n:040x}"),
            "start_time": format!("2026-11-{n:02}T10:00:00+00:00"), "valid": true}],
        "builds": [{"id": b, "origin": "lab", "checkout_id": c, "config_name": "defconfig",
            "architecture": "x86_64", "compiler": "gcc-12", "status": build_status}],
        "tests": tests,
    })
}

async fn load(db: &KcidbDb, doc: &Value) {
    let submission = kernelci_kcidb::load(doc.to_string().as_bytes()).expect("valid submission");
    db.load(submission).await.expect("load");
}

async fn track(db: &KcidbDb) -> TrackReport {
    track_once(db, &TrackerConfig::default())
        .await
        .expect("tracker round")
}

async fn regressions(db: &KcidbDb) -> Vec<track::Regression> {
    let mut all = list(
        db,
        &RegressionFilter {
            limit: 100,
            ..RegressionFilter::default()
        },
    )
    .await
    .expect("list");
    all.sort_by_key(|r| r.identity.label());
    all
}

async fn open_db() -> (TestDb, KcidbDb) {
    let test_db = TestDb::new().await;
    let db = KcidbDb::open(&test_db.url).await.expect("open");
    (test_db, db)
}

#[tokio::test]
async fn a_regression_opens_counts_and_is_fixed_at_the_right_checkouts() {
    let (_keep, db) = open_db().await;
    // boot: P P F F P P; the build fails on day 3 only.
    let plan = [
        ("PASS", "PASS"),
        ("PASS", "PASS"),
        ("FAIL", "FAIL"),
        ("PASS", "FAIL"),
        ("PASS", "PASS"),
        ("PASS", "PASS"),
    ];
    for (i, (build, boot)) in plan.iter().enumerate() {
        let n = u32::try_from(i + 1).expect("small");
        load(&db, &checkout(n, build, &[t("boot", boot)])).await;
        let report = track(&db).await;
        let found = regressions(&db).await;
        match n {
            1 | 2 => assert!(found.is_empty(), "day {n}: {found:?}"),
            3 => {
                assert_eq!(report.opened, 2, "day 3: {report:?}");
                assert_eq!(found.len(), 2);
                let build = found.iter().find(|r| r.identity.kind == ResultKind::Build);
                let build = build.expect("the build regressed");
                assert_eq!(build.identity.compiler, "gcc-12");
                let boot = found
                    .iter()
                    .find(|r| r.identity.path == "boot")
                    .expect("boot");
                assert_eq!(boot.state, RegressionState::New);
                assert_eq!(boot.class, FailureClass::Kernel);
                assert_eq!(boot.last_pass.checkout_id, "lab:c2");
                assert_eq!(boot.first_fail.checkout_id, "lab:c3");
                assert_eq!(boot.first_fail.object_id, "lab:t3-0");
                assert_eq!(boot.fail_count, 1);
            }
            4 => {
                let boot = found
                    .iter()
                    .find(|r| r.identity.path == "boot")
                    .expect("boot");
                assert_eq!(boot.state, RegressionState::StillFailing);
                assert_eq!(boot.fail_count, 2);
                assert_eq!(boot.last_fail.checkout_id, "lab:c4");
                assert_eq!(boot.first_fail.checkout_id, "lab:c3");
                let build = found.iter().find(|r| r.identity.kind == ResultKind::Build);
                let build = build.expect("build");
                assert_eq!(build.state, RegressionState::Fixed);
                assert_eq!(
                    build.fixed.as_ref().map(|f| f.checkout_id.as_str()),
                    Some("lab:c4")
                );
            }
            _ => {
                assert_eq!(found.len(), 2, "day {n}: no new regression");
                let boot = found
                    .iter()
                    .find(|r| r.identity.path == "boot")
                    .expect("boot");
                assert_eq!(boot.state, RegressionState::Fixed, "day {n}");
                let fixed = boot.fixed.as_ref().expect("fixed");
                assert_eq!(
                    (fixed.checkout_id.as_str(), fixed.commit.as_str()),
                    ("lab:c5", &*format!("{:040x}", 5))
                );
            }
        }
    }
    // A round with nothing new records nothing and changes nothing.
    let again = track(&db).await;
    assert_eq!(
        (again.recorded, again.opened, again.fixed),
        (0, 0, 0),
        "{again:?}"
    );
    // Filters.
    let open = list(
        &db,
        &RegressionFilter {
            states: vec![RegressionState::New, RegressionState::StillFailing],
            limit: 10,
            ..RegressionFilter::default()
        },
    )
    .await
    .expect("list");
    assert!(open.is_empty(), "{open:?}");
}

#[tokio::test]
async fn flaky_tests_end_flaky_and_open_nothing_new() {
    let (_keep, db) = open_db().await;
    // Loaded in one go, then one round: the tracker sees four flips at once.
    for n in 1..=5 {
        let status = if n % 2 == 0 { "FAIL" } else { "PASS" };
        load(
            &db,
            &checkout(n, "PASS", &[t("kselftest.timers.flake", status)]),
        )
        .await;
    }
    track(&db).await;
    assert!(regressions(&db).await.is_empty());
    let flaky_now = flaky(&db, Some("lab"), 10).await.expect("flaky");
    assert_eq!(flaky_now.len(), 1);
    assert_eq!(flaky_now[0].identity.path, "kselftest.timers.flake");
    assert_eq!(flaky_now[0].flips, 4);

    // Results arriving one by one: the first flip opens a regression, the next ones
    // make it flaky, and no second regression opens.
    let (_keep2, db) = open_db().await;
    for n in 1..=8 {
        let status = if n % 2 == 0 { "FAIL" } else { "PASS" };
        load(&db, &checkout(n, "PASS", &[t("ltp.flaky", status)])).await;
        track(&db).await;
    }
    let found = regressions(&db).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].state, RegressionState::Flaky);
}

#[tokio::test]
async fn infrastructure_failures_open_nothing_and_rules_and_culprits_classify() {
    let (_keep, db) = open_db().await;
    let infra = json!({"error_code": "Infrastructure", "error_msg": "DUT did not power on"});
    let reset = json!({"error_msg": "Connection reset by peer"});
    load(
        &db,
        &checkout(
            1,
            "PASS",
            &[
                t("boot", "PASS"),
                t("baseline.login", "PASS"),
                t("net", "PASS"),
            ],
        ),
    )
    .await;
    load(
        &db,
        &checkout(
            2,
            "PASS",
            &[
                T("boot", "ERROR", infra.clone()),
                T("baseline.login", "FAIL", infra),
                T("net", "FAIL", reset.clone()),
            ],
        ),
    )
    .await;
    let rules = vec![ClassRule {
        class: "infrastructure".into(),
        error_msg: Some("(?i)connection reset".into()),
        ..ClassRule::default()
    }];
    let cfg = TrackerConfig {
        classifier: Classifier::new(&rules).expect("rules"),
        ..TrackerConfig::default()
    };
    let report = track_once(&db, &cfg).await.expect("round");
    assert_eq!(report.opened, 0, "{report:?}");
    assert!(regressions(&db).await.is_empty());

    // A kernel failure whose incident names a tool culprit is infrastructure too; one
    // naming the code is the kernel's.
    let mut doc = checkout(3, "PASS", &[t("boot", "FAIL"), t("baseline.login", "FAIL")]);
    doc["issues"] = json!([
        {"id": "triage:tool", "version": 1, "origin": "triage", "culprit": {"tool": true}},
        {"id": "triage:code", "version": 1, "origin": "triage", "culprit": {"code": true}},
    ]);
    doc["incidents"] = json!([
        {"id": "triage:i1", "origin": "triage", "issue_id": "triage:tool", "issue_version": 1,
         "test_id": "lab:t3-0", "present": true},
        {"id": "triage:i2", "origin": "triage", "issue_id": "triage:code", "issue_version": 1,
         "test_id": "lab:t3-1", "present": true},
    ]);
    load(&db, &doc).await;
    track_once(&db, &cfg).await.expect("round");
    let found = regressions(&db).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].identity.path, "baseline.login");
    assert_eq!(found[0].class, FailureClass::Kernel);
    // Its last pass is day 1: day 2's infrastructure failure says nothing.
    assert_eq!(found[0].last_pass.checkout_id, "lab:c1");

    // Lab health (tests of lab-a on qemu-x86): 8 results, infrastructure failures: three
    // on day 2 and the tool culprit on day 3; one kernel failure.
    let since = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let h = health(&db, &since).await.expect("health");
    let qemu = h
        .iter()
        .find(|h| h.platform == "qemu-x86")
        .expect("qemu row");
    assert_eq!(
        (
            qemu.lab.as_str(),
            qemu.total,
            qemu.infrastructure,
            qemu.failures
        ),
        ("lab-a", 8, 4, 1)
    );
}

#[tokio::test]
async fn a_test_whose_build_arrives_later_is_tracked_then() {
    let (_keep, db) = open_db().await;
    load(&db, &checkout(1, "PASS", &[t("boot", "PASS")])).await;
    track(&db).await;
    // Day 2: tests first, the build (and checkout) in a later submission.
    let full = checkout(2, "PASS", &[t("boot", "FAIL")]);
    let tests_only = json!({"version": full["version"], "tests": full["tests"]});
    load(&db, &tests_only).await;
    let r = track(&db).await;
    assert_eq!(r.opened, 0);
    let rest = json!({"version": full["version"], "checkouts": full["checkouts"],
        "builds": full["builds"]});
    load(&db, &rest).await;
    let r = track(&db).await;
    assert_eq!(r.opened, 1, "{r:?}");
    let found = regressions(&db).await;
    assert_eq!(found[0].first_fail.object_id, "lab:t2-0");
}
