//! Commands kci-dev does not have: `kci regressions` (the dashboard's regression list),
//! `kci open` (the web address of a build, test, issue, commit or node) and `kci admin`
//! (users and tokens of an instance you administer, over the Maestro API).
//!
//! Exit codes as everywhere in kci: 0 ok, 1 refused by the server, 2 bad input or an
//! unknown id, 3 unreachable.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Global;
use crate::maestro::{ApiError, Service};
use crate::output::{Paint, table};
use crate::results::client::{Dash, Fail, enc, q, text};

/// Arguments of `kci regressions`.
#[derive(Debug, clap::Args)]
pub struct RegressionsArgs {
    /// Only branches of this origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Only branches with a checkout in this many days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// The dashboard API base (default: the instance's `dashboard_api`).
    #[arg(long, value_name = "URL")]
    dashboard_api: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

fn finish(outcome: Result<(), Fail>) -> anyhow::Result<ExitCode> {
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(f) => {
            eprintln!("kci: {}", f.message);
            Ok(ExitCode::from(f.code))
        }
    }
}

/// `kci regressions`: tests that passed on the previous commit of their branch and fail
/// on the latest, with their status over the recent commits (oldest first).
pub fn regressions(args: &RegressionsArgs, global: &Global) -> anyhow::Result<ExitCode> {
    finish((|| {
        let dash = Dash::open(global, args.dashboard_api.as_deref())?;
        let days = args.days.to_string();
        let list = dash.get(
            "regressions/",
            &q(&[("origin", &args.origin), ("interval_in_days", &days)]),
        )?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
            return Ok(());
        }
        let paint = Paint::stdout();
        let rows: Vec<Vec<String>> = list
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|r| {
                let history: Vec<&str> = r["history"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|h| h["status"].as_str().unwrap_or("-"))
                    .collect();
                let latest = r["history"]
                    .as_array()
                    .and_then(|h| h.last())
                    .map(|h| text(h, "test_id"))
                    .unwrap_or_default();
                vec![
                    format!(
                        "{} {}",
                        text(r, "tree_name"),
                        text(r, "git_repository_branch")
                    ),
                    text(r, "path"),
                    text(r, "platform"),
                    format!("{} {}", text(r, "config_name"), text(r, "architecture")),
                    history.join(" "),
                    dash.link("test", &latest).unwrap_or(latest),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("No regressions.");
            return Ok(());
        }
        let text = table(
            &["TREE", "TEST", "PLATFORM", "CONFIG", "HISTORY", "LATEST"],
            &rows,
        );
        // Color the statuses after alignment (escape codes have no width).
        let colored = text
            .replace(" FAIL", &format!(" {}", paint.fail("FAIL")))
            .replace(" PASS", &format!(" {}", paint.pass("PASS")));
        print!("{colored}");
        Ok(())
    })())
}

/// Arguments of `kci open`.
#[derive(Debug, clap::Args)]
pub struct OpenArgs {
    /// What: build, test, boot, issue, commit or node.
    #[arg(value_parser = ["build", "test", "boot", "issue", "commit", "node"])]
    kind: String,
    /// Its id (a commit hash for `commit`).
    id: String,
    /// For `commit`: the origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
}

