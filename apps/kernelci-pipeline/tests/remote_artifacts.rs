//! Artifacts of jobs on runtimes without a job directory (Kubernetes): the upload endpoint
//! `PUT /pipeline/api/artifacts/{node_id}/{name}` over real HTTP, and the whole loop with
//! the real scheduler, the embedded shell templates and a Maestro API in-process: a kbuild
//! and a boot job run by [`RemoteShellRuntime`] upload their `artifacts/` themselves, and
//! the nodes come out as with the local shell runtime.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Env, commit, sched_yaml};
use kernelci_pipeline::api::PipelineApi;
use kernelci_pipeline::client::ApiClient;
use kernelci_pipeline::remote_artifacts::issue_token;
use kernelci_pipeline::scheduler::Scheduler;
use kernelci_pipeline::storage::LocalStorage;
use kernelci_pipeline::{Ctx, Settings};
use kernelci_sched::runtime::{
    JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError, ShellRuntime,
};
use kernelci_sched::template::Templates;
use serde_json::{Value, json};

const SECRET: &[u8] = b"pipeline-secret";
const NODE: &str = "65a000000000000000000001";
const OTHER: &str = "65a000000000000000000002";

/// The pipeline API (`/pipeline`) and the local storage (`/storage`) on a real port, with a
/// `Ctx` whose public URL is that port.
struct Served {
    env: Env,
    ctx: Ctx,
    base: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(yaml: &str, limit: Option<u64>) -> Served {
    let env = Env::new(yaml).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let storage_dir = env.dir.path().join("artifacts");
    std::fs::create_dir_all(&storage_dir).unwrap();
    let ctx = Ctx {
        api: ApiClient::new(&format!("{}/latest", env.app.base), &env.token),
        config: env.config.clone(),
        settings: Arc::new(Settings::new(env.dir.path().join("work"), &base)),
        storage: Arc::new(LocalStorage::new(
            storage_dir.clone(),
            &format!("{base}/storage"),
        )),
        // The embedded templates only (the harness's `echo hi` ones are not wanted here).
        templates: Arc::new(Templates::with_dirs(Vec::<PathBuf>::new())),
    };
    let mut api = PipelineApi::new(ctx.clone(), vec![SECRET.to_vec()]);
    if let Some(bytes) = limit {
        api = api.with_artifact_limit(bytes);
    }
    let router = axum::Router::new()
        .nest("/pipeline", api.router())
        .nest_service("/storage", tower_http::services::ServeDir::new(storage_dir));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served {
        env,
        ctx,
        base,
        http: reqwest::Client::new(),
        server,
    }
}

impl Served {
    /// `PUT` of `body` to `<artifacts>/<path>` (path as written: not normalised).
    async fn put(&self, path: &str, token: Option<&str>, body: reqwest::Body) -> (u16, Value) {
        let mut req = self
            .http
            .put(format!("{}/pipeline/api/artifacts/{path}", self.base))
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `PUT` of `count` chunks of `size` bytes without a Content-Length (chunked encoding,
    /// written by hand); the raw answer.
    async fn put_chunked(&self, path: &str, token: &str, count: usize, size: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.base.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "PUT /pipeline/api/artifacts/{path} HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..count {
            // The server may answer (and close) before the last chunk: ignore write errors.
            let chunk = format!("{size:x}\r\n{}\r\n", "a".repeat(size));
            if tcp.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = tcp.write_all(b"0\r\n\r\n").await;
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer).await;
        answer
    }

    fn stored(&self, rel: &str) -> PathBuf {
        self.env.dir.path().join("artifacts").join(rel)
    }
}

fn token(node: &str) -> String {
    issue_token(SECRET, node, Duration::from_secs(600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_endpoint_stores_checks_tokens_names_and_sizes() {
    let s = serve(&sched_yaml(), Some(1024)).await;
    let good = token(NODE);

    // A good upload: stored under <node>/<name>, answered with its public URL, served.
    let (st, body) = s
        .put(
            &format!("{NODE}/fragments/0.config"),
            Some(&good),
            "CONFIG_X=y\n".into(),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/storage/{NODE}/fragments/0.config", s.base));
    assert_eq!(
        std::fs::read(s.stored(&format!("{NODE}/fragments/0.config"))).unwrap(),
        b"CONFIG_X=y\n"
    );
    let served = s.http.get(url).send().await.unwrap().text().await.unwrap();
    assert_eq!(served, "CONFIG_X=y\n");
    // Idempotent: a second upload overwrites.
    let (st, _) = s
        .put(
            &format!("{NODE}/fragments/0.config"),
            Some(&good),
            "CONFIG_Y=y\n".into(),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        std::fs::read(s.stored(&format!("{NODE}/fragments/0.config"))).unwrap(),
        b"CONFIG_Y=y\n"
    );

    // Without a token: 401; a bad signature: 401; an expired token: 401.
    let (st, body) = s.put(&format!("{NODE}/x"), None, "a".into()).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["message"], "Missing Authorization header");
    let forged = issue_token(b"another secret", NODE, Duration::from_secs(600));
    let (st, body) = s.put(&format!("{NODE}/x"), Some(&forged), "a".into()).await;
    assert_eq!(st, 401, "{body}");
    let now = chrono::Utc::now().timestamp();
    let expired = kernelci_model::jwt::sign(
        SECRET,
        &json!({"node": NODE, "permissions": ["artifacts"], "exp": now - 10}),
    );
    let (st, body) = s
        .put(&format!("{NODE}/x"), Some(&expired), "a".into())
        .await;
    assert_eq!((st, body["message"].as_str()), (401, Some("Token expired")));

    // Another node's token, or a token without the permission: 403.
    let (st, body) = s
        .put(&format!("{NODE}/x"), Some(&token(OTHER)), "a".into())
        .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["message"], format!("The token is not for node {NODE}"));
    let checkout = kernelci_pipeline::api::issue_token(SECRET, "a@b.c", &["checkout"], 1);
    let (st, body) = s
        .put(&format!("{NODE}/x"), Some(&checkout), "a".into())
        .await;
    assert_eq!(st, 403, "{body}");
    assert!(!s.stored(&format!("{NODE}/x")).exists());

    // Names that leave the node's folder, and malformed node ids: 400.
    for name in ["..%2Fx", "a/..%2F..%2Fx", "a%2F%2Fb"] {
        let (st, body) = s
            .put(&format!("{NODE}/{name}"), Some(&good), "a".into())
            .await;
        assert_eq!(st, 400, "{name}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("bad artifact name"),
            "{body}"
        );
    }
    assert!(!s.stored("x").exists());
    let bad_node = "not-a-node";
    let (st, body) = s
        .put(&format!("{bad_node}/x"), Some(&token(bad_node)), "a".into())
        .await;
    assert_eq!(st, 400, "{body}");

    // Larger than the limit (1 KiB here): 413, declared or streamed, and nothing stored.
    let (st, body) = s
        .put(&format!("{NODE}/big"), Some(&good), vec![0u8; 1025].into())
        .await;
    assert_eq!(st, 413, "{body}");
    assert_eq!(
        body["message"],
        "artifact larger than the limit of 1024 bytes"
    );
    let answer = s.put_chunked(&format!("{NODE}/big"), &good, 4, 400).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!s.stored(&format!("{NODE}/big")).exists());
    let (st, _) = s
        .put(&format!("{NODE}/fits"), Some(&good), vec![0u8; 1024].into())
        .await;
    assert_eq!(st, 200);
}

/// A runtime like a Kubernetes pod for the scheduler: the script runs in a shell in a
/// temporary directory, but [`Runtime::workdir`] is `None`, so the job must upload its
/// artifacts through the pipeline API. A test double standing in for a cluster, which
/// cannot run here.
struct RemoteShellRuntime(ShellRuntime);

impl Runtime for RemoteShellRuntime {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn lab_type(&self) -> &str {
        "kubernetes"
    }
    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        self.0.submit(job)
    }
    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError> {
        self.0.status(handle)
    }
    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        self.0.cancel(handle)
    }
    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        self.0.logs(handle)
    }
    fn workdir(&self, _handle: &JobHandle) -> Option<PathBuf> {
        None
    }
    fn release(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        self.0.release(handle)
    }
}

