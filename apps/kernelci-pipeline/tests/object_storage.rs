//! The object-store artifact backend against a real S3 server: moto (`moto_server`, started
//! by `scripts/s3-local.sh`), at `KERNELCI_TEST_S3_URL`. Without it the tests say so and
//! pass, except under CI (`CI` set), where a missing server is a failure.
//!
//! Storage entries go through the real configuration path: a pipeline YAML loaded by
//! kernelci-sched, credentials from a settings file, `storage::from_config`. Files come back
//! over plain HTTP from the public URL the upload returned.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use kernelci_pipeline::secrets::Secrets;
use kernelci_pipeline::storage::{self, Configured, StorageError};

/// moto checks no credentials until a test turns its auth on, for the whole server; that
/// test holds this lock exclusively, every other one shared. A file lock, because nextest
/// runs each test in its own process.
fn auth_lock(exclusive: bool) -> std::fs::File {
    let path = std::env::temp_dir().join("kernelci-s3-test-auth.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    if exclusive { f.lock() } else { f.lock_shared() }.unwrap();
    f
}

/// The S3 endpoint, or `None` (test skipped) when it is not configured outside CI.
fn endpoint(test: &str) -> Option<String> {
    match std::env::var("KERNELCI_TEST_S3_URL") {
        Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_string()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: KERNELCI_TEST_S3_URL is not set under CI (scripts/s3-local.sh start)"
            );
            eprintln!(
                "SKIP {test}: KERNELCI_TEST_S3_URL is not set (run scripts/s3-local.sh start and . /tmp/kernelci-s3/env)"
            );
            None
        }
    }
}

