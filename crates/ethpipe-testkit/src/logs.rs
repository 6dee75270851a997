//! Event logs as rows of BigQuery's `crypto_ethereum.logs`, read from a real
//! node so that the BigQuery-compatible server ([`crate::FakeBigQuery::set_logs`])
//! can serve exactly what the JSON-RPC source sees on the same chain.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context};
use serde_json::Value;

use crate::chain::{quantity, Chain};

/// One row of `crypto_ethereum.logs` (the columns ethpipe reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureLog {
    pub log_index: i64,
    pub transaction_hash: String,
    pub transaction_index: i64,
    /// The emitting contract, lowercase `0x…`.
    pub address: String,
    /// `0x` + the data's hex (`"0x"` for no data).
    pub data: String,
    /// `0x` + 64 hex digits each, topic0 first; empty for `log0`.
    pub topics: Vec<String>,
    pub block_timestamp_micros: i64,
    pub block_number: i64,
    pub block_hash: String,
}

/// Every log of blocks `from_block..=to_block` (`eth_getLogs`), each with its
/// block's timestamp (`eth_getBlockByNumber`), in chain order.
pub async fn node_logs(
    chain: &Chain,
    from_block: u64,
    to_block: u64,
) -> anyhow::Result<Vec<FixtureLog>> {
    let logs = chain.logs(from_block, to_block, None).await?;
    let mut timestamps = BTreeMap::new();
    let mut rows = Vec::with_capacity(logs.len());
    for log in &logs {
        let block_number = quantity(&log["blockNumber"])?;
        let timestamp = match timestamps.get(&block_number) {
            Some(&ts) => ts,
            None => {
                let ts = chain.block_timestamp(block_number).await?;
                timestamps.insert(block_number, ts);
                ts
            }
        };
        rows.push(fixture_log(log, timestamp).with_context(|| format!("log {log}"))?);
    }
    rows.sort_by_key(|row| (row.block_number, row.log_index));
    Ok(rows)
}

/// A JSON-RPC log object as a `logs` row, lowercased as BigQuery holds it.
pub fn fixture_log(log: &Value, block_timestamp: u64) -> anyhow::Result<FixtureLog> {
    let text = |key: &str| -> anyhow::Result<String> {
        log[key]
            .as_str()
            .map(str::to_lowercase)
            .ok_or_else(|| anyhow!("no {key}"))
    };
    let number = |key: &str| -> anyhow::Result<i64> { Ok(i64::try_from(quantity(&log[key])?)?) };
    let topics = log["topics"]
        .as_array()
        .map(|topics| {
            topics
                .iter()
                .map(|t| t.as_str().map(str::to_lowercase))
                .collect::<Option<Vec<String>>>()
        })
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| anyhow!("a topic is not text"))?;
    Ok(FixtureLog {
        log_index: number("logIndex")?,
        transaction_hash: text("transactionHash")?,
        transaction_index: number("transactionIndex")?,
        address: text("address")?,
        data: text("data")?,
        topics,
        block_timestamp_micros: i64::try_from(block_timestamp)? * 1_000_000,
        block_number: number("blockNumber")?,
        block_hash: text("blockHash")?,
    })
}
