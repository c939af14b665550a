//! The pipeline roles in the binary: the options `kernelci up` takes for them, the pieces
//! it mounts (`/pipeline`, `/storage`), and `kernelci pipeline <role>` to run one role alone
//! against a Maestro API (the scale-out shape).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kernelci_pipeline::api::PipelineApi;
use kernelci_pipeline::client::ApiClient;
use kernelci_pipeline::kcidb_bridge::KcidbTarget;
use kernelci_pipeline::storage::{ArtifactStore, KernelciStorage, LocalStorage};
use kernelci_pipeline::{Ctx, Role, Settings};
use kernelci_sched::runtime::Runtime;
use kernelci_store::Store;

/// Pipeline options shared by `kernelci up` and `kernelci pipeline <role>`.
#[derive(Args, Clone, Debug)]
pub struct PipelineArgs {
    /// Pipeline configuration in upstream's YAML format: one file or a directory of
    /// `*.yaml` files (trees, build_configs, jobs, platforms, runtimes, scheduler, ...).
    /// Without it `kernelci up` runs no pipeline role.
    #[arg(long = "config", env = "KERNELCI_PIPELINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// A directory of job templates searched before the built-in ones.
    #[arg(long, env = "KERNELCI_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Seconds between two polls of the trees (0: poll once).
    #[arg(long, env = "KERNELCI_TRIGGER_POLL", default_value_t = 60)]
    pub trigger_poll: u64,
    /// Only these trees (`a,b`) or all but these (`!a,b`).
    #[arg(long, env = "KERNELCI_TRIGGER_TREES")]
    pub trees: Option<String>,
    /// Seconds a checkout or a passing build stays `available` before closing (upstream: 600).
    #[arg(long, env = "KERNELCI_HOLDOFF", default_value_t = 600)]
    pub holdoff: u64,
    /// Seconds between timeout/holdoff/closing passes.
    #[arg(long, env = "KERNELCI_TIMEOUT_POLL", default_value_t = 60)]
    pub timeout_poll: u64,
    /// Seconds the scheduler keeps the dashboard's lab-health figures before reading them
    /// again (runtimes with a `hold_back` policy).
    #[arg(long, env = "KERNELCI_HEALTH_REFRESH", default_value_t = 60)]
    pub health_refresh: u64,
    /// Default time limit of a job, in minutes (a job's `params.job_timeout` wins).
    #[arg(long, env = "KERNELCI_JOB_TIMEOUT", default_value_t = 60)]
    pub job_timeout: u64,
    /// How many times job-retry schedules a job again after it ended incomplete (or a
    /// baseline job failed); upstream: 3. KCIDB hears of such a job after its last try.
    #[arg(long, env = "KERNELCI_JOB_RETRIES", default_value_t = 3)]
    pub job_retries: u32,
    /// Seconds between sweeps of results not yet sent to KCIDB.
    #[arg(long, env = "KERNELCI_KCIDB_SWEEP", default_value_t = 300)]
    pub kcidb_sweep: u64,
    /// Seconds between two looks for new patchsets.
    #[arg(long, env = "KERNELCI_PATCHSET_POLL", default_value_t = 30)]
    pub patchset_poll: u64,
    /// Hosts patches may be downloaded from, besides the artifact storage
    /// (default: patchwork.kernel.org, lore.kernel.org).
    #[arg(long, env = "KERNELCI_PATCH_DOMAINS", value_delimiter = ',')]
    pub patch_domains: Option<Vec<String>>,
    /// Pipeline roles to run (default: all of trigger, tarball, scheduler, timeout,
    /// job-retry, kcidb, patchset, bisect).
    #[arg(long, env = "KERNELCI_PIPELINE_ROLES", value_delimiter = ',')]
    pub pipeline_roles: Option<Vec<String>>,
    /// Upload artifacts to a kernelci-storage server at this URL instead of the local
    /// directory (the credential comes from KERNELCI_STORAGE_CREDENTIAL: `Bearer <jwt>`).
    #[arg(long, env = "KERNELCI_STORAGE_API")]
    pub storage_api: Option<String>,
    /// Public base URL of that storage server's files (default: --storage-api).
    #[arg(long, env = "KERNELCI_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Upload artifacts to this `storage.<name>` entry of the pipeline configuration
    /// (`storage_type: s3`, `azure`, `gcs` or `backend`) instead of the local directory.
    /// Credentials come from the environment (AWS_*, AZURE_STORAGE_*, GOOGLE_*) or the
    /// `[storage.<name>]` section of the settings file, never from the YAML.
    #[arg(
        long = "storage-config",
        env = "KERNELCI_STORAGE_CONFIG",
        conflicts_with = "storage_api"
    )]
    pub storage_config: Option<String>,
    /// Upstream's settings file (kernelci.toml) holding the lab tokens:
    /// `[runtime.<name>] runtime_token = "..."` (LAVA API token, used to submit jobs) and
    /// `callback_token = "..."` (what LAVA sends back). Default: the first of
    /// ./kernelci.toml, ~/.config/kernelci/kernelci.toml, /etc/kernelci/kernelci.toml.
    #[arg(long = "settings", env = "KCI_SETTINGS")]
    pub settings: Option<PathBuf>,
}

