//! `kbuild.compiler[.error|.warning|.linker_error]`: a failed compiler or linker target.
//!
//! Two strategies, in order: a single `file:line:col: type: message` line naming the target
//! (gives `line_no` and `position`), then the block that starts at the last line naming the
//! target, read as a compiler message (gives `location`, often the `In file included from`
//! line) or as a linker message.

use super::stem::Stem;
use crate::LogError;
use crate::patterns::{KBUILD_TS, Lazy, constant, group};
use crate::pycompat::{basename, dirname, join, splitext, strip};

static COMPILER_MESSAGE: Lazy = Lazy::new(|| {
    constant(&format!(
        r"{KBUILD_TS}(.*?(?P<type>error|warning): (?P<message>.*?)\n)"
    ))
});
static ANY_LINKER: Lazy = Lazy::new(|| constant(r"ld: (?P<message>.*)"));
static RELATIVE_OBJECT: Lazy = Lazy::new(|| constant(r"ld: (?P<obj_file>.*?):"));
/// After the target stem: `...:<line>:<col>: <type>: <message>\n`.
static LINE_MESSAGE: Lazy = Lazy::new(|| {
    constant(
        r"^(?P<rest>.*?):(?P<line_no>\d+):(?P<position>\d+): (?P<type>.*?): (?P<message>.*?)\n",
    )
});
/// After a source stem: `[.ext]:<line>`.
static EXT_LOCATION: Lazy = Lazy::new(|| constant(r"^(?P<ext>\.\w+)?:(?P<location>\d+)"));
/// After an object stem: `.ext`.
static EXT: Lazy = Lazy::new(|| constant(r"^\.\w+"));
/// After a source name in a linker message: `.ext:<location>: <message>\n`.
static EXT_LINKER_MESSAGE: Lazy =
    Lazy::new(|| constant(r"^(?P<ext>\.\w+):(?P<location>[^: ]+): (?P<message>.*?)\n"));

/// What the strategies find.
#[derive(Default)]
struct Found {
    type_suffix: String,
    summary: String,
    src_file: String,
    location: String,
    line_no: String,
    position: String,
    report: String,
}

pub(super) fn parse(script: &str, target: &str, text: &str) -> LogError {
    let mut found = Found::default();
    if !single_line(target, text, &mut found) {
        error_block(target, text, &mut found);
    }
    let mut error = LogError::new(format!("kbuild.compiler{}", found.type_suffix));
    error.error_summary = found.summary;
    error.report = found.report;
    error.set_str("script", script);
    error.set_str("target", target);
    error.set_str("src_file", found.src_file);
    error.set_str("location", found.location);
    error.set_str("line_no", found.line_no);
    error.set_str("position", found.position);
    error
        .signature_fields
        .extend(["src_file".into(), "target".into()]);
    for field in ["location", "line_no", "position"] {
        if error.attribute_str(field).is_some_and(|v| !v.is_empty()) {
            error.signature_fields.push(field.into());
        }
    }
    error.generate_signature(true);
    error
}

/// `drivers/x.c:743:1: error: message` naming the target's stem (upstream
/// `^.*?(?P<src_file><stem>.*?):(?P<line_no>\d+):(?P<position>\d+): (?P<type>.*?): (?P<message>.*?)\n`).
fn single_line(target: &str, text: &str, found: &mut Found) -> bool {
    let stem = Stem::new(splitext(target).0);
    let Some(((start, end), c)) = stem.with_suffix(text, &LINE_MESSAGE) else {
        return false;
    };
    let line_start = memchr::memrchr(b'\n', &text.as_bytes()[..start]).map_or(0, |i| i + 1);
    found.report = text[line_start..].to_string();
    found.src_file = format!("{}{}", &text[start..end], group(&c, "rest"));
    found.line_no = group(&c, "line_no").to_string();
    found.position = group(&c, "position").to_string();
    found.type_suffix = format!(".{}", group(&c, "type"));
    found.summary = group(&c, "message").to_string();
    !text.is_empty()
}

/// The block from the last line naming the target's stem (not the first line of the text).
fn error_block(target: &str, text: &str, found: &mut Found) {
    let Some(block_start) = Stem::new(splitext(target).0).last_line_start(text) else {
        return;
    };
    if block_start == 0 {
        return;
    }
    let report = &text[block_start..];
    found.report = report.to_string();
    if !compiler_message(target, report, found) {
        linker_message(target, report, found);
    }
}

fn compiler_message(target: &str, text: &str, found: &mut Found) -> bool {
    if text.contains("ld: ") {
        return false;
    }
    if let Some(c) = COMPILER_MESSAGE.captures(text) {
        found.type_suffix = format!(".{}", group(&c, "type"));
        found.summary = strip(c.get(1).map_or("", |m| m.as_str())).to_string();
    }
    let stem = Stem::new(splitext(target).0);
    if let Some(((s, e), c)) = stem.with_suffix(text, &EXT_LOCATION) {
        found.src_file = format!("{}{}", &text[s..e], group(&c, "ext"));
        found.location = group(&c, "location").to_string();
        return true;
    }
    let base = Stem::new(splitext(basename(target)).0);
    if let Some(((s, e), c)) = base.with_suffix(text, &EXT_LOCATION) {
        found.src_file = join(
            dirname(target),
            &format!("{}{}", &text[s..e], group(&c, "ext")),
        );
        found.location = group(&c, "location").to_string();
        return true;
    }
    false
}

fn linker_message(target: &str, text: &str, found: &mut Found) -> bool {
    let object = if target != basename(target) {
        absolute_object(target, text)
    } else {
        RELATIVE_OBJECT
            .captures(text)
            .map(|c| group(&c, "obj_file").to_string())
    };
    if let Some(obj_file) = object {
        found.type_suffix = ".linker_error".into();
        let src_dir = dirname(&obj_file);
        let name = Stem::new(splitext(basename(&obj_file)).0);
        if let Some(((s, e), c)) = name.with_suffix(text, &EXT_LINKER_MESSAGE) {
            found.location = group(&c, "location").to_string();
            found.src_file = join(src_dir, &format!("{}{}", &text[s..e], group(&c, "ext")));
            found.summary = strip(group(&c, "message")).to_string();
        }
        return true;
    }
    if let Some(c) = ANY_LINKER.captures(text) {
        found.type_suffix = ".linker_error".into();
        found.summary = group(&c, "message").to_string();
        return true;
    }
    false
}

/// Upstream `ld: .*?(?P<obj_file><target>\.\w+)`: the first `ld: ` line naming the target
/// with an extension after the `ld: `.
fn absolute_object(target: &str, text: &str) -> Option<String> {
    let stem = Stem::new(target);
    memchr::memmem::find_iter(text.as_bytes(), b"ld: ").find_map(|at| {
        let from = at + 4;
        let line_end =
            memchr::memchr(b'\n', &text.as_bytes()[from..]).map_or(text.len(), |i| from + i);
        let line = &text[from..line_end];
        stem.with_suffix(line, &EXT).map(|((s, e), ext)| {
            let ext_len = ext.get(0).map_or(0, |m| m.end());
            line[s..e + ext_len].to_string()
        })
    })
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (
        &*COMPILER_MESSAGE,
        &*ANY_LINKER,
        &*RELATIVE_OBJECT,
        &*LINE_MESSAGE,
    );
    let _ = (&*EXT_LOCATION, &*EXT, &*EXT_LINKER_MESSAGE);
}
