//! `kci submit FILE... --url URL --token TOKEN [--json]`: posts KCIDB files to a KCIDB
//! receiver (`POST <url>` with `Authorization: Bearer <token>`) and prints each receipt.
//!
//! Files are sent in order; the first one refused (4xx, or 5xx after the retries) stops the
//! run with exit 1 and the server's reply on stderr. 5xx replies and connection errors are
//! retried (3 tries in all, 1 s then 2 s apart): a resubmission is harmless, KCIDB merges
//! the same object submitted twice. Exit 2: an unreadable file or bad arguments.
//!
//! `--wait [SECONDS]` then polls `/status` until each submission is `processed` (exit 1 if
//! it ends `failed` or is still pending after the time, 300 s by default). The HTTP work is
//! [`kernelci_kcidb::client`]; files are streamed from disk.

use kernelci_kcidb::client::{Client, ClientError, Retry};
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
    files: Vec<PathBuf>,
    /// The submit endpoint, e.g. `http://localhost:8001/kcidb/submit` (used as given;
    /// default: the instance's `kcidb_rest_url`).
    #[arg(long, env = "KCI_KCIDB_URL")]
    url: Option<String>,
    /// The KCIDB token, a JWT with the lab's origin (default: the instance's `kcidb_token`).
    #[arg(long, env = "KCI_KCIDB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print a JSON array of the receipts (the server's replies) instead of text.
    #[arg(long)]
    json: bool,
    /// After each file, wait up to this many seconds until the receiver has loaded it into
    /// its database (status `processed`); status `failed` or a timeout exits 1.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "300")]
    wait: Option<f64>,
    /// Seconds before the first retry (doubled for each further one).
    #[arg(long, default_value_t = 1.0, hide = true)]
    retry_delay: f64,
}

/// `--url`/`--token`, else the instance's `kcidb_rest_url`/`kcidb_token`.
fn endpoint(args: &Args, global: &crate::Global) -> anyhow::Result<(String, String)> {
    if let (Some(url), Some(token)) = (&args.url, &args.token) {
        return Ok((url.clone(), token.clone()));
    }
    let settings = global.settings()?;
    let from_settings = settings
        .instance(global.instance.as_deref())
        .ok()
        .map(|(_, i)| (i.kcidb_rest_url.clone(), i.kcidb_token.clone()));
    let (url, token) = from_settings.unwrap_or_default();
    match (args.url.clone().or(url), args.token.clone().or(token)) {
        (Some(url), Some(token)) => Ok((url, token)),
        (None, _) => {
            anyhow::bail!("no KCIDB URL: pass --url or set kcidb_rest_url in the settings")
        }
        (_, None) => {
            anyhow::bail!("no KCIDB token: pass --token or set kcidb_token in the settings")
        }
    }
}

/// Runs the command: 0 every file accepted, 1 one was refused, `Err` (2) bad input.
pub fn run(args: &Args, global: &crate::Global) -> anyhow::Result<ExitCode> {
    if args.files.is_empty() {
        anyhow::bail!("no files to submit (kci submit FILE... or kci submit build ...)");
    }
    let delay = Duration::try_from_secs_f64(args.retry_delay.max(0.0)).unwrap_or_default();
    let (url, token) = endpoint(args, global)?;
    let client = match Client::new(&url, &token) {
        Ok(c) => c.with_retry(Retry {
            tries: TRIES,
            first_delay: delay,
        }),
        Err(ClientError::BadUrl { .. }) => {
            anyhow::bail!("--url {url:?} is not an http:// or https:// URL")
        }
        Err(e) => return Err(e.into()),
    };
    // Check every file first: an unreadable one is bad input, found before sending anything.
    // Files are streamed from disk when sent; standard input is read into memory.
    let mut bodies = Vec::with_capacity(args.files.len());
    for file in &args.files {
        if file.as_os_str() == "-" {
            bodies.push(Some(
                crate::validate::read(file).map_err(anyhow::Error::msg)?,
            ));
        } else {
            std::fs::File::open(file)
                .and_then(|f| f.metadata())
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            bodies.push(None);
        }
    }
    let total = args.files.len();
    let progress = total > 1;
    let mut receipts: Vec<Value> = Vec::with_capacity(total);
    let mut stdout = std::io::stdout().lock();
    for (i, (file, body)) in args.files.iter().zip(bodies).enumerate() {
        let name = file.display();
        if progress {
            eprint!("[{}/{total}] {name} ... ", i + 1);
        }
        let sent = match body {
            Some(bytes) => client.submit_bytes(bytes),
            None => client.submit_file(file),
        };
        let receipt = match sent {
            Ok(r) => r,
            Err(ClientError::Refused { status, reply, .. }) => {
                if progress {
                    eprintln!("refused");
                }
                eprintln!("kci: {name}: refused with HTTP {status}:");
                eprintln!("{}", pretty(&reply));
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                if progress {
                    eprintln!("failed");
                }
                eprintln!("kci: {name}: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        let final_state = match args.wait {
            Some(seconds) => {
                let timeout = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or_default();
                match client.wait(&receipt.id, timeout) {
                    Ok(state) => Some(state),
                    Err(e) => {
                        if progress {
                            eprintln!("not processed");
                        }
                        eprintln!("kci: {name}: {e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            None => None,
        };
        if progress {
            eprintln!("ok");
        }
        let failed = final_state.as_ref().is_some_and(|s| s.status == "failed");
        if args.json {
            let mut entry = json!({"file": name.to_string(), "receipt": receipt.reply});
            if let Some(state) = &final_state {
                entry["status"] = state.reply.clone();
            }
            receipts.push(entry);
        } else {
            match &final_state {
                Some(state) => writeln!(
                    stdout,
                    "{name}: submitted, receipt {}, {}",
                    receipt.id, state.status
                )?,
                None => writeln!(stdout, "{name}: submitted, receipt {}", receipt.id)?,
            }
        }
        if failed {
            stdout.flush()?;
            eprintln!("kci: {name}: the receiver could not load it (status failed)");
            if args.json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&receipts)?)?;
            }
            return Ok(ExitCode::from(1));
        }
    }
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&receipts)?)?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The server's reply, pretty when it is JSON.
fn pretty(reply: &Value) -> String {
    match reply {
        Value::String(text) => text.trim_end().to_string(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}
