//! `erc1155_transfers`: one row per token id moved by an ERC-1155
//! `TransferSingle` or `TransferBatch` log. BigQuery has no such table: both
//! sources hand this module logs (`eth_getLogs`, `crypto_ethereum.logs`) and
//! its one decoder makes the rows, so both give identical rows.
//!
//! Decoding is lenient the way ethereum-etl decodes `Transfer`: a log with
//! the right topic but the wrong shape (not the four topics the standard
//! indexes, data that does not decode) is skipped with a warning, counted in
//! the run, never silently dropped, never a failed day or a crash.

use chrono::{DateTime, Utc};

use crate::dataset::{
    BigQueryExtraction, CellWriter, Column, ColumnType, Dataset, DecodedLogs, Index, Pipeline, Row,
    Rows, RpcExtraction,
};
use crate::evm::{self, DecodeError, LogRef};
use crate::Uint;

/// `keccak256("TransferSingle(address,address,address,uint256,uint256)")`.
pub const TRANSFER_SINGLE_TOPIC: &str =
    "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62";
/// `keccak256("TransferBatch(address,address,address,uint256[],uint256[])")`.
pub const TRANSFER_BATCH_TOPIC: &str =
    "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb";

/// The registered handle.
pub const ERC1155_TRANSFERS: Pipeline = Pipeline(&Erc1155Transfers);

/// One id moved by an ERC-1155 transfer log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erc1155Transfer {
    pub token_address: String,
    pub operator: String,
    pub from_address: String,
    pub to_address: String,
    pub token_id: Uint,
    pub value: Uint,
    pub transaction_hash: String,
    pub log_index: i64,
    /// Position inside a `TransferBatch`; 0 for `TransferSingle`.
    pub batch_index: i64,
    pub block_timestamp: DateTime<Utc>,
    pub block_number: i64,
    pub block_hash: String,
}

const COLUMNS: &[Column] = &[
    Column::required("token_address", ColumnType::Text),
    Column::required("operator", ColumnType::Text),
    Column::required("from_address", ColumnType::Text),
    Column::required("to_address", ColumnType::Text),
    Column::required("token_id", ColumnType::Uint),
    Column::required("value", ColumnType::Uint),
    Column::required("transaction_hash", ColumnType::Text),
    Column::required("log_index", ColumnType::Int),
    Column::required("batch_index", ColumnType::Int),
    Column::required("block_timestamp", ColumnType::Timestamp),
    Column::required("block_number", ColumnType::Int),
    Column::required("block_hash", ColumnType::Text),
];

impl Row for Erc1155Transfer {
    fn write(&self, out: &mut dyn CellWriter) {
        out.text(Some(&self.token_address));
        out.text(Some(&self.operator));
        out.text(Some(&self.from_address));
        out.text(Some(&self.to_address));
        out.uint(Some(&self.token_id));
        out.uint(Some(&self.value));
        out.text(Some(&self.transaction_hash));
        out.int(self.log_index);
        out.int(self.batch_index);
        out.timestamp(self.block_timestamp);
        out.int(self.block_number);
        out.text(Some(&self.block_hash));
    }

    fn day_time(&self) -> DateTime<Utc> {
        self.block_timestamp
    }
}

pub struct Erc1155Transfers;

impl Dataset for Erc1155Transfers {
    fn name(&self) -> &'static str {
        "erc1155_transfers"
    }

    fn description(&self) -> &'static str {
        "ERC-1155 TransferSingle and TransferBatch logs, one row per id moved"
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn key(&self) -> &'static [&'static str] {
        &["transaction_hash", "log_index", "batch_index"]
    }

    fn indexes(&self) -> &'static [Index] {
        &[
            Index {
                suffix: "block_timestamp_idx",
                columns: &["block_timestamp"],
            },
            Index {
                suffix: "token_time_idx",
                columns: &["token_address", "block_timestamp"],
            },
        ]
    }

    fn bigquery(&self) -> BigQueryExtraction {
        BigQueryExtraction::Logs {
            topics: &[TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC],
        }
    }

    fn rpc(&self) -> RpcExtraction {
        RpcExtraction::Logs {
            topics: &[TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC],
        }
    }

    fn decode_logs(&self, logs: &[LogRef<'_>]) -> Result<DecodedLogs, DecodeError> {
        let mut rows = Vec::with_capacity(logs.len());
        let mut skipped = Vec::new();
        for log in logs {
            if let Err(reason) = decode(log, &mut rows)? {
                skipped.push(format!(
                    "skipped ERC-1155 log {} of transaction {}: {reason}",
                    log.log_index, log.transaction_hash
                ));
            }
        }
        Ok(DecodedLogs {
            rows: Rows::new(ERC1155_TRANSFERS, rows),
            skipped,
        })
    }
}

