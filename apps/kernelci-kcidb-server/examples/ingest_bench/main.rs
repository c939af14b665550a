//! KCIDB ingest throughput, end to end from the spool to committed rows, against a raw
//! `COPY` of the same rows, and the ingester's peak memory on a large spool (issue 3).
//!
//! ```text
//! cargo run --release -p kernelci-kcidb-server --example ingest_bench -- \
//!     --pg postgres://postgres@127.0.0.1:5432/test \
//!     [--sqlite] [--files 200 --objects-per-file 256] [--spool-gib 1] [--json]
//! ```
//!
//! 1. Writes a spool of `--files` generated v5.3 submissions of `--objects-per-file`
//!    distinct objects each (the shape of the fixtures' `gen_submissions.py`; 200 x 256 =
//!    51,200 objects, upstream's figure) and times reading and validating it alone (no
//!    database), the CPU share of the ingest.
//! 2. Ingests it with the real ingester (`KcidbState::ingest_round` until the spool is
//!    empty, default [`IngestLimits`]) into a throwaway PostgreSQL database
//!    `kcidb_bench_<pid>_ingest` (created on the `--pg` server, default
//!    `$KERNELCI_TEST_DATABASE_URL`, and dropped at the end), and with
//!    `--sqlite` into a fresh SQLite file; checks the row counts.
//! 3. The ceiling: the rows the ingester wrote, as `COPY` text, loaded again with
//!    `COPY ... FROM STDIN` in one transaction into plain tables of the same columns (no
//!    key, no index), and into tables with the same keys and indexes.
//! 4. Peak memory (with `--pg`): a spool of `--spool-gib` GiB (0 skips) ingested into
//!    another throwaway database (`kcidb_bench_<pid>_big`) by a child process (this
//!    program with `--child-ingest`), which reports its VmHWM (peak RSS) and throughput.
//!
//! Upstream's Python ingester loads 200 files / 51,200 objects in about 15 s on this kind
//! of machine (3,400 objects/s): the report gives the ratio to that too.

mod generate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kernelci_kcidb_server::{DEFAULT_MAX_BODY, IngestLimits, KcidbConfig, KcidbDb, KcidbState};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Upstream's figure (objects/s) for the same spool.
const UPSTREAM_OBJECTS_PER_S: f64 = 51_200.0 / 15.0;
/// The KCIDB tables, in load order.
const TABLES: [&str; 5] = ["checkouts", "builds", "tests", "issues", "incidents"];
/// The generator's seed.
const SEED: u64 = 1;

type Result<T> = std::result::Result<T, String>;

struct Options {
    pg: Option<String>,
    sqlite: bool,
    files: usize,
    objects_per_file: usize,
    spool_gib: f64,
    json: bool,
    /// `--child-ingest SPOOL URL OBJECTS` (the peak-memory run).
    child: Option<(PathBuf, String, usize)>,
}

const USAGE: &str = "usage: ingest_bench [--pg URL] [--sqlite] [--files N] \
    [--objects-per-file N] [--spool-gib G] [--json]";

