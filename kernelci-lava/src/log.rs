//! A LAVA job log (`output.yaml`: a YAML list of `{dt, lvl, msg}`), as the callback's `log`
//! field and `GET jobs/<id>/logs/` give it.
//!
//! Reading keeps what upstream's `LogParser` keeps: entries whose `msg` is a string, with
//! ESC replaced by `^[`, then stripped (Python's `str.strip`), and non-empty; `lvl: results`
//! entries (whose `msg` is a mapping) and anything that is not a mapping are dropped.
//! [`LavaLog::target_text`] is the serial console (`lvl: target`) as plain text, sanitized as
//! upstream sanitizes the `log.txt.gz` it uploads; [`LavaLog::to_yaml`] dumps the kept
//! entries (`lava-logs.yaml`).
//!
//! Size: LAVA writes one entry per line (`- {"dt": "...", "lvl": "...", "msg": "..."}`), so
//! the text is read line by line, each line parsed on its own: memory stays near the size of
//! the kept entries (a 30 MB log peaks under 100 MB). A line that is not `- ` + a complete
//! YAML value on its own (a block scalar, a folded string, an alias, a comment, a document
//! marker) makes the whole text go through the document parser instead, which gives the
//! same entries (or the precise error).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::scalar::Text;
use crate::yaml_emit::write_str;

/// A log that is not a YAML list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a YAML list: {0}")]
pub struct LogError(pub String);

/// One kept log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The timestamp as written (`2026-11-28T08:06:56.213493`), `None` when absent.
    pub dt: Option<String>,
    /// The level (`target`, `info`, `debug`, `results`, ...), `None` when absent.
    pub lvl: Option<String>,
    /// The message: ESC replaced by `^[`, stripped, never empty.
    pub msg: String,
}

/// The kept entries of a LAVA log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LavaLog {
    entries: Vec<LogEntry>,
}

impl LavaLog {
    /// Reads a log from its YAML text.
    pub fn parse(text: &str) -> Result<LavaLog, LogError> {
        if let Some(entries) = parse_by_line(text) {
            return Ok(LavaLog { entries });
        }
        let raw: Vec<RawEntry> =
            serde_yaml_ng::from_str(text).map_err(|e| LogError(e.to_string()))?;
        Ok(LavaLog {
            entries: raw.into_iter().filter_map(RawEntry::kept).collect(),
        })
    }

    /// Reads a log given as a JSON list of entries (a caller that already decoded it).
    pub fn from_json_list(items: &[serde_json::Value]) -> LavaLog {
        let entries = items
            .iter()
            .filter_map(|item| RawEntry::deserialize(item).ok())
            .filter_map(RawEntry::kept)
            .collect();
        LavaLog { entries }
    }

    /// The kept entries, in order.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The serial console: `msg` of every `lvl: target` entry, one per line, NUL removed,
    /// other non-printable characters (except `\n`) replaced by `?` ([`sanitize`]).
    pub fn target_text(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            if entry.lvl.as_deref() == Some("target") {
                sanitize_into(&mut out, &entry.msg);
                out.push('\n');
            }
        }
        out
    }

    /// The kept entries as a YAML list of `{dt, lvl, msg}` (upstream's `lava-logs.yaml`).
    pub fn to_yaml(&self) -> String {
        let size: usize = self.entries.iter().map(|e| e.msg.len() + 64).sum();
        let mut out = String::with_capacity(size);
        for entry in &self.entries {
            out.push_str("- dt: ");
            write_opt(&mut out, entry.dt.as_deref());
            out.push_str("\n  lvl: ");
            write_opt(&mut out, entry.lvl.as_deref());
            out.push_str("\n  msg: ");
            write_str(&mut out, &entry.msg);
            out.push('\n');
        }
        if out.is_empty() {
            out.push_str("[]\n");
        }
        out
    }
}

fn write_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => write_str(out, s),
        None => out.push_str("null"),
    }
}

/// Each line parsed alone; `None` when some line is not a complete `- ` item by itself.
fn parse_by_line(text: &str) -> Option<Vec<LogEntry>> {
    let mut entries = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.bytes().all(|b| b == b' ') {
            continue;
        }
        if !line.starts_with("- ") {
            return None;
        }
        let items: Vec<RawEntry> = serde_yaml_ng::from_str(line).ok()?;
        entries.extend(items.into_iter().filter_map(RawEntry::kept));
    }
    Some(entries)
}

/// Upstream's message cleaning: ESC → `^[` after Python's `str.strip()`.
fn clean_message(msg: &str) -> String {
    py_strip(msg).replace('\u{1b}', "^[")
}

/// Python's `str.isspace()` (Unicode White_Space plus the separators U+001C..U+001F).
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Upstream's log sanitizing: NUL removed, every character Python's `str.isprintable()`
/// rejects, except `\n`, replaced by `?`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    sanitize_into(&mut out, text);
    out
}

fn sanitize_into(out: &mut String, text: &str) {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n')
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c == '\0' {
            continue;
        }
        out.push(if c == '\n' || is_printable(c) { c } else { '?' });
    }
}

/// Python's `str.isprintable()` for one character: false for the categories Cc, Cf, Zl, Zp,
/// Zs (except the space), Co (private use) and the noncharacters. Unassigned code points
/// (Cn), which Python also rejects, are accepted here: Rust's standard library has no
/// Unicode category table and they do not occur in real logs.
pub fn is_printable(c: char) -> bool {
    let u = c as u32;
    if (0x20..0x7f).contains(&u) {
        return true;
    }
    if c.is_control() {
        return false;
    }
    let not_printable = matches!(u,
        // Zs other than the space, Zl, Zp
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 | 0x2028 | 0x2029
        // Cf
        | 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        // Co
        | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD
        // noncharacters
        | 0xFDD0..=0xFDEF
    );
    !not_printable && (u & 0xFFFE) != 0xFFFE
}

