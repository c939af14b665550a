//! Validation of a JSON document against the schema of the version it declares, reporting
//! every problem with its JSON pointer.
//!
//! The verdicts are those of kcidb-io's `LATEST.validate` (Draft-07 `jsonschema` with format
//! checks), except for the documented stricter checks (see [`Reason::stricter_than_kcidb_io`]
//! and `NOTES.md`). Unlike jsonschema's `validate`, which raises its "best" error only, all
//! problems are collected, in document order.

use serde_json::{Map, Value};

use crate::error::{JsonType, Problem, Reason, Rejection, excerpt};
use crate::pointer::Loc;
use crate::schema::{
    Kind, LOG_EXCERPT_MAX, MAX_ISSUE_VERSION, ObjectType, PREFIXES, statuses, top_level_lists,
};
use crate::version::{Declared, SchemaVersion, declared_version};

/// Validates `doc` against the schema of the version it declares (the latest schema when the
/// version is unknown, which then fails, as in kcidb-io).
///
/// Returns the declared version when the document is valid, else every problem found.
/// Documents of v1.x/v2.x are refused ([`Reason::ObsoleteVersion`]).
pub fn validate(doc: &Value) -> Result<SchemaVersion, Rejection> {
    let declared = declared_version(doc);
    let version = match declared {
        Declared::Known(v) => v,
        Declared::Unknown => SchemaVersion::LATEST,
        Declared::Obsolete { major, minor } => {
            return Err(Rejection::Schema {
                version: SchemaVersion::LATEST,
                problems: vec![Problem {
                    pointer: "/version".to_string(),
                    reason: Reason::ObsoleteVersion { major, minor },
                }],
            });
        }
    };
    let mut validator = Validator {
        version,
        problems: Vec::new(),
    };
    validator.document(doc);
    if declared == Declared::Unknown && validator.problems.is_empty() {
        // Every way of declaring an unknown version breaks a rule checked above; this is a
        // safety net so that an unknown version can never pass.
        validator.problems.push(Problem {
            pointer: "/version".to_string(),
            reason: Reason::Internal("unknown I/O schema version".to_string()),
        });
    }
    if validator.problems.is_empty() {
        Ok(version)
    } else {
        Err(Rejection::Schema {
            version,
            problems: validator.problems,
        })
    }
}

/// Validates `doc` against exactly the schema of `version` (kcidb-io's `validate_exactly`),
/// whatever it declares.
pub(crate) fn validate_exactly(doc: &Value, version: SchemaVersion) -> Vec<Problem> {
    let mut validator = Validator {
        version,
        problems: Vec::new(),
    };
    validator.document(doc);
    validator.problems
}

/// The rules, applied to a whole document or (by [`crate::stream`]) piece by piece.
pub(crate) struct Validator {
    pub(crate) version: SchemaVersion,
    pub(crate) problems: Vec<Problem>,
}

impl Validator {
    pub(crate) fn report(&mut self, loc: &Loc<'_>, reason: Reason) {
        self.problems.push(Problem {
            pointer: loc.pointer(),
            reason,
        });
    }

    pub(crate) fn wrong_type(&mut self, loc: &Loc<'_>, expected: JsonType, found: &Value) {
        let reason = match found {
            Value::Null => Reason::Null { expected },
            other => Reason::WrongType {
                expected,
                found: JsonType::of(other),
            },
        };
        self.report(loc, reason);
    }

    fn document(&mut self, doc: &Value) {
        let root = Loc::Root;
        let Some(map) = doc.as_object() else {
            self.wrong_type(&root, JsonType::Object, doc);
            return;
        };
        let lists = top_level_lists(self.version);
        for (key, value) in map {
            let at = root.key(key);
            if key == "version" {
                self.version_object(value, &at);
            } else if let Some((_, ty)) = lists.iter().find(|(name, _)| name == key) {
                self.array(value, &at, |this, item, loc| this.object(*ty, item, loc));
            } else {
                let property = key.clone();
                self.report(
                    &at,
                    Reason::Unknown {
                        property,
                        version: self.version,
                    },
                );
            }
        }
        if !map.contains_key("version") {
            self.report(
                &root,
                Reason::Missing {
                    property: "version",
                },
            );
        }
    }

