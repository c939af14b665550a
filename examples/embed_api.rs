//! Embed the Maestro API in an axum application of your own, next to your own routes.
//!
//! ```text
//! cargo run -p kernelci-examples --example embed_api                 # 127.0.0.1:8010, temp dir
//! cargo run -p kernelci-examples --example embed_api -- 127.0.0.1:9000 ./lab-data
//! curl -s http://127.0.0.1:8010/lab/status
//! curl -s -H "Authorization: Bearer $TOKEN" -X POST http://127.0.0.1:8010/latest/node \
//!      -d '{"kind":"checkout","name":"checkout","path":["checkout"]}'
//! ```
//!
//! The API is `kernelci_api::router` over a `Store` (SQLite here: `sqlite://DIR/maestro.db`;
//! a `postgres://` URL gives the PostgreSQL store, nothing else changes). It serves upstream's
//! paths under `/latest` and `/v0` and brings its own fallback (`{"detail":"Not Found"}`), so
//! it is *merged* into an application that has none. Our route `/lab/status` reads the same
//! store. The administrator token is printed at start-up (keep it secret).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use kernelci_api::mail::FileMailer;
use kernelci_api::{ApiConfig, AppState, JwtKeys};
use kernelci_model::{NodeFilter, ObjectId, User};
use kernelci_store::Store;
use serde_json::{Value, json};

/// The application: the Maestro API plus our own routes, and the first administrator's token.
pub struct Embedded {
    /// The router to serve.
    pub router: Router,
    /// A bearer token of the administrator `admin` (may create nodes, users, ...).
    pub admin_token: String,
    /// The API's state: run `kernelci_api::housekeeping(state)` beside the server to purge
    /// old events and stale subscriptions, as `kernelci up` does.
    pub state: AppState,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .map_or("127.0.0.1:8010", String::as_str)
        .parse()?;
    // The data directory: given, or a temporary one removed at exit.
    let temp = tempfile::tempdir()?;
    let dir: PathBuf = args
        .get(1)
        .map_or_else(|| temp.path().into(), PathBuf::from);
    std::fs::create_dir_all(&dir)?;

    let app = build(&dir, "change-me: the JWT secret of this instance").await?;
    tokio::spawn(kernelci_api::housekeeping(app.state.clone()));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("serving on http://{}", listener.local_addr()?);
    println!("admin token: {}", app.admin_token);
    axum::serve(listener, app.router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Opens the store in `dir` (migrations run on open), creates the built-in groups and an
/// administrator, and builds the application: the Maestro API (tokens signed with `secret`)
/// merged with `/lab/status`.
pub async fn build(dir: &Path, secret: &str) -> anyhow::Result<Embedded> {
    let url = format!("sqlite://{}", dir.join("maestro.db").display());
    let store = kernelci_store::open(&url).await?;
    kernelci_api::ensure_builtin_groups(&*store).await?;
    let keys = JwtKeys::new(secret, None);
    let admin = admin_user(&*store).await?;
    let admin_token = keys.issue_access(&admin.id, None);

    // Mail (invites, password resets) is written as .eml files into DIR/mail.
    let mailer = Arc::new(FileMailer::new(dir.join("mail")));
    let state = AppState::new(store.clone(), keys, ApiConfig::default(), mailer).await?;
    let api = kernelci_api::router(state.clone(), false);

    let ours = Router::new()
        .route("/lab/status", get(lab_status))
        .with_state(store);
    Ok(Embedded {
        router: ours.merge(api),
        admin_token,
        state,
    })
}

/// The administrator `admin` (created on the first start, found on the next ones).
async fn admin_user(store: &dyn Store) -> anyhow::Result<User> {
    if let Some(user) = store.get_user_by_username("admin").await? {
        return Ok(user);
    }
    // Its password is random: it logs in with the token only.
    let password = ObjectId::generate().to_string();
    let user = User {
        id: ObjectId::generate(),
        email: "admin@lab.example".into(),
        hashed_password: kernelci_api::auth::hash_password(&password)?,
        is_active: true,
        is_superuser: true,
        is_verified: true,
        username: "admin".into(),
        groups: Vec::new(),
    };
    store.insert_user(&user).await?;
    Ok(user)
}

/// `GET /lab/status`: our own route, over the API's store: how many nodes of each kind exist.
async fn lab_status(State(store): State<Arc<dyn Store>>) -> Json<Value> {
    let mut kinds = serde_json::Map::new();
    for kind in ["checkout", "kbuild", "job", "test"] {
        let count = match NodeFilter::parse([("kind", kind)]) {
            Ok(filter) => store.count_nodes(&filter).await.ok(),
            Err(_) => None,
        };
        kinds.insert(kind.into(), count.map_or(Value::Null, Value::from));
    }
    Json(json!({"lab": "mylab", "nodes": kinds}))
}
