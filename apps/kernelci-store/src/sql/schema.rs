//! Per-backend migrations. Each entry is applied once, in order, and recorded in the
//! `schema_migrations` table; never edit an applied entry, add a new one.

use super::Dialect;

/// The migrations of a dialect: (version, statements).
pub fn migrations(d: Dialect) -> &'static [(i64, &'static [&'static str])] {
    match d {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    }
}

const SQLITE: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE nodes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL, name TEXT NOT NULL, grp TEXT, parent TEXT,
            state TEXT NOT NULL, result TEXT, owner TEXT, submitter TEXT, treeid TEXT,
            created INTEGER NOT NULL, updated INTEGER NOT NULL, timeout INTEGER NOT NULL,
            holdoff INTEGER, retry_counter INTEGER NOT NULL, kcidb_flag INTEGER NOT NULL,
            doc TEXT NOT NULL)",
            "CREATE INDEX nodes_kind ON nodes(kind)",
            "CREATE INDEX nodes_name ON nodes(name)",
            "CREATE INDEX nodes_parent ON nodes(parent)",
            "CREATE INDEX nodes_treeid ON nodes(treeid)",
            "CREATE INDEX nodes_created ON nodes(created)",
            "CREATE INDEX nodes_state_timeout ON nodes(state, timeout)",
            "CREATE INDEX nodes_state_holdoff ON nodes(state, holdoff)",
            "CREATE INDEX nodes_commit ON nodes(json_extract(doc, '$.\"data\".\"kernel_revision\".\"commit\"'))",
            "CREATE INDEX nodes_tree ON nodes(json_extract(doc, '$.\"data\".\"kernel_revision\".\"tree\"'))",
            "CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            ts INTEGER NOT NULL, channel TEXT NOT NULL, owner TEXT,
            data TEXT NOT NULL, envelope TEXT NOT NULL)",
            "CREATE INDEX events_channel_seq ON events(channel, seq)",
            "CREATE INDEX events_ts ON events(ts)",
            "CREATE TABLE subscriptions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            channel TEXT NOT NULL, username TEXT NOT NULL, promiscuous INTEGER NOT NULL,
            subscriber_id TEXT, cursor INTEGER NOT NULL, pending INTEGER,
            created INTEGER NOT NULL, last_poll INTEGER)",
            "CREATE TABLE subscriber_state (
            subscriber_id TEXT PRIMARY KEY, channel TEXT NOT NULL, username TEXT NOT NULL,
            promiscuous INTEGER NOT NULL, last_event_id INTEGER NOT NULL,
            created_at INTEGER NOT NULL, last_poll INTEGER)",
            "CREATE TABLE queue_items (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, list TEXT NOT NULL, payload TEXT NOT NULL)",
            "CREATE INDEX queue_items_list ON queue_items(list, seq)",
            "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (namespace, key))",
            "CREATE TABLE users (
            id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, email TEXT NOT NULL UNIQUE,
            hashed_password TEXT NOT NULL, is_active INTEGER NOT NULL,
            is_superuser INTEGER NOT NULL, is_verified INTEGER NOT NULL, groups TEXT NOT NULL)",
            "CREATE TABLE user_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ],
    ),
    (
        2,
        &[
            "CREATE TABLE telemetry (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL, ts INTEGER NOT NULL, kind TEXT NOT NULL, runtime TEXT NOT NULL,
            device_type TEXT, device_id TEXT, job_name TEXT, test_name TEXT, job_id TEXT,
            node_id TEXT, tree TEXT, branch TEXT, arch TEXT, result TEXT,
            is_infra_error INTEGER NOT NULL, error_type TEXT, error_msg TEXT,
            retry INTEGER NOT NULL, extra TEXT NOT NULL)",
            "CREATE INDEX telemetry_kind_ts ON telemetry(kind, ts)",
            "CREATE INDEX telemetry_runtime_device_ts ON telemetry(runtime, device_type, ts)",
            "CREATE INDEX telemetry_job_ts ON telemetry(job_name, ts)",
            "CREATE INDEX telemetry_result_ts ON telemetry(result, is_infra_error, ts)",
            "CREATE INDEX telemetry_ts ON telemetry(ts)",
        ],
    ),
    (
        3,
        // The array arm of document-path filters, for the hot paths (see sql/filter.rs).
        &[
            "CREATE INDEX nodes_commit_type ON nodes(json_type(doc, '$.\"data\".\"kernel_revision\".\"commit\"'))",
            "CREATE INDEX nodes_tree_type ON nodes(json_type(doc, '$.\"data\".\"kernel_revision\".\"tree\"'))",
        ],
    ),
    (
        4,
        // The pipeline's scheduling uniqueness key (parent/job/runtime/platform/retry): two
        // schedulers, or one restarted mid-way, can never create the same job twice.
        &[
            "CREATE UNIQUE INDEX nodes_schedule_key ON nodes(json_extract(doc, '$.\"data\".\"schedule_key\"')) WHERE json_extract(doc, '$.\"data\".\"schedule_key\"') IS NOT NULL",
        ],
    ),
];

