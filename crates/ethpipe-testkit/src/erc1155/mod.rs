//! The `erc1155_transfers` rows a chain must give, computed independently of
//! ethpipe: from the node's receipts (`eth_getTransactionReceipt`) and blocks
//! (`eth_getBlockByNumber`), with the testkit's own ABI reading ([`abi`]), so
//! that a bug in ethpipe's decoder cannot hide in its own expectations.
//!
//! Rows come in the order (block_number, log_index, batch_index); the logs
//! that carry an ERC-1155 topic but do not decode come apart, as
//! [`SkippedLog`]s, because the dataset must count them.
//!
//! [`Erc1155Scenario`] puts every shape the dataset must handle on an anvil
//! chain over two UTC days.

pub mod abi;
pub mod scenario;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::chain::{from_hex, quantity, Chain};
use crate::logs::FixtureLog;

pub use abi::{Decoded, Move, SkipReason, TRANSFER_BATCH_TOPIC, TRANSFER_SINGLE_TOPIC};
pub use scenario::{Erc1155Scenario, ScenarioTx};

/// One row of `erc1155_transfers`: one id moved by a `TransferSingle` or
/// `TransferBatch` log. Addresses and hashes are lowercase `0x…`, uint256
/// values decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Erc1155Row {
    /// The contract that emitted the log.
    pub token_address: String,
    pub operator: String,
    /// `0x000…000` for a mint.
    pub from_address: String,
    /// `0x000…000` for a burn.
    pub to_address: String,
    pub token_id: String,
    pub value: String,
    pub transaction_hash: String,
    pub log_index: i64,
    /// Position inside a `TransferBatch`; 0 for `TransferSingle`.
    pub batch_index: i64,
    pub block_timestamp: DateTime<Utc>,
    pub block_number: i64,
    pub block_hash: String,
}

impl Erc1155Row {
    /// The documented order of rows: (block_number, log_index, batch_index).
    pub fn order_key(&self) -> (i64, i64, i64) {
        (self.block_number, self.log_index, self.batch_index)
    }

    /// The dataset's key: (transaction_hash, log_index, batch_index).
    pub fn key(&self) -> (&str, i64, i64) {
        (&self.transaction_hash, self.log_index, self.batch_index)
    }
}

/// A log with an ERC-1155 topic that gives no row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLog {
    pub token_address: String,
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub block_timestamp: DateTime<Utc>,
    pub reason: SkipReason,
}

/// What a set of transactions or blocks must give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// In (block_number, log_index, batch_index) order.
    pub rows: Vec<Erc1155Row>,
    /// In (block_number, log_index) order.
    pub skipped: Vec<SkippedLog>,
}

impl Expected {
    /// How many ERC-1155-topic logs the dataset must count as skipped.
    pub fn skipped_count(&self) -> usize {
        self.skipped.len()
    }

    /// The rows and skipped logs of one UTC day (by block timestamp).
    pub fn on_day(&self, day: NaiveDate) -> Expected {
        Expected {
            rows: self
                .rows
                .iter()
                .filter(|r| r.block_timestamp.date_naive() == day)
                .cloned()
                .collect(),
            skipped: self
                .skipped
                .iter()
                .filter(|s| s.block_timestamp.date_naive() == day)
                .cloned()
                .collect(),
        }
    }

