//! `kernelci admin backup DEST` / `kernelci admin restore SRC`: consistent copies of the
//! databases (SQLite `VACUUM INTO` while the server runs, or `pg_dump`/`pg_restore`) with a
//! `backup.json` manifest of per-table row counts that a restore is checked against.
//!
//! Only databases are copied. Artifacts, the KCIDB spool, `admin.token`, `kcidb.secret` and
//! `mail/` are plain files in the data directory: copy them separately (rsync).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
// Table names come from the catalog and are quoted with quote_ident.
use sqlx::{AssertSqlSafe, Connection, Row, SqlitePool};

use crate::options::StoreOptions;

/// The database files of the embedded (SQLite) setup, relative to the data directory.
pub const SQLITE_FILES: [&str; 2] = ["kernelci.db", "kcidb.db"];
/// The dump file of a PostgreSQL backup.
pub const PG_DUMP_FILE: &str = "kernelci.pgdump";
/// The manifest written last into every backup.
pub const MANIFEST: &str = "backup.json";
/// Version of the manifest format.
pub const FORMAT: u64 = 1;

/// What a backup leaves out: files of the data directory, to be copied with rsync.
const NOT_COPIED: [&str; 5] = [
    "artifacts/",
    "kcidb-spool/",
    "admin.token",
    "kcidb.secret",
    "mail/",
];

/// `admin backup DEST`.
#[derive(Args)]
pub struct BackupArgs {
    /// Backup directory: must not exist or be empty.
    pub dest: PathBuf,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `admin restore SRC`.
#[derive(Args)]
pub struct RestoreArgs {
    /// Backup directory written by `admin backup`.
    pub src: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Row counts by table.
type Counts = BTreeMap<String, i64>;

/// Back up the databases of `opts` into `args.dest`.
pub async fn backup(opts: &StoreOptions, args: &BackupArgs) -> Result<()> {
    let created = !args.dest.exists();
    prepare_dest(&args.dest)?;
    let result = copy_databases(opts, args).await;
    if result.is_err() && created {
        // Leave no half-written backup behind (a backup without backup.json is refused anyway).
        let _ = std::fs::remove_dir_all(&args.dest);
    }
    let (backend, source, databases) = result?;
    let manifest = json!({
        "format": FORMAT,
        "created": kernelci_model::time::format_aware(&kernelci_model::time::now()),
        "kernelci_version": env!("CARGO_PKG_VERSION"),
        "backend": backend,
        "source": source,
        "databases": databases,
        "not_copied": NOT_COPIED,
    });
    let path = args.dest.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&manifest)?);
    } else {
        for (file, counts) in databases {
            println!(
                "backed up {file}: {} rows in {} tables",
                counts.values().sum::<i64>(),
                counts.len()
            );
        }
        println!("wrote {}", args.dest.display());
        println!(
            "not copied (files, copy them separately, e.g. with rsync): {}",
            NOT_COPIED.join(", ")
        );
    }
    Ok(())
}

/// The database part of a backup: (backend, source, per-database row counts).
async fn copy_databases(
    opts: &StoreOptions,
    args: &BackupArgs,
) -> Result<(&'static str, String, BTreeMap<String, Counts>)> {
    Ok(match &opts.database_url {
        Some(url) => ("postgres", redact(url), backup_pg(url, &args.dest).await?),
        None => (
            "sqlite",
            std::path::absolute(&opts.data_dir)
                .unwrap_or_else(|_| opts.data_dir.clone())
                .display()
                .to_string(),
            backup_sqlite(&opts.data_dir, &args.dest).await?,
        ),
    })
}

