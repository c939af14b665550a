//! Bisection decisions: which commit to test next, and when the culprit is found and
//! verified. Pure: the pipeline's bisect role runs the tests and records their verdicts.
//!
//! The range is `good..bad` as `git rev-list --ancestry-path --reverse good..bad` lists it
//! (oldest first, `bad` last, `good` excluded). The endpoints are taken as given while
//! bisecting; each tested commit gets one [`Verdict`] from several runs of the test (all
//! pass: good, all fail: bad, both: flaky, no usable result: skip).
//!
//! 1. **Bisect**: the last good commit `lo` (or `good`) and the first bad one after it `hi`
//!    (or `bad`) bound the culprit; the untested, unskipped commit in the middle of
//!    `(lo, hi)` is tested next: about log2(n) tests.
//! 2. **Verify**: when nothing is left between them, the culprit `hi` must itself fail and
//!    its parent (`lo`, possibly `good`) must pass, each over the same repeats; either is
//!    tested if it was not yet (the endpoints are only tested here).
//! 3. **Outcome**: [`Outcome::Culprit`]; or [`Outcome::Flaky`] when a tested commit was
//!    flaky; or [`Outcome::Inconclusive`] when the verification contradicts the range
//!    (the good commit fails, the bad one passes) or skipped commits hide the culprit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the runs of the test on one commit say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every run passed.
    Good,
    /// Every run failed.
    Bad,
    /// Some runs passed and some failed.
    Flaky,
    /// No usable run (the build failed, the lab failed every time).
    Skip,
}

impl Verdict {
    /// From the runs' results (`true`: passed); `None` while fewer than `repeat` runs are
    /// in and they agree (one pass and one fail already make it flaky).
    pub fn from_runs(runs: &[bool], repeat: usize) -> Option<Verdict> {
        let passed = runs.iter().filter(|r| **r).count();
        let failed = runs.len() - passed;
        if passed > 0 && failed > 0 {
            Some(Verdict::Flaky)
        } else if runs.len() < repeat.max(1) {
            None
        } else if failed == 0 {
            Some(Verdict::Good)
        } else {
            Some(Verdict::Bad)
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run the test on this commit (repeatedly) and record its verdict.
    Test(String),
    /// Finished.
    Done(Outcome),
}

/// How a bisection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Outcome {
    /// The first bad commit, verified: it fails every run and its parent passes every run.
    Culprit {
        /// The culprit.
        commit: String,
        /// Its parent in the range (or the good commit).
        parent: String,
    },
    /// A commit gave both passes and failures: the test is flaky there.
    Flaky {
        /// That commit.
        commit: String,
    },
    /// No single culprit could be named.
    Inconclusive {
        /// Why.
        reason: String,
    },
}

/// A bisection's state: the range and the verdicts so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bisection {
    /// The known good commit.
    pub good: String,
    /// `good..bad`, oldest first, `bad` last.
    pub commits: Vec<String>,
    /// Verdicts by commit (the good commit's too, once verified).
    pub verdicts: BTreeMap<String, Verdict>,
}

/// A range that cannot be bisected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot bisect: {0}")]
pub struct RangeError(pub String);

impl Bisection {
    /// A new bisection of `commits` (`good..bad`, oldest first), nothing tested yet.
    pub fn new(good: &str, commits: Vec<String>) -> Result<Bisection, RangeError> {
        if commits.is_empty() {
            return Err(RangeError(format!(
                "no commit between {good} and the bad commit (is the good commit an \
                 ancestor of the bad one?)"
            )));
        }
        if commits.iter().any(|c| c == good) {
            return Err(RangeError("the good commit is inside its own range".into()));
        }
        Ok(Bisection {
            good: good.to_string(),
            commits,
            verdicts: BTreeMap::new(),
        })
    }

    /// The bad commit (the range's last).
    pub fn bad(&self) -> &str {
        self.commits.last().map_or("", String::as_str)
    }

    /// Records a commit's verdict.
    pub fn record(&mut self, commit: &str, verdict: Verdict) {
        self.verdicts.insert(commit.to_string(), verdict);
    }

    fn verdict(&self, commit: &str) -> Option<Verdict> {
        self.verdicts.get(commit).copied()
    }

    /// The commit before index `i` in the range (the good commit before the first).
    fn parent_of(&self, i: usize) -> &str {
        match i.checked_sub(1) {
            Some(p) => &self.commits[p],
            None => &self.good,
        }
    }

