//! Commands kci-dev does not have: `kci regressions` (the stored regressions and flaky
//! tests the KCIDB role's tracker keeps, from the dashboard API), `kci health`
//! (infrastructure failure rates per lab and platform), `kci open` (the web address of a
//! build, test, issue, commit or node) and `kci admin` (users and tokens of an instance you
//! administer, over the Maestro API).
//!
//! Exit codes as everywhere in kci: 0 ok, 1 refused by the server (`kci health`: a row is
//! above the threshold), 2 bad input or an unknown id, 3 unreachable.

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
    /// States: a comma list of new, still_failing, fixed, flaky, or `open` (new,
    /// still_failing, flaky) or `all`.
    #[arg(long, default_value = "open")]
    state: String,
    /// Only this origin.
    #[arg(long)]
    origin: Option<String>,
    /// Only this tree.
    #[arg(long)]
    tree: Option<String>,
    /// Only this branch.
    #[arg(long)]
    branch: Option<String>,
    /// At most this many (newest change first).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// List the tests and builds that are flaky now instead.
    #[arg(long)]
    flaky: bool,
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

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// What regressed: the test path, or `build CONFIG COMPILER`.
fn what(r: &Value) -> String {
    if r["kind"] == "build" {
        format!("build {} {}", text(r, "config_name"), text(r, "compiler"))
    } else {
        text(r, "path")
    }
}

fn config(r: &Value) -> String {
    format!("{} {}", text(r, "config_name"), text(r, "architecture"))
}

fn optional(pairs: &mut Vec<(String, String)>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        pairs.push((key.to_string(), v.clone()));
    }
}

/// `kci regressions`: the stored regressions the tracker keeps (`--flaky`: the flaky tests
/// and builds), newest change first.
pub fn regressions(args: &RegressionsArgs, global: &Global) -> anyhow::Result<ExitCode> {
    finish((|| {
        let dash = Dash::open(global, args.dashboard_api.as_deref())?;
        let limit = args.limit.to_string();
        let mut query = q(&[("limit", &limit)]);
        optional(&mut query, "origin", &args.origin);
        let list = if args.flaky {
            dash.get("flaky/", &query)?
        } else {
            query.push(("state".into(), args.state.clone()));
            optional(&mut query, "tree_name", &args.tree);
            optional(&mut query, "git_branch", &args.branch);
            dash.get("regressions/", &query)?
        };
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
            return Ok(());
        }
        let tree = |r: &Value| {
            format!(
                "{} {}",
                text(r, "tree_name"),
                text(r, "git_repository_branch")
            )
        };
        if args.flaky {
            let rows: Vec<Vec<String>> = items(&list)
                .iter()
                .map(|r| {
                    vec![
                        tree(r),
                        what(r),
                        text(r, "platform"),
                        config(r),
                        text(r, "flips"),
                        text(r, "last_outcome"),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("Nothing flaky.");
            } else {
                print!(
                    "{}",
                    table(
                        &["TREE", "TEST", "PLATFORM", "CONFIG", "FLIPS", "LAST"],
                        &rows
                    )
                );
            }
            return Ok(());
        }
        let paint = Paint::stdout();
        let rows: Vec<Vec<String>> = items(&list)
            .iter()
            .map(|r| {
                let latest = text(&r["last_fail"], "object_id");
                let kind = if r["kind"] == "build" {
                    "build"
                } else {
                    "test"
                };
                vec![
                    text(r, "state"),
                    text(r, "class"),
                    tree(r),
                    what(r),
                    text(r, "platform"),
                    config(r),
                    text(r, "fail_count"),
                    text(&r["first_fail"], "commit").chars().take(12).collect(),
                    dash.link(kind, &latest).unwrap_or(latest),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("No regressions.");
            return Ok(());
        }
        let text = table(
            &[
                "STATE",
                "CLASS",
                "TREE",
                "TEST",
                "PLATFORM",
                "CONFIG",
                "FAILS",
                "FIRST FAIL",
                "LATEST",
            ],
            &rows,
        );
        // Color the states after alignment (escape codes have no width).
        let colored = text
            .replace("\nnew ", &format!("\n{} ", paint.fail("new")))
            .replace(
                "\nstill_failing ",
                &format!("\n{} ", paint.fail("still_failing")),
            )
            .replace("\nfixed ", &format!("\n{} ", paint.pass("fixed")))
            .replace("\nflaky ", &format!("\n{} ", paint.other("flaky")));
        print!("{colored}");
        Ok(())
    })())
}

/// Arguments of `kci health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Results of checkouts in this many days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// The infrastructure failure rate (0 to 1) above which a row is a problem.
    #[arg(long, default_value_t = 0.2)]
    threshold: f64,
    /// Only this origin.
    #[arg(long)]
    origin: Option<String>,
    /// The dashboard API base (default: the instance's `dashboard_api`).
    #[arg(long, value_name = "URL")]
    dashboard_api: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

/// `kci health`: infrastructure failure rates per lab and platform. Exits 1 when a row is
/// above the threshold (so that a cron job can alert), 0 otherwise.
pub fn health(args: &HealthArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let mut above = false;
    let outcome = (|| {
        if !(0.0..=1.0).contains(&args.threshold) {
            return Err(Fail::input(format!(
                "--threshold: expected a number from 0 to 1, got {}",
                args.threshold
            )));
        }
        let dash = Dash::open(global, args.dashboard_api.as_deref())?;
        let (days, threshold) = (args.days.to_string(), args.threshold.to_string());
        let mut query = q(&[("interval_in_days", &days), ("threshold", &threshold)]);
        optional(&mut query, "origin", &args.origin);
        let list = dash.get("health/", &query)?;
        above = items(&list)
            .iter()
            .any(|h| h["above_threshold"].as_bool() == Some(true));
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
            return Ok(());
        }
        let paint = Paint::stdout();
        let rows: Vec<Vec<String>> = items(&list)
            .iter()
            .map(|h| {
                let rate = h["infrastructure_rate"].as_f64().unwrap_or(0.0) * 100.0;
                let platform = h["platform"].as_str().unwrap_or("");
                vec![
                    text(h, "origin"),
                    text(h, "lab"),
                    if platform.is_empty() {
                        "(builds)".into()
                    } else {
                        platform.to_string()
                    },
                    text(h, "total"),
                    text(h, "infrastructure"),
                    text(h, "failures"),
                    format!("{rate:.1}%"),
                    if h["above_threshold"].as_bool() == Some(true) {
                        "ABOVE".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("No results in the last {days} days.");
            return Ok(());
        }
        let text = table(
            &[
                "ORIGIN", "LAB", "PLATFORM", "RESULTS", "INFRA", "FAILURES", "RATE", "",
            ],
            &rows,
        );
        print!(
            "{}",
            text.replace(" ABOVE", &format!(" {}", paint.fail("ABOVE")))
        );
        Ok(())
    })();
    match outcome {
        Ok(()) if above => Ok(ExitCode::from(1)),
        other => finish(other),
    }
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
