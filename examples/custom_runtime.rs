//! A runtime of your own behind `kernelci_sched::runtime::Runtime`, handed to the scheduler.
//!
//! ```text
//! cargo run -p kernelci-examples --example custom_runtime
//! ```
//!
//! [`ThreadRuntime`] runs each job as a Rust function on a thread of its own, in a working
//! directory whose `artifacts/` the scheduler collects when the job ends (as it does for the
//! shell runtime). A runtime for a board farm or a batch system has the same shape: `submit`
//! starts the job and returns a handle (stored in the node's `data.job_id`), `status` answers
//! without blocking, `logs`/`workdir` give what to collect, `release` cleans up.
//!
//! The program starts a Maestro API in-process (SQLite in a temporary directory), makes a
//! scheduler with this runtime under the name `threads` (the pipeline YAML's
//! `runtimes.threads`, `lab_type: thread`: templates are looked up as `thread/<name>` first),
//! and makes a checkout available. The scheduler creates the `kbuild-x86` job node, renders
//! `thread/kbuild.jinja2`, submits it here; the job writes a kernel image and the scheduler
//! turns its exit code 0 into a passed build. Against a running instance, build the `Ctx`
//! with its URL and a pipeline token instead (`kernelci pipeline token`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kernelci_api::mail::FileMailer;
use kernelci_api::{ApiConfig, AppState, JwtKeys};
use kernelci_model::{ObjectId, User};
use kernelci_pipeline::client::ApiClient;
use kernelci_pipeline::scheduler::Scheduler;
use kernelci_pipeline::storage::LocalStorage;
use kernelci_pipeline::{Ctx, Settings};
use kernelci_sched::config::PipelineConfig;
use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError};
use kernelci_sched::template::Templates;
use serde_json::{Value, json};

/// What a job does: called on the job's thread with the submission, its working directory
/// (write results to `artifacts/`), its log, and a flag raised when the job is cancelled or
/// timed out (a long job should check it and return). Returns the exit code (for kbuild
/// jobs: 0 pass, 1 the kernel's fault, 2 infrastructure).
pub type JobBody = dyn Fn(&JobSubmission, &Path, &mut dyn Write, &AtomicBool) -> i32 + Send + Sync;

/// One job of a [`ThreadRuntime`].
struct Job {
    submission: JobSubmission,
    workdir: PathBuf,
    started: Instant,
    log: Arc<Mutex<Vec<u8>>>,
    exit: Arc<OnceLock<i32>>,
    cancelled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// Jobs as threads running a [`JobBody`].
pub struct ThreadRuntime {
    name: String,
    root: PathBuf,
    body: Arc<JobBody>,
    next: AtomicU64,
    jobs: Mutex<HashMap<String, Job>>,
    history: Mutex<Vec<JobSubmission>>,
}

impl ThreadRuntime {
    /// A runtime called `name` (its key under `runtimes:` in the pipeline YAML) keeping job
    /// directories under `root`.
    pub fn new(name: &str, root: &Path, body: Arc<JobBody>) -> ThreadRuntime {
        ThreadRuntime {
            name: name.to_string(),
            root: root.to_path_buf(),
            body,
            next: AtomicU64::new(1),
            jobs: Mutex::new(HashMap::new()),
            history: Mutex::new(Vec::new()),
        }
    }

    /// Every submission this runtime received (node id, job name, definition), in order.
    pub fn submitted(&self) -> Vec<JobSubmission> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn check(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        if handle.runtime == self.name {
            Ok(())
        } else {
            Err(RuntimeError::WrongRuntime {
                runtime: self.name.clone(),
                handle_runtime: handle.runtime.clone(),
            })
        }
    }

