//! Fetching logs for triage: `file://` paths and `http://` URLs, with a size bound, timeouts
//! and a small in-memory cache (many tests of one job share one log).
//!
//! * `file://` URLs are read from the local filesystem (`url::Url::to_file_path`), at most
//!   [`FetchLimits::max_bytes`]; a larger file is an error, not a truncated log.
//! * `http://` and `https://` URLs are fetched with reqwest (rustls with the webpki roots;
//!   connect and total timeouts, redirects followed, body streamed and refused past the
//!   same bound, a non-2xx status is an error).
//! * The cache keeps the most recently inserted logs up to [`FetchLimits::cache_bytes`] in
//!   total, evicting the oldest first. Failures are not cached.
//!
//! A gzip log (recognized by its magic bytes, whatever the URL says, as upstream's parser
//! does) is decompressed, with the same bound on the decompressed size.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bounds of a fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Largest log accepted, in bytes.
    pub max_bytes: u64,
    /// Connection timeout (HTTP).
    pub connect_timeout: Duration,
    /// Whole-request timeout (HTTP).
    pub timeout: Duration,
    /// Total bytes the cache may hold (0 disables it).
    pub cache_bytes: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            cache_bytes: 128 << 20,
        }
    }
}

/// Why a log could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not a URL, or a scheme we cannot fetch.
    #[error("unsupported log URL {0:?}")]
    Unsupported(String),
    /// Reading a local file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP request failed.
    #[error("cannot fetch {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The log is larger than the limit.
    #[error("log {0} is larger than {1} bytes")]
    TooLarge(String, u64),
}

#[derive(Default)]
struct Cache {
    bytes: u64,
    order: VecDeque<String>,
    logs: HashMap<String, Arc<Vec<u8>>>,
}

/// A log fetcher with its cache.
#[derive(Clone)]
pub struct LogFetcher {
    client: reqwest::Client,
    limits: FetchLimits,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for LogFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFetcher")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LogFetcher {
    /// A fetcher with these limits.
    pub fn new(limits: FetchLimits) -> LogFetcher {
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .user_agent(concat!("kernelci-triage/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        LogFetcher {
            client,
            limits,
            cache: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// The log at `url`, and whether it came from the cache.
    pub async fn fetch(&self, url: &str) -> Result<(Arc<Vec<u8>>, bool), FetchError> {
        if let Some(hit) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.logs.get(url).cloned())
        {
            return Ok((hit, true));
        }
        let parsed = url::Url::parse(url).map_err(|_| FetchError::Unsupported(url.to_string()))?;
        let data = match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| FetchError::Unsupported(url.to_string()))?;
                let max = self.limits.max_bytes;
                let name = url.to_string();
                tokio::task::spawn_blocking(move || read_file(&path, max, &name))
                    .await
                    .map_err(|e| FetchError::Http {
                        url: url.to_string(),
                        reason: format!("read task: {e}"),
                    })??
            }
            "http" | "https" => self.fetch_http(url).await?,
            _ => return Err(FetchError::Unsupported(url.to_string())),
        };
        let data = if data.starts_with(&[0x1f, 0x8b]) {
            let max = self.limits.max_bytes;
            let name = url.to_string();
            tokio::task::spawn_blocking(move || gunzip(&data, max, &name))
                .await
                .map_err(|e| FetchError::Http {
                    url: url.to_string(),
                    reason: format!("gunzip task: {e}"),
                })??
        } else {
            data
        };
        let data = Arc::new(data);
        self.remember(url, &data);
        Ok((data, false))
    }

    async fn fetch_http(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let http = |reason: String| FetchError::Http {
            url: url.to_string(),
            reason,
        };
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(http(format!("HTTP {}", resp.status())));
        }
        let max = self.limits.max_bytes;
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(FetchError::TooLarge(url.to_string(), max));
        }
        let mut data = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| http(e.to_string()))? {
            if data.len() as u64 + chunk.len() as u64 > max {
                return Err(FetchError::TooLarge(url.to_string(), max));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }

    fn remember(&self, url: &str, data: &Arc<Vec<u8>>) {
        let size = data.len() as u64;
        let cap = self.limits.cache_bytes;
        if size > cap {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.logs.contains_key(url) {
            return;
        }
        while cache.bytes + size > cap {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            if let Some(d) = cache.logs.remove(&old) {
                cache.bytes -= d.len() as u64;
            }
        }
        cache.bytes += size;
        cache.order.push_back(url.to_string());
        cache.logs.insert(url.to_string(), Arc::clone(data));
    }

    /// Bytes held by the cache.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.lock().map(|c| c.bytes).unwrap_or(0)
    }
}

fn gunzip(data: &[u8], max: u64, url: &str) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| FetchError::Http {
            url: url.to_string(),
            reason: format!("bad gzip data: {e}"),
        })?;
    if out.len() as u64 > max {
        return Err(FetchError::TooLarge(url.to_string(), max));
    }
    Ok(out)
}

fn read_file(path: &std::path::Path, max: u64, url: &str) -> Result<Vec<u8>, FetchError> {
    let io = |source| FetchError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    file.take(max + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > max {
        return Err(FetchError::TooLarge(url.to_string(), max));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_cache_and_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"hello").expect("write");
        let url = url::Url::from_file_path(&path).expect("url").to_string();
        let fetcher = LogFetcher::new(FetchLimits {
            max_bytes: 8,
            cache_bytes: 6,
            ..FetchLimits::default()
        });
        let (data, hit) = fetcher.fetch(&url).await.expect("fetch");
        assert_eq!((data.as_slice(), hit), (&b"hello"[..], false));
        assert!(fetcher.fetch(&url).await.expect("again").1);
        let big = dir.path().join("b.log");
        std::fs::write(&big, b"0123456789").expect("write");
        let big_url = url::Url::from_file_path(&big).expect("url").to_string();
        assert!(matches!(
            fetcher.fetch(&big_url).await,
            Err(FetchError::TooLarge(..))
        ));
        assert!(matches!(
            fetcher.fetch("gopher://x/y").await,
            Err(FetchError::Unsupported(_))
        ));
        assert!(fetcher.cached_bytes() <= 6);
    }

    #[tokio::test]
    async fn gzip_logs_are_decompressed() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"line 1\nline 2\n").expect("gzip");
        std::fs::write(&path, enc.finish().expect("gzip")).expect("write");
        let url = url::Url::from_file_path(&path).expect("url").to_string();
        let fetcher = LogFetcher::new(FetchLimits::default());
        let (data, _) = fetcher.fetch(&url).await.expect("fetch");
        assert_eq!(data.as_slice(), b"line 1\nline 2\n");
        let small = LogFetcher::new(FetchLimits {
            max_bytes: 10,
            ..FetchLimits::default()
        });
        assert!(matches!(
            small.fetch(&url).await,
            Err(FetchError::TooLarge(..))
        ));
    }
}
