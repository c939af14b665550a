//! The KCIDB role in the binary: `kernelci kcidb serve` (alone, unprefixed paths, with
//! periodic triage), `kernelci kcidb triage` (one round),
//! `kernelci kcidb token`, and the pieces `kernelci up` uses to mount it under `/kcidb`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kernelci_kcidb_server::{
    IngestLimits, KcidbConfig, KcidbDb, KcidbState, TriageConfig, Verifier, auth::valid_origin,
};

/// KCIDB options shared by `kernelci up` and `kernelci kcidb serve`.
#[derive(Args, Clone, Debug)]
pub struct KcidbArgs {
    /// HS256 secret of KCIDB submission tokens (default: generated once and kept in
    /// DATA_DIR/kcidb.secret, mode 0600).
    #[arg(long, env = "KERNELCI_KCIDB_SECRET", hide_env_values = true)]
    pub kcidb_secret: Option<String>,
    /// A second secret accepted when verifying KCIDB tokens (upstream's UNIFIED_SECRET).
    #[arg(long, env = "KERNELCI_KCIDB_UNIFIED_SECRET", hide_env_values = true)]
    pub kcidb_unified_secret: Option<String>,
    /// Accept KCIDB submissions without a token (origin `none`, any object origin).
    #[arg(long, env = "KERNELCI_KCIDB_NO_AUTH")]
    pub kcidb_no_auth: bool,
    /// The spool directory (default: DATA_DIR/kcidb-spool).
    #[arg(long, env = "KERNELCI_KCIDB_SPOOL")]
    pub kcidb_spool: Option<PathBuf>,
    /// The largest accepted submission, in bytes (submissions over 16 MiB are validated and
    /// ingested one object at a time, so this is not a memory bound).
    #[arg(long, visible_alias = "max-body-kcidb", env = "KERNELCI_KCIDB_MAX_BODY", default_value_t = kernelci_kcidb_server::DEFAULT_MAX_BODY)]
    pub kcidb_max_body: u64,
    /// Seconds a KCIDB request (a submission being uploaded, a query) may take until its
    /// response starts (0: no limit); a slower one gets a 408.
    #[arg(
        long,
        visible_alias = "request-timeout-kcidb",
        env = "KERNELCI_KCIDB_REQUEST_TIMEOUT",
        default_value_t = 3600
    )]
    pub kcidb_request_timeout: u64,
    /// Seconds between triage rounds (failed builds and tests -> logspec -> KCIDB issues
    /// and incidents); 0 disables triage.
    #[arg(long, env = "KERNELCI_KCIDB_TRIAGE_INTERVAL", default_value_t = 60)]
    pub kcidb_triage_interval: u64,
    /// The origin of the issues and incidents triage files.
    #[arg(long, env = "KERNELCI_KCIDB_TRIAGE_ORIGIN", default_value = "logspec")]
    pub kcidb_triage_origin: String,
    /// Triage only builds and tests of these origins (comma-separated; default: all).
    #[arg(long, env = "KERNELCI_KCIDB_TRIAGE_ORIGINS", value_delimiter = ',')]
    pub kcidb_triage_origins: Vec<String>,
    /// Triage only builds and tests loaded within this many hours (upstream's worker: 24;
    /// default: no limit).
    #[arg(long, env = "KERNELCI_KCIDB_TRIAGE_MAX_AGE_HOURS")]
    pub kcidb_triage_max_age_hours: Option<u64>,
    /// Seconds between regression-tracker rounds (results -> regressions, flaky tests,
    /// failure classes, lab health); 0 disables the tracker.
    #[arg(long, env = "KERNELCI_REGRESS_INTERVAL", default_value_t = 10)]
    pub regress_interval: u64,
    /// The regression tracker's settings (TOML: `window`, `flaky_flips`, `[[classify]]`
    /// rules; see the README's "Regressions" section).
    #[arg(long, env = "KERNELCI_REGRESS_CONFIG")]
    pub regress_config: Option<PathBuf>,
    /// Seconds between notifier rounds (reports of settled checkouts to the subscriptions:
    /// e-mail, webhooks); 0 disables notifications.
    #[arg(long, env = "KERNELCI_NOTIFY_INTERVAL", default_value_t = 60)]
    pub notify_interval: u64,
    /// Seconds a checkout's results must stay unchanged before it is reported.
    #[arg(long, env = "KERNELCI_NOTIFY_SETTLE", default_value_t = 600)]
    pub notify_settle: u64,
    /// The dashboard's base URL for the links in reports (default: no links).
    #[arg(long, env = "KERNELCI_NOTIFY_BASE_URL")]
    pub notify_base_url: Option<String>,
    /// Send report e-mail through this SMTP server: smtp://user:pass@host:587?tls=required
    /// (STARTTLS), smtps://user:pass@host:465, or smtp://host:25 (plain).
    #[arg(long, env = "KERNELCI_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of report e-mail.
    #[arg(
        long,
        env = "KERNELCI_NOTIFY_FROM",
        default_value = "KernelCI <kernelci@localhost>"
    )]
    pub notify_from: String,
    /// Write report e-mail as .eml files into this directory instead of sending it
    /// (default without --smtp-url: DATA_DIR/mail).
    #[arg(long, env = "KERNELCI_NOTIFY_MAIL_DIR")]
    pub notify_mail_dir: Option<PathBuf>,
}

