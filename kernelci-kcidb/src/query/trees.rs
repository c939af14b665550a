//! Tree heads, a branch's commit history, the hardware listing and the origins, with
//! build/boot/test status counts computed by `GROUP BY` in the database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::sql::{Sql, fetch_all};
use super::{BOOT_CONDITION, CHUNK, QueryError, StatusCounts, checkouts_by_id, status_of};
use crate::Checkout;
use crate::db::{KcidbDb, TEST_ROLLUP};

/// The latest checkout of a tree/branch/repository with its status counts.
#[derive(Debug, Clone)]
pub struct TreeHead {
    /// The checkout (`timestamp` = `_timestamp`).
    pub checkout: Arc<Checkout>,
    /// Its builds per status.
    pub builds: StatusCounts,
    /// Its boots per status.
    pub boots: StatusCounts,
    /// Its other tests per status.
    pub tests: StatusCounts,
}

/// Build, boot and test counts of one checkout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckoutCounts {
    /// Builds per status.
    pub builds: StatusCounts,
    /// Boots per status.
    pub boots: StatusCounts,
    /// Other tests per status.
    pub tests: StatusCounts,
}

/// Status counts of these checkouts' builds, boots and tests, by checkout id.
pub async fn checkout_counts(
    db: &KcidbDb,
    ids: &[String],
) -> Result<HashMap<String, CheckoutCounts>, QueryError> {
    let mut out: HashMap<String, CheckoutCounts> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::new(db);
        sql.push("SELECT b.checkout_id, b.status, COUNT(*) FROM builds b WHERE b.checkout_id IN ")
            .list(chunk)
            .push(" GROUP BY b.checkout_id, b.status");
        for (id, status, n) in fetch_all!(db, sql, (String, Option<String>, i64)) {
            out.entry(id)
                .or_default()
                .builds
                .add(status_of(status.as_deref()), u64::try_from(n).unwrap_or(0));
        }
        // Tests from the roll-up the batch load keeps (a few rows per build).
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "SELECT b.checkout_id, r.kind, r.status, CAST(SUM(r.n) AS BIGINT) \
             FROM {TEST_ROLLUP} r JOIN builds b ON b.id = r.build_id WHERE b.checkout_id IN "
        ))
        .list(chunk)
        .push(" GROUP BY 1, 2, 3");
        for (id, kind, status, n) in fetch_all!(db, sql, (String, String, String, i64)) {
            let entry = out.entry(id).or_default();
            let counts = if kind == "boot" {
                &mut entry.boots
            } else {
                &mut entry.tests
            };
            let status = Some(status.as_str()).filter(|s| !s.is_empty());
            counts.add(status_of(status), u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(out)
}

/// A checkout's columns the listings group by: id, normalized start time, tree name,
/// repository URL, branch, commit hash, commit name and tags (JSON text).
type CheckoutCols = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// [`CheckoutCols`] of the checkouts matching the conditions `build` appends (each
/// starting with ` AND`), read from the columns (no stored object is parsed).
async fn checkout_cols(
    db: &KcidbDb,
    build: impl FnOnce(&mut Sql),
) -> Result<Vec<CheckoutCols>, QueryError> {
    let mut sql = Sql::new(db);
    let start = sql.time_col("start_time");
    let tags = sql.list_col("git_commit_tags");
    sql.push(&format!(
        "SELECT id, {start}, tree_name, git_repository_url, git_repository_branch, \
         git_commit_hash, git_commit_name, {tags} FROM checkouts WHERE 1 = 1"
    ));
    build(&mut sql);
    Ok(fetch_all!(db, sql, CheckoutCols))
}

/// A tree: (tree name, repository URL, branch).
type TreeKey = (Option<String>, Option<String>, Option<String>);

/// The latest checkout (by start time) of each tree name, repository URL and branch of
/// `origin` that started at or after `since`, newest first, with status counts.
pub async fn tree_heads(
    db: &KcidbDb,
    origin: &str,
    since: DateTime<Utc>,
) -> Result<Vec<TreeHead>, QueryError> {
    let rows = checkout_cols(db, |sql| {
        sql.push(" AND origin = ")
            .text(origin)
            .push(" AND start_time >= ")
            .time(&since);
    })
    .await?;
    // The latest (start time, id) of each tree; only those checkouts are read whole.
    let mut latest: BTreeMap<TreeKey, (Option<String>, String)> = BTreeMap::new();
    for (id, start, tree, url, branch, ..) in rows {
        let key = (tree, url, branch);
        let newer = latest
            .get(&key)
            .is_none_or(|old| (&start, &id) > (&old.0, &old.1));
        if newer {
            latest.insert(key, (start, id));
        }
    }
    let start: HashMap<String, Option<String>> = latest
        .values()
        .map(|(s, id)| (id.clone(), s.clone()))
        .collect();
    let head_ids: Vec<String> = latest.values().map(|(_, id)| id.clone()).collect();
    let all = checkouts_by_id(db, &head_ids).await?;
    let latest: BTreeMap<TreeKey, Arc<Checkout>> = latest
        .into_iter()
        .filter_map(|(k, (_, id))| all.get(&id).map(|c| (k, c.clone())))
        .collect();
    let counts = checkout_counts(db, &head_ids).await?;
    let mut heads: Vec<TreeHead> = latest
        .into_values()
        .map(|checkout| {
            let c = counts.get(&checkout.id).copied().unwrap_or_default();
            TreeHead {
                checkout,
                builds: c.builds,
                boots: c.boots,
                tests: c.tests,
            }
        })
        .collect();
    heads.sort_by(|a, b| {
        let ka = (start.get(&a.checkout.id), &a.checkout.id);
        let kb = (start.get(&b.checkout.id), &b.checkout.id);
        kb.cmp(&ka)
    });
    Ok(heads)
}

/// One commit of a branch with the status counts of its checkouts.
#[derive(Debug, Clone)]
pub struct CommitHistoryEntry {
    /// `git_commit_hash`.
    pub git_commit_hash: String,
    /// `git_commit_name` (of the earliest checkout).
    pub git_commit_name: Option<String>,
    /// `git_commit_tags` (union over the checkouts).
    pub git_commit_tags: Vec<String>,
    /// The earliest checkout start time (RFC 3339, UTC).
    pub earliest_start_time: Option<String>,
    /// The checkouts of the commit.
    pub checkout_ids: Vec<String>,
    /// Counts over those checkouts.
    pub counts: CheckoutCounts,
}

/// Which checkouts make up a branch's history: an origin's checkouts, narrowed by tree
/// name, repository URL and branch when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchSelector {
    /// The checkout origin.
    pub origin: String,
    /// `tree_name`.
    pub tree_name: Option<String>,
    /// `git_repository_url`.
    pub git_url: Option<String>,
    /// `git_repository_branch`.
    pub git_branch: Option<String>,
}

