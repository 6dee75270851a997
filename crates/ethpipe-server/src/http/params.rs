//! Input validation at the HTTP edge: every path segment and query value is
//! parsed here into a typed value, or refused with an [`Invalid`] that says
//! what was wrong and what is expected. The service only sees valid input.

use ethpipe_core::{Day, Pipeline};

use crate::error::Invalid;
use crate::service::parse_pipeline;

/// Rows per page of transfers, runs and search results, at most.
pub const MAX_PAGE: u32 = 100;
/// Log lines per request, at most.
pub const MAX_LOG_LINES: u32 = 1000;
/// Longest span of days one request may cover (10 years).
pub const MAX_DAYS: i64 = 3660;
/// Longest search text.
pub const MAX_SEARCH_CHARS: usize = 100;
/// Longest trigger name.
pub const MAX_TRIGGER_CHARS: usize = 200;

fn shown(text: &str) -> String {
    Invalid::shown(text)
}

/// `0x` + 40 hex digits, returned lowercased (the tables store lowercase).
pub fn address(text: &str) -> Result<String, Invalid> {
    let ok = text.len() == 42
        && (text.starts_with("0x") || text.starts_with("0X"))
        && text.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Invalid::new(format!(
            "invalid address '{}': expected 0x followed by 40 hex digits",
            shown(text)
        )))
    }
}

/// A UTC day, `YYYY-MM-DD`.
pub fn day(name: &str, text: &str) -> Result<Day, Invalid> {
    let day: Day = text.parse().map_err(|_| {
        Invalid::new(format!(
            "invalid {name} '{}': expected a calendar day as YYYY-MM-DD, e.g. 2024-03-01",
            shown(text)
        ))
    })?;
    // Beyond these the tables hold nothing, and far dates overflow arithmetic.
    let year = chrono::Datelike::year(&day.naive());
    if !(1970..=9999).contains(&year) {
        return Err(Invalid::new(format!(
            "invalid {name} '{text}': expected a year between 1970 and 9999"
        )));
    }
    Ok(day)
}

pub fn optional_day(name: &str, text: Option<&str>) -> Result<Option<Day>, Invalid> {
    text.map(|t| day(name, t)).transpose()
}

/// `from`..=`to`, ordered and at most [`MAX_DAYS`] long.
pub fn day_range(from: Day, to: Day) -> Result<(), Invalid> {
    if from > to {
        return Err(Invalid::new(format!(
            "from {from} is after to {to}; give the earlier day first"
        )));
    }
    let span = (to.naive() - from.naive()).num_days() + 1;
    if span > MAX_DAYS {
        return Err(Invalid::new(format!(
            "the range {from}..{to} covers {span} days; at most {MAX_DAYS} are allowed"
        )));
    }
    Ok(())
}

/// A page size between 1 and `max`, `default` when absent.
pub fn limit(text: Option<&str>, default: u32, max: u32) -> Result<u32, Invalid> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Invalid::new(format!(
            "invalid limit '{}': expected a whole number from 1 to {max}",
            shown(text)
        ))),
    }
}

pub fn optional_pipeline(text: Option<&str>) -> Result<Option<Pipeline>, Invalid> {
    text.map(parse_pipeline).transpose()
}

/// Run states a filter may name.
pub const RUN_STATUSES: [&str; 3] = ["running", "success", "failed"];

/// A run status filter.
pub fn status(text: Option<&str>) -> Result<Option<&'static str>, Invalid> {
    let Some(text) = text else {
        return Ok(None);
    };
    match RUN_STATUSES.into_iter().find(|s| *s == text) {
        Some(status) => Ok(Some(status)),
        None => Err(Invalid::new(format!(
            "invalid status '{}': expected running, success or failed",
            shown(text)
        ))),
    }
}

/// A ledger id (runs, log lines, backfills): a positive integer.
pub fn id(name: &str, text: &str) -> Result<i64, Invalid> {
    match text.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Invalid::new(format!(
            "invalid {name} '{}': expected a positive whole number",
            shown(text)
        ))),
    }
}

pub fn optional_id(name: &str, text: Option<&str>) -> Result<Option<i64>, Invalid> {
    text.map(|t| id(name, t)).transpose()
}

/// Free text that names a trigger in filters (never interpreted as SQL).
pub fn trigger_filter(text: Option<&str>) -> Result<Option<String>, Invalid> {
    match text {
        None => Ok(None),
        Some(t) if !t.is_empty() && t.chars().count() <= MAX_TRIGGER_CHARS && !t.contains('\0') => {
            Ok(Some(t.to_string()))
        }
        Some(t) => Err(Invalid::new(format!(
            "invalid trigger '{}': expected 1 to {MAX_TRIGGER_CHARS} characters",
            shown(t)
        ))),
    }
}

/// A trigger's name in a path.
pub fn trigger_name(text: &str) -> Result<&str, Invalid> {
    if text.is_empty() || text.chars().count() > MAX_TRIGGER_CHARS {
        return Err(Invalid::new(format!(
            "invalid trigger name: expected 1 to {MAX_TRIGGER_CHARS} characters"
        )));
    }
    Ok(text)
}

/// Search text: trimmed, 1 to [`MAX_SEARCH_CHARS`] characters.
pub fn search_text(text: Option<&str>) -> Result<String, Invalid> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() || text.chars().count() > MAX_SEARCH_CHARS || text.contains('\0') {
        return Err(Invalid::new(format!(
            "invalid q: expected 1 to {MAX_SEARCH_CHARS} characters (a symbol, a name or an address)"
        )));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_lowercased() {
        let a = address("0xABCDEF0123456789abcdef0123456789abcdef01").unwrap();
        assert_eq!(a, "0xabcdef0123456789abcdef0123456789abcdef01");
        for bad in [
            "",
            "0x",
            "0xabc",
            "abcdef0123456789abcdef0123456789abcdef0123",
            "0xZZcdef0123456789abcdef0123456789abcdef01",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_ranges_and_days() {
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some("100"), 20, 100).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", "1.5", ""] {
            let err = limit(Some(bad), 20, 100).unwrap_err();
            assert!(err.to_string().contains("from 1 to 100"), "{bad}");
        }
        assert!(day("day", "2024-02-30").is_err());
        assert!(day("day", "0001-01-01").is_err());
        let a = day("from", "2024-03-01").unwrap();
        let b = day("to", "2024-02-01").unwrap();
        assert!(day_range(a, b).is_err());
        assert!(day_range(b, a).is_ok());
        assert!(day_range(day("from", "2000-01-01").unwrap(), a).is_err());
    }

    #[test]
    fn statuses_and_trigger_names() {
        assert_eq!(status(Some("failed")).unwrap(), Some("failed"));
        assert!(status(Some("done")).is_err());
        assert!(trigger_name("").is_err());
        assert!(trigger_name(&"x".repeat(201)).is_err());
        assert_eq!(
            trigger_filter(Some("daily")).unwrap().as_deref(),
            Some("daily")
        );
    }
}
