//! kci-dev's TOML settings, read the same way, and `kci config`, which writes a starter file.
//!
//! Where: `--settings FILE` if that file exists (kci-dev's default is `./.kci-dev.toml`), else
//! `~/.config/kci-dev/kci-dev.toml`, else `/etc/kci-dev.toml`; the first one found is used
//! whole (kci-dev does not merge them either). Keys: `default_instance`, an optional
//! top-level `dashboard_api`, and one table per instance with `pipeline` (the pipeline API
//! base), `api` (the Maestro API base), `token`, `dashboard_api`, `kcidb_rest_url`,
//! `kcidb_token`, `storage_url`, `storage_token`. Ours, ignored by kci-dev: `dashboard` (the
//! web dashboard's base URL, for links). `--instance NAME` picks another instance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;

/// kci-dev's default `--settings`.
pub const DEFAULT_SETTINGS: &str = ".kci-dev.toml";

/// One instance (`[name]` table).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Instance {
    /// Pipeline API base (`api/checkout`, `api/jobretry`, `api/patchset` below it).
    pub pipeline: Option<String>,
    /// Maestro API base (`latest/...` below it).
    pub api: Option<String>,
    /// Maestro/pipeline token.
    pub token: Option<String>,
    /// Dashboard API base (`.../api/`).
    pub dashboard_api: Option<String>,
    /// Dashboard web base, for links (ours).
    pub dashboard: Option<String>,
    /// KCIDB `/submit` URL.
    pub kcidb_rest_url: Option<String>,
    /// KCIDB token.
    pub kcidb_token: Option<String>,
    /// Storage base URL.
    pub storage_url: Option<String>,
    /// Storage token.
    pub storage_token: Option<String>,
}

/// The settings file.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where they were read from (`None`: no file was found).
    pub path: Option<PathBuf>,
    /// `default_instance`.
    pub default_instance: Option<String>,
    /// Top-level `dashboard_api`.
    pub dashboard_api: Option<String>,
    /// The instances by name.
    pub instances: BTreeMap<String, Instance>,
}

/// The files tried, in order.
pub fn candidates(settings: &Path) -> Vec<PathBuf> {
    let mut out = vec![settings.to_path_buf()];
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        out.push(PathBuf::from(home).join(".config/kci-dev/kci-dev.toml"));
    }
    out.push(PathBuf::from("/etc/kci-dev.toml"));
    out
}

impl Settings {
    /// Reads the first settings file that exists (none: empty settings).
    pub fn load(settings: &Path) -> anyhow::Result<Settings> {
        let Some(path) = candidates(settings).into_iter().find(|p| p.exists()) else {
            return Ok(Settings::default());
        };
        if !path.is_file() {
            bail!("the settings location {} is not a file", path.display());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Settings::parse(&text, Some(path))
    }

    /// Parses a settings text.
    pub fn parse(text: &str, path: Option<PathBuf>) -> anyhow::Result<Settings> {
        let shown = path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "settings".into());
        let table: toml::Table =
            toml::from_str(text).with_context(|| format!("{shown} is not valid TOML"))?;
        let mut settings = Settings {
            path,
            ..Settings::default()
        };
        for (key, value) in table {
            match (key.as_str(), value) {
                ("default_instance", toml::Value::String(s)) => settings.default_instance = Some(s),
                ("dashboard_api", toml::Value::String(s)) => settings.dashboard_api = Some(s),
                (_, toml::Value::Table(t)) => {
                    let instance = Instance::deserialize(toml::Value::Table(t))
                        .with_context(|| format!("{shown}: instance [{key}]"))?;
                    settings.instances.insert(key, instance);
                }
                // kci-dev ignores other top-level keys; so do we.
                _ => {}
            }
        }
        Ok(settings)
    }

    /// The instance to use: `--instance`, else `default_instance`.
    pub fn instance(&self, wanted: Option<&str>) -> anyhow::Result<(&str, &Instance)> {
        let shown = self
            .path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "no settings file (run `kci config`)".into());
        let Some(name) = wanted.or(self.default_instance.as_deref()) else {
            bail!("no instance: pass --instance or set default_instance in {shown}");
        };
        match self.instances.get_key_value(name) {
            Some((name, instance)) => Ok((name.as_str(), instance)),
            None => bail!("instance {name:?} not found in {shown}"),
        }
    }
}

