//! Reads of the pipeline's own state — runs, their steps and log lines,
//! triggers, a per-pipeline summary — through the [`Ledger`], shaped for the
//! API and the pages. No SQL here: the ledger is the only code that knows its
//! tables.

use chrono::{DateTime, Utc};
use ethpipe_core::Pipeline;
use ethpipe_sinks::ledger::{
    FailureKind, LedgerError, LogRecord, RunId, RunRecord, StepRecord, TriggerState,
};
use ethpipe_sinks::{Ledger, RunStatus};
use serde::Serialize;

pub use ethpipe_sinks::ledger::RunFilter;

use super::{timestamp, QueryError, Reader};

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub id: i64,
    pub pipeline: String,
    /// `None` for a tokens full load.
    pub day: Option<String>,
    pub trigger: String,
    pub source: String,
    pub status: String,
    pub attempt: i32,
    /// Rows staged so far while running; rows committed once it succeeded.
    pub rows_written: Option<i64>,
    pub source_rows: Option<i64>,
    pub skipped_rows: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Until now while still running.
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    pub position: i32,
    pub name: String,
    pub status: String,
    pub rows: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLine {
    pub id: i64,
    pub at: String,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trigger {
    pub name: String,
    pub pipeline: String,
    pub schedule: String,
    pub active: bool,
    pub day_offset: i32,
    pub max_attempts: i32,
    pub last_slot: Option<String>,
    /// The next slot, when active.
    pub next_run: Option<String>,
}

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
    pub triggers: Vec<Trigger>,
}

/// A cancelled statement is a timeout, an unreachable database is
/// "unavailable"; anything else is a bug worth a 500.
impl From<LedgerError> for QueryError {
    fn from(error: LedgerError) -> Self {
        match error.kind() {
            FailureKind::Timeout => QueryError::Timeout,
            FailureKind::Unavailable => QueryError::Unavailable(error.to_string()),
            FailureKind::Failed => QueryError::Failed(error.to_string()),
        }
    }
}

fn duration(started: DateTime<Utc>, finished: Option<DateTime<Utc>>) -> f64 {
    let end = finished.unwrap_or_else(Utc::now);
    ((end - started).num_milliseconds().max(0) as f64) / 1000.0
}

impl From<RunRecord> for Run {
    fn from(run: RunRecord) -> Self {
        Run {
            id: run.id.0,
            pipeline: run.pipeline,
            day: run.day,
            trigger: run.trigger,
            source: run.source,
            status: run.status.as_str().to_string(),
            attempt: run.attempt,
            rows_written: run.rows_written,
            source_rows: run.source_rows,
            skipped_rows: run.skipped_rows,
            started_at: timestamp(run.started_at),
            finished_at: run.finished_at.map(timestamp),
            duration_seconds: Some(duration(run.started_at, run.finished_at)),
            error: run.error,
        }
    }
}

impl From<StepRecord> for Step {
    fn from(step: StepRecord) -> Self {
        Step {
            position: step.position,
            name: step.name,
            status: step.status,
            rows: step.rows,
            started_at: timestamp(step.started_at),
            finished_at: timestamp(step.finished_at),
            error: step.error,
        }
    }
}

impl From<LogRecord> for LogLine {
    fn from(line: LogRecord) -> Self {
        LogLine {
            id: line.id,
            at: timestamp(line.at),
            level: line.level,
            message: line.message,
        }
    }
}

impl From<TriggerState> for Trigger {
    fn from(state: TriggerState) -> Self {
        let def = state.def;
        Trigger {
            next_run: next_run(&def.schedule, def.active),
            name: def.name,
            pipeline: def.pipeline,
            schedule: def.schedule,
            active: def.active,
            day_offset: def.day_offset,
            max_attempts: def.max_attempts,
            last_slot: state.last_slot.map(timestamp),
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
    Ok(Some((
        run.into(),
        steps.into_iter().map(Step::from).collect(),
    )))
}

/// Log lines of a run after the line `after` (0: from the start), oldest first.
pub async fn logs(
    reader: &Reader,
    run: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<LogLine>, QueryError> {
    let lines = reader.ledger().log_lines(RunId(run), after, limit).await?;
    Ok(lines.into_iter().map(LogLine::from).collect())
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
    Ok(triggers.into_iter().map(Trigger::from).collect())
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
        full_load_done: (pipeline == Pipeline::Tokens)
            .then(|| full_load_done.as_deref() == Some("true")),
        triggers: triggers
            .iter()
            .filter(|t| t.pipeline == name)
            .cloned()
            .collect(),
    })
}
