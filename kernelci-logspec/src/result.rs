//! The result of a parse: upstream's data dictionary (`output` and `output_full`), plus what
//! we find beyond upstream, kept apart so the compat output never changes.

use crate::Parser;
use crate::extra::Finding;
use crate::pyjson;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// The value of one error attribute, as upstream stores it on its error objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// A string; an empty string is dropped from the default output.
    Str(String),
    /// Python's `None`, printed as `null`.
    Null,
    /// A list of strings (call traces, modules).
    List(Vec<String>),
}

impl AttrValue {
    fn to_json(&self) -> Value {
        match self {
            AttrValue::Str(s) => Value::String(s.clone()),
            AttrValue::Null => Value::Null,
            AttrValue::List(items) => {
                Value::Array(items.iter().cloned().map(Value::String).collect())
            }
        }
    }

    /// Python truthiness, which decides whether a field enters a signature.
    fn is_truthy(&self) -> bool {
        match self {
            AttrValue::Str(s) => !s.is_empty(),
            AttrValue::Null => false,
            AttrValue::List(items) => !items.is_empty(),
        }
    }
}

/// One error found in a log, with upstream's attributes and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogError {
    /// Dotted error class, e.g. `kbuild.compiler.error` or `linux.kernel.panic`.
    pub error_type: String,
    /// One-line description.
    pub error_summary: String,
    /// The class-specific public attributes (`script`, `target`, `src_file`, `location`,
    /// `hardware`, `call_trace`, `modules`, ...), in the order upstream sets them.
    pub attributes: Vec<(String, AttrValue)>,
    /// The log excerpt for this error (upstream `_report`).
    pub report: String,
    /// Names of the fields that make up the signature, in order.
    pub signature_fields: Vec<String>,
    /// SHA-1 signature (40 hex digits), or the empty string for `kbuild.unknown`.
    pub signature: String,
    /// Location signature, for compiler errors only (upstream `_signature_loc`).
    pub signature_loc: Option<String>,
    /// 1-based line of the normalized log where the error was detected. Not part of the
    /// upstream output.
    pub line: Option<u64>,
}

impl LogError {
    /// A new error with upstream's default signature fields (`error_type`, `error_summary`).
    pub(crate) fn new(error_type: impl Into<String>) -> Self {
        LogError {
            error_type: error_type.into(),
            error_summary: String::new(),
            attributes: Vec::new(),
            report: String::new(),
            signature_fields: vec!["error_type".into(), "error_summary".into()],
            signature: String::new(),
            signature_loc: None,
            line: None,
        }
    }

    /// Sets (or replaces) an attribute, keeping the first-set order.
    pub(crate) fn set(&mut self, name: &str, value: AttrValue) {
        match self.attributes.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((name.to_string(), value)),
        }
    }

    /// Sets a string attribute.
    pub(crate) fn set_str(&mut self, name: &str, value: impl Into<String>) {
        self.set(name, AttrValue::Str(value.into()));
    }

    /// An attribute by name (`error_type` and `error_summary` included).
    pub fn attribute(&self, name: &str) -> Option<AttrValue> {
        match name {
            "error_type" => Some(AttrValue::Str(self.error_type.clone())),
            "error_summary" => Some(AttrValue::Str(self.error_summary.clone())),
            _ => self
                .attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// A string attribute by name, if set to a string.
    pub fn attribute_str(&self, name: &str) -> Option<&str> {
        match name {
            "error_type" => Some(&self.error_type),
            "error_summary" => Some(&self.error_summary),
            _ => self.attributes.iter().find_map(|(k, v)| match v {
                AttrValue::Str(s) if k == name => Some(s.as_str()),
                _ => None,
            }),
        }
    }

    /// Computes `_signature` (upstream `Error._generate_signature`), and `_signature_loc`
    /// too when `with_location` is set (compiler errors).
    pub(crate) fn generate_signature(&mut self, with_location: bool) {
        self.signature = self.signature_over(|_| true);
        if with_location {
            self.signature_loc =
                Some(self.signature_over(|f| f != "error_summary" && f != "position"));
        }
    }

    fn signature_over(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut object = Map::new();
        for field in self.signature_fields.iter().filter(|f| keep(f)) {
            if let Some(value) = self.attribute(field).filter(AttrValue::is_truthy) {
                object.insert(field.clone(), value.to_json());
            }
        }
        signature(&Value::Object(object))
    }

    /// The error as upstream serializes it: hidden `_` keys only when `full`, and without
    /// empty-string attributes unless `full`.
    pub fn to_json(&self, full: bool) -> Value {
        let mut object = Map::new();
        let mut put = |key: &str, value: &AttrValue| {
            if full || *value != AttrValue::Str(String::new()) {
                object.insert(key.to_string(), value.to_json());
            }
        };
        put("error_type", &AttrValue::Str(self.error_type.clone()));
        put("error_summary", &AttrValue::Str(self.error_summary.clone()));
        for (key, value) in &self.attributes {
            put(key, value);
        }
        if full {
            object.insert("_report".into(), Value::String(self.report.clone()));
            object.insert("_signature".into(), Value::String(self.signature.clone()));
            object.insert("_signature_fields".into(), strings(&self.signature_fields));
            if let Some(loc) = &self.signature_loc {
                object.insert("_signature_loc".into(), Value::String(loc.clone()));
                object.insert("_add_signature_loc".into(), Value::Bool(true));
            }
        }
        sorted(object)
    }
}

/// The result of parsing one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseResult {
    /// The parser that produced it.
    pub parser: Parser,
    /// Every error found, in order (kbuild: at most one).
    pub errors: Vec<LogError>,
    /// The state keys (`bootloader.done`, `linux.boot.prompt`, ...), in the order set.
    pub states: Vec<(String, bool)>,
    /// Offset in code points where the last state stopped (upstream `_match_end`).
    pub match_end: u64,
    /// State keys that make up the parse-level signature (upstream `_signature_fields`).
    pub signature_fields: Vec<String>,
    /// One line per state that produced one (upstream `_states_summary`).
    pub states_summary: Vec<String>,
    /// Parse-level signature; `None` when no state added signature fields (kbuild).
    pub signature: Option<String>,
    /// Findings beyond upstream (KASAN, Oops, lockups, ...); empty unless asked for.
    pub extra: Vec<Finding>,
    /// True when a look-ahead hit the reader's window limit, so the compat result may differ
    /// from upstream's for this (pathological) log.
    pub window_limited: bool,
}