/// Appends the rows of one log. `Ok(Err(reason))` is a log with an ERC-1155
/// topic that does not decode (skipped); `Err` a log no source should send.
pub fn decode(
    log: &LogRef<'_>,
    rows: &mut Vec<Erc1155Transfer>,
) -> Result<Result<(), String>, DecodeError> {
    let Some(topic) = log.topics.first() else {
        return Ok(Ok(()));
    };
    if evm::is_topic(topic, TRANSFER_SINGLE_TOPIC) {
        decode_single(log, rows)
    } else if evm::is_topic(topic, TRANSFER_BATCH_TOPIC) {
        decode_batch(log, rows)
    } else {
        Ok(Ok(()))
    }
}

/// The standard indexes operator, from and to: exactly four topics, and the
/// data is exactly two words (id, value).
fn decode_single(
    log: &LogRef<'_>,
    rows: &mut Vec<Erc1155Transfer>,
) -> Result<Result<(), String>, DecodeError> {
    let [_, operator, from, to] = log.topics.as_slice() else {
        return Ok(Err(format!(
            "TransferSingle needs 4 topics, the log has {}",
            log.topics.len()
        )));
    };
    let words = evm::split_to_words(log.data);
    let [id, value] = words.as_slice() else {
        return Ok(Err(format!(
            "TransferSingle data needs 2 words (id, value), the log has {}",
            words.len()
        )));
    };
    if id.len() != 66 || value.len() != 66 {
        return Ok(Err("TransferSingle data is not exactly 64 bytes".into()));
    }
    let (Ok(token_id), Ok(value)) = (evm::hex_to_uint("id", id), evm::hex_to_uint("value", value))
    else {
        return Ok(Err("TransferSingle's id or value is not a hex word".into()));
    };
    let row = row(log, [*operator, *from, *to], 0, token_id, value)?;
    rows.push(row);
    Ok(Ok(()))
}

/// `ids` and `values` are dynamic arrays, so they can only be in the data:
/// exactly four topics and an ABI-encoded `(uint256[], uint256[])`.
fn decode_batch(
    log: &LogRef<'_>,
    rows: &mut Vec<Erc1155Transfer>,
) -> Result<Result<(), String>, DecodeError> {
    let [_, operator, from, to] = log.topics.as_slice() else {
        return Ok(Err(format!(
            "TransferBatch needs 4 topics, the log has {}",
            log.topics.len()
        )));
    };
    let (ids, values) = match batch_arrays(log.data.unwrap_or("0x")) {
        Ok(arrays) => arrays,
        Err(reason) => return Ok(Err(format!("TransferBatch data {reason}"))),
    };
    for (index, (token_id, value)) in ids.into_iter().zip(values).enumerate() {
        let row = row(log, [*operator, *from, *to], index as i64, token_id, value)?;
        rows.push(row);
    }
    Ok(Ok(()))
}

