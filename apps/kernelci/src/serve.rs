//! `kernelci up` and `kernelci api`: open the store, bootstrap the admin, bind the port and
//! serve until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use kernelci_api::{ApiConfig, AppState, mail::FileMailer};
use kernelci_store::Store;

use crate::admin;
use crate::listen::{Limits, ListenArgs};
use crate::options::StoreOptions;

/// Options of the serving subcommands.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreOptions,
    /// Address to listen on.
    #[arg(long, env = "KERNELCI_LISTEN", default_value = "127.0.0.1:8001")]
    pub listen: String,
    /// The URL clients reach this instance at (e.g. https://kernelci.example.org, behind a
    /// proxy the proxy's): base of invite and password-reset links, lab callbacks, artifact
    /// URLs and the KCIDB submit URL (upstream's PUBLIC_BASE_URL). Default: invite links
    /// from the request's host, the rest from --listen.
    #[arg(long, env = "KERNELCI_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// Seconds between `/listen` keep-alives (upstream's KEEP_ALIVE_PERIOD).
    #[arg(long, env = "KERNELCI_KEEP_ALIVE", default_value_t = 45)]
    pub keep_alive: u64,
    /// The largest Maestro API request body, in bytes (413 beyond).
    #[arg(long, env = "KERNELCI_MAX_BODY_API", default_value_t = kernelci_api::extract::MAX_BODY_BYTES as u64)]
    pub max_body_api: u64,
    #[command(flatten)]
    pub net: ListenArgs,
    #[command(flatten)]
    pub retention: crate::purge::RetentionArgs,
}

/// Options of `kernelci up`: the serving options and the KCIDB role's.
#[derive(Args, Clone, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub kcidb: crate::kcidb::KcidbArgs,
    #[command(flatten)]
    pub pipeline: crate::pipeline::PipelineArgs,
    #[command(flatten)]
    pub pipeline_limit: crate::listen::PipelineLimit,
}

/// Which roles to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// Everything that exists (`kernelci up`).
    All,
    /// Only the Maestro API, with unprefixed paths (`kernelci api`).
    MaestroOnly,
}

