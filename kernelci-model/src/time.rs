//! Timestamps: naive UTC, rendered the way the upstream API renders them, parsed the way
//! Python 3.11's `datetime.fromisoformat` parses them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// A point in time in UTC without a zone suffix (upstream stores naive UTC).
pub type Timestamp = NaiveDateTime;

/// The value could not be read as an ISO 8601 date or date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid isoformat string: '{0}'")]
pub struct InvalidIsoFormat(pub String);

/// Now, in naive UTC with microsecond precision.
pub fn now() -> Timestamp {
    let now = Utc::now().naive_utc();
    from_micros(to_micros(&now))
}

/// Render like pydantic: `2024-02-01T09:58:28.479138`, without the fraction when it is zero.
pub fn format(ts: &Timestamp) -> String {
    if ts.and_utc().timestamp_subsec_micros() == 0 {
        ts.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        ts.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// Render a zone-aware UTC time as CloudEvents carry it: `2024-01-04T10:48:39.974782+00:00`.
pub fn format_aware(ts: &Timestamp) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Microseconds since the Unix epoch (the storage representation).
pub fn to_micros(ts: &Timestamp) -> i64 {
    ts.and_utc().timestamp_micros()
}

/// The inverse of [`to_micros`]; out-of-range values clamp to the epoch.
pub fn from_micros(us: i64) -> Timestamp {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .naive_utc()
}

/// Parse what Python 3.11 `datetime.fromisoformat` accepts (the common forms): a date
/// (`2024-11-01`), a date-time with `T` or a space, optional seconds and a fraction of any
/// length, and an optional `Z` or `±HH:MM` offset. Aware values are converted to naive UTC.
pub fn parse_iso(s: &str) -> Result<Timestamp, InvalidIsoFormat> {
    parse_inner(s.trim_end()).ok_or_else(|| InvalidIsoFormat(s.to_string()))
}

fn parse_inner(s: &str) -> Option<Timestamp> {
    if s.len() < 10 || !s.is_ascii() {
        return None;
    }
    let date = parse_date(&s[..10])?;
    if s.len() == 10 {
        return Some(date.and_time(NaiveTime::MIN));
    }
    let sep = s.as_bytes()[10];
    if sep != b'T' && sep != b' ' {
        return None;
    }
    let rest = &s[11..];
    // Split off a zone designator.
    let (time_part, offset_secs) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, off) = rest.split_at(pos);
        (t, parse_offset(off)?)
    } else {
        (rest, 0)
    };
    let time = parse_time(time_part)?;
    let naive = date.and_time(time);
    Some(naive - TimeDelta::seconds(offset_secs))
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        digits(&s[..4])? as i32,
        digits(&s[5..7])?,
        digits(&s[8..10])?,
    )
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    let (hms, frac) = match s.split_once(['.', ',']) {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h] if h.len() == 2 => (digits(h)?, 0, 0),
        [h, m] if h.len() == 2 && m.len() == 2 => (digits(h)?, digits(m)?, 0),
        [h, m, s] if h.len() == 2 && m.len() == 2 && s.len() == 2 => {
            (digits(h)?, digits(m)?, digits(s)?)
        }
        _ => return None,
    };
    let micros = match frac {
        None => 0,
        Some(f) => {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut padded: String = f.chars().take(6).collect();
            while padded.len() < 6 {
                padded.push('0');
            }
            padded.parse().ok()?
        }
    };
    NaiveTime::from_hms_micro_opt(h, m, sec, micros)
}

fn parse_offset(s: &str) -> Option<i64> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &s[1..];
    let (h, m) = match body.len() {
        2 => (digits(body)?, 0),
        4 => (digits(&body[..2])?, digits(&body[2..])?),
        5 if &body[2..3] == ":" => (digits(&body[..2])?, digits(&body[3..])?),
        8 if &body[2..3] == ":" && &body[5..6] == ":" => {
            (digits(&body[..2])?, digits(&body[3..5])?)
        }
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (i64::from(h) * 3600 + i64::from(m) * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        format(&parse_iso(s).unwrap())
    }

    #[test]
    fn parses_python_forms() {
        assert_eq!(p("2024-11-01"), "2024-11-01T00:00:00");
        assert_eq!(
            p("2024-02-26T13:21:55.301000"),
            "2024-02-26T13:21:55.301000"
        );
        assert_eq!(p("2024-02-26T13:21:55.3"), "2024-02-26T13:21:55.300000");
        assert_eq!(p("2024-02-26 13:21"), "2024-02-26T13:21:00");
        assert_eq!(p("2024-02-26T13:21:55Z"), "2024-02-26T13:21:55");
        assert_eq!(p("2024-02-26T13:21:55+02:00"), "2024-02-26T11:21:55");
        assert_eq!(p("2024-02-26T01:00:00-01:30"), "2024-02-26T02:30:00");
    }

    #[test]
    fn rejects_junk_with_python_message() {
        for bad in [
            "bad",
            "2024-13-01",
            "2024-02-30",
            "2024-02-26X10:00",
            "2024-02-26T1",
            "",
        ] {
            let e = parse_iso(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("Invalid isoformat string: '{bad}'"));
        }
    }

    #[test]
    fn formats_like_pydantic() {
        let t = parse_iso("2024-02-01T09:58:28.479138").unwrap();
        assert_eq!(format(&t), "2024-02-01T09:58:28.479138");
        assert_eq!(format_aware(&t), "2024-02-01T09:58:28.479138+00:00");
        assert_eq!(from_micros(to_micros(&t)), t);
    }
}
