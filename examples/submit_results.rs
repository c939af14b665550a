//! Build a KCIDB v5.3 submission in code, check it, print it (and how to send it).
//!
//! A lab reports one checkout (the commit it tested), one build of it and two tests of that
//! build. Every id is `<origin>:<your own id>` and every object carries the lab's origin;
//! the receiver refuses objects of another origin than the token's.
//!
//! `cargo run -p kernelci-examples --example submit_results > results.json`
//! `cargo run -p kernelci-examples --example submit_results -- --url http://localhost:8001/kcidb/submit --token $TOKEN`
//!
//! To send the file, `kci submit results.json --url ... --token ...` (retries, receipts), or
//! the `curl` command this prints with `--url`/`--token`.

use kernelci_kcidb::{Build, Checkout, Environment, Status, Submission, Test};

/// The lab's origin: the `origin` claim of its KCIDB token.
const ORIGIN: &str = "mylab";

fn main() {
    let submission = results();

    // Check it as the receiver will (it answers 400 with the same problems otherwise).
    if let Err(rejection) = submission.validate() {
        for problem in rejection.problems() {
            eprintln!("{problem}");
        }
        eprintln!("invalid: {rejection}");
        std::process::exit(1);
    }
    let json = submission.to_json();
    println!("{json}");

    // With `--url URL --token TOKEN`: the command that sends it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let (Some(url), Some(token)) = (value("--url"), value("--token")) {
        eprintln!(
            "send it with:\n  curl -fsS -X POST '{url}' -H 'Authorization: Bearer {token}' \
             -H 'Content-Type: application/json' --data-binary @results.json\n\
             (or: kci submit results.json --url '{url}' --token '{token}')"
        );
    }
}

/// One checkout, one build, two tests (ids are `<origin>:<local id>`).
fn results() -> Submission {
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
