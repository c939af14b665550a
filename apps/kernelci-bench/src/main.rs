//! `kernelci-bench`: benchmarks the real `kernelci` server binary as a child process.
//!
//! Per backend (SQLite, and PostgreSQL with `--pg URL`):
//! 1. start-up time (spawn to "listening on") and idle RSS on a fresh database;
//! 2. node creates per second through `POST /latest/node` with concurrency;
//! 3. publish-to-listen latency with many long-polling listeners, and the RSS meanwhile;
//! 4. `/nodes` and `/nodes/fast` latency over a database bulk-loaded with many nodes.
//!
//! Prints a table (stdout; stderr with `--json`, which prints a JSON object on stdout).

mod http;
mod listen;
mod load;
mod report;
mod server;
mod stats;
mod synth;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use crate::http::Api;
use crate::load::{PgDb, Target};
use crate::report::{BackendResult, Load, Startup};
use crate::server::{Server, ServerSpec};

#[derive(Parser, Debug)]
#[command(
    name = "kernelci-bench",
    version,
    about = "Benchmark the kernelci server binary (start-up, RSS, creates, queries, pub/sub)"
)]
struct Cli {
    /// The server binary [default: $CARGO_TARGET_DIR or target, /release/kernelci if it
    /// exists, else /debug/kernelci].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Also benchmark PostgreSQL: a server URL whose user may CREATE DATABASE (a database
    /// `kci_bench_<random>` is created per phase and dropped afterwards).
    #[arg(long, value_name = "URL")]
    pg: Option<String>,
    /// Only PostgreSQL (needs --pg).
    #[arg(long, requires = "pg")]
    skip_sqlite: bool,
    /// Nodes created through POST /node [default: 5000; --quick 2000].
    #[arg(long, value_name = "N")]
    creates: Option<usize>,
    /// Concurrent create requests [default: 32].
    #[arg(long, value_name = "C")]
    concurrency: Option<usize>,
    /// Nodes bulk-loaded for the query benchmark [default: 1000000; --quick 50000].
    #[arg(long, value_name = "M")]
    nodes: Option<u64>,
    /// Queries timed per endpoint [default: 500; --quick 100].
    #[arg(long, value_name = "Q")]
    queries: Option<usize>,
    /// Time budget per endpoint and backend for the queries, in seconds: on a large store
    /// where every query scans, fewer than Q queries run (the count is reported).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    query_budget: u64,
    /// Listeners of the pub/sub benchmark [default: 100; --quick 20].
    #[arg(long, value_name = "L")]
    listeners: Option<usize>,
    /// Events published [default: 200; --quick 50].
    #[arg(long, value_name = "P")]
    events: Option<usize>,
    /// Milliseconds between two publishes.
    #[arg(long, default_value_t = 20)]
    event_interval_ms: u64,
    /// Small sizes for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Print the results as a JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Directory for the temporary data directories [default: the system temp dir].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Seed of the synthetic data [default: from the clock].
    #[arg(long)]
    seed: Option<u64>,
}

/// The sizes in effect.
#[derive(Debug, Clone)]
struct Config {
    binary: PathBuf,
    creates: usize,
    concurrency: usize,
    nodes: u64,
    queries: usize,
    query_budget: Duration,
    listeners: usize,
    events: usize,
    interval: Duration,
    work_dir: Option<PathBuf>,
    seed: u64,
    secret: String,
}

impl Config {
    fn from_cli(cli: &Cli) -> Result<Config> {
        let q = cli.quick;
        let seed = cli
            .seed
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
        Ok(Config {
            binary: server::resolve_binary(cli.server.as_deref())?,
            creates: cli.creates.unwrap_or(if q { 2000 } else { 5000 }),
            concurrency: cli.concurrency.unwrap_or(32).max(1),
            nodes: cli.nodes.unwrap_or(if q { 50_000 } else { 1_000_000 }),
            queries: cli.queries.unwrap_or(if q { 100 } else { 500 }),
            query_budget: Duration::from_secs(cli.query_budget),
            listeners: cli.listeners.unwrap_or(if q { 20 } else { 100 }),
            events: cli.events.unwrap_or(if q { 50 } else { 200 }),
            interval: Duration::from_millis(cli.event_interval_ms),
            work_dir: cli.work_dir.clone(),
            seed,
            secret: format!("kci-bench-{}", synth::Rng::new(seed).hex(32)),
        })
    }

    fn temp_dir(&self) -> Result<tempfile::TempDir> {
        let mut b = tempfile::Builder::new();
        b.prefix("kci-bench-");
        match &self.work_dir {
            Some(d) => b.tempdir_in(d),
            None => b.tempdir(),
        }
        .context("cannot create a temporary directory")
    }

    fn spec(&self, dir: &Path, database_url: Option<String>) -> ServerSpec {
        ServerSpec {
            binary: self.binary.clone(),
            data_dir: dir.to_path_buf(),
            database_url,
            secret: self.secret.clone(),
        }
    }
}

/// A backend to benchmark.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A fresh database for one phase: None for SQLite (a fresh data directory is enough).
    async fn fresh_db(&self) -> Result<Option<PgDb>> {
        match self {
            Backend::Sqlite => Ok(None),
            Backend::Postgres(base) => Ok(Some(PgDb::create(base).await?)),
        }
    }
}

/// Start a server and measure its start-up and idle RSS.
async fn start(spec: &ServerSpec) -> Result<(Server, Startup)> {
    let server = Server::start(spec).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let startup = Startup {
        ms: server.startup.as_secs_f64() * 1e3,
        reported_ms: server.reported_ms,
        idle_rss_kib: server.rss_kib()?,
    };
    Ok((server, startup))
}