/// Just enough of kbuild for the kbuild template (as apps/kernelci/tests/common/fake_tree.rs).
const MAKEFILE: &str = "tinyconfig defconfig:\n\t@echo 'CONFIG_64BIT=y' > .config\n\
olddefconfig:\n\t@true\n\
bzImage:\n\t@mkdir -p arch/x86/boot\n\t@echo 'fake kernel image' > arch/x86/boot/bzImage\n\
.PHONY: tinyconfig defconfig olddefconfig bzImage\n";

/// A QEMU stand-in printing a boot to the marker.
const FAKE_QEMU: &str = r#"#!/bin/sh
echo "[    0.000000] Linux version 6.1.0-fake (ci@example) (gcc 12.2.0) #1 SMP"
echo "[    0.605670] Run /init as init process"
echo "BOOT-MARKER: init reached"
echo "[    1.030994] reboot: Restarting system"
"#;

/// Kbuild and boot jobs on both runtimes: `*-remote` on `remote` (uploads), `*-local` on
/// `shell` (job directory collected).
fn e2e_yaml(qemu: &Path) -> String {
    let q = qemu.display();
    format!(
        r#"
trees:
  fake:
    url: "https://git.example.org/fake/linux.git"
build_configs:
  fake-master:
    tree: fake
    branch: master
runtimes:
  shell:
    lab_type: shell
  remote:
    lab_type: kubernetes
platforms:
  qemu-x86:
    arch: x86_64
    boot_method: qemu
    mach: qemu
    params: {{qemu_bin: "{q}", boot_timeout: 20}}
jobs:
  kbuild-remote:
    template: shell/kbuild.jinja2
    kind: kbuild
    params: {{arch: x86_64, compiler: gcc, defconfig: tinyconfig, jobs: 1}}
  baseline-remote:
    template: shell/baseline.jinja2
    kind: job
  kbuild-local:
    template: kbuild.jinja2
    kind: kbuild
    params: {{arch: x86_64, compiler: gcc, defconfig: tinyconfig, jobs: 1}}
  baseline-local:
    template: baseline.jinja2
    kind: job
scheduler:
  - job: kbuild-remote
    event: {{channel: node, kind: checkout, state: available}}
    runtime: {{name: remote}}
  - job: baseline-remote
    event: {{channel: node, kind: kbuild, state: available, name: kbuild-remote}}
    runtime: {{name: remote}}
    platforms: [qemu-x86]
  - job: kbuild-local
    event: {{channel: node, kind: checkout, state: available}}
    runtime: {{name: shell}}
  - job: baseline-local
    event: {{channel: node, kind: kbuild, state: available, name: kbuild-local}}
    runtime: {{name: shell}}
    platforms: [qemu-x86]
"#
    )
}