/// `kernelci kcidb ...`.
#[derive(Subcommand, Debug)]
pub enum KcidbCommand {
    /// Run the KCIDB role alone (paths unprefixed: /submit, /status, ...).
    Serve(Box<ServeArgs>),
    /// Print a submission token for an origin.
    Token(TokenArgs),
    /// Run one triage round: analyse the logs of failed builds and tests and file KCIDB
    /// issues and incidents into the spool (loaded by the running ingester).
    Triage(TriageArgs),
}

/// Options of `kernelci kcidb triage`.
#[derive(Args, Debug)]
pub struct TriageArgs {
    /// Data directory (SQLite database kcidb.db, spool).
    #[arg(long, env = "KERNELCI_DATA_DIR", default_value = "./kernelci-data")]
    pub data_dir: PathBuf,
    /// Use this database instead of SQLite in the data directory (postgres://user@host/db).
    #[arg(long, env = "KERNELCI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The spool directory (default: DATA_DIR/kcidb-spool).
    #[arg(long, env = "KERNELCI_KCIDB_SPOOL")]
    pub kcidb_spool: Option<PathBuf>,
    /// The origin of the issues and incidents filed.
    #[arg(long, env = "KERNELCI_KCIDB_TRIAGE_ORIGIN", default_value = "logspec")]
    pub origin: String,
    /// Print what would be filed; file and mark nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Builds, and separately tests, looked at.
    #[arg(long, default_value_t = 500)]
    pub limit: usize,
    /// Only builds and tests of these origins (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub origins: Vec<String>,
    /// Only builds and tests loaded within this many hours (default: no limit).
    #[arg(long)]
    pub max_age_hours: Option<u64>,
}

fn hours(h: Option<u64>) -> Option<std::time::Duration> {
    h.map(|h| std::time::Duration::from_secs(h.saturating_mul(3600)))
}

/// Options of `kernelci kcidb serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory (SQLite database kcidb.db, spool, secret).
    #[arg(long, env = "KERNELCI_DATA_DIR", default_value = "./kernelci-data")]
    pub data_dir: PathBuf,
    /// Use this database instead of SQLite in the data directory (postgres://user@host/db).
    #[arg(long, env = "KERNELCI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "KERNELCI_KCIDB_LISTEN", default_value = "127.0.0.1:8002")]
    pub listen: String,
    #[command(flatten)]
    pub kcidb: KcidbArgs,
    #[command(flatten)]
    pub net: crate::listen::ListenArgs,
    #[command(flatten)]
    pub retention: crate::purge::RetentionArgs,
}

/// The KCIDB router's limits: the submission size is checked by the role itself
/// (`--kcidb-max-body`, 413 with its own message), the timeout here.
pub fn limits(args: &KcidbArgs) -> crate::listen::Limits {
    crate::listen::Limits {
        max_body: None,
        body_flag: "kcidb-max-body",
        timeout: crate::listen::seconds(args.kcidb_request_timeout),
        timeout_flag: "kcidb-request-timeout",
    }
}

