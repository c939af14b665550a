//! Ancestors of a node, fetched from the API once and then served to the pure rule
//! evaluator (which looks fields up through ancestors synchronously).

use std::collections::HashMap;
use std::ops::ControlFlow;

use serde_json::Value;

use crate::client::ApiClient;

/// Fetches ancestor chains.
pub struct Ancestors<'a> {
    api: &'a ApiClient,
}

/// A node's ancestors by id, ready for [`kernelci_sched::rules::AncestorLookup`].
#[derive(Debug, Default, Clone)]
pub struct Chain {
    by_id: HashMap<String, Value>,
}

impl<'a> Ancestors<'a> {
    /// Over `api`.
    pub fn new(api: &'a ApiClient) -> Ancestors<'a> {
        Ancestors { api }
    }

    /// Every ancestor of `node` (at most 64 levels; a missing parent ends the chain).
    pub async fn prefetch(&self, node: &Value) -> Chain {
        let mut chain = Chain::default();
        self.prefetch_into(&mut chain, node).await;
        chain
    }

    /// Add the ancestors of `node` to `chain`, stopping at the first one it already holds
    /// (siblings share their ancestors: each is fetched once).
    pub async fn prefetch_into(&self, chain: &mut Chain, node: &Value) {
        let mut next = node["parent"].as_str().map(String::from);
        for _ in 0..64 {
            let Some(id) = next.take() else { break };
            if chain.by_id.contains_key(&id) {
                break;
            }
            match self.api.node(&id).await {
                Ok(Some(parent)) => {
                    next = parent["parent"].as_str().map(String::from);
                    chain.by_id.insert(id, parent);
                }
                _ => break,
            }
        }
    }

    /// The nearest ancestor of `node` (itself included) whose `kind` is one of `kinds`.
    pub async fn nearest(&self, node: &Value, kinds: &[&str]) -> Option<Value> {
        if kinds.iter().any(|k| node["kind"] == *k) {
            return Some(node.clone());
        }
        self.prefetch(node).await.nearest(node, kinds)
    }
}

/// Visit the nodes below `id`, depth first (children through `GET nodes/fast?parent=`),
/// until `visit` breaks; at most `limit` nodes (an error beyond). `Break` if `visit` stopped.
pub async fn walk_descendants(
    api: &ApiClient,
    id: &str,
    limit: usize,
    mut visit: impl FnMut(&Value) -> ControlFlow<()>,
) -> anyhow::Result<ControlFlow<()>> {
    let mut frontier = vec![id.to_string()];
    let mut seen = 0usize;
    while let Some(parent) = frontier.pop() {
        for child in api.find(&[("parent", parent)]).await? {
            if visit(&child).is_break() {
                return Ok(ControlFlow::Break(()));
            }
            if let Some(cid) = child["id"].as_str() {
                frontier.push(cid.to_string());
            }
            seen += 1;
            if seen > limit {
                anyhow::bail!("more than {limit} descendants under {id}");
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

impl Chain {
    /// Add a node (e.g. the parent of a node not created yet).
    pub fn insert(&mut self, node: Value) {
        if let Some(id) = node["id"].as_str() {
            self.by_id.insert(id.to_string(), node);
        }
    }

    /// The node with this id, if fetched.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.by_id.get(id)
    }

    /// The nearest node of `node`'s ancestry in this chain (itself included) whose `kind`
    /// is one of `kinds`.
    pub fn nearest(&self, node: &Value, kinds: &[&str]) -> Option<Value> {
        if kinds.iter().any(|k| node["kind"] == *k) {
            return Some(node.clone());
        }
        let mut cur = node["parent"].as_str().map(String::from);
        while let Some(id) = cur {
            let n = self.by_id.get(&id)?;
            if kinds.iter().any(|k| n["kind"] == *k) {
                return Some(n.clone());
            }
            cur = n["parent"].as_str().map(String::from);
        }
        None
    }
}

impl kernelci_sched::rules::AncestorLookup for Chain {
    fn parent(&self, node: &Value) -> Result<Option<Value>, kernelci_sched::rules::LookupError> {
        Ok(node["parent"]
            .as_str()
            .and_then(|id| self.by_id.get(id).cloned()))
    }
}
