//! Block headers and the day → block range search (docs/rpc-semantics.md, rules 1–5).
//!
//! Headers are cached for one run only: the range search touches a few dozen
//! blocks, and the transfers of one block share its header, but a header
//! kept longer could outlive a reorg. A run makes its own [`Blocks`], and
//! before its rows commit [`Blocks::recheck`] re-reads every header the run
//! relied on.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ethpipe_core::{Day, Recheck, SourceError};
use serde_json::{json, Value};

use super::client::{parse_quantity, quantity, RpcClient};

/// Above this many cached headers the cache starts over; a mainnet day has ~7,200.
const CACHE_LIMIT: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub number: u64,
    pub timestamp: i64,
    pub hash: String,
}

impl Header {
    pub fn time(&self) -> Result<DateTime<Utc>, SourceError> {
        DateTime::from_timestamp(self.timestamp, 0).ok_or_else(|| {
            SourceError::Config(format!(
                "block {} has an impossible timestamp {}",
                self.number, self.timestamp
            ))
        })
    }
}

/// The blocks of one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayBlocks {
    /// Inclusive block numbers.
    Range { first: u64, last: u64 },
    /// The day is over but no block carries one of its timestamps.
    Empty,
}

pub struct Blocks {
    client: RpcClient,
    cache: Mutex<HashMap<u64, Header>>,
}

