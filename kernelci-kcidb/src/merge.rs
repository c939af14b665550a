//! Merging two submissions of the same object: deterministic, field by field.
//!
//! KCIDB lets a submitter send an object more than once (e.g. a test first without results,
//! later complete). Upstream keeps the union of the properties but, for a property present in
//! both, picks a winner at random (kcidb's `prio_db` flag, kcidb-io's `dedup`). We do not:
//!
//! * a property present in only one of the two is kept (the union, as upstream);
//! * for a property present in both, **the later one wins** (a resubmission corrects or
//!   completes the earlier one; nothing can be cleared back to "unknown", as upstream);
//! * `misc` objects are merged key by key, the later value winning per top-level key
//!   (nested values are replaced whole). This is PostgreSQL's `jsonb` `old || new`;
//! * nested objects whose members are independent facts are merged member by member the same
//!   way: a test's `environment` (`comment`, `compatible`, `misc` key-wise) and an issue's
//!   `culprit` (`code`, `tool`, `harness`);
//! * a test's `number` (value, unit and prefix belong together) and every list (`*_files`,
//!   `git_commit_tags`, `compatible`, `categories`) are replaced whole;
//! * `_timestamp` (metadata) keeps the later instant of the two, like the database's
//!   `GREATEST`.
//!
//! Merging is associative, so any batch of submissions folded in arrival order gives the same
//! object, and it is idempotent (`merge(a, a) == a`).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use crate::error::MergeError;
use crate::formats::parse_date_time;
use crate::types::{
    Build, Checkout, Culprit, Environment, Incident, Issue, Misc, Submission, Test,
};

/// A top-level KCIDB object: it has an identity and can absorb a later copy of itself.
pub trait KcidbObject: Sized {
    /// The object type, singular (`"build"`).
    const KIND: &'static str;
    /// What identifies the object: `id`, or `(id, version)` for issues.
    type Key: Eq + Hash + Clone + Debug;

    /// This object's identity.
    fn key(&self) -> Self::Key;

    /// Merges a later submission of the same object into this one (see the module
    /// documentation). The caller guarantees the keys are equal; see [`merge`].
    fn absorb(&mut self, later: Self);
}

/// Merges `later` into `earlier`, which must be the same object (same key).
pub fn merge<T: KcidbObject>(mut earlier: T, later: T) -> Result<T, MergeError> {
    let (a, b) = (earlier.key(), later.key());
    if a != b {
        return Err(MergeError {
            kind: T::KIND,
            earlier: format!("{a:?}"),
            later: format!("{b:?}"),
        });
    }
    earlier.absorb(later);
    Ok(earlier)
}

/// Merges the objects with the same key, keeping the position of the first one.
pub fn dedup<T: KcidbObject>(objects: Vec<T>) -> Vec<T> {
    let mut positions: HashMap<T::Key, usize> = HashMap::with_capacity(objects.len());
    let mut out: Vec<T> = Vec::with_capacity(objects.len());
    for object in objects {
        let key = object.key();
        match positions.get(&key) {
            Some(&i) => out[i].absorb(object),
            None => {
                positions.insert(key, out.len());
                out.push(object);
            }
        }
    }
    out
}

impl Submission {
    /// Merges objects of the same type and key within this submission (deterministically,
    /// see [`crate::merge()`]); each merged object takes the position of its first copy.
    pub fn dedup(&mut self) {
        self.checkouts = dedup(std::mem::take(&mut self.checkouts));
        self.builds = dedup(std::mem::take(&mut self.builds));
        self.tests = dedup(std::mem::take(&mut self.tests));
        self.issues = dedup(std::mem::take(&mut self.issues));
        self.incidents = dedup(std::mem::take(&mut self.incidents));
    }
}

/// For each listed `Option` field, the later value wins when it is present.
macro_rules! later_wins {
    ($dst:ident, $src:ident; $($field:ident),* $(,)?) => {
        { $( if $src.$field.is_some() { $dst.$field = $src.$field; } )* }
    };
}

/// `misc`: key by key, the later value winning (PostgreSQL `old || new`).
fn merge_misc(dst: &mut Option<Misc>, src: Option<Misc>) {
    match (dst.as_mut(), src) {
        (Some(old), Some(new)) => {
            for (key, value) in new {
                old.insert(key, value);
            }
        }
        (None, Some(new)) => *dst = Some(new),
        (_, None) => {}
    }
}

