//! `--download-logs`: each result's `log_url` saved in the current directory under
//! kci-dev's file name (`libs/files.py`, `parser.py`), with a progress line on stderr.
//!
//! Only http(s) URLs are fetched. A gzip body (the usual `*.log.gz`) is decompressed; any
//! other body is saved as it is (kci-dev fails on a log that is not gzip). A result without
//! `log_url` is reported and skipped. A log that cannot be fetched, decompressed or written
//! is reported, the result keeps its URL in the output, and the command exits 1 once
//! everything is printed (kci-dev prints an error and exits 0).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::client::Fail;

/// kci-dev's `to_valid_filename`: drops `\ / : " * ? < > |`.
pub fn valid_filename(name: &str) -> String {
    name.chars()
        .filter(|c| !r#"\/:"*?<>|"#.contains(*c))
        .collect()
}

/// A JSON value as Python's f-string shows it (`None` for null or absent).
pub fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// kci-dev's name for a build's log in a list (`{config}-{arch}-{compiler}-{what}.log`,
/// `what` the commit, or the platform for `hardware builds`).
pub fn build_list_name(b: &Value, what: &str) -> String {
    format!(
        "{}-{}-{}-{what}.log",
        py(&b["config_name"]),
        py(&b["architecture"]),
        py(&b["compiler"])
    )
}

/// kci-dev's name for one build's log (`build --id`).
pub fn build_name(b: &Value) -> String {
    format!(
        "{}-{}-{}-{}-{}.log",
        py(&b["config_name"]),
        py(&b["architecture"]),
        py(&b["compiler"]),
        py(&b["git_commit_hash"]),
        py(&b["id"])
    )
}

/// kci-dev's name for a boot's or test's log: `{platform}__{path}__{config}-{arch}-
/// {compiler}-{what}.log`, `what` the commit (lists), the platform (`hardware`) or the
/// test id (`boot|test --id`).
pub fn test_name(t: &Value, what: &str) -> String {
    let platform = match t.get("environment_misc") {
        Some(m) => py(&m["platform"]),
        None => "(Unknown platform)".into(),
    };
    let config = t.get("config").or_else(|| t.get("config_name"));
    format!(
        "{platform}__{}__{}-{}-{}-{what}.log",
        py(&t["path"]),
        py(config.unwrap_or(&Value::Null)),
        py(&t["architecture"]),
        py(&t["compiler"])
    )
}

/// Downloads logs, counting the failures.
pub struct Logs {
    client: reqwest::blocking::Client,
    dir: PathBuf,
    total: usize,
    done: usize,
    failed: usize,
}

impl Logs {
    /// Ready to download `total` logs into the current directory.
    pub fn new(total: usize) -> Result<Logs, Fail> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("kci/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Fail::input(format!("cannot start an HTTP client: {e}")))?;
        let dir = std::env::current_dir()
            .map_err(|e| Fail::input(format!("no current directory: {e}")))?;
        Ok(Logs {
            client,
            dir,
            total,
            done: 0,
            failed: 0,
        })
    }

    /// Saves `item`'s `log_url` as `name` (cleaned): the `file://` path, or `None` when there
    /// is no log or it failed (reported on stderr).
    pub fn fetch(&mut self, item: &Value, name: &str) -> Option<String> {
        self.done += 1;
        let step = format!("log {}/{}", self.done, self.total);
        let Some(url) = item["log_url"].as_str().filter(|u| !u.is_empty()) else {
            eprintln!("kci: {step}: {} has no log_url", py(&item["id"]));
            return None;
        };
        let file = valid_filename(name);
        match self.save(url, &file) {
            Ok(n) => {
                let path = self.dir.join(&file);
                eprintln!("kci: {step}: {url} -> {file} ({n} bytes)");
                Some(format!("file://{}", path.display()))
            }
            Err(reason) => {
                self.failed += 1;
                eprintln!("kci: {step}: {url}: {reason}");
                None
            }
        }
    }

    fn save(&self, url: &str, file: &str) -> Result<usize, String> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err("not an http(s) URL, not downloaded".into());
        }
        let resp = self
            .client
            .get(url)
            .send()
            .map_err(|e| format!("cannot fetch: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let body = resp.bytes().map_err(|e| format!("cannot read: {e}"))?;
        let log = if body.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot decompress: {e}"))?;
            out
        } else {
            body.to_vec()
        };
        std::fs::write(self.dir.join(file), &log)
            .map_err(|e| format!("cannot write {file}: {e}"))?;
        Ok(log.len())
    }

    /// The exit code once everything is printed: 1 when a download failed (with a line on
    /// stderr), else 0.
    pub fn code(&self) -> u8 {
        if self.failed == 0 {
            return 0;
        }
        eprintln!(
            "kci: {} of {} logs could not be downloaded",
            self.failed, self.total
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_as_kci_dev() {
        let b = json!({"id": "maestro:1", "config_name": "defconfig", "architecture": "arm64",
            "compiler": "gcc-12", "git_commit_hash": "abc"});
        assert_eq!(
            valid_filename(&build_list_name(&b, "abc")),
            "defconfig-arm64-gcc-12-abc.log"
        );
        assert_eq!(
            valid_filename(&build_name(&b)),
            "defconfig-arm64-gcc-12-abc-maestro1.log"
        );
        let t = json!({"path": "boot", "environment_misc": {"platform": "qemu"},
            "config": "defconfig", "architecture": "x86_64", "compiler": null});
        assert_eq!(
            test_name(&t, "c0"),
            "qemu__boot__defconfig-x86_64-None-c0.log"
        );
        assert_eq!(valid_filename("a/b:c*d?e<f>g|h\"i\\j"), "abcdefghij");
    }
}
