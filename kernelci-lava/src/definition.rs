//! A rendered LAVA job definition checked and normalized before submission.
//!
//! Upstream loads the rendered template and dumps it again (`yaml.dump(yaml.load(...))`) so
//! that LAVA gets plain, regular YAML (multi-line commands, odd quoting). [`normalize`] does
//! the same — serde_yaml_ng reads it, merge keys (`<<`) are applied, [`crate::yaml_emit`]
//! writes it — and checks the keys LAVA and the callback need, so that a template mistake is
//! a precise error here rather than a refusal from the lab or a callback we cannot place.
//!
//! The text is read as YAML 1.2 (as everywhere in kernelci-rs): `yes`/`no`/`on`/`off` are
//! strings, and are written quoted so that LAVA (YAML 1.1) reads the same strings; write
//! `true`/`false` in templates. Keys keep their order (PyYAML's dump sorts them).
//! `metadata.node_id` must be a string: a node id made of digits only (or digits and one
//! `e`) would otherwise be read as a number and lose digits — quote it in templates.

use serde_yaml_ng::{Mapping, Value};

use crate::yaml_emit;

/// A checked job definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDefinition {
    /// The normalized YAML to submit.
    pub yaml: String,
    /// `device_type`.
    pub device_type: String,
    /// `job_name`.
    pub job_name: String,
    /// `metadata.node_id`, when present.
    pub node_id: Option<String>,
}

/// Why a rendered job definition cannot be submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The text does not parse.
    #[error("job definition: not YAML: {0}")]
    NotYaml(String),
    /// The document is not a mapping.
    #[error("job definition: not a mapping")]
    NotMapping,
    /// A key is missing or has the wrong shape.
    #[error("job definition: {key}: {problem}")]
    Invalid {
        /// The key (`actions`, `timeouts.job`, `metadata.node_id`, ...).
        key: String,
        /// What is wrong (`missing`, `must be a string`, ...).
        problem: String,
    },
}

fn invalid(key: &str, problem: &str) -> DefinitionError {
    DefinitionError::Invalid {
        key: key.to_string(),
        problem: problem.to_string(),
    }
}

/// Parses, checks and re-writes a rendered job definition. Required: `job_name` and
/// `device_type` (non-empty strings), `actions` (a non-empty list), `timeouts` (a mapping
/// with `job`). Checked when present: `priority` (0-100 or `high`/`medium`/`low`), `notify`
/// and `metadata` (mappings), `metadata.node_id` (a string).
pub fn normalize(rendered: &str) -> Result<JobDefinition, DefinitionError> {
    let mut doc: Value =
        serde_yaml_ng::from_str(rendered).map_err(|e| DefinitionError::NotYaml(e.to_string()))?;
    apply_merges(&mut doc)?;
    let Value::Mapping(map) = &doc else {
        return Err(DefinitionError::NotMapping);
    };
    let job_name = required_string(map, "job_name")?;
    let device_type = required_string(map, "device_type")?;
    match map.get("actions") {
        None => return Err(invalid("actions", "missing")),
        Some(Value::Sequence(s)) if s.is_empty() => {
            return Err(invalid("actions", "must not be empty"));
        }
        Some(Value::Sequence(_)) => {}
        Some(_) => return Err(invalid("actions", "must be a list")),
    }
    match map.get("timeouts") {
        None => return Err(invalid("timeouts", "missing")),
        Some(Value::Mapping(t)) => {
            if t.get("job").is_none() {
                return Err(invalid("timeouts.job", "missing"));
            }
        }
        Some(_) => return Err(invalid("timeouts", "must be a mapping")),
    }
    if let Some(priority) = map.get("priority") {
        let ok = match priority {
            Value::Number(n) => n.as_u64().is_some_and(|p| p <= 100),
            Value::String(s) => matches!(s.as_str(), "high" | "medium" | "low"),
            _ => false,
        };
        if !ok {
            return Err(invalid(
                "priority",
                "must be an integer from 0 to 100, or high, medium, low",
            ));
        }
    }
    if let Some(notify) = map.get("notify")
        && !notify.is_mapping()
    {
        return Err(invalid("notify", "must be a mapping"));
    }
    let node_id = match map.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Mapping(meta)) => match meta.get("node_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(invalid(
                    "metadata.node_id",
                    "must be a string (quote it in the template)",
                ));
            }
        },
        Some(_) => return Err(invalid("metadata", "must be a mapping")),
    };
    let yaml = yaml_emit::to_string(&doc).map_err(|e| match e {
        yaml_emit::EmitError::Tagged(key) => invalid(&key, "YAML tags are not supported"),
        yaml_emit::EmitError::ComplexKey(key) => invalid(&key, "a mapping key must be a scalar"),
    })?;
    Ok(JobDefinition {
        yaml,
        device_type,
        job_name,
        node_id,
    })
}

