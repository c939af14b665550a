//! `kci subscriptions list|add|rm`: the notification subscriptions of the KCIDB role
//! (`/subscriptions` under its base URL), with an admin KCIDB token (`kernelci kcidb token
//! --origin ops --admin`).
//!
//! The base is `--url` (e.g. `http://127.0.0.1:8001/kcidb`), else the instance's
//! `kcidb_rest_url` without its `/submit`; the token `--token`, else the instance's
//! `kcidb_token`. Exit codes: 0 ok, 1 refused (400, 401, 403), 2 bad input or an unknown
//! id, 3 unreachable.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::Global;
use crate::output::table;

/// Where and who.
#[derive(Debug, clap::Args)]
pub struct Conn {
    /// The KCIDB base URL (default: the instance's `kcidb_rest_url` without `/submit`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// An admin KCIDB token (default: the instance's `kcidb_token`).
    #[arg(long)]
    token: Option<String>,
    /// Print the server's JSON.
    #[arg(long)]
    json: bool,
}

/// `kci subscriptions ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the subscriptions.
    List(Conn),
    /// Subscribe an e-mail address or a webhook to a tree and branch's reports.
    Add {
        /// The tree name (`*`: any).
        #[arg(long, default_value = "*")]
        tree: String,
        /// The branch (`*`: any).
        #[arg(long, default_value = "*")]
        branch: String,
        /// Only checkouts of this origin.
        #[arg(long)]
        origin: Option<String>,
        /// Send reports by e-mail to this address.
        #[arg(long, conflicts_with = "webhook", required_unless_present = "webhook")]
        email: Option<String>,
        /// POST reports to this URL.
        #[arg(long)]
        webhook: Option<String>,
        /// The webhook's format: json or discord.
        #[arg(long, requires = "webhook")]
        format: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a subscription.
    Rm {
        /// Its id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn endpoint(conn: &Conn, global: &Global) -> anyhow::Result<(String, String)> {
    let settings = global.settings()?;
    let instance = settings.instance(global.instance.as_deref()).ok();
    let url = conn.url.clone().or_else(|| {
        instance
            .and_then(|(_, i)| i.kcidb_rest_url.clone())
            .map(|u| {
                u.trim_end_matches('/')
                    .trim_end_matches("/submit")
                    .to_string()
            })
    });
    let token = conn
        .token
        .clone()
        .or_else(|| instance.and_then(|(_, i)| i.kcidb_token.clone()));
    let url = url.context("no KCIDB URL: pass --url or set kcidb_rest_url in the settings")?;
    let token = token.context("no KCIDB token: pass --token or set kcidb_token in the settings")?;
    Ok((url.trim_end_matches('/').to_string(), token))
}

/// Runs `kci subscriptions`.
pub fn run(cmd: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let conn = match cmd {
        Command::List(c) | Command::Add { conn: c, .. } | Command::Rm { conn: c, .. } => c,
    };
    let (base, token) = endpoint(conn, global)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let request = match cmd {
        Command::List(_) => client.get(format!("{base}/subscriptions")),
        Command::Add {
            tree,
            branch,
            origin,
            email,
            webhook,
            format,
            ..
        } => {
            let mut body = json!({"tree_name": tree, "branch": branch});
            for (key, value) in [
                ("origin", origin),
                ("email", email),
                ("webhook", webhook),
                ("format", format),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            client.post(format!("{base}/subscriptions")).json(&body)
        }
        Command::Rm { id, .. } => client.delete(format!("{base}/subscriptions/{id}")),
    };
    let reply = match request.bearer_auth(&token).send() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kci: {base} is unreachable: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let status = reply.status();
    let body: Value = reply.json().unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        eprintln!("kci: HTTP {}: {message}", status.as_u16());
        let code = if status.as_u16() == 404 { 2 } else { 1 };
        return Ok(ExitCode::from(code));
    }
    if conn.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match cmd {
        Command::List(_) => {
            let rows: Vec<Vec<String>> = body
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(row)
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "id", "tree", "branch", "origin", "kind", "target", "created"
                    ],
                    &rows
                )
            );
        }
        Command::Add { .. } => println!("{}", body["id"].as_str().unwrap_or_default()),
        Command::Rm { id, .. } => println!("removed {id}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn row(s: &Value) -> Vec<String> {
    let text = |k: &str| s[k].as_str().unwrap_or("-").to_string();
    let target = match s["kind"].as_str() {
        Some("email") => text("address"),
        _ => format!("{} ({})", text("url"), text("format")),
    };
    vec![
        text("id"),
        text("tree_name"),
        text("branch"),
        text("origin"),
        text("kind"),
        target,
        text("created"),
    ]
}