fn options() -> Result<Options> {
    let mut o = Options {
        pg: std::env::var("KERNELCI_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty()),
        sqlite: false,
        files: 200,
        objects_per_file: 256,
        spool_gib: 1.0,
        json: false,
        child: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--pg" => o.pg = Some(value()?),
            "--sqlite" => o.sqlite = true,
            "--files" => o.files = value()?.parse().map_err(|e| format!("{arg}: {e}"))?,
            "--objects-per-file" => {
                o.objects_per_file = value()?.parse().map_err(|e| format!("{arg}: {e}"))?
            }
            "--spool-gib" => o.spool_gib = value()?.parse().map_err(|e| format!("{arg}: {e}"))?,
            "--json" => o.json = true,
            "--child-ingest" => {
                let spool = PathBuf::from(value()?);
                let url = value()?;
                let objects = value()?.parse().map_err(|e| format!("{arg}: {e}"))?;
                o.child = Some((spool, url, objects));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.objects_per_file == 0 || o.files == 0 {
        return Err("--files and --objects-per-file must be at least 1".to_string());
    }
    if o.pg.is_none() && !o.sqlite && o.child.is_none() {
        return Err(format!(
            "nothing to measure: give --pg URL (or KERNELCI_TEST_DATABASE_URL) and/or --sqlite\n{USAGE}"
        ));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &opts.child {
        Some((spool, url, objects)) => runtime.block_on(child_ingest(spool, url, *objects)),
        None => runtime.block_on(bench(&opts)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- measurements ------------------------------------------------------------------------

/// One ingest, spool to committed rows.
#[derive(Debug, Clone, Copy)]
struct IngestRun {
    objects: usize,
    rows: u64,
    rounds: usize,
    elapsed: Duration,
}

impl IngestRun {
    fn per_s(&self) -> f64 {
        per_s(self.objects as f64, self.elapsed)
    }
}

fn per_s(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64().max(1e-9)
}

/// Reads and validates every file of the spool (what the ingester does before the
/// database), without a database. Returns (objects, time).
fn read_and_validate(spool: &Path) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let mut objects = 0;
    for path in kernelci_kcidb_server::Spool::open(spool)
        .and_then(|s| s.ready_files())
        .map_err(|e| format!("{}: {e}", spool.display()))?
    {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sub = kernelci_kcidb::load(&bytes)
            .map_err(|e| format!("{} is invalid: {e}", path.display()))?;
        objects += sub.object_count();
    }
    Ok((objects, started.elapsed()))
}

/// Ingests the spool into `url` with the real ingester until no ready file is left (the
/// database is opened and migrated before the clock starts). Fails if a file failed or the
/// rows do not add up to `expected` objects.
async fn ingest(spool: &Path, url: &str, expected: usize) -> Result<IngestRun> {
    let db = KcidbDb::open(url)
        .await
        .map_err(|e| format!("cannot open {url}: {e}"))?;
    let state = KcidbState::new(KcidbConfig {
        spool_dir: spool.to_path_buf(),
        verifier: None,
        max_body: DEFAULT_MAX_BODY,
    })
    .map_err(|e| format!("spool {}: {e}", spool.display()))?;
    let started = Instant::now();
    let mut rounds = 0;
    loop {
        let round = state
            .ingest_round(&db, IngestLimits::default())
            .await
            .map_err(|e| format!("ingest round: {e}"))?;
        if round.failed > 0 {
            return Err(format!("{} spool files failed to load", round.failed));
        }
        if round.archived == 0 {
            break;
        }
        rounds += 1;
    }
    let elapsed = started.elapsed();
    let rows = db.counts().await.map_err(|e| e.to_string())?.total();
    if rows != expected as u64 {
        return Err(format!("{rows} rows stored, {expected} objects spooled"));
    }
    Ok(IngestRun {
        objects: expected,
        rows,
        rounds,
        elapsed,
    })
}

/// The ceiling: `COPY ... FROM STDIN` of the rows stored in `url`, in one transaction.
#[derive(Debug, Clone, Copy)]
struct CopyRun {
    rows: u64,
    plain: Duration,
    indexed: Duration,
}

/// A text-format `COPY` line per row of `table`, every column (NULL as `\N`).
async fn copy_text(conn: &mut PgConnection, table: &str) -> Result<(Vec<String>, Vec<u8>)> {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    let fields: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "COALESCE(replace(replace(replace(replace(CAST({c} AS TEXT), '\\', '\\\\'), \
                 chr(9), '\\t'), chr(10), '\\n'), chr(13), '\\r'), '\\N')"
            )
        })
        .collect();
    let sql = format!(
        "SELECT concat_ws(chr(9), {}) FROM public.{table}",
        fields.join(", ")
    );
    let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    for line in lines {
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    Ok((columns, data))
}

/// Loads every table's `COPY` text into `schema` in one transaction; returns the time.
async fn copy_into(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[(&str, Vec<String>, Vec<u8>)],
) -> Result<Duration> {
    let started = Instant::now();
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    for (table, columns, data) in tables {
        let sql = format!("COPY {schema}.{table} ({}) FROM STDIN", columns.join(", "));
        let mut copy = tx.copy_in_raw(&sql).await.map_err(|e| e.to_string())?;
        copy.send(data.as_slice())
            .await
            .map_err(|e| e.to_string())?;
        copy.finish().await.map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// Copies the rows the ingester stored in `url` into plain tables (`LIKE`: the columns
/// only) and into tables with its keys and indexes (`LIKE ... INCLUDING ALL`).
async fn copy_ceiling(url: &str) -> Result<CopyRun> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let mut tables = Vec::new();
    let mut rows = 0;
    for table in TABLES {
        let (columns, data) = copy_text(&mut conn, table).await?;
        rows += data.iter().filter(|b| **b == b'\n').count() as u64;
        tables.push((table, columns, data));
    }
    let mut ddl = vec![
        "CREATE SCHEMA ceiling_plain".to_string(),
        "CREATE SCHEMA ceiling_indexed".to_string(),
    ];
    for table in TABLES {
        ddl.push(format!(
            "CREATE TABLE ceiling_plain.{table} (LIKE public.{table})"
        ));
        ddl.push(format!(
            "CREATE TABLE ceiling_indexed.{table} (LIKE public.{table} INCLUDING ALL)"
        ));
    }
    for stmt in ddl {
        sqlx::query(AssertSqlSafe(stmt))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    let plain = copy_into(&mut conn, "ceiling_plain", &tables).await?;
    let indexed = copy_into(&mut conn, "ceiling_indexed", &tables).await?;
    Ok(CopyRun {
        rows,
        plain,
        indexed,
    })
}

/// Peak resident set size (VmHWM) of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `--child-ingest SPOOL URL OBJECTS`: ingests the spool and prints one JSON line (time,
/// peak RSS before and after the ingest).
async fn child_ingest(spool: &Path, url: &str, objects: usize) -> Result<()> {
    let before = vm_hwm_kib();
    let run = ingest(spool, url, objects).await?;
    let line = json!({
        "objects": run.objects, "rows": run.rows, "rounds": run.rounds,
        "secs": run.elapsed.as_secs_f64(), "vm_hwm_kib_before": before,
        "vm_hwm_kib": vm_hwm_kib(),
    });
    println!("{line}");
    Ok(())
}

/// The large-spool run in a child process (its peak RSS is the ingester's alone, not the
/// generator's).
#[derive(Debug, Clone)]
struct MemoryRun {
    spool_bytes: u64,
    files: usize,
    objects: usize,
    elapsed: Duration,
    vm_hwm_kib_before: u64,
    vm_hwm_kib: u64,
}

async fn peak_memory(
    pg: &PgServer,
    spool_bytes: u64,
    objects_per_file: usize,
) -> Result<MemoryRun> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spool = dir.path().join("spool");
    eprintln!(
        "writing a {:.2} GiB spool...",
        spool_bytes as f64 / (1u64 << 30) as f64
    );
    let stats = generate::write_spool(&spool, SEED + 1, usize::MAX, objects_per_file, spool_bytes)
        .map_err(|e| e.to_string())?;
    let url = pg.create("big").await?;
    eprintln!(
        "ingesting {} files / {} objects in a child process...",
        stats.files, stats.objects
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe);
    child
        .arg("--child-ingest")
        .arg(&spool)
        .arg(&url)
        .arg(stats.objects.to_string())
        .stderr(std::process::Stdio::inherit());
    let output = tokio::task::spawn_blocking(move || child.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run the child: {e}"))?;
    if !output.status.success() {
        return Err(format!("the child failed: {}", output.status));
    }
    let report: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("child output: {e}"))?;
    let kib = |k: &str| report[k].as_u64().unwrap_or(0);
    Ok(MemoryRun {
        spool_bytes: stats.bytes,
        files: stats.files,
        objects: stats.objects,
        elapsed: Duration::from_secs_f64(report["secs"].as_f64().unwrap_or(0.0)),
        vm_hwm_kib_before: kib("vm_hwm_kib_before"),
        vm_hwm_kib: kib("vm_hwm_kib"),
    })
}

// ---- throwaway PostgreSQL databases --------------------------------------------------------

/// The `--pg` server: creates `kcidb_bench_<pid>_<suffix>` databases and drops them.
struct PgServer {
    admin_url: String,
    created: std::sync::Mutex<Vec<String>>,
}

impl PgServer {
    fn new(admin_url: &str) -> PgServer {
        PgServer {
            admin_url: admin_url.to_string(),
            created: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Creates a fresh database; returns its URL.
    async fn create(&self, suffix: &str) -> Result<String> {
        let name = format!("kcidb_bench_{}_{suffix}", std::process::id());
        let mut conn = PgConnection::connect(&self.admin_url)
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {}: {e}", self.admin_url))?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        if let Ok(mut created) = self.created.lock() {
            created.push(name.clone());
        }
        let mut url = url::Url::parse(&self.admin_url).map_err(|e| e.to_string())?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    /// Drops every database it created.
    async fn drop_all(&self) {
        let names = self
            .created
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let Ok(mut conn) = PgConnection::connect(&self.admin_url).await else {
            eprintln!("cannot reach PostgreSQL to drop {names:?}");
            return;
        };
        for name in names {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await {
                eprintln!("cannot drop {name}: {e}");
            }
        }
    }
}

// ---- the benchmark -----------------------------------------------------------------------

#[derive(Default)]
struct Report {
    files: usize,
    objects: usize,
    spool_bytes: u64,
    validate: Option<Duration>,
    postgres: Option<IngestRun>,
    sqlite: Option<IngestRun>,
    copy: Option<CopyRun>,
    memory: Option<MemoryRun>,
}

/// Writes a fresh copy of the benchmark spool (each ingest consumes its spool).
fn fresh_spool(root: &Path, name: &str, opts: &Options) -> Result<(PathBuf, generate::SpoolStats)> {
    let dir = root.join(name);
    let stats = generate::write_spool(&dir, SEED, opts.files, opts.objects_per_file, u64::MAX)
        .map_err(|e| e.to_string())?;
    Ok((dir, stats))
}

async fn bench(opts: &Options) -> Result<()> {
    let pg = opts.pg.as_deref().map(PgServer::new);
    let result = measure(opts, pg.as_ref()).await;
    if let Some(pg) = &pg {
        pg.drop_all().await;
    }
    let report = result?;
    if opts.json {
        println!("{}", report_json(&report));
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn measure(opts: &Options, pg: Option<&PgServer>) -> Result<Report> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (spool, stats) = fresh_spool(tmp.path(), "validate", opts)?;
    let mut report = Report {
        files: stats.files,
        objects: stats.objects,
        spool_bytes: stats.bytes,
        ..Report::default()
    };
    let (objects, took) = read_and_validate(&spool)?;
    if objects != stats.objects {
        return Err(format!("{objects} objects read, {} written", stats.objects));
    }
    report.validate = Some(took);
    if let Some(pg) = pg {
        let (spool, _) = fresh_spool(tmp.path(), "postgres", opts)?;
        let url = pg.create("ingest").await?;
        eprintln!("PostgreSQL ingest of {} objects...", stats.objects);
        report.postgres = Some(ingest(&spool, &url, stats.objects).await?);
        eprintln!("COPY ceiling...");
        report.copy = Some(copy_ceiling(&url).await?);
    }
    if opts.sqlite {
        let (spool, _) = fresh_spool(tmp.path(), "sqlite", opts)?;
        let url = format!("sqlite://{}", tmp.path().join("kcidb.db").display());
        eprintln!("SQLite ingest of {} objects...", stats.objects);
        report.sqlite = Some(ingest(&spool, &url, stats.objects).await?);
    }
    if let Some(pg) = pg
        && opts.spool_gib > 0.0
    {
        let bytes = (opts.spool_gib * (1u64 << 30) as f64) as u64;
        report.memory = Some(peak_memory(pg, bytes, opts.objects_per_file).await?);
    }
    Ok(report)
}

// ---- output ------------------------------------------------------------------------------

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report_json(r: &Report) -> Value {
    let ingest = |run: &Option<IngestRun>| {
        run.map(|i| {
            json!({"objects": i.objects, "rows": i.rows, "rounds": i.rounds,
                   "secs": i.elapsed.as_secs_f64(), "objects_per_s": i.per_s(),
                   "vs_upstream": i.per_s() / UPSTREAM_OBJECTS_PER_S})
        })
    };
    let copy = r.copy.map(|c| {
        let ingest_per_s = r.postgres.map_or(0.0, |p| p.per_s());
        let plain = per_s(c.rows as f64, c.plain);
        let indexed = per_s(c.rows as f64, c.indexed);
        json!({"rows": c.rows,
               "plain": {"secs": c.plain.as_secs_f64(), "objects_per_s": plain,
                         "ingest_ratio": ingest_per_s / plain},
               "indexed": {"secs": c.indexed.as_secs_f64(), "objects_per_s": indexed,
                           "ingest_ratio": ingest_per_s / indexed}})
    });
    let memory = r.memory.as_ref().map(|m| {
        json!({"spool_bytes": m.spool_bytes, "files": m.files, "objects": m.objects,
               "secs": m.elapsed.as_secs_f64(),
               "objects_per_s": per_s(m.objects as f64, m.elapsed),
               "peak_rss_mib": mib(m.vm_hwm_kib),
               "rss_mib_before_ingest": mib(m.vm_hwm_kib_before)})
    });
    json!({
        "files": r.files, "objects": r.objects, "spool_bytes": r.spool_bytes,
        "upstream_objects_per_s": UPSTREAM_OBJECTS_PER_S,
        "read_validate": r.validate.map(|d| json!({"secs": d.as_secs_f64(),
                                                   "objects_per_s": per_s(r.objects as f64, d)})),
        "postgres": ingest(&r.postgres), "sqlite": ingest(&r.sqlite),
        "copy": copy, "memory": memory,
    })
}

fn row(label: &str, objects: f64, d: Duration, note: &str) {
    println!(
        "| {label:<46} | {:>8.2} s | {:>12.0} | {note}",
        d.as_secs_f64(),
        per_s(objects, d)
    );
}

fn print_table(r: &Report) {
    println!(
        "spool: {} files x {} objects = {} objects, {:.1} MiB",
        r.files,
        r.objects / r.files.max(1),
        r.objects,
        r.spool_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "| {:<46} | {:>10} | {:>12} | note",
        "measure", "time", "objects/s"
    );
    println!("|{:-<48}|{:-<12}|{:-<14}|------", "", "", "");
    let n = r.objects as f64;
    if let Some(d) = r.validate {
        row("read + validate the spool (no database)", n, d, "CPU share");
    }
    let upstream = |i: &IngestRun| {
        format!(
            "{:.1}x upstream's 3,400/s",
            i.per_s() / UPSTREAM_OBJECTS_PER_S
        )
    };
    if let Some(i) = &r.postgres {
        row(
            "ingest, spool -> committed rows, PostgreSQL",
            n,
            i.elapsed,
            &format!("{}, {} batches", upstream(i), i.rounds),
        );
    }
    if let (Some(c), Some(i)) = (&r.copy, &r.postgres) {
        let ratio = |d: Duration| i.per_s() / per_s(c.rows as f64, d);
        row(
            "COPY FROM STDIN, same rows, plain tables",
            c.rows as f64,
            c.plain,
            &format!("ingest = {:.2} of it (the ceiling)", ratio(c.plain)),
        );
        row(
            "COPY FROM STDIN, same rows, same keys+indexes",
            c.rows as f64,
            c.indexed,
            &format!("ingest = {:.2} of it", ratio(c.indexed)),
        );
    }
    if let Some(i) = &r.sqlite {
        row(
            "ingest, spool -> committed rows, SQLite",
            n,
            i.elapsed,
            &format!("{}, {} batches", upstream(i), i.rounds),
        );
    }
    if let Some(m) = &r.memory {
        row(
            &format!(
                "ingest {:.2} GiB spool ({} files), PostgreSQL",
                m.spool_bytes as f64 / (1u64 << 30) as f64,
                m.files
            ),
            m.objects as f64,
            m.elapsed,
            &format!(
                "peak RSS {:.0} MiB ({:.0} MiB before ingest)",
                mib(m.vm_hwm_kib),
                mib(m.vm_hwm_kib_before)
            ),
        );
    }
}