fn required_string(map: &Mapping, key: &str) -> Result<String, DefinitionError> {
    match map.get(key) {
        None | Some(Value::Null) => Err(invalid(key, "missing")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(invalid(key, "must not be empty")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(key, "must be a string")),
    }
}

/// Applies `<<` merge keys until none is left (a merged mapping may bring its own).
fn apply_merges(doc: &mut Value) -> Result<(), DefinitionError> {
    for _ in 0..64 {
        if !has_merge_key(doc) {
            return Ok(());
        }
        doc.apply_merge()
            .map_err(|e| DefinitionError::NotYaml(format!("merge key: {e}")))?;
    }
    Err(DefinitionError::NotYaml(
        "merge keys nested too deep".into(),
    ))
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        Value::Sequence(s) => s.iter().any(has_merge_key),
        Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
job_name: "[staging] 65a1b2c3d4e5f60718293a4b baseline-x86"
device_type: qemu
priority: 34
visibility: public
timeouts:
  job: {minutes: 30}
  queue: {days: 2}
notify:
  callback: {url: "http://cb/node/65a1", token: kernelci-callback, method: POST, dataset: all, content-type: json}
metadata: {node_id: "0123456789", api_config_name: staging}
context: {extra_kernel_args: "console=ttyS0 quiet", no_kvm: 'yes'}
actions:
- deploy:
    to: tmpfs
    kernel: {url: "http://storage/bzImage", type: bzimage}
- boot:
    method: qemu
    prompts: ['/ #']
    commands: |
      setenv a b
      boot
- test:
    definitions:
    - {from: inline, name: baseline, path: inline/baseline.yaml}
"#;

    #[test]
    fn normalizes_and_reads_back_the_same_data() {
        let def = normalize(GOOD).unwrap();
        assert_eq!(def.device_type, "qemu");
        assert_eq!(def.node_id.as_deref(), Some("0123456789"));
        assert!(def.job_name.starts_with("[staging]"));
        let original: Value = serde_yaml_ng::from_str(GOOD).unwrap();
        let back: Value = serde_yaml_ng::from_str(&def.yaml).unwrap();
        assert_eq!(back, original);
        // Strings YAML 1.1 would read otherwise stay quoted.
        assert!(def.yaml.contains("no_kvm: \"yes\""), "{}", def.yaml);
        assert!(def.yaml.contains("node_id: \"0123456789\""));
        // Normalizing is idempotent.
        assert_eq!(normalize(&def.yaml).unwrap().yaml, def.yaml);
    }

    #[test]
    fn merge_keys_are_applied() {
        let text = "base: &b {minutes: 5}\njob_name: j\ndevice_type: d\nactions: [x]\n\
                    timeouts: {job: {<<: *b, seconds: 3}}\n";
        let def = normalize(text).unwrap();
        assert!(!def.yaml.contains("<<"));
        let back: Value = serde_yaml_ng::from_str(&def.yaml).unwrap();
        assert_eq!(back["timeouts"]["job"]["minutes"], Value::from(5));
    }

    #[test]
    fn precise_errors() {
        let base = "job_name: j\ndevice_type: d\nactions: [x]\ntimeouts: {job: {minutes: 1}}\n";
        assert!(normalize(base).is_ok());
        let cases: &[(&str, &str)] = &[
            ("job_name: [", "job definition: not YAML: "),
            ("- a", "job definition: not a mapping"),
            (
                "device_type: d\nactions: [x]\ntimeouts: {job: 1}",
                "job definition: job_name: missing",
            ),
            (
                "job_name: 3\ndevice_type: d",
                "job definition: job_name: must be a string",
            ),
            (
                "job_name: j\ndevice_type: ''",
                "job definition: device_type: must not be empty",
            ),
            (
                "job_name: j\ndevice_type: d\ntimeouts: {job: 1}",
                "job definition: actions: missing",
            ),
            (
                "job_name: j\ndevice_type: d\nactions: []",
                "job definition: actions: must not be empty",
            ),
            (
                "job_name: j\ndevice_type: d\nactions: {a: 1}",
                "job definition: actions: must be a list",
            ),
            (
                "job_name: j\ndevice_type: d\nactions: [x]",
                "job definition: timeouts: missing",
            ),
            (
                "job_name: j\ndevice_type: d\nactions: [x]\ntimeouts: {action: 1}",
                "job definition: timeouts.job: missing",
            ),
        ];
        for (text, expected) in cases {
            let e = normalize(text).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{text:?}: {e}");
        }
        let with = |extra: &str| {
            normalize(&format!("{base}{extra}"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            with("priority: 101\n"),
            "job definition: priority: must be an integer from 0 to 100, or high, medium, low"
        );
        assert_eq!(
            with("notify: 1\n"),
            "job definition: notify: must be a mapping"
        );
        assert_eq!(
            with("metadata: [1]\n"),
            "job definition: metadata: must be a mapping"
        );
        assert_eq!(
            with("metadata: {node_id: 123}\n"),
            "job definition: metadata.node_id: must be a string (quote it in the template)"
        );
        assert_eq!(
            with("context: {a: !custom 1}\n"),
            "job definition: context.a: YAML tags are not supported"
        );
        assert!(normalize(&format!("{base}priority: medium\n")).is_ok());
    }
}
