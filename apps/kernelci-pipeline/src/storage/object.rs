//! Object storage over the `object_store` crate: S3 and S3-compatible servers (MinIO, Ceph
//! RGW, ...), Azure Blob Storage and Google Cloud Storage, configured by a `storage.<name>`
//! entry of the pipeline YAML with `storage_type: s3 | azure | gcs`.
//!
//! Features: `aws-base`, `azure-base` and `gcp-base` with the `reqwest` transport, `ring`
//! signing and rustls without a bundled provider (ring is installed as the process default
//! when none is). Not the batteries-included `aws`/`azure`/`gcp` features: those pull
//! aws-lc-rs, a large C build, next to the ring the tree already has. With ring, `cargo tree`
//! shows that Azure and GCS add no crate over S3 alone (only their code), so all three are on.
//!
//! Credentials never come from the YAML: object_store's standard environment variables
//! (`AWS_*`, `AZURE_STORAGE_*`, `GOOGLE_*`) and, overriding them, the `[storage.<name>]`
//! section of the settings file (`crate::secrets`).
//!
//! Files up to one part are sent in one request; larger ones as a multipart upload read
//! part by part, so memory stays bounded by a few parts whatever the file size.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;

use super::{ArtifactStore, BoxFuture, StorageError, check_name, url_path};

/// Default multipart part size, in MiB.
const DEFAULT_PART_MIB: u64 = 8;
/// The smallest part S3 accepts (except the last one).
const MIN_PART_MIB: u64 = 5;
/// The largest part S3 accepts.
const MAX_PART_MIB: u64 = 5 * 1024;
/// Parts uploading at once; memory use is about (this + 1) parts.
const PARTS_IN_FLIGHT: usize = 3;
/// Size of one read from the local file.
const READ_BUF: usize = 1 << 20;

/// Which object store a `storage_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `s3`: Amazon S3 or an S3-compatible server (`endpoint`).
    S3,
    /// `azure` with a `container`: Azure Blob Storage.
    Azure,
    /// `gcs`: Google Cloud Storage.
    Gcs,
}

impl ObjectKind {
    /// The kind a `storage_type` names, if it is an object store.
    pub fn from_storage_type(storage_type: &str) -> Option<ObjectKind> {
        match storage_type {
            "s3" => Some(ObjectKind::S3),
            "azure" => Some(ObjectKind::Azure),
            "gcs" => Some(ObjectKind::Gcs),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            ObjectKind::S3 => "S3",
            ObjectKind::Azure => "Azure Blob",
            ObjectKind::Gcs => "GCS",
        }
    }

    /// YAML keys of an entry of this kind, besides `storage_type` and `base_url`.
    fn yaml_keys(self) -> &'static [&'static str] {
        match self {
            ObjectKind::S3 => &["bucket", "prefix", "region", "endpoint", "part_size_mib"],
            ObjectKind::Azure => &[
                "container",
                "account",
                "prefix",
                "endpoint",
                "part_size_mib",
            ],
            ObjectKind::Gcs => &["bucket", "prefix", "endpoint", "part_size_mib"],
        }
    }

    /// Keys of its `[storage.<name>]` settings section (`storage_cred` is upstream's and
    /// ignored here).
    fn secret_keys(self) -> &'static [&'static str] {
        match self {
            ObjectKind::S3 => &["access_key_id", "secret_access_key", "session_token"],
            ObjectKind::Azure => &["account_key", "sas_token", "bearer_token"],
            ObjectKind::Gcs => &["service_account_key", "service_account_path"],
        }
    }
}

/// An object store bucket (or Azure container); objects are `<prefix><dest>`, public at
/// `<base_url><prefix><dest>`.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    name: String,
    kind: ObjectKind,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    base_url: String,
    part_size: usize,
}

