//! Why a result failed: the kernel, the test, or the infrastructure.
//!
//! The class of a failing result (status `FAIL` or `ERROR`) is decided in this order, the
//! first that applies winning:
//!
//! 1. the operator's [`ClassRule`]s, in order;
//! 2. the culprit of a KCIDB issue linked to the result by a present incident (logspec's
//!    findings are filed this way): `code` -> kernel, `harness` -> test, `tool` ->
//!    infrastructure (with several, kernel before test before infrastructure);
//! 3. the Maestro `error_code` the pipeline reported in `misc.error_code`
//!    ([`error_code_class`]): the lab and runtime problems (LAVA's `Infrastructure`,
//!    `Canceled`, `LAVATimeout`, `Bug`, ..., our `node_timeout`, `submit_error`) ->
//!    infrastructure; LAVA's `Test` and the job-definition errors (`Job`,
//!    `Configuration`, `invalid_job_params`, ...) -> test;
//! 4. the status: `ERROR` (the test could not complete) -> infrastructure, `FAIL` ->
//!    kernel.
//!
//! Infrastructure failures never open a regression (see [`super::lifecycle`]).

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::identity::ResultKind;
use crate::Status;

/// The class of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// The kernel under test is at fault.
    Kernel,
    /// The test (its code, definition or harness) is at fault.
    Test,
    /// The lab, runtime, network or tooling failed; says nothing about the kernel.
    Infrastructure,
}

impl FailureClass {
    /// `kernel`, `test` or `infrastructure`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Kernel => "kernel",
            FailureClass::Test => "test",
            FailureClass::Infrastructure => "infrastructure",
        }
    }

    /// The inverse of [`FailureClass::as_str`] (also `infra`).
    pub fn parse(s: &str) -> Option<FailureClass> {
        match s {
            "kernel" => Some(FailureClass::Kernel),
            "test" => Some(FailureClass::Test),
            "infrastructure" | "infra" => Some(FailureClass::Infrastructure),
            _ => None,
        }
    }
}

/// Maestro `error_code`s (as the pipeline puts them in `misc.error_code`) that mean the
/// infrastructure failed.
pub const INFRASTRUCTURE_CODES: &[&str] = &[
    "Infrastructure",
    "Canceled",
    "LAVATimeout",
    "MultinodeTimeout",
    "Bug",
    "ObjectNotPersisted",
    "RequestBodyTooLarge",
    "submit_error",
    "kbuild_internal_error",
    "node_timeout",
];

/// Maestro `error_code`s that mean the test itself failed to run properly.
pub const TEST_CODES: &[&str] = &["Test"];

/// Maestro `error_code`s that mean the job definition or its parameters are wrong: the
/// test side's fault, never fixed by running it again.
pub const JOB_DEFINITION_CODES: &[&str] = &[
    "Job",
    "Configuration",
    "invalid_job_params",
    "job_generation_error",
    "Unexisting permission codename.",
];

/// The class a Maestro `error_code` alone gives (`None`: the code says nothing, e.g. an
/// unknown one). The job-retry role retries only what is not [`FailureClass::Test`].
pub fn error_code_class(code: &str) -> Option<FailureClass> {
    if INFRASTRUCTURE_CODES.contains(&code) {
        Some(FailureClass::Infrastructure)
    } else if TEST_CODES.contains(&code) || JOB_DEFINITION_CODES.contains(&code) {
        Some(FailureClass::Test)
    } else {
        None
    }
}

/// What a failure is classified from.
#[derive(Debug, Clone, Default)]
pub struct ClassInput<'a> {
    /// Build or test (`None`: either).
    pub kind: Option<ResultKind>,
    /// The result's status.
    pub status: Option<Status>,
    /// The origin.
    pub origin: &'a str,
    /// The test path (empty for builds).
    pub path: &'a str,
    /// The platform (empty for builds).
    pub platform: &'a str,
    /// `misc.error_code`.
    pub error_code: Option<&'a str>,
    /// `misc.error_msg`.
    pub error_msg: Option<&'a str>,
    /// Culprits of the issues linked by present incidents: (code, tool, harness).
    pub culprits: Vec<(bool, bool, bool)>,
}

