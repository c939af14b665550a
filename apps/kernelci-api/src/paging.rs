//! fastapi-pagination's `LimitOffsetPage`: the `limit`/`offset` query parameters and the
//! `{items, total, limit, offset}` answer, shared by `/nodes`, `/users`, `/user-groups` and
//! `/telemetry`.

use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;

/// Page size when the query gives none.
pub(crate) const DEFAULT_LIMIT: i64 = 50;

/// One page and the number of matches.
#[derive(Debug, Serialize)]
pub(crate) struct PageModel<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many match in all.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Items skipped.
    pub offset: i64,
}

/// `limit` (default 50, at least 1) and `offset` (default 0, at least 0); a 422 names every
/// bad parameter, as FastAPI does.
pub(crate) fn params(query: &QueryPairs) -> ApiResult<(i64, i64)> {
    match (query.int("limit", 1), query.int("offset", 0)) {
        (Ok(limit), Ok(offset)) => Ok((limit.unwrap_or(DEFAULT_LIMIT), offset.unwrap_or(0))),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(ApiError::Validation(mut a)), Err(ApiError::Validation(b))) => {
            a.extend(b);
            Err(ApiError::Validation(a))
        }
        (Err(e), Err(_)) => Err(e),
    }
}

/// One page of `items` (already filtered, in order), counted in memory.
pub(crate) fn slice<T>(items: Vec<T>, (limit, offset): (i64, i64)) -> PageModel<T> {
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let items = items.into_iter().skip(skip).take(take).collect();
    PageModel {
        items,
        total,
        limit,
        offset,
    }
}