    /// Runs `f` on the job of `handle`; `None` when this runtime does not know it.
    fn with_job<T>(
        &self,
        handle: &JobHandle,
        f: impl FnOnce(&Job) -> T,
    ) -> Result<Option<T>, RuntimeError> {
        self.check(handle)?;
        let jobs = self.jobs.lock().map_err(|_| RuntimeError::Io {
            context: "job table".into(),
            source: std::io::Error::other("poisoned lock"),
        })?;
        Ok(jobs.get(&handle.job_id).map(f))
    }
}

/// A `Write` appending to a job's shared log.
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut log) => {
                log.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(std::io::Error::other("log lock poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Runtime for ThreadRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn lab_type(&self) -> &str {
        "thread"
    }

    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        if job.node_id.is_empty() {
            return Err(RuntimeError::InvalidSubmission("empty node id".into()));
        }
        let job_id = format!("thread-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let workdir = self.root.join(&job_id);
        std::fs::create_dir_all(workdir.join("artifacts")).map_err(|source| RuntimeError::Io {
            context: format!("create {}", workdir.display()),
            source,
        })?;
        let entry = Job {
            submission: job.clone(),
            workdir: workdir.clone(),
            started: Instant::now(),
            log: Arc::default(),
            exit: Arc::default(),
            cancelled: Arc::default(),
            stop: Arc::default(),
        };
        let (body, submission) = (self.body.clone(), job.clone());
        let (log, exit, stop) = (entry.log.clone(), entry.exit.clone(), entry.stop.clone());
        std::thread::Builder::new()
            .name(job_id.clone())
            .spawn(move || {
                let mut writer = LogWriter(log);
                let code = body(&submission, &workdir, &mut writer, &stop);
                let _ = exit.set(code);
            })
            .map_err(|source| RuntimeError::Spawn {
                context: job_id.clone(),
                source,
            })?;
        self.jobs
            .lock()
            .map_err(|_| RuntimeError::Io {
                context: "job table".into(),
                source: std::io::Error::other("poisoned lock"),
            })?
            .insert(job_id.clone(), entry);
        if let Ok(mut history) = self.history.lock() {
            history.push(job.clone());
        }
        Ok(JobHandle {
            runtime: self.name.clone(),
            job_id,
        })
    }

    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError> {
        let status = self.with_job(handle, |job| {
            if job.cancelled.load(Ordering::Relaxed) {
                return JobStatus::Cancelled;
            }
            if let Some(code) = job.exit.get() {
                return JobStatus::Finished { exit_code: *code };
            }
            let timeout = job.submission.timeout;
            if !timeout.is_zero() && job.started.elapsed() > timeout {
                job.stop.store(true, Ordering::Relaxed);
                return JobStatus::TimedOut;
            }
            JobStatus::Running
        })?;
        // A job we do not know (this process restarted): lost, as the trait asks.
        Ok(status.unwrap_or(JobStatus::Lost))
    }

    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        self.with_job(handle, |job| {
            if job.exit.get().is_none() {
                job.cancelled.store(true, Ordering::Relaxed);
                job.stop.store(true, Ordering::Relaxed);
            }
        })?
        .ok_or_else(|| RuntimeError::UnknownJob(handle.job_id.clone()))
    }

    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        self.with_job(handle, |job| {
            job.log.lock().map(|l| l.clone()).unwrap_or_default()
        })?
        .ok_or_else(|| RuntimeError::UnknownJob(handle.job_id.clone()))
    }

    fn workdir(&self, handle: &JobHandle) -> Option<PathBuf> {
        self.with_job(handle, |job| job.workdir.clone())
            .ok()
            .flatten()
    }

    fn release(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        self.check(handle)?;
        let removed = self
            .jobs
            .lock()
            .ok()
            .and_then(|mut jobs| jobs.remove(&handle.job_id));
        if let Some(job) = removed {
            // A job still running is asked to stop; its directory goes either way.
            job.stop.store(true, Ordering::Relaxed);
            let _ = std::fs::remove_dir_all(&job.workdir);
        }
        Ok(())
    }
}

/// The example's job: a "build" that logs its definition and leaves a kernel image and the
/// build metadata in `artifacts/`, as `shell/kbuild.jinja2` does.
pub fn fake_kbuild(
    job: &JobSubmission,
    workdir: &Path,
    log: &mut dyn Write,
    _stop: &AtomicBool,
) -> i32 {
    let _ = writeln!(log, "job {} for node {}", job.job_name, job.node_id);
    let _ = log.write_all(job.definition.as_bytes());
    let artifacts = workdir.join("artifacts");
    let metadata =
        json!({"build": {"arch": "x86_64", "compiler": "gcc", "defconfig": "tinyconfig"}});
    let written = std::fs::write(artifacts.join("bzImage"), b"not really a kernel")
        .and_then(|()| std::fs::write(artifacts.join("metadata.json"), metadata.to_string()));
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(log, "cannot write artifacts: {e}");
            2
        }
    }
}

/// The pipeline configuration: one tree, one runtime of ours, one kbuild job scheduled on
/// every available checkout.
pub const PIPELINE_YAML: &str = r#"
trees:
  mainline:
    url: "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git"
build_configs:
  mainline-master:
    tree: mainline
    branch: master
runtimes:
  threads:
    lab_type: thread
# Entries without `platforms` run on the platform named after the runtime's lab_type
# (implied only for shell, docker and kubernetes runtimes: declare it for your own).
platforms:
  thread: {}
jobs:
  kbuild-x86:
    template: kbuild.jinja2
    kind: kbuild
    params: {arch: x86_64, compiler: gcc, defconfig: tinyconfig}
scheduler:
  - job: kbuild-x86
    event: {channel: node, kind: checkout, state: available}
    runtime: {name: threads}
"#;

/// The job template for runtimes of `lab_type: thread` (`templates/thread/kbuild.jinja2`).
pub const KBUILD_TEMPLATE: &str =
    "build {{ name }} of node {{ node.id }}: {{ arch }} {{ defconfig }} with {{ compiler }}\n";

/// A Maestro API served in-process, a pipeline token for it, and a scheduler over our runtime.
pub struct World {
    /// The scheduler's context (its API client talks to the in-process API over HTTP).
    pub ctx: Ctx,
    /// Our runtime (shared with the scheduler).
    pub runtime: Arc<ThreadRuntime>,
    /// The scheduler's task (it runs until aborted).
    pub scheduler: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.scheduler.abort();
        self.server.abort();
    }
}

