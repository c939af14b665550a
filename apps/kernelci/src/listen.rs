//! Serving, shared by every serving command (`up`, `api`, `kcidb serve`, `pipeline run
//! --listen`): plain HTTP or HTTPS, forwarded headers from trusted proxies only, and each
//! role's request body limit and request timeout.
//!
//! HTTPS is rustls with the ring provider through tokio-rustls, behind axum's own
//! [`axum::serve::Listener`]: both crates were already in the tree (kube's hyper-rustls), so
//! this adds no crate, where axum-server would add itself and its own dependencies. The
//! certificate is served by a [`ResolvesServerCert`] whose pair is swapped when the files
//! change (polled), so a renewal (certbot, any ACME client) needs no restart and drops no
//! connection; a new pair that does not load is logged and the old one kept.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State, connect_info::Connected};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use clap::Args;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{ServerConfig, crypto::ring};
use tokio_rustls::server::TlsStream;
use tracing::Instrument;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of every serving command: TLS, trusted proxies, the request timeout.
#[derive(Args, Clone, Debug)]
pub struct ListenArgs {
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. Reloaded
    /// when it changes.
    #[arg(long, env = "KERNELCI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "KERNELCI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds between checks of the certificate and key files for a renewal (0: never).
    #[arg(long, env = "KERNELCI_TLS_RELOAD", default_value_t = 5)]
    pub tls_reload: u64,
    /// Proxies (IP or CIDR, comma-separated) whose `Forwarded` / `X-Forwarded-*` headers
    /// are honoured; from any other peer they are removed.
    #[arg(long, env = "KERNELCI_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxy: Vec<String>,
    /// Seconds a request may take until its response starts (0: no limit); a slower one
    /// gets a 408. KCIDB submissions have their own, --kcidb-request-timeout.
    #[arg(long, env = "KERNELCI_REQUEST_TIMEOUT", default_value_t = 300)]
    pub request_timeout: u64,
}

impl ListenArgs {
    /// `--request-timeout` as a duration (`None`: no limit).
    pub fn timeout(&self) -> Option<Duration> {
        seconds(self.request_timeout)
    }
}

/// `secs` as a duration, 0 meaning none.
pub fn seconds(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A bound listening socket, ready to serve.
pub struct Bound {
    inner: Inner,
    addr: SocketAddr,
    proxies: Arc<Proxies>,
}

enum Inner {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// Bind `addr` and, with --tls-cert, load the certificate and start watching it.
pub async fn bind(addr: SocketAddr, args: &ListenArgs) -> Result<Bound> {
    let proxies = Arc::new(Proxies::parse(&args.trusted_proxy)?);
    // Load the certificate before binding: a bad one is a start-up error.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(CertFiles::load(cert, key)?),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let tcp = TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!(
                "cannot listen on {addr}: the port is already in use (pick another with --listen)"
            )
        } else {
            anyhow!("cannot listen on {addr}: {e}")
        }
    })?;
    let addr = tcp.local_addr().unwrap_or(addr);
    let inner = match tls {
        Some(files) => Inner::Tls(TlsListener::start(tcp, files, seconds(args.tls_reload))?),
        None => Inner::Plain(tcp),
    };
    Ok(Bound {
        inner,
        addr,
        proxies,
    })
}

impl Bound {
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self.inner {
            Inner::Plain(_) => "http",
            Inner::Tls(_) => "https",
        }
    }

    /// `scheme://addr`, for messages.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    /// A base URL this process can be reached at: the listen address, with 127.0.0.1 for
    /// an unspecified one.
    pub fn local_base_url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            match self.addr.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                ip => ip.to_string(),
            }
        };
        format!("{}://{host}:{}", self.scheme(), self.addr.port())
    }

    /// Serve `app` until `shutdown` resolves, then finish the requests in flight.
    pub async fn serve<F>(self, app: Router, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let app = app.layer(middleware::from_fn_with_state(self.proxies, forwarded));
        let service = app.into_make_service_with_connect_info::<Peer>();
        match self.inner {
            Inner::Plain(l) => axum::serve(l, service)
                .with_graceful_shutdown(shutdown)
                .await
                .context("server error"),
            Inner::Tls(l) => axum::serve(l, service)
                .with_graceful_shutdown(shutdown)
                .await
                .context("server error"),
        }
    }
}

/// The TCP peer of a connection (the connect info of both listeners).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

// ---- TLS ----

/// The certificate and key files and the pair loaded from them.
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// Modification time and size of both files when last loaded (or tried).
    stamp: Option<Stamp>,
    loaded: Arc<CertifiedKey>,
}

type Stamp = [(SystemTime, u64); 2];