fn row(
    log: &LogRef<'_>,
    [operator, from, to]: [&str; 3],
    batch_index: i64,
    token_id: Uint,
    value: Uint,
) -> Result<Erc1155Transfer, DecodeError> {
    Ok(Erc1155Transfer {
        token_address: evm::checked_address(log, "token_address", &log.address.to_lowercase())?,
        operator: evm::checked_address(log, "operator", &evm::word_to_address(operator))?,
        from_address: evm::checked_address(log, "from_address", &evm::word_to_address(from))?,
        to_address: evm::checked_address(log, "to_address", &evm::word_to_address(to))?,
        token_id,
        value,
        transaction_hash: log.transaction_hash.to_string(),
        log_index: log.log_index,
        batch_index,
        block_timestamp: log.block_timestamp,
        block_number: log.block_number,
        block_hash: log.block_hash.to_string(),
    })
}

/// The two arrays of ABI-encoded `(uint256[], uint256[])`, or why not.
fn batch_arrays(data: &str) -> Result<(Vec<Uint>, Vec<Uint>), String> {
    let body = data
        .strip_prefix("0x")
        .or_else(|| data.strip_prefix("0X"))
        .unwrap_or(data);
    if !body.len().is_multiple_of(64) || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("is not a sequence of 32-byte hex words".into());
    }
    let words: Vec<&str> = (0..body.len() / 64)
        .map(|i| &body[i * 64..(i + 1) * 64])
        .collect();
    let ids = array_at(&words, 0)?;
    let values = array_at(&words, 1)?;
    if ids.len() != values.len() {
        return Err(format!("has {} ids but {} values", ids.len(), values.len()));
    }
    Ok((ids, values))
}

