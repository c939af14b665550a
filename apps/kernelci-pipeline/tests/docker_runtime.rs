//! The real scheduler with a docker runtime on a real Docker engine and a Maestro API
//! in-process: a checkout made available is built in a container (template
//! `docker/kbuild.jinja2`), its `artifacts/` collected, the kbuild `available`/pass; a job
//! whose container is still there when the scheduler restarts is watched again, one whose
//! container is gone is failed.
//!
//! Needs `KERNELCI_TEST_DOCKER_HOST` and the local image (`bash scripts/docker-local.sh start
//! && . /tmp/kernelci-docker/env`); without it the tests print why and pass.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Env, commit};
use kernelci_pipeline::scheduler::Scheduler;
use kernelci_sched::runtime::{DockerRuntime, JobHandle, JobStatus, Runtime};
use serde_json::{Map, Value};

const YAML: &str = r#"
trees:
  fake:
    url: "https://git.example.org/fake/linux.git"
build_configs:
  fake-master:
    tree: fake
    branch: master
runtimes:
  docker:
    lab_type: docker
jobs:
  kbuild-x86:
    template: kbuild.jinja2
    kind: kbuild
    image: {image}
    params: {arch: x86_64, compiler: gcc, defconfig: tinyconfig}
scheduler:
  - job: kbuild-x86
    event: {channel: node, kind: checkout, state: available}
    runtime: {name: docker}
"#;

/// A kbuild-like job: `sh` only (busybox), the kernel image in `artifacts/`.
const KBUILD: &str = r#"set -e
mkdir -p artifacts
echo "building {{ node.id }} in $(pwd) as node $KCI_NODE_ID"
printf 'fake kernel\n' > artifacts/bzImage
printf '{"build": {"arch": "x86_64", "compiler": "gcc", "defconfig": "tinyconfig"}}\n' > artifacts/metadata.json
{{ sleep_cmd | default("") }}
"#;

fn engine() -> Option<(String, String)> {
    match std::env::var("KERNELCI_TEST_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => Some((
            h,
            std::env::var("KERNELCI_TEST_DOCKER_IMAGE")
                .unwrap_or_else(|_| "local/kernelci-busybox:latest".into()),
        )),
        _ => {
            eprintln!(
                "skipped: KERNELCI_TEST_DOCKER_HOST is not set (bash scripts/docker-local.sh start && . /tmp/kernelci-docker/env)"
            );
            None
        }
    }
}

async fn setup(template: &str) -> Option<(Env, Arc<DockerRuntime>)> {
    let (host, image) = engine()?;
    let env = Env::new(&YAML.replace("{image}", &image)).await;
    let templates = env.dir.path().join("templates/docker");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("kbuild.jinja2"), template).unwrap();
    let jobs = env.dir.path().join("jobs/docker");
    let rt = tokio::task::spawn_blocking(move || {
        DockerRuntime::with_socket("docker", jobs, &Map::new(), &host)
    })
    .await
    .unwrap()
    .expect("Docker engine reachable");
    Some((env, Arc::new(rt)))
}

fn scheduler(env: &Env, rt: &Arc<DockerRuntime>) -> Scheduler {
    let mut runtimes: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
    runtimes.insert("docker".into(), rt.clone());
    Scheduler::new(env.ctx.clone(), runtimes)
}

async fn available_checkout(env: &Env, seed: u8) -> String {
    let checkout = env.checkout(&commit(seed), "running").await;
    let id = checkout["id"].as_str().unwrap().to_string();
    env.update(&id, |n| {
        n["state"] = "available".into();
        n["result"] = "pass".into();
    })
    .await;
    id
}

