//! `kernelci admin import-kcidb`: an upstream KCIDB PostgreSQL database (schema 5.x, read
//! directly) or KCIDB JSON submission files (any I/O version) into our KCIDB database.
//!
//! Everything goes through [`KcidbDb::load`], the ingester's merge path: objects already
//! stored identically are not rewritten, so a re-run writes nothing (`written` is 0).
//!
//! * `--from-postgres URL`: each table (checkouts, builds, tests, issues, incidents) read in
//!   keyset pages (`ORDER BY id`, issues by `(id, version)`) as `row_to_json`, the
//!   flattened columns folded back (`environment_*`, `number_*`, `culprit_*`), `NULL`s and
//!   `_timestamp` dropped, validated as v5.3 and loaded, one transaction per page. After
//!   each page the last key is kept in the key/value store (namespace `import-kcidb`), so
//!   an interrupted run continues where it stopped (`--restart` ignores that); a complete
//!   run clears it. A row that is not a valid v5.3 object is counted `invalid` and listed.
//! * `FILE...` (`-` for stdin): each submission checked whole first (nothing of a rejected
//!   file is loaded: the error lists its problems), then streamed with
//!   [`kernelci_kcidb::stream`] in transactions of `--batch` objects. Ids seen are kept in
//!   memory for the final check.
//!
//! At the end, for each table: the source's objects (distinct keys), how many of them are
//! present in our database, and how many rows this run wrote. Any source object missing
//! makes the command exit 1.

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read, Seek};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use clap::Args;
use kernelci_kcidb::Submission;
use kernelci_kcidb::db::{Counts, KcidbDb};
use kernelci_kcidb::stream::{self, StreamError, StreamOptions};
use kernelci_store::Store;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
// Table and column names below come from the fixed TABLES list, never from input.
use sqlx::{AssertSqlSafe, Row};

use super::Progress;
use crate::options::StoreOptions;

/// The tables, in load order.
pub const TABLES: [&str; 5] = ["checkouts", "builds", "tests", "issues", "incidents"];
/// Key/value namespace of the checkpoints.
const CHECKPOINTS: &str = "import-kcidb";
/// Keys per presence lookup.
const LOOKUP: usize = 500;
/// Problems listed in full.
const MAX_LISTED: usize = 50;

/// `admin import-kcidb`.
#[derive(Args, Debug)]
pub struct ImportKcidbArgs {
    /// KCIDB JSON submission files (`-` for stdin), any I/O schema version.
    pub files: Vec<PathBuf>,
    /// Read this upstream KCIDB PostgreSQL database (schema 5.x) instead of files.
    #[arg(long, value_name = "URL", conflicts_with = "files")]
    pub from_postgres: Option<String>,
    /// Objects per transaction (rows per page).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
    /// Ignore the checkpoints of an interrupted `--from-postgres` run and start over.
    #[arg(long)]
    pub restart: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One table's counts.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct TableCounts {
    /// Distinct objects in the source.
    pub source: u64,
    /// How many of them are in our database now.
    pub present: u64,
    /// Rows this run wrote (new or changed).
    pub written: u64,
    /// Source objects that are not valid v5.3 (PostgreSQL source only).
    pub invalid: u64,
}

/// A table's key: id, and the version for issues.
type Key = (String, Option<i64>);

/// Our KCIDB database, for the presence check.
enum Target {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Target {
    async fn open(url: &str) -> Result<Target> {
        Ok(if url.starts_with("sqlite:") {
            Target::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(SqliteConnectOptions::from_str(url)?)
                    .await?,
            )
        } else {
            Target::Postgres(PgPoolOptions::new().max_connections(1).connect(url).await?)
        })
    }