/// The array whose byte offset is in head word `head`.
fn array_at(words: &[&str], head: usize) -> Result<Vec<Uint>, String> {
    let word_number = |word: &str| -> Option<usize> {
        let trimmed = word.trim_start_matches('0');
        (trimmed.len() <= 12)
            .then(|| usize::from_str_radix(if trimmed.is_empty() { "0" } else { trimmed }, 16).ok())
            .flatten()
    };
    let truncated = || "is truncated".to_string();
    let offset = words.get(head).copied().ok_or_else(truncated)?;
    let offset = word_number(offset)
        .filter(|bytes| bytes.is_multiple_of(32))
        .ok_or_else(|| "has an array offset that is not a word boundary".to_string())?;
    let start = offset / 32;
    let length = words
        .get(start)
        .copied()
        .and_then(word_number)
        .ok_or_else(truncated)?;
    let elements = words
        .get(start + 1..)
        .filter(|rest| rest.len() >= length)
        .ok_or_else(truncated)?;
    elements[..length]
        .iter()
        .map(|word| evm::hex_to_uint("value", word).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ColumnCheck;
    use crate::evm::Log;

    const TX: &str = "0x5cb4fc2e3d217f3c286358d6bc042259c8befb0dabe450567a987f5770043157";

    fn word(hex_tail: &str) -> String {
        format!("0x{hex_tail:0>64}")
    }

    fn address_word(byte: &str) -> String {
        word(&byte.repeat(20))
    }

    fn log(topics: Vec<String>, data: String) -> Log {
        Log {
            address: "0xAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa".into(),
            topics,
            data: Some(data),
            transaction_hash: TX.into(),
            log_index: 7,
            block_number: 100,
            block_timestamp: DateTime::<Utc>::UNIX_EPOCH,
            block_hash: format!("0x{}", "cd".repeat(32)),
        }
    }

    fn decoded(logs: &[Log]) -> (Vec<Erc1155Transfer>, Vec<String>) {
        let views: Vec<LogRef<'_>> = logs.iter().map(Log::view).collect();
        let out = Erc1155Transfers.decode_logs(&views).expect("decodes");
        let rows = out
            .rows
            .as_slice::<Erc1155Transfer>()
            .expect("erc1155 rows")
            .to_vec();
        (rows, out.skipped)
    }

    fn batch_data(ids: &[u64], values: &[u64]) -> String {
        let mut words = vec![
            format!("{:064x}", 64),
            format!("{:064x}", 64 + 32 * (ids.len() + 1)),
        ];
        words.push(format!("{:064x}", ids.len()));
        words.extend(ids.iter().map(|v| format!("{v:064x}")));
        words.push(format!("{:064x}", values.len()));
        words.extend(values.iter().map(|v| format!("{v:064x}")));
        format!("0x{}", words.concat())
    }

    fn parties() -> Vec<String> {
        vec![address_word("11"), address_word("00"), address_word("22")]
    }

    #[test]
    fn a_single_transfer_is_one_row_with_batch_index_zero() {
        let mut topics = vec![TRANSFER_SINGLE_TOPIC.to_string()];
        topics.extend(parties());
        let data = format!("0x{}{}", &word("2a")[2..], &word(&"f".repeat(64))[2..]);
        let (rows, skipped) = decoded(&[log(topics, data)]);
        assert!(skipped.is_empty());
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.token_address, format!("0x{}", "aa".repeat(20)));
        assert_eq!(row.operator, format!("0x{}", "11".repeat(20)));
        assert_eq!(row.from_address, format!("0x{}", "00".repeat(20)));
        assert_eq!(row.token_id.as_str(), "42");
        assert_eq!(
            row.value.as_str(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!((row.log_index, row.batch_index), (7, 0));
        assert_eq!(ColumnCheck::check(COLUMNS, row), Ok(()));
    }

    #[test]
    fn a_batch_is_one_row_per_id_in_order() {
        let mut topics = vec![TRANSFER_BATCH_TOPIC.to_string()];
        topics.extend(parties());
        let ids: Vec<u64> = (1..=50).collect();
        let values: Vec<u64> = ids.iter().map(|i| i * 10).collect();
        let (rows, skipped) = decoded(&[log(topics, batch_data(&ids, &values))]);
        assert!(skipped.is_empty());
        assert_eq!(rows.len(), 50);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.batch_index, i as i64);
            assert_eq!(row.token_id.as_str(), (i + 1).to_string());
            assert_eq!(row.value.as_str(), ((i + 1) * 10).to_string());
        }
    }

    #[test]
    fn malformed_logs_are_skipped_with_a_reason() {
        let few_topics = log(
            vec![TRANSFER_SINGLE_TOPIC.to_string(), address_word("11")],
            format!("0x{}{}", &word("1")[2..], &word("2")[2..]),
        );
        let mut batch_topics = vec![TRANSFER_BATCH_TOPIC.to_string()];
        batch_topics.extend(parties());
        let unequal = log(batch_topics.clone(), batch_data(&[1, 2], &[5]));
        let mut truncated_data = batch_data(&[1, 2, 3], &[4, 5, 6]);
        truncated_data.truncate(truncated_data.len() - 64);
        let truncated = log(batch_topics.clone(), truncated_data);
        let odd_length = log(batch_topics, "0x1234".into());
        let (rows, skipped) = decoded(&[few_topics, unequal, truncated, odd_length]);
        assert!(rows.is_empty(), "{rows:?}");
        assert_eq!(skipped.len(), 4, "{skipped:?}");
        assert!(skipped[0].contains("needs 4 topics"), "{}", skipped[0]);
        assert!(skipped[1].contains("2 ids but 1 values"), "{}", skipped[1]);
        assert!(skipped[2].contains("truncated"), "{}", skipped[2]);
        assert!(skipped[3].contains("not a sequence of 32-byte hex words"));
    }

    #[test]
    fn other_topics_give_nothing() {
        let transfer = log(
            vec![crate::datasets::token_transfers::TRANSFER_TOPIC.to_string()],
            "0x".into(),
        );
        let (rows, skipped) = decoded(&[transfer, log(Vec::new(), "0x".into())]);
        assert!(rows.is_empty() && skipped.is_empty());
    }

    #[test]
    fn a_huge_array_length_is_truncated_not_allocated() {
        let mut topics = vec![TRANSFER_BATCH_TOPIC.to_string()];
        topics.extend(parties());
        let data = format!("0x{:064x}{:064x}{}{:064x}", 64, 96, "f".repeat(64), 0);
        let (rows, skipped) = decoded(&[log(topics, data)]);
        assert!(rows.is_empty());
        assert_eq!(skipped.len(), 1);
    }
}
