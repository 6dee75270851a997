//! The JSON-RPC source: token data straight from an Ethereum node, with
//! ethereum-etl 2.4.1's semantics (docs/rpc-semantics.md).
//!
//! - [`client`]: JSON-RPC transport, batches, limits, retries.
//! - [`blocks`]: headers and the day → block range search.
//! - [`logs`]: `eth_getLogs` in adaptive chunks → any log dataset
//!   (`token_transfers`, `erc1155_transfers`), decoded by the dataset.
//! - [`contracts`], [`bytecode`], [`abi`]: creations, token detection and
//!   metadata → `tokens`.
//! - [`decode`]: a node's log → a checked log for a dataset's decoder.

pub mod abi;
pub mod blocks;
pub mod bytecode;
pub mod client;
pub mod contracts;
pub mod decode;
pub mod logs;
pub mod tokens;

use std::sync::Arc;

use ethpipe_core::dataset::RpcExtraction;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::{
    Day, Pipeline, RowStream, Scope, Source, SourceError, SourceEvent, SourceEventSender,
};

use blocks::{Blocks, DayBlocks};
use client::{RpcClient, RpcClientConfig};
use contracts::TraceSupport;
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
}

impl RpcConfig {
    pub fn new(url: impl Into<String>) -> RpcConfig {
        RpcConfig {
            url: url.into(),
            client: RpcClientConfig::default(),
            initial_log_blocks: 100,
            max_log_blocks: 2_000,
        }
    }
}

/// A node to extract from; cheap to share across runs.
pub struct RpcSource {
    shared: Arc<Shared>,
}

struct Shared {
    client: RpcClient,
    blocks: Blocks,
    sizer: ChunkSizer,
    traces: TraceSupport,
    concurrency: usize,
}

impl RpcSource {
    /// Validates the URL and builds the client; nothing is sent yet.
    pub fn connect(config: RpcConfig) -> Result<RpcSource, SourceError> {
        let client = RpcClient::new(&config.url, config.client.clone())?;
        Ok(RpcSource {
            shared: Arc::new(Shared {
                blocks: Blocks::new(client.clone()),
                client,
                sizer: ChunkSizer::new(config.initial_log_blocks, config.max_log_blocks),
                traces: TraceSupport::default(),
                concurrency: config.client.concurrency.max(1),
            }),
        })
    }
}

impl Shared {
    fn log_scan(&self, pipeline: Pipeline) -> LogScan<'_> {
        LogScan {
            client: &self.client,
            blocks: &self.blocks,
            sizer: &self.sizer,
            concurrency: self.concurrency,
            pipeline,
        }
    }

    async fn extract(
        &self,
        pipeline: Pipeline,
        scope: Scope,
        sender: &SourceEventSender,
    ) -> Result<(), SourceError> {
        let Scope::Day(day) = scope else {
            return Err(SourceError::Unsupported(FULL_LOAD_UNSUPPORTED.into()));
        };
        let (source_rows, skipped_rows) = match self.blocks.day_blocks(day).await? {
            DayBlocks::Empty => {
                let note =
                    format!("no block on the node has a timestamp on {day}: nothing to load");
                let _ = sender.send(Ok(SourceEvent::Warning(note))).await;
                (0, 0)
            }
            DayBlocks::Range { first, last } => match pipeline.rpc() {
                RpcExtraction::Logs { .. } => {
                    let totals = self.log_scan(pipeline).run(first, last, sender).await?;
                    (totals.rows, totals.skipped)
                }
                RpcExtraction::ContractCreations => {
                    let scan = TokenScan {
                        client: &self.client,
                        blocks: &self.blocks,
                        traces: &self.traces,
                        transfers: self.log_scan(TOKEN_TRANSFERS),
                    };
                    (scan.run(first, last, sender).await?, 0)
                }
            },
        };
        let _ = sender
            .send(Ok(SourceEvent::End {
                source_rows,
                skipped_rows,
            }))
            .await;
        Ok(())
    }

    /// For `verify`: the rows the day's logs decode into.
    async fn count(&self, pipeline: Pipeline, day: Day) -> Result<u64, SourceError> {
        if pipeline.rpc() == RpcExtraction::ContractCreations {
            return Err(SourceError::Unsupported(format!(
                "verify compares {pipeline} only with BigQuery: a node has no count of them per day"
            )));
        }
        match self.blocks.day_blocks(day).await? {
            DayBlocks::Empty => Ok(0),
            DayBlocks::Range { first, last } => Ok(self
                .log_scan(pipeline)
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

    fn extract(&self, pipeline: Pipeline, scope: Scope) -> RowStream {
        let (sender, stream) = RowStream::channel();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            if let Err(error) = shared.extract(pipeline, scope, &sender).await {
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
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, SourceError>> + Send + '_>>
    {
        Box::pin(self.shared.count(pipeline, day))
    }
}