async fn kbuild_where(env: &Env, checkout: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let nodes = env.find(&[("kind", "kbuild"), ("parent", checkout)]).await;
        if let Some(n) = nodes.into_iter().find(|n| pred(n)) {
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no such kbuild under {checkout} after 60 s: {:#?}",
            env.find(&[("kind", "kbuild"), ("parent", checkout)]).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kbuild_runs_in_a_container_and_its_artifacts_are_collected() {
    let Some((env, rt)) = setup(KBUILD).await else {
        return;
    };
    let sched = scheduler(&env, &rt);
    let streams = Scheduler::subscribe(&env.ctx).await;
    let role = tokio::spawn(sched.run(streams));
    let cid = available_checkout(&env, 1).await;

    let kbuild = kbuild_where(&env, &cid, |n| n["state"] != "running").await;
    role.abort();
    let kid = kbuild["id"].as_str().unwrap();
    assert_eq!(kbuild["data"]["runtime"], "docker", "{kbuild:#}");
    assert_eq!(kbuild["result"], "pass", "{kbuild:#}");
    assert_eq!(kbuild["state"], "available", "{kbuild:#}");
    assert!(
        kbuild["artifacts"]["kernel"]
            .as_str()
            .is_some_and(|u| u.ends_with("/bzImage")),
        "{kbuild:#}"
    );
    assert_eq!(kbuild["data"]["arch"], "x86_64", "{kbuild:#}");
    // The container's output was kept as the job log.
    let log_url = kbuild["artifacts"]["job_log"]
        .as_str()
        .unwrap_or_else(|| panic!("no job_log: {kbuild:#}"));
    let rel = log_url.split("/storage/").nth(1).unwrap();
    let log = std::fs::read_to_string(env.dir.path().join("artifacts").join(rel)).unwrap();
    assert!(log.contains(&format!("as node {kid}")), "{log}");
    // Released: the container and the job directory are gone (release runs in the
    // background after the collection).
    let handle = JobHandle {
        runtime: "docker".into(),
        job_id: kbuild["data"]["job_id"].as_str().unwrap().into(),
    };
    let start = Instant::now();
    while rt.base_dir().join(kid).exists() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!rt.base_dir().join(kid).exists());
    let rt2 = rt.clone();
    let st = tokio::task::spawn_blocking(move || rt2.status(&handle))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st, JobStatus::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_live_container_is_watched_again_and_a_gone_one_fails() {
    // The job waits for a file the test creates, so it is still running at the restart.
    let template = KBUILD.replace(
        "{{ sleep_cmd | default(\"\") }}",
        "i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
    );
    let Some((env, rt)) = setup(&template).await else {
        return;
    };
    // First scheduler: submits two kbuilds, then "dies" (task aborted).
    let first = scheduler(&env, &rt);
    let streams = Scheduler::subscribe(&env.ctx).await;
    let role = tokio::spawn(first.run(streams));
    let live = available_checkout(&env, 2).await;
    let gone = available_checkout(&env, 3).await;
    let has_job = |n: &Value| n["data"]["job_id"].is_string();
    let live_node = kbuild_where(&env, &live, has_job).await;
    let gone_node = kbuild_where(&env, &gone, has_job).await;
    role.abort();
    let _ = role.await;

    // One container disappears while no scheduler runs.
    let gone_handle = JobHandle {
        runtime: "docker".into(),
        job_id: gone_node["data"]["job_id"].as_str().unwrap().into(),
    };
    let rt2 = rt.clone();
    tokio::task::spawn_blocking(move || rt2.release(&gone_handle))
        .await
        .unwrap()
        .unwrap();

    // Second scheduler (same instance, a fresh runtime as after a process restart).
    let (host, _) = engine().unwrap();
    let jobs = rt.base_dir().to_path_buf();
    let fresh = tokio::task::spawn_blocking(move || {
        DockerRuntime::with_socket("docker", jobs, &Map::new(), &host)
    })
    .await
    .unwrap()
    .unwrap();
    let fresh = Arc::new(fresh);
    let second = scheduler(&env, &fresh);
    let streams = Scheduler::subscribe(&env.ctx).await;
    let role = tokio::spawn(second.run(streams));

    let failed = kbuild_where(&env, &gone, |n| n["state"] == "done").await;
    assert_eq!(failed["result"], "incomplete", "{failed:#}");
    assert_eq!(failed["data"]["error_code"], "Infrastructure", "{failed:#}");

    // The live one is still running, then finishes and is collected by the new scheduler.
    let lid = live_node["id"].as_str().unwrap();
    assert_eq!(env.node(lid).await["state"], "running");
    std::fs::write(fresh.base_dir().join(lid).join("go"), "").unwrap();
    let done = kbuild_where(&env, &live, |n| n["state"] != "running").await;
    role.abort();
    assert_eq!(done["result"], "pass", "{done:#}");
    assert_eq!(done["state"], "available", "{done:#}");
    assert!(done["artifacts"]["kernel"].is_string(), "{done:#}");
}
