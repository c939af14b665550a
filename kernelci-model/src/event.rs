//! Events: the node event payload and the CloudEvent envelope, serialized exactly as the
//! upstream API does (Python `json.dumps` separators, ASCII escapes, key order).

use serde_json::{Map, Value};

use crate::node::{Node, NodeResult, State};
use crate::time::{self, Timestamp};

/// The CloudEvent `type` used when a publisher gives none.
pub const DEFAULT_EVENT_TYPE: &str = "api.kernelci.org";
/// The CloudEvent `source` used when none is configured.
pub const DEFAULT_EVENT_SOURCE: &str = "https://api.kernelci.org/";
/// The channel node events are published on.
pub const NODE_CHANNEL: &str = "node";
/// The keep-alive payload.
pub const BEEP: &str = "BEEP";

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOp {
    /// POST /node.
    Created,
    /// PUT/PATCH /node, PUT /nodes.
    Updated,
}

impl NodeOp {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeOp::Created => "created",
            NodeOp::Updated => "updated",
        }
    }
}

/// The state of a node before an update (`previous_state`/`previous_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Previous {
    /// State before the update.
    pub state: State,
    /// Result before the update.
    pub result: Option<NodeResult>,
}

/// The CloudEvent `data` of a node event, keys in upstream order.
pub fn node_event_data(
    node: &Node,
    op: NodeOp,
    is_hierarchy: bool,
    previous: Option<Previous>,
) -> Value {
    let mut m = Map::new();
    m.insert("op".into(), op.as_str().into());
    m.insert("id".into(), node.id.to_string().into());
    m.insert("kind".into(), node.kind.as_str().into());
    m.insert("name".into(), node.name.clone().into());
    m.insert("path".into(), node.path.clone().into());
    m.insert("group".into(), node.group.clone().into());
    m.insert("state".into(), node.state.as_str().into());
    m.insert("result".into(), node.result.map(NodeResult::as_str).into());
    m.insert("owner".into(), node.owner.clone().into());
    m.insert(
        "data".into(),
        node.data.clone().unwrap_or(Value::Object(Map::new())),
    );
    m.insert("is_hierarchy".into(), is_hierarchy.into());
    if let Some(p) = previous {
        m.insert("previous_state".into(), p.state.as_str().into());
        m.insert(
            "previous_result".into(),
            p.result.map(NodeResult::as_str).into(),
        );
    }
    Value::Object(m)
}

/// A CloudEvent as the API publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// Unique id (uuid4).
    pub id: String,
    /// Source URI.
    pub source: String,
    /// Event type.
    pub event_type: String,
    /// Time of the event (UTC).
    pub time: Timestamp,
    /// Payload.
    pub data: Value,
    /// Extension attributes (`owner` and custom ones), in order.
    pub attributes: Map<String, Value>,
    /// Position in the event log (`_sequence_id`), absent on keep-alives.
    pub sequence_id: Option<i64>,
}

impl CloudEvent {
    /// The envelope as a JSON value with keys in upstream order.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("specversion".into(), "1.0".into());
        m.insert("id".into(), self.id.clone().into());
        m.insert("source".into(), self.source.clone().into());
        m.insert("type".into(), self.event_type.clone().into());
        m.insert("time".into(), time::format_aware(&self.time).into());
        m.insert("data".into(), self.data.clone());
        for (k, v) in &self.attributes {
            if !m.contains_key(k) {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Some(seq) = self.sequence_id {
            m.insert("_sequence_id".into(), seq.into());
        }
        Value::Object(m)
    }

    /// The envelope as the string carried inside a `/listen` message.
    pub fn to_python_json(&self) -> String {
        python_json(&self.to_value())
    }
}

/// Serialize like Python's `json.dumps(v)`: `", "` and `": "` separators, non-ASCII
/// escaped as `\uXXXX`, keys in the value's order.
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_python(v, &mut out);
    out
}

fn write_python(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_python_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_str(k, out);
                out.push_str(": ");
                write_python(item, out);
            }
            out.push('}');
        }
    }
}

fn write_python_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_matches_upstream_layout() {
        let mut attrs = Map::new();
        attrs.insert("owner".into(), "admin".into());
        let ev = CloudEvent {
            id: "9e67".into(),
            source: DEFAULT_EVENT_SOURCE.into(),
            event_type: DEFAULT_EVENT_TYPE.into(),
            time: time::parse_iso("2024-01-04T10:48:39.974782").unwrap(),
            data: json!({"op": "created"}),
            attributes: attrs,
            sequence_id: Some(7),
        };
        assert_eq!(
            ev.to_python_json(),
            "{\"specversion\": \"1.0\", \"id\": \"9e67\", \"source\": \"https://api.kernelci.org/\", \
             \"type\": \"api.kernelci.org\", \"time\": \"2024-01-04T10:48:39.974782+00:00\", \
             \"data\": {\"op\": \"created\"}, \"owner\": \"admin\", \"_sequence_id\": 7}"
        );
    }

    #[test]
    fn python_escapes() {
        assert_eq!(python_json(&json!("é\n😀")), "\"\\u00e9\\n\\ud83d\\ude00\"");
        assert_eq!(python_json(&json!([1, null, true])), "[1, null, true]");
    }
}
