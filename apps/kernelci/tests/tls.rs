//! Serving of the real binary: HTTPS with `--tls-cert`/`--tls-key` and certificate renewal
//! without restart, forwarded headers from trusted proxies only, per-role body limits and
//! the request timeout. Certificates are made with the `openssl` command.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A self-signed certificate for `localhost` and 127.0.0.1.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    /// The certificate, DER.
    der: Vec<u8>,
    pem: Vec<u8>,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make a certificate `name` with a key of `kind`: `ec` (SEC1 `EC PRIVATE KEY`), `rsa`
/// (PKCS#1 `RSA PRIVATE KEY`) or `pkcs8` (an EC key as `PRIVATE KEY`).
fn make_cert(dir: &Path, name: &str, kind: &str) -> Cert {
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    let conf = p("cnf");
    std::fs::write(
        &conf,
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = localhost {name}\n\
             [ext]\nbasicConstraints = critical, CA:FALSE\n\
             subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n"
        ),
    )
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (cert, key, pkcs8, der) = (p("crt"), p("key"), p("p8"), p("der"));
    let newkey = if kind == "rsa" {
        vec!["-newkey", "rsa:2048"]
    } else {
        vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    };
    let mut args = vec!["req", "-x509", "-config", conf.to_str().unwrap(), "-nodes"];
    args.extend(newkey);
    let (ks, cs) = (s(&pkcs8), s(&cert));
    args.extend(["-keyout", &ks, "-out", &cs, "-days", "2"]);
    openssl(&args);
    let key_s = s(&key);
    match kind {
        "rsa" => openssl(&["rsa", "-in", &ks, "-traditional", "-out", &key_s]),
        "ec" => openssl(&["ec", "-in", &ks, "-out", &key_s]),
        _ => {
            std::fs::copy(&pkcs8, &key).unwrap();
        }
    }
    let first = std::fs::read_to_string(&key).unwrap();
    let expected = match kind {
        "rsa" => "-----BEGIN RSA PRIVATE KEY-----",
        "ec" => "-----BEGIN EC PRIVATE KEY-----",
        _ => "-----BEGIN PRIVATE KEY-----",
    };
    assert!(first.starts_with(expected), "{kind}: {first}");
    openssl(&["x509", "-in", &cs, "-outform", "DER", "-out", &s(&der)]);
    Cert {
        der: std::fs::read(&der).unwrap(),
        pem: std::fs::read(&cert).unwrap(),
        cert,
        key,
    }
}

