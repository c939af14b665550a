//! `should_create_node`: scheduling rules (pipeline spec §2.10), with a reason for every
//! denial (upstream only prints its decisions with `KCI_DEBUG`).
//!
//! Rules are a mapping from a key to a list of values; `!value` denies, other values allow:
//!
//! - `tree` / `branch` are evaluated first, on the first mapping holding a `tree` key (found
//!   depth-first in the node, then in its ancestors: normally `data.kernel_revision`). Entries
//!   may be `tree:branch` combinations. For `tree` then `branch`: an allowed combination
//!   matching the node's tree and branch accepts the tree/branch rules at once; a denied
//!   combination matching rejects; then the value is rejected if denied, or if only
//!   combinations (no plain allowed value) are listed, or if plain allowed values are listed
//!   and it is not one of them. No mapping with `tree` anywhere: tree/branch rules are skipped.
//! - Keys ending in `_version` (`min_version`, `max_version`): `{version, patchlevel}` compared
//!   with the node's own `data.kernel_revision.version` (major, then minor).
//! - Any other key: the first mapping holding the key, depth-first in the node (a key whose
//!   value is a mapping is searched into, not matched), else in its ancestors, nearest first.
//!   Not found: rejected if the rule allows some values, else accepted. A list value is
//!   rejected if any item is denied, or if allowed values are listed and no item is one of
//!   them; another value is rejected if denied, or if allowed values are listed and it is not
//!   one of them.
//!
//! Keys are checked in the rules' order; the first rejection is the decision. `rules: null`
//! allows everything.
//!
//! Where this is stricter than upstream, which raises or misbehaves: a rule value that is a
//! single string is read as a one-item list (upstream iterates its characters); rules that
//! are not a mapping, a missing node version for a version rule, and malformed version rules
//! deny with a reason (upstream raises an exception); non-string entries are compared as
//! values and never deny.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use thiserror::Error;

/// The outcome of a rule evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create the node.
    Allow,
    /// Do not create it, and why.
    Deny(String),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// The denial reason, if denied.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Allow => None,
            Decision::Deny(r) => Some(r),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow => f.write_str("allowed"),
            Decision::Deny(r) => write!(f, "denied: {r}"),
        }
    }
}

/// A parent node could not be fetched.
#[derive(Debug, Clone, Error)]
#[error("{0}")]
pub struct LookupError(pub String);

/// Finds a node's parent (the app implements it with API calls or a cache).
pub trait AncestorLookup {
    /// The parent node of `node`, `None` for a root (or a node without `parent`).
    fn parent(&self, node: &Value) -> Result<Option<Value>, LookupError>;
}

/// No ancestors: only the node itself is searched.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAncestors;

impl AncestorLookup for NoAncestors {
    fn parent(&self, _node: &Value) -> Result<Option<Value>, LookupError> {
        Ok(None)
    }
}

/// Ancestors from an in-memory set of nodes keyed by `id` (tests, caches).
#[derive(Debug, Clone, Default)]
pub struct NodeMap(pub HashMap<String, Value>);

impl NodeMap {
    /// Builds the map from nodes carrying an `id`.
    pub fn from_nodes<I: IntoIterator<Item = Value>>(nodes: I) -> Self {
        NodeMap(
            nodes
                .into_iter()
                .filter_map(|n| Some((n.get("id")?.as_str()?.to_string(), n)))
                .collect(),
        )
    }
}

impl AncestorLookup for NodeMap {
    fn parent(&self, node: &Value) -> Result<Option<Value>, LookupError> {
        Ok(node
            .get("parent")
            .and_then(Value::as_str)
            .and_then(|id| self.0.get(id))
            .cloned())
    }
}

impl<F> AncestorLookup for F
where
    F: Fn(&Value) -> Result<Option<Value>, LookupError>,
{
    fn parent(&self, node: &Value) -> Result<Option<Value>, LookupError> {
        self(node)
    }
}

