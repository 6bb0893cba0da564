//! Times as operators type them (`now`, `+5m`, RFC 3339) and read them. Durations themselves are
//! `auction_proto::duration`'s, shared with the services and the load generator.

use auction_proto::duration;
use chrono::{DateTime, Local, Utc};

/// Parses `now`, `+5m` (from `now`) or an RFC 3339 time.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text == "now" {
        return Ok(now);
    }
    if let Some(offset) = text.strip_prefix('+') {
        let d = duration::parse(offset).map_err(|e| e.to_string())?;
        return chrono::Duration::from_std(d).map(|d| now + d).map_err(|_| format!("{text:?} is too far away"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not now, +DURATION or an RFC 3339 time such as 2026-12-24T18:00:00Z"))
}

/// The size of `d`, compactly (`2m13s`); the caller says whether it is ahead or past.
pub fn span(d: chrono::Duration) -> String {
    duration::compact(d.abs().to_std().unwrap_or_default())
}

/// A time in local time: `2026-11-26 10:00:00`.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time known to be past, in local time with how long ago: `2026-11-26 10:00:00 (started 5s
/// ago)`, or `(started just now)` within the second or when this clock is behind.
pub fn local_since(t: DateTime<Utc>, now: DateTime<Utc>, past: &str) -> String {
    let ago = now - t;
    if ago.num_seconds() >= 1 {
        format!("{} ({past} {} ago)", local(t), span(ago))
    } else {
        format!("{} ({past} just now)", local(t))
    }
}

/// A time in local time with a hint relative to `now`: `2026-11-26 10:00:00 (ends in 2m13s)`.
pub fn local_with_hint(t: DateTime<Utc>, now: DateTime<Utc>, future: &str, past: &str) -> String {
    let local = local(t);
    let delta = t - now;
    if delta.num_seconds() >= 0 {
        format!("{local} ({future} in {})", span(delta))
    } else {
        format!("{local} ({past} {} ago)", span(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("+5m", now), Ok(now + chrono::Duration::minutes(5)));
        assert!(parse_time("2026-11-26T12:00:00+02:00", now).is_ok());
        assert!(parse_time("tomorrow", now).is_err());
        assert_eq!(parse_time("+1h30m", now), Ok(now + chrono::Duration::minutes(90)));
        assert!(parse_time("+5x", now).unwrap_err().contains("unknown unit"));
        assert_eq!(span(chrono::Duration::seconds(-133)), "2m13s");
        let hint = |t: DateTime<Utc>| local_since(t, now, "started").split_once(" (").unwrap().1.to_owned();
        assert_eq!(hint(now - chrono::Duration::seconds(133)), "started 2m13s ago)");
        assert_eq!(hint(now - chrono::Duration::milliseconds(400)), "started just now)");
        assert_eq!(hint(now + chrono::Duration::milliseconds(400)), "started just now)", "this clock behind");
    }
}