impl ObjectStorage {
    /// Build the backend of entry `name` (`storage_type`, `base_url` and the other YAML
    /// keys in `fields`) with the `[storage.<name>]` settings in `secrets`. Nothing is
    /// contacted yet: a missing bucket or bad credentials show at the first upload.
    pub fn from_config(
        name: &str,
        storage_type: &str,
        base_url: Option<&str>,
        fields: &Map<String, Value>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<ObjectStorage, StorageError> {
        let fail = |reason: String| StorageError::Config {
            name: name.to_string(),
            reason,
        };
        let kind = ObjectKind::from_storage_type(storage_type).ok_or_else(|| {
            fail(format!(
                "storage_type {storage_type:?} is not an object store (s3, azure, gcs)"
            ))
        })?;
        if kind == ObjectKind::Azure && fields.contains_key("share") {
            return Err(fail(
                "upstream's Azure Files storage (`share`, `sas_public_token`) is not \
                 supported; for Azure Blob Storage give `container` (and `account`)"
                    .into(),
            ));
        }
        for key in fields.keys() {
            if !kind.yaml_keys().contains(&key.as_str()) {
                return Err(fail(format!(
                    "unknown key {key:?} for storage_type {storage_type} (known: storage_type, \
                     base_url, {}); credentials belong in the settings file [storage.{name}] \
                     or the environment",
                    kind.yaml_keys().join(", ")
                )));
            }
        }
        for key in secrets.keys() {
            if key != "storage_cred" && !kind.secret_keys().contains(&key.as_str()) {
                return Err(fail(format!(
                    "settings [storage.{name}]: unknown key {key:?} (known: {})",
                    kind.secret_keys().join(", ")
                )));
            }
        }
        let text = |key: &str| -> Result<Option<String>, StorageError> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(other) => Err(fail(format!("{key}: expected a string, found {other}"))),
            }
        };
        let bucket_key = if kind == ObjectKind::Azure {
            "container"
        } else {
            "bucket"
        };
        let bucket = text(bucket_key)?.ok_or_else(|| {
            fail(format!(
                "{bucket_key} is required for storage_type {storage_type}"
            ))
        })?;
        let prefix = match text("prefix")? {
            None => String::new(),
            Some(p) => {
                let p = p.trim_matches('/');
                check_name(p).map_err(|_| {
                    fail(format!(
                        "prefix {p:?}: must be a relative path without '..'"
                    ))
                })?;
                format!("{p}/")
            }
        };
        let endpoint = text("endpoint")?.map(|e| e.trim_end_matches('/').to_string());
        if let Some(e) = &endpoint
            && url::Url::parse(e).is_err()
        {
            return Err(fail(format!("endpoint {e:?} is not a URL")));
        }
        let part_mib = match fields.get("part_size_mib") {
            None | Some(Value::Null) => DEFAULT_PART_MIB,
            Some(Value::Number(n))
                if n.as_u64()
                    .is_some_and(|v| (MIN_PART_MIB..=MAX_PART_MIB).contains(&v)) =>
            {
                n.as_u64().unwrap_or(DEFAULT_PART_MIB)
            }
            Some(other) => {
                return Err(fail(format!(
                    "part_size_mib: expected a whole number of MiB from {MIN_PART_MIB} to \
                     {MAX_PART_MIB}, found {other}"
                )));
            }
        };
        let part_size = usize::try_from(part_mib << 20)
            .map_err(|_| fail(format!("part_size_mib {part_mib} is too large here")))?;
        // An S3 endpoint may also come from the environment (AWS_ENDPOINT_URL, ...).
        let endpoint = match (kind, endpoint) {
            (ObjectKind::S3, None) => AmazonS3Builder::from_env()
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .map(|e| e.trim_end_matches('/').to_string()),
            (_, e) => e,
        };
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let options = client_options(allow_http);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 4,
            retry_timeout: Duration::from_secs(120),
        };
        let secret = |key: &str| secrets.get(key).filter(|v| !v.is_empty());
        let built = |e: object_store::Error| fail(e.to_string());
        install_crypto_provider();
        let (store, default_base): (Arc<dyn ObjectStore>, String) = match kind {
            ObjectKind::S3 => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_client_options(options)
                    .with_retry(retry);
                let region = match text("region")? {
                    Some(r) => r,
                    None => ["AWS_REGION", "AWS_DEFAULT_REGION"]
                        .iter()
                        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
                        .unwrap_or_else(|| "us-east-1".into()),
                };
                b = b.with_region(&region);
                if let Some(e) = &endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(v) = secret("access_key_id") {
                    b = b.with_access_key_id(v);
                }
                if let Some(v) = secret("secret_access_key") {
                    b = b.with_secret_access_key(v);
                }
                if let Some(v) = secret("session_token") {
                    b = b.with_token(v);
                }
                let base = match &endpoint {
                    Some(e) => format!("{e}/{bucket}/"),
                    None => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
                };
                (Arc::new(b.build().map_err(built)?), base)
            }
            ObjectKind::Azure => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(&bucket)
                    .with_client_options(options)
                    .with_retry(retry);
                let account = match text("account")? {
                    Some(a) => Some(a),
                    None => std::env::var("AZURE_STORAGE_ACCOUNT_NAME")
                        .ok()
                        .filter(|s| !s.is_empty()),
                };
                if let Some(a) = &account {
                    b = b.with_account(a);
                }
                if let Some(e) = &endpoint {
                    b = b.with_endpoint(e.clone());
                }
                if let Some(v) = secret("account_key") {
                    b = b.with_access_key(v);
                }
                if let Some(v) = secret("sas_token") {
                    let pairs = url::form_urlencoded::parse(v.trim_start_matches('?').as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect::<Vec<_>>();
                    b = b.with_sas_authorization(pairs);
                }
                if let Some(v) = secret("bearer_token") {
                    b = b.with_bearer_token_authorization(v);
                }
                let base = match (&endpoint, &account) {
                    (Some(e), _) => format!("{e}/{bucket}/"),
                    (None, Some(a)) => format!("https://{a}.blob.core.windows.net/{bucket}/"),
                    (None, None) => {
                        return Err(fail(
                            "account is required for storage_type azure (or \
                             AZURE_STORAGE_ACCOUNT_NAME, or an endpoint)"
                                .into(),
                        ));
                    }
                };
                (Arc::new(b.build().map_err(built)?), base)
            }
            ObjectKind::Gcs => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket)
                    .with_client_options(options)
                    .with_retry(retry);
                if let Some(e) = &endpoint {
                    b = b.with_url(e);
                }
                if let Some(v) = secret("service_account_key") {
                    b = b.with_service_account_key(v);
                }
                if let Some(v) = secret("service_account_path") {
                    b = b.with_service_account_path(v);
                }
                let base = match &endpoint {
                    Some(e) => format!("{e}/{bucket}/"),
                    None => format!("https://storage.googleapis.com/{bucket}/"),
                };
                (Arc::new(b.build().map_err(built)?), base)
            }
        };
        let base_url = match base_url.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => format!("{}/", b.trim_end_matches('/')),
            None => default_base,
        };
        Ok(ObjectStorage {
            name: name.to_string(),
            kind,
            store,
            bucket,
            prefix,
            base_url,
            part_size,
        })
    }

    /// The public URL objects are linked by (ends with `/`; the object key follows).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The public URL an uploaded `dest` is found under: [`ObjectStorage::base_url`] and
    /// the prefix (`<base><prefix>` + `dest`).
    pub fn public_root(&self) -> String {
        format!("{}{}", self.base_url, self.prefix)
    }

    /// The multipart part size in bytes (files larger than one part are sent in parts).
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// `S3 bucket <name>` and the like, for messages.
    fn target(&self) -> String {
        let what = if self.kind == ObjectKind::Azure {
            "container"
        } else {
            "bucket"
        };
        format!("{} {what} {}", self.kind.label(), self.bucket)
    }

    /// Explain an object store error: which bucket, and what the usual cause is.
    fn reason(&self, e: &object_store::Error) -> String {
        let what = if self.kind == ObjectKind::Azure {
            "container"
        } else {
            "bucket"
        };
        let hint = match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                " (check the credentials: the environment or the settings file)".to_string()
            }
            object_store::Error::NotFound { .. } => {
                format!(" (does {what} {:?} exist?)", self.bucket)
            }
            _ => String::new(),
        };
        let mut text = e.to_string();
        // The chain below the top error holds the server's own words.
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let m = s.to_string();
            if !text.contains(&m) {
                text.push_str(": ");
                text.push_str(&m);
            }
            source = s.source();
        }
        // Servers answer with XML on several lines: one line reads better in a log.
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("{text}{hint}")
    }
}