    pub(crate) fn version_object(&mut self, value: &Value, loc: &Loc<'_>) {
        let Some(map) = value.as_object() else {
            self.wrong_type(loc, JsonType::Object, value);
            return;
        };
        for (key, value) in map {
            let at = loc.key(key);
            match key.as_str() {
                "major" => match value.as_u64() {
                    Some(m) if m == u64::from(self.version.major()) => {}
                    _ if !value.is_i64() && !value.is_u64() => {
                        self.wrong_type(&at, JsonType::Integer, value);
                    }
                    _ => self.report(
                        &at,
                        Reason::NotConst {
                            value: value.to_string(),
                            expected: u64::from(self.version.major()),
                            known: SchemaVersion::KNOWN_TEXT,
                        },
                    ),
                },
                "minor" => match value.as_u64() {
                    Some(m) if m <= u64::from(self.version.minor()) => {}
                    Some(_) => self.report(
                        &at,
                        Reason::AboveMaximum {
                            value: value.to_string(),
                            maximum: u64::from(self.version.minor()),
                        },
                    ),
                    None if value.is_i64() => self.report(
                        &at,
                        Reason::BelowMinimum {
                            value: value.to_string(),
                            minimum: 0,
                        },
                    ),
                    None => self.wrong_type(&at, JsonType::Integer, value),
                },
                other => {
                    let property = other.to_string();
                    self.report(
                        &at,
                        Reason::Unknown {
                            property,
                            version: self.version,
                        },
                    );
                }
            }
        }
        if !map.contains_key("major") {
            self.report(loc, Reason::Missing { property: "major" });
        }
    }

    fn array(
        &mut self,
        value: &Value,
        loc: &Loc<'_>,
        mut item: impl FnMut(&mut Self, &Value, &Loc<'_>),
    ) {
        let Some(items) = value.as_array() else {
            self.wrong_type(loc, JsonType::Array, value);
            return;
        };
        for (i, element) in items.iter().enumerate() {
            item(self, element, &loc.index(i));
        }
    }

    pub(crate) fn object(&mut self, ty: ObjectType, value: &Value, loc: &Loc<'_>) {
        let Some(map) = value.as_object() else {
            self.wrong_type(loc, JsonType::Object, value);
            return;
        };
        for (key, value) in map {
            let at = loc.key(key);
            match ty.field(key, self.version) {
                Some(field) => self.value(field.kind, value, &at),
                None => {
                    let property = key.clone();
                    self.report(
                        &at,
                        Reason::Unknown {
                            property,
                            version: self.version,
                        },
                    );
                }
            }
        }
        for field in ty.fields() {
            if field.required && field.exists_in(self.version) && !map.contains_key(field.name) {
                self.report(
                    loc,
                    Reason::Missing {
                        property: field.name,
                    },
                );
            }
        }
    }

    fn value(&mut self, kind: Kind, value: &Value, loc: &Loc<'_>) {
        if kind.is_string() {
            self.string(kind, value, loc);
            return;
        }
        match kind {
            Kind::Bool if !value.is_boolean() => self.wrong_type(loc, JsonType::Boolean, value),
            Kind::Number if !value.is_number() => self.wrong_type(loc, JsonType::Number, value),
            Kind::Count => self.count(value, loc),
            Kind::Misc => match value.as_object() {
                Some(map) => self.misc(map, loc),
                None => self.wrong_type(loc, JsonType::Object, value),
            },
            Kind::Object(ty) => self.object(ty, value, loc),
            Kind::List(item) => self.array(value, loc, |this, v, at| this.value(*item, v, at)),
            Kind::Status | Kind::Prefix => {
                let allowed = if kind == Kind::Status {
                    statuses(self.version)
                } else {
                    PREFIXES
                };
                match value.as_str() {
                    Some(s) if allowed.contains(&s) => {}
                    Some(s) => self.report(
                        loc,
                        Reason::NotInEnum {
                            value: excerpt(s),
                            allowed,
                        },
                    ),
                    None => self.wrong_type(loc, JsonType::String, value),
                }
            }
            _ => {}
        }
    }

    /// A string kind: its format, its pattern and (for log excerpts) its length.
    fn string(&mut self, kind: Kind, value: &Value, loc: &Loc<'_>) {
        let Some(s) = value.as_str() else {
            self.wrong_type(loc, JsonType::String, value);
            return;
        };
        if let Some(format) = kind.format() {
            self.check(
                s,
                loc,
                |t| format.matches(t),
                || Reason::Format {
                    format,
                    value: excerpt(s),
                },
            );
        }
        if let Some(rule) = kind.rule(self.version) {
            self.check(
                s,
                loc,
                |t| rule.matches(t),
                || Reason::Pattern {
                    rule,
                    value: excerpt(s),
                },
            );
        }
        if kind == Kind::LogExcerpt && s.len() > LOG_EXCERPT_MAX {
            let length = s.chars().count();
            if length > LOG_EXCERPT_MAX {
                self.report(
                    loc,
                    Reason::TooLong {
                        max: LOG_EXCERPT_MAX,
                        length,
                    },
                );
            }
        }
    }

    /// Reports `mismatch()` unless `s` is accepted; a value accepted only without its final
    /// line feed (which Python's `$` lets through) is reported as such.
    fn check(
        &mut self,
        s: &str,
        loc: &Loc<'_>,
        accepts: impl Fn(&str) -> bool,
        mismatch: impl FnOnce() -> Reason,
    ) {
        if accepts(s) {
            return;
        }
        let reason = if s.strip_suffix('\n').is_some_and(&accepts) {
            Reason::TrailingNewline { value: excerpt(s) }
        } else {
            mismatch()
        };
        self.report(loc, reason);
    }

    /// An integer of at least 0. Like Draft-07, a float with no fractional part (`1.0`)
    /// counts as an integer. Values above 2^31-1 are refused (stricter than kcidb-io).
    fn count(&mut self, value: &Value, loc: &Loc<'_>) {
        let Some(n) = value.as_number() else {
            self.wrong_type(loc, JsonType::Integer, value);
            return;
        };
        let (negative, too_large) = if let Some(u) = n.as_u64() {
            (false, u > MAX_ISSUE_VERSION as u64)
        } else if n.is_i64() {
            (true, false)
        } else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || !f.is_finite() {
                self.report(
                    loc,
                    Reason::WrongType {
                        expected: JsonType::Integer,
                        found: JsonType::Number,
                    },
                );
                return;
            }
            (f < 0.0, f > MAX_ISSUE_VERSION as f64)
        };
        if negative {
            self.report(
                loc,
                Reason::BelowMinimum {
                    value: n.to_string(),
                    minimum: 0,
                },
            );
        } else if too_large {
            self.report(
                loc,
                Reason::IntegerTooLarge {
                    value: n.to_string(),
                    max: MAX_ISSUE_VERSION,
                },
            );
        }
    }

