//! Log datasets from a node (`token_transfers`, `erc1155_transfers`, any
//! dataset whose [`RpcExtraction`] is `Logs`): `eth_getLogs` on the dataset's
//! topics over a day's blocks, in chunks that adapt to what the node will
//! answer, joined with block headers and decoded by the dataset's own rules.
//! A token filter is the request's `address` list, split into requests of
//! at most `max_addresses` addresses when it is longer.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use ethpipe_core::dataset::{DecodedLogs, RpcExtraction};
use ethpipe_core::evm::DecodeError;
use ethpipe_core::{Pipeline, Rows, SourceError, SourceEvent, SourceEventSender, TokenFilter};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::blocks::Blocks;
use super::client::{quantity, RpcClient};
use super::decode::RpcLog;

/// Rows per batch sent to the sink.
const BATCH_ROWS: usize = 10_000;
/// Individual warnings per run for skipped logs; the rest are only counted.
const WARNINGS_SHOWN: u64 = 50;

/// Block-range sizing for `eth_getLogs`: starts modest, halves when the node
/// refuses a range, doubles back after each answered one.
pub struct ChunkSizer {
    current: AtomicU64,
    max: u64,
}

impl ChunkSizer {
    pub fn new(initial: u64, max: u64) -> ChunkSizer {
        ChunkSizer {
            current: AtomicU64::new(initial.clamp(1, max.max(1))),
            max: max.max(1),
        }
    }

    fn get(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    fn shrink_below(&self, refused: u64) {
        self.current
            .fetch_min((refused / 2).max(1), Ordering::Relaxed);
    }

    fn grow(&self) {
        let max = self.max;
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_mul(2).min(max))
            });
    }
}

pub struct LogScan<'a> {
    pub client: &'a RpcClient,
    pub blocks: &'a Blocks,
    pub sizer: &'a ChunkSizer,
    pub concurrency: usize,
    /// A dataset extracted from logs.
    pub pipeline: Pipeline,
    /// Only these contracts' logs (`None`: every contract's).
    pub tokens: Option<&'a TokenFilter>,
    /// Addresses per `eth_getLogs` request; a longer filter is split.
    pub max_addresses: usize,
}

/// Addresses per `eth_getLogs` request when the user sets no limit: well
/// under what public providers accept, few enough requests for any filter
/// a person writes by hand.
pub const DEFAULT_MAX_ADDRESSES: usize = 1_000;

/// Totals of a scan.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanTotals {
    /// Rows the logs decoded into.
    pub rows: u64,
    pub skipped: u64,
}

