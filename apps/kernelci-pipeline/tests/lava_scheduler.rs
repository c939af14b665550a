//! The scheduler with a `lava` runtime against a real LAVA lab (scripts/lava-local.sh; CI
//! starts one): the job definition rendered from `lava/baseline.jinja2` is accepted by LAVA,
//! the node records LAVA's job id, and the queue gate skips jobs for a device type without
//! online devices or beyond the queue limit, before any node exists.
//!
//! Runs only with `KERNELCI_TEST_LAVA_URL` and `KERNELCI_TEST_LAVA_TOKEN` set (the env file
//! `scripts/lava-local.sh start` writes); otherwise it says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{Env, commit};
use kernelci_lava::client::LavaClient;
use kernelci_lava::lab::{LabConfig, LabSecrets};
use kernelci_lava::runtime::LavaRuntime;
use kernelci_pipeline::scheduler::{Planned, Scheduler};
use kernelci_sched::runtime::Runtime;
use serde_json::json;

fn lab() -> Option<(String, String)> {
    let url = std::env::var("KERNELCI_TEST_LAVA_URL").unwrap_or_default();
    let token = std::env::var("KERNELCI_TEST_LAVA_TOKEN").unwrap_or_default();
    if url.is_empty() || token.is_empty() {
        eprintln!(
            "skipped: no LAVA lab (set KERNELCI_TEST_LAVA_URL and KERNELCI_TEST_LAVA_TOKEN, e.g. `. /tmp/kernelci-lava/env` after scripts/lava-local.sh start)"
        );
        return None;
    }
    Some((url, token))
}

fn yaml(url: &str) -> String {
    format!(
        r#"
trees:
  fake:
    url: "https://git.example.org/fake/linux.git"
runtimes:
  shell:
    lab_type: shell
  lava-real:
    lab_type: lava
    url: "{url}"
    priority_min: 10
    priority_max: 40
    notify: {{callback: {{token: kernelci-callback}}}}
  lava-full:
    lab_type: lava
    url: "{url}"
    max_queue_depth: 0
platforms:
  qemu-lava:
    base_name: qemu
    arch: x86_64
    boot_method: qemu
    context: {{arch: amd64}}
  ghost-board:
    base_name: no-such-device-type
    arch: arm64
    boot_method: u-boot
jobs:
  kbuild-x86:
    template: kbuild.jinja2
    kind: kbuild
    params: {{arch: x86_64, compiler: gcc, defconfig: tinyconfig}}
  baseline-lava:
    template: baseline.jinja2
    kind: job
    params: {{ramdisk: /nonexistent/initramfs.cpio.gz, boot_timeout: 30}}
scheduler:
  - job: baseline-lava
    event: {{channel: node, kind: kbuild, state: available}}
    runtime: {{type: lava, name: lava-real}}
    platforms: [qemu-lava, ghost-board]
  - job: baseline-lava
    event: {{channel: node, kind: kbuild, state: available}}
    runtime: {{type: lava, name: lava-full}}
    platforms: [qemu-lava]
"#
    )
}

fn runtime(env: &Env, name: &str, token: &str) -> Arc<dyn Runtime> {
    let rt = &env.config.runtimes[name];
    let config = LabConfig::from_runtime(
        name,
        &rt.fields,
        LabSecrets {
            runtime_token: Some(token.to_string()),
            callback_token: None,
        },
    )
    .unwrap();
    Arc::new(LavaRuntime::new(config).unwrap())
}

/// Cancels the LAVA jobs it was given when dropped, also when an assertion failed: the
/// lab's single device is for the other tests (and CI's end-to-end run).
struct CancelOnDrop {
    api: String,
    token: String,
    jobs: Vec<i64>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let jobs = std::mem::take(&mut self.jobs);
        let (api, token) = (self.api.clone(), self.token.clone());
        // The blocking client must not run on the async test's thread.
        let _ = std::thread::spawn(move || {
            if let Ok(client) = LavaClient::new(&api, Some(&token)) {
                for id in jobs {
                    let _ = client.cancel(id);
                }
            }
        })
        .join();
    }
}

#[tokio::test]
async fn lava_jobs_are_submitted_and_gated_by_the_lab_queue() {
    let Some((url, token)) = lab() else {
        return;
    };
    let env = Env::new(&yaml(&url)).await;
    let mut runtimes: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
    for name in ["lava-real", "lava-full"] {
        runtimes.insert(name.into(), runtime(&env, name, &token));
    }
    let scheduler = Scheduler::new(env.ctx.clone(), runtimes);

    let checkout = env.checkout(&commit(1), "available").await;
    let events = env.listener("node").await;
    let kbuild = env
        .create(json!({
            "kind": "kbuild", "name": "kbuild-x86", "parent": checkout["id"],
            "path": ["checkout", "kbuild-x86"], "state": "running",
            "submitter": "service:pipeline",
            "data": {"kernel_revision": checkout["data"]["kernel_revision"], "arch": "x86_64"},
            "artifacts": {"kernel": "http://127.0.0.1:9/nonexistent/bzImage"},
        }))
        .await;
    let kid = kbuild["id"].as_str().unwrap();
    env.update(kid, |n| {
        n["state"] = "available".into();
        n["result"] = "pass".into();
    })
    .await;
    let ev = events.node_event(kid, "updated", "available").await;
    let outcomes = scheduler.handle_event(&ev).await;
    let api = kernelci_lava::lab::api_url(&url);
    let _cancel = CancelOnDrop {
        api: api.clone(),
        token: token.clone(),
        jobs: env
            .find(&[("name", "baseline-lava")])
            .await
            .iter()
            .filter_map(|n| n["data"]["job_id"].as_str()?.parse().ok())
            .collect(),
    };

    // One job went to the lab; the board nobody has and the full queue were skipped.
    let submitted: Vec<&String> = outcomes
        .iter()
        .filter_map(|p| match p {
            Planned::Submitted(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(submitted.len(), 1, "{outcomes:?}");
    let skipped: Vec<&String> = outcomes
        .iter()
        .filter_map(|p| match p {
            Planned::Skipped(why) => Some(why),
            _ => None,
        })
        .collect();
    assert!(
        skipped
            .iter()
            .any(|w| w.contains("lab lava-real has no device type no-such-device-type")),
        "{outcomes:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|w| w.contains("lab lava-full") && w.contains("limit 0")),
        "{outcomes:?}"
    );
    assert_eq!(
        env.count(&[("name", "baseline-lava")]).await,
        1,
        "skipped jobs leave no node"
    );

    // The node records LAVA's job, which holds our definition.
    let node = env.node(submitted[0]).await;
    assert_eq!(node["state"], "running");
    assert_eq!(node["data"]["runtime"], "lava-real");
    let job_id: i64 = node["data"]["job_id"].as_str().unwrap().parse().unwrap();
    let info = tokio::task::spawn_blocking(move || {
        LavaClient::new(&api, Some(&token))
            .unwrap()
            .job(job_id)
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(info.id, job_id);
}
