//! The notifier's tables (`notify_subscriptions`, `notify_sent`) and the reads that find
//! settled checkouts, on both backends. Times are stored as text (RFC 3339, UTC,
//! microseconds), the format of SQLite's `_timestamp` columns.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use kernelci_kcidb::db::KcidbDb;
use serde::Serialize;

/// The notifier's tables (idempotent statements).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS notify_subscriptions (id TEXT PRIMARY KEY, \
     tree_name TEXT NOT NULL, branch TEXT NOT NULL, origin TEXT, kind TEXT NOT NULL, \
     target TEXT NOT NULL, format TEXT, created TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS notify_sent (subscription_id TEXT NOT NULL, \
     checkout_id TEXT NOT NULL, sent TEXT NOT NULL, PRIMARY KEY (subscription_id, checkout_id))",
    "CREATE INDEX IF NOT EXISTS notify_sent_checkout ON notify_sent (checkout_id)",
];

/// Rows per `IN (...)` list.
const CHUNK: usize = 500;

/// A time as stored: RFC 3339 text in UTC with microseconds.
pub fn time_text(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// How a subscription is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// A plain-text e-mail to this address.
    Email {
        /// The recipient.
        address: String,
    },
    /// A POST of the report to this URL.
    Webhook {
        /// The URL (http or https).
        url: String,
        /// The body's format.
        format: WebhookFormat,
    },
}

/// The body of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The report as structured JSON.
    Json,
    /// A Discord message (`content` and `embeds`).
    Discord,
}

impl WebhookFormat {
    /// The format by name (`json`, `discord`).
    pub fn from_name(name: &str) -> Option<WebhookFormat> {
        match name {
            "json" => Some(WebhookFormat::Json),
            "discord" => Some(WebhookFormat::Discord),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Discord => "discord",
        }
    }
}

/// A subscription: which checkouts (tree, branch, origin) are reported where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// Its id (16 hex digits).
    pub id: String,
    /// The tree name, or `*` for all.
    pub tree_name: String,
    /// The branch, or `*` for all.
    pub branch: String,
    /// Only checkouts of this origin (`None`: any).
    pub origin: Option<String>,
    /// Where reports go.
    #[serde(flatten)]
    pub target: Target,
    /// When it was made; only checkouts received after it are reported.
    pub created: String,
}

impl Subscription {
    /// Whether a checkout of this tree, branch and origin, received at `received`, is
    /// reported to this subscription.
    pub fn matches(&self, checkout: &Candidate) -> bool {
        let field =
            |want: &str, have: &Option<String>| want == "*" || have.as_deref() == Some(want);
        field(&self.tree_name, &checkout.tree_name)
            && field(&self.branch, &checkout.branch)
            && self.origin.as_deref().is_none_or(|o| o == checkout.origin)
            && checkout.received >= self.created
    }
}

/// A checkout that may be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Checkout id.
    pub id: String,
    /// Origin.
    pub origin: String,
    /// Tree name.
    pub tree_name: Option<String>,
    /// Branch.
    pub branch: Option<String>,
    /// When the checkout row was last written (`_timestamp`).
    pub received: String,
}

/// A `$n` placeholder for a time on `db`.
fn time_param(db: &KcidbDb, n: usize) -> String {
    match db {
        KcidbDb::Sqlite(_) => format!("${n}"),
        KcidbDb::Postgres(_) => format!("CAST(${n} AS TIMESTAMPTZ)"),
    }
}

/// A time column read as [`time_text`]'s format.
fn time_col(db: &KcidbDb, col: &str) -> String {
    match db {
        KcidbDb::Sqlite(_) => col.to_string(),
        KcidbDb::Postgres(_) => {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
    }
}

/// `($start, $start+1, ...)` for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    let list: Vec<String> = (start..start + n).map(|i| format!("${i}")).collect();
    format!("({})", list.join(", "))
}

