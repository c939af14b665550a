//! A LAVA lab's configuration: the `runtimes.<name>` entry of the pipeline YAML (specs/
//! pipeline.md §2.4) plus its secrets from the settings file (`[runtime.<name>]`
//! `runtime_token` / `callback_token`, §10).
//!
//! What it decides: the job priority in the lab's range ([`LabConfig::scale_priority`],
//! §3.4), the template variables LAVA jobs get (`priority`, `notify`), whether a callback's
//! `Authorization` header is one of the lab's tokens, and the REST API base URL.
//!
//! Differences from upstream, on purpose:
//! - `priority: 0` (or `low`) scales every job to 0; upstream tests `if priority:` and so
//!   ignores a zero priority.
//! - `priority_min` greater than `priority_max` is an error (upstream would invert the
//!   range). Neither defaults to `priority` (upstream's default only matters when
//!   `priority` is set, and then `priority` wins anyway).
//! - The notify callback must be `method: POST`, `dataset: all`, `content-type: json` when
//!   given: any other value makes LAVA send something the callback handler cannot read.

use serde_json::{Map, Value};

/// The lab's secrets (never printed by `Debug`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LabSecrets {
    /// The LAVA API token jobs are submitted with; also accepted as a callback token.
    pub runtime_token: Option<String>,
    /// The secret LAVA sends back in the callback's `Authorization` header, when it is not
    /// the runtime token.
    pub callback_token: Option<String>,
}

impl std::fmt::Debug for LabSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("LabSecrets")
            .field("runtime_token", &shown(&self.runtime_token))
            .field("callback_token", &shown(&self.callback_token))
            .finish()
    }
}

/// A configuration value that is wrong, named by its full key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct LabConfigError {
    /// The key, e.g. `runtimes.lava-x.priority_min`.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// `max_queue_depth` when not configured.
pub const DEFAULT_MAX_QUEUE_DEPTH: u32 = 50;
/// `max_queue_depth_priority_factor` when not configured.
pub const DEFAULT_PRIORITY_FACTOR: f64 = 2.0;

/// A LAVA lab (`lab_type: lava` runtime entry).
#[derive(Debug, Clone, PartialEq)]
pub struct LabConfig {
    /// The runtime entry's name (e.g. `lava-collabora`).
    pub name: String,
    /// The lab's base URL; `None` means "pull LAVA" (not implemented here).
    pub url: Option<String>,
    /// `priority`: scales every job's base priority by `priority / 100`.
    pub priority: Option<f64>,
    /// `priority_min`: with `priority_max`, the range base priorities are mapped into.
    pub priority_min: Option<f64>,
    /// `priority_max`.
    pub priority_max: Option<f64>,
    /// The `notify` block as configured (validated), without defaults.
    pub notify: Map<String, Value>,
    /// Queued jobs allowed per online device (default 50).
    pub max_queue_depth: u32,
    /// Skip the queue gate entirely.
    pub disable_queue_limit: bool,
    /// How much more queue high-priority jobs may use (≥ 1, default 2.0).
    pub max_queue_depth_priority_factor: f64,
    /// Tokens from the settings file.
    pub secrets: LabSecrets,
}

