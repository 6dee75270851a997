//! The contract between a source and the orchestrator.
//!
//! A source is asked for one [`Slice`] (pipeline, scope, token filter) and answers with a [`RowStream`]:
//! a bounded channel of batches fed by a task the source spawns. The channel's
//! small capacity is what keeps memory flat: the source cannot run more than a
//! couple of batches ahead of the sink. The stream must end with
//! [`SourceEvent::End`], carrying the number of rows the source says the scope
//! has, so the orchestrator can reconcile it with what the sink wrote; a stream
//! that closes without it is treated as a failure.
//!
//! "Loaded means complete": `End` also carries the source's [`Completeness`],
//! the gate it passed before extracting (the day's last block is final, the
//! dataset holds data past the day's end) and, when the source must confirm
//! its rows are still current right before they commit (a JSON-RPC node's
//! blocks may be reorganised), a [`Recheck`] the orchestrator awaits between
//! the last batch and the commit. The orchestrator never learns why.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

use crate::{Pipeline, RowError, Rows, Slice, TokenFilter};

/// Batches in flight between a source and a sink.
const STREAM_CAPACITY: usize = 2;

#[derive(Debug)]
pub enum SourceEvent {
    Rows(Rows),
    /// A note for the run log (e.g. a log skipped by the decoding rules).
    Warning(String),
    /// The stream is complete. `source_rows` is the source's own count for the
    /// scope; `skipped_rows` counts source records the decoding rules left
    /// out (each reported in a warning), never silently.
    End {
        source_rows: u64,
        skipped_rows: u64,
        completeness: Completeness,
    },
}

/// The gate a scope passed: why the source holds it complete, and at what
/// mark (a block number, a timestamp) — recorded with the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// `finalized`, `confirmations`, `published`, or `whole-table`.
    pub name: &'static str,
    /// What the gate was measured against, e.g. `block 1234`.
    pub mark: String,
}

/// A check the source still has to make right before the commit; `Ok` when
/// the rows it sent are still what the source holds.
pub type Recheck = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// What a source proved about the completeness of the scope it streamed.
pub struct Completeness {
    pub gate: Gate,
    /// Awaited by the orchestrator after the last batch, before the commit.
    pub recheck: Option<Recheck>,
}

impl Completeness {
    /// A gate with nothing left to check at commit time.
    pub fn passed(gate: Gate) -> Completeness {
        Completeness {
            gate,
            recheck: None,
        }
    }

    /// Confirms the rows are still current (a no-op without a recheck).
    pub async fn recheck(&mut self) -> Result<(), SourceError> {
        match self.recheck.take() {
            Some(recheck) => recheck.await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Completeness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completeness")
            .field("gate", &self.gate)
            .field("recheck", &self.recheck.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    BadRow(#[from] RowError),
    /// Credentials, permissions or configuration: retrying will not help.
    #[error("{0}")]
    Config(String),
    /// Network, throttling, server errors, a day not final or not published
    /// yet, a reorganised block: a later retry may succeed.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the source stopped without finishing the stream (its task ended early)")]
    Truncated,
}

pub type SourceEventSender = mpsc::Sender<Result<SourceEvent, SourceError>>;

/// The receiving end of a source's extraction.
pub struct RowStream {
    receiver: mpsc::Receiver<Result<SourceEvent, SourceError>>,
}

impl RowStream {
    /// A stream and the sender a source task feeds it with.
    pub fn channel() -> (SourceEventSender, RowStream) {
        let (sender, receiver) = mpsc::channel(STREAM_CAPACITY);
        (sender, RowStream { receiver })
    }

    /// The next event; `Err(Truncated)` if the source went away without `End`.
    pub async fn next(&mut self) -> Result<SourceEvent, SourceError> {
        match self.receiver.recv().await {
            Some(event) => event,
            None => Err(SourceError::Truncated),
        }
    }
}

/// Something ethpipe can extract token data from.
///
/// `extract` must not block: it spawns the work and returns the stream at once.
pub trait Source: Send + Sync {
    /// Short name for logs and the ledger (`bigquery`, `rpc`).
    fn name(&self) -> &'static str;

    /// Streams the slice's rows; with a filter, only those tokens' rows,
    /// selected by the source itself (never read and dropped here).
    fn extract(&self, slice: Slice) -> RowStream;

    /// Whether the source can read the whole tokens table at once (BigQuery
    /// can; a node has no such table, so tokens load day by day).
    fn supports_full_load(&self) -> bool {
        true
    }

    /// Whether the source answers right now (`/readyz`). A source with nothing
    /// cheap to ask (BigQuery checks its credentials when opened) says yes.
    fn probe(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send + '_>>
    {
        Box::pin(async { Ok(()) })
    }

    /// The number of rows the source holds for a day (only the filter's
    /// tokens' rows, with one), without extracting them (used by `verify`).
    fn count(
        &self,
        pipeline: Pipeline,
        day: crate::Day,
        filter: Option<TokenFilter>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, SourceError>> + Send + '_>>;
}
