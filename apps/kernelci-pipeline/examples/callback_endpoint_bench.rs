//! A large LAVA callback through the pipeline's endpoint, end to end: the checks before the
//! 202 (token, parse, node), then storing the logs and payload and writing the result tree
//! (10,000 test nodes by default) into the Maestro API.
//!
//! ```text
//! cargo run --release -p kernelci-pipeline --example callback_endpoint_bench -- \
//!     [--cases 10000] [--suites 5] [--log-mb 30]
//! KERNELCI_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run ...  # PostgreSQL
//! ```
//!
//! The Maestro API runs in this process on a fresh SQLite file (or a fresh PostgreSQL
//! database with `KERNELCI_TEST_DATABASE_URL`), the pipeline API on a port of its own; the
//! body is posted over HTTP. Prints the time to the answer, the time until the job node is
//! done, the nodes written, and the peak resident memory (VmHWM) of the whole process
//! (server, API and client together).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelci_pipeline::api::PipelineApi;
use kernelci_pipeline::client::ApiClient;
use kernelci_pipeline::storage::LocalStorage;
use kernelci_pipeline::{Ctx, Settings};
use kernelci_sched::config::PipelineConfig;
use kernelci_sched::template::Templates;
use kernelci_tests::TestApp;
use serde_json::json;

#[path = "../../../kernelci-lava/examples/big_callback/mod.rs"]
mod big_callback;

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn shape() -> Result<big_callback::Shape, String> {
    let mut shape = big_callback::Shape {
        cases: 10_000,
        suites: 5,
        log_mb: 30,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--cases" => shape.cases = value,
            "--suites" => shape.suites = value.max(1),
            "--log-mb" => shape.log_mb = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(shape)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let shape = match shape() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("callback_endpoint_bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let app = TestApp::start().await;
    let (_, token) = app.add_user("pipeline", true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(PipelineConfig::from_yaml_str("{}", "bench.yaml").unwrap());
    let ctx = Ctx {
        api: ApiClient::new(&format!("{}/latest", app.base), &token),
        config,
        settings: Arc::new(Settings::new(dir.path().join("work"), &app.base)),
        storage: Arc::new(LocalStorage::new(
            dir.path().join("artifacts"),
            &format!("{}/storage", app.base),
        )),
        templates: Arc::new(Templates::new()),
    };
    let router = PipelineApi::new(ctx.clone(), vec![b"bench".to_vec()])
        .with_callback_tokens(vec!["bench-callback".into()])
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let job = ctx
        .api
        .create(&json!({
            "kind": "job", "name": "kselftest-bench", "path": ["checkout", "kselftest-bench"],
            "state": "running",
            "data": {"kernel_revision": {"tree": "mainline", "branch": "master", "commit": "abc",
                                         "url": "https://git.example.org/linux.git"},
                     "arch": "x86_64", "platform": "qemu-x86", "runtime": "lava-bench"},
        }))
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    let (body, log_lines) = big_callback::payload(&shape, &id);
    println!(
        "body: {:.1} MB ({} test cases in {} suites, {} log lines), generated in {:.2?}",
        body.len() as f64 / 1e6,
        shape.cases,
        shape.suites,
        log_lines,
        t.elapsed()
    );
    let http = reqwest::Client::new();
    let t = Instant::now();
    let resp = http
        .post(format!("http://{addr}/node/{id}"))
        .header("authorization", "bench-callback")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let answered = t.elapsed();
    let status = resp.status();
    println!(
        "answer: {status} in {answered:.2?} ({})",
        resp.text().await.unwrap_or_default()
    );
    if status != 202 {
        return std::process::ExitCode::FAILURE;
    }
    loop {
        let node = ctx.api.node(&id).await.unwrap().unwrap();
        if node["state"] == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = t.elapsed();
    let nodes = ctx
        .api
        .count(&[("data.runtime", "lava-bench".to_string())])
        .await
        .unwrap();
    println!(
        "processed: job done {done:.2?} after the post ({:.2?} after the answer); {nodes} nodes in the tree; peak RSS (VmHWM) {}",
        done - answered,
        vm_hwm()
    );
    std::process::ExitCode::SUCCESS
}
