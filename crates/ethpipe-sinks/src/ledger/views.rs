//! The ledger's records as the dashboard and the JSON API show them:
//! timestamps as RFC 3339 text in UTC with whole seconds, a run's duration
//! in seconds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::records::{RunRecord, TriggerState};

/// The one timestamp format the API returns.
pub fn timestamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Secs, true)
}

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
    /// The token addresses it loaded; `None`: every token.
    pub tokens: Option<Vec<String>>,
    /// The completeness gate the rows passed (`finalized`, `confirmations`,
    /// `published`, `whole-table`).
    pub gate: Option<String>,
    /// What the gate was measured at (a block, a timestamp).
    pub gate_mark: Option<String>,
}

/// One step of a run (the load, the daily statistics, a SQL model).
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
    /// When the trigger was created or last turned on (it owes no earlier day).
    pub active_since: Option<String>,
    /// The next slot, when active (the scheduler computes it; `None` here).
    pub next_run: Option<String>,
}

impl From<RunRecord> for Run {
    fn from(run: RunRecord) -> Self {
        let until = run.finished_at.unwrap_or_else(Utc::now);
        let millis = (until - run.started_at).num_milliseconds().max(0);
        Run {
            id: run.id.0,
            status: run.status.as_str().to_string(),
            started_at: timestamp(run.started_at),
            finished_at: run.finished_at.map(timestamp),
            duration_seconds: Some(millis as f64 / 1000.0),
            tokens: run.filter().map(|f| f.addresses().to_vec()),
            pipeline: run.pipeline,
            day: run.day,
            trigger: run.trigger,
            source: run.source,
            attempt: run.attempt,
            rows_written: run.rows_written,
            source_rows: run.source_rows,
            skipped_rows: run.skipped_rows,
            error: run.error,
            gate: run.gate,
            gate_mark: run.gate_mark,
        }
    }
}

impl From<TriggerState> for Trigger {
    fn from(state: TriggerState) -> Self {
        let def = state.def;
        Trigger {
            active_since: state.active_since.map(timestamp),
            next_run: None,
            name: def.name,
            pipeline: def.pipeline,
            schedule: def.schedule,
            active: def.active,
            day_offset: def.day_offset,
            max_attempts: def.max_attempts,
        }
    }
}