/// Start-up, creates and pub/sub on a fresh database.
async fn live_phase(cfg: &Config, backend: &Backend, out: &mut BackendResult) -> Result<()> {
    let name = backend.name();
    let dir = cfg.temp_dir()?;
    let db = backend.fresh_db().await?;
    let run = async {
        let spec = cfg.spec(dir.path(), db.as_ref().map(|d| d.url.clone()));
        eprintln!("[{name}] starting the server on a fresh database");
        let (server, startup) = start(&spec).await?;
        out.fresh = Some(startup);
        let api = Api::new(&server.base, &server.token)?;
        eprintln!(
            "[{name}] creating {} nodes with concurrency {}",
            cfg.creates, cfg.concurrency
        );
        out.creates = Some(http::creates(&api, cfg.creates, cfg.concurrency, cfg.seed).await?);
        eprintln!(
            "[{name}] pub/sub: {} listeners, {} events",
            cfg.listeners, cfg.events
        );
        out.pubsub =
            Some(listen::pubsub(&api, server.pid, cfg.listeners, cfg.events, cfg.interval).await?);
        server.stop().await
    };
    let result = run.await;
    if let Some(db) = db
        && let Err(e) = db.drop_db().await
    {
        eprintln!("[{name}] warning: {e:#}");
    }
    result
}

/// Bulk load, then `/nodes` and `/nodes/fast` latency.
async fn query_phase(cfg: &Config, backend: &Backend, out: &mut BackendResult) -> Result<()> {
    let name = backend.name();
    let dir = cfg.temp_dir()?;
    let db = backend.fresh_db().await?;
    let run = async {
        let url = db.as_ref().map(|d| d.url.clone());
        let spec = cfg.spec(dir.path(), url.clone());
        eprintln!("[{name}] migrating a fresh database for the query benchmark");
        Server::start(&spec).await?.stop().await?;
        let target = match url {
            Some(u) => Target::Postgres(u),
            None => Target::Sqlite(load::sqlite_file(dir.path())),
        };
        let loaded = load::load(&target, cfg.nodes, cfg.seed, true).await?;
        out.load = Some(Load {
            nodes: loaded.nodes,
            elapsed: loaded.elapsed,
        });
        eprintln!(
            "[{name}] loaded {} nodes in {:.1} s; starting the server",
            loaded.nodes,
            loaded.elapsed.as_secs_f64()
        );
        let (server, startup) = start(&spec).await?;
        out.loaded = Some(startup);
        let api = Api::new(&server.base, &server.token)?;
        let qs = http::queries(&loaded.samples, cfg.queries, cfg.seed)?;
        eprintln!("[{name}] timing {} queries on /nodes", qs.len());
        out.nodes = Some(http::run_queries(&api, "/nodes", &qs, cfg.query_budget).await?);
        eprintln!("[{name}] timing {} queries on /nodes/fast", qs.len());
        out.fast = Some(http::run_queries(&api, "/nodes/fast", &qs, cfg.query_budget).await?);
        out.rss_after_queries_kib = Some(server.rss_kib()?);
        server.stop().await
    };
    let result = run.await;
    if let Some(db) = db
        && let Err(e) = db.drop_db().await
    {
        eprintln!("[{name}] warning: {e:#}");
    }
    result
}

async fn bench(cfg: &Config, backend: Backend) -> BackendResult {
    let mut out = BackendResult {
        name: backend.name(),
        ..BackendResult::default()
    };
    if let Err(e) = live_phase(cfg, &backend, &mut out).await {
        eprintln!("[{}] error: {e:#}", backend.name());
        out.errors.push(format!("{e:#}"));
    }
    if let Err(e) = query_phase(cfg, &backend, &mut out).await {
        eprintln!("[{}] error: {e:#}", backend.name());
        out.errors.push(format!("{e:#}"));
    }
    out
}

async fn run(cli: Cli) -> Result<bool> {
    let cfg = Config::from_cli(&cli)?;
    let mut backends = Vec::new();
    if !cli.skip_sqlite {
        backends.push(Backend::Sqlite);
    }
    if let Some(url) = &cli.pg {
        backends.push(Backend::Postgres(url.clone()));
    }
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    for b in backends {
        results.push(bench(&cfg, b).await);
    }
    let title = format!(
        "kernelci-bench: server {}, {} creates @ {}, {} nodes, {} queries (budget {} s), \
         {} listeners x {} events every {} ms ({:.0} s in all)",
        cfg.binary.display(),
        cfg.creates,
        cfg.concurrency,
        cfg.nodes,
        cfg.queries,
        cfg.query_budget.as_secs(),
        cfg.listeners,
        cfg.events,
        cfg.interval.as_millis(),
        started.elapsed().as_secs_f64()
    );
    let table = report::table(&title, &results);
    if cli.json {
        eprintln!("{table}");
        let backends: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|r| (r.name.to_string(), report::backend_json(r)))
            .collect();
        let v = json!({
            "server": cfg.binary.display().to_string(),
            "config": {
                "creates": cfg.creates, "concurrency": cfg.concurrency, "nodes": cfg.nodes,
                "queries": cfg.queries, "query_budget_s": cfg.query_budget.as_secs(),
                "listeners": cfg.listeners, "events": cfg.events,
                "event_interval_ms": cfg.interval.as_millis() as u64, "seed": cfg.seed,
            },
            "elapsed_s": stats::round3(started.elapsed().as_secs_f64()),
            "backends": backends,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("rendering JSON")?
        );
    } else {
        println!("{table}");
    }
    Ok(results.iter().all(|r| r.errors.is_empty()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
