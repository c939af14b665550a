//! The callback's results as the node tree the pipeline writes with `PUT /nodes/{id}`
//! (upstream's `Callback.get_results` + `get_hierarchy` + `submit_results`, specs/
//! pipeline.md §5.3.4-5.4).
//!
//! - Suite `lava` → a `setup` job with the tests `login` (pass if any `auto-login-action` or
//!   `login-action` case passed, else fail) and `kernelmsg` (fail if any `kernel-messages`
//!   case failed, else pass), each only when such cases exist; no `setup` when neither.
//! - Suite `<n>_<name>` → a job `<name>` with a test per case; cases with `metadata.set` go
//!   under a job named after the set. The first case of a name wins; children keep the order
//!   of first appearance (upstream's reversed walk lists them backwards). Two suites with
//!   the same `<name>` (one test definition run twice): the later replaces the earlier at
//!   the earlier's place, as upstream's dict does.
//! - Suite `upload` is not a node: its cases are artifacts ([`Callback::upload_artifacts`]).
//! - A job's result is that of the `lava` suite case named `<m>_<job name>` (the last such
//!   one); when there is none, or it is `pass`, it is computed from the children: `fail` if
//!   any fails, else `pass` if any passes, else `skip` if any is skipped, else null.
//! - LAVA results map to node results: `pass`, `fail`, `skip` as they are; `unknown` (and
//!   anything else) null.
//! - Measurements: a test case with a `measurement` (not LAVA's `None`) gets
//!   `data.misc.measurement` (a number when it reads as one, else the text) and
//!   `data.misc.unit` when LAVA gives one. Upstream only copies `0_tast`'s `os-release`
//!   measurement onto tests named `os-release`; here every test carries its own.
//!
//! The root (the job node) gets: the result (Incomplete/Canceled → `incomplete` with
//! `data.error_code`/`error_msg` from [`Callback::failure`]; an incomplete job whose name
//! contains `baseline`, whose error is not `Infrastructure` and whose `setup` failed →
//! `fail`; a passed job with a failed suite → `fail`, with a failed `setup` →
//! `incomplete`), `state: done`, `data.device`, the upload artifacts merged into
//! `artifacts`, `processed_by_kcidb_bridge: false`, and a `node_timeout` error cleared when
//! the result is not `incomplete`. Every child has `name`, `kind` (`job` for suites and
//! sets, `test` for cases), `state: done`, `result`, `path` (the parent's + its name),
//! `group` (the root's name) and the root's `kernel_revision`, `kernel_type`, `arch`,
//! `defconfig`, `config_full`, `compiler`, `platform`, `runtime` in `data`.
//!
//! Linear in the number of cases: name lookups go through hash maps.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::results::{TestCase, after_first_underscore};
use super::{Callback, DEFAULT_ERROR_CODE};

/// Keys of the root's `data` every child inherits (upstream `submit_results`).
const INHERITED: [&str; 8] = [
    "kernel_revision",
    "kernel_type",
    "arch",
    "defconfig",
    "config_full",
    "compiler",
    "platform",
    "runtime",
];

/// An ordered name → item map with "insert only if new" and "replace in place".
struct Group<'a> {
    items: Vec<(String, Item<'a>)>,
    index: HashMap<String, usize>,
}

enum Item<'a> {
    Test(Option<&'a str>, Option<&'a TestCase>),
    Group(Group<'a>),
}