/// The commits of a branch's checkouts, newest first, at most `limit`; with `up_to` (a
/// commit hash), only that commit and older ones.
pub async fn commit_history(
    db: &KcidbDb,
    branch: &BranchSelector,
    up_to: Option<&str>,
    limit: usize,
) -> Result<Vec<CommitHistoryEntry>, QueryError> {
    let mut rows = checkout_cols(db, |sql| {
        sql.push(" AND origin = ").text(&branch.origin);
        for (col, value) in [
            ("tree_name", &branch.tree_name),
            ("git_repository_url", &branch.git_url),
            ("git_repository_branch", &branch.git_branch),
        ] {
            if let Some(v) = value {
                sql.push(&format!(" AND {col} = ")).text(v);
            }
        }
    })
    .await?;
    rows.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    let mut commits: BTreeMap<String, CommitHistoryEntry> = BTreeMap::new();
    for (id, start, _, _, _, hash, name, tags) in rows {
        let Some(hash) = hash else {
            continue;
        };
        let entry = commits
            .entry(hash.clone())
            .or_insert_with(|| CommitHistoryEntry {
                git_commit_hash: hash,
                git_commit_name: name,
                git_commit_tags: Vec::new(),
                earliest_start_time: start,
                checkout_ids: Vec::new(),
                counts: CheckoutCounts::default(),
            });
        entry.checkout_ids.push(id);
        let tags: Vec<String> = tags
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        for tag in tags {
            if !entry.git_commit_tags.contains(&tag) {
                entry.git_commit_tags.push(tag);
            }
        }
    }
    let mut list: Vec<CommitHistoryEntry> = commits.into_values().collect();
    list.sort_by(|a, b| {
        (&b.earliest_start_time, &b.git_commit_hash)
            .cmp(&(&a.earliest_start_time, &a.git_commit_hash))
    });
    if let Some(hash) = up_to
        && let Some(pos) = list.iter().position(|e| e.git_commit_hash == hash)
    {
        list.drain(..pos);
    }
    list.truncate(limit);
    let ids: Vec<String> = list.iter().flat_map(|e| e.checkout_ids.clone()).collect();
    let counts = checkout_counts(db, &ids).await?;
    for entry in &mut list {
        for id in &entry.checkout_ids {
            if let Some(c) = counts.get(id) {
                entry.counts.builds.merge(&c.builds);
                entry.counts.boots.merge(&c.boots);
                entry.counts.tests.merge(&c.tests);
            }
        }
    }
    Ok(list)
}

