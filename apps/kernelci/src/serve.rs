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
use crate::options::StoreOptions;

/// Options of the serving subcommands.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreOptions,
    /// Address to listen on.
    #[arg(long, env = "KERNELCI_LISTEN", default_value = "127.0.0.1:8001")]
    pub listen: String,
    /// Base URL of invite links (upstream's PUBLIC_BASE_URL).
    #[arg(long, env = "KERNELCI_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// Seconds between `/listen` keep-alives (upstream's KEEP_ALIVE_PERIOD).
    #[arg(long, env = "KERNELCI_KEEP_ALIVE", default_value_t = 45)]
    pub keep_alive: u64,
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
    pipeline: Option<crate::pipeline::PipelineArgs>,
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
    let store = args.store.open().await?;
    let keys = args.store.keys(&*store).await?;
    kernelci_api::ensure_builtin_groups(&*store).await?;
    bootstrap_admin(&*store, &keys, &args.store.data_dir).await?;

    let config = ApiConfig {
        keep_alive: std::time::Duration::from_secs(args.keep_alive),
        public_base_url: args.public_base_url.clone(),
        ..ApiConfig::default()
    };
    let mailer = Arc::new(FileMailer::new(args.store.data_dir.join("mail")));
    let state = AppState::new(store.clone(), keys.clone(), config, mailer).await?;
    let mut app = kernelci_api::router(state.clone(), roles == Roles::MaestroOnly);
    let kcidb = match kcidb {
        Some(k) => {
            let role =
                crate::kcidb::start(&k, &args.store.data_dir, args.store.database_url.as_deref())
                    .await?;
            app = kernelci_kcidb_server::kcidb_router(role.state.clone(), false).merge(app);
            // The dashboard's JSON API (`/api/...`) over the same KCIDB database.
            app = kernelci_dashboard::dashboard_router(role.db.clone()).merge(app);
            Some(role)
        }
        None => None,
    };
    let public_url = args.public_base_url.clone().unwrap_or_else(|| {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        format!("http://{host}:{}", addr.port())
    });
    let pipeline = match &pipeline {
        Some(p) => {
            let target = kcidb
                .as_ref()
                .map(|role| kernelci_pipeline::kcidb_bridge::KcidbTarget {
                    submit_url: format!("{public_url}/kcidb/submit"),
                    token: role.maestro_token.clone(),
                    origin: "maestro".into(),
                });
            crate::pipeline::prepare(p, &*store, &keys, &args.store.data_dir, &public_url, target)
                .await?
        }
        None => None,
    };
    let pipeline_start = match pipeline {
        Some(started) => {
            app = started.router.merge(app);
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
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr}: the port is already in use (pick another with --listen)"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}")
        }
    })?;
    let housekeeping = tokio::spawn(kernelci_api::housekeeping(state.clone()));
    // The roles call the API over HTTP: start them once the server answers.
    let pipeline_tasks = match pipeline_start {
        Some(start) => tokio::spawn(start),
        None => tokio::spawn(async { Vec::new() }),
    };
    let what = match roles {
        Roles::All => "kernelci up",
        Roles::MaestroOnly => "kernelci api",
    };
    eprintln!(
        "{what}: listening on http://{addr} ({} store, started in {} ms); Maestro API at http://{addr}/latest{}",
        store.backend(),
        started.elapsed().as_millis(),
        if roles == Roles::All {
            format!(", KCIDB at http://{addr}/kcidb")
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
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("server error")?;
    housekeeping.abort();
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
