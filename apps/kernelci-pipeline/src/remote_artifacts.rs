//! Artifacts of jobs that run where the scheduler cannot read their files (the
//! `kubernetes` runtime, whose [`Runtime::workdir`](kernelci_sched::runtime::Runtime::workdir)
//! is `None`: [`uploads_itself`]): the job uploads them itself, the scheduler collects them
//! from storage.
//!
//! Contract:
//! - **Job side.** At submission such a job gets `KCI_ARTIFACTS_URL`
//!   (`<public url>/pipeline/api/artifacts/<node id>`) and `KCI_ARTIFACTS_TOKEN` (an HS256
//!   token of the pipeline API's secret, claims `node` = the node id and permission
//!   `artifacts`, valid for the job's timeout plus [`TOKEN_MARGIN`]). It `PUT`s each file of
//!   its `artifacts/` to `$KCI_ARTIFACTS_URL/<name>`, then [`MANIFEST`], a manifest
//!   `{"exit": <code>, "files": {<name>: <url>}}` (the shell templates do this in their
//!   epilogue).
//! - **Endpoint.** `PUT /pipeline/api/artifacts/{node_id}/{name}` ([`receive`]) streams the
//!   body to a temporary file (at most the API's artifact limit, else 413) and stores it as
//!   `<node id>/<name>`; re-uploading overwrites.
//! - **Collect side.** When the job ends, [`collect`] fetches
//!   `<storage>/<node id>/artifacts.json`; with it, the node gets the listed files' storage
//!   URLs and [`crate::collect`] reads `metadata.json` and `console.log` downloaded to a
//!   temporary directory. Without it, only the exit code and logs count, as before.
//!
//! The URLs in a manifest are not trusted: artifact URLs are rebuilt from the names as
//! `<storage base URL>/<node id>/<name>` ([`crate::Settings::storage_base_url`]), so the
//! scheduler only ever downloads from its own storage (for an object store that base URL
//! includes its `prefix`: `storage::Configured::base_url`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use kernelci_sched::runtime::JobStatus;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

use crate::Ctx;
use crate::storage::{StorageError, check_name, url_path};

/// The permission of a per-job upload token.
pub const PERMISSION: &str = "artifacts";
/// The manifest a job uploads last.
pub const MANIFEST: &str = "artifacts.json";
/// Validity of an upload token beyond the job's timeout.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(3600);
/// Validity of an upload token for a job without a timeout.
const UNLIMITED_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Default size limit of one uploaded file.
pub const DEFAULT_MAX_UPLOAD: u64 = 2 << 30;
/// Largest manifest the scheduler reads.
const MAX_MANIFEST: u64 = 1 << 20;
/// Largest file the scheduler downloads to read it (`metadata.json`, `console.log`).
const MAX_READ: u64 = 64 << 20;
/// The files collect reads, when a job uploaded them.
const READ_FILES: [&str; 2] = ["metadata.json", "console.log"];

/// The secret per-job upload tokens are signed with: set once by
/// [`crate::api::PipelineApi::new`] (its first secret), shared by every clone of the
/// [`crate::Settings`]; unset in a process that serves no pipeline API.
#[derive(Clone, Default)]
pub struct ArtifactKey(Arc<OnceLock<Vec<u8>>>);

impl ArtifactKey {
    /// Set the secret (the first call wins).
    pub fn set(&self, secret: &[u8]) {
        let _ = self.0.set(secret.to_vec());
    }

    /// The secret, when set.
    pub fn get(&self) -> Option<&[u8]> {
        self.0.get().map(Vec::as_slice)
    }
}

impl std::fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.get().is_some() {
            "set"
        } else {
            "unset"
        };
        write!(f, "ArtifactKey({state})")
    }
}

/// Whether jobs of a runtime of `lab_type` upload their own artifacts: `kubernetes` (its
/// pods run out of the scheduler's sight). The local runtimes (`shell`, `docker`) and any
/// other with a job directory are collected from it, and LAVA calls back.
pub fn uploads_itself(lab_type: &str) -> bool {
    lab_type == "kubernetes"
}

/// A per-job upload token for `node_id`, valid `valid` from now.
pub fn issue_token(secret: &[u8], node_id: &str, valid: Duration) -> String {
    let now = chrono::Utc::now().timestamp();
    let secs = i64::try_from(valid.as_secs()).unwrap_or(i64::MAX / 2);
    kernelci_model::jwt::sign(
        secret,
        &json!({"node": node_id, "permissions": [PERMISSION], "iat": now,
                "exp": now.saturating_add(secs)}),
    )
}

