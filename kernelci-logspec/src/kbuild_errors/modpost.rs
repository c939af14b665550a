//! `kbuild.modpost`: the summary is every `ERROR: modpost:` / `FATAL: modpost:` message.

use super::with_script_target;
use crate::LogError;
use crate::patterns::{KBUILD_TS, Lazy, constant, group};

static MESSAGE: Lazy = Lazy::new(|| {
    constant(&format!(
        r"{KBUILD_TS}(?:ERROR|FATAL): modpost: (?P<message>.*)"
    ))
});

pub(super) fn parse(script: &str, target: &str, text: &str) -> LogError {
    let mut error = with_script_target("kbuild.modpost", script, target);
    let mut summary = Vec::new();
    for c in MESSAGE.captures_iter(text) {
        if let Some(m) = c.get(0) {
            error.report.push_str(m.as_str());
            error.report.push('\n');
        }
        summary.push(group(&c, "message"));
    }
    error.error_summary = summary.join(" ");
    error.generate_signature(false);
    error
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = &*MESSAGE;
}