    /// How many of `keys` (all of `table`) are stored.
    async fn present(&self, table: &str, keys: &[Key]) -> Result<u64> {
        let mut found = 0;
        for chunk in keys.chunks(LOOKUP) {
            let marks: Vec<String> = (1..=chunk.len())
                .map(|i| match self {
                    Target::Sqlite(_) => "?".to_string(),
                    Target::Postgres(_) => format!("${i}"),
                })
                .collect();
            let sql = format!(
                "SELECT id, {} FROM {table} WHERE id IN ({})",
                if table == "issues" {
                    "CAST(version AS BIGINT)"
                } else {
                    "CAST(NULL AS BIGINT)"
                },
                marks.join(", ")
            );
            let stored: HashSet<Key> = match self {
                Target::Sqlite(pool) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, _) in chunk {
                        q = q.bind(id);
                    }
                    let rows = q.fetch_all(pool).await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                        .collect::<Result<_, sqlx::Error>>()?
                }
                Target::Postgres(pool) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, _) in chunk {
                        q = q.bind(id);
                    }
                    let rows = q.fetch_all(pool).await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                        .collect::<Result<_, sqlx::Error>>()?
                }
            };
            found += chunk.iter().filter(|k| stored.contains(*k)).count() as u64;
        }
        Ok(found)
    }
}

/// Run `admin import-kcidb`.
pub async fn run(opts: &StoreOptions, store: &dyn Store, args: ImportKcidbArgs) -> Result<()> {
    let url = match &opts.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", opts.data_dir.join("kcidb.db").display()),
    };
    let db = KcidbDb::open(&url)
        .await
        .context("cannot open our KCIDB database")?;
    let target = Target::open(&url)
        .await
        .context("cannot open our KCIDB database")?;
    let mut problems = Vec::new();
    let (source, tables) = match &args.from_postgres {
        Some(src) => {
            let tables = from_postgres(src, &args, &db, &target, store, &mut problems).await?;
            (kernelci_store::redact(src), tables)
        }
        None => {
            if args.files.is_empty() {
                bail!("nothing to import: give KCIDB JSON files or --from-postgres URL");
            }
            let tables = from_files(&args, &db, &target).await?;
            let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
            (names.join(" "), tables)
        }
    };
    let listed = problems.len().min(MAX_LISTED);
    for p in &problems[..listed] {
        eprintln!("{p}");
    }
    if problems.len() > listed {
        eprintln!("... and {} more invalid rows", problems.len() - listed);
    }
    let ok = tables.values().all(|t| t.present == t.source);
    if args.json {
        println!("{}", json!({"source": source, "tables": tables, "ok": ok}));
    } else {
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>8}",
            "table", "source", "present", "written", "invalid"
        );
        for (name, t) in &tables {
            println!(
                "{name:<10} {:>10} {:>10} {:>10} {:>8}",
                t.source, t.present, t.written, t.invalid
            );
        }
    }
    if !ok {
        bail!("counts differ: some source objects are not in our database (see above)");
    }
    Ok(())
}

/// Rows written per table, from a load's [`Counts`].
fn written(counts: &Counts, table: &str) -> u64 {
    match table {
        "checkouts" => counts.checkouts,
        "builds" => counts.builds,
        "tests" => counts.tests,
        "issues" => counts.issues,
        _ => counts.incidents,
    }
}

/// A `row_to_json` row of upstream's table as a v5.3 I/O object: flattened columns nested
/// again, `NULL`s and `_timestamp` dropped.
pub fn row_object(table: &str, row: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (column, value) in row {
        if value.is_null() || column == "_timestamp" {
            continue;
        }
        let nested = match (table, column.split_once('_')) {
            ("tests", Some((outer @ ("environment" | "number"), inner))) => Some((outer, inner)),
            ("issues", Some((outer @ "culprit", inner))) => Some((outer, inner)),
            _ => None,
        };
        match nested {
            Some((outer, inner)) => {
                if let Value::Object(m) = out
                    .entry(outer)
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    m.insert(inner.to_string(), value);
                }
            }
            None => {
                out.insert(column, value);
            }
        }
    }
    out
}

/// The key of a (v5.3 or row) object.
fn key_of(table: &str, obj: &Map<String, Value>) -> Option<Key> {
    let id = obj.get("id")?.as_str()?.to_string();
    let version = if table == "issues" {
        Some(obj.get("version")?.as_i64()?)
    } else {
        None
    };
    Some((id, version))
}

/// A one-table v5.3 submission.
fn submission(table: &str, objects: Vec<Value>) -> Result<Submission, kernelci_kcidb::Rejection> {
    Submission::from_value(json!({"version": {"major": 5, "minor": 3}, table: objects}))
}

fn checkpoint_key(source: &str, table: &str) -> String {
    format!("{}#{table}", kernelci_store::redact(source))
}

