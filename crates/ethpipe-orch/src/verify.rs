//! Reconciliation: for each day, the ledger, the database and the source
//! must agree on the number of rows.

use ethpipe_core::dataset::LoadMode;
use ethpipe_core::{Day, Pipeline, Source};
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
}

pub async fn verify(
    database: &Database,
    source: &dyn Source,
    pipeline: Pipeline,
    from: Day,
    to: Day,
) -> Result<Vec<DayCheck>, RunError> {
    let latest = database
        .ledger()
        .latest_runs(pipeline, from, to)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    let succeeded = database
        .ledger()
        .succeeded_days(pipeline, from, to, None)
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
            .count_day(pipeline, day)
            .await
            .map_err(RunError::Ledger)?;
        let source_rows = source
            .count(pipeline, day)
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
        let ledger_rows = latest_success_rows(database, pipeline, day).await?;
        let day_loaded = succeeded.contains(&day);
        // A merged dataset keeps one row per key, so its runs count what the
        // source sent (duplicates included) and only the table can be
        // compared with the source's distinct keys.
        let ledger_agrees = pipeline.load_mode() == LoadMode::Merge
            || !day_loaded
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

/// Rows written by the day's latest successful run.
async fn latest_success_rows(
    database: &Database,
    pipeline: Pipeline,
    day: Day,
) -> Result<Option<i64>, RunError> {
    let loaded = database
        .ledger()
        .days_loaded(pipeline)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    Ok(loaded
        .iter()
        .find(|d| d.day == day.to_string())
        .map(|d| d.rows))
}
