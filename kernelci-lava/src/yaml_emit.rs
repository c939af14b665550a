//! A YAML writer whose output reads back as the same data under YAML 1.1 (PyYAML, which LAVA
//! uses) and YAML 1.2 (serde_yaml_ng, which we use).
//!
//! serde_yaml_ng's own writer leaves `yes`, `on`, `1:30` or `2023-01-01` unquoted: YAML 1.2
//! strings that PyYAML would read as a boolean, a number or a date. Here a string is written
//! plain only when it is plainly a string in both (letters, digits, `_ . / -` and inner
//! spaces, starting with a letter, `/` or `_`, and not one of the YAML 1.1 boolean or null
//! words); everything else is double-quoted with escapes, so it never folds, never depends
//! on indentation and keeps every character. Block style, two-space indent; one line per
//! scalar. Floats always carry a `.` (PyYAML reads `1e3` as a string).

use serde_yaml_ng::Value;

/// Why a value cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// A tagged value (`!foo`): LAVA's loader (`safe_load`) refuses custom tags.
    #[error("{0}: YAML tags are not supported")]
    Tagged(String),
    /// A mapping key that is a sequence or a mapping.
    #[error("{0}: a mapping key must be a scalar")]
    ComplexKey(String),
}

/// Writes `value` as a YAML document (block style, ending with a newline).
pub fn to_string(value: &Value) -> Result<String, EmitError> {
    let mut out = String::new();
    let mut path = Vec::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => write_mapping(&mut out, m, 0, false, &mut path)?,
        Value::Sequence(s) if !s.is_empty() => write_sequence(&mut out, s, 0, false, &mut path)?,
        other => {
            write_scalar_or_empty(&mut out, other, &path)?;
            out.push('\n');
        }
    }
    Ok(out)
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() {
        "(document)".to_string()
    } else {
        path.join(".")
    }
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a non-empty mapping; its first line is indented unless `inline` (after `- `).
fn write_mapping(
    out: &mut String,
    map: &serde_yaml_ng::Mapping,
    level: usize,
    inline: bool,
    path: &mut Vec<String>,
) -> Result<(), EmitError> {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline {
            indent(out, level);
        }
        let key_text = key_text(key, path)?;
        path.push(key_text.clone());
        let mut key_out = String::new();
        write_scalar_or_empty(&mut key_out, key, path)?;
        // Implicit keys are limited to 1024 characters; longer ones use the explicit form.
        if key_out.len() > 1000 {
            out.push_str("? ");
            out.push_str(&key_out);
            out.push('\n');
            indent(out, level);
            out.push(':');
        } else {
            out.push_str(&key_out);
            out.push(':');
        }
        write_value_after_indicator(out, value, level, path)?;
        path.pop();
    }
    Ok(())
}

/// Writes a non-empty sequence; its first line is indented unless `inline`.
fn write_sequence(
    out: &mut String,
    seq: &[Value],
    level: usize,
    inline: bool,
    path: &mut Vec<String>,
) -> Result<(), EmitError> {
    for (i, item) in seq.iter().enumerate() {
        if i > 0 || !inline {
            indent(out, level);
        }
        path.push(i.to_string());
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str("- ");
                write_mapping(out, m, level + 2, true, path)?;
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push_str("- ");
                write_sequence(out, s, level + 2, true, path)?;
            }
            other => {
                out.push_str("- ");
                write_scalar_or_empty(out, other, path)?;
                out.push('\n');
            }
        }
        path.pop();
    }
    Ok(())
}

/// After `key:`: a scalar on the same line, a collection on the next lines.
fn write_value_after_indicator(
    out: &mut String,
    value: &Value,
    level: usize,
    path: &mut Vec<String>,
) -> Result<(), EmitError> {
    match value {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            write_mapping(out, m, level + 2, false, path)
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            write_sequence(out, s, level + 2, false, path)
        }
        other => {
            out.push(' ');
            write_scalar_or_empty(out, other, path)?;
            out.push('\n');
            Ok(())
        }
    }
}

fn key_text(key: &Value, path: &[String]) -> Result<String, EmitError> {
    match key {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".to_string()),
        Value::Tagged(_) => Err(EmitError::Tagged(path_text(path))),
        Value::Sequence(_) | Value::Mapping(_) => Err(EmitError::ComplexKey(path_text(path))),
    }
}