/// What `kernelci up` mounts and runs for the pipeline.
pub struct Started {
    /// `/pipeline` (REST API) and `/storage` (artifacts) routes.
    pub router: axum::Router,
    /// Starts the role tasks; call it once the server listens.
    pub start: std::pin::Pin<
        Box<dyn std::future::Future<Output = Vec<tokio::task::JoinHandle<()>>> + Send>,
    >,
}

fn parse_roles(list: Option<&[String]>) -> Result<Vec<Role>> {
    let all = [
        "trigger",
        "tarball",
        "scheduler",
        "timeout",
        "job-retry",
        "kcidb",
        "patchset",
        "bisect",
    ];
    let names: Vec<String> = match list {
        Some(l) => l
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => all.iter().map(|s| s.to_string()).collect(),
    };
    names
        .iter()
        .map(|n| {
            Ok(match n.as_str() {
                "trigger" => Role::Trigger,
                "tarball" => Role::Tarball,
                "scheduler" => Role::Scheduler,
                "timeout" => Role::Timeout,
                "job-retry" => Role::JobRetry,
                "kcidb" => Role::Kcidb,
                "patchset" => Role::Patchset,
                "bisect" => Role::Bisect,
                other => bail!(
                    "unknown pipeline role {other:?} (known: {})",
                    all.join(", ")
                ),
            })
        })
        .collect()
}

/// Load the configuration file or directory, printing cross-reference warnings.
pub fn load_config(path: &Path) -> Result<kernelci_sched::config::PipelineConfig> {
    let loaded = if path.is_dir() {
        kernelci_sched::config::PipelineConfig::load_dir(path)
    } else {
        kernelci_sched::config::PipelineConfig::load_files(&[path])
    };
    let config = loaded
        .with_context(|| format!("cannot load the pipeline configuration {}", path.display()))?;
    for w in config.validate() {
        tracing::warn!("pipeline configuration: {w}");
    }
    Ok(config)
}

/// The lab tokens: `--settings`, else the first of upstream's default places that exists.
fn load_secrets(args: &PipelineArgs) -> Result<kernelci_pipeline::secrets::Secrets> {
    use kernelci_pipeline::secrets::Secrets;
    let path = match &args.settings {
        Some(p) => p.clone(),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let candidates = [
                Some(PathBuf::from("kernelci.toml")),
                home.map(|h| h.join(".config/kernelci/kernelci.toml")),
                Some(PathBuf::from("/etc/kernelci/kernelci.toml")),
            ];
            match candidates.into_iter().flatten().find(|p| p.is_file()) {
                Some(p) => p,
                None => return Ok(Secrets::default()),
            }
        }
    };
    let secrets = Secrets::load(&path).context("cannot read the settings file")?;
    tracing::info!(
        "pipeline: settings {} ({} runtime token sections, {} storage sections)",
        path.display(),
        secrets.runtimes.len(),
        secrets.storage.len()
    );
    Ok(secrets)
}