async fn from_postgres(
    src: &str,
    args: &ImportKcidbArgs,
    db: &KcidbDb,
    target: &Target,
    store: &dyn Store,
    problems: &mut Vec<String>,
) -> Result<BTreeMap<String, TableCounts>> {
    let redacted = kernelci_store::redact(src);
    let options = PgConnectOptions::from_str(src)
        .with_context(|| format!("bad source URL {redacted}"))?
        .options([("TimeZone", "UTC")]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to {redacted}"))?;
    let version: i32 = sqlx::query_scalar("SELECT get_version()")
        .fetch_one(&pool)
        .await
        .with_context(|| {
            format!("{redacted} is not an initialized KCIDB database (get_version())")
        })?;
    if !(5000..6000).contains(&version) {
        bail!(
            "{redacted} has KCIDB schema {}.{}; only 5.x can be imported",
            version / 1000,
            version % 1000
        );
    }
    let mut tables = BTreeMap::new();
    for table in TABLES {
        let mut counts = TableCounts::default();
        let ck = checkpoint_key(src, table);
        let mut after: Option<Key> = if args.restart {
            None
        } else {
            match store.kv_get(CHECKPOINTS, &ck).await? {
                Some(text) => Some(serde_json::from_str(&text).with_context(|| {
                    format!("unreadable checkpoint {ck:?} (run with --restart)")
                })?),
                None => None,
            }
        };
        if let Some((id, _)) = &after {
            eprintln!("{table}: continuing after {id:?}");
        }
        let mut progress = Progress::new(&format!("{table} rows"));
        loop {
            let rows = page(
                &pool,
                table,
                after.as_ref(),
                args.batch,
                "row_to_json(t)::text",
            )
            .await?;
            let Some(last) = rows.last() else { break };
            let last: Map<String, Value> = serde_json::from_str(&last.0)?;
            let last_key = key_of(table, &last).context("a row without its key")?;
            let mut objects = Vec::with_capacity(rows.len());
            for (text, _) in &rows {
                let row: Map<String, Value> = serde_json::from_str(text)?;
                objects.push(Value::Object(row_object(table, row)));
            }
            let n = objects.len() as u64;
            let sub = match submission(table, objects.clone()) {
                Ok(sub) => sub,
                Err(_) => {
                    // Keep the valid ones, list the others.
                    let mut good = Vec::new();
                    for obj in objects {
                        let id = obj.get("id").cloned().unwrap_or(Value::Null);
                        match submission(table, vec![obj.clone()]) {
                            Ok(_) => good.push(obj),
                            Err(e) => {
                                counts.invalid += 1;
                                problems.push(format!("invalid: {table} {id}: {e}"));
                            }
                        }
                    }
                    submission(table, good).map_err(|e| anyhow::anyhow!("{table}: {e}"))?
                }
            };
            let done = db
                .load(sub)
                .await
                .with_context(|| format!("loading {table}"))?;
            counts.written += written(&done, table);
            store
                .kv_set(CHECKPOINTS, &ck, &serde_json::to_string(&last_key)?)
                .await?;
            after = Some(last_key);
            progress.add(n);
        }
        progress.finish();
        tables.insert(table.to_string(), counts);
    }
    // The check: every source key, present or not.
    for table in TABLES {
        let mut progress = Progress::new(&format!("{table} rows checked"));
        let counts = tables.entry(table.to_string()).or_default();
        let mut after: Option<Key> = None;
        loop {
            let keys: Vec<Key> = page(&pool, table, after.as_ref(), 5000, "NULL::text")
                .await?
                .into_iter()
                .map(|(_, k)| k)
                .collect();
            let Some(last) = keys.last().cloned() else {
                break;
            };
            counts.source += keys.len() as u64;
            counts.present += target.present(table, &keys).await?;
            progress.add(keys.len() as u64);
            after = Some(last);
        }
        progress.finish();
    }
    for table in TABLES {
        store
            .kv_delete(CHECKPOINTS, &checkpoint_key(src, table))
            .await?;
    }
    Ok(tables)
}

/// One keyset page of `table` after `after`: `(what, key)` per row.
async fn page(
    pool: &PgPool,
    table: &str,
    after: Option<&Key>,
    limit: u64,
    what: &str,
) -> Result<Vec<(String, Key)>> {
    let issues = table == "issues";
    let (cols, cond) = match (issues, after) {
        (true, Some(_)) => ("id, version", "WHERE (id, version) > ($1, $2)"),
        (true, None) => ("id, version", ""),
        (false, Some(_)) => ("id", "WHERE id > $1"),
        (false, None) => ("id", ""),
    };
    let version = if issues {
        "CAST(version AS BIGINT)"
    } else {
        "CAST(NULL AS BIGINT)"
    };
    let sql = format!(
        "SELECT COALESCE({what}, ''), id, {version} FROM {table} t {cond} ORDER BY {cols} LIMIT {limit}"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let Some((id, v)) = after {
        q = q.bind(id.clone());
        if issues {
            q = q.bind(v.unwrap_or(0) as i32);
        }
    }
    let rows = q
        .fetch_all(pool)
        .await
        .with_context(|| format!("reading {table}"))?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Something to stream a submission from.
trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

async fn from_files(
    args: &ImportKcidbArgs,
    db: &KcidbDb,
    target: &Target,
) -> Result<BTreeMap<String, TableCounts>> {
    let mut keys: BTreeMap<&'static str, HashSet<Key>> =
        TABLES.iter().map(|t| (*t, HashSet::new())).collect();
    let mut tables: BTreeMap<String, TableCounts> = TABLES
        .iter()
        .map(|t| (t.to_string(), TableCounts::default()))
        .collect();
    let handle = tokio::runtime::Handle::current();
    for path in &args.files {
        let name = path.display().to_string();
        let mut reader: Box<dyn Source> = if name == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read stdin")?;
            Box::new(Cursor::new(bytes))
        } else {
            Box::new(std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?)
        };
        let db = db.clone();
        let handle = handle.clone();
        let batch = args.batch as usize;
        let mut file_keys = std::mem::take(&mut keys);
        let result = tokio::task::spawn_blocking(move || -> Result<_> {
            let opts = StreamOptions::default();
            // Whole-document verdict first: nothing of a rejected file is loaded.
            match stream::read_objects(&mut reader, &opts, |_, _| {
                Ok::<(), std::convert::Infallible>(())
            }) {
                Ok(_) => {}
                Err(StreamError::Rejected(r)) => bail!("{name}: rejected: {r}"),
                Err(e) => bail!("{name}: {e}"),
            }
            reader.rewind()?;
            let mut written = Counts::default();
            let mut progress = Progress::new(&format!("objects of {name}"));
            let loaded = stream::read_chunks(&mut reader, &opts, batch, |sub: Submission| {
                for c in &sub.checkouts {
                    file_keys
                        .entry("checkouts")
                        .or_default()
                        .insert((c.id.clone(), None));
                }
                for b in &sub.builds {
                    file_keys
                        .entry("builds")
                        .or_default()
                        .insert((b.id.clone(), None));
                }
                for t in &sub.tests {
                    file_keys
                        .entry("tests")
                        .or_default()
                        .insert((t.id.clone(), None));
                }
                for i in &sub.issues {
                    file_keys
                        .entry("issues")
                        .or_default()
                        .insert((i.id.clone(), Some(i64::from(i.version))));
                }
                for i in &sub.incidents {
                    file_keys
                        .entry("incidents")
                        .or_default()
                        .insert((i.id.clone(), None));
                }
                let n = sub.object_count() as u64;
                let done = handle.block_on(db.load(sub))?;
                written.checkouts += done.checkouts;
                written.builds += done.builds;
                written.tests += done.tests;
                written.issues += done.issues;
                written.incidents += done.incidents;
                progress.add(n);
                Ok::<(), kernelci_kcidb::db::DbError>(())
            });
            progress.finish();
            match loaded {
                Ok(_) => Ok((file_keys, written)),
                Err(StreamError::Stopped(e)) => {
                    Err(anyhow::Error::from(e).context(format!("{name}: loading")))
                }
                Err(e) => bail!("{name}: {e}"),
            }
        })
        .await
        .context("the import thread failed")??;
        keys = result.0;
        for table in TABLES {
            if let Some(t) = tables.get_mut(table) {
                t.written += written(&result.1, table);
            }
        }
    }
    for (table, set) in keys {
        let list: Vec<Key> = set.into_iter().collect();
        if let Some(t) = tables.get_mut(table) {
            t.source = list.len() as u64;
            t.present = target.present(table, &list).await?;
        }
    }
    Ok(tables)
}