impl<'a> Group<'a> {
    fn new() -> Self {
        Group {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn insert_if_new(&mut self, name: &str, item: Item<'a>) {
        if !self.index.contains_key(name) {
            self.index.insert(name.to_string(), self.items.len());
            self.items.push((name.to_string(), item));
        }
    }

    fn replace(&mut self, name: &str, item: Item<'a>) {
        match self.index.get(name) {
            Some(&i) => {
                if let Some(slot) = self.items.get_mut(i) {
                    slot.1 = item;
                }
            }
            None => {
                self.index.insert(name.to_string(), self.items.len());
                self.items.push((name.to_string(), item));
            }
        }
    }

    fn set_group(&mut self, name: &str) -> Option<&mut Group<'a>> {
        if !self.index.contains_key(name) {
            self.insert_if_new(name, Item::Group(Group::new()));
        }
        let i = *self.index.get(name)?;
        match self.items.get_mut(i) {
            Some((_, Item::Group(g))) => Some(g),
            // The name is already a test: the set's cases are dropped (first one wins).
            _ => None,
        }
    }
}

/// A suite's cases as a group: sets nested, first occurrence of a name wins.
fn suite_group(cases: &[TestCase]) -> Group<'_> {
    let mut group = Group::new();
    for case in cases {
        let item = Item::Test(case.result.as_deref(), Some(case));
        match case.set.as_deref() {
            Some(set) => {
                if let Some(g) = group.set_group(set) {
                    g.insert_if_new(&case.name, item);
                }
            }
            None => group.insert_if_new(&case.name, item),
        }
    }
    group
}

/// The `setup` group from the `lava` suite, `None` when it has neither login nor
/// kernel-messages cases.
fn setup_group(cases: &[TestCase]) -> Option<Group<'_>> {
    let (mut login_seen, mut login_pass) = (false, false);
    let (mut kmsg_seen, mut kmsg_fail) = (false, false);
    for case in cases {
        let result = case.result.as_deref();
        match case.name.as_str() {
            "auto-login-action" | "login-action" => {
                login_seen = true;
                login_pass |= result == Some("pass");
            }
            "kernel-messages" => {
                kmsg_seen = true;
                kmsg_fail |= result == Some("fail");
            }
            _ => {}
        }
    }
    if !login_seen && !kmsg_seen {
        return None;
    }
    let mut group = Group::new();
    if login_seen {
        let r = if login_pass { "pass" } else { "fail" };
        group.insert_if_new("login", Item::Test(Some(r), None));
    }
    if kmsg_seen {
        let r = if kmsg_fail { "fail" } else { "pass" };
        group.insert_if_new("kernelmsg", Item::Test(Some(r), None));
    }
    Some(group)
}

/// LAVA result → node result.
fn node_result(lava: Option<&str>) -> Option<&'static str> {
    match lava {
        Some("pass") => Some("pass"),
        Some("fail") => Some("fail"),
        Some("skip") => Some("skip"),
        _ => None,
    }
}