/// A rule problem (a bad regex or class), naming the rule.
#[derive(Debug, thiserror::Error)]
#[error("classification rule {index}: {reason}")]
pub struct RuleError {
    /// The rule's position (from 0).
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

/// An operator's rule: every given condition must hold; the first rule that matches sets
/// the class. Text conditions are regular expressions searched in the value (anchor them
/// with `^...$` for whole-value matches); a missing value never matches a condition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    /// `kernel`, `test` or `infrastructure` (also `infra`).
    pub class: String,
    /// `build` or `test`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Status names (`FAIL`, `ERROR`).
    #[serde(default)]
    pub status: Vec<String>,
    /// Regex on the origin.
    #[serde(default)]
    pub origin: Option<String>,
    /// Regex on the test path.
    #[serde(default)]
    pub path: Option<String>,
    /// Regex on the platform.
    #[serde(default)]
    pub platform: Option<String>,
    /// Regex on `misc.error_code`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Regex on `misc.error_msg`.
    #[serde(default)]
    pub error_msg: Option<String>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    class: FailureClass,
    kind: Option<ResultKind>,
    status: Vec<Status>,
    origin: Option<Regex>,
    path: Option<Regex>,
    platform: Option<Regex>,
    error_code: Option<Regex>,
    error_msg: Option<Regex>,
}

/// The classifier: the operator's rules, compiled, then the built-in order above.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    rules: Vec<CompiledRule>,
}

fn status_named(name: &str) -> Option<Status> {
    Status::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(name))
}

impl Classifier {
    /// Compiles `rules`; a bad regex, class, kind or status is refused naming the rule.
    pub fn new(rules: &[ClassRule]) -> Result<Classifier, RuleError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, r) in rules.iter().enumerate() {
            let err = |reason: String| RuleError { index, reason };
            let class = FailureClass::parse(&r.class).ok_or_else(|| {
                err(format!(
                    "class {:?}: must be kernel, test or infrastructure",
                    r.class
                ))
            })?;
            let kind = match r.kind.as_deref() {
                None => None,
                Some(k) => Some(
                    ResultKind::parse(k)
                        .ok_or_else(|| err(format!("kind {k:?}: must be build or test")))?,
                ),
            };
            let mut status = Vec::new();
            for s in &r.status {
                status.push(
                    status_named(s).ok_or_else(|| err(format!("status {s:?}: unknown status")))?,
                );
            }
            let re = |field: &str, v: &Option<String>| -> Result<Option<Regex>, RuleError> {
                v.as_deref()
                    .map(|p| Regex::new(p).map_err(|e| err(format!("{field}: {e}"))))
                    .transpose()
            };
            compiled.push(CompiledRule {
                class,
                kind,
                status,
                origin: re("origin", &r.origin)?,
                path: re("path", &r.path)?,
                platform: re("platform", &r.platform)?,
                error_code: re("error_code", &r.error_code)?,
                error_msg: re("error_msg", &r.error_msg)?,
            });
        }
        Ok(Classifier { rules: compiled })
    }

    /// The class of a failing result; `None` when the status is not `FAIL` or `ERROR`.
    pub fn classify(&self, input: &ClassInput<'_>) -> Option<FailureClass> {
        let status = input.status?;
        if !matches!(status, Status::Fail | Status::Error) {
            return None;
        }
        if let Some(rule) = self.rules.iter().find(|r| r.matches(input, status)) {
            return Some(rule.class);
        }
        let any = |f: fn(&(bool, bool, bool)) -> bool| input.culprits.iter().any(f);
        if any(|c| c.0) {
            return Some(FailureClass::Kernel);
        }
        if any(|c| c.2) {
            return Some(FailureClass::Test);
        }
        if any(|c| c.1) {
            return Some(FailureClass::Infrastructure);
        }
        if let Some(class) = input.error_code.and_then(error_code_class) {
            return Some(class);
        }
        Some(match status {
            Status::Error => FailureClass::Infrastructure,
            _ => FailureClass::Kernel,
        })
    }
}