/// The environment of a job of node `node_id` that uploads its own artifacts
/// (`KCI_ARTIFACTS_URL`, `KCI_ARTIFACTS_TOKEN`), or `None` when no secret is set.
pub fn job_env(ctx: &Ctx, node_id: &str, timeout: Duration) -> Option<Vec<(String, String)>> {
    let secret = ctx.settings.artifact_key.get()?;
    let valid = match timeout {
        Duration::ZERO => UNLIMITED_VALIDITY,
        t => t,
    }
    .saturating_add(TOKEN_MARGIN);
    Some(vec![
        (
            "KCI_ARTIFACTS_URL".into(),
            format!(
                "{}/pipeline/api/artifacts/{node_id}",
                ctx.settings.public_url
            ),
        ),
        (
            "KCI_ARTIFACTS_TOKEN".into(),
            issue_token(secret, node_id, valid),
        ),
    ])
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The node id is malformed.
    #[error("{0:?} is not a node id (24 hexadecimal digits)")]
    BadNode(String),
    /// The name would escape the node's folder, or is empty.
    #[error("bad artifact name {0:?}: it must be a relative path without '.' or '..' parts")]
    BadName(String),
    /// The body is larger than the limit.
    #[error("artifact larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The body could not be read.
    #[error("cannot read the body: {0}")]
    Body(String),
    /// The temporary file could not be written.
    #[error("cannot spool the artifact: {0}")]
    Spool(String),
    /// The storage refused the file.
    #[error(transparent)]
    Storage(StorageError),
}

impl UploadError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            UploadError::BadNode(_) | UploadError::BadName(_) | UploadError::Body(_) => 400,
            UploadError::TooLarge(_) => 413,
            UploadError::Spool(_) => 500,
            UploadError::Storage(StorageError::BadName(_)) => 400,
            UploadError::Storage(_) => 502,
        }
    }
}

/// Store `body` (at most `limit` bytes; `declared` is its Content-Length, if any) as
/// `<node_id>/<name>`; the artifact's public URL.
pub async fn receive(
    ctx: &Ctx,
    node_id: &str,
    name: &str,
    declared: Option<u64>,
    body: axum::body::Body,
    limit: u64,
) -> Result<String, UploadError> {
    if kernelci_model::ObjectId::parse(node_id).is_err() {
        return Err(UploadError::BadNode(node_id.to_string()));
    }
    // `check_name` lets `a/./b` through (paths normalise it away); here a name is exact.
    if check_name(name).is_err() || name.split('/').any(|s| s.is_empty() || s == ".") {
        return Err(UploadError::BadName(name.to_string()));
    }
    if declared.is_some_and(|len| len > limit) {
        return Err(UploadError::TooLarge(limit));
    }
    let tmp = tempfile::NamedTempFile::new().map_err(|e| UploadError::Spool(e.to_string()))?;
    let mut file = tokio::fs::File::create(tmp.path())
        .await
        .map_err(|e| UploadError::Spool(e.to_string()))?;
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > limit {
            return Err(UploadError::TooLarge(limit));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| UploadError::Spool(e.to_string()))?;
    }
    file.flush()
        .await
        .map_err(|e| UploadError::Spool(e.to_string()))?;
    drop(file);
    ctx.storage
        .upload(tmp.path(), &format!("{node_id}/{name}"))
        .await
        .map_err(UploadError::Storage)
}

/// A job's manifest as the scheduler reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The job script's exit code.
    pub exit: Option<i32>,
    /// The uploaded files (names under the node's folder), sorted.
    pub files: Vec<String>,
}

impl Manifest {
    /// Read a manifest; names that are not safe relative paths are dropped with a warning.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("{MANIFEST}: invalid JSON: {e}"))?;
        let Some(files) = v.get("files").and_then(Value::as_object) else {
            return Err(format!("{MANIFEST}: \"files\" must be an object"));
        };
        let exit = v
            .get("exit")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok());
        let mut names = Vec::new();
        for name in files.keys() {
            if name == MANIFEST {
                continue;
            }
            if check_name(name).is_err() || name.split('/').any(|s| s.is_empty() || s == ".") {
                tracing::warn!("collect: {MANIFEST}: ignoring the file name {name:?}");
                continue;
            }
            names.push(name.clone());
        }
        names.sort();
        Ok(Manifest { exit, files: names })
    }
}

/// Why a file could not be fetched from storage.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Network error or an unexpected status.
    #[error("GET {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Larger than allowed.
    #[error("GET {url}: larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
}

fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default()
    })
}

/// `GET url`, at most `limit` bytes; `None` on 404.
pub async fn fetch(url: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
    let http_err = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let mut resp = http_client()
        .get(url)
        .send()
        .await
        .map_err(|e| http_err(e.to_string()))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(http_err(resp.status().to_string()));
    }
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_err(e.to_string()))? {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// The storage URL of artifact `name` of node `node_id`.
pub fn artifact_url(ctx: &Ctx, node_id: &str, name: &str) -> String {
    format!(
        "{}/{node_id}/{}",
        ctx.settings.storage_url().trim_end_matches('/'),
        url_path(name)
    )
}

/// Collect node `id`, a job of `kind` that uploaded its own artifacts and ended with
/// `status`: from its manifest when there is one, else from the exit code and logs only.
pub async fn collect(
    ctx: &Ctx,
    id: &str,
    kind: &str,
    status: &JobStatus,
    runtime_log: &[u8],
) -> anyhow::Result<()> {
    use crate::collect::{Artifacts, collect_from};
    let manifest_url = artifact_url(ctx, id, MANIFEST);
    let manifest = match fetch(&manifest_url, MAX_MANIFEST).await {
        Ok(Some(bytes)) => match Manifest::parse(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("collect: {id}: {e}");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("collect: {id}: {e}");
            None
        }
    };
    let Some(manifest) = manifest else {
        tracing::info!("collect: {id}: no {MANIFEST}: only the exit code and logs count");
        return collect_from(ctx, id, kind, status, Artifacts::Local(None), runtime_log).await;
    };
    // The script's own exit code is the better word when the runtime knows less (a pod
    // whose container status is unreadable reports 1, a Job already gone is lost).
    let status = match (status, manifest.exit) {
        (JobStatus::Finished { .. } | JobStatus::Lost, Some(code)) => {
            JobStatus::Finished { exit_code: code }
        }
        (s, _) => *s,
    };
    let dir = tempfile::tempdir()?;
    let mut urls = Map::new();
    for name in &manifest.files {
        let url = artifact_url(ctx, id, name);
        if READ_FILES.contains(&name.as_str()) {
            match fetch(&url, MAX_READ).await {
                Ok(Some(bytes)) => tokio::fs::write(dir.path().join(name), bytes).await?,
                Ok(None) => {
                    tracing::warn!("collect: {id}: {name} is in the manifest, not in storage");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("collect: {id}: {e}");
                    continue;
                }
            }
        }
        urls.insert(crate::collect::artifact_key(name), url.into());
    }
    let source = Artifacts::Uploaded {
        urls,
        dir: dir.path(),
    };
    collect_from(ctx, id, kind, &status, source, runtime_log).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_keep_safe_names_only() {
        let m = Manifest::parse(
            br#"{"exit": 0, "files": {"bzImage": "u", "../x": "u", "a/./b": "u",
                 "fragments/0.config": "u", "artifacts.json": "u"}}"#,
        )
        .unwrap();
        assert_eq!(m.exit, Some(0));
        assert_eq!(m.files, vec!["bzImage", "fragments/0.config"]);
        assert!(Manifest::parse(b"[]").is_err());
        assert!(Manifest::parse(b"{\"exit\": 1}").is_err());
    }

    #[test]
    fn tokens_name_their_node_and_expire() {
        let t = issue_token(b"s", "n1", Duration::from_secs(60));
        let claims = kernelci_model::jwt::verify(&[b"s"], &t).unwrap();
        assert_eq!(claims["node"], "n1");
        assert_eq!(claims["permissions"], json!(["artifacts"]));
        let left = claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
        assert!((55..=60).contains(&left), "{left}");
    }

    #[test]
    fn local_and_lava_runtimes_do_not_upload() {
        assert!(!uploads_itself("shell"));
        assert!(!uploads_itself("docker"));
        assert!(!uploads_itself("lava"));
        assert!(uploads_itself("kubernetes"));
        // A runtime of ours with a job directory (examples/custom_runtime.rs) is collected
        // from it.
        assert!(!uploads_itself("thread"));
    }

    #[test]
    fn the_key_is_set_once_and_not_printed() {
        let k = ArtifactKey::default();
        assert_eq!(format!("{k:?}"), "ArtifactKey(unset)");
        k.set(b"one");
        k.set(b"two");
        assert_eq!(k.get(), Some(&b"one"[..]));
        assert_eq!(format!("{k:?}"), "ArtifactKey(set)");
    }
}
