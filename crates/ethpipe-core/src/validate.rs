//! Edge validation: every value from a source passes through one of these parsers
//! before it becomes part of a row, so the sinks only ever see well-formed data.

use std::fmt;

use chrono::{DateTime, Utc};

/// 2^256 - 1, the largest value an EVM word holds.
const UINT256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

/// An exact unsigned 256-bit integer kept as its canonical decimal string
/// (no sign, no leading zeros), which is what both sinks store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uint(String);

impl Uint {
    /// Parses a decimal uint256; `None` when `text` is not one.
    pub fn parse_decimal(text: &str) -> Option<Uint> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = text.trim_start_matches('0');
        let canonical = if trimmed.is_empty() { "0" } else { trimmed };
        let too_big = canonical.len() > UINT256_MAX.len()
            || (canonical.len() == UINT256_MAX.len() && canonical > UINT256_MAX);
        (!too_big).then(|| Uint(canonical.to_string()))
    }

    pub fn from_u64(value: u64) -> Uint {
        Uint(value.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a source row was rejected: which row, which column, what was wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("source row {row}: {column} {shown} {problem}")]
pub struct RowError {
    /// 1-based position of the row in the run's stream.
    pub row: u64,
    pub column: &'static str,
    shown: String,
    problem: &'static str,
}

impl RowError {
    pub fn new(row: u64, column: &'static str, value: Option<&str>, problem: &'static str) -> Self {
        let shown = match value {
            None => "NULL".to_string(),
            Some(v) if v.chars().count() > 80 => {
                format!("'{}…'", v.chars().take(80).collect::<String>())
            }
            Some(v) => format!("'{v}'"),
        };
        RowError {
            row,
            column,
            shown,
            problem,
        }
    }
}

/// A 20-byte address as `0x` + 40 lowercase hex digits.
pub fn address(row: u64, column: &'static str, value: Option<&str>) -> Result<String, RowError> {
    lower_hex(value, 40).ok_or_else(|| {
        RowError::new(
            row,
            column,
            value,
            "is not an address (expected 0x followed by 40 hex digits)",
        )
    })
}

/// Like [`address`] but NULL is allowed (e.g. from/to of an odd Transfer event).
pub fn optional_address(
    row: u64,
    column: &'static str,
    value: Option<&str>,
) -> Result<Option<String>, RowError> {
    value.map(|v| address(row, column, Some(v))).transpose()
}

/// A 32-byte hash as `0x` + 64 lowercase hex digits.
pub fn hash(row: u64, column: &'static str, value: Option<&str>) -> Result<String, RowError> {
    lower_hex(value, 64).ok_or_else(|| {
        RowError::new(
            row,
            column,
            value,
            "is not a hash (expected 0x followed by 64 hex digits)",
        )
    })
}

/// `0x` + `hex_digits` hex digits, in lower case; `None` if the text is not
/// that. Every address and hash of a day goes through here, and sources
/// send them in lower case: that case is one check and one copy (byte by
/// byte it was a seventh of a BigQuery load's CPU).
fn lower_hex(text: Option<&str>, hex_digits: usize) -> Option<String> {
    let text = text?;
    let bytes = text.as_bytes();
    if bytes.len() != 2 + hex_digits || bytes[0] != b'0' || (bytes[1] | 0x20) != b'x' {
        return None;
    }
    let digits = &bytes[2..];
    if bytes[1] == b'x'
        && digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Some(text.to_owned());
    }
    digits
        .iter()
        .all(u8::is_ascii_hexdigit)
        .then(|| text.to_ascii_lowercase())
}

/// A required non-negative integer that fits in a signed 64-bit column.
pub fn int64(row: u64, column: &'static str, value: Option<&str>) -> Result<i64, RowError> {
    value
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| RowError::new(row, column, value, "is not a non-negative integer"))
}

/// A uint256 that must be exact when present (a transfer's value).
pub fn strict_uint(
    row: u64,
    column: &'static str,
    value: Option<&str>,
) -> Result<Option<Uint>, RowError> {
    match value {
        None => Ok(None),
        Some(v) => Uint::parse_decimal(v).map(Some).ok_or_else(|| {
            RowError::new(
                row,
                column,
                value,
                "is not an unsigned 256-bit decimal integer",
            )
        }),
    }
}

/// A uint256 where a non-integer means "unknown" (tokens' decimals and
/// total_supply, which BigQuery stores as free strings): NULL, per the data contract.
pub fn lenient_uint(value: Option<&str>) -> Option<Uint> {
    value.and_then(Uint::parse_decimal)
}

/// A text column that may hold anything but NUL, which neither sink accepts.
pub fn text(value: Option<&str>) -> Option<String> {
    value.map(|v| v.replace('\0', ""))
}

pub fn timestamp_from_micros(
    row: u64,
    column: &'static str,
    micros: i64,
) -> Result<DateTime<Utc>, RowError> {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .ok_or_else(|| RowError::new(row, column, Some(&micros.to_string()), "is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_is_exact_and_bounded() {
        assert_eq!(Uint::parse_decimal("0").unwrap().as_str(), "0");
        assert_eq!(Uint::parse_decimal("000123").unwrap().as_str(), "123");
        assert_eq!(
            Uint::parse_decimal(UINT256_MAX).unwrap().as_str(),
            UINT256_MAX
        );
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(Uint::parse_decimal(over).is_none());
        assert!(Uint::parse_decimal(&"1".repeat(79)).is_none());
        for bad in ["", "-1", "1.5", "1e18", " 1", "0x10"] {
            assert!(Uint::parse_decimal(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn addresses_and_hashes_are_shape_checked_and_lowercased() {
        let a = address(
            1,
            "token_address",
            Some("0xAbCdEf0123456789abcdef0123456789ABCDEF01"),
        )
        .unwrap();
        assert_eq!(a, "0xabcdef0123456789abcdef0123456789abcdef01");
        assert!(address(1, "x", Some("0xabc")).is_err());
        assert!(address(1, "x", Some("0xZZcdef0123456789abcdef0123456789abcdef01")).is_err());
        assert!(address(1, "x", None).is_err());
        assert_eq!(optional_address(1, "x", None).unwrap(), None);
        assert!(hash(1, "h", Some(&format!("0x{}", "A".repeat(64)))).is_ok());
        assert!(hash(1, "h", Some(&format!("0x{}", "a".repeat(63)))).is_err());
        // Bytes next to the hex letters, and bytes that bit 0x20 would turn
        // into digits or letters, are refused; a capital X prefix is read.
        for bad in ["g", "G", "@", "`", "\u{10}", "\u{1}", "é"] {
            let text = format!("0x{bad}{}", "0".repeat(40 - bad.len()));
            assert!(address(1, "x", Some(&text)).is_err(), "{text:?}");
        }
        assert_eq!(
            address(1, "x", Some(&format!("0X{}", "F".repeat(40)))).unwrap(),
            format!("0x{}", "f".repeat(40))
        );
    }

    #[test]
    fn row_errors_name_the_row_column_and_value() {
        let err = address(42, "from_address", Some("0xnope")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "source row 42: from_address '0xnope' is not an address (expected 0x followed by 40 hex digits)"
        );
    }

    #[test]
    fn text_drops_nul_bytes() {
        assert_eq!(text(Some("a\0b")).as_deref(), Some("ab"));
        assert_eq!(text(None), None);
    }
}