impl CompiledRule {
    fn matches(&self, input: &ClassInput<'_>, status: Status) -> bool {
        let text = |re: &Option<Regex>, value: Option<&str>| match re {
            None => true,
            Some(re) => value.is_some_and(|v| re.is_match(v)),
        };
        (self.kind.is_none() || self.kind == input.kind)
            && (self.status.is_empty() || self.status.contains(&status))
            && text(&self.origin, Some(input.origin))
            && text(&self.path, Some(input.path))
            && text(&self.platform, Some(input.platform))
            && text(&self.error_code, input.error_code)
            && text(&self.error_msg, input.error_msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(status: Status) -> ClassInput<'static> {
        ClassInput {
            kind: Some(ResultKind::Test),
            status: Some(status),
            origin: "lab",
            path: "boot",
            platform: "qemu",
            ..ClassInput::default()
        }
    }

    #[test]
    fn built_in_order() {
        let c = Classifier::default();
        assert_eq!(c.classify(&failing(Status::Pass)), None);
        assert_eq!(c.classify(&failing(Status::Miss)), None);
        assert_eq!(
            c.classify(&failing(Status::Fail)),
            Some(FailureClass::Kernel)
        );
        assert_eq!(
            c.classify(&failing(Status::Error)),
            Some(FailureClass::Infrastructure)
        );
        let mut lava = failing(Status::Error);
        lava.error_code = Some("Test");
        assert_eq!(c.classify(&lava), Some(FailureClass::Test));
        let mut timeout = failing(Status::Fail);
        timeout.error_code = Some("node_timeout");
        assert_eq!(c.classify(&timeout), Some(FailureClass::Infrastructure));
        // An issue's culprit beats the error code; code beats harness beats tool.
        let mut culprit = timeout.clone();
        culprit.culprits = vec![(false, true, false), (true, false, false)];
        assert_eq!(c.classify(&culprit), Some(FailureClass::Kernel));
        culprit.culprits = vec![(false, true, false), (false, false, true)];
        assert_eq!(c.classify(&culprit), Some(FailureClass::Test));
    }

    #[test]
    fn rules_come_first_and_all_conditions_must_hold() {
        let rules = vec![
            ClassRule {
                class: "infra".into(),
                error_msg: Some("(?i)connection reset".into()),
                ..ClassRule::default()
            },
            ClassRule {
                class: "test".into(),
                kind: Some("test".into()),
                status: vec!["FAIL".into()],
                path: Some(r"^kselftest\.".into()),
                platform: Some("^qemu$".into()),
                ..ClassRule::default()
            },
        ];
        let c = Classifier::new(&rules).expect("valid rules");
        let mut reset = failing(Status::Fail);
        reset.error_msg = Some("Connection reset by peer");
        assert_eq!(c.classify(&reset), Some(FailureClass::Infrastructure));
        let mut ks = failing(Status::Fail);
        ks.path = "kselftest.timers.posix_timers";
        assert_eq!(c.classify(&ks), Some(FailureClass::Test));
        ks.platform = "rk3399";
        assert_eq!(c.classify(&ks), Some(FailureClass::Kernel));
    }

    #[test]
    fn bad_rules_name_the_rule_and_field() {
        let fine = ClassRule {
            class: "kernel".into(),
            ..ClassRule::default()
        };
        let bad = |r: ClassRule| Classifier::new(&[fine.clone(), r]).unwrap_err();
        assert!(Classifier::new(&[ClassRule::default()]).is_err());
        let e = bad(ClassRule {
            class: "kernel".into(),
            path: Some("(".into()),
            ..ClassRule::default()
        });
        assert_eq!(e.index, 1);
        assert!(
            e.to_string().starts_with("classification rule 1: path: "),
            "{e}"
        );
        let e = Classifier::new(&[ClassRule {
            class: "lab".into(),
            ..ClassRule::default()
        }])
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("must be kernel, test or infrastructure")
        );
        let e = Classifier::new(&[ClassRule {
            class: "kernel".into(),
            status: vec!["BROKEN".into()],
            ..ClassRule::default()
        }])
        .unwrap_err();
        assert!(e.to_string().contains("status \"BROKEN\""), "{e}");
    }
}
