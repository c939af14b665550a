//! The secrets part of upstream's `kernelci.toml` (specs/pipeline.md §10) that the pipeline
//! needs: per-runtime tokens, `[runtime.<name>] runtime_token` (the lab's API token, used to
//! submit jobs, also accepted as a callback token) and `callback_token` (the value LAVA
//! sends back in `Authorization`), and per-storage credentials, `[storage.<name>]`
//! (upstream's `storage_cred`, and the object store keys such as `access_key_id`, read by
//! `crate::storage`). Other sections are ignored here: the same file can be shared with
//! upstream's services.
//!
//! Secrets never come from the pipeline YAML (which is often public); a runtime without an
//! entry here has no tokens.

use std::collections::BTreeMap;
use std::path::Path;

/// Tokens of one runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeTokens {
    /// The lab API token (`runtime_token`).
    pub runtime_token: Option<String>,
    /// The token the lab sends with callbacks (`callback_token`).
    pub callback_token: Option<String>,
}

/// Tokens of every runtime, by runtime name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// `[runtime.<name>]` entries.
    pub runtimes: BTreeMap<String, RuntimeTokens>,
    /// `[storage.<name>]` entries: every key, its string value (empty values dropped).
    pub storage: BTreeMap<String, BTreeMap<String, String>>,
}

/// Why the settings file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a value of the wrong type.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with its key.
        message: String,
    },
}

impl Secrets {
    /// Read `path` (TOML).
    pub fn load(path: &Path) -> Result<Secrets, SecretsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Secrets::parse(&text).map_err(|message| SecretsError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parse the text of a settings file.
    pub fn parse(text: &str) -> Result<Secrets, String> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut out = Secrets::default();
        for (name, entry) in sections(&doc, "runtime")? {
            let get = |key: &str| string(entry, "runtime", name, key);
            out.runtimes.insert(
                name.clone(),
                RuntimeTokens {
                    runtime_token: get("runtime_token")?,
                    callback_token: get("callback_token")?,
                },
            );
        }
        for (name, entry) in sections(&doc, "storage")? {
            let mut values = BTreeMap::new();
            for key in entry.keys() {
                if let Some(v) = string(entry, "storage", name, key)? {
                    values.insert(key.clone(), v);
                }
            }
            out.storage.insert(name.clone(), values);
        }
        Ok(out)
    }

    /// The tokens of runtime `name` (empty when it has no section).
    pub fn runtime(&self, name: &str) -> RuntimeTokens {
        self.runtimes.get(name).cloned().unwrap_or_default()
    }

    /// The settings of storage `name` (empty when it has no section).
    pub fn storage(&self, name: &str) -> BTreeMap<String, String> {
        self.storage.get(name).cloned().unwrap_or_default()
    }
}

/// The `[<section>.<name>]` tables of a settings file.
fn sections<'a>(
    doc: &'a toml::Table,
    section: &str,
) -> Result<Vec<(&'a String, &'a toml::Table)>, String> {
    let Some(value) = doc.get(section) else {
        return Ok(Vec::new());
    };
    let Some(table) = value.as_table() else {
        return Err(format!(
            "{section}: must be a table of [{section}.<name>] sections"
        ));
    };
    table
        .iter()
        .map(|(name, entry)| match entry.as_table() {
            Some(t) => Ok((name, t)),
            None => Err(format!("{section}.{name}: must be a table")),
        })
        .collect()
}

/// A string value of `[<section>.<name>]`; empty counts as absent.
fn string(
    entry: &toml::Table,
    section: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, String> {
    match entry.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) if s.is_empty() => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{section}.{name}.{key}: must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_runtime_sections_and_ignores_the_rest() {
        let s = Secrets::parse(
            r#"
[DEFAULT]
api_config = "production"
[runtime.lava-collabora]
runtime_token = "abc"
callback_token = "cb"
[runtime.lava-empty]
runtime_token = ""
"#,
        )
        .unwrap();
        assert_eq!(
            s.runtime("lava-collabora"),
            RuntimeTokens {
                runtime_token: Some("abc".into()),
                callback_token: Some("cb".into())
            }
        );
        assert_eq!(s.runtime("lava-empty"), RuntimeTokens::default());
        assert_eq!(s.runtime("missing"), RuntimeTokens::default());
    }

    #[test]
    fn wrong_types_name_their_key() {
        let e = Secrets::parse("[runtime.lab]\nruntime_token = 3\n").unwrap_err();
        assert_eq!(e, "runtime.lab.runtime_token: must be a string");
        let e = Secrets::parse("runtime = 1\n").unwrap_err();
        assert!(e.starts_with("runtime:"), "{e}");
        assert!(Secrets::parse("not = [toml").is_err());
        let e = Secrets::parse("[storage.s3]\naccess_key_id = 1\n").unwrap_err();
        assert_eq!(e, "storage.s3.access_key_id: must be a string");
    }

    #[test]
    fn reads_storage_sections() {
        let s = Secrets::parse(
            r#"
[storage.kci-storage-production]
storage_cred = "Bearer jwt"
[storage."minio.local"]
access_key_id = "AK"
secret_access_key = "SK"
session_token = ""
"#,
        )
        .unwrap();
        assert_eq!(
            s.storage("kci-storage-production"),
            BTreeMap::from([("storage_cred".to_string(), "Bearer jwt".to_string())])
        );
        assert_eq!(
            s.storage("minio.local"),
            BTreeMap::from([
                ("access_key_id".to_string(), "AK".to_string()),
                ("secret_access_key".to_string(), "SK".to_string()),
            ])
        );
        assert!(s.storage("missing").is_empty());
    }
}
