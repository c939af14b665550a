//! `kci results`: kci-dev's `results` commands over the dashboard JSON API (`/api/` of
//! `kernelci up`, or any KernelCI dashboard backend).
//!
//! Commands and the routes they read: `trees` (`tree/`), `summary` (`tree/{commit}/summary`,
//! `--history`: `tree/{commit}/commits`), `builds`, `boots`, `tests`
//! (`tree/{commit}/builds|boots|tests`), `build --id`, `boot --id`, `test --id`
//! (`build/{id}`, `test/{id}`), `issues` (`issue/`, or a checkout's issues from its summary
//! and `issue/{id}`; `--new`: `POST issue/extras/`; `--missing`: `build/{id}/issues`,
//! `test/{id}/issues`), `issue --id` (`issue/{id}[/builds|/tests]`), `hardware list`
//! (`hardware/`), `hardware summary|builds|boots|tests` (`POST hardware/{name}/...`),
//! `compare` (the builds, boots and tests of two commits, and `tree-report/` for history)
//! and `tree-report`.
//!
//! The API base: `--dashboard-api URL`, else the instance's `dashboard_api`, else the
//! settings' top-level `dashboard_api`; none is an error (exit 2) saying how to set one
//! (kci-dev falls back to the public dashboard.kernelci.org; we never do). Links to the
//! web dashboard (`{dashboard}/build/{id}`...) are shown when the instance has `dashboard`.
//!
//! Exit codes: 0 ok; 1 `compare` found a regression (kci-dev's), or a `--download-logs`
//! download failed (reported on stderr; the output is still printed); 2 bad input, an unknown
//! id or commit (HTTP 404) or a refused query (400), or an incomplete `compare`; 3 the API
//! could not be reached or failed (5xx).
//!
//! Deviations from kci-dev 0.1.12:
//! - Filters go to the server (`filter_<field>`, in SQL) instead of being applied to the
//!   whole list in Python: `--status` (`filter_<kind>.status[_in]`), `--arch`, `--tree`,
//!   `--compiler` (exact; kci-dev ignores case), `--config` and `--test-path` (fnmatch `*`
//!   and `?` become SQL `LIKE` `%` and `_`, so `_` and `%` in a pattern are wildcards too;
//!   `[...]` classes are not supported), `--hardware` (the platform or a compatible,
//!   exactly; a pattern matches the platform only), `--min-duration`/`--max-duration`
//!   (`duration_gte`/`_lte`; a result without a duration no longer matches). The API has
//!   no date or compatible filter, so `--start-date`, `--end-date` and `--compatible`
//!   (substring, case-insensitive, as kci-dev) are applied here, and then `--limit` and
//!   `--offset` too; otherwise they are sent to the server.
//! - `builds --status inconclusive` lists the inconclusive builds (kci-dev prints "No
//!   information about inconclusive builds."); `--hardware`, `--test-path` and
//!   `--compatible` are refused for builds (kci-dev ignores them); `--min/max-duration`
//!   apply to builds too.
//! - `--json` output is JSON everywhere (kci-dev prints a Python dict for `build --id` and
//!   `test --id`), and the `dashboard` link of a test is `/test/{id}` (kci-dev: `/build/`);
//!   it is left out when the instance has no `dashboard`.
//! - `--latest` without `--tree` looks for the branch in the tree listing of the last 7
//!   days, then of all time (kci-dev: 7 days only); with `--tree` it asks
//!   `tree/{tree}/{branch}`.
//! - `hardware list --json` gives `{"name": platform, "compatibles": [...]}` (kci-dev puts
//!   the compatibles in `name`); `--days` sets its window (kci-dev: always 7 days).
//! - `compare` treats a branch without a checkout in the tree report's age window as
//!   having no history (kci-dev marks the comparison incomplete and exits 2).
//! - `--git-branch` (kci-dev: an fnmatch on each result's `git_repository_branch`, never
//!   sent to the API) and `--filter FILE` are applied here, as in kci-dev. The filter file
//!   (see `filters`) is read with the scheduler's YAML parser; its lists must be lists of
//!   patterns (an error, exit 2, otherwise), and `builds --filter` applies its `tree` list
//!   (kci-dev ignores the file for builds; `hardware` and `test` cannot apply to a build).
//! - `hardware builds|boots|tests` take `--days` (default 7; kci-dev: always 7) and apply
//!   every filter here, as kci-dev does, with `--limit`/`--offset`. The API's
//!   `hardware/{name}/builds` ignores `origin` (it gives the builds of the platform's tests
//!   of any origin), so builds of another origin than `--origin` are dropped here.
//! - `--download-logs` (see `download`): kci-dev's file names in the current directory, a
//!   progress line per log on stderr, http(s) only; a body that is not gzip is saved as it
//!   is (kci-dev fails); a failed log keeps its URL in the output and makes the command
//!   exit 1 at the end (kci-dev exits 0). Tables get a LOG column with the saved file.
//! - `issues --new` and `--missing` use the checkout given by `--giturl`/`--branch`/
//!   `--commit`, `--latest` or `--git-folder` (kci-dev: only when all three of
//!   giturl/branch/commit are given), else the latest checkout of every tree of the last
//!   `--days` (default 5). The tree name compared with the first incident's is `--tree`,
//!   else looked up in the tree listing of the last 7 days, then of all time (kci-dev: 7
//!   days only). `--new` and `--missing` cannot be combined; `--builds` and `--boots`
//!   together mean both (kci-dev: builds only). `--missing --json` prints
//!   `{"builds": [...], "boots": [...]}` (`tree`, `giturl`, `commit`, `id`, `status`,
//!   `dashboard`); kci-dev has no JSON there and prints its raw rows. A checkout's issue
//!   table marks the issues first seen there with `[NEW]`, as kci-dev does.
//! - Not implemented: `gate`.