/// Starts the API on a free port with its database in `dir`, and the scheduler with a
/// [`ThreadRuntime`] called `threads` running [`fake_kbuild`].
pub async fn start(dir: &Path) -> anyhow::Result<World> {
    let (base, token, server) = start_maestro(dir).await?;
    let templates = dir.join("templates");
    std::fs::create_dir_all(templates.join("thread"))?;
    std::fs::write(templates.join("thread/kbuild.jinja2"), KBUILD_TEMPLATE)?;
    let ctx = Ctx {
        api: ApiClient::new(&format!("{base}/latest"), &token),
        config: Arc::new(PipelineConfig::from_yaml_str(
            PIPELINE_YAML,
            "pipeline.yaml",
        )?),
        settings: Arc::new(Settings::new(dir.join("work"), &base)),
        storage: Arc::new(LocalStorage::new(
            dir.join("artifacts"),
            &format!("{base}/storage"),
        )),
        templates: Arc::new(Templates::with_dirs([templates])),
    };

    // Hand the runtime to the scheduler: name (as in `runtimes:`) -> runtime.
    let runtime = Arc::new(ThreadRuntime::new(
        "threads",
        &dir.join("jobs"),
        Arc::new(fake_kbuild),
    ));
    let mut runtimes: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
    runtimes.insert("threads".into(), runtime.clone());
    let scheduler = Scheduler::new(ctx.clone(), runtimes);
    // Subscribe before anything happens: events are kept for durable subscriptions.
    let streams = Scheduler::subscribe(&ctx).await;
    let scheduler = tokio::spawn(scheduler.run(streams));
    Ok(World {
        ctx,
        runtime,
        scheduler,
        server,
    })
}

/// A checkout of mainline/master at `commit`, made `available` (the event the scheduler's
/// entry waits for). Returns its id.
pub async fn available_checkout(ctx: &Ctx, commit: &str) -> anyhow::Result<String> {
    let node = ctx
        .api
        .create(&json!({
            "kind": "checkout",
            "name": "checkout",
            "path": ["checkout"],
            "group": "checkout",
            "state": "running",
            "data": {"kernel_revision": {
                "tree": "mainline", "branch": "master", "commit": commit,
                "url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
            }},
            "treeid": format!("tree-{commit}"),
        }))
        .await?;
    let mut node = node;
    let id = node["id"].as_str().unwrap_or_default().to_string();
    node["state"] = "available".into();
    node["result"] = "pass".into();
    ctx.api.update(&node).await?;
    Ok(id)
}

/// Waits (up to `within`) until the kbuild under checkout `id` has a result; returns it.
pub async fn finished_kbuild(ctx: &Ctx, id: &str, within: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let found = ctx
            .api
            .find(&[("kind", "kbuild".to_string()), ("parent", id.to_string())])
            .await?;
        if let Some(node) = found.into_iter().find(|n| !n["result"].is_null()) {
            return Ok(node);
        }
        if Instant::now() > deadline {
            anyhow::bail!("no finished kbuild under {id} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Maestro API on a free port over SQLite in `dir`, and an administrator token for the
/// pipeline (what `kernelci pipeline token` gives against a real instance).
async fn start_maestro(
    dir: &Path,
) -> anyhow::Result<(String, String, tokio::task::JoinHandle<()>)> {
    let store =
        kernelci_store::open(&format!("sqlite://{}", dir.join("maestro.db").display())).await?;
    kernelci_api::ensure_builtin_groups(&*store).await?;
    let keys = JwtKeys::new("custom-runtime-example-secret", None);
    let user = User {
        id: ObjectId::generate(),
        email: "pipeline@lab.example".into(),
        hashed_password: kernelci_api::auth::hash_password(&ObjectId::generate().to_string())?,
        is_active: true,
        is_superuser: true,
        is_verified: true,
        username: "pipeline".into(),
        groups: Vec::new(),
    };
    store.insert_user(&user).await?;
    let token = keys.issue_access(&user.id, None);
    let mailer = Arc::new(FileMailer::new(dir.join("mail")));
    let state = AppState::new(store, keys, ApiConfig::default(), mailer).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = kernelci_api::router(state, false);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, token, server))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let world = start(dir.path()).await?;
    let checkout = available_checkout(&world.ctx, &"ab".repeat(20)).await?;
    println!("checkout {checkout} is available; the scheduler plans kbuild-x86 on `threads`");
    let kbuild = finished_kbuild(&world.ctx, &checkout, Duration::from_secs(60)).await?;
    println!(
        "kbuild {} ran as {} and ended {}/{}; kernel at {}",
        kbuild["id"].as_str().unwrap_or("?"),
        kbuild["data"]["job_id"].as_str().unwrap_or("?"),
        kbuild["state"].as_str().unwrap_or("?"),
        kbuild["result"].as_str().unwrap_or("?"),
        kbuild["artifacts"]["kernel"].as_str().unwrap_or("-"),
    );
    for job in world.runtime.submitted() {
        println!("definition of {}: {}", job.job_name, job.definition.trim());
    }
    Ok(())
}