    /// What to do next.
    pub fn next(&self) -> Next {
        if let Some((commit, _)) = self.verdicts.iter().find(|(_, v)| **v == Verdict::Flaky) {
            return Next::Done(Outcome::Flaky {
                commit: commit.clone(),
            });
        }
        let n = self.commits.len();
        // lo: index of the newest good commit (None: the good endpoint); hi: the first
        // bad commit after it (the bad endpoint when none was tested bad).
        let lo = self
            .commits
            .iter()
            .rposition(|c| self.verdict(c) == Some(Verdict::Good));
        let start = lo.map_or(0, |l| l + 1);
        if start >= n {
            return Next::Done(Outcome::Inconclusive {
                reason: format!("the bad commit {} passes", self.bad()),
            });
        }
        let hi = (start..n)
            .find(|&i| self.verdict(&self.commits[i]) == Some(Verdict::Bad))
            .unwrap_or(n - 1);
        let between: Vec<usize> = (start..hi)
            .filter(|&i| self.verdict(&self.commits[i]).is_none())
            .collect();
        if !between.is_empty() {
            return Next::Test(self.commits[between[between.len() / 2]].clone());
        }
        // Verification of the culprit candidate and its parent.
        let culprit = &self.commits[hi];
        match self.verdict(culprit) {
            None => return Next::Test(culprit.clone()),
            Some(Verdict::Skip) => {
                return Next::Done(Outcome::Inconclusive {
                    reason: format!("the bad commit {culprit} gave no usable result"),
                });
            }
            _ => {}
        }
        if (start..hi).any(|i| self.verdict(&self.commits[i]) == Some(Verdict::Skip)) {
            let skipped: Vec<&str> = (start..=hi).map(|i| self.commits[i].as_str()).collect();
            return Next::Done(Outcome::Inconclusive {
                reason: format!(
                    "the culprit is one of {} (the others gave no usable result)",
                    skipped.join(", ")
                ),
            });
        }
        let parent = self.parent_of(hi).to_string();
        match self.verdict(&parent) {
            None => Next::Test(parent),
            Some(Verdict::Good) => Next::Done(Outcome::Culprit {
                commit: culprit.clone(),
                parent,
            }),
            Some(_) => Next::Done(Outcome::Inconclusive {
                reason: format!("the good commit {parent} does not pass"),
            }),
        }
    }

    /// Commits a bisection of `n` commits tests at most (bisecting, then verifying both
    /// endpoints): ceil(log2(n)) + 2.
    pub fn max_tests(n: usize) -> usize {
        let mut steps = 0;
        while (1usize << steps) < n {
            steps += 1;
        }
        steps + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(n: usize) -> Bisection {
        Bisection::new("g", (1..=n).map(|i| format!("c{i}")).collect()).expect("range")
    }

    /// Runs a bisection against "the test fails from commit `first_bad` on" (1-based; 0:
    /// the good commit fails too), `flaky` commits giving mixed runs.
    fn run(n: usize, first_bad: usize, flaky: &[usize]) -> (Outcome, Vec<String>) {
        let mut b = range(n);
        let mut tested = Vec::new();
        loop {
            match b.next() {
                Next::Test(c) => {
                    assert!(!tested.contains(&c), "{c} tested twice");
                    tested.push(c.clone());
                    let i = if c == "g" {
                        0
                    } else {
                        c[1..].parse::<usize>().expect("index")
                    };
                    let v = if flaky.contains(&i) {
                        Verdict::Flaky
                    } else if i >= first_bad {
                        Verdict::Bad
                    } else {
                        Verdict::Good
                    };
                    b.record(&c, v);
                }
                Next::Done(o) => return (o, tested),
            }
        }
    }

    #[test]
    fn finds_every_culprit_in_log2_steps_with_verification() {
        for n in [1, 2, 3, 7, 8, 16, 33] {
            for first_bad in 1..=n {
                let (o, tested) = run(n, first_bad, &[]);
                assert_eq!(
                    o,
                    Outcome::Culprit {
                        commit: format!("c{first_bad}"),
                        parent: if first_bad == 1 {
                            "g".into()
                        } else {
                            format!("c{}", first_bad - 1)
                        },
                    },
                    "n={n} first_bad={first_bad}"
                );
                assert!(
                    tested.len() <= Bisection::max_tests(n),
                    "n={n} first_bad={first_bad}: {} tests {tested:?}",
                    tested.len()
                );
            }
        }
        assert_eq!(Bisection::max_tests(16), 6);
    }

    #[test]
    fn contradictions_and_flakiness_end_without_a_culprit() {
        let (o, _) = run(8, 0, &[]);
        assert!(
            matches!(o, Outcome::Inconclusive { ref reason } if reason.contains("good commit g")),
            "{o:?}"
        );
        let (o, _) = run(8, 9, &[]);
        assert!(
            matches!(o, Outcome::Inconclusive { ref reason } if reason.contains("bad commit c8 passes")),
            "{o:?}"
        );
        let (o, _) = run(8, 5, &[4]);
        assert_eq!(
            o,
            Outcome::Flaky {
                commit: "c4".into()
            }
        );
    }

    #[test]
    fn skipped_commits_are_stepped_around() {
        let mut b = range(8);
        b.record("c4", Verdict::Skip);
        let Next::Test(next) = b.next() else {
            panic!("expected a test")
        };
        assert_ne!(next, "c4");
        // Everything around the culprit skipped: inconclusive, naming the candidates.
        let mut b = range(3);
        b.record("c1", Verdict::Good);
        b.record("c2", Verdict::Skip);
        b.record("c3", Verdict::Bad);
        match b.next() {
            Next::Done(Outcome::Inconclusive { reason }) => {
                assert!(reason.contains("c2, c3"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verdicts_from_runs() {
        assert_eq!(Verdict::from_runs(&[true, true], 3), None);
        assert_eq!(
            Verdict::from_runs(&[true, true, true], 3),
            Some(Verdict::Good)
        );
        assert_eq!(
            Verdict::from_runs(&[false, false, false], 3),
            Some(Verdict::Bad)
        );
        assert_eq!(Verdict::from_runs(&[false, true], 3), Some(Verdict::Flaky));
        assert!(Bisection::new("g", vec![]).is_err());
        assert!(Bisection::new("g", vec!["g".into()]).is_err());
    }
}
