//! BigQuery cell formats that need more than a string parse: TIMESTAMP cells
//! arrive as int64 microseconds or as legacy float-seconds text.

use chrono::{DateTime, Utc};

use crate::validate::{self, RowError};

/// A BigQuery TIMESTAMP cell: int64 microseconds (with `useInt64Timestamp`) or
/// the legacy float-seconds text such as `1.709251199999999E9`, read as an
/// exact decimal so `.999999` is not lost to binary floating point.
pub fn bigquery_timestamp(
    row: u64,
    column: &'static str,
    cell: Option<&str>,
) -> Result<DateTime<Utc>, RowError> {
    let text = cell.ok_or_else(|| RowError::new(row, column, None, "is required"))?;
    let micros = parse_micros(text)
        .ok_or_else(|| RowError::new(row, column, Some(text), "is not a BigQuery timestamp"))?;
    validate::timestamp_from_micros(row, column, micros)
}

fn parse_micros(text: &str) -> Option<i64> {
    if let Ok(micros) = text.parse::<i64>() {
        // An int64 with useInt64Timestamp is microseconds; a short integer is seconds.
        return if text.contains(['e', 'E', '.']) {
            None
        } else {
            Some(micros)
        };
    }
    decimal_seconds_to_micros(text)
}

fn decimal_seconds_to_micros(text: &str) -> Option<i64> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i128 = digits.parse().ok()?;
    // value * 10^(exponent - fraction_len) seconds, scaled to microseconds, rounded half up.
    // Checked: an exponent near i32::MAX or i32::MIN is text, not a timestamp.
    let shift = exponent
        .checked_sub(fraction.len() as i32)?
        .checked_add(6)?;
    if shift >= 0 {
        value = value.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?;
    } else {
        let divisor = 10i128.checked_pow(shift.unsigned_abs())?;
        value = (value + divisor / 2) / divisor;
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_every_microsecond() {
        assert_eq!(
            parse_micros("1709251199999999"),
            Some(1_709_251_199_999_999)
        );
        assert_eq!(
            parse_micros("1.709251199999999E9"),
            Some(1_709_251_199_999_999)
        );
        assert_eq!(
            parse_micros("1.6553375999999988E9"),
            Some(1_655_337_599_999_999)
        );
        assert_eq!(parse_micros("1.7092512E9"), Some(1_709_251_200_000_000));
        assert_eq!(parse_micros("1709251200.5"), Some(1_709_251_200_500_000));
        assert_eq!(parse_micros("0"), Some(0));
        for bad in ["", "abc", "1.2.3", "1e", "E9", "1.0E99"] {
            assert_eq!(parse_micros(bad), None, "{bad}");
        }
    }

    /// Seen while writing the fuzz target fuzz/fuzz_targets/bigquery_row.rs
    /// (and reproduced with it): an
    /// exponent at the ends of i32 overflowed the shift, a panic wherever
    /// overflow checks are on (debug builds, the tests, the fuzz build).
    #[test]
    fn exponents_at_the_ends_of_i32_are_not_timestamps() {
        for text in [
            "1e2147483647",
            "1e2147483642",
            "1.5E2147483643",
            "1.5E-2147483648",
            "-1.0000000E-2147483642",
        ] {
            assert_eq!(parse_micros(text), None, "{text}");
        }
        let err = bigquery_timestamp(3, "block_timestamp", Some("1e2147483647")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("source row 3: block_timestamp '1e2147483647' is not"),
            "{err}"
        );
    }
}
