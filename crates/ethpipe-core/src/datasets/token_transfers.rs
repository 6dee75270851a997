//! `token_transfers`: one row per ERC-20/ERC-721 `Transfer` log, as BigQuery's
//! `crypto_ethereum.token_transfers` holds it and as ethereum-etl's
//! `extract_transfer_from_log` derives it from a node (docs/rpc-semantics.md,
//! rules 7–15).

use chrono::{DateTime, Utc};

use crate::cells::bigquery_timestamp;
use crate::dataset::{
    BigQueryExtraction, CellWriter, Column, ColumnType, Dataset, DecodedLogs, Derived, Index,
    Pipeline, Row, Rows, RpcExtraction,
};
use crate::evm::{self, DecodeError, LogRef, Part};
use crate::validate::{self, RowError};
use crate::Uint;

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: &str =
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// The registered handle.
pub const TOKEN_TRANSFERS: Pipeline = Pipeline(&TokenTransfers);

/// One ERC-20/ERC-721 `Transfer` log (`crypto_ethereum.token_transfers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTransfer {
    pub token_address: String,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    /// Amount (ERC-20) or token id (ERC-721).
    pub value: Option<Uint>,
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_timestamp: DateTime<Utc>,
    pub block_number: i64,
    pub block_hash: String,
}

const COLUMNS: &[Column] = &[
    Column::required("token_address", ColumnType::Text),
    Column::nullable("from_address", ColumnType::Text),
    Column::nullable("to_address", ColumnType::Text),
    Column::nullable("value", ColumnType::Uint),
    Column::required("transaction_hash", ColumnType::Text),
    Column::required("log_index", ColumnType::Int),
    Column::required("block_timestamp", ColumnType::Timestamp),
    Column::required("block_number", ColumnType::Int),
    Column::required("block_hash", ColumnType::Text),
];

/// The BigQuery columns, in [`COLUMNS`] order.
const BIGQUERY_COLUMNS: &[&str] = &[
    "token_address",
    "from_address",
    "to_address",
    "value",
    "transaction_hash",
    "log_index",
    "block_timestamp",
    "block_number",
    "block_hash",
];

impl Row for TokenTransfer {
    fn write(&self, out: &mut dyn CellWriter) {
        out.text(Some(&self.token_address));
        out.text(self.from_address.as_deref());
        out.text(self.to_address.as_deref());
        out.uint(self.value.as_ref());
        out.text(Some(&self.transaction_hash));
        out.int(self.log_index);
        out.timestamp(self.block_timestamp);
        out.int(self.block_number);
        out.text(Some(&self.block_hash));
    }

    fn day_time(&self) -> DateTime<Utc> {
        self.block_timestamp
    }
}

pub struct TokenTransfers;

impl Dataset for TokenTransfers {
    fn name(&self) -> &'static str {
        "token_transfers"
    }

    fn description(&self) -> &'static str {
        "ERC-20 and ERC-721 Transfer logs, one row each"
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn key(&self) -> &'static [&'static str] {
        &["transaction_hash", "log_index"]
    }

    /// The serving API's reads: an address's transfers newest first (in and
    /// out separately, merged by the query), one token's transfers of a day.
    fn indexes(&self) -> &'static [Index] {
        &[
            Index {
                suffix: "block_timestamp_idx",
                columns: &["block_timestamp"],
            },
            Index {
                suffix: "from_idx",
                columns: &["from_address", "block_number"],
            },
            Index {
                suffix: "to_idx",
                columns: &["to_address", "block_number"],
            },
            Index {
                suffix: "token_time_idx",
                columns: &["token_address", "block_timestamp"],
            },
        ]
    }

    fn bigquery(&self) -> BigQueryExtraction {
        BigQueryExtraction::Table {
            table: "token_transfers",
            columns: BIGQUERY_COLUMNS,
        }
    }

    fn rpc(&self) -> RpcExtraction {
        RpcExtraction::Logs {
            topics: &[TRANSFER_TOPIC],
        }
    }

    fn parse_bigquery(&self, rows: &[Vec<Option<&str>>], first_row: u64) -> Result<Rows, RowError> {
        Rows::parse_cells(TOKEN_TRANSFERS, rows, first_row, from_bigquery)
    }

    fn decode_logs(&self, logs: &[LogRef<'_>]) -> Result<DecodedLogs, DecodeError> {
        let mut rows = Vec::with_capacity(logs.len());
        let mut skipped = Vec::new();
        for log in logs {
            match decode(log)? {
                Decoded::Transfer(transfer) => rows.push(transfer),
                Decoded::Skipped(warning) => skipped.push(warning),
                Decoded::NotTransfer => {}
            }
        }
        Ok(DecodedLogs {
            rows: Rows::new(TOKEN_TRANSFERS, rows),
            skipped,
        })
    }

    fn derived(&self) -> &'static [Derived] {
        &[Derived::TokenDailyStats]
    }
}

