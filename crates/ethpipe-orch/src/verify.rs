//! Reconciliation: for each day, the ledger, the database and the source
//! must agree on the number of rows (of a token filter's tokens only, when
//! one is given: both sides are counted with it).

use ethpipe_core::dataset::LoadMode;
use ethpipe_core::{Day, Pipeline, Source, TokenFilter};
use ethpipe_sinks::{Database, RunStatus};
use serde::Serialize;

use crate::backfill::days;
use crate::runner::TOKENS_FULL_LOAD_DONE;
use crate::{FailureCause, RunError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DayState {
    /// Ledger success, and ledger, database and source counts agree.
    Ok,
    /// Never loaded successfully, or its rows are gone.
    Missing,
    /// Loaded, but the counts disagree.
    Mismatch,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCheck {
    pub day: String,
    pub state: DayState,
    pub ledger_status: Option<RunStatus>,
    pub ledger_rows: Option<i64>,
    pub database_rows: u64,
    pub source_rows: u64,
    /// The token filter of the day's latest successful run (canonical text;
    /// `None`: every token, or never loaded).
    pub loaded_filter: Option<String>,
}

pub async fn verify(
    database: &Database,
    source: &dyn Source,
    pipeline: Pipeline,
    from: Day,
    to: Day,
    filter: Option<&TokenFilter>,
) -> Result<Vec<DayCheck>, RunError> {
    let latest = database
        .ledger()
        .latest_runs(pipeline, from, to)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    let succeeded = database
        .ledger()
        .succeeded_days(pipeline, from, to, None, filter)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    let whole_table_loaded = whole_table_loaded(database, pipeline).await?;
    let mut checks = Vec::new();
    for day in days(from, to) {
        let key = day.to_string();
        let run = latest
            .iter()
            .find(|r| r.day.as_deref() == Some(key.as_str()));
        let database_rows = database
            .count_day(pipeline, day, filter)
            .await
            .map_err(RunError::Ledger)?;
        let source_rows = source
            .count(pipeline, day, filter.cloned())
            .await
            .map_err(|e| RunError::Failed {
                run: ethpipe_sinks::RunId(0),
                pipeline,
                scope: ethpipe_core::Scope::Day(day),
                message: format!("counting the source's rows: {e}"),
                permanent: false,
                interrupted: false,
                cause: Some(FailureCause::Source(e)),
            })?;
        let latest_success = latest_success(database, pipeline, day).await?;
        let ledger_rows = latest_success.as_ref().map(|d| d.rows);
        let loaded_filter = latest_success.and_then(|d| d.token_filter);
        let day_loaded = succeeded.contains(&day);
        // A merged dataset keeps one row per key, so its runs count what the
        // source sent (duplicates included) and only the table can be
        // compared with the source's distinct keys. A run's rows are those
        // of its own filter: comparable only when it is the one verified.
        let same_filter = loaded_filter.as_deref() == filter.map(|f| f.canonical()).as_deref();
        let ledger_agrees = pipeline.load_mode() == LoadMode::Merge
            || !day_loaded
            || !same_filter
            || ledger_rows == Some(database_rows as i64);
        let state =
            if !(day_loaded || whole_table_loaded) || (database_rows == 0 && source_rows > 0) {
                DayState::Missing
            } else if database_rows != source_rows || !ledger_agrees {
                DayState::Mismatch
            } else {
                DayState::Ok
            };
        checks.push(DayCheck {
            day: key,
            state,
            ledger_status: run.map(|r| r.status),
            ledger_rows,
            database_rows,
            source_rows,
            loaded_filter,
        });
    }
    Ok(checks)
}

/// Whether a full load of the whole table has committed: it covers every day
/// it held, though no run of those days exists.
async fn whole_table_loaded(database: &Database, pipeline: Pipeline) -> Result<bool, RunError> {
    if !pipeline.full_load_first() {
        return Ok(false);
    }
    let flag = database
        .ledger()
        .variable(pipeline, TOKENS_FULL_LOAD_DONE)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    Ok(flag.as_deref() == Some("true"))
}

/// The day's latest successful run: the rows it wrote and its filter.
async fn latest_success(
    database: &Database,
    pipeline: Pipeline,
    day: Day,
) -> Result<Option<ethpipe_sinks::DayLoaded>, RunError> {
    let loaded = database
        .ledger()
        .days_loaded(pipeline)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    Ok(loaded.into_iter().find(|d| d.day == day.to_string()))
}