/// The node named `name` once it is no longer running, within 120 s.
async fn settled(env: &Env, name: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(n) = env
            .find(&[("name", name)])
            .await
            .into_iter()
            .find(|n| n["state"] != "running")
        {
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{name} did not finish: {:#?}",
            env.find(&[("name", name)]).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The test tree below a boot job: (path below the job, kind, result), sorted.
async fn tree_below(env: &Env, job: &Value) -> Vec<(String, String, String)> {
    let depth = job["path"].as_array().unwrap().len();
    let mut out = Vec::new();
    let mut todo = vec![job["id"].as_str().unwrap().to_string()];
    while let Some(id) = todo.pop() {
        for n in env.find(&[("parent", &id)]).await {
            let rel: Vec<&str> = n["path"].as_array().unwrap()[depth..]
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            out.push((
                rel.join("/"),
                n["kind"].as_str().unwrap().to_string(),
                n["result"].as_str().unwrap_or_default().to_string(),
            ));
            todo.push(n["id"].as_str().unwrap().to_string());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_without_a_job_directory_upload_their_artifacts_and_are_collected() {
    let scratch = tempfile::tempdir().unwrap();
    let qemu = scratch.path().join("fake-qemu");
    std::fs::write(&qemu, FAKE_QEMU).unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&qemu)
        .status()
        .unwrap();
    let tree = scratch.path().join("linux-fake");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("Makefile"), MAKEFILE).unwrap();
    let s = serve(&e2e_yaml(&qemu), None).await;
    // The source tarball, served by the storage (node URLs must be http(s)).
    std::fs::create_dir_all(s.stored("tarballs")).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(s.stored("tarballs/linux.tar.gz"))
        .arg("-C")
        .arg(scratch.path())
        .arg("linux-fake")
        .status()
        .unwrap();
    assert!(tar.success());
    let jobs = s.env.dir.path().join("jobs");
    let shell = ShellRuntime::new("shell", jobs.join("shell")).unwrap();
    let remote = RemoteShellRuntime(ShellRuntime::new("remote", jobs.join("remote")).unwrap());
    let mut runtimes: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
    runtimes.insert("shell".into(), Arc::new(shell));
    runtimes.insert("remote".into(), Arc::new(remote));
    let sched = Scheduler::new(s.ctx.clone(), runtimes);
    let streams = Scheduler::subscribe(&s.ctx).await;
    let role = tokio::spawn(sched.run(streams));

    let mut checkout = common::checkout_node(&commit(7), "running");
    checkout["artifacts"] = json!({"tarball": format!("{}/storage/tarballs/linux.tar.gz", s.base)});
    let checkout = s.env.create(checkout).await;
    let cid = checkout["id"].as_str().unwrap().to_string();
    s.env
        .update(&cid, |n| {
            n["state"] = "available".into();
            n["result"] = "pass".into();
        })
        .await;

    let kb_remote = settled(&s.env, "kbuild-remote").await;
    let kb_local = settled(&s.env, "kbuild-local").await;
    let boot_remote = settled(&s.env, "baseline-remote").await;
    let boot_local = settled(&s.env, "baseline-local").await;
    role.abort();

    // The remote kbuild: passed, its kernel uploaded by the job under <node id>/ and served.
    let kid = kb_remote["id"].as_str().unwrap();
    assert_eq!(kb_remote["result"], "pass", "{kb_remote:#}");
    assert_eq!(kb_remote["state"], "available", "{kb_remote:#}");
    let kernel = kb_remote["artifacts"]["kernel"].as_str().unwrap();
    assert_eq!(kernel, format!("{}/storage/{kid}/bzImage", s.base));
    let bytes = s
        .http
        .get(kernel)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"fake kernel image\n");
    // metadata.json was read as from a local job directory.
    assert_eq!(kb_remote["data"]["kernel_type"], "bzimage", "{kb_remote:#}");
    assert_eq!(
        kb_remote["data"]["config_full"], "tinyconfig",
        "{kb_remote:#}"
    );
    assert_eq!(
        kb_remote["artifacts"]["build_log"],
        format!("{}/storage/{kid}/build.log", s.base)
    );
    assert!(
        kb_remote["artifacts"]["job_log"].is_string(),
        "{kb_remote:#}"
    );
    // The manifest the job wrote last.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(s.stored(&format!("{kid}/artifacts.json"))).unwrap())
            .unwrap();
    assert_eq!(manifest["exit"], 0);
    assert_eq!(
        manifest["files"]["bzImage"],
        format!("{}/storage/{kid}/bzImage", s.base)
    );
    // The same artifact keys as the local runtime's.
    let keys = |n: &Value| {
        let mut k: Vec<String> = n["artifacts"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(kb_local["result"], "pass", "{kb_local:#}");
    assert_eq!(keys(&kb_remote), keys(&kb_local));
    // The local runtime's jobs upload nothing themselves.
    let lid = kb_local["id"].as_str().unwrap();
    assert!(!s.stored(&format!("{lid}/artifacts.json")).exists());

    // The remote boot job booted the uploaded kernel; its console became the test tree,
    // exactly as the local one's.
    assert_eq!(boot_remote["result"], "pass", "{boot_remote:#}");
    let bid = boot_remote["id"].as_str().unwrap();
    assert_eq!(
        boot_remote["artifacts"]["test_log"],
        format!("{}/storage/{bid}/console.log", s.base)
    );
    let remote_tree = tree_below(&s.env, &boot_remote).await;
    assert_eq!(
        remote_tree
            .iter()
            .map(|(p, _, r)| format!("{p}={r}"))
            .collect::<Vec<_>>(),
        [
            "baseline=pass",
            "baseline/dmesg.alert=pass",
            "baseline/dmesg.crit=pass",
            "baseline/dmesg.emerg=pass",
            "baseline/login=pass"
        ]
    );
    assert_eq!(boot_local["result"], "pass", "{boot_local:#}");
    assert_eq!(remote_tree, tree_below(&s.env, &boot_local).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_manifest_only_the_exit_code_and_logs_count() {
    let s = serve(&sched_yaml(), None).await;
    let mut node = common::checkout_node(&commit(9), "available");
    node["kind"] = "kbuild".into();
    node["name"] = "kbuild-x86".into();
    node["state"] = "running".into();
    node["result"] = Value::Null;
    let kb = s.env.create(node).await;
    let id = kb["id"].as_str().unwrap();
    kernelci_pipeline::remote_artifacts::collect(
        &s.ctx,
        id,
        "kbuild",
        &JobStatus::Finished { exit_code: 0 },
        b"the pod's log\n",
    )
    .await
    .unwrap();
    let kb = s.env.node(id).await;
    assert_eq!(kb["result"], "incomplete", "{kb:#}");
    assert_eq!(
        kb["data"]["error_msg"],
        "Kernel image not found in artifacts"
    );
    assert!(kb["artifacts"]["job_log"].is_string(), "{kb:#}");
}