/// Restore the backup in `args.src` into the (empty) databases of `opts`.
pub async fn restore(opts: &StoreOptions, args: &RestoreArgs) -> Result<()> {
    let path = args.src.join(MANIFEST);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a backup made by `kernelci admin backup`?)",
            path.display(),
            args.src.display()
        )
    })?;
    let manifest: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if manifest["format"].as_u64() != Some(FORMAT) {
        bail!(
            "{} has format {}, this kernelci reads format {FORMAT}",
            path.display(),
            manifest["format"]
        );
    }
    let databases: BTreeMap<String, Counts> = serde_json::from_value(manifest["databases"].clone())
        .with_context(|| format!("{}: bad \"databases\"", path.display()))?;
    let backend = manifest["backend"].as_str().unwrap_or_default();
    match (backend, &opts.database_url) {
        ("sqlite", None) => restore_sqlite(&args.src, &opts.data_dir, &databases).await?,
        ("postgres", Some(url)) => restore_pg(&args.src, url, &databases).await?,
        ("sqlite", Some(_)) => bail!(
            "{} is a SQLite backup: restore it without --database-url (into --data-dir)",
            args.src.display()
        ),
        ("postgres", None) => bail!(
            "{} is a PostgreSQL backup: restore it with --database-url",
            args.src.display()
        ),
        (other, _) => bail!("{}: unknown backend {other:?}", path.display()),
    }
    let target = match &opts.database_url {
        Some(url) => redact(url),
        None => opts.data_dir.display().to_string(),
    };
    if args.json {
        println!(
            "{}",
            json!({"restored": target, "from": args.src, "databases": databases})
        );
    } else {
        for (file, counts) in &databases {
            println!(
                "restored {file}: {} rows in {} tables, counts checked",
                counts.values().sum::<i64>(),
                counts.len()
            );
        }
        println!("restored into {target}");
        println!(
            "not restored (files, copy them separately, e.g. with rsync): {}",
            NOT_COPIED.join(", ")
        );
    }
    Ok(())
}

/// DEST must not exist or be an empty directory; it is created.
fn prepare_dest(dest: &Path) -> Result<()> {
    if dest.exists() {
        if !dest.is_dir() {
            bail!("{} exists and is not a directory", dest.display());
        }
        let mut entries =
            std::fs::read_dir(dest).with_context(|| format!("cannot read {}", dest.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: back up into a new or empty directory",
                dest.display()
            );
        }
    }
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))
}

/// The URL without its password, for the manifest and messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable database URL)".to_string(),
    }
}

// ---- SQLite ----

async fn backup_sqlite(data_dir: &Path, dest: &Path) -> Result<BTreeMap<String, Counts>> {
    let mut out = BTreeMap::new();
    for file in SQLITE_FILES {
        let src = data_dir.join(file);
        if !src.is_file() {
            continue;
        }
        let target = dest.join(file);
        let target_str = target
            .to_str()
            .with_context(|| format!("{} is not UTF-8", target.display()))?;
        // Read-write (a read-only connection cannot join a WAL database whose -shm it may
        // not write), never created, waiting for the running server's locks.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&src)
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(30)),
            )
            .await
            .with_context(|| format!("cannot open {}", src.display()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target_str)
            .execute(&pool)
            .await
            .with_context(|| format!("VACUUM INTO {} failed", target.display()))?;
        pool.close().await;
        out.insert(file.to_string(), sqlite_counts(&target).await?);
    }
    if out.is_empty() {
        bail!(
            "no database in {} (expected {}); is this the data directory of `kernelci up`?",
            data_dir.display(),
            SQLITE_FILES.join(" or ")
        );
    }
    Ok(out)
}

async fn restore_sqlite(
    src: &Path,
    data_dir: &Path,
    databases: &BTreeMap<String, Counts>,
) -> Result<()> {
    // Check everything before copying anything.
    let mut present = Vec::new();
    for file in databases.keys() {
        if !SQLITE_FILES.contains(&file.as_str()) {
            bail!("the manifest names an unknown database file {file:?}");
        }
        let from = src.join(file);
        if !from.is_file() {
            bail!("{} is missing from the backup", from.display());
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let target = data_dir.join(format!("{file}{suffix}"));
            if target.exists() {
                present.push(target.display().to_string());
            }
        }
    }
    if !present.is_empty() {
        bail!(
            "refusing to overwrite {}: stop the server and move the old files away first",
            present.join(", ")
        );
    }
    crate::options::ensure_dir(data_dir)?;
    for file in databases.keys() {
        let tmp = data_dir.join(format!(".{file}.restoring"));
        std::fs::copy(src.join(file), &tmp)
            .with_context(|| format!("cannot copy {} to {}", file, tmp.display()))?;
        let target = data_dir.join(file);
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), target.display()))?;
    }
    for (file, expected) in databases {
        let got = sqlite_counts(&data_dir.join(file)).await?;
        compare(file, expected, &got)?;
    }
    Ok(())
}

