//! Query parameters: upstream's names, repeated parameters kept, precise 400 errors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kernelci_kcidb::query::Filter;

use crate::error::ApiError;

/// The default origin (upstream's `DEFAULT_ORIGIN`).
pub const DEFAULT_ORIGIN: &str = "maestro";

/// The parsed query string.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a raw query string (absent: no parameters).
    pub fn parse(raw: Option<&str>) -> Params {
        Params {
            pairs: raw
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        }
    }

    /// The last value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `origin`, defaulting to `maestro`.
    pub fn origin(&self) -> &str {
        self.get("origin").unwrap_or(DEFAULT_ORIGIN)
    }

    /// An integer parameter within `[min, max]`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::BadRequest(format!(
                "{name}: expected an integer from {min} to {max}, got {v:?}"
            ))),
        }
    }

    /// A number parameter within `[min, max]`.
    pub fn float(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::BadRequest(format!(
                "{name}: expected a number from {min} to {max}, got {v:?}"
            ))),
        }
    }

    /// A Unix time in seconds (fractions allowed, as kci-dev sends them).
    pub fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let bad = || ApiError::BadRequest(format!("{name}: expected Unix seconds, got {v:?}"));
        let secs: f64 = v.trim().parse().map_err(|_| bad())?;
        if !secs.is_finite() {
            return Err(bad());
        }
        let micros = (secs * 1e6).round();
        if micros.abs() > 1e17 {
            return Err(bad());
        }
        DateTime::from_timestamp_micros(micros as i64)
            .map(Some)
            .ok_or_else(bad)
    }

    /// `interval_in_days` (default `default`) as the start of the window.
    pub fn since_days(&self, default: i64) -> Result<DateTime<Utc>, ApiError> {
        let days = self.int("interval_in_days", 1, 36_500)?.unwrap_or(default);
        Ok(Utc::now() - chrono::Duration::days(days))
    }

    /// The `filter_*` parameters; values of a repeated parameter OR together.
    pub fn filters(&self) -> Result<Vec<Filter>, ApiError> {
        let mut grouped: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, v) in &self.pairs {
            if let Some(key) = k.strip_prefix("filter_") {
                grouped.entry(key).or_default().push(v.clone());
            }
        }
        let mut out = Vec::new();
        for (key, values) in grouped {
            if let Some(f) = Filter::from_param(key, &values)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// `limit` and `offset` when the client gives them (upstream returns whole lists).
    pub fn page(&self) -> Result<Option<(usize, usize)>, ApiError> {
        let limit = self.int("limit", 1, 100_000)?;
        let offset = self.int("offset", 0, i64::MAX)?;
        Ok(match (limit, offset) {
            (None, None) => None,
            (l, o) => Some((
                usize::try_from(o.unwrap_or(0)).unwrap_or(usize::MAX),
                usize::try_from(l.unwrap_or(100_000)).unwrap_or(usize::MAX),
            )),
        })
    }
}

/// A cursor page request: `page_size`, and the `cursor` a previous page returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorPage {
    /// Items per page.
    pub size: usize,
    /// The id of the last item already seen (decoded from the cursor).
    pub after: Option<String>,
}

impl Params {
    /// `page_size` and `cursor` when the client asks for cursor pages.
    pub fn cursor(&self) -> Result<Option<CursorPage>, ApiError> {
        let Some(size) = self.int("page_size", 1, 100_000)? else {
            if self.get("cursor").is_some() {
                return Err(ApiError::BadRequest("cursor: needs page_size".into()));
            }
            return Ok(None);
        };
        let after = match self.get("cursor") {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::BadRequest(format!("cursor: {c:?} is not a cursor from this API"))
            })?),
        };
        Ok(Some(CursorPage {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            after,
        }))
    }
}

/// A cursor: the last item's id, hex-encoded (opaque to clients).
pub fn encode_cursor(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(c: &str) -> Option<String> {
    if !c.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Applies a cursor page to a list of items with an `id`, in the list's (stable) order:
/// the items after the cursor's id, at most `size`, and the cursor of the next page when
/// more remain. A cursor whose item is gone is a 400 (start again without it).
pub fn cursor_paginate(
    items: Vec<serde_json::Value>,
    page: &CursorPage,
) -> Result<(Vec<serde_json::Value>, Option<String>), ApiError> {
    cursor_paginate_by(items, page, "id")
}

/// [`cursor_paginate`] for items whose identity is the string member `key` (e.g. the
/// hardware listing's `hardware_name`).
pub fn cursor_paginate_by(
    items: Vec<serde_json::Value>,
    page: &CursorPage,
    key: &str,
) -> Result<(Vec<serde_json::Value>, Option<String>), ApiError> {
    cursor_page_of(items, page, |v| {
        v.get(key).and_then(serde_json::Value::as_str)
    })
}

/// [`cursor_paginate`] for any items, `id` naming each one.
pub fn cursor_page_of<T>(
    items: Vec<T>,
    page: &CursorPage,
    id: impl Fn(&T) -> Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match &page.after {
        None => 0,
        Some(after) => {
            items
                .iter()
                .position(|v| id(v) == Some(after.as_str()))
                .ok_or_else(|| {
                    ApiError::BadRequest("cursor: its item is no longer in the list".into())
                })?
                + 1
        }
    };
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(start).take(page.size).collect();
    let next = (start + out.len() < total)
        .then(|| out.last().and_then(&id))
        .flatten()
        .map(encode_cursor);
    Ok((out, next))
}

/// Applies `page` (offset, limit) to a list.
pub fn paginate<T>(items: Vec<T>, page: Option<(usize, usize)>) -> Vec<T> {
    match page {
        None => items,
        Some((offset, limit)) => items.into_iter().skip(offset).take(limit).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let p = Params::parse(Some(
            "origin=x&filter_test.status=FAIL&filter_test.status=PASS&limit=2",
        ));
        assert_eq!(p.origin(), "x");
        assert_eq!(p.filters().unwrap().len(), 1);
        assert_eq!(p.page().unwrap(), Some((0, 2)));
        assert!(p.int("limit", 5, 6).is_err());
        let t = Params::parse(Some("s=1700000000.5"))
            .timestamp("s")
            .unwrap()
            .unwrap();
        assert_eq!(t.timestamp_micros(), 1_700_000_000_500_000);
        assert!(Params::parse(Some("s=abc")).timestamp("s").is_err());
    }
}