/// Cells in [`BIGQUERY_COLUMNS`] order.
pub fn from_bigquery(cells: &[Option<&str>], row: u64) -> Result<TokenTransfer, RowError> {
    Ok(TokenTransfer {
        token_address: validate::address(row, "token_address", cells[0])?,
        from_address: validate::optional_address(row, "from_address", cells[1])?,
        to_address: validate::optional_address(row, "to_address", cells[2])?,
        value: validate::strict_uint(row, "value", cells[3])?,
        transaction_hash: validate::hash(row, "transaction_hash", cells[4])?,
        log_index: validate::int64(row, "log_index", cells[5])?,
        block_timestamp: bigquery_timestamp(row, "block_timestamp", cells[6])?,
        block_number: validate::int64(row, "block_number", cells[7])?,
        block_hash: validate::hash(row, "block_hash", cells[8])?,
    })
}

/// One log's fate under ethereum-etl's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Transfer(TokenTransfer),
    /// topic0 is not Transfer (or there are no topics): dropped silently.
    NotTransfer,
    /// Transfer topic, but topics and data words are not 4 parts: skipped,
    /// with ethereum-etl's warning text.
    Skipped(String),
}

/// Rules 7–12 as ethereum-etl applies them: the topic decides; topics and
/// data words together must be exactly four parts (so ERC-20 and ERC-721
/// shapes, indexed or not, agree). Addresses are taken as ethereum-etl takes
/// them, unchecked: [`check_addresses`] is the separate, stricter step.
pub fn decode_unchecked(log: &LogRef<'_>) -> Result<Decoded, DecodeError> {
    if !log
        .topics
        .first()
        .is_some_and(|t| evm::is_topic(t, TRANSFER_TOPIC))
    {
        return Ok(Decoded::NotTransfer);
    }
    let Some([from, to, value]) = transfer_parts(log) else {
        return Ok(Decoded::Skipped(format!(
            "The number of topics and data parts is not equal to 4 in log {} of transaction {}",
            log.log_index, log.transaction_hash
        )));
    };
    Ok(Decoded::Transfer(TokenTransfer {
        token_address: log.address.to_lowercase(),
        from_address: Some(from.address()),
        to_address: Some(to.address()),
        value: Some(value.uint("value")?),
        transaction_hash: log.transaction_hash.to_string(),
        log_index: log.log_index,
        block_timestamp: log.block_timestamp,
        block_number: log.block_number,
        block_hash: log.block_hash.to_string(),
    }))
}

/// from, to and value: the parts after topic0 when topics and data words
/// together are exactly four, read in place (ethereum-etl builds the list).
fn transfer_parts<'a>(log: &LogRef<'a>) -> Option<[Part<'a>; 3]> {
    if log.topics.len() + evm::data_word_count(log.data) != 4 {
        return None;
    }
    let topics = log.topics.iter().skip(1).map(|t| Part::Topic(t));
    let mut parts = topics.chain(evm::data_words(log.data).map(Part::Word));
    Some([parts.next()?, parts.next()?, parts.next()?])
}

/// ethereum-etl keeps whatever an address part held (rule 11); a real node
/// only sends hex, so anything else fails the day, as a malformed BigQuery
/// row does, rather than being loaded.
pub fn check_addresses(
    log: &LogRef<'_>,
    transfer: TokenTransfer,
) -> Result<TokenTransfer, DecodeError> {
    let check = |column, value: Option<String>| {
        value
            .map(|v| evm::checked_address(log, column, &v))
            .transpose()
    };
    Ok(TokenTransfer {
        token_address: evm::checked_address(log, "token_address", &transfer.token_address)?,
        from_address: check("from_address", transfer.from_address)?,
        to_address: check("to_address", transfer.to_address)?,
        ..transfer
    })
}

/// [`decode_unchecked`], then [`check_addresses`].
pub fn decode(log: &LogRef<'_>) -> Result<Decoded, DecodeError> {
    Ok(match decode_unchecked(log)? {
        Decoded::Transfer(transfer) => Decoded::Transfer(check_addresses(log, transfer)?),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ColumnCheck;

    #[test]
    fn the_row_writes_its_columns() {
        let hash = format!("0x{}", "b".repeat(64));
        let row = TokenTransfer {
            token_address: format!("0x{}", "a".repeat(40)),
            from_address: None,
            to_address: None,
            value: None,
            transaction_hash: hash.clone(),
            log_index: 0,
            block_timestamp: DateTime::<Utc>::UNIX_EPOCH,
            block_number: 1,
            block_hash: hash,
        };
        assert_eq!(ColumnCheck::check(COLUMNS, &row), Ok(()));
        assert_eq!(COLUMNS.len(), BIGQUERY_COLUMNS.len());
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
        assert!(from_bigquery(&cells, 12).is_ok());
        cells[4] = Some("0xbeef");
        let err = from_bigquery(&cells, 12).unwrap_err().to_string();
        assert!(
            err.starts_with("source row 12: transaction_hash '0xbeef'"),
            "{err}"
        );
    }
}
