//! The report's text for a fixture checkout: one new regression (with a bisection
//! culprit), one still failing, one new issue, one missing result.

use super::report::{Counts, IssueItem, Links, RegressionItem, Report, Tally};
use super::store::{CheckoutInfo, Missing};

fn regression(what: &str, state: &str, fail_count: i64, culprit: bool) -> RegressionItem {
    RegressionItem {
        id: format!("id-{what}"),
        what: what.into(),
        kind: "test".into(),
        state: state.into(),
        class: "kernel".into(),
        platform: "qemu-x86".into(),
        fail_count,
        last_pass_commit: "1111111111111111111111111111111111111111".into(),
        first_fail_commit: "2222222222222222222222222222222222222222".into(),
        culprit: culprit.then(|| "3333333333333333333333333333333333333333".into()),
        culprit_subject: culprit.then(|| "mm: break the world".into()),
        link: Some("https://kci.example/test/lab:t2-0".into()),
    }
}

fn fixture() -> Report {
    Report {
        checkout: CheckoutInfo {
            id: "lab:c2".into(),
            origin: "lab".into(),
            tree_name: Some("mainline".into()),
            git_repository_url: Some("https://git.example/linux.git".into()),
            git_repository_branch: Some("master".into()),
            git_commit_hash: Some("2222222222222222222222222222222222222222".into()),
            git_commit_name: Some("v6.8-rc1-12-gabc".into()),
            start_time: Some("2026-11-28T10:00:00.000000Z".into()),
        },
        counts: Counts {
            builds: Tally {
                pass: 1,
                ..Tally::default()
            },
            boots: Tally {
                pass: 3,
                fail: 1,
                ..Tally::default()
            },
            tests: Tally {
                pass: 10,
                fail: 1,
                miss: 1,
                ..Tally::default()
            },
        },
        new_regressions: vec![regression(
            "baseline.login on qemu-x86 (defconfig/x86_64)",
            "new",
            1,
            true,
        )],
        still_failing: vec![regression(
            "kselftest.net on qemu-x86 (defconfig/x86_64)",
            "still_failing",
            3,
            false,
        )],
        fixed: vec![],
        new_issues: vec![IssueItem {
            id: "logspec:abc".into(),
            version: 1,
            comment: Some("WARNING at mm/slub.c:123".into()),
            culprit: vec!["code".into()],
            incidents: 2,
            link: Some("https://kci.example/issue/logspec:abc?version=1".into()),
        }],
        missing: vec![Missing {
            kind: "test",
            id: "lab:t2-9".into(),
            name: "kselftest.timers".into(),
            platform: Some("rk3399".into()),
        }],
        missing_total: 1,
        links: Links {
            checkout: Some("https://kci.example/tree/2222?origin=lab".into()),
            regressions: Some("https://kci.example/regressions".into()),
        },
    }
}

#[test]
fn the_subject_and_text_of_a_report() {
    let r = fixture();
    assert_eq!(
        r.subject(),
        "[kernelci] mainline/master v6.8-rc1-12-gabc: 1 new regression, 1 new issue"
    );
    let text = r.text();
    let expected = "\
mainline/master v6.8-rc1-12-gabc

commit:     2222222222222222222222222222222222222222
repository: https://git.example/linux.git
origin:     lab
started:    2026-11-28T10:00:00.000000Z
dashboard:  https://kci.example/tree/2222?origin=lab

Builds: 1 pass
Boots:  3 pass, 1 fail
Tests:  10 pass, 1 fail, 1 miss

New regressions (1):
  - baseline.login on qemu-x86 (defconfig/x86_64)
    class kernel, failing on 1 checkout since 222222222222 (last pass 111111111111)
    culprit: 333333333333 \"mm: break the world\"
    https://kci.example/test/lab:t2-0

Still failing (1):
  - kselftest.net on qemu-x86 (defconfig/x86_64)
    class kernel, failing on 3 checkouts since 222222222222 (last pass 111111111111)
    https://kci.example/test/lab:t2-0

New issues (1):
  - logspec:abc (version 1): WARNING at mm/slub.c:123
    2 results in this checkout, culprit code
    https://kci.example/issue/logspec:abc?version=1

Missing results (1):
  - test kselftest.timers on rk3399

All regressions: https://kci.example/regressions
";
    assert_eq!(text, expected);
}

#[test]
fn summaries_and_plurals() {
    let mut r = fixture();
    r.new_regressions.push(r.new_regressions[0].clone());
    assert!(r.subject().ends_with(": 2 new regressions, 1 new issue"));
    r.new_regressions.clear();
    r.new_issues.clear();
    assert!(
        r.subject().ends_with(": no new regressions"),
        "{}",
        r.subject()
    );
    r.checkout.git_commit_name = None;
    assert_eq!(
        r.subject(),
        "[kernelci] mainline/master 222222222222: no new regressions"
    );
    assert_eq!(Tally::default().line(), "none");
}

#[test]
fn json_and_discord_bodies() {
    let r = fixture();
    let j = r.json();
    assert_eq!(j["event"], "checkout_report");
    assert_eq!(j["subject"], r.subject());
    assert_eq!(j["checkout"]["id"], "lab:c2");
    assert_eq!(j["counts"]["boots"]["fail"], 1);
    assert_eq!(
        j["new_regressions"][0]["culprit"],
        "3333333333333333333333333333333333333333"
    );
    assert_eq!(j["new_issues"][0]["id"], "logspec:abc");
    assert_eq!(j["missing"][0]["name"], "kselftest.timers");

    let d = r.discord();
    let content = d["content"].as_str().expect("content");
    assert!(content.starts_with("**[kernelci] mainline/master v6.8-rc1-12-gabc"));
    let embeds = d["embeds"].as_array().expect("embeds");
    assert_eq!(embeds.len(), 3, "{embeds:?}");
    assert_eq!(
        embeds[0]["title"],
        "New regression: baseline.login on qemu-x86 (defconfig/x86_64)"
    );
    assert_eq!(embeds[2]["title"], "New issue: WARNING at mm/slub.c:123");

    // Discord's limits hold for a big report.
    let mut big = fixture();
    let long = "x".repeat(5000);
    big.checkout.git_commit_name = Some(long.clone());
    for i in 0..30 {
        let mut item = big.new_regressions[0].clone();
        item.what = format!("{i} {long}");
        big.new_regressions.push(item);
    }
    let d = big.discord();
    assert!(d["content"].as_str().expect("content").chars().count() <= 2000);
    let embeds = d["embeds"].as_array().expect("embeds");
    assert_eq!(embeds.len(), 10);
    assert_eq!(embeds[9]["title"], "... and 24 more");
    let total: usize = embeds
        .iter()
        .map(|e| {
            e["title"].as_str().map_or(0, |t| t.chars().count())
                + e["description"].as_str().map_or(0, |t| t.chars().count())
        })
        .sum();
    assert!(total <= 6000, "{total}");
}
