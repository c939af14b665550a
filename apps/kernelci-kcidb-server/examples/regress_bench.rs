//! Benchmark of the regression tracker: how long a round takes when a lab submits one
//! more checkout of a branch with many tests, and how fast a first round catches up with a
//! history it has never seen.
//!
//! ```sh
//! cargo run --release -p kernelci-kcidb-server --example regress_bench -- [CHECKOUTS] [TESTS]
//! KERNELCI_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench cargo run ...
//! ```
//!
//! Defaults: 20 checkouts of 5,000 tests. Statuses are deterministic: about 2% of the tests
//! fail on each checkout, some from one checkout on (regressions), some every other
//! checkout (flaky). Prints the load time, the tracker's time per round and what it found.

use std::time::Instant;

use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::regress::track::{TrackerConfig, track_once};
use serde_json::{Value, json};

fn checkout(n: usize, tests: usize) -> Value {
    let c = format!("bench:c{n}");
    let b = format!("bench:b{n}");
    let tests: Vec<Value> = (0..tests)
        .map(|i| {
            // Regressions: test i fails from checkout i % 50 + 2 on, for 1 in 100 tests.
            // Flaky: 1 in 100 tests flip with the checkout's parity.
            let regressed = i % 100 == 7 && n >= i % 50 + 2;
            let flaky_fail = i % 100 == 13 && n.is_multiple_of(2);
            let status = if regressed || flaky_fail {
                "FAIL"
            } else {
                "PASS"
            };
            json!({"id": format!("bench:t{n}-{i}"), "origin": "bench", "build_id": b,
                "path": format!("suite{}.case{i}", i % 20), "status": status,
                "environment": {"misc": {"platform": format!("board{}", i % 7)}},
                "misc": {"runtime": "lab-bench"}})
        })
        .collect();
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": c, "origin": "bench", "tree_name": "mainline",
            "git_repository_branch": "master", "git_commit_hash": format!("{n:040x}"),
            "start_time": format!("2026-10-{:02}T10:00:00+00:00", n % 28 + 1), "valid": true}],
        "builds": [{"id": b, "origin": "bench", "checkout_id": c, "config_name": "defconfig",
            "architecture": "x86_64", "compiler": "gcc-12", "status": "PASS"}],
        "tests": tests,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let checkouts: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let tests: usize = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let url = std::env::var("KERNELCI_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let db = KcidbDb::open(&url).await?;
    let cfg = TrackerConfig::default();
    println!(
        "{} database, {checkouts} checkouts x {tests} tests",
        db.backend()
    );
    // History first, then one first round over all of it.
    let half = checkouts / 2;
    let t0 = Instant::now();
    for n in 1..=half {
        db.load(kernelci_kcidb::load(
            checkout(n, tests).to_string().as_bytes(),
        )?)
        .await?;
    }
    println!(
        "loaded {half} checkouts in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let r = track_once(&db, &cfg).await?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "first round over that history: {:.2} s, {:.0} results/s ({} recorded, {} opened)",
        secs,
        r.recorded as f64 / secs,
        r.recorded,
        r.opened
    );
    // Then one checkout at a time, a round after each (what a live tracker does).
    let mut rounds = Vec::new();
    for n in half + 1..=checkouts {
        db.load(kernelci_kcidb::load(
            checkout(n, tests).to_string().as_bytes(),
        )?)
        .await?;
        let t0 = Instant::now();
        let r = track_once(&db, &cfg).await?;
        rounds.push((t0.elapsed().as_secs_f64() * 1000.0, r));
    }
    let mut ms: Vec<f64> = rounds.iter().map(|r| r.0).collect();
    ms.sort_by(f64::total_cmp);
    let (opened, fixed, flaky) = rounds.iter().fold((0, 0, 0), |a, (_, r)| {
        (a.0 + r.opened, a.1 + r.fixed, a.2 + r.became_flaky)
    });
    println!(
        "incremental rounds (one new checkout of {tests} tests each): median {:.0} ms, max {:.0} ms; \
         {opened} opened, {fixed} fixed, {flaky} became flaky",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    let t0 = Instant::now();
    let idle = track_once(&db, &cfg).await?;
    println!(
        "idle round (nothing new, {} re-read in the overlap): {:.0} ms",
        idle.read,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
