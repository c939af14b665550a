//! The KernelCI dashboard's JSON API over the KCIDB database, under `/api/`: the routes,
//! parameters and response shapes of upstream's dashboard backend
//! (specs/dashboard-cli-peers.md §1.5) that `kci-dev results` and the web pages read.
//!
//! [`dashboard_router`] serves `tree/` (listing, commit-keyed and tree/branch/commit-keyed
//! `summary|full|builds|boots|tests|commits`, a branch's latest checkout, `compare`),
//! `tree-report/`, `build/{id}[/tests|/issues]`, `test/{id}[/issues]`, `issue/` (listing,
//! `{id}[/builds|/tests]`, `POST extras/`), `hardware/` (listing, `POST
//! {name}/summary|builds|boots|tests`), `origins/` and `schema/` (OpenAPI), and ours: the
//! stored regressions (`regressions/[{id}]`, `flaky/`, `health/`, [`routes::regress`]).
//! Every path answers with and without its trailing slash.
//!
//! Filters are upstream's `filter_<field>[_<op>]` ([`kernelci_kcidb::query::Filter`]),
//! applied in SQL. Lists are whole, as upstream's; `limit` and `offset`, when given, page
//! them. Errors are `{"error": "..."}`: 400 with the parameter and the reason, 404 for an
//! unknown id or commit. Where upstream answers an empty result with HTTP 200 and an
//! `error` body that kci-dev matches on (a build or test without issues), we do the same.

pub mod error;
pub mod pages;
pub mod params;
pub mod routes;
pub mod shapes;
pub mod summary;

use axum::Router;
use axum::routing::{get, post};
use kernelci_kcidb::db::KcidbDb;

pub use error::ApiError;

/// The dashboard API under `/api/` and its web pages ([`pages`]), over `db`.
pub fn dashboard_router(db: KcidbDb) -> Router {
    use routes::{hardware, issue, items, misc, regress, report, tree};
    Router::new()
        .route("/api/tree", get(tree::listing))
        .route("/api/tree/", get(tree::listing))
        .route("/api/tree/{*rest}", get(tree::dispatch))
        .route("/api/tree-report", get(report::report))
        .route("/api/tree-report/", get(report::report))
        .route("/api/build/{*rest}", get(items::build))
        .route("/api/test/{*rest}", get(items::test))
        .route("/api/issue", get(issue::listing))
        .route("/api/issue/", get(issue::listing))
        .route("/api/issue/extras", post(issue::extras))
        .route("/api/issue/extras/", post(issue::extras))
        .route("/api/issue/{*rest}", get(issue::item))
        .route("/api/hardware", get(hardware::listing))
        .route("/api/hardware/", get(hardware::listing))
        .route("/api/hardware/{*rest}", post(hardware::details))
        .route("/api/regressions", get(regress::regressions))
        .route("/api/regressions/", get(regress::regressions))
        .route("/api/regressions/{id}", get(regress::regression))
        .route("/api/flaky", get(regress::flaky))
        .route("/api/flaky/", get(regress::flaky))
        .route("/api/health", get(regress::health))
        .route("/api/health/", get(regress::health))
        .route("/api/origins", get(misc::origins))
        .route("/api/origins/", get(misc::origins))
        .route("/api/schema", get(misc::schema))
        .route("/api/schema/", get(misc::schema))
        .merge(pages::page_routes())
        .with_state(db)
}
