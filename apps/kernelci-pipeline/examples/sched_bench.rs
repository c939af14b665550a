//! Scheduling benchmark: events in -> job nodes out, with upstream's production pipeline
//! configuration loaded.
//!
//! ```sh
//! cargo run --release -p kernelci-pipeline --example sched_bench -- \
//!     ../shared/fixtures/pipeline-config [--checkouts 60] [--builds 40]
//! ```
//!
//! A Maestro API is served in-process on a real port (SQLite in a temporary file, or
//! PostgreSQL with KERNELCI_TEST_DATABASE_URL), and one `Scheduler` talks to it over HTTP as
//! in production. Every runtime of the configuration is loaded as a `BenchRuntime`: a
//! stand-in that accepts a submission and does nothing (it exists only in this benchmark;
//! no job runs). Job templates are replaced by one-line templates so that the numbers
//! measure scheduling, not upstream's Python job programs.
//!
//! Phase 1: `--checkouts` checkouts of `mainline/master` become available; each event
//! expands to the kbuild jobs of the config. Phase 2: `--builds` of those kbuilds pass;
//! each expands to the test jobs on every platform. Reported: events/s, job nodes/s,
//! per-event latency (event handled -> all its jobs created and submitted), RSS.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelci_pipeline::client::ApiClient;
use kernelci_pipeline::scheduler::{Planned, Scheduler};
use kernelci_pipeline::storage::LocalStorage;
use kernelci_pipeline::{Ctx, Settings};
use kernelci_sched::config::PipelineConfig;
use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError};
use kernelci_sched::template::Templates;
use serde_json::{Value, json};

/// A runtime that accepts every job and runs nothing (benchmark stand-in).
struct BenchRuntime {
    name: String,
    lab_type: String,
}

impl Runtime for BenchRuntime {
    fn name(&self) -> &str {
        &self.name
    }
    fn lab_type(&self) -> &str {
        &self.lab_type
    }
    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        Ok(JobHandle {
            runtime: self.name.clone(),
            job_id: format!("bench-{}", job.node_id),
        })
    }
    fn status(&self, _: &JobHandle) -> Result<JobStatus, RuntimeError> {
        Ok(JobStatus::Running)
    }
    fn cancel(&self, _: &JobHandle) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn logs(&self, _: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        Ok(Vec::new())
    }
    fn workdir(&self, _: &JobHandle) -> Option<PathBuf> {
        None
    }
    fn release(&self, _: &JobHandle) -> Result<(), RuntimeError> {
        Ok(())
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn phase(name: &str, scheduler: &Scheduler, events: Vec<Value>) -> Vec<String> {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut created = Vec::new();
    let mut skipped = 0usize;
    let n_events = events.len();
    for ev in events {
        let t = Instant::now();
        for outcome in scheduler.handle_event(&ev).await {
            match outcome {
                Planned::Submitted(id) => created.push(id),
                Planned::Failed(id, why) => panic!("job {id} failed: {why}"),
                Planned::Skipped(_) => skipped += 1,
            }
        }
        latencies.push(t.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{name}: {n_events} events -> {} job nodes ({skipped} skipped by rules/filters) in {secs:.2} s: \
         {:.0} events/s, {:.0} job nodes/s; per event p50 {:.1} ms, p99 {:.1} ms; RSS {:.0} MiB",
        created.len(),
        n_events as f64 / secs,
        created.len() as f64 / secs,
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        rss_mib()
    );
    created
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().filter(|a| !a.starts_with("--")) else {
        eprintln!("usage: sched_bench CONFIG_DIR [--checkouts N] [--builds N]");
        std::process::exit(2);
    };
    let checkouts = arg(&args, "--checkouts", 60);
    let builds = arg(&args, "--builds", 40);

    let t = Instant::now();
    let config = PipelineConfig::load_dir(std::path::Path::new(dir)).expect("load config");
    println!(
        "config: {} jobs, {} platforms, {} runtimes, {} scheduler entries, loaded in {:.0} ms",
        config.jobs.len(),
        config.platforms.len(),
        config.runtimes.len(),
        config.scheduler.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    // One-line templates for every template name and runtime type.
    let tmpl = tempfile::tempdir().unwrap();
    let names: BTreeSet<&str> = config.jobs.values().map(|j| j.template.as_str()).collect();
    for name in names {
        std::fs::write(
            tmpl.path().join(name),
            "{{ name }} {{ node.id }} {{ platform_config.name }}\n",
        )
        .unwrap();
    }
    let mut runtimes: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
    for (name, rt) in &config.runtimes {
        runtimes.insert(
            name.clone(),
            Arc::new(BenchRuntime {
                name: name.clone(),
                lab_type: rt.lab_type.clone(),
            }),
        );
    }

    let app = kernelci_tests::TestApp::start().await;
    let work = tempfile::tempdir().unwrap();
    let settings = Settings::new(work.path().to_path_buf(), &app.base);
    let ctx = Ctx {
        api: ApiClient::new(&app.url(""), &app.admin_token),
        config: Arc::new(config),
        settings: Arc::new(settings),
        storage: Arc::new(LocalStorage::new(
            work.path().join("artifacts"),
            "http://127.0.0.1/storage",
        )),
        templates: Arc::new(Templates::with_dirs([tmpl.path().to_path_buf()])),
    };
    let scheduler = Scheduler::new(ctx.clone(), runtimes);

    // Phase 1: checkouts become available.
    let mut events = Vec::new();
    for i in 0..checkouts {
        let node = ctx
            .api
            .create(&json!({
                "kind": "checkout", "name": "checkout", "path": ["checkout"],
                "state": "available", "result": "pass",
                "data": {"kernel_revision": {
                    "tree": "mainline", "branch": "master",
                    "url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
                    "commit": format!("{:040x}", i + 1), "describe": format!("v6.13-{i}"),
                    "version": {"version": 6, "patchlevel": 13}}},
                "artifacts": {"tarball": "https://files.example.org/linux.tar.gz"},
            }))
            .await
            .expect("create checkout");
        let mut ev = json!({"op": "created"});
        for k in [
            "id", "kind", "name", "path", "group", "state", "result", "owner", "data",
        ] {
            ev[k] = node[k].clone();
        }
        events.push(ev);
    }
    let kbuilds = phase("checkout available -> kbuild jobs", &scheduler, events).await;

    // Phase 2: some of those builds pass.
    let mut events = Vec::new();
    for id in kbuilds.iter().take(builds) {
        let mut node = ctx.api.node(id).await.unwrap().unwrap();
        node["state"] = "available".into();
        node["result"] = "pass".into();
        node["artifacts"] = json!({"kernel": "https://files.example.org/Image", "modules": "https://files.example.org/modules.tar.xz"});
        node["data"]["config_full"] = "defconfig".into();
        let node = ctx.api.update(&node).await.unwrap();
        let mut ev = json!({"op": "updated", "previous_state": "running", "previous_result": null});
        for k in [
            "id", "kind", "name", "path", "group", "state", "result", "owner", "data",
        ] {
            ev[k] = node[k].clone();
        }
        events.push(ev);
    }
    let tests = phase("kbuild available -> test jobs", &scheduler, events).await;
    println!(
        "total: {} job nodes scheduled; API store: {}",
        kbuilds.len() + tests.len(),
        app.store.backend()
    );
}
