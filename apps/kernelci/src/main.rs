//! `kernelci`: the kernelci-rs server binary. Every role is a subcommand; `kernelci up` runs
//! all of them in one process on one port (SQLite by default, PostgreSQL with
//! `--database-url`). See README.md for the roles, ports and configuration.

mod admin;
mod backup;
mod images;
mod import;
mod kcidb;
mod listen;
mod options;
mod pipeline;
mod purge;
mod serve;

use clap::{Parser, Subcommand};

use crate::options::StoreOptions;

#[derive(Parser)]
#[command(
    name = "kernelci",
    version,
    about = "Self-hosted KernelCI: Maestro API, pipeline, KCIDB and more in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every role in one process (embedded default: SQLite under --data-dir).
    Up(Box<serve::UpArgs>),
    /// Run the Maestro API role alone (also serves upstream's unprefixed paths).
    Api(serve::ServeArgs),
    /// Users and tokens.
    Admin {
        #[command(flatten)]
        store: StoreOptions,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Pipeline roles: `pipeline run` runs them alone against a Maestro API, `pipeline
    /// token` prints a pipeline API token, `pipeline check` loads a configuration.
    Pipeline {
        #[command(subcommand)]
        command: pipeline::PipelineCommand,
    },
    /// The KCIDB role: `kcidb serve` runs it alone, `kcidb token` prints a submission token.
    Kcidb {
        #[command(subcommand)]
        command: kcidb::KcidbCommand,
    },
    /// Build environments: `images list` the definitions and what the engine has, `images
    /// build NAME` a kbuild image from Debian packages (debootstrap, docker import).
    Images {
        #[command(subcommand)]
        command: images::ImagesCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cli = match cli.command {
        // Synchronous, with its own exit codes (2 bad name, 3 engine unreachable).
        Command::Images { command } => return images::run(command),
        command => Cli { command },
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KERNELCI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => {
                let args = *args;
                serve::run(
                    args.serve,
                    serve::Roles::All,
                    Some(args.kcidb),
                    Some((args.pipeline, args.pipeline_limit)),
                )
                .await
            }
            Command::Api(args) => serve::run(args, serve::Roles::MaestroOnly, None, None).await,
            Command::Pipeline { command } => pipeline::run(command).await,
            Command::Kcidb { command } => kcidb::run(command).await,
            Command::Admin { store, command } => admin::run(store, command).await,
            // Run before the async runtime starts (above).
            Command::Images { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
