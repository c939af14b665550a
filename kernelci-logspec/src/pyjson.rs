//! JSON text exactly as Python's `json.dumps(..., sort_keys=True, ensure_ascii=False)`
//! writes it, compact (signatures) or with `indent=4` (upstream's command line).

use serde_json::Value;
use std::fmt::Write;

/// `json.dumps(value, sort_keys=True, ensure_ascii=False)`: default separators `", "` and
/// `": "`, no other whitespace.
pub fn dumps_compact(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None, 0);
    out
}

/// `json.dumps(value, indent=4, sort_keys=True, ensure_ascii=False)`, as upstream's
/// `logspec.py -o json` prints it.
pub fn dumps_indented(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(4), 0);
    out
}

fn write_value(out: &mut String, value: &Value, indent: Option<usize>, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, indent, level + 1);
                write_value(out, item, indent, level + 1);
            }
            close(out, indent, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                separator(out, i, indent, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, indent, level + 1);
            }
            close(out, indent, level);
            out.push('}');
        }
    }
}

fn separator(out: &mut String, index: usize, indent: Option<usize>, level: usize) {
    match indent {
        None if index > 0 => out.push_str(", "),
        None => {}
        Some(width) => {
            if index > 0 {
                out.push(',');
            }
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * level));
        }
    }
}

fn close(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(width) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * level));
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
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
    fn compact_is_python_default() {
        let v = json!({"b": ["x", "y"], "a": "é\"\\\n\u{1}", "c": true, "d": null});
        assert_eq!(
            dumps_compact(&v),
            r#"{"a": "é\"\\\n\u0001", "b": ["x", "y"], "c": true, "d": null}"#
        );
    }

    #[test]
    fn indented_is_python_indent_4() {
        let v = json!({"errors": [], "z": {"k": [1]}, "a": {}});
        assert_eq!(
            dumps_indented(&v),
            "{\n    \"a\": {},\n    \"errors\": [],\n    \"z\": {\n        \"k\": [\n            1\n        ]\n    }\n}"
        );
    }
}
