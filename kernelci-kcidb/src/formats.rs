//! The schema's string formats: `uri`, `date-time` and `email`, checked exactly as the
//! reference validator does (Python `jsonschema` with `rfc3987` and `rfc3339-validator`).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};

use crate::error::Format;

impl Format {
    /// Whether `s` is of this format (full-string semantics; see [`crate::patterns`] for the
    /// trailing line feed that Python's `$` lets through).
    pub fn matches(self, s: &str) -> bool {
        match self {
            Format::Uri => is_uri(s),
            Format::DateTime => is_date_time(s),
            Format::Email => is_email(s),
        }
    }
}

/// `email`: Python's `jsonschema` only checks for an `@`.
pub fn is_email(s: &str) -> bool {
    s.contains('@')
}

// ----- date-time ------------------------------------------------------------------------

/// The parts of an RFC 3339 date-time.
struct DateTimeParts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i32,
}

/// `date-time`: RFC 3339 as `rfc3339-validator` 0.1.4 checks it, after upper-casing (so `t`
/// and `z` are accepted): `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, year not 0, a day
/// that exists in its month, hours 00-23, minutes and seconds 00-59 (no leap second),
/// offsets up to ±23:59, any number of fraction digits.
pub fn is_date_time(s: &str) -> bool {
    parse_parts(s).is_some()
}

/// Parses a `date-time` that [`is_date_time`] accepts. Fraction digits beyond nanoseconds
/// are truncated.
pub fn parse_date_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let p = parse_parts(s)?;
    let date = NaiveDate::from_ymd_opt(p.year, p.month, p.day)?;
    let time = NaiveTime::from_hms_nano_opt(p.hour, p.minute, p.second, p.nanos)?;
    let offset = FixedOffset::east_opt(p.offset_seconds)?;
    date.and_time(time).and_local_timezone(offset).single()
}

