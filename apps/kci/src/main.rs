//! `kci`: the KernelCI command line. `kci logspec` analyses a log with the logspec parsers,
//! `kci validate` checks KCIDB files, `kci submit` sends them to a KCIDB receiver; kci-dev's
//! `checkout`, `patchset`, `testretry`, `watch`, `maestro results` and `config` use the
//! pipeline and Maestro APIs of an instance from kci-dev's settings file.
//!
//! Exit codes: 0 success (no errors found, the watched test passed); 1 errors found, a
//! submission refused, the watched test failed, a lab or platform above `kci health`'s
//! threshold; 2 bad input (flags, settings, unknown
//! node) or a job the watched test needed failed; 3 an API stayed unreachable (retry);
//! 64 the pipeline did not take a checkout/patchset/retry request (kci-dev's code).

mod bisect;
mod config;
mod extras;
mod logspec;
mod maestro;
mod nodes;
mod output;
mod results;
mod submit;
mod submit_build;
mod subscriptions;
mod trigger;
mod validate;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The KernelCI command line.
#[derive(Debug, Parser)]
#[command(name = "kci", version, about)]
struct Cli {
    /// kci-dev's settings file (if it does not exist: ~/.config/kci-dev/kci-dev.toml, then
    /// /etc/kci-dev.toml).
    #[arg(long, global = true, default_value = config::DEFAULT_SETTINGS)]
    settings: PathBuf,
    /// The instance of the settings file to use (default: its `default_instance`).
    #[arg(long, global = true)]
    instance: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The options every command may use.
#[derive(Debug, Clone)]
pub struct Global {
    /// `--settings`.
    pub settings_path: PathBuf,
    /// `--instance`.
    pub instance: Option<String>,
}

impl Global {
    /// Reads the settings file.
    pub fn settings(&self) -> anyhow::Result<config::Settings> {
        config::Settings::load(&self.settings_path)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find errors in a build or boot log, as upstream logspec does (exit 0: none, 1: found).
    Logspec(logspec::Args),
    /// Check KCIDB submission files, v3.0 to v5.3 (exit 0: all valid, 1: some invalid).
    Validate(validate::Args),
    /// Send KCIDB submission files to a KCIDB receiver and print the receipts; `submit
    /// build` sends one build as kci-dev does.
    Submit(Box<SubmitCmd>),
    /// Ask the pipeline to build and test a commit of a tree (kci-dev's checkout).
    Checkout(trigger::CheckoutArgs),
    /// Ask the pipeline to test patches on top of a checkout node.
    Patchset(trigger::PatchsetArgs),
    /// Ask the pipeline to run a job again.
    Testretry(trigger::RetryArgs),
    /// Follow the jobs of a tree until they end (exit code from --test).
    Watch(trigger::WatchCmdArgs),
    /// Bisect a failing node on the server (start), or follow a bisection (show).
    #[command(subcommand)]
    Bisect(bisect::Command),
    /// Maestro API queries.
    #[command(subcommand)]
    Maestro(MaestroCommand),
    /// Write a starter settings file (kci-dev's format) for a local `kernelci up`.
    Config(config::Args),
    /// Stored regressions (new, still failing, fixed, flaky) and flaky tests.
    Regressions(extras::RegressionsArgs),
    /// Infrastructure failure rates per lab and platform (exit 1: a row above the
    /// threshold).
    Health(extras::HealthArgs),
    /// Print the web address of a build, test, boot, issue, commit or node.
    Open(extras::OpenArgs),
    /// Users and tokens of an instance you administer.
    #[command(subcommand)]
    Admin(extras::AdminCommand),
    /// Dashboard results: trees, summaries, builds, boots, tests, issues, hardware.
    Results(Box<results::Command>),
    /// Notification subscriptions of the KCIDB role (e-mail, webhooks; admin token).
    #[command(subcommand)]
    Subscriptions(subscriptions::Command),
}

/// `kci submit FILE...` or `kci submit build ...`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SubmitCmd {
    #[command(subcommand)]
    what: Option<SubmitWhat>,
    #[command(flatten)]
    files: submit::Args,
}

#[derive(Debug, Subcommand)]
enum SubmitWhat {
    /// One build and its checkout, with kci-dev's deterministic ids.
    Build(submit_build::Args),
}

#[derive(Debug, Subcommand)]
enum MaestroCommand {
    /// Nodes: one by id, or a filtered page.
    Results(nodes::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors are bad input (2).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let global = Global {
        settings_path: cli.settings,
        instance: cli.instance,
    };
    let outcome = match cli.command {
        Command::Logspec(args) => logspec::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Submit(cmd) => match &cmd.what {
            Some(SubmitWhat::Build(args)) => submit_build::run(args, &global),
            None => submit::run(&cmd.files, &global),
        },
        Command::Checkout(args) => trigger::checkout(&args, &global),
        Command::Patchset(args) => trigger::patchset(&args, &global),
        Command::Testretry(args) => trigger::testretry(&args, &global),
        Command::Watch(args) => trigger::watch_cmd(&args, &global),
        Command::Bisect(cmd) => bisect::run(&cmd, &global),
        Command::Maestro(MaestroCommand::Results(args)) => nodes::run(&args, &global),
        Command::Config(args) => config::run(&args, &global.settings_path),
        Command::Regressions(args) => extras::regressions(&args, &global),
        Command::Health(args) => extras::health(&args, &global),
        Command::Open(args) => extras::open(&args, &global),
        Command::Admin(cmd) => extras::admin(&cmd, &global),
        Command::Results(cmd) => results::run(&cmd, &global),
        Command::Subscriptions(cmd) => subscriptions::run(&cmd, &global),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kci: {err:#}");
            ExitCode::from(2)
        }
    }
}