impl Blocks {
    pub fn new(client: RpcClient) -> Blocks {
        Blocks {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn latest(&self) -> Result<Header, SourceError> {
        let block = self
            .client
            .request("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        let header = self.parse_header(&block, "latest")?;
        self.remember(std::slice::from_ref(&header));
        Ok(header)
    }

    pub async fn header(&self, number: u64) -> Result<Header, SourceError> {
        let mut headers = self.headers(&[number]).await?;
        headers.remove(&number).ok_or_else(|| {
            SourceError::Transient(format!("block {number} is missing from the node's answer"))
        })
    }

    /// Headers of `numbers`, fetched in JSON-RPC batches for those not cached.
    pub async fn headers(&self, numbers: &[u64]) -> Result<HashMap<u64, Header>, SourceError> {
        let mut found = HashMap::with_capacity(numbers.len());
        let mut missing = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for number in numbers {
                match cache.get(number) {
                    Some(header) => {
                        found.insert(*number, header.clone());
                    }
                    None if !missing.contains(number) => missing.push(*number),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let calls: Vec<(&str, Value)> = missing
            .iter()
            .map(|n| ("eth_getBlockByNumber", json!([quantity(*n), false])))
            .collect();
        let answers = self.client.batch(&calls).await?;
        let mut fetched = Vec::with_capacity(missing.len());
        for (number, answer) in missing.iter().zip(answers) {
            let block = answer.map_err(|e| {
                SourceError::Transient(format!("the node could not give block {number}: {e}"))
            })?;
            if block.is_null() {
                return Err(SourceError::Transient(format!(
                    "the node does not have block {number} (yet)"
                )));
            }
            fetched.push(self.parse_header(&block, &number.to_string())?);
        }
        self.remember(&fetched);
        found.extend(fetched.into_iter().map(|h| (h.number, h)));
        Ok(found)
    }

    fn parse_header(&self, block: &Value, asked: &str) -> Result<Header, SourceError> {
        let malformed = |field: &str| {
            SourceError::Transient(format!(
                "{}: block {asked} has a malformed or missing {field}",
                self.client.shown_url()
            ))
        };
        let number = parse_quantity(&block["number"]).ok_or_else(|| malformed("number"))?;
        let timestamp = parse_quantity(&block["timestamp"])
            .and_then(|t| i64::try_from(t).ok())
            .ok_or_else(|| malformed("timestamp"))?;
        let hash = block["hash"]
            .as_str()
            .filter(|h| h.len() == 66 && h.starts_with("0x"))
            .ok_or_else(|| malformed("hash"))?
            .to_ascii_lowercase();
        Ok(Header {
            number,
            timestamp,
            hash,
        })
    }

    fn remember(&self, headers: &[Header]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + headers.len() > CACHE_LIMIT {
            cache.clear();
        }
        for header in headers {
            cache.insert(header.number, header.clone());
        }
    }

    /// A check, for right before the commit, that every header this run
    /// used up to block `through` is still the node's canonical block: the
    /// headers are asked for afresh (batched), and a different hash fails
    /// the run as transient, so its retry reads the canonical rows.
    pub fn recheck(&self, through: u64) -> Recheck {
        let mut used: Vec<Header> = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .values()
                .filter(|h| h.number <= through)
                .cloned()
                .collect()
        };
        used.sort_by_key(|h| h.number);
        let fresh = Blocks::new(self.client.clone());
        Box::pin(async move {
            let numbers: Vec<u64> = used.iter().map(|h| h.number).collect();
            let canonical = fresh.headers(&numbers).await?;
            for header in &used {
                let now = canonical.get(&header.number).map(|h| h.hash.as_str());
                if now != Some(header.hash.as_str()) {
                    return Err(changed(header.number, &header.hash, now.unwrap_or("none")));
                }
            }
            Ok(())
        })
    }

    async fn timestamp(&self, number: u64) -> Result<i64, SourceError> {
        Ok(self.header(number).await?.timestamp)
    }

    /// The blocks whose timestamps fall in `day` (rules 1–4): the first block
    /// at or after 00:00:00 to the last at or before 23:59:59. The day must be
    /// over on the node: some block at or after 23:59:59 exists.
    pub async fn day_blocks(&self, day: Day) -> Result<DayBlocks, SourceError> {
        let start = day.start().timestamp();
        let end = day.end().timestamp() - 1;
        let latest = self.latest().await?;
        if latest.timestamp < end {
            return Err(SourceError::Transient(format!(
                "day {day} is not complete yet on the node: its latest block {} is at {} \
                 (a day loads once a block at or after {day} 23:59:59 UTC exists)",
                latest.number,
                latest
                    .time()
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default()
            )));
        }
        // ethereum-etl searches from block 1 (the genesis block's timestamp is
        // 0 on mainnet) and folds block 0 into the first day (rule 3).
        if latest.number == 0 {
            return Ok(DayBlocks::Empty);
        }
        let Some(first) = self.first_at_or_after(start, &latest).await? else {
            return Ok(DayBlocks::Empty);
        };
        if self.timestamp(first).await? > end {
            return Ok(DayBlocks::Empty);
        }
        let last = match self.first_at_or_after(end + 1, &latest).await? {
            Some(next) => next - 1,
            None => latest.number,
        };
        let first = if first == 1 { 0 } else { first };
        Ok(DayBlocks::Range { first, last })
    }

    /// The lowest block ≥ 1 with timestamp ≥ `target`, if any. Block
    /// timestamps strictly increase, so this is a search; guesses interpolate
    /// between the bounds (blocks come at a near-steady pace), alternating
    /// with plain halving so an uneven chain still takes O(log n) calls.
    pub(crate) async fn first_at_or_after(
        &self,
        target: i64,
        latest: &Header,
    ) -> Result<Option<u64>, SourceError> {
        if latest.timestamp < target {
            return Ok(None);
        }
        let first_ts = self.timestamp(1).await?;
        if first_ts >= target {
            return Ok(Some(1));
        }
        // Invariant: ts(low) < target <= ts(high).
        let (mut low, mut low_ts) = (1u64, first_ts);
        let (mut high, mut high_ts) = (latest.number, latest.timestamp);
        let mut interpolate = true;
        while high - low > 1 {
            let guess = if interpolate && high_ts > low_ts {
                let span = (high - low) as i128;
                let offset = (target - low_ts) as i128 * span / (high_ts - low_ts) as i128;
                (low as i128 + offset).clamp(low as i128 + 1, high as i128 - 1) as u64
            } else {
                low + (high - low) / 2
            };
            interpolate = !interpolate;
            let ts = self.timestamp(guess).await?;
            if ts >= target {
                (high, high_ts) = (guess, ts);
            } else {
                (low, low_ts) = (guess, ts);
            }
        }
        Ok(Some(high))
    }
}

/// A block read with one hash and later with another (a log's block, then
/// its header; or a header, then its recheck): a reorg.
pub(crate) fn changed(number: u64, was: &str, now: &str) -> SourceError {
    SourceError::Transient(format!(
        "block {number} changed: reorg (read as {was}, then as {now}); \
         nothing was committed, and a retry reads the canonical chain"
    ))
}