/// The runtimes this binary can run, built from the configuration (shell, lava), and the
/// tokens LAVA labs may call back with. The others are reported and skipped.
fn runtimes(
    config: &kernelci_sched::config::PipelineConfig,
    secrets: &kernelci_pipeline::secrets::Secrets,
    jobs_dir: &Path,
) -> (HashMap<String, Arc<dyn Runtime>>, Vec<String>) {
    let mut out: HashMap<String, Arc<dyn Runtime>> = HashMap::new();
    let mut callback_tokens = Vec::new();
    for (name, rt) in &config.runtimes {
        match rt.lab_type.as_str() {
            "shell" => {
                match kernelci_sched::runtime::ShellRuntime::new(name, jobs_dir.join(name)) {
                    Ok(shell) => {
                        out.insert(name.clone(), Arc::new(shell));
                    }
                    Err(e) => tracing::error!("pipeline: runtime {name}: {e}"),
                }
            }
            "docker" => {
                // The engine's socket: DOCKER_HOST (unix://) or /var/run/docker.sock.
                let socket = kernelci_sched::runtime::default_docker_socket();
                match kernelci_sched::runtime::DockerRuntime::new(
                    name,
                    jobs_dir.join(name),
                    &rt.fields,
                ) {
                    Ok(docker) => {
                        tracing::info!("pipeline: runtime {name}: Docker engine at {socket}");
                        out.insert(name.clone(), Arc::new(docker));
                    }
                    Err(e) => tracing::error!(
                        "pipeline: runtime {name}: Docker engine at {socket}: {e}; its jobs are not scheduled"
                    ),
                }
            }
            "kubernetes" => {
                // Contexts named by `context` of the kubeconfig (`kubeconfig` key, KUBECONFIG or
                // ~/.kube/config).
                match kernelci_sched::runtime::KubernetesRuntime::from_kubeconfig(name, &rt.fields)
                {
                    Ok(k8s) => {
                        tracing::info!(
                            "pipeline: runtime {name}: Kubernetes context(s) {}; jobs must upload their own results (no artifacts are collected)",
                            rt.fields
                                .get("context")
                                .map(ToString::to_string)
                                .unwrap_or_default()
                        );
                        out.insert(name.clone(), Arc::new(k8s));
                    }
                    Err(e) => {
                        tracing::error!("pipeline: runtime {name}: {e}; its jobs are not scheduled")
                    }
                }
            }
            "lava" => {
                let tokens = secrets.runtime(name);
                callback_tokens.extend(tokens.runtime_token.clone());
                callback_tokens.extend(tokens.callback_token.clone());
                let lab = kernelci_lava::lab::LabConfig::from_runtime(
                    name,
                    &rt.fields,
                    kernelci_lava::lab::LabSecrets {
                        runtime_token: tokens.runtime_token.clone(),
                        callback_token: tokens.callback_token.clone(),
                    },
                );
                match lab.map_err(|e| e.to_string()).and_then(|lab| {
                    kernelci_lava::runtime::LavaRuntime::new(lab).map_err(|e| e.to_string())
                }) {
                    Ok(lava) => {
                        if tokens.runtime_token.is_none() {
                            tracing::warn!(
                                "pipeline: runtime {name}: no runtime_token in the settings file ([runtime.{name}]): the lab will refuse submissions"
                            );
                        }
                        out.insert(name.clone(), Arc::new(lava));
                    }
                    Err(e) => tracing::error!("pipeline: runtime {name}: {e}"),
                }
            }
            other => tracing::warn!(
                "pipeline: runtime {name}: lab_type {other} is not implemented yet; its jobs are not scheduled"
            ),
        }
    }
    (out, callback_tokens)
}

fn settings(args: &PipelineArgs, work_dir: PathBuf, public_url: &str) -> Settings {
    let mut s = Settings::new(work_dir, public_url);
    s.trigger.poll_period = Duration::from_secs(args.trigger_poll);
    s.trigger.trees = args.trees.clone();
    s.holdoff = Duration::from_secs(args.holdoff);
    s.timeout_poll = Duration::from_secs(args.timeout_poll.max(1));
    s.job_timeout = Duration::from_secs(args.job_timeout.max(1) * 60);
    s.kcidb_sweep = Duration::from_secs(args.kcidb_sweep.max(1));
    s.max_retries = i64::from(args.job_retries);
    s.patchset_poll = Duration::from_secs(args.patchset_poll.max(1));
    if let Some(domains) = &args.patch_domains {
        s.patch_domains = domains.clone();
    }
    s
}

/// The scheduler's lab-health gate over the dashboard API at `dashboard_url`.
fn health_gate(
    args: &PipelineArgs,
    dashboard_url: Option<String>,
) -> Arc<kernelci_pipeline::health::HealthGate> {
    Arc::new(kernelci_pipeline::health::HealthGate::new(
        dashboard_url,
        "maestro",
        Duration::from_secs(args.health_refresh.max(1)),
    ))
}

