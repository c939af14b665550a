//! Artifact storage (specs/pipeline.md §8): where tarballs, kernels and logs go, and the
//! URL each gets. Three backends: a local directory that `kernelci up` serves over HTTP (the
//! embedded default), the kernelci-storage upload protocol, and object stores (S3 and
//! S3-compatible servers, Azure Blob, GCS: `object.rs`).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait_free::BoxFuture;

mod object;
pub use object::{ObjectKind, ObjectStorage};

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
    /// A storage entry of the configuration (or its settings section) is unusable.
    #[error("storage {name}: {reason}")]
    Config {
        /// The `storage.<name>` entry.
        name: String,
        /// What is wrong, with its key.
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

/// A backend built from a `storage.<name>` entry, and the public URL its files are under.
#[derive(Clone)]
pub struct Configured {
    /// The backend.
    pub store: std::sync::Arc<dyn ArtifactStore>,
    /// Public base URL of the stored files (ends with `/`; an object store's `prefix`
    /// included): a stored `dest` is at `base_url + dest`.
    pub base_url: String,
}

/// Build the backend of a `storage.<name>` entry of the pipeline YAML with its
/// `[storage.<name>]` settings: `s3`, `azure` (Blob, with `container`) and `gcs` through
/// [`ObjectStorage`], `backend` (kernelci-storage: `api_url`, credential `storage_cred` or
/// `KERNELCI_STORAGE_CREDENTIAL`). Other types are refused with the reason.
pub fn from_config(
    entry: &kernelci_sched::config::StorageConfig,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<Configured, StorageError> {
    let fail = |reason: String| StorageError::Config {
        name: entry.name.clone(),
        reason,
    };
    if ObjectKind::from_storage_type(&entry.storage_type).is_some() {
        let st = ObjectStorage::from_config(
            &entry.name,
            &entry.storage_type,
            entry.base_url.as_deref(),
            &entry.fields,
            settings,
        )?;
        // Where uploaded names are found: the prefix included, so that URLs rebuilt from
        // a name (remote artifacts, templates) point at the object.
        let base_url = st.public_root();
        return Ok(Configured {
            store: std::sync::Arc::new(st),
            base_url,
        });
    }
    match entry.storage_type.as_str() {
        "backend" => {
            let api_url = entry
                .fields
                .get("api_url")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| fail("api_url is required for storage_type backend".into()))?;
            let credential = settings
                .get("storage_cred")
                .cloned()
                .or_else(|| std::env::var("KERNELCI_STORAGE_CREDENTIAL").ok())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    fail(format!(
                        "no credential: storage_cred in the settings file [storage.{}] or \
                         KERNELCI_STORAGE_CREDENTIAL (the Authorization header value)",
                        entry.name
                    ))
                })?;
            let base = entry
                .base_url
                .clone()
                .unwrap_or_else(|| api_url.to_string());
            let st = KernelciStorage::new(api_url, &base, &credential);
            Ok(Configured {
                base_url: st.base_url.clone(),
                store: std::sync::Arc::new(st),
            })
        }
        other => Err(fail(format!(
            "storage_type {other:?} is not supported here (supported: s3, azure with \
             container, gcs, backend)"
        ))),
    }
}

/// Percent-encode each path segment of a relative name.
pub(crate) fn url_path(dest: &str) -> String {
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