/// Runs `sql` with text binds on either backend, returning rows of type `$ty`.
macro_rules! fetch {
    ($db:expr, $sql:expr, $binds:expr, $ty:ty) => {{
        let text: String = $sql;
        let binds: &[String] = $binds;
        match $db {
            KcidbDb::Sqlite(pool) => {
                let mut q = sqlx::query_as::<_, $ty>(sqlx::AssertSqlSafe(text));
                for b in binds {
                    q = q.bind(b.clone());
                }
                q.fetch_all(pool).await?
            }
            KcidbDb::Postgres(pool) => {
                let mut q = sqlx::query_as::<_, $ty>(sqlx::AssertSqlSafe(text));
                for b in binds {
                    q = q.bind(b.clone());
                }
                q.fetch_all(pool).await?
            }
        }
    }};
}

/// Runs a statement with text binds; the rows it changed.
async fn exec(db: &KcidbDb, sql: &str, binds: &[String]) -> Result<u64, sqlx::Error> {
    let text = sql.to_string();
    Ok(match db {
        KcidbDb::Sqlite(pool) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for b in binds {
                q = q.bind(b.clone());
            }
            q.execute(pool).await?.rows_affected()
        }
        KcidbDb::Postgres(pool) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
            for b in binds {
                q = q.bind(b.clone());
            }
            q.execute(pool).await?.rows_affected()
        }
    })
}

/// Creates the notifier's tables if missing.
pub async fn migrate(db: &KcidbDb) -> Result<(), sqlx::Error> {
    for statement in SCHEMA {
        if let Err(e) = exec(db, statement, &[]).await {
            // Two processes creating the same table at once on PostgreSQL: the loser gets a
            // unique violation; the table exists either way.
            if exec(db, statement, &[]).await.is_err() {
                return Err(e);
            }
        }
    }
    Ok(())
}

type SubscriptionRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
);

fn subscription(row: SubscriptionRow) -> Option<Subscription> {
    let (id, tree_name, branch, origin, kind, target, format, created) = row;
    let target = match kind.as_str() {
        "email" => Target::Email { address: target },
        "webhook" => Target::Webhook {
            url: target,
            format: WebhookFormat::from_name(format.as_deref().unwrap_or("json"))?,
        },
        _ => return None,
    };
    Some(Subscription {
        id,
        tree_name,
        branch,
        origin,
        target,
        created,
    })
}

/// Every subscription, oldest first.
pub async fn subscriptions(db: &KcidbDb) -> Result<Vec<Subscription>, sqlx::Error> {
    let rows = fetch!(
        db,
        "SELECT id, tree_name, branch, origin, kind, target, format, created \
         FROM notify_subscriptions ORDER BY created, id"
            .to_string(),
        &[],
        SubscriptionRow
    );
    Ok(rows.into_iter().filter_map(subscription).collect())
}

/// Stores a new subscription.
pub async fn insert(db: &KcidbDb, s: &Subscription) -> Result<(), sqlx::Error> {
    let (kind, target, format) = match &s.target {
        Target::Email { address } => ("email", address.clone(), String::new()),
        Target::Webhook { url, format } => ("webhook", url.clone(), format.as_str().to_string()),
    };
    exec(
        db,
        "INSERT INTO notify_subscriptions (id, tree_name, branch, origin, kind, target, format, \
         created) VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, NULLIF($7, ''), $8)",
        &[
            s.id.clone(),
            s.tree_name.clone(),
            s.branch.clone(),
            s.origin.clone().unwrap_or_default(),
            kind.to_string(),
            target,
            format,
            s.created.clone(),
        ],
    )
    .await?;
    Ok(())
}

/// Removes a subscription and its sent marks; whether it existed.
pub async fn delete(db: &KcidbDb, id: &str) -> Result<bool, sqlx::Error> {
    exec(
        db,
        "DELETE FROM notify_sent WHERE subscription_id = $1",
        &[id.to_string()],
    )
    .await?;
    let n = exec(
        db,
        "DELETE FROM notify_subscriptions WHERE id = $1",
        &[id.to_string()],
    )
    .await?;
    Ok(n > 0)
}