/// upstream's `evaluate_test_suite_result`.
fn evaluate(children: &[Option<&'static str>]) -> Option<&'static str> {
    ["fail", "pass", "skip"]
        .into_iter()
        .find(|r| children.contains(&Some(*r)))
}

struct Builder<'a> {
    /// `lava` suite case results by the text after their first `_` (last one wins, in the
    /// order of the cases' first appearance, as upstream's stage dict gives).
    stages: HashMap<&'a str, Option<&'a str>>,
    inherited: Map<String, Value>,
    group_name: Value,
}

impl<'a> Builder<'a> {
    fn new(callback: &'a Callback, root: &Value) -> Builder<'a> {
        // Upstream: `{stage['name']: stage}` (first position, last value), then every
        // stage whose suffix matches, in dict order, the last winning.
        let mut by_name: Vec<(&str, Option<&str>)> = Vec::new();
        let mut position: HashMap<&str, usize> = HashMap::new();
        for suite in callback.suites.iter().filter(|s| s.name == "lava") {
            for case in &suite.cases {
                let result = case.result.as_deref();
                match position.get(case.name.as_str()) {
                    Some(&i) => {
                        if let Some(slot) = by_name.get_mut(i) {
                            slot.1 = result;
                        }
                    }
                    None => {
                        position.insert(&case.name, by_name.len());
                        by_name.push((&case.name, result));
                    }
                }
            }
        }
        let mut stages = HashMap::new();
        for (name, result) in by_name {
            stages.insert(after_first_underscore(name), result);
        }
        let mut inherited = Map::new();
        for key in INHERITED {
            if let Some(v) = root["data"].get(key).filter(|v| !v.is_null()) {
                inherited.insert(key.to_string(), v.clone());
            }
        }
        Builder {
            stages,
            inherited,
            group_name: root["name"].clone(),
        }
    }

    /// A job node for `group` and its result.
    fn job(
        &self,
        name: &str,
        group: &Group<'_>,
        parent_path: &[Value],
    ) -> (Value, Option<&'static str>) {
        let mut path = parent_path.to_vec();
        path.push(Value::String(name.to_string()));
        let mut children = Vec::with_capacity(group.items.len());
        let mut results = Vec::with_capacity(group.items.len());
        for (child_name, item) in &group.items {
            let (node, result) = match item {
                Item::Test(result, case) => self.test(child_name, *result, *case, &path),
                Item::Group(g) => self.job(child_name, g, &path),
            };
            children.push(node);
            results.push(result);
        }
        let result = match self.stages.get(name).copied().flatten() {
            Some(stage) if !stage.is_empty() && stage != "pass" => node_result(Some(stage)),
            _ => evaluate(&results),
        };
        (self.node(name, "job", result, path, None, children), result)
    }

    fn test(
        &self,
        name: &str,
        lava_result: Option<&str>,
        case: Option<&TestCase>,
        parent_path: &[Value],
    ) -> (Value, Option<&'static str>) {
        let mut path = parent_path.to_vec();
        path.push(Value::String(name.to_string()));
        let result = node_result(lava_result);
        let misc = case.and_then(measurement_misc);
        (
            self.node(name, "test", result, path, misc, Vec::new()),
            result,
        )
    }

    fn node(
        &self,
        name: &str,
        kind: &str,
        result: Option<&str>,
        path: Vec<Value>,
        misc: Option<Map<String, Value>>,
        children: Vec<Value>,
    ) -> Value {
        let mut data = self.inherited.clone();
        if let Some(misc) = misc {
            data.insert("misc".into(), Value::Object(misc));
        }
        json!({
            "node": {
                "name": name,
                "kind": kind,
                "state": "done",
                "result": result,
                "path": path,
                "group": self.group_name,
                "data": data,
            },
            "child_nodes": children,
        })
    }
}

fn measurement_misc(case: &TestCase) -> Option<Map<String, Value>> {
    let text = case.measurement.as_deref()?;
    let mut misc = Map::new();
    let number = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64);
    misc.insert(
        "measurement".into(),
        number.map_or_else(|| Value::String(text.to_string()), Value::Number),
    );
    if let Some(unit) = &case.unit {
        misc.insert("unit".into(), Value::String(unit.clone()));
    }
    Some(misc)
}

impl Callback {
    /// The `PUT /nodes/{id}` body for job node `node` (as read from the API):
    /// `{"node": <the updated job node>, "child_nodes": [...]}`; see the module docs for
    /// every rule. `node` itself is not changed.
    pub fn hierarchy(&self, node: &Value) -> Value {
        let mut root = match node {
            Value::Object(_) => node.clone(),
            _ => Value::Object(Map::new()),
        };
        if !root["data"].is_object() {
            root["data"] = Value::Object(Map::new());
        }
        if !root["artifacts"].is_object() {
            root["artifacts"] = Value::Object(Map::new());
        }

        // The results dict: `setup` from `lava`, the other suites by short name.
        let mut top = Group::new();
        for suite in &self.suites {
            if suite.name == "lava" {
                if let Some(setup) = setup_group(&suite.cases) {
                    top.replace("setup", Item::Group(setup));
                }
            } else {
                top.replace(suite.short_name(), Item::Group(suite_group(&suite.cases)));
            }
        }
        if let Some(i) = top.index.remove("upload") {
            top.items.remove(i);
        }

        let builder = Builder::new(self, &root);
        let root_path: Vec<Value> = root["path"].as_array().cloned().unwrap_or_default();
        let mut children = Vec::with_capacity(top.items.len());
        let mut suite_results = Vec::with_capacity(top.items.len());
        for (name, item) in &top.items {
            let (child, result) = match item {
                Item::Group(g) => builder.job(name, g, &root_path),
                Item::Test(result, case) => builder.test(name, *result, *case, &root_path),
            };
            children.push(child);
            suite_results.push((name.as_str(), result));
        }

        let initial = self.job_result();
        let mut result = initial;
        let mut error_code: Option<String> =
            root["data"]["error_code"].as_str().map(str::to_string);
        if initial == Some("incomplete") {
            let failure = self.failure();
            root["data"]["error_code"] = Value::String(failure.code.clone());
            root["data"]["error_msg"] = failure.message.map_or(Value::Null, Value::String);
            let name = root["name"].as_str().unwrap_or_default();
            let setup_failed = suite_results
                .iter()
                .any(|(n, r)| *n == "setup" && *r == Some("fail"));
            if failure.code != DEFAULT_ERROR_CODE && name.contains("baseline") && setup_failed {
                result = Some("fail");
            }
            error_code = Some(failure.code);
        }
        if initial == Some("pass") {
            for (name, r) in &suite_results {
                if *r == Some("fail") {
                    if *name == "setup" {
                        result = Some("incomplete");
                        break;
                    }
                    result = Some("fail");
                }
            }
        }
        if result != Some("incomplete")
            && error_code.as_deref() == Some("node_timeout")
            && let Some(data) = root["data"].as_object_mut()
        {
            data.remove("error_code");
            data.remove("error_msg");
        }

        root["result"] = result.map_or(Value::Null, |r| Value::String(r.into()));
        root["state"] = "done".into();
        if let Some(device) = self.device() {
            root["data"]["device"] = device.into();
        }
        if let Some(artifacts) = root["artifacts"].as_object_mut() {
            artifacts.extend(self.upload_artifacts());
        }
        root["processed_by_kcidb_bridge"] = false.into();
        json!({"node": root, "child_nodes": children})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluate_follows_upstream_order() {
        assert_eq!(evaluate(&[Some("pass"), Some("fail")]), Some("fail"));
        assert_eq!(evaluate(&[Some("skip"), Some("pass")]), Some("pass"));
        assert_eq!(evaluate(&[Some("skip"), None]), Some("skip"));
        assert_eq!(evaluate(&[None]), None);
        assert_eq!(evaluate(&[]), None);
    }

    #[test]
    fn sets_nest_and_first_case_wins() {
        let case = |name: &str, result: &str, set: Option<&str>| TestCase {
            name: name.into(),
            result: Some(result.into()),
            set: set.map(str::to_string),
            ..TestCase::default()
        };
        let cases = vec![
            case("a", "pass", None),
            case("x", "fail", Some("s1")),
            case("a", "fail", None),
            case("y", "pass", Some("s1")),
            case("x", "pass", Some("s1")),
            case("a", "pass", Some("a")),
        ];
        let group = suite_group(&cases);
        let names: Vec<&str> = group.items.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "s1"]);
        match &group.items[0].1 {
            Item::Test(r, _) => assert_eq!(*r, Some("pass")),
            Item::Group(_) => panic!("a is a test"),
        }
        match &group.items[1].1 {
            Item::Group(g) => {
                let inner: Vec<(&str, Option<&str>)> = g
                    .items
                    .iter()
                    .map(|(n, i)| match i {
                        Item::Test(r, _) => (n.as_str(), *r),
                        Item::Group(_) => (n.as_str(), None),
                    })
                    .collect();
                assert_eq!(inner, [("x", Some("fail")), ("y", Some("pass"))]);
            }
            Item::Test(..) => panic!("s1 is a set"),
        }
    }

    #[test]
    fn measurements() {
        let mut case = TestCase {
            name: "t".into(),
            measurement: Some("10.5000000000".into()),
            unit: Some("ms".into()),
            ..TestCase::default()
        };
        assert_eq!(
            Value::Object(measurement_misc(&case).unwrap()),
            json!({"measurement": 10.5, "unit": "ms"})
        );
        case.measurement = Some("Debian 12".into());
        case.unit = None;
        assert_eq!(
            Value::Object(measurement_misc(&case).unwrap()),
            json!({"measurement": "Debian 12"})
        );
        case.measurement = None;
        assert!(measurement_misc(&case).is_none());
    }
}
