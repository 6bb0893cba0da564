//! Durations as operators type and read them: the one grammar of every duration setting and flag
//! (the services' configuration, `auctionctl`, `auction-loadgen`) and the one compact display.
//!
//! Parsing is humantime's grammar (`500ms`, `10s`, `5m`, `1h30m`, `2d`, also `1.5h` and long unit
//! names such as `5min`), plus a bare number meaning seconds, which existing configurations use.

use std::borrow::Cow;
use std::time::Duration;

/// The grammar in one paragraph, for help texts (clap's `after_help`).
pub const GRAMMAR: &str = "Durations are a number and a unit (ms, s, m, h or d), several of them in a row, \
     or a bare number of seconds: 500ms, 10s, 5m, 1h30m, 2d, 90.";

/// Why a text is not a duration. The messages are shown to operators as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty; give one such as 10s")]
    Empty,
    #[error("{0:?} is not a duration such as 500ms, 10s, 5m, 1h30m or 2d")]
    Malformed(String),
    #[error("{text:?} has an unknown unit {unit:?}; use ms, s, m, h or d")]
    UnknownUnit { text: String, unit: String },
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// Parses a duration: `500ms`, `10s`, `5m`, `1h30m`, `2d`, or a bare number of seconds (`90`).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    // humantime wants a unit on every number; a bare one has always meant seconds here.
    let bare = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let with_unit = if bare { Cow::Owned(format!("{text}s")) } else { Cow::Borrowed(text) };
    humantime::parse_duration(&with_unit).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, .. } => {
            DurationError::UnknownUnit { text: text.to_owned(), unit }
        }
        humantime::DurationError::NumberOverflow => DurationError::TooLong(text.to_owned()),
        humantime::DurationError::Empty => DurationError::Empty,
        _ => DurationError::Malformed(text.to_owned()),
    })
}

/// A duration in at most two units, for people: `45s`, `2m13s`, `1h05m`, `3d4h`. Whole seconds
/// only, rounded down; what it prints, [`parse`] reads back.
pub fn compact(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn what_operators_type() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("1500ms", Duration::from_millis(1500)),
            ("10s", secs(10)),
            ("30s", secs(30)),
            ("5m", secs(300)),
            ("2h", secs(7200)),
            ("1h30m", secs(5400)),
            ("1h 30m", secs(5400)),
            ("2d", secs(172_800)),
            ("365d", secs(365 * 86_400)),
            ("5min", secs(300)),
            ("1.5h", secs(5400)),
            ("0s", Duration::ZERO),
            // A bare number is seconds, as the services' configurations have always read it.
            ("90", secs(90)),
            ("0", Duration::ZERO),
            ("2.5", Duration::from_millis(2500)),
            (" 10s ", secs(10)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for bad in ["m", "ten", "-5m", "5m-", ".", "1.2.3"] {
            assert_eq!(parse(bad), Err(DurationError::Malformed(bad.to_owned())), "{bad}");
        }
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("  "), Err(DurationError::Empty));
        let unit = parse("10 parsecs").unwrap_err();
        assert_eq!(unit, DurationError::UnknownUnit { text: "10 parsecs".into(), unit: "parsecs".into() });
        assert_eq!(unit.to_string(), r#""10 parsecs" has an unknown unit "parsecs"; use ms, s, m, h or d"#);
        assert!(matches!(parse("5x"), Err(DurationError::UnknownUnit { .. })));
        assert_eq!(parse("99999999999999999999d"), Err(DurationError::TooLong("99999999999999999999d".into())));
    }

    #[test]
    fn compact_display() {
        assert_eq!(compact(Duration::from_millis(900)), "0s");
        assert_eq!(compact(secs(45)), "45s");
        assert_eq!(compact(secs(133)), "2m13s");
        assert_eq!(compact(secs(3600)), "1h00m");
        assert_eq!(compact(secs(3900)), "1h05m");
        assert_eq!(compact(secs(3 * 86_400 + 4 * 3600 + 59)), "3d4h");
    }

    #[test]
    fn what_compact_prints_parses_back() {
        for s in [0, 45, 133, 3900, 3 * 86_400 + 4 * 3600] {
            assert_eq!(parse(&compact(secs(s))), Ok(secs(s)), "{s}");
        }
    }
}
