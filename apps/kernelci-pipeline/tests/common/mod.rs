//! Shared set-up of the pipeline library's integration tests: a Maestro API in-process
//! (`kernelci_tests::TestApp`, SQLite or PostgreSQL), a `Ctx` talking to it over HTTP, a
//! configuration from inline YAML, trivial job templates (`echo hi`) and shell runtimes in
//! a temporary directory.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kernelci_pipeline::client::ApiClient;
use kernelci_pipeline::scheduler::{Planned, Scheduler};
use kernelci_pipeline::storage::LocalStorage;
use kernelci_pipeline::{Ctx, Settings};
use kernelci_sched::config::PipelineConfig;
use kernelci_sched::runtime::{Runtime, ShellRuntime};
use kernelci_sched::template::Templates;
use kernelci_tests::TestApp;
use serde_json::{Value, json};

/// The scheduler configuration most tests use: a kbuild on every available checkout, a
/// test job on every passed kbuild, both on the shell runtime. `{extra_jobs}` and
/// `{extra_entries}` let a test add jobs and scheduler entries.
pub const SCHED_YAML: &str = r#"
trees:
  fake:
    url: "https://git.example.org/fake/linux.git"
  orphan:
    url: "https://git.example.org/orphan/linux.git"
build_configs:
  fake-master:
    tree: fake
    branch: master
runtimes:
  shell:
    lab_type: shell
platforms:
  qemu-x86:
    arch: x86_64
    boot_method: qemu
    mach: qemu
jobs:
  kbuild-x86:
    template: kbuild.jinja2
    kind: kbuild
    params: {arch: x86_64, compiler: gcc, defconfig: tinyconfig}
  baseline-x86:
    template: baseline.jinja2
    kind: job
{extra_jobs}
scheduler:
  - job: kbuild-x86
    event: {channel: node, kind: checkout, state: available}
    runtime: {name: shell}
  - job: baseline-x86
    event: {channel: node, kind: kbuild, state: available, result: pass}
    runtime: {name: shell}
    platforms: [qemu-x86]
{extra_entries}
"#;

/// [`SCHED_YAML`] with nothing added.
pub fn sched_yaml() -> String {
    sched_yaml_with("", "")
}

/// [`SCHED_YAML`] with extra jobs (indented under `jobs:`) and scheduler entries.
pub fn sched_yaml_with(extra_jobs: &str, extra_entries: &str) -> String {
    SCHED_YAML
        .replace("{extra_jobs}", extra_jobs)
        .replace("{extra_entries}", extra_entries)
}

/// One test's world: the API, a pipeline service user, a configuration, a `Ctx`.
pub struct Env {
    pub app: TestApp,
    pub dir: tempfile::TempDir,
    pub token: String,
    pub config: Arc<PipelineConfig>,
    pub ctx: Ctx,
    runtimes: AtomicUsize,
}

impl Env {
    /// Start the API and build a `Ctx` for the configuration `yaml`.
    pub async fn new(yaml: &str) -> Env {
        let app = TestApp::start().await;
        let (_, token) = app.add_user("pipeline", true).await;
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates/shell");
        std::fs::create_dir_all(&templates).unwrap();
        for name in ["kbuild.jinja2", "baseline.jinja2"] {
            std::fs::write(templates.join(name), "echo hi\n").unwrap();
        }
        let config = Arc::new(PipelineConfig::from_yaml_str(yaml, "test.yaml").unwrap());
        Env {
            ctx: make_ctx(&app, &token, &config, dir.path()),
            app,
            dir,
            token,
            config,
            runtimes: AtomicUsize::new(0),
        }
    }

    /// A fresh `Ctx` (its own HTTP client), as a second process or a restarted one has.
    pub fn new_ctx(&self) -> Ctx {
        make_ctx(&self.app, &self.token, &self.config, self.dir.path())
    }

    /// The Maestro API base the pipeline talks to.
    pub fn api_base(&self) -> String {
        format!("{}/latest", self.app.base)
    }

    /// A scheduler with a shell runtime of its own (its own job directory), over `ctx`.
    pub fn scheduler(&self, ctx: &Ctx) -> Scheduler {
        let n = self.runtimes.fetch_add(1, Ordering::Relaxed);
        let shell = ShellRuntime::new("shell", self.dir.path().join(format!("jobs-{n}")))
            .unwrap()
            .with_kill_grace(Duration::from_millis(100));
        let mut runtimes: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
        runtimes.insert("shell".into(), Arc::new(shell));
        Scheduler::new(ctx.clone(), runtimes)
    }

    /// `POST node` as the pipeline user.
    pub async fn create(&self, node: Value) -> Value {
        self.ctx
            .api
            .create(&node)
            .await
            .unwrap_or_else(|e| panic!("create {node}: {e}"))
    }

    /// `GET node/{id}`.
    pub async fn node(&self, id: &str) -> Value {
        self.ctx.api.node(id).await.unwrap().expect("node exists")
    }

    /// `PUT node/{id}` of `node` after `change`.
    pub async fn update(&self, id: &str, change: impl FnOnce(&mut Value)) -> Value {
        let mut node = self.node(id).await;
        change(&mut node);
        self.ctx
            .api
            .update(&node)
            .await
            .unwrap_or_else(|e| panic!("update {node}: {e}"))
    }

