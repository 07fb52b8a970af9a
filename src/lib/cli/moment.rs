//! A moment as an operator writes it (`snapshot --at`): an RFC 3339 time with its
//! offset, or a span before now. Parsed by the `jiff` crate; the pool keeps times as
//! nanoseconds since the epoch, UTC.

use crate::error::{Error, Result};
use std::str::FromStr;

/// How a moment may be written, for every message about a bad one.
const FORMS: &str = "an RFC 3339 time with its offset, like 2026-11-25T02:00:00Z or 2026-11-25T03:00:00+01:00, \
                     or a span before now, like -6h, -90m, -2d or \"6h ago\"";

/// The moment `text` names, in nanoseconds since the epoch, `now_ns` being now. A
/// moment after now is refused here; one older than the history, by the caller, who
/// knows the history.
pub fn parse_moment(text: &str, now_ns: u64) -> Result<u64> {
    let text = text.trim();
    let moment = match jiff::Timestamp::from_str(text) {
        Ok(time) => {
            let ns = time.as_nanosecond();
            if ns < 0 {
                return Err(Error::invalid(format!("{text:?} is before 1970: no pool holds it")));
            }
            // Past 2554 (u64 nanoseconds): in the future whatever the clock says.
            u64::try_from(ns).unwrap_or(u64::MAX)
        }
        Err(as_time) => {
            let span = jiff::Span::from_str(text).map_err(|as_span| {
                // Say why in the terms of what it looks like: a date, a span, or neither.
                let looks_like_date = text.len() >= 10 && text.as_bytes()[4] == b'-';
                let looks_like_span = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
                match (looks_like_date, looks_like_span) {
                    (true, _) => Error::invalid(format!("bad moment {text:?} ({as_time}): write {FORMS}")),
                    (false, true) => Error::invalid(format!("bad moment {text:?} ({as_span}): write {FORMS}")),
                    (false, false) => Error::invalid(format!("bad moment {text:?}: write {FORMS}")),
                }
            })?;
            let span = span
                .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|e| Error::invalid(format!("bad moment {text:?} ({e}): write {FORMS}")))?;
            if !span.is_negative() && !span.is_zero() {
                return Err(Error::invalid(format!(
                    "{text:?} is {span:#} from now, in the future: a span before now is written -{text} or \"{text} ago\""
                )));
            }
            let back = u64::try_from(span.as_nanos().unsigned_abs()).unwrap_or(u64::MAX);
            now_ns.checked_sub(back).ok_or_else(|| Error::invalid(format!("{text:?} reaches before 1970")))?
        }
    };
    if moment > now_ns {
        return Err(Error::invalid(format!(
            "{text} is in the future (now is {}): a snapshot can only hold a moment that has passed",
            crate::utc::format_time_ns(now_ns)
        )));
    }
    Ok(moment)
}

#[cfg(test)]
mod tests {
    use super::parse_moment;

    const NOW: u64 = 1_764_036_000 * 1_000_000_000; // 2025-11-25T02:00:00Z

    #[test]
    fn times_and_spans_before_now_name_the_moment() {
        let s = 1_000_000_000;
        assert_eq!(parse_moment("2025-11-25T02:00:00Z", NOW).unwrap(), NOW);
        assert_eq!(parse_moment("2025-11-25T02:00:00+01:00", NOW).unwrap(), NOW - 3600 * s);
        assert_eq!(parse_moment("2025-11-25 01:59:59.5Z", NOW).unwrap(), NOW - s / 2);
        assert_eq!(parse_moment("-6h", NOW).unwrap(), NOW - 6 * 3600 * s);
        assert_eq!(parse_moment("6h ago", NOW).unwrap(), NOW - 6 * 3600 * s);
        assert_eq!(parse_moment("-2d", NOW).unwrap(), NOW - 2 * 86400 * s);
        assert_eq!(parse_moment("-1h30m", NOW).unwrap(), NOW - 5400 * s);
        assert_eq!(parse_moment("0s", NOW).unwrap(), NOW);
    }

    #[test]
    fn the_future_and_what_is_not_a_moment_are_refused_saying_how_to_write_one() {
        for (text, says) in [
            ("2025-11-25T02:00:01Z", "in the future"),
            ("2999-01-01T00:00:00Z", "in the future"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("6h", "-6h"),
            ("2025-11-25T02:00:00", "offset"),
            ("yesterday", "RFC 3339"),
            ("", "RFC 3339"),
            ("-2000000d", "1970"),
        ] {
            let error = parse_moment(text, NOW).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