/// `kci open`: prints the address of the page that shows the object.
pub fn open(args: &OpenArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let (name, instance) = settings.instance(global.instance.as_deref())?;
    let url = if args.kind == "node" {
        let api = instance.require(name, "api", &instance.api)?;
        format!(
            "{}/latest/node/{}",
            api.trim_end_matches('/'),
            enc(&args.id)
        )
    } else {
        // The instance's `dashboard`, else its `dashboard_api` without `/api/`.
        let web = instance
            .dashboard
            .clone()
            .or_else(|| {
                instance
                    .dashboard_api
                    .as_deref()
                    .map(|a| a.trim_end_matches('/').trim_end_matches("/api").to_string())
            })
            .with_context(|| {
                format!("instance [{name}] has no `dashboard` (or `dashboard_api`)")
            })?;
        let web = web.trim_end_matches('/');
        match args.kind.as_str() {
            "commit" => format!("{web}/tree/{}?origin={}", enc(&args.id), enc(&args.origin)),
            "boot" => format!("{web}/test/{}", enc(&args.id)),
            kind => format!("{web}/{kind}/{}", enc(&args.id)),
        }
    };
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// `kci admin ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// List the instance's users (needs an administrator's token).
    Users {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Invite a user: the account is created and an invitation link printed (or mailed).
    Invite {
        /// The new user's name.
        username: String,
        /// Their e-mail address.
        #[arg(long)]
        email: String,
        /// Make them an administrator.
        #[arg(long)]
        admin: bool,
        /// A group to put them in (repeat for more).
        #[arg(long)]
        group: Vec<String>,
        /// Also send the invitation by e-mail.
        #[arg(long)]
        send_email: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Log in and print an API token (the password is read from standard input).
    Token {
        /// The user.
        username: String,
    },
    /// Who the configured token belongs to.
    Whoami,
}

fn maestro(global: &Global) -> anyhow::Result<Service> {
    let settings = global.settings()?;
    let (name, instance) = settings.instance(global.instance.as_deref())?;
    let api = instance.require(name, "api", &instance.api)?;
    Service::new(
        &format!("{}/latest/", api.trim_end_matches('/')),
        instance
            .token
            .as_deref()
            .map(|t| format!("Bearer {t}"))
            .as_deref(),
    )
}

fn api_exit(e: ApiError) -> ExitCode {
    eprintln!("kci: {e}");
    match e {
        ApiError::Unavailable { .. } => ExitCode::from(3),
        ApiError::Refused { status: 404, .. } | ApiError::BadReply { .. } => ExitCode::from(2),
        ApiError::Refused { .. } => ExitCode::from(1),
    }
}

/// Runs `kci admin`.
pub fn admin(cmd: &AdminCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let api = maestro(global)?;
    let reply = match cmd {
        AdminCommand::Users { .. } => api.get("users", &[("limit".into(), "1000".into())]),
        AdminCommand::Invite {
            username,
            email,
            admin,
            group,
            send_email,
            ..
        } => api.post(
            "user/invite",
            &json!({"username": username, "email": email, "is_superuser": admin,
                    "groups": group, "send_email": send_email}),
        ),
        AdminCommand::Token { username } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on standard input");
            }
            api.post_form(
                "user/login",
                &[("username", username.as_str()), ("password", password)],
            )
        }
        AdminCommand::Whoami => api.get("whoami", &[]),
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return Ok(api_exit(e)),
    };
    match cmd {
        AdminCommand::Users { json: false } => {
            let items = reply
                .get("items")
                .and_then(Value::as_array)
                .or_else(|| reply.as_array())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|u| {
                    let groups: Vec<String> = u["groups"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                        .iter()
                        .map(|g| {
                            g.get("name")
                                .map_or_else(|| text(g, ""), |_| text(g, "name"))
                        })
                        .collect();
                    vec![
                        text(u, "username"),
                        text(u, "email"),
                        text(u, "is_superuser"),
                        text(u, "is_active"),
                        groups.join(","),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["USERNAME", "EMAIL", "ADMIN", "ACTIVE", "GROUPS"], &rows)
            );
        }
        AdminCommand::Invite { json: false, .. } => {
            println!(
                "invited {}; accept link: {}",
                text(&reply["user"], "username"),
                reply["invite_url"]
                    .as_str()
                    .or(reply["accept_invite_url"].as_str())
                    .unwrap_or("-")
            );
        }
        AdminCommand::Token { .. } => {
            println!("{}", reply["access_token"].as_str().unwrap_or_default());
        }
        _ => println!("{}", serde_json::to_string_pretty(&reply)?),
    }
    Ok(ExitCode::SUCCESS)
}
