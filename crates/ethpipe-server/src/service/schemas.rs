//! OpenAPI schemas of the ledger's read types (`Run`, `Step`, `LogLine`,
//! `Trigger`, `PipelineSummary`). Those types belong to the ledger reads,
//! which know nothing of the document, so each is described here by a
//! mirror struct with the same fields; a test serialises the real types and
//! checks that their fields and the mirrors' are the same.

#![allow(dead_code)] // The mirrors exist for their derived schemas only.

use utoipa::ToSchema;

use super::PipelineName;

/// A run state.
#[derive(ToSchema)]
#[schema(as = RunStatus, rename_all = "lowercase")]
pub enum RunStatusSchema {
    Running,
    Success,
    Failed,
}

/// A run as the API shows it.
#[derive(ToSchema)]
#[schema(as = Run)]
pub struct RunSchema {
    id: i64,
    pipeline: PipelineName,
    /// `null` for a tokens full load.
    #[schema(format = Date)]
    day: Option<String>,
    trigger: String,
    source: String,
    status: RunStatusSchema,
    attempt: i32,
    /// Rows staged so far while running; rows committed once it succeeded.
    rows_written: Option<i64>,
    source_rows: Option<i64>,
    skipped_rows: Option<i64>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    /// Until now while still running.
    duration_seconds: Option<f64>,
    error: Option<String>,
    /// The token addresses the run loaded; `null`: every token.
    tokens: Option<Vec<String>>,
    /// The completeness gate the rows passed: `finalized`, `confirmations`
    /// (JSON-RPC), `published` (BigQuery), `whole-table` (a full load).
    gate: Option<String>,
    /// What the gate was measured at, e.g. `finalized block 1234`.
    gate_mark: Option<String>,
}

#[derive(ToSchema)]
#[schema(as = Step)]
pub struct StepSchema {
    position: i32,
    name: String,
    status: String,
    rows: Option<i64>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    finished_at: String,
    error: Option<String>,
}

#[derive(ToSchema)]
#[schema(as = LogLine)]
pub struct LogLineSchema {
    id: i64,
    #[schema(format = DateTime)]
    at: String,
    level: String,
    message: String,
}

#[derive(ToSchema)]
#[schema(as = Trigger)]
pub struct TriggerSchema {
    name: String,
    pipeline: String,
    schedule: String,
    active: bool,
    day_offset: i32,
    max_attempts: i32,
    #[schema(format = DateTime)]
    active_since: Option<String>,
    /// The next slot, when active.
    #[schema(format = DateTime)]
    next_run: Option<String>,
}

/// One pipeline at a glance.
#[derive(ToSchema)]
#[schema(as = PipelineSummary)]
pub struct PipelineSummarySchema {
    pipeline: String,
    /// Days whose load succeeded (latest successful run per day).
    days_loaded: i64,
    #[schema(format = Date)]
    first_day: Option<String>,
    #[schema(format = Date)]
    last_day: Option<String>,
    /// Days between the first and last loaded day that are not loaded.
    gap_days: i64,
    /// Rows written by the latest successful run of each loaded day.
    rows_loaded: i64,
    running: i64,
    last_run: Option<RunSchema>,
    /// Pipelines with a first full load only: whether it has committed.
    full_load_done: Option<bool>,
    /// The token addresses the pipeline is configured to load (`tokens` in
    /// ethpipe.toml); absent: every token.
    tokens: Option<Vec<String>>,
    triggers: Vec<TriggerSchema>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    use utoipa::PartialSchema;

    use super::*;
    use crate::queries::ledger::{LogLine, PipelineSummary, Run, Step, Trigger};

    fn documented<T: PartialSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => panic!("{} is not an object schema", std::any::type_name::<T>()),
        }
    }

    fn serialised(value: impl serde::Serialize) -> BTreeSet<String> {
        match serde_json::to_value(value).unwrap() {
            Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        }
    }

    fn run() -> Run {
        Run {
            id: 1,
            pipeline: "tokens".into(),
            day: None,
            trigger: "manual".into(),
            source: "bigquery".into(),
            status: "success".into(),
            attempt: 1,
            rows_written: None,
            source_rows: None,
            skipped_rows: None,
            started_at: String::new(),
            finished_at: None,
            duration_seconds: None,
            error: None,
            tokens: None,
            gate: None,
            gate_mark: None,
        }
    }

    fn trigger() -> Trigger {
        Trigger {
            name: "daily".into(),
            pipeline: "tokens".into(),
            schedule: "0 1 * * *".into(),
            active: true,
            day_offset: 1,
            max_attempts: 3,
            active_since: None,
            next_run: None,
        }
    }

    #[test]
    fn mirrors_have_the_ledger_types_fields() {
        assert_eq!(documented::<RunSchema>(), serialised(run()));
        assert_eq!(documented::<TriggerSchema>(), serialised(trigger()));
        let step = Step {
            position: 1,
            name: "load".into(),
            status: "success".into(),
            rows: None,
            started_at: String::new(),
            finished_at: String::new(),
            error: None,
        };
        assert_eq!(documented::<StepSchema>(), serialised(step));
        let line = LogLine {
            id: 1,
            at: String::new(),
            level: "info".into(),
            message: String::new(),
        };
        assert_eq!(documented::<LogLineSchema>(), serialised(line));
        let summary = PipelineSummary {
            pipeline: "tokens".into(),
            days_loaded: 0,
            first_day: None,
            last_day: None,
            gap_days: 0,
            rows_loaded: 0,
            running: 0,
            last_run: Some(run()),
            full_load_done: Some(true),
            tokens: Some(vec!["0x1111111111111111111111111111111111111111".into()]),
            triggers: vec![trigger()],
        };
        assert_eq!(documented::<PipelineSummarySchema>(), serialised(summary));
    }
}