/// `_timestamp`: the later instant; a value that does not parse loses to one that does.
fn merge_timestamp(dst: &mut Option<String>, src: Option<String>) {
    let Some(new) = src else { return };
    let replace = match dst.as_deref() {
        None => true,
        Some(old) => match (parse_date_time(old), parse_date_time(&new)) {
            (Some(o), Some(n)) => n >= o,
            (None, _) => true,
            (Some(_), None) => false,
        },
    };
    if replace {
        *dst = Some(new);
    }
}

fn merge_environment(dst: &mut Option<Environment>, src: Option<Environment>) {
    let Some(new) = src else { return };
    match dst {
        None => *dst = Some(new),
        Some(old) => {
            later_wins!(old, new; comment, compatible);
            merge_misc(&mut old.misc, new.misc);
        }
    }
}

fn merge_culprit(dst: &mut Option<Culprit>, src: Option<Culprit>) {
    let Some(new) = src else { return };
    match dst {
        None => *dst = Some(new),
        Some(old) => later_wins!(old, new; code, tool, harness),
    }
}

impl KcidbObject for Checkout {
    const KIND: &'static str = "checkout";
    type Key = String;

    fn key(&self) -> String {
        self.id.clone()
    }

    fn absorb(&mut self, later: Checkout) {
        self.origin = later.origin;
        merge_timestamp(&mut self.timestamp, later.timestamp);
        later_wins!(self, later;
            tree_name, git_repository_url, git_commit_hash, git_commit_name, git_commit_tags,
            git_commit_message, git_repository_branch, git_repository_branch_tip, patchset_files,
            patchset_hash, message_id, comment, start_time, origin_builds_finish_time,
            origin_tests_finish_time, log_url, log_excerpt, valid);
        merge_misc(&mut self.misc, later.misc);
    }
}

impl KcidbObject for Build {
    const KIND: &'static str = "build";
    type Key = String;

    fn key(&self) -> String {
        self.id.clone()
    }

    fn absorb(&mut self, later: Build) {
        self.origin = later.origin;
        self.checkout_id = later.checkout_id;
        merge_timestamp(&mut self.timestamp, later.timestamp);
        later_wins!(self, later;
            comment, start_time, duration, architecture, command, compiler, input_files,
            output_files, config_name, config_url, log_url, log_excerpt, status);
        merge_misc(&mut self.misc, later.misc);
    }
}

impl KcidbObject for Test {
    const KIND: &'static str = "test";
    type Key = String;

    fn key(&self) -> String {
        self.id.clone()
    }

    fn absorb(&mut self, later: Test) {
        self.origin = later.origin;
        self.build_id = later.build_id;
        merge_timestamp(&mut self.timestamp, later.timestamp);
        merge_environment(&mut self.environment, later.environment);
        later_wins!(self, later;
            path, comment, log_url, log_excerpt, status, number, start_time, duration,
            input_files, output_files);
        merge_misc(&mut self.misc, later.misc);
    }
}

impl KcidbObject for Issue {
    const KIND: &'static str = "issue";
    type Key = (String, u32);

    fn key(&self) -> (String, u32) {
        (self.id.clone(), self.version)
    }

    fn absorb(&mut self, later: Issue) {
        self.origin = later.origin;
        merge_timestamp(&mut self.timestamp, later.timestamp);
        merge_culprit(&mut self.culprit, later.culprit);
        later_wins!(self, later; categories, report_url, report_subject, comment);
        merge_misc(&mut self.misc, later.misc);
    }
}

impl KcidbObject for Incident {
    const KIND: &'static str = "incident";
    type Key = String;

    fn key(&self) -> String {
        self.id.clone()
    }