/// Options of `kernelci kcidb token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The origin the token may submit for (`[a-z0-9_]+`).
    #[arg(long)]
    pub origin: String,
    /// Let the token submit objects of any origin (claim `"permissions": ["kcidb:admin"]`).
    #[arg(long)]
    pub admin: bool,
    /// Validity in days.
    #[arg(long, default_value_t = 5 * 365)]
    pub days: i64,
    /// Data directory (where kcidb.secret is kept).
    #[arg(long, env = "KERNELCI_DATA_DIR", default_value = "./kernelci-data")]
    pub data_dir: PathBuf,
    /// HS256 secret (default: DATA_DIR/kcidb.secret, created if missing).
    #[arg(long, env = "KERNELCI_KCIDB_SECRET", hide_env_values = true)]
    pub kcidb_secret: Option<String>,
}

/// Runs a `kernelci kcidb` subcommand.
pub async fn run(command: KcidbCommand) -> Result<()> {
    match command {
        KcidbCommand::Token(args) => {
            if !valid_origin(&args.origin) {
                anyhow::bail!("--origin {:?} must match ^[a-z0-9_]+$", args.origin);
            }
            if args.days < 1 {
                anyhow::bail!("--days must be at least 1");
            }
            let secret = secret(&args.data_dir, args.kcidb_secret.as_deref())?;
            let token = Verifier::new(&secret, None).issue(&args.origin, args.admin, args.days);
            println!("{token}");
            Ok(())
        }
        KcidbCommand::Serve(args) => serve(*args).await,
        KcidbCommand::Triage(args) => triage(args).await,
    }
}

async fn triage(args: TriageArgs) -> Result<()> {
    let spool_dir = args
        .kcidb_spool
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kcidb-spool"));
    let state = KcidbState::new(KcidbConfig {
        spool_dir: spool_dir.clone(),
        verifier: None,
        max_body: kernelci_kcidb_server::DEFAULT_MAX_BODY,
    })
    .with_context(|| format!("cannot open the KCIDB spool {}", spool_dir.display()))?;
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", args.data_dir.join("kcidb.db").display()),
    };
    let db = KcidbDb::open(&url)
        .await
        .context("cannot open the KCIDB database")?;
    let config = TriageConfig {
        origin: args.origin,
        dry_run: args.dry_run,
        limit: args.limit,
        origins: args.origins,
        max_age: hours(args.max_age_hours),
        ..TriageConfig::default()
    };
    let report = kernelci_kcidb_server::triage_once(&state, &db, config).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    let addr: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address like 127.0.0.1:8002",
            args.listen
        )
    })?;
    let role = start(&args.kcidb, &args.data_dir, args.database_url.as_deref()).await?;
    let app = limits(&args.kcidb).apply(kernelci_kcidb_server::kcidb_router(
        role.state.clone(),
        true,
    ));
    let bound = crate::listen::bind(addr, &args.net).await?;
    eprintln!(
        "kernelci kcidb serve: listening on {} ({} database, spool {})",
        bound.url(),
        role.db.backend(),
        role.state.spool().dir().display()
    );
    let purge =
        crate::purge::spawn_kcidb(&args.retention, role.state.spool().clone(), role.db.clone());
    bound.serve(app, crate::serve::shutdown_signal()).await?;
    purge.abort();
    role.ingester.abort();
    drop(role);
    eprintln!("kernelci kcidb serve: stopped");
    Ok(())
}

/// A started KCIDB role: its state (for the router), database and ingester task.
pub struct Role {
    /// The receiver's state.
    pub state: KcidbState,
    /// The database.
    pub db: KcidbDb,
    /// The ingester task.
    pub ingester: tokio::task::JoinHandle<()>,
    /// The periodic triage task, unless disabled (aborted when the role is dropped).
    pub triage: Option<tokio::task::JoinHandle<()>>,
    /// The regression tracker task, unless disabled (aborted when the role is dropped).
    pub regress: Option<tokio::task::JoinHandle<()>>,
    /// The notifier task, unless disabled (aborted when the role is dropped).
    pub notify: Option<tokio::task::JoinHandle<()>>,
    /// A token for origin `maestro`, used by the in-process pipeline's KCIDB bridge.
    pub maestro_token: String,
}

impl Drop for Role {
    fn drop(&mut self) {
        for t in [&self.triage, &self.regress, &self.notify]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
    }
}