/// A scalar, or `{}` / `[]` for an empty collection.
fn write_scalar_or_empty(
    out: &mut String,
    value: &Value,
    path: &[String],
) -> Result<(), EmitError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                write_float(out, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Mapping(_) => out.push_str("{}"),
        Value::Tagged(_) => return Err(EmitError::Tagged(path_text(path))),
    }
    Ok(())
}

fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str(".nan");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { ".inf" } else { "-.inf" });
    } else {
        // `Display` never uses an exponent; YAML 1.1 needs the dot to see a float.
        let text = f.to_string();
        out.push_str(&text);
        if !text.contains('.') {
            out.push_str(".0");
        }
    }
}

/// Words YAML 1.1 or 1.2 resolves to a boolean or null when plain.
const RESERVED: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
];

/// True when `s` can be written plain and reads back as this string in YAML 1.1 and 1.2.
pub fn is_plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'/' || first == b'_') {
        return false;
    }
    if bytes.last() == Some(&b' ') {
        return false;
    }
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-' | b' ');
    bytes.iter().all(|&b| allowed(b)) && !RESERVED.contains(&s)
}

/// Writes a string scalar: plain when [`is_plain_safe`], else double-quoted.
pub fn write_str(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        write_double_quoted(out, s);
    }
}

/// Writes `s` double-quoted, escaping everything YAML does not allow raw in a quoted scalar
/// on one line.
pub fn write_double_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\t' => Some("\\t"),
            '\r' => Some("\\r"),
            '\0' => Some("\\0"),
            '\u{1b}' => Some("\\e"),
            '\u{85}' => Some("\\N"),
            '\u{2028}' => Some("\\L"),
            '\u{2029}' => Some("\\P"),
            _ => None,
        };
        let needs_hex = escape.is_none()
            && (c < ' '
                || c == '\u{7f}'
                || ('\u{80}'..='\u{9f}').contains(&c)
                || c == '\u{feff}'
                || c == '\u{fffe}'
                || c == '\u{ffff}');
        if escape.is_none() && !needs_hex {
            continue;
        }
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02X}"));
                } else {
                    out.push_str(&format!("\\u{code:04X}"));
                }
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        let written = to_string(&value).unwrap();
        let back: Value = serde_yaml_ng::from_str(&written).unwrap();
        assert_eq!(back, value, "written:\n{written}");
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "yes",
            "on",
            "1:30",
            "2023-01-01",
            "0755",
            "1e3",
            "",
            " x",
            "x ",
            "a: b",
            "#c",
        ] {
            let mut out = String::new();
            write_str(&mut out, s);
            assert!(out.starts_with('"'), "{s:?} -> {out}");
        }
        for s in ["qemu", "baseline-x86", "/ #", "_x", "a b"] {
            let mut out = String::new();
            write_str(&mut out, s);
            // `/ #` has a `#`: quoted; the others stay plain.
            assert_eq!(out.starts_with('"'), s.contains('#'), "{s:?} -> {out}");
        }
    }

    #[test]
    fn escapes_control_and_special_characters() {
        let mut out = String::new();
        write_double_quoted(&mut out, "a\"b\\c\n\t\u{1b}[0m\u{7}\u{85}\u{2028}é€😀");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\t\\e[0m\\x07\\N\\Lé€😀\"");
        let back: String = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\t\u{1b}[0m\u{7}\u{85}\u{2028}é€😀");
    }

    #[test]
    fn documents_round_trip() {
        round_trip("a: 1\nb: [1, 2.5, -3, true, null, 'yes', '']\nc: {d: {e: [[1, 2], [], {}]}}\n");
        round_trip("- {x: 1}\n- - a\n  - b\n- []\n- 1e300\n- 100.0\n");
        round_trip("k: |\n  line one\n  line two\n");
        round_trip("1: a\ntrue: b\nnull: c\n");
        round_trip("scalar");
        round_trip("[]");
    }

    #[test]
    fn floats_keep_a_dot() {
        let mut out = String::new();
        write_float(&mut out, 1e21);
        assert!(out.ends_with(".0"));
        let mut out = String::new();
        write_float(&mut out, f64::NEG_INFINITY);
        assert_eq!(out, "-.inf");
    }

    #[test]
    fn tags_and_complex_keys_are_errors() {
        let v: Value = serde_yaml_ng::from_str("a: {b: !foo 1}").unwrap();
        assert_eq!(to_string(&v), Err(EmitError::Tagged("a.b".into())));
        let v: Value = serde_yaml_ng::from_str("? [1]\n: x\n").unwrap();
        assert!(matches!(to_string(&v), Err(EmitError::ComplexKey(_))));
    }
}
