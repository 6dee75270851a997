//! `token_transfers` from a node: `eth_getLogs` on the Transfer topic over a
//! day's blocks, in chunks that adapt to what the node will answer, decoded by
//! ethereum-etl's rules and joined with block headers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use ethpipe_core::{validate, Rows, SourceError, SourceEvent, SourceEventSender, TokenTransfer};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use serde_json::json;

use super::blocks::Blocks;
use super::client::{quantity, RpcClient};
use super::decode::{decode_transfer, Decoded, RpcLog, TRANSFER_TOPIC};

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

/// What one block range produced.
struct Chunk {
    transfers: Vec<TokenTransfer>,
    skipped: Vec<String>,
}

pub struct TransferScan<'a> {
    pub client: &'a RpcClient,
    pub blocks: &'a Blocks,
    pub sizer: &'a ChunkSizer,
    pub concurrency: usize,
}

/// Totals of a scan.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanTotals {
    pub transfers: u64,
    pub skipped: u64,
}

impl TransferScan<'_> {
    /// The chunks of blocks `first..=last`, in block order, fetched with
    /// bounded concurrency.
    fn chunks(
        &self,
        first: u64,
        last: u64,
    ) -> impl futures_util::Stream<Item = Result<Chunk, SourceError>> + '_ {
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

    /// Streams the transfers of blocks `first..=last` to the sink, in block
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
            totals.transfers += chunk.transfers.len() as u64;
            for warning in chunk.skipped {
                totals.skipped += 1;
                if totals.skipped <= WARNINGS_SHOWN {
                    send(sender, SourceEvent::Warning(warning)).await?;
                }
            }
            for batch in chunk.transfers.chunks(BATCH_ROWS) {
                send(
                    sender,
                    SourceEvent::Rows(Rows::TokenTransfers(batch.to_vec())),
                )
                .await?;
            }
        }
        if totals.skipped > WARNINGS_SHOWN {
            let note = format!(
                "{} Transfer-topic logs were skipped by the decoding rules in all (the first {WARNINGS_SHOWN} are listed above)",
                totals.skipped
            );
            send(sender, SourceEvent::Warning(note)).await?;
        }
        Ok(totals)
    }

    /// Visits every transfer of blocks `first..=last` without keeping them.
    pub async fn collect(
        &self,
        first: u64,
        last: u64,
        mut visit: impl FnMut(&TokenTransfer),
    ) -> Result<ScanTotals, SourceError> {
        let mut chunks = std::pin::pin!(self.chunks(first, last));
        let mut totals = ScanTotals::default();
        while let Some(chunk) = chunks.try_next().await? {
            totals.transfers += chunk.transfers.len() as u64;
            totals.skipped += chunk.skipped.len() as u64;
            chunk.transfers.iter().for_each(&mut visit);
        }
        Ok(totals)
    }

    /// The decoded transfers of one block range, splitting it while the node
    /// refuses to answer it whole.
    async fn chunk(&self, from: u64, to: u64) -> Result<Chunk, SourceError> {
        let logs = self.logs(from, to).await?;
        let mut parts = Vec::with_capacity(logs.len());
        let mut skipped = Vec::new();
        for log in &logs {
            match decode_transfer(log).map_err(|e| {
                SourceError::Transient(format!(
                    "{} sent a malformed log in blocks {from}–{to}: {e}",
                    self.client.shown_url()
                ))
            })? {
                Decoded::Transfer(transfer) => parts.push(transfer),
                Decoded::Skipped(warning) => skipped.push(warning),
                Decoded::NotTransfer => {}
            }
        }
        let numbers: Vec<u64> = parts
            .iter()
            .map(|p| p.block_number as u64)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let headers = self.blocks.headers(&numbers).await?;
        let mut transfers = Vec::with_capacity(parts.len());
        for part in parts {
            let header = headers.get(&(part.block_number as u64)).ok_or_else(|| {
                SourceError::Transient(format!("no header for block {}", part.block_number))
            })?;
            // ethereum-etl keeps whatever the topic held (rule 11); a real
            // node only sends hex, so anything else fails the day, as a
            // malformed BigQuery row does, rather than being loaded.
            let address = |column: &'static str, value: &str| {
                validate::address(0, column, Some(value)).map_err(|e| {
                    let problem = e.to_string();
                    let problem = problem.trim_start_matches("source row 0: ");
                    SourceError::Config(format!(
                        "{} sent a malformed log (log {} of transaction {}): {problem}",
                        self.client.shown_url(),
                        part.log_index,
                        part.transaction_hash
                    ))
                })
            };
            let token_address = address("token_address", &part.token_address)?;
            let from_address = address("from_address", &part.from_address)?;
            let to_address = address("to_address", &part.to_address)?;
            transfers.push(TokenTransfer {
                token_address,
                from_address: Some(from_address),
                to_address: Some(to_address),
                value: Some(part.value),
                transaction_hash: part.transaction_hash,
                log_index: part.log_index,
                block_timestamp: header.time()?,
                block_number: part.block_number,
                block_hash: header.hash.clone(),
            });
        }
        Ok(Chunk { transfers, skipped })
    }

    /// `eth_getLogs` over `from..=to`, halving the range on "too many results".
    async fn logs(&self, from: u64, to: u64) -> Result<Vec<RpcLog>, SourceError> {
        let mut pending = vec![(from, to)];
        let mut logs = Vec::new();
        // Depth-first over a stack keeps the logs in block order.
        while let Some((from, to)) = pending.pop() {
            let filter = json!([{
                "fromBlock": quantity(from),
                "toBlock": quantity(to),
                "topics": [TRANSFER_TOPIC],
            }]);
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
                        "block {from} alone has more Transfer logs than {} returns in one eth_getLogs answer ({error})",
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
