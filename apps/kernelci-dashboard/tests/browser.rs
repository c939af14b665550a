//! The pages in a real browser: Debian's Chromium, headless, opens each view with `small/`
//! loaded, and the DOM it builds has the page's heading and content; a screenshot at a
//! laptop's size is taken of the tree listing. Chromium is `KERNELCI_CHROMIUM` or
//! `/usr/bin/chromium` (`apt-get install chromium`); without it the test skips with a
//! message, or fails under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, Server, days_covering, enc, small_fixtures};
use kernelci_tests::TestDb;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("KERNELCI_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "Chromium not found at {} (apt-get install chromium)",
        path.display()
    );
    eprintln!("skipping: Chromium not found at {}", path.display());
    None
}

/// Runs headless Chromium with the flags this machine needs (no network, no sandbox as
/// root) and `args`; returns its standard output.
fn run_chromium(exe: &Path, profile: &Path, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_renders_every_view() {
    let Some(exe) = chromium() else { return };
    let Some(dir) = small_fixtures() else { return };
    let fixture = Fixture::read(&dir);
    let server = Server::start(TestDb::new().await, &dir).await;
    let days = days_covering(&fixture);
    let (build_id, build) = fixture.builds.iter().next().unwrap();
    let test_id = fixture.tests.keys().next().unwrap();
    let (issue_id, _) = fixture.issues.keys().next().unwrap();
    let checkout = &fixture.checkouts[build["checkout_id"].as_str().unwrap()];
    let commit = checkout["git_commit_hash"].as_str().unwrap();
    let origin = checkout["origin"].as_str().unwrap();
    let views = [
        (
            format!("/tree?origin={origin}&interval_in_days={days}"),
            "Trees",
        ),
        (format!("/tree/{commit}?origin={origin}"), "Builds ("),
        (
            format!("/tree/{commit}?origin={origin}&tab=tests"),
            "Tests (",
        ),
        // A filter changes what is shown.
        (
            format!("/tree/{commit}?origin={origin}&tab=tests&filter_architecture=nonexistent"),
            "Nothing here.",
        ),
        (format!("/build/{}", enc(build_id)), "Build "),
        (format!("/test/{}", enc(test_id)), "Log"),
        (format!("/issue/{}", enc(issue_id)), "Issue "),
        ("/issues".to_string(), "Issues"),
        ("/hardware".to_string(), "Hardware"),
    ];
    let profile = tempfile::tempdir().unwrap();
    let base = server.base.clone();
    let exe2 = exe.clone();
    let profile_path = profile.path().to_path_buf();
    // Chromium blocks: run it off the async threads that serve the pages.
    tokio::task::spawn_blocking(move || {
        for (path, expect) in views {
            let dom = run_chromium(
                &exe2,
                &profile_path,
                &["--dump-dom", &format!("{base}{path}")],
            );
            assert!(dom.contains("<h1>"), "{path}: no heading in\n{dom}");
            assert!(dom.contains(expect), "{path}: {expect:?} not in\n{dom}");
            assert!(dom.contains("On a terminal:"), "{path}");
        }
        let shot = profile_path.join("trees.png");
        run_chromium(
            &exe2,
            &profile_path,
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1366,768",
                &format!("{base}/tree?origin=maestro&interval_in_days={days}"),
            ],
        );
        let png = std::fs::read(&shot).unwrap();
        if let Some(keep) = std::env::var_os("KERNELCI_KEEP_SCREENSHOT") {
            std::fs::write(keep, &png).unwrap();
        }
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        assert!(
            png.len() > 10_000,
            "a nearly empty screenshot: {} bytes",
            png.len()
        );
    })
    .await
    .unwrap();
}