/// Opens the spool and the database and starts the ingester.
pub async fn start(args: &KcidbArgs, data_dir: &Path, database_url: Option<&str>) -> Result<Role> {
    crate::options::ensure_dir(data_dir)?;
    let verifier = if args.kcidb_no_auth {
        eprintln!("warning: KCIDB authentication is disabled (--kcidb-no-auth)");
        None
    } else {
        let secret = secret(data_dir, args.kcidb_secret.as_deref())?;
        Some(Verifier::new(&secret, args.kcidb_unified_secret.as_deref()))
    };
    let maestro_token = verifier
        .as_ref()
        .map(|v| v.issue("maestro", false, 10 * 365))
        .unwrap_or_default();
    let spool_dir = args
        .kcidb_spool
        .clone()
        .unwrap_or_else(|| data_dir.join("kcidb-spool"));
    let state = KcidbState::new(KcidbConfig {
        spool_dir: spool_dir.clone(),
        verifier,
        max_body: args.kcidb_max_body,
    })
    .with_context(|| format!("cannot open the KCIDB spool {}", spool_dir.display()))?;
    let url = match database_url {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", data_dir.join("kcidb.db").display()),
    };
    let db = KcidbDb::open(&url)
        .await
        .context("cannot open the KCIDB database")?;
    let ingester = state.spawn_ingester(db.clone(), IngestLimits::default());
    let triage = if args.kcidb_triage_interval == 0 {
        None
    } else {
        let config = TriageConfig {
            origin: args.kcidb_triage_origin.clone(),
            interval: std::time::Duration::from_secs(args.kcidb_triage_interval),
            origins: args.kcidb_triage_origins.clone(),
            max_age: hours(args.kcidb_triage_max_age_hours),
            ..TriageConfig::default()
        };
        Some(kernelci_kcidb_server::triage::spawn(
            state.clone(),
            db.clone(),
            config,
        )?)
    };
    let tracker = kernelci_kcidb_server::regress::load_config(args.regress_config.as_deref())?;
    let regress = (args.regress_interval > 0).then(|| {
        kernelci_kcidb_server::regress::spawn(
            db.clone(),
            tracker,
            std::time::Duration::from_secs(args.regress_interval),
        )
    });
    state
        .enable_subscriptions(db.clone())
        .await
        .context("cannot create the notification tables")?;
    let notify = notifier(args, data_dir, &db).await?;
    Ok(Role {
        state,
        db,
        ingester,
        triage,
        regress,
        notify,
        maestro_token,
    })
}

/// Starts the notifier unless `--notify-interval 0`.
async fn notifier(
    args: &KcidbArgs,
    data_dir: &Path,
    db: &KcidbDb,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    use kernelci_kcidb_server::notify::{MailSink, Notifier, NotifyConfig, parse_from};
    let from = parse_from(&args.notify_from)?;
    let mail = match (&args.smtp_url, &args.notify_mail_dir) {
        (Some(_), Some(_)) => {
            anyhow::bail!("--smtp-url and --notify-mail-dir: give one of them, not both")
        }
        (Some(url), None) => MailSink::smtp(url)?,
        (None, dir) => MailSink::Dir(dir.clone().unwrap_or_else(|| data_dir.join("mail"))),
    };
    if let Some(base) = &args.notify_base_url {
        let url = url::Url::parse(base)
            .with_context(|| format!("--notify-base-url {base:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("--notify-base-url {base:?} must be an http or https URL");
        }
    }
    if args.notify_interval == 0 {
        return Ok(None);
    }
    let mut config = NotifyConfig::new(mail, from);
    config.interval = std::time::Duration::from_secs(args.notify_interval);
    config.settle = std::time::Duration::from_secs(args.notify_settle);
    config.base_url = args.notify_base_url.clone();
    config.after_tracker = args.regress_interval > 0;
    let notifier = Notifier::new(db.clone(), config)
        .await
        .context("cannot start the notifier")?;
    Ok(Some(notifier.spawn()))
}

/// The token secret: the configured one (an empty one is refused: disabling authentication
/// takes --kcidb-no-auth), else DATA_DIR/kcidb.secret, created on first use.
fn secret(data_dir: &Path, configured: Option<&str>) -> Result<String> {
    match configured {
        Some("") => anyhow::bail!(
            "the KCIDB secret is empty; to disable KCIDB authentication pass --kcidb-no-auth"
        ),
        Some(s) => Ok(s.to_string()),
        None => {
            let path = data_dir.join("kcidb.secret");
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                Ok(_) => anyhow::bail!("{} is empty", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    crate::options::ensure_dir(data_dir)?;
                    let secret = kernelci_api::auth::random_password();
                    crate::serve::write_private(&path, &format!("{secret}\n"))?;
                    Ok(secret)
                }
                Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
    }
}
