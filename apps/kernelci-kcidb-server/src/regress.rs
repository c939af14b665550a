//! The regression tracker as a loop of the KCIDB role: a round of
//! [`kernelci_kcidb::regress::track::track_once`] every interval, after the ingester has
//! loaded what labs submitted. Its settings come from an optional TOML file:
//!
//! ```toml
//! window = 10        # newest checkouts of a test looked at
//! flaky_flips = 3    # pass/fail flips within the window that make it flaky
//!
//! [[classify]]       # first matching rule sets the class of a failure
//! class = "infrastructure"
//! error_msg = "(?i)connection reset|no space left"
//!
//! [[classify]]
//! class = "test"
//! path = '^kselftest\.'
//! platform = "^qemu"
//! ```

use std::path::Path;
use std::time::Duration;

use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::regress::track::{TrackerConfig, track_once};
use kernelci_kcidb::regress::{ClassRule, Classifier, LifecycleSettings};
use serde::Deserialize;

/// The settings file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    window: Option<usize>,
    flaky_flips: Option<usize>,
    #[serde(default)]
    classify: Vec<ClassRule>,
}

/// A settings file that cannot be used, naming the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not the expected TOML.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why (with the TOML location).
        reason: String,
    },
}

/// The tracker configuration from `path` (`None`: the defaults).
pub fn load_config(path: Option<&Path>) -> Result<TrackerConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(TrackerConfig::default());
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let file: File = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: shown.clone(),
        reason: e.to_string().trim_end().to_string(),
    })?;
    let defaults = LifecycleSettings::default();
    let settings = LifecycleSettings {
        window: file.window.unwrap_or(defaults.window),
        flaky_flips: file.flaky_flips.unwrap_or(defaults.flaky_flips),
    };
    if settings.window < 2 || settings.flaky_flips < 1 {
        return Err(ConfigError::Invalid {
            path: shown,
            reason: "window must be at least 2 and flaky_flips at least 1".into(),
        });
    }
    let classifier = Classifier::new(&file.classify).map_err(|e| ConfigError::Invalid {
        path: shown,
        reason: e.to_string(),
    })?;
    Ok(TrackerConfig {
        settings,
        classifier,
        ..TrackerConfig::default()
    })
}

/// Runs a tracker round every `interval` (the first one at once).
pub fn spawn(
    db: KcidbDb,
    config: TrackerConfig,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match track_once(&db, &config).await {
                Ok(r) if r.opened + r.fixed + r.became_flaky > 0 => tracing::info!(
                    "regressions: {} opened, {} fixed, {} flaky ({} result(s) recorded)",
                    r.opened,
                    r.fixed,
                    r.became_flaky,
                    r.recorded
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("regressions: round failed: {e}"),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("regressions.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn settings_file() {
        let (_d, p) = write(
            "window = 6\nflaky_flips = 2\n[[classify]]\nclass = \"infra\"\nerror_msg = \"reset\"\n",
        );
        let c = load_config(Some(&p)).expect("valid");
        assert_eq!((c.settings.window, c.settings.flaky_flips), (6, 2));
        assert_eq!(
            load_config(None).expect("defaults").settings,
            LifecycleSettings::default()
        );
        let (_d, p) = write("[[classify]]\nclass = \"kernel\"\npath = \"(\"\n");
        let e = load_config(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("classification rule 0: path:"), "{e}");
        let (_d, p) = write("windw = 3\n");
        let e = load_config(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("unknown field `windw`"), "{e}");
        let (_d, p) = write("window = 1\n");
        assert!(load_config(Some(&p)).is_err());
    }
}