    /// The rows and skipped logs of these token contracts only (lowercase
    /// addresses), what a load with that token filter must give.
    pub fn of_tokens(&self, tokens: &[&str]) -> Expected {
        Expected {
            rows: self
                .rows
                .iter()
                .filter(|r| tokens.contains(&r.token_address.as_str()))
                .cloned()
                .collect(),
            skipped: self
                .skipped
                .iter()
                .filter(|s| tokens.contains(&s.token_address.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// The UTC days that have rows or skipped logs, in order.
    pub fn days(&self) -> Vec<NaiveDate> {
        let rows = self.rows.iter().map(|r| r.block_timestamp);
        let skipped = self.skipped.iter().map(|s| s.block_timestamp);
        let days: BTreeSet<NaiveDate> = rows.chain(skipped).map(|t| t.date_naive()).collect();
        days.into_iter().collect()
    }

    fn add(&mut self, log: BlockLog) {
        match abi::decode(&log.topics, &log.data) {
            Decoded::NotErc1155 => {}
            Decoded::Skipped(reason) => self.skipped.push(SkippedLog {
                token_address: log.address,
                transaction_hash: log.transaction_hash,
                log_index: log.log_index,
                block_number: log.block_number,
                block_timestamp: log.block_timestamp,
                reason,
            }),
            Decoded::Moves(moves) => {
                for (batch_index, moved) in (0..).zip(moves) {
                    self.rows.push(Erc1155Row {
                        token_address: log.address.clone(),
                        operator: moved.operator,
                        from_address: moved.from_address,
                        to_address: moved.to_address,
                        token_id: moved.token_id,
                        value: moved.value,
                        transaction_hash: log.transaction_hash.clone(),
                        log_index: log.log_index,
                        batch_index,
                        block_timestamp: log.block_timestamp,
                        block_number: log.block_number,
                        block_hash: log.block_hash.clone(),
                    });
                }
            }
        }
    }

    fn sorted(mut self) -> Expected {
        self.rows.sort_by_key(Erc1155Row::order_key);
        self.skipped.sort_by_key(|s| (s.block_number, s.log_index));
        self
    }
}

/// A log with what its block says about it: the input of the computation,
/// whichever way the log was read.
struct BlockLog {
    address: String,
    topics: Vec<[u8; 32]>,
    data: Vec<u8>,
    transaction_hash: String,
    log_index: i64,
    block_number: i64,
    block_hash: String,
    block_timestamp: DateTime<Utc>,
}

/// The rows and skipped logs of these transactions, from their receipts and
/// their blocks' headers.
pub async fn expected_for_transactions(
    chain: &Chain,
    tx_hashes: &[String],
) -> anyhow::Result<Expected> {
    let mut receipts = Vec::with_capacity(tx_hashes.len());
    for hash in tx_hashes {
        let receipt = chain
            .receipt(hash)
            .await?
            .ok_or_else(|| anyhow!("transaction {hash} is not mined"))?;
        receipts.push(receipt);
    }
    let numbers: BTreeSet<u64> = receipts
        .iter()
        .map(|r| quantity(&r["blockNumber"]))
        .collect::<anyhow::Result<_>>()?;
    let mut blocks = Vec::with_capacity(numbers.len());
    for n in numbers {
        blocks.push(chain.block(n).await?);
    }
    expected_from_receipts(&receipts, &blocks)
}

/// The rows and skipped logs of every transaction in blocks
/// `from_block..=to_block` (the blocks list their transactions; each
/// transaction's receipt holds its logs).
pub async fn expected_for_blocks(
    chain: &Chain,
    from_block: u64,
    to_block: u64,
) -> anyhow::Result<Expected> {
    let mut receipts = Vec::new();
    let mut blocks = Vec::new();
    for n in from_block..=to_block {
        let block = chain.block(n).await?;
        for hash in block["transactions"].as_array().into_iter().flatten() {
            let hash = hash
                .as_str()
                .ok_or_else(|| anyhow!("block {n} lists a transaction that is not a hash"))?;
            let receipt = chain
                .receipt(hash)
                .await?
                .ok_or_else(|| anyhow!("block {n} lists {hash}, which has no receipt"))?;
            receipts.push(receipt);
        }
        blocks.push(block);
    }
    expected_from_receipts(&receipts, &blocks)
}

/// The rows and skipped logs of these receipts (JSON-RPC objects), given
/// the headers of their blocks; a receipt whose block hash is not its
/// block's is an error (the chain moved under the test).
pub fn expected_from_receipts(receipts: &[Value], blocks: &[Value]) -> anyhow::Result<Expected> {
    let headers = headers_by_number(blocks)?;
    let mut expected = Expected::default();
    for receipt in receipts {
        let transaction_hash = lower_text(receipt, "transactionHash")?;
        let number = quantity(&receipt["blockNumber"])
            .with_context(|| format!("blockNumber of receipt {transaction_hash}"))?;
        let header = headers
            .get(&number)
            .ok_or_else(|| anyhow!("no header given for block {number} of {transaction_hash}"))?;
        if lower_text(receipt, "blockHash")? != header.hash {
            bail!(
                "receipt {transaction_hash} is in block {} but block {number} is {}",
                lower_text(receipt, "blockHash")?,
                header.hash
            );
        }
        for log in receipt["logs"].as_array().into_iter().flatten() {
            expected.add(BlockLog {
                address: lower_text(log, "address")?,
                topics: topic_words(log["topics"].as_array().map_or(&[], Vec::as_slice))?,
                data: from_hex(log["data"].as_str().unwrap_or("0x"))?,
                transaction_hash: transaction_hash.clone(),
                log_index: i64::try_from(quantity(&log["logIndex"])?)?,
                block_number: i64::try_from(number)?,
                block_hash: header.hash.clone(),
                block_timestamp: header.timestamp,
            });
        }
    }
    Ok(expected.sorted())
}

/// The rows and skipped logs of `crypto_ethereum.logs` rows, by the same
/// rules: what the BigQuery source must give for the rows the test server
/// holds.
pub fn expected_from_logs(logs: &[FixtureLog]) -> anyhow::Result<Expected> {
    let mut expected = Expected::default();
    for log in logs {
        let topics: Vec<Value> = log.topics.iter().map(|t| Value::from(t.as_str())).collect();
        expected.add(BlockLog {
            address: log.address.clone(),
            topics: topic_words(&topics)?,
            data: from_hex(&log.data)?,
            transaction_hash: log.transaction_hash.clone(),
            log_index: log.log_index,
            block_number: log.block_number,
            block_hash: log.block_hash.clone(),
            block_timestamp: DateTime::from_timestamp_micros(log.block_timestamp_micros)
                .ok_or_else(|| anyhow!("timestamp {} µs", log.block_timestamp_micros))?,
        });
    }
    Ok(expected.sorted())
}

struct Header {
    hash: String,
    timestamp: DateTime<Utc>,
}

fn headers_by_number(blocks: &[Value]) -> anyhow::Result<BTreeMap<u64, Header>> {
    blocks
        .iter()
        .map(|block| {
            let seconds = i64::try_from(quantity(&block["timestamp"])?)?;
            let header = Header {
                hash: lower_text(block, "hash")?,
                timestamp: DateTime::from_timestamp(seconds, 0)
                    .ok_or_else(|| anyhow!("block timestamp {seconds}"))?,
            };
            Ok((quantity(&block["number"])?, header))
        })
        .collect()
}

fn lower_text(object: &Value, key: &str) -> anyhow::Result<String> {
    object[key]
        .as_str()
        .map(str::to_lowercase)
        .ok_or_else(|| anyhow!("no {key} in {object}"))
}

fn topic_words(topics: &[Value]) -> anyhow::Result<Vec<[u8; 32]>> {
    topics
        .iter()
        .map(|topic| {
            let bytes = from_hex(topic.as_str().unwrap_or_default())?;
            <[u8; 32]>::try_from(bytes).map_err(|_| anyhow!("topic {topic} is not 32 bytes"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{encode_args, Arg};
    use serde_json::json;

    fn address_topic(byte: u8) -> String {
        format!("0x{}{}", "00".repeat(12), format!("{byte:02x}").repeat(20))
    }

    /// A receipt with a TransferBatch of 2, a malformed TransferSingle and
    /// a TransferSingle, in block 7 at 2024-03-01 23:59:59 UTC.
    fn receipt_and_block() -> (Value, Value) {
        let batch = encode_args(&[Arg::uints(&[5, 6]), Arg::uints(&[50, 60])]);
        let single = encode_args(&[Arg::uint(9), Arg::uint(1)]);
        let topics4 =
            |event: &str| json!([event, address_topic(1), address_topic(0), address_topic(2)]);
        let receipt = json!({
            "transactionHash": "0xAA",
            "blockNumber": "0x7",
            "blockHash": "0xBB",
            "logs": [
                { "address": "0xC0", "topics": topics4(TRANSFER_SINGLE_TOPIC), "data": crate::chain::to_hex(&single), "logIndex": "0x3" },
                { "address": "0xC0", "topics": topics4(TRANSFER_BATCH_TOPIC), "data": crate::chain::to_hex(&batch), "logIndex": "0x1" },
                { "address": "0xC0", "topics": [TRANSFER_SINGLE_TOPIC, address_topic(1)], "data": "0x", "logIndex": "0x2" },
                { "address": "0xC0", "topics": [], "data": "0x", "logIndex": "0x4" },
            ],
        });
        let block = json!({ "number": "0x7", "hash": "0xbb", "timestamp": format!("{:#x}", 1_709_337_599) });
        (receipt, block)
    }

    #[test]
    fn rows_are_ordered_and_skips_counted() {
        let (receipt, block) = receipt_and_block();
        let expected = expected_from_receipts(&[receipt], &[block]).unwrap();
        let keys: Vec<_> = expected.rows.iter().map(Erc1155Row::order_key).collect();
        assert_eq!(keys, vec![(7, 1, 0), (7, 1, 1), (7, 3, 0)]);
        let first = &expected.rows[0];
        assert_eq!(first.token_address, "0xc0");
        assert_eq!(first.transaction_hash, "0xaa");
        assert_eq!(first.operator, crate::chain::to_hex(&[1; 20]));
        assert_eq!(first.from_address, crate::chain::to_hex(&[0; 20]));
        assert_eq!((first.token_id.as_str(), first.value.as_str()), ("5", "50"));
        assert_eq!(
            first.block_timestamp.to_rfc3339(),
            "2024-03-01T23:59:59+00:00"
        );
        assert_eq!(expected.skipped_count(), 1);
        assert_eq!(expected.skipped[0].reason, SkipReason::TopicCount(2));
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(expected.days(), vec![day]);
        assert_eq!(expected.on_day(day), expected);
        assert_eq!(
            expected.on_day(day.succ_opt().unwrap()),
            Expected::default()
        );
    }

    #[test]
    fn a_receipt_from_another_block_is_an_error() {
        let (receipt, mut block) = receipt_and_block();
        block["hash"] = json!("0xcc");
        let error = expected_from_receipts(&[receipt], &[block]).unwrap_err();
        assert!(error.to_string().contains("block 7 is 0xcc"), "{error}");
    }
}
