//! Strict JSON parsing: bytes to a [`serde_json::Value`].
//!
//! Stricter than Python's `json.loads` (which the KCIDB ingesters use), deliberately:
//! `NaN`/`Infinity`, numbers beyond the f64 range (Python makes them infinite), unpaired
//! surrogate escapes (Python keeps them, then cannot encode them), duplicate keys (Python
//! keeps the last silently) and nesting deeper than 128 levels (Python allows about 1000)
//! are all refused here. See `NOTES.md`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::ParseError;

/// Parses a submission's bytes: UTF-8 without a byte-order mark, one JSON value, no
/// duplicate keys.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        return Err(ParseError::ByteOrderMark);
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    value.map_err(|e| match duplicate.take() {
        Some(key) => ParseError::DuplicateKey {
            key,
            line: e.line(),
            column: e.column(),
        },
        None => syntax(&e),
    })
}

pub(crate) fn syntax(e: &serde_json::Error) -> ParseError {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    ParseError::Syntax {
        message,
        line: e.line(),
        column: e.column(),
    }
}

/// Builds a [`Value`] like serde_json's own visitor, but fails on duplicate keys (recording
/// the key, since the error type only carries a message).
#[derive(Clone, Copy)]
pub(crate) struct StrictValue<'a> {
    pub(crate) duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let value = access.next_value_seed(self)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ParseError {
        parse_json(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_json() {
        let v = parse_json(br#"{"a": [1, -2, 3.5, "x", null, true], "b": {}}"#).unwrap();
        assert_eq!(v["a"][2], 3.5);
        assert_eq!(v["a"][1], -2);
    }

    #[test]
    fn refuses_what_python_accepts() {
        assert!(matches!(err(r#"{"a": NaN}"#), ParseError::Syntax { .. }));
        assert!(matches!(
            err(r#"{"a": Infinity}"#),
            ParseError::Syntax { .. }
        ));
        assert!(matches!(err(r#"{"a": 1e400}"#), ParseError::Syntax { .. }));
        assert!(matches!(
            err(r#"{"a": "\ud800"}"#),
            ParseError::Syntax { .. }
        ));
        match err("{\"a\": 1,\n \"a\": 2}") {
            ParseError::DuplicateKey { key, line, .. } => {
                assert_eq!(key, "a");
                assert_eq!(line, 2);
            }
            other => panic!("{other:?}"),
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(err(&deep), ParseError::Syntax { .. }));
    }

    #[test]
    fn refuses_broken_input() {
        assert_eq!(parse_json(b""), Err(ParseError::Empty));
        assert_eq!(
            parse_json(b"{\"a\": \"\xff\"}"),
            Err(ParseError::InvalidUtf8 { offset: 7 })
        );
        assert_eq!(
            parse_json(b"\xef\xbb\xbf{}"),
            Err(ParseError::ByteOrderMark)
        );
        for bad in [
            " \n ",
            "{} {}",
            "[1,]",
            "{'a': 1}",
            "{\"a\": \"\t\"}",
            "// c\n{}",
            "[\"\u{0}\"]",
        ] {
            assert!(matches!(err(bad), ParseError::Syntax { .. }), "{bad:?}");
        }
        match err("{\n  \"a\": ]") {
            ParseError::Syntax {
                message,
                line,
                column,
            } => {
                assert_eq!((line, column), (2, 8));
                assert!(!message.contains("line"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