    /// `GET count`.
    pub async fn count(&self, filters: &[(&str, &str)]) -> u64 {
        let f: Vec<(&str, String)> = filters.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.ctx.api.count(&f).await.unwrap()
    }

    /// `GET nodes/fast`.
    pub async fn find(&self, filters: &[(&str, &str)]) -> Vec<Value> {
        let f: Vec<(&str, String)> = filters.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.ctx.api.find(&f).await.unwrap()
    }

    /// A subscription of our own on `channel`, made now.
    pub async fn listener(&self, channel: &str) -> Listener {
        Listener::new(&self.ctx.api, channel).await
    }

    /// A checkout of the `fake` tree at `commit` in `state`.
    pub async fn checkout(&self, commit: &str, state: &str) -> Value {
        self.create(checkout_node(commit, state)).await
    }
}

fn make_ctx(app: &TestApp, token: &str, config: &Arc<PipelineConfig>, dir: &Path) -> Ctx {
    let settings = Settings::new(dir.join("work"), &app.base);
    let storage = LocalStorage::new(dir.join("artifacts"), &format!("{}/storage", app.base));
    Ctx {
        api: ApiClient::new(&format!("{}/latest", app.base), token),
        config: config.clone(),
        settings: Arc::new(settings),
        storage: Arc::new(storage),
        templates: Arc::new(Templates::with_dirs([dir.join("templates")])),
    }
}

/// A checkout node body (not yet created).
pub fn checkout_node(commit: &str, state: &str) -> Value {
    json!({
        "kind": "checkout",
        "name": "checkout",
        "path": ["checkout"],
        "group": "checkout",
        "state": state,
        "result": if state == "running" { Value::Null } else { "pass".into() },
        "data": {"kernel_revision": {
            "tree": "fake", "branch": "master", "commit": commit,
            "url": "https://git.example.org/fake/linux.git",
        }},
        "treeid": format!("tree-{commit}"),
        "submitter": "service:pipeline",
    })
}

/// A 40-hex-digit commit id made of `seed`.
pub fn commit(seed: u8) -> String {
    format!("{seed:02x}").repeat(20)
}

/// A subscription read with deadlines.
pub struct Listener {
    api: ApiClient,
    sub: i64,
}

static SUBSCRIBERS: AtomicUsize = AtomicUsize::new(0);

impl Listener {
    pub async fn new(api: &ApiClient, channel: &str) -> Listener {
        let n = SUBSCRIBERS.fetch_add(1, Ordering::Relaxed);
        let sub = api
            .subscribe(channel, &format!("test-{channel}-{n}"), true)
            .await
            .unwrap();
        Listener {
            api: api.clone(),
            sub,
        }
    }

    /// The first event satisfying `pred` (others are dropped), within 30 s.
    pub async fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no event: {what}");
            if let Some(ev) = self.api.listen(self.sub).await.unwrap()
                && pred(&ev)
            {
                return ev;
            }
        }
    }

    /// The event of `op` on node `id` (with `state` when given).
    pub async fn node_event(&self, id: &str, op: &str, state: &str) -> Value {
        self.wait(&format!("{op} {id} {state}"), |ev| {
            ev["id"] == id && ev["op"] == op && ev["state"] == state
        })
        .await
    }

    /// Nothing matching `pred` arrives within `within`.
    pub async fn none(&self, within: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let left = deadline - Instant::now();
            match tokio::time::timeout(left, self.api.listen(self.sub)).await {
                Ok(Ok(Some(ev))) => assert!(!pred(&ev), "unexpected event {ev}"),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => panic!("listen: {e}"),
                Err(_) => return,
            }
        }
    }
}

/// The outcomes that are not skips of other jobs: `Submitted`/`Failed` and skips naming
/// `job`.
pub fn about<'a>(outcomes: &'a [Planned], job: &str) -> Vec<&'a Planned> {
    outcomes
        .iter()
        .filter(|p| match p {
            Planned::Skipped(why) => why.starts_with(&format!("{job}:")),
            _ => true,
        })
        .collect()
}

/// The id of a `Submitted` outcome, or a panic with all outcomes.
pub fn submitted(outcomes: &[Planned]) -> String {
    let ids: Vec<&String> = outcomes
        .iter()
        .filter_map(|p| match p {
            Planned::Submitted(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 1, "one submission expected: {outcomes:?}");
    ids[0].clone()
}

/// Run `git` with a fixed identity; its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git repository with one commit on `master`; the head commit.
pub fn git_repo(dir: &Path) -> (PathBuf, String) {
    let repo = dir.join("linux");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "master"]);
    (repo.clone(), git_commit(&repo, "first"))
}

/// A new commit in `repo`; its id.
pub fn git_commit(repo: &Path, message: &str) -> String {
    std::fs::write(repo.join("README"), message).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// The pipeline REST API (a router made from an [`Env`]'s `Ctx`) served on a random port
/// of 127.0.0.1, stopped when dropped.
pub struct ServedApi {
    pub env: Env,
    pub base: String,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `router` (built over `env`) on a random port.
pub async fn serve_api(env: Env, router: axum::Router) -> ServedApi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    ServedApi {
        env,
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        server,
    }
}

impl ServedApi {
    /// POST `body` (raw JSON text) to `path` with an `Authorization` header value; the
    /// status and the reply (JSON, or the text as a JSON string).
    pub async fn post_raw(&self, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}
