//! Trigger definitions and their persisted state (toggle, last slot handled).

use chrono::{DateTime, Utc};
use serde::Serialize;

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
    /// How many missed slots are run after downtime (newest first chosen, run oldest first).
    pub catchup_days: i32,
}

/// A trigger as the database holds it.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerState {
    #[serde(flatten)]
    pub def: TriggerDef,
    pub last_slot: Option<DateTime<Utc>>,
}