/// How many ancestors are searched at most (guards against cycles).
const MAX_ANCESTORS: usize = 64;

/// The node and its ancestors, fetched lazily.
struct Lineage<'a> {
    node: &'a Value,
    lookup: &'a dyn AncestorLookup,
    fetched: Vec<Value>,
    exhausted: bool,
}

/// Where a key was found.
struct Found<'v> {
    container: &'v Map<String, Value>,
    /// 0 = the node, 1 = its parent, ...
    generation: usize,
    /// Dotted path of the container inside that node.
    path: String,
}

impl Found<'_> {
    fn describe(&self, key: &str) -> String {
        let field = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        match self.generation {
            0 => format!("`{field}` of the node"),
            1 => format!("`{field}` of its parent"),
            n => format!("`{field}` of ancestor {n} levels up"),
        }
    }
}

impl<'a> Lineage<'a> {
    fn new(node: &'a Value, lookup: &'a dyn AncestorLookup) -> Self {
        Lineage {
            node,
            lookup,
            fetched: Vec::new(),
            exhausted: false,
        }
    }

    /// Fetches one more ancestor; false when there is none.
    fn fetch_next(&mut self) -> Result<bool, String> {
        if self.exhausted || self.fetched.len() >= MAX_ANCESTORS {
            return Ok(false);
        }
        let last = self.fetched.last().unwrap_or(self.node);
        let parent = self
            .lookup
            .parent(last)
            .map_err(|e| format!("cannot fetch the parent of node {}: {e}", node_label(last)))?;
        match parent {
            Some(p) => {
                let id = p.get("id");
                let seen = id.is_some()
                    && (self.node.get("id") == id
                        || self.fetched.iter().any(|f| f.get("id") == id));
                if seen {
                    self.exhausted = true;
                    return Ok(false);
                }
                self.fetched.push(p);
                Ok(true)
            }
            None => {
                self.exhausted = true;
                Ok(false)
            }
        }
    }

    /// The first mapping holding `key`, in the node then its ancestors.
    fn find(&mut self, key: &str) -> Result<Option<Found<'_>>, String> {
        // Fetch ancestors only as far as needed; then borrow immutably.
        let mut generation = 0;
        loop {
            let v = if generation == 0 {
                self.node
            } else {
                match self.fetched.get(generation - 1) {
                    Some(v) => v,
                    None => {
                        if !self.fetch_next()? {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            };
            if find_container(key, v, &mut Vec::new()).is_some() {
                break;
            }
            generation += 1;
        }
        let v = if generation == 0 {
            self.node
        } else {
            &self.fetched[generation - 1]
        };
        let mut path = Vec::new();
        Ok(find_container(key, v, &mut path).map(|container| Found {
            container,
            generation,
            path: path.join("."),
        }))
    }
}

fn node_label(node: &Value) -> String {
    match (
        node.get("id").and_then(Value::as_str),
        node.get("name").and_then(Value::as_str),
    ) {
        (Some(id), Some(name)) => format!("{id} ({name})"),
        (Some(id), None) => id.to_string(),
        (None, Some(name)) => name.to_string(),
        (None, None) => "<no id>".to_string(),
    }
}

/// Upstream `_find_container`: depth-first in key order; a mapping value is searched into
/// (and never matched itself), another value matches when its key is `field`.
fn find_container<'v>(
    field: &str,
    node: &'v Value,
    path: &mut Vec<String>,
) -> Option<&'v Map<String, Value>> {
    let map = node.as_object()?;
    for (k, v) in map {
        if v.is_object() {
            path.push(k.clone());
            if let Some(found) = find_container(field, v, path) {
                return Some(found);
            }
            path.pop();
        } else if k == field {
            return Some(map);
        }
    }
    None
}

