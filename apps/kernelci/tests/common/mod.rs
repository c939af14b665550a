//! Running the real `kernelci` binary in tests.

#![allow(dead_code)]

pub mod fake_tree;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kernelci"))
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A server process, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `kernelci <role> --listen 127.0.0.1:PORT <extra>` and wait for its "listening" line.
pub fn start(role: &str, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(bin());
    cmd.arg(role)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .env_remove("KERNELCI_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn kernelci");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let ready = line.contains("listening on");
                seen.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => panic!(
                "kernelci {role} did not start; stderr so far:\n{}",
                seen.join("\n")
            ),
        }
    }
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        stderr: rx,
    }
}

/// Run the binary to completion; returns (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("KERNELCI_DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kernelci");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pipeline API token for `dev@example.org` (`kernelci pipeline token`) of the server whose
/// data directory is `data_dir` and, when it is PostgreSQL, database `database_url`.
pub fn pipeline_token(data_dir: &Path, database_url: Option<&str>) -> String {
    let d = data_dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "pipeline",
        "token",
        "--email",
        "dev@example.org",
        "--data-dir",
        d,
    ];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let (code, token, err) = run(&args, &[]);
    assert_eq!(code, 0, "kernelci pipeline token: {err}");
    token.trim().to_string()
}

/// `kernelci up` on the fake-kernel pipeline `cfg` (no trigger polling, 1 s holdoff and
/// timeout polls, no triage) plus `extra`, its data in `data` and, when `db_url` is a
/// PostgreSQL URL, its databases there; the server and a pipeline API token.
pub fn start_fake_pipeline(
    cfg: &Path,
    data: &Path,
    db_url: &str,
    extra: &[&str],
) -> (Server, String) {
    let mut args = vec![
        "--config",
        cfg.to_str().expect("utf-8 path"),
        "--trees",
        "!fake",
        "--holdoff",
        "1",
        "--timeout-poll",
        "1",
        "--kcidb-triage-interval",
        "0",
    ];
    args.extend_from_slice(extra);
    let pg = db_url.starts_with("postgres");
    if pg {
        args.extend(["--database-url", db_url]);
    }
    let server = start("up", data, &args, &[]);
    let token = pipeline_token(data, pg.then_some(db_url));
    (server, token)
}
