//! One identity's recent history -> flaky or not, and the regression it shows, if any.
//!
//! The input is one [`CheckoutOutcome`] per checkout the identity ran on, oldest first (by
//! the checkout's start time). Several results of one checkout (repeats, two runs of a
//! job) are folded into one outcome: all passing -> [`Outcome::Pass`], all failing ->
//! [`Outcome::Fail`], both -> [`Outcome::Mixed`]. Only *decisive* outcomes count: a pass,
//! a kernel or test failure, or a mixed checkout. Infrastructure failures and results
//! without a verdict (`MISS`, `SKIP`, `DONE`, no status) are left out, so they can never
//! open, keep open or close a regression.
//!
//! - **Flips** are changes between consecutive decisive outcomes (pass -> fail, fail ->
//!   pass), plus one for each mixed checkout. With at least
//!   [`LifecycleSettings::flaky_flips`] flips in the window, the identity is flaky: it
//!   opens no regression, and an open one becomes flaky.
//! - **Failing**: the newest decisive outcome is a failure and an earlier one in the window
//!   is a pass. The regression's first failing checkout is the first failure after that
//!   last pass.

use serde::{Deserialize, Serialize};

use super::classify::FailureClass;

/// What one checkout says about an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every result passed.
    Pass,
    /// Every decisive result failed; the class of the first one.
    Fail(FailureClass),
    /// Some passed and some failed (kernel or test class).
    Mixed,
    /// Nothing decisive: infrastructure failures, no verdict.
    Other,
}

impl Outcome {
    /// Folds results' (passed?, failure class) into one outcome.
    pub fn fold(results: impl IntoIterator<Item = ResultVerdict>) -> Outcome {
        let (mut pass, mut fail) = (false, None);
        for r in results {
            match r {
                ResultVerdict::Pass => pass = true,
                ResultVerdict::Fail(FailureClass::Infrastructure) | ResultVerdict::None => {}
                ResultVerdict::Fail(class) => {
                    fail.get_or_insert(class);
                }
            }
        }
        match (pass, fail) {
            (true, Some(_)) => Outcome::Mixed,
            (true, None) => Outcome::Pass,
            (false, Some(class)) => Outcome::Fail(class),
            (false, None) => Outcome::Other,
        }
    }

    fn decisive(self) -> bool {
        !matches!(
            self,
            Outcome::Other | Outcome::Fail(FailureClass::Infrastructure)
        )
    }
}

/// One result's verdict, the input of [`Outcome::fold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultVerdict {
    /// `PASS`.
    Pass,
    /// `FAIL`/`ERROR` of this class.
    Fail(FailureClass),
    /// No verdict on the code.
    None,
}

/// An identity's outcome on one checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutOutcome {
    /// The checkout id.
    pub checkout_id: String,
    /// Its commit.
    pub commit: String,
    /// Its start time (sortable text).
    pub time: String,
    /// A result of the identity there (the first failing one when it failed).
    pub object_id: String,
    /// What the checkout says.
    pub outcome: Outcome,
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleSettings {
    /// How many of an identity's newest checkouts are looked at.
    pub window: usize,
    /// Flips within the window that make an identity flaky.
    pub flaky_flips: usize,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            window: 10,
            flaky_flips: 3,
        }
    }
}

/// Where an identity stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Flips in the window.
    pub flips: usize,
    /// Whether that makes it flaky.
    pub flaky: bool,
    /// The newest decisive outcome's index, if any.
    pub latest: Option<usize>,
    /// The regression the window shows (not set when flaky).
    pub failing: Option<Failing>,
}

/// A pass followed by failures up to the newest decisive outcome (indexes into the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// The last pass before the failures.
    pub last_pass: usize,
    /// The first failure after it.
    pub first_fail: usize,
    /// The newest failure.
    pub last_fail: usize,
    /// Failing checkouts from the first to the newest.
    pub fail_count: usize,
    /// The first failure's class.
    pub class: FailureClass,
}

/// A regression's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionState {
    /// Failing on one checkout so far.
    New,
    /// Failing on more than one checkout.
    StillFailing,
    /// Passed again (on `fixed_checkout`).
    Fixed,
    /// Flips within the window: not a regression one can act on.
    Flaky,
}

impl RegressionState {
    /// `new`, `still_failing`, `fixed` or `flaky`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegressionState::New => "new",
            RegressionState::StillFailing => "still_failing",
            RegressionState::Fixed => "fixed",
            RegressionState::Flaky => "flaky",
        }
    }

    /// The inverse of [`RegressionState::as_str`].
    pub fn parse(s: &str) -> Option<RegressionState> {
        match s {
            "new" => Some(RegressionState::New),
            "still_failing" => Some(RegressionState::StillFailing),
            "fixed" => Some(RegressionState::Fixed),
            "flaky" => Some(RegressionState::Flaky),
            _ => None,
        }
    }

    /// Whether the regression is still open (not fixed).
    pub fn is_open(self) -> bool {
        !matches!(self, RegressionState::Fixed)
    }

    /// `new` for one failing checkout, `still_failing` for more.
    pub fn for_count(fail_count: usize) -> RegressionState {
        if fail_count <= 1 {
            RegressionState::New
        } else {
            RegressionState::StillFailing
        }
    }
}

