//! Durations and times as operators type them, and times as operators read them.

use std::time::Duration;

use chrono::{DateTime, Local, Utc};

/// Parses `90s`, `5m`, `1h30m`, `2d`, `500ms`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 30s, 5m or 1h30m");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(unit).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Parses `now`, `+5m` (from `now`) or an RFC 3339 time.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text == "now" {
        return Ok(now);
    }
    if let Some(offset) = text.strip_prefix('+') {
        let d = parse_duration(offset)?;
        return chrono::Duration::from_std(d).map(|d| now + d).map_err(|_| format!("{text:?} is too far away"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not now, +DURATION or an RFC 3339 time such as 2026-12-24T18:00:00Z"))
}

/// A compact duration: `2m13s`, `1h05m`, `3d4h`.
pub fn compact(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A time in local time with a hint relative to `now`: `2026-11-26 10:00:00 (ends in 2m13s)`.
pub fn local_with_hint(t: DateTime<Utc>, now: DateTime<Utc>, future: &str, past: &str) -> String {
    let local = t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
    let delta = t - now;
    if delta.num_seconds() >= 0 {
        format!("{local} ({future} in {})", compact(delta))
    } else {
        format!("{local} ({past} {} ago)", compact(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "m", "5x", "-5m", "5 m", "1.5h", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("+5m", now), Ok(now + chrono::Duration::minutes(5)));
        assert!(parse_time("2026-11-26T12:00:00+02:00", now).is_ok());
        assert!(parse_time("tomorrow", now).is_err());
        assert_eq!(compact(chrono::Duration::seconds(133)), "2m13s");
    }
}
