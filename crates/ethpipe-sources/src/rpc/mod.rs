//! The JSON-RPC source: token data straight from an Ethereum node, with
//! ethereum-etl 2.4.1's semantics (docs/rpc-semantics.md).
//!
//! - [`client`]: JSON-RPC transport, batches, limits, retries.
//! - [`blocks`]: headers (cached for one run) and the day → block range search.
//! - [`finality`]: the completeness gate — a day loads once its end is final —
//!   and, through [`blocks::Blocks::recheck`], the reorg check before commit.
//! - [`logs`]: `eth_getLogs` in adaptive chunks → any log dataset
//!   (`token_transfers`, `erc1155_transfers`), read in place from the
//!   answer's bytes and decoded by the dataset.
//! - [`budget`]: the blocks and answer bytes in flight, one budget for
//!   every day a process loads at once.
//! - [`contracts`], [`bytecode`], [`abi`]: creations, token detection and
//!   metadata → `tokens`.
//! - [`decode`]: a node's log → a checked log for a dataset's decoder.

pub mod abi;
pub mod blocks;
pub mod budget;
pub mod bytecode;
pub mod client;
pub mod contracts;
pub mod decode;
pub mod finality;
pub mod logs;
pub mod tokens;

use std::sync::Arc;

use ethpipe_core::dataset::RpcExtraction;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::{
    Completeness, Day, Pipeline, RowStream, Scope, Slice, Source, SourceError, SourceEvent,
    SourceEventSender, TokenFilter,
};

use blocks::{Blocks, DayBlocks};
use budget::{BudgetStats, Cost, InFlightBudget};
use client::{RpcClient, RpcClientConfig};
use contracts::TraceSupport;
use finality::{final_day, Finality};
use logs::{ChunkSizer, LogScan};
use tokens::TokenScan;

pub const FULL_LOAD_UNSUPPORTED: &str = "--source rpc has no whole tokens table to read: \
     load tokens day by day with `ethpipe backfill tokens --from YYYY-MM-DD --to YYYY-MM-DD`";

#[derive(Debug, Clone)]
pub struct RpcConfig {
    pub url: String,
    pub client: RpcClientConfig,
    /// First `eth_getLogs` range, in blocks; it adapts from there.
    pub initial_log_blocks: u64,
    pub max_log_blocks: u64,
    /// Addresses per `eth_getLogs` request (`--rpc-max-addresses`).
    pub max_addresses: usize,
    /// How a day's end is judged final (`--rpc-confirmations`).
    pub finality: Finality,
    /// Blocks and `eth_getLogs` answer bytes the whole process may hold at
    /// once, across `--parallel` days and `--rpc-concurrency` requests.
    pub in_flight: Cost,
}

/// The default in-flight budget. 32 MB of answers is ~50,000 Transfer logs,
/// enough for 16 requests of ~2 MB each (so the node is kept busy), and
/// with the rows they decode into it keeps a `--parallel 4` backfill well
/// under the 150 MB the project allows. 4,096 blocks is two of the largest
/// ranges `eth_getLogs` is asked for; each block in flight costs a header.
pub const DEFAULT_IN_FLIGHT: Cost = Cost {
    blocks: 4_096,
    bytes: 32 * 1024 * 1024,
};

impl RpcConfig {
    pub fn new(url: impl Into<String>) -> RpcConfig {
        RpcConfig {
            url: url.into(),
            client: RpcClientConfig::default(),
            initial_log_blocks: 100,
            max_log_blocks: 2_000,
            max_addresses: logs::DEFAULT_MAX_ADDRESSES,
            finality: Finality::FinalizedTag,
            in_flight: DEFAULT_IN_FLIGHT,
        }
    }
}

/// A node to extract from; cheap to share across runs.
pub struct RpcSource {
    shared: Arc<Shared>,
}

/// What runs share. Block headers are not in it: each run reads its own
/// (see [`blocks`]), so no header outlives the run that checked it.
struct Shared {
    client: RpcClient,
    sizer: ChunkSizer,
    budget: InFlightBudget,
    traces: TraceSupport,
    concurrency: usize,
    max_addresses: usize,
    finality: Finality,
}

