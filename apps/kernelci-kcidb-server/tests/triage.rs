//! Triage end to end: a failed build with a kbuild log (file:// and http://) → issue and
//! incident through the spool and the ingester, on SQLite or (with
//! `KERNELCI_TEST_DATABASE_URL`) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use kernelci_kcidb_server::triage::{Kind, incident_id, parser_for};
use kernelci_kcidb_server::{
    IngestLimits, KcidbConfig, KcidbDb, KcidbState, TriageConfig, kcidb_router, triage_once,
};
use kernelci_tests::TestDb;
use serde_json::{Value, json};

/// A kbuild log shaped like upstream's (kbuild_001): make output, a gcc error, make's
/// failure lines.
const KBUILD_LOG: &str = "\
+ make KBUILD_BUILD_USER=KernelCI FORMAT=.xz ARCH=x86_64 HOSTCC=gcc CC=gcc -j4 bzImage modules
  SYNC    include/config/auto.conf
  CC      init/main.o
  CC      kernel/fork.o
  CC      drivers/foo.o
drivers/foo.c: In function \u{2018}foo_probe\u{2019}:
drivers/foo.c:12:5: error: \u{2018}x\u{2019} undeclared (first use in this function)
   12 |     x = 1;
      |     ^
drivers/foo.c:12:5: note: each undeclared identifier is reported only once for each function it appears in
  CC      kernel/exit.o
make[2]: *** [scripts/Makefile.build:244: drivers/foo.o] Error 1
make[1]: *** [scripts/Makefile.build:485: drivers] Error 2
make: *** [Makefile:240: __sub-make] Error 2
";

struct Env {
    state: KcidbState,
    db: KcidbDb,
    dir: tempfile::TempDir,
    _testdb: TestDb,
}

impl Env {
    async fn new() -> Env {
        let testdb = TestDb::new().await;
        let dir = tempfile::tempdir().unwrap();
        let db = KcidbDb::open(&testdb.url).await.unwrap();
        let state = KcidbState::new(KcidbConfig {
            spool_dir: dir.path().join("spool"),
            verifier: None,
            max_body: kernelci_kcidb_server::DEFAULT_MAX_BODY,
        })
        .unwrap();
        Env {
            state,
            db,
            dir,
            _testdb: testdb,
        }
    }

    /// Loads a document through the spool and the ingester.
    async fn ingest(&self, doc: Value) {
        let path = self.state.spool().ready_path("seed");
        std::fs::write(&path, doc.to_string()).unwrap();
        self.drain().await;
    }

    async fn drain(&self) -> kernelci_kcidb_server::Counts {
        let mut total = kernelci_kcidb_server::Counts::default();
        loop {
            let round = self
                .state
                .ingest_round(&self.db, IngestLimits::default())
                .await
                .unwrap();
            assert_eq!(round.failed, 0, "a spool file failed to load");
            if round.archived == 0 {
                return total;
            }
            total.issues += round.rows.issues;
            total.incidents += round.rows.incidents;
        }
    }
}

fn failed_build(log_url: &str) -> Value {
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "maestro:c1", "origin": "maestro"}],
        "builds": [
            {"id": "maestro:b1", "origin": "maestro", "checkout_id": "maestro:c1",
             "status": "FAIL", "log_url": log_url},
            // Passed: never looked at.
            {"id": "maestro:b2", "origin": "maestro", "checkout_id": "maestro:c1",
             "status": "PASS", "log_url": log_url},
            // Failed without a log: never looked at.
            {"id": "maestro:b3", "origin": "maestro", "checkout_id": "maestro:c1",
             "status": "ERROR"},
        ],
    })
}

fn expected_signature() -> String {
    let result = kernelci_logspec::parse_str(KBUILD_LOG, kernelci_logspec::Parser::Kbuild);
    assert_eq!(result.errors.len(), 1, "{}", result.to_upstream_json(false));
    let e = &result.errors[0];
    assert_eq!(e.error_type, "kbuild.compiler.error");
    assert_eq!(e.attribute_str("src_file"), Some("drivers/foo.c"));
    assert_eq!(e.attribute_str("target"), Some("drivers/foo.o"));
    e.signature.clone()
}

