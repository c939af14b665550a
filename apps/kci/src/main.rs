//! `kci`: the KernelCI command line. `kci logspec` analyses a log with the logspec parsers,
//! `kci validate` checks KCIDB files, `kci submit` sends them to a KCIDB receiver. Exit
//! codes: 0 no errors found, 1 errors found (or a submission refused), 2 bad input.

mod logspec;
mod submit;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The KernelCI command line.
#[derive(Debug, Parser)]
#[command(name = "kci", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find errors in a build or boot log, as upstream logspec does (exit 0: none, 1: found).
    Logspec(logspec::Args),
    /// Check KCIDB submission files, v3.0 to v5.3 (exit 0: all valid, 1: some invalid).
    Validate(validate::Args),
    /// Send KCIDB submission files to a KCIDB receiver and print the receipts.
    Submit(submit::Args),
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
    let outcome = match cli.command {
        Command::Logspec(args) => logspec::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Submit(args) => submit::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kci: {err:#}");
            ExitCode::from(2)
        }
    }
}