impl RpcSource {
    /// Validates the URL and builds the client; nothing is sent yet.
    pub fn connect(config: RpcConfig) -> Result<RpcSource, SourceError> {
        let client = RpcClient::new(&config.url, config.client.clone())?;
        Ok(RpcSource {
            shared: Arc::new(Shared {
                client,
                sizer: ChunkSizer::new(config.initial_log_blocks, config.max_log_blocks),
                budget: InFlightBudget::new(config.in_flight),
                traces: TraceSupport::default(),
                concurrency: config.client.concurrency.max(1),
                max_addresses: config.max_addresses.max(1),
                finality: config.finality,
            }),
        })
    }

    /// What the in-flight budget has held so far (its peak is the bound
    /// at work, for tests and benchmarks).
    pub fn in_flight(&self) -> BudgetStats {
        self.shared.budget.stats()
    }
}

impl Shared {
    fn log_scan<'a>(
        &'a self,
        blocks: &'a Blocks,
        pipeline: Pipeline,
        tokens: Option<&'a TokenFilter>,
    ) -> LogScan<'a> {
        LogScan {
            client: &self.client,
            blocks,
            sizer: &self.sizer,
            budget: &self.budget,
            concurrency: self.concurrency,
            pipeline,
            tokens,
            max_addresses: self.max_addresses,
        }
    }

    async fn extract(&self, slice: &Slice, sender: &SourceEventSender) -> Result<(), SourceError> {
        let (pipeline, tokens) = (slice.pipeline, slice.filter.as_ref());
        let Scope::Day(day) = slice.scope else {
            return Err(SourceError::Unsupported(FULL_LOAD_UNSUPPORTED.into()));
        };
        let blocks = Blocks::new(self.client.clone());
        let day_end = final_day(&self.client, &blocks, self.finality, day).await?;
        let (source_rows, skipped_rows) = match day_end.blocks {
            DayBlocks::Empty => {
                let note =
                    format!("no block on the node has a timestamp on {day}: nothing to load");
                let _ = sender.send(Ok(SourceEvent::Warning(note))).await;
                (0, 0)
            }
            DayBlocks::Range { first, last } => match pipeline.rpc() {
                RpcExtraction::Logs { .. } => {
                    let totals = self
                        .log_scan(&blocks, pipeline, tokens)
                        .run(first, last, sender)
                        .await?;
                    (totals.rows, totals.skipped)
                }
                RpcExtraction::ContractCreations => {
                    let scan = TokenScan {
                        client: &self.client,
                        blocks: &blocks,
                        traces: &self.traces,
                        transfers: self.log_scan(&blocks, TOKEN_TRANSFERS, tokens),
                    };
                    (scan.run(first, last, sender).await?, 0)
                }
            },
        };
        let _ = sender
            .send(Ok(SourceEvent::End {
                source_rows,
                skipped_rows,
                completeness: Completeness {
                    gate: day_end.gate,
                    recheck: Some(blocks.recheck(day_end.next_day_first_block)),
                },
            }))
            .await;
        Ok(())
    }

    /// For `verify`: the rows the day's logs decode into.
    async fn count(
        &self,
        pipeline: Pipeline,
        day: Day,
        tokens: Option<TokenFilter>,
    ) -> Result<u64, SourceError> {
        if pipeline.rpc() == RpcExtraction::ContractCreations {
            return Err(SourceError::Unsupported(format!(
                "verify compares {pipeline} only with BigQuery: a node has no count of them per day"
            )));
        }
        let blocks = Blocks::new(self.client.clone());
        match blocks.day_blocks(day).await? {
            DayBlocks::Empty => Ok(0),
            DayBlocks::Range { first, last } => Ok(self
                .log_scan(&blocks, pipeline, tokens.as_ref())
                .collect(first, last, |_| {})
                .await?
                .rows),
        }
    }
}

impl Source for RpcSource {
    fn name(&self) -> &'static str {
        "rpc"
    }

    fn extract(&self, slice: Slice) -> RowStream {
        let (sender, stream) = RowStream::channel();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            if let Err(error) = shared.extract(&slice, &sender).await {
                // The receiver may be gone (run cancelled); nothing else to tell.
                let _ = sender.send(Err(error)).await;
            }
        });
        stream
    }

    fn supports_full_load(&self) -> bool {
        false
    }

    fn probe(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send + '_>>
    {
        Box::pin(async move {
            self.shared
                .client
                .request("eth_blockNumber", serde_json::json!([]))
                .await
                .map(|_| ())
        })
    }

    fn count(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<TokenFilter>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, SourceError>> + Send + '_>>
    {
        Box::pin(self.shared.count(pipeline, day, filter))
    }
}