impl LabConfig {
    /// Reads a runtime entry's type-specific keys (`fields`, as written in the YAML). Unknown
    /// keys (`queue_timeout`, which upstream parses but never uses, among them) are ignored.
    pub fn from_runtime(
        name: &str,
        fields: &Map<String, Value>,
        secrets: LabSecrets,
    ) -> Result<LabConfig, LabConfigError> {
        let err = |key: &str, problem: &str| LabConfigError {
            key: format!("runtimes.{name}.{key}"),
            problem: problem.to_string(),
        };
        let url = match fields.get("url") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) if is_http_url(s.trim()) => Some(s.trim().to_string()),
            Some(_) => return Err(err("url", "must be an http:// or https:// URL")),
        };
        let percent = |key: &str, names: bool| -> Result<Option<f64>, LabConfigError> {
            let problem = if names {
                "must be a number from 0 to 100, or low, medium, high"
            } else {
                "must be a number from 0 to 100"
            };
            match fields.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(x) if (0.0..=100.0).contains(&x) => Ok(Some(x)),
                    _ => Err(err(key, problem)),
                },
                Some(Value::String(s)) if names => match s.as_str() {
                    "low" => Ok(Some(0.0)),
                    "medium" => Ok(Some(50.0)),
                    "high" => Ok(Some(100.0)),
                    _ => Err(err(key, problem)),
                },
                Some(_) => Err(err(key, problem)),
            }
        };
        let priority = percent("priority", true)?;
        let priority_min = percent("priority_min", false)?;
        let priority_max = percent("priority_max", false)?;
        if let (Some(min), Some(max)) = (priority_min, priority_max)
            && min > max
        {
            return Err(err(
                "priority_min",
                &format!("must not be greater than priority_max ({min} > {max})"),
            ));
        }
        let max_queue_depth = match fields.get("max_queue_depth") {
            None | Some(Value::Null) => DEFAULT_MAX_QUEUE_DEPTH,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| err("max_queue_depth", "must be a non-negative integer"))?,
        };
        let disable_queue_limit = match fields.get("disable_queue_limit") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(err("disable_queue_limit", "must be true or false")),
        };
        let max_queue_depth_priority_factor = match fields.get("max_queue_depth_priority_factor") {
            None | Some(Value::Null) => DEFAULT_PRIORITY_FACTOR,
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 1.0)
                .ok_or_else(|| err("max_queue_depth_priority_factor", "must be a number >= 1"))?,
        };
        let notify = match fields.get("notify") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                check_notify(m, &|key, problem| err(&format!("notify.{key}"), problem))?;
                m.clone()
            }
            Some(_) => return Err(err("notify", "must be a mapping")),
        };
        Ok(LabConfig {
            name: name.to_string(),
            url,
            priority,
            priority_min,
            priority_max,
            notify,
            max_queue_depth,
            disable_queue_limit,
            max_queue_depth_priority_factor,
            secrets,
        })
    }

    /// The REST API base, `<url>/api/v0.2/` (whether `url` ends with `/`, or already with
    /// `/api/v0.2`, or not); `None` without a URL.
    pub fn api_url(&self) -> Option<String> {
        self.url.as_deref().map(api_url)
    }

    /// A job's priority in this lab, from its base priority (0-100, kernelci_sched's
    /// `priority::base_priority`): `base * priority / 100` when `priority` is set, else
    /// `base * (max - min) / 100 + min` when both bounds are set, else `base`; truncated like
    /// Python's `int()`, within 0..=100.
    pub fn scale_priority(&self, base: u8) -> u8 {
        let p = f64::from(base.min(100));
        let scaled = match (self.priority, self.priority_min, self.priority_max) {
            (Some(priority), _, _) => p * priority / 100.0,
            (None, Some(min), Some(max)) => p * (max - min) / 100.0 + min,
            _ => p,
        };
        // Saturating float-to-int cast after the clamp: never out of range.
        scaled.clamp(0.0, 100.0) as u8
    }

    /// The template variables a LAVA job gets: `priority` (scaled) and `notify`, whose
    /// `callback` has the configured token *description* (LAVA looks the secret up by it),
    /// `content-type: json`, `dataset: all`, `method: POST`, then the configured callback
    /// keys. The callback `url` is left out: the template adds
    /// `<instance callback>/node/<node id>`, which the lab cannot know.
    pub fn template_vars(&self, base: u8) -> Map<String, Value> {
        let mut notify = self.notify.clone();
        let configured = self
            .notify
            .get("callback")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut callback = Map::new();
        if let Some(token) = configured.get("token") {
            callback.insert("token".into(), token.clone());
        }
        callback.insert("content-type".into(), "json".into());
        callback.insert("dataset".into(), "all".into());
        callback.insert("method".into(), "POST".into());
        for (key, value) in configured {
            if key != "url" {
                callback.insert(key, value);
            }
        }
        notify.insert("callback".into(), Value::Object(callback));
        let mut vars = Map::new();
        vars.insert("priority".into(), self.scale_priority(base).into());
        vars.insert("notify".into(), Value::Object(notify));
        vars
    }

    /// Whether a callback's `Authorization` header value is this lab's runtime or callback
    /// token (exact, constant-time comparison; empty tokens never match).
    pub fn accepts_callback_token(&self, header_value: &str) -> bool {
        let mut accepted = false;
        for token in [&self.secrets.runtime_token, &self.secrets.callback_token]
            .into_iter()
            .flatten()
        {
            // No short-circuit: both tokens are always compared.
            accepted |=
                !token.is_empty() && constant_time_eq(token.as_bytes(), header_value.as_bytes());
        }
        accepted
    }
}