fn parse_parts(s: &str) -> Option<DateTimeParts> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let minute = num(14..16)?;
    let second = num(17..19)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || year == 0 || !(1..=12).contains(&month) {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let mut scale = 100_000_000u32;
        for &d in &b[start..end.min(start + 9)] {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
        }
        i = end;
    }
    let offset_seconds = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    Some(DateTimeParts {
        year: i32::try_from(year).ok()?,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset_seconds,
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

// ----- uri ------------------------------------------------------------------------------

/// `uri`: an absolute URI with an optional fragment, RFC 3986 §3 / appendix A (the
/// `rfc3987` package's `URI` rule): ASCII only, a scheme, then either `//authority` and an
/// absolute-or-empty path, or a path; `?query` and `#fragment` made of path characters, `/`
/// and `?`; every `%` followed by two hexadecimal digits.
pub fn is_uri(s: &str) -> bool {
    let b = s.as_bytes();
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut i = 1;
    while i < b.len() && class(b[i]) & SCHEME != 0 {
        i += 1;
    }
    if b.get(i) != Some(&b':') {
        return false;
    }
    let rest = &b[i + 1..];
    // hier-part: "//" authority path-abempty, or a path (made of pchar and '/'; not starting
    // with "//", so never with an empty first segment after a '/').
    let path_start = match rest.strip_prefix(b"//") {
        Some(after) => {
            let end = after.iter().position(|&c| matches!(c, b'/' | b'?' | b'#'));
            let end = end.unwrap_or(after.len());
            if !is_authority(&after[..end]) {
                return false;
            }
            2 + end
        }
        None => 0,
    };
    // One pass over path, ?query and #fragment.
    let mut allowed = PATH;
    let mut i = path_start;
    while i < rest.len() {
        let c = rest[i];
        if class(c) & allowed != 0 {
            i += 1;
        } else if c == b'%' {
            if !rest.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                || !rest.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            {
                return false;
            }
            i += 3;
        } else if c == b'?' && allowed == PATH {
            allowed = QUERY;
            i += 1;
        } else if c == b'#' && allowed != FRAGMENT {
            allowed = FRAGMENT;
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Character classes of RFC 3986, as bits.
const UNRESERVED: u8 = 1;
const SUB_DELIM: u8 = 2;
const SCHEME: u8 = 4;
/// pchar (without `%XX`): unreserved / sub-delims / ":" / "@", plus "/" in paths.
const PATH: u8 = 8;
/// Query characters: path characters and "?".
const QUERY: u8 = 16;
/// Fragment characters: the same set as the query, in a different state.
const FRAGMENT: u8 = 32;

const CLASSES: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        let pchar = unreserved || sub_delim || b == b':' || b == b'@';
        let mut bits = 0;
        if unreserved {
            bits |= UNRESERVED;
        }
        if sub_delim {
            bits |= SUB_DELIM;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') {
            bits |= SCHEME;
        }
        if pchar || b == b'/' {
            bits |= PATH;
        }
        if pchar || b == b'/' || b == b'?' {
            bits |= QUERY | FRAGMENT;
        }
        t[c] = bits;
        c += 1;
    }
    t
};

fn class(c: u8) -> u8 {
    CLASSES.get(usize::from(c)).copied().unwrap_or(0)
}

fn split_first(b: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match b.iter().position(|&c| c == sep) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    }
}

fn is_unreserved(c: u8) -> bool {
    class(c) & UNRESERVED != 0
}

fn is_sub_delim(c: u8) -> bool {
    class(c) & SUB_DELIM != 0
}

/// Whether every byte is allowed by `allowed` or starts a valid `%XX` escape.
fn all_chars(b: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_authority(a: &[u8]) -> bool {
    let (userinfo, host_port) = match a.iter().position(|&c| c == b'@') {
        Some(i) => (Some(&a[..i]), &a[i + 1..]),
        None => (None, a),
    };
    if let Some(u) = userinfo
        && !all_chars(u, |c| is_unreserved(c) || is_sub_delim(c) || c == b':')
    {
        return false;
    }
    let (host_ok, port) = if let Some(inner) = host_port.strip_prefix(b"[") {
        let Some(close) = inner.iter().position(|&c| c == b']') else {
            return false;
        };
        let literal = &inner[..close];
        let after = &inner[close + 1..];
        let port = match after {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        };
        (is_ipv6(literal) || is_ipv_future(literal), port)
    } else {
        let (host, port) = split_first(host_port, b':');
        (
            all_chars(host, |c| is_unreserved(c) || is_sub_delim(c)),
            port,
        )
    };
    host_ok && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`
fn is_ipv_future(b: &[u8]) -> bool {
    let Some(rest) = b.strip_prefix(b"v") else {
        return false;
    };
    let Some(dot) = rest.iter().position(|&c| c == b'.') else {
        return false;
    };
    let (hex, tail) = (&rest[..dot], &rest[dot + 1..]);
    !hex.is_empty()
        && hex.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&c| is_unreserved(c) || is_sub_delim(c) || c == b':')
}

/// An IPv6 address (RFC 3986 `IPv6address`): eight 16-bit groups, or fewer around one `::`,
/// the last 32 bits possibly written as an IPv4 address.
fn is_ipv6(b: &[u8]) -> bool {
    match find(b, b"::") {
        Some(pos) => {
            let (left, right) = (&b[..pos], &b[pos + 2..]);
            match (count_groups(left, false), count_groups(right, true)) {
                (Some(l), Some(r)) => l + r <= 7,
                _ => false,
            }
        }
        None => count_groups(b, true) == Some(8),
    }
}

/// Counts the 16-bit groups of `h16 *(":" h16)` (an IPv4 tail counts 2), or `None`.
fn count_groups(b: &[u8], ipv4_tail: bool) -> Option<usize> {
    if b.is_empty() {
        return Some(0);
    }
    let parts: Vec<&[u8]> = b.split(|&c| c == b':').collect();
    let last = parts.len() - 1;
    let mut count = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == last && ipv4_tail && part.contains(&b'.') {
            if !is_ipv4(part) {
                return None;
            }
            count += 2;
        } else if (1..=4).contains(&part.len()) && part.iter().all(u8::is_ascii_hexdigit) {
            count += 1;
        } else {
            return None;
        }
    }
    Some(count)
}

fn is_ipv4(b: &[u8]) -> bool {
    let mut n = 0;
    for octet in b.split(|&c| c == b'.') {
        n += 1;
        let ok = (1..=3).contains(&octet.len())
            && octet.iter().all(u8::is_ascii_digit)
            && octet
                .iter()
                .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
                <= 255;
        if !ok {
            return false;
        }
    }
    n == 4
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times() {
        for ok in [
            "2020-08-14T23:08:06.967000+00:00",
            "2025-01-01T00:00:00Z",
            "2025-01-01t00:00:00z",
            "2025-03-03T06:14:51.123456789+05:30",
            "2024-02-29T00:00:00-00:00",
            "2025-03-03T06:14:51.1234567890123Z",
        ] {
            assert!(is_date_time(ok), "{ok}");
            assert!(parse_date_time(ok).is_some(), "{ok}");
        }
        for bad in [
            "2025-03-03T06:14:51.123456",
            "2025/03/03 06:30",
            "2025-03-03 06:14:51Z",
            "2023-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T23:60:00Z",
            "2025-01-01T23:59:60Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+24:00",
            "2025-01-01T00:00:00+0100",
            "2025-01-01T00:00:00Z\n",
            "２025-01-01T00:00:00Z",
            "",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
        let t = parse_date_time("2025-01-01T01:30:00.5+01:30").unwrap();
        assert_eq!(t.timestamp(), 1_735_689_600);
        assert_eq!(t.timestamp_subsec_millis(), 500);
    }

    #[test]
    fn uris() {
        for ok in [
            "https://example.com/build.log",
            "http://example.com:8080/a/b?c=d&e=f#frag",
            "https://[2001:db8::1]/x",
            "https://[::ffff:192.0.2.1]:443/",
            "https://[v1.fe80::a+en1]/",
            "https://user:pw@host/p%20q",
            "file:///tmp/x",
            "mailto:a@b.c",
            "urn:isbn:0451450523",
            "https://",
            "s3://bucket/key",
            "https://host/a//b",
        ] {
            assert!(is_uri(ok), "{ok}");
        }
        for bad in [
            "logs/build.log",
            "/abs/path",
            "://x",
            "1http://x",
            "https://exa mple.com",
            "https://example.com/ü",
            "https://host/%zz",
            "https://host/%2",
            "https://[2001:db8::1/x",
            "https://[2001:db8:::1]/",
            "https://[1:2:3:4:5:6:7:8:9]/",
            "https://host:port/",
            "https://a@b@c/",
            "https://host/x\n",
            "https://host/a#b#c",
            "",
        ] {
            assert!(!is_uri(bad), "{bad}");
        }
    }

    #[test]
    fn ipv6_forms() {
        for ok in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "::1.2.3.4",
            "1::2:3",
            "1:2:3:4:5:6:7::",
        ] {
            assert!(is_ipv6(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "12345::",
            "::1.2.3",
            ":1::",
        ] {
            assert!(!is_ipv6(bad.as_bytes()), "{bad}");
        }
        assert!(is_ipv4(b"255.0.09.001"));
        assert!(!is_ipv4(b"256.0.0.1"));
    }

    #[test]
    fn emails() {
        assert!(is_email("20250303.1234-1-developer@kernel.org"));
        assert!(!is_email("20250303.1234-1-developer"));
    }
}
