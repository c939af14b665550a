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
//! A file larger than the in-memory size ([`kernelci_kcidb::stream::StreamOptions`], 16 MiB)
//! is loaded alone: checked whole first, then read again one object at a time and committed
//! in chunks of [`IngestLimits::objects`], so a 1 GiB submission needs about two chunks of
//! memory. Its objects become visible chunk by chunk; it is archived after the last one.
//!
//! A crash between the commit and the archiving leaves files ready that are already loaded:
//! loading them again changes nothing (the merge is idempotent and identical rows are not
//! rewritten). One ingester per spool directory (files are not claimed between processes).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kernelci_kcidb::Submission;
use kernelci_kcidb::stream::{StreamError, read_chunks};

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
    let in_memory_up_to = state.inner.stream.in_memory_up_to;
    let batch =
        tokio::task::spawn_blocking(move || read_batch(&spool, limits_copy, in_memory_up_to))
            .await
            .map_err(|e| DbError::Sql(sqlx::Error::Protocol(format!("ingest task: {e}"))))?;
    let loaded = match batch {
        Batch::Large(path) => return ingest_large(state, db, path, limits).await,
        Batch::Small(loaded) => loaded,
    };
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

/// What a round works on.
enum Batch {
    /// Files read into memory.
    Small(Loaded),
    /// One file too large for that: it is loaded alone, in chunks.
    Large(PathBuf),
}

fn read_batch(spool: &crate::spool::Spool, limits: IngestLimits, in_memory_up_to: u64) -> Batch {
    let files = match spool.ready_files() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("kcidb: cannot list {}: {e}", spool.dir().display());
            return Batch::Small(Vec::new());
        }
    };
    let mut out = Vec::new();
    let (mut objects, mut bytes) = (0usize, 0u64);
    for path in files.into_iter().take(limits.files) {
        let large = std::fs::metadata(&path).is_ok_and(|m| m.len() > in_memory_up_to);
        if large {
            // Alone, in a round of its own (now, or after the files read so far).
            if out.is_empty() {
                return Batch::Large(path);
            }
            break;
        }
        let result = match std::fs::read(&path) {
            // Vanished between listing and reading (another ingester): skip it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(data) => {
                bytes += data.len() as u64;
                kernelci_kcidb::load(&data).map_err(|rejection| describe(&rejection))
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
    Batch::Small(out)
}

fn describe(rejection: &kernelci_kcidb::Rejection) -> String {
    let mut text = format!("{} stage: {rejection}", rejection.stage());
    for p in rejection.problems() {
        text.push_str(&format!("\n{p}"));
    }
    text
}

/// Loads one large file: checked whole first (a file found invalid half-way must not be
/// half loaded), then read again one object at a time and committed in chunks of
/// `limits.objects`. Memory: one chunk being written and one being read. A crash part-way
/// leaves the file ready; loading it again rewrites nothing already stored (the merge is
/// idempotent), so the end result is the same.
async fn ingest_large(
    state: &KcidbState,
    db: &KcidbDb,
    path: PathBuf,
    limits: IngestLimits,
) -> Result<Round, DbError> {
    let task_error = |e: tokio::task::JoinError| {
        DbError::Sql(sqlx::Error::Protocol(format!("ingest task: {e}")))
    };
    let options = state.inner.stream;
    let mut round = Round::default();
    let checked = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || crate::check_spooled(&path, &options, None))
            .await
            .map_err(task_error)?
    };
    let reason = match checked {
        Ok(_) => None,
        Err(StreamError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(round);
        }
        Err(StreamError::Rejected(r)) => Some(describe(&r)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(reason) = reason {
        fail(state, &path, &reason);
        round.failed = 1;
        return Ok(round);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Submission>(1);
    let reader = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)?;
            read_chunks(file, &options, limits.objects, |chunk| {
                tx.blocking_send(chunk).map_err(|_| "the ingester stopped")
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
        })
    };
    while let Some(chunk) = rx.recv().await {
        match db.load(chunk).await {
            Ok(rows) => add(&mut round.rows, rows),
            Err(e) => {
                // Stops the reader (its next send fails); the file stays ready.
                drop(rx);
                let _ = reader.await;
                return Err(e);
            }
        }
    }
    match reader.await.map_err(task_error)? {
        Ok(_) => {
            archive(state, &path);
            round.archived = 1;
        }
        Err(e) => {
            tracing::warn!("kcidb: {} cannot be read again: {e}", path.display());
            fail(state, &path, &format!("cannot read: {e}"));
            round.failed = 1;
        }
    }
    state.inner.metrics.add_rows(round.rows);
    Ok(round)
}

fn fail(state: &KcidbState, path: &std::path::Path, reason: &str) {
    tracing::warn!("kcidb: {} cannot be loaded: {reason}", path.display());
    if let Err(e) = state.spool().fail(path, reason) {
        tracing::error!("kcidb: cannot move {} to failed/: {e}", path.display());
    }
    state
        .inner
        .metrics
        .failed_files
        .fetch_add(1, Ordering::Relaxed);
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
