//! The run ledger's vocabulary, shared by both databases.

use chrono::{DateTime, Utc};
use ethpipe_core::{Day, Pipeline, Scope};
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
}

#[derive(Debug, Clone, Serialize)]
pub struct DayLoaded {
    pub day: String,
    pub rows: i64,
}

pub(crate) fn scope_day(scope: Scope) -> Option<Day> {
    scope.day()
}
