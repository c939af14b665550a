//! `kci submit FILE... --url URL --token TOKEN [--json]`: posts KCIDB files to a KCIDB
//! receiver (`POST <url>` with `Authorization: Bearer <token>`) and prints each receipt.
//!
//! Files are sent in order; the first one refused (4xx, or 5xx after the retries) stops the
//! run with exit 1 and the server's reply on stderr. 5xx replies and connection errors are
//! retried (3 tries in all, 1 s then 2 s apart): a resubmission is harmless, KCIDB merges
//! the same object submitted twice. Exit 2: an unreadable file or bad arguments.

use anyhow::Context;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Tries per file (the first and two retries).
const TRIES: u32 = 3;

/// Arguments of `kci submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// KCIDB JSON files to submit (`-` reads standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The submit endpoint, e.g. `http://localhost:8001/kcidb/submit` (used as given).
    #[arg(long, env = "KCI_KCIDB_URL")]
    url: String,
    /// The KCIDB token (a JWT with the lab's origin).
    #[arg(long, env = "KCI_KCIDB_TOKEN", hide_env_values = true)]
    token: String,
    /// Print a JSON array of the receipts (the server's replies) instead of text.
    #[arg(long)]
    json: bool,
    /// Seconds before the first retry (doubled for each further one).
    #[arg(long, default_value_t = 1.0, hide = true)]
    retry_delay: f64,
}

/// What happened to one attempt.
enum Attempt {
    /// The server replied (any status).
    Reply(u16, String),
    /// No reply: connection refused, reset, timeout.
    NoReply(String),
}

/// Runs the command: 0 every file accepted, 1 one was refused, `Err` (2) bad input.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let url = reqwest::Url::parse(&args.url)
        .with_context(|| format!("--url {:?} is not a URL", args.url))?;
    match url.scheme() {
        "http" | "https" => {}
        other => anyhow::bail!("--url {:?}: unsupported scheme {other:?}", args.url),
    }
    // Read everything first: an unreadable file is bad input, found before sending anything.
    let mut bodies = Vec::with_capacity(args.files.len());
    for file in &args.files {
        bodies.push(crate::validate::read(file).map_err(anyhow::Error::msg)?);
    }
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(600))
        .build()
        .context("cannot create the HTTP client")?;
    let delay = Duration::try_from_secs_f64(args.retry_delay.max(0.0)).unwrap_or_default();
    let total = args.files.len();
    let progress = total > 1;
    let mut receipts: Vec<Value> = Vec::with_capacity(total);
    let mut stdout = std::io::stdout().lock();
    for (i, (file, body)) in args.files.iter().zip(bodies).enumerate() {
        let name = file.display();
        if progress {
            eprint!("[{}/{total}] {name} ... ", i + 1);
        }
        let (code, text) = match send(&client, args, body, delay) {
            Attempt::Reply(code, text) => (code, text),
            Attempt::NoReply(err) => {
                if progress {
                    eprintln!("failed");
                }
                eprintln!(
                    "kci: {name}: no reply from {} after {TRIES} tries: {err}",
                    args.url
                );
                return Ok(ExitCode::from(1));
            }
        };
        let reply: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!(text));
        if !(200..300).contains(&code) {
            if progress {
                eprintln!("refused");
            }
            eprintln!("kci: {name}: refused with HTTP {code}:");
            eprintln!("{}", text.trim_end());
            return Ok(ExitCode::from(1));
        }
        let id = reply
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if progress {
            eprintln!("ok");
        }
        if args.json {
            receipts.push(json!({"file": name.to_string(), "receipt": reply}));
        } else {
            writeln!(stdout, "{name}: submitted, receipt {id}")?;
        }
    }
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&receipts)?)?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Posts one body, retrying 5xx replies and connection errors.
fn send(
    client: &reqwest::blocking::Client,
    args: &Args,
    body: Vec<u8>,
    delay: Duration,
) -> Attempt {
    let mut wait = delay;
    let mut last = Attempt::NoReply(String::new());
    for attempt in 1..=TRIES {
        if attempt > 1 {
            std::thread::sleep(wait);
            wait *= 2;
        }
        let result = client
            .post(&args.url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", args.token),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .and_then(|resp| {
                let code = resp.status().as_u16();
                resp.text().map(|text| (code, text))
            });
        last = match result {
            Ok((code, text)) if code < 500 => return Attempt::Reply(code, text),
            Ok((code, text)) => Attempt::Reply(code, text),
            Err(err) => Attempt::NoReply(error_chain(&err)),
        };
    }
    last
}

/// An error and its sources, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