/// A bucket name no other test (or earlier run) uses.
fn unique_bucket() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "kci-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Create a bucket whose objects anyone may read, as an artifacts bucket is set up (a
/// bucket policy; docs/scale-out.md). moto takes these S3 calls unsigned while its auth is
/// off.
async fn create_bucket(url: &str, bucket: &str) {
    let http = reqwest::Client::new();
    let r = http.put(format!("{url}/{bucket}")).send().await.unwrap();
    assert!(
        r.status().is_success(),
        "create bucket {bucket}: {}",
        r.status()
    );
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/*")],
        }],
    });
    let r = http
        .put(format!("{url}/{bucket}?policy"))
        .body(policy.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "bucket policy {bucket}: {}",
        r.status()
    );
}

/// A storage entry written as in a pipeline YAML, loaded by kernelci-sched, with a
/// settings file holding its credentials.
fn configured(
    dir: &Path,
    entry_yaml: &str,
    settings_toml: &str,
) -> Result<Configured, StorageError> {
    let yaml = dir.join("pipeline.yaml");
    std::fs::write(&yaml, format!("storage:\n  artifacts:\n{entry_yaml}")).unwrap();
    let config = kernelci_sched::config::PipelineConfig::load_files(&[&yaml]).unwrap();
    let secrets = Secrets::parse(settings_toml).unwrap();
    storage::from_config(&config.storage["artifacts"], &secrets.storage("artifacts"))
}

const GOOD_KEYS: &str = "[storage.artifacts]\naccess_key_id = \"kernelci-test\"\nsecret_access_key = \"kernelci-test-secret\"\n";

/// Bytes that do not repeat at part boundaries (a part sent twice or out of order shows).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn small_and_multipart_uploads_come_back_from_their_public_url() {
    let Some(url) = endpoint("small_and_multipart_uploads_come_back_from_their_public_url") else {
        return;
    };
    let _auth = auth_lock(false);
    let bucket = unique_bucket();
    create_bucket(&url, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let st = configured(
        dir.path(),
        &format!(
            "    storage_type: s3\n    bucket: {bucket}\n    prefix: /kci/staging/\n    region: eu-west-1\n    endpoint: {url}\n    part_size_mib: 5\n"
        ),
        GOOD_KEYS,
    )
    .unwrap();
    // The prefix is part of where names are found: a stored `dest` is at base_url + dest.
    assert_eq!(st.base_url, format!("{url}/{bucket}/kci/staging/"));
    let http = reqwest::Client::new();

    let small = dir.path().join("log.txt");
    std::fs::write(&small, b"hello from the console\n").unwrap();
    let got = st
        .store
        .upload(&small, "baseline-x86 1/log.txt")
        .await
        .unwrap();
    assert_eq!(
        got,
        format!("{url}/{bucket}/kci/staging/baseline-x86%201/log.txt")
    );
    let r = http.get(&got).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(&r.bytes().await.unwrap()[..], b"hello from the console\n");

    // 12 MiB with 5 MiB parts: three parts (5 + 5 + 2), the last one short.
    let big_bytes = pattern(12 << 20);
    let big = dir.path().join("rootfs.cpio.gz");
    std::fs::write(&big, &big_bytes).unwrap();
    let got = st
        .store
        .upload(&big, "kbuild-gcc-12-x86-abc/rootfs.cpio.gz")
        .await
        .unwrap();
    assert_eq!(
        got,
        format!("{url}/{bucket}/kci/staging/kbuild-gcc-12-x86-abc/rootfs.cpio.gz")
    );
    let r = http.get(&got).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // S3 marks an object assembled from N parts with an ETag ending in "-N".
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "not a 3-part upload: {etag}"
    );
    let back = r.bytes().await.unwrap();
    assert_eq!(back.len(), big_bytes.len());
    assert!(back[..] == big_bytes[..], "the downloaded bytes differ");

    // Exactly one part's worth goes in one request (no multipart suffix).
    let one_part = dir.path().join("bzImage");
    std::fs::write(&one_part, pattern(5 << 20)).unwrap();
    let got = st.store.upload(&one_part, "k/bzImage").await.unwrap();
    let r = http.get(&got).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(!etag.contains('-'), "single request expected: {etag}");
    assert_eq!(r.bytes().await.unwrap().len(), 5 << 20);

    // Uploading again replaces the object.
    std::fs::write(&small, b"second").unwrap();
    let got = st
        .store
        .upload(&small, "baseline-x86 1/log.txt")
        .await
        .unwrap();
    assert_eq!(
        &http.get(&got).send().await.unwrap().bytes().await.unwrap()[..],
        b"second"
    );
}

#[tokio::test]
async fn a_public_base_url_is_used_for_the_links() {
    let Some(url) = endpoint("a_public_base_url_is_used_for_the_links") else {
        return;
    };
    let _auth = auth_lock(false);
    let bucket = unique_bucket();
    create_bucket(&url, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let st = configured(
        dir.path(),
        &format!(
            "    storage_type: s3\n    base_url: https://files.example.org/kernelci/\n    bucket: {bucket}\n    endpoint: {url}\n"
        ),
        GOOD_KEYS,
    )
    .unwrap();
    let f = dir.path().join("f.json");
    std::fs::write(&f, b"{}").unwrap();
    let got = st.store.upload(&f, "a/f.json").await.unwrap();
    assert_eq!(got, "https://files.example.org/kernelci/a/f.json");
    // Stored in the bucket all the same.
    let r = reqwest::get(format!("{url}/{bucket}/a/f.json"))
        .await
        .unwrap();
    assert_eq!(&r.bytes().await.unwrap()[..], b"{}");
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_error() {
    let Some(url) = endpoint("a_missing_bucket_is_a_clear_error") else {
        return;
    };
    let _auth = auth_lock(false);
    let bucket = unique_bucket(); // never created
    let dir = tempfile::tempdir().unwrap();
    let st = configured(
        dir.path(),
        &format!("    storage_type: s3\n    bucket: {bucket}\n    endpoint: {url}\n"),
        GOOD_KEYS,
    )
    .unwrap();
    let f = dir.path().join("log.txt");
    std::fs::write(&f, b"x").unwrap();
    let e = st.store.upload(&f, "j/log.txt").await.unwrap_err();
    let text = e.to_string();
    eprintln!("missing bucket: {text}");
    assert!(matches!(e, StorageError::Upload { .. }), "{text}");
    assert!(
        text.contains("NoSuchBucket"),
        "the server's reason is missing: {text}"
    );
    assert!(text.contains(&bucket), "{text}");
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_the_servers_reason() {
    let Some(url) = endpoint("wrong_credentials_are_refused_with_the_servers_reason") else {
        return;
    };
    let _auth = auth_lock(true);
    let bucket = unique_bucket();
    create_bucket(&url, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let st = configured(
        dir.path(),
        &format!("    storage_type: s3\n    bucket: {bucket}\n    endpoint: {url}\n"),
        "[storage.artifacts]\naccess_key_id = \"AKIAWRONGWRONGWRONG1\"\nsecret_access_key = \"wrong\"\n",
    )
    .unwrap();
    let f = dir.path().join("log.txt");
    std::fs::write(&f, b"x").unwrap();
    let http = reqwest::Client::new();
    // From now on moto checks every request's key against its IAM users (there are none).
    let on = http
        .post(format!("{url}/moto-api/reset-auth"))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(on.status().is_success(), "{}", on.status());
    let result = st.store.upload(&f, "j/log.txt").await;
    let off = http
        .post(format!("{url}/moto-api/reset-auth"))
        .body("inf")
        .send()
        .await
        .unwrap();
    assert!(off.status().is_success(), "{}", off.status());
    let text = result.unwrap_err().to_string();
    eprintln!("wrong credentials: {text}");
    assert!(text.contains("403"), "{text}");
    assert!(
        text.contains("InvalidAccessKeyId"),
        "the server's reason is missing: {text}"
    );
    assert!(text.contains("check the credentials"), "{text}");
}

#[tokio::test]
async fn names_that_escape_the_prefix_are_refused() {
    let Some(url) = endpoint("names_that_escape_the_prefix_are_refused") else {
        return;
    };
    let _auth = auth_lock(false);
    let bucket = unique_bucket();
    create_bucket(&url, &bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let st = configured(
        dir.path(),
        &format!(
            "    storage_type: s3\n    bucket: {bucket}\n    prefix: kci\n    endpoint: {url}\n"
        ),
        GOOD_KEYS,
    )
    .unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, b"x").unwrap();
    for bad in ["../x", "/x", "a/../../x", ""] {
        let e = st.store.upload(&f, bad).await.unwrap_err();
        assert!(matches!(e, StorageError::BadName(_)), "{bad}: {e}");
    }
    // Nothing reached the bucket.
    let list = reqwest::get(format!("{url}/{bucket}?list-type=2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("<KeyCount>0</KeyCount>"), "{list}");
}

/// No server needed: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_endpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let st = configured(
        dir.path(),
        "    storage_type: s3\n    bucket: b\n    endpoint: http://127.0.0.1:1\n",
        GOOD_KEYS,
    )
    .unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, b"x").unwrap();
    let started = std::time::Instant::now();
    let text = st.store.upload(&f, "x").await.unwrap_err().to_string();
    eprintln!("unreachable: {text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.to_lowercase().contains("connect"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// No server needed: configuration problems are refused before any upload.
#[test]
fn configuration_problems_name_the_entry_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = |entry: &str, settings: &str| {
        configured(dir.path(), entry, settings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        text("    storage_type: s3\n    region: x\n", ""),
        "storage artifacts: bucket is required for storage_type s3"
    );
    let e = text(
        "    storage_type: s3\n    bucket: b\n    access_key_id: AK\n",
        "",
    );
    assert!(
        e.contains("unknown key \"access_key_id\"") && e.contains("[storage.artifacts]"),
        "{e}"
    );
    let e = text("    storage_type: ssh\n    host: h\n", "");
    assert!(e.contains("\"ssh\" is not supported"), "{e}");
    let e = text(
        "    storage_type: backend\n    api_url: https://files.example.org\n",
        "",
    );
    assert!(e.contains("storage_cred"), "{e}");
    // The kernelci-storage backend takes its credential from the same section.
    let ok = configured(
        dir.path(),
        "    storage_type: backend\n    api_url: https://api.example.org\n    base_url: https://files.example.org\n",
        "[storage.artifacts]\nstorage_cred = \"Bearer x\"\n",
    )
    .unwrap();
    assert_eq!(ok.base_url, "https://files.example.org/");
}
