//! HTML building blocks: escaping, the page frame, status pills and server-rendered SVG
//! bars. No JavaScript: every view is a URL (filters in the query string).

use std::fmt::Write;

use kernelci_kcidb::Status;
use kernelci_kcidb::query::StatusCounts;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `<a href="...">text</a>` (both escaped).
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// The navigation entries: (path, label).
const NAV: [(&str, &str); 5] = [
    ("/tree", "Trees"),
    ("/regressions", "Regressions"),
    ("/hardware", "Hardware"),
    ("/health", "Health"),
    ("/issues", "Issues"),
];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232a}\
header{background:#1d3557;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}\
header a{color:#fff;text-decoration:none}header a.on{text-decoration:underline}\
header .brand{font-weight:700}main{padding:1em 1.5em;max-width:1400px}\
table{border-collapse:collapse;width:100%;margin:.6em 0}th,td{text-align:left;padding:.3em .6em;\
border-bottom:1px solid #e3e6ea;vertical-align:top}th{background:#f4f6f8}\
.pill{display:inline-block;border-radius:.8em;padding:0 .55em;margin-right:.2em;font-size:12px;\
font-weight:600}.pass{background:#d3f2dc;color:#13692e}.fail{background:#fbd9d9;color:#9b1c1c}\
.inc{background:#fdf0c4;color:#7a5a00}.muted{color:#6b7280}.cards{display:flex;gap:1em;\
flex-wrap:wrap}.card{border:1px solid #e3e6ea;border-radius:6px;padding:.6em 1em;min-width:260px}\
.tabs a{margin-right:1em}.tabs a.on{font-weight:700}form.filters input,form.filters select{\
margin-right:.5em}footer{padding:1em 1.5em;color:#6b7280;border-top:1px solid #e3e6ea}\
code{background:#f4f6f8;padding:.1em .3em;border-radius:3px}pre{background:#f4f6f8;padding:.6em;\
overflow:auto;max-height:30em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\
dt{color:#6b7280}tr.warn td{background:#fdecec}";

/// A whole page: title, the active navigation entry, the body, and the `kci` command that
/// shows the same data on a terminal.
pub fn page(title: &str, active: &str, body: &str, kci: Option<&str>) -> String {
    let mut nav = String::new();
    for (href, label) in NAV {
        let class = if href == active { " class=\"on\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{label}</a>");
    }
    let footer = match kci {
        Some(cmd) => format!("On a terminal: <code>{}</code>", esc(cmd)),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · KernelCI</title><style>{STYLE}</style></head><body>\
         <header><a class=\"brand\" href=\"/tree\">KernelCI</a>{nav}</header>\
         <main><h1>{}</h1>{body}</main><footer>{footer}</footer></body></html>",
        esc(title),
        esc(title)
    )
}

/// The pill of one status (Success / Failed / Inconclusive colors).
pub fn status_pill(status: Option<Status>) -> String {
    let text = status.map_or("NULL", Status::as_str);
    let class = match status {
        Some(Status::Pass) => "pass",
        Some(Status::Fail) => "fail",
        _ => "inc",
    };
    format!("<span class=\"pill {class}\">{text}</span>")
}

/// The pill of a failure class (`kernel`, `test`, `infrastructure`), titled.
pub fn class_pill(class: kernelci_kcidb::regress::FailureClass) -> String {
    format!(
        "<span class=\"pill inc\" title=\"failure class\">{}</span>",
        class.as_str()
    )
}

/// Pass / fail / inconclusive pills of counts.
pub fn count_pills(c: &StatusCounts) -> String {
    format!(
        "<span class=\"pill pass\" title=\"pass\">{}</span><span class=\"pill fail\" \
         title=\"fail\">{}</span><span class=\"pill inc\" title=\"inconclusive\">{}</span>",
        c.pass,
        c.fail,
        c.inconclusive()
    )
}

/// A stacked horizontal bar of every status, with a legend (server-rendered SVG).
pub fn status_bar(c: &StatusCounts) -> String {
    const COLORS: [&str; 7] = [
        "#2e9e4f", "#d64545", "#e07b00", "#8e6bbf", "#9aa3ad", "#3b82c4", "#cfd4da",
    ];
    let total = c.total();
    let mut rects = String::new();
    let mut legend = String::new();
    let mut x = 0.0_f64;
    for ((name, n), color) in c.pairs().into_iter().zip(COLORS) {
        if n == 0 {
            continue;
        }
        let w = 300.0 * n as f64 / total.max(1) as f64;
        let _ = write!(
            rects,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"14\" fill=\"{color}\">\
             <title>{name}: {n}</title></rect>"
        );
        x += w;
        let _ = write!(
            legend,
            "<span style=\"color:{color}\">&#9632;</span> {name} {n} "
        );
    }
    if total == 0 {
        return "<span class=\"muted\">no results</span>".into();
    }
    format!(
        "<svg width=\"300\" height=\"14\" role=\"img\" aria-label=\"{total} results\">{rects}</svg>\
         <div class=\"muted\">{legend}</div>"
    )
}

/// A table from a header and rows of already-rendered cells.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    marked_table(header, rows, &[])
}

/// [`table`] with the rows whose `marked` entry is true highlighted (`tr.warn`).
pub fn marked_table(header: &[&str], rows: &[Vec<String>], marked: &[bool]) -> String {
    if rows.is_empty() {
        return "<p class=\"muted\">Nothing here.</p>".into();
    }
    let mut out = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for (i, row) in rows.iter().enumerate() {
        if marked.get(i).copied().unwrap_or(false) {
            out.push_str("<tr class=\"warn\">");
        } else {
            out.push_str("<tr>");
        }
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A definition list of (label, already-rendered value), skipping empty values.
pub fn fields(items: &[(&str, String)]) -> String {
    let mut out = String::from("<dl>");
    for (k, v) in items {
        if !v.is_empty() {
            let _ = write!(out, "<dt>{}</dt><dd>{v}</dd>", esc(k));
        }
    }
    out.push_str("</dl>");
    out
}

/// An issue's culprit flags that are set (`code, tool`), escaped.
pub fn culprits(culprit: &Option<kernelci_kcidb::Culprit>) -> String {
    let Some(c) = culprit else {
        return String::new();
    };
    let set: Vec<&str> = [("code", c.code), ("tool", c.tool), ("harness", c.harness)]
        .into_iter()
        .filter(|(_, v)| *v == Some(true))
        .map(|(k, _)| k)
        .collect();
    esc(&set.join(", "))
}

/// An optional text, escaped (empty when absent).
pub fn opt(v: &Option<String>) -> String {
    v.as_deref().map(esc).unwrap_or_default()
}

/// An external URL as a link (only http(s); anything else is shown as text).
pub fn url_link(v: &Option<String>) -> String {
    match v.as_deref() {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => link(u, u),
        Some(u) => esc(u),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(enc("maestro:abc/1 x"), "maestro%3Aabc%2F1%20x");
        assert_eq!(
            url_link(&Some("javascript:alert(1)".into())),
            "javascript:alert(1)"
        );
        let c = StatusCounts {
            pass: 3,
            fail: 1,
            ..StatusCounts::default()
        };
        let svg = status_bar(&c);
        assert!(svg.contains("PASS: 3") && svg.contains("FAIL: 1") && !svg.contains("SKIP"));
    }
}
