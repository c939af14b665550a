//! The identity of a result across checkouts.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// Whether a result is a build or a test (boots are tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    /// A KCIDB build.
    Build,
    /// A KCIDB test (boots included).
    Test,
}

impl ResultKind {
    /// `build` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultKind::Build => "build",
            ResultKind::Test => "test",
        }
    }

    /// The inverse of [`ResultKind::as_str`].
    pub fn parse(s: &str) -> Option<ResultKind> {
        match s {
            "build" => Some(ResultKind::Build),
            "test" => Some(ResultKind::Test),
            _ => None,
        }
    }
}

/// What makes two results, on two checkouts, the same test (or build). Absent values are
/// empty strings, so that a missing field is one value rather than a wildcard.
///
/// A build is identified by its config, architecture and compiler (gcc and clang builds of
/// one config are two builds); a test by its path, its build's config and architecture and
/// its platform (`environment.misc.platform`). The compiler is not part of a test's
/// identity, as on the dashboard's compare page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// The submitting CI system.
    pub origin: String,
    /// The checkout's tree name.
    pub tree_name: String,
    /// The checkout's repository URL.
    pub git_repository_url: String,
    /// The checkout's branch.
    pub git_repository_branch: String,
    /// Build or test.
    pub kind: ResultKind,
    /// The test path (empty for builds).
    pub path: String,
    /// The build's config name.
    pub config_name: String,
    /// The build's architecture.
    pub architecture: String,
    /// The build's compiler (empty for tests).
    pub compiler: String,
    /// The test's platform (empty for builds).
    pub platform: String,
}

impl Identity {
    /// A stable 40-character key (hex SHA-1 of the fields, each length-prefixed so that
    /// no two identities share a key by moving a separator).
    pub fn key(&self) -> String {
        let mut h = Sha1::new();
        for part in [
            self.origin.as_str(),
            &self.tree_name,
            &self.git_repository_url,
            &self.git_repository_branch,
            self.kind.as_str(),
            &self.path,
            &self.config_name,
            &self.architecture,
            &self.compiler,
            &self.platform,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex(&h.finalize())
    }

    /// A short human label: `path on platform (config/arch)` for a test, `build config/arch
    /// (compiler)` for a build.
    pub fn label(&self) -> String {
        match self.kind {
            ResultKind::Test => format!(
                "{} on {} ({}/{})",
                self.path, self.platform, self.config_name, self.architecture
            ),
            ResultKind::Build => format!(
                "build {}/{} ({})",
                self.config_name, self.architecture, self.compiler
            ),
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_identity(path: &str, platform: &str) -> Identity {
        Identity {
            origin: "lab".into(),
            tree_name: "mainline".into(),
            git_repository_url: "https://git.example/linux.git".into(),
            git_repository_branch: "master".into(),
            kind: ResultKind::Test,
            path: path.into(),
            config_name: "defconfig".into(),
            architecture: "x86_64".into(),
            compiler: String::new(),
            platform: platform.into(),
        }
    }

    #[test]
    fn keys_are_stable_and_separate_fields() {
        let a = test_identity("boot", "qemu");
        assert_eq!(a.key(), test_identity("boot", "qemu").key());
        assert_eq!(a.key().len(), 40);
        // Moving text between two fields changes the key.
        assert_ne!(
            test_identity("bootq", "emu").key(),
            test_identity("boot", "qemu").key()
        );
        let mut build = a.clone();
        build.kind = ResultKind::Build;
        assert_ne!(build.key(), a.key());
    }
}
