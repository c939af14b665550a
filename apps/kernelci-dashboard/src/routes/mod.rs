//! The route handlers, one module per upstream route family.

pub mod hardware;
pub mod issue;
pub mod items;
pub mod misc;
pub mod regress;
pub mod report;
pub mod tree;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A 200 JSON reply.
pub fn ok(v: Value) -> Response {
    Json(v).into_response()
}

/// A 200 JSON list reply, paged by `limit`/`offset` or `page_size`/`cursor` when the client
/// asks (the shape stays upstream's: `wrap` builds it from the page). With a cursor page,
/// the next page's cursor is in the `X-Next-Cursor` header (absent on the last page).
pub fn ok_list(
    items: Vec<Value>,
    p: &crate::params::Params,
    wrap: impl FnOnce(Vec<Value>) -> Value,
) -> Result<Response, crate::ApiError> {
    ok_list_by(items, "id", p, wrap)
}

/// [`ok_list`] for items whose identity (what a cursor names) is the string member `key`.
pub fn ok_list_by(
    items: Vec<Value>,
    key: &str,
    p: &crate::params::Params,
    wrap: impl FnOnce(Vec<Value>) -> Value,
) -> Result<Response, crate::ApiError> {
    if let Some(page) = p.cursor()? {
        let (items, next) = crate::params::cursor_paginate_by(items, &page, key)?;
        let mut response = ok(wrap(items));
        if let Some(next) = next
            && let Ok(value) = axum::http::HeaderValue::from_str(&next)
        {
            response.headers_mut().insert("x-next-cursor", value);
        }
        return Ok(response);
    }
    Ok(ok(wrap(crate::params::paginate(items, p.page()?))))
}

/// [`ok_list`] of rows serialized straight into the reply `{key: [row, ...]}` (no
/// [`Value`] per item): paged the same way, `id` naming a row for the cursor.
pub fn ok_rows<R: serde::Serialize>(
    rows: Vec<R>,
    p: &crate::params::Params,
    key: &str,
    id: impl Fn(&R) -> &str,
) -> Result<Response, crate::ApiError> {
    let (rows, next) = match p.cursor()? {
        Some(page) => crate::params::cursor_page_of(rows, &page, |r| Some(id(r)))?,
        None => (crate::params::paginate(rows, p.page()?), None),
    };
    let mut response = Json(OneMember { key, value: rows }).into_response();
    if let Some(next) = next
        && let Ok(value) = axum::http::HeaderValue::from_str(&next)
    {
        response.headers_mut().insert("x-next-cursor", value);
    }
    Ok(response)
}

/// `{key: value}`.
struct OneMember<'a, T> {
    key: &'a str,
    value: T,
}

impl<T: serde::Serialize> serde::Serialize for OneMember<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.key, &self.value)?;
        map.end()
    }
}

/// Percent-decodes one path segment (`+` stays `+` unless `plus_is_space`).
pub fn decode_segment(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded segments of `path` after `prefix` (empty trailing segments dropped).
pub fn segments(path: &str, prefix: &str, plus_is_space: bool) -> Vec<String> {
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    let mut segs: Vec<String> = rest
        .split('/')
        .map(|s| decode_segment(s, plus_is_space))
        .collect();
    while segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode_segment("a%2Fb%3A", false), "a/b:");
        assert_eq!(decode_segment("a+b", true), "a b");
        assert_eq!(decode_segment("a%zz%", false), "a%zz%");
        assert_eq!(segments("/api/tree/x/y/", "/api/tree/", false), ["x", "y"]);
    }
}