/// HTTP options: long transfers, content types browsers can show for logs.
fn client_options(allow_http: bool) -> ClientOptions {
    let mut o = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_timeout(Duration::from_secs(300))
        .with_connect_timeout(Duration::from_secs(10));
    for (suffix, mime) in [
        ("txt", "text/plain; charset=utf-8"),
        ("log", "text/plain; charset=utf-8"),
        ("json", "application/json"),
        ("yaml", "text/plain; charset=utf-8"),
        ("html", "text/html; charset=utf-8"),
        ("gz", "application/gzip"),
        ("xz", "application/x-xz"),
        ("patch", "text/plain; charset=utf-8"),
    ] {
        o = o.with_content_type_for_suffix(suffix, mime);
    }
    o
}

/// rustls needs a process-wide crypto provider when built without a bundled one; ring,
/// unless something else installed one first.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: one provider is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl ObjectStorage {
    async fn put_file(&self, local: &Path, key: &ObjectPath) -> Result<(), StorageError> {
        let io = |e: std::io::Error| StorageError::Io {
            path: local.display().to_string(),
            reason: e.to_string(),
        };
        let remote = |e: object_store::Error| StorageError::Upload {
            name: key.to_string(),
            url: self.target(),
            reason: self.reason(&e),
        };
        let mut file = tokio::fs::File::open(local).await.map_err(io)?;
        // Up to one part and one byte: a file that fits goes in one request.
        let mut first = Vec::new();
        (&mut file)
            .take(self.part_size as u64 + 1)
            .read_to_end(&mut first)
            .await
            .map_err(io)?;
        if first.len() <= self.part_size {
            self.store
                .put(key, PutPayload::from(first))
                .await
                .map_err(remote)?;
            return Ok(());
        }
        let upload = self.store.put_multipart(key).await.map_err(remote)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        writer.put(first.into());
        let sent: Result<(), StorageError> = async {
            let mut buf = vec![0u8; READ_BUF];
            loop {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(remote)?;
                let n = file.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(remote),
            Err(e) => {
                // Leave no unfinished upload behind (they are billed); the first error
                // is the one worth reporting.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(
                        "storage {}: aborting the upload of {key}: {abort}",
                        self.name
                    );
                }
                Err(e)
            }
        }
    }
}

