//! Server time of the dashboard's heaviest views with a large database.
//!
//! ```text
//! cargo run --release -p kernelci-dashboard --example dashboard_bench -- \
//!     [--pg postgres://postgres@127.0.0.1:5432/test] [--checkouts 100] [--builds 50] \
//!     [--tests-per-build 200] [--requests 20] [--json] [--db URL]
//! ```
//!
//! Fills a fresh database (a temporary SQLite file, or a throwaway PostgreSQL database made
//! next to `--pg` and dropped after) with `checkouts × builds × tests-per-build` tests
//! (default 1,000,000) through the normal batch load, serves the dashboard router on a port
//! and times, over real HTTP, the tree listing (page and JSON) and one checkout's detail
//! (page with its builds tab and its tests tab, JSON summary and tests list): p50, p95 and
//! max of `--requests` requests each. On PostgreSQL the tables are `ANALYZE`d after the load
//! (autovacuum would, in a running deployment). `--db URL` uses that database instead and
//! keeps it (filled only when it has no checkouts yet): a second run times the views again
//! without loading, or times a database made by an older version after its migration.

use std::time::{Duration, Instant};

use kernelci_kcidb::db::KcidbDb;
use serde_json::{Value, json};

struct Options {
    pg: Option<String>,
    checkouts: usize,
    builds: usize,
    tests_per_build: usize,
    requests: usize,
    json: bool,
    db: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        pg: None,
        checkouts: 100,
        builds: 50,
        tests_per_build: 200,
        requests: 20,
        json: false,
        db: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| e.to_string());
        match a.as_str() {
            "--pg" => o.pg = Some(value("--pg")?),
            "--checkouts" => o.checkouts = number(value("--checkouts")?)?,
            "--builds" => o.builds = number(value("--builds")?)?,
            "--tests-per-build" => o.tests_per_build = number(value("--tests-per-build")?)?,
            "--requests" => o.requests = number(value("--requests")?)?,
            "--json" => o.json = true,
            "--db" => o.db = Some(value("--db")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn commit(i: usize) -> String {
    format!("{:040x}", 0xabc0_0000_usize + i)
}

/// Checkout `c` of one of 10 trees (each a branch with a commit history), its builds and
/// their tests (a tenth of them boots).
fn checkout_doc(c: usize, o: &Options, start: chrono::DateTime<chrono::Utc>) -> Value {
    let statuses = ["PASS", "PASS", "PASS", "FAIL", "SKIP", "ERROR"];
    let arches = ["x86_64", "arm64", "riscv"];
    let tree = c % 10;
    let mut builds = Vec::with_capacity(o.builds);
    let mut tests = Vec::with_capacity(o.builds * o.tests_per_build);
    for b in 0..o.builds {
        let build_id = format!("bench:c{c}b{b}");
        builds.push(
            json!({"id": build_id, "origin": "bench", "checkout_id": format!("bench:c{c}"),
            "status": statuses[(c + b) % 6], "architecture": arches[b % 3],
            "config_name": format!("config{}", b % 17), "compiler": "gcc-12",
            "start_time": start.to_rfc3339(), "duration": 300.0 + b as f64}),
        );
        for t in 0..o.tests_per_build {
            let path = if t % 10 == 0 {
                format!("boot.t{}", t % 7)
            } else {
                format!("suite{}.group{}.case{t}", t % 13, t % 5)
            };
            tests.push(
                json!({"id": format!("bench:c{c}b{b}t{t}"), "origin": "bench",
                "build_id": build_id, "path": path, "status": statuses[(c + b + t) % 6],
                "start_time": start.to_rfc3339(), "duration": 1.5,
                "environment": {"compatible": [format!("board,{}", t % 40)],
                                "misc": {"platform": format!("board-{}", t % 40)}}}),
            );
        }
    }
    json!({"version": {"major": 5, "minor": 3},
        "checkouts": [{"id": format!("bench:c{c}"), "origin": "bench",
            "tree_name": format!("tree{tree}"), "git_repository_branch": "master",
            "git_repository_url": format!("https://git.example/tree{tree}.git"),
            "git_commit_hash": commit(c), "start_time": start.to_rfc3339()}],
        "builds": builds, "tests": tests})
}

async fn fill(db: &KcidbDb, o: &Options) -> Result<usize, Box<dyn std::error::Error>> {
    let now = chrono::Utc::now();
    let total = o.checkouts * o.builds * o.tests_per_build;
    let started = Instant::now();
    for c in 0..o.checkouts {
        let start = now - chrono::Duration::minutes((o.checkouts - c) as i64);
        let doc = checkout_doc(c, o, start);
        let sub = kernelci_kcidb::load(doc.to_string().as_bytes())?;
        db.load(sub).await?;
        eprint!(
            "\rloaded {}/{} checkouts ({:.0} s)",
            c + 1,
            o.checkouts,
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    Ok(total)
}

/// p50, p95, max in ms of `n` GETs of `url` (each must answer 200).
async fn time(client: &reqwest::Client, url: &str, n: usize) -> Result<[f64; 3], String> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = resp.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Ok([at(0.5), at(0.95), ms[ms.len() - 1]])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let dir = tempfile::tempdir()?;
    let (url, cleanup) = match (&o.db, &o.pg) {
        (Some(url), _) => (url.clone(), None),
        (None, Some(base)) => {
            let name = format!("dashboard_bench_{}", std::process::id());
            let admin = sqlx::PgPool::connect(base).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await?;
            let url = match base.rsplit_once('/') {
                Some((head, _)) => format!("{head}/{name}"),
                None => return Err("--pg needs a database URL".into()),
            };
            (url, Some((admin, name)))
        }
        (None, None) => (
            format!("sqlite://{}", dir.path().join("kcidb.db").display()),
            None,
        ),
    };
    let db = KcidbDb::open(&url).await?;
    let backend = match db {
        KcidbDb::Postgres(_) => "PostgreSQL",
        KcidbDb::Sqlite(_) => "SQLite",
    };
    let fill_start = Instant::now();
    let tests = if db.counts().await?.checkouts == 0 {
        fill(&db, &o).await?
    } else {
        usize::try_from(db.counts().await?.tests)?
    };
    let fill_secs = fill_start.elapsed().as_secs_f64();
    // After a bulk load PostgreSQL's statistics lag until autovacuum analyzes the tables;
    // do it now, as a deployment would have done long before anyone reads the data.
    if let KcidbDb::Postgres(pool) = &db {
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    let app = kernelci_dashboard::dashboard_router(db.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let c = commit(o.checkouts - 1);
    let q = "origin=bench&git_branch=master";
    let views = [
        (
            "tree listing page",
            format!("{base}/tree?origin=bench&interval_in_days=2"),
        ),
        (
            "tree listing JSON",
            format!("{base}/api/tree/?origin=bench&interval_in_days=2"),
        ),
        ("checkout page (builds tab)", format!("{base}/tree/{c}?{q}")),
        (
            "checkout page (tests tab)",
            format!("{base}/tree/{c}?{q}&tab=tests"),
        ),
        (
            "checkout summary JSON",
            format!("{base}/api/tree/{c}/summary?{q}"),
        ),
        (
            "checkout tests JSON",
            format!("{base}/api/tree/{c}/tests?{q}"),
        ),
    ];
    let mut results = Vec::new();
    for (name, url) in &views {
        // One warm-up request, then the measured ones.
        time(&client, url, 1).await?;
        let [p50, p95, max] = time(&client, url, o.requests).await?;
        results.push(json!({"view": name, "p50_ms": p50, "p95_ms": p95, "max_ms": max}));
    }
    server.abort();
    drop(db);
    if let Some((admin, name)) = cleanup {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
    }
    let per_checkout = o.builds * o.tests_per_build;
    if o.json {
        println!(
            "{}",
            json!({"backend": backend, "tests": tests, "checkouts": o.checkouts,
                   "tests_per_checkout": per_checkout, "fill_seconds": fill_secs,
                   "views": results})
        );
        return Ok(());
    }
    println!(
        "{backend}: {tests} tests in {} checkouts ({per_checkout} per checkout), loaded in {fill_secs:.0} s",
        o.checkouts
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9}",
        "view", "p50 ms", "p95 ms", "max ms"
    );
    for r in &results {
        println!(
            "{:<30} {:>9.1} {:>9.1} {:>9.1}",
            r["view"].as_str().unwrap_or(""),
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p95_ms"].as_f64().unwrap_or(0.0),
            r["max_ms"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
