//! Retention in the binary: the `--retain-*` and `--purge-*` flags, `kernelci admin purge`
//! (one round by hand) and the KCIDB side's periodic round (spool `archive/` and `failed/`
//! files, the regression tracker's results). The Maestro side (nodes, events, telemetry)
//! runs in `kernelci_api::housekeeping` with [`RetentionArgs::maestro`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::Args;
use kernelci_api::retention::{self, Kind, Purged, Retention};
use kernelci_kcidb_server::{KcidbDb, Spool};

use crate::options::StoreOptions;

/// How long each kind of data is kept (0 = forever) and how purges are paced.
#[derive(Args, Clone, Debug)]
pub struct RetentionArgs {
    /// Days nodes are kept (upstream: 180): older ones go leaves first, a node only once no
    /// child is left; checkouts are kept. 0 keeps nodes forever.
    #[arg(long, env = "KERNELCI_RETAIN_NODES_DAYS", default_value_t = 180)]
    pub retain_nodes_days: u64,
    /// Days events are kept (upstream: 7); an event after a live subscription's cursor is
    /// kept. 0 keeps events forever.
    #[arg(long, env = "KERNELCI_RETAIN_EVENTS_DAYS", default_value_t = 7)]
    pub retain_events_days: u64,
    /// Days pipeline telemetry is kept (upstream: 14). 0 keeps it forever.
    #[arg(long, env = "KERNELCI_RETAIN_TELEMETRY_DAYS", default_value_t = 14)]
    pub retain_telemetry_days: u64,
    /// Days KCIDB spool files stay in archive/ and failed/ (by modification time; /status
    /// then answers notfound). 0 keeps them forever.
    #[arg(long, env = "KERNELCI_RETAIN_SPOOL_DAYS", default_value_t = 30)]
    pub retain_spool_days: u64,
    /// Days the regression tracker keeps a result (by its checkout's time). 0 keeps them
    /// forever.
    #[arg(long, env = "KERNELCI_RETAIN_REGRESS_DAYS", default_value_t = 180)]
    pub retain_regress_days: u64,
    /// Rows (or spool files) removed per batch; each batch is its own short transaction.
    #[arg(long, env = "KERNELCI_PURGE_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub purge_batch: u32,
    /// Milliseconds to pause after each purge batch, so writers never wait long.
    #[arg(long, env = "KERNELCI_PURGE_PAUSE_MS", default_value_t = 50)]
    pub purge_pause_ms: u64,
}

impl RetentionArgs {
    /// The Maestro store's settings.
    pub fn maestro(&self) -> Retention {
        Retention {
            nodes: retention::days(self.retain_nodes_days),
            events: retention::days(self.retain_events_days),
            telemetry: retention::days(self.retain_telemetry_days),
            batch: self.purge_batch,
            pause: self.pause(),
        }
    }

    fn pause(&self) -> Duration {
        Duration::from_millis(self.purge_pause_ms)
    }
}

/// Options of `kernelci admin purge`.
#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// The KCIDB spool directory (default: DATA_DIR/kcidb-spool).
    #[arg(long, env = "KERNELCI_KCIDB_SPOOL")]
    pub kcidb_spool: Option<PathBuf>,
    /// Count what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the KCIDB side's round removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct KcidbPurged {
    /// Spool files.
    pub spool: Purged,
    /// Regression tracker results.
    pub regress: Purged,
}

/// Removes spool files older than the configured age, `--purge-batch` at a time with a
/// pause between; with `dry_run`, counts them.
pub async fn purge_spool(args: &RetentionArgs, spool: &Spool, dry_run: bool) -> Result<Purged> {
    let Some(age) = retention::days(args.retain_spool_days) else {
        return Ok(Purged::default());
    };
    let Some(before) = SystemTime::now().checked_sub(age) else {
        return Ok(Purged::default());
    };
    let lister = spool.clone();
    let files = tokio::task::spawn_blocking(move || lister.expired(before))
        .await
        .context("spool listing task")?
        .with_context(|| format!("cannot list {}", spool.dir().display()))?;
    if dry_run {
        return Ok(Purged {
            removed: files.len() as u64,
            batches: 0,
        });
    }
    let batch = usize::try_from(args.purge_batch).unwrap_or(1000).max(1);
    let mut chunks = files.chunks(batch).map(<[PathBuf]>::to_vec);
    retention::in_batches(args.purge_batch, args.pause(), |_| {
        let chunk = chunks.next();
        let spool = spool.clone();
        async move {
            let Some(chunk) = chunk else { return Ok(0) };
            tokio::task::spawn_blocking(move || spool.remove_expired(&chunk))
                .await
                .context("spool removal task")?
                .context("cannot remove spool files")
        }
    })
    .await
}