/// Records that `checkout_id` was reported to `subscription_id` (once: a second mark is a
/// no-op).
pub async fn mark_sent(
    db: &KcidbDb,
    subscription_id: &str,
    checkout_id: &str,
) -> Result<(), sqlx::Error> {
    exec(
        db,
        "INSERT INTO notify_sent (subscription_id, checkout_id, sent) VALUES ($1, $2, $3) \
         ON CONFLICT (subscription_id, checkout_id) DO NOTHING",
        &[
            subscription_id.to_string(),
            checkout_id.to_string(),
            time_text(&Utc::now()),
        ],
    )
    .await?;
    Ok(())
}

/// The (subscription, checkout) pairs already reported among these checkouts.
pub async fn sent(
    db: &KcidbDb,
    checkout_ids: &[String],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut out = HashSet::new();
    for chunk in checkout_ids.chunks(CHUNK) {
        let sql = format!(
            "SELECT subscription_id, checkout_id FROM notify_sent WHERE checkout_id IN {}",
            placeholders(1, chunk.len())
        );
        out.extend(fetch!(db, sql, chunk, (String, String)));
    }
    Ok(out)
}

/// Checkouts whose row was written within `[since, until]`, oldest first.
pub async fn candidates(
    db: &KcidbDb,
    since: &DateTime<Utc>,
    until: &DateTime<Utc>,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let sql = format!(
        "SELECT id, origin, tree_name, git_repository_branch, {} FROM checkouts \
         WHERE _timestamp >= {} AND _timestamp <= {} ORDER BY _timestamp, id",
        time_col(db, "_timestamp"),
        time_param(db, 1),
        time_param(db, 2)
    );
    type Row = (String, String, Option<String>, Option<String>, String);
    let rows = fetch!(db, sql, &[time_text(since), time_text(until)], Row);
    Ok(rows
        .into_iter()
        .map(|(id, origin, tree_name, branch, received)| Candidate {
            id,
            origin,
            tree_name,
            branch,
            received,
        })
        .collect())
}

/// The regression tracker's cursor: every result written at or before it has been
/// tracked (`None`: no round has seen a result yet).
pub async fn tracker_cursor(db: &KcidbDb) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let rows = fetch!(
        db,
        "SELECT value FROM regress_cursor WHERE name = 'results'".to_string(),
        &[],
        (String,)
    );
    Ok(rows.into_iter().next().and_then(|(v,)| {
        DateTime::parse_from_rfc3339(&v)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }))
}

/// Checkouts with a build, test or incident written after `after`: not settled.
pub async fn busy(db: &KcidbDb, after: &DateTime<Utc>) -> Result<HashSet<String>, sqlx::Error> {
    let t = time_param(db, 1);
    let sql = format!(
        "SELECT checkout_id FROM builds WHERE _timestamp > {t} \
         UNION SELECT b.checkout_id FROM tests x JOIN builds b ON b.id = x.build_id \
         WHERE x._timestamp > {t} \
         UNION SELECT b.checkout_id FROM incidents i LEFT JOIN tests x ON x.id = i.test_id \
         JOIN builds b ON b.id = COALESCE(i.build_id, x.build_id) WHERE i._timestamp > {t} \
         UNION SELECT id FROM checkouts WHERE _timestamp > {t}"
    );
    let rows = fetch!(db, sql, &[time_text(after)], (String,));
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The checkout's columns a report shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckoutInfo {
    /// Checkout id.
    pub id: String,
    /// Origin.
    pub origin: String,
    /// Tree name.
    pub tree_name: Option<String>,
    /// Repository URL.
    pub git_repository_url: Option<String>,
    /// Branch.
    pub git_repository_branch: Option<String>,
    /// Commit hash.
    pub git_commit_hash: Option<String>,
    /// `git describe` name.
    pub git_commit_name: Option<String>,
    /// Start time.
    pub start_time: Option<String>,
}

/// One checkout's columns.
pub async fn checkout(db: &KcidbDb, id: &str) -> Result<Option<CheckoutInfo>, sqlx::Error> {
    let sql = format!(
        "SELECT id, origin, tree_name, git_repository_url, git_repository_branch, \
         git_commit_hash, git_commit_name, {} FROM checkouts WHERE id = $1",
        match db {
            KcidbDb::Sqlite(_) => "start_time".to_string(),
            KcidbDb::Postgres(_) => time_col(db, "start_time"),
        }
    );
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows = fetch!(db, sql, &[id.to_string()], Row);
    Ok(rows
        .into_iter()
        .next()
        .map(
            |(id, origin, tree, url, branch, hash, name, start)| CheckoutInfo {
                id,
                origin,
                tree_name: tree,
                git_repository_url: url,
                git_repository_branch: branch,
                git_commit_hash: hash,
                git_commit_name: name,
                start_time: start,
            },
        ))
}

