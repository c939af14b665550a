//! Test support for the workspace integration tests (`tests/tests/*.rs`).
//!
//! [`TestApp`] starts the Maestro API in-process on a real TCP port, on a fresh SQLite file
//! or, when `KERNELCI_TEST_DATABASE_URL` is set, on a fresh PostgreSQL database created for
//! the test (and dropped afterwards). The same tests therefore run on both backends:
//! `.ci/run` runs the suite once without and once with that variable.

use std::sync::Arc;
use std::time::Duration;

use kernelci_api::{ApiConfig, AppState, JwtKeys, mail::FileMailer};
use kernelci_model::{ObjectId, User};
use kernelci_store::Store;
use serde_json::Value;

/// The variable naming the PostgreSQL server used by the PostgreSQL pass.
pub const PG_ENV: &str = "KERNELCI_TEST_DATABASE_URL";

/// The variable naming a PostgreSQL server for the tests that always need one beside
/// SQLite (backend equivalence, two processes on one database), whatever the pass.
pub const PG_SERVER_ENV: &str = "KERNELCI_TEST_PG";

/// Whether this run targets PostgreSQL.
pub fn pg_base_url() -> Option<String> {
    std::env::var(PG_ENV).ok().filter(|s| !s.is_empty())
}

/// A PostgreSQL server for the tests that compare or combine backends: [`PG_SERVER_ENV`],
/// else [`PG_ENV`].
pub fn pg_server_url() -> Option<String> {
    std::env::var(PG_SERVER_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(pg_base_url)
}

/// Whether we run under CI (where nothing may be skipped for a missing service).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// The shared fixtures folder: `$KERNELCI_FIXTURES`, else `../shared/fixtures` beside the
/// repository (where CI puts it).
pub fn fixtures_root() -> std::path::PathBuf {
    match std::env::var_os("KERNELCI_FIXTURES") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// The fixture folder `sub` (e.g. `kcidb/small`), or `None` with a message when it is
/// missing outside CI; under CI a missing folder fails the test.
pub fn fixture_dir(sub: &str) -> Option<std::path::PathBuf> {
    let dir = fixtures_root().join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    eprintln!(
        "skipping: fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    None
}

/// A database that exists for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    pg_admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh SQLite file, or a fresh PostgreSQL database when [`PG_ENV`] is set.
    pub async fn new() -> TestDb {
        match pg_base_url() {
            Some(base) => TestDb::postgres(&base).await,
            None => TestDb::sqlite(),
        }
    }

    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        TestDb {
            url,
            pg_admin: None,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the PostgreSQL server at `base` (panics if it cannot be reached:
    /// a PostgreSQL pass must fail, not skip).
    pub async fn postgres(base: &str) -> TestDb {
        use sqlx::Connection;
        let name = format!("kci_test_{}", ObjectId::generate());
        let mut conn = sqlx::PgConnection::connect(base)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = match base.rfind('/') {
            Some(i) if base[..i].contains("://") && i > base.find("://").unwrap_or(0) + 2 => {
                format!("{}/{name}", &base[..i])
            }
            _ => format!("{base}/{name}"),
        };
        TestDb {
            url,
            pg_admin: Some((base.to_string(), name)),
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, name)) = self.pg_admin.take() else {
            return;
        };
        // Best effort, on a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running Maestro API on a real port.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The store behind the server.
    pub store: Arc<dyn Store>,
    /// Token keys (to mint tokens in tests).
    pub keys: JwtKeys,
    /// A bearer token of the administrator `admin`.
    pub admin_token: String,
    /// Where mail goes.
    pub mail_dir: std::path::PathBuf,
    /// The server's state (to run housekeeping rounds in tests).
    pub state: AppState,
    server: tokio::task::JoinHandle<()>,
    _mail: tempfile::TempDir,
    /// The database (dropped last).
    pub db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Options for [`TestApp::start_with`].
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// Keep-alive period of `/listen`.
    pub keep_alive: Duration,
    /// Also serve unprefixed paths.
    pub unprefixed: bool,
    /// Primary secret.
    pub secret: String,
    /// Unified secret.
    pub unified_secret: Option<String>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            keep_alive: Duration::from_secs(2),
            unprefixed: true,
            secret: "test-secret".into(),
            unified_secret: None,
        }
    }
}

impl TestApp {
    /// Start with default options on a fresh database.
    pub async fn start() -> TestApp {
        TestApp::start_with(TestOptions::default()).await
    }

    /// Start with options on a fresh database.
    pub async fn start_with(opts: TestOptions) -> TestApp {
        let db = TestDb::new().await;
        TestApp::start_on(db, opts).await
    }

    /// Start on a given database.
    pub async fn start_on(db: TestDb, opts: TestOptions) -> TestApp {
        let store = kernelci_store::open(&db.url).await.expect("open store");
        kernelci_api::ensure_builtin_groups(&*store)
            .await
            .expect("groups");
        let keys = JwtKeys::new(&opts.secret, opts.unified_secret.as_deref());
        let mail = tempfile::tempdir().expect("temp dir");
        let config = ApiConfig {
            keep_alive: opts.keep_alive,
            ..ApiConfig::default()
        };
        let mailer = Arc::new(FileMailer::new(mail.path()));
        let state = AppState::new(store.clone(), keys.clone(), config, mailer)
            .await
            .expect("state");
        let app = kernelci_api::router(state.clone(), opts.unprefixed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let mut app = TestApp {
            base: format!("http://{addr}"),
            client,
            store,
            keys,
            admin_token: String::new(),
            mail_dir: mail.path().to_path_buf(),
            state,
            server,
            _mail: mail,
            db,
        };
        let (_, token) = app.add_user("admin", true).await;
        app.admin_token = token;
        app
    }

    /// `BASE/latest{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/latest{path}", self.base)
    }

    /// Create a verified user directly in the store (password = username) and mint a token.
    pub async fn add_user(&self, name: &str, admin: bool) -> (User, String) {
        let hashed = kernelci_api::auth::hash_password(name).expect("hash");
        let user = User {
            id: ObjectId::generate(),
            email: format!("{name}@example.org"),
            hashed_password: hashed,
            is_active: true,
            is_superuser: admin,
            is_verified: true,
            username: name.to_string(),
            groups: Vec::new(),
        };
        self.store.insert_user(&user).await.expect("insert user");
        let token = self.keys.issue_access(&user.id, None);
        (user, token)
    }

    /// GET with an optional token; returns (status, JSON body or Null).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    /// Send a JSON body with a method and an optional token.
    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    /// POST a JSON body as admin.
    pub async fn post_admin(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json("POST", path, Some(&self.admin_token), body)
            .await
    }
}

/// Send a request; returns (status, JSON body, or the text as a JSON string, or Null).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if text.is_empty() {
        return (status, Value::Null);
    }
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