async fn check_triage(env: &Env, log_url: &str) {
    let signature = expected_signature();
    let issue_id = format!("logspec:{signature}");
    let inc_id = incident_id("logspec", "maestro:b1", &issue_id, 1);
    env.ingest(failed_build(log_url)).await;

    // Dry run: reports, files nothing, marks nothing.
    let dry = triage_once(
        &env.state,
        &env.db,
        TriageConfig {
            dry_run: true,
            ..TriageConfig::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.candidates, 1);
    assert_eq!(dry.errors_found, 1);
    assert_eq!(dry.issues.len(), 1);
    assert_eq!(dry.issues[0].id, issue_id);
    assert!(dry.submission.is_none());
    assert_eq!(env.state.spool().queue_depth(), 0);
    assert_eq!(env.db.counts().await.unwrap().issues, 0);

    // The real thing.
    let report = triage_once(&env.state, &env.db, TriageConfig::default())
        .await
        .unwrap();
    assert_eq!(report.candidates, 1, "the dry run marked nothing");
    assert_eq!((report.issues.len(), report.incidents.len()), (1, 1));
    assert!(report.submission.is_some());
    let written = env.drain().await;
    assert_eq!((written.issues, written.incidents), (1, 1));
    let counts = env.db.counts().await.unwrap();
    assert_eq!((counts.issues, counts.incidents), (1, 1));

    let issue = env.db.object("issues", &issue_id).await.unwrap().unwrap();
    assert_eq!(issue["version"], 1);
    assert_eq!(issue["origin"], "logspec");
    assert_eq!(
        issue["culprit"],
        json!({"code": true, "tool": false, "harness": false})
    );
    let comment = issue["comment"].as_str().unwrap();
    assert!(
        comment.contains("in drivers/foo.o (drivers/foo.c) [logspec:kbuild,kbuild.compiler.error]"),
        "{comment}"
    );
    let error = &issue["misc"]["logspec"]["error"];
    assert_eq!(issue["misc"]["logspec"]["parser"], "kbuild");
    assert_eq!(error["src_file"], "drivers/foo.c");
    assert!(error["signature_loc"].is_string());
    assert!(
        error["log_excerpt"]
            .as_str()
            .unwrap()
            .contains("undeclared")
    );
    let incident = env.db.object("incidents", &inc_id).await.unwrap().unwrap();
    assert_eq!(incident["issue_id"], json!(issue_id));
    assert_eq!(incident["issue_version"], 1);
    assert_eq!(incident["build_id"], "maestro:b1");
    assert_eq!(incident["present"], true);

    // Idempotent: nothing left to look at, nothing filed.
    let again = triage_once(&env.state, &env.db, TriageConfig::default())
        .await
        .unwrap();
    assert_eq!(again.candidates, 0);
    assert!(again.issues.is_empty() && again.submission.is_none());
    assert_eq!(env.state.spool().queue_depth(), 0);
    let counts = env.db.counts().await.unwrap();
    assert_eq!((counts.issues, counts.incidents), (1, 1));
}

fn write_log(dir: &Path) -> String {
    let path = dir.join("build.log");
    std::fs::write(&path, KBUILD_LOG).unwrap();
    url::Url::from_file_path(&path).unwrap().to_string()
}

#[tokio::test]
async fn file_log_is_triaged_once() {
    let env = Env::new().await;
    let url = write_log(env.dir.path());
    check_triage(&env, &url).await;

    // The counters are on /metrics.
    let app = kcidb_router(env.state.clone(), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    task.abort();
    for line in [
        "kcidb_triage_runs_total 3",
        "kcidb_triage_logs_fetched_total 2",
        "kcidb_triage_errors_found_total 2",
        "kcidb_triage_issues_filed_total 1",
        "kcidb_triage_incidents_filed_total 1",
        "kcidb_triage_fetch_failures_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[tokio::test]
async fn http_log_is_triaged_once() {
    let env = Env::new().await;
    let app = axum::Router::new().route(
        "/logs/build.log",
        axum::routing::get(|| async { KBUILD_LOG }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    check_triage(&env, &format!("http://{addr}/logs/build.log")).await;
    task.abort();
}

#[tokio::test]
async fn fetch_failures_are_counted_and_retried_a_few_times() {
    let env = Env::new().await;
    let missing = env.dir.path().join("missing.log");
    let url = url::Url::from_file_path(&missing).unwrap().to_string();
    env.ingest(failed_build(&url)).await;
    let config = TriageConfig {
        max_attempts: 2,
        ..TriageConfig::default()
    };
    for expected in [1, 1, 0] {
        let r = triage_once(&env.state, &env.db, config.clone())
            .await
            .unwrap();
        assert_eq!((r.candidates, r.fetch_failures), (expected, expected));
        assert!(r.issues.is_empty());
    }
    assert_eq!(env.state.spool().queue_depth(), 0);
}

#[tokio::test]
async fn same_location_reuses_the_issue() {
    let env = Env::new().await;
    let url = write_log(env.dir.path());
    env.ingest(failed_build(&url)).await;
    let first = triage_once(&env.state, &env.db, TriageConfig::default())
        .await
        .unwrap();
    assert_eq!(first.issues.len(), 1);
    env.drain().await;

    // The same error at the same place, worded differently (another compiler version).
    let other = env.dir.path().join("other.log");
    std::fs::write(
        &other,
        KBUILD_LOG.replace("undeclared (first use in this function)", "undeclared here"),
    )
    .unwrap();
    let other_sig = kernelci_logspec::parse_str(
        &std::fs::read_to_string(&other).unwrap(),
        kernelci_logspec::Parser::Kbuild,
    )
    .errors[0]
        .signature
        .clone();
    assert_ne!(format!("logspec:{other_sig}"), first.issues[0].id);
    let other_url = url::Url::from_file_path(&other).unwrap().to_string();
    env.ingest(json!({
        "version": {"major": 5, "minor": 3},
        "builds": [{"id": "maestro:b4", "origin": "maestro", "checkout_id": "maestro:c1",
                    "status": "FAIL", "log_url": other_url}],
    }))
    .await;
    let second = triage_once(&env.state, &env.db, TriageConfig::default())
        .await
        .unwrap();
    assert_eq!(second.candidates, 1);
    assert!(second.issues.is_empty(), "{:?}", second.issues);
    assert_eq!(second.incidents.len(), 1);
    assert_eq!(second.incidents[0].issue_id, first.issues[0].id);
    assert_eq!(second.incidents[0].build_id.as_deref(), Some("maestro:b4"));
    let written = env.drain().await;
    assert_eq!((written.issues, written.incidents), (0, 1));
    let counts = env.db.counts().await.unwrap();
    assert_eq!((counts.issues, counts.incidents), (1, 2));
}

#[tokio::test]
async fn failed_boot_test_gets_the_synthetic_boot_issue() {
    let env = Env::new().await;
    let log = "U-Boot 2024.01 (Jan 08 2024 - 00:00:00 +0000)\n\
               DRAM:  2 GiB\n\
               Hit any key to stop autoboot:  0\n\
               ## Loading kernel from FIT Image\n\
               Bad Linux ARM64 Image magic!\n";
    let path = env.dir.path().join("boot.log");
    std::fs::write(&path, log).unwrap();
    let url = url::Url::from_file_path(&path).unwrap().to_string();
    let parsed = kernelci_logspec::parse_str(log, kernelci_logspec::Parser::GenericLinuxBoot);
    let signature = parsed.signature.clone().expect("a parse-level signature");
    env.ingest(json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "maestro:c1", "origin": "maestro"}],
        "builds": [{"id": "maestro:b1", "origin": "maestro", "checkout_id": "maestro:c1",
                    "status": "PASS"}],
        "tests": [{"id": "maestro:t1", "origin": "maestro", "build_id": "maestro:b1",
                   "path": "boot", "status": "FAIL", "log_url": url}],
    }))
    .await;
    let report = triage_once(&env.state, &env.db, TriageConfig::default())
        .await
        .unwrap();
    let issue_id = format!("logspec:{signature}");
    assert!(
        report.issues.iter().any(|i| i.id == issue_id
            && i.comment.as_deref()
                == Some(
                    " Bootloader did not finish or kernel did not start. \
                     [logspec:generic_linux_boot,linux.kernel.boot]"
                )),
        "{:#?}",
        report.issues
    );
    env.drain().await;
    let inc = incident_id("logspec", "maestro:t1", &issue_id, 1);
    let incident = env.db.object("incidents", &inc).await.unwrap().unwrap();
    assert_eq!(incident["test_id"], "maestro:t1");
    assert!(incident.get("build_id").is_none());
}

#[test]
fn parser_rule_is_documented_behaviour() {
    use kernelci_logspec::Parser;
    assert_eq!(parser_for(Kind::Build, Some("baseline")), Parser::Kbuild);
    assert_eq!(
        parser_for(Kind::Test, Some("baseline.dmesg.crit")),
        Parser::TestBaseline
    );
    assert_eq!(
        parser_for(Kind::Test, Some("kselftest.cpufreq")),
        Parser::TestKselftest
    );
    assert_eq!(
        parser_for(Kind::Test, Some("boot")),
        Parser::GenericLinuxBoot
    );
}

/// Upstream's worker settings: only some origins, only recent objects.
#[tokio::test]
async fn origin_and_age_filters_limit_the_candidates() {
    let env = Env::new().await;
    let url = write_log(env.dir.path());
    env.ingest(failed_build(&url)).await;
    let dry = |origins: Vec<String>, max_age: Option<Duration>| TriageConfig {
        dry_run: true,
        origins,
        max_age,
        ..TriageConfig::default()
    };
    let run = |config| triage_once(&env.state, &env.db, config);
    // Another origin only: nothing to look at.
    let report = run(dry(vec!["lab".into()], None)).await.unwrap();
    assert_eq!(report.candidates, 0);
    // The build's origin among others: found.
    let report = run(dry(vec!["lab".into(), "maestro".into()], None))
        .await
        .unwrap();
    assert_eq!(report.candidates, 1);
    // Loaded just now: inside a day, outside a window that ended before the load.
    let report = run(dry(Vec::new(), Some(Duration::from_secs(86_400))))
        .await
        .unwrap();
    assert_eq!(report.candidates, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = run(dry(Vec::new(), Some(Duration::from_secs(1))))
        .await
        .unwrap();
    assert_eq!(report.candidates, 0);
}
