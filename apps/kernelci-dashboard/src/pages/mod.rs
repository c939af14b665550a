//! The dashboard's web pages (issue 7, first views), server-rendered HTML over the same
//! queries as the JSON API: `/` (to `/tree`), `/tree` (tree heads), `/tree/{commit}`
//! (a checkout: summary, the branch's recent commits as a chart, Builds / Boots / Tests tabs,
//! filters), `/tree/{tree}/{branch}/compare` (two revisions), `/build/{id}`,
//! `/test/{id}`, `/log/build|test/{id}` (the log with its logspec findings), `/issues`,
//! `/issue/{id}`, `/hardware`, `/hardware/{name}`, `/regressions` (stored regressions and
//! flaky tests), `/health` (lab and platform infrastructure rates). Parameters are the API's
//! (`origin`, `interval_in_days`, `filter_<field>`), so a page's URL is also its query; each
//! page shows the `kci` command for the same data.

mod history;
mod html;
mod items;
mod listings;
mod log;
mod regressions;
mod tree;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use kernelci_kcidb::db::KcidbDb;

use crate::ApiError;

/// The page routes (merged beside the API by [`crate::dashboard_router`]).
pub fn page_routes() -> Router<KcidbDb> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tree") }))
        .route("/tree", get(listings::trees))
        .route("/tree/{commit}", get(tree::checkout))
        .route("/tree/{tree}/{branch}/compare", get(history::compare))
        .route("/build/{*id}", get(items::build))
        .route("/test/{*id}", get(items::test))
        .route("/log/build/{*id}", get(log::build_log))
        .route("/log/test/{*id}", get(log::test_log))
        .route("/issues", get(listings::issues))
        .route("/issue/{*id}", get(items::issue))
        .route("/hardware", get(listings::hardware))
        .route("/hardware/{*name}", get(listings::hardware_detail))
        .route("/regressions", get(regressions::regressions))
        .route("/health", get(regressions::health))
}

/// A page that could not be made: the API's error, as an HTML page.
pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError(e)
    }
}

impl From<kernelci_kcidb::query::QueryError> for PageError {
    fn from(e: kernelci_kcidb::query::QueryError) -> PageError {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (code, title) = match &self.0 {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            ApiError::Database(e) => {
                tracing::error!("dashboard page: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Server error")
            }
        };
        let body = format!("<p>{}</p>", html::esc(&self.0.to_string()));
        (code, Html(html::page(title, "", &body, None))).into_response()
    }
}

/// What a page handler returns.
type PageResult = Result<Html<String>, PageError>;