/// Evaluates an identity's window (oldest first; only the newest `settings.window`
/// checkouts are looked at).
pub fn evaluate(window: &[CheckoutOutcome], settings: &LifecycleSettings) -> Verdict {
    let start = window.len().saturating_sub(settings.window.max(1));
    let decisive: Vec<usize> = (start..window.len())
        .filter(|&i| window[i].outcome.decisive())
        .collect();
    let mut flips = 0;
    let mut previous: Option<bool> = None; // passed?
    for &i in &decisive {
        match window[i].outcome {
            Outcome::Mixed => flips += 1,
            Outcome::Pass | Outcome::Fail(_) => {
                let passed = window[i].outcome == Outcome::Pass;
                if previous.is_some_and(|p| p != passed) {
                    flips += 1;
                }
                previous = Some(passed);
            }
            Outcome::Other => {}
        }
    }
    let flaky = flips >= settings.flaky_flips.max(1);
    let latest = decisive.last().copied();
    let failing = match latest.map(|i| window[i].outcome) {
        Some(Outcome::Fail(_)) if !flaky => failing_run(window, &decisive),
        _ => None,
    };
    Verdict {
        flips,
        flaky,
        latest,
        failing,
    }
}

/// The run of failures ending at the newest decisive outcome, if a pass precedes it.
fn failing_run(window: &[CheckoutOutcome], decisive: &[usize]) -> Option<Failing> {
    let mut first_fail = None;
    let mut fail_count = 0;
    for &i in decisive.iter().rev() {
        match window[i].outcome {
            Outcome::Fail(_) => {
                first_fail = Some(i);
                fail_count += 1;
            }
            Outcome::Pass => {
                let first = first_fail?;
                let class = match window[first].outcome {
                    Outcome::Fail(c) => c,
                    _ => FailureClass::Kernel,
                };
                return Some(Failing {
                    last_pass: i,
                    first_fail: first,
                    last_fail: *decisive.last()?,
                    fail_count,
                    class,
                });
            }
            // A mixed checkout is neither the pass a regression needs nor a clean failure.
            Outcome::Mixed | Outcome::Other => return None,
        }
    }
    None
}

/// The first passing checkout after index `after` (the one that fixed a regression).
pub fn first_pass_after(window: &[CheckoutOutcome], after_time: &str) -> Option<usize> {
    window
        .iter()
        .position(|c| c.outcome == Outcome::Pass && c.time.as_str() > after_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Outcome = Outcome::Fail(FailureClass::Kernel);
    const I: Outcome = Outcome::Fail(FailureClass::Infrastructure);
    const P: Outcome = Outcome::Pass;

    fn window(outcomes: &[Outcome]) -> Vec<CheckoutOutcome> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| CheckoutOutcome {
                checkout_id: format!("c{i}"),
                commit: format!("{i:040x}"),
                time: format!("2026-11-{:02}T00:00:00.000000Z", i + 1),
                object_id: format!("t{i}"),
                outcome: *o,
            })
            .collect()
    }

    fn eval(outcomes: &[Outcome]) -> Verdict {
        evaluate(&window(outcomes), &LifecycleSettings::default())
    }

    #[test]
    fn pass_then_fail_is_a_regression() {
        let v = eval(&[P, P, K, K]);
        assert!(!v.flaky);
        let f = v.failing.expect("failing");
        assert_eq!(
            (f.last_pass, f.first_fail, f.last_fail, f.fail_count),
            (1, 2, 3, 2)
        );
        assert_eq!(f.class, FailureClass::Kernel);
        assert_eq!(
            RegressionState::for_count(f.fail_count),
            RegressionState::StillFailing
        );
    }

    #[test]
    fn never_passed_or_fixed_is_not() {
        assert_eq!(eval(&[K, K]).failing, None);
        assert_eq!(eval(&[P, K, P]).failing, None);
        assert_eq!(eval(&[P, K, P]).latest, Some(2));
        assert_eq!(eval(&[]).latest, None);
    }

    #[test]
    fn infrastructure_failures_are_invisible() {
        // P I I: the newest decisive outcome is a pass.
        assert_eq!(eval(&[P, I, I]).failing, None);
        assert_eq!(eval(&[P, I, I]).flips, 0);
        // P I K: the regression starts at the kernel failure.
        let f = eval(&[P, I, K]).failing.expect("failing");
        assert_eq!((f.last_pass, f.first_fail, f.fail_count), (0, 2, 1));
        // Folding: infrastructure failures next to a pass leave a pass.
        assert_eq!(
            Outcome::fold([
                ResultVerdict::Pass,
                ResultVerdict::Fail(FailureClass::Infrastructure)
            ]),
            Outcome::Pass
        );
        assert_eq!(
            Outcome::fold([ResultVerdict::Pass, ResultVerdict::Fail(FailureClass::Test)]),
            Outcome::Mixed
        );
        assert_eq!(Outcome::fold([ResultVerdict::None]), Outcome::Other);
    }

    #[test]
    fn flips_make_it_flaky() {
        let v = eval(&[P, K, P, K]);
        assert_eq!(v.flips, 3);
        assert!(v.flaky);
        assert_eq!(v.failing, None);
        // Two mixed checkouts and one change.
        let v = eval(&[P, Outcome::Mixed, Outcome::Mixed, K]);
        assert_eq!(v.flips, 3);
        assert!(v.flaky);
        // Old flips fall out of the window.
        let settings = LifecycleSettings {
            window: 4,
            flaky_flips: 3,
        };
        let v = evaluate(&window(&[P, K, P, K, P, P, P, K]), &settings);
        assert_eq!(v.flips, 1);
        assert!(!v.flaky);
        assert_eq!(v.failing.map(|f| f.first_fail), Some(7));
    }

    #[test]
    fn fixing_checkout() {
        let w = window(&[P, K, K, P, P]);
        assert_eq!(first_pass_after(&w, &w[2].time), Some(3));
        assert_eq!(first_pass_after(&w, &w[4].time), None);
    }
}
