//! Where a BigQuery result page becomes rows: cells are located by the
//! response's schema (not by position), and every value is validated.

use chrono::{DateTime, Utc};
use ethpipe_core::validate::{self, RowError};
use ethpipe_core::{Pipeline, Rows, SourceError, Token, TokenTransfer};
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::Value;

use super::query::{TOKEN_COLUMNS, TRANSFER_COLUMNS};

/// Positions of the expected columns within the response's rows.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    positions: Vec<usize>,
}

impl ColumnMap {
    pub fn new(pipeline: Pipeline, schema: Option<&TableSchema>) -> Result<ColumnMap, SourceError> {
        let names: &[&str] = match pipeline {
            Pipeline::TokenTransfers => &TRANSFER_COLUMNS,
            Pipeline::Tokens => &TOKEN_COLUMNS,
        };
        let fields: Vec<&str> = schema
            .and_then(|s| s.fields.as_ref())
            .map(|fields| fields.iter().map(|f| f.name.as_str()).collect())
            .unwrap_or_default();
        let positions = names
            .iter()
            .map(|name| {
                fields.iter().position(|f| f == name).ok_or_else(|| {
                    SourceError::Config(format!(
                        "the BigQuery result has no column '{name}' (is --bigquery-dataset a crypto_ethereum copy?)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ColumnMap { positions })
    }

    /// The cells of one row in the expected column order.
    fn cells<'a>(
        &self,
        row: &'a TableRow,
        row_number: u64,
    ) -> Result<Vec<Option<&'a str>>, RowError> {
        let columns = row.columns.as_deref().unwrap_or_default();
        self.positions
            .iter()
            .map(
                |&position| match columns.get(position).and_then(|c| c.value.as_ref()) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(text)) => Ok(Some(text.as_str())),
                    Some(_) => Err(RowError::new(
                        row_number,
                        "cell",
                        None,
                        "is not a BigQuery scalar (a JSON string or null)",
                    )),
                },
            )
            .collect()
    }
}

/// Parses one page; `first_row` is the 1-based number of the page's first row
/// in the whole result, so errors name the row.
pub fn parse_page(
    pipeline: Pipeline,
    columns: &ColumnMap,
    rows: &[TableRow],
    first_row: u64,
) -> Result<Rows, RowError> {
    let numbered = rows.iter().zip(first_row..);
    match pipeline {
        Pipeline::TokenTransfers => numbered
            .map(|(row, n)| transfer(&columns.cells(row, n)?, n))
            .collect::<Result<_, _>>()
            .map(Rows::TokenTransfers),
        Pipeline::Tokens => numbered
            .map(|(row, n)| token(&columns.cells(row, n)?, n))
            .collect::<Result<_, _>>()
            .map(Rows::Tokens),
    }
}

/// Cells in [`TRANSFER_COLUMNS`] order.
pub fn transfer(cells: &[Option<&str>], row: u64) -> Result<TokenTransfer, RowError> {
    Ok(TokenTransfer {
        token_address: validate::address(row, "token_address", cells[0])?,
        from_address: validate::optional_address(row, "from_address", cells[1])?,
        to_address: validate::optional_address(row, "to_address", cells[2])?,
        value: validate::strict_uint(row, "value", cells[3])?,
        transaction_hash: validate::hash(row, "transaction_hash", cells[4])?,
        log_index: validate::int64(row, "log_index", cells[5])?,
        block_timestamp: timestamp(row, "block_timestamp", cells[6])?,
        block_number: validate::int64(row, "block_number", cells[7])?,
        block_hash: validate::hash(row, "block_hash", cells[8])?,
    })
}

/// Cells in [`TOKEN_COLUMNS`] order.
pub fn token(cells: &[Option<&str>], row: u64) -> Result<Token, RowError> {
    Ok(Token {
        address: validate::address(row, "address", cells[0])?,
        symbol: validate::text(cells[1]),
        name: validate::text(cells[2]),
        decimals: validate::lenient_uint(cells[3]),
        total_supply: validate::lenient_uint(cells[4]),
        block_timestamp: timestamp(row, "block_timestamp", cells[5])?,
        block_number: validate::int64(row, "block_number", cells[6])?,
        block_hash: validate::hash(row, "block_hash", cells[7])?,
        found_in_transfers: false,
    })
}

/// A BigQuery TIMESTAMP cell: int64 microseconds (with `useInt64Timestamp`) or
/// the legacy float-seconds text such as `1.709251199999999E9`, read as an
/// exact decimal so `.999999` is not lost to binary floating point.
pub fn timestamp(
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
        let err = timestamp(3, "block_timestamp", Some("1e2147483647")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("source row 3: block_timestamp '1e2147483647' is not"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_cell_names_its_row() {
        let address = format!("0x{}", "a".repeat(40));
        let hash = format!("0x{}", "b".repeat(64));
        let mut cells: Vec<Option<&str>> = vec![
            Some(&address),
            None,
            Some(&address),
            Some("5"),
            Some(&hash),
            Some("3"),
            Some("1709251200000000"),
            Some("19000000"),
            Some(&hash),
        ];
        assert!(transfer(&cells, 12).is_ok());
        cells[4] = Some("0xbeef");
        let err = transfer(&cells, 12).unwrap_err().to_string();
        assert!(
            err.starts_with("source row 12: transaction_hash '0xbeef'"),
            "{err}"
        );
    }
}