/// A log list item as written: a mapping with `dt`, `lvl`, `msg` (a string only), or
/// anything else (skipped).
#[derive(Default)]
struct RawEntry {
    mapping: bool,
    dt: Text,
    lvl: Text,
    msg: Option<String>,
}

impl RawEntry {
    fn kept(self) -> Option<LogEntry> {
        if !self.mapping {
            return None;
        }
        let msg = clean_message(self.msg.as_deref()?);
        if msg.is_empty() {
            return None;
        }
        Some(LogEntry {
            dt: self.dt.0,
            lvl: self.lvl.0,
            msg,
        })
    }
}

/// A string, or `None` for anything else (consumed).
struct StrOnly(Option<String>);

impl<'de> Deserialize<'de> for StrOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrOnly, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOnly;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOnly, E> {
                Ok(StrOnly(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<StrOnly, E> {
                Ok(StrOnly(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<StrOnly, E> {
                Ok(StrOnly(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrOnly, D::Error> {
                StrOnly::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrOnly, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StrOnly(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrOnly, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrOnly(None))
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<StrOnly, A::Error> {
                let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
                de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
                Ok(StrOnly(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawEntry, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a log entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
                let mut entry = RawEntry {
                    mapping: true,
                    ..RawEntry::default()
                };
                while let Some(key) = map.next_key::<Text>()? {
                    match key.0.as_deref() {
                        Some("dt") => entry.dt = map.next_value()?,
                        Some("lvl") => entry.lvl = map.next_value()?,
                        Some("msg") => entry.msg = map.next_value::<StrOnly>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(entry)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawEntry::default())
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<RawEntry, A::Error> {
                let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
                de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
                Ok(RawEntry::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<RawEntry, E> {
                Ok(RawEntry::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawEntry, D::Error> {
                RawEntry::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"- {"dt": "2026-11-28T08:06:49.9", "lvl": "info", "msg": "lava-dispatcher, installed at version: 2023.01"}
- {"dt": "2026-11-28T08:06:56.2", "lvl": "target", "msg": "  Linux version 6.1.192 \e[0m  "}
- {"dt": "2026-11-28T08:06:56.3", "lvl": "results", "msg": {"case": "login-action", "definition": "lava", "result": "pass"}}
- {"dt": "2026-11-28T08:06:56.4", "lvl": "target", "msg": "   "}
- {"dt": "2026-11-28T08:06:56.5", "lvl": "target", "msg": "tab\there\x00nul\u00a0nbsp"}
- {"dt": "2026-11-28T08:06:56.6", "lvl": "debug", "msg": 42}
"#;

    #[test]
    fn keeps_string_messages_cleaned() {
        let log = LavaLog::parse(LOG).unwrap();
        let msgs: Vec<&str> = log.entries().iter().map(|e| e.msg.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "lava-dispatcher, installed at version: 2023.01",
                "Linux version 6.1.192 ^[[0m",
                "tab\there\0nul\u{a0}nbsp"
            ]
        );
        assert_eq!(
            log.entries()[1].dt.as_deref(),
            Some("2026-11-28T08:06:56.2")
        );
        assert_eq!(
            log.target_text(),
            "Linux version 6.1.192 ^[[0m\ntab?herenul?nbsp\n"
        );
    }

    #[test]
    fn line_and_document_parsers_agree() {
        let by_line = LavaLog::parse(LOG).unwrap();
        let raw: Vec<RawEntry> = serde_yaml_ng::from_str(LOG).unwrap();
        let whole: Vec<LogEntry> = raw.into_iter().filter_map(RawEntry::kept).collect();
        assert_eq!(by_line.entries(), whole.as_slice());
        // A block-style log (not one entry per line) goes through the document parser.
        let block = "- dt: x\n  lvl: target\n  msg: |\n    two\n    lines\n";
        let log = LavaLog::parse(block).unwrap();
        assert_eq!(log.entries()[0].msg, "two\nlines");
    }

    #[test]
    fn yaml_dump_reads_back() {
        let log = LavaLog::parse(LOG).unwrap();
        let dumped = log.to_yaml();
        let again = LavaLog::parse(&dumped).unwrap();
        assert_eq!(again, log);
        assert_eq!(LavaLog::default().to_yaml(), "[]\n");
    }

    #[test]
    fn not_a_list_is_an_error() {
        assert!(LavaLog::parse("a: 1").is_err());
        assert!(LavaLog::parse("- {unclosed").is_err());
        assert!(LavaLog::parse("- ok\nnot a list").is_err());
    }

    #[test]
    fn json_list_is_accepted() {
        let items = vec![
            serde_json::json!({"dt": "t", "lvl": "target", "msg": " hi "}),
            serde_json::json!("junk"),
            serde_json::json!({"lvl": "results", "msg": {"case": "x"}}),
        ];
        let log = LavaLog::from_json_list(&items);
        assert_eq!(log.target_text(), "hi\n");
    }

    #[test]
    fn python_printable_and_strip() {
        assert!(is_printable('é') && is_printable('€') && is_printable('😀'));
        assert!(!is_printable('\t') && !is_printable('\u{200b}') && !is_printable('\u{e000}'));
        assert!(!is_printable('\u{ffff}') && !is_printable('\u{1fffe}'));
        assert_eq!(py_strip("\u{1c}\t x \u{3000}"), "x");
        assert_eq!(sanitize("a\0b\rc\n"), "ab?c\n");
    }
}