impl ParseResult {
    /// The value of a state key, if the state that sets it ran.
    pub fn state(&self, key: &str) -> Option<bool> {
        self.states.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// True when upstream would report at least one error.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Upstream's default result (`logspec.py -o json`): no `_` keys, no empty-string
    /// error attributes.
    pub fn output(&self) -> Value {
        self.to_value(false)
    }

    /// Upstream's full result (`logspec.py -o json --json-full`).
    pub fn output_full(&self) -> Value {
        self.to_value(true)
    }

    /// The result as upstream's command line prints it (`indent=4`, sorted keys).
    pub fn to_upstream_json(&self, full: bool) -> String {
        pyjson::dumps_indented(&self.to_value(full))
    }

    /// The beyond-upstream findings as a JSON array.
    pub fn extra_json(&self) -> Value {
        Value::Array(self.extra.iter().map(Finding::to_json).collect())
    }

    fn to_value(&self, full: bool) -> Value {
        let mut object = Map::new();
        for (key, value) in &self.states {
            object.insert(key.clone(), Value::Bool(*value));
        }
        let errors = self.errors.iter().map(|e| e.to_json(full)).collect();
        object.insert("errors".into(), Value::Array(errors));
        if full {
            object.insert("_match_end".into(), Value::from(self.match_end));
            object.insert("_signature_fields".into(), strings(&self.signature_fields));
            object.insert("_states_summary".into(), strings(&self.states_summary));
            let signature = self.signature.clone().map_or(Value::Null, Value::String);
            object.insert("_signature".into(), signature);
        }
        sorted(object)
    }

    /// Computes the parse-level signature (upstream `parse_log._generate_signature`): every
    /// listed state key, false values included.
    pub(crate) fn generate_signature(&mut self) {
        if self.signature_fields.is_empty() {
            self.signature = None;
            return;
        }
        let mut object = Map::new();
        for field in &self.signature_fields {
            let value = self.state(field).map_or(Value::Null, Value::Bool);
            object.insert(field.clone(), value);
        }
        self.signature = Some(signature(&Value::Object(object)));
    }
}

/// SHA-1 (lower-case hex) of Python's `json.dumps(obj, sort_keys=True, ensure_ascii=False)`.
pub fn signature(object: &Value) -> String {
    sha1_hex(pyjson::dumps_compact(object).as_bytes())
}

fn sha1_hex(bytes: &[u8]) -> String {
    let digest = Sha1::digest(bytes);
    digest
        .iter()
        .fold(String::with_capacity(40), |mut hex, byte| {
            use std::fmt::Write;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn sorted(object: Map<String, Value>) -> Value {
    let mut entries: Vec<(String, Value)> = object.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(entries.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readme_worked_examples() {
        let kbuild_001 = json!({
            "error_summary": "label at end of compound statement",
            "error_type": "kbuild.compiler.error",
            "line_no": "1266",
            "position": "3",
            "src_file": "drivers/gpu/drm/nouveau/nvkm/subdev/gsp/r535.c",
            "target": "drivers/gpu/drm/nouveau/nvkm/subdev/gsp/r535.o"
        });
        assert_eq!(
            signature(&kbuild_001),
            "bdff5ace6a40728f86df44c842c1020c71f9fe89"
        );
        assert_eq!(
            signature(&json!({"bootloader.done": false})),
            "e602fca280d85d8e603f7c0aff68363bb0cd7993"
        );
    }
}
