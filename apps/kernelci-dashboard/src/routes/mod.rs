//! The route handlers, one module per upstream route family.

pub mod hardware;
pub mod issue;
pub mod items;
pub mod misc;
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
    if let Some(page) = p.cursor()? {
        let (items, next) = crate::params::cursor_paginate(items, &page)?;
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