/// Where artifacts go: the `--storage-config` entry, `--storage-api`, or the local
/// directory `kernelci up` serves at `/storage` (then `served_locally`).
struct StorageChoice {
    store: Arc<dyn ArtifactStore>,
    /// Public base URL of the stored files, when not the local `/storage`.
    base_url: Option<String>,
    served_locally: bool,
}

fn storage(
    args: &PipelineArgs,
    config: &kernelci_sched::config::PipelineConfig,
    secrets: &kernelci_pipeline::secrets::Secrets,
    data_dir: &Path,
    public_url: &str,
) -> Result<StorageChoice> {
    if let Some(name) = &args.storage_config {
        let Some(entry) = config.storage.get(name) else {
            bail!(
                "--storage-config {name:?}: no such storage entry in the pipeline configuration (entries: {})",
                config
                    .storage
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let st = kernelci_pipeline::storage::from_config(entry, &secrets.storage(name))?;
        tracing::info!("pipeline: artifacts go to {}", st.store.describe());
        return Ok(StorageChoice {
            store: st.store,
            base_url: Some(st.base_url),
            served_locally: false,
        });
    }
    Ok(match &args.storage_api {
        Some(api) => {
            let cred = std::env::var("KERNELCI_STORAGE_CREDENTIAL").context(
                "--storage-api needs KERNELCI_STORAGE_CREDENTIAL (the Authorization header value)",
            )?;
            let base = args.storage_url.clone().unwrap_or_else(|| api.clone());
            StorageChoice {
                store: Arc::new(KernelciStorage::new(api, &base, &cred)),
                base_url: Some(base),
                served_locally: false,
            }
        }
        None => StorageChoice {
            store: Arc::new(LocalStorage::new(
                data_dir.join("artifacts"),
                &format!("{}/storage", public_url.trim_end_matches('/')),
            )),
            base_url: None,
            served_locally: true,
        },
    })
}

/// The pipeline service user (a superuser: it updates every node) and its token.
async fn service_token(store: &dyn Store, keys: &kernelci_api::JwtKeys) -> Result<String> {
    let user = match store.get_user_by_username("pipeline").await? {
        Some(u) => u,
        None => match crate::admin::create_user(
            store,
            "pipeline",
            "pipeline@kernelci.invalid",
            true,
            None,
        )
        .await
        {
            Ok(u) => u,
            Err(_) => store
                .get_user_by_username("pipeline")
                .await?
                .context("cannot create the pipeline service user")?,
        },
    };
    Ok(keys.issue_access(&user.id, Some(10 * 365 * 86400)))
}

/// The pipeline API's token secret, kept in the database (shared by replicas).
pub async fn pipeline_secret(store: &dyn Store) -> Result<String> {
    let candidate = kernelci_api::auth::random_password();
    store
        .meta_init("pipeline_secret", &candidate)
        .await
        .context("reading the pipeline token secret")
}

/// Prepare the pipeline for `kernelci up`, or `None` without `--config`.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    args: &PipelineArgs,
    store: &dyn Store,
    keys: &kernelci_api::JwtKeys,
    data_dir: &Path,
    public_url: &str,
    kcidb: Option<KcidbTarget>,
) -> Result<Option<Started>> {
    let Some(path) = &args.config else {
        return Ok(None);
    };
    let config = Arc::new(load_config(path)?);
    let roles = parse_roles(args.pipeline_roles.as_deref())?;
    let work_dir = data_dir.join("pipeline");
    crate::options::ensure_dir(&work_dir)?;
    let secrets = load_secrets(args)?;
    let storage = storage(args, &config, &secrets, data_dir, public_url)?;
    let templates = kernelci_sched::template::Templates::with_dirs(args.templates.clone());
    let token = service_token(store, keys).await?;
    let mut settings = settings(args, work_dir.clone(), public_url);
    if let Some(base) = &storage.base_url {
        settings.storage_base_url = base.trim_end_matches('/').to_string();
    }
    settings.health = health_gate(args, kcidb.as_ref().and_then(|k| k.dashboard_url.clone()));
    let served_locally = storage.served_locally;
    let api = ApiClient::new(&settings.public_api_url(), &token);
    let ctx = Ctx {
        api,
        config: config.clone(),
        settings: Arc::new(settings),
        storage: storage.store,
        templates: Arc::new(templates),
    };
    let secret = pipeline_secret(store).await?;
    let (rts, callback_tokens) = runtimes(&config, &secrets, &work_dir.join("jobs"));
    let mut router = axum::Router::new().nest(
        "/pipeline",
        PipelineApi::new(ctx.clone(), vec![secret.into_bytes()])
            .with_callback_tokens(callback_tokens)
            .router(),
    );
    if served_locally {
        let dir = data_dir.join("artifacts");
        crate::options::ensure_dir(&dir)?;
        router = router.nest_service("/storage", tower_http::services::ServeDir::new(dir));
    }
    let start =
        Box::pin(async move { kernelci_pipeline::spawn_roles(&ctx, &roles, rts, kcidb).await });
    Ok(Some(Started { router, start }))
}

/// `kernelci pipeline ...`.
#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// Run pipeline roles alone against a Maestro API (`--pipeline-roles trigger,tarball,...`).
    Run(Box<RunArgs>),
    /// Print a pipeline API token (for /pipeline/api/checkout, jobretry, patchset).
    Token(TokenArgs),
    /// Load a configuration and report what it contains and any problem.
    Check {
        /// The YAML file or directory.
        path: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Options of `kernelci pipeline run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Maestro API base URL (with its `/latest` prefix when it is a `kernelci up`).
    #[arg(long, env = "KCI_API_URL")]
    pub api_url: String,
    /// Maestro API token of a superuser.
    #[arg(long, env = "KCI_API_TOKEN", hide_env_values = true)]
    pub api_token: String,
    /// Work directory (mirrors, tarballs, job directories, local artifacts).
    #[arg(long, env = "KERNELCI_DATA_DIR", default_value = "./kernelci-data")]
    pub data_dir: PathBuf,
    /// Public base URL of this instance's storage (default: the API URL's origin).
    #[arg(long, env = "KERNELCI_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// KCIDB submit URL for the kcidb role (e.g. http://host:8001/kcidb/submit).
    #[arg(long, env = "KCIDB_SUBMIT_URL")]
    pub kcidb_url: Option<String>,
    /// KCIDB token for the kcidb role.
    #[arg(long, env = "KCIDB_TOKEN", hide_env_values = true)]
    pub kcidb_token: Option<String>,
    /// The dashboard API over the same KCIDB (e.g. http://host:8001/api): where the bisect
    /// role finds new regressions of trees with `bisect:` (and needs --kcidb-url to attach
    /// its results).
    #[arg(long, env = "KERNELCI_DASHBOARD_URL")]
    pub dashboard_url: Option<String>,
    /// Also serve the pipeline REST API here (`ADDR:PORT`, under `/pipeline` as in
    /// `kernelci up`): the LAVA callback `/pipeline/node/{id}` and, with
    /// --pipeline-secret, `/pipeline/api/checkout|jobretry|patchset` (upstream's separate
    /// lava-callback service). Labs call back to `--public-base-url` + `/pipeline/node/..`.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub net: crate::listen::ListenArgs,
    #[command(flatten)]
    pub pipeline_limit: crate::listen::PipelineLimit,
    /// The pipeline API's token secret (`kernelci up` keeps it in its database); without it
    /// the token-protected pipeline API answers 401 and only lab callbacks are served.
    #[arg(long, env = "KERNELCI_PIPELINE_SECRET", hide_env_values = true)]
    pub pipeline_secret: Option<String>,
}

/// Options of `kernelci pipeline token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub store: crate::options::StoreOptions,
    /// The user's e-mail (the `email` claim; checkouts are submitted as `user:<email>`).
    #[arg(long)]
    pub email: String,
    /// Permissions (default: checkout, testretry, patchset).
    #[arg(long, value_delimiter = ',')]
    pub permissions: Option<Vec<String>>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
}

/// Run a `kernelci pipeline` subcommand.
pub async fn run(command: PipelineCommand) -> Result<()> {
    match command {
        PipelineCommand::Token(t) => {
            if !t.email.contains('@') {
                bail!("{:?} is not an e-mail address", t.email);
            }
            let store = t.store.open().await?;
            let secret = pipeline_secret(&*store).await?;
            let perms: Vec<String> = t.permissions.unwrap_or_else(|| {
                ["checkout", "testretry", "patchset"]
                    .map(String::from)
                    .to_vec()
            });
            let refs: Vec<&str> = perms.iter().map(String::as_str).collect();
            println!(
                "{}",
                kernelci_pipeline::api::issue_token(secret.as_bytes(), &t.email, &refs, t.days)
            );
            Ok(())
        }
        PipelineCommand::Check { path, json } => {
            let config = load_config(&path)?;
            let mut problems: Vec<String> =
                config.validate().iter().map(|p| p.to_string()).collect();
            // What the runtimes themselves refuse at start-up.
            for (name, rt) in &config.runtimes {
                if rt.lab_type == "lava"
                    && let Err(e) = kernelci_lava::lab::LabConfig::from_runtime(
                        name,
                        &rt.fields,
                        kernelci_lava::lab::LabSecrets::default(),
                    )
                {
                    if !json {
                        eprintln!("pipeline configuration: {e}");
                    }
                    problems.push(e.to_string());
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "trees": config.trees.len(), "build_configs": config.build_configs.len(),
                        "jobs": config.jobs.len(), "platforms": config.platforms.len(),
                        "runtimes": config.runtimes.len(), "scheduler": config.scheduler.len(),
                        "warnings": problems,
                    })
                );
            } else {
                println!(
                    "{}: {} trees, {} build configs, {} jobs, {} platforms, {} runtimes, {} scheduler entries, {} warnings",
                    path.display(),
                    config.trees.len(),
                    config.build_configs.len(),
                    config.jobs.len(),
                    config.platforms.len(),
                    config.runtimes.len(),
                    config.scheduler.len(),
                    problems.len()
                );
            }
            Ok(())
        }
        PipelineCommand::Run(r) => {
            let Some(path) = &r.pipeline.config else {
                bail!("--config is required");
            };
            let config = Arc::new(load_config(path)?);
            let roles = parse_roles(r.pipeline.pipeline_roles.as_deref())?;
            let origin = url::Url::parse(&r.api_url)
                .map(|u| u.origin().ascii_serialization())
                .with_context(|| format!("--api-url {:?} is not a URL", r.api_url))?;
            let public = r.public_base_url.clone().unwrap_or(origin);
            let work_dir = r.data_dir.join("pipeline");
            crate::options::ensure_dir(&work_dir)?;
            let mut settings = settings(&r.pipeline, work_dir.clone(), &public);
            settings.api_path = url::Url::parse(&r.api_url)
                .map(|u| u.path().trim_end_matches('/').to_string())
                .unwrap_or_default();
            let secrets = load_secrets(&r.pipeline)?;
            let storage = storage(&r.pipeline, &config, &secrets, &r.data_dir, &public)?;
            if let Some(base) = &storage.base_url {
                settings.storage_base_url = base.trim_end_matches('/').to_string();
            }
            settings.health = health_gate(&r.pipeline, r.dashboard_url.clone());
            let ctx = Ctx {
                api: ApiClient::new(&r.api_url, &r.api_token),
                config: config.clone(),
                settings: Arc::new(settings),
                storage: storage.store,
                templates: Arc::new(kernelci_sched::template::Templates::with_dirs(
                    r.pipeline.templates.clone(),
                )),
            };
            ctx.api
                .whoami()
                .await
                .context("the Maestro API does not accept the token")?;
            let kcidb = match (r.kcidb_url, r.kcidb_token) {
                (Some(u), Some(t)) => Some(KcidbTarget {
                    submit_url: u,
                    token: t,
                    origin: "maestro".into(),
                    dashboard_url: r.dashboard_url.clone(),
                }),
                _ => None,
            };
            let (rts, callback_tokens) = runtimes(&config, &secrets, &work_dir.join("jobs"));
            let mut tasks = Vec::new();
            if let Some(addr) = r.listen {
                let secret: Vec<Vec<u8>> = r
                    .pipeline_secret
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.clone().into_bytes())
                    .collect();
                let router = r.pipeline_limit.limits(&r.net)?.apply(
                    axum::Router::new().nest(
                        "/pipeline",
                        PipelineApi::new(ctx.clone(), secret)
                            .with_callback_tokens(callback_tokens)
                            .router(),
                    ),
                );
                let bound = crate::listen::bind(addr, &r.net).await?;
                eprintln!(
                    "kernelci pipeline: pipeline API on {}/pipeline",
                    bound.url()
                );
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = bound.serve(router, std::future::pending()).await {
                        tracing::error!("pipeline API: {e:#}");
                    }
                }));
            }
            tasks.extend(kernelci_pipeline::spawn_roles(&ctx, &roles, rts, kcidb).await);
            eprintln!("kernelci pipeline: running {} role(s)", tasks.len());
            crate::serve::shutdown_signal().await;
            for t in tasks {
                t.abort();
            }
            Ok(())
        }
    }
}
