//! YAML text into `serde_json::Value`, giving the data PyYAML's `yaml.safe_load` gives.
//!
//! The parser is `serde_yaml_ng` (hidden here, so a later swap is one file). Its `Value` keeps
//! merge keys (`<<`) as plain keys; [`from_str`] resolves them the way PyYAML's
//! `SafeConstructor.flatten_mapping` does, including the key order PyYAML builds (keys brought
//! in by a merge first, in merge order, then the mapping's own keys; an explicit key overrides
//! the merged value but keeps the merged key's position). Merges chain: the merged mapping is
//! flattened first, so `a: &a {<<: *b}` works whatever the depth. This gives the same data as
//! calling `serde_yaml_ng::Value::apply_merge` in a loop until no `<<` is left (a test checks
//! both on every upstream file), plus PyYAML's key order.
//!
//! Known differences from PyYAML (none occurs in the upstream configuration):
//! - YAML 1.2 scalars: `yes`/`no`/`on`/`off` stay strings, `1e3` is a float, `0o17` an
//!   integer, `1:30` a string; timestamps stay strings.
//! - A mapping with the same key twice is an error here (PyYAML keeps the last value): a
//!   repeated job or platform name is almost always a mistake.
//! - Non-string mapping keys become strings the way `json.dump` writes them (`1`, `true`,
//!   `null`); sequence or mapping keys are an error.
//! - Custom tags (`!foo`) are an error, as in `safe_load`; non-finite floats are an error
//!   (JSON cannot hold them).

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;
use std::path::Path;
use thiserror::Error;

/// A YAML document that could not be read or turned into JSON-compatible data.
#[derive(Debug, Error)]
#[error("{file}{location}: {problem}")]
pub struct YamlError {
    /// The file (or name given by the caller) the text came from.
    pub file: String,
    /// `:line:column` (1-based) when the parser knows it, else empty.
    pub location: String,
    /// What is wrong.
    pub problem: String,
}

impl YamlError {
    fn new(file: &str, problem: impl Into<String>) -> Self {
        YamlError {
            file: file.to_string(),
            location: String::new(),
            problem: problem.into(),
        }
    }
}

/// Parses one YAML document (`file` only names it in errors) into plain data, merge keys
/// applied. An empty document gives `Value::Null`, as `safe_load` gives `None`.
pub fn from_str(text: &str, file: &str) -> Result<Value, YamlError> {
    let raw: Yaml = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        YamlError {
            file: file.to_string(),
            location,
            problem: e.to_string(),
        }
    })?;
    let flat = flatten(raw).map_err(|p| YamlError::new(file, p))?;
    let mut path = Vec::new();
    to_json(flat, &mut path).map_err(|p| YamlError::new(file, p))
}

/// Reads and parses a YAML file (UTF-8) with [`from_str`]; errors name the path.
pub fn from_path(path: &Path) -> Result<Value, YamlError> {
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| YamlError::new(&name, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| YamlError::new(&name, format!("not valid UTF-8: {e}")))?;
    from_str(&text, &name)
}

/// The merge-key loop the rust-ecosystem spec describes (`apply_merge` until no `<<` is left),
/// kept for the cross-check test: same data as [`from_str`], key order not PyYAML's.
#[doc(hidden)]
pub fn from_str_apply_merge_loop(text: &str, file: &str) -> Result<Value, YamlError> {
    let mut raw: Yaml =
        serde_yaml_ng::from_str(text).map_err(|e| YamlError::new(file, e.to_string()))?;
    let mut passes = 0;
    while has_merge_key(&raw) {
        passes += 1;
        if passes > 64 {
            return Err(YamlError::new(
                file,
                "merge keys still present after 64 passes",
            ));
        }
        raw.apply_merge()
            .map_err(|e| YamlError::new(file, e.to_string()))?;
    }
    let mut path = Vec::new();
    to_json(raw, &mut path).map_err(|p| YamlError::new(file, p))
}

fn is_merge_key(k: &Yaml) -> bool {
    matches!(k, Yaml::String(s) if s == "<<")
}