const POSTGRES: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE nodes (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT COLLATE \"C\" NOT NULL UNIQUE,
            kind TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL,
            grp TEXT COLLATE \"C\", parent TEXT COLLATE \"C\",
            state TEXT COLLATE \"C\" NOT NULL, result TEXT COLLATE \"C\",
            owner TEXT COLLATE \"C\", submitter TEXT COLLATE \"C\", treeid TEXT COLLATE \"C\",
            created BIGINT NOT NULL, updated BIGINT NOT NULL, timeout BIGINT NOT NULL,
            holdoff BIGINT, retry_counter BIGINT NOT NULL, kcidb_flag BOOLEAN NOT NULL,
            doc JSONB NOT NULL)",
            "CREATE INDEX nodes_kind ON nodes(kind)",
            "CREATE INDEX nodes_name ON nodes(name)",
            "CREATE INDEX nodes_parent ON nodes(parent)",
            "CREATE INDEX nodes_treeid ON nodes(treeid)",
            "CREATE INDEX nodes_created ON nodes(created)",
            "CREATE INDEX nodes_state_timeout ON nodes(state, timeout)",
            "CREATE INDEX nodes_state_holdoff ON nodes(state, holdoff)",
            "CREATE INDEX nodes_doc ON nodes USING GIN (doc jsonb_path_ops)",
            "CREATE TABLE events (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            ts BIGINT NOT NULL, channel TEXT COLLATE \"C\" NOT NULL, owner TEXT COLLATE \"C\",
            data JSONB NOT NULL, envelope TEXT NOT NULL)",
            "CREATE INDEX events_channel_seq ON events(channel, seq)",
            "CREATE INDEX events_ts ON events(ts)",
            "CREATE TABLE subscriptions (
            id BIGSERIAL PRIMARY KEY,
            channel TEXT NOT NULL, username TEXT NOT NULL, promiscuous BOOLEAN NOT NULL,
            subscriber_id TEXT, cursor BIGINT NOT NULL, pending BIGINT,
            created BIGINT NOT NULL, last_poll BIGINT)",
            "CREATE TABLE subscriber_state (
            subscriber_id TEXT PRIMARY KEY, channel TEXT NOT NULL, username TEXT NOT NULL,
            promiscuous BOOLEAN NOT NULL, last_event_id BIGINT NOT NULL,
            created_at BIGINT NOT NULL, last_poll BIGINT)",
            "CREATE TABLE queue_items (
            seq BIGSERIAL PRIMARY KEY, list TEXT NOT NULL, payload TEXT NOT NULL)",
            "CREATE INDEX queue_items_list ON queue_items(list, seq)",
            "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (namespace, key))",
            "CREATE TABLE users (
            id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, email TEXT NOT NULL UNIQUE,
            hashed_password TEXT NOT NULL, is_active BOOLEAN NOT NULL,
            is_superuser BOOLEAN NOT NULL, is_verified BOOLEAN NOT NULL, groups TEXT NOT NULL)",
            "CREATE TABLE user_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ],
    ),
    (
        2,
        &[
            "CREATE TABLE telemetry (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL, ts BIGINT NOT NULL, kind TEXT NOT NULL, runtime TEXT NOT NULL,
            device_type TEXT, device_id TEXT, job_name TEXT, test_name TEXT, job_id TEXT,
            node_id TEXT, tree TEXT, branch TEXT, arch TEXT, result TEXT,
            is_infra_error BOOLEAN NOT NULL, error_type TEXT, error_msg TEXT,
            retry BIGINT NOT NULL, extra JSONB NOT NULL)",
            "CREATE INDEX telemetry_kind_ts ON telemetry(kind, ts DESC)",
            "CREATE INDEX telemetry_runtime_device_ts ON telemetry(runtime, device_type, ts DESC)",
            "CREATE INDEX telemetry_job_ts ON telemetry(job_name, ts DESC)",
            "CREATE INDEX telemetry_result_ts ON telemetry(result, is_infra_error, ts DESC)",
            "CREATE INDEX telemetry_ts ON telemetry(ts)",
        ],
    ),
    (
        3,
        // See the SQLite migration 4.
        &[
            "CREATE UNIQUE INDEX nodes_schedule_key ON nodes ((doc->'data'->>'schedule_key')) WHERE doc->'data'->>'schedule_key' IS NOT NULL",
        ],
    ),
];
