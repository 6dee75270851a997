//! The ledger figures `/metrics` exports. They are read from the database at
//! scrape time, so they count every run (this process's, the CLI's, other
//! replicas') and survive restarts.

pub use ethpipe_sinks::ledger::RunCount;

use super::{QueryError, Reader};

pub async fn run_counts(reader: &Reader) -> Result<Vec<RunCount>, QueryError> {
    Ok(reader.ledger().run_counts().await?)
}

/// (pipeline, status, seconds) of every finished run.
pub async fn run_durations(reader: &Reader) -> Result<Vec<(String, String, f64)>, QueryError> {
    let durations = reader.ledger().run_durations().await?;
    Ok(durations
        .into_iter()
        .map(|run| (run.pipeline, run.status, run.seconds))
        .collect())
}