fn has_merge_key(v: &Yaml) -> bool {
    match v {
        Yaml::Mapping(m) => m.iter().any(|(k, v)| is_merge_key(k) || has_merge_key(v)),
        Yaml::Sequence(s) => s.iter().any(has_merge_key),
        Yaml::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// PyYAML's `flatten_mapping` over the whole tree.
fn flatten(v: Yaml) -> Result<Yaml, String> {
    match v {
        Yaml::Mapping(m) => {
            let mut merged: Vec<(Yaml, Yaml)> = Vec::new();
            let mut own: Vec<(Yaml, Yaml)> = Vec::new();
            for (k, val) in m {
                if is_merge_key(&k) {
                    match val {
                        Yaml::Mapping(_) => {
                            if let Yaml::Mapping(sub) = flatten(val)? {
                                merged.extend(sub);
                            }
                        }
                        Yaml::Sequence(items) => {
                            let mut subs = Vec::with_capacity(items.len());
                            for item in items {
                                match flatten(item)? {
                                    Yaml::Mapping(sub) => subs.push(sub),
                                    other => {
                                        return Err(format!(
                                            "merge key `<<`: expected a mapping for merging, \
                                             found {}",
                                            kind_of(&other)
                                        ));
                                    }
                                }
                            }
                            // PyYAML: the first mapping of the list wins, so it goes last.
                            for sub in subs.into_iter().rev() {
                                merged.extend(sub);
                            }
                        }
                        other => {
                            return Err(format!(
                                "merge key `<<`: expected a mapping or list of mappings, \
                                 found {}",
                                kind_of(&other)
                            ));
                        }
                    }
                } else {
                    own.push((k, flatten(val)?));
                }
            }
            let mut out = serde_yaml_ng::Mapping::with_capacity(merged.len() + own.len());
            for (k, v) in merged.into_iter().chain(own) {
                // Insert keeps the first position of a key and takes the last value: Python's
                // dict built from `merge + node.value`.
                out.insert(k, v);
            }
            Ok(Yaml::Mapping(out))
        }
        Yaml::Sequence(items) => Ok(Yaml::Sequence(
            items.into_iter().map(flatten).collect::<Result<_, _>>()?,
        )),
        Yaml::Tagged(mut t) => {
            t.value = flatten(t.value)?;
            Ok(Yaml::Tagged(t))
        }
        other => Ok(other),
    }
}

fn kind_of(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a sequence",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "top level".to_string()
    } else {
        path.join(".")
    }
}

fn number(n: &serde_yaml_ng::Number, path: &[String]) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        Ok(Value::from(i))
    } else if let Some(u) = n.as_u64() {
        Ok(Value::from(u))
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{}: non-finite float {n} cannot be represented", at(path)))
    }
}

fn key_string(k: Yaml, path: &[String]) -> Result<String, String> {
    match k {
        Yaml::String(s) => Ok(s),
        Yaml::Null => Ok("null".to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Number(n) => match number(&n, path)? {
            Value::Number(n) => Ok(n.to_string()),
            _ => Ok(String::new()),
        },
        other => Err(format!(
            "{}: mapping key is {}, only scalar keys are supported",
            at(path),
            kind_of(&other)
        )),
    }
}

fn to_json(v: Yaml, path: &mut Vec<String>) -> Result<Value, String> {
    Ok(match v {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number(&n, path)?,
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(to_json(item, path)?);
                path.pop();
            }
            Value::Array(out)
        }
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let key = key_string(k, path)?;
                path.push(key.clone());
                let val = to_json(val, path)?;
                path.pop();
                out.insert(key, val);
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => {
            return Err(format!(
                "{}: unsupported tag {} (safe_load has no constructor for it)",
                at(path),
                t.tag
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chained_merges_and_order() {
        let text = "
base: &base {a: 1, b: 2}
mid: &mid {<<: *base, b: 3, c: 4}
top: {x: 0, <<: *mid, a: 9}
";
        let v = from_str(text, "t.yaml").unwrap();
        assert_eq!(v["top"], json!({"a": 9, "b": 3, "c": 4, "x": 0}));
        let keys: Vec<_> = v["top"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "c", "x"]);
        assert_eq!(v, from_str_apply_merge_loop(text, "t.yaml").unwrap());
    }

    #[test]
    fn merge_list_first_wins() {
        let text = "
a: &a {k: a, only_a: 1}
b: &b {k: b, only_b: 1}
m: {<<: [*a, *b]}
";
        let v = from_str(text, "t.yaml").unwrap();
        assert_eq!(v["m"], json!({"k": "a", "only_a": 1, "only_b": 1}));
    }

    #[test]
    fn errors_name_file() {
        let e = from_str("a: [1, 2", "bad.yaml").unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml:"), "{e}");
        let e = from_str("a: !custom 1", "tag.yaml").unwrap_err();
        assert!(
            e.to_string().contains("tag.yaml: a: unsupported tag"),
            "{e}"
        );
        let e = from_str("a: {<<: 3}", "m.yaml").unwrap_err();
        assert!(e.to_string().contains("m.yaml: merge key"), "{e}");
        let e = from_str("a: .nan", "f.yaml").unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
        let e = from_str("a: 1\na: 2\n", "d.yaml").unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        assert!(from_str(&text, "bomb.yaml").is_err());
    }

    #[test]
    fn scalars_and_empty() {
        assert_eq!(from_str("", "e.yaml").unwrap(), Value::Null);
        let v = from_str("a:\nb: true\nc: 12\nd: '012'\n1: x\n", "s.yaml").unwrap();
        assert_eq!(
            v,
            json!({"a": null, "b": true, "c": 12, "d": "012", "1": "x"})
        );
        let v = from_str("c: [a, rbrcm,bcm2837;, '\"fsl']", "s.yaml").unwrap();
        assert_eq!(v["c"], json!(["a", "rbrcm", "bcm2837;", "\"fsl"]));
    }
}