impl CertFiles {
    fn load(cert: &Path, key: &Path) -> Result<CertFiles> {
        let provider = Arc::new(ring::default_provider());
        let stamp = stamp(cert, key);
        let loaded = Arc::new(load_pair(cert, key, &provider)?);
        Ok(CertFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            stamp,
            loaded,
        })
    }

    /// If either file changed since the last look, the pair loaded from them (or why not).
    fn changed(&mut self) -> Option<Result<Arc<CertifiedKey>>> {
        let now = stamp(&self.cert, &self.key);
        if now.is_none() || now == self.stamp {
            return None;
        }
        // Remember it even when loading fails: one message per change, not one per poll.
        self.stamp = now;
        Some(load_pair(&self.cert, &self.key, &self.provider).map(Arc::new))
    }
}

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(cert)?, one(key)?])
}

/// Read a PEM certificate chain and private key and check that they belong together.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("cannot read the private key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        anyhow!(
            "the certificate {} and key {} do not make a usable pair: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// The certificate every handshake gets; swapped on renewal.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A TCP listener whose connections are handed over once their TLS handshake is done
/// (handshakes run in their own tasks, so a slow client holds up nobody).
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TlsListener {
    fn start(tcp: TcpListener, files: CertFiles, reload: Option<Duration>) -> Result<TlsListener> {
        let resolver = Arc::new(Resolver(RwLock::new(files.loaded.clone())));
        let mut config = ServerConfig::builder_with_provider(files.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // axum serves HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let local = tcp.local_addr().context("listening socket")?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let mut tasks = vec![tokio::spawn(accept_loop(tcp, acceptor, tx))];
        if let Some(every) = reload {
            tasks.push(tokio::spawn(watch(files, resolver, every)));
        }
        Ok(TlsListener {
            ready,
            local,
            tasks,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop never ends while we hold its receiver.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: tokio::sync::mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
            }
        });
    }
}

/// Poll the certificate files; load a changed pair and serve it from the next handshake.
async fn watch(mut files: CertFiles, resolver: Arc<Resolver>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match files.changed() {
            None => {}
            Some(Ok(key)) => {
                resolver.set(key);
                tracing::info!("TLS certificate reloaded from {}", files.cert.display());
            }
            Some(Err(e)) => {
                tracing::error!(
                    "TLS certificate not reloaded, still serving the previous one: {e:#}"
                )
            }
        }
    }
}

// ---- proxies ----

/// The trusted proxies: IP networks.
#[derive(Debug, Default)]
pub struct Proxies(Vec<(IpAddr, u8)>);

impl Proxies {
    /// Parse `IP` or `IP/PREFIX` items.
    pub fn parse(items: &[String]) -> Result<Proxies> {
        let mut nets = Vec::new();
        for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let (ip, prefix) = match item.split_once('/') {
                Some((ip, p)) => (ip, Some(p)),
                None => (item, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| anyhow!("--trusted-proxy {item:?}: not an IP address or CIDR"))?;
            let ip = ip.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| anyhow!("--trusted-proxy {item:?}: bad prefix length"))?,
            };
            nets.push((ip, prefix));
        }
        Ok(Proxies(nets))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }

    /// The client of a request `peer` sent: the last address in its forwarding chain that
    /// is not a trusted proxy (`Forwarded: for=` first, else `X-Forwarded-For`).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut chain = forwarded_for(headers);
        if chain.is_empty() {
            chain = list(headers, &X_FORWARDED_FOR)
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .collect();
        }
        let mut client = peer;
        for ip in chain.into_iter().rev() {
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The headers only a trusted proxy may send.
const FORWARDING_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

/// The comma-separated items of every `name` header.
fn list<'h>(headers: &'h HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The `for=` addresses of the `Forwarded` headers (RFC 7239), in order; obfuscated and
/// `unknown` nodes are skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    list(headers, &header::FORWARDED)
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| node_ip(v.trim()))?
            })
        })
        .collect()
}

/// The IP of a `Forwarded` node: `1.2.3.4`, `"1.2.3.4:80"`, `"[::1]"`, `"[::1]:80"`.
fn node_ip(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

/// Drop forwarding headers from untrusted peers and log each request with its client's
/// address (at debug level, target `kernelci::listen`; the handlers' own messages carry it
/// in their span).
async fn forwarded(State(proxies): State<Arc<Proxies>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(addr))| *addr);
    let client = match peer {
        Some(p) if proxies.trusts(p.ip()) => proxies.client(p.ip(), req.headers()),
        _ => {
            for name in FORWARDING_HEADERS {
                req.headers_mut().remove(name);
            }
            peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip())
        }
    };
    if let Some(p) = peer {
        // What the roles' own handlers look for.
        req.extensions_mut().insert(ConnectInfo(p));
    }
    let span = tracing::debug_span!("request", %client);
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    tracing::debug!(
        parent: &span,
        "{method} {path} -> {} in {} ms",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

// ---- per-role limits ----

/// A role's request body limit and request timeout, with the flags that set them (named
/// in the error messages).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body in bytes; `None` when the role checks its own.
    pub max_body: Option<u64>,
    /// The flag that sets `max_body`.
    pub body_flag: &'static str,
    /// Longest time until the response starts.
    pub timeout: Option<Duration>,
    /// The flag that sets `timeout`.
    pub timeout_flag: &'static str,
}

