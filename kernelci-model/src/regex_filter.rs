//! Regular expressions in filters (`name__re=...`) must mean the same on every backend:
//! SQLite and the in-memory evaluator run Rust's `regex` syntax, PostgreSQL runs POSIX
//! "advanced" regular expressions (ARE). This module accepts the common subset, translates
//! the few constructs that are spelled differently, and refuses the rest with a reason.
//!
//! Translated for PostgreSQL: `\b` -> `\y`, `\B` -> `\Y`, `\z` -> `\Z`, named groups
//! `(?P<n>x)`/`(?<n>x)` -> `(x)`. Refused: Unicode classes (`\pL`), scoped or non-leading
//! flags (`(?i:x)`, `a(?i)b`), flags other than a leading `(?i)`, bracket-set operations,
//! `\x{..}`/octal escapes, `\b{start}`-style and `\<`/`\>` boundaries. Known remaining
//! difference: `.` also matches a newline on PostgreSQL.

use regex_syntax::ast::{
    self, Assertion, AssertionKind, Ast, ClassSet, ClassSetItem, Flag, FlagsItemKind, GroupKind,
    LiteralKind,
};

/// Why a pattern cannot be used as a filter (the message names the construct).
pub type Refusal = String;

/// Check a pattern; returns its PostgreSQL spelling.
pub fn postgres_pattern(pattern: &str) -> Result<String, Refusal> {
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| e.kind().to_string())?;
    let mut edits: Vec<(usize, usize, &'static str)> = Vec::new();
    walk(&ast, true, &mut edits)?;
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut at = 0;
    for (start, end, text) in edits {
        out.push_str(&pattern[at..start]);
        out.push_str(text);
        at = end;
    }
    out.push_str(&pattern[at..]);
    Ok(out)
}

fn refuse<T>(what: &str) -> Result<T, Refusal> {
    Err(format!(
        "{what} is not supported in filters (it must mean the same on every database)"
    ))
}

fn walk(
    ast: &Ast,
    leading: bool,
    edits: &mut Vec<(usize, usize, &'static str)>,
) -> Result<(), Refusal> {
    match ast {
        Ast::Empty(_) | Ast::Dot(_) | Ast::ClassPerl(_) => Ok(()),
        Ast::Flags(set) => {
            let only_i = set
                .flags
                .items
                .iter()
                .all(|i| matches!(i.kind, FlagsItemKind::Flag(Flag::CaseInsensitive)));
            if leading && only_i {
                Ok(())
            } else {
                refuse("a flag group other than a leading (?i)")
            }
        }
        Ast::Literal(lit) => match lit.kind {
            LiteralKind::Verbatim | LiteralKind::Meta | LiteralKind::Special(_) => Ok(()),
            LiteralKind::Superfluous => refuse("an unnecessary escape"),
            _ => refuse("an octal or hexadecimal escape"),
        },
        Ast::Assertion(a) => assertion(a, edits),
        Ast::ClassUnicode(_) => refuse("a Unicode class (\\p...)"),
        Ast::ClassBracketed(b) => class_set(&b.kind),
        Ast::Repetition(r) => walk(&r.ast, false, edits),
        Ast::Group(g) => {
            match &g.kind {
                GroupKind::CaptureIndex(_) => {}
                GroupKind::CaptureName { name, .. } => {
                    // Keep "(", drop "?P<name>" / "?<name>".
                    edits.push((g.span.start.offset + 1, name.span.end.offset + 1, ""));
                }
                GroupKind::NonCapturing(flags) if flags.items.is_empty() => {}
                GroupKind::NonCapturing(_) => return refuse("a scoped flag group like (?i:...)"),
            }
            walk(&g.ast, false, edits)
        }
        Ast::Alternation(a) => a.asts.iter().try_for_each(|x| walk(x, false, edits)),
        Ast::Concat(c) => c
            .asts
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| walk(x, leading && i == 0, edits)),
    }
}

fn assertion(a: &Assertion, edits: &mut Vec<(usize, usize, &'static str)>) -> Result<(), Refusal> {
    let (s, e) = (a.span.start.offset, a.span.end.offset);
    match a.kind {
        AssertionKind::StartLine | AssertionKind::EndLine | AssertionKind::StartText => Ok(()),
        AssertionKind::EndText => {
            edits.push((s, e, "\\Z"));
            Ok(())
        }
        AssertionKind::WordBoundary => {
            edits.push((s, e, "\\y"));
            Ok(())
        }
        AssertionKind::NotWordBoundary => {
            edits.push((s, e, "\\Y"));
            Ok(())
        }
        _ => refuse("this word-boundary form"),
    }
}

fn class_set(set: &ClassSet) -> Result<(), Refusal> {
    match set {
        ClassSet::BinaryOp(_) => refuse("a class set operation (&&, --, ~~)"),
        ClassSet::Item(item) => class_item(item),
    }
}

fn class_item(item: &ClassSetItem) -> Result<(), Refusal> {
    match item {
        ClassSetItem::Empty(_) | ClassSetItem::Range(_) | ClassSetItem::Ascii(_) => Ok(()),
        ClassSetItem::Literal(l) => match l.kind {
            LiteralKind::Verbatim | LiteralKind::Meta | LiteralKind::Special(_) => Ok(()),
            _ => refuse("an escape of this kind inside [...]"),
        },
        ClassSetItem::Perl(p) if !p.negated => Ok(()),
        ClassSetItem::Perl(_) => refuse("a negated class (\\D, \\S, \\W) inside [...]"),
        ClassSetItem::Unicode(_) => refuse("a Unicode class (\\p...)"),
        ClassSetItem::Bracketed(_) => refuse("a nested [...] class"),
        ClassSetItem::Union(u) => u.items.iter().try_for_each(class_item),
    }
}

#[cfg(test)]
mod tests {
    use super::postgres_pattern as pg;

    #[test]
    fn translates_what_is_spelled_differently() {
        assert_eq!(pg(r"\bgcc\b").unwrap(), r"\ygcc\y");
        assert_eq!(pg(r"x86\z").unwrap(), r"x86\Z");
        assert_eq!(pg(r"a\Bb").unwrap(), r"a\Yb");
        assert_eq!(pg(r"(?P<c>gcc)-(?<v>\d+)").unwrap(), r"(gcc)-(\d+)");
        assert_eq!(pg(r"(?i)CHECKOUT").unwrap(), r"(?i)CHECKOUT");
        assert_eq!(
            pg(r"^baseline-[a-z0-9_]+$").unwrap(),
            r"^baseline-[a-z0-9_]+$"
        );
        assert_eq!(
            pg(r"gcc-1[0-9]|clang.*?x").unwrap(),
            r"gcc-1[0-9]|clang.*?x"
        );
    }

    #[test]
    fn refuses_what_differs() {
        for p in [
            r"\pL+",
            r"(?i:KBUILD)",
            r"a(?i)b",
            r"(?s).",
            r"[a-z&&[^x]]",
            r"\x{41}",
            r"\<w",
            r"[\W]",
            r"\b{start}x",
        ] {
            let e = pg(p).unwrap_err();
            assert!(e.contains("not supported in filters"), "{p}: {e}");
        }
        assert!(pg("(").is_err());
    }
}