mod checkout_args;
pub(crate) mod client;
mod compare;
mod download;
mod filters;
mod issues;
mod items;
mod lists;
mod overview;
mod view;

use std::process::ExitCode;

use crate::Global;
use client::{Dash, Fail};

/// `kci results ...`.
#[derive(Debug, clap::Args)]
pub struct Command {
    /// The dashboard API base (e.g. http://127.0.0.1:8001/api/); default: the instance's
    /// `dashboard_api`, else the settings' top-level `dashboard_api`.
    #[arg(long, global = true, value_name = "URL")]
    dashboard_api: Option<String>,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The latest checkout of each tree/branch of an origin.
    Trees(overview::TreesArgs),
    /// Pass/fail/inconclusive counts of a checkout's builds, boots and tests.
    Summary(overview::SummaryArgs),
    /// The builds of a checkout.
    Builds(lists::ListArgs),
    /// The boots of a checkout.
    Boots(lists::ListArgs),
    /// The tests (other than boots) of a checkout.
    Tests(lists::ListArgs),
    /// One build.
    Build(items::ItemArgs),
    /// One boot.
    Boot(items::ItemArgs),
    /// One test.
    Test(items::ItemArgs),
    /// KCIDB issues seen in a time window, or those of a checkout.
    Issues(issues::IssuesArgs),
    /// One issue with its builds and tests.
    Issue(issues::IssueArgs),
    /// Hardware platforms.
    #[command(subcommand)]
    Hardware(overview::HardwareCmd),
    /// Compare two checkouts of a branch (default: its latest two); exit 1 on a regression.
    Compare(compare::CompareArgs),
    /// A branch's latest checkout with its regressions, fixes and unstable tests.
    TreeReport(overview::TreeReportArgs),
}

/// Runs `kci results ...`.
pub fn run(cmd: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let outcome = Dash::open(global, cmd.dashboard_api.as_deref()).and_then(|dash| {
        use What as W;
        match &cmd.what {
            W::Trees(a) => overview::trees(&dash, a),
            W::Summary(a) => overview::summary(&dash, a),
            W::Builds(a) => lists::run(&dash, a, lists::Kind::Build),
            W::Boots(a) => lists::run(&dash, a, lists::Kind::Boot),
            W::Tests(a) => lists::run(&dash, a, lists::Kind::Test),
            W::Build(a) => items::build(&dash, a),
            W::Boot(a) | W::Test(a) => items::test(&dash, a),
            W::Issues(a) => issues::list_issues(&dash, a),
            W::Issue(a) => issues::one(&dash, a),
            W::Hardware(h) => overview::hardware(&dash, h),
            W::Compare(a) => compare::run(&dash, a),
            W::TreeReport(a) => overview::tree_report(&dash, a),
        }
    });
    match outcome {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(Fail { code, message }) => {
            eprintln!("kci: {message}");
            Ok(ExitCode::from(code))
        }
    }
}
