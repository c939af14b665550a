//! Kernel build errors (upstream `errors/kbuild.py` and `utils/kbuild_errors.py`).
//!
//! Only the first `make...: *** ...` line counts, so a build log gives at most one error.
//! Targets and file names from the log are used as regular expressions, as upstream does
//! (see [`crate::pycompat::pattern_from_text`]).

mod compiler;
mod generic;
mod make;
mod modpost;
mod stem;

use crate::LogError;
use crate::patterns::{Lazy, constant, group};
use crate::pycompat::{basename, splitext};
use stem::Stem;

/// The make failure line.
pub(crate) static MAKE_ERROR: Lazy = Lazy::new(|| constant(r"make.*?: \*\*\* (?P<error_str>.*)"));
static SCRIPT_TARGET: Lazy = Lazy::new(|| constant(r"\[(?P<script>.*?): (?P<target>.*?)\] Error"));
/// A linker line naming an object, used when the failed target is `vmlinux`.
pub(crate) static LINKER_LINE: Lazy =
    Lazy::new(|| constant(r"(?P<script>.*?ld): (?P<target>.*?)\.\w+: (?P<error_str>.*)"));

/// The `[script: target] Error` part of a make error, if present.
pub(crate) fn script_and_target(error_str: &str) -> Option<(String, String)> {
    SCRIPT_TARGET.captures(error_str).map(|c| {
        (
            group(&c, "script").to_string(),
            group(&c, "target").to_string(),
        )
    })
}

/// The script and target taken from a linker line (`LINKER_LINE` captures).
pub(crate) fn linker_script_and_target(caps: &regex::Captures<'_>) -> (String, String) {
    (
        group(caps, "script").to_string(),
        group(caps, "target").to_string(),
    )
}

/// Builds and parses the error for a make failure. `before` is the log before the make line.
pub(crate) fn classify_and_parse(script: &str, target: &str, before: &str) -> LogError {
    if is_object_file(target) || is_other_compiler_target(target, before) {
        compiler::parse(script, target, before)
    } else if script.contains("modpost") {
        modpost::parse(script, target, before)
    } else if target == "modules" || target == "Module.symvers" {
        make::parse(script, target, before)
    } else {
        generic::parse(script, target, before)
    }
}

/// A make failure without `[script: target]`: `kbuild.unknown`, never parsed, so its
/// signature stays empty.
pub(crate) fn unknown(error_str: &str) -> LogError {
    let mut error = LogError::new("kbuild.unknown");
    error.error_summary = error_str.to_string();
    error.report = error_str.to_string();
    error
}

fn is_object_file(target: &str) -> bool {
    matches!(splitext(target).1, ".o" | ".s")
}

fn is_other_compiler_target(target: &str, text: &str) -> bool {
    let base = Stem::new(splitext(basename(target)).0);
    base.with_suffix(text, &OPTIONAL_EXT_COLON).is_some()
}

/// After a target's base name: `[.ext]:`.
static OPTIONAL_EXT_COLON: Lazy = Lazy::new(|| constant(r"^(?:\.\w+)?:"));

/// Adds `script` and `target` attributes and signature fields (make, modpost, other).
fn with_script_target(error_type: &str, script: &str, target: &str) -> LogError {
    let mut error = LogError::new(error_type);
    error.set_str("script", script);
    error.set_str("target", target);
    error
        .signature_fields
        .extend(["script".into(), "target".into()]);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_patterns_compile() {
        let _ = (
            &*MAKE_ERROR,
            &*SCRIPT_TARGET,
            &*LINKER_LINE,
            &*OPTIONAL_EXT_COLON,
        );
        compiler::force_all();
        modpost::force_all();
        make::force_all();
        generic::force_all();
    }

    #[test]
    fn classification() {
        assert!(is_object_file("a/b.o"));
        assert!(is_object_file("a/b.s"));
        assert!(!is_object_file("a/b.c"));
        assert!(is_other_compiler_target(
            "x/update",
            "ld: update.o:update.c:(.text)"
        ));
        assert!(!is_other_compiler_target("modules", "nothing here"));
    }
}