impl ArtifactStore for ObjectStorage {
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            check_name(dest)?;
            let key_text = format!("{}{dest}", self.prefix);
            let key = ObjectPath::parse(&key_text)
                .map_err(|_| StorageError::BadName(dest.to_string()))?;
            self.put_file(local, &key).await?;
            Ok(format!("{}{}", self.base_url, url_path(&key_text)))
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}{} ({}) served at {}",
            self.target(),
            if self.prefix.is_empty() {
                String::new()
            } else {
                format!(" prefix {}", self.prefix)
            },
            self.store,
            self.base_url
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: serde_json::Value) -> Map<String, Value> {
        match yaml {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn config_errors_name_their_key() {
        let none = BTreeMap::new();
        let e = ObjectStorage::from_config("st", "s3", None, &entry(serde_json::json!({})), &none)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "storage st: bucket is required for storage_type s3");
        let e = ObjectStorage::from_config(
            "st",
            "s3",
            None,
            &entry(serde_json::json!({"bucket": "b", "secret_access_key": "x"})),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown key \"secret_access_key\""), "{e}");
        assert!(e.contains("[storage.st]"), "{e}");
        let e = ObjectStorage::from_config(
            "st",
            "s3",
            None,
            &entry(serde_json::json!({"bucket": "b", "part_size_mib": 1})),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("part_size_mib"), "{e}");
        let e = ObjectStorage::from_config(
            "st",
            "azure",
            None,
            &entry(serde_json::json!({"share": "s", "sas_public_token": "t"})),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Azure Files"), "{e}");
        let e = ObjectStorage::from_config(
            "st",
            "s3",
            None,
            &entry(serde_json::json!({"bucket": "b", "prefix": "../up"})),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("prefix"), "{e}");
        let bad_secret = BTreeMap::from([("password".to_string(), "x".to_string())]);
        let e = ObjectStorage::from_config(
            "st",
            "gcs",
            None,
            &entry(serde_json::json!({"bucket": "b"})),
            &bad_secret,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[storage.st]: unknown key \"password\""), "{e}");
    }

    #[test]
    fn default_public_urls() {
        let none = BTreeMap::new();
        let st = |t: &str, v: serde_json::Value| {
            ObjectStorage::from_config("st", t, None, &entry(v), &none)
                .unwrap()
                .base_url()
                .to_string()
        };
        assert_eq!(
            st(
                "s3",
                serde_json::json!({"bucket": "b", "region": "eu-west-1"})
            ),
            "https://b.s3.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            st(
                "s3",
                serde_json::json!({"bucket": "b", "endpoint": "http://minio:9000/"})
            ),
            "http://minio:9000/b/"
        );
        assert_eq!(
            st(
                "azure",
                serde_json::json!({"container": "c", "account": "acct"})
            ),
            "https://acct.blob.core.windows.net/c/"
        );
        assert_eq!(
            st("gcs", serde_json::json!({"bucket": "g"})),
            "https://storage.googleapis.com/g/"
        );
        let explicit = ObjectStorage::from_config(
            "st",
            "s3",
            Some("https://files.example.org/kci"),
            &entry(serde_json::json!({"bucket": "b", "part_size_mib": 5})),
            &none,
        )
        .unwrap();
        assert_eq!(explicit.base_url(), "https://files.example.org/kci/");
        assert_eq!(explicit.part_size(), 5 << 20);
    }
}
