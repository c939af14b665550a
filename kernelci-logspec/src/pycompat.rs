//! Small pieces of Python semantics that upstream relies on: `str.isspace`, `str.split`,
//! `str.strip`, `posixpath`, code-point slicing, and turning a path used as a regular
//! expression (upstream interpolates targets into patterns unescaped) into a Rust pattern.

use regex::Regex;

/// The characters of Python's `\s` (and `str.isspace`) that Rust's `\s` lacks, for use
/// inside a character class.
pub(crate) const PY_SPACE_EXTRA: &str = r"\x1c-\x1f";

/// Python's `str.isspace` for one character.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.split()` (no argument).
pub(crate) fn split_whitespace(text: &str) -> Vec<String> {
    text.split(is_space)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Python's `str.strip()` (no argument).
pub(crate) fn strip(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// Python's `str.strip(chars)`.
pub(crate) fn strip_chars<'a>(text: &'a str, chars: &str) -> &'a str {
    text.trim_matches(|c| chars.contains(c))
}

/// `posixpath.basename`.
pub(crate) fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `posixpath.dirname`.
pub(crate) fn dirname(path: &str) -> &str {
    let head = path.rfind('/').map_or("", |i| &path[..=i]);
    if !head.is_empty() && head.bytes().any(|b| b != b'/') {
        head.trim_end_matches('/')
    } else {
        head
    }
}

/// `posixpath.splitext`: (root, extension); leading dots of the file name are not an
/// extension.
pub(crate) fn splitext(path: &str) -> (&str, &str) {
    let sep = path.rfind('/').map_or(0, |i| i + 1);
    if let Some(dot) = path.rfind('.').filter(|&d| d >= sep)
        && path[sep..dot].bytes().any(|b| b != b'.')
    {
        return (&path[..dot], &path[dot..]);
    }
    (path, "")
}

/// `posixpath.join(a, b)`.
pub(crate) fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_string()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// A text that upstream uses as (part of) a regular expression, made into a Rust pattern:
/// `.` stays the any-character wildcard (as in Python), every other character is literal.
/// Upstream would also read other metacharacters (`+`, `(`, ...) as regex syntax, or raise
/// on an invalid pattern; paths in build logs do not contain them.
pub(crate) fn pattern_from_text(text: &str) -> String {
    text.split('.')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".")
}

/// Compiles a pattern built at run time from log text. Every piece of log text goes through
/// [`pattern_from_text`], so compilation only fails on size limits; `None` then.
pub(crate) fn dynamic_regex(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

/// Byte offset of the character after the one at `pos` (Python's `+1` on a code-point
/// index), or `text.len()`.
pub(crate) fn next_char(text: &str, pos: usize) -> usize {
    text.get(pos..)
        .and_then(|rest| rest.chars().next())
        .map_or(text.len(), |c| pos + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posixpath() {
        assert_eq!(basename("a/b/c.o"), "c.o");
        assert_eq!(basename("c.o"), "c.o");
        assert_eq!(dirname("a/b/c.o"), "a/b");
        assert_eq!(dirname("c.o"), "");
        assert_eq!(dirname("/c.o"), "/");
        assert_eq!(dirname("a//c"), "a");
        assert_eq!(splitext("a/b/c.tar.gz"), ("a/b/c.tar", ".gz"));
        assert_eq!(splitext("a/.bashrc"), ("a/.bashrc", ""));
        assert_eq!(splitext("a.b/c"), ("a.b/c", ""));
        assert_eq!(splitext("modules"), ("modules", ""));
        assert_eq!(join("", "x.c"), "x.c");
        assert_eq!(join("a/b", "x.c"), "a/b/x.c");
        assert_eq!(join("a/", "x.c"), "a/x.c");
        assert_eq!(join("a", "/x.c"), "/x.c");
    }

    #[test]
    fn python_strings() {
        assert_eq!(split_whitespace(" a\x1cb  c\u{a0}"), ["a", "b", "c"]);
        assert_eq!(strip("\x1f x \n"), "x");
        assert_eq!(strip_chars("*** x ***\n", "*\n "), "x");
    }

    #[test]
    fn patterns_keep_the_dot_wildcard_only() {
        let re = Regex::new(&pattern_from_text("a.b+(c")).expect("valid");
        assert!(re.is_match("aXb+(c"));
        assert!(!re.is_match("ab+(c"));
        assert_eq!(pattern_from_text(""), "");
        assert_eq!(pattern_from_text(".o"), ".o");
    }
}