impl LogScan<'_> {
    /// The chunks of blocks `first..=last`, in block order, fetched with
    /// bounded concurrency.
    fn chunks(
        &self,
        first: u64,
        last: u64,
    ) -> impl futures_util::Stream<Item = Result<DecodedLogs, SourceError>> + '_ {
        let ranges = stream::unfold(first, move |from| async move {
            (from <= last).then(|| {
                let to = from.saturating_add(self.sizer.get() - 1).min(last);
                ((from, to), to + 1)
            })
        });
        ranges
            .map(move |(from, to)| self.chunk(from, to))
            .buffered(self.concurrency.max(1))
    }

    /// Streams the rows of blocks `first..=last` to the sink, in block
    /// order, with a warning for each skipped log.
    pub async fn run(
        &self,
        first: u64,
        last: u64,
        sender: &SourceEventSender,
    ) -> Result<ScanTotals, SourceError> {
        let mut chunks = std::pin::pin!(self.chunks(first, last));
        let mut totals = ScanTotals::default();
        while let Some(chunk) = chunks.try_next().await? {
            totals.rows += chunk.rows.len() as u64;
            for warning in chunk.skipped {
                totals.skipped += 1;
                if totals.skipped <= WARNINGS_SHOWN {
                    send(sender, SourceEvent::Warning(warning)).await?;
                }
            }
            for batch in chunk.rows.into_chunks(BATCH_ROWS) {
                send(sender, SourceEvent::Rows(batch)).await?;
            }
        }
        if totals.skipped > WARNINGS_SHOWN {
            let note = format!(
                "{} logs with the dataset's topics were skipped by the decoding rules in all (the first {WARNINGS_SHOWN} are listed above)",
                totals.skipped
            );
            send(sender, SourceEvent::Warning(note)).await?;
        }
        Ok(totals)
    }

    /// Visits every batch of rows of blocks `first..=last` without keeping them.
    pub async fn collect(
        &self,
        first: u64,
        last: u64,
        mut visit: impl FnMut(&Rows),
    ) -> Result<ScanTotals, SourceError> {
        let mut chunks = std::pin::pin!(self.chunks(first, last));
        let mut totals = ScanTotals::default();
        while let Some(chunk) = chunks.try_next().await? {
            totals.rows += chunk.rows.len() as u64;
            totals.skipped += chunk.skipped.len() as u64;
            visit(&chunk.rows);
        }
        Ok(totals)
    }

    /// The decoded rows of one block range, splitting it while the node
    /// refuses to answer it whole.
    async fn chunk(&self, from: u64, to: u64) -> Result<DecodedLogs, SourceError> {
        let raw = self.filtered_logs(from, to).await?;
        let topics = self.topics();
        let raw: Vec<RpcLog> = raw
            .into_iter()
            .filter(|l| l.has_topic(topics) && self.wanted_address(&l.address))
            .collect();
        let malformed = |e: DecodeError| self.malformed(from, to, e);
        let numbers: BTreeSet<u64> = raw
            .iter()
            .map(|l| l.block().map(|n| n as u64))
            .collect::<Result<_, _>>()
            .map_err(malformed)?;
        let numbers: Vec<u64> = numbers.into_iter().collect();
        let headers = self.blocks.headers(&numbers).await?;
        let mut logs = Vec::with_capacity(raw.len());
        for log in raw {
            let number = log.block().map_err(malformed)? as u64;
            let header = headers
                .get(&number)
                .ok_or_else(|| SourceError::Transient(format!("no header for block {number}")))?;
            if let Some(hash) = &log.block_hash {
                if !hash.eq_ignore_ascii_case(&header.hash) {
                    return Err(super::blocks::changed(number, hash, &header.hash));
                }
            }
            logs.push(
                log.into_log(header.time()?, &header.hash)
                    .map_err(malformed)?,
            );
        }
        self.pipeline.decode_logs(&logs).map_err(malformed)
    }

    fn topics(&self) -> &'static [&'static str] {
        match self.pipeline.rpc() {
            RpcExtraction::Logs { topics } => topics,
            RpcExtraction::ContractCreations => &[],
        }
    }

    /// A garbled answer may be a transport fault (retry); a well-formed log
    /// with a non-hex address is what the node holds (fail the day).
    fn malformed(&self, from: u64, to: u64, error: DecodeError) -> SourceError {
        let url = self.client.shown_url();
        if error.is_permanent() {
            SourceError::Config(format!("{url} sent a {error}"))
        } else {
            SourceError::Transient(format!(
                "{url} sent a malformed log in blocks {from}–{to}: {error}"
            ))
        }
    }

    /// The `topics` filter: one topic as itself (what ethereum-etl sends),
    /// several as an OR-list in the first position.
    fn topics_filter(&self) -> Value {
        match self.topics() {
            [single] => json!([single]),
            several => json!([several]),
        }
    }

    /// Whether a log's contract is one the filter keeps (a node that ignores
    /// the `address` field must not widen the day).
    fn wanted_address(&self, address: &str) -> bool {
        self.tokens
            .is_none_or(|tokens| tokens.contains(&address.to_ascii_lowercase()))
    }

    /// The logs of `from..=to`: one address group per request when the
    /// filter is longer than a request may carry, merged back into the
    /// node's order (block, then log index).
    async fn filtered_logs(&self, from: u64, to: u64) -> Result<Vec<RpcLog>, SourceError> {
        let Some(tokens) = self.tokens else {
            return self.logs(from, to, None).await;
        };
        let groups = tokens.chunks(self.max_addresses);
        if let [only] = groups.as_slice() {
            return self.logs(from, to, Some(only)).await;
        }
        let mut logs = Vec::new();
        for group in &groups {
            logs.append(&mut self.logs(from, to, Some(group)).await?);
        }
        logs.sort_by_cached_key(|log| {
            let index = ethpipe_core::evm::quantity("logIndex", &log.log_index);
            (log.block().unwrap_or(i64::MAX), index.unwrap_or(i64::MAX))
        });
        Ok(logs)
    }

    /// `eth_getLogs` over `from..=to` (of `addresses`' contracts only, when
    /// given), halving the range on "too many results".
    async fn logs(
        &self,
        from: u64,
        to: u64,
        addresses: Option<&TokenFilter>,
    ) -> Result<Vec<RpcLog>, SourceError> {
        let mut pending = vec![(from, to)];
        let mut logs = Vec::new();
        // Depth-first over a stack keeps the logs in block order.
        while let Some((from, to)) = pending.pop() {
            let mut request = json!({
                "fromBlock": quantity(from),
                "toBlock": quantity(to),
                "topics": self.topics_filter(),
            });
            if let Some(addresses) = addresses {
                request["address"] = json!(addresses.addresses());
            }
            let filter = json!([request]);
            match self.client.call("eth_getLogs", filter).await? {
                Ok(answer) => {
                    let mut answered: Vec<RpcLog> = serde_json::from_value(answer).map_err(|e| {
                        SourceError::Transient(format!(
                            "{} sent malformed logs for blocks {from}–{to}: {e}",
                            self.client.shown_url()
                        ))
                    })?;
                    logs.append(&mut answered);
                    self.sizer.grow();
                }
                Err(error) if error.is_too_many_results() && from < to => {
                    self.sizer.shrink_below(to - from + 1);
                    let middle = from + (to - from) / 2;
                    pending.push((middle + 1, to));
                    pending.push((from, middle));
                }
                Err(error) if error.is_too_many_results() => {
                    return Err(SourceError::Config(format!(
                        "block {from} alone has more {} logs than {} returns in one eth_getLogs answer ({error})",
                        self.pipeline,
                        self.client.shown_url()
                    )))
                }
                Err(error) => {
                    return Err(SourceError::Transient(format!(
                        "{} answered eth_getLogs for blocks {from}–{to} with {error}",
                        self.client.shown_url()
                    )))
                }
            }
        }
        Ok(logs)
    }
}

/// Sends one event downstream; a closed channel means the run stopped.
pub(super) async fn send(
    sender: &SourceEventSender,
    event: SourceEvent,
) -> Result<(), SourceError> {
    sender
        .send(Ok(event))
        .await
        .map_err(|_| SourceError::Transient("the run stopped reading rows".into()))
}
