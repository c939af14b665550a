//! The ingester: ready spool files into the database, in batches.
//!
//! One round takes the oldest ready files (up to [`IngestLimits`]), loads each with
//! [`kernelci_kcidb::load`] (a file that cannot be loaded goes to `failed/` with
//! `<name>.reason` beside it), merges them in arrival order and loads them in one
//! transaction ([`KcidbDb::load`]). Only after the commit are the files moved to `archive/`.
//! If the batch fails and the database still answers, the files are loaded one by one and
//! one that fails alone goes to `failed/` (reason `database: ...`); if the database does not
//! answer, the files stay ready and the round is retried later.
//!
//! A crash between the commit and the archiving leaves files ready that are already loaded:
//! loading them again changes nothing (the merge is idempotent and identical rows are not
//! rewritten). One ingester per spool directory (files are not claimed between processes).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kernelci_kcidb::Submission;

use crate::KcidbState;
use crate::db::{Counts, DbError, KcidbDb};

/// How much one batch may hold.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Files per batch.
    pub files: usize,
    /// Objects per batch (the batch closes after the file that crosses it).
    pub objects: usize,
    /// Bytes of files per batch (idem).
    pub bytes: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            files: 50,
            objects: 20_000,
            bytes: 64 << 20,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Files archived.
    pub archived: usize,
    /// Files moved to `failed/`.
    pub failed: usize,
    /// Rows written.
    pub rows: Counts,
}

fn add(a: &mut Counts, b: Counts) {
    a.checkouts += b.checkouts;
    a.builds += b.builds;
    a.tests += b.tests;
    a.issues += b.issues;
    a.incidents += b.incidents;
}

fn append(into: &mut Submission, from: Submission) {
    into.checkouts.extend(from.checkouts);
    into.builds.extend(from.builds);
    into.tests.extend(from.tests);
    into.issues.extend(from.issues);
    into.incidents.extend(from.incidents);
}

/// Runs one round; `Ok` with nothing done means the spool is empty.
pub async fn ingest_round(
    state: &KcidbState,
    db: &KcidbDb,
    limits: IngestLimits,
) -> Result<Round, DbError> {
    let spool = state.spool().clone();
    let limits_copy = limits;
    // Reading and validating is CPU and blocking IO: off the async threads.
    let loaded = tokio::task::spawn_blocking(move || read_batch(&spool, limits_copy))
        .await
        .map_err(|e| DbError::Sql(sqlx::Error::Protocol(format!("ingest task: {e}"))))?;
    let spool = state.spool();
    let metrics = &state.inner.metrics;
    let mut round = Round::default();
    let mut good: Vec<(PathBuf, Submission)> = Vec::new();
    for (path, result) in loaded {
        match result {
            Ok(sub) => good.push((path, sub)),
            Err(reason) => {
                tracing::warn!("kcidb: {} cannot be loaded: {reason}", path.display());
                if let Err(e) = spool.fail(&path, &reason) {
                    tracing::error!("kcidb: cannot move {} to failed/: {e}", path.display());
                }
                metrics.failed_files.fetch_add(1, Ordering::Relaxed);
                round.failed += 1;
            }
        }
    }
    if good.is_empty() {
        return Ok(round);
    }
    let mut batch = Submission::new();
    for (_, sub) in &good {
        append(&mut batch, sub.clone());
    }
    match db.load(batch).await {
        Ok(rows) => {
            round.rows = rows;
            for (path, _) in &good {
                archive(state, path);
                round.archived += 1;
            }
        }
        Err(e) => {
            tracing::warn!("kcidb: batch of {} files failed: {e}", good.len());
            if !db.ping().await {
                return Err(e);
            }
            for (path, sub) in good {
                match db.load(sub).await {
                    Ok(rows) => {
                        add(&mut round.rows, rows);
                        archive(state, &path);
                        round.archived += 1;
                    }
                    Err(e) if !db.ping().await => return Err(e),
                    Err(e) => {
                        let reason = format!("database: {e}");
                        tracing::warn!("kcidb: {}: {reason}", path.display());
                        if let Err(e) = spool.fail(&path, &reason) {
                            tracing::error!(
                                "kcidb: cannot move {} to failed/: {e}",
                                path.display()
                            );
                        }
                        metrics.failed_files.fetch_add(1, Ordering::Relaxed);
                        round.failed += 1;
                    }
                }
            }
        }
    }
    metrics.add_rows(round.rows);
    Ok(round)
}

fn archive(state: &KcidbState, path: &std::path::Path) {
    match state.spool().archive(path) {
        Ok(()) => {
            state
                .inner
                .metrics
                .ingested_files
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!("kcidb: cannot archive {}: {e}", path.display()),
    }
}

type Loaded = Vec<(PathBuf, Result<Submission, String>)>;

fn read_batch(spool: &crate::spool::Spool, limits: IngestLimits) -> Loaded {
    let files = match spool.ready_files() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("kcidb: cannot list {}: {e}", spool.dir().display());
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let (mut objects, mut bytes) = (0usize, 0u64);
    for path in files.into_iter().take(limits.files) {
        let result = match std::fs::read(&path) {
            // Vanished between listing and reading (another ingester): skip it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(data) => {
                bytes += data.len() as u64;
                kernelci_kcidb::load(&data).map_err(|rejection| {
                    let mut text = format!("{} stage: {rejection}", rejection.stage());
                    for p in rejection.problems() {
                        text.push_str(&format!("\n{p}"));
                    }
                    text
                })
            }
        };
        if let Ok(sub) = &result {
            objects += sub.object_count();
        }
        out.push((path, result));
        if objects >= limits.objects || bytes >= limits.bytes {
            break;
        }
    }
    out
}

/// Runs rounds forever: immediately while there is work, else on a wake-up from `/submit`
/// or every second; backs off (up to 30 s) while the database is unreachable.
pub async fn run(state: KcidbState, db: KcidbDb, limits: IngestLimits) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match ingest_round(&state, &db, limits).await {
            Ok(round) if round.archived + round.failed > 0 => {
                backoff = Duration::from_secs(1);
                continue;
            }
            Ok(_) => {
                backoff = Duration::from_secs(1);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), state.inner.wake.notified()).await;
            }
            Err(e) => {
                state
                    .inner
                    .metrics
                    .ingest_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!("kcidb: ingest round failed (retrying in {backoff:?}): {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