/// A build or test with status MISS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// `build` or `test`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// The test path, or the build's `config_name architecture`.
    pub name: String,
    /// The test's platform (`environment.misc.platform`), if any.
    pub platform: Option<String>,
}

/// The checkout's builds and tests with status MISS (at most `limit`), and how many.
pub async fn missing(
    db: &KcidbDb,
    checkout_id: &str,
    limit: usize,
) -> Result<(Vec<Missing>, usize), sqlx::Error> {
    let misc = match db {
        KcidbDb::Sqlite(_) => "x.environment_misc",
        KcidbDb::Postgres(_) => "CAST(x.environment_misc AS TEXT)",
    };
    let builds = fetch!(
        db,
        "SELECT id, config_name, architecture FROM builds WHERE checkout_id = $1 \
         AND status = 'MISS' ORDER BY id"
            .to_string(),
        &[checkout_id.to_string()],
        (String, Option<String>, Option<String>)
    );
    let tests = fetch!(
        db,
        format!(
            "SELECT x.id, x.path, {misc} FROM tests x JOIN builds b ON b.id = x.build_id \
             WHERE b.checkout_id = $1 AND x.status = 'MISS' ORDER BY x.path, x.id"
        ),
        &[checkout_id.to_string()],
        (String, Option<String>, Option<String>)
    );
    let total = builds.len() + tests.len();
    let mut out = Vec::new();
    for (id, config, arch) in builds {
        let name = [config, arch].into_iter().flatten().collect::<Vec<_>>();
        out.push(Missing {
            kind: "build",
            id,
            name: name.join(" "),
            platform: None,
        });
    }
    for (id, path, misc) in tests {
        let platform = misc
            .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
            .and_then(|m| m.get("platform").and_then(|p| p.as_str()).map(String::from));
        out.push(Missing {
            kind: "test",
            id,
            name: path.unwrap_or_default(),
            platform,
        });
    }
    out.truncate(limit);
    Ok((out, total))
}

/// The issues with a present incident on this checkout's builds or tests, with how many
/// of its results each has.
pub async fn checkout_issues(
    db: &KcidbDb,
    checkout_id: &str,
) -> Result<HashMap<String, usize>, sqlx::Error> {
    let rows = fetch!(
        db,
        "SELECT i.issue_id, i.id FROM incidents i LEFT JOIN tests x ON x.id = i.test_id \
         JOIN builds b ON b.id = COALESCE(i.build_id, x.build_id) \
         WHERE b.checkout_id = $1 AND (i.present IS NULL OR i.present)"
            .to_string(),
        &[checkout_id.to_string()],
        (String, String)
    );
    let mut out: HashMap<String, usize> = HashMap::new();
    for (issue, _) in rows {
        *out.entry(issue).or_default() += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(tree: &str, branch: &str, origin: Option<&str>) -> Subscription {
        Subscription {
            id: "1".into(),
            tree_name: tree.into(),
            branch: branch.into(),
            origin: origin.map(String::from),
            target: Target::Email {
                address: "a@b.c".into(),
            },
            created: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn matching() {
        let c = Candidate {
            id: "lab:c".into(),
            origin: "lab".into(),
            tree_name: Some("mainline".into()),
            branch: Some("master".into()),
            received: "2026-01-02T00:00:00.000000Z".into(),
        };
        assert!(sub("*", "*", None).matches(&c));
        assert!(sub("mainline", "master", Some("lab")).matches(&c));
        assert!(!sub("next", "*", None).matches(&c));
        assert!(!sub("*", "*", Some("other")).matches(&c));
        let old = Candidate {
            received: "2025-12-31T23:59:59.999999Z".into(),
            ..c
        };
        assert!(
            !sub("*", "*", None).matches(&old),
            "older than the subscription"
        );
    }
}