    fn absorb(&mut self, later: Incident) {
        self.origin = later.origin;
        self.issue_id = later.issue_id;
        self.issue_version = later.issue_version;
        merge_timestamp(&mut self.timestamp, later.timestamp);
        later_wins!(self, later; build_id, test_id, present, comment);
        merge_misc(&mut self.misc, later.misc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Status, TestNumber};
    use serde_json::{Value, json};

    fn test(v: Value) -> Test {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn union_and_later_wins() {
        let partial = test(
            json!({"id": "a:t", "origin": "a", "build_id": "a:b", "path": "boot",
            "status": "FAIL", "misc": {"lab": "x", "keep": 1},
            "environment": {"comment": "rack 1", "misc": {"platform": "p", "serial": 1}}}),
        );
        let complete = test(json!({"id": "a:t", "origin": "a", "build_id": "a:b",
            "status": "PASS", "duration": 3.5, "misc": {"lab": "y", "new": [1]},
            "environment": {"compatible": ["ti,omap3"], "misc": {"serial": 2}},
            "number": {"value": 1.0}}));
        let merged = merge(partial, complete).unwrap();
        assert_eq!(merged.path.as_deref(), Some("boot"));
        assert_eq!(merged.status, Some(Status::Pass));
        assert_eq!(merged.duration, Some(3.5));
        assert_eq!(
            serde_json::to_value(&merged.misc).unwrap(),
            json!({"lab": "y", "keep": 1, "new": [1]})
        );
        assert_eq!(
            serde_json::to_value(&merged.environment).unwrap(),
            json!({"comment": "rack 1", "compatible": ["ti,omap3"],
                "misc": {"platform": "p", "serial": 2}})
        );
        assert_eq!(
            merged.number,
            Some(TestNumber {
                value: 1.0,
                unit: None,
                prefix: None
            })
        );
    }

    #[test]
    fn number_is_replaced_whole() {
        let a = test(json!({"id": "a:t", "origin": "a", "build_id": "a:b",
            "number": {"value": 1.0, "unit": "s", "prefix": "metric"}}));
        let b = test(json!({"id": "a:t", "origin": "a", "build_id": "a:b",
            "number": {"value": 2048}}));
        let merged = merge(a, b).unwrap();
        assert_eq!(
            merged.number,
            Some(TestNumber {
                value: 2048.0,
                unit: None,
                prefix: None
            })
        );
    }

    #[test]
    fn different_objects_do_not_merge() {
        let a = test(json!({"id": "a:1", "origin": "a", "build_id": "a:b"}));
        let b = test(json!({"id": "a:2", "origin": "a", "build_id": "a:b"}));
        let err = merge(a, b).unwrap_err();
        assert_eq!(err.kind, "test");
        let issue = |v: u32| -> Issue {
            serde_json::from_value(json!({"id": "a:i", "origin": "a", "version": v})).unwrap()
        };
        assert!(merge(issue(1), issue(2)).is_err());
        assert!(merge(issue(2), issue(2)).is_ok());
    }

    #[test]
    fn timestamp_keeps_the_later_instant() {
        let b = |ts: &str| -> Build {
            serde_json::from_value(json!({"id": "a:b", "origin": "a", "checkout_id": "a:c",
                "_timestamp": ts}))
            .unwrap()
        };
        let later = "2025-01-02T00:00:00+00:00";
        let earlier = "2025-01-02T00:30:00+01:00";
        assert_eq!(
            merge(b(later), b(earlier)).unwrap().timestamp.as_deref(),
            Some(later)
        );
        assert_eq!(
            merge(b(earlier), b(later)).unwrap().timestamp.as_deref(),
            Some(later)
        );
    }

    #[test]
    fn culprit_member_by_member() {
        let issue = |c: Value| -> Issue {
            serde_json::from_value(json!({"id": "a:i", "origin": "a", "version": 1, "culprit": c}))
                .unwrap()
        };
        let merged = merge(issue(json!({"code": true})), issue(json!({"tool": false}))).unwrap();
        assert_eq!(
            merged.culprit,
            Some(Culprit {
                code: Some(true),
                tool: Some(false),
                harness: None
            })
        );
    }

    #[test]
    fn dedup_keeps_first_position_and_is_idempotent() {
        let t = |id: &str, status: &str| {
            test(json!({"id": id, "origin": "a", "build_id": "a:b", "status": status}))
        };
        let out = dedup(vec![t("a:1", "FAIL"), t("a:2", "PASS"), t("a:1", "SKIP")]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].status, Some(Status::Skip));
        assert_eq!(out[1].id, "a:2");
        let again = dedup(vec![out[0].clone(), out[0].clone()]);
        assert_eq!(again, vec![out[0].clone()]);
    }
}