/// Put `cert`'s files where the server reads them, as an ACME client does (a new file
/// renamed over the old one).
fn install(cert: &Cert, at: &Cert) {
    for (from, to) in [(&cert.cert, &at.cert), (&cert.key, &at.key)] {
        let tmp = to.with_extension("new");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

/// A client trusting only `cert`, recording the server's certificate.
fn client_trusting(cert: &Cert) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert.pem).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The certificate the server presents to a new connection that trusts `cert`, or the
/// error.
fn presented(base: &str, cert: &Cert) -> Result<Vec<u8>, String> {
    let resp = client_trusting(cert)
        .get(format!("{base}/latest/"))
        .send()
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(resp.status().as_u16(), 200);
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    Ok(info.peer_certificate().unwrap().to_vec())
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(15), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lines the server wrote to stderr so far.
fn stderr_lines(server: &common::Server) -> Vec<String> {
    server.stderr.try_iter().collect()
}

#[test]
fn https_serves_the_certificate_and_picks_up_renewals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = make_cert(d, "first", "ec");
    let second = make_cert(d, "second", "rsa");
    let third = make_cert(d, "third", "pkcs8");
    // The files the server reads (what certbot's live/ directory holds).
    let live = Cert {
        cert: d.join("live-cert.pem"),
        key: d.join("live-key.pem"),
        der: Vec::new(),
        pem: Vec::new(),
    };
    install(&first, &live);
    let server = common::start(
        "up",
        &d.join("data"),
        &[
            "--tls-cert",
            live.cert.to_str().unwrap(),
            "--tls-key",
            live.key.to_str().unwrap(),
            "--tls-reload",
            "1",
        ],
        &[],
    );
    let base = server.base.replacen("http://", "https://", 1);

    // A real handshake: the certificate is verified against the only trusted one.
    assert_eq!(presented(&base, &first).unwrap(), first.der);
    let err = presented(&base, &second).unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Plain HTTP on the HTTPS port is refused, not answered in clear.
    let plain = reqwest::blocking::Client::new()
        .get(format!("{}/latest/", server.base))
        .send();
    assert!(plain.map(|r| r.status().as_u16() == 200).ok() != Some(true));

    // A connection opened before the renewal keeps working after it.
    let kept = client_trusting(&first);
    assert_eq!(
        kept.get(format!("{base}/latest/")).send().unwrap().status(),
        200
    );

    // Renewal: the new pair is served to new connections within the poll interval.
    install(&second, &live);
    wait_for("the renewed certificate is served", || {
        presented(&base, &second).is_ok_and(|der| der == second.der)
    });
    assert!(presented(&base, &first).is_err());
    assert_eq!(
        kept.get(format!("{base}/latest/")).send().unwrap().status(),
        200
    );

    // A broken certificate file keeps the current pair serving.
    std::thread::sleep(Duration::from_millis(1500));
    stderr_lines(&server);
    std::fs::write(&live.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    wait_for("the broken certificate is reported", || {
        stderr_lines(&server)
            .iter()
            .any(|l| l.contains("not reloaded") && l.contains("cannot read the certificate"))
    });
    assert_eq!(presented(&base, &second).unwrap(), second.der);

    // So does a certificate with somebody else's key (the key file is the second's).
    let tmp = live.cert.with_extension("new");
    std::fs::copy(&first.cert, &tmp).unwrap();
    std::fs::rename(&tmp, &live.cert).unwrap();
    wait_for("the mismatched pair is reported", || {
        stderr_lines(&server)
            .iter()
            .any(|l| l.contains("not reloaded") && l.contains("do not make a usable pair"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(presented(&base, &second).unwrap(), second.der);

    // And a good pair is taken again (PKCS#8 key this time).
    install(&third, &live);
    wait_for("the third certificate is served", || {
        presented(&base, &third).is_ok_and(|der| der == third.der)
    });
}

#[test]
fn tls_startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = make_cert(d, "good", "ec");
    let other = make_cert(d, "other", "ec");
    let data = d.join("data");
    let data = data.to_str().unwrap();
    let port = format!("127.0.0.1:{}", common::free_port());
    let run = |extra: &[&str]| {
        let mut args = vec!["up", "--data-dir", data, "--listen", &port];
        args.extend(extra);
        common::run(&args, &[])
    };
    let (code, _, err) = run(&["--tls-cert", good.cert.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("--tls-key"), "{err}");
    let (code, _, err) = run(&[
        "--tls-cert",
        good.cert.to_str().unwrap(),
        "--tls-key",
        other.key.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("do not make a usable pair"), "{err}");
    let (code, _, err) = run(&[
        "--tls-cert",
        d.join("missing.pem").to_str().unwrap(),
        "--tls-key",
        good.key.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.pem"), "{err}");
    let (code, _, err) = run(&["--trusted-proxy", "10.0.0.0/40"]);
    assert_eq!(code, 1);
    assert!(err.contains("--trusted-proxy"), "{err}");
}

/// `GET /latest/user/invite/url` as a proxy would send it for `https://ci.example.org`.
fn invite_base(server: &common::Server, data: &Path) -> String {
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/latest/user/invite/url", server.base))
        .bearer_auth(token.trim())
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "ci.example.org")
        .header("x-forwarded-proto", "https")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().unwrap();
    body["public_base_url"].as_str().unwrap().to_string()
}

#[test]
fn forwarded_headers_count_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let log = [
        ("KERNELCI_LOG", "info,sqlx=warn,kernelci::listen=debug"),
        ("NO_COLOR", "1"),
    ];

    let data = dir.path().join("trusted");
    let server = common::start(
        "up",
        &data,
        &["--trusted-proxy", "10.0.0.0/8,127.0.0.1"],
        &log,
    );
    assert_eq!(invite_base(&server, &data), "https://ci.example.org");
    wait_for("the forwarded client is logged", || {
        stderr_lines(&server)
            .iter()
            .any(|l| l.contains("203.0.113.9") && l.contains("/latest/user/invite/url"))
    });
    drop(server);

    // Plain HTTP, a peer that is not a trusted proxy: the headers are dropped.
    let data = dir.path().join("untrusted");
    let server = common::start("up", &data, &["--trusted-proxy", "10.0.0.0/8"], &log);
    let own = server.base.clone();
    assert_eq!(invite_base(&server, &data), own);
    let mut logged = Vec::new();
    wait_for("the request is logged", || {
        logged.extend(stderr_lines(&server));
        logged.iter().any(|l| l.contains("/latest/user/invite/url"))
    });
    let line = logged
        .iter()
        .find(|l| l.contains("/latest/user/invite/url"))
        .unwrap();
    assert!(
        line.contains("127.0.0.1") && !line.contains("203.0.113.9"),
        "{line}"
    );
}

fn kcidb_token(data: &Path) -> String {
    let (code, out, err) = common::run(
        &[
            "kcidb",
            "token",
            "--origin",
            "lab",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

#[test]
fn body_limits_are_per_role() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let cfg = d.join("pipeline.yaml");
    std::fs::write(&cfg, "jobs: {}\n").unwrap();
    let token = kcidb_token(&data);
    let server = common::start(
        "up",
        &data,
        &[
            "--max-body-api",
            "1000",
            "--max-body-kcidb",
            "2000",
            "--max-body-pipeline",
            "3000",
            "--config",
            cfg.to_str().unwrap(),
            "--pipeline-roles",
            "timeout",
        ],
        &[],
    );
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let http = reqwest::blocking::Client::new();
    let post = |path: &str, token: &str, body: reqwest::blocking::Body| {
        let resp = http
            .post(format!("{}{path}", server.base))
            .bearer_auth(token)
            .body(body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let json_of = |n: usize| format!("{{\"name\": \"{}\"}}", "x".repeat(n));

    // The API: a declared length over the limit, and a streamed (chunked) body.
    let (st, body) = post("/latest/node", admin.trim(), json_of(1500).into());
    assert_eq!(st, 413, "{body}");
    assert!(
        body.contains("limit of 1000 bytes (--max-body-api)"),
        "{body}"
    );
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(json_of(1500).into_bytes()));
    let (st, body) = post("/latest/node", admin.trim(), chunked);
    assert_eq!(st, 413, "{body}");
    // Under the limit the API itself answers (here: the node is invalid).
    let (st, body) = post("/latest/node", admin.trim(), json_of(500).into());
    assert_eq!(st, 422, "{body}");

    // KCIDB's own limit, set by --max-body-kcidb: 1500 bytes pass the API's limit of 1000.
    let doc = |pad: usize| {
        format!(
            "{{\"version\": {{\"major\": 5, \"minor\": 3}}, \"checkouts\": [{{\"id\": \"lab:c1\", \"origin\": \"lab\", \"comment\": \"{}\"}}]}}",
            "x".repeat(pad)
        )
    };
    let (st, body) = post("/kcidb/submit", &token, doc(1500).into());
    assert_eq!(st, 200, "{body}");
    let (st, body) = post("/kcidb/submit", &token, doc(2500).into());
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("limit of 2000 bytes"), "{body}");

    // The pipeline API (LAVA callbacks): 2500 bytes pass, 3500 do not.
    let (st, body) = post(
        "/pipeline/node/65a1b2c3d4e5f60718293a4b",
        "x",
        json_of(2500).into(),
    );
    assert_ne!(st, 413, "{body}");
    let (st, body) = post(
        "/pipeline/node/65a1b2c3d4e5f60718293a4b",
        "x",
        json_of(3500).into(),
    );
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("(--max-body-pipeline)"), "{body}");
}

#[test]
fn slow_requests_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::start(
        "up",
        &data,
        &["--request-timeout", "2", "--keep-alive", "1"],
        &[],
    );
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A body that never arrives in full.
    write!(
        tcp,
        "POST /latest/node HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        admin.trim()
    )
    .unwrap();
    let start = Instant::now();
    let mut answer = vec![0; 4096];
    let n = tcp.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // The body may come in a second read.
    let mut rest = String::from(answer);
    if !rest.contains("--request-timeout") {
        let mut more = vec![0; 4096];
        let n = tcp.read(&mut more).unwrap_or(0);
        rest.push_str(&String::from_utf8_lossy(&more[..n]));
    }
    assert!(rest.contains("within 2 s (--request-timeout)"), "{rest}");

    // The timeout must leave room for `/listen` long polls.
    let (code, _, err) = common::run(
        &[
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
            "--request-timeout",
            "30",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("--request-timeout must be longer than --keep-alive"),
        "{err}"
    );
}