/// `<url>/api/v0.2/` for a lab URL given with or without a trailing `/` or `/api/v0.2`.
pub fn api_url(url: &str) -> String {
    let base = url.trim().trim_end_matches('/');
    let base = base.strip_suffix("/api/v0.2").unwrap_or(base);
    format!("{base}/api/v0.2/")
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Compares without an early exit on the first differing byte (the length still shows):
/// for tokens a caller holds outside a [`LabConfig`].
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `notify`: a mapping whose `callback`, when present, is a mapping of strings that keeps
/// LAVA sending what the callback handler reads.
fn check_notify(
    notify: &Map<String, Value>,
    err: &dyn Fn(&str, &str) -> LabConfigError,
) -> Result<(), LabConfigError> {
    let Some(callback) = notify.get("callback") else {
        return Ok(());
    };
    let Some(callback) = callback.as_object() else {
        return Err(err("callback", "must be a mapping"));
    };
    for (key, value) in callback {
        let Some(text) = value.as_str() else {
            return Err(err(&format!("callback.{key}"), "must be a string"));
        };
        let required = match key.as_str() {
            "method" => Some("POST"),
            "dataset" => Some("all"),
            "content-type" => Some("json"),
            _ => None,
        };
        if let Some(required) = required
            && text != required
        {
            return Err(err(
                &format!("callback.{key}"),
                &format!("must be {required} (the callback handler reads the full JSON body)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(fields: Value) -> Result<LabConfig, LabConfigError> {
        let Value::Object(map) = fields else {
            panic!("fields must be an object")
        };
        LabConfig::from_runtime("lava-x", &map, LabSecrets::default())
    }

    #[test]
    fn defaults() {
        let lab = config(json!({"url": "https://lava.example.org/"})).unwrap();
        assert_eq!(lab.max_queue_depth, 50);
        assert_eq!(lab.max_queue_depth_priority_factor, 2.0);
        assert!(!lab.disable_queue_limit);
        assert_eq!(
            lab.api_url().as_deref(),
            Some("https://lava.example.org/api/v0.2/")
        );
        assert_eq!(lab.scale_priority(40), 40);
    }

    #[test]
    fn api_url_forms() {
        for url in [
            "http://h:8000",
            "http://h:8000/",
            "http://h:8000/api/v0.2",
            "http://h:8000/api/v0.2/",
        ] {
            assert_eq!(api_url(url), "http://h:8000/api/v0.2/", "{url}");
        }
        assert_eq!(api_url("https://h/lava"), "https://h/lava/api/v0.2/");
    }

    #[test]
    fn priority_scaling_follows_upstream_examples() {
        // specs/pipeline.md §3.4: min 12, max 40 → user job 34, high tree 28, medium 23.
        let lab = config(json!({"priority_min": 12, "priority_max": 40})).unwrap();
        assert_eq!(lab.scale_priority(80), 34);
        assert_eq!(lab.scale_priority(60), 28);
        assert_eq!(lab.scale_priority(40), 23);
        let lab2 = config(json!({"priority": "medium"})).unwrap();
        assert_eq!(lab2.scale_priority(80), 40);
        let lab3 = config(json!({"priority": 0, "priority_min": 10, "priority_max": 20})).unwrap();
        assert_eq!(lab3.scale_priority(80), 0);
        let only_min = config(json!({"priority_min": 10})).unwrap();
        assert_eq!(only_min.scale_priority(80), 80);
    }

    #[test]
    fn errors_name_the_key() {
        let e = config(json!({"priority_min": 101})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "runtimes.lava-x.priority_min: must be a number from 0 to 100"
        );
        let e = config(json!({"priority": "urgent"})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.priority");
        let e = config(json!({"priority_min": 50, "priority_max": 10})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.priority_min");
        let e = config(json!({"url": "ftp://x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "runtimes.lava-x.url: must be an http:// or https:// URL"
        );
        let e = config(json!({"max_queue_depth": -1})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.max_queue_depth");
        let e = config(json!({"max_queue_depth_priority_factor": 0.5})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.max_queue_depth_priority_factor");
        let e = config(json!({"disable_queue_limit": "yes"})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.disable_queue_limit");
        let e = config(json!({"notify": {"callback": {"method": "GET"}}})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.notify.callback.method");
        let e = config(json!({"notify": {"callback": {"token": 3}}})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.notify.callback.token");
        let e = config(json!({"notify": []})).unwrap_err();
        assert_eq!(e.key, "runtimes.lava-x.notify");
    }

    #[test]
    fn template_vars_have_priority_and_notify_without_url() {
        let lab = config(json!({
            "priority_min": 0, "priority_max": 50,
            "notify": {"callback": {"token": "kernelci-callback", "url": "http://x", "header": "X-T"},
                       "criteria": {"status": "finished"}}
        }))
        .unwrap();
        let vars = lab.template_vars(80);
        assert_eq!(vars["priority"], json!(40));
        assert_eq!(
            vars["notify"],
            json!({"callback": {"token": "kernelci-callback", "content-type": "json",
                                "dataset": "all", "method": "POST", "header": "X-T"},
                   "criteria": {"status": "finished"}})
        );
    }

    #[test]
    fn callback_tokens() {
        let mut lab = config(json!({})).unwrap();
        assert!(!lab.accepts_callback_token(""));
        lab.secrets = LabSecrets {
            runtime_token: Some("rt".into()),
            callback_token: Some("cb-secret".into()),
        };
        assert!(lab.accepts_callback_token("rt"));
        assert!(lab.accepts_callback_token("cb-secret"));
        assert!(!lab.accepts_callback_token("cb-secre"));
        assert!(!lab.accepts_callback_token("Token rt"));
        assert!(!format!("{:?}", lab.secrets).contains("secret\""));
        assert!(!format!("{:?}", lab).contains("cb-secret"));
    }
}
