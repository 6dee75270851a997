//! `ethpipe export`: days already loaded in a database, copied to files
//! (Parquet or CSV) in the Parquet store's layout,
//! `DIR/<dataset>/date=YYYY-MM-DD/data.<ext>`. A day is read from the
//! database as a stream and written file by file, so memory does not grow
//! with the day; each file is renamed into place only once complete.

use std::path::PathBuf;

use ethpipe_core::{Day, Pipeline};
use ethpipe_sinks::files::{create_day_file, FileFormat};
use ethpipe_sinks::{Database, LedgerError, SinkError};

use crate::runner::TOKENS_FULL_LOAD_DONE;

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub pipeline: Pipeline,
    pub from: Day,
    pub to: Day,
    pub format: FileFormat,
    pub out_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Bad input: the range holds days the database never loaded.
    #[error("{pipeline} was never loaded for {days}: load them first (ethpipe backfill {pipeline} --from D --to D); nothing was exported")]
    NotLoaded { pipeline: Pipeline, days: String },
    #[error("reading the ledger: {0}")]
    Ledger(#[source] LedgerError),
    #[error("exporting {pipeline} {day}: {source}")]
    Day {
        pipeline: Pipeline,
        day: Day,
        #[source]
        source: SinkError,
    },
}

/// What an export reports as it goes.
pub trait ExportProgress: Send + Sync {
    fn planned(&self, days: usize);
    fn day_done(&self, day: Day, rows: u64);
}

/// Exports every day of the range, oldest first, after checking that each
/// one has a successful load; returns the rows of each day.
pub async fn export(
    database: &Database,
    request: &ExportRequest,
    progress: &dyn ExportProgress,
) -> Result<Vec<(Day, u64)>, ExportError> {
    let days = days_between(request.from, request.to);
    check_loaded(database, request.pipeline, &days).await?;
    progress.planned(days.len());
    let mut exported = Vec::with_capacity(days.len());
    for day in days {
        let rows = export_day(database, request, day)
            .await
            .map_err(|source| ExportError::Day {
                pipeline: request.pipeline,
                day,
                source,
            })?;
        progress.day_done(day, rows);
        exported.push((day, rows));
    }
    Ok(exported)
}

async fn export_day(
    database: &Database,
    request: &ExportRequest,
    day: Day,
) -> Result<u64, SinkError> {
    let mut file = create_day_file(&request.out_dir, request.pipeline, day, request.format)?;
    database
        .sink()
        .read_day(request.pipeline, day, file.rows())
        .await?;
    file.finish()
}

fn days_between(from: Day, to: Day) -> Vec<Day> {
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        days.push(day);
        day = day.succ();
    }
    days
}

/// A day counts as loaded when a load of all its tokens succeeded (a day
/// loaded only for some tokens is not: the file would miss rows), or, for a dataset
/// loaded whole on its first run (tokens), once that full load committed.
async fn check_loaded(
    database: &Database,
    pipeline: Pipeline,
    days: &[Day],
) -> Result<(), ExportError> {
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return Ok(());
    };
    let ledger = database.ledger();
    if pipeline.full_load_first()
        && ledger
            .variable(pipeline, TOKENS_FULL_LOAD_DONE)
            .await
            .map_err(ExportError::Ledger)?
            .is_some()
    {
        return Ok(());
    }
    let loaded = ledger
        .succeeded_days(pipeline, first, last, None, None)
        .await
        .map_err(ExportError::Ledger)?;
    let missing: Vec<Day> = days
        .iter()
        .copied()
        .filter(|day| !loaded.contains(day))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ExportError::NotLoaded {
            pipeline,
            days: summarize(&missing),
        })
    }
}

/// The first few days, then how many more, to keep the message one line.
fn summarize(days: &[Day]) -> String {
    const SHOWN: usize = 5;
    let listed: Vec<String> = days.iter().take(SHOWN).map(Day::to_string).collect();
    match days.len().saturating_sub(SHOWN) {
        0 => listed.join(", "),
        more => format!("{} and {more} more days", listed.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_days_are_listed_briefly() {
        let from: Day = "2024-03-01".parse().unwrap();
        let days = days_between(from, "2024-03-08".parse().unwrap());
        assert_eq!(days.len(), 8);
        assert_eq!(summarize(&days[..2]), "2024-03-01, 2024-03-02");
        assert_eq!(
            summarize(&days),
            "2024-03-01, 2024-03-02, 2024-03-03, 2024-03-04, 2024-03-05 and 3 more days"
        );
    }
}
