//! Issue 3: "Killed with SIGKILL at any point and restarted, [the ingester] ends with exactly
//! the same rows as an uninterrupted run."
//!
//! A spool of generated submissions (the same objects resubmitted with changing values and
//! `misc` keys, so the merge order shows) is ingested by `kernelci kcidb serve` twice: once
//! uninterrupted, once killed with SIGKILL at random moments (start, sleep 0-400 ms,
//! `kill -9`, ten times) and then left to finish. Every row of the five tables (every column
//! but `_timestamp`) must be the same. On SQLite, and on PostgreSQL (each run on a fresh
//! database of the server `KERNELCI_TEST_PG`, else `KERNELCI_TEST_DATABASE_URL`; without
//! either the PostgreSQL test is skipped with a message, except under CI where it fails).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kernelci_tests::{TestDb, in_ci, pg_server_url};
use serde_json::json;
use sqlx::Row;

const FILES: usize = 1000;
/// Distinct test ids (each is sent about three times).
const TEST_IDS: usize = FILES * 20 / 3;
const TABLES: [&str; 5] = ["checkouts", "builds", "tests", "issues", "incidents"];

/// Submission `i`: objects shared with other files (values and `misc` keys depend on `i`,
/// so a different merge order gives different rows) and objects of its own.
fn submission(i: usize) -> String {
    let statuses = ["PASS", "FAIL", "ERROR", "MISS", "DONE", "SKIP"];
    let arch = ["arm64", "x86_64", "riscv"][i % 3];
    let c = i % 7;
    let b = i % 31;
    let tests: Vec<_> = (0..20)
        .map(|t| {
            let id = (i * 20 + t) % TEST_IDS;
            json!({"id": format!("lab:t{id}"), "origin": "lab", "build_id": format!("lab:b{b}"),
                   "path": format!("suite.case{}", id % 40),
                   "status": statuses[(i + t) % statuses.len()],
                   "duration": (i * 7 + t) as f64 / 4.0,
                   "misc": {format!("k{}", i % 3): i, "last": i}})
        })
        .collect();
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": format!("lab:c{c}"), "origin": "lab",
                       "tree_name": format!("tree{}", i % 3),
                       "comment": format!("from file {i}"),
                       "misc": {format!("f{}", i % 4): i}}],
        "builds": [{"id": format!("lab:b{b}"), "origin": "lab", "checkout_id": format!("lab:c{}", b % 7),
                    "architecture": arch,
                    "status": statuses[i % statuses.len()],
                    "misc": {"last": i}}],
        "tests": tests,
        "issues": [{"id": format!("lab:i{}", i % 5), "version": (i % 4) as u32, "origin": "lab",
                    "comment": format!("issue from {i}")}],
        "incidents": [{"id": format!("lab:x{i}"), "origin": "lab",
                       "issue_id": format!("lab:i{}", i % 5), "issue_version": (i % 4) as u32,
                       "test_id": format!("lab:t{}", (i * 20) % TEST_IDS), "present": i.is_multiple_of(2)}],
    })
    .to_string()
}

/// Writes the spool as the receiver leaves it: ready files in arrival order (the ingester
/// takes them by mtime, then name).
fn fill_spool(data_dir: &Path) {
    let spool = data_dir.join("kcidb-spool");
    std::fs::create_dir_all(&spool).unwrap();
    for i in 0..FILES {
        std::fs::write(spool.join(format!("submission-{i:06}.json")), submission(i)).unwrap();
    }
}

fn ready_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("kcidb-spool"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().ends_with(".json")
        })
        .count()
}

