//! Input validation at the HTTP edge: every path segment and query value is
//! parsed here into a typed value, or rejected with a 400 that says what was
//! wrong and what is expected. Handlers and queries only ever see valid input.

use ethpipe_core::{Day, Pipeline};

use crate::error::AppError;

/// Rows per page of transfers, runs and search results, at most.
pub const MAX_PAGE: u32 = 100;
/// Log lines per request, at most.
pub const MAX_LOG_LINES: u32 = 1000;
/// Longest span of days one request may cover (10 years).
pub const MAX_DAYS: i64 = 3660;
/// Longest search text.
pub const MAX_SEARCH_CHARS: usize = 100;

/// `0x` + 40 hex digits, returned lowercased (the tables store lowercase).
pub fn address(text: &str) -> Result<String, AppError> {
    let ok = text.len() == 42
        && (text.starts_with("0x") || text.starts_with("0X"))
        && text.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(AppError::bad_request(format!(
            "invalid address '{}': expected 0x followed by 40 hex digits",
            shown(text)
        )))
    }
}

/// A UTC day, `YYYY-MM-DD`.
pub fn day(name: &str, text: &str) -> Result<Day, AppError> {
    let day: Day = text.parse().map_err(|_| {
        AppError::bad_request(format!(
            "invalid {name} '{}': expected a calendar day as YYYY-MM-DD, e.g. 2024-03-01",
            shown(text)
        ))
    })?;
    // Beyond these the tables hold nothing, and far dates overflow arithmetic.
    let year = chrono::Datelike::year(&day.naive());
    if !(1970..=9999).contains(&year) {
        return Err(AppError::bad_request(format!(
            "invalid {name} '{text}': expected a year between 1970 and 9999"
        )));
    }
    Ok(day)
}

pub fn optional_day(name: &str, text: Option<&str>) -> Result<Option<Day>, AppError> {
    text.map(|t| day(name, t)).transpose()
}

/// `from`..=`to`, ordered and at most [`MAX_DAYS`] long.
pub fn day_range(from: Day, to: Day) -> Result<(), AppError> {
    if from > to {
        return Err(AppError::bad_request(format!(
            "from {from} is after to {to}; give the earlier day first"
        )));
    }
    let span = (to.naive() - from.naive()).num_days() + 1;
    if span > MAX_DAYS {
        return Err(AppError::bad_request(format!(
            "the range {from}..{to} covers {span} days; at most {MAX_DAYS} are allowed"
        )));
    }
    Ok(())
}

/// A page size between 1 and `max`, `default` when absent.
pub fn limit(text: Option<&str>, default: u32, max: u32) -> Result<u32, AppError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(AppError::bad_request(format!(
            "invalid limit '{}': expected a whole number from 1 to {max}",
            shown(text)
        ))),
    }
}

pub fn pipeline(text: &str) -> Result<Pipeline, AppError> {
    text.parse().map_err(|_| {
        AppError::bad_request(format!(
            "unknown pipeline '{}': expected token_transfers or tokens",
            shown(text)
        ))
    })
}

pub fn optional_pipeline(text: Option<&str>) -> Result<Option<Pipeline>, AppError> {
    text.map(pipeline).transpose()
}

/// A run status filter.
pub fn status(text: Option<&str>) -> Result<Option<&'static str>, AppError> {
    match text {
        None => Ok(None),
        Some("running") => Ok(Some("running")),
        Some("success") => Ok(Some("success")),
        Some("failed") => Ok(Some("failed")),
        Some(other) => Err(AppError::bad_request(format!(
            "invalid status '{}': expected running, success or failed",
            shown(other)
        ))),
    }
}

/// A ledger id (runs, log lines): a positive integer.
pub fn id(name: &str, text: &str) -> Result<i64, AppError> {
    match text.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(AppError::bad_request(format!(
            "invalid {name} '{}': expected a positive whole number",
            shown(text)
        ))),
    }
}

pub fn optional_id(name: &str, text: Option<&str>) -> Result<Option<i64>, AppError> {
    text.map(|t| id(name, t)).transpose()
}

/// Free text that names a trigger in filters (never interpreted as SQL).
pub fn trigger_name(text: Option<&str>) -> Result<Option<String>, AppError> {
    match text {
        None => Ok(None),
        Some(t) if !t.is_empty() && t.chars().count() <= 200 && !t.contains('\0') => {
            Ok(Some(t.to_string()))
        }
        Some(t) => Err(AppError::bad_request(format!(
            "invalid trigger '{}': expected 1 to 200 characters",
            shown(t)
        ))),
    }
}

/// Which side of a transfer an address is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    Both,
}

impl Direction {
    pub fn parse(text: Option<&str>) -> Result<Direction, AppError> {
        match text {
            None | Some("both") => Ok(Direction::Both),
            Some("in") => Ok(Direction::In),
            Some("out") => Ok(Direction::Out),
            Some(other) => Err(AppError::bad_request(format!(
                "invalid direction '{}': expected in, out or both",
                shown(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Both => "both",
        }
    }

    pub fn includes_in(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }

    pub fn includes_out(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }
}

/// Where a page of an address's transfers ends: the keyset
/// (block_number, transaction_hash, log_index) of its last row, newest first.
/// Written as `BLOCK-HASH-LOGINDEX`, e.g. `19000123-0xab…-7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub block_number: i64,
    pub transaction_hash: String,
    pub log_index: i64,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, AppError> {
        let bad = || {
            AppError::bad_request(format!(
                "invalid cursor '{}': pass the next_cursor of the previous page unchanged",
                shown(text)
            ))
        };
        let mut parts = text.splitn(3, '-');
        let (Some(block), Some(hash), Some(log)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let block_number = block
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(bad)?;
        let log_index = log
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(bad)?;
        let hash_ok = hash.len() == 66
            && hash.starts_with("0x")
            && hash.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
        if !hash_ok {
            return Err(bad());
        }
        Ok(Cursor {
            block_number,
            transaction_hash: hash.to_ascii_lowercase(),
            log_index,
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{}-{}-{}",
            self.block_number, self.transaction_hash, self.log_index
        )
    }
}

/// Search text: trimmed, 1 to [`MAX_SEARCH_CHARS`] characters.
pub fn search_text(text: Option<&str>) -> Result<String, AppError> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() || text.chars().count() > MAX_SEARCH_CHARS || text.contains('\0') {
        return Err(AppError::bad_request(format!(
            "invalid q: expected 1 to {MAX_SEARCH_CHARS} characters (a symbol, a name or an address)"
        )));
    }
    Ok(text.to_string())
}

/// Echoes user input in messages, shortened so a huge value cannot bloat them.
fn shown(text: &str) -> String {
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text.to_string()
    }
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
            assert!(err.message().contains("from 1 to 100"), "{bad}");
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
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            block_number: 19_000_123,
            transaction_hash: format!("0x{}", "ab".repeat(32)),
            log_index: 7,
        };
        assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "1-2-3",
            "x-0xab-1",
            &format!("-1-0x{}-1", "a".repeat(64)),
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