/// A rule's entries: a list, or a single string read as a one-item list.
fn entries(rule: &Value) -> Vec<&Value> {
    match rule {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Plain allow/deny lists of a rule.
fn allow_deny(rule: &Value) -> (Vec<Value>, Vec<String>) {
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    for e in entries(rule) {
        match e.as_str() {
            Some(s) if s.starts_with('!') => deny.push(s.trim_start_matches('!').to_string()),
            _ => allow.push(e.clone()),
        }
    }
    (allow, deny)
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_list(values: &[Value]) -> String {
    let items: Vec<String> = values.iter().map(show).collect();
    format!("[{}]", items.join(", "))
}

fn is_denied(v: &Value, deny: &[String]) -> bool {
    v.as_str().is_some_and(|s| deny.iter().any(|d| d == s))
}

/// Decides whether a node may be created under `rules` (pipeline spec §2.10).
///
/// `node` is the node evaluated (the candidate child for job, runtime and platform rules;
/// the input node for scheduler-entry rules); `ancestors` gives its parent, grandparent, ...
/// and is only called when a key is not found closer.
pub fn should_create_node(rules: &Value, node: &Value, ancestors: &dyn AncestorLookup) -> Decision {
    match evaluate(rules, node, ancestors) {
        Ok(()) => Decision::Allow,
        Err(reason) => Decision::Deny(reason),
    }
}

fn evaluate(rules: &Value, node: &Value, ancestors: &dyn AncestorLookup) -> Result<(), String> {
    let rules = match rules {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        other => return Err(format!("rules must be a mapping, found {other}")),
    };
    let mut lineage = Lineage::new(node, ancestors);

    if (rules.contains_key("tree") || rules.contains_key("branch"))
        && let Some(found) = lineage.find("tree")?
    {
        tree_branch(rules, found.container)?;
    }

    for (key, rule) in rules {
        if key == "tree" || key == "branch" {
            continue;
        }
        if key.ends_with("_version") {
            version_rule(key, rule, node)?;
            continue;
        }
        let (allow, deny) = allow_deny(rule);
        let Some(found) = lineage.find(key)? else {
            if allow.is_empty() {
                continue;
            }
            return Err(format!(
                "rule `{key}`: the node and its ancestors have no `{key}`, and the rule \
                 requires one of {}",
                show_list(&allow)
            ));
        };
        let where_ = found.describe(key);
        let value = found.container.get(key).unwrap_or(&Value::Null);
        match value {
            Value::Array(items) => {
                for item in items {
                    if is_denied(item, &deny) {
                        return Err(format!(
                            "rule `{key}`: {where_} contains `{}`, denied by `!{}`",
                            show(item),
                            show(item)
                        ));
                    }
                }
                if !allow.is_empty() && !items.iter().any(|i| allow.contains(i)) {
                    return Err(format!(
                        "rule `{key}`: {where_} is {}, which has none of {}",
                        show_list(items),
                        show_list(&allow)
                    ));
                }
            }
            v => {
                if is_denied(v, &deny) {
                    return Err(format!(
                        "rule `{key}`: {where_} is `{}`, denied by `!{}`",
                        show(v),
                        show(v)
                    ));
                }
                if !allow.is_empty() && !allow.contains(v) {
                    return Err(format!(
                        "rule `{key}`: {where_} is `{}`, not one of {}",
                        show(v),
                        show_list(&allow)
                    ));
                }
            }
        }
    }
    Ok(())
}

struct Combo {
    tree: String,
    branch: String,
}

/// Upstream `_is_tree_branch_allowed`, on the mapping holding `tree` (and `branch`).
fn tree_branch(rules: &Map<String, Value>, base: &Map<String, Value>) -> Result<(), String> {
    let node_tree = base.get("tree").unwrap_or(&Value::Null);
    let node_branch = base.get("branch").unwrap_or(&Value::Null);
    let matches = |c: &Combo| {
        node_tree.as_str() == Some(c.tree.as_str())
            && node_branch.as_str() == Some(c.branch.as_str())
    };
    for key in ["tree", "branch"] {
        let Some(rule) = rules.get(key) else {
            continue;
        };
        let mut allow: Vec<Value> = Vec::new();
        let mut allow_combos: Vec<Combo> = Vec::new();
        let mut deny: Vec<String> = Vec::new();
        let mut deny_combos: Vec<Combo> = Vec::new();
        for e in entries(rule) {
            let Some(s) = e.as_str() else {
                allow.push(e.clone());
                continue;
            };
            if let Some((tree, branch)) = s.split_once(':') {
                if tree.starts_with('!') {
                    deny_combos.push(Combo {
                        tree: tree.trim_start_matches('!').to_string(),
                        branch: branch.to_string(),
                    });
                } else {
                    allow_combos.push(Combo {
                        tree: tree.to_string(),
                        branch: branch.to_string(),
                    });
                }
            } else if s.starts_with('!') {
                deny.push(s.trim_start_matches('!').to_string());
            } else {
                allow.push(e.clone());
            }
        }
        if allow_combos.iter().any(matches) {
            // An allowed combination settles both tree and branch.
            return Ok(());
        }
        if let Some(c) = deny_combos.iter().find(|c| matches(c)) {
            return Err(format!(
                "rule `{key}`: tree/branch combination `{}:{}` is denied",
                c.tree, c.branch
            ));
        }
        let value = if key == "tree" {
            node_tree
        } else {
            node_branch
        };
        if is_denied(value, &deny) {
            return Err(format!(
                "rule `{key}`: {key} `{}` is denied by `!{}`",
                show(value),
                show(value)
            ));
        }
        if allow.is_empty() && !allow_combos.is_empty() {
            let combos: Vec<String> = allow_combos
                .iter()
                .map(|c| format!("{}:{}", c.tree, c.branch))
                .collect();
            return Err(format!(
                "rule `{key}`: tree/branch `{}:{}` is not one of the allowed combinations [{}]",
                show(node_tree),
                show(node_branch),
                combos.join(", ")
            ));
        }
        if !allow.is_empty() && !allow.contains(value) {
            return Err(format!(
                "rule `{key}`: {key} `{}` is not one of {}",
                show(value),
                show_list(&allow)
            ));
        }
    }
    Ok(())
}

/// `min_version` / `max_version` against the node's `data.kernel_revision.version`.
fn version_rule(key: &str, rule: &Value, node: &Value) -> Result<(), String> {
    let is_min = key.starts_with("min");
    let is_max = key.starts_with("max");
    if !is_min && !is_max {
        return Ok(()); // upstream checks nothing for other `*_version` keys
    }
    let rule_major = rule.get("version").and_then(Value::as_i64);
    let rule_minor = rule.get("patchlevel").and_then(Value::as_i64);
    let (Some(rule_major), Some(rule_minor)) = (rule_major, rule_minor) else {
        return Err(format!(
            "rule `{key}`: expected {{version: <int>, patchlevel: <int>}}, found {rule}"
        ));
    };
    let kver = node.pointer("/data/kernel_revision/version");
    let major = kver.and_then(|v| v.get("version")).and_then(Value::as_i64);
    let minor = kver
        .and_then(|v| v.get("patchlevel"))
        .and_then(Value::as_i64);
    let (Some(major), Some(minor)) = (major, minor) else {
        return Err(format!(
            "rule `{key}`: the node has no data.kernel_revision.version \
             {{version, patchlevel}} to compare with {rule_major}.{rule_minor}"
        ));
    };
    if is_min && (major, minor) < (rule_major, rule_minor) {
        return Err(format!(
            "rule `{key}`: version {major}.{minor} is older than the minimum \
             {rule_major}.{rule_minor}"
        ));
    }
    if is_max && (major, minor) > (rule_major, rule_minor) {
        return Err(format!(
            "rule `{key}`: version {major}.{minor} is more recent than the maximum \
             {rule_major}.{rule_minor}"
        ));
    }
    Ok(())
}
