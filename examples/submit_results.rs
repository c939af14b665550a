//! Build a KCIDB v5.3 submission in code, check it, and print it or send it.
//!
//! A lab reports one checkout (the commit it tested), one build of it and two tests of that
//! build. Every id is `<origin>:<your own id>` and every object carries the lab's origin;
//! the receiver refuses objects of another origin than the token's.
//!
//! ```text
//! cargo run -p kernelci-examples --example submit_results > results.json
//! cargo run -p kernelci-examples --example submit_results -- \
//!     --url http://localhost:8001/kcidb/submit --token "$(kernelci kcidb token --origin mylab)"
//! ```
//!
//! With `--url`/`--token` it sends the submission with `kernelci_kcidb::client` (retries on
//! 5xx and connection errors; resubmitting is harmless, KCIDB merges) and waits until the
//! receipt is `processed` (loaded into the database). `kci submit results.json --url ...
//! --token ...` does the same for files.

use std::process::ExitCode;
use std::time::Duration;

use kernelci_kcidb::client::{Client, Receipt};
use kernelci_kcidb::{Build, Checkout, Environment, Status, Submission, Test};

/// The lab's origin: the `origin` claim of its KCIDB token.
pub const ORIGIN: &str = "mylab";

fn main() -> ExitCode {
    let submission = results();

    // Check it as the receiver will (it answers 400 with the same problems otherwise).
    if let Err(rejection) = submission.validate() {
        for problem in rejection.problems() {
            eprintln!("{problem}");
        }
        eprintln!("invalid: {rejection}");
        return ExitCode::from(1);
    }

    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    match (value("--url"), value("--token")) {
        (Some(url), Some(token)) => match send(&submission, url, token, Duration::from_secs(60)) {
            Ok(receipt) => {
                println!("{}: {}", receipt.id, receipt.status);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("submission failed: {e}");
                ExitCode::from(1)
            }
        },
        _ => {
            println!("{}", submission.to_json());
            ExitCode::SUCCESS
        }
    }
}

/// Posts `submission` to the receiver's `submit_url` with `token`, then polls `/status`
/// until the receipt is final (at most `wait`); returns the last receipt (`processed` when
/// the objects are in the database). A refusal (4xx) is an error carrying the server's body.
pub fn send(
    submission: &Submission,
    submit_url: &str,
    token: &str,
    wait: Duration,
) -> Result<Receipt, kernelci_kcidb::client::ClientError> {
    let client = Client::new(submit_url, token)?;
    let receipt = client.submit(submission)?;
    client.wait(&receipt.id, wait)
}

/// One checkout, one build, two tests (ids are `<origin>:<local id>`).
pub fn results() -> Submission {
    let checkout_id = format!("{ORIGIN}:checkout-1");
    let build_id = format!("{ORIGIN}:build-1");
    let mut submission = Submission::new();
    submission.checkouts.push(Checkout {
        id: checkout_id.clone(),
        origin: ORIGIN.into(),
        tree_name: Some("mainline".into()),
        git_repository_url: Some(
            "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git".into(),
        ),
        git_repository_branch: Some("master".into()),
        git_commit_hash: Some("0123456789abcdef0123456789abcdef01234567".into()),
        start_time: Some("2026-01-01T10:00:00+00:00".into()),
        valid: Some(true),
        ..Default::default()
    });
    submission.builds.push(Build {
        id: build_id.clone(),
        origin: ORIGIN.into(),
        checkout_id,
        architecture: Some("arm64".into()),
        compiler: Some("gcc (Debian 12.2.0-14) 12.2.0".into()),
        config_name: Some("defconfig".into()),
        start_time: Some("2026-01-01T10:05:00+00:00".into()),
        duration: Some(312.5),
        log_url: Some("https://storage.mylab.example/build-1/build.log".into()),
        status: Some(Status::Pass),
        ..Default::default()
    });
    // Tests are identified by a dot-separated path; the environment says where they ran.
    for (local, path, status) in [
        ("test-1", "boot", Status::Pass),
        ("test-2", "kselftest.timers.nanosleep", Status::Fail),
    ] {
        submission.tests.push(Test {
            id: format!("{ORIGIN}:{local}"),
            origin: ORIGIN.into(),
            build_id: build_id.clone(),
            path: Some(path.into()),
            status: Some(status),
            environment: Some(Environment {
                compatible: Some(vec!["raspberrypi,4-model-b".into(), "brcm,bcm2711".into()]),
                ..Default::default()
            }),
            start_time: Some("2026-01-01T10:20:00+00:00".into()),
            log_url: Some(format!("https://storage.mylab.example/{local}/log.txt")),
            ..Default::default()
        });
    }
    submission
}