    /// `misc` is free-form; we only refuse NUL characters in its keys and strings.
    fn misc(&mut self, map: &Map<String, Value>, loc: &Loc<'_>) {
        for (key, value) in map {
            let at = loc.key(key);
            if key.contains('\0') {
                self.report(&at, Reason::NulInMisc);
            }
            self.misc_value(value, &at);
        }
    }

    fn misc_value(&mut self, value: &Value, loc: &Loc<'_>) {
        match value {
            Value::String(s) if s.contains('\0') => self.report(loc, Reason::NulInMisc),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.misc_value(item, &loc.index(i));
                }
            }
            Value::Object(map) => self.misc(map, loc),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(doc: Value) -> Vec<(String, Reason)> {
        match validate(&doc) {
            Ok(_) => Vec::new(),
            Err(rejection) => rejection
                .problems()
                .iter()
                .map(|p| (p.pointer.clone(), p.reason.clone()))
                .collect(),
        }
    }

    fn pointers(doc: Value) -> Vec<String> {
        problems(doc).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn minimal_example_is_valid() {
        let doc = json!({"version":{"major":5,"minor":3},
         "checkouts":[{"id":"maestro:c1","origin":"maestro","tree_name":"mainline",
           "git_repository_url":"https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
           "git_commit_hash":"ef2b753c38bc9c0d1eea84e29a6bb6f9e776d0e3","patchset_hash":"",
           "start_time":"2025-01-01T00:00:00+00:00","valid":true}],
         "builds":[{"id":"maestro:b1","origin":"maestro","checkout_id":"maestro:c1",
           "architecture":"x86_64","status":"FAIL","log_url":"https://example.com/build.log"}],
         "tests":[{"id":"maestro:t1","origin":"maestro","build_id":"maestro:b1","path":"boot",
           "status":"PASS","environment":{"compatible":["ti,omap3"],"misc":{"platform":"beagle"}}}]});
        assert_eq!(validate(&doc), Ok(SchemaVersion::V5_3));
    }

    #[test]
    fn reports_every_problem() {
        let doc = json!({"version":{"major":5,"minor":3},
        "builds":[
            {"id":"maestro:b0","origin":"maestro","checkout_id":"maestro:c"},
            {"id":"Maestro:b1","origin":"maestro","checkout_id":"maestro:c","arch":"x"},
            {"id":"maestro:b2","checkout_id":"maestro:c","start_time":"yesterday",
             "status":"pass","duration":"1"}
        ]});
        assert_eq!(
            pointers(doc),
            [
                "/builds/1/id",
                "/builds/1/arch",
                "/builds/2/start_time",
                "/builds/2/status",
                "/builds/2/duration",
                "/builds/2",
            ]
        );
    }

    #[test]
    fn version_rules() {
        assert_eq!(pointers(json!({})), [""]);
        assert_eq!(
            pointers(json!({"version": {"major": 6}})),
            ["/version/major"]
        );
        assert_eq!(
            pointers(json!({"version": {"major": 5, "minor": 4}})),
            ["/version/minor"]
        );
        assert_eq!(pointers(json!({"version": "5.3"})), ["/version"]);
        assert_eq!(
            pointers(json!({"version": {"major": 5.0, "minor": 3}})),
            ["/version/major"]
        );
        assert_eq!(
            pointers(json!({"version": {"major": 5, "minor": 3, "x": 1}})),
            ["/version/x"]
        );
        assert_eq!(pointers(json!({"version": {"minor": 3}})), ["/version"]);
        assert_eq!(pointers(json!([{"version": {"major": 5}}])), [""]);
        assert_eq!(
            validate(&json!({"version": {"major": 5}})),
            Ok(SchemaVersion::V5_0)
        );
        let obsolete = problems(json!({"version": {"major": 2, "minor": 0}}));
        assert!(matches!(obsolete[0].1, Reason::ObsoleteVersion { .. }));
    }

    #[test]
    fn versions_gate_fields() {
        let doc = |v: Value| {
            json!({"version": v, "tests": [{"id": "a:1", "origin": "a", "build_id": "a:b",
                "input_files": [], "waived": true}]})
        };
        assert_eq!(
            pointers(doc(json!({"major": 5, "minor": 3}))),
            ["/tests/0/waived"]
        );
        assert_eq!(
            pointers(doc(json!({"major": 4, "minor": 5}))),
            ["/tests/0/input_files"]
        );
    }

    #[test]
    fn stricter_checks() {
        let base = |test: Value| json!({"version": {"major": 5, "minor": 3}, "tests": [test]});
        let p = problems(base(
            json!({"id": "a:1", "origin": "a\n", "build_id": "a:b"}),
        ));
        assert!(matches!(p[0].1, Reason::TrailingNewline { .. }));
        let p = problems(base(json!({"id": "a:1", "origin": "a", "build_id": "a:b",
            "misc": {"x": ["ok", {"k\u{0}": "v\u{0}"}]}})));
        let got: Vec<_> = p
            .iter()
            .map(|(ptr, r)| (ptr.as_str(), r.stricter_than_kcidb_io()))
            .collect();
        assert_eq!(
            got,
            [
                ("/tests/0/misc/x/1/k\u{0}", true),
                ("/tests/0/misc/x/1/k\u{0}", true)
            ]
        );
        let issue = |version: Value| {
            json!({"version": {"major": 5, "minor": 3},
                "issues": [{"id": "a:1", "origin": "a", "version": version}]})
        };
        assert!(pointers(issue(json!(2147483647))).is_empty());
        assert!(pointers(issue(json!(1.0))).is_empty());
        assert!(matches!(
            problems(issue(json!(2147483648u64)))[0].1,
            Reason::IntegerTooLarge { .. }
        ));
        assert!(matches!(
            problems(issue(json!(1.5)))[0].1,
            Reason::WrongType { .. }
        ));
        assert!(matches!(
            problems(issue(json!(-1)))[0].1,
            Reason::BelowMinimum { .. }
        ));
        assert!(matches!(
            problems(issue(json!(null)))[0].1,
            Reason::Null { .. }
        ));
    }

    #[test]
    fn null_is_never_allowed_outside_misc() {
        let doc = json!({"version": {"major": 5, "minor": 3},
            "tests": [{"id": "a:1", "origin": "a", "build_id": "a:b", "comment": null,
                "misc": {"n": null}}]});
        assert_eq!(pointers(doc), ["/tests/0/comment"]);
    }

    #[test]
    fn log_excerpt_counts_code_points() {
        let doc = |s: String| {
            json!({"version": {"major": 5, "minor": 3},
                "builds": [{"id": "a:1", "origin": "a", "checkout_id": "a:c", "log_excerpt": s}]})
        };
        assert!(pointers(doc("\u{1F600}".repeat(16384))).is_empty());
        assert_eq!(pointers(doc("x".repeat(16385))), ["/builds/0/log_excerpt"]);
    }
}