/// A platform seen in tests, with its compatibles and status counts.
#[derive(Debug, Clone, Default)]
pub struct HardwareEntry {
    /// `environment.misc.platform`.
    pub platform: String,
    /// Every `environment.compatible` string seen with it.
    pub compatibles: BTreeSet<String>,
    /// The builds its tests ran on, per status (each build once).
    pub builds: StatusCounts,
    /// Its boots per status.
    pub boots: StatusCounts,
    /// Its other tests per status.
    pub tests: StatusCounts,
}

/// The platforms of `origin`'s tests that started within `[since, until]`, by name.
pub async fn hardware(
    db: &KcidbDb,
    origin: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<HardwareEntry>, QueryError> {
    let mut sql = Sql::new(db);
    let platform = sql.json_field("t.environment_misc", "platform");
    let compatibles = sql.list_col("t.environment_compatible");
    sql.push(&format!(
        "SELECT {platform}, {compatibles}, CASE WHEN {BOOT_CONDITION} THEN 'boot' ELSE 'test' \
         END, t.status, b.id, b.status FROM tests t LEFT JOIN builds b ON b.id = t.build_id \
         WHERE t.origin = "
    ))
    .text(origin)
    .push(" AND t.start_time >= ")
    .time(&since)
    .push(" AND t.start_time <= ")
    .time(&until);
    type Row = (
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows = fetch_all!(db, sql, Row);
    let mut out: BTreeMap<String, (HardwareEntry, BTreeSet<String>)> = BTreeMap::new();
    for (platform, compatibles, kind, status, build_id, build_status) in rows {
        let Some(platform) = platform else { continue };
        let (entry, seen) = out.entry(platform.clone()).or_insert_with(|| {
            (
                HardwareEntry {
                    platform,
                    ..HardwareEntry::default()
                },
                BTreeSet::new(),
            )
        });
        if let Some(list) = compatibles
            .as_deref()
            .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        {
            entry.compatibles.extend(list);
        }
        let counts = if kind == "boot" {
            &mut entry.boots
        } else {
            &mut entry.tests
        };
        counts.add(status_of(status.as_deref()), 1);
        if let Some(id) = build_id
            && seen.insert(id)
        {
            entry.builds.add(status_of(build_status.as_deref()), 1);
        }
    }
    Ok(out.into_values().map(|(e, _)| e).collect())
}

/// The origins with data in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    /// Origins of checkouts that started since then, sorted.
    pub checkout_origins: Vec<String>,
    /// Origins of tests that started since then, sorted.
    pub test_origins: Vec<String>,
}

/// The checkout and test origins with results that started at or after `since`.
pub async fn origins(db: &KcidbDb, since: DateTime<Utc>) -> Result<Origins, QueryError> {
    let mut lists = Vec::new();
    for table in ["checkouts", "tests"] {
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "SELECT DISTINCT origin FROM {table} WHERE start_time >= "
        ))
        .time(&since);
        let mut list: Vec<String> = fetch_all!(db, sql, (String,))
            .into_iter()
            .map(|r| r.0)
            .collect();
        list.sort();
        lists.push(list);
    }
    let test_origins = lists.pop().unwrap_or_default();
    let checkout_origins = lists.pop().unwrap_or_default();
    Ok(Origins {
        checkout_origins,
        test_origins,
    })
}
