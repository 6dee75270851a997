//! Reads of the pipeline's own state — runs, their steps and log lines,
//! triggers, a per-pipeline summary — through the [`Ledger`], shaped for the
//! API and the pages. No SQL here: the ledger is the only code that knows its
//! tables.

use chrono::Utc;
use ethpipe_core::Pipeline;
use ethpipe_sinks::ledger::{FailureKind, LedgerError, RunId};
use ethpipe_sinks::{Ledger, RunStatus};
use serde::Serialize;

pub use ethpipe_sinks::ledger::{LogLine, Run, RunFilter, Step, Trigger};

use super::{timestamp, QueryError, Reader};

/// One pipeline at a glance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineSummary {
    pub pipeline: String,
    /// Days whose load succeeded (latest successful run per day).
    pub days_loaded: i64,
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    /// Days between the first and last loaded day that are not loaded.
    pub gap_days: i64,
    /// Rows written by the latest successful run of each loaded day.
    pub rows_loaded: i64,
    pub running: i64,
    pub last_run: Option<Run>,
    /// Tokens only: whether the first full load has committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_load_done: Option<bool>,
    /// The token addresses the pipeline is configured to load; absent:
    /// every token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    pub triggers: Vec<Trigger>,
}

/// A cancelled statement is a timeout, an unreachable database is
/// "unavailable"; anything else is a bug worth a 500.
impl From<LedgerError> for QueryError {
    fn from(error: LedgerError) -> Self {
        match error.kind() {
            FailureKind::Timeout => QueryError::Timeout(Box::new(error)),
            FailureKind::Unavailable => QueryError::Unavailable {
                message: error.to_string(),
                source: Box::new(error),
            },
            FailureKind::Failed => QueryError::Failed {
                message: error.to_string(),
                source: Box::new(error),
            },
        }
    }
}

pub async fn runs(reader: &Reader, filter: &RunFilter) -> Result<Vec<Run>, QueryError> {
    let runs = reader.ledger().runs(filter).await?;
    Ok(runs.into_iter().map(Run::from).collect())
}

pub async fn run(reader: &Reader, id: i64) -> Result<Option<(Run, Vec<Step>)>, QueryError> {
    let ledger = reader.ledger();
    let Some(run) = ledger.run(RunId(id)).await? else {
        return Ok(None);
    };
    let steps = ledger.steps(RunId(id)).await?;
    Ok(Some((run.into(), steps)))
}

/// Log lines of a run after the line `after` (0: from the start), oldest first.
pub async fn logs(
    reader: &Reader,
    run: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<LogLine>, QueryError> {
    Ok(reader.ledger().log_lines(RunId(run), after, limit).await?)
}

fn next_run(schedule: &str, active: bool) -> Option<String> {
    if !active {
        return None;
    }
    let cron = ethpipe_orch::scheduler::parse_schedule(schedule).ok()?;
    ethpipe_orch::scheduler::next_slot(&cron, Utc::now()).map(timestamp)
}

pub async fn triggers(reader: &Reader) -> Result<Vec<Trigger>, QueryError> {
    let triggers = reader.ledger().triggers().await?;
    Ok(triggers
        .into_iter()
        .map(|state| Trigger {
            next_run: next_run(&state.def.schedule, state.def.active),
            ..Trigger::from(state)
        })
        .collect())
}

pub async fn pipeline_summary(
    reader: &Reader,
    pipeline: Pipeline,
    triggers: &[Trigger],
) -> Result<PipelineSummary, QueryError> {
    let ledger: &dyn Ledger = reader.ledger();
    let name = pipeline.name().to_string();
    // One row per loaded day: a few thousand even after years.
    let loaded = ledger.days_loaded(pipeline).await?;
    let running = ledger
        .run_counts()
        .await?
        .into_iter()
        .filter(|count| count.pipeline == name && count.status == RunStatus::Running.as_str())
        .map(|count| count.runs)
        .sum();
    let full_load_done = ledger
        .variable(pipeline, ethpipe_orch::runner::TOKENS_FULL_LOAD_DONE)
        .await?;
    let last_run = runs(
        reader,
        &RunFilter {
            pipeline: Some(pipeline),
            limit: 1,
            ..RunFilter::default()
        },
    )
    .await?
    .into_iter()
    .next();
    let days_loaded = loaded.len() as i64;
    let first_day = loaded.first().map(|d| d.day.clone());
    let last_day = loaded.last().map(|d| d.day.clone());
    let span = match (&first_day, &last_day) {
        (Some(a), Some(b)) => match (
            a.parse::<ethpipe_core::Day>(),
            b.parse::<ethpipe_core::Day>(),
        ) {
            (Ok(a), Ok(b)) => (b.naive() - a.naive()).num_days() + 1,
            _ => days_loaded,
        },
        _ => 0,
    };
    Ok(PipelineSummary {
        pipeline: name.clone(),
        days_loaded,
        first_day,
        last_day,
        gap_days: (span - days_loaded).max(0),
        rows_loaded: loaded.iter().map(|d| d.rows).sum(),
        running,
        last_run,
        full_load_done: pipeline
            .full_load_first()
            .then(|| full_load_done.as_deref() == Some("true")),
        tokens: None,
        triggers: triggers
            .iter()
            .filter(|t| t.pipeline == name)
            .cloned()
            .collect(),
    })
}