/// Start serving.
pub async fn run(
    args: ServeArgs,
    roles: Roles,
    kcidb: Option<crate::kcidb::KcidbArgs>,
    pipeline: Option<(crate::pipeline::PipelineArgs, crate::listen::PipelineLimit)>,
) -> Result<()> {
    let started = Instant::now();
    let addr: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:8001",
            args.listen
        )
    })?;
    if args.keep_alive == 0 || args.keep_alive > 55 {
        anyhow::bail!("--keep-alive must be between 1 and 55 seconds (clients time out at 60 s)");
    }
    if args.net.request_timeout != 0 && args.net.request_timeout <= args.keep_alive {
        anyhow::bail!(
            "--request-timeout must be longer than --keep-alive (a `/listen` long poll lasts that long)"
        );
    }
    let api_limits = Limits {
        max_body: Some(crate::listen::body_limit(
            "max-body-api",
            args.max_body_api,
            kernelci_api::extract::MAX_BODY_BYTES,
        )?),
        body_flag: "max-body-api",
        timeout: args.net.timeout(),
        timeout_flag: "request-timeout",
    };
    let pipeline_limits = match &pipeline {
        Some((_, limit)) => Some(limit.limits(&args.net)?),
        None => None,
    };
    let bound = crate::listen::bind(addr, &args.net).await?;
    let store = args.store.open().await?;
    let keys = args.store.keys(&*store).await?;
    kernelci_api::ensure_builtin_groups(&*store).await?;
    bootstrap_admin(&*store, &keys, &args.store.data_dir).await?;

    let config = ApiConfig {
        keep_alive: std::time::Duration::from_secs(args.keep_alive),
        public_base_url: args.public_base_url.clone(),
        retention: args.retention.maestro(),
        ..ApiConfig::default()
    };
    let mailer = Arc::new(FileMailer::new(args.store.data_dir.join("mail")));
    let state = AppState::new(store.clone(), keys.clone(), config, mailer).await?;
    let mut app = api_limits.clone().apply(kernelci_api::router(
        state.clone(),
        roles == Roles::MaestroOnly,
    ));
    let kcidb = match kcidb {
        Some(mut k) => {
            // Notification links point at this instance unless told otherwise.
            if k.notify_base_url.is_none() {
                k.notify_base_url.clone_from(&args.public_base_url);
            }
            let role =
                crate::kcidb::start(&k, &args.store.data_dir, args.store.database_url.as_deref())
                    .await?;
            app = crate::kcidb::limits(&k)
                .apply(kernelci_kcidb_server::kcidb_router(
                    role.state.clone(),
                    false,
                ))
                .merge(app);
            // The dashboard's JSON API (`/api/...`) over the same KCIDB database.
            app = api_limits
                .apply(kernelci_dashboard::dashboard_router(role.db.clone()))
                .merge(app);
            Some(role)
        }
        None => None,
    };
    let public_url = match args.public_base_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
        _ => bound.local_base_url(),
    };
    if bound.scheme() == "https"
        && public_url == bound.local_base_url()
        && pipeline.as_ref().is_some_and(|(p, _)| p.config.is_some())
    {
        eprintln!(
            "warning: the pipeline roles call this server at {public_url}, which the certificate \
             is unlikely to name: set --public-base-url to the name it is issued for"
        );
    }
    let pipeline = match &pipeline {
        Some((p, _)) => {
            let target = kcidb
                .as_ref()
                .map(|role| kernelci_pipeline::kcidb_bridge::KcidbTarget {
                    submit_url: format!("{public_url}/kcidb/submit"),
                    token: role.maestro_token.clone(),
                    origin: "maestro".into(),
                    dashboard_url: Some(format!("{public_url}/api")),
                });
            crate::pipeline::prepare(p, &*store, &keys, &args.store.data_dir, &public_url, target)
                .await?
        }
        None => None,
    };
    let pipeline_start = match pipeline {
        Some(started) => {
            if let Some(limits) = pipeline_limits {
                app = limits.apply(started.router).merge(app);
            } else {
                app = started.router.merge(app);
            }
            Some(started.start)
        }
        None => {
            if roles == Roles::All {
                // Pipeline roles run elsewhere (`kernelci pipeline run --data-dir` the same
                // directory) store artifacts here: serve them.
                let dir = args.store.data_dir.join("artifacts");
                crate::options::ensure_dir(&dir)?;
                app = app.nest_service("/storage", tower_http::services::ServeDir::new(dir));
            }
            None
        }
    };
    let housekeeping = tokio::spawn(kernelci_api::housekeeping(state.clone()));
    let kcidb_purge = kcidb.as_ref().map(|role| {
        crate::purge::spawn_kcidb(&args.retention, role.state.spool().clone(), role.db.clone())
    });
    // The roles call the API over HTTP: start them once the server answers.
    let pipeline_tasks = match pipeline_start {
        Some(start) => tokio::spawn(start),
        None => tokio::spawn(async { Vec::new() }),
    };
    let what = match roles {
        Roles::All => "kernelci up",
        Roles::MaestroOnly => "kernelci api",
    };
    let url = bound.url();
    eprintln!(
        "{what}: listening on {url} ({} store, started in {} ms); Maestro API at {url}/latest{}",
        store.backend(),
        started.elapsed().as_millis(),
        if roles == Roles::All {
            format!(", KCIDB at {url}/kcidb")
        } else {
            String::new()
        }
    );
    // On a signal, stop the pipeline roles first: their own long polls (`/listen`) would
    // otherwise hold the graceful shutdown for up to the keep-alive period.
    let shutdown = async move {
        shutdown_signal().await;
        if pipeline_tasks.is_finished() {
            if let Ok(tasks) = pipeline_tasks.await {
                for t in tasks {
                    t.abort();
                }
            }
        } else {
            pipeline_tasks.abort();
        }
    };
    bound.serve(app, shutdown).await?;
    housekeeping.abort();
    if let Some(task) = kcidb_purge {
        task.abort();
    }
    // Plain subscriptions' cursors are written behind: write the last ones before exiting.
    state.cursors.flush(&*state.store).await;
    if let Some(role) = kcidb {
        role.ingester.abort();
    }
    eprintln!("{what}: stopped");
    Ok(())
}

/// On first start (no administrator yet), create `admin` and write its token to
/// `DATA_DIR/admin.token` (mode 0600). Honours upstream's `KCI_INITIAL_ADMIN_USERNAME`,
/// `KCI_INITIAL_ADMIN_EMAIL` and `KCI_INITIAL_PASSWORD`.
async fn bootstrap_admin(
    store: &dyn Store,
    keys: &kernelci_api::JwtKeys,
    data_dir: &Path,
) -> Result<()> {
    if admin::has_admin(store).await? {
        return Ok(());
    }
    let name = std::env::var("KCI_INITIAL_ADMIN_USERNAME").unwrap_or_else(|_| "admin".into());
    let email =
        std::env::var("KCI_INITIAL_ADMIN_EMAIL").unwrap_or_else(|_| format!("{name}@kernelci.org"));
    let password = std::env::var("KCI_INITIAL_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let user = match admin::create_user(store, &name, &email, true, password.as_deref()).await {
        Ok(u) => u,
        // Another process bootstrapped at the same time: fine if an admin exists now.
        Err(_) if admin::has_admin(store).await? => return Ok(()),
        Err(e) => return Err(e),
    };
    let token = keys.issue_access(&user.id, None);
    let path = data_dir.join("admin.token");
    write_private(&path, &format!("{token}\n"))?;
    eprintln!(
        "created administrator {name:?}; its API token is in {} (mode 0600)",
        path.display()
    );
    Ok(())
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