/// Row counts of a SQLite file nobody writes to (opened immutable: no locks, no -wal/-shm).
async fn sqlite_counts(path: &Path) -> Result<Counts> {
    let pool: SqlitePool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .immutable(true),
        )
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .with_context(|| format!("cannot list the tables of {}", path.display()))?;
    let mut counts = Counts::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            quote_ident(&t)
        )))
        .fetch_one(&pool)
        .await
        .with_context(|| format!("cannot count {t} in {}", path.display()))?;
        counts.insert(t, n);
    }
    pool.close().await;
    Ok(counts)
}

// ---- PostgreSQL ----

async fn backup_pg(url: &str, dest: &Path) -> Result<BTreeMap<String, Counts>> {
    // Count in a transaction whose snapshot pg_dump shares, so the counts describe the dump.
    let mut conn = PgConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut conn)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await
        .context("cannot export a snapshot")?;
    let counts = pg_counts(&mut conn).await?;
    let file = dest.join(PG_DUMP_FILE);
    let out = Command::new("pg_dump")
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(&file)
        .arg(url)
        .output();
    let _ = sqlx::query("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
    check_tool("pg_dump", out)?;
    Ok(BTreeMap::from([(PG_DUMP_FILE.to_string(), counts)]))
}

async fn restore_pg(src: &Path, url: &str, databases: &BTreeMap<String, Counts>) -> Result<()> {
    let Some(expected) = databases.get(PG_DUMP_FILE) else {
        bail!("the manifest has no {PG_DUMP_FILE}");
    };
    let file = src.join(PG_DUMP_FILE);
    if !file.is_file() {
        bail!("{} is missing from the backup", file.display());
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    let existing = pg_tables(&pool).await?;
    if !existing.is_empty() {
        bail!(
            "refusing to restore into {}: it already has tables in schema public ({}); \
             restore into a new, empty database",
            redact(url),
            existing.join(", ")
        );
    }
    let out = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(url)
        .arg(&file)
        .output();
    check_tool("pg_restore", out)?;
    let mut conn = pool.acquire().await?;
    let got = pg_counts(&mut conn).await?;
    drop(conn);
    pool.close().await;
    compare(PG_DUMP_FILE, expected, &got)
}

async fn pg_tables<'e, E>(executor: E) -> Result<Vec<String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query_scalar(
        "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = 'public' \
         ORDER BY tablename",
    )
    .fetch_all(executor)
    .await
    .context("cannot list the tables of schema public")
}

async fn pg_counts(conn: &mut PgConnection) -> Result<Counts> {
    let tables = pg_tables(&mut *conn).await?;
    let mut counts = Counts::new();
    for t in tables {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT count(*) FROM public.{}",
            quote_ident(&t)
        )))
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("cannot count table {t}"))?;
        counts.insert(t, row.try_get::<i64, _>(0)?);
    }
    Ok(counts)
}

/// Turn a pg_dump/pg_restore run into a clear error.
fn check_tool(tool: &str, out: std::io::Result<std::process::Output>) -> Result<()> {
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{tool} not found: install the PostgreSQL client tools (a version at least that of \
             the server) and put them on PATH"
        ),
        Err(e) => bail!("cannot run {tool}: {e}"),
    };
    if !out.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

// ---- shared ----

/// A double-quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The restored counts must equal the manifest's, table by table.
fn compare(file: &str, expected: &Counts, got: &Counts) -> Result<()> {
    for (table, n) in expected {
        match got.get(table) {
            None => bail!("restored {file} has no table {table} (the backup has {n} rows)"),
            Some(m) if m != n => {
                bail!("restored {file}: table {table} has {m} rows, the backup has {n}")
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = got.keys().find(|t| !expected.contains_key(*t)) {
        bail!("restored {file} has table {extra}, which the backup does not list");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_the_table() {
        let a = Counts::from([("nodes".to_string(), 3)]);
        let b = Counts::from([("nodes".to_string(), 2)]);
        let e = compare("kernelci.db", &a, &b).unwrap_err().to_string();
        assert!(e.contains("nodes"), "{e}");
        assert!(compare("kernelci.db", &a, &a).is_ok());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
