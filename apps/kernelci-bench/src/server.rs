//! The server under test: find the binary, spawn `kernelci api` as a child process, wait for
//! its "listening on" line, read its RSS, and stop it with SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Server stderr lines kept for error messages.
const TAIL_LINES: usize = 30;

/// The server binary: `--server`, else `$CARGO_TARGET_DIR` (or `target`) `/release/kernelci`
/// if it exists, else `/debug/kernelci`.
pub fn resolve_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let hint = "build it first: cargo build --release -p kernelci";
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("server binary {} not found; {hint}", p.display());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let candidates = [
        target.join("release").join("kernelci"),
        target.join("debug").join("kernelci"),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => bail!(
            "server binary not found at {} or {}; {hint} (or pass --server PATH)",
            candidates[0].display(),
            candidates[1].display()
        ),
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `kernelci` binary.
    pub binary: PathBuf,
    /// `--data-dir` (also holds `admin.token` and `server.log`).
    pub data_dir: PathBuf,
    /// `--database-url` (None: SQLite in the data directory).
    pub database_url: Option<String>,
    /// `KERNELCI_SECRET_KEY`, fixed so tokens survive restarts.
    pub secret: String,
}

/// A running server process.
pub struct Server {
    child: Child,
    /// Process id (for `/proc/<pid>/status`).
    pub pid: u32,
    /// `http://127.0.0.1:PORT/latest`.
    pub base: String,
    /// The administrator's bearer token.
    pub token: String,
    /// From spawn to the "listening on" line.
    pub startup: Duration,
    /// The start-up time the server reports itself ("started in N ms").
    pub reported_ms: Option<u64>,
    stopped: bool,
}

impl Server {
    /// Spawn `kernelci api` on a free port and wait until it listens.
    pub async fn start(spec: &ServerSpec) -> Result<Server> {
        std::fs::create_dir_all(&spec.data_dir)
            .with_context(|| format!("cannot create {}", spec.data_dir.display()))?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log_path = spec.data_dir.join("server.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut cmd = Command::new(&spec.binary);
        cmd.arg("api")
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .arg("--listen")
            .arg(&addr)
            .env("KERNELCI_SECRET_KEY", &spec.secret)
            .env_remove("KERNELCI_DATABASE_URL")
            .env_remove("KERNELCI_UNIFIED_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &spec.database_url {
            cmd.arg("--database-url").arg(url);
        }
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", spec.binary.display()))?;
        let pid = child.id();
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            bail!("no stderr pipe from the server");
        };
        let tail = Arc::new(Mutex::new(Vec::<String>::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<(Instant, String)>();
        let tail_w = tail.clone();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on http://")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send((Instant::now(), line.clone()));
                }
                let _ = writeln!(log, "{line}");
                if let Ok(mut t) = tail_w.lock() {
                    if t.len() >= TAIL_LINES {
                        t.remove(0);
                    }
                    t.push(line);
                }
            }
        });
        let mut server = Server {
            child,
            pid,
            base: format!("http://{addr}/latest"),
            token: String::new(),
            startup: Duration::ZERO,
            reported_ms: None,
            stopped: false,
        };
        let (at, line) = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(ready)) => ready,
            outcome => {
                let why = if outcome.is_err() {
                    format!("did not listen within {} s", START_TIMEOUT.as_secs())
                } else {
                    "exited before listening".to_string()
                };
                server.kill();
                let tail = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
                bail!("the server {why}; its last output:\n{tail}");
            }
        };
        server.startup = at.duration_since(spawned);
        server.reported_ms = parse_reported_ms(&line);
        let token_path = spec.data_dir.join("admin.token");
        server.token = std::fs::read_to_string(&token_path)
            .with_context(|| format!("cannot read the admin token {}", token_path.display()))?
            .trim()
            .to_string();
        Ok(server)
    }

    /// Resident set size of the server process in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid)
    }

    /// SIGTERM, wait for a clean exit (SIGKILL after a timeout).
    pub async fn stop(mut self) -> Result<()> {
        self.stopped = true;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            self.kill();
            bail!("kill -TERM {} failed", self.pid);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if self
                .child
                .try_wait()
                .context("waiting for the server")?
                .is_some()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "the server did not stop within {} s of SIGTERM (killed)",
                    STOP_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            self.kill();
        }
    }
}

/// `VmRSS` of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// CPU time (user + system) a process has used, in seconds; `proc` is a pid or `self`.
/// `/proc` reports it in USER_HZ, which is 100 on Linux.
pub fn cpu_secs(proc: &str) -> Result<f64> {
    let path = format!("/proc/{proc}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("bad {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("bad {path}"))
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// "... started in 12 ms ..." -> 12.
fn parse_reported_ms(line: &str) -> Option<u64> {
    let rest = &line[line.find("started in ")? + "started in ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr().context("cannot find a free port")?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_ms() {
        let line =
            "kernelci api: listening on http://127.0.0.1:1 (sqlite store, started in 42 ms); x";
        assert_eq!(parse_reported_ms(line), Some(42));
        assert_eq!(parse_reported_ms("nothing"), None);
    }

    #[test]
    fn own_rss_and_cpu() {
        assert!(rss_kib(std::process::id()).is_ok_and(|k| k > 0));
        assert!(cpu_secs("self").is_ok_and(|s| s >= 0.0));
        assert!(cpu_secs(&std::process::id().to_string()).is_ok());
    }
}
