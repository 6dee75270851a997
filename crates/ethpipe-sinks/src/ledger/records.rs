//! The ledger's vocabulary: what a run, a step, a log line, a trigger is.

use chrono::{DateTime, Utc};
use ethpipe_core::{Day, Pipeline, Scope, TokenFilter};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Success,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> RunStatus {
        match text {
            "success" => RunStatus::Success,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Running,
        }
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub pipeline: Pipeline,
    pub scope: Scope,
    /// What started it: `manual`, `backfill`, a trigger's name.
    pub trigger: String,
    pub source: String,
    /// The tokens it loads (`None`: every token).
    pub filter: Option<TokenFilter>,
}

/// A run as the ledger holds it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub pipeline: String,
    /// `None` for a full load.
    pub day: Option<String>,
    pub trigger: String,
    pub source: String,
    pub status: RunStatus,
    pub attempt: i32,
    pub rows_written: Option<i64>,
    pub source_rows: Option<i64>,
    pub skipped_rows: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The token filter it loaded, as its canonical text (sorted addresses,
    /// comma-joined); `None`: every token.
    pub token_filter: Option<String>,
    /// The completeness gate the rows passed (`finalized`, `confirmations`,
    /// `published`, `whole-table`), once the source proved it.
    pub gate: Option<String>,
    /// What the gate was measured at (a block, a timestamp).
    pub gate_mark: Option<String>,
}

impl RunRecord {
    /// The run's token filter, parsed back from the ledger's text.
    pub fn filter(&self) -> Option<TokenFilter> {
        parse_stored_filter(self.token_filter.as_deref())
    }
}

/// A filter the ledger wrote; text it cannot have written reads as "every
/// token", the widest claim, never as a narrower one.
pub(crate) fn parse_stored_filter(text: Option<&str>) -> Option<TokenFilter> {
    text.and_then(|t| TokenFilter::parse_list(t).ok())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayLoaded {
    pub day: String,
    pub rows: i64,
    /// The token filter of the day's latest successful run (`None`: every token).
    pub token_filter: Option<String>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub pipeline: Option<Pipeline>,
    pub status: Option<&'static str>,
    pub trigger: Option<String>,
    /// Runs whose trigger starts with this (e.g. `backfill`).
    pub trigger_prefix: Option<String>,
    /// Keyset: only runs with a smaller id.
    pub before: Option<i64>,
    pub limit: u32,
}

/// Runs of one (pipeline, status) and the rows they wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCount {
    pub pipeline: String,
    pub status: String,
    pub runs: i64,
    pub rows: i64,
}

/// How long one finished run took.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDuration {
    pub pipeline: String,
    pub status: String,
    pub seconds: f64,
}

/// A trigger as the config file defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerDef {
    pub name: String,
    pub pipeline: String,
    /// Cron expression (5 or 6 fields, seconds first when 6) or `@daily`/`@hourly`.
    pub schedule: String,
    pub active: bool,
    /// The day loaded is the slot's UTC date minus this (1 = yesterday).
    pub day_offset: i32,
    pub max_attempts: i32,
    pub backoff_seconds: i32,
    pub timeout_seconds: i32,
    /// How far back (in days) the scheduler looks for slots whose day is not
    /// loaded yet: the catch-up window after downtime or failures.
    pub catchup_days: i32,
}

/// A trigger as the database holds it.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerState {
    #[serde(flatten)]
    pub def: TriggerDef,
    /// When the trigger was created or last turned on: it owes no day of a
    /// slot before this.
    pub active_since: Option<DateTime<Utc>>,
}

/// What the ledger says about one day's attempts, for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayAttempts {
    pub day: Day,
    pub succeeded: bool,
    /// Failed runs that started within the attempt window.
    pub failures_in_window: u32,
    /// When the day's latest failed run ended.
    pub last_failure: Option<DateTime<Utc>>,
    /// A run of the day is still `running` (alive, or abandoned and not yet closed).
    pub running: bool,
}

/// A backfill to record before it starts.
#[derive(Debug, Clone)]
pub struct NewBackfillJob {
    pub pipeline: Pipeline,
    pub from: Day,
    pub to: Day,
    pub parallel: u32,
    pub force: bool,
}

/// A recorded backfill and its progress, read from its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillJobRecord {
    pub id: i64,
    pub pipeline: String,
    pub from: Day,
    pub to: Day,
    pub parallel: u32,
    pub force: bool,
    /// `running` (until its whole range is done), `finished` or `failed`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub days_loaded: u64,
    pub rows: u64,
    pub days_failed: u64,
    pub days_skipped: u64,
}

impl BackfillJobRecord {
    /// The ledger trigger of the job's runs.
    pub fn trigger(&self) -> String {
        backfill_job_trigger(self.id)
    }
}

/// `backfill:<id>`: how a job's runs are told apart from every other run.
pub fn backfill_job_trigger(id: i64) -> String {
    format!("backfill:{id}")
}
