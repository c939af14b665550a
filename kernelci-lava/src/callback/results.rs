//! The callback's `results`: one YAML text per LAVA test suite, each a list of test cases as
//! lava-server's `export_testcase` writes them (`name`, `result`, `measurement`, `unit`,
//! `metadata`, ...; numbers as quoted strings, missing values as the string `None`).
//!
//! Reading is lenient inside a list: a case that is not a mapping, or has no name, is
//! skipped; a field of an unexpected type reads as absent. Only a value that is not a list
//! at all is an error.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::scalar::Text;

/// One test case of a suite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestCase {
    /// `name`.
    pub name: String,
    /// `result` as LAVA writes it (`pass`, `fail`, `skip`, `unknown`).
    pub result: Option<String>,
    /// `metadata.set`: the test set the case belongs to.
    pub set: Option<String>,
    /// `metadata.error_type` (the `lava` suite's `job` case of a failed job).
    pub error_type: Option<String>,
    /// `metadata.error_msg`.
    pub error_msg: Option<String>,
    /// `measurement`, unless LAVA's `None`.
    pub measurement: Option<String>,
    /// `unit`, unless empty or `None`.
    pub unit: Option<String>,
}

/// A test suite: its LAVA name (`lava`, `0_baseline`, ...) and its cases in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suite {
    /// The suite name as LAVA gives it.
    pub name: String,
    /// The test cases.
    pub cases: Vec<TestCase>,
}

impl Suite {
    /// The name without LAVA's `<n>_` prefix: the text after the first `_` (Python's
    /// `partition("_")[2]`, so empty when there is no `_`).
    pub fn short_name(&self) -> &str {
        after_first_underscore(&self.name)
    }
}

/// Python's `name.partition("_")[2]`.
pub fn after_first_underscore(name: &str) -> &str {
    name.split_once('_').map(|(_, rest)| rest).unwrap_or("")
}

/// Reads a suite's YAML text; an empty or null document is an empty suite.
pub fn parse_text(text: &str) -> Result<Vec<TestCase>, String> {
    let raw: Option<Vec<RawCase>> = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(RawCase::kept)
        .collect())
}

/// Reads a suite given as a JSON list.
pub fn parse_json(items: &[serde_json::Value]) -> Vec<TestCase> {
    items
        .iter()
        .filter_map(|item| RawCase::deserialize(item).ok())
        .filter_map(RawCase::kept)
        .collect()
}

#[derive(Default)]
struct RawCase {
    mapping: bool,
    name: Text,
    result: Text,
    measurement: Text,
    unit: Text,
    meta: RawMeta,
}

impl RawCase {
    fn kept(self) -> Option<TestCase> {
        if !self.mapping {
            return None;
        }
        let name = self.name.0.filter(|n| !n.is_empty())?;
        Some(TestCase {
            name,
            result: self.result.meaningful(),
            set: self.meta.set.0.filter(|s| !s.is_empty()),
            error_type: self.meta.error_type.meaningful(),
            error_msg: self.meta.error_msg.meaningful(),
            measurement: self.measurement.meaningful(),
            unit: self.unit.meaningful(),
        })
    }
}

#[derive(Default)]
struct RawMeta {
    set: Text,
    error_type: Text,
    error_msg: Text,
}

/// Implements the "mapping or anything else" visitor for a raw type filled from map keys.
macro_rules! lenient_map {
    ($ty:ty, $what:literal, |$entry:ident, $key:ident, $map:ident| $fill:block) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<$ty, A::Error> {
                        let mut $entry = <$ty>::default();
                        while let Some($key) = $map.next_key::<Text>()? {
                            $fill
                        }
                        Ok($entry)
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(<$ty>::default())
                    }
                    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<$ty, A::Error> {
                        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
                        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
                        Ok(<$ty>::default())
                    }
                    fn visit_str<E: de::Error>(self, _: &str) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_bool<E: de::Error>(self, _: bool) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_i64<E: de::Error>(self, _: i64) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_u64<E: de::Error>(self, _: u64) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_i128<E: de::Error>(self, _: i128) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_u128<E: de::Error>(self, _: u128) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_f64<E: de::Error>(self, _: f64) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_none<E: de::Error>(self) -> Result<$ty, E> {
                        Ok(<$ty>::default())
                    }
                    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$ty, D::Error> {
                        <$ty>::deserialize(d)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

lenient_map!(RawCase, "a test case", |entry, key, map| {
    entry.mapping = true;
    match key.0.as_deref() {
        Some("name") => entry.name = map.next_value()?,
        Some("result") => entry.result = map.next_value()?,
        Some("measurement") => entry.measurement = map.next_value()?,
        Some("unit") => entry.unit = map.next_value()?,
        Some("metadata") => entry.meta = map.next_value()?,
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

lenient_map!(RawMeta, "test case metadata", |entry, key, map| {
    match key.0.as_deref() {
        Some("set") => entry.set = map.next_value()?,
        Some("error_type") => entry.error_type = map.next_value()?,
        Some("error_msg") => entry.error_msg = map.next_value()?,
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lava_export_shape() {
        let text = "\
- id: '18'
  job: '7'
  level: 1.1.1
  log_end_line: ''
  log_start_line: ''
  logged: '2026-11-28 08:06:56.213493+00:00'
  measurement: '10.5000000000'
  metadata: {case: uname, definition: 0_smoke, result: pass, set: basic}
  name: uname
  result: pass
  suite: 0_smoke
  unit: seconds
  url: /results/testcase/18
- {name: job, result: fail, measurement: None, unit: '',
   metadata: {error_type: Infrastructure, error_msg: 'Image file does not exist'}}
- {result: pass}
- just a string
- {name: 42, result: skip, metadata: None}
";
        let cases = parse_text(text).unwrap();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0].name, "uname");
        assert_eq!(cases[0].set.as_deref(), Some("basic"));
        assert_eq!(cases[0].measurement.as_deref(), Some("10.5000000000"));
        assert_eq!(cases[0].unit.as_deref(), Some("seconds"));
        assert_eq!(cases[1].error_type.as_deref(), Some("Infrastructure"));
        assert_eq!(cases[1].measurement, None);
        assert_eq!(cases[1].unit, None);
        assert_eq!(cases[2].name, "42");
        assert_eq!(cases[2].result.as_deref(), Some("skip"));
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(parse_text("").unwrap(), vec![]);
        assert_eq!(parse_text("~").unwrap(), vec![]);
        assert!(parse_text("a: 1").is_err());
        assert!(parse_text("- [").is_err());
    }

    #[test]
    fn short_names() {
        let s = |n: &str| Suite {
            name: n.into(),
            cases: vec![],
        };
        assert_eq!(s("0_baseline").short_name(), "baseline");
        assert_eq!(s("12_ltp_syscalls").short_name(), "ltp_syscalls");
        assert_eq!(s("lava").short_name(), "");
    }
}
