//! The schema's string patterns, as hand-written matchers (no regex engine needed).
//!
//! Each matcher implements the full-string meaning of the upstream pattern. Upstream uses
//! Python's `re.search` with `^...$`, where `$` also matches before a final `\n`; that quirk
//! is handled (and rejected, see [`crate::error::Reason::TrailingNewline`]) by the caller.

use crate::error::Rule;

impl Rule {
    /// Whether `s` matches this rule's pattern as a whole.
    pub fn matches(self, s: &str) -> bool {
        self.matches_with(s, true)
    }

    /// [`Rule::matches`] for a string known to hold no NUL character when `may_hold_nul` is
    /// false (a JSON string without escapes cannot: raw control characters are not JSON),
    /// which skips the NUL searches.
    pub(crate) fn matches_with(self, s: &str, may_hold_nul: bool) -> bool {
        let no_nul = |t: &str| !may_hold_nul || !t.contains('\0');
        match self {
            Rule::Origin => is_origin(s),
            Rule::ObjectId => match s.split_once(':') {
                Some((origin, local)) => is_origin(origin) && no_nul(local),
                None => false,
            },
            Rule::LegacyObjectId => match s.split_once(':') {
                Some((origin, local)) => is_origin(origin) && !local.contains('\n'),
                None => false,
            },
            Rule::RevisionId => match s.split_once('+') {
                Some((commit, patchset)) => is_hex(commit, 40) && is_hex(patchset, 64),
                None => is_hex(s, 40),
            },
            Rule::NoNul => no_nul(s),
            Rule::CommitHash => is_hex(s, 40),
            Rule::PatchsetHash => s.is_empty() || is_hex(s, 64),
            Rule::Architecture => s.bytes().all(is_origin_byte),
            Rule::Path => s.is_empty() || s.split('.').all(is_path_segment),
            Rule::LegacyTestPath => s
                .bytes()
                .all(|b| b == b'.' || b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            // `[^ \0]` also matches ',', so the pattern is "non-empty, no space, no NUL".
            Rule::Compatible => !s.is_empty() && !s.contains(' ') && no_nul(s),
            Rule::LegacyCompatible => !s.is_empty() && !s.contains(' '),
            Rule::ResourceName => !s.is_empty() && !s.contains('/') && no_nul(s),
            Rule::LegacyResourceName => !s.is_empty() && !s.contains('/'),
            Rule::HttpsUrl => s.strip_prefix("https://").is_some_and(no_nul),
            Rule::LegacyGitUrl => s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("git://"))
                .is_some_and(|r| !r.contains('\n')),
        }
    }
}

fn is_origin_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// `^[a-z0-9_]+$`
pub(crate) fn is_origin(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_origin_byte)
}

/// Exactly `len` lower-case hexadecimal digits.
fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `[a-zA-Z0-9_-]+`
fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is a valid v5 path (test path or issue category).
pub fn is_v5_path(s: &str) -> bool {
    Rule::Path.matches(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_ids() {
        assert!(Rule::Origin.matches("maestro"));
        assert!(Rule::Origin.matches("kernel_ci2"));
        assert!(!Rule::Origin.matches(""));
        assert!(!Rule::Origin.matches("kernel-ci"));
        assert!(!Rule::Origin.matches("Maestro"));
        assert!(!Rule::Origin.matches("maestro\n"));
        assert!(Rule::ObjectId.matches("maestro:"));
        assert!(Rule::ObjectId.matches("maestro:a/b:c d%é\n"));
        assert!(!Rule::ObjectId.matches("maestro_1"));
        assert!(!Rule::ObjectId.matches(":x"));
        assert!(!Rule::ObjectId.matches("Maestro:x"));
        assert!(!Rule::ObjectId.matches("m:x\0"));
        assert!(Rule::LegacyObjectId.matches("m:x\0"));
        assert!(!Rule::LegacyObjectId.matches("m:x\ny"));
    }

    #[test]
    fn hashes() {
        let sha1 = "ef2b753c38bc9c0d1eea84e29a6bb6f9e776d0e3";
        let sha256 = "903638c087335b10293663c682b9aa0076f9f7be478a8e7828bc22e12d301b42";
        assert!(Rule::CommitHash.matches(sha1));
        assert!(!Rule::CommitHash.matches(&sha1[1..]));
        assert!(!Rule::CommitHash.matches(&sha1.to_uppercase()));
        assert!(Rule::PatchsetHash.matches(""));
        assert!(Rule::PatchsetHash.matches(sha256));
        assert!(!Rule::PatchsetHash.matches(&sha256[1..]));
        assert!(Rule::RevisionId.matches(sha1));
        assert!(Rule::RevisionId.matches(&format!("{sha1}+{sha256}")));
        assert!(!Rule::RevisionId.matches(&format!("{sha1}+")));
    }

    #[test]
    fn paths() {
        for ok in ["", "boot", "ltp.sem01", "a-b.c_d.E9"] {
            assert!(Rule::Path.matches(ok), "{ok}");
        }
        for bad in [
            ".",
            "..",
            "ltp.",
            "ltp..x",
            ".ltp",
            "a b",
            "ltp..memcpy",
            "é",
        ] {
            assert!(!Rule::Path.matches(bad), "{bad}");
        }
        assert!(Rule::LegacyTestPath.matches("ltp..x"));
        assert!(Rule::LegacyTestPath.matches(""));
        assert!(!Rule::LegacyTestPath.matches("a b"));
    }

    #[test]
    fn others() {
        assert!(Rule::Architecture.matches(""));
        assert!(Rule::Architecture.matches("x86_64"));
        assert!(!Rule::Architecture.matches("x86-64"));
        assert!(Rule::Compatible.matches("ti,omap3"));
        assert!(Rule::Compatible.matches(",,"));
        assert!(!Rule::Compatible.matches("a b"));
        assert!(!Rule::Compatible.matches(""));
        assert!(Rule::ResourceName.matches("dmesg.txt"));
        assert!(!Rule::ResourceName.matches("logs/dmesg.txt"));
        assert!(!Rule::ResourceName.matches(""));
        assert!(Rule::HttpsUrl.matches("https://git.kernel.org/x.git"));
        assert!(!Rule::HttpsUrl.matches("git://git.kernel.org/x.git"));
        assert!(Rule::LegacyGitUrl.matches("git://git.kernel.org/x.git"));
        assert!(!Rule::LegacyGitUrl.matches("http://git.kernel.org/x.git"));
        assert!(Rule::NoNul.matches("a\nb"));
        assert!(!Rule::NoNul.matches("a\0b"));
    }
}