/// Removes regression tracker results of checkouts older than the configured age, in
/// batches; with `dry_run`, counts them.
pub async fn purge_regress(args: &RetentionArgs, db: &KcidbDb, dry_run: bool) -> Result<Purged> {
    let Some(age) = retention::days(args.retain_regress_days) else {
        return Ok(Purged::default());
    };
    let Some(before) = chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
    else {
        return Ok(Purged::default());
    };
    let track = |limit, dry| kernelci_kcidb::regress::track::purge(db, &before, limit, dry);
    if dry_run {
        let removed = track(args.purge_batch, true).await?;
        return Ok(Purged {
            removed,
            batches: 0,
        });
    }
    Ok(retention::in_batches(args.purge_batch, args.pause(), |limit| track(limit, false)).await?)
}

/// One KCIDB round (spool, then regression results); a failing kind is logged and the
/// other still runs.
pub async fn kcidb_round(args: &RetentionArgs, spool: &Spool, db: &KcidbDb) -> KcidbPurged {
    let mut out = KcidbPurged::default();
    match purge_spool(args, spool, false).await {
        Ok(p) => out.spool = p,
        Err(e) => tracing::warn!("spool purge failed: {e:#}"),
    }
    match purge_regress(args, db, false).await {
        Ok(p) => out.regress = p,
        Err(e) => tracing::warn!("regression results purge failed: {e:#}"),
    }
    for (name, p) in [
        ("spool files", out.spool),
        ("regression results", out.regress),
    ] {
        if p.removed > 0 {
            tracing::info!(
                "retention: {} {name} purged in {} batches",
                p.removed,
                p.batches
            );
        }
    }
    out
}

/// The KCIDB side's periodic round (every 15 minutes, as the Maestro housekeeping), until
/// the task is aborted.
pub fn spawn_kcidb(args: &RetentionArgs, spool: Spool, db: KcidbDb) -> tokio::task::JoinHandle<()> {
    let args = args.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15 * 60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            kcidb_round(&args, &spool, &db).await;
        }
    })
}

/// `kernelci admin purge`: one round over every kind, with the same settings as the
/// server; prints what was removed (or, with `--dry-run`, would be).
pub async fn run(opts: &StoreOptions, args: &PurgeArgs) -> Result<()> {
    let r = args.retention.maestro();
    let dry = args.dry_run;
    let mut counts: BTreeMap<&'static str, Purged> = BTreeMap::new();
    let store = opts.open().await?;
    let now = kernelci_model::time::now();
    for kind in Kind::ALL {
        let done = retention::purge(&*store, kind, &r, now, dry)
            .await
            .with_context(|| format!("purging {}", kind.name()))?;
        counts.insert(kind.name(), done);
    }
    // The KCIDB side only where it exists: a Maestro-only deployment has neither.
    let spool_dir = args
        .kcidb_spool
        .clone()
        .unwrap_or_else(|| opts.data_dir.join("kcidb-spool"));
    if spool_dir.is_dir() {
        let spool = Spool::open(&spool_dir)
            .with_context(|| format!("cannot open the KCIDB spool {}", spool_dir.display()))?;
        counts.insert("spool", purge_spool(&args.retention, &spool, dry).await?);
    }
    let kcidb_url = match &opts.database_url {
        Some(u) => has_regress_table(u).await?.then(|| u.clone()),
        None => {
            let file = opts.data_dir.join("kcidb.db");
            file.is_file()
                .then(|| format!("sqlite://{}", file.display()))
        }
    };
    if let Some(url) = kcidb_url {
        let db = KcidbDb::open(&url)
            .await
            .context("cannot open the KCIDB database")?;
        let done = purge_regress(&args.retention, &db, dry)
            .await
            .context("purging regression results")?;
        counts.insert("regress_results", done);
    }
    if args.json {
        let body = serde_json::json!({ "dry_run": dry, "purged": counts });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        let verb = if dry { "would remove" } else { "removed" };
        for (name, p) in &counts {
            if dry {
                println!("{name}: {verb} {}", p.removed);
            } else {
                println!("{name}: {verb} {} in {} batches", p.removed, p.batches);
            }
        }
    }
    Ok(())
}

/// Whether the database at `url` holds the regression tracker's table (opening the KCIDB
/// database would create it in a Maestro-only deployment).
async fn has_regress_table(url: &str) -> Result<bool> {
    let context = || format!("cannot read {}", kernelci_store::redact(url));
    if url.starts_with("sqlite:") {
        let Ok(pool) = sqlx::SqlitePool::connect(url).await else {
            return Ok(false);
        };
        let found: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'regress_results'",
        )
        .fetch_one(&pool)
        .await
        .with_context(context)?;
        pool.close().await;
        return Ok(found);
    }
    let pool = sqlx::PgPool::connect(url).await.with_context(context)?;
    let found: bool = sqlx::query_scalar("SELECT to_regclass('regress_results') IS NOT NULL")
        .fetch_one(&pool)
        .await
        .with_context(context)?;
    pool.close().await;
    Ok(found)
}
