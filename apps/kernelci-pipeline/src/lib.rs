//! The pipeline roles of KernelCI (specs/pipeline.md): trigger, tarball, scheduler (with
//! the shell runtime's job collection), timeout/holdoff/closing, job-retry, the KCIDB
//! bridge, and the pipeline REST API with the LAVA callback.
//!
//! Every role talks to the Maestro API over HTTP with a token, exactly as upstream's
//! services do, so each can run in its own process (`kernelci pipeline <role>`) or all of
//! them inside `kernelci up`. The decisions (configuration, rules, matching, templates,
//! runtimes) live in the pure crate `kernelci-sched`; this crate does the IO.

pub mod ancestry;
pub mod api;
pub mod bisect;
pub mod client;
pub mod collect;
pub mod events;
pub mod git;
pub mod health;
pub mod job_retry;
pub mod kcidb_bridge;
pub mod lava_callback;
pub mod missing;
pub mod patchset;
pub mod remote_artifacts;
pub mod scheduler;
pub mod secrets;
pub mod storage;
pub mod tarball;
pub mod telemetry;
pub mod timeout;
pub mod trigger;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kernelci_sched::config::PipelineConfig;
use kernelci_sched::runtime::Runtime;
use kernelci_sched::template::Templates;

use crate::client::ApiClient;
use crate::storage::ArtifactStore;

/// `submitter` of the nodes the pipeline creates by itself (upstream's constant).
pub const SERVICE_PIPELINE: &str = "service:pipeline";

/// Trigger settings (`[trigger]` in upstream's kernelci.toml).
#[derive(Debug, Clone)]
pub struct TriggerSettings {
    /// Seconds between passes; zero runs once.
    pub poll_period: Duration,
    /// Wait before the first pass.
    pub startup_delay: Duration,
    /// Checkout timeout, minutes.
    pub timeout_minutes: u64,
    /// Create checkouts even for known commits / within `frequency`.
    pub force: bool,
    /// `a,b` or `!a,b`.
    pub trees: Option<String>,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        TriggerSettings {
            poll_period: Duration::from_secs(3600),
            startup_delay: Duration::from_secs(0),
            timeout_minutes: 180,
            force: false,
            trees: None,
        }
    }
}

/// Settings shared by the roles.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where mirrors, tarballs and job directories go.
    pub work_dir: PathBuf,
    /// The public base URL of this instance (`http://127.0.0.1:8001`), used to build the
    /// API URL given to jobs and the callback URL.
    pub public_url: String,
    /// Maestro API path under `public_url` (`/latest`).
    pub api_path: String,
    /// Storage base URL (where artifacts are downloaded from).
    pub storage_base_url: String,
    /// Trigger settings.
    pub trigger: TriggerSettings,
    /// Holdoff after a checkout or build becomes available.
    pub holdoff: Duration,
    /// Timeout-role poll period.
    pub timeout_poll: Duration,
    /// Default time limit of a job without `params.job_timeout`.
    pub job_timeout: Duration,
    /// Retries of a failed job (upstream: 3).
    pub max_retries: i64,
    /// Period of the KCIDB bridge's sweep of unsent nodes.
    pub kcidb_sweep: Duration,
    /// A console line that counts as "login reached" for boot jobs whose init prints a
    /// marker instead of a shell prompt.
    pub boot_marker: String,
    /// Patchset role poll period.
    pub patchset_poll: Duration,
    /// Hosts patches may be downloaded from, besides the storage host.
    pub patch_domains: Vec<String>,
    /// Characters of the patchset hash in its tarball name.
    pub patchset_short_hash_len: usize,
    /// Who this scheduler is (`<host>:<work dir>`): recorded in `data.scheduler` of the
    /// jobs it runs locally, so that after a restart it finds its own lost jobs.
    pub instance: String,
    /// The lab-health gate of runtimes with a `hold_back` policy.
    pub health: Arc<health::HealthGate>,
    /// The secret of per-job artifact upload tokens ([`remote_artifacts`]), set by the
    /// pipeline API of this process.
    pub artifact_key: remote_artifacts::ArtifactKey,
}

impl Settings {
    /// Defaults for an instance at `public_url` working in `work_dir`.
    pub fn new(work_dir: PathBuf, public_url: &str) -> Settings {
        let public_url = public_url.trim_end_matches('/').to_string();
        let work_dir_display = work_dir.display().to_string();
        Settings {
            work_dir,
            storage_base_url: format!("{public_url}/storage"),
            public_url,
            api_path: "/latest".into(),
            trigger: TriggerSettings::default(),
            holdoff: Duration::from_secs(600),
            timeout_poll: timeout::DEFAULT_POLL,
            job_timeout: Duration::from_secs(3600),
            max_retries: 3,
            kcidb_sweep: Duration::from_secs(300),
            boot_marker: "BOOT-MARKER: init reached".into(),
            patchset_poll: Duration::from_secs(30),
            patch_domains: vec!["patchwork.kernel.org".into(), "lore.kernel.org".into()],
            patchset_short_hash_len: 13,
            instance: format!("{}:{}", hostname(), work_dir_display),
            health: Arc::new(health::HealthGate::default()),
            artifact_key: remote_artifacts::ArtifactKey::default(),
        }
    }

    /// The Maestro API URL as jobs see it.
    pub fn public_api_url(&self) -> String {
        format!("{}{}", self.public_url, self.api_path)
    }

    /// The storage base URL.
    pub fn storage_url(&self) -> String {
        self.storage_base_url.clone()
    }
}