fn count_dir(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Where a run stores its rows: SQLite in its data directory, or a PostgreSQL database.
#[derive(Clone, Copy)]
enum Store<'a> {
    Sqlite,
    Postgres(&'a str),
}

fn spawn(data_dir: &Path, store: Store) -> Child {
    let mut cmd = Command::new(common::bin());
    cmd.args(["kcidb", "serve", "--kcidb-triage-interval", "0", "--listen"])
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("KERNELCI_DATABASE_URL")
        .env_remove("KERNELCI_KCIDB_SPOOL")
        .env("KERNELCI_KCIDB_SECRET", "sigkill-test")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Store::Postgres(url) = store {
        cmd.arg("--database-url").arg(url);
    }
    cmd.spawn().expect("spawn kernelci kcidb serve")
}

/// Runs the server until the spool has no ready file left, then kills it.
fn run_to_completion(data_dir: &Path, store: Store) {
    let mut child = spawn(data_dir, store);
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready_files(data_dir) > 0 {
        assert!(
            Instant::now() < deadline,
            "ingestion did not finish: {} ready files left",
            ready_files(data_dir)
        );
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last batch committed before its files left the spool's top level.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every row of the five tables, every column but `_timestamp`, sorted.
async fn rows(data_dir: &Path, store: Store<'_>) -> Vec<Vec<String>> {
    match store {
        Store::Sqlite => {
            sqlite_rows(&format!("sqlite://{}", data_dir.join("kcidb.db").display())).await
        }
        Store::Postgres(url) => postgres_rows(url).await,
    }
}

async fn sqlite_rows(url: &str) -> Vec<Vec<String>> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut all = Vec::new();
    for table in TABLES {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(table)
                .fetch_all(&pool)
                .await
                .unwrap();
        let select = row_text(table, &columns, |c| format!("quote({c})"));
        let sql = format!("SELECT {select} FROM {table}");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        all.push(sorted(found.iter().map(|r| r.get(0)).collect()));
    }
    pool.close().await;
    all
}

async fn postgres_rows(url: &str) -> Vec<Vec<String>> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut all = Vec::new();
    for table in TABLES {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        let select = row_text(table, &columns, |c| {
            format!("quote_nullable(CAST({c} AS TEXT))")
        });
        let sql = format!("SELECT {select} FROM {table}");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        all.push(sorted(found.iter().map(|r| r.get(0)).collect()));
    }
    pool.close().await;
    all
}

/// An SQL expression joining the quoted columns (but `_timestamp`) of a row of `table`
/// with `|`.
fn row_text(table: &str, columns: &[String], quote: impl Fn(&str) -> String) -> String {
    let quoted: Vec<String> = columns
        .iter()
        .filter(|c| *c != "_timestamp")
        .map(|c| quote(c))
        .collect();
    assert!(!quoted.is_empty(), "no table {table}");
    quoted.join(" || '|' || ")
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

/// A small xorshift generator (no dependency), seeded from the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The whole check: an uninterrupted run into `reference`, a run killed ten times and
/// finished into `killed`, the same rows in both.
async fn sigkill_check(reference_store: Store<'_>, killed_store: Store<'_>) {
    let reference = tempfile::tempdir().unwrap();
    fill_spool(reference.path());
    let started = Instant::now();
    run_to_completion(reference.path(), reference_store);
    eprintln!("uninterrupted run: {:?}", started.elapsed());
    let expected = rows(reference.path(), reference_store).await;
    assert_eq!(
        count_dir(&reference.path().join("kcidb-spool/archive")),
        FILES
    );
    assert_eq!(count_dir(&reference.path().join("kcidb-spool/failed")), 0);

    let seed = std::env::var("KCIDB_SIGKILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("KCIDB_SIGKILL_SEED={seed}");
    let mut rng = Rng(seed);
    let killed = tempfile::tempdir().unwrap();
    fill_spool(killed.path());
    let mut progress = Vec::new();
    for _ in 0..10 {
        let mut child = spawn(killed.path(), killed_store);
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        progress.push(FILES - ready_files(killed.path()));
    }
    eprintln!("files out of the spool after each kill: {progress:?}");
    assert!(
        progress[0] < FILES,
        "the first kill came after the whole spool was ingested: make the spool bigger"
    );
    run_to_completion(killed.path(), killed_store);
    let got = rows(killed.path(), killed_store).await;

    for (table, (want, have)) in TABLES.iter().zip(expected.iter().zip(&got)) {
        assert!(!want.is_empty(), "{table}: the reference run wrote nothing");
        assert_eq!(
            want.len(),
            have.len(),
            "{table}: row counts differ (seed {seed})"
        );
        for (w, h) in want.iter().zip(have) {
            assert_eq!(w, h, "{table}: rows differ (seed {seed})");
        }
    }
    assert_eq!(count_dir(&killed.path().join("kcidb-spool/failed")), 0);
    assert_eq!(count_dir(&killed.path().join("kcidb-spool/archive")), FILES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_ends_with_the_rows_of_an_uninterrupted_run() {
    sigkill_check(Store::Sqlite, Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_ends_with_the_rows_of_an_uninterrupted_run_on_postgres() {
    let Some(server) = pg_server_url() else {
        assert!(
            !in_ci(),
            "under CI this test must run: set KERNELCI_TEST_PG or KERNELCI_TEST_DATABASE_URL"
        );
        eprintln!("skipped: neither KERNELCI_TEST_PG nor KERNELCI_TEST_DATABASE_URL is set");
        return;
    };
    // A fresh database per run (dropped at the end).
    let reference = TestDb::postgres(&server).await;
    let killed = TestDb::postgres(&server).await;
    sigkill_check(
        Store::Postgres(&reference.url),
        Store::Postgres(&killed.url),
    )
    .await;
}