impl Limits {
    /// Apply to every route of `router` (before it is merged with other roles').
    pub fn apply(self, router: Router) -> Router {
        let router = match self.max_body {
            // The limit is enforced around the body itself; axum's extractor default
            // (2 MiB) would otherwise be a second, lower one. A role's own limit (set
            // inside) still applies when lower.
            Some(max) => router
                .layer(tower_http::limit::RequestBodyLimitLayer::new(
                    usize::try_from(max).unwrap_or(usize::MAX),
                ))
                .layer(DefaultBodyLimit::disable()),
            None => router,
        };
        // Outermost: a declared length over the limit gets our message before anything.
        router.layer(middleware::from_fn_with_state(Arc::new(self), guard))
    }
}

async fn guard(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    if let Some(max) = limits.max_body
        && let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        && len > max
    {
        return detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body of {len} bytes is larger than the limit of {max} bytes (--{})",
                limits.body_flag
            ),
        );
    }
    match limits.timeout {
        None => next.run(req).await,
        Some(limit) => match tokio::time::timeout(limit, next.run(req)).await {
            Ok(response) => response,
            Err(_) => detail(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Request not answered within {} s (--{})",
                    limit.as_secs(),
                    limits.timeout_flag
                ),
            ),
        },
    }
}

/// `{"detail": message}`, the API's error shape.
fn detail(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "detail": message }))).into_response()
}

/// The pipeline API's body limit (`up` and `pipeline run --listen`).
#[derive(Args, Clone, Debug)]
pub struct PipelineLimit {
    /// The largest pipeline API request body (LAVA callbacks, patchsets), in bytes (413
    /// beyond).
    #[arg(long, env = "KERNELCI_MAX_BODY_PIPELINE", default_value_t = kernelci_pipeline::api::MAX_BODY as u64)]
    pub max_body_pipeline: u64,
}

impl PipelineLimit {
    /// The pipeline API's limits, checked.
    pub fn limits(&self, net: &ListenArgs) -> Result<Limits> {
        Ok(Limits {
            max_body: Some(body_limit(
                "max-body-pipeline",
                self.max_body_pipeline,
                kernelci_pipeline::api::MAX_BODY,
            )?),
            body_flag: "max-body-pipeline",
            timeout: net.timeout(),
            timeout_flag: "request-timeout",
        })
    }
}

/// A configured body limit checked against the largest a role can take.
pub fn body_limit(flag: &str, value: u64, ceiling: usize) -> Result<u64> {
    let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);
    if value == 0 || value > ceiling {
        bail!("--{flag} must be between 1 and {ceiling} bytes");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(items: &[&str]) -> Proxies {
        Proxies::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid proxies")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks() {
        let p = proxies(&["10.0.0.0/8", "127.0.0.1", "fd00::/8", " "]);
        assert!(p.trusts(ip("10.1.2.3")));
        assert!(p.trusts(ip("127.0.0.1")));
        assert!(p.trusts(ip("::ffff:127.0.0.1")));
        assert!(p.trusts(ip("fd12::1")));
        assert!(!p.trusts(ip("11.0.0.1")));
        assert!(!p.trusts(ip("127.0.0.2")));
        assert!(!p.trusts(ip("::1")));
        assert!(proxies(&["0.0.0.0/0"]).trusts(ip("8.8.8.8")));
        assert!(!Proxies::default().trusts(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "::1/129", "1.2.3.4/x"] {
            assert!(Proxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_address() {
        let p = proxies(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.7"));
        // The first untrusted address from the right; the leftmost is the client's claim.
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("2.2.2.2"));
        assert_eq!(p.client(ip("8.8.8.8"), &h), ip("8.8.8.8"));
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.9"),
        );
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("2001:db8::1"));
        let mut only_proxies = HeaderMap::new();
        only_proxies.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.5"));
        assert_eq!(p.client(ip("10.0.0.1"), &only_proxies), ip("10.0.0.5"));
        assert_eq!(p.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        assert_eq!(node_ip("unknown"), None);
        assert_eq!(node_ip("\"1.2.3.4:80\""), Some(ip("1.2.3.4")));
    }

    #[test]
    fn body_limits() {
        assert_eq!(body_limit("max-body-api", 10, 100).ok(), Some(10));
        assert!(body_limit("max-body-api", 0, 100).is_err());
        assert!(body_limit("max-body-api", 101, 100).is_err());
    }
}