/// What every role gets: the API client, the configuration, settings, storage, templates.
#[derive(Clone)]
pub struct Ctx {
    /// Maestro API client.
    pub api: ApiClient,
    /// The pipeline YAML configuration.
    pub config: Arc<PipelineConfig>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Artifact storage.
    pub storage: Arc<dyn ArtifactStore>,
    /// Job templates.
    pub templates: Arc<Templates>,
}

/// The roles `kernelci up` runs, and `kernelci pipeline <role>` runs one of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Poll trees, create checkouts.
    Trigger,
    /// Make source tarballs.
    Tarball,
    /// Schedule and run jobs.
    Scheduler,
    /// Timeout, holdoff and closing.
    Timeout,
    /// Reschedule failed jobs.
    JobRetry,
    /// Send results to KCIDB.
    Kcidb,
    /// Apply patchsets.
    Patchset,
    /// Run bisections.
    Bisect,
}

/// Start `roles` as tasks; each runs until aborted. Every event-driven role subscribes
/// first, before any role runs, so none misses what another produces at start-up.
pub async fn spawn_roles(
    ctx: &Ctx,
    roles: &[Role],
    runtimes: HashMap<String, Arc<dyn Runtime>>,
    kcidb: Option<kcidb_bridge::KcidbTarget>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use events::EventStream;
    let has = |r: Role| roles.contains(&r);
    let kcidb_for_bisect = kcidb.clone();
    let api = || ctx.api.clone();
    let tarball_events = match has(Role::Tarball) {
        true => Some(EventStream::opened(api(), "node", "tarball:node").await),
        false => None,
    };
    let retry_events = match has(Role::JobRetry) {
        true => Some(EventStream::opened(api(), "node", "job-retry:node").await),
        false => None,
    };
    let kcidb_events = match (has(Role::Kcidb), &kcidb) {
        (true, Some(_)) => Some(EventStream::opened(api(), "node", "kcidb:node").await),
        _ => None,
    };
    let scheduler_events = match has(Role::Scheduler) {
        true => Some(scheduler::Scheduler::subscribe(ctx).await),
        false => None,
    };
    let mut tasks = Vec::new();
    if let Some(ev) = tarball_events {
        let c = ctx.clone();
        let first = std::sync::Mutex::new(Some(ev));
        tasks.push(supervise("tarball", move || {
            let ev = reopen(&first, &c, "node", "tarball:node");
            tarball::run(c.clone(), ev)
        }));
    }
    if let Some(ev) = retry_events {
        let c = ctx.clone();
        let first = std::sync::Mutex::new(Some(ev));
        tasks.push(supervise("job-retry", move || {
            let ev = reopen(&first, &c, "node", "job-retry:node");
            job_retry::run(c.clone(), ev)
        }));
    }
    if let (Some(ev), Some(target)) = (kcidb_events, kcidb) {
        let c = ctx.clone();
        let first = std::sync::Mutex::new(Some(ev));
        tasks.push(supervise("kcidb", move || {
            let ev = reopen(&first, &c, "node", "kcidb:node");
            kcidb_bridge::run(c.clone(), target.clone(), ev)
        }));
    }
    if let Some((node_ev, retry_ev)) = scheduler_events {
        let c = ctx.clone();
        let first = std::sync::Mutex::new(Some(node_ev));
        let first_retry = std::sync::Mutex::new(Some(retry_ev));
        tasks.push(supervise("scheduler", move || {
            let streams = (
                reopen(&first, &c, "node", "scheduler:node"),
                reopen(&first_retry, &c, "retry", "scheduler:retry"),
            );
            scheduler::Scheduler::new(c.clone(), runtimes.clone()).run(streams)
        }));
    }
    if has(Role::Timeout) {
        let c = ctx.clone();
        tasks.push(supervise("timeout", move || timeout::run(c.clone())));
    }
    if has(Role::Trigger) {
        let c = ctx.clone();
        tasks.push(supervise("trigger", move || trigger::run(c.clone())));
    }
    if has(Role::Patchset) {
        let c = ctx.clone();
        tasks.push(supervise("patchset", move || patchset::run(c.clone())));
    }
    if has(Role::Bisect) {
        let c = ctx.clone();
        let target = kcidb_for_bisect;
        tasks.push(supervise("bisect", move || {
            bisect::run(c.clone(), target.clone())
        }));
    }
    tasks
}

/// The stream opened at start-up the first time, a new one (same durable subscriber id:
/// the cursor is kept by the API) after a restart.
fn reopen(
    first: &std::sync::Mutex<Option<events::EventStream>>,
    ctx: &Ctx,
    channel: &str,
    subscriber: &str,
) -> events::EventStream {
    first
        .lock()
        .ok()
        .and_then(|mut f| f.take())
        .unwrap_or_else(|| events::EventStream::new(ctx.api.clone(), channel, subscriber))
}

/// Aborts the task when dropped (so aborting a supervisor stops its role).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run a role, and run it again if it panics (a bug must not silently stop a role while
/// the process lives on; upstream's services exit and get restarted instead).
fn supervise<F, Fut>(name: &'static str, make: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let mut run = AbortOnDrop(tokio::spawn(make()));
            match (&mut run.0).await {
                Err(e) if e.is_panic() => {
                    tracing::error!("pipeline role {name} panicked; restarting it in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                // Finished (a one-shot trigger) or cancelled.
                _ => return,
            }
        }
    })
}

/// This machine's name (`/etc/hostname`, else `$HOSTNAME`, else `localhost`).
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Now minus `secs` seconds (the epoch when that is out of range).
pub fn ago(secs: u64) -> chrono::DateTime<chrono::Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
}

/// A timestamp as the API takes it (naive UTC, microseconds).
pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// [`iso`] of now + `d`.
pub fn iso_in(d: Duration) -> String {
    let now = chrono::Utc::now();
    let later = chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    iso(later)
}
