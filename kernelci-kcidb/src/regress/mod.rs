//! Regressions as objects: which results regressed, are still failing, were fixed or are
//! flaky, and why each failure happened (kernel, test or infrastructure).
//!
//! The pure parts, usable without a database:
//!
//! - [`identity`]: what makes two results "the same test" across checkouts (origin, tree,
//!   repository, branch, path, config, architecture, compiler, platform) and its stable key.
//! - [`classify`]: a failure's class from operator rules, the culprit of a KCIDB issue
//!   linked by an incident, the Maestro `error_code` and the status.
//! - [`lifecycle`]: one identity's recent checkouts -> flaky or not, and whether it passed
//!   before and fails now (a regression), with first and last failing checkout.
//!
//! With the `db` feature, [`track`] keeps the tables (`regress_results`,
//! `regress_identities`, `regressions`) up to date from the results that changed since its
//! cursor (incremental: it never rescans history), and [`track::list`] reads them back.

pub mod classify;
pub mod identity;
pub mod lifecycle;
#[cfg(feature = "db")]
pub mod track;

pub use classify::{ClassInput, ClassRule, Classifier, FailureClass, RuleError};
pub use identity::{Identity, ResultKind};
pub use lifecycle::{CheckoutOutcome, LifecycleSettings, Outcome, RegressionState, Verdict};
