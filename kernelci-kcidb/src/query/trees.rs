//! Tree heads, a branch's commit history, the hardware listing and the origins, with
//! build/boot/test status counts computed by `GROUP BY` in the database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::sql::{Sql, fetch_all};
use super::{BOOT_CONDITION, CHUNK, QueryError, StatusCounts, checkouts_by_id, status_of};
use crate::Checkout;
use crate::db::KcidbDb;

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
        let mut sql = Sql::new(db);
        sql.push(&format!(
            "SELECT b.checkout_id, CASE WHEN {BOOT_CONDITION} THEN 'boot' ELSE 'test' END, \
             t.status, COUNT(*) FROM tests t JOIN builds b ON b.id = t.build_id \
             WHERE b.checkout_id IN "
        ))
        .list(chunk)
        .push(" GROUP BY 1, 2, 3");
        for (id, kind, status, n) in fetch_all!(db, sql, (String, String, Option<String>, i64)) {
            let entry = out.entry(id).or_default();
            let counts = if kind == "boot" {
                &mut entry.boots
            } else {
                &mut entry.tests
            };
            counts.add(status_of(status.as_deref()), u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(out)
}

/// `(id, normalized start time)` of the checkouts matching the conditions `build` appends
/// (each starting with ` AND`).
async fn checkout_ids(
    db: &KcidbDb,
    build: impl FnOnce(&mut Sql),
) -> Result<Vec<(String, Option<String>)>, QueryError> {
    let mut sql = Sql::new(db);
    let start = sql.time_col("start_time");
    sql.push(&format!("SELECT id, {start} FROM checkouts WHERE 1 = 1"));
    build(&mut sql);
    Ok(fetch_all!(db, sql, (String, Option<String>)))
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
    let rows = checkout_ids(db, |sql| {
        sql.push(" AND origin = ")
            .text(origin)
            .push(" AND start_time >= ")
            .time(&since);
    })
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let start: HashMap<String, Option<String>> = rows.into_iter().collect();
    let all = checkouts_by_id(db, &ids).await?;
    let mut latest: BTreeMap<TreeKey, Arc<Checkout>> = BTreeMap::new();
    for c in all.values() {
        let key = (
            c.tree_name.clone(),
            c.git_repository_url.clone(),
            c.git_repository_branch.clone(),
        );
        let newer = latest
            .get(&key)
            .is_none_or(|old| (start.get(&c.id), &c.id) > (start.get(&old.id), &old.id));
        if newer {
            latest.insert(key, c.clone());
        }
    }
    let head_ids: Vec<String> = latest.values().map(|c| c.id.clone()).collect();
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
    let rows = checkout_ids(db, |sql| {
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
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let start: HashMap<String, Option<String>> = rows.into_iter().collect();
    let all = checkouts_by_id(db, &ids).await?;
    let mut commits: BTreeMap<String, CommitHistoryEntry> = BTreeMap::new();
    let mut sorted: Vec<&Arc<Checkout>> = all.values().collect();
    sorted.sort_by(|a, b| (start.get(&a.id), &a.id).cmp(&(start.get(&b.id), &b.id)));
    for c in sorted {
        let Some(hash) = c.git_commit_hash.clone() else {
            continue;
        };
        let entry = commits
            .entry(hash.clone())
            .or_insert_with(|| CommitHistoryEntry {
                git_commit_hash: hash,
                git_commit_name: c.git_commit_name.clone(),
                git_commit_tags: Vec::new(),
                earliest_start_time: start.get(&c.id).cloned().flatten(),
                checkout_ids: Vec::new(),
                counts: CheckoutCounts::default(),
            });
        entry.checkout_ids.push(c.id.clone());
        for tag in c.git_commit_tags.iter().flatten() {
            if !entry.git_commit_tags.contains(tag) {
                entry.git_commit_tags.push(tag.clone());
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
