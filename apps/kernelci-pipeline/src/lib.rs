//! The pipeline roles of KernelCI (specs/pipeline.md): trigger, tarball, scheduler (with
//! the shell runtime's job collection), timeout/holdoff/closing, job-retry, the KCIDB
//! bridge, and the pipeline REST API.
//!
//! Every role talks to the Maestro API over HTTP with a token, exactly as upstream's
//! services do, so each can run in its own process (`kernelci pipeline <role>`) or all of
//! them inside `kernelci up`. The decisions (configuration, rules, matching, templates,
//! runtimes) live in the pure crate `kernelci-sched`; this crate does the IO.

pub mod ancestry;
pub mod api;
pub mod client;
pub mod collect;
pub mod events;
pub mod git;
pub mod job_retry;
pub mod kcidb_bridge;
pub mod patchset;
pub mod scheduler;
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
        tasks.push(tokio::spawn(tarball::run(ctx.clone(), ev)));
    }
    if let Some(ev) = retry_events {
        tasks.push(tokio::spawn(job_retry::run(ctx.clone(), ev)));
    }
    if let (Some(ev), Some(target)) = (kcidb_events, kcidb) {
        tasks.push(tokio::spawn(kcidb_bridge::run(ctx.clone(), target, ev)));
    }
    if let Some(ev) = scheduler_events {
        let s = scheduler::Scheduler::new(ctx.clone(), runtimes);
        tasks.push(tokio::spawn(s.run(ev)));
    }
    if has(Role::Timeout) {
        tasks.push(tokio::spawn(timeout::run(ctx.clone())));
    }
    if has(Role::Trigger) {
        tasks.push(tokio::spawn(trigger::run(ctx.clone())));
    }
    if has(Role::Patchset) {
        tasks.push(tokio::spawn(patchset::run(ctx.clone())));
    }
    tasks
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