impl Instance {
    /// A required URL or token of the instance, with a clear error when it is missing.
    pub fn require<'a>(
        &'a self,
        name: &str,
        key: &str,
        value: &'a Option<String>,
    ) -> anyhow::Result<&'a str> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .with_context(|| format!("instance [{name}] has no `{key}`"))
    }
}

/// Arguments of `kci config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the file.
    #[arg(long, default_value = "~/.config/kci-dev/kci-dev.toml")]
    file_path: String,
    /// The base URL of a `kernelci up` to point the `local` instance at.
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    url: String,
    /// The token of the `local` instance (e.g. `DATA_DIR/admin.token`'s content).
    #[arg(long, env = "KCI_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The starter file: a `local` instance for `kernelci up` at `base`, and upstream's.
pub fn template(base: &str, token: &str) -> String {
    let base = base.trim_end_matches('/');
    format!(
        r#"# kci and kci-dev settings (the same file works for both).
default_instance = "local"

# `kernelci up` on this machine: every role under one URL.
[local]
pipeline = "{base}/pipeline/"
api = "{base}/"
token = "{token}"
dashboard_api = "{base}/api/"
dashboard = "{base}/"
kcidb_rest_url = "{base}/kcidb/submit"
kcidb_token = "your-kcidb-token (kernelci kcidb token --origin NAME)"
storage_url = "{base}/storage/"

[production]
pipeline = "https://kernelci-pipeline.westus3.cloudapp.azure.com/"
api = "https://kernelci-api.westus3.cloudapp.azure.com/"
token = "example"
dashboard_api = "https://dashboard.kernelci.org/api/"
dashboard = "https://dashboard.kernelci.org/"
kcidb_rest_url = "https://db.kernelci.org/submit"
kcidb_token = "your-kcidb-token-here"
"#
    )
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// `kci config`: writes the starter file unless a settings file already exists.
pub fn run(args: &Args, settings: &Path) -> anyhow::Result<ExitCode> {
    if let Some(existing) = candidates(settings).into_iter().find(|p| p.exists()) {
        bail!(
            "a settings file is already present at {}",
            existing.display()
        );
    }
    let target = expand_home(&args.file_path);
    if target.is_dir() || args.file_path.ends_with('/') {
        bail!("{} is a directory, not a settings file", target.display());
    }
    if target.exists() {
        bail!("a settings file already exists at {}", target.display());
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let token = args.token.as_deref().unwrap_or("your-maestro-token");
    write_private(&target, &template(&args.url, token))
        .with_context(|| format!("cannot write {}", target.display()))?;
    println!("wrote {}", target.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes a file readable by its owner only (it holds tokens).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kci_dev_settings() {
        let text = r#"default_instance = "local"
dashboard_api = "https://top/api/"
[local]
pipeline = "http://127.0.0.1:8001/pipeline/"
api = "http://127.0.0.1:8001/"
token = "t"
[staging]
api = "https://staging/"
"#;
        let s = Settings::parse(text, None).unwrap();
        let (name, local) = s.instance(None).unwrap();
        assert_eq!(name, "local");
        assert_eq!(local.token.as_deref(), Some("t"));
        assert_eq!(s.dashboard_api.as_deref(), Some("https://top/api/"));
        let (name, staging) = s.instance(Some("staging")).unwrap();
        assert_eq!(name, "staging");
        let err = staging
            .require(name, "token", &staging.token)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "instance [staging] has no `token`");
        let err = s.instance(Some("nope")).unwrap_err().to_string();
        assert!(err.contains("instance \"nope\" not found"), "{err}");
        let parsed = Settings::parse(&template("http://h:1/", "tok"), None).unwrap();
        let (_, local) = parsed.instance(None).unwrap();
        assert_eq!(local.pipeline.as_deref(), Some("http://h:1/pipeline/"));
        assert!(Settings::parse("[local\n", None).is_err());
        assert!(Settings::parse("[local]\napi = 3\n", None).is_err());
    }
}
