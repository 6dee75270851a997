//! The contract between a source and the orchestrator.
//!
//! A source is asked for one (pipeline, scope) and answers with a [`RowStream`]:
//! a bounded channel of batches fed by a task the source spawns. The channel's
//! small capacity is what keeps memory flat: the source cannot run more than a
//! couple of batches ahead of the sink. The stream must end with
//! [`SourceEvent::End`], carrying the number of rows the source says the scope
//! has, so the orchestrator can reconcile it with what the sink wrote; a stream
//! that closes without it is treated as a failure.

use tokio::sync::mpsc;

use crate::{Pipeline, RowError, Rows, Scope};

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
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    BadRow(#[from] RowError),
    /// Credentials, permissions or configuration: retrying will not help.
    #[error("{0}")]
    Config(String),
    /// Network, throttling, server errors: a later retry may succeed.
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

    fn extract(&self, pipeline: Pipeline, scope: Scope) -> RowStream;

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

    /// The number of rows the source holds for a day, without extracting them
    /// (used by `verify`).
    fn count(
        &self,
        pipeline: Pipeline,
        day: crate::Day,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, SourceError>> + Send + '_>>;
}
